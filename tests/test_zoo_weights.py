"""The trained weights shipped in zoo/: integrity and reproducible bits/dim.

For every preset whose metadata records trained weights (by `pixel-keras
train`, or by `tools/train_gpu_jax.py` on an accelerator): the file is there,
at most 50 MB, with the recorded sha256, and `pixel-keras evaluate --preset
NAME` on the full test split gives the card's bits/dim to 0.01 (TensorFlow
backend, CPU, whatever trained it; the Fashion-MNIST ones with --run-large).
"""

import json

import pytest

from pixel_keras import cli, zoo

pytestmark = pytest.mark.tf_only

MAX_WEIGHTS_BYTES = 50 * 1024 * 1024


def _trained():
    names = []
    for name in zoo.list_presets():
        preset = zoo.get_preset(name)
        if preset.metadata.get("sha256"):
            names.append(name)
    return names


TRAINED = _trained()


def test_every_fashion_mnist_and_digits_preset_has_weights():
    expected = {
        n for n in zoo.list_presets() if n.endswith(("_fashion_mnist", "_digits"))
    }
    assert expected <= set(TRAINED), sorted(expected - set(TRAINED))


@pytest.mark.parametrize("name", TRAINED)
def test_weights_file_size_and_sha256(name):
    preset = zoo.get_preset(name)
    weights = preset.bundled_weights
    assert weights is not None and weights.exists()
    assert weights.stat().st_size <= MAX_WEIGHTS_BYTES
    assert zoo.sha256(weights) == preset.metadata["sha256"]
    training = preset.metadata["training"]
    for key in ("epochs", "batch_size", "hardware", "backend", "wall_time_s"):
        assert training.get(key) is not None, key
    # `pixel-keras train` on a CPU, or the JAX trainer on an accelerator.
    assert preset.metadata["training_command"].startswith(
        ("pixel-keras train", "KERAS_BACKEND=jax python tools/train_gpu_jax.py")
    )
    assert (preset.path / "samples.png").exists()
    card = (preset.path / "README.md").read_text()
    assert str(preset.metadata["test_bits_per_dim"]) in card


# Digits: seconds. Fashion-MNIST: 10,000 test images each, ~1 min per preset
# on 2 CPU cores, so those run with --run-large (the slow-test rule).
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.large) if "fashion_mnist" in n else n
        for n in TRAINED
    ],
)
def test_evaluate_reproduces_the_card(name, capsys):
    preset = zoo.get_preset(name)
    assert cli.main(["evaluate", "--preset", name, "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["split"] == "test"
    assert result["num_images"] == preset.metadata["training"]["test_images"]
    assert result["bits_per_dim"] == pytest.approx(
        preset.metadata["test_bits_per_dim"], abs=0.01
    )


DIGITS_TRAINED = [n for n in TRAINED if n.endswith("_digits")]


@pytest.mark.parametrize("name", DIGITS_TRAINED)
def test_changed_bundled_weights_are_refused_unless_opted_out(name, tmp_path):
    """A copy of a trained preset whose weights no longer match metadata.json."""
    import shutil

    import keras
    import numpy as np

    preset = zoo.get_preset(name)
    assert zoo.resolve_weights(preset) == preset.bundled_weights  # Checked: fine.
    copy = tmp_path / name
    shutil.copytree(preset.path, copy)
    keras.utils.set_random_seed(3)
    retrained = zoo.load(copy, weights=False)  # Stands for a new training run.
    retrained.save_weights(str(copy / zoo.WEIGHTS_FILE))
    actual = zoo.sha256(copy / zoo.WEIGHTS_FILE)
    with pytest.raises(ValueError) as info:
        zoo.load(copy)
    message = str(info.value)
    for part in (
        str(copy / zoo.WEIGHTS_FILE),
        f"it has sha256 {actual}, expected {preset.metadata['sha256']}",
        "verify_sha256=False",
    ):
        assert part in message
    loaded = zoo.load(copy, verify_sha256=False)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.weights[0]),
        keras.ops.convert_to_numpy(retrained.weights[0]),
    )
