"""The model registry: one name per architecture, `create(name, **config)`.

The names are used by the CLI, training and the zoo's `config.json` files
(`{"model": <name>, "config": {<kwargs>}}`):

```python
from pixel_keras.models import registry

registry.names()        # ['diagonal_bilstm', 'gated_pixelcnn', 'pixelcnn', 'row_lstm']
model = registry.create("pixelcnn", image_shape=(8, 8, 1), num_levels=17, hidden_maps=16)
registry.model_name(model)  # 'pixelcnn'
```

Every class takes `image_shape` and `num_levels` plus its own keyword
arguments (`model_arguments(name)`), and is registered with Keras
serialization.
"""

import inspect

# Name -> class. Each model module registers its classes (`@register(name)`);
# `pixel_keras.models` imports them all, so importing this module (through its
# package) fills the table. The registry imports no model: a model module may
# import it without a cycle.
MODELS = {}


def register(name):
    """Class decorator: registers a model class under `name` (one per class).

    The name is also the class's default Keras name and its presets' prefix
    (`zoo/<name>_<dataset>`).

    Raises:
        ValueError: `name` is taken by another class.
    """

    def decorator(cls):
        if MODELS.get(name, cls) is not cls:
            raise ValueError(
                f"Model name {name!r} is already registered to "
                f"{MODELS[name].__name__}. Received: {cls.__name__}"
            )
        MODELS[name] = cls
        return cls

    return decorator


# The arguments every model takes, fixed by the data rather than the architecture.
DATA_ARGUMENTS = ("image_shape", "num_levels")


def names():
    """The registered model names, sorted."""
    return sorted(MODELS)


def get_model_class(name):
    """The model class registered under `name`.

    Raises:
        ValueError: `name` is not a registered name (the message lists them).
    """
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Available: {', '.join(names())}")
    return MODELS[name]


def model_arguments(name="pixelcnn"):
    """The architecture arguments a registered model takes (besides the data's).

    Raises:
        ValueError: for an unknown name.
    """
    parameters = inspect.signature(get_model_class(name).__init__).parameters
    return [
        p.name
        for p in parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in ("self", *DATA_ARGUMENTS)
    ]


def create(name="pixelcnn", **config):
    """Builds the registered model `name` from its keyword arguments.

    Args:
        name: a registered name (`names()`).
        **config: `image_shape`, `num_levels` and the class's own arguments
            (`model_arguments(name)`).

    Returns:
        The model (uncompiled).

    Raises:
        ValueError: an unknown name, or an argument the class does not take
            (Keras models would swallow a typo).
    """
    cls = get_model_class(name)
    allowed = model_arguments(name)
    unknown = sorted(set(config) - set(allowed) - set(DATA_ARGUMENTS))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) for model {name!r}: {', '.join(unknown)}. "
            f"Available: {', '.join(allowed)}"
        )
    if "image_shape" in config:
        config["image_shape"] = tuple(config["image_shape"])
    return cls(**config)


def model_name(model, *, strict=True):
    """The registry name of a model instance (or class).

    Args:
        model: a model or a model class.
        strict: for a class that is not registered, raise (True) or return
            its class name (False, for messages).

    Raises:
        ValueError: with `strict`, for an unregistered class.
    """
    cls = model if isinstance(model, type) else type(model)
    for name, registered in MODELS.items():
        if cls is registered:
            return name
    if not strict:
        return cls.__name__
    raise ValueError(
        f"{cls.__name__} is not a registered pixel-keras model. "
        f"Available: {', '.join(names())}"
    )
