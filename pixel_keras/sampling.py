"""Exact autoregressive sampling, written with `keras.ops` (every backend).

The model factorizes an image as p(x) = prod_t p(x_t | x_<t) over sub-pixels
t = 0 ... H*W*C - 1 in raster order, channel fastest (R, G, B of pixel 0,
then pixel 1, ...). The naive sampler draws them one at a time:

```
canvas = zeros
for t in range(H * W * C):
    logits = model(canvas)[:, t]          # one full forward pass per step
    canvas[:, t] = argmax(logits / T + gumbel(seed, t))
```

Randomness is counter-based: the Gumbel noise for sample n, step t and level
k is a fixed hash of (seed_n, t, k) in uint32 arithmetic. So a sample depends
only on its own seed, the same seed gives the same image on every backend and
batch size, and a stateless server can draw step t alone (`sample_step`).

The cached method (Ramachandran et al., 2017) computes each layer at the
current pixel only, from per-layer caches the model keeps (its sampling
hooks, declared by `AutoregressiveImageModel`; each architecture implements
them next to its graph). Both methods run through one driver:

```
cache = hooks.new_cache(canvas, conditions)
for i in range(H):                                 # `sample_rows`: one call a row
    for j in range(W):
        for c in range(C):                         # `run_steps`: in the graph
            logits, cache = hooks.cached_logits(cache, i, j)      # [N, C, K]
            x = draw(logits[:, c], seeds, t, temperature)         # or the known value
            cache = hooks.write_cache(cache, x, i, j, c)
    cache = hooks.finish_row(cache, i)
```

Each cached step costs O(layers * k^2 * maps^2), independent of the image
size, and is exact: it computes the logits a full forward pass computes (up
to float rounding of a dot product against a convolution) and draws with the
same noise, so both methods give the same images for the same seeds. The
naive method is the same loop with `NaiveHooks`, whose "cache" is the canvas
and whose logits come from a full forward pass.

Everything is `keras.ops` (`fori_loop`, `slice`, `slice_update`), so the
same loop is compiled by TensorFlow (XLA) and JAX for `model.sample`, and is
the loop of the exported `sample`/`complete` signatures (`pixel_keras.export`
passes a `slice_update` made of standard TensorFlow ops). This module does
not import the models: the driver receives the model (or any object with the
hooks and `image_shape`).
"""

import math

import keras
import numpy as np
from keras import ops

# The temperature rule lives in the Keras-free `pixel_keras.checks` (the CLI
# checks arguments before importing Keras); re-exported for the callers of
# `sampling.check_temperature` and the exported signatures' graph checks.
from pixel_keras.checks import (  # noqa: F401
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    TEMPERATURE_RULE,
    check_temperature,
)

_GOLDEN = 0x9E3779B9


def _u32(value):
    return ops.convert_to_tensor(np.uint32(value))


def _mix32(x):
    """A 32-bit integer finalizer (xor-shift-multiply), uint32 in and out."""
    x = ops.bitwise_xor(x, ops.right_shift(x, _u32(16)))
    x = ops.multiply(x, _u32(0x7FEB352D))
    x = ops.bitwise_xor(x, ops.right_shift(x, _u32(15)))
    x = ops.multiply(x, _u32(0x846CA68B))
    x = ops.bitwise_xor(x, ops.right_shift(x, _u32(16)))
    return x


def is_int(value):
    """True for Python and NumPy ints; bools are not ints here."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def per_sample_seeds(num_samples, seed=None):
    """Returns `num_samples` uint32 seeds (NumPy) from `seed`.

    Args:
        num_samples: int >= 1, number of samples.
        seed: None (fresh random seeds), an int (seed n is derived from it and
            n, so the first k samples of a batch do not depend on its size),
            or a sequence of `num_samples` ints used as they are (each taken
            mod 2**32). Bools are not ints here.

    Raises:
        ValueError: what must hold and what was received.
    """
    if not is_int(num_samples) or num_samples < 1:
        raise ValueError(
            "`num_samples` must be a positive int (the number of images). "
            f"Received: num_samples={num_samples!r}"
        )
    if seed is None:
        return (
            np.random.default_rng()
            .integers(0, 2**32, size=num_samples)
            .astype("uint32")
        )
    if is_int(seed):
        base = np.uint64(int(seed) % 2**32)
        n = np.arange(num_samples, dtype="uint64")
        mixed = (base * np.uint64(2654435761) + n * np.uint64(_GOLDEN)) % 2**32
        return mixed.astype("uint32")
    try:
        seeds = np.asarray(seed)
    except ValueError:  # ragged nesting
        seeds = np.asarray(None)
    if seeds.shape != (num_samples,) or not np.issubdtype(seeds.dtype, np.integer):
        received = f"{seed!r:.100}"
        if seeds.ndim:
            received += f" (shape {seeds.shape}, dtype {seeds.dtype})"
        raise ValueError(
            "`seed` must be None, an int, or a sequence of one int per sample "
            f"(num_samples={num_samples}). Received: seed={received}"
        )
    return (seeds.astype("int64") % 2**32).astype("uint32")


def gumbel_noise(seeds, step, num_levels):
    """Gumbel(0, 1) noise `[N, num_levels]` for sub-pixel `step`.

    Args:
        seeds: uint32 tensor `[N]`.
        step: int32 scalar tensor, the flat sub-pixel index.
        num_levels: int, number of levels K.
    """
    step = ops.cast(step, "uint32")
    key = _mix32(
        ops.add(ops.cast(seeds, "uint32"), _mix32(step + _u32(1)) * _u32(_GOLDEN))
    )
    levels = ops.cast(ops.arange(num_levels, dtype="int32"), "uint32")
    bits = _mix32(
        ops.bitwise_xor(
            ops.expand_dims(key, -1), levels * _u32(0x85EBCA6B) + _u32(0x632BE59B)
        )
    )
    # 24 random bits -> uniform in (0, 1), exactly representable in float32.
    uniform = (ops.cast(ops.right_shift(bits, _u32(8)), "float32") + 0.5) / 16777216.0
    return -ops.log(-ops.log(uniform))


def draw(logits, seeds, step, temperature):
    """Draws one level per row of `logits` `[N, K]` with Gumbel-max."""
    logits = ops.cast(logits, "float32")
    noise = gumbel_noise(seeds, step, ops.shape(logits)[-1])
    return ops.cast(ops.argmax(logits / temperature + noise, axis=-1), "int32")


def naive_step(logits_fn, canvas, step, seeds, temperature):
    """One step of the naive sampler, at any flat sub-pixel `step`.

    Args:
        logits_fn: maps an int32 canvas `[N, H, W, C]` to logits
            `[N, H, W, C, K]` (one full forward pass).
        canvas: int32 `[N, H, W, C]`.
        step: int32 scalar, the flat sub-pixel index (raster order, channel
            fastest).
        seeds, temperature: as in `naive_steps`.

    Returns:
        `(canvas, logits)`: the canvas with sub-pixel `step` drawn, and the
        logits `[N, K]` it was drawn from.
    """
    shape = ops.shape(canvas)
    num_steps = math.prod(shape[1:])
    logits = ops.reshape(logits_fn(canvas), (shape[0], num_steps, -1))
    step_logits = ops.take(logits, step, axis=1)  # [N, K]
    value = draw(step_logits, seeds, step, temperature)  # [N]
    flat = ops.reshape(canvas, (shape[0], num_steps))
    here = ops.equal(ops.arange(num_steps, dtype="int32"), step)[None, :]
    flat = ops.where(here, value[:, None], flat)
    return ops.reshape(flat, shape), step_logits


# ---- sampling hooks ----------------------------------------------------------
def supports_cached(model):
    """True when `model` implements the cached sampling hooks."""
    return bool(getattr(model, "supports_cached_sampling", False))


def unsupported_cached_error(model):
    """The ValueError of `method="cached"` for a model without its hooks."""
    return ValueError(
        "`method='cached'` supports the PixelCNN, GatedPixelCNN and "
        "PixelRNN models only; use `method='naive'` for this model. "
        f"Received: model of class {type(model).__name__}"
    )


def check_cached(model):
    """Raises `unsupported_cached_error(model)` unless `supports_cached(model)`."""
    if not supports_cached(model):
        raise unsupported_cached_error(model)


class NaiveHooks:
    """The sampling hooks of the naive method: one full forward pass per step.

    The "cache" is `(flat canvas [N, H*W*C], conditions)`; `cached_logits`
    runs the whole model on it, so each sub-pixel costs a full forward pass
    (the reference the cached method must match).

    Args:
        logits_fn: `logits_fn(canvas, conditions)` maps an int32 canvas
            `[N, H, W, C]` and a dict of conditions to logits
            `[N, H, W, C, K]`.
        image_shape: `(H, W, C)`.
    """

    def __init__(self, logits_fn, image_shape):
        self.logits_fn = logits_fn
        self.image_shape = tuple(image_shape)

    def new_cache(self, canvas, conditions):
        flat = ops.reshape(ops.cast(canvas, "int32"), (ops.shape(canvas)[0], -1))
        return flat, dict(conditions)

    def cached_logits(self, cache, i, j, slice_update=None):
        flat, conditions = cache
        height, width, channels = self.image_shape
        logits = self.logits_fn(
            ops.reshape(flat, (-1, height, width, channels)), conditions
        )
        logits = ops.reshape(logits, (ops.shape(flat)[0], height * width, channels, -1))
        return ops.take(logits, i * width + j, axis=1), cache  # [N, C, K]

    def write_cache(self, cache, value, i, j, c, slice_update=None):
        flat, conditions = cache
        width, channels = self.image_shape[1:]
        step = (i * width + j) * channels + c
        here = ops.equal(ops.arange(ops.shape(flat)[1], dtype="int32"), step)[None]
        return ops.where(here, value[:, None], flat), conditions

    def finish_row(self, cache, i, slice_update=None):
        return cache


# ---- the driver ----------------------------------------------------------------
def _pixel_step(hooks, seeds, temperature, given, known, slice_update):
    """`step(t, state) -> (state, logits [N, K])`: draws sub-pixel t."""
    height, width, channels = hooks.image_shape
    positions = ops.arange(height * width * channels, dtype="int32")

    def step(t, state):
        flat, cache = state
        c = t % channels
        j = (t // channels) % width
        i = t // (width * channels)
        logits, cache = hooks.cached_logits(cache, i, j, slice_update=slice_update)
        logits = ops.take(logits, c, axis=1)  # [N, K]
        value = draw(logits, seeds, t, temperature)
        value = ops.where(ops.take(known, t, axis=1), ops.take(given, t, axis=1), value)
        flat = ops.where(ops.equal(positions, t)[None], value[:, None], flat)
        cache = hooks.write_cache(cache, value, i, j, c, slice_update=slice_update)
        return (flat, cache), logits

    return step


def initial_state(hooks, canvas, conditions=None):
    """The driver state before step 0: `(flat canvas [N, H*W*C], cache)`.

    Args:
        hooks: the model (cached method) or a `NaiveHooks`.
        canvas: int `[N, H, W, C]`, the known sub-pixels set, zeros elsewhere.
        conditions: dict of the model's conditioning inputs.
    """
    flat = ops.reshape(ops.cast(canvas, "int32"), (ops.shape(canvas)[0], -1))
    return flat, hooks.new_cache(canvas, conditions or {})


def state_canvas(hooks, state):
    """The int32 canvas `[N, H, W, C]` of a driver state."""
    return ops.reshape(state[0], (-1, *hooks.image_shape))


def run_steps(
    hooks,
    state,
    start,
    stop,
    seeds,
    temperature,
    given,
    known,
    record=None,
    slice_update=None,
):
    """Runs sub-pixel steps `start <= t < stop` in the graph (`fori_loop`s).

    `start` and `stop` must be multiples of W * C (whole rows): after the
    last sub-pixel of each row the driver calls `hooks.finish_row`, outside
    the per-pixel loop (an XLA conditional in the pixel loop would copy every
    cache at every step).

    Args:
        hooks: the model (cached method) or a `NaiveHooks`.
        state: from `initial_state` (or a previous call).
        start, stop: int32 scalars.
        seeds: uint32 `[N]`.
        temperature: float32 scalar > 0.
        given: int32 `[N, H*W*C]`, values kept where `known` is set.
        known: bool `[N, H*W*C]`.
        record: optional float32 `[N, H*W*C, K]`; the logits of each step
            are written into it (for tests).
        slice_update: optional replacement for `keras.ops.slice_update`
            (same signature), passed to the hooks; the SavedModel export
            passes one made of standard TensorFlow ops.

    Returns:
        The new state, or `(state, record)` if `record` is given.
    """
    slice_update = slice_update or ops.slice_update
    width, channels = hooks.image_shape[1:]
    per_row = width * channels
    recording = record is not None
    step = _pixel_step(hooks, seeds, temperature, given, known, slice_update)

    def pixel(t, carry):
        if not recording:
            return step(t, carry)[0]
        state, record = carry
        state, logits = step(t, state)
        record = slice_update(record, [0, t, 0], logits[:, None, :])
        return state, record

    def row(i, carry):
        carry = ops.fori_loop(i * per_row, (i + 1) * per_row, pixel, carry)
        (flat, cache), record = carry if recording else (carry, None)
        cache = hooks.finish_row(cache, i, slice_update=slice_update)
        return ((flat, cache), record) if recording else (flat, cache)

    return ops.fori_loop(
        start // per_row,
        stop // per_row,
        row,
        (state, record) if recording else state,
    )


def naive_steps(logits_fn, canvas, start, stop, seeds, temperature, given, known):
    """Runs sub-pixel steps `start <= t < stop` of the naive sampler.

    Args:
        logits_fn: maps an int32 canvas `[N, H, W, C]` to logits
            `[N, H, W, C, K]` (one full forward pass).
        canvas: int32 `[N, H, W, C]`; sub-pixels before `start` are final.
        start, stop: int32 scalars (any sub-pixels: the naive method has no
            per-row work).
        seeds: uint32 `[N]`.
        temperature: float32 scalar > 0.
        given: int32 `[N, H*W*C]`, values kept where `known` is set.
        known: bool `[N, H*W*C]`.

    Returns:
        The canvas with sub-pixels `start ... stop - 1` drawn.
    """
    shape = tuple(int(d) for d in canvas.shape[1:])
    hooks = NaiveHooks(lambda x, conditions: logits_fn(x), shape)
    step = _pixel_step(hooks, seeds, temperature, given, known, ops.slice_update)
    state = ops.fori_loop(
        start, stop, lambda t, state: step(t, state)[0], initial_state(hooks, canvas)
    )
    return state_canvas(hooks, state)


# ---- compiled functions ------------------------------------------------------
def jit(fn, jit_compile=False):
    """Compiles `fn` with the active backend's tracer (graph or XLA).

    `jit_compile=True` asks TensorFlow for XLA too (JAX always uses it).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True, jit_compile=jit_compile or None)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def jit_model_fn(model, fn, jit_compile=False):
    """Like `jit`, for functions that read `model`'s weights.

    A traced JAX function would bake the weights in as constants, stale after
    any training step; here they are passed as arguments instead and read
    through a `keras.StatelessScope`. TensorFlow graphs read variables live.
    """
    if keras.backend.backend() != "jax":
        return jit(fn, jit_compile)
    import jax

    variables = list(model.variables)

    def with_values(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    compiled = jax.jit(with_values)

    def call(*args):
        return compiled([v.value for v in variables], *args)

    return call


class RowFunctions:
    """The compiled functions of one sampling method for one model.

    Attributes:
        hooks: the model (cached) or a `NaiveHooks` (naive).
        start: `start(canvas, conditions) -> state`.
        rows: `rows(state, start, stop, seeds, temperature, given, known)
            -> state`, runs whole rows `start // (W*C) ... stop // (W*C) - 1`.
    """

    def __init__(self, hooks, start, rows):
        self.hooks = hooks
        self.start = start
        self.rows = rows


def row_functions(model, method):
    """Compiles the driver for `model` and `method` ("naive" or "cached").

    The cached method runs under XLA on TensorFlow too: the loop is many
    small ops per step, which XLA fuses (and it updates the caches in place);
    3-5x faster on CPU. The naive method is a plain graph of full passes.

    Raises:
        ValueError: `method="cached"` for a model without the cached hooks.
    """
    if method == "cached":
        check_cached(model)
        hooks = model
    else:
        hooks = NaiveHooks(model.logits, model.image_shape)

    def rows(state, start, stop, seeds, temperature, given, known):
        return run_steps(hooks, state, start, stop, seeds, temperature, given, known)

    return RowFunctions(
        hooks,
        jit_model_fn(
            model, lambda canvas, conditions: initial_state(hooks, canvas, conditions)
        ),
        jit_model_fn(model, rows, jit_compile=method == "cached"),
    )


def sample_rows(
    functions, canvas, seeds, temperature, given, known, conditions=None, verbose=1
):
    """The row loop: one compiled call per image row, with a progress bar.

    Args:
        functions: a `RowFunctions` (from `row_functions`).
        canvas, seeds, temperature, given, known: tensors as in `run_steps`;
            `canvas` int32 `[N, H, W, C]`.
        conditions: dict of the model's conditioning inputs (tensors).
        verbose: 1 shows a progress bar over rows, 0 is silent.

    Returns:
        The int32 canvas `[N, H, W, C]`.
    """
    height, width, channels = functions.hooks.image_shape
    state = functions.start(canvas, conditions or {})
    bar = keras.utils.Progbar(height, unit_name="row") if verbose else None
    step = width * channels
    for row in range(height):
        start = ops.convert_to_tensor(np.int32(row * step))
        stop = ops.convert_to_tensor(np.int32((row + 1) * step))
        state = functions.rows(state, start, stop, seeds, temperature, given, known)
        if bar is not None:
            bar.update(row + 1)
    return state_canvas(functions.hooks, state)


def sample_with_logits(
    model, canvas, seeds, temperature, given, known, conditions=None
):
    """Runs every cached step in one compiled call; returns `(canvas, logits)`.

    `logits` is `[N, H, W, C, K]`: at each sub-pixel, the logits the cached
    sampler drew from (a test hook to compare with a full forward pass).
    """
    check_cached(model)
    height, width, channels = model.image_shape
    num_steps = height * width * channels

    def run(canvas, seeds, temperature, given, known, conditions):
        record = ops.zeros(
            (ops.shape(canvas)[0], num_steps, model.num_levels), "float32"
        )
        state, record = run_steps(
            model,
            initial_state(model, canvas, conditions),
            0,
            num_steps,
            seeds,
            temperature,
            given,
            known,
            record,
        )
        shape = (-1, height, width, channels, model.num_levels)
        return state_canvas(model, state), ops.reshape(record, shape)

    return jit_model_fn(model, run, jit_compile=True)(
        canvas, seeds, temperature, given, known, conditions or {}
    )
