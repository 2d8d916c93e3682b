"""`pixel-keras serve-sample`: samples from a model served by TF Serving.

Runs without Keras and TensorFlow (the REST client needs only NumPy and the
standard library; `--grpc` imports `tensorflow` for its protos).
"""

from pixel_keras.cli._common import temperature


def add_parser(commands):
    """Adds `serve-sample` to the `pixel-keras` subparsers `commands`."""
    p = commands.add_parser(
        "serve-sample",
        help="draw samples from a model served by TF Serving into a PNG grid",
        description="Ask a TF Serving instance (REST or gRPC) for samples of an "
        "exported pixel-keras model and save them as a PNG grid. --stepwise "
        "draws one sub-pixel per request (sample_step) with a progress bar; "
        "the result equals the one-request `sample` for the same seeds.",
    )
    p.add_argument("output", metavar="PNG", help="where to write the image grid")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--url", default=None, help="REST root (default: http://localhost:8501)"
    )
    where.add_argument("--grpc", metavar="HOST:PORT", help="use gRPC at HOST:PORT")
    p.add_argument("--model-name", default="pixel", help="model name (default: pixel)")
    p.add_argument("--version", type=int, default=None, help="(default: latest)")
    p.add_argument("--num-samples", type=int, default=4, help="(default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seeds are SEED, SEED+1, ...")
    p.add_argument(
        "--temperature", type=temperature, default=1.0, help="(default: 1.0)"
    )
    p.add_argument("--class-label", type=int, default=None, help="conditional models")
    p.add_argument("--num-levels", type=int, default=256, help="(default: 256)")
    p.add_argument("--stepwise", action="store_true", help="one request per sub-pixel")
    p.set_defaults(handler=run)
    return p


def run(args):
    """Runs `pixel-keras serve-sample`; returns the exit status."""
    import numpy as np

    from pixel_keras import images as image_utils
    from pixel_keras.serving import GrpcClient, RestClient

    if args.grpc:
        client = GrpcClient(args.grpc, args.model_name, args.version)
    else:
        client = RestClient(
            args.url or "http://localhost:8501", args.model_name, args.version
        )
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1. Received: {args.num_samples}")
    seed = np.arange(args.num_samples, dtype="int64") + args.seed
    labels = None
    if args.class_label is not None:
        labels = np.full(args.num_samples, args.class_label, "int32")
    if args.stepwise:
        out = client.sample_stepwise(seed, args.temperature, class_label=labels)
    else:
        out = client.sample(seed, args.temperature, class_label=labels)
    image_utils.save_image_grid(out, args.output, num_levels=args.num_levels)
    print(args.output)
    return 0
