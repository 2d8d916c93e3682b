"""`pixel-keras evaluate`: exact bits/dim of a checkpoint or preset."""

import json
import os

from pixel_keras.cli._common import (
    UsageError,
    add_model_source,
    check_model_source,
    load_preset,
    positive_int,
)


def add_parser(commands):
    """Adds `evaluate` to the `pixel-keras` subparsers `commands`."""
    p = commands.add_parser(
        "evaluate",
        help="exact bits/dim of a checkpoint or preset on a split",
        description="Mean negative log-likelihood (nats/image) and bits/dim of "
        "a checkpoint, or of a preset's trained weights, over every image of "
        "a split. Class-conditional models are evaluated with the data set's "
        "labels.",
    )
    add_model_source(
        p, "zoo preset name or directory with trained weights, instead of CHECKPOINT"
    )
    p.add_argument("--dataset", help="data set (default: the run's or the preset's)")
    p.add_argument("--split", default="test", help="split (default: test)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="(default: 64)")
    p.add_argument("--data-dir", help="where to look for data files first")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run, precheck=check_model_source)


def _run_dir_of(path):
    """The run directory of a checkpoint path, or None."""
    if os.path.isdir(path):
        return path
    parent = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    return parent if os.path.isfile(os.path.join(parent, "config.json")) else None


def _preset_model(args):
    """(model, data set) of `--preset`, which must have trained weights."""
    from pixel_keras import zoo

    preset = zoo.get_preset(args.preset)
    if preset.bundled_weights is None and not preset.metadata.get("weights_url"):
        raise UsageError(
            f"preset {preset.name!r} has no trained weights to evaluate; "
            f"train it (pixel-keras train --preset {args.preset}) and "
            "evaluate the run directory"
        )
    dataset = args.dataset or preset.metadata.get("dataset")
    if dataset is None:
        raise UsageError(
            f"--dataset is required: preset {preset.name!r} names no data set"
        )
    return load_preset(args.preset, weights=True), dataset


def _checkpoint_model(args):
    """(model, data set) of CHECKPOINT; the data set defaults to its run's."""
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
    return training.load_checkpoint(args.checkpoint), dataset


def run(args):
    """Runs `pixel-keras evaluate`; returns the exit status."""
    check_model_source(args)
    from pixel_keras import training

    if args.preset is not None:
        model, dataset = _preset_model(args)
    else:
        model, dataset = _checkpoint_model(args)
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
