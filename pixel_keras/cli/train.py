"""`pixel-keras train`: train a model into a run directory."""

import os

from pixel_keras.checks import (
    OUTPUT_BIAS_IMAGES,
    OUTPUT_BIAS_INITS,
    PRECISION_POLICIES,
)
from pixel_keras.cli._common import (
    UsageError,
    non_negative_int,
    positive_float,
    positive_int,
    unit_interval,
    verbosity,
)

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
# Model -> the arguments of MODEL_OPTIONS it takes. A copy of what
# `training.model_arguments` reads from the model classes' constructors,
# here so that an option given to the wrong model is refused before Keras is
# imported: the constructors live in modules that import Keras, and reading
# their signatures some other way (parsing their source) would be a second,
# more fragile source of the same fact. tests/test_cli.py checks that the
# copy agrees with the classes.
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


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


def add_parser(commands):
    """Adds `train` to the `pixel-keras` subparsers `commands`."""
    p = commands.add_parser(
        "train",
        help="train a model; writes a run directory",
        description="Train a model on a data set. Writes OUT/config.json, "
        "crash-safe checkpoints (OUT/checkpoints, committed by "
        "OUT/state.json), a sample grid per epoch (OUT/samples) and "
        "TensorBoard logs (OUT/logs), and prints test bits/dim every epoch.",
    )
    _add_model_options(p)
    _add_data_options(p)
    fit = p.add_argument_group("training")
    _add_optimizer_options(fit)
    _add_execution_options(fit)
    _add_run_directory_options(p)
    p.set_defaults(handler=run, precheck=precheck)


def _add_model_options(p):
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
        type=positive_int,
        help="h: hidden feature maps (all models)",
    )
    model.add_argument(
        "--output-maps", type=positive_int, help="output stack maps (all models)"
    )
    model.add_argument(
        "--residual-blocks",
        type=non_negative_int,
        help="residual blocks (pixelcnn)",
    )
    model.add_argument(
        "--num-layers",
        type=positive_int,
        help="LSTM layers or gated blocks (row_lstm, diagonal_bilstm, gated_pixelcnn)",
    )
    model.add_argument(
        "--kernel-size",
        type=positive_int,
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
        type=positive_int,
        help="class-conditional on the data set's labels (gated_pixelcnn)",
    )


def _add_data_options(p):
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


def _add_optimizer_options(fit):
    """Epochs, batch and the optimizer (the first half of "training")."""
    fit.add_argument(
        "--epochs", type=positive_int, default=10, help="total (default: 10)"
    )
    fit.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="global batch (default: 64)",
    )
    fit.add_argument(
        "--lr", type=positive_float, default=1e-3, help="Adam learning rate (1e-3)"
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
        type=non_negative_int,
        default=0,
        help="linear learning-rate warm-up steps (0)",
    )
    fit.add_argument(
        "--clipnorm",
        type=positive_float,
        help="clip the global gradient norm to this (default: no clipping)",
    )
    fit.add_argument(
        "--ema",
        type=unit_interval,
        metavar="MOMENTUM",
        help="keep a warmed-up moving average of the weights with this "
        "momentum (e.g. 0.999): test bits/dim, samples, evaluate and published "
        "weights use it (default: none)",
    )
    fit.add_argument(
        "--output-bias",
        choices=OUTPUT_BIAS_INITS,
        default="zeros",
        help="a new model's last-layer bias: zeros, or marginal = the log "
        f"frequency of each level in the first {OUTPUT_BIAS_IMAGES} training "
        "images, so training starts near the data's marginal bits/dim "
        "(default: zeros)",
    )


def _add_execution_options(fit):
    """Precision, steps, devices, seed, time (the second half of "training")."""
    fit.add_argument(
        "--precision",
        choices=PRECISION_POLICIES,
        default="auto",
        help="compute precision: auto = bfloat16 where the CPU has native "
        "bfloat16 (AVX-512 BF16/AMX), else float32; losses, evaluation and "
        "export are float32 (default: auto)",
    )
    fit.add_argument(
        "--steps-per-epoch",
        type=positive_int,
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
        type=positive_float,
        help="stop after the epoch that crosses this wall time (resume later)",
    )


def _add_run_directory_options(p):
    run_dir = p.add_argument_group("run directory")
    run_dir.add_argument(
        "--out", help="run directory (default: runs/PRESET or runs/MODEL_DATASET)"
    )
    exclusive = run_dir.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in OUT"
    )
    exclusive.add_argument(
        "--overwrite", action="store_true", help="delete a previous run in OUT first"
    )
    run_dir.add_argument(
        "--samples-per-epoch",
        type=non_negative_int,
        default=16,
        help="images in each epoch's sample grid; 0 for none (16)",
    )
    run_dir.add_argument(
        "--keep-checkpoints", type=positive_int, default=1, help="checkpoints kept (1)"
    )
    run_dir.add_argument(
        "--verbose",
        type=verbosity,
        default="auto",
        help="0 silent, 1 progress bar, 2 one line per epoch; auto: the bar "
        "on a terminal, lines otherwise (auto)",
    )


# ---------------------------------------------------------------------------
# Handler
# ---------------------------------------------------------------------------


def model_config(args, name):
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


def precheck(args):
    """The checks of `run` that need no Keras (without --preset)."""
    if args.preset is None:
        model_config(args, args.model or "pixelcnn")


def _target(args):
    """(preset or None, model name, data set or None, run directory)."""
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
    dataset = args.dataset
    if dataset is None and preset is None:
        dataset = "fashion_mnist"
    if args.out:
        out = args.out
    elif preset is not None:
        out = os.path.join("runs", preset.name)
    else:
        out = os.path.join("runs", f"{name}_{dataset}")
    return preset, name, dataset, out


def run(args):
    """Runs `pixel-keras train`; returns the exit status."""
    from pixel_keras import training

    preset, name, dataset, out = _target(args)
    history = training.train(
        name,
        dataset,
        out,
        preset=preset,
        model_config=model_config(args, name),
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
        output_bias=args.output_bias,
    )
    if args.verbose and history.is_chief:
        print(_summary(history, out, args.epochs))
    return 0


def _summary(history, out, epochs):
    """The line `train` ends with."""
    last = history.run_history[-1] if history.run_history else {}
    line = f"Run {out}: {last.get('epoch', 0)}/{epochs} epochs"
    if "val_bits_per_dim" in last:
        line += f", test bits/dim {last['val_bits_per_dim']:.4f}"
    if history.stopped_for_time:
        line += " (stopped by --max-minutes; continue with --resume)"
    return line
