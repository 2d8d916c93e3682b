"""pixel-keras: autoregressive image models (PixelCNN family) for Keras 3."""

__version__ = "0.1.0"
