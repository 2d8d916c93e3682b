"""Layers of pixel-keras (Keras 3, `keras.ops` only)."""

from pixel_keras.layers.masked_conv2d import MaskedConv2D, build_mask, channel_groups

__all__ = ["MaskedConv2D", "build_mask", "channel_groups"]

from pixel_keras.layers.diagonal_bilstm import DiagonalBiLSTM, skew, unskew  # noqa: E402
from pixel_keras.layers.row_lstm import RowLSTM  # noqa: E402

__all__ += ["RowLSTM", "DiagonalBiLSTM", "skew", "unskew"]
from pixel_keras.layers.gated_block import GatedBlock  # noqa: E402

__all__ += ["GatedBlock"]
from pixel_keras.layers.relu import ReLU  # noqa: E402

__all__ += ["ReLU"]
