"""Diagonal BiLSTM layer (van den Oord et al., 2016, Section 3.2) and the skew."""

import keras
from keras import ops

from pixel_keras.layers.masked_conv2d import MaskedConv2D, bias_add
from pixel_keras.layers.row_lstm import (
    check_image_channels,
    check_units,
    gate_bias_initializer,
    lstm_update,
)
from pixel_keras.layers.scan import scan
from pixel_keras.layers.shifting import crop, shift
from pixel_keras.precision import use_fused_kernels


def skew(x):
    """Shifts row r of a map right by r: `[B, H, W, D]` -> `[B, H, W+H-1, D]`.

    Each diagonal of the image becomes a column, so a convolution over the
    previous column reaches the pixel above and the pixel to the left:

    ```
    image (H=3, W=4)          skewed (3 x 6), 0 = zero padding
    a b c d                   a b c d 0 0
    e f g h          ->       0 e f g h 0
    i j k l                   0 0 i j k l
    ```

    `skewed[b, r, c + r] == x[b, r, c]`; all other entries are zero. Built
    from a pad and two reshapes (no gather): after padding each row with H
    zeros, rows of length W+H laid end to end and cut into rows of length
    W+H-1 start one place further right each time.

    Args:
        x: tensor `[B, H, W, D]` with static H, W and D.

    Returns:
        Tensor `[B, H, W + H - 1, D]`.
    """
    _, height, width, maps = x.shape
    x = ops.pad(x, [[0, 0], [0, 0], [0, height], [0, 0]])  # [B, H, W+H, D]
    x = ops.reshape(x, (-1, height * (width + height), maps))
    x = crop(x, height * (width + height - 1), axis=1)
    return ops.reshape(x, (-1, height, width + height - 1, maps))  # [B, H, W+H-1, D]


def unskew(x, width):
    """Inverse of `skew`: `[B, H, W+H-1, D]` -> `[B, H, W, D]`.

    `unskew(x, W)[b, r, c] == x[b, r, c + r]`; the zero padding is dropped.

    Args:
        x: tensor `[B, H, W + H - 1, D]` with static H, W + H - 1 and D.
        width: int, W, the width of the unskewed map.

    Returns:
        Tensor `[B, H, W, D]`.
    """
    _, height, skewed_width, maps = x.shape
    if skewed_width != width + height - 1:
        raise ValueError(
            "`unskew` expects a skewed map of width `width + height - 1`. "
            f"Received: shape={tuple(x.shape)}, width={width}"
        )
    x = ops.reshape(x, (-1, height * skewed_width, maps))
    x = ops.pad(x, [[0, 0], [0, height], [0, 0]])  # [B, H*(W+H), D]
    x = ops.reshape(x, (-1, height, width + height, maps))  # [B, H, W+H, D]
    return crop(x, width, axis=2)  # [B, H, W, D]


@keras.saving.register_keras_serializable(package="pixel_keras")
class DiagonalBiLSTM(keras.layers.Layer):
    """Diagonal BiLSTM: two LSTMs sweeping the image along its diagonals.

    The left-to-right direction gives pixel (r, c) a state that depends on
    the states of (r - 1, c) above and (r, c - 1) to the left. Skewing the
    map (see `skew`) turns each diagonal into a column, so one step of the
    recurrence updates a whole column of the skewed map:

    ```
    gates = skew(K_is (*) x + b)                       # [B, H, W+H-1, 4h]
    for each column j (`scan`):
        [o, f, i, g] = gates[:, :, j] + K_ss (*) h[:, :, j-1]
        c_j = sigmoid(f) * c_{j-1} + sigmoid(i) * tanh(g)
        h_j = sigmoid(o) * tanh(c_j)
    h = unskew(h)                                      # [B, H, W, h]
    ```

    - Input-to-state `K_is`: a 1 x 1 convolution with mask B and channel
      groups (`output_blocks=4`, one block per gate), computed for the whole
      map before the skew.
    - State-to-state `K_ss`: an unmasked 2 x 1 convolution over the previous
      column of the skewed state, rows r - 1 and r: pixels (r - 1, c) and
      (r, c - 1), both earlier than (r, c) in every sub-pixel.
    - The state above row 0 and left of column 0 is zero. Positions of the
      skewed map outside the image get zero pre-activations (the bias is
      added before the skew), so their state stays exactly zero.

    The right-to-left direction mirrors the input along the width, runs the
    same computation with its own weights and mirrors the result back; that
    state at (r, c) depends on (r, c + 1), so it is shifted down one row
    (row 0 gets zeros) before it is added to the left-to-right state. Both
    directions advance in the same `scan` (W + H - 1 steps). Under a mixed
    policy the recurrence's state (hidden and cell) is kept in the compute
    dtype: float32 cells (as `RowLSTM` keeps) measured no faster here, the
    casts costing what TensorFlow's faster float32 element-wise kernels save
    at 32 maps. In training on TensorFlow the update itself is computed in
    float32 inside XLA-fused kernels (`pixel_keras._tf_fused`).

    Receptive field: output (r, c) depends on the input map at every
    position of the rows above (left-to-right: columns <= c; shifted
    right-to-left: columns >= c) and of row r up to c, so one layer has the
    complete context over its input (paper Figure 4, right). In a model the
    input map at (i, j) never holds the last sub-pixel of pixel (i, j)
    itself (mask A first), so the last sub-pixel of (r - 1, W - 1) reaches
    (r, c) only through the first convolution (when c + first_kernel_size
    // 2 >= W - 1), at any depth; see `pixel_keras.models.pixel_rnn`.

    Args:
        units: int, h, the number of state maps (>= `image_channels`).
        image_channels: int, number of channel groups (1 grayscale, 3 RGB).
        unit_forget_bias: bool; if True the forget gate bias starts at 1.
        kernel_initializer: initializer for the input-to-state kernels.
        recurrent_initializer: initializer for the state-to-state kernels.
        bias_initializer: initializer for the gate biases.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor `[B, H, W, maps]`, maps grouped like the image
            channels (the output of a masked convolution).
        training: bool or None; `True` under a 16-bit policy on TensorFlow
            runs the LSTM update as XLA-fused kernels (the same numbers to
            rounding, faster to train).

    Returns:
        The summed hidden states `[B, H, W, units]`.

    Example:

    ```python
    x = MaskedConv2D(16, 7, "A", image_channels=3)(keras.random.normal((2, 8, 8, 3)))
    h = DiagonalBiLSTM(8, image_channels=3)(x)  # [2, 8, 8, 8]
    ```

    Reference:
        - [van den Oord et al., 2016, Pixel Recurrent Neural Networks](
          https://arxiv.org/abs/1601.06759), Section 3.2 and Figure 3.
    """

    def __init__(
        self,
        units,
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
        self.units = units
        self.image_channels = image_channels
        self.unit_forget_bias = unit_forget_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.input_conv = self._input_conv("input_conv")
        self.reverse_input_conv = self._input_conv("reverse_input_conv")

    def _input_conv(self, name):
        return MaskedConv2D(
            4 * self.units,
            1,
            "B",
            image_channels=self.image_channels,
            output_blocks=4,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        if len(input_shape) != 4 or None in input_shape[1:]:
            raise ValueError(
                "`DiagonalBiLSTM` expects inputs of shape [B, H, W, maps] with "
                f"known H, W and maps. Received: input_shape={input_shape}"
            )
        self.input_conv.build(input_shape)
        self.reverse_input_conv.build(input_shape)
        bias_initializer = gate_bias_initializer(
            self.bias_initializer, self.units, self.unit_forget_bias
        )
        # Tap 0 reads row r - 1 of the previous column, tap 1 row r.
        kernel_shape = (2, self.units, 4 * self.units)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=kernel_shape,
            initializer=self.recurrent_initializer,
        )
        self.reverse_recurrent_kernel = self.add_weight(
            name="reverse_recurrent_kernel",
            shape=kernel_shape,
            initializer=self.recurrent_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(4 * self.units,), initializer=bias_initializer
        )
        self.reverse_bias = self.add_weight(
            name="reverse_bias", shape=(4 * self.units,), initializer=bias_initializer
        )

    def call(self, inputs, training=None):
        width = inputs.shape[2]
        mirrored = ops.flip(inputs, axis=2)
        gates = skew(bias_add(self.input_conv(inputs), self.bias))  # [B, H, W+H-1, 4h]
        reverse_gates = skew(
            bias_add(self.reverse_input_conv(mirrored), self.reverse_bias)
        )
        columns = (
            ops.transpose(gates, (2, 0, 1, 3)),  # [W+H-1, B, H, 4h]
            ops.transpose(reverse_gates, (2, 0, 1, 3)),
        )
        zeros = ops.zeros_like(columns[0][0, :, :, : self.units])  # [B, H, h]
        # The 2 x 1 convolution over the previous column as one matmul: rows
        # r - 1 and r side by side, [B, H, 2h] @ [2h, 4h] (tap 0 first).
        kernels = tuple(
            ops.reshape(kernel, (2 * self.units, 4 * self.units))
            for kernel in (self.recurrent_kernel, self.reverse_recurrent_kernel)
        )

        # In bfloat16 training on TensorFlow: the sum, the gates and the cell
        # update in float32 inside one XLA-compiled kernel (and the gradient
        # in another), rounded back to the compute dtype. Not for the Row
        # LSTM, whose gates already run in float32: there it measured
        # 0.96-1.01x (benchmarks README).
        fused = None
        if use_fused_kernels(training, self.compute_dtype):
            from pixel_keras import _tf_fused

            fused = _tf_fused.lstm_update

        def step(states, column_gates):
            new_states = []
            for (hidden, cell), column, kernel in zip(states, column_gates, kernels):
                above = shift(hidden, axis=1)  # row r - 1
                taps = ops.concatenate([above, hidden], axis=-1)  # [B, H, 2h]
                recurrent = ops.matmul(taps, kernel)  # [B, H, 4h]
                if fused is not None:
                    new_states.append(
                        fused(column, recurrent, cell, self.compute_dtype)
                    )
                else:
                    new_states.append(lstm_update(column + recurrent, cell))
            new_states = tuple(new_states)
            return new_states, tuple(hidden for hidden, _ in new_states)

        init = ((zeros, zeros), (zeros, zeros))
        _, (hidden, reverse_hidden) = scan(step, init, columns)
        hidden = unskew(ops.transpose(hidden, (1, 2, 0, 3)), width)  # [B, H, W, h]
        reverse_hidden = unskew(ops.transpose(reverse_hidden, (1, 2, 0, 3)), width)
        reverse_hidden = ops.flip(reverse_hidden, axis=2)
        # Shift down one row: row r sees the right-to-left state of row r - 1.
        reverse_hidden = shift(reverse_hidden, axis=1)  # [B, H, W, h]
        return hidden + reverse_hidden

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
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
