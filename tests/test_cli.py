import json
import os
import subprocess
import sys

import pytest

from pixel_keras import cli, training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["train"],
        ["evaluate"],
        ["sample"],
        ["zoo"],
        ["zoo", "list"],
        ["zoo", "show"],
    ],
)
def test_help(command, capsys):
    assert cli.main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pixel-keras {' '.join(command)}".rstrip())
    if command == ["train"]:
        for option in (
            "--max-minutes", "--resume", "--strategy", "--residual-blocks",
            "--preset", "--num-layers", "--kernel-size", "--no-residual",
            "--num-classes",
        ):  # fmt: skip
            assert option in out
    if command in (["evaluate"], ["sample"]):
        assert "--preset" in out and "[checkpoint]" in out


def test_choices_match_the_library():
    from pixel_keras.models.registry import MODELS

    assert cli.STRATEGIES == training.STRATEGIES
    assert sorted(cli.MODEL_NAMES) == sorted(MODELS)
    # Every option maps to an argument of at least one model.
    arguments = {a for name in MODELS for a in training.model_arguments(name)}
    assert set(cli.MODEL_OPTIONS.values()) <= arguments
    assert set(cli.OPTION_FLAGS) == set(cli.MODEL_OPTIONS)
    # The CLI's copy of which model takes which option (for checks before
    # Keras is imported) is the library's.
    assert sorted(cli.MODEL_OPTION_ARGUMENTS) == sorted(MODELS)
    for name, taken in cli.MODEL_OPTION_ARGUMENTS.items():
        expected = set(training.model_arguments(name)) & set(cli.MODEL_OPTIONS.values())
        assert set(taken) == expected, name


def _parser_table(parser, path=()):
    """{command: its prog, description and one row per argument}, recursively."""
    import argparse

    groups = {
        id(action): group.title
        for group in parser._action_groups
        for action in group._group_actions
    }
    exclusive = {
        id(action): index
        for index, group in enumerate(parser._mutually_exclusive_groups)
        for action in group._group_actions
    }
    rows, table = [], {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            rows.append(
                {
                    "subcommands": list(action.choices),
                    "dest": action.dest,
                    "metavar": action.metavar,
                    "required": action.required,
                }
            )
            for name, sub in action.choices.items():
                table.update(_parser_table(sub, (*path, name)))
            continue
        choices = None if action.choices is None else list(action.choices)
        rows.append(
            {
                "flags": action.option_strings,
                "dest": action.dest,
                "default": repr(action.default),
                "const": repr(action.const),
                "nargs": action.nargs,
                "choices": choices,
                "required": action.required,
                "metavar": action.metavar,
                "help": action.help,
                "group": groups.get(id(action)),
                "exclusive": exclusive.get(id(action)),
                "action": type(action).__name__,
            }
        )
    table[" ".join(path)] = {
        "prog": parser.prog,
        "description": parser.description,
        "arguments": rows,
    }
    return table


def test_parsers_match_the_snapshot():
    """Every command's flags, defaults, help texts and groups, as recorded.

    tests/data/cli_parsers.json was written from the single-module cli.py
    (before the cli package); after a deliberate change to the command line,
    rewrite it with `json.dump(_parser_table(cli.build_parser()), f,
    indent=1, sort_keys=True)`.
    """
    with open(os.path.join(REPO, "tests", "data", "cli_parsers.json")) as f:
        expected = json.load(f)
    got = json.loads(json.dumps(_parser_table(cli.build_parser())))
    assert sorted(got) == sorted(expected)
    for command in expected:
        assert got[command] == expected[command], command


def test_cli_temperature_rule_is_the_samplers():
    import numpy as np

    from pixel_keras import checks, sampling

    assert checks.TEMPERATURE_RULE == sampling.TEMPERATURE_RULE
    assert checks.MIN_TEMPERATURE == sampling.MIN_TEMPERATURE
    assert checks.MAX_TEMPERATURE == sampling.MAX_TEMPERATURE
    values = [1, 0.5, np.float32(2), np.int64(3), 1e-39, 0, -1, float("nan")]
    values += [float("inf"), 10**400, True, np.bool_(True), "1", None, 3.5e38]
    for value in values:
        results = []
        for check in (checks.check_temperature, sampling.check_temperature):
            try:
                results.append(check(value))
            except ValueError as e:
                results.append(str(e))
        assert results[0] == results[1], value


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: COMMAND"),
        (["fit"], "invalid choice: 'fit'"),
        (["train", "--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
        (["train", "--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
        (["train", "--strategy", "tpu"], "argument --strategy: invalid choice: 'tpu'"),
        (["train", "--output-bias", "data"], "argument --output-bias: invalid choice"),
        (["train", "--resume", "--overwrite"], "not allowed with argument --resume"),
        (["sample", "run"], "the following arguments are required: --out"),
        (["sample", "run", "--out", "x.png", "--temperature", "0"], "must be a finite"),
        (
            ["sample", "run", "--out", "x.png", "--temperature", "1e-50"],
            "must be a finite number > 0 (at least 1.175e-38 and at most",
        ),
        (["serve-sample", "x.png", "--temperature", "inf"], "must be a finite"),
        (["train", "--model", "nope"], "argument --model: invalid choice: 'nope'"),
        (["sample", "run", "--out", "x.png", "--class-label", "-1"], "must be >= 0"),
        (["zoo"], "the following arguments are required: ZOO_COMMAND"),
        (["zoo", "show"], "the following arguments are required: NAME"),
    ],
)
def test_parse_errors_exit_2_with_one_error_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pixel-keras: error: ")
    assert message in err and "--help')" in err


def test_library_errors_exit_2_without_traceback(tmp_path, capsys):
    out = str(tmp_path / "run")
    png = str(tmp_path / "s.png")
    cases = [
        (
            ["train", "--dataset", "no_such_data_set_xyz", "--out", out],
            "no_such_data_set",
        ),
        (["evaluate", str(tmp_path / "missing")], "no such checkpoint"),
        # A preset name where a path belongs: the error points to --preset.
        (
            ["sample", "pixelcnn_digits", "--out", png],
            "no such checkpoint file or run directory: pixelcnn_digits "
            "(for the zoo preset, use --preset pixelcnn_digits)",
        ),
        (["evaluate", str(tmp_path)], "--dataset is required"),
        (["evaluate", str(tmp_path), "--dataset", "digits"], "No checkpoint in"),
        (["sample", str(tmp_path), "--out", str(tmp_path / "s.jpg")], "must be a .png"),
        # Model options go only to the models that take them.
        (
            ["train", "--model", "row_lstm", "--residual-blocks", "2", "--out", out],
            (
                "--residual-blocks does not apply to model 'row_lstm'; its options: "
                "--hidden-maps, --output-maps, --num-layers, --kernel-size, "
                "--no-residual"
            ),
        ),
        (
            ["train", "--model", "diagonal_bilstm", "--kernel-size", "3"]
            + ["--num-classes", "10", "--out", out],
            "--kernel-size, --num-classes do not apply to model 'diagonal_bilstm'",
        ),
        (["train", "--num-layers", "2", "--out", out], "model 'pixelcnn'"),
        (
            ["train", "--preset", "pixelcnn_digits", "--no-residual", "--out", out],
            "--no-residual does not apply to model 'pixelcnn'",
        ),
        # Presets: the architecture must fit the data set.
        (
            ["train", "--preset", "pixelcnn_digits", "--dataset", "fashion_mnist"]
            + ["--out", out],
            (
                "Preset 'pixelcnn_digits' is for images (8, 8, 1) with 17 levels; "
                "data set 'fashion_mnist' has (28, 28, 1) with 256 levels."
            ),
        ),
        (
            [
                "train",
                "--preset",
                "row_lstm_digits",
                "--model",
                "pixelcnn",
                "--out",
                out,
            ],
            "--model pixelcnn conflicts with --preset row_lstm_digits, a row_lstm",
        ),
        # Exactly one of CHECKPOINT and --preset.
        (["evaluate"], "give exactly one of CHECKPOINT"),
        (
            ["sample", str(tmp_path), "--preset", "test_pixelcnn", "--out", png],
            "exactly one of CHECKPOINT (a run directory or .keras file) and "
            f"--preset NAME, got both ({tmp_path} and --preset test_pixelcnn)",
        ),
        (
            ["evaluate", "--preset", "test_pixelcnn"],
            "preset 'test_pixelcnn' has no trained weights to evaluate",
        ),
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
    with open(png, "rb") as f:
        first = f.read()
    assert cli.main(sample) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert cli.main([*sample, "--overwrite"]) == 0
    with open(png, "rb") as f:
        assert f.read() == first
    # The default (cached, exact) sampler draws the naive sampler's images.
    assert cli.main([*sample, "--overwrite", "--method", "naive"]) == 0
    with open(png, "rb") as f:
        assert f.read() == first
    from PIL import Image

    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] >= 2 * 8


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "pixel_keras", "train", "--batch-size", "-3"],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=120,
    )
    # One line, whatever the CPU: parse errors import no TensorFlow.
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "pixel-keras: error: argument --batch-size: must be >= 1, got -3 "
        "(see 'pixel-keras train --help')\n"
    )


# ---- every model through the CLI ---------------------------------------------

FAST = [
    "--dataset", "digits", "--epochs", "1", "--steps-per-epoch", "2",
    "--batch-size", "8", "--test-split", "test[:20]", "--verbose", "0",
    "--seed", "1",
]  # fmt: skip
TINY = ["--hidden-maps", "4", "--output-maps", "8", "--num-layers", "1"]
MODEL_RUNS = {
    "row_lstm": (
        [*TINY, "--kernel-size", "3", "--samples-per-epoch", "0"],
        {"hidden_maps": 4, "output_maps": 8, "num_layers": 1, "kernel_size": 3},
    ),
    "diagonal_bilstm": (
        [*TINY, "--no-residual", "--samples-per-epoch", "0"],
        {"hidden_maps": 4, "output_maps": 8, "num_layers": 1, "residual": False},
    ),
    "gated_pixelcnn": (
        [
            *TINY,
            "--kernel-size",
            "3",
            "--num-classes",
            "10",
            "--samples-per-epoch",
            "4",
        ],
        {
            "hidden_maps": 4,
            "output_maps": 8,
            "num_layers": 1,
            "kernel_size": 3,
            "num_classes": 10,
        },
    ),
}


@pytest.fixture(scope="module")
def model_runs(tmp_path_factory):
    """One 2-step training run per model (shared by the tests below)."""
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, (argv, _) in MODEL_RUNS.items():
        out = str(root / name)
        assert cli.main(["train", *FAST, "--model", name, *argv, "--out", out]) == 0
        runs[name] = out
    return runs


@pytest.mark.tf_only
@pytest.mark.parametrize("name", sorted(MODEL_RUNS))
def test_train_evaluate_sample_every_model(name, model_runs, tmp_path, capsys):
    out = model_runs[name]
    config = training.read_config(out)
    assert config["model"] == name and config["dataset"] == "digits"
    assert config["model_args"] == MODEL_RUNS[name][1]
    assert config["class_conditional"] == (name == "gated_pixelcnn")
    for argument, value in MODEL_RUNS[name][1].items():
        assert config["model_config"][argument] == value

    # evaluate: the same bits/dim as the epoch's test bits/dim (with the
    # labels for the class-conditional model).
    assert cli.main(["evaluate", out, "--split", "test[:20]", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    last = training.read_state(out)["history"][-1]
    assert result["num_images"] == 20
    assert result["bits_per_dim"] == pytest.approx(last["val_bits_per_dim"], rel=1e-5)

    png = str(tmp_path / "samples.png")
    sample = ["sample", out, "--out", png, "--num-samples", "2", "--overwrite"]
    assert cli.main(sample) == 0
    assert f"Wrote 2 samples to {png}" in capsys.readouterr().out
    if name != "gated_pixelcnn":
        assert cli.main([*sample, "--class-label", "1"]) == 2
        assert (
            "--class-label needs a class-conditional model" in capsys.readouterr().err
        )
        return

    from PIL import Image

    # The epoch grid and a default sample grid: one column per class drawn.
    with Image.open(os.path.join(out, "samples", "epoch_001.png")) as image:
        width, height = image.size
        assert width > 3 * height  # 4 samples, labels 0..3, one row
    assert cli.main([*sample, "--class-label", "3"]) == 0
    capsys.readouterr()
    assert cli.main([*sample, "--class-label", "10"]) == 2
    assert "--class-label must be < 10" in capsys.readouterr().err


# ---- presets ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory):
    """`train --preset pixelcnn_digits` (data set from the preset), smaller."""
    out = str(tmp_path_factory.mktemp("preset") / "run")
    argv = [
        "train", "--preset", "pixelcnn_digits", "--epochs", "1",
        "--steps-per-epoch", "2", "--batch-size", "8", "--test-split",
        "test[:20]", "--samples-per-epoch", "0", "--hidden-maps", "8",
        "--residual-blocks", "1", "--verbose", "0", "--out", out,
    ]  # fmt: skip
    assert cli.main(argv) == 0
    return out


@pytest.mark.tf_only
def test_train_from_preset_and_use_it_as_a_preset(preset_run, tmp_path, capsys):
    from pixel_keras import zoo

    config = training.read_config(preset_run)
    assert config["preset"] == "pixelcnn_digits" and config["dataset"] == "digits"
    assert config["model"] == "pixelcnn"
    # The preset's config, with the two options given overriding it.
    assert config["model_args"] == {
        "hidden_maps": 8, "num_residual_blocks": 1, "output_maps": 32,
    }  # fmt: skip

    # The trained model as a preset directory: evaluate and sample take it.
    preset_dir = zoo.save_preset(
        training.load_checkpoint(preset_run), tmp_path / "digits_preset",
        {"dataset": "digits"},
    )  # fmt: skip
    evaluate = ["evaluate", "--preset", str(preset_dir), "--split", "test[:20]"]
    assert cli.main([*evaluate, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    last = training.read_state(preset_run)["history"][-1]
    assert result["dataset"] == "digits"
    assert result["bits_per_dim"] == pytest.approx(last["val_bits_per_dim"], rel=1e-5)
    png = str(tmp_path / "trained.png")
    assert cli.main(["sample", "--preset", str(preset_dir), "--out", png]) == 0
    captured = capsys.readouterr()
    assert f"Wrote 16 samples to {png}" in captured.out
    assert "warning" not in captured.err

    assert cli.main(["zoo", "show", str(preset_dir)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("digits_preset: pixelcnn\n")
    assert "model.weights.h5" in shown


@pytest.mark.tf_only
def test_sample_untrained_preset_warns(tmp_path, capsys):
    png = str(tmp_path / "untrained.png")
    argv = ["sample", "--preset", "test_pixelcnn", "--out", png, "--num-samples", "2"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert f"Wrote 2 samples to {png}" in captured.out
    assert captured.err.startswith(
        "pixel-keras: warning: Preset 'test_pixelcnn' has no trained weights; "
        "returning the untrained architecture."
    )
    from PIL import Image

    with Image.open(png) as image:
        assert image.format == "PNG" and image.mode == "RGB"


def test_zoo_list(capsys):
    from pixel_keras import zoo

    assert cli.main(["zoo", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "MODEL",
        "DATASET",
        "IMAGE",
        "PARAMS",
        "WEIGHTS",
    ]
    assert [line.split()[0] for line in lines[1:]] == zoo.list()
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["pixelcnn_digits"] == [
        "pixelcnn_digits", "pixelcnn", "digits", "8x8x1", "10,001", "weights",
    ]  # fmt: skip
    assert rows["test_pixelcnn"][-1] == "-"
    assert rows["test_gated_pixelcnn_conditional"][1:4] == [
        "gated_pixelcnn", "fashion_mnist", "8x8x1",
    ]  # fmt: skip

    # A glob, or a substring.
    for pattern in ("*digits", "digits"):
        assert cli.main(["zoo", "list", pattern]) == 0
        names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
        assert names == zoo.list("*digits") and len(names) >= 4
    assert cli.main(["zoo", "list", "no_such_*"]) == 2
    assert "no preset matches 'no_such_*'. Available: " in capsys.readouterr().err


def test_zoo_show(capsys):
    from pixel_keras import zoo

    assert cli.main(["zoo", "show", "test_gated_pixelcnn_conditional"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test_gated_pixelcnn_conditional: gated_pixelcnn\n")
    assert "  weights: -\n" in out
    assert "\nconfig:\n" in out and "\nmetadata:\n" in out
    assert "  num_classes  10\n" in out and "  image_shape  [8, 8, 1]\n" in out
    assert cli.main(["zoo", "show", "test_pixelcnn", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == json.loads(json.dumps(zoo.describe("test_pixelcnn")))
    assert shown["config"]["num_residual_blocks"] == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["zoo", "show", "no_such_preset"],
        ["train", "--preset", "no_such_preset"],
        ["evaluate", "--preset", "no_such_preset"],
        ["sample", "--preset", "no_such_preset", "--out", "x.png"],
    ],
)
def test_unknown_preset_exits_2_listing_the_presets(argv, capsys):
    from pixel_keras import zoo

    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "pixel-keras: error: Unknown preset 'no_such_preset'. Available: "
    )
    assert ", ".join(zoo.list()) in err


# ---- no TensorFlow for help and argument errors; no start-up lines ------------

NO_TENSORFLOW_SCRIPT = """
import json, sys
from pixel_keras import cli
codes = [cli.main(argv) for argv in json.loads(sys.argv[1])]
loaded = [name for name in ("tensorflow", "keras", "jax") if name in sys.modules]
print(json.dumps({"codes": codes, "loaded": loaded}))
"""
HELP = [
    [command, "--help"]
    for command in ("train", "evaluate", "sample", "zoo", "export", "serve-sample")
] + [["--help"], ["zoo", "list", "--help"], ["zoo", "show", "--help"]]
ARGUMENT_ERRORS = [
    [],
    ["fit"],
    ["train", "--batch-size", "-3"],
    ["train", "--model", "row_lstm", "--residual-blocks", "2"],
    ["train", "--num-layers", "2"],
    ["evaluate"],
    ["evaluate", "no/such/run"],
    ["evaluate", "pixelcnn_digits"],  # a preset name: the hint lists no Keras
    ["sample", "--out", "x.png"],
    ["sample", "run", "--out", "x.jpg"],
    ["export", "--out", "x"],
    ["export", "--preset", "a", "--checkpoint", "b", "--out", "x"],
    ["sample", "run", "--out", "x.png", "--temperature", "1e-50"],
    ["zoo", "show"],
    ["zoo", "list", "a", "b"],
    ["serve-sample"],
    ["serve-sample", "x.png", "--temperature", "0"],
    ["serve-sample", "x.png", "--num-samples", "0"],
    ["serve-sample", "x.png", "--url", "localhost:8501"],
]


def test_the_tensorflow_free_help_covers_every_command():
    commands = [name.split() for name in _parser_table(cli.build_parser())]
    assert sorted([*command, "--help"] for command in commands) == sorted(HELP)


def run_cli_process(*args, env=None):
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        timeout=180,
    )


def test_help_and_argument_errors_import_no_tensorflow():
    argvs = HELP + ARGUMENT_ERRORS
    result = run_cli_process("-c", NO_TENSORFLOW_SCRIPT, json.dumps(argvs))
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["codes"] == [0] * len(HELP) + [2] * len(ARGUMENT_ERRORS)
    assert out["loaded"] == []
    # Every argument error is one `pixel-keras: error:` line, and nothing else.
    errors = result.stderr.splitlines()
    assert len(errors) == len(ARGUMENT_ERRORS), result.stderr
    assert all(line.startswith("pixel-keras: error: ") for line in errors)

    # `python -m pixel_keras --help`: the usage on stdout, nothing on stderr.
    result = run_cli_process("-m", "pixel_keras", "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: pixel-keras ")


def test_package_attributes_load_on_first_use():
    import pixel_keras as pk
    from pixel_keras import images, layers, models

    assert pk.PixelCNN is models.PixelCNN and pk.MaskedConv2D is layers.MaskedConv2D
    assert pk.layers is layers and pk.save_image_grid is images.save_image_grid
    assert pk.sampling.__name__ == "pixel_keras.sampling"
    assert set(pk.__all__) <= set(dir(pk))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        pk.nope  # noqa: B018


FAKE_KERAS = """
import os, sys
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
            b"written to STDERR\\n")
os.write(2, b"I0000 00:00:1795966917.281603    4041 port.cc:153] oneDNN custom "
            b"operations are on. You may see slightly different numerical results\\n")
os.write(2, b"E0000 00:00:1795966917.281700    4041 loader.cc:12] a real error\\n")
print("a Python warning", file=sys.stderr)
"""
FAKE_TENSORFLOW = """
import os
os.write(2, b"I0000 00:00:1795966918.826896    4144 cpu_feature_guard.cc:227] This "
            b"TensorFlow binary is optimized to use available CPU instructions in "
            b"performance-critical operations.\\n")
os.write(2, b"To enable the following instructions: AVX2 AVX512F FMA, in other "
            b"operations, rebuild TensorFlow with the appropriate compiler flags.\\n")
os.write(2, b"W0000 00:00:1795966918.9    4144 other.cc:2] a real warning\\n")
"""


@pytest.mark.parametrize("level", ["2", "0"])
def test_import_tensorflow_quietly_drops_only_start_up_lines(tmp_path, level):
    """Deterministic, whatever the CPU: fake packages print TensorFlow's lines."""
    for name, code in (("keras", FAKE_KERAS), ("tensorflow", FAKE_TENSORFLOW)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(code)
    script = (
        "import sys\n"
        "from pixel_keras import cli\n"
        "cli.import_tensorflow_quietly()\n"
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    )
    result = run_cli_process(
        "-c",
        script,
        env={"PYTHONPATH": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": level},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['keras', 'tensorflow']"
    lines = result.stderr.splitlines()
    kept = [
        "E0000 00:00:1795966917.281700    4041 loader.cc:12] a real error",
        "a Python warning",
        "W0000 00:00:1795966918.9    4144 other.cc:2] a real warning",
    ]
    if level == "0":  # Asked for INFO lines: nothing is filtered.
        assert len(lines) == 7 and [line for line in lines if line in kept] == kept
    else:
        assert lines == kept


def test_commands_that_load_tensorflow_print_no_start_up_lines(tmp_path):
    """Holds on every CPU (on AVX-512 CPUs TensorFlow prints such lines)."""
    result = run_cli_process("-m", "pixel_keras", "zoo", "show", "test_pixelcnn")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("test_pixelcnn: pixelcnn\n")
    assert not [
        line for line in result.stderr.splitlines() if cli._TF_STARTUP_LINE.match(line)
    ], result.stderr

    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not a zip archive")
    result = run_cli_process(
        "-m", "pixel_keras", "evaluate", str(corrupt), "--dataset", "digits"
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert not [line for line in lines if cli._TF_STARTUP_LINE.match(line)], lines
    assert [line for line in lines if "error" in line] == [
        f"pixel-keras: error: Checkpoint {corrupt} is corrupt or unreadable: a "
        "`.keras` file must be a zip archive written by `model.save`, and this "
        "one is not."
    ]


# ---- training runs: refusals, divergence, mismatched data -------------------------

TINY_RUN = [
    "--dataset", "digits", "--steps-per-epoch", "2", "--batch-size", "8",
    "--hidden-maps", "4", "--output-maps", "8", "--residual-blocks", "0",
    "--test-split", "test[:16]", "--samples-per-epoch", "2", "--verbose", "0",
]  # fmt: skip


def tree(directory):
    """`{relative path: bytes}` of every file under `directory`."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tiny") / "run")
    assert cli.main(["train", *TINY_RUN, "--epochs", "2", "--out", out]) == 0
    return out


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pixel-keras: error: "), err
    return lines[0][len("pixel-keras: error: ") :]


@pytest.mark.tf_only
def test_run_directory_refusals_change_nothing(tiny_run, tmp_path, capsys):
    import shutil

    # --resume without state.json: the checkpoints are not accounted for.
    out = shutil.copytree(tiny_run, str(tmp_path / "no_state"))
    os.remove(os.path.join(out, "state.json"))
    before = tree(out)
    for flag in ("--resume", None):
        argv = ["train", *TINY_RUN, "--epochs", "3", "--out", out]
        assert cli.main(argv + ([flag] if flag else [])) == 2
        assert one_error_line(capsys) == (
            f"{out} holds checkpoints its run state does not account for "
            "(epoch_002.keras; it has no state.json committing any). Refusing to "
            f"{'resume' if flag else 'write into'} it; nothing was changed. "
            "Restore its state.json, move those checkpoints elsewhere, or start "
            "over with overwrite=True (--overwrite)."
        )
        assert tree(out) == before

    # --overwrite of a directory pixel-keras did not write.
    foreign = tmp_path / "foreign"
    (foreign / "logs").mkdir(parents=True)
    (foreign / "samples").mkdir()
    (foreign / "config.json").write_text("{}")
    (foreign / "logs" / "app.log").write_text("log")
    (foreign / "samples" / "photo.png").write_bytes(b"png")
    before = tree(foreign)
    argv = ["train", *TINY_RUN, "--epochs", "1", "--overwrite", "--out", str(foreign)]
    assert cli.main(argv) == 2
    assert one_error_line(capsys) == (
        f"{foreign} is not a pixel-keras run directory (it holds config.json, "
        "samples, logs, but no config.json or state.json written by pixel-keras). "
        "Refusing to overwrite it; nothing was changed. Choose another `out_dir` "
        "(--out)."
    )
    assert tree(foreign) == before


@pytest.mark.tf_only
def test_diverged_training_exits_1_keeping_the_last_checkpoint(
    tiny_run, tmp_path, capsys
):
    import shutil

    out = shutil.copytree(tiny_run, str(tmp_path / "run"))
    state = training.read_state(out)
    argv = ["train", *TINY_RUN, "--epochs", "3", "--resume", "--lr", "1e30"]
    assert cli.main([*argv, "--out", out]) == 1
    message = one_error_line(capsys)
    assert message.startswith("Training diverged: `loss` is nan at epoch 3, step ")
    assert message.endswith(
        "Stopped without committing epoch 3; the run keeps its last committed "
        "checkpoint, epoch 2. Lower the learning rate and resume. Received: loss=nan"
    )
    assert training.read_state(out) == state


@pytest.mark.tf_only
def test_evaluate_refuses_bad_data_and_corrupt_files(tiny_run, tmp_path, capsys):
    import shutil

    assert cli.main(["evaluate", tiny_run, "--dataset", "binarized_digits"]) == 2
    assert one_error_line(capsys) == (
        "The model expects images (8, 8, 1) with 17 levels; 'binarized_digits' "
        "has (8, 8, 1) with 2. Received: dataset='binarized_digits'"
    )
    run = shutil.copytree(tiny_run, str(tmp_path / "run"))
    config = os.path.join(run, "config.json")
    with open(config, "w") as f:
        f.write('{"model": ')
    assert cli.main(["evaluate", run]) == 2
    assert one_error_line(capsys).startswith(f"Unreadable run config {config}: ")

    checkpoint = os.path.join(run, training.read_state(run)["checkpoint"])
    truncated = str(tmp_path / "truncated.keras")
    with open(checkpoint, "rb") as f, open(truncated, "wb") as g:
        g.write(f.read()[:1000])
    png = str(tmp_path / "s.png")
    for command in (["evaluate", "--dataset", "digits"], ["sample", "--out", png]):
        assert cli.main([command[0], truncated, *command[1:]]) == 2
        assert one_error_line(capsys).startswith(
            f"Checkpoint {truncated} is corrupt or unreadable: "
        )
