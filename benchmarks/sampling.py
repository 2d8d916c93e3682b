"""Sampling speed (images/s): naive vs cached sampler, per architecture.

For each architecture (the `*_fashion_mnist` presets' configurations, and the
same configurations at 32 x 32 x 3), each batch size and each method, this
times the compiled row loop that `model.sample` runs and prints one JSON
object to stdout:

```
python benchmarks/sampling.py                               # everything below
python benchmarks/sampling.py --presets gated_pixelcnn_fashion_mnist --batch-sizes 16
python benchmarks/sampling.py --shapes 28x28x1 --full       # whole images, no extrapolation
KERAS_BACKEND=jax python benchmarks/sampling.py             # same on JAX (GPU if any)
```

What is measured: the sampler's row function (`sampling.naive_steps` for
"naive", `cached_sampling` for "cached"; the functions `model.sample` calls,
compiled the same way) is first called once on row 0 (tracing, compilation,
not timed), then on rows 1 ... `--rows` (default 2 for naive, 4 for cached),
timed; images/s = batch / (seconds per row * H). The work per row does not
depend on the row (except the naive sampler's first and the cached samplers'
per-row updates, which every timed row includes), so this extrapolates to the
whole image; `--full` times whole images instead (slow for the naive sampler:
H*W*C full forward passes). Both samplers give the same images for the same
seeds (tests/test_cached_sampling.py), so only their speed differs.

Models are untrained (weights do not change the work); class-conditional
presets sample with class labels 0, 1, ... Results carry `measured_rows`, the
CPU count and the load average before each measurement: on a shared machine
the wall clock is noisy, the naive/cached ratio less so.
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PRESETS = (
    "pixelcnn_fashion_mnist",
    "row_lstm_fashion_mnist",
    "diagonal_bilstm_fashion_mnist",
    "gated_pixelcnn_fashion_mnist",
)
SHAPES = ("28x28x1", "32x32x3")
METHODS = ("naive", "cached")


def _shape(text):
    try:
        shape = tuple(int(v) for v in text.split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or shape[2] not in (1, 3) or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected HxWxC with C in (1, 3), e.g. 32x32x3. Received: {text!r}"
        )
    return shape


def build(preset_name, shape):
    """The preset's architecture at `shape` (untrained)."""
    from pixel_keras import zoo

    return zoo.build(zoo.get_preset(preset_name), image_shape=list(shape))


def row_functions(model, method, batch):
    """`(run_row(row) -> None, finish() -> canvas)` for one batch."""
    import numpy as np
    from keras import ops

    from pixel_keras import cached_sampling, sampling
    from pixel_keras.models.base import _jit_model_fn

    height, width, channels = model.image_shape
    num_steps = height * width * channels
    seeds = ops.convert_to_tensor(sampling.per_sample_seeds(batch, 0))
    temperature = ops.convert_to_tensor(np.float32(1.0))
    given = ops.convert_to_tensor(np.zeros((batch, num_steps), "int32"))
    known = ops.convert_to_tensor(np.zeros((batch, num_steps), bool))
    canvas = ops.convert_to_tensor(np.zeros((batch, *model.image_shape), "int32"))
    conditions = {}
    if "class_label" in model.condition_names:
        labels = np.arange(batch, dtype="int32") % model.num_classes
        conditions = {"class_label": ops.convert_to_tensor(labels)}
    step = width * channels

    def bounds(row):
        return (
            ops.convert_to_tensor(np.int32(row * step)),
            ops.convert_to_tensor(np.int32((row + 1) * step)),
        )

    if method == "naive":

        def rows(canvas, start, stop, seeds, temperature, given, known, conditions):
            return sampling.naive_steps(
                lambda x: model(model._model_inputs(x, conditions), training=False),
                canvas,
                start,
                stop,
                seeds,
                temperature,
                given,
                known,
            )

        fn = _jit_model_fn(model, rows)
        state = [canvas]

        def run_row(row):
            state[0] = fn(
                state[0], *bounds(row), seeds, temperature, given, known, conditions
            )

        return run_row, lambda: ops.convert_to_numpy(state[0])

    sampler = cached_sampling.new_sampler(model)

    def rows(state, start, stop, seeds, temperature, given, known):
        return sampler.steps(state, start, stop, seeds, temperature, given, known)

    fn = _jit_model_fn(model, rows, jit_compile=True)  # as `sample_rows`
    start = _jit_model_fn(model, sampler.initial_state)
    state = [start(canvas, conditions)]

    def run_row(row):
        state[0] = fn(state[0], *bounds(row), seeds, temperature, given, known)

    return run_row, lambda: ops.convert_to_numpy(sampler.canvas(state[0]))


def measure(model, method, batch, rows, full):
    height = model.image_shape[0]
    run_row, finish = row_functions(model, method, batch)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    run_row(0)
    finish()
    compile_seconds = time.perf_counter() - start
    timed = (
        list(range(1, height)) if full else list(range(1, min(rows, height - 1) + 1))
    )
    start = time.perf_counter()
    for row in timed:
        run_row(row)
    finish()  # waits for the device
    seconds = time.perf_counter() - start
    per_row = seconds / len(timed)
    return {
        "images_per_s": batch / (per_row * height),
        "seconds_per_image_batch": per_row * height,
        "measured_rows": len(timed),
        "first_row_seconds": compile_seconds,
        "load_average": round(load, 2),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument(
        "--shapes", nargs="+", type=_shape, default=[_shape(s) for s in SHAPES]
    )
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--naive-rows", type=int, default=2, help="timed rows (naive)")
    parser.add_argument(
        "--cached-rows", type=int, default=4, help="timed rows (cached)"
    )
    parser.add_argument("--full", action="store_true", help="time whole images")
    args = parser.parse_args(argv)
    if min(args.batch_sizes) < 1 or min(args.naive_rows, args.cached_rows) < 1:
        parser.error(
            "batch sizes and row counts must be >= 1. Received: "
            f"batch_sizes={args.batch_sizes}, naive_rows={args.naive_rows}, "
            f"cached_rows={args.cached_rows}"
        )

    import keras

    from pixel_keras import zoo

    unknown = sorted(set(args.presets) - set(zoo.list()))
    if unknown:
        parser.error(f"unknown presets {unknown}; see `pixel-keras zoo list`")

    results = []
    for name in args.presets:
        for shape in args.shapes:
            keras.utils.set_random_seed(0)
            model = build(name, shape)
            for batch in args.batch_sizes:
                entry = {
                    "preset": name,
                    "model": type(model).__name__,
                    "image_shape": list(shape),
                    "params": model.count_params(),
                    "batch_size": batch,
                }
                for method in args.methods:
                    rows = args.naive_rows if method == "naive" else args.cached_rows
                    entry[method] = measure(model, method, batch, rows, args.full)
                    print(
                        f"{name} {shape} batch {batch} {method}: "
                        f"{entry[method]['images_per_s']:.4g} images/s",
                        file=sys.stderr,
                        flush=True,
                    )
                if "naive" in entry and "cached" in entry:
                    entry["speedup"] = (
                        entry["cached"]["images_per_s"] / entry["naive"]["images_per_s"]
                    )
                results.append(entry)
    print(
        json.dumps(
            {
                "benchmark": "sampling",
                "backend": keras.backend.backend(),
                "keras": keras.__version__,
                "devices": _devices(),
                "cpu_count": os.cpu_count(),
                "machine": platform.machine(),
                "extrapolated": not args.full,
                "results": results,
            },
            indent=1,
        )
    )


def _devices():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices()]
    return []


if __name__ == "__main__":
    main()
