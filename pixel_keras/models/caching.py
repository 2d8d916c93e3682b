"""Pieces the models' cached sampling hooks share (see `pixel_keras.sampling`).

A cache is a zero-padded map `[N, H', W', maps]` (or a row `[N, W', maps]`);
the hooks read a pixel's neighbourhood from it and write one pixel into it,
so that each sub-pixel costs O(layers * k^2 * maps^2), independent of the
image size.
"""

from keras import ops


def neighbourhood(cache, i, j, size):
    """The `[N, kh * kw * maps]` patch of a padded cache at pixel (i, j)."""
    kh, kw = size
    maps = ops.shape(cache)[-1]
    patch = ops.slice(cache, [0, i, j, 0], [ops.shape(cache)[0], kh, kw, maps])
    return ops.reshape(patch, (-1, kh * kw * maps))


def pixel_at(cache, index):
    """`cache[:, index[0], index[1], ...]` of a 4-D cache, `[N, maps]`."""
    num, maps = ops.shape(cache)[0], ops.shape(cache)[-1]
    return ops.reshape(ops.slice(cache, [0, *index, 0], [num, 1, 1, maps]), (-1, maps))


def write_pixel(cache, index, value, slice_update):
    """`cache[:, index[0], index[1]] = value` for `value` `[N, maps]`."""
    return slice_update(cache, [0, *index, 0], value[:, None, None, :])


def scaled(values, rescaling):
    """Integer levels scaled as the model's `Rescaling` layer scales them."""
    scale, offset = float(rescaling.scale), float(rescaling.offset)
    return ops.cast(values, "float32") * scale + offset


def write_level(image, value, index, rescaling, slice_update):
    """Writes the scaled level `value` `[N]` at `index` (4 ints) of `image`."""
    update = ops.reshape(scaled(value, rescaling), (-1, 1, 1, 1))
    return slice_update(image, index, update)


def padded_input(canvas, rescaling, kernel_size):
    """The scaled canvas, zero-padded as a "same" conv of `kernel_size` pads it.

    The image cache of a model whose first layer is that convolution.
    """
    ph, pw = (k // 2 for k in kernel_size)
    image = scaled(canvas, rescaling)
    return ops.pad(image, [[0, 0], [ph, ph], [pw, pw], [0, 0]])


def write_input(cache, value, index, model, slice_update):
    """`write_cache` of a model with a cache `(image, per-layer states)`.

    Writes level `value` `[N]` at `index` (i, j, c) of `image`, the
    `padded_input` of `model.conv_in` (scaled by `model.rescaling`).
    """
    image, states = cache
    i, j, c = index
    ph, pw = (k // 2 for k in model.conv_in.kernel_size)
    image = write_level(
        image, value, [0, i + ph, j + pw, c], model.rescaling, slice_update
    )
    return image, states


def conv_at_pixel(conv, cache, i, j):
    """A masked "same" conv at pixel (i, j) of its padded input cache, `[N, maps]`."""
    return conv.call_at_pixel(neighbourhood(cache, i, j, conv.kernel_size))


def stream_logits(model, cache, i, j, layers, step, slice_update):
    """`cached_logits` of a model with a cache `(image, per-layer states)`.

    The model's input conv `model.conv_in` at (i, j) of `image` (a
    `padded_input`), then each layer's `step(layer, state, x, i, j,
    slice_update) -> (x, state)`, then the output stack `model.output_convs`.

    Returns:
        `(logits [N, C, K], the new cache)`.
    """
    image, states = cache
    x = conv_at_pixel(model.conv_in, image, i, j)  # [N, 2h]
    new_states = []
    for layer, state in zip(layers, states):
        x, state = step(layer, state, x, i, j, slice_update)
        new_states.append(state)
    logits = output_logits(
        x, model.output_convs, model.image_shape[-1], model.num_levels
    )
    return logits, (image, tuple(new_states))


def output_logits(x, output_convs, channels, num_levels):
    """The output stack at one pixel: `[N, maps]` -> logits `[N, C, K]`."""
    out_1, out_2 = output_convs
    x = out_1.call_at_pixel(ops.relu(x))
    x = out_2.call_at_pixel(ops.relu(x))
    return ops.reshape(x, (-1, channels, num_levels))
