"""Shared by the benchmark scripts: what machine a JSON was measured on, and
the machinery of `--compare REF`.

- `environment()` / `finish_environment(env)`: the CPU (model name, the
  SIMD/BF16/AMX flags that decide which kernels run, core counts), the load
  average at start and end, library versions, the Keras backend and TF's
  oneDNN setting. Every benchmark JSON carries this as `"environment"`.
- `git_state(root)`, `ref_checkout(ref)`: the commits compared, and another
  commit checked out in a temporary `git worktree` (removed on exit, also
  after an error or Ctrl-C).
- `Worker` (parent side) and `serve(handlers)` (worker side): one
  long-lived subprocess per side and model, importing `pixel_keras` from its
  own checkout (`PYTHONPATH` and `$PIXEL_KERAS_BENCH_ROOT`), driven one
  request at a time over stdin/stdout, so that rounds of the two sides truly
  alternate.
- `summarize_side`, `paired_ratios`: medians, and the current/ref ratio as
  the median of the ratios of adjacent (paired) rounds.

The scripts import this as `_common` (their directory is `sys.path[0]`).
Importing it imports neither pixel_keras nor TensorFlow.
"""

import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import traceback

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCHMARKS_DIR)  # the checkout these scripts belong to
ROOT_ENV = "PIXEL_KERAS_BENCH_ROOT"  # the checkout a worker benchmarks

# CPU flags (Linux /proc/cpuinfo names) that decide which kernels oneDNN,
# Eigen and XLA can use: AVX2/FMA, AVX-512, and native bf16 (AVX512_BF16,
# AMX). Each is reported present (true) or absent (false).
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512dq",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

# Environment variables that change how TF/oneDNN/Keras run on a CPU;
# reported with their value, or null when unset (TF_ENABLE_ONEDNN_OPTS is in
# `onednn()`).
PERF_ENV_VARS = (
    "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS",
    "TF_ONEDNN_USE_SYSTEM_ALLOCATOR",
    "ONEDNN_MAX_CPU_ISA",
    "ONEDNN_DEFAULT_FPMATH_MODE",
    "DNNL_MAX_CPU_ISA",
    "DNNL_DEFAULT_FPMATH_MODE",
    "OMP_NUM_THREADS",
    "KMP_AFFINITY",
    "KMP_BLOCKTIME",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_XLA_FLAGS",
    "XLA_FLAGS",
    "KERAS_BACKEND",
)


def package_root():
    """The checkout whose `pixel_keras` this process benchmarks.

    `$PIXEL_KERAS_BENCH_ROOT` (set for `--compare` workers), else the
    checkout holding this file.
    """
    return os.path.abspath(os.environ.get(ROOT_ENV) or ROOT)


def use_package_root():
    """Puts `package_root()` first on `sys.path`; returns it.

    In a `--compare` worker (`$PIXEL_KERAS_BENCH_ROOT` set) it also removes
    the import finders of editable installs (`pip install -e .`). Those sit
    on `sys.meta_path` after the normal path search, so a module that the
    worker's checkout lacks (say `pixel_keras.precision` in an old commit)
    would otherwise be imported from the checkout that was installed, and
    the two sides would no longer run their own code.
    """
    root = package_root()
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    if os.environ.get(ROOT_ENV):
        sys.meta_path[:] = [f for f in sys.meta_path if not _is_editable_finder(f)]
        sys.path_hooks[:] = [h for h in sys.path_hooks if not _is_editable_finder(h)]
        sys.path_importer_cache.clear()
    return root


def _is_editable_finder(finder):
    """True for setuptools' editable-install finders and path hooks."""
    module = getattr(finder, "__module__", None) or type(finder).__module__
    return module.startswith("__editable__")


# ---- environment -----------------------------------------------------------
def _lscpu():
    if not shutil.which("lscpu"):
        return {}
    try:
        out = subprocess.run(
            ["lscpu"],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "LC_ALL": "C"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _cgroup_cpu_limit():
    """The cgroup CPU quota in CPUs (cgroup v2 `cpu.max`, v1 cfs), or None."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else round(int(quota) / int(period), 2)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        return None if quota <= 0 else round(quota / period, 2)
    except (OSError, ValueError):
        return None


def cpu_info():
    """CPU model, vendor, the `CPU_FLAGS` present/absent, and core counts."""
    model = vendor = flags = None
    ids = {}  # cpu family/model/stepping: names the part if "model name" is generic
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            continue
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "vendor_id" and vendor is None:
            vendor = value.strip()
        elif key in ("flags", "Features") and flags is None:
            flags = set(value.split())
        elif key in ("cpu family", "model", "stepping") and key not in ids:
            ids[key] = value.strip()
    source = "/proc/cpuinfo"
    if model is None or flags is None:
        fields = _lscpu()
        model = model or fields.get("Model name")
        vendor = vendor or fields.get("Vendor ID")
        if flags is None and "Flags" in fields:
            flags = set(fields["Flags"].split())
        source = "lscpu" if fields else "platform"
    present = {
        name: (name in flags) if flags is not None else None for name in CPU_FLAGS
    }
    return {
        "model_name": model or platform.processor() or None,
        "vendor": vendor,
        "family_model_stepping": "/".join(
            ids.get(k, "?") for k in ("cpu family", "model", "stepping")
        )
        if ids
        else None,
        "machine": platform.machine(),
        "source": source,
        "flags": present,
        # Hardware bf16 arithmetic: without it, bf16 is emulated and rarely pays.
        "native_bf16": None
        if flags is None
        else bool(present["avx512_bf16"] or present["amx_bf16"]),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "cgroup_cpu_limit": _cgroup_cpu_limit(),
    }


def load_average():
    """The 1-, 5- and 15-minute load averages, or None where unavailable."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def versions():
    """Python and library versions (libraries that are not installed are left out)."""
    import keras

    out = {"python": sys.version.split()[0], "keras": keras.__version__}
    for module in ("tensorflow", "tensorflow_probability", "tf_keras", "jax", "numpy"):
        try:
            out[module] = __import__(module).__version__
        except ImportError:
            pass
    return out


def onednn():
    """TF's oneDNN setting: the env variable, and what TF reports in effect.

    `TF_ENABLE_ONEDNN_OPTS` unset means TF's default (on for x86 Linux since
    TF 2.9); `enabled` is TF's own answer (`IsMklEnabled`), null when
    TensorFlow is not loaded or does not say.
    """
    out = {"TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}
    enabled = intra = inter = None
    if "tensorflow" in sys.modules:
        try:
            from tensorflow.python.util import _pywrap_util_port

            enabled = bool(_pywrap_util_port.IsMklEnabled())
        except (ImportError, AttributeError):
            pass
        try:
            import tensorflow as tf

            intra = tf.config.threading.get_intra_op_parallelism_threads()
            inter = tf.config.threading.get_inter_op_parallelism_threads()
        except (ImportError, AttributeError):
            pass
    out["enabled"] = enabled
    # 0 = TF picks (one thread per core); set by tf.config.threading.
    out["intra_op_threads"] = intra
    out["inter_op_threads"] = inter
    return out


def environment():
    """What the numbers were measured on; call at the start of a run."""
    import keras

    return {
        "cpu": cpu_info(),
        "load_avg_at_start": load_average(),
        "platform": platform.platform(),
        "backend": keras.backend.backend(),
        "versions": versions(),
        "onednn": onednn(),
        "env": {name: os.environ.get(name) for name in PERF_ENV_VARS},
    }


def finish_environment(env):
    """Adds the load average at the end of the run to `env`; returns `env`."""
    env["load_avg_at_end"] = load_average()
    return env


# ---- git -------------------------------------------------------------------
class CompareError(Exception):
    """`--compare` cannot run (a bad REF, no git checkout, ...)."""


def _git(*args, cwd=ROOT):
    try:
        done = subprocess.run(
            ["git", "-C", cwd, *args], capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise CompareError(f"git {' '.join(args)} failed: {e}") from e
    if done.returncode != 0:
        raise CompareError(
            f"git {' '.join(args)} failed: {done.stderr.strip() or done.returncode}"
        )
    return done.stdout


def git_state(root=ROOT):
    """HEAD of `root` and its uncommitted changes to the package.

    `uncommitted` lists `git status --porcelain -- pixel_keras` lines (the
    working tree is what gets measured, not HEAD); `diff_sha256` hashes
    `git diff HEAD -- pixel_keras`, to tell two dirty states apart.
    """
    try:
        sha = _git("rev-parse", "HEAD", cwd=root).strip()
        status = _git("status", "--porcelain", "--", "pixel_keras", cwd=root)
        diff = _git("diff", "HEAD", "--", "pixel_keras", cwd=root)
    except CompareError as e:
        return {"root": root, "sha": None, "error": str(e)}
    return {
        "root": root,
        "sha": sha,
        "uncommitted": status.splitlines(),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
    }


def resolve_commit(ref):
    """The full SHA of commit `ref` in this checkout; CompareError if none."""
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except CompareError as e:
        raise CompareError(
            f"--compare needs a commit of the repository at {ROOT} (a branch, tag "
            f"or SHA). Received: --compare {ref!r}"
        ) from e


def _registered_worktrees():
    try:
        out = _git("worktree", "list", "--porcelain")
    except CompareError:
        return []
    return [
        line.split(" ", 1)[1]
        for line in out.splitlines()
        if line.startswith("worktree ")
    ]


@contextlib.contextmanager
def ref_checkout(ref):
    """Checks out commit `ref` in a temporary git worktree (detached HEAD).

    Yields `{"ref", "sha", "root"}`. The worktree is removed on exit, also
    after an exception, Ctrl-C or SIGTERM (turned into SystemExit here).
    """
    sha = resolve_commit(ref)
    tmp = tempfile.mkdtemp(prefix="pixel-keras-compare-")
    path = os.path.join(tmp, "ref")
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        _git("worktree", "add", "--detach", path, sha)
        yield {"ref": ref, "sha": sha, "root": path}
    finally:
        subprocess.run(
            ["git", "-C", ROOT, "worktree", "remove", "--force", path],
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)
        real = os.path.realpath(path)
        if any(os.path.realpath(p) == real for p in _registered_worktrees()):
            # Its directory is gone now; this drops the stale registration.
            subprocess.run(
                ["git", "-C", ROOT, "worktree", "prune"], capture_output=True
            )
        signal.signal(signal.SIGTERM, previous)


# ---- worker processes ------------------------------------------------------
REPLY_PREFIX = "@@pixel-keras-bench "  # marks protocol lines on a worker's stdout


class WorkerError(Exception):
    """A worker died or answered a request with an error."""


class Worker:
    """A long-lived `python SCRIPT --worker` benchmarking the checkout `root`.

    `request(cmd, **fields)` sends one JSON line and returns the reply dict;
    a reply with `ok: false` raises WorkerError with the worker's error.
    The worker's stderr goes to ours.
    """

    def __init__(self, script, root, label):
        self.label = label
        self.root = os.path.abspath(root)
        pythonpath = os.environ.get("PYTHONPATH")
        env = {
            **os.environ,
            "PYTHONPATH": self.root + (os.pathsep + pythonpath if pythonpath else ""),
            ROOT_ENV: self.root,
            "PIXEL_KERAS_BENCH_LABEL": label,
        }
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(script), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=self.root,
            env=env,
            text=True,
            bufsize=1,
        )

    def request(self, cmd, **fields):
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise WorkerError(f"{self.label} worker is gone: {e}") from e
        while True:
            line = self.proc.stdout.readline()
            if not line:
                status = self.proc.wait()
                raise WorkerError(
                    f"{self.label} worker exited (status {status}) during {cmd!r}"
                )
            if line.startswith(REPLY_PREFIX):
                break
            sys.stderr.write(line)  # stray output of a library
        reply = json.loads(line[len(REPLY_PREFIX) :])
        if not reply.get("ok"):
            raise WorkerError(f"{self.label}: {reply.get('error')}")
        return reply

    def close(self, kill=False):
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
                self.proc.wait()
                return
            try:
                self.proc.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def workers(script, roots):
    """`{side: Worker}` for `{side: root}`; all are closed on exit."""
    started = {}
    try:
        for side, root in roots.items():
            started[side] = Worker(script, root, side)
        yield started
    except BaseException:
        for worker in started.values():
            worker.close(kill=True)
        raise
    else:
        for worker in started.values():
            worker.close()


def check_package_root():
    """The `pixel_keras` a worker imported; WorkerError if it, or any of its
    modules imported so far, does not come from the worker's checkout."""
    import pixel_keras

    root = package_root()
    for name, module in sorted(sys.modules.items()):
        if name != "pixel_keras" and not name.startswith("pixel_keras."):
            continue
        where = getattr(module, "__file__", None)
        if where and not os.path.abspath(where).startswith(root + os.sep):
            raise WorkerError(
                f"imported {name} from {os.path.abspath(where)}, not from the "
                f"checkout {root}"
            )
    return os.path.abspath(pixel_keras.__file__)


def serve(handlers):
    """Worker main loop: one JSON request per stdin line, one reply per request.

    `handlers[cmd](request) -> dict` answers each request; `{"cmd": "exit"}`
    or end of input stops. File descriptor 1 is pointed at stderr first, so
    that only replies reach the parent on the original stdout.
    """
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        request = json.loads(line)
        if request.get("cmd") == "exit":
            return
        try:
            reply = {"ok": True, **handlers[request["cmd"]](request)}
        except Exception as e:  # reported to the parent, which goes on
            reply = {
                "ok": False,
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
            }
            print(reply["traceback"], file=sys.stderr, flush=True)
        replies.write(REPLY_PREFIX + json.dumps(reply) + "\n")


# ---- statistics ------------------------------------------------------------
def summarize_side(rounds, images_per_round, steps_per_round=None):
    """Medians and per-round lists for one side's `[{"wall_s", "cpu_s"}]`.

    `steps_per_round` adds per-step fields (training); images/s and images
    per CPU-second are always given.
    """
    wall = statistics.median(r["wall_s"] for r in rounds)
    cpu = statistics.median(r["cpu_s"] for r in rounds)
    out = {
        "images_per_s": round(images_per_round / wall, 3),
        "images_per_cpu_s": round(images_per_round / cpu, 3) if cpu > 0 else None,
        "images_per_s_per_round": [
            round(images_per_round / r["wall_s"], 3) for r in rounds
        ],
    }
    if steps_per_round:
        out["s_per_step"] = round(wall / steps_per_round, 5)
        out["cpu_s_per_step"] = round(cpu / steps_per_round, 5)
        out["cpu_s_per_step_per_round"] = [
            round(r["cpu_s"] / steps_per_round, 5) for r in rounds
        ]
    else:
        out["s_per_round"] = round(wall, 4)
        out["cpu_s_per_round"] = [round(r["cpu_s"], 4) for r in rounds]
    return out


def paired_ratios(current, ref):
    """current/ref speed ratios from adjacent rounds (same work per round).

    Round i of each side forms pair i (they ran back to back). Returns the
    median and per-pair ratios of images/s (ref wall / current wall) and of
    images per CPU-second (ref CPU / current CPU); > 1 means current is
    faster.
    """
    pairs = list(zip(current, ref))
    wall = [r["wall_s"] / c["wall_s"] for c, r in pairs]
    cpu = [r["cpu_s"] / c["cpu_s"] for c, r in pairs if c["cpu_s"] > 0]
    return {
        "ratio_images_per_s": round(statistics.median(wall), 4),
        "ratio_images_per_cpu_s": round(statistics.median(cpu), 4) if cpu else None,
        "ratio_images_per_s_per_pair": [round(v, 4) for v in wall],
        "ratio_images_per_cpu_s_per_pair": [round(v, 4) for v in cpu],
    }


def read_preset_config(name, root=ROOT):
    """`zoo/<name>/config.json` of checkout `root`: `{"model", "config"}`."""
    path = os.path.join(root, "zoo", name, "config.json")
    try:
        with open(path) as f:
            preset = json.load(f)
    except OSError as e:
        raise ValueError(f"No preset {name!r}: cannot read {path} ({e})") from e
    if not isinstance(preset.get("model"), str) or not isinstance(
        preset.get("config"), dict
    ):
        raise ValueError(
            f"{path} must hold {{'model': <name>, 'config': {{...}}}}. "
            f"Received keys: {sorted(preset)}"
        )
    return preset


def model_class(registry_name):
    """The pixel_keras model class for a registry name, on whichever side."""
    try:
        from pixel_keras.models.registry import get_model_class
    except ImportError as e:
        raise WorkerError(
            f"this pixel_keras has no models.registry.get_model_class ({e})"
        ) from e
    return get_model_class(registry_name)


def training_step(preset, policy, batch_size, seed=0):
    """A preset's training step as a `tf.function`, for the profilers.

    Builds `preset` untrained (`zoo.load(preset, weights=False)`) under the
    Keras dtype policy `policy`, on one fixed batch of `batch_size` uniform
    random images (class labels 0 for a conditional preset): the model's own
    loss, the recipe's Adam, gradients through `tf.GradientTape`. The data
    do not change the work a step does. Returns `(step, model)`; `step()`
    runs one step and returns the loss. Imports TensorFlow and pixel_keras.
    """
    import numpy as np
    import tensorflow as tf

    from pixel_keras import optimizers, precision, zoo

    with precision.policy_scope(policy):
        model = zoo.load(preset, weights=False)
    images = np.random.RandomState(seed).randint(
        0, model.num_levels, (batch_size, *model.image_shape)
    )
    x = tf.constant(images, tf.int32)
    inputs = x
    if "class_label" in model.condition_names:
        inputs = {"images": x, "class_label": tf.zeros([batch_size], tf.int32)}
    model.compile(optimizer=optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    loss_fn = model.loss

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(x, model(inputs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply(grads, model.trainable_variables)
        return loss

    return step, model
