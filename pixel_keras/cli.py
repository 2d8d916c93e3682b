"""The `pixel-keras` command line (also `python -m pixel_keras`).

```
pixel-keras train    --dataset digits --epochs 5 --out runs/digits   # a run directory
pixel-keras train    --model row_lstm --num-layers 2 --dataset digits
pixel-keras train    --model gated_pixelcnn --num-classes 10 --dataset digits
pixel-keras train    --preset pixelcnn_digits                        # a zoo preset
pixel-keras evaluate runs/digits --split test                        # exact bits/dim
pixel-keras sample   runs/digits --out samples.png --seed 0          # PNG grid
pixel-keras sample   --preset test_pixelcnn --out samples.png        # preset weights
pixel-keras zoo list '*digits'                                       # presets
pixel-keras zoo show pixelcnn_digits [--json]
```

`train` writes the run directory described in `pixel_keras.training`
(config, crash-safe checkpoints, per-epoch sample grids, TensorBoard logs)
and continues it with `--resume`. The architecture is `--model` with its own
options (each option applies to the models that take the argument; giving it
to another model is an error), or a zoo preset (`--preset NAME` or a preset
directory), whose single arguments the same options override; `--dataset`
then defaults to the preset's. `evaluate` and `sample` take a run directory
(its latest checkpoint), a `.keras` file, or `--preset` (the preset's trained
weights; `sample` warns and draws from the untrained architecture when it
has none).

Errors in the arguments, and errors the library reports about them
(`ValueError`, missing or existing files, unavailable data, unknown
presets), print one line `pixel-keras: error: ...` on stderr and exit with
status 2, without a traceback; a training run whose loss became NaN or
infinite (`training.TrainingDivergedError`) prints one such line and exits
with status 1.

`--help`, parse errors and the argument checks that need no library
(`precheck`) import neither Keras nor TensorFlow. The other commands import
them once, through `import_tensorflow_quietly`, which keeps TensorFlow's C++
start-up lines (written to stderr before its logging is configured, so
TF_CPP_MIN_LOG_LEVEL cannot silence them) out of the output.
"""

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile

PROG = "pixel-keras"
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")  # training.STRATEGIES
# The keys of pixel_keras.models.registry.MODELS (not imported: parsing and
# --help stay free of Keras).
MODEL_NAMES = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")

# Command line option (argparse dest) -> model argument. An option is sent
# only to models whose constructor takes the argument
# (`training.model_arguments`); a preset's config is the base they override.
MODEL_OPTIONS = {
    "hidden_maps": "hidden_maps",
    "output_maps": "output_maps",
    "residual_blocks": "num_residual_blocks",
    "num_layers": "num_layers",
    "kernel_size": "kernel_size",
    "residual": "residual",
    "num_classes": "num_classes",
}
# Model -> the arguments of MODEL_OPTIONS it takes: `training.model_arguments`
# (tests/test_cli.py checks that they agree), here so that an option given to
# the wrong model is refused before Keras is imported.
MODEL_OPTION_ARGUMENTS = {
    "pixelcnn": ("hidden_maps", "output_maps", "num_residual_blocks", "kernel_size"),
    "row_lstm": ("hidden_maps", "output_maps", "num_layers", "kernel_size", "residual"),
    "diagonal_bilstm": ("hidden_maps", "output_maps", "num_layers", "residual"),
    "gated_pixelcnn": (
        "hidden_maps",
        "output_maps",
        "num_layers",
        "kernel_size",
        "num_classes",
    ),
}
# argparse dest -> option as typed, for messages.
OPTION_FLAGS = {
    "hidden_maps": "--hidden-maps",
    "output_maps": "--output-maps",
    "residual_blocks": "--residual-blocks",
    "num_layers": "--num-layers",
    "kernel_size": "--kernel-size",
    "residual": "--no-residual",
    "num_classes": "--num-classes",
}


class UsageError(Exception):
    """A command line problem found after parsing (exit status 2)."""


# What TensorFlow's native libraries write to stderr while `import tensorflow`
# loads them, before its logging is set up, so that TF_CPP_MIN_LOG_LEVEL
# cannot silence it (on CPUs with AVX-512/oneDNN: the absl line and the
# oneDNN note, once per library, i.e. twice): filtered from the commands'
# output unless TF_CPP_MIN_LOG_LEVEL is 0.
_TF_STARTUP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are "
    r"written to STDERR$"
    r"|[IW]\d{4} [\d:.]+ +\d+ (port|cpu_feature_guard)\.cc:\d+\] "
    r"|To enable the following instructions: .*rebuild TensorFlow with the "
    r"appropriate compiler flags\.$"
)
# Commands that run without Keras and TensorFlow.
_COMMANDS_WITHOUT_TENSORFLOW = ("serve-sample",)


# ---------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _unit_interval(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Reports a parse error in one line (and where to find the usage)."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def build_parser():
    """The `argparse` parser of `pixel-keras` and its subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Train, evaluate and sample autoregressive image models "
        "(PixelCNN family) with exact bits/dim.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _add_train(commands)
    _add_evaluate(commands)
    _add_sample(commands)
    _add_zoo(commands)
    _add_export(commands)
    # serving.py imports only NumPy and the standard library at the top.
    from pixel_keras.serving import add_serve_sample_parser

    add_serve_sample_parser(commands)
    return parser


def _add_train(commands):
    p = commands.add_parser(
        "train",
        help="train a model; writes a run directory",
        description="Train a model on a data set. Writes OUT/config.json, "
        "crash-safe checkpoints (OUT/checkpoints, committed by "
        "OUT/state.json), a sample grid per epoch (OUT/samples) and "
        "TensorBoard logs (OUT/logs), and prints test bits/dim every epoch.",
    )
    model = p.add_argument_group(
        "model",
        "Each option below goes to the models that take it; the defaults are "
        "the model's (or the preset's).",
    )
    model.add_argument(
        "--model",
        choices=MODEL_NAMES,
        help="architecture (default: the preset's, else pixelcnn)",
    )
    model.add_argument(
        "--preset",
        metavar="NAME",
        help="zoo preset name or directory: its model and config "
        "(`pixel-keras zoo list`); the options below override single arguments",
    )
    model.add_argument(
        "--hidden-maps",
        type=_positive_int,
        help="h: hidden feature maps (all models)",
    )
    model.add_argument(
        "--output-maps", type=_positive_int, help="output stack maps (all models)"
    )
    model.add_argument(
        "--residual-blocks",
        type=_non_negative_int,
        help="residual blocks (pixelcnn)",
    )
    model.add_argument(
        "--num-layers",
        type=_positive_int,
        help="LSTM layers or gated blocks (row_lstm, diagonal_bilstm, gated_pixelcnn)",
    )
    model.add_argument(
        "--kernel-size",
        type=_positive_int,
        help="kernel size (pixelcnn, row_lstm, gated_pixelcnn)",
    )
    model.add_argument(
        "--no-residual",
        dest="residual",
        action="store_const",
        const=False,
        help="no residual connections between LSTM layers (row_lstm, diagonal_bilstm)",
    )
    model.add_argument(
        "--num-classes",
        type=_positive_int,
        help="class-conditional on the data set's labels (gated_pixelcnn)",
    )

    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        help="fashion_mnist, digits, binarized_<name> or a TFDS name "
        "(default: the preset's, else fashion_mnist)",
    )
    data.add_argument("--train-split", default="train", help="e.g. 'train[:5000]'")
    data.add_argument(
        "--test-split", default="test", help="bits/dim split (default: test)"
    )
    data.add_argument("--data-dir", help="where to look for data files first")

    fit = p.add_argument_group("training")
    fit.add_argument(
        "--epochs", type=_positive_int, default=10, help="total (default: 10)"
    )
    fit.add_argument(
        "--batch-size",
        type=_positive_int,
        default=64,
        help="global batch (default: 64)",
    )
    fit.add_argument(
        "--lr", type=_positive_float, default=1e-3, help="Adam learning rate (1e-3)"
    )
    fit.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="learning rate after the warm-up: constant, or cosine decay to 0 "
        "at the last epoch (default: constant)",
    )
    fit.add_argument(
        "--warmup-steps",
        type=_non_negative_int,
        default=0,
        help="linear learning-rate warm-up steps (0)",
    )
    fit.add_argument(
        "--clipnorm",
        type=_positive_float,
        help="clip the global gradient norm to this (default: no clipping)",
    )
    fit.add_argument(
        "--ema",
        type=_unit_interval,
        metavar="MOMENTUM",
        help="keep a warmed-up moving average of the weights with this "
        "momentum (e.g. 0.999): test bits/dim, samples, evaluate and published "
        "weights use it (default: none)",
    )
    fit.add_argument(
        "--precision",
        choices=("auto", "float32", "mixed_bfloat16"),
        default="auto",
        help="compute precision: auto = bfloat16 where the CPU has native "
        "bfloat16 (AVX-512 BF16/AMX), else float32; losses, evaluation and "
        "export are float32 (default: auto)",
    )
    fit.add_argument(
        "--steps-per-epoch",
        type=_positive_int,
        help="steps per epoch (default: one pass over the train split)",
    )
    fit.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="tf.distribute strategy (default: auto = Mirrored over GPUs if any)",
    )
    fit.add_argument(
        "--seed", type=int, default=0, help="weights, shuffling, samples (0)"
    )
    fit.add_argument(
        "--max-minutes",
        type=_positive_float,
        help="stop after the epoch that crosses this wall time (resume later)",
    )

    run = p.add_argument_group("run directory")
    run.add_argument(
        "--out", help="run directory (default: runs/PRESET or runs/MODEL_DATASET)"
    )
    exclusive = run.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in OUT"
    )
    exclusive.add_argument(
        "--overwrite", action="store_true", help="delete a previous run in OUT first"
    )
    run.add_argument(
        "--samples-per-epoch",
        type=_non_negative_int,
        default=16,
        help="images in each epoch's sample grid; 0 for none (16)",
    )
    run.add_argument(
        "--keep-checkpoints", type=_positive_int, default=1, help="checkpoints kept (1)"
    )
    run.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="0 silent, 1 bar, 2 lines",
    )
    p.set_defaults(handler=_train, precheck=_precheck_train)


def _add_model_source(p, preset_help):
    p.add_argument(
        "checkpoint",
        nargs="?",
        help="run directory (latest checkpoint) or .keras file; or use --preset",
    )
    p.add_argument("--preset", metavar="NAME", help=preset_help)


def _add_evaluate(commands):
    p = commands.add_parser(
        "evaluate",
        help="exact bits/dim of a checkpoint or preset on a split",
        description="Mean negative log-likelihood (nats/image) and bits/dim of "
        "a checkpoint, or of a preset's trained weights, over every image of "
        "a split. Class-conditional models are evaluated with the data set's "
        "labels.",
    )
    _add_model_source(
        p, "zoo preset name or directory with trained weights, instead of CHECKPOINT"
    )
    p.add_argument("--dataset", help="data set (default: the run's or the preset's)")
    p.add_argument("--split", default="test", help="split (default: test)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="(default: 64)")
    p.add_argument("--data-dir", help="where to look for data files first")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_evaluate, precheck=_check_model_source)


def _add_sample(commands):
    p = commands.add_parser(
        "sample",
        help="draw samples from a checkpoint or preset into a PNG grid",
        description="Draw images from a checkpoint or a preset, sub-pixel by "
        "sub-pixel, and save them as one PNG grid. A class-conditional model "
        "draws --class-label, or the labels 0, 1, ... in turn (one column per "
        "class).",
    )
    _add_model_source(
        p,
        "zoo preset name or directory, instead of CHECKPOINT (its trained "
        "weights; untrained, with a warning, when it has none)",
    )
    p.add_argument("--out", required=True, help="output .png path")
    p.add_argument(
        "--num-samples", type=_positive_int, default=16, help="(default: 16)"
    )
    p.add_argument("--seed", type=int, default=0, help="same seed, same images (0)")
    p.add_argument(
        "--method",
        choices=("auto", "cached", "naive"),
        default="auto",
        help="sampler: 'cached' (exact, O(1) work per sub-pixel, every "
        "architecture), 'naive' (one full pass per sub-pixel, the reference); "
        "auto (default) = cached where available",
    )
    p.add_argument(
        "--temperature",
        type=_positive_float,
        default=1.0,
        help="softmax temperature (1.0)",
    )
    p.add_argument(
        "--class-label",
        type=_non_negative_int,
        help="class of every sample (class-conditional models only)",
    )
    p.add_argument(
        "--columns",
        type=_positive_int,
        help="grid columns (default: one per class, else ~sqrt(N))",
    )
    p.add_argument(
        "--scale", type=_positive_int, help="pixel upscaling (default: auto)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out file"
    )
    p.set_defaults(handler=_sample, precheck=_precheck_sample)


def _add_zoo(commands):
    p = commands.add_parser(
        "zoo",
        help="list and show model presets",
        description="The model zoo: named presets (architecture config, "
        "metadata, trained weights where they exist).",
    )
    sub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    sub.required = True
    listing = sub.add_parser(
        "list",
        help="one line per preset",
        description="One line per preset: name, model, data set, image shape, "
        "parameters, and 'weights' where trained weights exist ('-' if not).",
    )
    listing.add_argument(
        "pattern",
        nargs="?",
        metavar="PATTERN",
        help="glob on the name, e.g. '*digits'; without * ? [ a substring",
    )
    listing.set_defaults(handler=_zoo_list)
    show = sub.add_parser(
        "show",
        help="config and metadata of one preset",
        description="The config and metadata of a preset (a name or a preset "
        "directory).",
    )
    show.add_argument("name", metavar="NAME", help="preset name or directory")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    show.set_defaults(handler=_zoo_show)


def _add_export(commands):
    p = commands.add_parser(
        "export",
        help="export a preset or checkpoint as a TF Serving SavedModel",
        description="Export a zoo preset (or preset directory) or a training "
        "checkpoint as a SavedModel with the signatures serving_default "
        "(log-likelihood), sample, sample_step and complete, into TF Serving's "
        "layout OUT/<version>/. See export/README.md for serving it.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="zoo preset name or preset directory")
    source.add_argument(
        "--checkpoint", help="training run directory (latest checkpoint) or .keras file"
    )
    p.add_argument(
        "--out", required=True, metavar="BASE_DIR", help="the model's base path"
    )
    p.add_argument(
        "--version", type=int, default=None, help="version number (default: next free)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing version"
    )
    p.add_argument(
        "--weights",
        default="auto",
        help="with --preset: 'auto' (bundled/downloaded if any), 'none' (random "
        "init, for testing the serving setup) or a weights file (default: auto)",
    )
    p.set_defaults(handler=_export)


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pixel-keras")
    except PackageNotFoundError:  # Not installed (running from a source tree).
        return "unknown"


# ---------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------


def _model_config(args, name):
    """The model arguments given as options, checked against model `name`."""
    given = {
        dest: getattr(args, dest)
        for dest in MODEL_OPTIONS
        if getattr(args, dest) is not None
    }
    accepted = set(MODEL_OPTION_ARGUMENTS[name])
    wrong = [dest for dest in given if MODEL_OPTIONS[dest] not in accepted]
    if wrong:
        valid = [OPTION_FLAGS[d] for d in MODEL_OPTIONS if MODEL_OPTIONS[d] in accepted]
        raise UsageError(
            f"{', '.join(OPTION_FLAGS[d] for d in wrong)} "
            f"{'does' if len(wrong) == 1 else 'do'} not apply to model "
            f"{name!r}; its options: {', '.join(valid)}"
        )
    return {MODEL_OPTIONS[dest]: value for dest, value in given.items()}


def _precheck_train(args):
    """The checks of `_train` that need no Keras (without --preset)."""
    if args.preset is None:
        _model_config(args, args.model or "pixelcnn")


def _train(args):
    from pixel_keras import training

    preset = None
    if args.preset is not None:
        from pixel_keras import zoo

        preset = zoo.get_preset(args.preset)
        if args.model is not None and args.model != preset.model:
            raise UsageError(
                f"--model {args.model} conflicts with --preset {args.preset}, "
                f"a {preset.model} model; leave out --model"
            )
    name = args.model or (preset.model if preset else "pixelcnn")
    model_config = _model_config(args, name)
    dataset = args.dataset
    if dataset is None and preset is None:
        dataset = "fashion_mnist"
    if args.out:
        out = args.out
    elif preset is not None:
        out = os.path.join("runs", preset.name)
    else:
        out = os.path.join("runs", f"{name}_{dataset}")
    history = training.train(
        name,
        dataset,
        out,
        preset=preset,
        model_config=model_config,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        train_split=args.train_split,
        test_split=args.test_split,
        steps_per_epoch=args.steps_per_epoch,
        resume=args.resume,
        overwrite=args.overwrite,
        strategy=args.strategy,
        samples_per_epoch=args.samples_per_epoch,
        seed=args.seed,
        max_minutes=args.max_minutes,
        keep_checkpoints=args.keep_checkpoints,
        data_dir=args.data_dir,
        verbose=args.verbose,
        precision=args.precision,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        clipnorm=args.clipnorm,
        ema_momentum=args.ema,
    )
    if args.verbose and history.is_chief:
        last = history.run_history[-1] if history.run_history else {}
        line = f"Run {out}: {last.get('epoch', 0)}/{args.epochs} epochs"
        if "val_bits_per_dim" in last:
            line += f", test bits/dim {last['val_bits_per_dim']:.4f}"
        if history.stopped_for_time:
            line += " (stopped by --max-minutes; continue with --resume)"
        print(line)
    return 0


def _run_dir_of(path):
    """The run directory of a checkpoint path, or None."""
    if os.path.isdir(path):
        return path
    parent = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    return parent if os.path.isfile(os.path.join(parent, "config.json")) else None


def _check_model_source(args):
    """Exactly one of CHECKPOINT and --preset; the checkpoint must exist."""
    if (args.checkpoint is None) == (args.preset is None):
        given = (
            "neither"
            if args.checkpoint is None
            else f"both ({args.checkpoint} and --preset {args.preset})"
        )
        raise UsageError(
            "give exactly one of CHECKPOINT (a run directory or .keras file) "
            f"and --preset NAME, got {given}"
        )
    if args.checkpoint is not None and not os.path.exists(args.checkpoint):
        raise UsageError(f"no such checkpoint file or run directory: {args.checkpoint}")


def _load_preset(name, weights):
    """`zoo.load(name, weights)`; its warnings become `pixel-keras: warning:` lines."""
    import warnings

    from pixel_keras import zoo

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = zoo.load(name, weights=weights)
    for warning in caught:
        print(f"{PROG}: warning: {warning.message}", file=sys.stderr)
    return model


def _evaluate(args):
    _check_model_source(args)
    from pixel_keras import training

    dataset = args.dataset
    if args.preset is not None:
        from pixel_keras import zoo

        preset = zoo.get_preset(args.preset)
        if preset.bundled_weights is None and not preset.metadata.get("weights_url"):
            raise UsageError(
                f"preset {preset.name!r} has no trained weights to evaluate; "
                f"train it (pixel-keras train --preset {args.preset}) and "
                "evaluate the run directory"
            )
        dataset = dataset or preset.metadata.get("dataset")
        if dataset is None:
            raise UsageError(
                f"--dataset is required: preset {preset.name!r} names no data set"
            )
        model = _load_preset(args.preset, weights=True)
    else:
        if dataset is None:
            run_dir = _run_dir_of(args.checkpoint)
            config = training.read_config(run_dir) if run_dir else None
            if not config or "dataset" not in config:
                raise UsageError(
                    f"--dataset is required: {args.checkpoint} is not in a run "
                    "directory with a config.json"
                )
            dataset = config["dataset"]
        model = training.load_checkpoint(args.checkpoint)
    result = training.evaluate(
        model, dataset, args.split, batch_size=args.batch_size, data_dir=args.data_dir
    )
    result = {"dataset": dataset, "split": args.split, **result}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{dataset} {args.split}: {result['bits_per_dim']:.4f} bits/dim "
            f"({result['nats_per_image']:.3f} nats/image, "
            f"{result['num_images']} images)"
        )
    return 0


def _precheck_sample(args):
    if not args.out.lower().endswith(".png"):
        raise UsageError(f"--out must be a .png file, got {args.out!r}")
    if os.path.exists(args.out) and not args.overwrite:
        raise UsageError(f"{args.out} exists; pass --overwrite to replace it")
    _check_model_source(args)


def _sample(args):
    _precheck_sample(args)
    from pixel_keras import training
    from pixel_keras.images import save_image_grid

    if args.preset is not None:
        model = _load_preset(args.preset, weights="auto")
    else:
        model = training.load_checkpoint(args.checkpoint)
    columns = args.columns
    if training.is_class_conditional(model):
        if args.class_label is None:
            labels = training.sample_class_labels(model, args.num_samples)
            columns = columns or training.sample_grid_columns(model, args.num_samples)
        elif args.class_label >= model.num_classes:
            raise UsageError(
                f"--class-label must be < {model.num_classes} (the model's "
                f"num_classes), got {args.class_label}"
            )
        else:
            labels = args.class_label
    elif args.class_label is not None:
        raise UsageError(
            "--class-label needs a class-conditional model; this "
            f"{training.model_name(model)} model takes no class label"
        )
    else:
        labels = None
    from pixel_keras import cached_sampling

    method = args.method
    if method == "auto":
        method = "cached" if cached_sampling.supports(model) else "naive"
    images = model.sample(
        args.num_samples,
        seed=args.seed,
        temperature=args.temperature,
        verbose=1 if sys.stdout.isatty() else 0,
        class_label=labels,
        method=method,
    )
    save_image_grid(
        images,
        args.out,
        num_levels=model.num_levels,
        columns=columns,
        scale=args.scale or training._scale(images),
        overwrite=args.overwrite,
    )
    print(f"Wrote {args.num_samples} samples to {args.out}")
    return 0


def _export(args):
    from pixel_keras.export import export_main

    return export_main(args)


def _zoo_rows(names):
    from pixel_keras import zoo

    rows = []
    for name in names:
        preset = zoo.get_preset(name)
        meta, config = preset.metadata, preset.config
        shape = meta.get("image_shape") or config.get("image_shape")
        params = meta.get("num_params")
        if params is None:
            params = zoo.count_params(preset)
        has_weights = preset.bundled_weights is not None or meta.get("weights_url")
        rows.append(
            (
                preset.name,
                preset.model,
                meta.get("dataset") or "-",
                "x".join(map(str, shape)) if shape else "-",
                f"{params:,}",
                "weights" if has_weights else "-",
            )
        )
    return rows


def _zoo_list(args):
    from pixel_keras import zoo

    pattern = args.pattern
    if pattern is not None and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    names = zoo.list_presets(pattern)
    if not names:
        raise UsageError(
            f"no preset matches {args.pattern!r}. Available: {', '.join(zoo.list_presets())}"
        )
    header = ("NAME", "MODEL", "DATASET", "IMAGE", "PARAMS", "WEIGHTS")
    rows = [header, *_zoo_rows(names)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [
            cell.rjust(width) if i == 4 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ]
        print("  ".join(cells).rstrip())
    return 0


def _zoo_show(args):
    from pixel_keras import zoo

    info = zoo.describe(args.name)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    print(f"{info['name']}: {info['model']}")
    print(f"  weights: {info['weights'] or '-'}")
    for section in ("config", "metadata"):
        values = info[section]
        print(f"{section}:")
        if not values:
            print("  -")
        width = max((len(key) for key in values), default=0)
        for key in sorted(values):
            value = values[key]
            if isinstance(value, (list, dict)):
                value = json.dumps(value)
            print(f"  {key.ljust(width)}  {value}")
    return 0


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def import_tensorflow_quietly():
    """Imports Keras and TensorFlow without TensorFlow's C++ start-up lines.

    TensorFlow writes a few INFO lines to file descriptor 2 while its native
    libraries load, whatever TF_CPP_MIN_LOG_LEVEL says. This sends descriptor
    2 to a temporary file during the import, restores it, and writes back to
    `sys.stderr` every captured line except those start-up lines (warnings and
    errors stay visible). With TF_CPP_MIN_LOG_LEVEL=0 nothing is filtered.
    Does nothing once TensorFlow is imported.
    """
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    try:
        keep_all = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")) < 1
    except ValueError:
        keep_all = False
    with tempfile.TemporaryFile() as captured:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # No descriptor 2: nothing to keep quiet.
            saved = None
        if saved is not None:
            os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401  (imports TensorFlow on its backend)

            try:
                import tensorflow  # noqa: F401
            except ImportError:  # JAX backend without TensorFlow.
                pass
        finally:
            if saved is not None:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                text = captured.read().decode("utf-8", errors="replace")
                for line in text.splitlines(keepends=True):
                    if keep_all or not _TF_STARTUP_LINE.match(line):
                        sys.stderr.write(line)
                sys.stderr.flush()


def _user_errors():
    """Exceptions that mean "bad input", reported in one line."""
    errors = [UsageError, ValueError, OSError]
    data = sys.modules.get("pixel_keras.data")
    if data is not None:
        errors.append(data.DataUnavailableError)
    return tuple(errors)


def _run_failures():
    """Exceptions that mean "the run failed" (exit status 1), in one line."""
    training = sys.modules.get("pixel_keras.training")
    return (training.TrainingDivergedError,) if training is not None else ()


def _error_line(error):
    """`pixel-keras: error: MESSAGE` on one line."""
    message = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename:
        if str(error.filename) not in message:
            message = f"{message}: {error.filename}"
    return f"{PROG}: error: {' '.join(message.split())}"


def main(argv=None):
    """Runs `pixel-keras` with `argv` (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 2 for bad arguments or inputs,
        1 when training diverged (NaN or infinite loss), 130 when
        interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a parse error (2, already printed).
        return e.code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        # Argument checks first: an argument error imports no TensorFlow.
        if getattr(args, "precheck", None) is not None:
            args.precheck(args)
        if args.command not in _COMMANDS_WITHOUT_TENSORFLOW:
            import_tensorflow_quietly()
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        print(_error_line(e), file=sys.stderr)
        return 2
    except _run_failures() as e:
        if sys.stdout.isatty():  # End the progress bar's line.
            print(flush=True)
        print(_error_line(e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
