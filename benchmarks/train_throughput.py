"""Training throughput (images/s) of pixel-keras models and TFP's PixelCNN++.

Trains each selected model on real Fashion-MNIST batches with Adam and its own
negative log-likelihood: builds every model and runs `--warmup-steps` steps
(tracing/compilation), then times `--repeats` rounds of `--steps` steps,
alternating the models round by round, and prints one JSON object to stdout
with the median round (images/s, s/step) and every round's images/s:

```
python benchmarks/train_throughput.py                      # defaults below
python benchmarks/train_throughput.py --models pixelcnn --steps 50 --batch-size 64
python benchmarks/train_throughput.py --jit-compile        # XLA for every model
KERAS_BACKEND=jax python benchmarks/train_throughput.py --models pixelcnn
```

How each model is trained:

- `pixelcnn` (ours, Keras 3, any backend): `model.compile(Adam)` with the
  default `PixelNLL` loss (nats/image), then `model.fit` on `(images, images)`.
  The timed call is one `fit(..., steps_per_epoch=steps)`.
- `tfp_pixelcnn` (`tfp.distributions.PixelCNN`, PixelCNN++: discretized
  logistic mixture, down/up-sampling hierarchies, weight norm; a tf_keras
  network, TensorFlow only): a `tf.function` step with `tf.GradientTape` on
  `-mean(dist.log_prob(images, training=True))` and `tf_keras` Adam over the
  distribution's trainable variables; the timed part is a Python loop of
  steps over the same `tf.data` pipeline.

Both read the same uint8 images (cast inside the step), the same batch
size and learning rate, and the same XLA setting (`--jit-compile`, off by
default: TFP's network does not ask for XLA and Keras' "auto" would turn it
on only for ours). The TFP model's defaults are chosen to land near our
model's trainable parameter count; both counts are reported.

- `row_lstm`, `diagonal_bilstm` (ours, PixelRNN: `RowLSTMPixelRNN`,
  `DiagonalBiLSTMPixelRNN`, any backend): trained exactly like `pixelcnn`
  (`compile(Adam)` + `fit`); their sizes come from the `--rnn-*` options
  (default h=32, 2 LSTM layers, 64 output maps, residual connections, Row
  LSTM input-to-state kernel 3).

To add a model, write `build_<name>(args, image_shape, images) -> Runner`
and add it to `BUILDERS`; raise `Unavailable` when it cannot run here (e.g. a
TF-only model on JAX).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
IMAGE_SHAPE = (28, 28, 1)


# ---- data ------------------------------------------------------------------
def _read_idx_images(path):
    """Reads a gzipped IDX3 image file into uint8 `[N, H, W, 1]`."""
    import gzip

    import numpy as np

    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count, rows, cols = np.frombuffer(data[:16], ">u4")
    if magic != 2051:
        raise ValueError(f"Not an IDX3 image file: {path} (magic {magic})")
    images = np.frombuffer(data[16:], np.uint8, count=count * rows * cols)
    return images.reshape(count, rows, cols, 1)


def load_images(num_images):
    """First `num_images` Fashion-MNIST training images, uint8 `[N, 28, 28, 1]`.

    Uses `pixel_keras.data` when it exists, else the IDX files directly.
    Returns `(images, source)`.
    """
    import numpy as np

    try:
        from pixel_keras import data as pk_data
    except ImportError:
        pk_data = None
    if pk_data is not None and hasattr(pk_data, "load"):
        ds = pk_data.load("fashion_mnist", f"train[:{num_images}]")
        images = np.concatenate(
            [np.asarray(b["images"]).reshape(-1, *IMAGE_SHAPE) for b in ds.batch(1024)]
        )
        return images.astype("uint8"), "pixel_keras.data.load('fashion_mnist')"
    path = os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")
    return _read_idx_images(path)[:num_images].copy(), path


def make_dataset(images, batch_size, seed, pairs):
    """Shuffled, repeated, prefetched tf.data of uint8 batches.

    `pairs=True` yields `(images, images)` for `keras.Model.fit`.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(images).cache()
    ds = ds.shuffle(len(images), seed=seed).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    if pairs:
        ds = ds.map(lambda x: (x, x))
    return ds.prefetch(tf.data.AUTOTUNE)


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


def build_pixelcnn(args, image_shape, images):
    import keras

    from pixel_keras.models import PixelCNN

    keras.utils.set_random_seed(args.seed)
    config = {
        "image_shape": list(image_shape),
        "num_levels": 256,
        "hidden_maps": args.hidden_maps,
        "num_residual_blocks": args.residual_blocks,
        "output_maps": args.output_maps,
    }
    model = PixelCNN(**{**config, "image_shape": tuple(image_shape)})
    return _fit_runner("pixelcnn", model, config, args, images)


def _fit_runner(name, model, config, args, images):
    """A `Runner` that trains a pixel-keras model with `compile(Adam)` + `fit`."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        jit_compile=args.jit_compile,
    )
    ds = make_dataset(images, args.batch_size, args.seed, pairs=True)

    def run(num_steps):
        model.fit(ds, steps_per_epoch=num_steps, epochs=1, verbose=0, shuffle=False)

    num_params = sum(math.prod(w.shape) for w in model.trainable_weights)
    trainer = f"keras.Model.fit, Adam({args.learning_rate}), PixelNLL (nats/image)"
    return Runner(name, run, num_params, config, trainer)


def _rnn_config(args, image_shape):
    return {
        "image_shape": list(image_shape),
        "num_levels": 256,
        "hidden_maps": args.rnn_hidden_maps,
        "num_layers": args.rnn_layers,
        "output_maps": args.rnn_output_maps,
        "residual": True,
    }


def build_row_lstm(args, image_shape, images):
    import keras

    from pixel_keras.models import RowLSTMPixelRNN

    keras.utils.set_random_seed(args.seed)
    config = {**_rnn_config(args, image_shape), "kernel_size": args.rnn_kernel_size}
    model = RowLSTMPixelRNN(**{**config, "image_shape": tuple(image_shape)})
    return _fit_runner("row_lstm", model, config, args, images)


def build_diagonal_bilstm(args, image_shape, images):
    import keras

    from pixel_keras.models import DiagonalBiLSTMPixelRNN

    keras.utils.set_random_seed(args.seed)
    config = _rnn_config(args, image_shape)
    model = DiagonalBiLSTMPixelRNN(**{**config, "image_shape": tuple(image_shape)})
    return _fit_runner("diagonal_bilstm", model, config, args, images)


def build_tfp_pixelcnn(args, image_shape, images):
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
        "image_shape": list(image_shape),
        "num_resnet": args.tfp_num_resnet,
        "num_hierarchies": args.tfp_num_hierarchies,
        "num_filters": args.tfp_num_filters,
        "num_logistic_mix": args.tfp_num_logistic_mix,
        "dropout_p": args.tfp_dropout,
    }
    dist = tfp.distributions.PixelCNN(**{**config, "image_shape": image_shape})
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


BUILDERS = {
    "pixelcnn": build_pixelcnn,
    "tfp_pixelcnn": build_tfp_pixelcnn,
    "row_lstm": build_row_lstm,
    "diagonal_bilstm": build_diagonal_bilstm,
}


# ---- main ------------------------------------------------------------------
def log(message):
    print(f"[train_throughput] {message}", file=sys.stderr, flush=True)


def versions():
    import keras

    out = {"python": sys.version.split()[0], "keras": keras.__version__}
    for module in ("tensorflow", "tensorflow_probability", "tf_keras", "jax", "numpy"):
        try:
            out[module] = __import__(module).__version__
        except ImportError:
            pass
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models",
        default="pixelcnn,tfp_pixelcnn,row_lstm,diagonal_bilstm",
        help=f"comma-separated, from {sorted(BUILDERS)}",
    )
    p.add_argument(
        "--steps", type=int, default=20, help="timed steps per model and round"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed rounds, alternating models; the median is reported",
    )
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-images", type=int, default=4096, help="training images used")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--jit-compile",
        action="store_true",
        help="XLA-compile every train step (much slower on CPU, see README)",
    )
    g = p.add_argument_group("pixelcnn (ours)")
    g.add_argument("--hidden-maps", type=int, default=32, help="h (stream has 2h)")
    g.add_argument("--residual-blocks", type=int, default=5)
    g.add_argument("--output-maps", type=int, default=64)
    g = p.add_argument_group("row_lstm, diagonal_bilstm (ours, PixelRNN)")
    g.add_argument("--rnn-hidden-maps", type=int, default=32, help="h: LSTM state maps")
    g.add_argument("--rnn-layers", type=int, default=2, help="LSTM layers")
    g.add_argument("--rnn-output-maps", type=int, default=64)
    g.add_argument(
        "--rnn-kernel-size", type=int, default=3, help="Row LSTM input-to-state kernel"
    )
    g = p.add_argument_group("tfp_pixelcnn (PixelCNN++)")
    g.add_argument("--tfp-num-resnet", type=int, default=1)
    g.add_argument("--tfp-num-hierarchies", type=int, default=2)
    g.add_argument("--tfp-num-filters", type=int, default=12)
    g.add_argument("--tfp-num-logistic-mix", type=int, default=5)
    g.add_argument("--tfp-dropout", type=float, default=0.5)
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in BUILDERS]
    if unknown:
        p.error(f"Unknown model(s) {unknown}. Available: {sorted(BUILDERS)}")
    if args.steps < 1 or args.repeats < 1:
        p.error("--steps and --repeats must be >= 1")
    if args.num_images < args.batch_size:
        p.error("--num-images must be >= --batch-size")
    return args


def main(argv=None):
    args = parse_args(argv)
    import keras

    images, source = load_images(args.num_images)
    result = {
        "benchmark": "train_throughput",
        "data": {
            "dataset": "fashion_mnist",
            "split": f"train[:{len(images)}]",
            "source": source,
            "image_shape": list(IMAGE_SHAPE),
            "num_levels": 256,
        },
        "batch_size": args.batch_size,
        "warmup_steps": args.warmup_steps,
        "timed_steps_per_round": args.steps,
        "rounds": args.repeats,
        "learning_rate": args.learning_rate,
        "jit_compile": args.jit_compile,
        "backend": keras.backend.backend(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        # Other processes compete for the same cores; high load = noisy numbers.
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "versions": versions(),
        "results": {},
    }
    runners, info = {}, {}
    for name in args.models:
        t0 = time.perf_counter()
        try:
            runner = BUILDERS[name](args, IMAGE_SHAPE, images)
        except Unavailable as e:
            result["results"][name] = {"skipped": str(e)}
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
    timings = {name: [] for name in runners}
    cpu_times = {name: [] for name in runners}
    for round_index in range(args.repeats):
        for name, runner in runners.items():
            c0, t0 = time.process_time(), time.perf_counter()
            runner.run(args.steps)
            timings[name].append(time.perf_counter() - t0)
            cpu_times[name].append(time.process_time() - c0)
            log(
                f"{name}: round {round_index}: {timings[name][-1]:.2f} s wall, "
                f"{cpu_times[name][-1]:.2f} s CPU"
            )

    for name, runner in runners.items():
        seconds = statistics.median(timings[name])
        result["results"][name] = {
            "images_per_s": round(args.steps * args.batch_size / seconds, 2),
            "s_per_step": round(seconds / args.steps, 5),
            "images_per_s_per_round": [
                round(args.steps * args.batch_size / t, 2) for t in timings[name]
            ],
            "cpu_s_per_step": round(statistics.median(cpu_times[name]) / args.steps, 5),
            "num_params": int(runner.num_params),
            "config": runner.config,
            "trainer": runner.trainer,
            **info[name],
        }
    result["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
