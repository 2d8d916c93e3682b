"""Callbacks of a training run: NaN guard, per-epoch monitor, TensorBoard.

In `train`'s callback list the order matters: `TrainingGuard` first (a NaN
loss or an empty epoch stops the run before anything is written for the
epoch), then the TensorBoard writer, the progress bar, and `RunMonitor`,
which after each epoch prints test bits/dim, writes the sample grid
(`samples/epoch_XXX.png`, also a TensorBoard image summary) and commits
the checkpoint.
"""

import contextlib
import math
import os
import time

import keras
import numpy as np

from pixel_keras.images import image_grid, save_image_grid
from pixel_keras.training.architecture import sample_class_labels, sample_grid_columns
from pixel_keras.training.checkpoints import SAMPLES_DIR, save_checkpoint
from pixel_keras.training.distribute import _all_workers_agree, is_chief


class TrainingDivergedError(FloatingPointError):
    """The training loss (or a logged metric) became NaN or infinite.

    `train` stops at once and commits nothing for the epoch: the run
    directory keeps its last committed checkpoint (`pixel-keras train` exits
    with status 1).
    """


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
