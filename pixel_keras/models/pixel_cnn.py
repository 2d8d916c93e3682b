"""PixelCNN (van den Oord et al., 2016, "Pixel Recurrent Neural Networks").

The PixelRNN paper's convolutional model: a stack of masked convolutions that
sees a (bounded) context of earlier pixels, trained in parallel over all
positions, with a 256-way softmax per sub-pixel:

    p(x) = prod_{i, j} p(R_ij | x_<ij) p(G_ij | x_<ij, R_ij) p(B_ij | x_<ij, R_ij, G_ij)

Architecture (paper, Table 1 / Figure 5):

```
images [B, H, W, C] (int) -> scale to [-1, 1]
7x7 conv, mask A, 2h maps
N x residual block:  ReLU -> 1x1 (mask B) 2h->h -> ReLU -> 3x3 (mask B) h->h
                     -> ReLU -> 1x1 (mask B) h->2h, added to the block input
ReLU -> 1x1 (mask B) -> output_maps -> ReLU -> 1x1 (mask B) -> C*K maps
reshape -> logits [B, H, W, C, K]
```

Every convolution, the 1x1 ones included, carries the channel-group mask so
that each sub-pixel sees only earlier sub-pixels of its own pixel.

NOTE: the PixelCNN has a blind spot (the stacked 3x3 masks never reach some
pixels up and to the right); the Gated PixelCNN removes it. This model keeps
the paper's design deliberately.
"""

import keras
from keras import ops

import pixel_keras.models.caching as caching
from pixel_keras.layers.masked_conv2d import MaskedConv2D
from pixel_keras.layers.relu import ReLU
from pixel_keras.models.base import AutoregressiveImageModel
from pixel_keras.models.registry import register


def validate_common_args(image_shape, num_levels):
    """Checks the arguments every pixel model shares; returns image_shape."""
    if (
        not isinstance(image_shape, (tuple, list))
        or len(image_shape) != 3
        or not all(isinstance(d, int) and d > 0 for d in image_shape)
    ):
        raise ValueError(
            "`image_shape` must be three positive ints (height, width, channels). "
            f"Received: image_shape={image_shape!r}"
        )
    if not isinstance(num_levels, int) or not 2 <= num_levels <= 256:
        raise ValueError(
            "`num_levels` must be an int in [2, 256]. "
            f"Received: num_levels={num_levels!r}"
        )
    return tuple(image_shape)


def check_int(arg, value, minimum, requirement=None, *, odd=False, allow_bool=True):
    """Raises ValueError unless `value` is an int >= `minimum` (and odd if `odd`).

    The message reads "`arg` must be <requirement>. Received: arg=value",
    the requirement "an int >= minimum" unless given. `allow_bool=False`
    also rejects True and False (which are ints).
    """
    if (
        not isinstance(value, int)
        or (not allow_bool and isinstance(value, bool))
        or value < minimum
        or (odd and value % 2 == 0)
    ):
        requirement = requirement or f"an int >= {minimum}"
        raise ValueError(f"`{arg}` must be {requirement}. Received: {arg}={value!r}")


def check_maps(channels, allow_bool=True, **maps):
    """Checks map counts (`hidden_maps=...`): ints >= the image channels."""
    for arg, value in maps.items():
        check_int(
            arg,
            value,
            channels,
            f"an int >= the number of image channels ({channels})",
            allow_bool=allow_bool,
        )


def output_stack(x, image_shape, num_levels, output_maps, name):
    """ReLU -> masked 1x1 (B) -> ReLU -> masked 1x1 (B) -> logits [.., C, K].

    Returns:
        `(logits, (conv_1, conv_2))`: the logits and the two 1x1 layers.
    """
    channels = image_shape[-1]
    conv_1 = MaskedConv2D(
        output_maps, 1, "B", image_channels=channels, name=f"{name}_out_conv_1"
    )
    conv_2 = MaskedConv2D(
        channels * num_levels,
        1,
        "B",
        image_channels=channels,
        name=f"{name}_out_conv_2",
    )
    x = ReLU(name=f"{name}_out_relu_1")(x)
    x = conv_1(x)
    x = ReLU(name=f"{name}_out_relu_2")(x)
    x = conv_2(x)
    # Map c*K + k belongs to channel group c (see `channel_groups`).
    logits = keras.layers.Reshape((*image_shape, num_levels), name=f"{name}_logits")(x)
    return logits, (conv_1, conv_2)


def image_input(image_shape, num_levels, name):
    """The integer `images` input and its scaling to [-1, 1].

    Returns:
        `(images, scaled images, the Rescaling layer)`.
    """
    images = keras.Input(shape=image_shape, dtype="int32", name="images")
    rescaling = keras.layers.Rescaling(
        scale=2.0 / (num_levels - 1), offset=-1.0, name=f"{name}_rescale"
    )
    return images, rescaling(images), rescaling


def _residual_stack(x, num_residual_blocks, hidden_maps, kernel_size, channels, name):
    """PixelCNN's residual blocks on the stream `x` `[B, H, W, 2h]`.

    Returns:
        `(the stream, the (1x1, k x k, 1x1) masked convs of each block)`.
    """
    residual_blocks = []
    for i in range(num_residual_blocks):
        prefix = f"{name}_block_{i}"
        convs = (
            MaskedConv2D(
                hidden_maps,
                1,
                "B",
                image_channels=channels,
                name=f"{prefix}_conv_1",
            ),
            MaskedConv2D(
                hidden_maps,
                kernel_size,
                "B",
                image_channels=channels,
                name=f"{prefix}_conv_2",
            ),
            MaskedConv2D(
                2 * hidden_maps,
                1,
                "B",
                image_channels=channels,
                name=f"{prefix}_conv_3",
            ),
        )
        residual_blocks.append(convs)
        y = ReLU(name=f"{prefix}_relu_1")(x)
        y = convs[0](y)
        y = ReLU(name=f"{prefix}_relu_2")(y)
        y = convs[1](y)
        y = ReLU(name=f"{prefix}_relu_3")(y)
        y = convs[2](y)
        x = keras.layers.Add(name=f"{prefix}_add")([x, y])
    return x, residual_blocks


@register("pixelcnn")
@keras.saving.register_keras_serializable(package="pixel_keras")
class PixelCNN(AutoregressiveImageModel):
    """PixelCNN with masked residual blocks and a K-way softmax per sub-pixel.

    Args:
        image_shape: `(height, width, channels)`; channels 1 or 3 (any
            count works: each is one autoregressive step within a pixel).
        num_levels: int in [2, 256], values per sub-pixel (256 for 8-bit
            images, 2 for binarized ones, 17 for scikit-learn digits).
        hidden_maps: int, h; the residual stream has 2h maps.
        num_residual_blocks: int, N.
        output_maps: int, maps of the output stack's hidden 1x1 conv
            (1024 in the paper for natural images, 32 for MNIST).
        first_kernel_size: int, odd; 7 in the paper.
        kernel_size: int, odd; the residual blocks' masked conv (3).
        **kwargs: `keras.Model` arguments (`name`, ...).

    Call arguments:
        images: int tensor `[B, H, W, C]` with values in `[0, K - 1]`.

    Returns:
        Logits `[B, H, W, C, K]`.

    Example:

    ```python
    model = PixelCNN(image_shape=(8, 8, 1), num_levels=17, hidden_maps=16,
                     num_residual_blocks=2, output_maps=32)
    model.compile(optimizer="adam")       # loss: NLL in nats/image
    model.fit(ds.map(lambda x: (x, x)))   # integer images
    model.bits_per_dim(test_images)
    samples = model.sample(16, seed=0)
    ```

    Reference:
        - [van den Oord et al., 2016](https://arxiv.org/abs/1601.06759)
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=256,
        hidden_maps=64,
        num_residual_blocks=7,
        output_maps=256,
        first_kernel_size=7,
        kernel_size=3,
        name="pixelcnn",
        **kwargs,
    ):
        image_shape = validate_common_args(image_shape, num_levels)
        channels = image_shape[-1]
        check_maps(channels, hidden_maps=hidden_maps, output_maps=output_maps)
        check_int("num_residual_blocks", num_residual_blocks, 0)

        # === Functional model ===
        images, x, rescaling = image_input(image_shape, num_levels, name)
        conv_in = MaskedConv2D(
            2 * hidden_maps,
            first_kernel_size,
            "A",
            image_channels=channels,
            name=f"{name}_conv_in",
        )
        x = conv_in(x)
        x, residual_blocks = _residual_stack(
            x, num_residual_blocks, hidden_maps, kernel_size, channels, name
        )
        logits, output_convs = output_stack(
            x, image_shape, num_levels, output_maps, name
        )
        super().__init__(inputs=images, outputs=logits, name=name, **kwargs)

        # === Layers the cached sampler reads ===
        self.rescaling = rescaling
        self.conv_in = conv_in
        self.residual_blocks = residual_blocks  # (1x1, k x k, 1x1) per block
        self.output_convs = output_convs

        # === Config ===
        self.image_shape = image_shape
        self.num_levels = num_levels
        self.hidden_maps = hidden_maps
        self.num_residual_blocks = num_residual_blocks
        self.output_maps = output_maps
        self.first_kernel_size = first_kernel_size
        self.kernel_size = kernel_size

    # ---- cached sampling hooks (see `AutoregressiveImageModel`) --------
    # Caches: the scaled image and the input of each residual block's k x k
    # convolution, zero-padded as "same" padding pads them. At (i, j) each
    # layer is computed at that pixel only, from its input's neighbourhood:
    #
    #     x = neighbourhood(image, i, j) . kernel_in              # [N, 2h]
    #     for each residual block:
    #         y = relu(relu(x) @ W1); cache_block[i, j] = y        # O(1) write
    #         x = x + relu(neighbourhood(cache_block, i, j) . W2) @ W3
    #     logits = output_stack(x)                                # [N, C, K]
    #
    # The sub-pixels of an RGB pixel share the column: it is recomputed for
    # each (the channel-group masks make the outputs for group g ignore
    # sub-pixels >= g), so after the last one the cached column is the one a
    # full pass over the finished image gives.

    def new_cache(self, canvas, conditions):
        num = ops.shape(canvas)[0]
        height, width = self.image_shape[:2]
        image = caching.padded_input(canvas, self.rescaling, self.conv_in.kernel_size)
        caches = []
        for _, conv_2, _ in self.residual_blocks:
            kh, kw = conv_2.kernel_size
            shape = (num, height + kh - 1, width + kw - 1, conv_2.kernel.shape[2])
            caches.append(ops.zeros(shape, "float32"))
        return image, tuple(caches)

    def cached_logits(self, cache, i, j, slice_update=None):
        return caching.stream_logits(
            self,
            cache,
            i,
            j,
            self.residual_blocks,
            self._block_step,
            slice_update or ops.slice_update,
        )

    def write_cache(self, cache, value, i, j, c, slice_update=None):
        return caching.write_input(
            cache, value, (i, j, c), self, slice_update or ops.slice_update
        )

    def _block_step(self, convs, block_cache, x, i, j, slice_update):
        """One residual block at (i, j): `(x + block(x) [N, 2h], block cache)`."""
        conv_1, conv_2, conv_3 = convs
        y = ops.relu(conv_1.call_at_pixel(ops.relu(x)))  # [N, h], conv_2's input
        kh, kw = conv_2.kernel_size
        block_cache = caching.write_pixel(
            block_cache, (i + kh // 2, j + kw // 2), y, slice_update
        )
        y = caching.conv_at_pixel(conv_2, block_cache, i, j)
        return x + conv_3.call_at_pixel(ops.relu(y)), block_cache

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_shape": self.image_shape,
            "num_levels": self.num_levels,
            "hidden_maps": self.hidden_maps,
            "num_residual_blocks": self.num_residual_blocks,
            "output_maps": self.output_maps,
            "first_kernel_size": self.first_kernel_size,
            "kernel_size": self.kernel_size,
        }
