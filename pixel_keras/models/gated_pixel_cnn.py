"""Gated PixelCNN (van den Oord et al., 2016b, "Conditional Image Generation
with PixelCNN Decoders").

What the paper adds to PixelCNN:

- gated activations, y = tanh(W_f * x) * sigmoid(W_g * x), in place of ReLU;
- two stacks per layer, a vertical one (rows above) feeding a horizontal one
  (current row, to the left), which removes PixelCNN's blind spot: after L
  layers of n x n blocks (k = n // 2) the output at (i, j) sees the whole
  rectangle of rows i - 1 - L*k ... i - 1, columns j - L*k ... j + L*k, and
  row i from column j - L*k up to j - 1 (see `layers/gated_block.py`);
- conditioning p(x | h): a vector h (here a one-hot class label and/or a
  free vector) enters every gate as V h, and a spatial map s (given, or
  deconvolved from h: s = m(h)) as a 1 x 1 convolution.

The likelihood factorizes as in PixelCNN, with the condition fixed:

    p(x | h) = prod_{i, j} p(R_ij | x_<ij, h) p(G_ij | x_<ij, R_ij, h)
                          p(B_ij | x_<ij, R_ij, G_ij, h)

Architecture:

```
images [B, H, W, C] (int) -> scale to [-1, 1] -> v = h = x
block 0:       GatedBlock(p, n, mask "A", no residual)(v, h, cond, map)
block 1..L-1:  GatedBlock(p, n, mask "B", residual)(v, h, cond, map)
sum of the L skip outputs -> ReLU -> 1x1 (mask B) output_maps -> ReLU
-> 1x1 (mask B) C*K maps -> logits [B, H, W, C, K]
```

NOTE: deliberately not implemented: the paper's PixelCNN auto-encoder and
the face-embedding experiments (any embedding can be passed as `condition`).
`sample()` uses the exact cached sampler by default (`method="cached"`:
this model's cache hooks, below, driven by `pixel_keras.sampling`);
`method="naive"` runs one full forward pass per sub-pixel.

Tricks: the vertical stack is a (k + 1) x n convolution padded on top and
used only through a one-row shift down (no masked n x n kernel, no wasted
taps); the horizontal stack is a 1 x (k + 1) convolution whose centre tap
and every 1 x 1 convolution after it carry channel-group masks, so each RGB
sub-pixel sees only the earlier sub-pixels of its own pixel.
"""

import math

import keras
from keras import ops

import pixel_keras.models.caching as caching
from pixel_keras.layers.gated_block import GatedBlock
from pixel_keras.models.base import AutoregressiveImageModel
from pixel_keras.models.pixel_cnn import (
    check_int,
    check_maps,
    image_input,
    output_stack,
    validate_common_args,
)
from pixel_keras.models.registry import register


def _check_optional_int(arg, value, minimum):
    if value is not None:
        check_int(arg, value, minimum, f"None or an int >= {minimum}", allow_bool=False)


def _deconv_network(h, image_shape, maps, name):
    """s = m(h): Dense to a 1/4-size grid, two stride-2 transposed convs, crop.

    Returns:
        `(s, layers)`: the map `[B, H, W, maps]` and the layers in order.
    """
    height, width = image_shape[:2]
    base_h, base_w = math.ceil(height / 4), math.ceil(width / 4)
    layers = [
        keras.layers.Dense(
            base_h * base_w * maps, activation="relu", name=f"{name}_deconv_dense"
        ),
        keras.layers.Reshape((base_h, base_w, maps), name=f"{name}_deconv_reshape"),
        keras.layers.Conv2DTranspose(
            maps,
            3,
            strides=2,
            padding="same",
            activation="relu",
            name=f"{name}_deconv_1",
        ),  # [B, 2 base_h, 2 base_w, maps]
        keras.layers.Conv2DTranspose(
            maps, 3, strides=2, padding="same", name=f"{name}_deconv_2"
        ),  # [B, 4 base_h, 4 base_w, maps]
        keras.layers.Cropping2D(
            ((0, 4 * base_h - height), (0, 4 * base_w - width)),
            name=f"{name}_deconv_crop",
        ),  # [B, H, W, maps]
    ]
    s = h
    for layer in layers:
        s = layer(s)
    return s, layers


def _check_args(
    image_shape, num_levels, num_layers, hidden_maps, kernel_size, output_maps
):
    """Checks `GatedPixelCNN`'s image and layer arguments; returns `image_shape`."""
    image_shape = validate_common_args(image_shape, num_levels)
    channels = image_shape[-1]
    check_maps(
        channels, allow_bool=False, hidden_maps=hidden_maps, output_maps=output_maps
    )
    check_int("num_layers", num_layers, 1, allow_bool=False)
    check_int(
        "kernel_size", kernel_size, 3, "an odd int >= 3", odd=True, allow_bool=False
    )
    return image_shape


def _check_condition_args(
    num_classes, condition_dim, condition_map_channels, deconv_maps
):
    """Checks `GatedPixelCNN`'s condition arguments."""
    _check_optional_int("num_classes", num_classes, 2)
    _check_optional_int("condition_dim", condition_dim, 1)
    _check_optional_int("condition_map_channels", condition_map_channels, 1)
    _check_optional_int("deconv_maps", deconv_maps, 1)
    if deconv_maps is not None and num_classes is None and condition_dim is None:
        raise ValueError(
            "`deconv_maps` needs a condition vector to deconvolve: set "
            "`num_classes` or `condition_dim`. Received: "
            f"deconv_maps={deconv_maps}, num_classes=None, condition_dim=None"
        )


def _condition_inputs(
    image_shape, num_classes, condition_dim, condition_map_channels, deconv_maps, name
):
    """The condition inputs and what the gated blocks read of them.

    Returns:
        `(inputs, h, s, deconv_layers)`: the condition inputs by name (in
        the model's input order), the condition vector h `[B, D]` and map s
        `[B, H, W, S]` (None when absent), and the layers of s = m(h) (None
        without `deconv_maps`).
    """
    inputs = {}
    vectors = []
    if num_classes is not None:
        inputs["class_label"] = keras.Input(shape=(), dtype="int32", name="class_label")
        vectors.append(
            keras.layers.CategoryEncoding(
                num_classes, output_mode="one_hot", name=f"{name}_class_one_hot"
            )(inputs["class_label"])
        )  # [B, num_classes]
    if condition_dim is not None:
        inputs["condition"] = keras.Input(shape=(condition_dim,), name="condition")
        vectors.append(inputs["condition"])
    condition = None
    if len(vectors) > 1:
        condition = keras.layers.Concatenate(name=f"{name}_condition_concat")(vectors)
    elif vectors:
        condition = vectors[0]  # [B, D]
    maps = []
    if condition_map_channels is not None:
        inputs["condition_map"] = keras.Input(
            shape=(*image_shape[:2], condition_map_channels), name="condition_map"
        )
        maps.append(inputs["condition_map"])
    deconv_layers = None
    if deconv_maps is not None:
        deconv, deconv_layers = _deconv_network(
            condition, image_shape, deconv_maps, name
        )
        maps.append(deconv)
    condition_map = None
    if len(maps) > 1:
        condition_map = keras.layers.Concatenate(name=f"{name}_condition_map_concat")(
            maps
        )
    elif maps:
        condition_map = maps[0]  # [B, H, W, S]
    return inputs, condition, condition_map, deconv_layers


def _gated_stack(
    x, condition, condition_map, num_layers, hidden_maps, kernel_size, channels, name
):
    """The gated blocks on the scaled images `x`.

    Returns:
        `(the sum of the skip outputs [B, H, W, p], the blocks)`.
    """
    vertical, horizontal = x, x
    skips = []
    blocks = []
    for i in range(num_layers):
        block = GatedBlock(
            hidden_maps,
            kernel_size,
            "A" if i == 0 else "B",
            image_channels=channels,
            residual=i > 0,
            name=f"{name}_block_{i}",
        )
        blocks.append(block)
        vertical, horizontal, skip = block(
            vertical, horizontal, condition=condition, condition_map=condition_map
        )
        skips.append(skip)
    if len(skips) > 1:
        out = keras.layers.Add(name=f"{name}_skip_sum")(skips)
    else:
        out = skips[0]  # [B, H, W, p]
    return out, blocks


@register("gated_pixelcnn")
@keras.saving.register_keras_serializable(package="pixel_keras")
class GatedPixelCNN(AutoregressiveImageModel):
    """Gated PixelCNN, optionally conditional, with a K-way softmax per sub-pixel.

    A stack of `GatedBlock`s (vertical + horizontal gated stacks, no blind
    spot); the skip outputs of all blocks are summed into PixelCNN's output
    stack. Unconditional models take the `images` tensor; conditional ones a
    dict with `images` and the conditions named below.

    Args:
        image_shape: `(height, width, channels)`; channels 1 or 3 (any
            count works: each is one autoregressive step within a pixel).
        num_levels: int in [2, 256], values per sub-pixel.
        num_layers: int >= 1, number of gated blocks (20 in the paper).
        hidden_maps: int, p, maps of each stack (384 in the paper).
        kernel_size: odd int n >= 3; each block sees n x n (5 in the paper).
        output_maps: int, maps of the output stack's hidden 1x1 conv.
        num_classes: None or int >= 2; adds the input `class_label`, int32
            `[B]`, one-hot encoded into the condition vector h.
        condition_dim: None or int >= 1; adds the input `condition`, float
            `[B, condition_dim]` (any embedding), concatenated into h.
        condition_map_channels: None or int >= 1; adds the input
            `condition_map`, float `[B, H, W, condition_map_channels]`, a
            spatial condition s.
        deconv_maps: None or int >= 1; a deconvolution network maps h to a
            spatial map of this many maps (s = m(h)), concatenated to
            `condition_map` if both are used. Needs `num_classes` or
            `condition_dim`.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Call arguments:
        inputs: int tensor `images` `[B, H, W, C]` with values in
            `[0, K - 1]`; for conditional models a dict with `images` and
            the conditions (`class_label`, `condition`, `condition_map`).

    Returns:
        Logits `[B, H, W, C, K]`.

    Example:

    ```python
    model = GatedPixelCNN(image_shape=(8, 8, 1), num_levels=17, num_layers=3,
                          hidden_maps=16, kernel_size=3, output_maps=32,
                          num_classes=10)
    model.compile(optimizer="adam")
    model.fit({"images": x, "class_label": y}, x)
    model.bits_per_dim(x_test, class_label=y_test)
    samples = model.sample(10, seed=0, class_label=np.arange(10))
    ```

    Reference:
        - [van den Oord et al., 2016, Conditional Image Generation with
          PixelCNN Decoders](https://arxiv.org/abs/1606.05328)
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=256,
        num_layers=10,
        hidden_maps=64,
        kernel_size=5,
        output_maps=256,
        num_classes=None,
        condition_dim=None,
        condition_map_channels=None,
        deconv_maps=None,
        name="gated_pixelcnn",
        **kwargs,
    ):
        image_shape = _check_args(
            image_shape, num_levels, num_layers, hidden_maps, kernel_size, output_maps
        )
        _check_condition_args(
            num_classes, condition_dim, condition_map_channels, deconv_maps
        )

        # === Functional model ===
        images, x, rescaling = image_input(image_shape, num_levels, name)
        conditions, condition, condition_map, deconv_layers = _condition_inputs(
            image_shape,
            num_classes,
            condition_dim,
            condition_map_channels,
            deconv_maps,
            name,
        )
        inputs = {"images": images, **conditions}
        out, blocks = _gated_stack(
            x,
            condition,
            condition_map,
            num_layers,
            hidden_maps,
            kernel_size,
            image_shape[-1],
            name,
        )
        logits, output_convs = output_stack(
            out, image_shape, num_levels, output_maps, name
        )
        super().__init__(
            inputs=inputs if len(inputs) > 1 else images,
            outputs=logits,
            name=name,
            **kwargs,
        )

        # === Layers the cached sampler reads ===
        self.rescaling = rescaling
        self.blocks = blocks
        self.deconv_layers = deconv_layers  # s = m(h), or None
        self.output_convs = output_convs

        # === Config ===
        self.image_shape = image_shape
        self.num_levels = num_levels
        self.num_layers = num_layers
        self.hidden_maps = hidden_maps
        self.kernel_size = kernel_size
        self.output_maps = output_maps
        self.num_classes = num_classes
        self.condition_dim = condition_dim
        self.condition_map_channels = condition_map_channels
        self.deconv_maps = deconv_maps

    # ---- cached sampling hooks (see `AutoregressiveImageModel`) --------
    # The horizontal stack is computed per sub-pixel from a 1 x (k + 1) row
    # cache per layer (k = kernel_size // 2). The vertical stack at row i
    # reads row i itself, including pixels right of the current one, but the
    # horizontal stack only uses it shifted down by one row; so once row i is
    # finished (`finish_row`) the vertical stacks of all layers are computed
    # for the whole row (one (k + 1) x n convolution of the last k + 1 cached
    # rows per layer, O(1) per pixel amortized) and kept for row i + 1. The
    # conditions (class label, vector, map, the deconvolution network) are
    # evaluated once, in `new_cache`.
    #
    # The cache: `(vertical, horizontal, from_above, terms, s)`:
    #     vertical: per layer, its vertical input `[N, H + k, W + 2k, maps]`
    #         padded as the layer pads it (layer 0: the scaled image, which
    #         is also the horizontal input of layer 0).
    #     horizontal: per layer > 0, its horizontal input in the current row,
    #         `[N, W + k, p]`, padded with k zero columns on the left.
    #     from_above: per layer, the vertical pre-activation of the previous
    #         row times the vertical-to-horizontal kernel, `[N, W, 2p]`.
    #     terms: per layer, `(V_v h, V_h h)` `[N, 2p]` (zeros without h).
    #     s: the condition map `[N, H, W, S]` (or `[N, H, W, 0]`).

    @property
    def _has_condition_map(self):
        return self.condition_map_channels is not None or self.deconv_maps is not None

    def _condition_vector_and_map(self, conditions):
        """h `[N, D]` and s `[N, H, W, S]` (None when absent), as the graph."""
        vectors = []
        if self.num_classes is not None:
            label = ops.cast(conditions["class_label"], "int32")
            vectors.append(ops.one_hot(label, self.num_classes, dtype="float32"))
        if self.condition_dim is not None:
            vectors.append(ops.cast(conditions["condition"], "float32"))
        h = ops.concatenate(vectors, axis=-1) if vectors else None  # [N, D]
        maps = []
        if self.condition_map_channels is not None:
            maps.append(ops.cast(conditions["condition_map"], "float32"))
        if self.deconv_layers is not None:
            s = h
            for layer in self.deconv_layers:
                s = layer(s)
            maps.append(s)
        s = ops.concatenate(maps, axis=-1) if maps else None  # [N, H, W, S]
        return h, s

    def new_cache(self, canvas, conditions):
        num = ops.shape(canvas)[0]
        height, width = self.image_shape[:2]
        k, p = self.kernel_size // 2, self.hidden_maps
        h, s = self._condition_vector_and_map(conditions)
        image = caching.scaled(canvas, self.rescaling)
        image = ops.pad(image, [[0, 0], [k, 0], [k, k], [0, 0]])
        vertical = [image]
        horizontal = []
        for _ in self.blocks[1:]:
            vertical.append(ops.zeros((num, height + k, width + 2 * k, p), "float32"))
            horizontal.append(ops.zeros((num, width + k, p), "float32"))
        from_above = [ops.zeros((num, width, 2 * p), "float32") for _ in self.blocks]
        terms = []
        for block in self.blocks:
            if h is None:
                terms.append((ops.zeros((num, 2 * p)), ops.zeros((num, 2 * p))))
            else:
                terms.append(
                    (
                        ops.matmul(h, block.vertical_condition_kernel),
                        ops.matmul(h, block.horizontal_condition_kernel),
                    )
                )
        if s is None:
            s = ops.zeros((num, height, width, 0), "float32")
        return tuple(vertical), tuple(horizontal), tuple(from_above), tuple(terms), s

    def cached_logits(self, cache, i, j, slice_update=None):
        slice_update = slice_update or ops.slice_update
        vertical, horizontal, from_above, terms, s = cache
        k, num = self.kernel_size // 2, ops.shape(s)[0]
        s_here = None
        if self._has_condition_map:
            s_here = caching.pixel_at(s, (i, j))  # [N, S]
        new_horizontal = []
        skip = None
        x = None  # horizontal output of the previous layer at (i, j), [N, p]
        for index, block in enumerate(self.blocks):
            if index == 0:
                row = ops.slice(
                    vertical[0],
                    [0, i + k, j, 0],
                    [num, 1, k + 1, self.image_shape[-1]],
                )
            else:
                row_cache = slice_update(
                    horizontal[index - 1], [0, j + k, 0], x[:, None]
                )
                new_horizontal.append(row_cache)
                row = ops.slice(row_cache, [0, j, 0], [num, k + 1, block.filters])
            kernel = block.horizontal_kernel * ops.cast(
                block.horizontal_mask, block.horizontal_kernel.dtype
            )
            pre = ops.matmul(
                ops.reshape(row, (num, -1)),
                ops.reshape(kernel, (-1, 2 * block.filters)),
            )
            pre = pre + block.horizontal_bias + terms[index][1]
            if s_here is not None:
                pre = pre + ops.matmul(s_here, block.horizontal_condition_map_kernel)
            pre = pre + ops.take(from_above[index], j, axis=1)
            gated = block.gate(pre)
            mask = ops.cast(block.output_mask, block.output_kernel.dtype)
            out = ops.matmul(gated, block.output_kernel * mask) + block.output_bias
            h_out, h_skip = out[:, : block.filters], out[:, block.filters :]
            if block.residual:
                h_out = h_out + x
            x = h_out
            skip = h_skip if skip is None else skip + h_skip
        logits = caching.output_logits(
            skip, self.output_convs, self.image_shape[-1], self.num_levels
        )
        return logits, (vertical, tuple(new_horizontal), from_above, terms, s)

    def write_cache(self, cache, value, i, j, c, slice_update=None):
        vertical, horizontal, from_above, terms, s = cache
        k = self.kernel_size // 2
        image = caching.write_level(
            vertical[0],
            value,
            [0, i + k, j + k, c],
            self.rescaling,
            slice_update or ops.slice_update,
        )
        return (image, *vertical[1:]), horizontal, from_above, terms, s

    def finish_row(self, cache, i, slice_update=None):
        """The vertical stacks of all layers at the finished row i."""
        slice_update = slice_update or ops.slice_update
        vertical, horizontal, _, terms, s = cache
        k, num = self.kernel_size // 2, ops.shape(s)[0]
        width = self.image_shape[1]
        s_row = None
        if self._has_condition_map:
            s_row = ops.slice(s, [0, i, 0, 0], [num, 1, width, ops.shape(s)[-1]])
        new_vertical = [vertical[0]]
        from_above = []
        for index, block in enumerate(self.blocks):
            source = new_vertical[index]  # row i already written for index > 0
            maps = ops.shape(source)[-1]
            rows = ops.slice(
                source, [0, i, 0, 0], [num, k + 1, width + 2 * k, maps]
            )  # input rows i - k ... i
            pre = ops.conv(
                rows, block.vertical_kernel, padding="valid"
            )  # [N, 1, W, 2p]
            pre = pre + block.vertical_bias + terms[index][0][:, None, None]
            if s_row is not None:
                pre = pre + ops.matmul(s_row, block.vertical_condition_map_kernel)
            from_above.append(
                ops.matmul(pre[:, 0], block.vertical_to_horizontal_kernel)
            )  # [N, W, 2p], used by row i + 1
            if index + 1 < len(self.blocks):
                new_vertical.append(
                    slice_update(vertical[index + 1], [0, i + k, k, 0], block.gate(pre))
                )
        return tuple(new_vertical), horizontal, tuple(from_above), terms, s

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_shape": self.image_shape,
            "num_levels": self.num_levels,
            "num_layers": self.num_layers,
            "hidden_maps": self.hidden_maps,
            "kernel_size": self.kernel_size,
            "output_maps": self.output_maps,
            "num_classes": self.num_classes,
            "condition_dim": self.condition_dim,
            "condition_map_channels": self.condition_map_channels,
            "deconv_maps": self.deconv_maps,
        }
