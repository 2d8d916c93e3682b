"""pixel-keras: autoregressive image models (PixelCNN family) for Keras 3.

Layers and models use `keras.ops` only and run on the TensorFlow (default)
and JAX backends. TensorFlow-only pieces live in their own modules:
`pixel_keras.distributions` (TFP), `pixel_keras.data` (tf.data),
`pixel_keras.training` (tf.distribute).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Keep TensorFlow's C++ start-up lines out of CLI output unless asked for.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pixel_keras import layers, losses, models, sampling  # noqa: E402
from pixel_keras.images import save_image_grid  # noqa: E402
from pixel_keras.layers import MaskedConv2D  # noqa: E402
from pixel_keras.models import PixelCNN  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "MaskedConv2D",
    "PixelCNN",
    "layers",
    "losses",
    "models",
    "sampling",
    "save_image_grid",
]
