"""How fast a training step could get: its matrix products alone, timed.

For each preset and dtype policy, builds the preset's training step (the
`tf.function` of `profile_step.py`: the model's own loss, the recipe's Adam,
batch 64), lists every matrix product and convolution in the step's graph
(`MatMul`, `BatchMatMulV2`/`V3`, `Conv2D`, `Conv2DBackpropInput`,
`Conv2DBackpropFilter`: forward and backward) with its shapes, dtypes and
attributes, and rebuilds exactly those ops, and nothing else, as a second
`tf.function` on random inputs of the same shapes (`tf.raw_ops`, inputs
passed as arguments so nothing is constant-folded). It then times the two
in alternating rounds and prints one JSON object.

The "compute-only" function is the step without its element-wise work
(activations and their gradients, bias additions, casts, the loss, Adam):
the floating-point operations stay the same, so its time is a ceiling on
what any rewrite that keeps the model's arithmetic could reach with the same
kernels. `max_speedup_per_cpu_s` = step CPU time / compute-only CPU time.

```
python benchmarks/step_ceiling.py
python benchmarks/step_ceiling.py --presets pixelcnn_fashion_mnist --policies mixed_bfloat16 --rounds 7
python benchmarks/step_ceiling.py --help
```

Presets whose step has a loop (`While`: the PixelRNNs' row and diagonal
loops) are reported as `{"skipped": reason}`: the trip count of a loop's
body is not in the graph, so its operations cannot be counted this way.

FLOPs are counted as 2 per multiply-add: a matrix product of [M, K] by
[K, N] is 2·M·K·N; a convolution (each of its three forms) is 2 · N·Ho·Wo·Co
· kh·kw·Ci (the forward convolution's output size times its taps).
"""

import argparse
import collections
import json
import math
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

_common.use_package_root()

MATMULS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
CONVS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
# Op types that hold function bodies: one call each (inlined functions).
CALLS = ("PartitionedCall", "StatefulPartitionedCall")
LOOPS = ("While", "StatelessWhile")
DEFAULT_PRESETS = (
    "pixelcnn_fashion_mnist",
    "gated_pixelcnn_fashion_mnist",
    "gated_pixelcnn_conditional_fashion_mnist",
)


class HasLoop(Exception):
    """The step's graph runs a loop, whose trip count the graph does not say."""


def _shape(tensor):
    shape = tensor.shape
    if not shape.is_fully_defined():
        raise ValueError(f"{tensor.name} has no static shape: {shape}")
    return [int(d) for d in shape]


def compute_ops(graph):
    """The matrix products and convolutions of `graph`, nested calls included.

    Each is a dict: `type`, `dtype`, `inputs` (per input: a shape to fill
    with random values, or `("const", value)` for the size arguments of the
    convolution gradients), `attrs` (for `tf.raw_ops`) and `flops`.
    """
    found = []
    for op in graph.get_operations():
        if op.type in LOOPS:
            raise HasLoop(f"{op.type} {op.name!r}")
        if op.type in CALLS:
            fn = graph._get_function(op.get_attr("f").name)
            found += compute_ops(fn.graph)
            continue
        if op.type not in MATMULS + CONVS:
            continue
        attrs = {
            k: op.get_attr(k)
            for k in op.node_def.attr
            if k != "T" and not k.startswith("_")
        }
        if op.type in CONVS and attrs.get("data_format", b"NHWC") != b"NHWC":
            raise ValueError(f"{op.name}: data_format {attrs['data_format']}")
        if op.type in MATMULS:
            inputs = [_shape(t) for t in op.inputs]
            a = inputs[0]
            transposed = attrs.get("transpose_a", attrs.get("adj_x", False))
            contraction = a[-2] if transposed else a[-1]
            flops = 2 * math.prod(_shape(op.outputs[0])) * contraction
        elif op.type == "Conv2D":
            inputs = [_shape(t) for t in op.inputs]
            kh, kw, ci, _ = inputs[1]
            flops = 2 * math.prod(_shape(op.outputs[0])) * kh * kw * ci
        elif op.type == "Conv2DBackpropInput":
            sizes = _shape(op.outputs[0])  # = its input_sizes argument
            inputs = [("const", sizes)] + [_shape(t) for t in op.inputs[1:]]
            kh, kw, ci, _ = inputs[1]
            flops = 2 * math.prod(inputs[2]) * kh * kw * ci
        else:  # Conv2DBackpropFilter
            sizes = _shape(op.outputs[0])  # = its filter_sizes argument
            inputs = [_shape(op.inputs[0]), ("const", sizes), _shape(op.inputs[2])]
            kh, kw, ci, _ = sizes
            flops = 2 * math.prod(inputs[2]) * kh * kw * ci
        found.append(
            {
                "type": op.type,
                "name": op.name,
                "dtype": op.get_attr("T").name,
                "inputs": inputs,
                "input_names": [a.name for a in op.op_def.input_arg],
                "attrs": attrs,
                "flops": int(flops),
            }
        )
    return found


def compute_only_function(ops, seed=0):
    """`(fn, args)`: `fn(*args)` runs exactly `ops` on random inputs."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(seed)
    args, plan = [], []
    for op in ops:
        slots = []
        for spec in op["inputs"]:
            if isinstance(spec, tuple):
                slots.append(spec)
            else:
                slots.append(("arg", len(args)))
                args.append(tf.cast(rng.normal(spec), op["dtype"]))
        raw_op = getattr(tf.raw_ops, op["type"])
        plan.append((raw_op, op["input_names"], slots, op["attrs"]))

    @tf.function(autograph=False)
    def fn(*tensors):
        outputs = []
        for raw_op, names, slots, attrs in plan:
            values = {
                name: tensors[i] if kind == "arg" else tf.constant(i, tf.int32)
                for name, (kind, i) in zip(names, slots)
            }
            outputs.append(raw_op(**values, **attrs))
        return outputs

    return fn, args


def time_rounds(fns, steps, rounds, batch_size):
    """Alternating rounds of `steps` calls of each `fns[name]()`.

    Returns `_common.summarize_side` of each name's rounds (medians and
    per-round lists, per step and per image).
    """
    per = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                fn()
            per[name].append(
                {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
            )
    return {
        name: _common.summarize_side(r, steps * batch_size, steps)
        for name, r in per.items()
    }


def measure(preset, policy, args):
    step, model = _common.training_step(preset, policy, args.batch_size)
    graph = step.get_concrete_function().graph
    try:
        ops = compute_ops(graph)
    except HasLoop as e:
        return {"skipped": f"the training step has a loop ({e}); see the docstring"}
    fn, fn_args = compute_only_function(ops)

    def run_step():
        step().numpy()

    def run_compute():
        out = fn(*fn_args)
        out[-1].numpy()

    for _ in range(args.warmup):
        run_step()
        run_compute()
    timed = time_rounds(
        {"step": run_step, "compute_only": run_compute},
        args.steps,
        args.rounds,
        args.batch_size,
    )
    flops = sum(op["flops"] for op in ops)
    by_type = collections.Counter()
    count = collections.Counter()
    for op in ops:
        by_type[op["type"]] += op["flops"]
        count[op["type"]] += 1
    result = {
        "params": sum(math.prod(v.shape) for v in model.trainable_variables),
        "flops_per_step": flops,
        "gflop_per_image": round(flops / args.batch_size / 1e9, 4),
        "ops": {
            t: {"count": count[t], "gflop_per_step": round(by_type[t] / 1e9, 3)}
            for t in sorted(by_type)
        },
        "dtypes": sorted({op["dtype"] for op in ops}),
    }
    for name, t in timed.items():
        t["gflop_per_s"] = round(flops / t["s_per_step"] / 1e9, 1)
        t["gflop_per_cpu_s"] = round(flops / t["cpu_s_per_step"] / 1e9, 1)
        result[name] = t
    result["max_speedup_per_cpu_s"] = round(
        timed["step"]["cpu_s_per_step"] / timed["compute_only"]["cpu_s_per_step"], 3
    )
    result["max_speedup_wall"] = round(
        timed["step"]["s_per_step"] / timed["compute_only"]["s_per_step"], 3
    )
    return result


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    p.add_argument(
        "--policies",
        nargs="+",
        default=["float32", "mixed_bfloat16"],
        help="Keras dtype policies to measure each preset under",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--warmup", type=int, default=3, help="untimed calls of each")
    p.add_argument("--steps", type=int, default=5, help="calls per timed round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    for name in ("batch_size", "steps", "rounds"):
        if getattr(args, name) < 1:
            p.error(
                f"--{name.replace('_', '-')} must be >= 1. Received: {getattr(args, name)}"
            )
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0. Received: {args.warmup}")
    return args


def main(argv=None):
    args = parse_args(argv)
    env = _common.environment()
    results = {}
    for preset in args.presets:
        for policy in args.policies:
            print(f"[step_ceiling] {preset} {policy}", file=sys.stderr, flush=True)
            results.setdefault(preset, {})[policy] = measure(preset, policy, args)
    print(
        json.dumps(
            {
                "benchmark": "step_ceiling",
                "batch_size": args.batch_size,
                "warmup": args.warmup,
                "steps_per_round": args.steps,
                "rounds": args.rounds,
                "commit": _common.git_state(),
                "results": results,
                "environment": _common.finish_environment(env),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
