"""The per-sub-pixel categorical likelihood as a TFP distribution (TensorFlow).

    p(x) = prod_{i, j, c} Categorical(x[i, j, c]; softmax(logits[i, j, c]))

`pixel_distribution(logits)` wraps logits `[B, H, W, C, K]` in
`tfd.Independent(tfd.Categorical(logits=...), reinterpreted_batch_ndims=3)`,
whose `log_prob(images)` is the log-likelihood in nats per image (shape `[B]`).

This module is TensorFlow-only. Under other Keras backends the models compute
the same numbers with `pixel_keras.losses.nll_per_image`.

TFP 0.25 imports `tf_keras`; install it without dependencies so it does not
pull in the full `tensorflow` wheel: `pip install --no-deps "tf-keras==2.21.*"`
(matching your TensorFlow minor version).
"""

import tensorflow as tf

try:
    import tensorflow_probability as tfp
except ModuleNotFoundError as e:  # pragma: no cover - depends on install
    if e.name == "tf_keras":
        raise ImportError(
            "tensorflow-probability needs `tf_keras`. Install it without its "
            "dependencies (it would pull the full `tensorflow` wheel): "
            f'pip install --no-deps "tf-keras=={tf.__version__.rsplit(".", 1)[0]}.*"'
        ) from e
    raise

tfd = tfp.distributions


def pixel_distribution(logits):
    """Returns the image distribution for logits `[B, H, W, C, K]`.

    Event shape `[H, W, C]`, batch shape `[B]`, integer samples in `[0, K-1]`.
    """
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank != 5:
        raise ValueError(
            "`logits` must have rank 5 [B, H, W, C, K]. "
            f"Received: logits.shape={logits.shape}"
        )
    return tfd.Independent(tfd.Categorical(logits=logits), reinterpreted_batch_ndims=3)


def log_prob(logits, images):
    """Log-likelihood in nats per image, shape `[B]`."""
    return pixel_distribution(logits).log_prob(tf.cast(images, tf.int32))
