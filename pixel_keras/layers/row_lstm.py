"""Row LSTM layer (van den Oord et al., 2016, Section 3.1)."""

import keras
from keras import ops

from pixel_keras.layers.masked_conv2d import MaskedConv2D, bias_add
from pixel_keras.layers.scan import scan
from pixel_keras.precision import elementwise_dtype


def lstm_update(pre_activations, cell):
    """One LSTM update from gate pre-activations `[..., 4h]`, paper order.

    `[o, f, i, g]` split in four equal blocks along the last axis; sigmoid
    for the output, forget and input gates, tanh for the content:

        c = f * c_prev + i * g,    h = o * tanh(c)

    Returns:
        `(h, c)`, each `[..., h]`.
    """
    o, f, i, g = ops.split(pre_activations, 4, axis=-1)
    cell = ops.sigmoid(f) * cell + ops.sigmoid(i) * ops.tanh(g)
    hidden = ops.sigmoid(o) * ops.tanh(cell)
    return hidden, cell


def gate_bias_initializer(bias_initializer, units, unit_forget_bias):
    """Bias initializer for `[o, f, i, g]`, forget block ones if asked."""
    if not unit_forget_bias:
        return bias_initializer

    def initializer(shape, dtype=None):
        return ops.concatenate(
            [
                bias_initializer((units,), dtype=dtype),
                ops.ones((units,), dtype=dtype),
                bias_initializer((2 * units,), dtype=dtype),
            ]
        )

    return initializer


def check_units(units, image_channels):
    """Validates `units` against the number of channel groups."""
    if not isinstance(units, int) or units < image_channels:
        raise ValueError(
            "`units` must be an int >= `image_channels` so that every channel "
            f"group has a state map. Received: units={units!r}, "
            f"image_channels={image_channels!r}"
        )


def check_image_channels(image_channels):
    if not isinstance(image_channels, int) or image_channels < 1:
        raise ValueError(
            "`image_channels` must be a positive int. "
            f"Received: image_channels={image_channels!r}"
        )


@keras.saving.register_keras_serializable(package="pixel_keras")
class RowLSTM(keras.layers.Layer):
    """Row LSTM: an LSTM that runs over rows, top to bottom, a row per step.

    Every step updates the state of a whole row at once. With `x_i` the
    input row i and `h_{i-1}`, `c_{i-1}` the previous row's state:

    ```
    [o, f, i, g] = K_ss (*) h_{i-1} + K_is (*) x_i + b
    c_i = sigmoid(f) * c_{i-1} + sigmoid(i) * tanh(g)
    h_i = sigmoid(o) * tanh(c_i)
    ```

    - Input-to-state `K_is`: a 1 x k convolution along the row with mask B
      (`MaskedConv2D(4h, (1, k), "B", output_blocks=4)`): the taps left of a
      pixel see all its channels, the centre tap only channel groups up to
      the output map's own group. It is computed for the whole map at once,
      before the recurrence.
    - State-to-state `K_ss`: an unmasked 1-D convolution of width k ("same"
      padding) over the previous row's hidden state: every sub-pixel of row
      i - 1 comes before every sub-pixel of row i.
    - The state before row 0 is zero (`h_{-1} = c_{-1} = 0`), and so is the
      state beyond the left and right image borders (zero padding).

    State map m belongs to channel group `channel_groups(h, image_channels)
    [m]`, and so does map m of each gate block, so the element-wise update
    keeps sub-pixel causality. Each output h_i at (i, j) depends on a
    triangle of rows above (k // 2 more columns either side per row up) and
    on row i left of j: this is the paper's Figure 4 (centre).

    The recurrence runs through `pixel_keras.layers.scan.scan` over rows
    (`keras.ops.scan` on JAX, a `tf.while_loop` on TensorFlow). On
    TensorFlow it runs as `batch_splits` (4) independent loops, each over a
    quarter of the batch, which TensorFlow runs side by side: smaller
    per-row ops, and more cores busy (benchmarks README, "Independent loops
    over parts of the batch").

    Under a mixed policy (`mixed_bfloat16`) the products stay in the
    compute dtype while the gate nonlinearities and the cell state run in
    float32 (`pixel_keras.precision.elementwise_dtype`): the cell sums over
    every row above, and on CPU TensorFlow's element-wise kernels run faster
    in float32 than in bfloat16.

    Args:
        units: int, h, the number of state maps (>= `image_channels`).
        kernel_size: odd int, k, width of both convolutions along the row
            (the paper's "k x 1"; 3 there).
        image_channels: int, number of channel groups (1 grayscale, 3 RGB).
        unit_forget_bias: bool; if True the forget gate bias starts at 1
            (as in `keras.layers.ConvLSTM2D`).
        kernel_initializer: initializer for the input-to-state kernel.
        recurrent_initializer: initializer for the state-to-state kernel.
        bias_initializer: initializer for the gate bias.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor `[B, H, W, maps]`, maps grouped like the image
            channels (the output of a masked convolution).

    Returns:
        The hidden states `[B, H, W, units]`.

    Example:

    ```python
    x = MaskedConv2D(16, 7, "A", image_channels=3)(keras.random.normal((2, 8, 8, 3)))
    h = RowLSTM(8, kernel_size=3, image_channels=3)(x)  # [2, 8, 8, 8]
    ```

    Reference:
        - [van den Oord et al., 2016, Pixel Recurrent Neural Networks](
          https://arxiv.org/abs/1601.06759), Section 3.1.
    """

    def __init__(
        self,
        units,
        kernel_size=3,
        image_channels=1,
        unit_forget_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_image_channels(image_channels)
        check_units(units, image_channels)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                "`kernel_size` must be an odd positive int. "
                f"Received: kernel_size={kernel_size!r}"
            )
        self.units = units
        self.kernel_size = kernel_size
        self.image_channels = image_channels
        self.unit_forget_bias = unit_forget_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.input_conv = MaskedConv2D(
            4 * units,
            (1, kernel_size),
            "B",
            image_channels=image_channels,
            output_blocks=4,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="input_conv",
        )

    def build(self, input_shape):
        if len(input_shape) != 4 or None in input_shape[1:]:
            raise ValueError(
                "`RowLSTM` expects inputs of shape [B, H, W, maps] with known "
                f"H, W and maps. Received: input_shape={input_shape}"
            )
        self.input_conv.build(input_shape)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(self.kernel_size, self.units, 4 * self.units),
            initializer=self.recurrent_initializer,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(4 * self.units,),
            initializer=gate_bias_initializer(
                self.bias_initializer, self.units, self.unit_forget_bias
            ),
        )

    def call(self, inputs):
        # Rows first before the input-to-state convolution, which runs along
        # W only (rows never mix), so the transpose moves the input's maps
        # (2h in the PixelRNN models) instead of the 4h gate maps.
        rows = ops.transpose(inputs, (1, 0, 2, 3))  # [H, B, W, maps]
        rows = bias_add(self.input_conv(rows), self.bias)  # [H, B, W, 4h]
        k, units = self.kernel_size, self.units
        width = inputs.shape[2]
        # The 1-D convolution over the row above as one matrix product of
        # its k shifted copies side by side: [B, W, k*h] @ [k*h, 4h].
        kernel = ops.cast(
            ops.reshape(self.recurrent_kernel, (k * units, 4 * units)),
            self.compute_dtype,
        )
        # The nonlinearities and the cell state run in at least float32 (see
        # the class docstring); the products in the compute dtype.
        wide = elementwise_dtype(self.compute_dtype)
        cell = ops.zeros_like(rows[0, :, :, :units], dtype=wide)
        hidden = ops.cast(cell, self.compute_dtype)  # [B, W, h]

        def step(state, row_gates):
            hidden, cell = state
            # "Same" padding; tap t reads column j + t - k // 2.
            padded = ops.pad(hidden, [[0, 0], [k // 2, k // 2], [0, 0]])
            size = (ops.shape(hidden)[0], width, units)
            taps = ops.concatenate(
                [ops.slice(padded, (0, t, 0), size) for t in range(k)], axis=-1
            )  # [B, W, k*h]
            recurrent = ops.matmul(taps, kernel)  # [B, W, 4h]
            pre_activations = ops.cast(row_gates + recurrent, wide)
            hidden, cell = lstm_update(pre_activations, cell)
            hidden = ops.cast(hidden, self.compute_dtype)
            return (hidden, cell), hidden

        _, hidden = scan(step, (hidden, cell), rows, batch_splits=self.batch_splits)
        return ops.transpose(hidden, (1, 0, 2, 3))  # [B, H, W, h]

    # Independent loops over parts of the batch (`scan`'s `batch_splits`;
    # TensorFlow only), see the class docstring. Not a constructor argument:
    # it changes how fast the layer runs, not what it computes.
    batch_splits = 4

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_size": self.kernel_size,
                "image_channels": self.image_channels,
                "unit_forget_bias": self.unit_forget_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "recurrent_initializer": keras.initializers.serialize(
                    self.recurrent_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
