"""`from_preset` on model classes (`pixel_keras.models.presets.PresetMixin`).

The classes under test are subclasses with the mixin last in their bases,
which works whether or not `AutoregressiveImageModel` already has it.
"""

import warnings

import numpy as np
import pytest

from pixel_keras import zoo
from pixel_keras.models import AutoregressiveImageModel, GatedPixelCNN, PixelCNN
from pixel_keras.models.presets import PresetMixin


def with_presets(cls):
    """A subclass of `cls` with `from_preset`."""
    return type(cls.__name__, (cls, PresetMixin), {})


def test_from_preset_builds_the_preset_architecture():
    cls = with_presets(GatedPixelCNN)
    model = cls.from_preset("test_gated_pixelcnn", load_weights=False)
    assert isinstance(model, GatedPixelCNN)
    reference = zoo.load("test_gated_pixelcnn", weights=False)
    assert model.get_config() == reference.get_config()
    assert model.count_params() == reference.count_params()


def test_from_preset_loads_the_weights_like_zoo_load():
    model = with_presets(PixelCNN).from_preset("pixelcnn_digits")
    reference = zoo.load("pixelcnn_digits")
    for got, expected in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, expected)


def test_from_preset_without_weights_warns_like_zoo_load():
    with pytest.warns(UserWarning, match="'test_pixelcnn' has no trained weights"):
        with_presets(PixelCNN).from_preset("test_pixelcnn")


def test_from_preset_overrides_build_without_weights():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = with_presets(PixelCNN).from_preset(
            "pixelcnn_digits", image_shape=(4, 4, 1)
        )
    assert tuple(model.image_shape) == (4, 4, 1)


def test_from_preset_on_a_base_class_builds_the_preset_class():
    model = PresetMixin.from_preset.__func__(
        AutoregressiveImageModel, "test_pixelcnn", load_weights=False
    )
    assert type(model) is PixelCNN


def test_from_preset_of_another_architecture_is_refused():
    with pytest.raises(
        ValueError,
        match=r"preset 'test_pixelcnn' is a 'pixelcnn' model; use "
        r"PixelCNN\.from_preset or pixel_keras\.zoo\.load\. "
        r"Received: preset='test_pixelcnn'",
    ):
        with_presets(GatedPixelCNN).from_preset("test_pixelcnn", load_weights=False)


def test_from_preset_bad_arguments():
    cls = with_presets(PixelCNN)
    with pytest.raises(ValueError, match="Unknown preset 'no_such_preset'"):
        cls.from_preset("no_such_preset")
    with pytest.raises(TypeError, match="`load_weights` must be True or False"):
        cls.from_preset("test_pixelcnn", load_weights="yes")
