"""The model factory of a training run: registry models, presets, class labels.

`make_model` and `model_arguments` are `pixel_keras.models.registry`'s
`create` and `model_arguments` with the data's `image_shape` and
`num_levels` as required keywords; `preset_architecture` reads a zoo
preset's name and arguments for `train(preset=...)`.
"""

import numpy as np

from pixel_keras.models import registry
from pixel_keras.models.registry import model_arguments  # noqa: F401  (re-exported)


def make_model(model="pixelcnn", *, image_shape, num_levels, **config):
    """Builds a registered model by name (`pixel_keras.models.registry.create`).

    Args:
        model: a key of `MODELS` (`"pixelcnn"`, `"row_lstm"`,
            `"diagonal_bilstm"`, `"gated_pixelcnn"`).
        image_shape: `(height, width, channels)`.
        num_levels: values per sub-pixel.
        **config: the model class's own arguments (`hidden_maps`, ...; see
            `model_arguments(model)`).

    Returns:
        The model (uncompiled).

    Raises:
        ValueError: for an unknown model name or bad arguments.
    """
    return registry.create(
        model, image_shape=tuple(image_shape), num_levels=num_levels, **config
    )


def model_name(model):
    """The `MODELS` key of a model instance, or its class name if unregistered.

    `registry.model_name(model, strict=False)`, for messages.
    """
    return registry.model_name(model, strict=False)


def is_class_conditional(model):
    """Whether `model` takes a `class_label` input, fed from the data's labels.

    Raises:
        ValueError: if the model needs conditions other than `class_label`
            (`condition`, `condition_map`), which a data set does not hold.
    """
    names = tuple(getattr(model, "condition_names", ()))
    others = [name for name in names if name != "class_label"]
    if others:
        raise ValueError(
            f"Training and evaluation feed images and class labels only; "
            f"this {type(model).__name__} also needs {', '.join(others)}. "
            f"Received: condition_names={names}"
        )
    return "class_label" in names


def sample_class_labels(model, num_samples):
    """Labels 0, 1, ..., K-1, 0, 1, ... for a class-conditional model, else None.

    With the grid's column count set to K (`sample_grid_columns`), every
    column of a sample grid shows one class.
    """
    if not is_class_conditional(model):
        return None
    return np.arange(num_samples, dtype="int32") % model.num_classes


def sample_grid_columns(model, num_samples):
    """Grid columns: one per class for a class-conditional model, else None."""
    if not is_class_conditional(model):
        return None
    return max(1, min(num_samples, model.num_classes))


def preset_architecture(preset, image_shape=None, num_levels=None, dataset=None):
    """The model name and arguments of a zoo preset, for `make_model`/`train`.

    Args:
        preset: a preset name (`zoo.list_presets()`), a preset directory, or a
            `zoo.Preset`.
        image_shape, num_levels: the data set's; when given, the preset's
            must be the same.
        dataset: the data set's name, for the error message.

    Returns:
        `(name, config)`: the registry name and the preset's model
        arguments without `image_shape` and `num_levels`.

    Raises:
        ValueError: an unknown preset (listing the available ones), or a
            preset made for other images.
    """
    from pixel_keras import zoo

    if not isinstance(preset, zoo.Preset):
        preset = zoo.get_preset(preset)
    config = dict(preset.config)
    preset_shape = config.pop("image_shape", None)
    preset_levels = config.pop("num_levels", None)
    mismatch = (
        image_shape is not None
        and preset_shape is not None
        and tuple(preset_shape) != tuple(image_shape)
    ) or (
        num_levels is not None
        and preset_levels is not None
        and preset_levels != num_levels
    )
    if mismatch:
        data_name = f"data set {dataset!r}" if dataset else "the data set"
        raise ValueError(
            f"Preset {preset.name!r} is for images {tuple(preset_shape or ())} "
            f"with {preset_levels} levels; {data_name} has "
            f"{tuple(image_shape or ())} with {num_levels} levels. Pick a "
            "preset made for this data set (`pixel-keras zoo list`), or "
            "choose the architecture without a preset."
        )
    return preset.model, config


def _resolve_model_arg(model, model_config, default="pixelcnn"):
    """`(name, kwargs)` from a name + config or a config dict with "model"."""
    model_config = dict(model_config or {})
    if isinstance(model, dict):
        model = dict(model)
        name = model.pop("model", default)
        model_config = {**model, **model_config}
    else:
        name = default if model is None else model
    registry.get_model_class(name)  # ValueError for an unknown name.
    for key in ("image_shape", "num_levels"):
        if key in model_config:
            raise ValueError(
                f"`{key}` comes from the data set; do not pass it in the model "
                f"config. Received: {key}={model_config[key]!r}"
            )
    return name, model_config
