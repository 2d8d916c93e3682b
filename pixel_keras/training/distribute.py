"""Distribution strategies for `train`, and the multi-worker shim for Keras 3.15.

`get_strategy(name)` turns a name into what `train` builds its model under:

- TensorFlow backend: a `tf.distribute` strategy (`"auto"`: `MirroredStrategy`
  over the GPUs, else the default strategy; `"mirrored"`; `"multi_worker"`:
  `MultiWorkerMirroredStrategy` from `TF_CONFIG`; `"default"`).
- JAX backend: a `keras.distribution.DataParallel` distribution, installed
  with `keras.distribution.set_distribution` (or None for one device);
  `tf.data` is then only the input pipeline.

The batch size is global: a strategy with R replicas gives each replica
`batch_size / R` images per step. Only the chief (`is_chief`) writes files;
`_all_workers_agree` lets every worker stop after the same epoch.

Why a shim: Keras 3.15's `fit` does not run under a multi-worker
`tf.distribute.MultiWorkerMirroredStrategy`. Two bugs in
`keras/src/backend/tensorflow/trainer.py` (`docs/distributed.md`) break it:
the first batch is reduced as one nested structure, which the collective
strategy cannot do, and scalar losses are reduced along an axis 0 they do
not have. `train(strategy="multi_worker")` applies `_MultiWorkerShim`, which
replaces exactly those two code paths (one per model, one per process) and
refuses to run on a Keras whose internals changed; nothing else is patched.
"""

import contextlib

import keras
import numpy as np

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


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
