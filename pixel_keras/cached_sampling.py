"""Deprecated: the cached sampler now lives with each model.

Each architecture implements the cache hooks that `AutoregressiveImageModel`
declares (`new_cache`, `cached_logits`, `write_cache`, `finish_row`) next to
its graph, and `pixel_keras.sampling` drives them (and the naive method) with
one row loop. This module keeps the old entry points for one release; each
warns with a DeprecationWarning:

- `supports(model)` -> `sampling.supports_cached(model)` (or
  `model.supports_cached_sampling`)
- `cached_sampler(model)` -> `sampling.check_cached(model)`; the model itself
  now holds the hooks, and it is what this returns
- `sample_rows(...)` -> `model.sample(..., method="cached")`, or
  `sampling.sample_rows(sampling.row_functions(model, "cached"), ...)`
- `sample_with_logits(...)` -> `sampling.sample_with_logits(...)`
"""

import warnings

from pixel_keras import sampling


def _warn(old, new):
    warnings.warn(
        f"`pixel_keras.cached_sampling.{old}` is deprecated; use {new}.",
        DeprecationWarning,
        stacklevel=3,
    )


def supports(model):
    """Deprecated: `sampling.supports_cached(model)`."""
    _warn("supports", "`pixel_keras.sampling.supports_cached`")
    return sampling.supports_cached(model)


def cached_sampler(model):
    """Deprecated: checks that `model` has the cached hooks; returns it."""
    _warn("cached_sampler", "`pixel_keras.sampling.check_cached`")
    sampling.check_cached(model)
    return model


def sample_rows(
    model, canvas, seeds, temperature, given, known, conditions=None, verbose=1
):
    """Deprecated: `sampling.sample_rows` with `sampling.row_functions`."""
    _warn("sample_rows", '`model.sample(..., method="cached")`')
    return sampling.sample_rows(
        sampling.row_functions(model, "cached"),
        canvas,
        seeds,
        temperature,
        given,
        known,
        conditions,
        verbose=verbose,
    )


def sample_with_logits(
    model, canvas, seeds, temperature, given, known, conditions=None
):
    """Deprecated: `sampling.sample_with_logits`."""
    _warn("sample_with_logits", "`pixel_keras.sampling.sample_with_logits`")
    return sampling.sample_with_logits(
        model, canvas, seeds, temperature, given, known, conditions
    )
