"""Shared behaviour of pixel-keras models: input checks, likelihood, sampling.

Every model maps integer images `[B, H, W, C]` (values in `[0, K - 1]`) to
logits `[B, H, W, C, K]`, where the logits at sub-pixel (i, j, c) depend only
on sub-pixels that come earlier in raster order, channel fastest.
"""

import math

import keras
import numpy as np
from keras import ops

from pixel_keras import losses, sampling


def _jit(fn):
    """Compiles `fn` with the active backend's tracer (graph or XLA)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


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

    # ---- likelihood ----------------------------------------------------
    def _log_prob_tensor(self, images):
        """Log-likelihood in nats `[B]` for a batch, as a backend tensor."""
        logits = self(images, training=False)
        if keras.backend.backend() == "tensorflow":
            from pixel_keras import distributions

            return distributions.log_prob(logits, images)
        return -losses.nll_per_image(images, logits)

    def log_prob(self, images, batch_size=64):
        """Log-likelihood of each image in nats, NumPy `[N]` (float32).

        Uses the TFP `Independent(Categorical)` distribution on the
        TensorFlow backend and the same formula in `keras.ops` elsewhere.
        """
        images = self.validate_images(images)
        if _is_symbolic(images):
            return self._log_prob_tensor(images)
        values = ops.convert_to_numpy(images).astype("int32")
        out = [
            ops.convert_to_numpy(self._log_prob_tensor(values[i : i + batch_size]))
            for i in range(0, len(values), batch_size)
        ]
        return np.concatenate(out).astype("float32")

    def bits_per_dim(self, images, batch_size=64):
        """Bits per dimension of each image: -log_prob / (H*W*C*ln 2)."""
        nll = -self.log_prob(images, batch_size=batch_size)
        return nll / (math.prod(self.image_shape) * math.log(2.0))

    # ---- sampling ------------------------------------------------------
    def sample(
        self,
        num_samples,
        seed=None,
        temperature=1.0,
        conditioned_on=None,
        verbose=1,
    ):
        """Draws images sub-pixel by sub-pixel (naive: one pass per step).

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

        Returns:
            NumPy uint8 images `[num_samples, H, W, C]` (int32 if K > 256).
        """
        seeds = sampling.per_sample_seeds(num_samples, seed)
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(
                "`temperature` must be a number > 0. "
                f"Received: temperature={temperature!r}"
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

        if getattr(self, "_naive_rows_fn", None) is None:

            def rows(canvas, start, stop, seeds, temperature, given, known):
                return sampling.naive_steps(
                    lambda x: self(x, training=False),
                    canvas,
                    start,
                    stop,
                    seeds,
                    temperature,
                    given,
                    known,
                )

            self._naive_rows_fn = _jit(rows)

        args = [
            ops.convert_to_tensor(seeds),
            ops.convert_to_tensor(np.float32(temperature)),
            ops.convert_to_tensor(given),
            ops.convert_to_tensor(known),
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
