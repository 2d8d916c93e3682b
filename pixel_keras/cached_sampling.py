"""Fast exact sampling for PixelCNN with per-layer caches.

Ramachandran et al. (2017) note that the naive sampler (one full forward pass
per sub-pixel, `sampling.naive_steps`) recomputes every layer at every
position although only one position changed. A masked convolution's output at
pixel (i, j) reads its input only at (i, j) and earlier pixels, so it is
enough to compute each layer at the current pixel alone, from cached input
maps, and write the result into the next layer's cache:

```
caches = [image (scaled), input of each k x k conv]      # zero-padded maps
for t in range(H * W * C):                               # (i, j, c) = t
    x = neighbourhood(cache_image, i, j) . kernel_in      # [N, maps]
    for each residual block:
        y = relu(relu(x) @ W1)
        cache_block[i, j] = y                             # O(1) write
        y = neighbourhood(cache_block, i, j) . W2         # k x k dot product
        x = x + relu(y) @ W3
    logits = output_stack(x)[c]
    x_t = argmax(logits / T + gumbel(seed, t))           # as `sampling.draw`
    cache_image[i, j, c] = scale(x_t)
```

Each step costs O(layers * k^2 * maps^2), independent of the image size. The
three sub-pixels of an RGB pixel share the pixel's context: the column at
(i, j) is recomputed for each of them (the channel-group masks make the
outputs for group g ignore sub-pixels >= g, so after the last sub-pixel the
cached column is the one a full pass over the finished image would give).

The sampler is exact: at every step it computes the same logits as a full
forward pass (up to float rounding of a dot product against a convolution)
and draws with the same counter-based noise, so for the same seeds it returns
the same images as `model.sample(..., method="naive")`.

NOTE: only `PixelCNN` is supported. The Gated PixelCNN (vertical stack) and
the PixelRNN models raise a `ValueError` for `method="cached"`.
"""

import keras
from keras import ops

from pixel_keras import sampling


def _masked_matrix(layer):
    """A `MaskedConv2D`'s kernel * mask as a `[kh * kw * in, out]` matrix."""
    kernel = layer.kernel * ops.cast(layer.mask, layer.kernel.dtype)
    return ops.reshape(kernel, (-1, layer.filters))


def _neighbourhood(cache, i, j, size):
    """The `[N, kh * kw * maps]` patch of a padded cache at pixel (i, j)."""
    kh, kw = size
    maps = ops.shape(cache)[-1]
    patch = ops.slice(cache, [0, i, j, 0], [ops.shape(cache)[0], kh, kw, maps])
    return ops.reshape(patch, (-1, kh * kw * maps))


class CachedPixelCNNSampler:
    """Runs the cached sampler for one `PixelCNN` with its current weights.

    Args:
        model: a `PixelCNN`.

    Raises:
        ValueError: for any other model (use `method="naive"`).
    """

    def __init__(self, model):
        from pixel_keras.models.pixel_cnn import PixelCNN

        if not isinstance(model, PixelCNN):
            raise ValueError(  # noqa: TRY004 (the documented error of `sample`)
                "`method='cached'` supports PixelCNN models only; use "
                "`method='naive'` for this model. "
                f"Received: model of class {type(model).__name__}"
            )
        self.model = model
        name = model.name
        get = model.get_layer
        self.height, self.width, self.channels = model.image_shape
        self.num_levels = model.num_levels
        rescale = get(f"{name}_rescale")
        self.scale, self.offset = float(rescale.scale), float(rescale.offset)
        self.conv_in = get(f"{name}_conv_in")
        self.blocks = [
            tuple(get(f"{name}_block_{b}_conv_{n}") for n in (1, 2, 3))
            for b in range(model.num_residual_blocks)
        ]
        self.out_1 = get(f"{name}_out_conv_1")
        self.out_2 = get(f"{name}_out_conv_2")

    # ---- state ---------------------------------------------------------
    def initial_state(self, canvas):
        """Caches for a canvas `[N, H, W, C]` (int32) before step 0.

        Returns:
            Tuple `(flat canvas [N, HWC], image cache, block caches)`; each
            cache is a zero-padded input map of one k x k convolution.
        """
        num = ops.shape(canvas)[0]
        ph, pw = (k // 2 for k in self.conv_in.kernel_size)
        image = ops.cast(canvas, "float32") * self.scale + self.offset
        image = ops.pad(image, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        caches = []
        for _, conv_2, _ in self.blocks:
            kh, kw = conv_2.kernel_size
            caches.append(
                ops.zeros(
                    (
                        num,
                        self.height + kh - 1,
                        self.width + kw - 1,
                        conv_2.kernel.shape[2],
                    ),
                    "float32",
                )
            )
        flat = ops.reshape(ops.cast(canvas, "int32"), (num, -1))
        return flat, image, tuple(caches)

    # ---- one sub-pixel ------------------------------------------------
    def column_logits(self, image, caches, i, j):
        """Logits `[N, C, K]` at pixel (i, j); writes the column into the caches."""
        x = _neighbourhood(image, i, j, self.conv_in.kernel_size)
        x = ops.matmul(x, _masked_matrix(self.conv_in)) + self.conv_in.bias  # [N, 2h]
        new_caches = []
        for (conv_1, conv_2, conv_3), cache in zip(self.blocks, caches):
            y = ops.matmul(ops.relu(x), _masked_matrix(conv_1)) + conv_1.bias
            y = ops.relu(y)  # [N, h], conv_2's input at (i, j)
            kh, kw = conv_2.kernel_size
            cache = ops.slice_update(
                cache, [0, i + kh // 2, j + kw // 2, 0], y[:, None, None, :]
            )
            new_caches.append(cache)
            y = _neighbourhood(cache, i, j, conv_2.kernel_size)
            y = ops.matmul(y, _masked_matrix(conv_2)) + conv_2.bias
            y = ops.matmul(ops.relu(y), _masked_matrix(conv_3)) + conv_3.bias
            x = x + y
        x = ops.matmul(ops.relu(x), _masked_matrix(self.out_1)) + self.out_1.bias
        x = ops.matmul(ops.relu(x), _masked_matrix(self.out_2)) + self.out_2.bias
        return ops.reshape(x, (-1, self.channels, self.num_levels)), tuple(new_caches)

    def steps(self, state, start, stop, seeds, temperature, given, known, record=None):
        """Runs sub-pixel steps `start <= t < stop`; arguments as `naive_steps`.

        Args:
            state: from `initial_state` (or a previous call).
            record: optional float32 `[N, HWC, K]`; the logits of each step
                are written into it (for tests).

        Returns:
            The new state, or `(state, record)` if `record` is given.
        """
        height, width, channels = self.height, self.width, self.channels
        positions = ops.arange(height * width * channels, dtype="int32")
        ph, pw = (k // 2 for k in self.conv_in.kernel_size)

        def body(t, carry):
            (flat, image, caches), record = carry if recording else (carry, None)
            c = t % channels
            j = (t // channels) % width
            i = t // (channels * width)
            logits, caches = self.column_logits(image, caches, i, j)
            logits = ops.take(logits, c, axis=1)  # [N, K]
            value = sampling.draw(logits, seeds, t, temperature)
            value = ops.where(
                ops.take(known, t, axis=1), ops.take(given, t, axis=1), value
            )
            flat = ops.where(ops.equal(positions, t)[None], value[:, None], flat)
            scaled = ops.cast(value, "float32") * self.scale + self.offset
            image = ops.slice_update(
                image, [0, i + ph, j + pw, c], ops.reshape(scaled, (-1, 1, 1, 1))
            )
            if not recording:
                return flat, image, caches
            record = ops.slice_update(record, [0, t, 0], logits[:, None, :])
            return (flat, image, caches), record

        recording = record is not None
        return ops.fori_loop(start, stop, body, (state, record) if recording else state)

    def canvas(self, state):
        """The int32 canvas `[N, H, W, C]` of a state."""
        return ops.reshape(state[0], (-1, self.height, self.width, self.channels))


def sample_rows(model, canvas, seeds, temperature, given, known, verbose=1):
    """The cached counterpart of the row loop in `AutoregressiveImageModel.sample`.

    Arguments are tensors as in `sampling.naive_steps`; returns the finished
    int32 canvas `[N, H, W, C]`.
    """
    from pixel_keras.models.base import _jit

    sampler = getattr(model, "_cached_sampler", None)
    if sampler is None:
        sampler = CachedPixelCNNSampler(model)

        def rows(state, start, stop, seeds, temperature, given, known):
            return sampler.steps(state, start, stop, seeds, temperature, given, known)

        sampler.rows = _jit(rows)
        model._cached_sampler = sampler
    height, width, channels = model.image_shape
    state = sampler.initial_state(canvas)
    bar = keras.utils.Progbar(height, unit_name="row") if verbose else None
    step = width * channels
    for row in range(height):
        start = ops.convert_to_tensor(row * step, "int32")
        stop = ops.convert_to_tensor((row + 1) * step, "int32")
        state = sampler.rows(state, start, stop, seeds, temperature, given, known)
        if bar is not None:
            bar.update(row + 1)
    return sampler.canvas(state)


def sample_with_logits(model, canvas, seeds, temperature, given, known):
    """Runs every step in one compiled call and returns `(canvas, logits)`.

    `logits` is `[N, H, W, C, K]`: at each sub-pixel, the logits the cached
    sampler drew from (a test hook to compare with a full forward pass).
    """
    from pixel_keras.models.base import _jit

    sampler = CachedPixelCNNSampler(model)
    height, width, channels = model.image_shape
    num_steps = height * width * channels

    def run(canvas, seeds, temperature, given, known):
        record = ops.zeros(
            (ops.shape(canvas)[0], num_steps, model.num_levels), "float32"
        )
        state, record = sampler.steps(
            sampler.initial_state(canvas),
            0,
            num_steps,
            seeds,
            temperature,
            given,
            known,
            record,
        )
        shape = (-1, height, width, channels, model.num_levels)
        return sampler.canvas(state), ops.reshape(record, shape)

    return _jit(run)(canvas, seeds, temperature, given, known)
