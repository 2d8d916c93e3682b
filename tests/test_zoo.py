import json
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from pixel_keras import zoo

ROOT = Path(__file__).resolve().parent.parent

REQUIRED = [
    "pixelcnn_mnist",
    "pixelcnn_cifar",
    "row_lstm_cifar",
    "diagonal_bilstm_cifar",
    "diagonal_bilstm_mnist",
    "row_lstm_imagenet32",
    "row_lstm_imagenet64",
    "gated_pixelcnn_cifar",
    "gated_pixelcnn_imagenet32",
    "gated_pixelcnn_imagenet64",
]
ARCHITECTURES = ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]

# Per-model overrides that shrink a preset to test size, keeping its kind.
SMALL = {
    "pixelcnn": dict(hidden_maps=6, num_residual_blocks=1, output_maps=6),
    "row_lstm": dict(hidden_maps=6, num_layers=1, output_maps=6),
    "diagonal_bilstm": dict(hidden_maps=6, num_layers=1, output_maps=6),
    "gated_pixelcnn": dict(hidden_maps=6, num_layers=2, output_maps=6),
}


def test_required_presets_exist():
    names = zoo.list()
    for name in REQUIRED:
        assert name in names
    for arch in ARCHITECTURES:
        assert f"{arch}_fashion_mnist" in names
        assert f"{arch}_digits" in names
        assert f"test_{arch}" in names


def test_list_pattern():
    assert zoo.list("*cifar") == sorted(n for n in zoo.list() if n.endswith("cifar"))
    assert zoo.list("no_such_*") == []


@pytest.mark.parametrize("name", zoo.list())
def test_preset_builds_at_real_size_with_recorded_param_count(name):
    preset = zoo.get_preset(name)
    assert zoo.count_params(preset) == preset.metadata["num_params"]
    assert list(preset.config["image_shape"]) == preset.metadata["image_shape"]
    assert preset.config["num_levels"] == preset.metadata["num_levels"]
    assert (preset.path / "README.md").is_file()


@pytest.mark.parametrize("name", zoo.list())
def test_preset_forward_pass_at_test_size(name):
    preset = zoo.get_preset(name)
    channels = preset.config["image_shape"][-1]
    overrides = {} if name.startswith("test_") else dict(SMALL[preset.model])
    overrides["image_shape"] = (6, 6, channels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zoo.load(name, weights=False, **overrides)
    k = preset.config["num_levels"]
    images = np.random.default_rng(0).integers(0, k, size=(2, 6, 6, channels))
    inputs = {"images": images}
    if preset.config.get("num_classes"):
        inputs["class_label"] = np.array([0, 1], "int32")
    lp = model.log_prob(**inputs) if len(inputs) > 1 else model.log_prob(images)
    assert np.all(np.isfinite(lp)) and np.all(lp < 0)


def test_cards_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_presets.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_preset_lists_available():
    with pytest.raises(ValueError, match=r"Unknown preset 'nope'\. Available: .*test_pixelcnn"):
        zoo.load("nope")


def test_auto_without_weights_warns_and_true_raises():
    with pytest.warns(UserWarning, match="no trained weights.*pixel-keras train"):
        model = zoo.load("test_pixelcnn")
    assert model.count_params() == zoo.get_preset("test_pixelcnn").metadata["num_params"]
    with pytest.raises(ValueError, match="has no trained weights"):
        zoo.load("test_pixelcnn", weights=True)


def test_save_preset_round_trip(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zoo.load("test_gated_pixelcnn_conditional")
    directory = zoo.save_preset(model, tmp_path / "mine", {"dataset": "fashion_mnist"})
    restored = zoo.load(directory, weights=True)
    images = np.random.default_rng(1).integers(0, 256, size=(2, 8, 8, 1))
    labels = np.array([3, 7], "int32")
    np.testing.assert_allclose(
        restored.log_prob(images, class_label=labels),
        model.log_prob(images, class_label=labels),
        rtol=1e-6,
    )
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["sha256"] == zoo.sha256(directory / "model.weights.h5")
    assert meta["num_params"] == model.count_params()
    # Never silently overwritten.
    with pytest.raises(FileExistsError, match="already exists"):
        zoo.save_preset(model, directory)
    zoo.save_preset(model, directory, overwrite=True)


def test_explicit_weights_path_and_mismatch(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zoo.load("test_pixelcnn")
        other = zoo.load("test_row_lstm")
    path = tmp_path / "w.weights.h5"
    model.save_weights(str(path))
    again = zoo.load("test_pixelcnn", weights=str(path))
    for a, b in zip(again.weights, model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    wrong = tmp_path / "wrong.weights.h5"
    other.save_weights(str(wrong))
    with pytest.raises(ValueError, match="does not match the architecture"):
        zoo.load("test_pixelcnn", weights=str(wrong))
    with pytest.raises(FileNotFoundError):
        zoo.load("test_pixelcnn", weights=str(tmp_path / "missing.h5"))


def test_weights_url_download_with_sha256(tmp_path, monkeypatch):
    """The download path, exercised with a file:// URL (no network here)."""
    monkeypatch.setenv("PIXEL_KERAS_CACHE", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zoo.load("test_pixelcnn")
    served = tmp_path / "served.weights.h5"
    model.save_weights(str(served))
    directory = zoo.save_preset(model, tmp_path / "remote", weights=False)
    meta = json.loads((directory / "metadata.json").read_text())
    meta.update(weights_url=served.as_uri(), sha256=zoo.sha256(served))
    (directory / "metadata.json").write_text(json.dumps(meta))
    loaded = zoo.load(directory, weights=True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.weights[0]), keras.ops.convert_to_numpy(model.weights[0])
    )
    assert list((tmp_path / "cache" / "remote").glob("*.h5"))
    # A corrupted download is refused.
    meta["sha256"] = "0" * 64
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="expected 0000"):
        zoo.load(directory, weights=True)


def test_overrides_cannot_combine_with_weights():
    with pytest.raises(ValueError, match="cannot be combined"):
        zoo.load("test_pixelcnn", weights=True, hidden_maps=8)


def test_partial_weight_match_is_an_error(tmp_path):
    """Keras only warns when some layers find no weights; the zoo refuses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = zoo.load("test_pixelcnn", weights=False)
        deeper = zoo.load("test_pixelcnn", weights=False, num_residual_blocks=2)
    path = tmp_path / "small.weights.h5"
    small.save_weights(str(path))
    with pytest.raises(ValueError, match="does not match the architecture"):
        zoo.load_weights_checked(deeper, path)
