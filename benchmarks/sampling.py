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

What is measured: the sampler's row function (`sampling.row_functions`,
the compiled driver `model.sample` calls: full forward passes for "naive",
the model's cache hooks for "cached") is first called once on row 0
(tracing, compilation, not timed), then on rows 1 ... `--rows` (default 2
for naive, 4 for cached), timed; images/s = batch / (seconds per row * H).
The work per row does not depend on the row (except the naive sampler's
first and the cached samplers' per-row updates, which every timed row
includes), so this extrapolates to the whole image; `--full` times whole images instead (slow for the naive sampler:
H*W*C full forward passes). Both samplers give the same images for the same
seeds (tests/test_cached_sampling.py), so only their speed differs.

Models are untrained (weights do not change the work); class-conditional
presets sample with class labels 0, 1, ... Results carry `measured_rows` and
the load average before each measurement, and the JSON the machine
(`environment`): on a shared machine the wall clock is noisy, the
naive/cached ratio less so.

`--compare REF` times `model.sample` (the public API, whole images) of this
working tree against commit REF, checked out in a temporary git worktree, in
the same run: one worker process per side and preset, each importing its own
`pixel_keras`, both sides with the same weights (current's initialization,
saved and loaded by ref), one call at a time, current and ref alternating
for `--repeats` rounds after one untimed call. It reports the median
images/s of each side, the current/ref ratio (median over adjacent pairs of
rounds) and whether both sides drew identical images for the same seed
(sha256 of the uint8 arrays):

```
python benchmarks/sampling.py --compare main                  # cached sampler
python benchmarks/sampling.py --compare main --methods naive cached --batch-sizes 16
```
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _common  # noqa: E402  (this directory is sys.path[0])

_common.use_package_root()

PRESETS = (
    "pixelcnn_fashion_mnist",
    "row_lstm_fashion_mnist",
    "diagonal_bilstm_fashion_mnist",
    "gated_pixelcnn_fashion_mnist",
    "gated_pixelcnn_conditional_fashion_mnist",
)
SIDES = ("current", "ref")  # --compare: this working tree, then REF
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
    """`(run_row(row) -> None, finish() -> canvas)` for one batch.

    The compiled functions are `sampling.row_functions(model, method)`, the
    ones `model.sample` runs, called row by row as `sampling.sample_rows`
    calls them.
    """
    import numpy as np
    from keras import ops

    from pixel_keras import sampling

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
    functions = sampling.row_functions(model, method)
    state = [functions.start(canvas, conditions)]

    def run_row(row):
        start = ops.convert_to_tensor(np.int32(row * step))
        stop = ops.convert_to_tensor(np.int32((row + 1) * step))
        state[0] = functions.rows(
            state[0], start, stop, seeds, temperature, given, known
        )

    def finish():
        return ops.convert_to_numpy(sampling.state_canvas(functions.hooks, state[0]))

    return run_row, finish


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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument(
        "--shapes", nargs="+", type=_shape, default=[_shape(s) for s in SHAPES]
    )
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=None,
        help="default: both; with --compare: cached",
    )
    parser.add_argument("--naive-rows", type=int, default=2, help="timed rows (naive)")
    parser.add_argument(
        "--cached-rows", type=int, default=4, help="timed rows (cached)"
    )
    parser.add_argument("--full", action="store_true", help="time whole images")
    g = parser.add_argument_group("--compare (times whole `model.sample` calls)")
    g.add_argument(
        "--compare",
        metavar="REF",
        help="also time commit REF (e.g. main, a SHA) from a temporary git "
        "worktree in the same run, calls alternating with this working tree",
    )
    g.add_argument(
        "--repeats", type=int, default=3, help="timed calls per side (--compare)"
    )
    g.add_argument(
        "--seed", type=int, default=0, help="sampling and init seed (--compare)"
    )
    args = parser.parse_args(argv)
    if args.methods is None:
        args.methods = ["cached"] if args.compare else list(METHODS)
    if (
        min(args.batch_sizes) < 1
        or min(args.naive_rows, args.cached_rows) < 1
        or args.repeats < 1
    ):
        parser.error(
            "batch sizes, row counts and --repeats must be >= 1. Received: "
            f"batch_sizes={args.batch_sizes}, naive_rows={args.naive_rows}, "
            f"cached_rows={args.cached_rows}, repeats={args.repeats}"
        )
    if args.compare:
        if args.full:
            parser.error(
                "--compare always times whole images; --full is for the row "
                "timings without --compare. Received: --full --compare "
                f"{args.compare}"
            )
        try:
            _common.resolve_commit(args.compare)
        except _common.CompareError as e:
            parser.error(str(e))
    if args.compare:  # both sides build the configs of this checkout's zoo/
        known = [
            name
            for name in args.presets
            if os.path.isfile(os.path.join(_common.ROOT, "zoo", name, "config.json"))
        ]
    else:
        from pixel_keras import zoo

        known = zoo.list_presets()
    unknown = sorted(set(args.presets) - set(known))
    if unknown:
        parser.error(f"unknown presets {unknown}; see `pixel-keras zoo list`")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--worker"]:
        return worker_main()
    args = parse_args(argv)
    env = _common.environment()
    import keras

    result = {
        "benchmark": "sampling",
        "backend": keras.backend.backend(),
        "devices": _devices(),
    }
    if args.compare:
        try:
            result.update(run_compare(args))
        except _common.CompareError as e:
            print(f"{os.path.basename(__file__)}: error: {e}", file=sys.stderr)
            return 2
    else:
        result["commit"] = _common.git_state()
        result["extrapolated"] = not args.full
        result["results"] = run_local(args)
    result["environment"] = _common.finish_environment(env)
    print(json.dumps(result, indent=1))
    return 0


def run_local(args):
    """Row timings of the naive and cached samplers in this process."""
    import keras

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
                    log(
                        f"{name} {shape} batch {batch} {method}: "
                        f"{entry[method]['images_per_s']:.4g} images/s"
                    )
                if "naive" in entry and "cached" in entry:
                    entry["speedup"] = (
                        entry["cached"]["images_per_s"] / entry["naive"]["images_per_s"]
                    )
                results.append(entry)
    return results


def log(message):
    label = os.environ.get("PIXEL_KERAS_BENCH_LABEL")
    prefix = f"sampling {label}" if label else "sampling"
    print(f"[{prefix}] {message}", file=sys.stderr, flush=True)


def _devices():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices()]
    return []


# ---- --compare ---------------------------------------------------------------
def run_compare(args):
    """`model.sample` of this tree vs. REF, calls alternating, per preset."""
    result = {
        "compare": {"ref": args.compare, "repeats": args.repeats, "seed": args.seed}
    }
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
        roots = {"current": _common.ROOT, "ref": ref["root"]}
        results = []
        for name in args.presets:
            preset = _common.read_preset_config(name)
            with _common.workers(os.path.abspath(__file__), roots) as workers:
                for shape in args.shapes:
                    results += compare_shape(name, preset, shape, args, workers, tmp)
        result["results"] = results
        result["all_samples_identical"] = all(
            r.get("samples_identical") is True for r in results
        )
    return result


def compare_shape(name, preset, shape, args, workers, tmp):
    """Entries for one preset at one shape: every batch size and method."""
    key = "x".join(str(v) for v in shape)
    config = {**preset["config"], "image_shape": list(shape)}
    weights = os.path.join(tmp, f"{name}-{key}.weights.h5")
    head = {"preset": name, "image_shape": list(shape)}
    built = {}
    try:
        built["current"] = workers["current"].request(
            "build",
            key=key,
            model=preset["model"],
            config=config,
            seed=args.seed,
            save_weights=weights,
        )
        built["ref"] = workers["ref"].request(
            "build",
            key=key,
            model=preset["model"],
            config=config,
            seed=args.seed,
            load_weights=weights,
        )
    except _common.WorkerError as e:
        log(f"{name} {key}: {e}")
        return [{**head, "error": str(e)}]
    head["model"] = built["current"]["model"]
    head["params"] = {side: built[side]["params"] for side in SIDES}
    head["same_weights"] = built["ref"]["weights"] == "loaded"
    head["ref_weights"] = built["ref"]["weights"]
    head["pixel_keras"] = {side: built[side]["pixel_keras"] for side in SIDES}
    entries = []
    for batch in args.batch_sizes:
        for method in args.methods:
            entry = {**head, "batch_size": batch, "method": method}
            call = {"key": key, "batch": batch, "method": method, "seed": args.seed}
            try:
                first = {s: workers[s].request("sample", **call) for s in SIDES}
                rounds = {s: [] for s in SIDES}
                for _ in range(args.repeats):
                    for side in SIDES:  # current first in every pair
                        rounds[side].append(workers[side].request("sample", **call))
            except _common.WorkerError as e:
                log(f"{name} {key} batch {batch} {method}: {e}")
                entries.append({**entry, "error": str(e)})
                continue
            hashes = {}
            for side in SIDES:
                seen = {first[side]["sha256"]} | {r["sha256"] for r in rounds[side]}
                hashes[side] = sorted(seen)
                entry[side] = {
                    **_common.summarize_side(rounds[side], batch),
                    "first_call_s": round(first[side]["wall_s"], 3),
                    "sha256": first[side]["sha256"],
                    "same_images_every_call": len(seen) == 1,
                }
            entry["samples_identical"] = hashes["current"] == hashes["ref"] and (
                len(hashes["current"]) == 1
            )
            entry.update(_common.paired_ratios(rounds["current"], rounds["ref"]))
            log(
                f"{name} {key} batch {batch} {method}: current/ref images/s "
                f"{entry['ratio_images_per_s']}, identical samples: "
                f"{entry['samples_identical']}"
            )
            entries.append(entry)
    return entries


def worker_main():
    """`--worker`: builds models and times `model.sample` calls on request."""
    import keras
    import numpy as np

    models = {}

    def build_request(request):
        keras.utils.set_random_seed(request["seed"])
        cls = _common.model_class(request["model"])
        config = request["config"]
        model = cls(**{**config, "image_shape": tuple(config["image_shape"])})
        weights = "own initialization"
        if request.get("save_weights"):
            model.save_weights(request["save_weights"])
        if request.get("load_weights"):
            try:
                model.load_weights(request["load_weights"])
                weights = "loaded"
            except Exception as e:  # reported: samples then need not match
                weights = f"own initialization; loading current's failed: {e}"
        models[request["key"]] = model
        # After the build, so it covers every pixel_keras module imported.
        path = _common.check_package_root()
        return {
            "model": type(model).__name__,
            "params": model.count_params(),
            "weights": weights,
            "pixel_keras": path,
        }

    def sample_request(request):
        model = models[request["key"]]
        batch = request["batch"]
        kwargs = {}
        if getattr(model, "num_classes", None) and "class_label" in getattr(
            model, "condition_names", ()
        ):
            kwargs["class_label"] = np.arange(batch, dtype="int32") % model.num_classes
        c0, t0 = time.process_time(), time.perf_counter()
        images = model.sample(
            batch, seed=request["seed"], verbose=0, method=request["method"], **kwargs
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        images = np.ascontiguousarray(images)
        digest = hashlib.sha256(
            f"{images.dtype}{images.shape}".encode() + images.tobytes()
        ).hexdigest()
        return {"wall_s": wall, "cpu_s": cpu, "sha256": digest}

    _common.serve({"build": build_request, "sample": sample_request})
    return 0


if __name__ == "__main__":
    sys.exit(main())
