"""Crash-safe files of a run directory: atomic writes, `state.json`, checkpoints.

Every file is written to a temporary name in its final directory, flushed
with `fsync`, and moved into place with `os.replace` (atomic on POSIX).
`state.json` is written last and names the checkpoint it belongs to, with
its SHA-256: a run killed at any moment leaves either the previous state or
the new one, never a half-written checkpoint. Stray temporary files from a
killed save are removed at the next start (`remove_stray_temp_files`), and
older checkpoints are deleted only after the new state is committed.

`state.json` is written when a run starts, committing epoch 0 (no
checkpoint), so that every checkpoint in the directory is accounted for.
`config.json` and `state.json` carry `"tool": "pixel-keras"` (`TOOL`).
"""

import contextlib
import json
import os
import re
import tempfile
import time
import warnings

import keras
import numpy as np

from pixel_keras.zoo import sha256

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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.load_weights(path)
    # Keras skips, with only a warning, a saved optimizer state whose
    # variables do not match this optimizer's (a constant learning rate is a
    # variable, a schedule is not): the run would restart at step 0. That is
    # an error here, and its warning is replaced by the error's message.
    skipped = int(keras.ops.convert_to_numpy(net.optimizer.iterations)) == 0
    for record in caught:
        if skipped and "Skipping variable loading for optimizer" in str(record.message):
            continue
        warnings.warn_explicit(
            record.message, record.category, record.filename, record.lineno
        )
    if skipped:
        raise ValueError(
            f"Checkpoint {path}: its optimizer state (step count, moments, weight "
            "average) does not fit this run's optimizer. A resumed run keeps its kind "
            "of learning rate (constant, or a schedule: --lr-schedule, --warmup-steps) "
            "and its weight averaging (--ema)."
        )
    if isinstance(learning_rate, (int, float)):
        net.optimizer.learning_rate = learning_rate
    return net
