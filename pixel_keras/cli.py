"""The `pixel-keras` command line (also `python -m pixel_keras`).

```
pixel-keras train    --dataset digits --epochs 5 --out runs/digits   # a run directory
pixel-keras evaluate runs/digits --split test                        # exact bits/dim
pixel-keras sample   runs/digits --out samples.png --seed 0          # PNG grid
```

`train` writes the run directory described in `pixel_keras.training`
(config, crash-safe checkpoints, per-epoch sample grids, TensorBoard logs)
and continues it with `--resume`. `evaluate` and `sample` take a run
directory (its latest checkpoint) or a `.keras` file.

Errors in the arguments, and errors the library reports about them
(`ValueError`, missing or existing files, unavailable data), print one line
`pixel-keras: error: ...` on stderr and exit with status 2, without a
traceback. TensorFlow and Keras are imported inside the command handlers, so
that parsing and `--help` stay cheap.
"""

import argparse
import json
import os
import sys

PROG = "pixel-keras"
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")  # training.STRATEGIES

# Command line option -> model argument. A later `--preset NAME` option fills
# the same dict from a zoo preset before these explicit options override it.
MODEL_OPTIONS = {
    "hidden_maps": "hidden_maps",
    "residual_blocks": "num_residual_blocks",
    "output_maps": "output_maps",
}


class UsageError(Exception):
    """A command line problem found after parsing (exit status 2)."""


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


def build_parser():
    """The `argparse` parser of `pixel-keras` and its subcommands."""
    parser = argparse.ArgumentParser(
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
    model = p.add_argument_group("model")
    model.add_argument(
        "--model", default="pixelcnn", help="architecture (default: pixelcnn)"
    )
    # Room for `--preset NAME` (zoo presets) here.
    model.add_argument(
        "--hidden-maps",
        type=_positive_int,
        help="h: hidden feature maps (model default)",
    )
    model.add_argument(
        "--residual-blocks",
        type=_non_negative_int,
        help="residual blocks (model default)",
    )
    model.add_argument(
        "--output-maps", type=_positive_int, help="output stack maps (model default)"
    )

    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="fashion_mnist",
        help="fashion_mnist, digits, binarized_<name> or a TFDS name "
        "(default: fashion_mnist)",
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
    run.add_argument("--out", help="run directory (default: runs/MODEL_DATASET)")
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
    p.set_defaults(handler=_train)


def _add_evaluate(commands):
    p = commands.add_parser(
        "evaluate",
        help="exact bits/dim of a checkpoint on a split",
        description="Mean negative log-likelihood (nats/image) and bits/dim of "
        "a checkpoint over every image of a split.",
    )
    p.add_argument(
        "checkpoint", help="run directory (latest checkpoint) or .keras file"
    )
    p.add_argument("--dataset", help="data set (default: the run's)")
    p.add_argument("--split", default="test", help="split (default: test)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="(default: 64)")
    p.add_argument("--data-dir", help="where to look for data files first")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_evaluate)


def _add_sample(commands):
    p = commands.add_parser(
        "sample",
        help="draw samples from a checkpoint into a PNG grid",
        description="Draw images from a checkpoint, sub-pixel by sub-pixel, "
        "and save them as one PNG grid.",
    )
    p.add_argument(
        "checkpoint", help="run directory (latest checkpoint) or .keras file"
    )
    p.add_argument("--out", required=True, help="output .png path")
    p.add_argument(
        "--num-samples", type=_positive_int, default=16, help="(default: 16)"
    )
    p.add_argument("--seed", type=int, default=0, help="same seed, same images (0)")
    p.add_argument(
        "--temperature",
        type=_positive_float,
        default=1.0,
        help="softmax temperature (1.0)",
    )
    p.add_argument(
        "--columns", type=_positive_int, help="grid columns (default: ~sqrt(N))"
    )
    p.add_argument(
        "--scale", type=_positive_int, help="pixel upscaling (default: auto)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out file"
    )
    p.set_defaults(handler=_sample)


def _version():
    try:
        from importlib.metadata import version

        return version("pixel-keras")
    except Exception:  # Not installed (running from a source tree).
        return "unknown"


# ---------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------


def _train(args):
    from pixel_keras import training

    model_config = {
        argument: getattr(args, option)
        for option, argument in MODEL_OPTIONS.items()
        if getattr(args, option) is not None
    }
    out = args.out or os.path.join("runs", f"{args.model}_{args.dataset}")
    history = training.train(
        args.model,
        args.dataset,
        out,
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


def _check_checkpoint(path):
    if not os.path.exists(path):
        raise UsageError(f"no such checkpoint file or run directory: {path}")


def _evaluate(args):
    _check_checkpoint(args.checkpoint)
    from pixel_keras import training

    dataset = args.dataset
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


def _sample(args):
    if not args.out.lower().endswith(".png"):
        raise UsageError(f"--out must be a .png file, got {args.out!r}")
    if os.path.exists(args.out) and not args.overwrite:
        raise UsageError(f"{args.out} exists; pass --overwrite to replace it")
    _check_checkpoint(args.checkpoint)
    from pixel_keras import training
    from pixel_keras.images import save_image_grid

    model = training.load_checkpoint(args.checkpoint)
    images = model.sample(
        args.num_samples, seed=args.seed, temperature=args.temperature, verbose=0
    )
    save_image_grid(
        images,
        args.out,
        num_levels=model.num_levels,
        columns=args.columns,
        scale=args.scale or training._scale(images),
        overwrite=args.overwrite,
    )
    print(f"Wrote {args.num_samples} samples to {args.out}")
    return 0


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def _user_errors():
    """Exceptions that mean "bad input", reported in one line."""
    errors = [UsageError, ValueError, OSError]
    data = sys.modules.get("pixel_keras.data")
    if data is not None:
        errors.append(data.DataUnavailableError)
    return tuple(errors)


def main(argv=None):
    """Runs `pixel-keras` with `argv` (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 2 for bad arguments or inputs,
        130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a parse error (2, already printed).
        return e.code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        message = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename and str(e.filename) not in message:
            message = f"{message}: {e.filename}"
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
