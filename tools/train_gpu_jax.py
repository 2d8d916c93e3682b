"""Trains a pixel-keras model on Fashion-MNIST (by default the GPU-sized Gated
PixelCNN) on one accelerator, with the JAX backend and without TensorFlow.

    KERAS_BACKEND=jax python tools/train_gpu_jax.py --out OUT --seconds 210
    KERAS_BACKEND=jax python tools/train_gpu_jax.py --out OUT \
        --resume runs/NAME/checkpoints/epoch_004.keras --total-steps 5500 \
        --batch-size 64 --lr 0.002 --warmup-steps 200 --ema 0.999
    KERAS_BACKEND=jax python tools/train_gpu_jax.py --out OUT --seconds 40 \
        --model pixelcnn --hidden-maps 48 --set num_residual_blocks=15

The architecture: `--model` (a registry name; `gated_pixelcnn` gets the
GPU-sized defaults 10 x 128 maps, 5 x 5, 256 output maps), the common
arguments as flags, any other as `--set KEY=JSON`; a resumed run keeps the
checkpoint's. `pixel-keras train` builds on `tf.data` and `tf.distribute`; an accelerator
machine with JAX but no TensorFlow trains with this script instead. The
pieces are the project's own: the model from the registry, the recipe's
`optimizers.Adam` (warmed-up weight average), the loss
`losses.nll_per_image`, the data from `pixel_keras.idx` (the original IDX
files, `--data-dir` or `$PIXEL_KERAS_DATA_DIR`). The loop is Keras'
stateless JAX pattern (`stateless_call` / `stateless_apply` inside one
`jax.jit`ted step that donates its state).

Recipe: Adam at `--lr`, linear warm-up over `--warmup-steps`, then a cosine
decay to 0, bfloat16 compute with the loss in float32 (`--precision`), and a
warmed-up weight average (`--ema`) that is what gets evaluated and saved.
`--output-bias marginal` starts a new model's last-layer bias at the log
level frequencies of the first training images, as `pixel-keras train
--output-bias` does. The run's length is either

- `--seconds`: a wall-clock budget. The number of steps it buys is not
  known in advance, so each step's learning rate is computed from the time
  already spent (cosine over the budget). The budget counts the training
  steps only: compiling the step comes before it (`compile_seconds`). The
  host runs at most two steps ahead of the device, so the clock measures
  finished work; or
- `--total-steps`: a step budget, with the schedule of `pixel-keras train`
  (`optimizers.make_optimizer`: warm-up, cosine to 0 at the last step).
  With `--resume CHECKPOINT` (a `pixel-keras train` checkpoint, `.keras`)
  the model, its Adam moments, step count and weight average continue from
  the checkpoint (`training.checkpoints`, as `pixel-keras train --resume`
  does) up to step `--total-steps`: a run's remaining leg on an
  accelerator. The data order differs from `pixel-keras train`'s (NumPy
  shuffling here, `tf.data` there).

Writes into OUT:
- `model.weights.h5`: the weight average in float32, a fresh model's
  weights (no optimizer state), loadable by `zoo.load` from a preset
  directory holding OUT's `config.json`.
- `config.json`: `{"model": ..., "config": ...}` as in `zoo/*/config.json`.
- `result.json`: test bits/dim (float32, highest matmul precision, on the
  full 10,000-image test split), steps, images/s, timings, the device, the
  exact command.
- `samples.png`: `--num-samples` samples (seed 0), 8 per row (one column
  per class for a class-conditional model).

`tools/publish_weights.py OUT PRESET --command "<this command>"` publishes
such a run into the zoo (evaluated again there with TensorFlow).
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pixel_keras.checks import OUTPUT_BIAS_IMAGES, OUTPUT_BIAS_INITS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", required=True, help="output directory (must not exist)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="wall-clock budget (default 210 without --total-steps)",
    )
    parser.add_argument(
        "--total-steps", type=int, default=None, help="step budget of the whole run"
    )
    parser.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        default=None,
        help="a `pixel-keras train` checkpoint (.keras) to continue",
    )
    parser.add_argument(
        "--num-classes", type=int, default=None, help="class-conditional on the labels"
    )
    parser.add_argument(
        "--model",
        default="gated_pixelcnn",
        help="registered model (default: gated_pixelcnn)",
    )
    parser.add_argument("--hidden-maps", type=int, default=None)
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--kernel-size", type=int, default=None)
    parser.add_argument("--output-maps", type=int, default=None)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another model argument, VALUE as JSON (e.g. num_residual_blocks=12)",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--ema", type=float, default=0.999, help="0 for none")
    parser.add_argument(
        "--output-bias",
        choices=OUTPUT_BIAS_INITS,
        default=None,
        help="a new model's last-layer bias, as `pixel-keras train --output-bias`: "
        "zeros, or marginal (the log level frequencies of the first "
        f"{OUTPUT_BIAS_IMAGES} training images) (default: zeros; not with "
        "--resume, which keeps the checkpoint's)",
    )
    parser.add_argument(
        "--precision", choices=("float32", "mixed_bfloat16"), default="mixed_bfloat16"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-batch-size", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=64, help="0 for none")
    parser.add_argument(
        "--eval-images",
        type=int,
        default=None,
        help="first N test images (default: all 10,000)",
    )
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    if args.seconds is not None and args.total_steps is not None:
        parser.error("give --seconds or --total-steps, not both")
    if args.resume and args.total_steps is None:
        parser.error("--resume needs --total-steps (the run's whole step budget)")
    if args.resume and args.output_bias is not None:
        parser.error(
            "--output-bias initializes a new model; a resumed run keeps its "
            f"checkpoint's bias. Received: --output-bias {args.output_bias} with --resume"
        )
    if not args.resume and args.output_bias is None:
        args.output_bias = "zeros"
    if args.seconds is None and args.total_steps is None:
        args.seconds = 210.0
    for name in ("seconds", "total_steps", "lr"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0. Received: {value}")
    for item in args.set:
        key, sep, value = item.partition("=")
        try:
            json.loads(value)
        except ValueError:
            sep = ""
        if not sep or not key:
            parser.error(f"--set takes KEY=VALUE with a JSON value. Received: {item!r}")
    if not 0 <= args.ema < 1:
        parser.error(f"--ema must be in [0, 1). Received: {args.ema}")
    if os.path.exists(args.out):
        parser.error(f"--out {args.out} exists; give a new directory")
    return args


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# The GPU-sized Gated PixelCNN (issue 12): its arguments when none are given.
GATED_DEFAULTS = {
    "num_layers": 10,
    "hidden_maps": 128,
    "kernel_size": 5,
    "output_maps": 256,
}


def architecture(args, image_shape):
    """`(model name, config)` of a new model: defaults, then flags, then `--set`."""
    config = {"image_shape": list(image_shape), "num_levels": 256}
    if args.model == "gated_pixelcnn":
        config.update(GATED_DEFAULTS)
    for key in (
        "num_layers",
        "hidden_maps",
        "kernel_size",
        "output_maps",
        "num_classes",
    ):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    for item in args.set:
        key, _, value = item.partition("=")
        config[key] = json.loads(value)
    return args.model, config


def learning_rate(args, step, elapsed):
    """Warm-up over steps, then cosine to 0 over the wall-clock budget."""
    from pixel_keras.optimizers import wall_clock_learning_rate

    return wall_clock_learning_rate(
        args.lr, step, elapsed, args.seconds, "cosine", args.warmup_steps
    )


def batches(images, labels, batch_size, seed):
    """Endless shuffled `(images, labels)` batches (a permutation per pass), int32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(images))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chosen = order[start : start + batch_size]
            yield images[chosen].astype(np.int32), labels[chosen].astype(np.int32)


def main(argv=None):
    args = parse_args(argv)
    if os.environ.get("KERAS_BACKEND") != "jax":
        raise SystemExit(
            "set KERAS_BACKEND=jax (this script is the JAX-backend trainer)"
        )
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np
    from keras import ops

    from pixel_keras import idx, losses, optimizers, zoo
    from pixel_keras.images import save_image_grid
    from pixel_keras.models import registry
    from pixel_keras.precision import policy_scope

    out = Path(args.out)
    out.mkdir(parents=True)
    device = jax.devices()[0]
    log(
        f"JAX {jax.__version__}, Keras {keras.__version__}, device {device.device_kind}"
    )
    train_images, train_labels = idx.load_fashion_mnist("train", args.data_dir)
    test_images, test_labels = idx.load_fashion_mnist("test", args.data_dir)
    test_images, test_labels = (
        test_images[: args.eval_images],
        test_labels[: args.eval_images],
    )
    image_shape = tuple(train_images.shape[1:])

    keras.utils.set_random_seed(args.seed)
    schedule = "cosine" if args.total_steps else "constant"
    optimizer = optimizers.make_optimizer(
        args.lr,
        total_steps=args.total_steps,
        schedule=schedule,
        warmup_steps=args.warmup_steps if args.total_steps else 0,
        ema_momentum=args.ema or None,
    )
    if args.resume:
        from pixel_keras.training.checkpoints import _load_for_resume

        model = _load_for_resume(args.resume, optimizer)
        saved = zoo.preset_config(model)
        model_name, config = saved["model"], saved["config"]
    else:
        model_name, config = architecture(args, image_shape)
        with policy_scope(args.precision):
            model = registry.create(model_name, **config)
        if args.output_bias == "marginal":
            model.init_output_bias(train_images[:OUTPUT_BIAS_IMAGES])
        optimizer.build(model.trainable_variables)
    conditional = bool(config.get("num_classes"))
    start_step = int(ops.convert_to_numpy(optimizer.iterations))
    precision = model.dtype_policy.name
    params = model.count_params()
    names = [v.name for v in optimizer.variables]
    lr_index = names.index("learning_rate") if "learning_rate" in names else None
    log(f"{model_name} {config}: {params:,} parameters, from step {start_step}")

    def inputs(x, y):
        return {"images": x, "class_label": y} if conditional else x

    def loss_fn(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(
            trainable, non_trainable, inputs(x, y), training=True
        )
        return ops.mean(losses.nll_per_image(x, logits)), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state, x, y, lr):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        if lr_index is not None:  # the wall-clock schedule sets each step's rate
            opt_vars = list(opt_vars)
            opt_vars[lr_index] = lr.astype(opt_vars[lr_index].dtype)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    data = batches(train_images, train_labels, args.batch_size, args.seed)
    t0 = time.perf_counter()
    x0, y0 = next(data)
    step_fn = (
        jax.jit(train_step, donate_argnums=(0,))
        .lower(state, jnp.asarray(x0), jnp.asarray(y0), jnp.float32(0.0))
        .compile()
    )
    compile_s = time.perf_counter() - t0
    budget = (
        f"{args.seconds:.0f} s"
        if args.seconds
        else f"steps {start_step}..{args.total_steps}"
    )
    log(f"compiled the training step in {compile_s:.1f} s; training for {budget}")

    def more(steps, elapsed):
        if args.seconds:
            return elapsed < args.seconds
        return start_step + steps < args.total_steps

    steps, pending, history = 0, [], []
    start = time.perf_counter()
    elapsed = 0.0
    while more(steps, elapsed):
        x, y = (jax.device_put(a, device) for a in next(data))
        lr = learning_rate(args, steps, elapsed) if args.seconds else 0.0
        loss, state = step_fn(state, x, y, jnp.float32(lr))
        pending.append(loss)
        steps += 1
        if len(pending) > 2:  # at most two steps in flight
            pending.pop(0).block_until_ready()
        elapsed = time.perf_counter() - start
        if steps % 500 == 0:
            bpd = losses.nats_to_bits_per_dim(float(loss), image_shape)
            history.append(
                {
                    "step": start_step + steps,
                    "seconds": round(elapsed, 1),
                    "train_bits_per_dim": round(bpd, 4),
                }
            )
            log(f"step {start_step + steps}: {elapsed:.0f} s, train bits/dim {bpd:.3f}")
    jax.block_until_ready(state)
    train_s = time.perf_counter() - start
    images_per_s = steps * args.batch_size / train_s
    log(f"{steps} steps in {train_s:.1f} s: {images_per_s:,.0f} images/s")

    # Back into the Keras variables; the weight average into a float32 model.
    trainable, non_trainable, opt_vars = state
    for variable, value in zip(model.trainable_variables, trainable):
        variable.assign(value)
    for variable, value in zip(model.non_trainable_variables, non_trainable):
        variable.assign(value)
    for variable, value in zip(optimizer.variables, opt_vars):
        variable.assign(value)
    if args.ema:
        optimizer.finalize_variable_values(model.trainable_variables)
    published = registry.create(model_name, **config)
    published.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    published.save_weights(str(out / "model.weights.h5"))
    (out / "config.json").write_text(
        json.dumps({"model": model_name, "config": config}, indent=2, sort_keys=True)
        + "\n"
    )

    t0 = time.perf_counter()
    with jax.default_matmul_precision("highest"):
        forward = jax.jit(
            lambda weights, x, y: losses.nll_per_image(
                x, published.stateless_call(weights, [], inputs(x, y))[0]
            )
        )
        weights = [v.value for v in published.trainable_variables]
        nll = np.concatenate(
            [
                np.asarray(
                    forward(
                        weights,
                        jnp.asarray(
                            test_images[i : i + args.eval_batch_size].astype(np.int32)
                        ),
                        jnp.asarray(
                            test_labels[i : i + args.eval_batch_size].astype(np.int32)
                        ),
                    )
                )
                for i in range(0, len(test_images), args.eval_batch_size)
            ]
        )
    test_bpd = losses.nats_to_bits_per_dim(float(nll.mean()), image_shape)
    eval_s = time.perf_counter() - t0
    log(f"test bits/dim {test_bpd:.4f} on {len(nll)} images ({eval_s:.1f} s)")

    sample_s = None
    if args.num_samples:
        t0 = time.perf_counter()
        labels = (
            [i % config["num_classes"] for i in range(args.num_samples)]
            if conditional
            else None
        )
        samples = published.sample(
            args.num_samples, seed=0, verbose=0, class_label=labels
        )
        sample_s = round(time.perf_counter() - t0, 1)
        save_image_grid(
            np.asarray(samples),
            str(out / "samples.png"),
            num_levels=256,
            columns=config["num_classes"] if conditional else 8,
            scale=4,
        )
        log(f"{args.num_samples} samples in {sample_s} s")

    result = {
        "command": "KERAS_BACKEND=jax python tools/train_gpu_jax.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "model": model_name,
        "config": config,
        "resumed_from": args.resume,
        "start_step": start_step,
        "num_params": int(params),
        "test_bits_per_dim": round(test_bpd, 4),
        "test_nats_per_image": round(float(nll.mean()), 3),
        "test_images": int(len(nll)),
        "train_steps": steps,
        "train_images_seen": steps * args.batch_size,
        "train_seconds": round(train_s, 1),
        "images_per_second": round(images_per_s, 1),
        "compile_seconds": round(compile_s, 1),
        "eval_seconds": round(eval_s, 1),
        "sample_seconds": sample_s,
        "history": history,
        "recipe": {
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "lr_schedule": (
                "cosine to 0 over the wall-clock budget"
                if args.seconds
                else f"cosine to 0 at step {args.total_steps}"
            ),
            "total_steps": args.total_steps,
            "warmup_steps": args.warmup_steps,
            "ema_momentum": args.ema or None,
            "output_bias": args.output_bias or "kept from the resumed checkpoint",
            "precision": precision,
            "optimizer": "Adam",
            "seed": args.seed,
            "train_split": "train (60,000 images, reshuffled every pass)",
        },
        "device": device.device_kind,
        "platform": device.platform,
        "host": platform.machine(),
        "backend": keras.backend.backend(),
        "jax_version": jax.__version__,
        "keras_version": keras.__version__,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
