"""Model names used by the CLI, training and the zoo's `config.json` files.

A preset's `config.json` is `{"model": <name>, "config": {<kwargs>}}`; the
name is one of `MODELS`.
"""

from pixel_keras.models.gated_pixel_cnn import GatedPixelCNN
from pixel_keras.models.pixel_cnn import PixelCNN
from pixel_keras.models.pixel_rnn import DiagonalBiLSTMPixelRNN, RowLSTMPixelRNN

MODELS = {
    "pixelcnn": PixelCNN,
    "row_lstm": RowLSTMPixelRNN,
    "diagonal_bilstm": DiagonalBiLSTMPixelRNN,
    "gated_pixelcnn": GatedPixelCNN,
}


def get_model_class(name):
    """The model class registered under `name`; ValueError if unknown."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Available: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def model_name(model):
    """The registry name of a model instance (or class)."""
    cls = model if isinstance(model, type) else type(model)
    for name, registered in MODELS.items():
        if cls is registered:
            return name
    raise ValueError(
        f"{cls.__name__} is not a registered pixel-keras model. "
        f"Available: {', '.join(sorted(MODELS))}"
    )
