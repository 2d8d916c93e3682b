"""Training runs: distribution strategy, data, checkpoints, bits/dim.

A package with a module per job; every name is re-exported here:

- `architecture.py`: the model factory (`make_model`, `preset_architecture`,
  class labels of a conditional model).
- `distribute.py`: strategies and the multi-worker shim.
- `checkpoints.py`: atomic files, `state.json`, checkpoints.
- `run_dir.py`: run-directory checks, lock, overwrite.
- `callbacks.py`: `TrainingGuard`, `RunMonitor`, `ScalarTensorBoard`.
- `trainer.py`: `train` and `evaluate`.
- The input pipeline (`make_dataset`, `check_data_fits_model`) lives in
  `pixel_keras.data` and is re-exported here lazily (it imports TensorFlow).

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

Checkpoints are crash safe (`checkpoints.py`). Every file is written to a
temporary name in its final directory, flushed with `fsync`, and moved into
place with `os.replace` (atomic on POSIX). `state.json` is written last and names the
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
(`_MultiWorkerShim` in `distribute.py`); nothing else is patched.
"""

from pixel_keras.training.architecture import (
    is_class_conditional,
    make_model,
    model_arguments,
    model_name,
    preset_architecture,
    sample_class_labels,
    sample_grid_columns,
)
from pixel_keras.training.callbacks import (
    RunMonitor,
    ScalarTensorBoard,
    TrainingDivergedError,
    TrainingGuard,
    _scale,  # noqa: F401  (used by cli.py and tests)
    averaged_weights,
    tensorboard_callback,
)
from pixel_keras.training.checkpoints import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LOGS_DIR,
    SAMPLES_DIR,
    STATE_FILE,
    TOOL,
    _write_initial_state,  # noqa: F401  (used by cli.py and tests)
    checkpoint_files,
    load_checkpoint,
    read_config,
    read_state,
    remove_stray_temp_files,
    save_checkpoint,
    save_model_atomic,
    write_json_atomic,
)
from pixel_keras.training.distribute import (
    STRATEGIES,
    _MultiWorkerShim,  # noqa: F401  (used by cli.py and tests)
    get_strategy,
    is_chief,
    num_replicas,
    strategy_scope,
)
from pixel_keras.training.run_dir import (
    _lock_run_dir,  # noqa: F401  (used by cli.py and tests)
    _unlock_run_dir,  # noqa: F401  (used by cli.py and tests)
    is_run_dir,
)
from pixel_keras.training.trainer import (
    evaluate,
    train,
)

# The input pipeline is `pixel_keras.data`'s, loaded on first use: importing
# `pixel_keras.training` does not import TensorFlow.
_DATA_NAMES = {
    "check_data_fits_model": "check_data_fits_model",
    "make_dataset": "make_dataset",
    "_image_batches": "image_batches",
}

__all__ = [
    "averaged_weights",
    "check_data_fits_model",
    "CHECKPOINT_DIR",
    "checkpoint_files",
    "CONFIG_FILE",
    "evaluate",
    "get_strategy",
    "is_chief",
    "is_class_conditional",
    "is_run_dir",
    "load_checkpoint",
    "LOGS_DIR",
    "make_dataset",
    "make_model",
    "model_arguments",
    "model_name",
    "num_replicas",
    "preset_architecture",
    "read_config",
    "read_state",
    "remove_stray_temp_files",
    "RunMonitor",
    "sample_class_labels",
    "sample_grid_columns",
    "SAMPLES_DIR",
    "save_checkpoint",
    "save_model_atomic",
    "ScalarTensorBoard",
    "STATE_FILE",
    "STRATEGIES",
    "strategy_scope",
    "tensorboard_callback",
    "TOOL",
    "train",
    "TrainingDivergedError",
    "TrainingGuard",
    "write_json_atomic",
]


def __getattr__(name):
    if name in _DATA_NAMES:
        from pixel_keras import data

        return getattr(data, _DATA_NAMES[name])
    raise AttributeError(f"module 'pixel_keras.training' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_DATA_NAMES})
