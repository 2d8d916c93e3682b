"""Masked 2-D convolution for autoregressive image models."""

import keras
import numpy as np
from keras import ops


def channel_groups(num_maps, num_groups):
    """Assigns each of `num_maps` feature maps to one of `num_groups` groups.

    Group of map `i` is `(i * num_groups) // num_maps`: contiguous blocks in
    index order, as equal as possible, the earlier groups never smaller. Every
    masked layer and the output reshape use this same rule, so any map count
    works (it need not divide by the number of image channels). With
    `num_maps == num_groups * K`, map `c * K + k` is in group `c`, which is
    exactly what a reshape of the last axis to `[C, K]` expects.

    Args:
        num_maps: int, number of feature maps.
        num_groups: int, number of groups (image channels, e.g. 3 for RGB).

    Returns:
        int NumPy array of shape `[num_maps]`.
    """
    return (np.arange(num_maps) * num_groups) // num_maps


def build_mask(kernel_size, in_maps, out_maps, mask_type, groups=1, output_blocks=1):
    """Builds the constant causal mask for a `[kh, kw, in, out]` kernel.

    Spatially, a tap is visible when it lies in a row above the centre, or in
    the centre row left of the centre. The centre tap is where channel groups
    decide (here for 3 groups, R=0, G=1, B=2; x = connection kept):

    ```
    spatial (5x5)        centre tap, mask A        centre tap, mask B
    1 1 1 1 1            out\\in  R  G  B          out\\in  R  G  B
    1 1 1 1 1              R     .  .  .             R     x  .  .
    1 1 c 0 0              G     x  .  .             G     x  x  .
    0 0 0 0 0              B     x  x  .             B     x  x  x
    0 0 0 0 0
    ```

    Mask A (first layer) connects input group g to output group g' only when
    g < g'; mask B (later layers) when g <= g'. With one group, mask A drops
    the centre tap altogether and mask B keeps it.

    Args:
        kernel_size: tuple `(kh, kw)` of odd ints.
        in_maps: int, input feature maps.
        out_maps: int, output feature maps.
        mask_type: "A" or "B".
        groups: int, number of channel groups (1 grayscale, 3 RGB).
        output_blocks: int; the output maps are `output_blocks` equal blocks
            (e.g. the four LSTM gates, or the tanh/sigmoid halves of a gated
            unit), each grouped on its own so that map m of every block has
            the group of map m of the state it updates.

    Returns:
        float32 NumPy array of shape `[kh, kw, in_maps, out_maps]`.
    """
    kh, kw = kernel_size
    mask = np.zeros((kh, kw, in_maps, out_maps), dtype="float32")
    ch, cw = kh // 2, kw // 2
    mask[:ch, :, :, :] = 1.0
    mask[ch, :cw, :, :] = 1.0
    in_group = channel_groups(in_maps, groups)[:, None]
    block_groups = channel_groups(out_maps // output_blocks, groups)
    out_group = np.tile(block_groups, output_blocks)[None, :]
    if mask_type == "A":
        centre = in_group < out_group
    else:
        centre = in_group <= out_group
    mask[ch, cw, :, :] = centre.astype("float32")
    return mask


def bias_add(x, bias):
    """`x + bias` over the last axis, with a cheap gradient for the bias.

    The gradient of a broadcast add reduces the upstream gradient over every
    leading axis; on CPU TensorFlow's reduction over `[B*H*W, maps]` runs
    about 7x slower than the same sum written as a matrix product
    `ones[1, B*H*W] @ upstream[B*H*W, maps]`, which is what this uses (same
    value; profiled on the 256-way output convolution, the single largest
    reduction of a training step; in bfloat16 one such product per image,
    see `_sum_over_positions`).
    """
    # A tensor, not a variable (TensorFlow's custom gradients would then ask
    # for the variables' gradients separately), in the compute dtype.
    return _bias_add(x, ops.cast(bias, x.dtype))


def pointwise(x, kernel):
    """`x @ kernel` over the last axis of a `[B, H, W, maps]` map.

    Computed as a 1 x 1 convolution: on CPU, oneDNN's convolution (forward
    and backward) took 0-14% less time than TensorFlow's reshape + MatMul on
    the PixelCNN preset's shapes (benchmarks README, "1 x 1 layers as
    convolutions"). The kernel's gradient is a matrix product,
    `x^T @ upstream` over the `B*H*W` positions (in bfloat16 one per image,
    see `_sum_over_positions`), which took 13-54% less time
    than the convolution's own filter gradient (`Conv2DBackpropFilter`) on
    those shapes (benchmarks README, "The 1 x 1 kernels' gradient as a
    matrix product").

    Args:
        x: `[B, H, W, in]`.
        kernel: `[in, out]`, or a 1 x 1 convolution kernel `[1, 1, in, out]`.

    Returns:
        `[B, H, W, out]`.
    """
    return _pointwise(x, ops.reshape(kernel, (1, 1, *kernel.shape[-2:])))


@ops.custom_gradient
def _pointwise(x, kernel):
    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        # The input's gradient: the convolution with the transposed kernel.
        x_grad = ops.conv(upstream, ops.transpose(kernel, (0, 1, 3, 2)))
        kernel_grad = _sum_over_positions(x, upstream)
        return x_grad, ops.reshape(kernel_grad, ops.shape(kernel))

    return ops.conv(x, kernel, padding="valid"), grad


@ops.custom_gradient
def _bias_add(x, bias):
    maps = ops.shape(bias)[-1]

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return upstream, ops.reshape(_sum_over_positions(None, upstream), (maps,))

    return x + bias, grad


def _sum_over_positions(x, upstream):
    """`sum_p x[p]^T @ upstream[p]` over every position `p` of the leading axes.

    The gradient of `x @ kernel` over the last axis: `[in, out]` from `x`
    `[..., in]` and `upstream` `[..., out]`; with `x=None` (a column of ones)
    the gradient of a bias, `[1, out]`. Written as matrix products, not
    reductions (see `bias_add`). In bfloat16, with the axes after the first
    known, it is one product per index of the first axis (per image; per row
    for the Row LSTM's rows-first input), summed in float32: on CPU oneDNN's
    bfloat16 product over all `B*H*W` positions at once, with its huge inner
    dimension, took 13-25% (kernels) and 25-35% (biases) longer than these
    batched products on the models' shapes; in float32 the two forms are
    even, so float32 keeps the single product (benchmarks README, "The kernel
    and bias gradients per image").
    """
    out_maps = upstream.shape[-1]
    rest = upstream.shape[1:-1]
    dtype = keras.backend.standardize_dtype(upstream.dtype)
    if dtype == "bfloat16" and len(rest) and all(d is not None for d in rest):
        rows = int(np.prod(rest))
        upstream = ops.reshape(upstream, (-1, rows, out_maps))
        if x is None:
            left = ops.ones((1, 1, rows), dtype=dtype)
        else:
            left = ops.transpose(ops.reshape(x, (-1, rows, x.shape[-1])), (0, 2, 1))
        products = ops.cast(ops.matmul(left, upstream), "float32")
        return ops.cast(ops.sum(products, axis=0), dtype)
    upstream = ops.reshape(upstream, (-1, out_maps))  # [B*H*W, out]
    if x is None:
        left = ops.ones((1, ops.shape(upstream)[0]), dtype=upstream.dtype)
    else:
        left = ops.transpose(ops.reshape(x, (-1, x.shape[-1])))
    return ops.matmul(left, upstream)


@keras.saving.register_keras_serializable(package="pixel_keras")
class MaskedConv2D(keras.layers.Layer):
    """2-D convolution whose kernel only sees earlier pixels and sub-pixels.

    The layer multiplies a constant mask into its kernel on every call, so it
    is causal from initialization (no constraint, no variable assignment): the
    output at pixel (i, j) depends on input rows above i, on row i left of j,
    and, at (i, j) itself, only on the channel groups the mask type allows.
    Rows below the centre are all zero after masking, so `call` skips them:
    a k x k layer costs (k // 2 + 1) x k taps (a 1 x k one, k // 2 + 1),
    with the outputs of the full "same" convolution.

    Sub-pixel autoregression (R, then G given R, then B given R and G) splits
    the input and output feature maps into `image_channels` contiguous groups
    by index (see `channel_groups`). Mask "A" lets output group g see input
    groups < g at the centre tap (first layer, reading the image itself);
    mask "B" lets it see groups <= g (every later layer).

    Args:
        filters: int, number of output feature maps.
        kernel_size: int or tuple of two odd ints (1x1 allowed).
        mask_type: "A" or "B".
        image_channels: int, number of channel groups (1 grayscale, 3 RGB).
            Both `filters` and the input maps must be at least this many.
        output_blocks: int, the output maps form this many equal blocks,
            each grouped like a `filters // output_blocks` map state (4 for
            LSTM gates [o, f, i, g], 2 for gated tanh/sigmoid units).
        use_bias: bool, whether to add a bias.
        kernel_initializer: initializer for the kernel.
        bias_initializer: initializer for the bias.
        kernel_regularizer: optional regularizer for the kernel.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor `[B, H, W, in_maps]`.

    Returns:
        Tensor `[B, H, W, filters]` (same spatial size, "same" padding).

    Example:

    ```python
    x = keras.random.normal((2, 8, 8, 3))
    y = MaskedConv2D(12, 7, mask_type="A", image_channels=3)(x)  # [2, 8, 8, 12]
    ```

    Reference:
        - [van den Oord et al., 2016, Pixel Recurrent Neural Networks](
          https://arxiv.org/abs/1601.06759), Figure 2 and Section 3.4.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        mask_type="B",
        image_channels=1,
        output_blocks=1,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        kernel_size = tuple(kernel_size)
        if (
            len(kernel_size) != 2
            or not all(isinstance(k, int) for k in kernel_size)
            or any(k < 1 or k % 2 == 0 for k in kernel_size)
        ):
            raise ValueError(
                "`kernel_size` must be an odd positive int or a tuple of two "
                f"odd positive ints. Received: kernel_size={kernel_size!r}"
            )
        if mask_type not in ("A", "B"):
            raise ValueError(
                "`mask_type` must be one of {'A', 'B'}. "
                f"Received: mask_type={mask_type!r}"
            )
        if not isinstance(image_channels, int) or image_channels < 1:
            raise ValueError(
                "`image_channels` must be a positive int. "
                f"Received: image_channels={image_channels!r}"
            )
        if not isinstance(output_blocks, int) or output_blocks < 1:
            raise ValueError(
                "`output_blocks` must be a positive int. "
                f"Received: output_blocks={output_blocks!r}"
            )
        if (
            not isinstance(filters, int)
            or filters % output_blocks
            or filters // output_blocks < image_channels
        ):
            raise ValueError(
                "`filters` must be an int, a multiple of `output_blocks`, with "
                "at least `image_channels` maps per block so that every channel "
                f"group has a map. Received: filters={filters!r}, "
                f"output_blocks={output_blocks}, image_channels={image_channels}"
            )
        self.filters = filters
        self.kernel_size = kernel_size
        self.mask_type = mask_type
        self.image_channels = image_channels
        self.output_blocks = output_blocks
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        in_maps = input_shape[-1]
        if len(input_shape) != 4 or in_maps is None:
            raise ValueError(
                "`MaskedConv2D` expects inputs of shape [B, H, W, maps] with a "
                f"known number of maps. Received: input_shape={input_shape}"
            )
        if in_maps < self.image_channels:
            raise ValueError(
                "The input must have at least `image_channels` maps. "
                f"Received: input maps={in_maps}, "
                f"image_channels={self.image_channels}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, in_maps, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.filters,), initializer=self.bias_initializer
            )
        else:
            self.bias = None
        # A constant, not a variable: it is never trained and never saved.
        self.mask = build_mask(
            self.kernel_size,
            in_maps,
            self.filters,
            self.mask_type,
            self.image_channels,
            self.output_blocks,
        )

    def masked_kernel(self):
        """The kernel times the mask: what `call` convolves with."""
        return self.kernel * ops.cast(self.mask, self.kernel.dtype)

    def call_at_pixel(self, patch):
        """The output at one pixel from its flattened input neighbourhood.

        Args:
            patch: `[N, kh * kw * in]`, the `kh x kw` input patch centred on
                the pixel (as "same" padding pads it), row-major, maps last;
                `[N, in]` for a 1 x 1 convolution.

        Returns:
            `[N, filters]`, `call`'s output at that pixel (the cached
            samplers compute one pixel at a time with it).
        """
        matrix = ops.reshape(self.masked_kernel(), (-1, self.filters))
        outputs = ops.matmul(patch, matrix)
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs

    def call(self, inputs):
        kernel = self.masked_kernel()
        kh, kw = self.kernel_size
        if (kh, kw) == (1, 1):
            outputs = pointwise(inputs, kernel)
        else:
            # The mask zeroes every row below the centre (and, in a 1 x k
            # kernel, every column right of it): convolve with the part it
            # keeps, padded so that the output is "same"-aligned. Same
            # numbers, (kh - 1) / 2 fewer rows of products: a 3 x 3 kernel
            # costs 2 x 3 taps, a 7 x 7 one 4 x 7.
            ch, cw = kh // 2, kw // 2
            if kh > 1:
                kernel = kernel[: ch + 1]
                padding = [[0, 0], [ch, 0], [cw, cw], [0, 0]]
            else:
                kernel = kernel[:, : cw + 1]
                padding = [[0, 0], [0, 0], [cw, 0], [0, 0]]
            outputs = ops.conv(ops.pad(inputs, padding), kernel, padding="valid")
        if self.use_bias:
            outputs = bias_add(outputs, self.bias)
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "mask_type": self.mask_type,
                "image_channels": self.image_channels,
                "output_blocks": self.output_blocks,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
            }
        )
        return config
