"""Where a training step's time goes: TensorFlow profiler, op types ranked.

Builds a `*_fashion_mnist` preset (untrained), runs `--warmup` training steps
(a `tf.function` with the model's own loss and the recipe's Adam), traces
`--steps` more with `tf.profiler`, and prints one JSON object: the summed
duration of every op type on TensorFlow's compute threads, per step, with its
share, the top op names, and the step's wall and process CPU time.

```
python benchmarks/profile_step.py --preset pixelcnn_fashion_mnist
python benchmarks/profile_step.py --preset gated_pixelcnn_fashion_mnist --policy mixed_bfloat16
```

Op durations are wall time on the thread that ran the op; ops overlap (two
inter-op threads, oneDNN's own parallelism), so the per-step sum exceeds the
step's wall time: read the shares, not the absolute numbers.
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="pixelcnn_fashion_mnist")
    p.add_argument("--policy", default="float32", help="Keras dtype policy")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args(argv)

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    env = _common.environment()
    step, _ = _common.training_step(args.preset, args.policy, args.batch_size)

    for _ in range(args.warmup):
        step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step().numpy()
    wall = (time.perf_counter() - t0) / args.steps
    cpu = (time.process_time() - c0) / args.steps

    trace_dir = tempfile.mkdtemp(prefix="pixel-keras-profile-")
    tf.profiler.experimental.start(trace_dir)
    for _ in range(args.steps):
        step().numpy()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    path = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)[0]
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    by_type, by_name = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name.startswith("ExecutorState::"):
                    continue  # The executor's frame around the ops.
                ms = event.duration_ps / 1e9 / args.steps
                by_type[name.rsplit(":", 1)[-1]] += ms
                by_name[name] += ms
    total = sum(by_type.values())
    print(
        json.dumps(
            {
                "benchmark": "profile_step",
                "preset": args.preset,
                "policy": args.policy,
                "batch_size": args.batch_size,
                "step_wall_s": round(wall, 4),
                "step_cpu_s": round(cpu, 4),
                "op_ms_per_step": round(total, 1),
                "top_op_types": [
                    {"op": k, "ms": round(v, 1), "share": round(v / total, 3)}
                    for k, v in by_type.most_common(args.top)
                ],
                "top_ops": [
                    {"op": k, "ms": round(v, 1)}
                    for k, v in by_name.most_common(args.top)
                ],
                "environment": _common.finish_environment(env),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
