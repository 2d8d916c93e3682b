"""PixelRNN: Row LSTM and Diagonal BiLSTM (van den Oord et al., 2016).

The paper's recurrent models. Like the PixelCNN they factorize an image
into sub-pixels in raster order, channel fastest,

    p(x) = prod_{i, j} p(R_ij | x_<ij) p(G_ij | x_<ij, R_ij) p(B_ij | x_<ij, R_ij, G_ij)

with a K-way softmax per sub-pixel, but their LSTM layers carry state
across the image, so the context is not bounded by a stack of kernels:

- Row LSTM (Section 3.1): a row per step; each layer sees a triangle of
  the rows above (Figure 4, centre).
- Diagonal BiLSTM (Section 3.2): two diagonal sweeps over the skewed map;
  one layer already sees the whole context of its input map (Figure 4,
  right), with one exception in the model, below.

Receptive fields (asserted with exact input gradients in the tests):

- Row LSTM, one layer, first conv f x f, row kernel k: row r - s (s >= 1)
  is seen at columns [c - (s + 1)(k // 2) - f // 2, c + max((s - 1)(k // 2)
  + f // 2, s (k // 2) - 1)]; with f = k = 3 the triangle [c - s - 2, c + s].
  Every further layer widens it by k // 2 columns to the left only: the
  right edge does not move with depth, so the upper-right region beyond
  the triangle stays unseen (with f = k = 3, (r - 1, c + 2) at any depth).
- Diagonal BiLSTM: every earlier sub-pixel but one. The stream at (i, j)
  never holds the last sub-pixel of (i, j) (mask A, then mask B), and the
  right-to-left sweep, shifted down a row, only reads streams of the rows
  above; so the last sub-pixel of (r - 1, W - 1) (the whole pixel for
  grayscale) reaches (r, c) only through the first conv, i.e. when
  c + first_kernel_size // 2 >= W - 1. This holds at any depth; the paper's
  "complete context" claim is exact only up to that sub-pixel.

Architecture (paper, Table 1 / Figure 5):

```
images [B, H, W, C] (int) -> scale to [-1, 1]
7x7 conv, mask A, 2h maps
L x LSTM layer (h state maps) -> 1x1 conv (mask B) h -> 2h, added to the
    layer input (residual=True) or replacing it (residual=False)
ReLU -> 1x1 (mask B) -> output_maps -> ReLU -> 1x1 (mask B) -> C*K maps
reshape -> logits [B, H, W, C, K]
```

Every convolution that reads the image or the stream carries the
channel-group mask (R, then G given R, then B given R and G); the LSTM
state-to-state convolutions read only earlier pixels and are not masked.

Naming: the layers are `pixel_keras.layers.RowLSTM` and
`pixel_keras.layers.DiagonalBiLSTM`. The model is `PixelRNN(cell=...)`, with
`cell="row_lstm"` or `"diagonal_bilstm"`; `RowLSTMPixelRNN` and
`DiagonalBiLSTMPixelRNN` are the same model with the cell fixed (their
configs carry no `cell`). All three are registered for serialization.

NOTE: not implemented: the paper's multi-scale PixelRNN (Section 3.5), its
skip connections from every layer to the output (Section 3.4; residuals
only here). Sampling is cached (O(1) work per sub-pixel): the cache hooks
of `PixelRNN`, below, driven by `pixel_keras.sampling`.
"""

import keras
from keras import ops

import pixel_keras.models.caching as caching
from pixel_keras.layers.diagonal_bilstm import DiagonalBiLSTM
from pixel_keras.layers.masked_conv2d import MaskedConv2D
from pixel_keras.layers.row_lstm import RowLSTM, lstm_update
from pixel_keras.models.base import AutoregressiveImageModel
from pixel_keras.models.pixel_cnn import (
    check_int,
    check_maps,
    image_input,
    output_stack,
    validate_common_args,
)
from pixel_keras.models.registry import register

CELLS = ("row_lstm", "diagonal_bilstm")


def _check_args(
    image_shape,
    num_levels,
    cell,
    hidden_maps,
    num_layers,
    output_maps,
    kernel_size,
    residual,
    first_kernel_size,
):
    """Checks `PixelRNN`'s arguments.

    Returns:
        `(image_shape, kernel_size)`: the shape as a tuple, and the Row
        LSTM's kernel size (3 for None; None for the Diagonal BiLSTM).
    """
    image_shape = validate_common_args(image_shape, num_levels)
    channels = image_shape[-1]
    if cell not in CELLS:
        raise ValueError(f"`cell` must be one of {CELLS}. Received: cell={cell!r}")
    check_maps(channels, hidden_maps=hidden_maps, output_maps=output_maps)
    check_int("num_layers", num_layers, 0)
    if cell == "row_lstm":
        kernel_size = 3 if kernel_size is None else kernel_size
        check_int("kernel_size", kernel_size, 1, "an odd positive int", odd=True)
    elif kernel_size is not None:
        raise ValueError(
            "`kernel_size` applies to cell='row_lstm' only; the Diagonal "
            "BiLSTM's kernels are fixed (1x1 input-to-state, 2x1 "
            f"state-to-state). Received: kernel_size={kernel_size!r}"
        )
    check_int(
        "first_kernel_size", first_kernel_size, 1, "an odd positive int", odd=True
    )
    if not isinstance(residual, bool):
        raise ValueError(f"`residual` must be a bool. Received: residual={residual!r}")
    return image_shape, kernel_size


def _recurrent_stack(
    x, cell, num_layers, hidden_maps, kernel_size, residual, channels, name
):
    """The LSTM layers, each with its 1x1 conv (and residual), on the stream `x`.

    Returns:
        `(the stream [B, H, W, 2h], the (LSTM layer, 1x1 conv) pairs)`.
    """
    recurrent_layers = []
    for i in range(num_layers):
        prefix = f"{name}_layer_{i}"
        if cell == "row_lstm":
            lstm = RowLSTM(
                hidden_maps,
                kernel_size,
                image_channels=channels,
                name=f"{prefix}_row_lstm",
            )
        else:
            lstm = DiagonalBiLSTM(
                hidden_maps,
                image_channels=channels,
                name=f"{prefix}_diagonal_bilstm",
            )
        y = lstm(x)  # [B, H, W, h]
        conv_out = MaskedConv2D(
            2 * hidden_maps,
            1,
            "B",
            image_channels=channels,
            name=f"{prefix}_conv_out",
        )
        recurrent_layers.append((lstm, conv_out))
        y = conv_out(y)  # [B, H, W, 2h]
        x = keras.layers.Add(name=f"{prefix}_add")([x, y]) if residual else y
    return x, recurrent_layers


@keras.saving.register_keras_serializable(package="pixel_keras")
class PixelRNN(AutoregressiveImageModel):
    """PixelRNN with Row LSTM or Diagonal BiLSTM layers.

    Args:
        image_shape: `(height, width, channels)`; channels 1 or 3.
        num_levels: int in [2, 256], values per sub-pixel.
        cell: `"row_lstm"` or `"diagonal_bilstm"`.
        hidden_maps: int, h, the LSTM state maps; the stream has 2h maps.
        num_layers: int >= 0, L, the number of LSTM layers.
        output_maps: int, maps of the output stack's hidden 1x1 conv
            (1024 in the paper for natural images, 32 for MNIST).
        kernel_size: odd int, k, the Row LSTM's kernel width along the row
            (3 when None). Must be None for the Diagonal BiLSTM, whose
            kernels are fixed (1x1 input-to-state, 2x1 state-to-state).
        residual: bool; True adds each LSTM layer's 1x1 output to its input,
            False lets it replace the stream (the paper's ImageNet 64 Row
            LSTM has no residuals).
        first_kernel_size: odd int, the mask-A input conv (7 in the paper).
        name: model name; default: the cell name for the two subclasses,
            `"pixel_rnn"` here.
        **kwargs: `keras.Model` arguments.

    Call arguments:
        images: int tensor `[B, H, W, C]` with values in `[0, K - 1]`.

    Returns:
        Logits `[B, H, W, C, K]`.

    Example:

    ```python
    model = PixelRNN(image_shape=(8, 8, 1), num_levels=17,
                     cell="diagonal_bilstm", hidden_maps=16, num_layers=2,
                     output_maps=32)
    model.compile(optimizer="adam")       # loss: NLL in nats/image
    model.fit(images, images)             # integer images
    model.bits_per_dim(test_images)
    samples = model.sample(16, seed=0)
    model = pixel_keras.zoo.load("row_lstm_cifar", weights=False)  # paper size
    ```

    Reference:
        - [van den Oord et al., 2016, Pixel Recurrent Neural Networks](
          https://arxiv.org/abs/1601.06759)
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=256,
        cell="row_lstm",
        hidden_maps=16,
        num_layers=2,
        output_maps=32,
        kernel_size=None,
        residual=True,
        first_kernel_size=7,
        name="pixel_rnn",
        **kwargs,
    ):
        image_shape, kernel_size = _check_args(
            image_shape,
            num_levels,
            cell,
            hidden_maps,
            num_layers,
            output_maps,
            kernel_size,
            residual,
            first_kernel_size,
        )
        channels = image_shape[-1]

        # === Functional model ===
        images, x, rescaling = image_input(image_shape, num_levels, name)
        conv_in = MaskedConv2D(
            2 * hidden_maps,
            first_kernel_size,
            "A",
            image_channels=channels,
            name=f"{name}_conv_in",
        )
        x = conv_in(x)  # [B, H, W, 2h]
        x, recurrent_layers = _recurrent_stack(
            x, cell, num_layers, hidden_maps, kernel_size, residual, channels, name
        )
        logits, output_convs = output_stack(
            x, image_shape, num_levels, output_maps, name
        )
        super().__init__(inputs=images, outputs=logits, name=name, **kwargs)

        # === Layers the cached sampler reads ===
        self.rescaling = rescaling
        self.conv_in = conv_in
        self.recurrent_layers = recurrent_layers  # (LSTM layer, 1x1 conv) each
        self.output_convs = output_convs

        # === Config ===
        self.image_shape = image_shape
        self.num_levels = num_levels
        self.cell = cell
        self.hidden_maps = hidden_maps
        self.num_layers = num_layers
        self.output_maps = output_maps
        self.kernel_size = kernel_size
        self.residual = residual
        self.first_kernel_size = first_kernel_size

    # ---- cached sampling hooks (see `AutoregressiveImageModel`) --------
    # The mask-A input conv and the 1 x 1 layers are computed at the current
    # pixel (as in `PixelCNN`); each LSTM layer keeps its states, per cell:
    #
    # Row LSTM, per layer, with p = k // 2:
    #     inputs: the layer's input in the current row, `[N, W + 2p, 2h]`
    #         (p zero columns either side; the mask zeroes the taps right of
    #         the centre, so what is there does not matter).
    #     hidden: the hidden states, `[N, H + 1, W + 2p, h]`, row 0 and p
    #         columns either side zero (before row 0, beyond the borders).
    #     cell: the cell states, `[N, H + 1, W, h]`, row 0 zero.
    # At (i, j) the gates are the masked 1 x k input conv over inputs
    # j - p ... j of row i plus the width-k state-to-state conv over hidden
    # row i - 1, columns j - p ... j + p: one LSTM update per pixel and
    # layer, the numbers the row-at-a-time `RowLSTM` computes.
    #
    # Diagonal BiLSTM, per layer:
    #     hidden: left-to-right hidden states `[N, H + 1, W + 1, h]`, row 0
    #         and column 0 zero (above row 0 and left of column 0).
    #     cell: left-to-right cell states `[N, H, W + 1, h]`, column 0 zero.
    #     reverse_gates: the right-to-left input-to-state pre-activations of
    #         the current row, `[N, W, 4h]`.
    #     reverse_above: the right-to-left hidden states of the previous row,
    #         `[N, W, h]` (zeros for row 0), added at every pixel of the row.
    # Left to right, the state at (i, j) is one LSTM update from (i - 1, j)
    # and (i, j - 1): the diagonal sweep of `DiagonalBiLSTM` read in raster
    # order. Right to left, (i, j) depends on (i, j + 1), which comes later,
    # so that direction waits until row i is finished (`finish_row`) and then
    # runs once over the row, right to left, for every layer: O(1) per
    # pixel amortized.
    #
    # The cache: `(image, layers)`, `image` the scaled image padded as the
    # first conv pads it, `layers` one tuple of states per LSTM layer.

    def new_cache(self, canvas, conditions):
        num = ops.shape(canvas)[0]
        image = caching.padded_input(canvas, self.rescaling, self.conv_in.kernel_size)
        new_layer = (
            self._new_row_lstm_cache
            if self.cell == "row_lstm"
            else self._new_diagonal_bilstm_cache
        )
        return image, tuple(new_layer(num, lstm) for lstm, _ in self.recurrent_layers)

    def cached_logits(self, cache, i, j, slice_update=None):
        return caching.stream_logits(
            self,
            cache,
            i,
            j,
            self.recurrent_layers,
            self._layer_step,
            slice_update or ops.slice_update,
        )

    def write_cache(self, cache, value, i, j, c, slice_update=None):
        return caching.write_input(
            cache, value, (i, j, c), self, slice_update or ops.slice_update
        )

    def _layer_step(self, layer, state, x, i, j, slice_update):
        """One LSTM layer and its 1x1 conv at (i, j): `(stream [N, 2h], state)`."""
        lstm, conv_out = layer
        cell_step = (
            self._row_lstm_step
            if self.cell == "row_lstm"
            else self._diagonal_bilstm_step
        )
        hidden, state = cell_step(lstm, state, x, i, j, slice_update)  # [N, h]
        y = conv_out.call_at_pixel(hidden)
        return (x + y if self.residual else y), state

    def finish_row(self, cache, i, slice_update=None):
        if self.cell == "row_lstm":
            return cache
        image, layers = cache
        return image, self._reverse_row(layers, slice_update or ops.slice_update)

    def _new_row_lstm_cache(self, num, lstm):
        p, h = lstm.kernel_size // 2, self.hidden_maps
        height, width = self.image_shape[:2]
        maps = lstm.input_conv.kernel.shape[2]
        return (
            ops.zeros((num, width + 2 * p, maps), "float32"),
            ops.zeros((num, height + 1, width + 2 * p, h), "float32"),
            ops.zeros((num, height + 1, width, h), "float32"),
        )

    def _row_lstm_step(self, lstm, state, x, i, j, slice_update):
        inputs, hidden, cell = state
        k, h = lstm.kernel_size, self.hidden_maps
        num = ops.shape(x)[0]
        p = k // 2
        inputs = slice_update(inputs, [0, j + p, 0], x[:, None, :])
        patch = ops.reshape(
            ops.slice(inputs, [0, j, 0], [num, k, ops.shape(inputs)[-1]]), (num, -1)
        )
        gates = lstm.input_conv.call_at_pixel(patch) + lstm.bias
        above = ops.reshape(ops.slice(hidden, [0, i, j, 0], [num, 1, k, h]), (num, -1))
        gates = gates + ops.matmul(
            above, ops.reshape(lstm.recurrent_kernel, (k * h, -1))
        )
        new_hidden, new_cell = lstm_update(gates, caching.pixel_at(cell, (i, j)))
        hidden = caching.write_pixel(hidden, (i + 1, j + p), new_hidden, slice_update)
        cell = caching.write_pixel(cell, (i + 1, j), new_cell, slice_update)
        return new_hidden, (inputs, hidden, cell)

    def _new_diagonal_bilstm_cache(self, num, lstm):
        h = self.hidden_maps
        height, width = self.image_shape[:2]
        return (
            ops.zeros((num, height + 1, width + 1, h), "float32"),
            ops.zeros((num, height, width + 1, h), "float32"),
            ops.zeros((num, width, 4 * h), "float32"),
            ops.zeros((num, width, h), "float32"),
        )

    def _diagonal_bilstm_step(self, lstm, state, x, i, j, slice_update):
        hidden, cell, reverse_gates, reverse_above = state
        gates = lstm.input_conv.call_at_pixel(x) + lstm.bias
        gates = gates + ops.matmul(
            caching.pixel_at(hidden, (i, j + 1)), lstm.recurrent_kernel[0]
        )  # (i - 1, j)
        gates = gates + ops.matmul(
            caching.pixel_at(hidden, (i + 1, j)), lstm.recurrent_kernel[1]
        )  # (i, j - 1)
        new_hidden, new_cell = lstm_update(gates, caching.pixel_at(cell, (i, j)))
        hidden = caching.write_pixel(hidden, (i + 1, j + 1), new_hidden, slice_update)
        cell = caching.write_pixel(cell, (i, j + 1), new_cell, slice_update)
        reverse = lstm.reverse_input_conv.call_at_pixel(x) + lstm.reverse_bias
        reverse_gates = slice_update(reverse_gates, [0, j, 0], reverse[:, None])
        output = new_hidden + ops.take(reverse_above, j, axis=1)
        return output, (hidden, cell, reverse_gates, reverse_above)

    def _reverse_row(self, layers, slice_update):
        """The right-to-left states of the finished row, for every layer."""
        new_layers = []
        width = self.image_shape[1]
        for (lstm, _), (hidden, cell, reverse_gates, reverse_above) in zip(
            self.recurrent_layers, layers
        ):
            kernel = lstm.reverse_recurrent_kernel
            zeros = ops.zeros_like(reverse_above[:, 0])  # [N, h]

            def body(
                t,
                carry,
                reverse_gates=reverse_gates,
                reverse_above=reverse_above,
                kernel=kernel,
            ):
                right_hidden, right_cell, row = carry
                column = width - 1 - t
                gates = ops.take(reverse_gates, column, axis=1)
                gates = gates + ops.matmul(
                    ops.take(reverse_above, column, axis=1), kernel[0]
                )  # (i - 1, j)
                gates = gates + ops.matmul(right_hidden, kernel[1])  # (i, j + 1)
                new_hidden, new_cell = lstm_update(gates, right_cell)
                row = slice_update(row, [0, column, 0], new_hidden[:, None])
                return new_hidden, new_cell, row

            _, _, row = ops.fori_loop(
                0, width, body, (zeros, zeros, ops.zeros_like(reverse_above))
            )
            new_layers.append((hidden, cell, reverse_gates, row))
        return tuple(new_layers)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_shape": self.image_shape,
            "num_levels": self.num_levels,
            "cell": self.cell,
            "hidden_maps": self.hidden_maps,
            "num_layers": self.num_layers,
            "output_maps": self.output_maps,
            "kernel_size": self.kernel_size,
            "residual": self.residual,
            "first_kernel_size": self.first_kernel_size,
        }


@register("row_lstm")
@keras.saving.register_keras_serializable(package="pixel_keras")
class RowLSTMPixelRNN(PixelRNN):
    """`PixelRNN(cell="row_lstm")`: the Row LSTM model (paper Section 3.1).

    Same arguments as `PixelRNN` without `cell`; `kernel_size` defaults to 3.

    Example:

    ```python
    model = RowLSTMPixelRNN(image_shape=(8, 8, 1), num_levels=17,
                            hidden_maps=16, num_layers=2, output_maps=32)
    ```
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=256,
        hidden_maps=16,
        num_layers=2,
        output_maps=32,
        kernel_size=3,
        residual=True,
        first_kernel_size=7,
        name="row_lstm",
        **kwargs,
    ):
        super().__init__(
            image_shape=image_shape,
            num_levels=num_levels,
            cell="row_lstm",
            hidden_maps=hidden_maps,
            num_layers=num_layers,
            output_maps=output_maps,
            kernel_size=kernel_size,
            residual=residual,
            first_kernel_size=first_kernel_size,
            name=name,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        return config


@register("diagonal_bilstm")
@keras.saving.register_keras_serializable(package="pixel_keras")
class DiagonalBiLSTMPixelRNN(PixelRNN):
    """`PixelRNN(cell="diagonal_bilstm")`: the Diagonal BiLSTM model (§3.2).

    Same arguments as `PixelRNN` without `cell` and `kernel_size`.

    Example:

    ```python
    model = DiagonalBiLSTMPixelRNN(image_shape=(28, 28, 1), num_levels=2,
                                   hidden_maps=16, num_layers=7, output_maps=32)
    ```
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=256,
        hidden_maps=16,
        num_layers=2,
        output_maps=32,
        residual=True,
        first_kernel_size=7,
        name="diagonal_bilstm",
        **kwargs,
    ):
        super().__init__(
            image_shape=image_shape,
            num_levels=num_levels,
            cell="diagonal_bilstm",
            hidden_maps=hidden_maps,
            num_layers=num_layers,
            output_maps=output_maps,
            residual=residual,
            first_kernel_size=first_kernel_size,
            name=name,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        del config["cell"], config["kernel_size"]
        return config
