"""Checks, locking and clean-up of a run directory before `train` writes to it.

`overwrite` deletes only a directory recognised as a run directory
(`is_run_dir`: a `config.json` or `state.json` marked `"tool": "pixel-keras"`),
and in it only the files `train` writes. `resume` refuses a directory whose
checkpoints its `state.json` does not account for. A run directory is
locked (`flock`) while a run writes to it.
"""

import contextlib
import json
import os
import shutil

from pixel_keras.training.checkpoints import (
    _LEGACY_CONFIG_KEYS,
    _LEGACY_STATE_KEYS,
    _LOG_RUNS,
    _SAMPLE_NAME,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LOGS_DIR,
    SAMPLES_DIR,
    STATE_FILE,
    TOOL,
    _remove_quietly,
    checkpoint_files,
    read_state,
    remove_stray_temp_files,
)


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
