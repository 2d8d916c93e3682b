"""Pixel likelihood losses and metrics in `keras.ops` (every backend).

The model's logits have shape `[B, H, W, C, K]`: a `K`-way categorical per
sub-pixel. The negative log-likelihood of an image is

    NLL(x) = -sum_{i, j, c} log softmax(logits[i, j, c])[x[i, j, c]]   (nats)

and bits/dim is `NLL / (H * W * C * ln 2)`. These functions give the same
numbers as the TFP distribution in `pixel_keras.distributions` (tested).
"""

import math

import keras
from keras import ops


def nll_per_image(images, logits):
    """Negative log-likelihood in nats per image, shape `[B]`.

    Args:
        images: integer tensor `[B, H, W, C]` with values in `[0, K - 1]`.
        logits: float tensor `[B, H, W, C, K]`.
    """
    # Always in float32, whatever the compute dtype. On TensorFlow, one
    # XLA-compiled kernel for the forward pass and one for the gradient
    # (`pixel_keras._tf_fused`: the logits are read once, no float32 copy of
    # them is made); elsewhere one fused op (softmax cross-entropy with
    # integer targets: no log-softmax tensor kept for the backward pass, no
    # scatter of the gather's gradient).
    if keras.backend.backend() == "tensorflow":
        from pixel_keras import _tf_fused

        return _tf_fused.nll_per_image(images, logits)
    nll = ops.sparse_categorical_crossentropy(
        ops.cast(images, "int32"), ops.cast(logits, "float32"), from_logits=True
    )
    return ops.sum(nll, axis=(1, 2, 3))


def nats_to_bits_per_dim(nats, image_shape):
    """Converts nats per image to bits per dimension for `image_shape`."""
    dims = math.prod(image_shape)
    return nats / (dims * math.log(2.0))


@keras.saving.register_keras_serializable(package="pixel_keras")
class PixelNLL(keras.losses.Loss):
    """Negative log-likelihood in nats per image (mean over the batch).

    `y_true` are the integer images `[B, H, W, C]`, `y_pred` the model's logits
    `[B, H, W, C, K]`. With the default "sum_over_batch_size" reduction the
    loss equals the mean NLL in nats/image.
    """

    def __init__(self, name="pixel_nll", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return nll_per_image(y_true, y_pred)


@keras.saving.register_keras_serializable(package="pixel_keras")
class BitsPerDim(keras.metrics.Mean):
    """Running mean of bits/dim = NLL / (H * W * C * ln 2)."""

    def __init__(self, name="bits_per_dim", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        shape = tuple(ops.shape(y_true)[1:])
        bpd = nats_to_bits_per_dim(nll_per_image(y_true, y_pred), shape)
        return super().update_state(bpd, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
