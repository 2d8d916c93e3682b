"""`pixel-keras sample`: draw samples from a checkpoint or preset into a PNG."""

import os
import sys

from pixel_keras.cli._common import (
    UsageError,
    add_model_source,
    check_model_source,
    load_preset,
    non_negative_int,
    positive_int,
    temperature,
)


def add_parser(commands):
    """Adds `sample` to the `pixel-keras` subparsers `commands`."""
    p = commands.add_parser(
        "sample",
        help="draw samples from a checkpoint or preset into a PNG grid",
        description="Draw images from a checkpoint or a preset, sub-pixel by "
        "sub-pixel, and save them as one PNG grid. A class-conditional model "
        "draws --class-label, or the labels 0, 1, ... in turn (one column per "
        "class).",
    )
    add_model_source(
        p,
        "zoo preset name or directory, instead of CHECKPOINT (its trained "
        "weights; untrained, with a warning, when it has none)",
    )
    p.add_argument("--out", required=True, help="output .png path")
    p.add_argument("--num-samples", type=positive_int, default=16, help="(default: 16)")
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
        type=temperature,
        default=1.0,
        help="softmax temperature (1.0)",
    )
    p.add_argument(
        "--class-label",
        type=non_negative_int,
        help="class of every sample (class-conditional models only)",
    )
    p.add_argument(
        "--columns",
        type=positive_int,
        help="grid columns (default: one per class, else ~sqrt(N))",
    )
    p.add_argument("--scale", type=positive_int, help="pixel upscaling (default: auto)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out file"
    )
    p.set_defaults(handler=run, precheck=precheck)


def precheck(args):
    """The checks of `run` that need no Keras."""
    if not args.out.lower().endswith(".png"):
        raise UsageError(f"--out must be a .png file, got {args.out!r}")
    if os.path.exists(args.out) and not args.overwrite:
        raise UsageError(f"{args.out} exists; pass --overwrite to replace it")
    check_model_source(args)


def _labels_and_columns(args, model):
    """The class labels to draw (None, one int, or one per sample) and columns."""
    from pixel_keras import training

    if training.is_class_conditional(model):
        if args.class_label is None:
            labels = training.sample_class_labels(model, args.num_samples)
            columns = args.columns or training.sample_grid_columns(
                model, args.num_samples
            )
            return labels, columns
        if args.class_label >= model.num_classes:
            raise UsageError(
                f"--class-label must be < {model.num_classes} (the model's "
                f"num_classes), got {args.class_label}"
            )
        return args.class_label, args.columns
    if args.class_label is not None:
        raise UsageError(
            "--class-label needs a class-conditional model; this "
            f"{training.model_name(model)} model takes no class label"
        )
    return None, args.columns


def run(args):
    """Runs `pixel-keras sample`; returns the exit status."""
    precheck(args)
    from pixel_keras import sampling, training
    from pixel_keras.images import save_image_grid

    if args.preset is not None:
        model = load_preset(args.preset, weights="auto")
    else:
        model = training.load_checkpoint(args.checkpoint)
    labels, columns = _labels_and_columns(args, model)
    method = args.method
    if method == "auto":
        method = "cached" if sampling.supports_cached(model) else "naive"
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
