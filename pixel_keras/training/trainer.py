"""`train` and `evaluate`: the steps of a training run, in order.

`train` resolves its arguments (`_resolve_model`, `_check_train_arguments`,
`_resolve_data`), picks the strategy, locks the run directory, checks it
(`run_dir._check_run_dir`), builds or resumes the model (`_build_or_resume`),
builds the data (`_make_datasets`), writes `config.json`
(`_prepare_run_dir`) and fits with the callbacks of `callbacks.py` (`_fit`).
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np

from pixel_keras import optimizers
from pixel_keras import precision as precision_module
from pixel_keras.checks import OUTPUT_BIAS_IMAGES, OUTPUT_BIAS_INITS, resolve_verbose
from pixel_keras.losses import nats_to_bits_per_dim
from pixel_keras.models.base import check_batch_size
from pixel_keras.training.architecture import (
    _resolve_model_arg,
    is_class_conditional,
    make_model,
    model_name,
    preset_architecture,
)
from pixel_keras.training.callbacks import (
    RunMonitor,
    TrainingGuard,
    tensorboard_callback,
)
from pixel_keras.training.checkpoints import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LOGS_DIR,
    TOOL,
    _load_for_resume,
    _write_initial_state,
    load_checkpoint,
    read_config,
    read_state,
    remove_stray_temp_files,
    write_json_atomic,
)
from pixel_keras.training.distribute import (
    _is_multi_worker,
    _MultiWorkerShim,
    get_strategy,
    is_chief,
    num_replicas,
    strategy_scope,
)
from pixel_keras.training.run_dir import (
    _check_run_dir,
    _clear_run_dir,
    _lock_run_dir,
    _remove_uncommitted_checkpoints,
    _unlock_run_dir,
)


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
    output_bias="zeros",
):
    """Trains a model and writes a run directory (see `pixel_keras.training`).

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
        verbose: 0 (silent), 1 (a progress bar per epoch, as `fit`) or 2
            (one line per epoch), with the run's own lines (resume, epoch
            results) unless 0; "auto" is 1 when standard output is a
            terminal and 2 otherwise, so that a log file gets lines, not a
            bar redrawn at every step.
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
        output_bias: how a new model's last-layer bias starts: "zeros", or
            "marginal" (the log frequency of each level in the first
            `checks.OUTPUT_BIAS_IMAGES` images of `train_split`, add-one
            smoothed: `AutoregressiveImageModel.init_output_bias`), which
            starts training near the data's marginal bits/dim instead of
            `log2(num_levels)`. Used when a run starts; a resumed run keeps
            the value it started with (its `config.json`).

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
    start_time = time.monotonic()
    preset, dataset, name, model_config = _resolve_model(
        model, dataset, preset, model_config
    )
    _check_train_arguments(
        epochs=epochs,
        keep_checkpoints=keep_checkpoints,
        steps_per_epoch=steps_per_epoch,
        max_minutes=max_minutes,
        learning_rate=learning_rate,
        samples_per_epoch=samples_per_epoch,
        output_bias=output_bias,
    )
    verbose = resolve_verbose(verbose)
    info, model_config = _resolve_data(dataset, data_dir, preset, model_config)
    strategy = get_strategy(strategy)
    replicas = _check_replicas(strategy, batch_size)
    run = _Run(
        out_dir=out_dir,
        name=name,
        model_config=model_config,
        preset_name=None if preset is None else preset.name,
        dataset=dataset,
        info=info,
        data_dir=data_dir,
        train_split=train_split,
        test_split=test_split,
        epochs=epochs,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        learning_rate=learning_rate,
        recipe={
            "lr_schedule": lr_schedule,
            "warmup_steps": warmup_steps,
            "clipnorm": clipnorm,
            "ema_momentum": ema_momentum,
            "output_bias": output_bias,
        },
        precision=precision,
        strategy=strategy,
        replicas=replicas,
        chief=is_chief(strategy),
        seed=seed,
        max_minutes=max_minutes,
        samples_per_epoch=samples_per_epoch,
        keep_checkpoints=keep_checkpoints,
        verbose=verbose,
        start_time=start_time,
    )
    if resume and overwrite:
        raise ValueError(
            "Pass at most one of `resume` and `overwrite`. "
            "Received: resume=True, overwrite=True"
        )
    # The chief locks `out_dir` for the whole run: a second run started into
    # it meanwhile is refused instead of deleting or mixing files.
    lock = _lock_run_dir(out_dir) if run.chief else None
    try:
        return _train_locked(run, resume, overwrite)
    finally:
        _unlock_run_dir(lock)


@dataclasses.dataclass
class _Run:
    """What `train` resolved from its arguments, passed between its steps."""

    out_dir: str
    name: str  # The registry name of the model.
    model_config: dict  # Its arguments (preset config with overrides).
    preset_name: str | None
    dataset: str
    info: object  # `pixel_keras.data.DatasetInfo` of `dataset`.
    data_dir: str | None
    train_split: str
    test_split: str
    epochs: int
    batch_size: int
    steps_per_epoch: int | None
    learning_rate: float
    recipe: dict  # The optimizer recipe besides the learning rate.
    precision: str
    strategy: object
    replicas: int
    chief: bool  # Whether this process writes files.
    seed: int
    max_minutes: float | None
    samples_per_epoch: int
    keep_checkpoints: int
    verbose: int
    start_time: float


def _resolve_model(model, dataset, preset, model_config):
    """`(preset, dataset, name, model_config)` from `train`'s arguments.

    The preset (read, or None), the data set (the preset's by default, else
    `"fashion_mnist"`), the registry name and the model arguments given.
    """
    if preset is not None:
        from pixel_keras import zoo

        preset = preset if isinstance(preset, zoo.Preset) else zoo.get_preset(preset)
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
    return preset, dataset, name, model_config


def _check_train_arguments(
    *,
    epochs,
    keep_checkpoints,
    steps_per_epoch,
    max_minutes,
    learning_rate,
    samples_per_epoch,
    output_bias,
):
    """Raises ValueError for a bad value among `train`'s arguments."""
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
    if not isinstance(output_bias, str) or output_bias not in OUTPUT_BIAS_INITS:
        raise ValueError(
            f"`output_bias` must be one of {OUTPUT_BIAS_INITS}. "
            f"Received: output_bias={output_bias!r}"
        )


def _resolve_data(dataset, data_dir, preset, model_config):
    """`(info, model_config)`: the data set's info, and with a preset its
    config (checked against the data) overridden by `model_config`."""
    from pixel_keras import data

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
    return info, model_config


def _check_replicas(strategy, batch_size):
    """The number of replicas of `strategy`, which must divide `batch_size`."""
    replicas = num_replicas(strategy)
    if batch_size % replicas:
        raise ValueError(
            f"`batch_size` ({batch_size}) must be divisible by the number of "
            f"replicas ({replicas})."
        )
    return replicas


def _train_locked(run, resume, overwrite):
    """`train`'s work once `run.out_dir` is locked: check, build, write, fit."""
    if run.chief:
        state, clear = _check_run_dir(run.out_dir, resume, overwrite)
    else:
        # Other workers never check, clean or delete the run directory (the
        # chief may already be writing to it); on resume they load the same
        # committed checkpoint as the chief, so `out_dir` must be shared.
        state, clear = (read_state(run.out_dir) if resume else None), False
    saved_config = read_config(run.out_dir) if state is not None else None
    keras.utils.set_random_seed(run.seed)
    policy = precision_module.resolve_policy(run.precision)
    if state is not None and saved_config is not None:
        _check_resume_recipe(run.recipe, saved_config)
        # An initialization: what the run started with stays on record.
        run.recipe["output_bias"] = saved_config.get("output_bias", "zeros")
    with strategy_scope(run.strategy), precision_module.policy_scope(policy):
        net, initial_epoch, history, elapsed_before = _build_or_resume(
            run, state, saved_config
        )
    class_labels = _check_model_fits_data(net, run)
    if _is_multi_worker(run.strategy):
        _MultiWorkerShim.apply(net, run.strategy)
    config = _run_config(run, net, class_labels, policy)
    train_ds, test_ds = _make_datasets(run, initial_epoch, class_labels)
    if run.chief:
        # Every check has passed (the data sets load): only now delete or
        # replace files.
        _prepare_run_dir(run, state, clear, overwrite, config)
    monitor = RunMonitor(
        run.out_dir,
        run.epochs,
        history=history,
        samples_per_epoch=run.samples_per_epoch,
        sample_seed=run.seed,
        max_seconds=None if run.max_minutes is None else 60.0 * run.max_minutes,
        start_time=run.start_time,
        strategy=run.strategy,
        keep_checkpoints=run.keep_checkpoints,
        elapsed_before=elapsed_before,
        verbose=run.verbose,
        log_dir=os.path.join(run.out_dir, LOGS_DIR)
        if keras.backend.backend() == "tensorflow"
        else None,
    )
    return _fit(run, net, train_ds, test_ds, initial_epoch, monitor)


def _new_optimizer(run):
    """This run's optimizer (`pixel_keras.optimizers.make_optimizer`)."""
    steps = _steps_per_epoch(
        run.steps_per_epoch, run.dataset, run.train_split, run.batch_size, run.data_dir
    )
    return optimizers.make_optimizer(
        run.learning_rate,
        total_steps=run.epochs * steps,
        schedule=run.recipe["lr_schedule"],
        warmup_steps=run.recipe["warmup_steps"],
        clipnorm=run.recipe["clipnorm"],
        ema_momentum=run.recipe["ema_momentum"],
    )


def _build_or_resume(run, state, saved_config):
    """`(model, initial_epoch, history, elapsed_before)`, compiled; call in scope.

    A new model from the registry when `state` is None, else the committed
    checkpoint with its optimizer state, checked against this run.
    """
    if state is None:
        net = make_model(
            run.name,
            image_shape=run.info.image_shape,
            num_levels=run.info.num_levels,
            **run.model_config,
        )
        if run.recipe["output_bias"] == "marginal":
            net.init_output_bias(_first_train_images(run))
        net.compile(optimizer=_new_optimizer(run))
        return net, 0, [], 0.0
    net = _load_for_resume(state["checkpoint_path"], _new_optimizer(run))
    _check_resume_compatible(net, run.name, run.model_config, run.dataset, saved_config)
    initial_epoch = state["epoch"]
    if run.verbose and run.chief:
        print(
            f"Resuming {run.out_dir} from epoch {initial_epoch} "
            f"({state['checkpoint']}).",
            flush=True,
        )
    return (
        net,
        initial_epoch,
        state.get("history", []),
        float(state.get("elapsed_seconds", 0.0)),
    )


def _first_train_images(run):
    """The first `OUTPUT_BIAS_IMAGES` images of the training split, as stored."""
    from pixel_keras import data

    images, _ = data.to_numpy(
        data.load(run.dataset, run.train_split, data_dir=run.data_dir),
        limit=OUTPUT_BIAS_IMAGES,
    )
    return images


def _check_model_fits_data(net, run):
    """Whether `net` is class-conditional; ValueError if the data cannot feed it."""
    from pixel_keras import data

    info, dataset = run.info, run.dataset
    data.check_data_fits_model(net, info, dataset)
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
    return class_labels


def _run_config(run, net, class_labels, policy):
    """The run directory's `config.json`."""
    return {
        "tool": TOOL,
        "model": run.name,
        "model_config": net.get_config(),
        "model_args": run.model_config,
        "preset": run.preset_name,
        "class_conditional": class_labels,
        "dataset": run.dataset,
        "image_shape": list(run.info.image_shape),
        "num_levels": run.info.num_levels,
        "train_split": run.train_split,
        "test_split": run.test_split,
        "epochs": run.epochs,
        "batch_size": run.batch_size,
        "learning_rate": run.learning_rate,
        **run.recipe,
        "precision": policy,
        "steps_per_epoch": run.steps_per_epoch,
        "strategy": (type(run.strategy).__name__ if run.strategy is not None else None),
        "num_replicas": run.replicas,
        "seed": run.seed,
        "max_minutes": run.max_minutes,
        "samples_per_epoch": run.samples_per_epoch,
        "num_params": net.count_params(),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
    }


def _make_datasets(run, initial_epoch, class_labels):
    """The training data (shuffled, per epoch) and the test data."""
    from pixel_keras import data

    train_ds = data.make_dataset(
        run.dataset,
        run.train_split,
        run.batch_size,
        shuffle=True,
        repeat=run.steps_per_epoch is not None,
        seed=run.seed + initial_epoch,
        data_dir=run.data_dir,
        class_labels=class_labels,
    )
    test_ds = data.make_dataset(
        run.dataset,
        run.test_split,
        run.batch_size,
        data_dir=run.data_dir,
        class_labels=class_labels,
    )
    return train_ds, test_ds


def _prepare_run_dir(run, state, clear, overwrite, config):
    """Chief only: clears or tidies `out_dir`, writes `config.json` (and at a
    start, the epoch-0 `state.json`)."""
    out_dir, verbose = run.out_dir, run.verbose
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
            for stale in _remove_uncommitted_checkpoints(out_dir, state["epoch"]):
                if verbose:
                    print(
                        f"Removed {CHECKPOINT_DIR}/{stale}: written, but "
                        "never committed, by a run stopped while saving it.",
                        flush=True,
                    )
    write_json_atomic(os.path.join(out_dir, CONFIG_FILE), config)
    if state is None:
        _write_initial_state(out_dir)


def _callbacks(run, monitor):
    """`fit`'s callbacks, in order (see `pixel_keras.training.callbacks`)."""
    # Our own progress bar, before the monitor, so that its epoch line
    # follows the bar's; the guard first, so that a NaN loss or an empty
    # epoch stops the run before anything is written for the epoch.
    callbacks = [keras.callbacks.ProgbarLogger(), monitor]
    if run.chief:
        log_dir = os.path.join(run.out_dir, LOGS_DIR)
        callbacks.insert(0, tensorboard_callback(log_dir))
    callbacks.insert(0, TrainingGuard(run.dataset, run.train_split))
    if run.recipe["ema_momentum"] is not None:
        # Test bits/dim of the averaged weights (swapped in for
        # validation only; training continues from the raw weights).
        callbacks.insert(1, keras.callbacks.SwapEMAWeights())
    return callbacks


def _fit(run, net, train_ds, test_ds, initial_epoch, monitor):
    """Runs `fit` up to `run.epochs`; returns its History, annotated."""
    callbacks = _callbacks(run, monitor)
    if initial_epoch >= run.epochs:
        if run.verbose and run.chief:
            print(f"{run.out_dir} is already trained for {initial_epoch} epochs.")
        fit_history = keras.callbacks.History()
        fit_history.set_model(net)
        fit_history.history = {}
    else:
        fit_history = net.fit(
            train_ds,
            epochs=run.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=run.steps_per_epoch,
            validation_data=test_ds,
            callbacks=callbacks,
            shuffle=False,  # tf.data shuffles.
            verbose=run.verbose if run.chief else 0,
        )
    fit_history.run_history = monitor.history
    fit_history.is_chief = run.chief
    fit_history.stopped_for_time = monitor.stopped_for_time
    return fit_history


def _scheduled(lr_schedule, warmup_steps):
    """Whether the learning rate is a schedule (no learning-rate variable)."""
    return (lr_schedule or "constant") != "constant" or bool(warmup_steps)


def _check_resume_recipe(recipe, saved_config):
    """A resumed run keeps its weight averaging and its kind of learning rate.

    Both decide the optimizer's variables; Keras would skip (with a warning)
    a saved optimizer state that does not match them, and the run would go
    on from step 0 with fresh moments.
    """
    was = _scheduled(saved_config.get("lr_schedule"), saved_config.get("warmup_steps"))
    now = _scheduled(recipe["lr_schedule"], recipe["warmup_steps"])
    if was != now:
        raise ValueError(
            "Cannot resume with a "
            f"{'constant learning rate' if was else 'learning-rate schedule'}: the run was "
            f"started with lr_schedule={saved_config.get('lr_schedule')!r}, "
            f"warmup_steps={saved_config.get('warmup_steps')!r} (--lr-schedule, "
            "--warmup-steps), and its optimizer state would not load. Received: "
            f"lr_schedule={recipe['lr_schedule']!r}, warmup_steps={recipe['warmup_steps']!r}"
        )
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
    from pixel_keras import data

    if isinstance(dataset, str):
        data.check_data_fits_model(
            model, data.get_info(dataset, data_dir=data_dir), dataset
        )
    batches = data.image_batches(dataset, split, batch_size, data_dir, class_label)
    total, count = _sum_nll(model, batches, batch_size)
    if count == 0:
        raise _no_images_error(dataset, split)
    nats = total / count
    return {
        "nats_per_image": nats,
        "bits_per_dim": nats_to_bits_per_dim(nats, model.image_shape),
        "num_images": count,
    }


def _sum_nll(model, batches, batch_size):
    """`(total, count)`: the NLL summed in float64 over `batches`, and images."""
    conditional = is_class_conditional(model)
    total, count = 0.0, 0
    for images, labels in batches:
        if conditional and labels is None:
            raise ValueError(
                "This model is class-conditional: evaluate it on data with "
                "labels (or pass `class_label` with image arrays)."
            )
        conditions = {"class_label": labels} if conditional else {}
        nll = -model.log_prob(images, batch_size=batch_size, **conditions)
        total += float(np.sum(nll.astype("float64")))
        count += len(images)
    return total, count


def _no_images_error(dataset, split):
    """The ValueError for evaluating on no images."""
    if isinstance(dataset, str):
        what, received = f"split {split!r} of {dataset!r}", f"split={split!r}"
    elif isinstance(dataset, (np.ndarray, list, tuple)):
        what = "the image array"
        received = f"images.shape={np.shape(dataset)}"
    else:
        what, received = "the dataset", "0 images"
    return ValueError(
        f"Evaluation needs at least one image, and {what} has none. "
        f"Received: {received}"
    )
