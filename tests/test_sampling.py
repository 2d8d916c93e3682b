import keras
import numpy as np
import pytest

from pixel_keras import sampling
from pixel_keras.models import PixelCNN


def tiny(shape=(4, 4, 3), num_levels=17):
    return PixelCNN(shape, num_levels, hidden_maps=8, num_residual_blocks=1, output_maps=16)


def fixed_distribution_model(probs, shape=(3, 3, 1)):
    """A PixelCNN whose every sub-pixel is Categorical(probs), independent."""
    model = PixelCNN(shape, len(probs), hidden_maps=4, num_residual_blocks=0, output_maps=4)
    last = model.get_layer("pixel_cnn_out_conv_2")
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
    full = model.sample(2, seed=1, conditioned_on=(images, np.ones_like(images)), verbose=0)
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
    last = model.get_layer("pixel_cnn_out_conv_2")
    last.kernel.assign(keras.ops.convert_to_numpy(last.kernel) * 10.0)
    fresh = PixelCNN.from_config(model.get_config())
    fresh.set_weights(model.get_weights())
    np.testing.assert_array_equal(
        model.sample(2, seed=0, verbose=0), fresh.sample(2, seed=0, verbose=0)
    )
