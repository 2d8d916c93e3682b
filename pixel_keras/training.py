"""Training runs: distribution strategy, data, checkpoints, bits/dim.

`train()` is the one entry point behind `pixel-keras train`:

```
strategy = get_strategy("auto")           # Mirrored over GPUs, else default
with strategy.scope():
    model = make_model(name, image_shape=..., num_levels=..., **config)
    model.compile(keras.optimizers.Adam(learning_rate))   # NLL (nats/image)
model.fit(train (x, images) pairs, validation_data=test pairs,
          callbacks=[TensorBoard, RunMonitor])   # RunMonitor, per epoch:
              # print test bits/dim, write samples/epoch_XXX.png,
              # save checkpoints/epoch_XXX.keras and commit state.json
```

Every model of `pixel_keras.models.registry.MODELS` trains this way
(`"pixelcnn"`, `"row_lstm"`, `"diagonal_bilstm"`, `"gated_pixelcnn"`). The
architecture comes from a name plus keyword arguments, or from a zoo preset
(`train(preset="pixelcnn_digits")`: its config, with single arguments
overridden; its image shape and levels must be the data set's).

A class-conditional model (`gated_pixelcnn` with `num_classes`) is fed
`x = {"images": images, "class_label": labels}` with the data set's labels,
in training and in `evaluate`; its per-epoch sample grid draws the labels
0, 1, ..., num_classes - 1 in turn, one column per class.

A run directory holds

```
out_dir/
  config.json                 model name + config, training arguments, versions
  state.json                  the commit point: {"epoch", "checkpoint", "sha256", ...}
  checkpoints/epoch_XXX.keras full model: weights, optimizer state, compile config
  samples/epoch_XXX.png       sample grid after each epoch (same seed every epoch)
  logs/                       TensorBoard
```

Checkpoints are crash safe. Every file is written to a temporary name in its
final directory, flushed with `fsync`, and moved into place with
`os.replace` (atomic on POSIX). `state.json` is written last and names the
checkpoint it belongs to, with its SHA-256: a run killed at any moment leaves
either the previous state or the new one, never a half-written checkpoint.
Stray temporary files from a killed save are removed at the next start, and
older checkpoints are deleted only after the new state is committed.

`state.json` is written when a run starts, committing epoch 0 (no
checkpoint), so that every checkpoint in the directory is accounted for: a
kill between a checkpoint's rename and its commit leaves only the committed
epoch + 1, which the next start deletes and trains again.
`config.json` and `state.json` carry `"tool": "pixel-keras"`: `overwrite`
deletes only a directory recognised by them (`is_run_dir`), and in it only
the files listed above. `resume` refuses a directory whose checkpoints its
`state.json` does not account for. A `TrainingGuard` stops a run whose loss
becomes NaN or infinite (`TrainingDivergedError`) or whose epoch had no
steps, before that epoch is committed. A run directory is locked (`flock`)
while a run writes to it.

The batch size is global: a strategy with R replicas gives each replica
`batch_size / R` images per step.

This module drives `tf.distribute` on the TensorFlow backend. Under
`KERAS_BACKEND=jax`, `get_strategy()` returns a `keras.distribution`
`DataParallel` distribution instead (and installs it with
`keras.distribution.set_distribution`); `train()` works the same way, with
`tf.data` only as the input pipeline. TensorFlow is imported lazily.

NOTE: Keras 3.15's `fit` does not run under a multi-worker
`tf.distribute.MultiWorkerMirroredStrategy` (two bugs in
`keras/src/backend/tensorflow/trainer.py`; see `docs/distributed.md`).
`train(strategy="multi_worker")` applies a narrow, documented shim for them
(`_MultiWorkerShim`); nothing else is patched.
"""

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import time

import keras
import numpy as np

from pixel_keras import optimizers
from pixel_keras import precision as precision_module
from pixel_keras.images import image_grid, save_image_grid

# Model name -> class (pixel_keras.models.registry). Every class takes
# `image_shape` and `num_levels` plus its own keyword arguments, and is
# registered with Keras serialization.
from pixel_keras.models.base import check_batch_size
from pixel_keras.models.registry import MODELS
from pixel_keras.zoo import sha256

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"
LOGS_DIR = "logs"
_TMP_TAG = ".tmp-"
_STATE_FORMAT = 1
# Written into config.json and state.json: `--overwrite` deletes only
# directories that carry it (or the keys of runs written before it existed).
TOOL = "pixel-keras"
_LEGACY_CONFIG_KEYS = ("model", "model_config", "dataset", "num_levels", "train_split")
_LEGACY_STATE_KEYS = ("format", "epoch", "checkpoint", "size", "sha256")
_CHECKPOINT_NAME = re.compile(r"epoch_(\d{3,})\.keras")
_SAMPLE_NAME = re.compile(r"epoch_\d{3,}\.png")
# `_tmp_path` names: `.NAME.tmp-PID-RANDOM[.keras]`, for the files `train`
# writes; `images.save_image_grid` writes `PATH.tmp-PID.png` and renames it.
_TMP_NAME = re.compile(r"\.(config\.json|state\.json|epoch_\d{3,}\.keras)\.tmp-\d+-.+")
_SAMPLE_TMP_NAME = re.compile(r"epoch_\d{3,}\.png\.tmp-\d+\.png")
# The TensorBoard subdirectories train writes (callbacks; sample grids).
_LOG_RUNS = ("train", "validation", SAMPLES_DIR)


class TrainingDivergedError(FloatingPointError):
    """The training loss (or a logged metric) became NaN or infinite.

    `train` stops at once and commits nothing for the epoch: the run
    directory keeps its last committed checkpoint (`pixel-keras train` exits
    with status 1).
    """


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def make_model(model="pixelcnn", *, image_shape, num_levels, **config):
    """Builds a registered model by name.

    Args:
        model: a key of `MODELS` (`"pixelcnn"`, `"row_lstm"`,
            `"diagonal_bilstm"`, `"gated_pixelcnn"`).
        image_shape: `(height, width, channels)`.
        num_levels: values per sub-pixel.
        **config: the model class's own arguments (`hidden_maps`, ...; see
            `model_arguments(model)`).

    Returns:
        The model (uncompiled).

    Raises:
        ValueError: for an unknown model name or bad arguments.
    """
    if model not in MODELS:
        raise ValueError(
            f"Unknown model {model!r}. Available: {', '.join(sorted(MODELS))}"
        )
    cls = MODELS[model]
    allowed = model_arguments(model)
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        # Keras models swallow unknown keyword arguments: refuse typos here.
        raise ValueError(
            f"Unknown argument(s) for model {model!r}: {', '.join(unknown)}. "
            f"Available: {', '.join(allowed)}"
        )
    return cls(image_shape=tuple(image_shape), num_levels=num_levels, **config)


def model_arguments(model="pixelcnn"):
    """The architecture arguments a registered model takes (besides the data's)."""
    import inspect

    if model not in MODELS:
        raise ValueError(
            f"Unknown model {model!r}. Available: {', '.join(sorted(MODELS))}"
        )
    parameters = inspect.signature(MODELS[model].__init__).parameters.values()
    return [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in ("self", "image_shape", "num_levels")
    ]


def model_name(model):
    """The `MODELS` key of a model instance (or its class name)."""
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    return type(model).__name__


def is_class_conditional(model):
    """Whether `model` takes a `class_label` input, fed from the data's labels.

    Raises:
        ValueError: if the model needs conditions other than `class_label`
            (`condition`, `condition_map`), which a data set does not hold.
    """
    names = tuple(getattr(model, "condition_names", ()))
    others = [name for name in names if name != "class_label"]
    if others:
        raise ValueError(
            f"Training and evaluation feed images and class labels only; "
            f"this {type(model).__name__} also needs {', '.join(others)}. "
            f"Received: condition_names={names}"
        )
    return "class_label" in names


def sample_class_labels(model, num_samples):
    """Labels 0, 1, ..., K-1, 0, 1, ... for a class-conditional model, else None.

    With the grid's column count set to K (`sample_grid_columns`), every
    column of a sample grid shows one class.
    """
    if not is_class_conditional(model):
        return None
    return np.arange(num_samples, dtype="int32") % model.num_classes


def sample_grid_columns(model, num_samples):
    """Grid columns: one per class for a class-conditional model, else None."""
    if not is_class_conditional(model):
        return None
    return max(1, min(num_samples, model.num_classes))


def preset_architecture(preset, image_shape=None, num_levels=None, dataset=None):
    """The model name and arguments of a zoo preset, for `make_model`/`train`.

    Args:
        preset: a preset name (`zoo.list()`), a preset directory, or a
            `zoo.Preset`.
        image_shape, num_levels: the data set's; when given, the preset's
            must be the same.
        dataset: the data set's name, for the error message.

    Returns:
        `(name, config)`: the registry name and the preset's model
        arguments without `image_shape` and `num_levels`.

    Raises:
        ValueError: an unknown preset (listing the available ones), or a
            preset made for other images.
    """
    from pixel_keras import zoo

    if not isinstance(preset, zoo.Preset):
        preset = zoo.get_preset(preset)
    config = dict(preset.config)
    preset_shape = config.pop("image_shape", None)
    preset_levels = config.pop("num_levels", None)
    mismatch = (
        image_shape is not None
        and preset_shape is not None
        and tuple(preset_shape) != tuple(image_shape)
    ) or (
        num_levels is not None
        and preset_levels is not None
        and preset_levels != num_levels
    )
    if mismatch:
        data_name = f"data set {dataset!r}" if dataset else "the data set"
        raise ValueError(
            f"Preset {preset.name!r} is for images {tuple(preset_shape or ())} "
            f"with {preset_levels} levels; {data_name} has "
            f"{tuple(image_shape or ())} with {num_levels} levels. Pick a "
            "preset made for this data set (`pixel-keras zoo list`), or "
            "choose the architecture without a preset."
        )
    return preset.model, config


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


def get_strategy(name="auto"):
    """Returns the distribution strategy for `name`.

    TensorFlow backend (`tf.distribute`):

    - `"auto"`: `MirroredStrategy` over all visible GPUs when there is at
      least one, else the default (single-device) strategy.
    - `"default"`: the default strategy (`tf.distribute.get_strategy()`).
    - `"mirrored"`: `MirroredStrategy` over all local GPUs or, without
      GPUs, over the logical CPU devices (one, unless the CPU was split with
      `tf.config.set_logical_device_configuration`).
    - `"multi_worker"`: `MultiWorkerMirroredStrategy`, configured from the
      `TF_CONFIG` environment variable. Create it at program start, before
      other TensorFlow work.

    JAX backend (`keras.distribution`): `"auto"` and `"mirrored"` give a
    `keras.distribution.DataParallel` over `keras.distribution.list_devices()`
    (for `"auto"` only when there are several devices) and install it with
    `keras.distribution.set_distribution`; `"default"` returns None (no
    distribution). `"multi_worker"` first calls
    `keras.distribution.initialize()`, which reads the
    `KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES` and
    `KERAS_DISTRIBUTION_PROCESS_ID` environment variables.

    A `tf.distribute.Strategy` or `keras.distribution.Distribution` instance
    is returned as it is.

    Raises:
        ValueError: for an unknown name.
    """
    if not isinstance(name, str):
        if keras.backend.backend() == "jax" and isinstance(
            name, keras.distribution.Distribution
        ):
            keras.distribution.set_distribution(name)
        return name
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}. Available: {', '.join(STRATEGIES)}"
        )
    if keras.backend.backend() == "jax":
        return _jax_distribution(name)
    import tensorflow as tf

    if name == "multi_worker":
        # Before anything initializes the TensorFlow runtime (listing
        # logical devices does): collectives must be configured first.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return (
            tf.distribute.MirroredStrategy() if gpus else tf.distribute.get_strategy()
        )
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def _jax_distribution(name):
    if name == "default":
        return None
    if name == "multi_worker":
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    if name == "auto" and len(devices) < 2:
        return None
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return distribution


def strategy_scope(strategy):
    """The context in which to build a model for `strategy` (or None)."""
    if strategy is None:
        return contextlib.nullcontext()
    return strategy.scope()


def num_replicas(strategy):
    """Replicas that share one global batch."""
    if strategy is None:
        return 1
    if hasattr(strategy, "num_replicas_in_sync"):
        return strategy.num_replicas_in_sync
    return len(strategy.device_mesh.devices.flatten())


def _is_multi_worker(strategy):
    if keras.backend.backend() != "tensorflow" or strategy is None:
        return False
    import tensorflow as tf

    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def is_chief(strategy=None):
    """Whether this process writes files (checkpoints, logs, samples).

    Under a multi-worker `tf.distribute` strategy the chief is task "chief",
    or worker 0 when the cluster has no "chief" job; under JAX it is process
    0. Single-process runs are always chief.
    """
    if keras.backend.backend() == "jax":
        import jax

        return jax.process_index() == 0
    if not _is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    jobs = resolver.cluster_spec().jobs
    return task_type == "worker" and task_id == 0 and "chief" not in jobs


class _MultiWorkerShim:
    """Works around two Keras 3.15 bugs that stop `fit` under multi-worker MWMS.

    Both are in `keras/src/backend/tensorflow/trainer.py` (details and
    reproduction in `docs/distributed.md`):

    1. `TensorFlowTrainer._maybe_symbolic_build` reduces the whole first
       batch, a nested `(x, y)` structure of `PerReplica` values, with one
       `strategy.reduce("MEAN", batch, axis=None)`. `MirroredStrategy` maps
       over the structure; `CollectiveAllReduceExtended._reduce_to` does not,
       so `fit` fails with "Attempt to convert a value (PerReplica...) with an
       unsupported type". The batch is only needed for its shapes: the shim
       builds from the first local replica's values instead.
    2. `reduce_per_replica(..., reduction="mean")` reduces with
       `strategy.reduce("MEAN", v, axis=0)` in multi-worker mode, which fails
       on the scalar losses and metrics a train step returns ("Invalid
       reduction dimension 0 for input with 0 dimensions"). The single-worker
       branch of the same function takes the element-wise mean over
       replicas, which is `strategy.reduce("MEAN", v, axis=None)`; the shim
       uses that for multi-worker "mean"/"auto" reductions and leaves every
       other call to the original function.
    """

    _installed = False

    @classmethod
    def apply(cls, model, strategy):
        from keras.src.backend.tensorflow import trainer as tf_trainer

        if not all(
            hasattr(obj, attr)
            for obj, attr in (
                (tf_trainer, "reduce_per_replica"),
                (tf_trainer, "_collective_all_reduce_multi_worker"),
                (model, "_maybe_symbolic_build"),
                (model, "_symbolic_build"),
            )
        ):
            raise RuntimeError(
                "This Keras version changed the trainer internals that the "
                "multi-worker shim of pixel_keras.training relies on "
                f"(keras {keras.__version__}); see docs/distributed.md."
            )
        import tensorflow as tf

        def maybe_symbolic_build(iterator=None, data_batch=None):
            if iterator is not None:
                for _, _, it in iterator:
                    batch = next(it)
                    data_batch = tf.nest.map_structure(
                        lambda v: (
                            strategy.experimental_local_results(v)[0]
                            if isinstance(v, tf.distribute.DistributedValues)
                            else v
                        ),
                        batch,
                    )
                    break
            with strategy.scope():
                model._symbolic_build(data_batch=data_batch)

        model._maybe_symbolic_build = maybe_symbolic_build

        if cls._installed:
            return
        original = tf_trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction in ("auto", "mean") and (
                tf_trainer._collective_all_reduce_multi_worker(strategy)
            ):
                return tf.nest.map_structure(
                    lambda v: strategy.reduce("MEAN", v, axis=None), values
                )
            return original(values, strategy, reduction)

        tf_trainer.reduce_per_replica = reduce_per_replica
        cls._installed = True


def _all_workers_agree(strategy, flag):
    """True if `flag` is true on any worker (a collective; call on all)."""
    if keras.backend.backend() == "jax":
        import jax

        if jax.process_count() == 1:
            return bool(flag)
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.array(bool(flag)))
        return bool(np.any(flags))
    if not _is_multi_worker(strategy):
        return bool(flag)
    import tensorflow as tf

    total = strategy.reduce("SUM", tf.constant(1.0 if flag else 0.0), axis=None)
    return float(total) > 0


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def check_data_fits_model(model, info, dataset):
    """Raises ValueError unless data set `info` has the model's images and levels.

    Args:
        model: a model with `image_shape` and `num_levels`.
        info: the data set's `pixel_keras.data.get_info(...)`.
        dataset: its name, for the message.
    """
    if tuple(model.image_shape) != tuple(info.image_shape) or (
        model.num_levels != info.num_levels
    ):
        raise ValueError(
            f"The model expects images {tuple(model.image_shape)} with "
            f"{model.num_levels} levels; {dataset!r} has "
            f"{tuple(info.image_shape)} with {info.num_levels}. Received: "
            f"dataset={dataset!r}"
        )


def make_dataset(
    dataset,
    split,
    batch_size,
    *,
    shuffle=False,
    repeat=False,
    seed=None,
    data_dir=None,
    shuffle_buffer=10_000,
    class_labels=False,
):
    """Batched `tf.data` of `(x, images)` pairs, images int32.

    `x` is the images, or with `class_labels=True` the dict
    `{"images": images, "class_label": labels}` (int32 `[B]`, the data
    set's labels) that class-conditional models take.

    Args:
        dataset: a name for `pixel_keras.data.load`.
        split: e.g. `"train"`, `"test[:1000]"`.
        batch_size: global batch size (the last batch may be smaller).
        shuffle: shuffle examples (reshuffled every epoch) with `seed`.
        repeat: repeat forever (for a fixed `steps_per_epoch`).
        seed: shuffle seed.
        data_dir: passed to `data.load`.
        shuffle_buffer: shuffle buffer size.
        class_labels: also feed the labels as the `class_label` input.

    Raises:
        ValueError: a bad batch size, or `class_labels` for a data set
            without labels.
    """
    import tensorflow as tf

    from pixel_keras import data

    check_batch_size(batch_size)
    ds = data.load(dataset, split, data_dir=data_dir)
    if class_labels and "labels" not in ds.element_spec:
        raise ValueError(
            f"A class-conditional model needs labels, and data set {dataset!r} "
            "has none. Train an unconditional model (no `num_classes`)."
        )

    def inputs(example):
        images = tf.cast(example["images"], tf.int32)
        if not class_labels:
            return images
        return {"images": images, "class_label": tf.cast(example["labels"], tf.int32)}

    ds = ds.map(inputs, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    if class_labels:
        ds = ds.map(lambda x: (x, x["images"]))
    else:
        ds = ds.map(lambda x: (x, x))
    return ds.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------
# Atomic files and checkpoints
# ---------------------------------------------------------------------------


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # Some file systems cannot sync directories.
    finally:
        os.close(fd)


def _tmp_path(path, suffix=""):
    directory, base = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{base}{_TMP_TAG}{os.getpid()}-", suffix=suffix, dir=directory
    )
    os.close(fd)
    return tmp


def _file_mode():
    """0o666 less the process umask: the mode `open()` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _commit(tmp, path):
    """fsyncs `tmp`, renames it to `path` atomically, fsyncs the directory."""
    os.chmod(tmp, _file_mode())  # mkstemp creates files 0600.
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_json_atomic(path, obj):
    """Writes `obj` as JSON to `path`; readers see the old or the new file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
        _commit(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def save_model_atomic(model, path):
    """`model.save(path)` (a `.keras` file) without ever exposing a partial file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = _tmp_path(path, suffix=".keras")  # Keras wants the suffix.
    try:
        model.save(tmp, overwrite=True)
        _commit(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


def _remove_quietly(path):
    with contextlib.suppress(OSError):
        os.remove(path)


def _is_temp_file(directory, name):
    """Whether `name` is a temporary file `train` writes (see `_tmp_path`)."""
    if os.path.basename(directory) == SAMPLES_DIR:
        return bool(_SAMPLE_TMP_NAME.fullmatch(name))
    return bool(_TMP_NAME.fullmatch(name))


def remove_stray_temp_files(run_dir):
    """Deletes temporary files a killed save left in a run directory.

    Returns:
        The removed paths.
    """
    removed = []
    for directory in (
        run_dir,
        os.path.join(run_dir, CHECKPOINT_DIR),
        os.path.join(run_dir, SAMPLES_DIR),
    ):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if _is_temp_file(directory, name) and os.path.isfile(path):
                _remove_quietly(path)
                removed.append(path)
    return removed


def read_state(run_dir):
    """The committed state of a run, or None if it has no checkpoint yet.

    None when there is no `state.json`, or when it commits epoch 0 (no
    checkpoint: what `train` writes when it starts a run).

    Raises:
        ValueError: if `state.json` is unreadable or its checkpoint does not
            match the recorded size and SHA-256.
        FileNotFoundError: if the checkpoint it names is missing.
    """
    state_path = os.path.join(run_dir, STATE_FILE)
    if not os.path.exists(state_path):
        return None
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        epoch = int(state["epoch"])
        if epoch == 0 and state["checkpoint"] is None:
            return None
        checkpoint = os.path.join(run_dir, state["checkpoint"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"Unreadable run state {state_path}: {e!r}") from e
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(
            f"{state_path} names checkpoint {checkpoint}, which does not exist."
        )
    if os.path.getsize(checkpoint) != state.get("size") or sha256(
        checkpoint
    ) != state.get("sha256"):
        raise ValueError(
            f"Checkpoint {checkpoint} does not match the size/SHA-256 recorded "
            f"in {state_path}; it was modified after it was written."
        )
    state["epoch"] = epoch
    state["checkpoint_path"] = checkpoint
    return state


def _write_initial_state(run_dir):
    """Commits epoch 0 (no checkpoint) in `state.json`, when a run starts.

    From then on every checkpoint in the directory is accounted for: one
    newer than the committed epoch + 1, or any checkpoint without a
    `state.json`, was not written by this run (or its state was lost).
    """
    state = {
        "tool": TOOL,
        "format": _STATE_FORMAT,
        "epoch": 0,
        "checkpoint": None,
        "history": [],
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(os.path.join(run_dir, STATE_FILE), state)
    return state


def save_checkpoint(model, run_dir, epoch, history=(), extra=None, keep=1):
    """Saves `model` as checkpoint `epoch` and commits it in `state.json`.

    Order: checkpoint file (atomic), then `state.json` (atomic, the commit
    point), then deletion of older checkpoints beyond the newest `keep`.

    Returns:
        The state dict written.
    """
    relative = os.path.join(CHECKPOINT_DIR, f"epoch_{epoch:03d}.keras")
    path = save_model_atomic(model, os.path.join(run_dir, relative))
    state = {
        "tool": TOOL,
        "format": _STATE_FORMAT,
        "epoch": epoch,
        "checkpoint": relative,
        "size": os.path.getsize(path),
        "sha256": sha256(path),
        "history": list(history),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    write_json_atomic(os.path.join(run_dir, STATE_FILE), state)
    checkpoints = [
        name for e, name in sorted(checkpoint_files(run_dir).items()) if e <= epoch
    ]
    keep_names = set(checkpoints[-max(1, keep) :]) | {os.path.basename(relative)}
    for name in checkpoints:
        if name not in keep_names:
            _remove_quietly(os.path.join(run_dir, CHECKPOINT_DIR, name))
    return state


def checkpoint_files(run_dir):
    """`{epoch: file name}` of the `epoch_XXX.keras` files in `run_dir/checkpoints`."""
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        return {}
    found = {}
    for name in os.listdir(directory):
        match = _CHECKPOINT_NAME.fullmatch(name)
        if match and os.path.isfile(os.path.join(directory, name)):
            found[int(match.group(1))] = name
    return found


def load_checkpoint(path, compile=False, ema=True):
    """Loads a model from a run directory (its latest checkpoint) or a `.keras` file.

    With `ema=True` (default) and a checkpoint of a run that averaged its
    weights (`train(ema_momentum=...)`), the model holds the averaged
    weights: what `evaluate`, `sample` and published presets use.

    Raises:
        FileNotFoundError: if there is no such file or no checkpoint yet.
        ValueError: for a corrupt checkpoint or an unsupported file.
    """
    if os.path.isdir(path):
        state = read_state(path)
        if state is None:
            raise FileNotFoundError(
                f"No checkpoint in {path} (no {STATE_FILE} committing one); "
                "train first."
            )
        path = state["checkpoint_path"]
    elif not os.path.exists(path):
        raise FileNotFoundError(f"No such checkpoint file or run directory: {path}")
    elif not path.endswith(".keras"):
        raise ValueError(
            f"A checkpoint must be a run directory or a `.keras` file. Received: {path}"
        )
    import zipfile

    import pixel_keras.models  # noqa: F401  (registers the model classes)
    import pixel_keras.optimizers  # noqa: F401  (registers the recipe's Adam)

    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Checkpoint {path} is corrupt or unreadable: a `.keras` file must "
            "be a zip archive written by `model.save`, and this one is not."
        )
    try:
        model = keras.saving.load_model(path, compile=compile or ema)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"Checkpoint {path} is corrupt or unreadable: {e}") from e
    optimizer = getattr(model, "optimizer", None)
    if ema and optimizer is not None and optimizer.use_ema and optimizer.built:
        optimizer.finalize_variable_values(model.trainable_variables)
    return model


def read_config(run_dir):
    """The `config.json` of a run directory, or None if there is none.

    Raises:
        ValueError: if it is not valid JSON (the message names the file).
    """
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"Unreadable run config {path}: {e}") from e
    if not isinstance(config, dict):
        raise ValueError(
            f"Unreadable run config {path}: expected a JSON object. "
            f"Received: {type(config).__name__}"
        )
    return config


# ---------------------------------------------------------------------------
# Per-epoch work
# ---------------------------------------------------------------------------


class TrainingGuard(keras.callbacks.Callback):
    """Stops a run whose loss is NaN or infinite, or whose epoch had no steps.

    Checks the loss after every training step and every logged value at
    the end of every epoch, before `RunMonitor` (which comes after it in the
    callback list) commits the epoch. A non-finite value raises
    `TrainingDivergedError` naming the epoch and step; an epoch without
    training steps (an empty training split) raises `ValueError`. Either
    way the epoch is never committed: the run keeps its last good
    checkpoint.

    Args:
        dataset, train_split: the training data, for the messages.
    """

    def __init__(self, dataset=None, train_split=None):
        super().__init__()
        self.dataset = dataset
        self.train_split = train_split
        self._epoch = 0
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._steps = epoch + 1, 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1
        if logs and "loss" in logs:
            self._check("loss", logs["loss"], f"step {self._steps}")

    def on_epoch_end(self, epoch, logs=None):
        if self._steps == 0:
            raise ValueError(
                f"Epoch {self._epoch} ran no training steps: the training split "
                f"{self.train_split!r} of {self.dataset!r} is empty. Nothing was "
                "committed for it. Received: "
                f"train_split={self.train_split!r}"
            )
        for key, value in (logs or {}).items():
            self._check(key, value, f"the end of the epoch (after {self._steps} steps)")

    def _check(self, key, value, when):
        value = float(value)
        if math.isfinite(value):
            return
        self.model.stop_training = True
        last = self._epoch - 1
        kept = (
            f"the run keeps its last committed checkpoint, epoch {last}"
            if last
            else "the run has no committed checkpoint yet"
        )
        raise TrainingDivergedError(
            f"Training diverged: `{key}` is {value} at epoch {self._epoch}, "
            f"{when}. Stopped without committing epoch {self._epoch}; {kept}. "
            f"Lower the learning rate and resume. Received: {key}={value}"
        )


@contextlib.contextmanager
def averaged_weights(model):
    """Inside the block, `model` holds its optimizer's weight average, if any.

    For a model whose optimizer keeps a moving average of the weights
    (`use_ema`), the average is copied into the model (Keras'
    `finalize_variable_values`) and the trained weights are put back at the
    end; otherwise nothing changes.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not optimizer.use_ema or not optimizer.built:
        yield model
        return
    trained = [np.array(v) for v in model.trainable_variables]
    optimizer.finalize_variable_values(model.trainable_variables)
    try:
        yield model
    finally:
        for variable, value in zip(model.trainable_variables, trained):
            variable.assign(value)


def _write_image_summary(log_dir, grid, step):
    """One uint8 image `[H, W, C]` as TensorBoard image summary "samples"."""
    import tensorflow as tf

    if not hasattr(tf.summary, "image"):  # `tensorboard` is not installed.
        return
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        tf.summary.image("samples", grid[None], step=step)
    writer.close()


class RunMonitor(keras.callbacks.Callback):
    """After each epoch: report test bits/dim, write samples, checkpoint.

    Args:
        run_dir: the run directory.
        epochs: total epochs (for messages).
        history: logs of the epochs before this `fit` call (on resume).
        samples_per_epoch: images in the sample grid; 0 disables it. A
            class-conditional model draws the labels 0, 1, ... in turn, one
            grid column per class.
        sample_seed: seed of the sample grid (the same every epoch, so grids
            show the same draws as the model improves).
        max_seconds: stop after the epoch that crosses this wall time
            (measured from `start_time`); None for no limit.
        start_time: `time.monotonic()` at the start of the run.
        strategy: the strategy (only the chief writes files).
        keep_checkpoints: how many checkpoints to keep.
        elapsed_before: seconds trained before this run (on resume).
        verbose: print one line per epoch.
        log_dir: TensorBoard directory; each sample grid also goes there as
            an image summary (`LOG_DIR/samples`, tag "samples"). None: none.
    """

    def __init__(
        self,
        run_dir,
        epochs,
        history=(),
        samples_per_epoch=16,
        sample_seed=0,
        max_seconds=None,
        start_time=None,
        strategy=None,
        keep_checkpoints=1,
        elapsed_before=0.0,
        verbose=1,
        log_dir=None,
    ):
        super().__init__()
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.epochs = epochs
        self.history = list(history)
        self.samples_per_epoch = samples_per_epoch
        self.sample_seed = sample_seed
        self.max_seconds = max_seconds
        self.start_time = time.monotonic() if start_time is None else start_time
        self.strategy = strategy
        self.keep_checkpoints = keep_checkpoints
        self.elapsed_before = elapsed_before
        self.verbose = verbose
        self.chief = is_chief(strategy)
        self.stopped_for_time = False

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        done = epoch + 1
        elapsed = time.monotonic() - self.start_time
        self.history.append({"epoch": done, **logs})
        if self.verbose and self.chief:
            parts = [f"Epoch {done}/{self.epochs}:"]
            if "val_bits_per_dim" in logs:
                parts.append(f"test bits/dim {logs['val_bits_per_dim']:.4f}")
            if "bits_per_dim" in logs:
                parts.append(f"(train {logs['bits_per_dim']:.4f})")
            parts.append(f"[{elapsed:.0f}s]")
            print(" ".join(parts), flush=True)
        if self.chief:
            if self.samples_per_epoch:
                with averaged_weights(self.model):
                    images = self.model.sample(
                        self.samples_per_epoch,
                        seed=self.sample_seed,
                        verbose=0,
                        class_label=sample_class_labels(
                            self.model, self.samples_per_epoch
                        ),
                    )
                columns = sample_grid_columns(self.model, self.samples_per_epoch)
                path = os.path.join(self.run_dir, SAMPLES_DIR, f"epoch_{done:03d}.png")
                save_image_grid(
                    images,
                    path,
                    num_levels=self.model.num_levels,
                    columns=columns,
                    scale=_scale(images),
                )
                if self.log_dir is not None:
                    _write_image_summary(
                        os.path.join(self.log_dir, SAMPLES_DIR),
                        image_grid(images, self.model.num_levels, columns),
                        step=done,
                    )
            save_checkpoint(
                self.model,
                self.run_dir,
                done,
                history=self.history,
                extra={"elapsed_seconds": self.elapsed_before + elapsed},
                keep=self.keep_checkpoints,
            )
        over_time = self.max_seconds is not None and elapsed >= self.max_seconds
        if _all_workers_agree(self.strategy, over_time) and done < self.epochs:
            self.stopped_for_time = True
            self.model.stop_training = True
            if self.verbose and self.chief:
                print(
                    f"Stopping after epoch {done}: {elapsed / 60:.1f} min >= "
                    f"max_minutes={self.max_seconds / 60:g}. Continue with resume.",
                    flush=True,
                )


class ScalarTensorBoard(keras.callbacks.Callback):
    """Per-epoch scalars in TensorBoard's format, without the `tensorboard` package.

    `keras.callbacks.TensorBoard` needs `tf.summary.scalar`, which lives in
    the `tensorboard` package (TensorFlow 2.21 no longer depends on it). This
    writes the same `epoch_<metric>` scalars to `log_dir/train` and
    `log_dir/validation` with TensorFlow's own `tf.summary.write` and the
    scalar plugin's metadata, so `tensorboard --logdir` shows them.
    `train()` uses it when `tensorboard` is not installed.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self._writers = {}

    def _writer(self, name):
        import tensorflow as tf

        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(
                os.path.join(self.log_dir, name)
            )
        return self._writers[name]

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        ).SerializeToString()
        for key, value in (logs or {}).items():
            run, tag = (
                ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            )
            with self._writer(run).as_default():
                tf.summary.write(
                    f"epoch_{tag}",
                    tf.constant(float(value)),
                    step=epoch,
                    metadata=metadata,
                )
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def tensorboard_callback(log_dir):
    """`keras.callbacks.TensorBoard`, or `ScalarTensorBoard` without `tensorboard`."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return ScalarTensorBoard(log_dir)
    return keras.callbacks.TensorBoard(log_dir)


def _scale(images):
    """Upscaling so that small images give a visible PNG (>= 64 px high)."""
    return max(1, math.ceil(64 / images.shape[1]))


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _resolve_model_arg(model, model_config, default="pixelcnn"):
    """`(name, kwargs)` from a name + config or a config dict with "model"."""
    model_config = dict(model_config or {})
    if isinstance(model, dict):
        model = dict(model)
        name = model.pop("model", default)
        model_config = {**model, **model_config}
    else:
        name = default if model is None else model
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(
            f"Unknown model {name!r}. Available: {', '.join(sorted(MODELS))}"
        )
    for key in ("image_shape", "num_levels"):
        if key in model_config:
            raise ValueError(
                f"`{key}` comes from the data set; do not pass it in the model "
                f"config. Received: {key}={model_config[key]!r}"
            )
    return name, model_config


def _written_by_pixel_keras(path, legacy_keys):
    """Whether the file `path` is a config/state `train` wrote: True, False, or
    None when it is not valid JSON (corrupt: whose, it cannot tell)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (ValueError, UnicodeDecodeError):
        return None
    except OSError:
        return False
    return isinstance(obj, dict) and (
        obj.get("tool") == TOOL or all(key in obj for key in legacy_keys)
    )


def _run_dir_entries(out_dir):
    """The names `train` writes that exist in `out_dir`."""
    names = (CONFIG_FILE, STATE_FILE, CHECKPOINT_DIR, SAMPLES_DIR, LOGS_DIR)
    return [name for name in names if os.path.lexists(os.path.join(out_dir, name))]


def is_run_dir(run_dir):
    """Whether `run_dir` is a run directory that `train` wrote.

    True when it holds a `config.json` or a `state.json` written by `train`
    (marked `"tool": "pixel-keras"`, or with the keys of older versions), and
    neither file is someone else's (the other may be corrupt: reading it
    then reports that).
    """
    found = False
    for name, keys in (
        (CONFIG_FILE, _LEGACY_CONFIG_KEYS),
        (STATE_FILE, _LEGACY_STATE_KEYS),
    ):
        path = os.path.join(run_dir, name)
        if os.path.lexists(path):
            ours = _written_by_pixel_keras(path, keys)
            if ours is False:
                return False
            found = found or ours
    return found


def _lock_run_dir(out_dir):
    """Creates `out_dir` and takes an exclusive lock on it for this process.

    Returns:
        The locked descriptor for `_unlock_run_dir`, or None where the
        platform or file system has no `flock`.

    Raises:
        FileExistsError: `out_dir` is a file, or another process holds the
            lock (a training run is writing to it).
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"`out_dir` exists and is not a directory: {out_dir}")
    os.makedirs(out_dir, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks.
        return None
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FileExistsError(
            f"{out_dir} is in use by another training process; nothing was "
            "changed. Wait for it to finish or choose another `out_dir` (--out)."
        ) from None
    except OSError:  # A file system without locks.
        os.close(fd)
        return None
    return fd


def _unlock_run_dir(fd):
    if fd is not None:
        os.close(fd)  # Releases the flock.


def _check_run_dir(out_dir, resume, overwrite):
    """Checks `out_dir` before training, changing nothing in it.

    Returns:
        `(state, clear)`: the committed state to resume from (or None to
        start from epoch 0), and whether `_clear_run_dir` must first delete
        what `train` wrote there (`overwrite`, or a previous start that
        committed no checkpoint).

    Raises:
        FileExistsError: `out_dir` holds files `train` did not write where it
            would write; holds checkpoints its `state.json` does not account
            for; or holds a committed run and neither `resume` nor
            `overwrite` is set.
        ValueError, FileNotFoundError: an unreadable `state.json` or a
            checkpoint that does not match it (see `read_state`).
    """
    entries = _run_dir_entries(out_dir)
    if not entries:
        return None, False
    verb = "overwrite" if overwrite else "resume" if resume else "write into"
    if not is_run_dir(out_dir):
        raise FileExistsError(
            f"{out_dir} is not a pixel-keras run directory (it holds "
            f"{', '.join(entries)}, but no {CONFIG_FILE} or {STATE_FILE} "
            f"written by pixel-keras). Refusing to {verb} it; nothing was "
            "changed. Choose another `out_dir` (--out)."
        )
    if overwrite:
        return None, True
    state = read_state(out_dir)
    if state is not None and not resume:
        raise FileExistsError(
            f"{out_dir} already holds a training run (epoch {state['epoch']} "
            "committed). Pass resume=True (--resume) to continue it or "
            "overwrite=True (--overwrite) to start over and delete it."
        )
    committed = state["epoch"] if state is not None else 0
    has_state = os.path.exists(os.path.join(out_dir, STATE_FILE))
    # A kill between a checkpoint's rename and its commit in state.json
    # leaves checkpoint `committed + 1` (state.json exists from the start of
    # a run, committing epoch 0); anything else is not ours to drop.
    unaccounted = [
        name
        for epoch, name in sorted(checkpoint_files(out_dir).items())
        if epoch > committed + 1 or not has_state
    ]
    if unaccounted:
        commits = (
            f"its {STATE_FILE} commits epoch {committed}"
            if has_state
            else f"it has no {STATE_FILE} committing any"
        )
        raise FileExistsError(
            f"{out_dir} holds checkpoints its run state does not account for "
            f"({', '.join(unaccounted)}; {commits}). Refusing to {verb} it; "
            f"nothing was changed. Restore its {STATE_FILE}, move those "
            "checkpoints elsewhere, or start over with overwrite=True "
            "(--overwrite)."
        )
    return state, state is None


def _clear_run_dir(out_dir):
    """Deletes what `train` writes in `out_dir` (and nothing else).

    `state.json` goes first (nothing stays committed) and `config.json`, which
    marks the directory as a run directory, last: a kill in between leaves a
    directory that a new `overwrite` still recognises.
    """
    remove_stray_temp_files(out_dir)
    _remove_quietly(os.path.join(out_dir, STATE_FILE))
    for name in checkpoint_files(out_dir).values():
        _remove_quietly(os.path.join(out_dir, CHECKPOINT_DIR, name))
    samples = os.path.join(out_dir, SAMPLES_DIR)
    if os.path.isdir(samples):
        for name in os.listdir(samples):
            if _SAMPLE_NAME.fullmatch(name):
                _remove_quietly(os.path.join(samples, name))
    for run in _LOG_RUNS:
        shutil.rmtree(os.path.join(out_dir, LOGS_DIR, run), ignore_errors=True)
    for name in (CHECKPOINT_DIR, SAMPLES_DIR, LOGS_DIR):
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(out_dir, name))  # Only when left empty.
    _remove_quietly(os.path.join(out_dir, CONFIG_FILE))


def _remove_uncommitted_checkpoints(out_dir, committed):
    """Deletes checkpoints newer than epoch `committed` (never committed)."""
    removed = []
    for epoch, name in checkpoint_files(out_dir).items():
        if epoch > committed:
            _remove_quietly(os.path.join(out_dir, CHECKPOINT_DIR, name))
            removed.append(name)
    return removed


def _load_for_resume(path, optimizer):
    """Model and optimizer state from a checkpoint; call inside the strategy scope.

    `keras.saving.load_model(compile=True)` would skip the optimizer: the
    models override `compile()`, and Keras then does not recompile from the
    saved config. So: load uncompiled (the raw weights, not an average),
    compile with `optimizer` (this run's recipe: learning rate, schedule,
    clipping, averaging), build it, and load the archive's variables again,
    the optimizer's included (its step count, moments and weight average).
    `load_weights` also restores a constant learning rate saved as a
    variable: the one of `optimizer` is set again afterwards, so `--lr`
    applies from here on (a schedule is not a saved variable).
    """
    # The rate this run asked for, read before `load_weights` overwrites the
    # optimizer's learning-rate variable with the saved one.
    learning_rate = optimizer.get_config()["learning_rate"]
    net = load_checkpoint(path, compile=False, ema=False)
    net.compile(optimizer=optimizer)
    net.optimizer.build(net.trainable_variables)
    net.load_weights(path)
    if isinstance(learning_rate, (int, float)):
        net.optimizer.learning_rate = learning_rate
    return net


def _check_resume_recipe(recipe, saved_config):
    """A resumed run keeps the weight averaging it started with."""
    saved = saved_config.get("ema_momentum")
    if (saved is None) != (recipe["ema_momentum"] is None):
        raise ValueError(
            "Cannot resume with weight averaging switched "
            f"{'on' if saved is None else 'off'}: the run was started with "
            f"ema_momentum={saved!r} (--ema). Received: "
            f"ema_momentum={recipe['ema_momentum']!r}"
        )


def _steps_per_epoch(steps_per_epoch, dataset, train_split, batch_size, data_dir):
    """Optimizer steps per epoch: as given, or one pass over the split."""
    if steps_per_epoch is not None:
        return steps_per_epoch
    from pixel_keras import data

    size = int(data.load(dataset, train_split, data_dir=data_dir).cardinality())
    if size < 0:  # Unknown (or infinite) cardinality: count the examples.
        size = sum(1 for _ in data.load(dataset, train_split, data_dir=data_dir))
    return max(1, math.ceil(size / batch_size))


def _check_resume_compatible(model, name, model_config, dataset, saved_config):
    if model_name(model) != name:
        raise ValueError(
            f"Cannot resume: the run in this directory trains "
            f"{model_name(model)!r}, not {name!r}."
        )
    if saved_config and saved_config.get("dataset") != dataset:
        raise ValueError(
            f"Cannot resume: the run in this directory trains on "
            f"{saved_config.get('dataset')!r}, not {dataset!r}."
        )
    saved = model.get_config()
    diffs = [
        f"{key}={value!r} (checkpoint: {saved.get(key)!r})"
        for key, value in model_config.items()
        if _normalize(saved.get(key)) != _normalize(value)
    ]
    if diffs:
        raise ValueError(
            "Cannot resume with a different model configuration: " + ", ".join(diffs)
        )


def _normalize(value):
    return list(value) if isinstance(value, tuple) else value


def train(
    model=None,
    dataset=None,
    out_dir="runs/pixelcnn",
    *,
    preset=None,
    model_config=None,
    epochs=10,
    batch_size=64,
    learning_rate=1e-3,
    train_split="train",
    test_split="test",
    steps_per_epoch=None,
    resume=False,
    overwrite=False,
    strategy="auto",
    samples_per_epoch=16,
    seed=0,
    max_minutes=None,
    keep_checkpoints=1,
    data_dir=None,
    verbose="auto",
    precision="auto",
    lr_schedule="constant",
    warmup_steps=0,
    clipnorm=None,
    ema_momentum=None,
):
    """Trains a model and writes a run directory (see the module docstring).

    Args:
        model: a `MODELS` name, or a config dict `{"model": name, **kwargs}`;
            None for the preset's model, else `"pixelcnn"`.
        dataset: a `pixel_keras.data` name; it fixes `image_shape` and
            `num_levels`. None for the preset's `metadata["dataset"]`, else
            `"fashion_mnist"`.
        out_dir: the run directory.
        preset: a zoo preset name or directory whose architecture to train
            (model name and config); `model_config` overrides single
            arguments. Its image shape and levels must be the data set's.
        model_config: the model's keyword arguments (`hidden_maps`, ...;
            `num_classes` makes a `gated_pixelcnn` class-conditional, fed
            with the data set's labels). On resume, the checkpoint's
            configuration is used and any key given here must match it.
        epochs: total epochs (on resume, training continues up to it).
        batch_size: global batch size.
        learning_rate: Adam learning rate. On resume it replaces the
            checkpoint's (the optimizer's moments and step count are kept).
        train_split, test_split: splits of `dataset`; test bits/dim is
            computed over the whole test split after every epoch.
        steps_per_epoch: None for one pass over the train split per epoch, or
            a number of steps (the train data then repeats).
        resume: continue from the last committed checkpoint in `out_dir`
            (starts from epoch 0 when none was committed yet). Refused,
            changing nothing, when `out_dir` holds checkpoints its
            `state.json` does not account for (e.g. `state.json` is missing).
        overwrite: delete a previous run in `out_dir` and start over. Only
            a run directory `train` wrote (`is_run_dir`) is overwritten, and
            only the files `train` writes are deleted; anything else is
            refused, changing nothing. Files are deleted only after every
            check has passed.
        strategy: a `get_strategy` name or a strategy instance.
        samples_per_epoch: images in each `samples/epoch_XXX.png`; 0 for none.
        seed: seeds weights, shuffling and the sample grids.
        max_minutes: stop after the epoch during which this much wall time
            (of this call) has passed; None for no limit.
        keep_checkpoints: how many epoch checkpoints to keep (>= 1).
        data_dir: passed to `pixel_keras.data`.
        verbose: `fit` verbosity ("auto", 0, 1, 2) and epoch lines.
        precision: "auto" (bfloat16 compute where the CPU has native
            bfloat16, else float32; `pixel_keras.precision`), "float32" or
            "mixed_bfloat16". Losses and log-probabilities are float32 in
            every case; evaluation and export always run in float32.
        lr_schedule, warmup_steps, clipnorm, ema_momentum: the optimizer
            recipe (`pixel_keras.optimizers.make_optimizer`): "constant" or
            "cosine" (to 0 at the end of `epochs`), linear warm-up steps,
            global gradient-norm clipping, and a warmed-up moving average of
            the weights. With `ema_momentum`, the per-epoch test bits/dim,
            the sample grids and `load_checkpoint` (so `evaluate`, `sample`
            and published weights) use the averaged weights; training itself
            continues from the raw ones.

    Returns:
        The `keras.callbacks.History` of this call; `history.model` is the
        trained model, `history.run_history` the logs of all epochs of the
        run (resumed ones included), `history.stopped_for_time` whether
        `max_minutes` ended it early, `history.is_chief` whether this
        process wrote the files.

    Raises:
        FileExistsError: `out_dir` holds a committed run and neither
            `resume` nor `overwrite` is set; holds files `train` did not
            write where it would write; holds checkpoints its `state.json`
            does not account for; or another process is training into it.
        ValueError: bad arguments, a preset for other images, a
            class-conditional model on data without labels, a resume
            that does not match the run, or an epoch without training steps
            (an empty training split).
        TrainingDivergedError: the loss became NaN or infinite; nothing is
            committed for that epoch.
    """
    from pixel_keras import data

    start_time = time.monotonic()
    preset_name = None
    if preset is not None:
        from pixel_keras import zoo

        preset = preset if isinstance(preset, zoo.Preset) else zoo.get_preset(preset)
        preset_name = preset.name
        if dataset is None:
            dataset = preset.metadata.get("dataset")
            if dataset is None:
                raise ValueError(
                    f"Preset {preset.name!r} names no data set in its metadata; "
                    "pass `dataset`."
                )
    if dataset is None:
        dataset = "fashion_mnist"
    name, model_config = _resolve_model_arg(
        model, model_config, default=preset.model if preset else "pixelcnn"
    )
    if preset is not None and name != preset.model:
        raise ValueError(
            f"Preset {preset.name!r} is a {preset.model!r} model. "
            f"Received: model={name!r}"
        )
    for arg, value, low in (
        ("epochs", epochs, 1),
        ("keep_checkpoints", keep_checkpoints, 1),
    ):
        if not isinstance(value, int) or value < low:
            raise ValueError(
                f"`{arg}` must be an int >= {low}. Received: {arg}={value!r}"
            )
    if steps_per_epoch is not None and (
        not isinstance(steps_per_epoch, int) or steps_per_epoch < 1
    ):
        raise ValueError(
            "`steps_per_epoch` must be None or a positive int. "
            f"Received: steps_per_epoch={steps_per_epoch!r}"
        )
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(
            f"`max_minutes` must be > 0. Received: max_minutes={max_minutes!r}"
        )
    if (
        not isinstance(learning_rate, (int, float))
        or isinstance(learning_rate, bool)
        or not 0 < learning_rate < math.inf
    ):
        raise ValueError(
            "`learning_rate` must be a finite number > 0. "
            f"Received: learning_rate={learning_rate!r}"
        )
    if not isinstance(samples_per_epoch, int) or samples_per_epoch < 0:
        raise ValueError(
            "`samples_per_epoch` must be an int >= 0. "
            f"Received: samples_per_epoch={samples_per_epoch!r}"
        )
    info = data.get_info(dataset, data_dir=data_dir)
    if None in info.image_shape:
        raise ValueError(
            f"Data set {dataset!r} has images of variable size {info.image_shape}; "
            "pixel models need a fixed size."
        )
    if preset is not None:
        _, preset_config = preset_architecture(
            preset, info.image_shape, info.num_levels, dataset
        )
        model_config = {**preset_config, **model_config}

    strategy = get_strategy(strategy)
    replicas = num_replicas(strategy)
    if batch_size % replicas:
        raise ValueError(
            f"`batch_size` ({batch_size}) must be divisible by the number of "
            f"replicas ({replicas})."
        )
    chief = is_chief(strategy)
    if resume and overwrite:
        raise ValueError(
            "Pass at most one of `resume` and `overwrite`. "
            "Received: resume=True, overwrite=True"
        )
    # The chief locks `out_dir` for the whole run: a second run started into
    # it meanwhile is refused instead of deleting or mixing files.
    lock = _lock_run_dir(out_dir) if chief else None
    try:
        if chief:
            state, clear = _check_run_dir(out_dir, resume, overwrite)
        else:
            # Other workers never check, clean or delete the run directory (the
            # chief may already be writing to it); on resume they load the same
            # committed checkpoint as the chief, so `out_dir` must be shared.
            state, clear = (read_state(out_dir) if resume else None), False
        saved_config = read_config(out_dir) if state is not None else None
        keras.utils.set_random_seed(seed)

        policy = precision_module.resolve_policy(precision)
        recipe = {
            "lr_schedule": lr_schedule,
            "warmup_steps": warmup_steps,
            "clipnorm": clipnorm,
            "ema_momentum": ema_momentum,
        }
        if state is not None and saved_config is not None:
            _check_resume_recipe(recipe, saved_config)

        def new_optimizer():
            return optimizers.make_optimizer(
                learning_rate,
                total_steps=epochs
                * _steps_per_epoch(
                    steps_per_epoch, dataset, train_split, batch_size, data_dir
                ),
                schedule=lr_schedule,
                warmup_steps=warmup_steps,
                clipnorm=clipnorm,
                ema_momentum=ema_momentum,
            )

        with strategy_scope(strategy), precision_module.policy_scope(policy):
            if state is None:
                net = make_model(
                    name,
                    image_shape=info.image_shape,
                    num_levels=info.num_levels,
                    **model_config,
                )
                net.compile(optimizer=new_optimizer())
                initial_epoch, history, elapsed_before = 0, [], 0.0
            else:
                net = _load_for_resume(state["checkpoint_path"], new_optimizer())
                _check_resume_compatible(net, name, model_config, dataset, saved_config)
                initial_epoch = state["epoch"]
                history = state.get("history", [])
                elapsed_before = float(state.get("elapsed_seconds", 0.0))
                if verbose and chief:
                    print(
                        f"Resuming {out_dir} from epoch {initial_epoch} "
                        f"({state['checkpoint']}).",
                        flush=True,
                    )
        check_data_fits_model(net, info, dataset)
        class_labels = is_class_conditional(net)
        if class_labels and info.num_classes is None:
            raise ValueError(
                f"A class-conditional model needs labels, and data set {dataset!r} "
                "has none. Train an unconditional model (no `num_classes`)."
            )
        if class_labels and info.num_classes > net.num_classes:
            raise ValueError(
                f"Data set {dataset!r} has {info.num_classes} classes; the model "
                f"takes class labels below num_classes={net.num_classes}."
            )
        if _is_multi_worker(strategy):
            _MultiWorkerShim.apply(net, strategy)

        config = {
            "tool": TOOL,
            "model": name,
            "model_config": net.get_config(),
            "model_args": model_config,
            "preset": preset_name,
            "class_conditional": class_labels,
            "dataset": dataset,
            "image_shape": list(info.image_shape),
            "num_levels": info.num_levels,
            "train_split": train_split,
            "test_split": test_split,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            **recipe,
            "precision": policy,
            "steps_per_epoch": steps_per_epoch,
            "strategy": type(strategy).__name__ if strategy is not None else None,
            "num_replicas": replicas,
            "seed": seed,
            "max_minutes": max_minutes,
            "samples_per_epoch": samples_per_epoch,
            "num_params": net.count_params(),
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
        }
        train_ds = make_dataset(
            dataset,
            train_split,
            batch_size,
            shuffle=True,
            repeat=steps_per_epoch is not None,
            seed=seed + initial_epoch,
            data_dir=data_dir,
            class_labels=class_labels,
        )
        test_ds = make_dataset(
            dataset,
            test_split,
            batch_size,
            data_dir=data_dir,
            class_labels=class_labels,
        )
        if chief:
            # Every check has passed (the data sets load): only now delete
            # or replace files.
            if clear:
                if verbose and not overwrite:
                    print(
                        f"Starting {out_dir} over from epoch 0: a previous start "
                        "stopped before committing its first checkpoint.",
                        flush=True,
                    )
                _clear_run_dir(out_dir)
            else:
                remove_stray_temp_files(out_dir)
                if state is not None:
                    for stale in _remove_uncommitted_checkpoints(
                        out_dir, state["epoch"]
                    ):
                        if verbose:
                            print(
                                f"Removed {CHECKPOINT_DIR}/{stale}: written, but "
                                "never committed, by a run stopped while saving it.",
                                flush=True,
                            )
            write_json_atomic(os.path.join(out_dir, CONFIG_FILE), config)
            if state is None:
                _write_initial_state(out_dir)

        monitor = RunMonitor(
            out_dir,
            epochs,
            history=history,
            samples_per_epoch=samples_per_epoch,
            sample_seed=seed,
            max_seconds=None if max_minutes is None else 60.0 * max_minutes,
            start_time=start_time,
            strategy=strategy,
            keep_checkpoints=keep_checkpoints,
            elapsed_before=elapsed_before,
            verbose=verbose,
            log_dir=os.path.join(out_dir, LOGS_DIR)
            if keras.backend.backend() == "tensorflow"
            else None,
        )
        # Our own progress bar, before the monitor, so that its epoch line
        # follows the bar's; the guard first, so that a NaN loss or an empty
        # epoch stops the run before anything is written for the epoch.
        callbacks = [keras.callbacks.ProgbarLogger(), monitor]
        if chief:
            log_dir = os.path.join(out_dir, LOGS_DIR)
            callbacks.insert(0, tensorboard_callback(log_dir))
        callbacks.insert(0, TrainingGuard(dataset, train_split))
        if ema_momentum is not None:
            # Test bits/dim of the averaged weights (swapped in for
            # validation only; training continues from the raw weights).
            callbacks.insert(1, keras.callbacks.SwapEMAWeights())
        if initial_epoch >= epochs:
            if verbose and chief:
                print(f"{out_dir} is already trained for {initial_epoch} epochs.")
            fit_history = keras.callbacks.History()
            fit_history.set_model(net)
            fit_history.history = {}
        else:
            fit_history = net.fit(
                train_ds,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_data=test_ds,
                callbacks=callbacks,
                shuffle=False,  # tf.data shuffles.
                verbose=verbose if chief else 0,
            )
        fit_history.run_history = monitor.history
        fit_history.is_chief = chief
        fit_history.stopped_for_time = monitor.stopped_for_time
        return fit_history
    finally:
        _unlock_run_dir(lock)


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def evaluate(
    model,
    dataset="fashion_mnist",
    split="test",
    batch_size=64,
    data_dir=None,
    *,
    class_label=None,
):
    """Exact mean negative log-likelihood of a model over a whole split.

    A class-conditional model (`is_class_conditional`) is evaluated as
    p(x | label), with the data set's labels.

    Args:
        model: a model, a `.keras` file or a run directory.
        dataset: a `pixel_keras.data` name, integer images `[N, H, W, C]`, or
            a `tf.data.Dataset` of images, of `{"images": ..., "labels" or
            "class_label": ...}` dicts, or of `(x, y)` pairs with such an `x`
            (batched or not).
        split: the split, when `dataset` is a name.
        batch_size: images per forward pass.
        data_dir: passed to `pixel_keras.data`.
        class_label: with image arrays, their labels `[N]` (or one int) for
            a class-conditional model.

    Returns:
        `{"nats_per_image", "bits_per_dim", "num_images"}`: the NLL summed in
        float64 over every image of the split, divided by its size (not a
        mean of batch means).

    Raises:
        ValueError: a bad `batch_size`, a named data set whose image shape
            or number of levels is not the model's, an empty split, or a
            class-conditional model without labels.
    """
    check_batch_size(batch_size)
    if isinstance(model, (str, os.PathLike)):
        model = load_checkpoint(os.fspath(model), compile=False)
    if isinstance(dataset, str):
        from pixel_keras import data

        check_data_fits_model(model, data.get_info(dataset, data_dir=data_dir), dataset)
    conditional = is_class_conditional(model)
    total, count = 0.0, 0
    for images, labels in _image_batches(
        dataset, split, batch_size, data_dir, class_label
    ):
        if conditional and labels is None:
            raise ValueError(
                "This model is class-conditional: evaluate it on data with "
                "labels (or pass `class_label` with image arrays)."
            )
        conditions = {"class_label": labels} if conditional else {}
        nll = -model.log_prob(images, batch_size=batch_size, **conditions)
        total += float(np.sum(nll.astype("float64")))
        count += len(images)
    if count == 0:
        if isinstance(dataset, str):
            what, received = f"split {split!r} of {dataset!r}", f"split={split!r}"
        elif isinstance(dataset, (np.ndarray, list, tuple)):
            what = "the image array"
            received = f"images.shape={np.shape(dataset)}"
        else:
            what, received = "the dataset", "0 images"
        raise ValueError(
            f"Evaluation needs at least one image, and {what} has none. "
            f"Received: {received}"
        )
    nats = total / count
    dims = math.prod(model.image_shape)
    return {
        "nats_per_image": nats,
        "bits_per_dim": nats / (dims * math.log(2.0)),
        "num_images": count,
    }


def _image_batches(dataset, split, batch_size, data_dir, class_label=None):
    """Yields NumPy `(images, labels)` batches; labels None where there are none."""
    if isinstance(dataset, (np.ndarray, list, tuple)):
        images = np.asarray(dataset)
        labels = None if class_label is None else np.asarray(class_label)
        for i in range(0, len(images), batch_size):
            batch_labels = labels
            if labels is not None and labels.ndim:
                batch_labels = labels[i : i + batch_size]
            yield images[i : i + batch_size], batch_labels
        return
    if isinstance(dataset, str):
        from pixel_keras import data

        dataset = data.load(dataset, split, data_dir=data_dir)

    def as_dict(x, *_):  # (x, y) pairs: keep x.
        if not isinstance(x, dict):
            return {"images": x}
        out = {"images": x["images"]}
        for key in ("class_label", "labels"):
            if key in x:
                out["labels"] = x[key]
                break
        return out

    dataset = dataset.map(as_dict)
    if dataset.element_spec["images"].shape.rank == 3:
        dataset = dataset.batch(batch_size)
    for batch in dataset.as_numpy_iterator():
        yield batch["images"], batch.get("labels")
