"""The training recipe and the speed levers: fused NLL, bits/dim from the loss,
bfloat16 precision, the optimizer
(warm-up/cosine schedule, clipping, a warmed-up weight average)."""

import json
import math
import os
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from pixel_keras import losses, optimizers, precision, zoo


def _images(model, n, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randint(0, model.num_levels, (n, *model.image_shape)).astype("int32")


# ---- speed levers: same numbers ------------------------------------------
def test_nll_equals_log_softmax_gather():
    rng = np.random.RandomState(0)
    logits = rng.normal(size=(3, 4, 5, 2, 7)).astype("float32") * 3
    images = rng.randint(0, 7, (3, 4, 5, 2))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probs, images[..., None], -1).sum((1, 2, 3, 4))
    got = ops.convert_to_numpy(losses.nll_per_image(images, logits))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.tf_only
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_nll_gradient_is_softmax_minus_one_hot(dtype):
    # On TensorFlow the NLL and its gradient are XLA-compiled kernels
    # (`pixel_keras._tf_fused`) with a hand-written gradient.
    import tensorflow as tf

    rng = np.random.RandomState(1)
    logits = tf.cast(rng.normal(size=(3, 4, 5, 2, 7)).astype("float32") * 3, dtype)
    images = rng.randint(0, 7, (3, 4, 5, 2))
    weights = rng.uniform(0.5, 2.0, size=3).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(logits)
        nll = losses.nll_per_image(images, logits)
        loss = tf.reduce_sum(nll * weights)
    grad = tape.gradient(loss, logits)
    assert nll.dtype == tf.float32 and grad.dtype == logits.dtype
    z = np.asarray(tf.cast(logits, "float64"))
    softmax = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    one_hot = np.eye(7)[images]
    want = (softmax - one_hot) * weights[:, None, None, None, None]
    expected = -np.take_along_axis(
        np.log(softmax), images[..., None], -1
    ).sum((1, 2, 3, 4))
    got = np.asarray(tf.cast(grad, "float64"))
    if dtype == "float32":
        np.testing.assert_allclose(nll, expected, rtol=1e-5)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        # The loss in float32 from the bfloat16 logits; the gradient rounded
        # to bfloat16 once.
        np.testing.assert_allclose(nll, expected, rtol=1e-5)
        np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-3)


@pytest.mark.tf_only
@pytest.mark.parametrize("bad", [-1, 7])
def test_nll_rejects_images_out_of_range(bad):
    import tensorflow as tf

    logits = np.zeros((1, 2, 2, 1, 7), "float32")
    images = np.zeros((1, 2, 2, 1), "int32")
    images[0, 1, 0, 0] = bad
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_levels - 1"):
        losses.nll_per_image(images, logits)


def test_default_metric_is_bits_per_dim_derived_from_the_loss():
    model = zoo.load("test_pixelcnn", weights=False)
    x = _images(model, 8)
    model.compile(optimizer="adam")
    assert model.get_compile_config()["metrics"] == "auto"
    logs = model.fit(x, x, batch_size=4, epochs=1, validation_data=(x, x), verbose=0)
    logs = {k: v[0] for k, v in logs.history.items()}
    dims = math.prod(model.image_shape) * math.log(2.0)
    assert logs["bits_per_dim"] == pytest.approx(logs["loss"] / dims, rel=1e-6)
    assert logs["val_bits_per_dim"] == pytest.approx(
        float(np.mean(model.bits_per_dim(x))), rel=1e-5
    )


def test_explicit_metrics_and_regularizers_keep_the_metric():
    model = zoo.load("test_pixelcnn", weights=False)
    model.compile(optimizer="adam", metrics=[losses.BitsPerDim()])
    assert not model._bits_per_dim_from_loss
    x = _images(model, 4)
    logs = model.fit(x, x, batch_size=4, epochs=1, verbose=0).history
    assert "bits_per_dim" in logs


# ---- precision ---------------------------------------------------------------
def test_resolve_policy(monkeypatch):
    assert precision.resolve_policy("float32") == "float32"
    assert precision.resolve_policy("mixed_bfloat16") == "mixed_bfloat16"
    monkeypatch.setenv("PIXEL_KERAS_PRECISION", "mixed_bfloat16")
    assert precision.resolve_policy("auto") == "mixed_bfloat16"
    monkeypatch.setenv("PIXEL_KERAS_PRECISION", "auto")
    monkeypatch.setattr(precision, "native_bfloat16", lambda: False)
    assert precision.resolve_policy("auto") == "float32"
    with pytest.raises(
        ValueError, match=r"must be one of .* Received: precision='fp16'"
    ):
        precision.resolve_policy("fp16")


def test_elementwise_dtype_is_at_least_float32():
    assert precision.elementwise_dtype("bfloat16") == "float32"
    assert precision.elementwise_dtype("float16") == "float32"
    assert precision.elementwise_dtype("float32") == "float32"
    assert precision.elementwise_dtype("float64") == "float64"


def test_policy_scope_restores_the_global_policy():
    before = keras.config.dtype_policy().name
    with precision.policy_scope("mixed_bfloat16"):
        model = zoo.load("test_pixelcnn", weights=False)
    assert keras.config.dtype_policy().name == before
    assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {
        "mixed_bfloat16"
    }
    x = _images(model, 2)
    # Losses stay float32; a saved model comes back in float32.
    assert ops.convert_to_numpy(model.log_prob(x)).dtype == np.float32


# ---- optimizer ----------------------------------------------------------------
def test_weight_average_warms_up():
    var = keras.Variable(np.zeros(3, "float32"))
    opt = optimizers.Adam(0.1, use_ema=True, ema_momentum=0.999)
    opt.build([var])
    average = opt._model_variables_moving_average[0]
    for step in range(3):
        before = np.array(average)
        opt.apply([np.ones(3, "float32")], [var])
        momentum = min(0.999, (1 + step) / (10 + step))
        expected = momentum * before + (1 - momentum) * np.array(var)
        np.testing.assert_allclose(np.array(average), expected, rtol=1e-5)
    # Keras' fixed momentum, for comparison: the average barely moves.
    fixed = optimizers.Adam(0.1, use_ema=True, ema_momentum=0.999, ema_warmup=False)
    assert fixed.get_config()["ema_warmup"] is False
    clone = optimizers.Adam.from_config(opt.get_config())
    assert clone.ema_warmup is True and clone.ema_momentum == 0.999


def test_learning_rate_schedules():
    assert optimizers.learning_rate_schedule(0.01, 100) == 0.01
    cosine = optimizers.learning_rate_schedule(0.01, 110, "cosine", warmup_steps=10)
    assert float(cosine(0)) == pytest.approx(0.0, abs=1e-9)
    assert float(cosine(10)) == pytest.approx(0.01, rel=1e-5)
    assert float(cosine(60)) == pytest.approx(0.005, rel=1e-4)
    assert float(cosine(110)) == pytest.approx(0.0, abs=1e-7)
    flat = optimizers.learning_rate_schedule(0.01, 100, "constant", warmup_steps=4)
    assert float(flat(2)) == pytest.approx(0.005, rel=1e-5)
    assert float(flat(50)) == pytest.approx(0.01, rel=1e-5)


def test_wall_clock_learning_rate():
    rate = optimizers.wall_clock_learning_rate
    assert rate(0.01, 0, 0.0, 100.0, "constant") == 0.01
    assert rate(0.01, 0, 0.0, 100.0, "constant", warmup_steps=4) == pytest.approx(
        0.0025
    )
    assert rate(0.01, 10, 50.0, 100.0) == pytest.approx(0.005)
    assert rate(0.01, 10, 100.0, 100.0) == pytest.approx(0.0, abs=1e-12)
    assert rate(0.01, 10, 250.0, 100.0) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(
        ValueError, match=r"`schedule` must be one of .* Received: schedule='linear'"
    ):
        rate(0.01, 0, 0.0, 100.0, "linear")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"schedule": "linear"},
            r"`lr_schedule` must be one of .* Received: lr_schedule=",
        ),
        ({"warmup_steps": -1}, r"`warmup_steps` must be an int >= 0\. Received: "),
        ({"clipnorm": 0.0}, r"`clipnorm` must be None or a finite .* Received: "),
        ({"clipnorm": math.inf}, r"`clipnorm` must be None or a finite .* Received: "),
        ({"ema_momentum": 1.0}, r"`ema_momentum` must be None or .* Received: "),
        ({"schedule": "cosine"}, r"needs the run's length\. Received: total_steps"),
    ],
)
def test_make_optimizer_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimizers.make_optimizer(1e-3, **kwargs)


# ---- the recipe through train() ----------------------------------------------
def _tiny_run(**overrides):
    """`train` arguments for a tiny PixelCNN on a few digits, plus overrides."""
    return dict(
        model_config=dict(hidden_maps=8, num_residual_blocks=1, output_maps=16),
        batch_size=16,
        verbose=0,
        **overrides,
    )


@pytest.mark.tf_only
def test_train_with_the_recipe_and_bfloat16(tmp_path):
    from pixel_keras import training

    out = str(tmp_path / "run")
    kwargs = _tiny_run(
        steps_per_epoch=3,
        train_split="train[:96]",
        test_split="test[:32]",
        samples_per_epoch=4,
        precision="mixed_bfloat16",
        lr_schedule="cosine",
        warmup_steps=2,
        clipnorm=1.0,
        ema_momentum=0.99,
    )
    training.train("pixelcnn", "digits", out, epochs=1, **kwargs)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["precision"] == "mixed_bfloat16" and config["ema_momentum"] == 0.99
    # A sample grid per epoch also goes to TensorBoard.
    assert os.listdir(os.path.join(out, "logs", "samples"))

    averaged = training.load_checkpoint(out)
    raw = training.load_checkpoint(out, ema=False)
    assert {layer.dtype_policy.name for layer in averaged._flatten_layers()} == {
        "float32"
    }
    diffs = [
        np.abs(a - b).max()
        for a, b in zip(averaged.get_weights(), raw.get_weights(), strict=True)
    ]
    assert max(diffs) > 0  # the average is not the last iterate
    x = _images(averaged, 4)
    result = training.evaluate(averaged, x)
    assert math.isfinite(result["bits_per_dim"])

    history = training.train("pixelcnn", "digits", out, epochs=2, resume=True, **kwargs)
    assert [h["epoch"] for h in history.run_history] == [1, 2]
    assert int(history.model.optimizer.iterations.numpy()) == 6
    with pytest.raises(ValueError, match=r"weight averaging switched off.*Received: "):
        training.train(
            "pixelcnn",
            "digits",
            out,
            epochs=3,
            resume=True,
            **{**kwargs, "ema_momentum": None},
        )
    with pytest.raises(
        ValueError, match=r"Cannot resume with a constant learning rate.*Received: "
    ):
        training.train(
            "pixelcnn",
            "digits",
            out,
            epochs=3,
            resume=True,
            **{**kwargs, "lr_schedule": "constant", "warmup_steps": 0},
        )
    # The mechanism under both checks: an optimizer state that Keras would
    # skip (a constant rate is a variable, a schedule is not) is an error.
    from pixel_keras.training.checkpoints import _load_for_resume

    checkpoint = training.read_state(out)["checkpoint_path"]
    constant = optimizers.make_optimizer(0.002, ema_momentum=0.99)
    with (
        pytest.raises(
            ValueError, match=r"optimizer state .* does not fit this run's optimizer"
        ),
        warnings.catch_warnings(),
    ):
        # One error, without Keras' "Skipping variable loading" warning too.
        warnings.simplefilter("error", UserWarning)
        _load_for_resume(checkpoint, constant)


# ---- data-dependent output bias -------------------------------------------
@pytest.mark.parametrize(
    "name, config",
    [
        ("pixelcnn", dict(hidden_maps=8, num_residual_blocks=1, output_maps=16)),
        ("gated_pixelcnn", dict(hidden_maps=8, num_layers=2, output_maps=16)),
        ("row_lstm", dict(hidden_maps=8, num_layers=1, output_maps=16)),
    ],
)
def test_init_output_bias_is_the_log_marginal_per_channel(name, config):
    from pixel_keras.training import make_model

    model = make_model(name, image_shape=(4, 4, 3), num_levels=8, **config)
    rng = np.random.RandomState(0)
    images = rng.randint(0, 8, (5, 4, 4, 3)).astype("uint8")
    images[..., 1] = np.minimum(images[..., 1], 2)  # levels 3-7 never occur
    before = model.log_prob(images)
    bias = model.init_output_bias(images, smoothing=0.5)
    for c in range(3):
        counts = np.bincount(images[..., c].ravel(), minlength=8) + 0.5
        expected = np.log(counts / counts.sum())
        np.testing.assert_allclose(bias[c * 8 : (c + 1) * 8], expected, rtol=1e-6)
    np.testing.assert_allclose(
        ops.convert_to_numpy(model.output_convs[-1].bias), bias, rtol=1e-6
    )
    # Only the bias changed, and toward the data: more likely than before.
    assert np.mean(model.log_prob(images)) > np.mean(before)


def test_init_output_bias_rejects_bad_input():
    from pixel_keras.training import make_model

    model = make_model(
        "pixelcnn",
        image_shape=(4, 4, 1),
        num_levels=4,
        hidden_maps=4,
        num_residual_blocks=1,
        output_maps=8,
    )
    bias = ops.convert_to_numpy(model.output_convs[-1].bias).copy()
    zeros = np.zeros((2, 4, 4, 1), "uint8")
    with pytest.raises(
        ValueError, match=r"pass `smoothing` > 0\. Received: smoothing=0"
    ):
        model.init_output_bias(zeros, smoothing=0)
    for smoothing in (-1, float("nan"), True, "1"):
        with pytest.raises(
            ValueError, match=r"finite number >= 0\. Received: smoothing="
        ):
            model.init_output_bias(zeros, smoothing=smoothing)
    with pytest.raises(ValueError, match=r"values must lie in \[0, 3\]"):
        model.init_output_bias(zeros + 4)
    with pytest.raises(ValueError, match=r"image shape \(4, 4, 1\)"):
        model.init_output_bias(np.zeros((2, 4, 4, 3), "uint8"))
    # Nothing was written by the refused calls.
    np.testing.assert_array_equal(
        ops.convert_to_numpy(model.output_convs[-1].bias), bias
    )


@pytest.mark.tf_only
def test_train_with_marginal_output_bias(tmp_path):
    from pixel_keras import data, training

    out = str(tmp_path / "run")
    kwargs = _tiny_run(
        steps_per_epoch=1,
        train_split="train[:64]",
        test_split="test[:16]",
        samples_per_epoch=0,
        learning_rate=1e-9,  # one step that barely moves the bias
    )
    history = training.train(
        "pixelcnn", "digits", out, epochs=1, output_bias="marginal", **kwargs
    )
    assert training.read_config(out)["output_bias"] == "marginal"
    images, _ = data.to_numpy(data.load("digits", "train[:64]"))
    counts = np.bincount(images.ravel(), minlength=17) + 1.0
    np.testing.assert_allclose(
        ops.convert_to_numpy(history.model.output_convs[-1].bias),
        np.log(counts / counts.sum()),
        atol=1e-4,
    )
    # A resumed run keeps the value it started with on record.
    training.train("pixelcnn", "digits", out, epochs=2, resume=True, **kwargs)
    assert training.read_config(out)["output_bias"] == "marginal"
    with pytest.raises(ValueError, match=r"`output_bias` must be one of .*Received: "):
        training.train(
            "pixelcnn", "digits", str(tmp_path / "x"), output_bias="data", **kwargs
        )
