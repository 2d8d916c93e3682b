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
    names = zoo.list_presets()
    for name in REQUIRED:
        assert name in names
    for arch in ARCHITECTURES:
        assert f"{arch}_fashion_mnist" in names
        assert f"{arch}_digits" in names
        assert f"test_{arch}" in names


def test_list_pattern():
    assert zoo.list_presets("*cifar") == sorted(
        n for n in zoo.list_presets() if n.endswith("cifar")
    )
    assert zoo.list_presets("no_such_*") == []


def test_list_is_a_deprecated_alias_of_list_presets():
    with pytest.warns(DeprecationWarning, match="use `zoo.list_presets`"):
        list_ = zoo.list
    assert list_ is zoo.list_presets
    assert list_("*digits") == zoo.list_presets("*digits")
    assert list("ab") == ["a", "b"]  # The builtin is no longer shadowed.


@pytest.mark.parametrize("name", zoo.list_presets())
def test_preset_builds_at_real_size_with_recorded_param_count(name):
    preset = zoo.get_preset(name)
    assert zoo.count_params(preset) == preset.metadata["num_params"]
    assert list(preset.config["image_shape"]) == preset.metadata["image_shape"]
    assert preset.config["num_levels"] == preset.metadata["num_levels"]
    assert (preset.path / "README.md").is_file()


@pytest.mark.parametrize("name", zoo.list_presets())
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
    with pytest.raises(
        ValueError, match=r"Unknown preset 'nope'\. Available: .*test_pixelcnn"
    ):
        zoo.load("nope")


def test_auto_without_weights_warns_and_true_raises():
    with pytest.warns(UserWarning, match="no trained weights.*pixel-keras train"):
        model = zoo.load("test_pixelcnn")
    assert (
        model.count_params() == zoo.get_preset("test_pixelcnn").metadata["num_params"]
    )
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
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )
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
        keras.ops.convert_to_numpy(loaded.weights[0]),
        keras.ops.convert_to_numpy(model.weights[0]),
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


# ---- sha256 of bundled weights (issue 11) -----------------------------------
def _saved_preset(tmp_path, name="mine"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zoo.load("test_pixelcnn", weights=False)
    return model, zoo.save_preset(model, tmp_path / name, {"dataset": "digits"})


def test_bundled_weights_with_wrong_sha256_are_refused(tmp_path):
    model, directory = _saved_preset(tmp_path)
    recorded = json.loads((directory / "metadata.json").read_text())["sha256"]
    # The preset is edited: new weights, metadata.json not updated.
    keras.utils.set_random_seed(1)
    edited = zoo.load("test_pixelcnn", weights=False)
    weights = directory / "model.weights.h5"
    edited.save_weights(str(weights))
    actual = zoo.sha256(weights)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    for kwargs in ({"weights": True}, {"weights": "auto"}, {}):
        with pytest.raises(ValueError) as info:
            zoo.load(directory, **kwargs)
        message = str(info.value)
        assert str(weights) in message
        assert f"sha256 {actual}, expected {recorded}" in message
        assert "verify_sha256=False" in message
        assert message.endswith(f"Received: sha256={actual}")
    with pytest.raises(ValueError, match="verify_sha256=False"):
        zoo.resolve_weights(zoo.get_preset(directory))
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    # The opt-out for a preset being edited loads the new weights.
    loaded = zoo.load(directory, weights=True, verify_sha256=False)
    for a, b in zip(loaded.weights, edited.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )
    assert (
        zoo.resolve_weights(zoo.get_preset(directory), verify_sha256=False) == weights
    )
    # Re-saving records the new hash, and the check passes again.
    zoo.save_preset(loaded, directory, overwrite=True)
    zoo.load(directory, weights=True)


def test_bundled_weights_with_wrong_sha256_in_metadata_are_refused(tmp_path):
    _, directory = _saved_preset(tmp_path)
    meta = json.loads((directory / "metadata.json").read_text())
    meta["sha256"] = "f" * 64
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"expected f{64}\. .*verify_sha256=False"):
        zoo.load(directory)
    zoo.load(directory, verify_sha256=False)
    with pytest.raises(TypeError, match="Received: verify_sha256='no'"):
        zoo.load(directory, verify_sha256="no")


def test_explicit_weights_path_is_not_checked_against_the_preset(tmp_path):
    model, directory = _saved_preset(tmp_path)
    other = tmp_path / "other.weights.h5"
    model.save_weights(str(other))
    meta = json.loads((directory / "metadata.json").read_text())
    meta["sha256"] = "0" * 64
    (directory / "metadata.json").write_text(json.dumps(meta))
    zoo.load(directory, weights=str(other))  # The caller's own file.


# ---- errors that explain themselves (issue 11) ------------------------------
def test_preset_directory_without_config_json(tmp_path):
    directory = tmp_path / "half_written"
    directory.mkdir()
    (directory / "metadata.json").write_text("{}")
    with pytest.raises(
        ValueError,
        match=rf"must hold config\.json .*{directory} has no config\.json\. "
        rf"Received: name_or_path='{directory}'",
    ):
        zoo.load(str(directory))
    with pytest.raises(ValueError, match="has no config.json"):
        zoo.get_preset(directory)


@pytest.mark.parametrize("filename", ["config.json", "metadata.json"])
@pytest.mark.parametrize(
    "content, match",
    [
        (b'{"model": "pixelcnn",', r"must hold valid JSON \(UTF-8\).*Expecting"),
        (b"\x89HDF\xff\xfe", r"must hold valid JSON \(UTF-8\).*codec can't decode"),
        (b"[1, 2]", r"must hold a JSON object \{\.\.\.\}\. Received: \[1, 2\]"),
    ],
    ids=["truncated", "binary", "array"],
)
def test_corrupt_preset_json_names_the_file(tmp_path, filename, content, match):
    _, directory = _saved_preset(tmp_path)
    (directory / filename).write_bytes(content)
    with pytest.raises(
        ValueError, match=rf"Preset file {directory / filename} {match}"
    ):
        zoo.load(directory)
    with pytest.raises(ValueError, match="Received: "):
        zoo.describe(directory)


def test_config_json_of_the_wrong_form(tmp_path):
    _, directory = _saved_preset(tmp_path)
    config_path = directory / "config.json"
    config_path.write_text(json.dumps({"model": "pixelcnn"}))
    with pytest.raises(
        ValueError,
        match=r'must hold \{"model": <registry name>, "config": \{<model arguments>\}\}\. '
        r'Received: \{"model": "pixelcnn"\}',
    ):
        zoo.load(directory)
    config_path.write_text(json.dumps({"model": "no_such_net", "config": {}}))
    with pytest.raises(
        ValueError,
        match=r"config\.json: \"model\" must name a registered.*"
        r"Received: model='no_such_net'",
    ):
        zoo.load(directory, weights=False)
    config_path.write_text(
        json.dumps({"model": "pixelcnn", "config": {"hidden_maps": "x"}})
    )
    with pytest.raises(
        ValueError,
        match=rf"Preset 'mine' \(\"config\" in {config_path}\) does not build: "
        r"`hidden_maps` must be .*Received: hidden_maps='x'",
    ):
        zoo.load(directory, weights=False)


def test_name_or_path_must_be_a_string_or_path():
    with pytest.raises(
        TypeError, match=r"`name_or_path` must be .* Received: name_or_path=None"
    ):
        zoo.load(None)
    with pytest.raises(
        ValueError, match=r"Unknown preset ''\..*Received: name_or_path=''"
    ):
        zoo.load("")


def test_weights_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"`weights` must be .*Received: weights=1$"):
        zoo.load("test_pixelcnn", weights=1)
    missing = tmp_path / "missing.weights.h5"
    with pytest.raises(
        FileNotFoundError,
        match=rf"{missing} is not a file\. Received: weights='{missing}'",
    ):
        zoo.load("test_pixelcnn", weights=str(missing))
    with pytest.raises(ValueError, match=r"Received: overrides=\['hidden_maps'\]"):
        zoo.load("test_pixelcnn", weights=True, hidden_maps=8)


def test_unreadable_weights_file_is_not_called_a_mismatch(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(
        ValueError, match=rf"{bad} must be a Keras weights file .*cannot be read"
    ):
        zoo.load("test_pixelcnn", weights=str(bad))


def _closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["missing_file", "refused"])
def test_download_errors_name_the_url(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("PIXEL_KERAS_CACHE", str(tmp_path / "cache"))
    _, directory = _saved_preset(tmp_path)
    (directory / "model.weights.h5").unlink()
    if kind == "missing_file":
        url = (tmp_path / "gone.weights.h5").as_uri()
    else:
        url = f"http://127.0.0.1:{_closed_port()}/w.weights.h5"
    meta = json.loads((directory / "metadata.json").read_text())
    meta.update(weights_url=url, sha256="1" * 64)
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ConnectionError) as info:
        zoo.load(directory, weights=True)
    message = str(info.value)
    assert f"from {url}:" in message and message.endswith(
        f"Received: weights_url={url!r}"
    )
    assert isinstance(info.value, OSError)
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_weights_url_scheme_and_missing_sha256(tmp_path):
    _, directory = _saved_preset(tmp_path)
    (directory / "model.weights.h5").unlink()
    meta = json.loads((directory / "metadata.json").read_text())
    meta.update(weights_url="ftp://example.org/w.h5")
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(
        ValueError,
        match=r"must be an https, http or file URL\. "
        r"Received: weights_url='ftp://example.org/w.h5'",
    ):
        zoo.load(directory)
    meta.update(weights_url="https://example.org/w.h5")
    meta.pop("sha256", None)
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(
        ValueError, match=r"refusing to load unverified.*Received: weights_url="
    ):
        zoo.load(directory)


@pytest.mark.parametrize("name", ["test_gated_pixelcnn_conditional", "test_row_lstm"])
def test_preset_config_is_the_presets_config_json(name):
    preset = zoo.get_preset(name)
    model = zoo.load(name, weights=False)
    saved = zoo.preset_config(model)
    assert saved["model"] == preset.model
    # Every argument of config.json, plus the ones left at their defaults.
    assert preset.config.items() <= saved["config"].items()
    assert "name" not in saved["config"] and "trainable" not in saved["config"]
    from pixel_keras.models import registry

    again = registry.create(saved["model"], **saved["config"])
    assert zoo.preset_config(again) == saved
