"""Shared behaviour of pixel-keras models: input checks, likelihood, sampling.

Every model maps integer images `[B, H, W, C]` (values in `[0, K - 1]`) to
logits `[B, H, W, C, K]`, where the logits at sub-pixel (i, j, c) depend only
on sub-pixels that come earlier in raster order, channel fastest.

Conditional models p(x | h) take further named inputs next to `images`
(`class_label`, `condition`, `condition_map`, ...) and are called with a dict;
`log_prob`, `bits_per_dim` and `sample` accept the conditions as keyword
arguments and pass them on unchanged (fixed during sampling).
"""

import keras
import numpy as np
from keras import ops

from pixel_keras import losses, sampling
from pixel_keras.checks import is_real_number
from pixel_keras.models.presets import PresetMixin

try:  # Keras' shape-inference scope (`compute_output_spec`); private API.
    from keras.src.backend.common.symbolic_scope import (
        in_symbolic_scope as _in_symbolic_scope,
    )
except ImportError:  # pragma: no cover - other Keras versions

    def _in_symbolic_scope():
        return False


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


def _static_shape(x):
    """The shape as a tuple of ints, None where unknown (never a tensor)."""
    return tuple(None if d is None else int(d) for d in x.shape)


def _dtype_name(value):
    """The standardized dtype name of an array-like, or NumPy's own name
    (e.g. `<U1`, `object`) for dtypes Keras does not know."""
    dtype = getattr(value, "dtype", None)
    try:
        return keras.backend.standardize_dtype(dtype)
    except ValueError:
        return str(dtype)


def check_batch_size(batch_size):
    """Raises ValueError unless `batch_size` is an int >= 1 (not a bool)."""
    if not sampling.is_int(batch_size) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be an int >= 1. Received: batch_size={batch_size!r}"
        )


def check_known_mask(mask, shape, name="mask"):
    """Checks a completion mask (1/True = known) and returns it as bool.

    The mask must have `shape` and be boolean, or numeric with every value
    exactly 0 or 1 (a float mask of 0.5 is not "half known").

    Raises:
        ValueError: what must hold and what was received.
    """
    if not hasattr(mask, "shape"):
        mask = np.asarray(mask)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"`{name}` (the known mask) must have the shape of the images, "
            f"{tuple(shape)}. "
            f"Received: {name}.shape={tuple(mask.shape)}"
        )
    values = np.asarray(ops.convert_to_numpy(mask))
    if values.dtype == bool:
        return values
    if values.dtype.kind not in "iuf":
        raise ValueError(
            f"`{name}` must be boolean, or numbers that are all 0 (draw) or "
            f"1 (keep). Received: {name}.dtype={_dtype_name(values)}"
        )
    bad = values[(values != 0) & (values != 1)]
    if bad.size:
        raise ValueError(
            f"`{name}` must be boolean, or numbers that are all 0 (draw) or "
            f"1 (keep). Received: {name} of dtype {values.dtype} with "
            f"{bad.size} value(s) other than 0 and 1, e.g. {bad.flat[0].item()!r}"
        )
    return values.astype(bool)


class AutoregressiveImageModel(keras.Model, PresetMixin):
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
        if not hasattr(images, "shape") or isinstance(images, (list, tuple)):
            try:
                images = np.asarray(images)
            except ValueError:  # ragged nesting
                images = np.asarray(images, dtype=object)
        dtype = _dtype_name(images)
        if "int" not in dtype:
            raise ValueError(
                f"`{name}` must be integer images with values in "
                f"[0, {self.num_levels - 1}] (uint8 or int), not {dtype}; "
                "the model scales them itself. "
                f"Received: {name}.dtype={dtype}"
            )
        shape = _static_shape(images)
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
        if shape[0] == 0:
            raise ValueError(
                f"`{name}` must hold at least one image (batch size >= 1). "
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
                        f"Received: {name} values in [{low}, {high}]"
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
        num_classes = getattr(self, "num_classes", None)
        out = {}
        for name, spec in specs.items():
            value = conditions[name]
            event_shape = tuple(spec.shape[1:])
            integer = "int" in keras.backend.standardize_dtype(spec.dtype)
            raw = value
            if not _is_symbolic(value):
                try:
                    value = np.asarray(ops.convert_to_numpy(value))
                except (ValueError, TypeError):  # ragged or unconvertible
                    value = np.asarray(None)
            dtype = _dtype_name(value)
            if integer and "int" not in dtype:
                what = "integers"
                if name == "class_label" and num_classes:
                    what = f"integers in [0, {num_classes - 1}]"
                raise ValueError(
                    f"`{name}` must be {what}. "
                    f"Received: {name}={raw!r:.80} (dtype {dtype})"
                )
            if not integer and not any(k in dtype for k in ("int", "float", "bool")):
                raise ValueError(
                    f"`{name}` must be numbers (it is fed as float32). "
                    f"Received: {name}={raw!r:.80} (dtype {dtype})"
                )
            shape = _static_shape(value)
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
                or (None not in (shape[0], num_images) and shape[0] != num_images)
            ):
                raise ValueError(
                    f"`{name}` must have shape {(num_images, *event_shape)} "
                    f"(one per image) or {event_shape}. "
                    f"Received: {name}.shape={shape}"
                )
            if name == "class_label" and num_classes and not _is_symbolic(value):
                if value.size and (value.min() < 0 or value.max() >= num_classes):
                    raise ValueError(
                        f"`class_label` values must lie in [0, {num_classes - 1}] "
                        f"(num_classes={num_classes}). Received: class_label "
                        f"values in [{int(value.min())}, {int(value.max())}]"
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

    def logits(self, images, conditions=None):
        """Logits `[N, H, W, C, K]` of one full forward pass (inference).

        Args:
            images: int images `[N, H, W, C]`.
            conditions: dict of the model's conditioning inputs (None or
                empty for unconditional models).
        """
        return self(self._model_inputs(images, conditions), training=False)

    # ---- direct calls --------------------------------------------------
    def validate_inputs(self, inputs):
        """Checks a model input: images, or a dict with `images` and conditions.

        Concrete inputs (NumPy, eager tensors) get every check of
        `validate_images` and `validate_conditions`, values included;
        symbolic ones (Keras `fit`/`evaluate`/`predict`, any `tf.function`
        or `jax.jit`) the static ones only (dtype, rank, shape), so the
        compiled path costs nothing per step and trusts its values.

        Returns:
            The input with its conditions standardized (int32/float32, one
            condition without batch axis repeated for every image).
        """
        if isinstance(inputs, dict):
            conditions = dict(inputs)
            if "images" not in conditions:
                raise ValueError(
                    "A dict input must hold the `images` (and the model's "
                    f"conditions, {list(self.condition_names)}). "
                    f"Received: keys {sorted(map(str, conditions))}"
                )
            images = conditions.pop("images")
        else:
            images, conditions = inputs, {}
        images = self.validate_images(images)
        conditions = self.validate_conditions(_static_shape(images)[0], **conditions)
        return self._model_inputs(images, conditions)

    def __call__(self, *args, **kwargs):
        """`model(inputs, training=...)`, after `validate_inputs(inputs)`.

        Checked here rather than in `call`: Keras compares the input with
        the model's input spec before `call`, with a message that misreports
        the shape of a 1-channel input.
        """
        inputs = args[0] if args else kwargs.get("inputs")
        if _in_symbolic_scope() or any(
            isinstance(x, keras.KerasTensor) for x in keras.tree.flatten(inputs)
        ):
            # Shape inference only (`compute_output_spec`, Keras' symbolic
            # build in `fit`), never data: under a multi-replica
            # tf.distribute strategy Keras builds from the per-replica batch
            # reduced with "MEAN", which turns integer images into float64
            # placeholders. Traced calls on real data are still checked.
            return super().__call__(*args, **kwargs)
        if args:
            args = (self.validate_inputs(args[0]), *args[1:])
        elif "inputs" in kwargs:
            kwargs["inputs"] = self.validate_inputs(kwargs["inputs"])
        return super().__call__(*args, **kwargs)

    # ---- training defaults -------------------------------------------
    def compile(self, optimizer="adam", loss="auto", metrics="auto", **kwargs):
        """Compiles with the pixel NLL loss (nats/image) and bits/dim metric.

        `loss="auto"` is `losses.PixelNLL()`, `metrics="auto"` is
        `[losses.BitsPerDim()]`; train on `(images, images)` pairs.
        """
        auto_loss = isinstance(loss, str) and loss == "auto"
        if auto_loss:
            loss = losses.PixelNLL()
        # With the default loss and no regularizers, the loss *is* the mean
        # NLL in nats/image, so bits/dim is derived from it in
        # `get_metrics_result` instead of being computed a second time from
        # the logits (a second softmax over every sub-pixel: ~15% of a
        # PixelCNN training step on CPU).
        self._bits_per_dim_from_loss = False
        if isinstance(metrics, str) and metrics == "auto":
            if auto_loss and not self._has_regularizers():
                self._bits_per_dim_from_loss = True
                metrics = None
            else:
                metrics = [losses.BitsPerDim()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def init_output_bias(self, images, smoothing=1.0):
        """Data-dependent initialization: output bias at the log marginal.

        Sets the bias of the last output layer so that, before training, the
        logits of channel `c` are shifted by `log p_c(k)`, the frequency of
        level `k` in channel `c` of `images` (add-`smoothing` counts, so no
        level gets probability 0). A freshly initialized model then starts
        near the marginal's bits/dim (4.9 on the Fashion-MNIST test split
        from its first 1,024 training images: half the pixels are background
        0) instead of about `log2(num_levels)` = 8, which saves training steps
        (PixelCNN++ and TFP's `PixelCNN` initialize from the first batch in
        the same spirit). Call it once, before training; it changes no other
        weight.

        Args:
            images: integer images `[N, H, W, C]` with values in
                `[0, num_levels - 1]`, e.g. the first batches of the training
                data.
            smoothing: a finite number >= 0 added to every level's count
                (> 0 unless every level occurs).

        Returns:
            The bias written, a NumPy array `[C * num_levels]` (map
            `c * num_levels + k` belongs to level `k` of channel `c`).

        Raises:
            ValueError: bad images or smoothing, or a level with zero count
                and smoothing 0.
        """
        images = self.validate_images(images)
        if not (is_real_number(smoothing) and 0 <= smoothing < np.inf):
            raise ValueError(
                f"`smoothing` must be a finite number >= 0. Received: smoothing={smoothing!r}"
            )
        values = ops.convert_to_numpy(images).astype(np.int64)
        channels, levels = self.image_shape[-1], self.num_levels
        counts = np.stack(
            [
                np.bincount(values[..., c].ravel(), minlength=levels)
                for c in range(channels)
            ]
        ).astype(np.float64) + float(smoothing)
        if not counts.all():
            raise ValueError(
                "Every level needs a count > 0 for a finite log-probability: "
                "pass `smoothing` > 0. Received: smoothing=0 and images in "
                f"which {int((counts == 0).sum())} (channel, level) pairs never occur"
            )
        bias = np.log(counts / counts.sum(axis=1, keepdims=True)).reshape(-1)
        layer = self.output_convs[-1]
        layer.bias.assign(bias.astype(layer.bias.dtype))
        return bias

    def _has_regularizers(self):
        return any(
            getattr(layer, attr, None) is not None
            for layer in self._flatten_layers()
            for attr in ("kernel_regularizer", "bias_regularizer")
        )

    def get_metrics_result(self):
        result = super().get_metrics_result()
        if getattr(self, "_bits_per_dim_from_loss", False) and "loss" in result:
            result["bits_per_dim"] = losses.nats_to_bits_per_dim(
                result["loss"], self.image_shape
            )
        return result

    # Keras skips `compile()` on load when a model overrides it, unless these
    # two are overridden; then a loaded `.keras` file is compiled again, with
    # its optimizer state restored.
    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None and getattr(self, "_bits_per_dim_from_loss", False):
            config["metrics"] = "auto"
        return config

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
        check_batch_size(batch_size)
        images = self.validate_images(images)
        conditions = self.validate_conditions(
            _static_shape(images)[0],
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
        return losses.nats_to_bits_per_dim(nll, self.image_shape)

    # ---- cached sampling hooks ------------------------------------------
    # The cached method of `sample` (and of the exported `sample`/`complete`
    # signatures) computes each layer at the current pixel only, from caches
    # the model keeps; `pixel_keras.sampling.run_steps` drives these hooks.
    # A model without them samples with `method="naive"` only. A cache is
    # any nest of tensors (a `fori_loop` carry). Hooks that write into a
    # cache do it with `slice_update` (`keras.ops.slice_update` when None;
    # the SavedModel export passes one made of standard TensorFlow ops).

    @property
    def supports_cached_sampling(self):
        """True when the model implements the cached sampling hooks."""
        return type(self).new_cache is not AutoregressiveImageModel.new_cache

    def new_cache(self, canvas, conditions):
        """The caches before the first step.

        Args:
            canvas: int32 `[N, H, W, C]`, known sub-pixels set, zeros elsewhere.
            conditions: dict of the model's conditioning inputs (tensors).

        Returns:
            The cache (a nest of tensors).

        Raises:
            ValueError: the model has no cached sampler.
        """
        raise sampling.unsupported_cached_error(self)

    def cached_logits(self, cache, i, j, slice_update=None):
        """The logits at pixel (i, j), given every earlier sub-pixel.

        Called once per sub-pixel of (i, j), after the previous sub-pixels of
        the pixel were written with `write_cache`.

        Args:
            cache: from `new_cache` (or the previous hook).
            i, j: int32 scalars, the pixel's row and column.
            slice_update: see above.

        Returns:
            `(logits [N, C, K], cache)`: the logits of every sub-pixel of
            (i, j) (only those of the current one and earlier are final),
            and the cache (with the pixel's column of layer inputs written).
        """
        raise sampling.unsupported_cached_error(self)

    def write_cache(self, cache, value, i, j, c, slice_update=None):
        """Writes the drawn (or known) level `value` `[N]` of sub-pixel
        (i, j, c) into the cache; returns the cache."""
        raise sampling.unsupported_cached_error(self)

    def finish_row(self, cache, i, slice_update=None):
        """Per-row work once row i is finished (its last sub-pixel written);
        returns the cache. None by default."""
        return cache

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
            temperature: a finite number > 0; logits are divided by it.
            conditioned_on: optional `(images, mask)`: integer images and a
                mask of the same shape, boolean or all 0/1 (1/True = known).
                Known sub-pixels are kept, the others drawn given everything
                before them.
            verbose: 1 shows a progress bar over rows, 0 is silent.
            class_label: conditional models only: int `[num_samples]`, or
                one int for every sample; fixed during sampling.
            condition: conditional models only: float `[num_samples, D]`.
            condition_map: conditional models only: float
                `[num_samples, H, W, S]`.
            method: "cached" (default: per-layer caches, O(1) work per
                sub-pixel; the hooks above, driven by `pixel_keras.sampling`)
                or "naive"
                (one full forward pass per sub-pixel, the reference). Both
                give the same images for the same seeds.

        Returns:
            NumPy uint8 images `[num_samples, H, W, C]` (int32 if K > 256).
        """
        if not isinstance(method, str) or method not in ("naive", "cached"):
            raise ValueError(
                "`method` must be one of {'naive', 'cached'}. "
                f"Received: method={method!r}"
            )
        if method == "cached":
            sampling.check_cached(self)
        seeds = sampling.per_sample_seeds(num_samples, seed)
        temperature = sampling.check_temperature(temperature)
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
            if (
                not isinstance(conditioned_on, (tuple, list))
                or len(conditioned_on) != 2
            ):
                raise ValueError(
                    "`conditioned_on` must be a pair (images, mask). "
                    f"Received: conditioned_on={type(conditioned_on).__name__}"
                )
            given, mask = conditioned_on
            given = self.validate_images(given, "conditioned_on[0]")
            given = np.asarray(ops.convert_to_numpy(given))
            if len(given) != num_samples:
                raise ValueError(
                    "`conditioned_on[0]` (the images to complete) must hold "
                    f"num_samples={num_samples} images. "
                    f"Received: conditioned_on[0].shape={given.shape}"
                )
            known = check_known_mask(mask, given.shape, "conditioned_on[1]")
            given = given.reshape(num_samples, num_steps).astype("int32")
            known = known.reshape(num_samples, num_steps)
        canvas = np.where(known, given, 0).reshape(num_samples, *self.image_shape)
        canvas = ops.convert_to_tensor(canvas.astype("int32"))

        functions = self._row_functions(method)
        out = sampling.sample_rows(
            functions,
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

    def _row_functions(self, method):
        """`sampling.row_functions(self, method)`, compiled once per model."""
        attr = f"_{method}_row_functions"
        functions = getattr(self, attr, None)
        if functions is None:
            functions = sampling.row_functions(self, method)
            setattr(self, attr, functions)
        return functions
