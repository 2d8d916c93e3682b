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
"""

import math

import numpy as np
from keras import ops

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
        return np.random.default_rng().integers(0, 2**32, size=num_samples).astype(
            "uint32"
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


# Temperatures float32 can divide logits by (`draw` runs in float32): the
# smallest normal float32 and the largest finite one. The exported signatures
# check the same range in the graph.
MIN_TEMPERATURE = float(np.finfo(np.float32).tiny)
MAX_TEMPERATURE = float(np.finfo(np.float32).max)
TEMPERATURE_RULE = (
    "`temperature` must be a finite number > 0 (at least "
    f"{MIN_TEMPERATURE:.4g} and at most {MAX_TEMPERATURE:.4g}, the float32 "
    "range the logits are divided in)."
)


def check_temperature(temperature):
    """Returns `temperature` as a float after checking it.

    Raises:
        ValueError: unless it is a finite number > 0 (a real number, not a
            bool, in `[MIN_TEMPERATURE, MAX_TEMPERATURE]`).
    """
    valid = isinstance(temperature, (int, float, np.integer, np.floating)) and (
        not isinstance(temperature, bool)
    )
    try:
        valid = valid and MIN_TEMPERATURE <= float(temperature) <= MAX_TEMPERATURE
    except OverflowError:  # an int beyond float's range
        valid = False
    if not valid:
        raise ValueError(f"{TEMPERATURE_RULE} Received: temperature={temperature!r}")
    return float(temperature)


def gumbel_noise(seeds, step, num_levels):
    """Gumbel(0, 1) noise `[N, num_levels]` for sub-pixel `step`.

    Args:
        seeds: uint32 tensor `[N]`.
        step: int32 scalar tensor, the flat sub-pixel index.
        num_levels: int, number of levels K.
    """
    step = ops.cast(step, "uint32")
    key = _mix32(ops.add(ops.cast(seeds, "uint32"), _mix32(step + _u32(1)) * _u32(_GOLDEN)))
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


def naive_steps(logits_fn, canvas, start, stop, seeds, temperature, given, known):
    """Runs sub-pixel steps `start <= t < stop` of the naive sampler.

    Args:
        logits_fn: maps an int32 canvas `[N, H, W, C]` to logits
            `[N, H, W, C, K]` (one full forward pass).
        canvas: int32 `[N, H, W, C]`; sub-pixels before `start` are final.
        start, stop: int32 scalars.
        seeds: uint32 `[N]`.
        temperature: float32 scalar > 0.
        given: int32 `[N, H*W*C]`, values kept where `known` is set.
        known: bool `[N, H*W*C]`.

    Returns:
        The canvas with sub-pixels `start ... stop - 1` drawn.
    """
    shape = ops.shape(canvas)
    num_steps = math.prod(shape[1:])
    positions = ops.arange(num_steps, dtype="int32")

    def body(t, flat):
        logits = logits_fn(ops.reshape(flat, shape))
        logits = ops.reshape(logits, (shape[0], num_steps, -1))
        step_logits = ops.take(logits, t, axis=1)  # [N, K]
        here = ops.expand_dims(ops.equal(positions, t), 0)  # [1, HWC]
        value = draw(step_logits, seeds, t, temperature)
        value = ops.expand_dims(value, -1)
        value = ops.where(known, given, value)
        return ops.where(here, value, flat)

    flat = ops.reshape(ops.cast(canvas, "int32"), (shape[0], num_steps))
    flat = ops.fori_loop(start, stop, body, flat)
    return ops.reshape(flat, shape)
