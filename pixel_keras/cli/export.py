"""`pixel-keras export`: a preset or checkpoint as a TF Serving SavedModel."""


def add_parser(commands):
    """Adds `export` to the `pixel-keras` subparsers `commands`."""
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
    p.set_defaults(handler=run)


def run(args):
    """Runs `pixel-keras export`; returns the exit status."""
    from pixel_keras.export import export_saved_model

    if args.checkpoint:
        from pixel_keras import training

        model = training.load_checkpoint(args.checkpoint)
    else:
        from pixel_keras import zoo

        weights = args.weights
        if isinstance(weights, str) and weights.lower() in ("none", "false"):
            weights = False
        model = zoo.load(args.preset, weights=weights)
    path = export_saved_model(
        model, args.out, version=args.version, overwrite=args.overwrite
    )
    print(path)
    return 0
