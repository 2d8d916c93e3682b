"""Training throughput (images/s) of pixel-keras models and TFP's PixelCNN++.

Trains each selected model on real Fashion-MNIST batches with Adam and its own
negative log-likelihood: builds every model and runs `--warmup-steps` steps
(tracing/compilation), then times `--repeats` rounds of `--steps` steps,
alternating the models round by round, and prints one JSON object to stdout
with the median round (images/s, s/step, CPU-s/step) and every round:

```
python benchmarks/train_throughput.py                      # defaults below
python benchmarks/train_throughput.py --models pixelcnn --steps 50
python benchmarks/train_throughput.py --compare main       # this tree vs. main
python benchmarks/train_throughput.py --models gated,tfp_pixelcnn --isolate  # one process each
python benchmarks/train_throughput.py --jit-compile        # XLA for every model
KERAS_BACKEND=jax python benchmarks/train_throughput.py --models pixelcnn
```

Our models train with the configurations of the zoo presets, read from
`zoo/<preset>/config.json` at run time (see `PRESETS`):

- `pixelcnn`, `gated`, `gated_conditional`, `row_lstm`, `diagonal_bilstm`
  (ours, Keras 3, any backend): `model.compile(Adam)` with the default loss
  (`PixelNLL`, nats/image), then `model.fit` on `(images, images)`;
  `gated_conditional` gets `{"images", "class_label"}` with the Fashion-MNIST
  labels. The timed call is one `fit(..., steps_per_epoch=steps)`.
  `--hidden-maps`, `--rnn-layers`, ... and `--set MODEL.KEY=VALUE` override
  preset values.
- `tfp_pixelcnn` (`tfp.distributions.PixelCNN`, PixelCNN++: discretized
  logistic mixture, down/up-sampling hierarchies, weight norm; a tf_keras
  network, TensorFlow only): a `tf.function` step with `tf.GradientTape` on
  `-mean(dist.log_prob(images, training=True))` and `tf_keras` Adam over the
  distribution's trainable variables; the timed part is a Python loop of
  steps over the same `tf.data` pipeline. Its default sizes land near
  `pixelcnn`'s parameter count; both counts are reported.

All read the same uint8 images (cast inside the step), the same batch size
and learning rate, and the same XLA setting (`--jit-compile`, off by default:
TFP's network does not ask for XLA and Keras' "auto" would turn it on only
for ours).

`--isolate` runs each model in its own worker process of this checkout
(built and warmed up once, then one timed round at a time, the models
alternating), as `--compare` does for its two sides. Without it every model
shares this process: its thread pools, oneDNN's primitive cache and the
memory allocator. (An earlier run had the Gated PixelCNN at 51 images per
CPU-second next to TFP's PixelCNN++ in one process against 77 in its own;
side by side with 10 warm-up steps, at 57053c3, the Gated/TFP ratio was
1.454 isolated and 1.444 in one process: no measurable difference.)

`--compare REF` checks out commit REF in a temporary git worktree and times
our models from both checkouts in the same run: one worker process per side
and model (each imports its own `pixel_keras`), built and warmed up once,
then asked for one timed round at a time, current and ref alternating. The
ratio current/ref is the median over adjacent pairs of rounds. Both sides
train the same configuration (read from this checkout's zoo) on the same
images.

To add a model: a zoo preset goes into `PRESETS`; anything else gets a
`build_<name>(args, images) -> Runner` in `OTHER_BUILDERS` (raise
`Unavailable` when it cannot run here, e.g. a TF-only model on JAX).
"""

import argparse
import functools
import json
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _common  # noqa: E402  (this directory is sys.path[0])

_common.use_package_root()

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
IMAGE_SHAPE = (28, 28, 1)

# Our models: benchmark name -> the zoo preset whose config.json is trained.
PRESETS = {
    "pixelcnn": "pixelcnn_fashion_mnist",
    "gated": "gated_pixelcnn_fashion_mnist",
    "gated_conditional": "gated_pixelcnn_conditional_fashion_mnist",
    "row_lstm": "row_lstm_fashion_mnist",
    "diagonal_bilstm": "diagonal_bilstm_fashion_mnist",
}

# Size options: option dest -> (models it applies to, config key overridden).
OVERRIDES = {
    "hidden_maps": (("pixelcnn",), "hidden_maps"),
    "residual_blocks": (("pixelcnn",), "num_residual_blocks"),
    "output_maps": (("pixelcnn",), "output_maps"),
    "rnn_hidden_maps": (("row_lstm", "diagonal_bilstm"), "hidden_maps"),
    "rnn_layers": (("row_lstm", "diagonal_bilstm"), "num_layers"),
    "rnn_output_maps": (("row_lstm", "diagonal_bilstm"), "output_maps"),
    "rnn_kernel_size": (("row_lstm",), "kernel_size"),
}

SIDES = ("current", "ref")  # --compare: this working tree, then REF


# ---- data ------------------------------------------------------------------
def _read_idx(path, magic, rank):
    """Reads a gzipped IDX file (images: rank 3, labels: rank 1) as uint8."""
    import gzip

    import numpy as np

    with gzip.open(path, "rb") as f:
        data = f.read()
    header = np.frombuffer(data[: 4 * (rank + 1)], ">u4")
    if header[0] != magic:
        raise ValueError(f"Not an IDX file with magic {magic}: {path} ({header[0]})")
    shape = tuple(int(d) for d in header[1:])
    body = data[4 * (rank + 1) :]
    return np.frombuffer(body, np.uint8, count=math.prod(shape)).reshape(shape)


def load_data(num_images):
    """First `num_images` Fashion-MNIST training images and labels.

    Uses `pixel_keras.data` when it exists, else the IDX files directly.
    Returns `(images uint8 [N, 28, 28, 1], labels int32 [N], source)`.
    """
    import numpy as np

    try:
        from pixel_keras import data as pk_data
    except ImportError:
        pk_data = None
    if hasattr(pk_data, "load") and hasattr(pk_data, "to_numpy"):
        images, labels = pk_data.to_numpy(
            pk_data.load("fashion_mnist", f"train[:{num_images}]")
        )
        source = "pixel_keras.data.load('fashion_mnist')"
    else:
        images = _read_idx(
            os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz"), 2051, 3
        )[:num_images, :, :, None]
        labels = _read_idx(
            os.path.join(FASHION_MNIST_DIR, "train-labels-idx1-ubyte.gz"), 2049, 1
        )[:num_images]
        source = FASHION_MNIST_DIR
    images = np.ascontiguousarray(images.reshape(-1, *IMAGE_SHAPE), dtype="uint8")
    return images, np.asarray(labels, dtype="int32"), source


def make_dataset(images, batch_size, seed, labels=None, pairs=True):
    """Shuffled, repeated, prefetched (2 batches) tf.data of uint8 batches.

    `pairs=True` yields `(x, images)` for `keras.Model.fit`, where `x` is the
    images, or `{"images", "class_label"}` when `labels` are given.
    """
    import tensorflow as tf

    if labels is None:
        ds = tf.data.Dataset.from_tensor_slices(images)
    else:
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.cache().shuffle(len(images), seed=seed).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    if pairs and labels is None:
        ds = ds.map(lambda x: (x, x))
    elif pairs:
        ds = ds.map(lambda x, y: ({"images": x, "class_label": y}, x))
    # A fixed prefetch and no tf.data autotuning: with two workers taking
    # turns, autotuning stretched rounds to multiples of 10 ms x 2^n (2.56,
    # 5.12, 10.24, 20.48, 40.96 s, on one core), whatever their CPU time.
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(2).with_options(options)


# ---- runners ---------------------------------------------------------------
class Unavailable(Exception):
    """A model cannot run in this environment (reported, not fatal)."""


class Runner:
    """A model ready to train: `run(num_steps)` blocks until the steps finish."""

    def __init__(self, name, run, num_params, config, trainer):
        self.name = name
        self.run = run
        self.num_params = num_params
        self.config = config
        self.trainer = trainer


def model_spec(name, args):
    """What `name` trains: its preset's config.json, with the overrides."""
    preset_name = PRESETS[name]
    preset = _common.read_preset_config(preset_name)
    config = dict(preset["config"])
    for dest, (names, key) in OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None and name in names:
            config[key] = value
    for model, key, value in args.set:
        if model == name:
            config[key] = value
    shape = list(config.get("image_shape", IMAGE_SHAPE))
    if shape != list(IMAGE_SHAPE) or config.get("num_levels", 256) != 256:
        raise ValueError(
            f"{name}: this benchmark trains on Fashion-MNIST (28x28x1, 256 levels). "
            f"Received: image_shape={shape}, num_levels={config.get('num_levels')}"
        )
    config["image_shape"] = shape
    return {
        "name": name,
        "preset": preset_name,
        "model": preset["model"],
        "config": config,
        "class_conditional": bool(config.get("num_classes")),
    }


def setup_keras(args):
    """Process-wide Keras settings; before any model is built."""
    import keras

    policy = args.dtype_policy
    if policy == "auto":
        # What `pixel-keras train` picks on this CPU; a checkout without
        # `pixel_keras.precision` (before it existed) trains in float32.
        try:
            from pixel_keras import precision
        except ImportError:
            policy = "float32"
        else:
            policy = precision.resolve_policy("auto")
    if policy:
        keras.config.set_dtype_policy(policy)


def build_pixel_keras(spec, args, images, labels):
    """A `Runner` that trains a pixel-keras model with `compile(Adam)` + `fit`."""
    import keras

    keras.utils.set_random_seed(args.seed)
    cls = _common.model_class(spec["model"])
    config = spec["config"]
    model = cls(**{**config, "image_shape": tuple(config["image_shape"])})
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        jit_compile=args.jit_compile,
    )
    conditional = spec["class_conditional"]
    if args.pipeline == "training":
        from pixel_keras import training

        ds = training.make_dataset(
            "fashion_mnist",
            f"train[:{args.num_images}]",
            args.batch_size,
            shuffle=True,
            repeat=True,
            seed=args.seed,
            class_labels=conditional,
        )
    else:
        ds = make_dataset(
            images, args.batch_size, args.seed, labels=labels if conditional else None
        )

    def run(num_steps):
        model.fit(ds, steps_per_epoch=num_steps, epochs=1, verbose=0, shuffle=False)

    num_params = sum(math.prod(w.shape) for w in model.trainable_weights)
    trainer = (
        f"keras.Model.fit, Adam({args.learning_rate}), default loss (nats/image)"
        + (", class_label = the data set's labels" if conditional else "")
    )
    return Runner(spec["name"], run, num_params, config, trainer)


def build_tfp_pixelcnn(args, images):
    import keras

    if keras.backend.backend() != "tensorflow":
        raise Unavailable(
            "tfp_pixelcnn needs KERAS_BACKEND=tensorflow (it is a tf_keras model). "
            f"Received: backend={keras.backend.backend()!r}"
        )
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    tf.random.set_seed(args.seed)
    config = {
        "image_shape": list(IMAGE_SHAPE),
        "num_resnet": args.tfp_num_resnet,
        "num_hierarchies": args.tfp_num_hierarchies,
        "num_filters": args.tfp_num_filters,
        "num_logistic_mix": args.tfp_num_logistic_mix,
        "dropout_p": args.tfp_dropout,
    }
    dist = tfp.distributions.PixelCNN(**{**config, "image_shape": IMAGE_SHAPE})
    optimizer = tf_keras.optimizers.Adam(args.learning_rate)
    ds = make_dataset(images, args.batch_size, args.seed, pairs=False)
    iterator = iter(ds)

    # The first call builds the network and runs its data-dependent init.
    dist.log_prob(tf.cast(next(iterator), tf.float32), training=True)
    variables = dist.trainable_variables

    @tf.function(jit_compile=args.jit_compile)
    def train_step(batch):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(
                dist.log_prob(tf.cast(batch, tf.float32), training=True)
            )
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    def run(num_steps):
        loss = None
        for _ in range(num_steps):
            loss = train_step(next(iterator))
        if loss is not None:
            loss.numpy()  # wait for the last step

    num_params = sum(math.prod(v.shape) for v in variables)
    trainer = (
        f"tf.function + GradientTape, tf_keras Adam({args.learning_rate}), "
        "-mean(dist.log_prob) (nats/image)"
    )
    return Runner("tfp_pixelcnn", run, num_params, config, trainer)


OTHER_BUILDERS = {"tfp_pixelcnn": build_tfp_pixelcnn}
MODELS = (*PRESETS, *OTHER_BUILDERS)


def build(name, args, images, labels):
    if name in OTHER_BUILDERS:
        return OTHER_BUILDERS[name](args, images)
    return build_pixel_keras(model_spec(name, args), args, images, labels)


# ---- main ------------------------------------------------------------------
def log(message):
    label = os.environ.get("PIXEL_KERAS_BENCH_LABEL")
    prefix = f"train_throughput {label}" if label else "train_throughput"
    print(f"[{prefix}] {message}", file=sys.stderr, flush=True)


def _set_option(text):
    """`MODEL.KEY=VALUE` (VALUE as JSON, else a string) -> (model, key, value)."""
    target, sep, value = text.partition("=")
    model, dot, key = target.partition(".")
    if not sep or not dot or not key or model not in PRESETS:
        raise argparse.ArgumentTypeError(
            f"expected MODEL.KEY=VALUE with MODEL in {sorted(PRESETS)}, e.g. "
            f"gated.kernel_size=5. Received: {text!r}"
        )
    try:
        value = json.loads(value)
    except json.JSONDecodeError:
        pass
    return model, key, value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models",
        default=None,
        help=f"comma-separated, from {list(MODELS)}; default all of them "
        "(with --compare: all but tfp_pixelcnn, which no checkout changes)",
    )
    p.add_argument(
        "--compare",
        metavar="REF",
        help="also time commit REF (e.g. main, a SHA) from a temporary git "
        "worktree in the same run, rounds alternating with this working tree",
    )
    p.add_argument(
        "--isolate",
        action="store_true",
        help="run each model in its own worker process (rounds alternating); "
        "default: all models in this process",
    )
    p.add_argument(
        "--steps", type=int, default=20, help="timed steps per model and round"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed rounds, alternating models (and sides); the median is reported",
    )
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-images", type=int, default=4096, help="training images used")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--jit-compile",
        action="store_true",
        help="XLA-compile every train step (much slower on CPU, see README)",
    )
    p.add_argument(
        "--pipeline",
        choices=("arrays", "training"),
        default="arrays",
        help="ours: 'arrays' = this script's cached uint8 tf.data (the default); "
        "'training' = pixel_keras.training.make_dataset, as `pixel-keras train` "
        "feeds (each side its own with --compare)",
    )
    p.add_argument(
        "--dtype-policy",
        default="auto",
        help="keras.config.set_dtype_policy, e.g. float32 or mixed_bfloat16 "
        "(both sides with --compare); 'auto' (default): what `pixel-keras "
        "train` picks on this CPU (pixel_keras.precision), float32 for a "
        "checkout without that module",
    )
    g = p.add_argument_group(
        "our models' sizes (default: the presets' config.json; these override)"
    )
    g.add_argument(
        "--set",
        type=_set_option,
        action="append",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="override one config value, e.g. --set gated.kernel_size=5 (repeatable)",
    )
    g.add_argument("--hidden-maps", type=int, help="pixelcnn: h (stream has 2h)")
    g.add_argument("--residual-blocks", type=int, help="pixelcnn")
    g.add_argument("--output-maps", type=int, help="pixelcnn")
    g.add_argument("--rnn-hidden-maps", type=int, help="row_lstm, diagonal_bilstm: h")
    g.add_argument("--rnn-layers", type=int, help="row_lstm, diagonal_bilstm")
    g.add_argument("--rnn-output-maps", type=int, help="row_lstm, diagonal_bilstm")
    g.add_argument(
        "--rnn-kernel-size", type=int, help="row_lstm: input-to-state kernel"
    )
    g = p.add_argument_group("tfp_pixelcnn (PixelCNN++)")
    g.add_argument("--tfp-num-resnet", type=int, default=1)
    g.add_argument("--tfp-num-hierarchies", type=int, default=2)
    g.add_argument("--tfp-num-filters", type=int, default=12)
    g.add_argument("--tfp-num-logistic-mix", type=int, default=5)
    g.add_argument("--tfp-dropout", type=float, default=0.5)
    args = p.parse_args(argv)
    if args.models is None:
        args.models = list(PRESETS) if args.compare else list(MODELS)
    else:
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"Unknown model(s) {unknown}. Available: {list(MODELS)}")
    if args.compare and not any(m in PRESETS for m in args.models):
        p.error(
            f"--compare times our models only ({list(PRESETS)}). "
            f"Received: --models {','.join(args.models)}"
        )
    if args.compare and args.isolate:
        p.error(
            "--isolate and --compare exclude each other (--compare already runs "
            "every model and side in its own worker process)"
        )
    if args.compare:
        try:
            _common.resolve_commit(args.compare)
        except _common.CompareError as e:
            p.error(str(e))
    if args.steps < 1 or args.repeats < 1 or args.warmup_steps < 0:
        p.error(
            "--steps and --repeats must be >= 1, --warmup-steps >= 0. Received: "
            f"steps={args.steps}, repeats={args.repeats}, "
            f"warmup_steps={args.warmup_steps}"
        )
    if args.batch_size < 1 or args.num_images < args.batch_size:
        p.error(
            "--batch-size must be >= 1 and --num-images >= --batch-size. Received: "
            f"batch_size={args.batch_size}, num_images={args.num_images}"
        )
    return args


def setup(args, data):
    """The JSON fields saying what was run (shared by both modes)."""
    return {
        "benchmark": "train_throughput",
        "data": data,
        "batch_size": args.batch_size,
        "warmup_steps": args.warmup_steps,
        "timed_steps_per_round": args.steps,
        "rounds": args.repeats,
        "learning_rate": args.learning_rate,
        "jit_compile": args.jit_compile,
        "pipeline": args.pipeline,
        "dtype_policy": args.dtype_policy,
        "processes": "one per model" if args.isolate or args.compare else "one",
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--worker"]:
        return worker_main()
    args = parse_args(argv)
    env = _common.environment()
    images, labels, source = load_data(args.num_images)
    result = setup(
        args,
        {
            "dataset": "fashion_mnist",
            "split": f"train[:{len(images)}]",
            "source": source,
            "image_shape": list(IMAGE_SHAPE),
            "num_levels": 256,
        },
    )
    if args.compare:
        try:
            result.update(run_compare(args, images, labels))
        except _common.CompareError as e:
            print(f"{os.path.basename(__file__)}: error: {e}", file=sys.stderr)
            return 2
    else:
        result["commit"] = _common.git_state()
        run = run_isolated if args.isolate else run_in_process
        result["results"] = run(args, images, labels)
    result["environment"] = _common.finish_environment(env)
    print(json.dumps(result, indent=2))
    return 0


def run_in_process(args, images, labels):
    """Every model in this process, rounds alternating between the models."""
    setup_keras(args)
    results, runners, info = {}, {}, {}
    for name in args.models:
        t0 = time.perf_counter()
        try:
            runner = build(name, args, images, labels)
        except Unavailable as e:
            results[name] = {"skipped": str(e)}
            log(f"{name}: skipped: {e}")
            continue
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if args.warmup_steps:
            runner.run(args.warmup_steps)
        runners[name] = runner
        info[name] = {"build_s": round(build_s, 2)}
        info[name]["warmup_s"] = round(time.perf_counter() - t0, 2)
        log(f"{name}: built and warmed up {info[name]}")

    # Rounds alternate between the models so that a burst of load from other
    # processes hits all of them; the median round is reported.
    # Process CPU time (all threads) is reported too: it moves less than wall
    # time when other processes share the cores.
    rounds = alternate_rounds(
        {name: [] for name in runners},
        {
            name: functools.partial(timed_round, runner, args.steps)
            for name, runner in runners.items()
        },
        args.repeats,
    )

    images_per_round = args.steps * args.batch_size
    for name, runner in runners.items():
        results[name] = {
            **_common.summarize_side(rounds[name], images_per_round, args.steps),
            "num_params": int(runner.num_params),
            "preset": PRESETS.get(name),
            "config": runner.config,
            "trainer": runner.trainer,
            **info[name],
        }
    return results


def run_isolated(args, images, labels):
    """Every model in its own worker process, rounds alternating between them."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="pixel-keras-bench-") as tmp:
        data_path = save_data(tmp, images, labels)
        roots = {name: _common.ROOT for name in args.models}
        with _common.workers(os.path.abspath(__file__), roots) as workers:
            built = {}
            for name in args.models:
                try:
                    built[name] = workers[name].request(
                        "build", model=name, args=vars(args), data=data_path
                    )
                except _common.WorkerError as e:
                    results[name] = {"skipped": str(e)}
                    log(f"{name}: skipped: {e}")
                    continue
                info = {k: built[name][k] for k in ("build_s", "warmup_s")}
                log(f"{name}: built and warmed up {info}")
            rounds = alternate_rounds(
                {name: [] for name in built},
                {
                    name: functools.partial(
                        workers[name].request, "round", steps=args.steps
                    )
                    for name in built
                },
                args.repeats,
            )
    images_per_round = args.steps * args.batch_size
    for name, reply in built.items():
        results[name] = {
            **_common.summarize_side(rounds[name], images_per_round, args.steps),
            **{
                k: reply[k]
                for k in (
                    "num_params",
                    "preset",
                    "config",
                    "trainer",
                    "build_s",
                    "warmup_s",
                )
            },
        }
    return {name: results[name] for name in args.models if name in results}


def save_data(directory, images, labels):
    """The training images and labels as one `.npz` the workers load; its path."""
    import numpy as np

    path = os.path.join(directory, "data.npz")
    np.savez(path, images=images, labels=labels)
    return path


def alternate_rounds(rounds, run_round, repeats, label=str):
    """`repeats` rounds of every `run_round[key]()`, keys alternating.

    Appends each round's timings to `rounds[key]` as it ends (so a caller
    that catches an error keeps the rounds done) and logs it.
    """
    for round_index in range(repeats):
        for key, run in run_round.items():
            rounds[key].append(run())
            log(f"{label(key)}: round {round_index}: {_round_text(rounds[key][-1])}")
    return rounds


def timed_round(runner, steps):
    c0, t0 = time.process_time(), time.perf_counter()
    runner.run(steps)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def _round_text(r):
    return f"{r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU"


# ---- --compare ---------------------------------------------------------------
def worker_args(args):
    """The options a worker needs (JSON)."""
    keys = (
        "batch_size",
        "learning_rate",
        "seed",
        "jit_compile",
        "warmup_steps",
        "pipeline",
        "dtype_policy",
        "num_images",
    )
    return {key: getattr(args, key) for key in keys}


def run_compare(args, images, labels):
    """Our models from this tree and from REF, rounds alternating per model."""
    result = {"compare": {"ref": args.compare}}
    current = _common.git_state()
    with (
        _common.ref_checkout(args.compare) as ref,
        tempfile.TemporaryDirectory(prefix="pixel-keras-bench-") as tmp,
    ):
        result["commits"] = {
            "current": current,
            "ref": {"ref": ref["ref"], "sha": ref["sha"]},
        }
        log(f"current = {current['root']} (HEAD {current['sha']}, working tree)")
        log(f"ref = {args.compare} = {ref['sha']}, checked out in {ref['root']}")
        data_path = save_data(tmp, images, labels)
        roots = {"current": _common.ROOT, "ref": ref["root"]}
        results = {}
        for name in args.models:
            if name not in PRESETS:
                results[name] = {
                    "skipped": "not a pixel_keras model: the same in both checkouts; "
                    "run without --compare"
                }
                continue
            spec = model_spec(name, args)
            results[name] = compare_model(spec, args, roots, data_path)
        result["results"] = results
    return result


def compare_model(spec, args, roots, data_path):
    name = spec["name"]
    out = {"preset": spec["preset"], "config": spec["config"]}
    with _common.workers(os.path.abspath(__file__), roots) as workers:
        built, errors = {}, {}
        for side in SIDES:
            try:
                built[side] = workers[side].request(
                    "build", spec=spec, args=worker_args(args), data=data_path
                )
                log(
                    f"{name} {side}: built in {built[side]['build_s']} s, "
                    f"warmed up in {built[side]['warmup_s']} s"
                )
            except _common.WorkerError as e:
                errors[side] = str(e)
                log(f"{name} {side}: {e}")
        if errors:
            return {**out, "error": errors}
        out["trainer"] = built["current"]["trainer"]
        rounds = {side: [] for side in SIDES}
        try:
            alternate_rounds(
                rounds,
                {  # current first in every pair
                    side: functools.partial(
                        workers[side].request, "round", steps=args.steps
                    )
                    for side in SIDES
                },
                args.repeats,
                label=lambda side: f"{name} {side}",
            )
        except _common.WorkerError as e:
            return {**out, "error": str(e), "rounds_done": rounds}
    images_per_round = args.steps * args.batch_size
    for side in SIDES:
        out[side] = {
            **_common.summarize_side(rounds[side], images_per_round, args.steps),
            **{
                k: built[side][k]
                for k in (
                    "num_params",
                    "build_s",
                    "warmup_s",
                    "pixel_keras",
                    "dtype_policy",
                )
            },
        }
    params = [built[side]["num_params"] for side in SIDES]
    out["same_num_params"] = params[0] == params[1]
    out.update(_common.paired_ratios(rounds["current"], rounds["ref"]))
    log(
        f"{name}: current/ref images/s {out['ratio_images_per_s']}, "
        f"images per CPU-s {out['ratio_images_per_cpu_s']}"
    )
    return out


def worker_main():
    """`--worker`: builds one of our models and times rounds on request."""
    import keras
    import numpy as np

    state = {}

    def build_request(request):
        # `spec` (--compare: the parent's config, for either checkout) or
        # `model` (--isolate: any model, configured here as in one process).
        args = argparse.Namespace(**request["args"])
        setup_keras(args)
        data = np.load(request["data"])
        t0 = time.perf_counter()
        images, labels = data["images"], data["labels"]
        if "spec" in request:
            runner = build_pixel_keras(request["spec"], args, images, labels)
        else:
            runner = build(request["model"], args, images, labels)
        build_s = time.perf_counter() - t0
        # After the build, so it covers every pixel_keras module imported.
        path = _common.check_package_root()
        t0 = time.perf_counter()
        if args.warmup_steps:
            runner.run(args.warmup_steps)
        state["runner"] = runner
        return {
            "num_params": int(runner.num_params),
            "preset": PRESETS.get(runner.name),
            "config": runner.config,
            "trainer": runner.trainer,
            "pixel_keras": path,
            "dtype_policy": keras.config.dtype_policy().name,
            "build_s": round(build_s, 2),
            "warmup_s": round(time.perf_counter() - t0, 2),
        }

    def round_request(request):
        return timed_round(state["runner"], request["steps"])

    _common.serve({"build": build_request, "round": round_request})
    return 0


if __name__ == "__main__":
    sys.exit(main())
