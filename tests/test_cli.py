import json
import os
import subprocess
import sys

import pytest

from pixel_keras import cli, training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["sample"]])
def test_help(command, capsys):
    assert cli.main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pixel-keras {' '.join(command)}".rstrip())
    if command == ["train"]:
        for option in ("--max-minutes", "--resume", "--strategy", "--residual-blocks"):
            assert option in out


def test_strategy_choices_match_the_library():
    assert cli.STRATEGIES == training.STRATEGIES


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: COMMAND"),
        (["fit"], "invalid choice: 'fit'"),
        (["train", "--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
        (["train", "--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
        (["train", "--strategy", "tpu"], "argument --strategy: invalid choice: 'tpu'"),
        (["train", "--resume", "--overwrite"], "not allowed with argument --resume"),
        (["sample", "run"], "the following arguments are required: --out"),
        (["sample", "run", "--out", "x.png", "--temperature", "0"], "must be a finite"),
    ],
)
def test_parse_errors_exit_2_with_one_error_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0]


def test_library_errors_exit_2_without_traceback(tmp_path, capsys):
    out = str(tmp_path / "run")
    cases = [
        (
            ["train", "--model", "nope", "--dataset", "digits", "--out", out],
            "Unknown model 'nope'. Available: pixelcnn",
        ),
        (
            ["train", "--dataset", "no_such_data_set_xyz", "--out", out],
            "no_such_data_set",
        ),
        (["evaluate", str(tmp_path / "missing")], "no such checkpoint"),
        (["evaluate", str(tmp_path)], "--dataset is required"),
        (["evaluate", str(tmp_path), "--dataset", "digits"], "No checkpoint in"),
        (["sample", str(tmp_path), "--out", str(tmp_path / "s.jpg")], "must be a .png"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("pixel-keras: error: ") and message in err, err
        assert "Traceback" not in err
    assert not os.path.exists(os.path.join(out, "checkpoints"))


@pytest.mark.tf_only
def test_train_evaluate_sample_end_to_end(tmp_path, capsys):
    out = str(tmp_path / "run")

    def train(epochs, *extra):
        return [
            "train", "--dataset", "digits", "--epochs", str(epochs),
            "--steps-per-epoch", "3", "--batch-size", "16", "--hidden-maps", "8",
            "--residual-blocks", "1", "--output-maps", "16", "--test-split",
            "test[:50]", "--samples-per-epoch", "4", "--out", out, "--verbose",
            "2", "--seed", "1", *extra,
        ]  # fmt: skip

    assert cli.main(train(1)) == 0
    printed = capsys.readouterr().out
    assert "Epoch 1/1: test bits/dim" in printed and f"Run {out}: 1/1 epochs" in printed
    config = training.read_config(out)
    assert config["model_config"]["num_residual_blocks"] == 1
    assert config["model_args"] == {
        "hidden_maps": 8, "num_residual_blocks": 1, "output_maps": 16
    }  # fmt: skip
    state = training.read_state(out)

    # A second train into the same directory is refused; --resume continues.
    assert cli.main(train(2)) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert cli.main(train(2, "--resume")) == 0
    assert "Resuming" in capsys.readouterr().out
    assert training.read_state(out)["epoch"] == 2

    # evaluate: the run's data set by default, exact bits/dim as JSON.
    assert cli.main(["evaluate", out, "--split", "test[:50]", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["dataset"] == "digits" and result["num_images"] == 50
    last = training.read_state(out)["history"][-1]
    assert result["bits_per_dim"] == pytest.approx(last["val_bits_per_dim"], rel=1e-5)
    checkpoint = os.path.join(out, training.read_state(out)["checkpoint"])
    assert cli.main(["evaluate", checkpoint, "--split", "test[:50]"]) == 0
    assert "test[:50]: " in capsys.readouterr().out
    assert state["checkpoint"] != training.read_state(out)["checkpoint"]

    # sample: a PNG grid; the same seed gives the same file; no overwrite.
    png = str(tmp_path / "grid.png")
    sample = ["sample", out, "--out", png, "--num-samples", "4", "--seed", "3"]
    assert cli.main(sample) == 0
    assert f"Wrote 4 samples to {png}" in capsys.readouterr().out
    first = open(png, "rb").read()
    assert cli.main(sample) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert cli.main([*sample, "--overwrite"]) == 0
    assert open(png, "rb").read() == first
    from PIL import Image

    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] >= 2 * 8


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "pixel_keras", "train", "--batch-size", "-3"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: pixel-keras train")
    assert result.stderr.strip().splitlines()[-1] == (
        "pixel-keras train: error: argument --batch-size: must be >= 1, got -3"
    )
