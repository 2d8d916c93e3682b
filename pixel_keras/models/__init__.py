"""pixel-keras models."""

from pixel_keras.models.base import AutoregressiveImageModel
from pixel_keras.models.pixel_cnn import PixelCNN

__all__ = ["AutoregressiveImageModel", "PixelCNN"]

from pixel_keras.models.pixel_rnn import (  # noqa: E402
    DiagonalBiLSTMPixelRNN,
    PixelRNN,
    RowLSTMPixelRNN,
)

__all__ += ["PixelRNN", "RowLSTMPixelRNN", "DiagonalBiLSTMPixelRNN"]
from pixel_keras.models.gated_pixel_cnn import GatedPixelCNN  # noqa: E402

__all__ += ["GatedPixelCNN"]
