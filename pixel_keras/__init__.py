"""pixel-keras: autoregressive image models (PixelCNN family) for Keras 3.

Layers and models use `keras.ops` only and run on the TensorFlow (default)
and JAX backends. TensorFlow-only pieces live in their own modules:
`pixel_keras.distributions` (TFP), `pixel_keras.data` (tf.data),
`pixel_keras.training` (tf.distribute).

Importing `pixel_keras` is cheap: the layers and models (and with them
Keras) load when first used, e.g. `pixel_keras.PixelCNN` or
`import pixel_keras.models`, which also registers the classes with Keras
serialization (`training.load_checkpoint` and `zoo.load` do that for you).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Keep TensorFlow's C++ start-up lines out of CLI output unless asked for.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Everything below is imported on first use (PEP 562), so that
# `import pixel_keras.cli` (and `pixel-keras --help`) loads neither Keras nor
# TensorFlow. `pk.PixelCNN`, `pk.layers`, ... import their module on access.
_SUBMODULES = ("layers", "losses", "models", "sampling")
_ATTRIBUTES = {
    "MaskedConv2D": "pixel_keras.layers",
    "AutoregressiveImageModel": "pixel_keras.models",
    "PixelCNN": "pixel_keras.models",
    "GatedPixelCNN": "pixel_keras.models",
    "PixelRNN": "pixel_keras.models",
    "RowLSTMPixelRNN": "pixel_keras.models",
    "DiagonalBiLSTMPixelRNN": "pixel_keras.models",
    "save_image_grid": "pixel_keras.images",
}

__version__ = "0.1.0"

__all__ = [
    "AutoregressiveImageModel",
    "DiagonalBiLSTMPixelRNN",
    "GatedPixelCNN",
    "MaskedConv2D",
    "PixelCNN",
    "PixelRNN",
    "RowLSTMPixelRNN",
    "layers",
    "losses",
    "models",
    "sampling",
    "save_image_grid",
]


def __getattr__(name):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"pixel_keras.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'pixel_keras' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
