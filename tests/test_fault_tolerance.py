"""Fault tolerance: SIGKILL `pixel-keras train` at random points, then resume.

`python -m pixel_keras train` runs a tiny model on digits as a subprocess
and is killed with SIGKILL mid-epoch, mid-checkpoint (while a temporary
`.epoch_*.tmp-*` or `.state.json.tmp-*` file exists), right when a new
checkpoint appears (before `state.json` names it), and after random delays;
each time it is started again with `--resume`, until it completes. The kill
points come from a seeded `random.Random`; when they fall is up to the
scheduler, so every run checks the same properties:

- after every kill, `state.json` is whole: it parses and the checkpoint it
  names exists with the recorded size and sha256;
- the committed epoch never goes backwards, at most one finished epoch is
  lost per kill, and the next process resumes from the committed epoch;
- at the end: a continuous history (epochs 1..N, no gaps or duplicates), no
  temporary or stray files, every checkpoint loads, and the final weights
  (and every epoch's losses) equal those of an uninterrupted run of the
  same command.

Why the weights can be compared exactly: `training.train` shuffles with
`seed + initial_epoch`, so a resumed process sees its epochs in another
order than the uninterrupted run, whose reshuffles continue from `seed`.
Even with the whole split in one batch the per-image sums then run in
another order and the weights differ in the last bits (measured: 1.5e-8 for
8 images). With a one-image training split and batch size 1 every order is
the same, so a correct resume (weights, optimizer step and moments) must
give bit-identical weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf_only

REPO = Path(__file__).resolve().parent.parent
EPOCHS = 5
COMMAND = [
    sys.executable, "-m", "pixel_keras", "train",
    "--model", "pixelcnn", "--hidden-maps", "2", "--output-maps", "2",
    "--residual-blocks", "0", "--dataset", "digits",
    "--train-split", "train[:1]", "--test-split", "test[:8]",
    "--batch-size", "1", "--steps-per-epoch", "40", "--epochs", str(EPOCHS),
    "--samples-per-epoch", "0", "--seed", "3", "--verbose", "2",
]  # fmt: skip
ENV = {
    **os.environ,
    "PYTHONUNBUFFERED": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
TMP = re.compile(r"^\..*\.tmp-")  # training's temporary files: .NAME.tmp-PID-XXXX
BEGUN = re.compile(r"^Epoch (\d+)/\d+\s*$", re.M)  # Keras, at the start of an epoch
DONE = re.compile(r"^Epoch (\d+)/\d+: ", re.M)  # RunMonitor, at its end
TIMEOUT = 120  # seconds for one process


def start(run_dir, log, resume):
    argv = [*COMMAND, "--out", str(run_dir), *(["--resume"] if resume else [])]
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=ENV
        )


def names(run_dir):
    """Relative paths in the run directory and its checkpoints/."""
    found = set()
    for sub in ("", "checkpoints"):
        try:
            found.update(os.path.join(sub, n) for n in os.listdir(run_dir / sub))
        except FileNotFoundError:
            pass
    return found


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def committed(run_dir):
    """The committed epoch (0 before the first commit); checks the commit."""
    path = run_dir / "state.json"
    if not path.exists():
        return 0, None
    state = json.loads(path.read_text())  # a torn state.json fails here
    if state.get("checkpoint") is None:  # a started run, nothing committed
        assert int(state["epoch"]) == 0, state
        return 0, state
    checkpoint = run_dir / state["checkpoint"]
    assert checkpoint.is_file(), f"state.json names a missing {checkpoint}"
    assert checkpoint.stat().st_size == state["size"], "checkpoint size != state"
    assert sha256(checkpoint) == state["sha256"], "checkpoint sha256 != state"
    return int(state["epoch"]), state


def wait_and_kill(proc, run_dir, log, how, target, rng):
    """Kills `proc` at the point `how` names, in epoch `target`.

    Returns False if the process ended first.
    """
    before = names(run_dir)
    started = time.monotonic()
    delay = rng.uniform(0.0, 10.0)
    fire_at = None
    while proc.poll() is None:
        now = time.monotonic()
        assert now - started < TIMEOUT, f"{how}: no progress in {TIMEOUT} s"
        if how == "random_delay":
            hit = now - started >= delay
        else:
            text = log.read_text(errors="replace")
            begun = max(map(int, BEGUN.findall(text)), default=0)
            done = max(map(int, DONE.findall(text)), default=0)
            current = names(run_dir)
            base = {os.path.basename(n) for n in current}
            # RunMonitor prints an epoch's line, then saves its checkpoint.
            saving = done >= target
            if how == "mid_epoch":
                if fire_at is None and begun >= target:
                    fire_at = now + rng.uniform(0.0, 0.3)
                hit = fire_at is not None and now >= fire_at
            elif how == "mid_checkpoint":
                hit = saving and any(
                    TMP.match(n) and n.startswith(".epoch_") for n in base
                )
            elif how == "mid_state":
                hit = saving and any(n.startswith(".state.json.tmp-") for n in base)
            elif how == "new_checkpoint":
                hit = saving and f"checkpoints/epoch_{target:03d}.keras" in (
                    current - before
                )
            else:
                raise ValueError(how)
        if hit:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.001)
    return False


def run_with_kills(run_dir, kills, seed):
    """Starts, kills at each of `kills` and resumes until the run completes.

    Each kill falls in one of the next two epochs after the committed one.
    Returns the kills that happened: `(how, epoch aimed at, committed epoch
    after)`.
    """
    rng = random.Random(seed)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    done = []
    last = 0  # committed epoch
    for i, how in enumerate([*kills, None]):
        log = run_dir.parent / f"process_{i}.log"
        proc = start(run_dir, log, resume=i > 0)
        # Mostly the next epoch, so that the kills spread over the run.
        target = min(last + rng.choice([1, 1, 2]), EPOCHS)
        if how is None or not wait_and_kill(proc, run_dir, log, how, target, rng):
            proc.wait(TIMEOUT)
            text = log.read_text(errors="replace")
            assert proc.returncode == 0, f"process {i} failed:\n{text[-3000:]}"
            check_resumed_from(text, last, i)
            return done
        text = log.read_text(errors="replace")
        check_resumed_from(text, last, i)
        epoch, _ = committed(run_dir)
        finished = max(map(int, DONE.findall(text)), default=last)
        context = f"kill {i} ({how}, epoch {target}; kills so far: {done})"
        assert epoch >= last, f"{context}: committed epoch {last} -> {epoch}"
        assert epoch <= max(finished, last), f"{context}: {epoch} never finished"
        assert finished - epoch <= 1, (
            f"{context}: epochs up to {finished} finished, only {epoch} committed"
        )
        done.append((how, target, epoch))
        last = epoch
    raise AssertionError("unreachable")


def check_resumed_from(text, last, i):
    """A process continues from the committed epoch `last` (first begun: last+1)."""
    begun = [int(e) for e in BEGUN.findall(text)]
    if begun:
        assert begun[0] == last + 1, (
            f"process {i} began at epoch {begun[0]}, committed was {last}:\n"
            + text[-3000:]
        )


def check_final(run_dir, reference):
    from pixel_keras import training

    epoch, state = committed(run_dir)
    assert epoch == EPOCHS
    history = [h["epoch"] for h in state["history"]]
    assert history == list(range(1, EPOCHS + 1)), history

    # No temporary or stray files.
    stray = [
        str(p.relative_to(run_dir))
        for p in run_dir.rglob("*")
        if TMP.match(p.name) or ".tmp-" in p.name
    ]
    assert not stray, stray
    top = {p.name for p in run_dir.iterdir()}
    assert top <= {"config.json", "state.json", "checkpoints", "logs", "samples"}, top
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == [f"epoch_{EPOCHS:03d}.keras"], checkpoints

    # Every checkpoint loads; the final weights equal the uninterrupted run's.
    models = [
        training.load_checkpoint(str(p)) for p in (run_dir / "checkpoints").iterdir()
    ]
    ours = training.load_checkpoint(str(run_dir)).get_weights()
    theirs = training.load_checkpoint(str(reference)).get_weights()
    assert models and len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    _, reference_state = committed(reference)
    keys = ("loss", "val_loss", "bits_per_dim", "val_bits_per_dim")
    for got, want in zip(state["history"], reference_state["history"], strict=True):
        for key in keys:
            if key in want:
                assert got[key] == want[key], (key, got, want)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same command, uninterrupted (in this process: no start-up cost)."""
    from pixel_keras import cli

    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert cli.main([*COMMAND[3:], "--out", str(run_dir)]) == 0
    epoch, _ = committed(run_dir)
    assert epoch == EPOCHS
    return run_dir


def test_one_kill_mid_checkpoint_then_resume(tmp_path, reference):
    killed = run_with_kills(tmp_path / "run", ["mid_checkpoint"], seed=1)
    assert len(killed) == 1, killed
    check_final(tmp_path / "run", reference)


@pytest.mark.large
@pytest.mark.parametrize("seed", [11, 12])
def test_random_kills_then_resume(tmp_path, reference, seed):
    rng = random.Random(seed)
    kills = [
        "mid_checkpoint",
        "new_checkpoint",
        "mid_state",
        "mid_epoch",
        "random_delay",
    ]
    kills += [rng.choice(kills) for _ in range(2)]
    rng.shuffle(kills)
    killed = run_with_kills(tmp_path / "run", kills, seed=seed)
    print("kills (how, epoch aimed at, committed after):", killed)
    assert len(killed) >= 4, f"only {killed} of {kills} happened"
    check_final(tmp_path / "run", reference)
