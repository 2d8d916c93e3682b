"""Shared behaviour of pixel-keras models: input checks, likelihood, sampling.

Every model maps integer images `[B, H, W, C]` (values in `[0, K - 1]`) to
logits `[B, H, W, C, K]`, where the logits at sub-pixel (i, j, c) depend only
on sub-pixels that come earlier in raster order, channel fastest.

Conditional models p(x | h) take further named inputs next to `images`
(`class_label`, `condition`, `condition_map`, ...) and are called with a dict;
`log_prob`, `bits_per_dim` and `sample` accept the conditions as keyword
arguments and pass them on unchanged (fixed during sampling).
"""

import math

import keras
import numpy as np
from keras import ops

from pixel_keras import losses, sampling


def _jit(fn, jit_compile=False):
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


def _jit_model_fn(model, fn, jit_compile=False):
    """Like `_jit`, for functions that read `model`'s weights.

    A traced JAX function would bake the weights in as constants, stale after
    any training step; here they are passed as arguments instead and read
    through a `keras.StatelessScope`. TensorFlow graphs read variables live.
    """
    if keras.backend.backend() != "jax":
        return _jit(fn, jit_compile)
    import jax

    variables = list(model.variables)

    def with_values(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    compiled = jax.jit(with_values)

    def call(*args):
        return compiled([v.value for v in variables], *args)

    return call


def _is_symbolic(x):
    """True for tensors whose values are unknown (graph or trace time)."""
    if isinstance(x, keras.KerasTensor):
        return True
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return isinstance(x, tf.Tensor) and not tf.executing_eagerly()
    if backend == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    return False


class AutoregressiveImageModel(keras.Model):
    """Base class: likelihood, bits/dim and sampling for pixel models.

    Subclasses are functional models whose input is named `images` and whose
    output is logits `[B, H, W, C, K]`, and set `self.image_shape` (a tuple
    `(H, W, C)`) and `self.num_levels` (K).
    """

    @classmethod
    def from_config(cls, config):
        """Rebuilds the model from `get_config()` (JSON turns tuples to lists)."""
        config = dict(config)
        config["image_shape"] = tuple(config["image_shape"])
        return cls(**config)

    # ---- input checks -------------------------------------------------
    def validate_images(self, images, name="images"):
        """Checks integer dtype, rank, shape and value range.

        Concrete arrays get all checks; symbolic tensors (inside a traced
        function) get the static ones.

        Returns:
            The images as given (NumPy input stays NumPy).

        Raises:
            ValueError: what must hold and what was received.
        """
        if isinstance(images, (list, tuple)):
            images = np.asarray(images)
        dtype = keras.backend.standardize_dtype(getattr(images, "dtype", None))
        if "int" not in dtype:
            raise ValueError(
                f"`{name}` must be integer images with values in "
                f"[0, {self.num_levels - 1}] (uint8 or int), not {dtype}; "
                "the model scales them itself. "
                f"Received: {name}.dtype={dtype}"
            )
        shape = tuple(ops.shape(images))
        if len(shape) != 4:
            raise ValueError(
                f"`{name}` must have rank 4 [batch, height, width, channels]. "
                f"Received: {name}.shape={shape}"
            )
        if tuple(shape[1:]) != tuple(self.image_shape):
            raise ValueError(
                f"`{name}` must have image shape {tuple(self.image_shape)} "
                f"(height, width, channels) for this model. "
                f"Received: {name}.shape={shape}"
            )
        if not _is_symbolic(images):
            values = ops.convert_to_numpy(images)
            if values.size:
                low, high = int(values.min()), int(values.max())
                if low < 0 or high >= self.num_levels:
                    raise ValueError(
                        f"`{name}` values must lie in [0, {self.num_levels - 1}] "
                        f"(num_levels={self.num_levels}). "
                        f"Received: values in [{low}, {high}]"
                    )
        return images

    # ---- conditions ----------------------------------------------------
    @property
    def condition_names(self):
        """Names of the conditioning inputs (every input but `images`)."""
        return tuple(t.name for t in (self.inputs or ()) if t.name != "images")

    def validate_conditions(self, num_images, **conditions):
        """Checks the conditions of a batch of `num_images` images.

        `None` values count as not given. A condition without its batch axis
        (e.g. one int class label) is repeated for every image. Concrete
        arrays get all checks (class labels in `[0, num_classes)`); symbolic
        tensors the static ones.

        Returns:
            Dict name -> condition for every conditioning input of the model
            (empty for unconditional models).

        Raises:
            ValueError: a missing or unexpected condition, a wrong shape,
                dtype or class label.
        """
        conditions = {k: v for k, v in conditions.items() if v is not None}
        specs = {t.name: t for t in (self.inputs or ()) if t.name != "images"}
        unexpected = sorted(set(conditions) - set(specs))
        if unexpected:
            raise ValueError(
                f"This model takes no `{unexpected[0]}`. Its conditions: "
                f"{sorted(specs) or 'none (unconditional model)'}. "
                f"Received: {unexpected[0]}={conditions[unexpected[0]]!r:.80}"
            )
        missing = sorted(set(specs) - set(conditions))
        if missing:
            raise ValueError(
                f"This model is conditional: `{missing[0]}` is required "
                f"(shape {(None, *specs[missing[0]].shape[1:])}). "
                f"Received: {missing[0]}=None"
            )
        out = {}
        for name, spec in specs.items():
            value = conditions[name]
            event_shape = tuple(spec.shape[1:])
            integer = "int" in keras.backend.standardize_dtype(spec.dtype)
            if not _is_symbolic(value):
                value = np.asarray(ops.convert_to_numpy(value))
            dtype = keras.backend.standardize_dtype(value.dtype)
            if integer and "int" not in dtype:
                raise ValueError(
                    f"`{name}` must be integers. Received: {name}.dtype={dtype}"
                )
            shape = tuple(ops.shape(value))
            if (
                shape == event_shape
                and num_images is not None
                and not _is_symbolic(value)
            ):
                value = np.broadcast_to(value, (num_images, *event_shape))
                shape = value.shape
            if (
                len(shape) != len(event_shape) + 1
                or tuple(shape[1:]) != event_shape
                or (shape[0] is not None and shape[0] != num_images)
            ):
                raise ValueError(
                    f"`{name}` must have shape {(num_images, *event_shape)} "
                    f"(one per image) or {event_shape}. "
                    f"Received: {name}.shape={shape}"
                )
            num_classes = getattr(self, "num_classes", None)
            if name == "class_label" and num_classes and not _is_symbolic(value):
                if value.size and (value.min() < 0 or value.max() >= num_classes):
                    raise ValueError(
                        f"`class_label` values must lie in [0, {num_classes - 1}] "
                        f"(num_classes={num_classes}). Received: values in "
                        f"[{int(value.min())}, {int(value.max())}]"
                    )
            if not _is_symbolic(value):
                value = value.astype("int32" if integer else "float32")
            out[name] = value
        return out

    def _model_inputs(self, images, conditions=None):
        """The model's input: the images alone, or a dict with the conditions."""
        if not conditions:
            return images
        return {"images": images, **conditions}

    # ---- training defaults -------------------------------------------
    def compile(self, optimizer="adam", loss="auto", metrics="auto", **kwargs):
        """Compiles with the pixel NLL loss (nats/image) and bits/dim metric.

        `loss="auto"` is `losses.PixelNLL()`, `metrics="auto"` is
        `[losses.BitsPerDim()]`; train on `(images, images)` pairs.
        """
        if isinstance(loss, str) and loss == "auto":
            loss = losses.PixelNLL()
        if isinstance(metrics, str) and metrics == "auto":
            metrics = [losses.BitsPerDim()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    # Keras skips `compile()` on load when a model overrides it, unless these
    # two are overridden; then a loaded `.keras` file is compiled again, with
    # its optimizer state restored.
    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    # ---- likelihood ----------------------------------------------------
    def _log_prob_tensor(self, images, conditions=None):
        """Log-likelihood in nats `[B]` for a batch, as a backend tensor."""
        logits = self(self._model_inputs(images, conditions), training=False)
        if keras.backend.backend() == "tensorflow":
            from pixel_keras import distributions

            return distributions.log_prob(logits, images)
        return -losses.nll_per_image(images, logits)

    def log_prob(
        self,
        images,
        batch_size=64,
        *,
        class_label=None,
        condition=None,
        condition_map=None,
    ):
        """Log-likelihood of each image in nats, NumPy `[N]` (float32).

        Uses the TFP `Independent(Categorical)` distribution on the
        TensorFlow backend and the same formula in `keras.ops` elsewhere.

        Args:
            images: integer images `[N, H, W, C]`.
            batch_size: int, images per forward pass.
            class_label: conditional models only: int `[N]` (or one int).
            condition: conditional models only: float `[N, D]`.
            condition_map: conditional models only: float `[N, H, W, S]`.
        """
        images = self.validate_images(images)
        conditions = self.validate_conditions(
            ops.shape(images)[0],
            class_label=class_label,
            condition=condition,
            condition_map=condition_map,
        )
        if _is_symbolic(images):
            return self._log_prob_tensor(images, conditions)
        values = ops.convert_to_numpy(images).astype("int32")
        out = [
            ops.convert_to_numpy(
                self._log_prob_tensor(
                    values[i : i + batch_size],
                    {k: v[i : i + batch_size] for k, v in conditions.items()},
                )
            )
            for i in range(0, len(values), batch_size)
        ]
        return np.concatenate(out).astype("float32")

    def bits_per_dim(
        self,
        images,
        batch_size=64,
        *,
        class_label=None,
        condition=None,
        condition_map=None,
    ):
        """Bits per dimension of each image: -log_prob / (H*W*C*ln 2).

        Takes the same conditions as `log_prob`.
        """
        nll = -self.log_prob(
            images,
            batch_size=batch_size,
            class_label=class_label,
            condition=condition,
            condition_map=condition_map,
        )
        return nll / (math.prod(self.image_shape) * math.log(2.0))

    # ---- sampling ------------------------------------------------------
    def sample(
        self,
        num_samples,
        seed=None,
        temperature=1.0,
        conditioned_on=None,
        verbose=1,
        *,
        class_label=None,
        condition=None,
        condition_map=None,
        method="cached",
    ):
        """Draws images sub-pixel by sub-pixel.

        Args:
            num_samples: int, number of images.
            seed: None, an int, or one int per sample (see
                `sampling.per_sample_seeds`). The same seed gives the same
                images on every run and backend.
            temperature: float > 0; logits are divided by it.
            conditioned_on: optional `(images, mask)`: integer images and a
                mask of the same shape (1/True = known). Known sub-pixels are
                kept, the others drawn given everything before them.
            verbose: 1 shows a progress bar over rows, 0 is silent.
            class_label: conditional models only: int `[num_samples]`, or
                one int for every sample; fixed during sampling.
            condition: conditional models only: float `[num_samples, D]`.
            condition_map: conditional models only: float
                `[num_samples, H, W, S]`.
            method: "cached" (default: per-layer caches, O(1) work per
                sub-pixel; see `pixel_keras.cached_sampling`) or "naive"
                (one full forward pass per sub-pixel, the reference). Both
                give the same images for the same seeds.

        Returns:
            NumPy uint8 images `[num_samples, H, W, C]` (int32 if K > 256).
        """
        if method not in ("naive", "cached"):
            raise ValueError(
                "`method` must be one of {'naive', 'cached'}. "
                f"Received: method={method!r}"
            )
        if method == "cached":
            from pixel_keras import cached_sampling

            cached_sampling.cached_sampler(self)  # raises if unsupported
        seeds = sampling.per_sample_seeds(num_samples, seed)
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(
                "`temperature` must be a number > 0. "
                f"Received: temperature={temperature!r}"
            )
        conditions = self.validate_conditions(
            num_samples,
            class_label=class_label,
            condition=condition,
            condition_map=condition_map,
        )
        height, width, channels = self.image_shape
        num_steps = height * width * channels
        if conditioned_on is None:
            given = np.zeros((num_samples, num_steps), "int32")
            known = np.zeros((num_samples, num_steps), bool)
        else:
            if not isinstance(conditioned_on, (tuple, list)) or len(conditioned_on) != 2:
                raise ValueError(
                    "`conditioned_on` must be a pair (images, mask). "
                    f"Received: conditioned_on={type(conditioned_on).__name__}"
                )
            given, mask = conditioned_on
            given = ops.convert_to_numpy(self.validate_images(given, "conditioned_on[0]"))
            mask = np.asarray(ops.convert_to_numpy(mask))
            if mask.shape != given.shape or len(given) != num_samples:
                raise ValueError(
                    "`conditioned_on` images and mask must both have shape "
                    f"{(num_samples, *self.image_shape)}. Received: images "
                    f"{given.shape}, mask {mask.shape}"
                )
            given = given.reshape(num_samples, num_steps).astype("int32")
            known = mask.reshape(num_samples, num_steps).astype(bool)
        canvas = np.where(known, given, 0).reshape(num_samples, *self.image_shape)
        canvas = ops.convert_to_tensor(canvas.astype("int32"))

        if method == "cached":
            out = cached_sampling.sample_rows(
                self,
                canvas,
                ops.convert_to_tensor(seeds),
                ops.convert_to_tensor(np.float32(temperature)),
                ops.convert_to_tensor(given),
                ops.convert_to_tensor(known),
                {k: ops.convert_to_tensor(v) for k, v in conditions.items()},
                verbose=verbose,
            )
            out = ops.convert_to_numpy(out)
            return out.astype("uint8" if self.num_levels <= 256 else "int32")

        if getattr(self, "_naive_rows_fn", None) is None:

            def rows(canvas, start, stop, seeds, temperature, given, known, conditions):
                return sampling.naive_steps(
                    lambda x: self(self._model_inputs(x, conditions), training=False),
                    canvas,
                    start,
                    stop,
                    seeds,
                    temperature,
                    given,
                    known,
                )

            self._naive_rows_fn = _jit_model_fn(self, rows)

        args = [
            ops.convert_to_tensor(seeds),
            ops.convert_to_tensor(np.float32(temperature)),
            ops.convert_to_tensor(given),
            ops.convert_to_tensor(known),
            {k: ops.convert_to_tensor(v) for k, v in conditions.items()},
        ]
        bar = keras.utils.Progbar(height, unit_name="row") if verbose else None
        step = width * channels
        for row in range(height):
            start = ops.convert_to_tensor(np.int32(row * step))
            stop = ops.convert_to_tensor(np.int32((row + 1) * step))
            canvas = self._naive_rows_fn(canvas, start, stop, *args)
            if bar is not None:
                bar.update(row + 1)
        out = ops.convert_to_numpy(canvas)
        return out.astype("uint8" if self.num_levels <= 256 else "int32")
