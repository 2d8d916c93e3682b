import math
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from pixel_keras import losses
from pixel_keras.models import PixelCNN
from pixel_keras.testing import check_causality

SMALL = dict(hidden_maps=8, num_residual_blocks=2, output_maps=16)


def small_model(shape=(6, 6, 1), num_levels=256, **kwargs):
    return PixelCNN(image_shape=shape, num_levels=num_levels, **{**SMALL, **kwargs})


def random_images(shape, num_levels, n=3, seed=0):
    return np.random.default_rng(seed).integers(0, num_levels, size=(n, *shape))


def log_softmax_oracle(logits, images):
    logits = logits.astype("float64")
    log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(
        -1
    )
    picked = np.take_along_axis(logits, images[..., None].astype(int), -1)[..., 0]
    return (picked - log_z).sum(axis=(1, 2, 3))


@pytest.mark.parametrize("shape", [(6, 6, 1), (5, 7, 3)])
@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_output_shape(shape, num_levels):
    model = small_model(shape, num_levels)
    logits = model(random_images(shape, num_levels))
    assert tuple(logits.shape) == (3, *shape, num_levels)


def test_parameter_count_formula():
    h, n, out, c, k = 8, 2, 16, 3, 256
    model = PixelCNN(
        (8, 8, c), k, hidden_maps=h, num_residual_blocks=n, output_maps=out
    )
    first = 7 * 7 * c * 2 * h + 2 * h
    block = (2 * h * h + h) + (9 * h * h + h) + (h * 2 * h + 2 * h)
    head = (2 * h * out + out) + (out * c * k + c * k)
    assert model.count_params() == first + n * block + head


@pytest.mark.parametrize("shape", [(7, 7, 1), (6, 6, 3)])
def test_causality_at_init(shape):
    model = small_model(shape)

    def must_see(i, j):
        # The 7x7 mask-A conv sees the row above, three columns either side.
        return [
            (i - 1, jj) for jj in range(max(0, j - 3), min(shape[1], j + 4)) if i > 0
        ]

    assert check_causality(model, must_see=must_see) > 0


def test_uniform_logits_give_log2_levels_bits_per_dim():
    for num_levels in (2, 17, 256):
        model = small_model((4, 5, 3), num_levels)
        last = model.get_layer(f"{model.name}_out_conv_2")
        last.kernel.assign(np.zeros(last.kernel.shape, "float32"))
        last.bias.assign(np.zeros(last.bias.shape, "float32"))
        bpd = model.bits_per_dim(random_images((4, 5, 3), num_levels))
        np.testing.assert_allclose(bpd, math.log2(num_levels), rtol=1e-6)


@pytest.mark.parametrize("shape", [(6, 6, 1), (4, 4, 3)])
def test_log_prob_matches_log_softmax_oracle(shape):
    model = small_model(shape, 256)
    images = random_images(shape, 256, n=4)
    logits = keras.ops.convert_to_numpy(model(images))
    want = log_softmax_oracle(logits, images)
    np.testing.assert_allclose(model.log_prob(images), want, rtol=1e-5)
    np.testing.assert_allclose(
        model.bits_per_dim(images), -want / (math.prod(shape) * math.log(2)), rtol=1e-5
    )


def test_loss_is_mean_nll_in_nats():
    model = small_model((4, 4, 3), 17)
    images = random_images((4, 4, 3), 17, n=5)
    logits = model(images)
    loss = keras.ops.convert_to_numpy(losses.PixelNLL()(images, logits))
    np.testing.assert_allclose(loss, -model.log_prob(images).mean(), rtol=1e-5)
    metric = losses.BitsPerDim()
    metric.update_state(images, logits)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(metric.result()),
        model.bits_per_dim(images).mean(),
        rtol=1e-5,
    )


@pytest.mark.tf_only
def test_tfp_distribution_equals_keras_ops_formula():
    from pixel_keras import distributions

    model = small_model((4, 4, 3), 256)
    images = random_images((4, 4, 3), 256, n=4)
    logits = model(images)
    dist = distributions.pixel_distribution(logits)
    assert tuple(dist.event_shape) == (4, 4, 3)
    assert tuple(dist.batch_shape) == (4,)
    tfp_lp = keras.ops.convert_to_numpy(dist.log_prob(images))
    ops_lp = -keras.ops.convert_to_numpy(losses.nll_per_image(images, logits))
    np.testing.assert_allclose(tfp_lp, ops_lp, rtol=1e-6)


def test_rgb_sub_pixel_dependencies():
    shape = (4, 4, 3)
    model = small_model(shape, 256, hidden_maps=16, output_maps=32)
    base = random_images(shape, 256, n=1, seed=3)
    i, j = 2, 1

    def logits_at(images):
        return keras.ops.convert_to_numpy(model(images))[0, i, j]

    ref = logits_at(base)
    changed = {}
    for c in range(3):
        img = base.copy()
        img[0, i, j, c] = (img[0, i, j, c] + 128) % 256
        changed[c] = logits_at(img)
    # R logits ignore this pixel's R, G and B.
    for c in range(3):
        np.testing.assert_array_equal(changed[c][0], ref[0])
    # G logits change with R only.
    assert not np.allclose(changed[0][1], ref[1])
    np.testing.assert_array_equal(changed[1][1], ref[1])
    np.testing.assert_array_equal(changed[2][1], ref[1])
    # B logits change with R and G, not with B.
    assert not np.allclose(changed[0][2], ref[2])
    assert not np.allclose(changed[1][2], ref[2])
    np.testing.assert_array_equal(changed[2][2], ref[2])


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((2, 6, 6, 1), "float32"), "must be integer images"),
        (np.full((2, 6, 6, 1), 17), r"values must lie in \[0, 16\]"),
        (np.full((2, 6, 6, 1), -1), r"values must lie in \[0, 16\]"),
        (np.zeros((6, 6, 1), "int32"), "must have rank 4"),
        (np.zeros((2, 6, 5, 1), "int32"), r"image shape \(6, 6, 1\)"),
        (np.zeros((2, 6, 6, 3), "uint8"), r"image shape \(6, 6, 1\)"),
    ],
)
def test_bad_images_raise(images, match):
    model = small_model((6, 6, 1), 17)
    with pytest.raises(ValueError, match=match):
        model.log_prob(images)
    with pytest.raises(ValueError, match=match):
        model.bits_per_dim(images)


def test_uint8_and_int_inputs_agree():
    model = small_model((6, 6, 1), 256)
    images = random_images((6, 6, 1), 256)
    np.testing.assert_allclose(
        model.log_prob(images.astype("uint8")), model.log_prob(images.astype("int64"))
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (6, 6)}, "image_shape"),
        ({"num_levels": 1}, "num_levels"),
        ({"num_levels": 257}, "num_levels"),
        ({"image_shape": (6, 6, 3), "hidden_maps": 2}, "hidden_maps"),
        ({"num_residual_blocks": -1}, "num_residual_blocks"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PixelCNN(**{**SMALL, **kwargs})


def test_config_round_trip_and_keras_save_load(tmp_path):
    model = small_model((5, 5, 3), 17)
    images = random_images((5, 5, 3), 17)
    config = model.get_config()
    clone = PixelCNN.from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()

    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, PixelCNN)
    np.testing.assert_allclose(
        restored.log_prob(images), model.log_prob(images), rtol=1e-6
    )
    np.testing.assert_array_equal(
        restored.sample(2, seed=5, verbose=0), model.sample(2, seed=5, verbose=0)
    )


def test_fit_lowers_loss_on_real_digits():
    from sklearn.datasets import load_digits

    images = load_digits().images.astype("int32")[:512, :, :, None]  # 17 levels
    model = PixelCNN(
        (8, 8, 1), 17, hidden_maps=16, num_residual_blocks=2, output_maps=32
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, images, batch_size=64, epochs=4, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < loss[0] - 10.0  # nats/image
    bpd = history.history["bits_per_dim"]
    np.testing.assert_allclose(bpd[-1], loss[-1] / (64 * math.log(2)), rtol=1e-3)


@pytest.mark.tf_only
def test_same_numbers_under_jax_backend(tmp_path):
    """Weights saved under TensorFlow give the same log_prob under JAX."""
    pytest.importorskip("jax")
    model = small_model((5, 5, 3), 256)
    images = random_images((5, 5, 3), 256, n=4)
    weights = str(tmp_path / "w.weights.h5")
    model.save_weights(weights)
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from pixel_keras.models import PixelCNN
        model = PixelCNN(image_shape=(5, 5, 3), num_levels=256, **{SMALL!r})
        model.load_weights({weights!r})
        images = np.load({str(tmp_path / "images.npy")!r})
        np.save({str(tmp_path / "jax_lp.npy")!r}, model.log_prob(images))
        np.save({str(tmp_path / "jax_samples.npy")!r}, model.sample(2, seed=7, verbose=0))
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    np.testing.assert_allclose(
        np.load(tmp_path / "jax_lp.npy"), model.log_prob(images), rtol=1e-5
    )
    np.testing.assert_array_equal(
        np.load(tmp_path / "jax_samples.npy"), model.sample(2, seed=7, verbose=0)
    )


def test_loaded_model_is_compiled_with_optimizer_state(tmp_path):
    model = small_model((4, 4, 1), 17)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = random_images((4, 4, 1), 17, n=8)
    model.fit(images, images, epochs=1, verbose=0)
    path = str(tmp_path / "compiled.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.loss, losses.PixelNLL)
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 1
    np.testing.assert_allclose(
        restored.evaluate(images, images, verbose=0),
        model.evaluate(images, images, verbose=0),
        rtol=1e-6,
    )


# ---- direct calls and empty batches: checked like log_prob ------------------
@pytest.mark.parametrize(
    "images, match",
    [
        (
            np.full((2, 6, 6, 1), 0.5, "float32"),
            r"`images` must be integer images with values in \[0, 16\] .* "
            r"Received: images\.dtype=float32",
        ),
        (
            np.full((2, 6, 6, 1), 17),
            r"`images` values must lie in \[0, 16\] \(num_levels=17\)\. "
            r"Received: images values in \[17, 17\]",
        ),
        (
            np.full((2, 6, 6, 1), -3),
            r"Received: images values in \[-3, -3\]",
        ),
        (
            np.zeros((0, 6, 6, 1), "int32"),
            r"`images` must hold at least one image \(batch size >= 1\)\. "
            r"Received: images\.shape=\(0, 6, 6, 1\)",
        ),
        (
            np.full((2, 6, 6, 1), "1"),
            r"`images` must be integer images .* Received: images\.dtype=<U1",
        ),
        (np.zeros((2, 6, 5, 1), "int32"), r"Received: images\.shape=\(2, 6, 5, 1\)"),
    ],
)
def test_direct_calls_check_concrete_inputs(images, match):
    import tensorflow as tf

    model = small_model((6, 6, 1), 17)
    with pytest.raises(ValueError, match=match):
        model(images)
    if images.dtype.kind in "iuf":
        with pytest.raises(ValueError, match=match):
            model(tf.constant(images))  # eager tensors are concrete too
    with pytest.raises(ValueError, match=match):
        model.log_prob(images)
    with pytest.raises(ValueError, match=match):
        model.bits_per_dim(images)


@pytest.mark.tf_only  # traces with tf.function
def test_compiled_calls_check_statically_only():
    """Inside a traced function (fit, evaluate, tf.function) values are not
    checked (no cost per step); dtype and shape still are, at trace time."""
    import tensorflow as tf

    model = small_model((6, 6, 1), 17)
    traced = tf.function(lambda x: model(x))
    out = traced(tf.constant(np.full((2, 6, 6, 1), 20, "int32")))  # unchecked
    assert tuple(out.shape) == (2, 6, 6, 1, 17)
    with pytest.raises(ValueError, match="must be integer images"):
        traced(tf.zeros((2, 6, 6, 1), tf.float32))
    with pytest.raises(ValueError, match=r"image shape \(6, 6, 1\)"):
        traced(tf.zeros((2, 6, 5, 1), tf.int32))


@pytest.mark.parametrize("batch_size", [0, -1, True, 2.5, "8"])
def test_log_prob_batch_size_must_be_an_int_ge_1(batch_size):
    model = small_model((6, 6, 1), 17)
    images = random_images((6, 6, 1), 17)
    with pytest.raises(
        ValueError,
        match=rf"`batch_size` must be an int >= 1\. "
        rf"Received: batch_size={re.escape(repr(batch_size))}$",
    ):
        model.log_prob(images, batch_size=batch_size)
    with pytest.raises(ValueError, match=r"`batch_size` must be an int >= 1\."):
        model.bits_per_dim(images, batch_size=batch_size)
