import re

import keras
import numpy as np
import pytest

from pixel_keras import sampling
from pixel_keras.models import PixelCNN


def tiny(shape=(4, 4, 3), num_levels=17):
    return PixelCNN(
        shape, num_levels, hidden_maps=8, num_residual_blocks=1, output_maps=16
    )


def fixed_distribution_model(probs, shape=(3, 3, 1)):
    """A PixelCNN whose every sub-pixel is Categorical(probs), independent."""
    model = PixelCNN(
        shape, len(probs), hidden_maps=4, num_residual_blocks=0, output_maps=4
    )
    last = model.get_layer(f"{model.name}_out_conv_2")
    last.kernel.assign(np.zeros(last.kernel.shape, "float32"))
    bias = np.tile(np.log(np.asarray(probs, "float32")), shape[-1])
    last.bias.assign(bias)
    return model


def test_shape_dtype_range_and_determinism():
    model = tiny()
    a = model.sample(3, seed=11, verbose=0)
    assert a.shape == (3, 4, 4, 3) and a.dtype == np.uint8
    assert a.min() >= 0 and a.max() <= 16
    np.testing.assert_array_equal(a, model.sample(3, seed=11, verbose=0))
    assert not np.array_equal(a, model.sample(3, seed=12, verbose=0))


def test_sample_depends_only_on_its_own_seed():
    model = tiny()
    seeds = sampling.per_sample_seeds(4, seed=3)
    batch = model.sample(4, seed=seeds, verbose=0)
    single = model.sample(1, seed=seeds[2:3], verbose=0)
    np.testing.assert_array_equal(batch[2:3], single)
    # An int seed derives per-sample seeds independent of the batch size.
    np.testing.assert_array_equal(model.sample(2, seed=3, verbose=0), batch[:2])


def test_completion_keeps_known_sub_pixels():
    model = tiny()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 17, size=(2, 4, 4, 3))
    mask = np.zeros_like(images)
    mask[:, :2] = 1  # top half known
    mask[:, 3, 3, 1] = 1  # and one isolated sub-pixel
    out = model.sample(2, seed=1, conditioned_on=(images, mask), verbose=0)
    np.testing.assert_array_equal(out[mask == 1], images[mask == 1])
    # With everything known, nothing changes.
    full = model.sample(
        2, seed=1, conditioned_on=(images, np.ones_like(images)), verbose=0
    )
    np.testing.assert_array_equal(full, images)


def test_frequencies_match_the_model_distribution():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    model = fixed_distribution_model(probs)
    samples = model.sample(400, seed=0, verbose=0).ravel()  # 3600 draws
    freq = np.bincount(samples, minlength=4) / samples.size
    # 4-sigma binomial bounds.
    sigma = np.sqrt(probs * (1 - probs) / samples.size)
    assert np.all(np.abs(freq - probs) < 4 * sigma), freq


def test_low_temperature_is_greedy():
    model = fixed_distribution_model([0.1, 0.6, 0.3])
    out = model.sample(8, seed=0, temperature=1e-3, verbose=0)
    assert np.all(out == 1)


def test_gumbel_noise_statistics_and_backend_stability():
    seeds = keras.ops.convert_to_tensor(sampling.per_sample_seeds(2000, seed=0))
    noise = keras.ops.convert_to_numpy(
        sampling.gumbel_noise(seeds, keras.ops.convert_to_tensor(np.int32(5)), 8)
    )
    assert noise.shape == (2000, 8)
    np.testing.assert_allclose(noise.mean(), np.euler_gamma, atol=0.02)
    np.testing.assert_allclose(noise.var(), np.pi**2 / 6, rtol=0.05)
    # Different steps give different noise.
    other = keras.ops.convert_to_numpy(
        sampling.gumbel_noise(seeds, keras.ops.convert_to_tensor(np.int32(6)), 8)
    )
    assert not np.allclose(noise, other)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": 2, "temperature": 0.0}, "temperature"),
        ({"num_samples": 2, "seed": [1, 2, 3]}, "seed"),
        ({"num_samples": 2, "conditioned_on": np.zeros((2, 4, 4, 3), "int32")}, "pair"),
    ],
)
def test_bad_sampling_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny().sample(verbose=0, **kwargs)


def test_completion_rejects_bad_images():
    model = tiny()
    images = np.zeros((2, 4, 4, 3), "float32")
    with pytest.raises(ValueError, match="integer"):
        model.sample(2, conditioned_on=(images, np.ones_like(images)), verbose=0)
    images = np.zeros((2, 4, 4, 3), "int32")
    with pytest.raises(ValueError, match="mask"):
        model.sample(2, conditioned_on=(images, np.ones((2, 4, 4, 1))), verbose=0)


def test_naive_sampler_follows_weight_updates():
    """A compiled sampler must not keep the weights it was traced with (JAX)."""
    model = tiny((4, 4, 1), 17)
    model.sample(2, seed=0, verbose=0)  # compiles the sampler
    last = model.get_layer(f"{model.name}_out_conv_2")
    last.kernel.assign(keras.ops.convert_to_numpy(last.kernel) * 10.0)
    fresh = PixelCNN.from_config(model.get_config())
    fresh.set_weights(model.get_weights())
    np.testing.assert_array_equal(
        model.sample(2, seed=0, verbose=0), fresh.sample(2, seed=0, verbose=0)
    )


def test_naive_steps_and_naive_step_reproduce_the_driver():
    """`naive_steps` (any bounds, not only whole rows) and a loop of
    `naive_step` draw the images of `model.sample(method="naive")`."""
    from keras import ops

    model = tiny((3, 3, 2), 17)
    expected = model.sample(2, seed=4, temperature=0.8, verbose=0, method="naive")
    seeds = ops.convert_to_tensor(sampling.per_sample_seeds(2, 4))
    temperature = ops.convert_to_tensor(np.float32(0.8))
    given = ops.convert_to_tensor(np.zeros((2, 18), "int32"))
    known = ops.convert_to_tensor(np.zeros((2, 18), bool))
    canvas = ops.convert_to_tensor(np.zeros((2, 3, 3, 2), "int32"))
    for start, stop in ((0, 5), (5, 13), (13, 18)):
        canvas = sampling.naive_steps(
            model.logits, canvas, start, stop, seeds, temperature, given, known
        )
    np.testing.assert_array_equal(ops.convert_to_numpy(canvas), expected)
    canvas = ops.convert_to_tensor(np.zeros((2, 3, 3, 2), "int32"))
    for step in range(18):
        canvas, logits = sampling.naive_step(
            model.logits, canvas, np.int32(step), seeds, temperature
        )
        assert tuple(logits.shape) == (2, 17)
    np.testing.assert_array_equal(ops.convert_to_numpy(canvas), expected)


# ---- bad arguments: what must hold and what was received --------------------
TEMPERATURE_RULE = (
    r"`temperature` must be a finite number > 0 .* Received: temperature="
)


@pytest.mark.parametrize(
    "temperature",
    [float("inf"), float("-inf"), float("nan"), 0.0, -1.0, 1e-50, 1e39, True, "1"],
)
@pytest.mark.parametrize("method", ["cached", "naive"])
def test_temperature_must_be_finite_and_positive(temperature, method):
    with pytest.raises(ValueError, match=TEMPERATURE_RULE):
        tiny().sample(2, temperature=temperature, method=method, verbose=0)


def test_numpy_temperatures_are_numbers():
    model = tiny()
    np.testing.assert_array_equal(
        model.sample(2, seed=0, temperature=np.float32(0.5), verbose=0),
        model.sample(2, seed=0, temperature=0.5, verbose=0),
    )


@pytest.mark.parametrize("num_samples", [0, -1, True, 2.0, "2", None])
def test_num_samples_must_be_a_positive_int(num_samples):
    with pytest.raises(
        ValueError,
        match=rf"`num_samples` must be a positive int .* "
        rf"Received: num_samples={re.escape(repr(num_samples))}$",
    ):
        tiny().sample(num_samples, verbose=0)


@pytest.mark.parametrize(
    "seed", [True, 1.5, "a", [1, 2, 3], [[1, 2]], [1.0, 2.0], [True, False]]
)
def test_seed_must_be_none_an_int_or_one_int_per_sample(seed):
    with pytest.raises(
        ValueError,
        match=r"`seed` must be None, an int, or a sequence of one int per sample "
        r"\(num_samples=2\)\. Received: seed=",
    ):
        tiny().sample(2, seed=seed, verbose=0)


@pytest.mark.parametrize("method", ["fast", None, "Naive", ["naive"]])
def test_method_must_be_naive_or_cached(method):
    with pytest.raises(
        ValueError, match=r"`method` must be one of \{'naive', 'cached'\}\. Received"
    ):
        tiny().sample(2, method=method, verbose=0)


MASK_RULE = (
    r"`conditioned_on\[1\]` must be boolean, or numbers that are all 0 \(draw\) "
    r"or 1 \(keep\)\. Received: "
)


@pytest.mark.parametrize(
    "mask, received",
    [
        (np.full((2, 4, 4, 3), 0.5), r"conditioned_on\[1\] of dtype float64 .* 0\.5$"),
        (np.full((2, 4, 4, 3), 2), r"conditioned_on\[1\] of dtype int64 .* e\.g\. 2$"),
        (np.full((2, 4, 4, 3), -1.0), r".* e\.g\. -1\.0$"),
        (np.full((2, 4, 4, 3), np.nan), r".* e\.g\. nan$"),
        (np.full((2, 4, 4, 3), "1"), r"conditioned_on\[1\]\.dtype="),
    ],
)
@pytest.mark.parametrize("method", ["cached", "naive"])
def test_known_mask_must_be_boolean_or_zero_one(mask, received, method):
    images = np.zeros((2, 4, 4, 3), "int32")
    with pytest.raises(ValueError, match=MASK_RULE + received):
        tiny().sample(2, conditioned_on=(images, mask), method=method, verbose=0)


def test_known_masks_of_every_dtype_mean_the_same():
    model = tiny()
    images = np.random.default_rng(0).integers(0, 17, size=(2, 4, 4, 3))
    mask = np.zeros(images.shape, bool)
    mask[:, :2] = True
    want = model.sample(2, seed=1, conditioned_on=(images, mask), verbose=0)
    for dtype in ("uint8", "int32", "float32", "float64"):
        got = model.sample(
            2, seed=1, conditioned_on=(images, mask.astype(dtype)), verbose=0
        )
        np.testing.assert_array_equal(got, want)


def test_known_mask_and_images_shapes():
    model = tiny()
    images = np.zeros((2, 4, 4, 3), "int32")
    with pytest.raises(
        ValueError,
        match=r"`conditioned_on\[1\]` \(the known mask\) must have the shape of the "
        r"images, \(2, 4, 4, 3\)\. Received: conditioned_on\[1\]\.shape=\(2, 4, 4, 1\)",
    ):
        model.sample(2, conditioned_on=(images, np.ones((2, 4, 4, 1))), verbose=0)
    with pytest.raises(
        ValueError,
        match=r"`conditioned_on\[0\]` \(the images to complete\) must hold "
        r"num_samples=2 images\. Received: conditioned_on\[0\]\.shape=\(3, 4, 4, 3\)",
    ):
        images = np.zeros((3, 4, 4, 3), "int32")
        model.sample(2, conditioned_on=(images, np.ones_like(images)), verbose=0)
