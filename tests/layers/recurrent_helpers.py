"""Helpers shared by the recurrent-layer tests (Row LSTM, Diagonal BiLSTM)."""

import keras
import numpy as np

from pixel_keras.layers import MaskedConv2D


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def random_inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def randomize_weights(layer, seed=0):
    """Random weights everywhere, the bias included (init bias is ~zero)."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=0.5, size=weight.shape).astype("float32"))


def probe_model(layer, image_shape, num_levels=4, first_kernel_size=3):
    """images -> [mask-A conv] -> `layer` -> masked 1x1 -> logits [B, H, W, C, K].

    Named and shaped like a pixel-keras model so `check_causality` and
    `input_gradient` apply. With `first_kernel_size=None` the layer reads the
    scaled image itself, so gradients show its field over its input map.
    """
    channels = image_shape[-1]
    images = keras.Input(shape=image_shape, dtype="int32", name="images")
    x = keras.layers.Rescaling(2.0 / (num_levels - 1), -1.0, name="probe_rescale")(images)
    if first_kernel_size is not None:
        x = MaskedConv2D(8, first_kernel_size, "A", image_channels=channels)(x)
    x = layer(x)
    x = MaskedConv2D(channels * num_levels, 1, "B", image_channels=channels)(x)
    logits = keras.layers.Reshape((*image_shape, num_levels))(x)
    model = keras.Model(images, logits, name="probe")
    model.image_shape, model.num_levels = image_shape, num_levels
    return model


def for_backend(positions, on_jax):
    """`positions` on TensorFlow, the shorter list `on_jax` on JAX.

    Eager JAX compiles every `ops.scan` on every gradient call (about 1 s on
    2 cores), so the TensorFlow run is the exhaustive one and the JAX run
    checks a few positions (every sub-pixel of each).
    """
    return positions if keras.backend.backend() == "tensorflow" else on_jax
