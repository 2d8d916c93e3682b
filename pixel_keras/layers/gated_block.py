"""Gated PixelCNN block: a vertical and a horizontal stack, no blind spot.

Van den Oord et al. (2016b) split the masked n x n convolution of PixelCNN in
two stacks so that the receptive field grows without a blind spot:

- the vertical stack sees whole rows above the current pixel;
- the horizontal stack sees the current row left of the current pixel, and
  receives the vertical stack's features (never the other way round).

With k = n // 2 the vertical stack is a (k + 1) x n convolution of its input,
padded with k zero rows on top and k zero columns each side ("valid" after
that), so output row i covers input rows i - k ... i, the current row
*included*. Its pre-activation then goes to the horizontal stack shifted down
by one row, so the horizontal stack at row i only ever gets rows <= i - 1:

```
vertical conv, n = 5 (k = 2)        shift down by one row, 1x1, into the
kernel 3 x 5, output row i:         horizontal stack at (i, j) of layer 1:

          j-2 j-1  j  j+1 j+2                 j-2 j-1  j  j+1 j+2
   i-2     v   v   v   v   v          i-3      v   v   v   v   v
   i-1     v   v   v   v   v          i-2      v   v   v   v   v
   i       v   v   v   v   v          i-1      v   v   v   v   v
                                      i        h   h   c   .   .
```

By induction every vertical output at row i depends on image rows <= i only
(each layer reads rows <= i of a map that depends on rows <= i); it is used
solely through the shift, so nothing in the current row or below reaches the
horizontal stack from above. This holds in the first layer too, which reads
the image itself.

The horizontal stack is a 1 x (k + 1) convolution: k taps to the left and the
centre tap c, padded with k zero columns on the left. Only the centre tap sees
the current pixel, so only it carries the channel-group mask: built by
`build_mask` for a (1, n) kernel and cut to its left half, it is mask "A" in
the first layer (sub-pixel g sees the image's groups < g) and mask "B" after
(groups <= g). We do not use a `MaskedConv2D` with a 1 x n kernel: it would
compute the same function, but carry k always-zero taps as weights.

Each stack computes 2p maps and gates them, y = tanh(a) * sigmoid(b), with a
and b the two halves; the centre tap is masked with `output_blocks=2`, so map
m of each half has the channel group of map m of y. The 1 x 1 convolution
that follows in the horizontal stack (residual branch and skip output)
carries mask "B": it mixes maps of the same pixel. The 1 x 1 convolution
from the vertical to the horizontal stack needs no mask: after the shift,
its input only holds rows above.

Conditioning (Section 2.3 of the paper) adds, inside every gate of both
stacks, V h for a vector h (a one-hot class, an embedding, ...) and a
1 x 1 convolution of a spatial map s (unmasked: s is not part of the image).
"""

import keras
from keras import ops

from pixel_keras.layers.masked_conv2d import bias_add, build_mask, pointwise
from pixel_keras.layers.shifting import shift
from pixel_keras.precision import elementwise_dtype, use_fused_kernels


@keras.saving.register_keras_serializable(package="pixel_keras")
class GatedBlock(keras.layers.Layer):
    """One layer of the Gated PixelCNN: vertical and horizontal gated stacks.

    The vertical stack (a (k + 1) x n convolution, k = n // 2, see the module
    docstring) sees rows above the current pixel; the horizontal stack (a
    1 x (k + 1) convolution whose centre tap is masked by channel groups)
    sees the current row to the left and, through a shift down by one row
    and a 1 x 1 convolution, the vertical stack. Both stacks are gated:

        y = tanh(W_f * x + V_f h + U_f s) * sigmoid(W_g * x + V_g h + U_g s)

    where h is an optional condition vector and s an optional condition map.
    The horizontal stack ends with a masked 1 x 1 convolution to 2p maps: p
    added to its input (the residual, unless `residual=False`) and p for the
    skip output.

    Under a mixed dtype policy the convolutions run in the compute dtype and
    the gate (tanh, sigmoid and their product) in float32
    (`pixel_keras.precision.elementwise_dtype`). In training under such a
    policy on TensorFlow the gate and its gradient are each one XLA-compiled
    element-wise kernel (`pixel_keras._tf_fused`); the rest of the layer is
    not compiled.

    The vertical pre-activation fed to the horizontal stack already includes
    the condition terms (a choice: the paper draws no conditioning in its
    Figure 2), so every weight of the last block receives a gradient.

    Args:
        filters: int, p; each stack has p maps (2p before the gate).
        kernel_size: odd int n >= 3; the block sees an n x n neighbourhood
            (rows above and the current row to the left).
        mask_type: "A" for the first layer (it reads the image: sub-pixel g
            must not see groups >= g of its own pixel), "B" after.
        image_channels: int, channel groups (1 grayscale, 3 RGB); `filters`
            must be at least this many.
        residual: bool, add the horizontal input to the horizontal output
            (needs `filters` input maps; False for the first layer).
        kernel_initializer: initializer for every kernel.
        bias_initializer: initializer for the biases.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        vertical: float tensor `[B, H, W, v_in]`, the vertical stack input
            (the scaled image in the first layer).
        horizontal: float tensor `[B, H, W, h_in]`, the horizontal stack
            input (the same scaled image in the first layer).
        condition: optional float tensor `[B, D]`, the vector h.
        condition_map: optional float tensor `[B, H, W, S]`, the map s.
        Conditions given on the first call must be given on every call.
        training: bool or None; `True` under a 16-bit policy on
            TensorFlow runs the gates as XLA-fused kernels (the same numbers
            to rounding, faster to train), anything else as plain ops.

    Returns:
        Tuple `(vertical, horizontal, skip)`, each `[B, H, W, filters]`.

    Example:

    ```python
    x = keras.random.normal((2, 8, 8, 3))
    v, h, skip = GatedBlock(16, 5, "A", image_channels=3, residual=False)(x, x)
    v, h, s2 = GatedBlock(16, 5, "B", image_channels=3)(v, h)
    ```

    Reference:
        - [van den Oord et al., 2016, Conditional Image Generation with
          PixelCNN Decoders](https://arxiv.org/abs/1606.05328), Figure 2,
          equations (2) and (4).
    """

    def __init__(
        self,
        filters,
        kernel_size=5,
        mask_type="B",
        image_channels=1,
        residual=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (
            not isinstance(kernel_size, int)
            or isinstance(kernel_size, bool)
            or kernel_size < 3
            or kernel_size % 2 == 0
        ):
            raise ValueError(
                "`kernel_size` must be an odd int >= 3. "
                f"Received: kernel_size={kernel_size!r}"
            )
        if mask_type not in ("A", "B"):
            raise ValueError(
                "`mask_type` must be one of {'A', 'B'}. "
                f"Received: mask_type={mask_type!r}"
            )
        if (
            not isinstance(image_channels, int)
            or isinstance(image_channels, bool)
            or image_channels < 1
        ):
            raise ValueError(
                "`image_channels` must be a positive int. "
                f"Received: image_channels={image_channels!r}"
            )
        if (
            not isinstance(filters, int)
            or isinstance(filters, bool)
            or filters < image_channels
        ):
            raise ValueError(
                "`filters` must be an int >= `image_channels` so that every "
                f"channel group has a map. Received: filters={filters!r}, "
                f"image_channels={image_channels}"
            )
        if not isinstance(residual, bool):
            raise ValueError(
                f"`residual` must be a bool. Received: residual={residual!r}"
            )
        self.filters = filters
        self.kernel_size = kernel_size
        self.mask_type = mask_type
        self.image_channels = image_channels
        self.residual = residual
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _kernel(self, name, shape):
        return self.add_weight(
            name=name, shape=shape, initializer=self.kernel_initializer
        )

    def _bias(self, name, size):
        return self.add_weight(
            name=name, shape=(size,), initializer=self.bias_initializer
        )

    def build(
        self,
        vertical_shape,
        horizontal_shape,
        condition_shape=None,
        condition_map_shape=None,
    ):
        for arg, shape in (
            ("vertical", vertical_shape),
            ("horizontal", horizontal_shape),
        ):
            if len(shape) != 4 or shape[-1] is None:
                raise ValueError(
                    f"`GatedBlock` expects `{arg}` of shape [B, H, W, maps] with "
                    f"a known number of maps. Received: {arg}.shape={shape}"
                )
        if tuple(vertical_shape[1:3]) != tuple(horizontal_shape[1:3]):
            raise ValueError(
                "`vertical` and `horizontal` must have the same height and width. "
                f"Received: vertical.shape={vertical_shape}, "
                f"horizontal.shape={horizontal_shape}"
            )
        v_in, h_in = vertical_shape[-1], horizontal_shape[-1]
        if h_in < self.image_channels:
            raise ValueError(
                "The horizontal input must have at least `image_channels` maps. "
                f"Received: horizontal maps={h_in}, "
                f"image_channels={self.image_channels}"
            )
        if self.residual and h_in != self.filters:
            raise ValueError(
                "With `residual=True` the horizontal input must have `filters` "
                f"maps. Received: horizontal maps={h_in}, filters={self.filters}"
            )
        if condition_shape is not None and (
            len(condition_shape) != 2 or condition_shape[-1] is None
        ):
            raise ValueError(
                "`condition` must have shape [B, D] with a known D. "
                f"Received: condition.shape={condition_shape}"
            )
        if condition_map_shape is not None and (
            len(condition_map_shape) != 4 or condition_map_shape[-1] is None
        ):
            raise ValueError(
                "`condition_map` must have shape [B, H, W, S] with a known S. "
                f"Received: condition_map.shape={condition_map_shape}"
            )
        p, n = self.filters, self.kernel_size
        k = n // 2
        groups = self.image_channels
        # Vertical stack: (k + 1) x n, no channel mask (rows above only, once
        # shifted); its 2p pre-activation also feeds the horizontal stack.
        self.vertical_kernel = self._kernel("vertical_kernel", (k + 1, n, v_in, 2 * p))
        self.vertical_bias = self._bias("vertical_bias", 2 * p)
        self.vertical_to_horizontal_kernel = self._kernel(
            "vertical_to_horizontal_kernel", (2 * p, 2 * p)
        )
        # Horizontal stack: 1 x (k + 1), the left half (centre included) of
        # the causal (1, n) mask:  [1 1 ... 1 c]  with c by channel groups.
        self.horizontal_kernel = self._kernel(
            "horizontal_kernel", (1, k + 1, h_in, 2 * p)
        )
        self.horizontal_bias = self._bias("horizontal_bias", 2 * p)
        self.horizontal_mask = build_mask(
            (1, n), h_in, 2 * p, self.mask_type, groups, output_blocks=2
        )[:, : k + 1]
        # One 1 x 1 convolution inside a pixel, p -> 2p: the residual branch
        # and the skip output, each grouped like the state; mask B (group g
        # sees groups <= g). In the last block of a model only the skip half
        # is used (the other half gets zero gradients, not none).
        self.output_kernel = self._kernel("output_kernel", (p, 2 * p))
        self.output_bias = self._bias("output_bias", 2 * p)
        self.output_mask = build_mask((1, 1), p, 2 * p, "B", groups, output_blocks=2)[
            0, 0
        ]
        # Conditioning, no bias (the gates have theirs): V h and U s.
        self._has_condition = condition_shape is not None
        self._has_condition_map = condition_map_shape is not None
        if self._has_condition:
            dim = condition_shape[-1]
            self.vertical_condition_kernel = self._kernel(
                "vertical_condition_kernel", (dim, 2 * p)
            )
            self.horizontal_condition_kernel = self._kernel(
                "horizontal_condition_kernel", (dim, 2 * p)
            )
        if self._has_condition_map:
            maps = condition_map_shape[-1]
            self.vertical_condition_map_kernel = self._kernel(
                "vertical_condition_map_kernel", (maps, 2 * p)
            )
            self.horizontal_condition_map_kernel = self._kernel(
                "horizontal_condition_map_kernel", (maps, 2 * p)
            )

    def gate(self, x, training=False):
        """tanh(first half) * sigmoid(second half), `[.., 2p]` -> `[.., p]`.

        In training under a 16-bit policy on TensorFlow
        (`pixel_keras.precision.use_fused_kernels`) the chain and its
        gradient are two XLA-compiled element-wise kernels
        (`pixel_keras._tf_fused.gate`, the same numbers to rounding).
        """
        if use_fused_kernels(training, x.dtype):
            from pixel_keras import _tf_fused

            return _tf_fused.gate(x)
        # `ops.split`, not slicing: the gradient of a split is a concatenation,
        # while TensorFlow's strided-slice gradient (zeros + scatter) was the
        # largest single cost of a Gated PixelCNN training step on CPU.
        # In float32 under a mixed policy (`elementwise_dtype`): the faster
        # kernels outweigh the two casts (a Gated PixelCNN training step
        # 1.02-1.03x faster, benchmarks README).
        a, b = ops.split(ops.cast(x, elementwise_dtype(x.dtype)), 2, axis=-1)
        return ops.cast(ops.tanh(a) * ops.sigmoid(b), x.dtype)

    def call(
        self, vertical, horizontal, condition=None, condition_map=None, training=None
    ):
        for arg, given, built in (
            ("condition", condition, self._has_condition),
            ("condition_map", condition_map, self._has_condition_map),
        ):
            if (given is not None) != built:
                raise ValueError(
                    f"`{arg}` must be given on every call or on none: this "
                    f"layer was built {'with' if built else 'without'} it."
                )
        k = self.kernel_size // 2

        # Vertical stack: pad k rows on top and k columns each side; output
        # row i covers input rows i - k ... i.
        v = ops.pad(vertical, [[0, 0], [k, 0], [k, k], [0, 0]])
        v = ops.conv(v, self.vertical_kernel, padding="valid")  # [B, H, W, 2p]
        v = bias_add(v, self.vertical_bias)

        # Horizontal stack: pad k columns on the left; the centre (rightmost)
        # tap is masked by channel groups.
        h_kernel = self.horizontal_kernel * ops.cast(
            self.horizontal_mask, self.horizontal_kernel.dtype
        )
        h = ops.pad(horizontal, [[0, 0], [0, 0], [k, 0], [0, 0]])
        h = ops.conv(h, h_kernel, padding="valid")  # [B, H, W, 2p]
        h = bias_add(h, self.horizontal_bias)

        if condition is not None:
            condition = ops.cast(condition, v.dtype)
            v = v + ops.matmul(condition, self.vertical_condition_kernel)[:, None, None]
            h = (
                h
                + ops.matmul(condition, self.horizontal_condition_kernel)[:, None, None]
            )
        if condition_map is not None:
            condition_map = ops.cast(condition_map, v.dtype)
            v = v + ops.matmul(condition_map, self.vertical_condition_map_kernel)
            h = h + ops.matmul(condition_map, self.horizontal_condition_map_kernel)

        # Vertical -> horizontal: shift down one row (row 0 gets zeros), so
        # row i of the horizontal stack gets vertical rows <= i - 1.
        shifted = shift(v, axis=1)
        h = h + pointwise(shifted, self.vertical_to_horizontal_kernel)

        vertical_out = self.gate(v, training)  # [B, H, W, p]
        gated = self.gate(h, training)  # [B, H, W, p], grouped like the image
        mask = ops.cast(self.output_mask, self.output_kernel.dtype)
        out = bias_add(pointwise(gated, self.output_kernel * mask), self.output_bias)
        horizontal_out, skip = ops.split(out, [self.filters], axis=-1)
        if self.residual:
            horizontal_out = horizontal_out + horizontal
        return vertical_out, horizontal_out, skip

    def compute_output_shape(
        self,
        vertical_shape,
        horizontal_shape,
        condition_shape=None,
        condition_map_shape=None,
    ):
        shape = (*horizontal_shape[:-1], self.filters)
        return shape, shape, shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "mask_type": self.mask_type,
                "image_channels": self.image_channels,
                "residual": self.residual,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
