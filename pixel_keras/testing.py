"""Test helpers shared by every model: gradient causality at initialization.

A model that leaks future pixels reports a beautiful, fake bits/dim, so every
model in pixel-keras is checked the same way, before any training step:

    d sum_k logits[i, j, c, k] / d x[i', j', c'] == 0   exactly, whenever
    (i', j') comes after (i, j) in raster order, or (i', j') == (i, j) and
    c' >= c;  and != 0 for the immediately preceding context.

Gradients are taken with respect to the *scaled* float image (the output of
the model's `<name>_rescale` layer), so the integer input is no obstacle.
Works on the TensorFlow and JAX backends.
"""

import keras
import numpy as np


def scaled_input_model(model):
    """Sub-model from the scaled float image to the logits.

    Every pixel-keras model scales its integer `images` input with a
    `Rescaling` layer named `<model.name>_rescale`; the rest of the graph is
    differentiable in that layer's output.
    """
    rescale = model.get_layer(f"{model.name}_rescale")
    other_inputs = [t for t in model.inputs if t.name != "images"]
    return keras.Model([rescale.output, *other_inputs], model.output), rescale


def _condition_list(model, conditions, num_images):
    """Conditions in the order of the model's other inputs, one per image.

    `conditions` is a sequence in `model.inputs` order (as before) or a dict
    keyed by input name (`class_label`, `condition_map`, ...). An array whose
    batch axis is 1, or that has no batch axis, is repeated for every image.
    """
    others = [t for t in model.inputs if t.name != "images"]
    if isinstance(conditions, dict):
        conditions = [conditions[t.name] for t in others]
    out = []
    for value, tensor in zip(conditions, others):
        value = np.asarray(keras.ops.convert_to_numpy(value))
        if value.ndim == len(tensor.shape) - 1:
            value = value[None]
        if value.shape[0] == 1 and num_images != 1:
            value = np.repeat(value, num_images, axis=0)
        out.append(keras.ops.convert_to_tensor(value))
    return out


def input_gradient(model, images, position, channel, conditions=()):
    """Gradient of `sum_k logits[b, i, j, c, k]` w.r.t. the scaled image.

    Images in a batch are independent, so one backward pass of the sum over
    the batch gives each image's own gradient.

    Args:
        model: a pixel-keras model.
        images: integer array `[N, H, W, C]`.
        position: `(i, j)`.
        channel: sub-pixel index c.
        conditions: extra model inputs (conditional models): a sequence in
            `model.inputs` order after the image, or a dict keyed by input
            name; a single condition (batch 1) is used for every image.

    Returns:
        NumPy float array `[N, H, W, C]`.
    """
    sub, rescale = scaled_input_model(model)
    conditions = _condition_list(model, conditions, len(images))
    x = keras.ops.convert_to_tensor(
        keras.ops.convert_to_numpy(rescale(np.asarray(images, "float32")))
    )
    i, j = position
    backend = keras.backend.backend()

    def objective(x):
        logits = sub([x, *conditions])
        return keras.ops.sum(logits[:, i, j, channel])

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            value = objective(x)
        grad = tape.gradient(value, x)
    elif backend == "jax":
        import jax

        grad = jax.grad(objective)(x)
    else:  # pragma: no cover
        raise NotImplementedError(f"No gradient helper for backend {backend!r}")
    return keras.ops.convert_to_numpy(grad)


def default_positions(height, width, num_random=6, seed=0):
    """Corners, centre and a few random positions."""
    rng = np.random.default_rng(seed)
    positions = {
        (0, 0),
        (0, width - 1),
        (height - 1, 0),
        (height - 1, width - 1),
        (height // 2, width // 2),
        (1, 1) if height > 1 and width > 1 else (0, 0),
    }
    for _ in range(num_random):
        positions.add((int(rng.integers(height)), int(rng.integers(width))))
    return sorted(positions)


def check_causality(
    model,
    positions=None,
    must_see=None,
    conditions=(),
    seed=0,
    num_images=4,
):
    """Asserts the autoregressive order with exact input gradients.

    For each position (i, j) and every sub-pixel c:
    - the gradient is exactly zero at every later pixel and at sub-pixels
      c' >= c of (i, j) itself;
    - it is non-zero at the earlier sub-pixels of (i, j), at the whole pixel
      (i, j - 1) and at the whole pixel (i - 1, j) (the immediately preceding
      context), and at every pixel returned by `must_see(i, j)` (a list of
      (i', j') the architecture promises to see).

    `conditions` (conditional models) go to `input_gradient`: a dict keyed
    by input name, one condition for all `num_images` images or one each.

    Raises:
        AssertionError (this is a test helper) listing the offending indices.

    Returns:
        The number of (position, sub-pixel) pairs checked.
    """
    height, width, channels = model.image_shape
    rng = np.random.default_rng(seed)
    images = rng.integers(
        0, model.num_levels, size=(num_images, height, width, channels)
    )
    positions = positions or default_positions(height, width, seed=seed)
    flat_index = np.arange(height * width * channels).reshape(height, width, channels)
    checked = 0
    for i, j in positions:
        for c in range(channels):
            grad = input_gradient(model, images, (i, j), c, conditions)
            here = flat_index[i, j, c]
            future = flat_index >= here
            leaks = np.argwhere((grad != 0).any(axis=0) & future)
            if len(leaks):
                raise AssertionError(
                    f"Output (i={i}, j={j}, c={c}) depends on future inputs "
                    f"(row, col, channel): {leaks[:10].tolist()}"
                )
            required = [(i, j, cc) for cc in range(c)]
            if j > 0:
                required += [(i, j - 1, cc) for cc in range(channels)]
            if i > 0:
                required += [(i - 1, j, cc) for cc in range(channels)]
            for pi, pj in must_see(i, j) if must_see else ():
                required += [(pi, pj, cc) for cc in range(channels)]
            seen = (grad != 0).any(axis=0)
            blind = [p for p in required if not seen[p]]
            if blind:
                raise AssertionError(
                    f"Output (i={i}, j={j}, c={c}) does not see promised "
                    f"context (row, col, channel): {blind[:10]}"
                )
            checked += 1
    return checked


def _batch_input_gradient(model, images, targets, conditions=()):
    """Per-image input gradients, image b of `sum_k logits[b, i_b, j_b, c_b, k]`.

    `targets` is an int array `[N, 3]` of `(i, j, c)`, one per image. Images
    in a batch are independent, so one backward pass of the selected sum
    gives every image's own gradient.
    """
    sub, rescale = scaled_input_model(model)
    conditions = _condition_list(model, conditions, len(images))
    x = keras.ops.convert_to_tensor(
        keras.ops.convert_to_numpy(rescale(np.asarray(images, "float32")))
    )
    selector = np.zeros(np.shape(images), "float32")
    selector[np.arange(len(targets)), targets[:, 0], targets[:, 1], targets[:, 2]] = 1
    selector = keras.ops.convert_to_tensor(selector[..., None])

    def objective(x):
        logits = keras.ops.cast(sub([x, *conditions]), "float32")
        return keras.ops.sum(logits * selector)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            value = objective(x)
        grad = tape.gradient(value, x)
    else:
        import jax

        grad = jax.grad(objective)(x)
    return keras.ops.convert_to_numpy(grad)


def receptive_field(model, conditions=(), seed=0, batch_size=64, num_images=4):
    """Measures which earlier sub-pixels every output sub-pixel depends on.

    For every output position (i, j, c) the exact input gradient (of a random
    images, weights as they are) is taken, and compared with the causal
    context: every sub-pixel before (i, j, c) in raster order. Counts:

    - `rows_above`: outputs that depend on every sub-pixel of rows 0 .. i-1
      (the issue's "sees the whole image above the current row");
    - `full_context`: outputs that depend on the whole causal context;
    - `min_context_fraction`: the smallest share of its causal context that
      any output sees;
    - `max_rows_up`: how many rows up the most distant seen pixel is, at
      worst over the outputs of the last row (a 5 x 5 gated stack of L
      layers: min(H - 1, 2 L + 1)).
    Leaks into the future are an error here as in `check_causality`. A
    sub-pixel counts as seen when the gradient is non-zero for any of
    `num_images` random images (a ReLU that is off for one image can zero a
    path that exists).

    Args:
        model: a pixel-keras model.
        conditions: as for `input_gradient` (conditional models).
        seed: the random images.
        batch_size: outputs measured per backward pass.
        num_images: random images per output.

    Returns:
        A dict of the counts above plus `positions` (H * W * C).
    """
    height, width, channels = model.image_shape
    flat = np.arange(height * width * channels).reshape(height, width, channels)
    targets = np.argwhere(np.ones((height, width, channels), bool))
    rng = np.random.default_rng(seed)
    rows_above = full_context = 0
    min_fraction = 1.0
    max_rows_up = height
    for start in range(0, len(targets), batch_size):
        chunk = targets[start : start + batch_size]
        seen_any = np.zeros((len(chunk), height, width, channels), bool)
        for _ in range(num_images):
            images = rng.integers(
                0, model.num_levels, size=(len(chunk), height, width, channels)
            )
            seen_any |= _batch_input_gradient(model, images, chunk, conditions) != 0
        grads = seen_any
        for (i, j, c), seen in zip(chunk, grads):
            context = flat < flat[i, j, c]
            if (seen & ~context).any():
                raise AssertionError(
                    f"Output (i={i}, j={j}, c={c}) depends on future inputs."
                )
            rows_above += bool(seen[:i].all())
            full_context += bool(seen[context].all())
            if context.any():
                min_fraction = min(min_fraction, float(seen[context].mean()))
            if i == height - 1:
                seen_rows = np.flatnonzero(seen.any(axis=(1, 2)))
                up = i - int(seen_rows.min()) if len(seen_rows) else 0
                max_rows_up = min(max_rows_up, up)
    return {
        "positions": int(len(targets)),
        "rows_above": int(rows_above),
        "full_context": int(full_context),
        "min_context_fraction": round(min_fraction, 4),
        "max_rows_up": int(max_rows_up),
    }
