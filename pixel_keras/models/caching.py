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


def output_logits(x, output_convs, channels, num_levels):
    """The output stack at one pixel: `[N, maps]` -> logits `[N, C, K]`."""
    out_1, out_2 = output_convs
    x = out_1.call_at_pixel(ops.relu(x))
    x = out_2.call_at_pixel(ops.relu(x))
    return ops.reshape(x, (-1, channels, num_levels))
