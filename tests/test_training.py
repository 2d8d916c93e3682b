import glob
import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from pixel_keras import training

TINY = dict(hidden_maps=8, num_residual_blocks=1, output_maps=16)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, env=None, timeout=240):
    """Runs `code` in a fresh interpreter; returns its last JSON line."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def event_tags(log_dir):
    """Scalar tags and values in the TensorBoard event files under `log_dir`."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    tags = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                tags.setdefault(value.tag, {})[event.step] = number
    return tags


# ---- registry and strategies ------------------------------------------------


# Tiny architectures of every registered model.
TINY_CONFIGS = {
    "pixelcnn": TINY,
    "row_lstm": dict(hidden_maps=4, num_layers=1, output_maps=8, kernel_size=3),
    "diagonal_bilstm": dict(hidden_maps=4, num_layers=1, output_maps=8, residual=False),
    "gated_pixelcnn": dict(hidden_maps=4, num_layers=1, output_maps=8, num_classes=10),
}


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_make_model_every_registered_model(name):
    from pixel_keras.models.registry import MODELS, get_model_class

    model = training.make_model(
        name, image_shape=(8, 8, 1), num_levels=17, **TINY_CONFIGS[name]
    )
    assert type(model) is MODELS[name] is get_model_class(name)
    assert training.model_name(model) == name
    assert model.image_shape == (8, 8, 1) and model.num_levels == 17
    assert set(TINY_CONFIGS[name]) <= set(training.model_arguments(name))
    for argument, value in TINY_CONFIGS[name].items():
        assert model.get_config()[argument] == value
    assert training.is_class_conditional(model) == (name == "gated_pixelcnn")
    labels = training.sample_class_labels(model, 12)
    if name == "gated_pixelcnn":
        np.testing.assert_array_equal(labels, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
        assert training.sample_grid_columns(model, 12) == 10
        assert training.sample_grid_columns(model, 4) == 4
    else:
        assert labels is None and training.sample_grid_columns(model, 12) is None


def test_model_arguments_per_model():
    assert "num_residual_blocks" in training.model_arguments("pixelcnn")
    assert "num_residual_blocks" not in training.model_arguments("row_lstm")
    assert "kernel_size" not in training.model_arguments("diagonal_bilstm")
    assert "residual" in training.model_arguments("diagonal_bilstm")
    assert "num_classes" in training.model_arguments("gated_pixelcnn")
    with pytest.raises(
        ValueError, match=r"argument\(s\) for model 'row_lstm': num_residual_blocks"
    ):
        training.make_model(
            "row_lstm", image_shape=(8, 8, 1), num_levels=17, num_residual_blocks=1
        )


def test_make_model_registry():
    model = training.make_model(
        "pixelcnn", image_shape=(8, 8, 1), num_levels=17, **TINY
    )
    assert model.hidden_maps == 8 and model.image_shape == (8, 8, 1)
    assert training.model_name(model) == "pixelcnn"
    with pytest.raises(
        ValueError,
        match="Unknown model 'pixel_rnn'. Available: diagonal_bilstm, "
        "gated_pixelcnn, pixelcnn, row_lstm",
    ):
        training.make_model("pixel_rnn", image_shape=(8, 8, 1), num_levels=17)
    with pytest.raises(
        ValueError,
        match=r"argument\(s\) for model 'pixelcnn': hiden_maps. Available: hidden_maps",
    ):
        training.make_model(
            "pixelcnn", image_shape=(8, 8, 1), num_levels=17, hiden_maps=3
        )


def test_registry_create_names_and_model_name():
    from pixel_keras.models import registry

    assert registry.names() == sorted(registry.MODELS) == sorted(TINY_CONFIGS)
    model = registry.create("pixelcnn", image_shape=[8, 8, 1], num_levels=17, **TINY)
    assert type(model) is registry.MODELS["pixelcnn"]
    assert model.image_shape == (8, 8, 1)
    assert registry.model_name(model) == registry.model_name(type(model)) == "pixelcnn"
    # One check for unknown names, whichever entry point.
    for call in (
        lambda: registry.create("pixel_rnn"),
        lambda: registry.model_arguments("pixel_rnn"),
        lambda: registry.get_model_class(["pixelcnn"]),
        lambda: training.train("pixel_rnn", "digits", "unused"),
    ):
        with pytest.raises(ValueError, match="Unknown model .*Available: diagonal"):
            call()
    # Unregistered classes: an error, or (training.model_name) the class name.
    with pytest.raises(ValueError, match="Dense is not a registered pixel-keras"):
        registry.model_name(keras.layers.Dense(1))
    assert training.model_name(keras.layers.Dense(1)) == "Dense"
    assert registry.model_name(keras.layers.Dense, strict=False) == "Dense"


def test_get_strategy_names():
    with pytest.raises(
        ValueError, match="Unknown strategy 'tpu'. Available: auto, default"
    ):
        training.get_strategy("tpu")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        assert training.get_strategy("default") is tf.distribute.get_strategy()
        assert training.num_replicas(training.get_strategy("auto")) >= 1
        assert training.is_chief(training.get_strategy("default"))


def test_get_strategy_under_jax_uses_keras_distribution():
    out = run_python(
        """
        import json, sys
        from pixel_keras import training
        default = training.get_strategy("default")
        mirrored = training.get_strategy("mirrored")
        import keras
        print(json.dumps({
            "backend": keras.backend.backend(),
            "default": default is None,
            "mirrored": type(mirrored).__name__,
            "installed": keras.distribution.distribution() is mirrored,
        }))
        """,
        env={"KERAS_BACKEND": "jax"},
    )
    assert out == {
        "backend": "jax",
        "default": True,
        "mirrored": "DataParallel",
        "installed": True,
    }


# ---- atomic files -------------------------------------------------------------


def test_atomic_json_and_checkpoint_integrity(tmp_path):
    path = tmp_path / "state.json"
    training.write_json_atomic(str(path), {"epoch": np.int64(3), "shape": (8, 8, 1)})
    assert json.loads(path.read_text()) == {"epoch": 3, "shape": [8, 8, 1]}
    assert os.listdir(tmp_path) == ["state.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask

    model = training.make_model("pixelcnn", image_shape=(4, 4, 1), num_levels=2, **TINY)
    state = training.save_checkpoint(model, str(tmp_path), 1, history=[{"loss": 1.0}])
    assert training.read_state(str(tmp_path))["epoch"] == 1
    assert state["checkpoint"] == os.path.join("checkpoints", "epoch_001.keras")
    training.save_checkpoint(model, str(tmp_path), 2)
    assert os.listdir(tmp_path / "checkpoints") == ["epoch_002.keras"]  # keep=1

    # A checkpoint changed after its state was committed is refused.
    with open(tmp_path / "checkpoints" / "epoch_002.keras", "ab") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match="does not match the size/SHA-256"):
        training.read_state(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No checkpoint in"):
        training.load_checkpoint(str(tmp_path / "checkpoints"))


# ---- training -----------------------------------------------------------------


@pytest.mark.tf_only
def test_train_smoke_checkpoint_resume(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    kwargs = dict(
        model_config=dict(TINY),
        batch_size=32,
        learning_rate=3e-3,
        train_split="train[:640]",
        test_split="test[:100]",
        samples_per_epoch=4,
        verbose=2,
    )
    history = training.train("pixelcnn", "digits", out, epochs=2, **kwargs)

    # Loss and test bits/dim go down on real data.
    loss, val_bpd = history.history["loss"], history.history["val_bits_per_dim"]
    assert loss[1] < loss[0] and val_bpd[1] < val_bpd[0]
    assert 1.0 < val_bpd[1] < np.log2(17)
    printed = capsys.readouterr().out
    assert f"Epoch 2/2: test bits/dim {val_bpd[1]:.4f}" in printed

    # Run directory: config, committed state, checkpoint, samples, TensorBoard.
    config = training.read_config(out)
    assert config["model"] == "pixelcnn" and config["dataset"] == "digits"
    assert config["model_config"]["hidden_maps"] == 8 and config["num_levels"] == 17
    state = training.read_state(out)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert os.listdir(os.path.join(out, "checkpoints")) == ["epoch_002.keras"]
    from PIL import Image

    for epoch in (1, 2):
        with Image.open(os.path.join(out, "samples", f"epoch_{epoch:03d}.png")) as png:
            assert png.format == "PNG" and png.size[0] >= 64
    tags = event_tags(os.path.join(out, "logs", "validation"))
    assert tags["epoch_bits_per_dim"][1] == pytest.approx(val_bpd[1], rel=1e-6)
    assert set(event_tags(os.path.join(out, "logs", "train"))[("epoch_loss")]) == {0, 1}

    # An existing run is never silently overwritten.
    with pytest.raises(FileExistsError, match="already holds a training run"):
        training.train("pixelcnn", "digits", out, epochs=3, **kwargs)
    with pytest.raises(ValueError, match="at most one of"):
        training.train("pixelcnn", "digits", out, resume=True, overwrite=True)

    # Kill during the epoch-3 save: the temporary checkpoint is written, then
    # the process dies before it is committed.
    def killed(tmp, path):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(training.checkpoints, "_commit", killed)
    with pytest.raises(KeyboardInterrupt):
        training.train("pixelcnn", "digits", out, epochs=3, resume=True, **kwargs)
    monkeypatch.undo()
    assert training.read_state(out)["epoch"] == 2
    # ... and a hard kill leaves truncated temporary files behind.
    stray = [
        os.path.join(out, "checkpoints", ".epoch_003.keras.tmp-999-x.keras"),
        os.path.join(out, ".state.json.tmp-999-y"),
    ]
    for path in stray:
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 truncated")

    resumed = training.train("pixelcnn", "digits", out, epochs=3, resume=True, **kwargs)
    assert resumed.history["loss"] and len(resumed.history["loss"]) == 1  # epoch 3 only
    state = training.read_state(out)
    assert state["epoch"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert [h["epoch"] for h in resumed.run_history] == [1, 2, 3]
    assert not any(os.path.exists(path) for path in stray)
    # The optimizer state came back: 3 epochs of 20 steps.
    assert int(resumed.model.optimizer.iterations.numpy()) == 60
    assert resumed.history["val_bits_per_dim"][0] < val_bpd[1]

    # Resuming with another architecture is refused; a finished run is a no-op.
    with pytest.raises(
        ValueError, match="different model configuration: hidden_maps=16"
    ):
        training.train(
            "pixelcnn",
            "digits",
            out,
            epochs=4,
            resume=True,
            **{**kwargs, "model_config": dict(hidden_maps=16)},
        )
    done = training.train("pixelcnn", "digits", out, epochs=3, resume=True, **kwargs)
    assert done.history == {} and training.read_state(out)["epoch"] == 3


def test_verbose_auto_is_a_bar_on_a_terminal_and_lines_otherwise(monkeypatch):
    """`train(verbose="auto")`: Keras' bar on a terminal; a log file gets one
    line per epoch instead of a bar redrawn at every step."""
    from pixel_keras import checks

    class Stdout:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(sys, "stdout", Stdout(True))
    assert checks.resolve_verbose("auto") == 1
    monkeypatch.setattr(sys, "stdout", Stdout(False))
    assert checks.resolve_verbose("auto") == 2
    assert [checks.resolve_verbose(v) for v in (0, 1, 2)] == [0, 1, 2]


@pytest.mark.tf_only
def test_max_minutes_stops_after_the_epoch(tmp_path):
    out = str(tmp_path / "run")
    history = training.train(
        "pixelcnn",
        "digits",
        out,
        model_config=dict(TINY),
        epochs=5,
        steps_per_epoch=2,
        batch_size=16,
        test_split="test[:32]",
        samples_per_epoch=0,
        max_minutes=1e-4,
        verbose=0,
    )
    assert history.stopped_for_time and len(history.history["loss"]) == 1
    assert training.read_state(out)["epoch"] == 1
    assert not os.path.exists(os.path.join(out, "samples"))


def test_train_rejects_bad_arguments(tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(ValueError, match="Unknown model 'gated'"):
        training.train("gated", "digits", out)
    with pytest.raises(ValueError, match="`epochs` must be an int >= 1"):
        training.train("pixelcnn", "digits", out, epochs=0)
    with pytest.raises(ValueError, match="`num_levels` comes from the data set"):
        training.train({"model": "pixelcnn", "num_levels": 4}, "digits", out)
    with pytest.raises(
        ValueError,
        match=r"`learning_rate` must be a finite number > 0\. "
        r"Received: learning_rate=inf",
    ):
        training.train("pixelcnn", "digits", out, learning_rate=float("inf"))
    with pytest.raises(
        ValueError,
        match=r"at most one of `resume` and `overwrite`\. "
        r"Received: resume=True, overwrite=True",
    ):
        training.train("pixelcnn", "digits", out, resume=True, overwrite=True)
    assert not os.path.exists(out)


def test_preset_architecture_and_train_checks(tmp_path):
    name, config = training.preset_architecture("pixelcnn_digits", (8, 8, 1), 17)
    assert name == "pixelcnn"
    assert config == {"hidden_maps": 16, "num_residual_blocks": 2, "output_maps": 32}
    with pytest.raises(
        ValueError,
        match=r"Preset 'pixelcnn_digits' is for images \(8, 8, 1\) with 17 levels; "
        r"data set 'fashion_mnist' has \(28, 28, 1\) with 256 levels",
    ):
        training.preset_architecture(
            "pixelcnn_digits", (28, 28, 1), 256, "fashion_mnist"
        )
    with pytest.raises(ValueError, match="Unknown preset 'nope'. Available: "):
        training.preset_architecture("nope")
    out = str(tmp_path / "run")
    with pytest.raises(ValueError, match="Preset 'test_row_lstm' is for images"):
        training.train(preset="test_row_lstm", dataset="digits", out_dir=out)
    with pytest.raises(ValueError, match="Preset 'row_lstm_digits' is a 'row_lstm'"):
        training.train("pixelcnn", out_dir=out, preset="row_lstm_digits")
    assert not os.path.exists(out)


def test_make_dataset_feeds_class_labels():
    from pixel_keras import data

    images, labels = data.to_numpy(data.load("digits", "test[:10]"))
    x, y = next(
        iter(training.make_dataset("digits", "test[:10]", 10, class_labels=True))
    )
    assert set(x) == {"images", "class_label"}
    assert x["images"].dtype == x["class_label"].dtype == "int32"
    np.testing.assert_array_equal(x["images"], images)
    np.testing.assert_array_equal(y, images)
    np.testing.assert_array_equal(x["class_label"], labels)
    x, y = next(iter(training.make_dataset("digits", "test[:10]", 10)))
    np.testing.assert_array_equal(x, images)


def test_evaluate_class_conditional_uses_the_labels():
    import tensorflow as tf

    from pixel_keras import data

    model = training.make_model(
        "gated_pixelcnn",
        image_shape=(8, 8, 1),
        num_levels=17,
        **TINY_CONFIGS["gated_pixelcnn"],
    )
    # Make the labels matter: large weights from the one-hot label to the gates.
    for weight in model.weights:
        if "condition" in weight.path and len(weight.shape) == 2:
            weight.assign(np.random.default_rng(0).normal(size=weight.shape) * 2.0)
    images, labels = data.to_numpy(data.load("digits", "test[:40]"))
    expected = model.bits_per_dim(images, class_label=labels).astype("float64").mean()
    result = training.evaluate(model, "digits", "test[:40]", batch_size=16)
    assert result["num_images"] == 40
    assert result["bits_per_dim"] == pytest.approx(expected, rel=1e-6)
    # Arrays with labels, and (x, y) pairs as `fit` takes them: the same.
    arrays = training.evaluate(model, images, batch_size=16, class_label=labels)
    assert arrays["bits_per_dim"] == pytest.approx(expected, rel=1e-6)
    pairs = tf.data.Dataset.from_tensor_slices(
        ({"images": images, "class_label": labels}, images)
    )
    assert training.evaluate(model, pairs, batch_size=16)[
        "bits_per_dim"
    ] == pytest.approx(expected, rel=1e-6)
    # Other labels give another likelihood; no labels is an error.
    zeros = training.evaluate(model, images, class_label=0)
    assert zeros["bits_per_dim"] != pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="This model is class-conditional"):
        training.evaluate(model, images)


# ---- evaluation ---------------------------------------------------------------


def test_evaluate_is_the_exact_mean_over_the_split():
    from pixel_keras import data

    model = training.make_model(
        "pixelcnn", image_shape=(8, 8, 1), num_levels=17, **TINY
    )
    images, _ = data.to_numpy(data.load("digits", "test"))
    result = training.evaluate(
        model, "digits", "test", batch_size=50
    )  # 297 = 5*50 + 47
    expected = model.bits_per_dim(images).astype("float64").mean()
    assert result["num_images"] == 297
    assert result["bits_per_dim"] == pytest.approx(expected, rel=1e-6)
    assert result["nats_per_image"] == pytest.approx(
        expected * 64 * np.log(2.0), rel=1e-6
    )
    # The same from arrays. A last batch unlike the others shows that it is
    # the mean over images, not over batches: bias the logits towards level 0
    # so that a blank image is far likelier than a digit.
    bias = np.zeros(17, "float32")
    bias[0] = 8.0
    model.get_layer(f"{model.name}_out_conv_2").bias.assign(bias)
    mixed = np.concatenate([images[:100], np.zeros_like(images[:1])])
    nll = -model.log_prob(mixed).astype("float64")
    result = training.evaluate(model, mixed, batch_size=50)  # 50 + 50 + 1
    assert result["num_images"] == 101
    assert result["nats_per_image"] == pytest.approx(nll.mean(), rel=1e-6)
    batch_means = np.mean([nll[:50].mean(), nll[50:100].mean(), nll[100]])
    assert abs(batch_means - nll.mean()) > 0.2 * nll.mean()


# ---- distribution --------------------------------------------------------------

MIRRORED_SCRIPT = """
import json, os, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
import numpy as np
from pixel_keras import data, training

images = data.to_numpy(data.load("digits", "train[:96]"))[0].astype("int32")
tiny = dict(hidden_maps=8, num_residual_blocks=1, output_maps=16)


def fit(strategy, weights):
    with strategy.scope():
        model = training.make_model("pixelcnn", image_shape=(8, 8, 1),
                                    num_levels=17, **tiny)
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
    ds = tf.data.Dataset.from_tensor_slices(images).batch(32).map(lambda x: (x, x))
    losses = []
    for _ in range(2):  # 2 x 3 steps on the same batches
        losses += model.fit(ds, epochs=1, verbose=0, shuffle=False).history["loss"]
    return losses, [w.tolist() for w in model.get_weights()[:2]]


keras.utils.set_random_seed(0)
init = training.make_model("pixelcnn", image_shape=(8, 8, 1), num_levels=17,
                           **tiny).get_weights()
mirrored = training.get_strategy("mirrored")
default_losses, default_w = fit(training.get_strategy("default"), init)
mirrored_losses, mirrored_w = fit(mirrored, init)

# train() end to end under the 2-replica strategy, then resume.
out = sys.argv[1]
kwargs = dict(model_config=tiny, batch_size=16, steps_per_epoch=2,
              test_split="test[:40]", samples_per_epoch=0, verbose=0,
              strategy="mirrored")
first = training.train("pixelcnn", "digits", out, epochs=1, **kwargs)
second = training.train("pixelcnn", "digits", out, epochs=2, resume=True, **kwargs)
print(json.dumps({
    "replicas": mirrored.num_replicas_in_sync,
    "devices": list(mirrored.extended.worker_devices),
    "default_losses": default_losses,
    "mirrored_losses": mirrored_losses,
    "max_weight_diff": max(
        float(np.max(np.abs(np.array(a) - np.array(b))))
        for a, b in zip(default_w, mirrored_w)
    ),
    "config_replicas": training.read_config(out)["num_replicas"],
    "epochs": [h["epoch"] for h in second.run_history],
    "iterations": int(second.model.optimizer.iterations.numpy()),
}))
"""


@pytest.mark.tf_only
def test_mirrored_two_logical_cpus_matches_default(tmp_path):
    script = MIRRORED_SCRIPT.replace("sys.argv[1]", repr(str(tmp_path / "run")))
    out = run_python(script)
    assert out["replicas"] == 2 and len(out["devices"]) == 2
    assert out["devices"][0].endswith("CPU:0") and out["devices"][1].endswith("CPU:1")
    np.testing.assert_allclose(out["mirrored_losses"], out["default_losses"], rtol=1e-5)
    assert out["default_losses"][-1] < out["default_losses"][0]
    assert out["max_weight_diff"] < 1e-4
    assert out["config_replicas"] == 2
    assert out["epochs"] == [1, 2] and out["iterations"] == 4


WORKER_SCRIPT = """
import json, os, sys
index, ports, out = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
if index >= 0:
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index},
    })
from pixel_keras import training

# One strategy per process: TensorFlow configures collectives only once.
strategy = training.get_strategy("multi_worker" if index >= 0 else "mirrored")
kwargs = dict(
    model_config=dict(hidden_maps=8, num_residual_blocks=1, output_maps=16),
    batch_size=32, steps_per_epoch=3, test_split="test[:100]",
    samples_per_epoch=4, seed=3, verbose=0, strategy=strategy,
)
first = training.train("pixelcnn", "digits", out, epochs=1, **kwargs)
second = training.train("pixelcnn", "digits", out, epochs=2, resume=True, **kwargs)
print(json.dumps({
    "history": [first.history, second.history],
    "iterations": int(second.model.optimizer.iterations.numpy()),
    "chief": second.is_chief,
    "replicas": training.num_replicas(strategy),
}))
"""


@pytest.mark.large
@pytest.mark.tf_only
def test_multi_worker_mirrored_two_local_workers(tmp_path):
    """Two worker processes on 127.0.0.1 train with `fit` (with the shim)."""
    ports = ",".join(map(str, free_ports(2)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    runs = [
        (index, str(tmp_path / ("single" if index < 0 else "cluster")))
        for index in (0, 1, -1)
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(index), ports, out],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for index, out in runs
    ]
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr[-4000:]
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    chief, worker, single = results
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["chief"] and not worker["chief"]
    # Both workers report the same all-reduced logs, before and after resume
    # (both loaded the chief's checkpoint, optimizer state included) ...
    assert chief["history"] == worker["history"]
    assert chief["iterations"] == worker["iterations"] == 6
    # ... equal to one process on the same global batches. (The reference is
    # a 1-replica MirroredStrategy: Keras builds distributed models from a
    # first batch drawn from a throwaway iterator, which shifts the shuffle
    # order relative to the default strategy.)
    for call in range(2):
        for key, values in single["history"][call].items():
            np.testing.assert_allclose(chief["history"][call][key], values, rtol=1e-5)
    assert training.read_state(str(tmp_path / "cluster"))["epoch"] == 2
    assert os.path.exists(tmp_path / "cluster" / "samples" / "epoch_002.png")


@pytest.mark.large
def test_train_and_resume_under_jax(tmp_path):
    """train() with keras.distribution on the JAX backend (tf.data input only)."""
    out = str(tmp_path / "run")
    code = f"""
        import json
        from pixel_keras import training
        kwargs = dict(model_config=dict(hidden_maps=8, num_residual_blocks=1,
                      output_maps=16), batch_size=16, steps_per_epoch=3,
                      test_split="test[:32]", samples_per_epoch=2, verbose=0,
                      strategy="mirrored")
        training.train("pixelcnn", "digits", {out!r}, epochs=1, **kwargs)
        history = training.train("pixelcnn", "digits", {out!r}, epochs=2,
                                 resume=True, **kwargs)
        result = training.evaluate({out!r}, "digits", "test[:32]")
        print(json.dumps({{
            "epochs": [h["epoch"] for h in history.run_history],
            "iterations": int(history.model.optimizer.iterations.numpy()),
            "val_bpd": history.history["val_bits_per_dim"][-1],
            "evaluated_bpd": result["bits_per_dim"],
            "backend": training.read_config({out!r})["backend"],
        }}))
    """
    result = run_python(code, env={"KERAS_BACKEND": "jax"}, timeout=400)
    assert result["backend"] == "jax"
    assert result["epochs"] == [1, 2] and result["iterations"] == 6
    assert result["evaluated_bpd"] == pytest.approx(result["val_bpd"], rel=1e-5)


# ---- hardening: resume, overwrite, divergence, bad inputs ------------------------

RUN_KWARGS = dict(
    model_config=dict(hidden_maps=4, num_residual_blocks=0, output_maps=8),
    steps_per_epoch=2,
    batch_size=8,
    test_split="test[:16]",
    samples_per_epoch=2,
    verbose=0,
)


def snapshot(directory):
    """`{relative path: bytes}` of every file under `directory`."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    """A tiny committed 2-epoch run; tests work on copies (`copy_run`)."""
    out = str(tmp_path_factory.mktemp("hardening") / "run")
    training.train(
        "pixelcnn", "digits", out, epochs=2, learning_rate=1e-3, **RUN_KWARGS
    )
    return out


@pytest.fixture
def copy_run(two_epoch_run, tmp_path):
    import shutil

    def copy(name="run"):
        return shutil.copytree(two_epoch_run, str(tmp_path / name))

    return copy


@pytest.mark.tf_only
@pytest.mark.parametrize("checkpoint", ["epoch_002.keras", "epoch_001.keras"])
def test_resume_refuses_checkpoints_that_no_state_accounts_for(copy_run, checkpoint):
    out = copy_run()
    os.remove(os.path.join(out, "state.json"))
    checkpoints = os.path.join(out, "checkpoints")
    os.replace(
        os.path.join(checkpoints, "epoch_002.keras"),
        os.path.join(checkpoints, checkpoint),
    )
    before = snapshot(out)
    for resume in (True, False):
        with pytest.raises(
            FileExistsError,
            match=r"holds checkpoints its run state does not account for "
            rf"\({checkpoint}; it has no state.json committing any\)\. Refusing "
            r"to (resume|write into) it; nothing was changed",
        ):
            training.train(
                "pixelcnn", "digits", out, epochs=3, resume=resume, **RUN_KWARGS
            )
        assert snapshot(out) == before
    if checkpoint == "epoch_002.keras":
        return

    # With state.json: a checkpoint newer than the committed one plus one
    # (which a kill between saving and committing leaves) is refused too.
    out = copy_run("newer")
    checkpoints = os.path.join(out, "checkpoints")
    with open(os.path.join(checkpoints, "epoch_002.keras"), "rb") as f:
        data = f.read()
    with open(os.path.join(checkpoints, "epoch_004.keras"), "wb") as f:
        f.write(data)
    before = snapshot(out)
    with pytest.raises(
        FileExistsError,
        match=r"\(epoch_004.keras; its state.json commits epoch 2\)",
    ):
        training.train("pixelcnn", "digits", out, epochs=4, resume=True, **RUN_KWARGS)
    assert snapshot(out) == before


@pytest.mark.tf_only
def test_resume_drops_the_checkpoint_a_kill_left_uncommitted(copy_run, capsys):
    out = copy_run()
    checkpoints = os.path.join(out, "checkpoints")
    # Killed after renaming epoch 3's checkpoint, before committing it.
    with open(os.path.join(checkpoints, "epoch_002.keras"), "rb") as f:
        data = f.read()
    with open(os.path.join(checkpoints, "epoch_003.keras"), "wb") as f:
        f.write(data)
    kwargs = {**RUN_KWARGS, "verbose": 2}
    history = training.train("pixelcnn", "digits", out, epochs=3, resume=True, **kwargs)
    assert "Removed checkpoints/epoch_003.keras: written, but never committed" in (
        capsys.readouterr().out
    )
    state = training.read_state(out)
    assert state["epoch"] == 3
    assert [h["epoch"] for h in history.run_history] == [1, 2, 3]
    assert os.listdir(checkpoints) == ["epoch_003.keras"]
    with open(os.path.join(checkpoints, "epoch_003.keras"), "rb") as f:
        assert f.read() != data  # epoch 3 retrained and committed


@pytest.mark.tf_only
def test_overwrite_deletes_only_what_train_wrote(copy_run, tmp_path):
    # A directory this tool did not write is refused, whatever the flags.
    foreign = tmp_path / "foreign"
    (foreign / "logs").mkdir(parents=True)
    (foreign / "samples").mkdir()
    (foreign / "config.json").write_text('{"model": "mine"}')
    (foreign / "logs" / "app.log").write_text("log")
    (foreign / "samples" / "photo.png").write_bytes(b"png")
    before = snapshot(foreign)
    for flags, verb in (
        (dict(overwrite=True), "overwrite"),
        (dict(resume=True), "resume"),
        ({}, "write into"),
    ):
        with pytest.raises(
            FileExistsError,
            match=rf"{foreign} is not a pixel-keras run directory \(it holds "
            r"config.json, samples, logs, but no config.json or state.json written "
            rf"by pixel-keras\)\. Refusing to {verb} it; nothing was changed",
        ):
            training.train(
                "pixelcnn", "digits", str(foreign), epochs=1, **flags, **RUN_KWARGS
            )
        assert snapshot(foreign) == before

    # In a run directory, --overwrite deletes the run's files, not the user's.
    out = copy_run()
    mine = {
        "notes.txt": b"mine",
        os.path.join("samples", "photo.png"): b"png",
        os.path.join("logs", "app.log"): b"log",
        os.path.join("checkpoints", "README"): b"keep",
    }
    for name, content in mine.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(content)
    old_events = glob.glob(os.path.join(out, "logs", "*", "events.out.*"))
    assert old_events
    kwargs = {**RUN_KWARGS, "samples_per_epoch": 0}
    training.train("pixelcnn", "digits", out, epochs=1, overwrite=True, **kwargs)
    after = snapshot(out)
    for name, content in mine.items():
        assert after[name] == content
    assert training.read_state(out)["epoch"] == 1
    assert not any(os.path.exists(path) for path in old_events)
    assert sorted(os.listdir(os.path.join(out, "samples"))) == ["photo.png"]
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == [
        "README", "epoch_001.keras"
    ]  # fmt: skip
    config = training.read_config(out)
    assert config["tool"] == "pixel-keras" and training.is_run_dir(out)


@pytest.mark.tf_only
def test_retry_after_a_start_that_committed_nothing(two_epoch_run, tmp_path, capsys):
    import shutil

    # A start that failed before its first checkpoint leaves our config.json
    # (and maybe logs): a plain retry, or --resume, starts over.
    for resume in (False, True):
        out = str(tmp_path / f"failed_{resume}")
        os.makedirs(out)
        shutil.copy(os.path.join(two_epoch_run, "config.json"), out)
        kwargs = {**RUN_KWARGS, "verbose": 2}
        training.train("pixelcnn", "digits", out, epochs=1, resume=resume, **kwargs)
        assert f"Starting {out} over from epoch 0: a previous start stopped" in (
            capsys.readouterr().out
        )
        assert training.read_state(out)["epoch"] == 1

    # A run starts by committing epoch 0 (no checkpoint): killed after epoch
    # 1's checkpoint is in place but before it is committed, it starts over.
    out = str(tmp_path / "killed_in_first_commit")
    os.makedirs(os.path.join(out, "checkpoints"))
    shutil.copy(os.path.join(two_epoch_run, "config.json"), out)
    training._write_initial_state(out)
    assert training.read_state(out) is None
    shutil.copy(
        os.path.join(two_epoch_run, "checkpoints", "epoch_002.keras"),
        os.path.join(out, "checkpoints", "epoch_001.keras"),
    )
    kwargs = {**RUN_KWARGS, "verbose": 2}
    training.train("pixelcnn", "digits", out, epochs=1, resume=True, **kwargs)
    assert f"Starting {out} over from epoch 0" in capsys.readouterr().out
    assert training.read_state(out)["epoch"] == 1


@pytest.mark.tf_only
def test_a_run_directory_in_use_is_refused(tmp_path):
    out = str(tmp_path / "run")
    lock = training._lock_run_dir(out)
    try:
        if lock is None:
            pytest.skip("no flock on this platform or file system")
        with pytest.raises(FileExistsError, match="is in use by another training"):
            training.train("pixelcnn", "digits", out, epochs=1, **RUN_KWARGS)
    finally:
        training._unlock_run_dir(lock)
    assert os.listdir(out) == []


@pytest.mark.tf_only
def test_learning_rate_applies_on_resume(copy_run):
    out = copy_run()
    history = training.train(
        "pixelcnn",
        "digits",
        out,
        epochs=3,
        resume=True,
        learning_rate=5e-3,
        **RUN_KWARGS,
    )
    optimizer = history.model.optimizer
    assert float(optimizer.learning_rate) == pytest.approx(5e-3)
    assert int(optimizer.iterations.numpy()) == 6  # moments and steps kept
    assert training.read_config(out)["learning_rate"] == 5e-3


@pytest.mark.tf_only
def test_non_finite_loss_stops_before_committing(copy_run):
    out = copy_run()
    before = snapshot(out)
    with pytest.raises(
        training.TrainingDivergedError,
        match=r"Training diverged: `loss` is nan at epoch 3, step \d+\. Stopped "
        r"without committing epoch 3; the run keeps its last committed "
        r"checkpoint, epoch 2\. Lower the learning rate and resume\. "
        r"Received: loss=nan",
    ):
        training.train(
            "pixelcnn",
            "digits",
            out,
            epochs=3,
            resume=True,
            learning_rate=1e30,
            **RUN_KWARGS,
        )
    state = training.read_state(out)
    assert state["epoch"] == 2 and all(
        np.isfinite(value) for h in state["history"] for value in h.values()
    )
    assert os.listdir(os.path.join(out, "checkpoints")) == ["epoch_002.keras"]
    assert not os.path.exists(os.path.join(out, "samples", "epoch_003.png"))
    for name in ("state.json", os.path.join("checkpoints", "epoch_002.keras")):
        assert snapshot(out)[name] == before[name]
    # The last good checkpoint resumes.
    history = training.train(
        "pixelcnn",
        "digits",
        out,
        epochs=3,
        resume=True,
        learning_rate=1e-3,
        **RUN_KWARGS,
    )
    assert training.read_state(out)["epoch"] == 3
    assert np.isfinite(history.history["loss"][-1])


@pytest.mark.tf_only
@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_epoch_without_steps_is_refused(tmp_path, monkeypatch):
    make_dataset = training.make_dataset

    def empty_train_split(dataset, split, *args, **kwargs):
        ds = make_dataset(dataset, split, *args, **kwargs)
        return ds.take(0) if split.startswith("train") else ds

    from pixel_keras import data

    monkeypatch.setattr(data, "make_dataset", empty_train_split)
    out = str(tmp_path / "run")
    kwargs = {**RUN_KWARGS, "steps_per_epoch": None, "train_split": "train[:8]"}
    with pytest.raises(
        ValueError,
        match=r"Epoch 1 ran no training steps: the training split 'train\[:8\]' of "
        r"'digits' is empty\. Nothing was committed for it\. "
        r"Received: train_split='train\[:8\]'",
    ):
        training.train("pixelcnn", "digits", out, epochs=1, **kwargs)
    assert training.read_state(out) is None  # epoch 0 committed, nothing else
    assert not os.path.exists(os.path.join(out, "checkpoints"))


def test_evaluate_checks_the_data_set_and_batch_size():
    model = training.make_model(
        "pixelcnn", image_shape=(8, 8, 1), num_levels=17, **TINY
    )
    with pytest.raises(
        ValueError,
        match=r"The model expects images \(8, 8, 1\) with 17 levels; "
        r"'binarized_digits' has \(8, 8, 1\) with 2\. "
        r"Received: dataset='binarized_digits'",
    ):
        training.evaluate(model, "binarized_digits", "test[:8]")
    with pytest.raises(ValueError, match=r"'fashion_mnist' has \(28, 28, 1\) with 256"):
        training.evaluate(model, "fashion_mnist", "test[:8]")
    for batch_size in (0, -1, 2.5, True):
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"`batch_size` must be an int >= 1. Received: batch_size={batch_size!r}"
            ),
        ):
            training.evaluate(model, "digits", "test[:8]", batch_size=batch_size)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Evaluation needs at least one image, and the image array has none. "
            "Received: images.shape=(0, 8, 8, 1)"
        ),
    ):
        training.evaluate(model, np.zeros((0, 8, 8, 1), "uint8"))


def test_corrupt_checkpoint_and_config_name_the_file(tmp_path):
    model = training.make_model("pixelcnn", image_shape=(4, 4, 1), num_levels=2, **TINY)
    good = str(tmp_path / "good.keras")
    model.save(good)
    with open(good, "rb") as f:
        data = f.read()
    truncated = str(tmp_path / "truncated.keras")
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Checkpoint {truncated} is corrupt or unreadable: a `.keras` "
            "file must be a zip archive written by `model.save`"
        ),
    ):
        training.load_checkpoint(truncated)
    with pytest.raises(ValueError, match=re.escape(f"Checkpoint {truncated} is")):
        training.evaluate(truncated, "digits", "test[:8]")

    (tmp_path / "config.json").write_text('{"model": ')
    path = str(tmp_path / "config.json")
    with pytest.raises(ValueError, match=re.escape(f"Unreadable run config {path}: ")):
        training.read_config(str(tmp_path))
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Unreadable run config {path}: expected a JSON object. Received: list"
        ),
    ):
        training.read_config(str(tmp_path))
