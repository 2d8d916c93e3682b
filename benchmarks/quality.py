"""Test bits/dim after equal wall-clock training: a zoo preset vs. TFP's PixelCNN++.

Trains a pixel-keras zoo preset (built untrained, `zoo.load(name,
weights=False)`) and TensorFlow Probability's `tfd.PixelCNN` (PixelCNN++) on
the same Fashion-MNIST training images, in the same seeded shuffled order,
with the same batch size, learning rate and optimizer (Adam), for the same
wall-clock budget on the same machine, then measures the exact test bits/dim
of both on the same test split and prints one JSON object to stdout
(progress goes to stderr):

```
python benchmarks/quality.py --preset pixelcnn_fashion_mnist --minutes 10 > quality.json
python benchmarks/quality.py --preset gated_pixelcnn_fashion_mnist --minutes 15 --batch-size 64 --lr 2e-3
python benchmarks/quality.py --preset pixelcnn_fashion_mnist --minutes 0.3 --test-split 'test[:200]'  # smoke test
python benchmarks/quality.py --help
```

How it works:

- Data: `pixel_keras.data.load("fashion_mnist", split)` + `data.to_numpy`
  (28x28x1, 256 levels). One generator makes the training batches for both
  models: epoch `e` visits the `--train-split` images in the order
  `numpy.random.default_rng([seed, e]).permutation(N)`, `--batch-size` images
  per step, dropping the last partial batch of each epoch. Both models
  therefore see exactly the same batches in the same order.
- Ours: the preset's config (`--set KEY=VALUE` overrides single values),
  built under `--precision` (default auto: bfloat16 compute where the CPU
  has native bfloat16, as `pixel-keras train` does), compiled with
  `pixel_keras.optimizers.make_optimizer(lr, ema_momentum=--ema)` and the
  default loss
  (negative log-likelihood in nats/image), then one `model.fit` call over
  chunks (`steps_per_epoch=--chunk-steps`, one data iterator throughout); a
  callback checks the wall clock after every step and stops training at the
  first step that ends past the budget. A class-conditional preset
  (`class_label` input, e.g. `gated_pixelcnn_conditional_fashion_mnist`) is
  fed `{"images": images, "class_label": labels}` with the data set's labels,
  as `pixel_keras.training` does, and evaluated as p(x | label).
  `--output-bias marginal` sets its last-layer bias to the log level
  frequencies of the first images of `--train-split` before training
  (`model.init_output_bias`, as `pixel-keras train --output-bias marginal`),
  in the setup, as TFP's data-dependent initialization is.
- TFP: `tfp.distributions.PixelCNN` (gated resnets, down/up-sampling, weight
  norm, discretized logistic mixture over the integer values 0..255; it
  takes integer-valued float images in `[low, high] = [0, 255]` and rescales
  them to [-1, 1] itself). Trained like `benchmarks/train_throughput.py`
  does: a `tf.function` step with `tf.GradientTape` on
  `-mean(dist.log_prob(images, training=True))` and `tf_keras` Adam, stopped
  the same way. For a class-conditional preset it gets the one-hot label as
  `conditional_input` (`conditional_shape=(10,)`). Its default sizes are
  those of `train_throughput.py` (`num_resnet=1, num_hierarchies=2,
  num_logistic_mix=5`; `dropout_p=0` by default, like our presets), and `num_filters` is chosen so that
  its trainable parameter count is the nearest to the preset's
  (`--tfp-num-filters auto`); both counts are reported.
- Learning rate (both models): `--warmup-steps` of linear warm-up, then
  `--lr-schedule` constant or cosine decay to 0 over the wall-clock budget
  (set before every step from the elapsed time, since the number of steps a
  budget buys is not known in advance). Ours evaluates the weight average
  when `--ema` is given (part of our recipe; TFP's tf_keras optimizer keeps
  none), always with a float32 copy of the model.
- Budget: the clock starts right before the first training step (it counts
  graph tracing, which both pay) and stops after the last one. Model
  construction, TFP's data-dependent (weight norm) initialization on the
  first training batch and a sanity check of the initial bits/dim on the
  first 64 test images are done before, as `setup_seconds`.
- Order: ours trains first, then TFP; each has the whole machine in turn
  (the models never train at the same time). The 1-minute load average at
  the start and end of each phase is reported: other processes on the
  machine take time from both budgets.
- Evaluation: exact mean negative log-likelihood over every image of
  `--test-split` (the whole 10,000-image test set by default), summed in
  float64: `pixel_keras.training.evaluate` for ours, `-dist.log_prob(images,
  training=False)` for TFP; bits/dim = nats/image / (28 * 28 * 1 * ln 2).

Only Fashion-MNIST presets (28x28x1, 256 levels) are supported, and only the
TensorFlow backend (TFP's PixelCNN is a tf_keras model).
"""

import argparse
import contextlib
import json
import math
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Shared with the other benchmarks: the environment and version report
# (_common); from the throughput benchmark, the image shape and the TFP
# PixelCNN++ default sizes.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common
import train_throughput

from pixel_keras.checks import (  # Keras-free
    OUTPUT_BIAS_IMAGES,
    OUTPUT_BIAS_INITS,
    PRECISION_POLICIES,
)

DATASET = "fashion_mnist"
IMAGE_SHAPE = train_throughput.IMAGE_SHAPE  # (28, 28, 1)
NUM_LEVELS = 256
NUM_CLASSES = 10
SANITY_IMAGES = 64
TFP_NAME = "tfp_pixelcnn"


def nats_to_bits_per_dim(nats, image_shape):
    from pixel_keras.losses import nats_to_bits_per_dim as convert

    return convert(nats, image_shape)


def log(message):
    print(f"[quality] {message}", file=sys.stderr, flush=True)


def load_avg():
    return round(os.getloadavg()[0], 2)


# ---- arguments -------------------------------------------------------------
def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {text!r}")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, received {text!r}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, received {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, received {text!r}")
    return value


def _num_filters(text):
    return "auto" if text == "auto" else _positive_int(text)


def _config_option(text):
    """`KEY=VALUE` (VALUE as JSON, else a string) -> (key, value)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE, e.g. num_layers=14. Received: {text!r}"
        )
    try:
        value = json.loads(value)
    except json.JSONDecodeError:
        pass
    return key, value


def _momentum(text):
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(
            f"expected a number in (0, 1), received {text!r}"
        )
    return value


def _dropout(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {text!r}")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1), received {text!r}"
        )
    return value


def parse_args(argv=None):
    tfp_defaults = train_throughput.parse_args([])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--preset",
        default="pixelcnn_fashion_mnist",
        help="a pixel_keras.zoo preset for Fashion-MNIST (`pixel-keras zoo list`)",
    )
    p.add_argument(
        "--minutes",
        type=_positive_float,
        default=10.0,
        help="training wall-clock budget per model, in minutes",
    )
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument(
        "--lr", "--learning-rate", dest="lr", type=_positive_float, default=2e-3
    )
    p.add_argument("--train-split", default="train")
    p.add_argument("--test-split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--eval-batch-size",
        type=_positive_int,
        default=256,
        help="images per forward pass in evaluation",
    )
    p.add_argument(
        "--chunk-steps",
        type=_positive_int,
        default=50,
        help="steps per Keras epoch (the clock is checked after every step)",
    )
    p.add_argument(
        "--jit-compile",
        action="store_true",
        help="XLA-compile both training steps (off by default; slower on CPU)",
    )
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="both models: constant, or cosine decay to 0 over the wall-clock "
        "budget (the step count is not known in advance)",
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=0,
        help="both models: linear learning-rate warm-up over this many steps",
    )
    g = p.add_argument_group("ours (the preset)")
    g.add_argument(
        "--set",
        type=_config_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value of the preset's config, e.g. --set num_layers=14 "
        "(repeatable)",
    )
    g.add_argument(
        "--precision",
        choices=PRECISION_POLICIES,
        default="auto",
        help="training compute precision, as `pixel-keras train --precision` "
        "(auto: bfloat16 where the CPU has native bfloat16); evaluation is "
        "float32. TFP's network trains in float32 (a tf_keras model)",
    )
    g.add_argument(
        "--ema",
        type=_momentum,
        default=None,
        metavar="MOMENTUM",
        help="evaluate a warmed-up moving average of the weights, as "
        "`pixel-keras train --ema` (default: none)",
    )
    g.add_argument(
        "--output-bias",
        choices=OUTPUT_BIAS_INITS,
        default="zeros",
        help="the last-layer bias before training, as `pixel-keras train "
        "--output-bias`: zeros, or marginal (the log level frequencies of the "
        f"first {OUTPUT_BIAS_IMAGES} images of --train-split; done in the "
        "setup, like TFP's data-dependent initialization) (default: zeros)",
    )
    g = p.add_argument_group("tfp_pixelcnn (PixelCNN++)")
    g.add_argument(
        "--tfp-num-resnet", type=_positive_int, default=tfp_defaults.tfp_num_resnet
    )
    g.add_argument(
        "--tfp-num-hierarchies",
        type=_positive_int,
        default=tfp_defaults.tfp_num_hierarchies,
    )
    g.add_argument(
        "--tfp-num-filters",
        type=_num_filters,
        default="auto",
        help="an integer, or 'auto': the parameter count nearest the preset's",
    )
    g.add_argument(
        "--tfp-num-logistic-mix",
        type=_positive_int,
        default=tfp_defaults.tfp_num_logistic_mix,
    )
    g.add_argument(
        "--tfp-dropout",
        type=_dropout,
        default=0.0,
        help="TFP's dropout_p (default 0: our presets train without dropout; "
        "PixelCNN++ used 0.5 against CIFAR-10 overfitting, which a budget of "
        "minutes never reaches)",
    )
    return p.parse_args(argv)


# ---- preset and data -------------------------------------------------------
def check_preset(name):
    """The preset's `zoo.Preset`, checked to be a Fashion-MNIST one.

    Raises:
        ValueError: an unknown preset, or one not made for Fashion-MNIST.
    """
    from pixel_keras import zoo

    preset = zoo.get_preset(name)  # ValueError listing the presets if unknown.
    dataset = preset.metadata.get("dataset")
    shape = tuple(preset.config.get("image_shape") or ())
    levels = preset.config.get("num_levels")
    if dataset != DATASET or shape != IMAGE_SHAPE or levels != NUM_LEVELS:
        raise ValueError(
            "benchmarks/quality.py compares against TFP's PixelCNN++ on "
            f"Fashion-MNIST only (dataset {DATASET!r}, image_shape {IMAGE_SHAPE}, "
            f"num_levels {NUM_LEVELS}). Received: preset={name!r} with "
            f"dataset={dataset!r}, image_shape={shape}, num_levels={levels!r}. "
            f"Fashion-MNIST presets: {fashion_mnist_presets()}"
        )
    num_classes = preset.config.get("num_classes")
    if num_classes not in (None, NUM_CLASSES):
        raise ValueError(
            f"A class-conditional preset needs num_classes={NUM_CLASSES} for "
            f"Fashion-MNIST. Received: preset={name!r} with num_classes={num_classes!r}"
        )
    return preset


def fashion_mnist_presets():
    from pixel_keras import zoo

    return [
        name
        for name in zoo.list_presets()
        if zoo.get_preset(name).metadata.get("dataset") == DATASET
        and tuple(zoo.get_preset(name).config.get("image_shape") or ()) == IMAGE_SHAPE
    ]


def load_split(split):
    from pixel_keras import data

    images, labels = data.to_numpy(data.load(DATASET, split))
    if len(images) == 0:
        raise ValueError(f"Split {split!r} of {DATASET!r} holds no images.")
    return images, labels.astype("int32")


def batch_indices(num_images, batch_size, seed):
    """Index arrays of the training batches, forever (same for both models)."""
    import numpy as np

    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(num_images)
        for start in range(0, num_images - batch_size + 1, batch_size):
            yield order[start : start + batch_size]
        epoch += 1


def train_dataset(images, labels, batch_size, seed):
    """Repeated `tf.data` of `(images uint8 [B,28,28,1], labels int32 [B])`."""
    import tensorflow as tf

    def generate():
        for idx in batch_indices(len(images), batch_size, seed):
            yield images[idx], labels[idx]

    signature = (
        tf.TensorSpec([batch_size, *IMAGE_SHAPE], tf.uint8),
        tf.TensorSpec([batch_size], tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


# ---- ours ------------------------------------------------------------------
def run_ours(args, preset, train, test):
    import keras
    import numpy as np
    import tensorflow as tf

    from pixel_keras import optimizers, precision, training

    t0 = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    config = {**preset.config, **dict(args.set)}
    policy = precision.resolve_policy(args.precision)
    with precision.policy_scope(policy):
        model = training.make_model(preset.model, **config)
    conditional = training.is_class_conditional(model)
    if args.output_bias == "marginal":
        model.init_output_bias(train[0][:OUTPUT_BIAS_IMAGES])
    test_images, test_labels = test
    cond = {"class_label": test_labels[:SANITY_IMAGES]} if conditional else {}
    init_nll = -model.log_prob(test_images[:SANITY_IMAGES], **cond)  # builds it
    init_bpd = nats_to_bits_per_dim(float(np.mean(init_nll)), IMAGE_SHAPE)
    log(
        f"{preset.name}: initial bits/dim on {SANITY_IMAGES} test images: {init_bpd:.3f}"
    )
    model.compile(
        optimizer=optimizers.make_optimizer(args.lr, ema_momentum=args.ema),
        jit_compile=args.jit_compile,
    )

    def to_keras(batch_images, batch_labels):
        x = tf.cast(batch_images, tf.int32)
        if conditional:
            return {"images": x, "class_label": batch_labels}, x
        return x, x

    ds = train_dataset(*train, args.batch_size, args.seed).map(to_keras)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    params = sum(math.prod(w.shape) for w in model.trainable_weights)
    setup_s = time.perf_counter() - t0

    budget_s = args.minutes * 60.0
    clock = _Clock(budget_s, preset.name)

    class StopAtBudget(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.model.optimizer.learning_rate.assign(clock.learning_rate(args))

        def on_train_batch_end(self, batch, logs=None):
            if clock.step():
                self.model.stop_training = True

    load_start = load_avg()
    log(f"{preset.name}: training for {args.minutes} min ({params:,} parameters)")
    clock.start()
    model.fit(
        ds,
        epochs=10**9,
        steps_per_epoch=args.chunk_steps,
        callbacks=[StopAtBudget()],
        verbose=0,
        shuffle=False,
    )
    train_s = clock.stop()
    load_end = load_avg()

    log(f"{preset.name}: evaluating on {args.test_split} ({len(test_images)} images)")
    t0 = time.perf_counter()
    # Evaluation in float32, with the weight average if there is one.
    with precision.policy_scope("float32"):
        evaluated = training.make_model(preset.model, **config)
    with training.averaged_weights(model):
        evaluated.set_weights(model.get_weights())
    result = training.evaluate(
        evaluated,
        test_images,
        batch_size=args.eval_batch_size,
        class_label=test_labels if conditional else None,
    )
    eval_s = time.perf_counter() - t0
    log(f"{preset.name}: test bits/dim {result['bits_per_dim']:.4f}")
    return {
        "params": int(params),
        "train_steps": clock.steps,
        "train_images": clock.steps * args.batch_size,
        "train_seconds": round(train_s, 2),
        "test_bits_per_dim": result["bits_per_dim"],
        "test_nats_per_image": result["nats_per_image"],
        "num_test_images": result["num_images"],
        "initial_bits_per_dim_first_64_test_images": init_bpd,
        "setup_seconds": round(setup_s, 2),
        "eval_seconds": round(eval_s, 2),
        "load_avg_1m": [load_start, load_end],
        "class_conditional": conditional,
        "model": preset.model,
        "config": config,
        "precision": policy,
        "ema_momentum": args.ema,
        "output_bias": args.output_bias,
        "trainer": (
            f"keras.Model.fit, Adam({args.lr}, {args.lr_schedule} over the "
            f"budget, {args.warmup_steps} warm-up steps), default loss (NLL, "
            f"nats/image), jit_compile={args.jit_compile}"
            + (f", weights averaged (momentum {args.ema})" if args.ema else "")
            + (
                f", output bias at the log marginal of {OUTPUT_BIAS_IMAGES} images"
                if args.output_bias == "marginal"
                else ""
            )
        ),
    }


class _Clock:
    """Counts steps and says when the wall-clock budget is used up."""

    def __init__(self, budget_s, name):
        self.budget_s = budget_s
        self.name = name
        self.steps = 0
        self._t0 = None
        self._next_report = 30.0

    def start(self):
        self._t0 = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self._t0

    def learning_rate(self, args):
        """The learning rate for the next step (`--lr-schedule`, `--warmup-steps`)."""
        from pixel_keras.optimizers import wall_clock_learning_rate

        return wall_clock_learning_rate(
            args.lr,
            self.steps,
            self.elapsed(),
            self.budget_s,
            args.lr_schedule,
            args.warmup_steps,
        )

    def step(self):
        """Call after each finished step; True once the budget is used up."""
        self.steps += 1
        elapsed = self.elapsed()
        if elapsed >= self._next_report:
            log(f"{self.name}: {self.steps} steps in {elapsed:.0f} s")
            self._next_report += 30.0
        return elapsed >= self.budget_s

    def stop(self):
        return self.elapsed()


# ---- TFP PixelCNN++ --------------------------------------------------------
def tfp_config(args, num_filters):
    return {
        "image_shape": IMAGE_SHAPE,
        "num_resnet": args.tfp_num_resnet,
        "num_hierarchies": args.tfp_num_hierarchies,
        "num_filters": num_filters,
        "num_logistic_mix": args.tfp_num_logistic_mix,
        "dropout_p": args.tfp_dropout,
        "high": NUM_LEVELS - 1,
        "low": 0,
    }


def _tfp_params(dist):
    return sum(math.prod(v.shape) for v in dist.trainable_variables)


def tfp_num_filters_near(args, target, conditional_shape):
    """`num_filters` whose parameter count is nearest `target`.

    The count is a quadratic in `num_filters` (every weight matrix is
    filters x filters, filters x constant or constant); it is fitted exactly
    from three small networks, whose variables exist right after construction.
    """
    import tensorflow_probability as tfp

    counts = [
        _tfp_params(
            tfp.distributions.PixelCNN(
                **tfp_config(args, f), conditional_shape=conditional_shape
            )
        )
        for f in (1, 2, 3)
    ]
    d1, d2 = counts[1] - counts[0], counts[2] - counts[1]
    a = (d2 - d1) / 2
    b = d1 - 3 * a
    c = counts[0] - a - b

    def predicted(f):
        return a * f * f + b * f + c

    return min(range(1, 1025), key=lambda f: abs(predicted(f) - target)), predicted


def run_tfp(args, target_params, conditional, train, test):
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "TFP's PixelCNN is a tf_keras model: run with KERAS_BACKEND=tensorflow. "
            f"Received: backend={keras.backend.backend()!r}"
        )
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    t0 = time.perf_counter()
    conditional_shape = (NUM_CLASSES,) if conditional else None
    tf.random.set_seed(args.seed)
    predicted = None
    num_filters = args.tfp_num_filters
    if num_filters == "auto":
        num_filters, predicted = tfp_num_filters_near(
            args, target_params, conditional_shape
        )
    tf.random.set_seed(args.seed)
    config = tfp_config(args, num_filters)
    dist = tfp.distributions.PixelCNN(**config, conditional_shape=conditional_shape)
    params = _tfp_params(dist)
    if predicted is not None and round(predicted(num_filters)) != params:
        log(
            f"{TFP_NAME}: note: predicted {predicted(num_filters):.0f} parameters "
            f"for num_filters={num_filters}, built {params}"
        )
    log(
        f"{TFP_NAME}: num_filters={num_filters}: {params:,} parameters "
        f"(preset: {target_params:,})"
    )

    def condition(labels):
        if not conditional:
            return None
        return tf.one_hot(labels, NUM_CLASSES, dtype=tf.float32)

    def nll(images, labels, training):
        return -dist.log_prob(
            tf.cast(images, tf.float32),
            conditional_input=condition(labels),
            training=training,
        )

    # Data-dependent (weight norm) init on the first training batch, as the
    # first call does; training then starts from that same first batch.
    first_images, first_labels = next(
        iter(train_dataset(*train, args.batch_size, args.seed))
    )
    nll(first_images, first_labels, training=True)
    variables = dist.trainable_variables
    test_images, test_labels = test
    init_nll = nll(test_images[:SANITY_IMAGES], test_labels[:SANITY_IMAGES], False)
    init_bpd = nats_to_bits_per_dim(float(np.mean(init_nll)), IMAGE_SHAPE)
    log(f"{TFP_NAME}: initial bits/dim on {SANITY_IMAGES} test images: {init_bpd:.3f}")

    optimizer = tf_keras.optimizers.Adam(args.lr)

    @tf.function(jit_compile=args.jit_compile)
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(nll(images, labels, training=True))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    iterator = iter(
        train_dataset(*train, args.batch_size, args.seed).prefetch(tf.data.AUTOTUNE)
    )
    setup_s = time.perf_counter() - t0

    clock = _Clock(args.minutes * 60.0, TFP_NAME)
    load_start = load_avg()
    log(f"{TFP_NAME}: training for {args.minutes} min")
    clock.start()
    while True:
        optimizer.learning_rate.assign(clock.learning_rate(args))
        loss = train_step(*next(iterator))
        loss.numpy()  # wait for the step before reading the clock
        if clock.step():
            break
    train_s = clock.stop()
    load_end = load_avg()

    log(f"{TFP_NAME}: evaluating on {args.test_split} ({len(test_images)} images)")
    t0 = time.perf_counter()
    eval_nll = tf.function(lambda x, y: nll(x, y, training=False))
    total = 0.0
    for i in range(0, len(test_images), args.eval_batch_size):
        batch = eval_nll(
            test_images[i : i + args.eval_batch_size],
            test_labels[i : i + args.eval_batch_size],
        )
        total += float(np.sum(batch.numpy().astype("float64")))
    eval_s = time.perf_counter() - t0
    nats = total / len(test_images)
    bpd = nats_to_bits_per_dim(nats, IMAGE_SHAPE)
    log(f"{TFP_NAME}: test bits/dim {bpd:.4f}")
    return {
        "params": int(params),
        "train_steps": clock.steps,
        "train_images": clock.steps * args.batch_size,
        "train_seconds": round(train_s, 2),
        "test_bits_per_dim": bpd,
        "test_nats_per_image": nats,
        "num_test_images": len(test_images),
        "initial_bits_per_dim_first_64_test_images": init_bpd,
        "setup_seconds": round(setup_s, 2),
        "eval_seconds": round(eval_s, 2),
        "load_avg_1m": [load_start, load_end],
        "class_conditional": conditional,
        "model": "tfp.distributions.PixelCNN",
        "config": {
            **{k: v for k, v in config.items() if k != "image_shape"},
            "image_shape": list(IMAGE_SHAPE),
            "conditional_shape": list(conditional_shape) if conditional else None,
            "num_filters_chosen": "auto" if predicted is not None else "given",
        },
        "trainer": (
            f"tf.function + GradientTape, tf_keras Adam({args.lr}, "
            f"{args.lr_schedule} over the budget, {args.warmup_steps} warm-up "
            "steps), "
            f"-mean(dist.log_prob(x, training=True)) (nats/image), "
            f"jit_compile={args.jit_compile}"
        ),
    }


# ---- main ------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    # Libraries that print to stdout must not spoil the JSON.
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args)
    print(json.dumps(result, indent=2), file=stdout, flush=True)


def run(args):
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "benchmarks/quality.py trains TFP's PixelCNN (a tf_keras model) and "
            "needs KERAS_BACKEND=tensorflow. "
            f"Received: KERAS_BACKEND={keras.backend.backend()!r}"
        )
    preset = check_preset(args.preset)
    log(f"loading {DATASET} {args.train_split!r} and {args.test_split!r}")
    train = load_split(args.train_split)
    test = load_split(args.test_split)
    if len(train[0]) < args.batch_size:
        raise ValueError(
            f"--train-split {args.train_split!r} holds {len(train[0])} images, "
            f"fewer than --batch-size {args.batch_size}."
        )
    versions = _common.versions()
    result = {
        "benchmark": "quality",
        "dataset": DATASET,
        "train_split": args.train_split,
        "test_split": args.test_split,
        "num_train_images": len(train[0]),
        "num_test_images": len(test[0]),
        "budget_minutes": args.minutes,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "lr_schedule": args.lr_schedule,
        "warmup_steps": args.warmup_steps,
        "optimizer": "Adam",
        "seed": args.seed,
        "jit_compile": args.jit_compile,
        "order": f"{args.preset} trained first, then {TFP_NAME}; one at a time",
        "environment": _common.environment(),
        "backend": keras.backend.backend(),
        "tensorflow": versions.get("tensorflow"),
        "keras": versions.get("keras"),
        "tfp": versions.get("tensorflow_probability"),
        "tf_keras": versions.get("tf_keras"),
        "python": versions.get("python"),
        "models": {},
    }
    ours = run_ours(args, preset, train, test)
    result["models"][args.preset] = ours
    result["models"][TFP_NAME] = run_tfp(
        args, ours["params"], ours["class_conditional"], train, test
    )
    _common.finish_environment(result["environment"])
    return result


if __name__ == "__main__":
    main()
