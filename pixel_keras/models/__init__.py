"""pixel-keras models."""

from pixel_keras.models.base import AutoregressiveImageModel
from pixel_keras.models.pixel_cnn import PixelCNN

__all__ = ["AutoregressiveImageModel", "PixelCNN"]
