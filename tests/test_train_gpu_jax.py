"""tools/train_gpu_jax.py: the JAX-backend trainer for an accelerator machine.

Its arguments and schedule are checked here in-process; the end-to-end runs
(a tiny model on the CPU under `KERAS_BACKEND=jax`, fresh and resumed from a
`pixel-keras train` checkpoint, then loaded and evaluated under TensorFlow)
are `large`.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
REAL_FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "train_gpu_jax", ROOT / "tools" / "train_gpu_jax.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seconds", "5", "--total-steps", "10"], "not both"),
        (["--resume", "x.keras"], "--resume needs --total-steps"),
        (["--seconds", "0"], "--seconds must be > 0"),
        (["--total-steps", "-3"], "--total-steps must be > 0"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--ema", "1.0"], "--ema must be in"),
        (["--output-bias", "ones"], "invalid choice"),
        (
            ["--resume", "x.keras", "--total-steps", "9", "--output-bias", "zeros"],
            "a resumed run keeps its checkpoint's bias",
        ),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        tool.parse_args(["--out", str(tmp_path / "new"), *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_existing_output_directory_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        tool.parse_args(["--out", str(tmp_path)])
    assert info.value.code == 2
    assert "exists" in capsys.readouterr().err


def test_output_bias_defaults_to_zeros_for_a_new_model_only(tmp_path):
    fresh = tool.parse_args(["--out", str(tmp_path / "a")])
    resumed = tool.parse_args(
        ["--out", str(tmp_path / "b"), "--resume", "x.keras", "--total-steps", "9"]
    )
    assert fresh.output_bias == "zeros" and resumed.output_bias is None


def test_default_budget_is_210_seconds(tmp_path):
    args = tool.parse_args(["--out", str(tmp_path / "new")])
    assert args.seconds == 210.0 and args.total_steps is None


def test_architecture_gated_defaults_flags_and_set(tmp_path):
    out = str(tmp_path / "new")
    name, config = tool.architecture(tool.parse_args(["--out", out]), (28, 28, 1))
    assert name == "gated_pixelcnn"
    assert config == {
        "image_shape": [28, 28, 1],
        "num_levels": 256,
        **tool.GATED_DEFAULTS,
    }
    args = tool.parse_args(
        ["--out", out, "--model", "pixelcnn", "--hidden-maps", "48"]
        + ["--set", "num_residual_blocks=15", "--num-classes", "10"]
    )
    name, config = tool.architecture(args, (28, 28, 1))
    assert name == "pixelcnn"
    assert config == {
        "image_shape": [28, 28, 1],
        "num_levels": 256,
        "hidden_maps": 48,
        "num_residual_blocks": 15,
        "num_classes": 10,
    }


@pytest.mark.parametrize("item", ["num_layers", "=3", "num_layers=three"])
def test_set_needs_key_and_json_value(tmp_path, capsys, item):
    with pytest.raises(SystemExit) as info:
        tool.parse_args(["--out", str(tmp_path / "new"), "--set", item])
    assert info.value.code == 2
    assert "--set takes KEY=VALUE" in capsys.readouterr().err


def test_wall_clock_schedule_warms_up_then_decays_to_zero(tmp_path):
    args = tool.parse_args(
        ["--out", str(tmp_path / "new"), "--seconds", "100", "--warmup-steps", "10"]
    )
    assert tool.learning_rate(args, 0, 0.0) == pytest.approx(args.lr / 10)
    assert tool.learning_rate(args, 9, 0.0) == pytest.approx(args.lr)
    assert tool.learning_rate(args, 500, 50.0) == pytest.approx(args.lr / 2)
    assert tool.learning_rate(args, 900, 100.0) == pytest.approx(0.0, abs=1e-12)
    assert tool.learning_rate(args, 900, 150.0) == pytest.approx(0.0, abs=1e-12)
    assert math.isclose(
        tool.learning_rate(args, 100, 25.0),
        args.lr * 0.5 * (1 + math.cos(math.pi / 4)),
    )


def _run_tool(args, tmp_path):
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "PYTHONPATH": str(ROOT),
        "CUDA_VISIBLE_DEVICES": "",
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train_gpu_jax.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )


def _tf_bits_per_dim(out, num_images):
    """The saved weights, loaded under TensorFlow, on the first test images."""
    import pixel_keras.models  # noqa: F401
    from pixel_keras import idx
    from pixel_keras.models import registry

    config = json.loads((out / "config.json").read_text())
    model = registry.create(config["model"], **config["config"])
    images, labels = idx.load_fashion_mnist("test")
    images, labels = images[:num_images], labels[:num_images]
    conditions = {}
    if config["config"].get("num_classes"):
        conditions = {"class_label": labels.astype("int32")}
    model.load_weights(str(out / "model.weights.h5"))
    return float(np.mean(model.bits_per_dim(images, **conditions)))


needs_real_fashion = pytest.mark.skipif(
    not os.path.isdir(REAL_FASHION_DIR), reason=f"{REAL_FASHION_DIR} is missing"
)


@pytest.mark.large
@pytest.mark.tf_only
@needs_real_fashion
def test_fresh_run_writes_weights_that_tensorflow_evaluates_alike(tmp_path):
    out = tmp_path / "run"
    tiny = ["--hidden-maps", "4", "--num-layers", "1", "--output-maps", "8"]
    proc = _run_tool(
        ["--out", str(out), "--seconds", "3", *tiny, "--batch-size", "16"]
        + ["--eval-images", "40", "--num-samples", "2", "--warmup-steps", "5"]
        + ["--output-bias", "marginal"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["backend"] == "jax" and result["train_steps"] > 0
    assert result["recipe"]["output_bias"] == "marginal"
    assert result["test_images"] == 40 and (out / "samples.png").is_file()
    assert _tf_bits_per_dim(out, 40) == pytest.approx(
        result["test_bits_per_dim"], abs=2e-3
    )


@pytest.mark.large
@pytest.mark.tf_only
@needs_real_fashion
def test_resume_continues_a_pixel_keras_checkpoint(tmp_path):
    from pixel_keras import training

    run = tmp_path / "cpu_run"
    training.train(
        "gated_pixelcnn",
        "fashion_mnist",
        str(run),
        epochs=1,
        steps_per_epoch=3,
        batch_size=8,
        train_split="train[:64]",
        test_split="test[:16]",
        samples_per_epoch=0,
        model_config=dict(hidden_maps=4, num_layers=1, output_maps=8, num_classes=10),
        lr_schedule="cosine",  # a schedule, as the resumed leg's: same optimizer variables
        ema_momentum=0.99,
        verbose=0,
    )
    checkpoint = training.read_state(str(run))["checkpoint_path"]
    out = tmp_path / "leg2"
    proc = _run_tool(
        ["--out", str(out), "--resume", checkpoint, "--total-steps", "6"]
        + ["--batch-size", "8", "--ema", "0.99", "--eval-images", "16"]
        + ["--num-samples", "0"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["start_step"] == 3 and result["train_steps"] == 3
    assert result["config"]["num_classes"] == 10
    assert _tf_bits_per_dim(out, 16) == pytest.approx(
        result["test_bits_per_dim"], abs=2e-3
    )
