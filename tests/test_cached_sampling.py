import numpy as np
import pytest
from keras import ops

from pixel_keras import cached_sampling, sampling
from pixel_keras.models import GatedPixelCNN, PixelCNN, PixelRNN

NUM_LEVELS = 17


def tiny(shape, **kwargs):
    config = {
        "hidden_maps": 8,
        "num_residual_blocks": 2,
        "output_maps": 16,
        "first_kernel_size": 5,
    }
    return PixelCNN(shape, NUM_LEVELS, **{**config, **kwargs})


def sharpen(model, factor=4.0):
    """Scales the last layer so that the logits are far from uniform."""
    last = model.get_layer(f"{model.name}_out_conv_2")
    last.kernel.assign(ops.convert_to_numpy(last.kernel) * factor)
    return model


def gated(shape, **kwargs):
    config = {"num_layers": 3, "hidden_maps": 8, "kernel_size": 3, "output_maps": 16}
    return GatedPixelCNN(shape, NUM_LEVELS, **{**config, **kwargs})


CONDITIONAL = {
    "num_classes": 3,
    "condition_dim": 2,
    "condition_map_channels": 2,
    "deconv_maps": 2,
}


def conditions_for(model, num_samples):
    if model.num_classes is None:
        return {}
    rng = np.random.default_rng(1)
    return {
        "class_label": np.arange(num_samples) % 3,
        "condition": rng.normal(size=(num_samples, 2)).astype("float32"),
        "condition_map": rng.normal(
            size=(num_samples, *model.image_shape[:2], 2)
        ).astype("float32"),
    }


def run_with_logits(
    model, num_samples, seed, temperature=1.0, given=None, known=None, conditions=None
):
    num_steps = int(np.prod(model.image_shape))
    if given is None:
        given = np.zeros((num_samples, num_steps), "int32")
        known = np.zeros((num_samples, num_steps), bool)
    canvas = np.where(known, given, 0).reshape(num_samples, *model.image_shape)
    canvas, logits = sampling.sample_with_logits(
        model,
        ops.convert_to_tensor(canvas.astype("int32")),
        ops.convert_to_tensor(sampling.per_sample_seeds(num_samples, seed)),
        ops.convert_to_tensor(np.float32(temperature)),
        ops.convert_to_tensor(given),
        ops.convert_to_tensor(known),
        {k: ops.convert_to_tensor(v) for k, v in (conditions or {}).items()},
    )
    return ops.convert_to_numpy(canvas), ops.convert_to_numpy(logits)


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((5, 5, 1), {}),
        ((6, 5, 3), {}),
        ((5, 6, 3), {"num_residual_blocks": 0, "first_kernel_size": 3}),
        ((5, 5, 1), {"kernel_size": 5, "num_residual_blocks": 1}),
    ],
)
def test_cached_equals_naive(shape, kwargs):
    model = sharpen(tiny(shape, **kwargs))
    for seed, temperature in ((3, 1.0), (8, 0.7)):
        naive = model.sample(
            3, seed=seed, temperature=temperature, verbose=0, method="naive"
        )
        cached = model.sample(
            3, seed=seed, temperature=temperature, verbose=0, method="cached"
        )
        assert cached.dtype == np.uint8 and cached.shape == (3, *shape)
        np.testing.assert_array_equal(cached, naive)
    assert len(np.unique(naive)) > 2  # the images are not trivial


@pytest.mark.parametrize("shape", [(5, 5, 1), (5, 6, 3)])
def test_step_logits_equal_a_full_forward_pass(shape):
    model = sharpen(tiny(shape))
    canvas, logits = run_with_logits(model, 2, seed=5)
    np.testing.assert_array_equal(
        canvas, model.sample(2, seed=5, verbose=0, method="naive")
    )
    # Causality: the logits at step t of the finished image are those the
    # sampler drew from, so one full pass over it reproduces all of them.
    full = ops.convert_to_numpy(model(canvas, training=False))
    np.testing.assert_allclose(logits, full, atol=1e-4, rtol=0)


def check_completion(model, extra_known=()):
    """Completion: cached == naive, known sub-pixels kept, logits == full pass."""
    shape = model.image_shape
    rng = np.random.default_rng(0)
    images = rng.integers(0, NUM_LEVELS, size=(2, *shape))
    mask = np.zeros_like(images)
    mask[:, :2] = 1  # top rows known
    mask[:, 3, 3, 1] = 1  # and one isolated sub-pixel
    for index in extra_known:
        mask[(slice(None), *index)] = 1
    given = (images, mask)
    naive = model.sample(2, seed=1, conditioned_on=given, verbose=0, method="naive")
    cached = model.sample(2, seed=1, conditioned_on=given, verbose=0, method="cached")
    np.testing.assert_array_equal(cached, naive)
    np.testing.assert_array_equal(cached[mask == 1], images[mask == 1])
    canvas, logits = run_with_logits(
        model,
        2,
        seed=1,
        given=images.reshape(2, -1).astype("int32"),
        known=mask.reshape(2, -1).astype(bool),
    )
    np.testing.assert_array_equal(canvas, cached)
    full = ops.convert_to_numpy(model(canvas, training=False))
    np.testing.assert_allclose(logits, full, atol=1e-4, rtol=0)


def test_completion_matches_naive_and_keeps_known_sub_pixels():
    check_completion(sharpen(tiny((5, 5, 3))))


def test_cached_follows_weight_updates():
    model = tiny((5, 5, 1))
    before = model.sample(2, seed=0, verbose=0, method="cached")
    sharpen(model, 10.0)
    after = model.sample(2, seed=0, verbose=0, method="cached")
    np.testing.assert_array_equal(
        after, model.sample(2, seed=0, verbose=0, method="naive")
    )
    assert not np.array_equal(before, after)


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((5, 5, 1), {}),
        ((5, 6, 3), {}),
        ((6, 5, 3), {"num_layers": 1, "kernel_size": 5}),
        ((5, 5, 1), CONDITIONAL),
        ((5, 5, 3), {"num_classes": 3, "num_layers": 2}),
    ],
    ids=["gray", "rgb", "one_layer_k5", "conditional_gray", "class_rgb"],
)
def test_gated_cached_equals_naive_and_full_pass(shape, kwargs):
    model = sharpen(gated(shape, **kwargs))
    if model.num_classes is not None and model.condition_dim is None:
        conditions = {"class_label": np.array([0, 2, 1])}
    else:
        conditions = conditions_for(model, 3)
    naive = model.sample(3, seed=2, verbose=0, method="naive", **conditions)
    cached = model.sample(3, seed=2, verbose=0, method="cached", **conditions)
    np.testing.assert_array_equal(cached, naive)
    assert len(np.unique(naive)) > 2
    canvas, logits = run_with_logits(model, 3, seed=2, conditions=conditions)
    np.testing.assert_array_equal(canvas, naive)
    inputs = model._model_inputs(canvas, conditions)
    full = ops.convert_to_numpy(model(inputs, training=False))
    np.testing.assert_allclose(logits, full, atol=1e-4, rtol=0)


def test_gated_completion_matches_naive():
    shape = (5, 5, 3)
    model = sharpen(gated(shape, **CONDITIONAL))
    conditions = conditions_for(model, 2)
    rng = np.random.default_rng(0)
    images = rng.integers(0, NUM_LEVELS, size=(2, *shape))
    mask = np.zeros_like(images)
    mask[:, :2] = 1
    mask[:, 3, 3, 1] = 1
    given = (images, mask)
    naive = model.sample(
        2, seed=1, conditioned_on=given, verbose=0, method="naive", **conditions
    )
    cached = model.sample(
        2, seed=1, conditioned_on=given, verbose=0, method="cached", **conditions
    )
    np.testing.assert_array_equal(cached, naive)
    np.testing.assert_array_equal(cached[mask == 1], images[mask == 1])


def rnn(shape, cell, **kwargs):
    config = {
        "hidden_maps": 8,
        "num_layers": 2,
        "output_maps": 16,
        "first_kernel_size": 3,
    }
    return PixelRNN(shape, NUM_LEVELS, cell=cell, **{**config, **kwargs})


RNN_CASES = [
    ((5, 5, 1), "row_lstm", {}),
    ((5, 6, 3), "row_lstm", {}),
    ((6, 5, 3), "row_lstm", {"kernel_size": 5, "residual": False}),
    ((5, 5, 1), "row_lstm", {"num_layers": 0, "first_kernel_size": 5}),
    ((5, 5, 1), "diagonal_bilstm", {}),
    ((5, 6, 3), "diagonal_bilstm", {}),
    ((6, 5, 3), "diagonal_bilstm", {"num_layers": 3, "residual": False}),
    ((7, 4, 1), "diagonal_bilstm", {"first_kernel_size": 5}),
]


@pytest.mark.parametrize(
    "shape, cell, kwargs",
    RNN_CASES,
    ids=[f"{c}-{'x'.join(map(str, s))}-{i}" for i, (s, c, _) in enumerate(RNN_CASES)],
)
def test_pixel_rnn_cached_equals_naive_and_full_pass(shape, cell, kwargs):
    model = sharpen(rnn(shape, cell, **kwargs))
    naive = model.sample(3, seed=2, temperature=0.8, verbose=0, method="naive")
    cached = model.sample(3, seed=2, temperature=0.8, verbose=0, method="cached")
    assert cached.dtype == np.uint8 and cached.shape == (3, *shape)
    np.testing.assert_array_equal(cached, naive)
    assert len(np.unique(naive)) > 2
    canvas, logits = run_with_logits(model, 3, seed=2, temperature=0.8)
    np.testing.assert_array_equal(canvas, naive)
    full = ops.convert_to_numpy(model(canvas, training=False))
    np.testing.assert_allclose(logits, full, atol=1e-4, rtol=0)


@pytest.mark.parametrize("cell", ["row_lstm", "diagonal_bilstm"])
def test_pixel_rnn_completion_matches_naive(cell):
    # plus a known pixel below the first unknown row
    check_completion(sharpen(rnn((5, 5, 3), cell)), extra_known=[(4, 0)])


def test_cached_is_the_default_method(monkeypatch):
    model = sharpen(rnn((4, 4, 1), "diagonal_bilstm", num_layers=1))

    def new_cache(canvas, conditions):
        raise RuntimeError("cached hooks called")

    monkeypatch.setattr(model, "new_cache", new_cache)
    with pytest.raises(RuntimeError, match="cached hooks called"):
        model.sample(1, seed=0, verbose=0)
    assert all(
        sampling.supports_cached(m) and m.supports_cached_sampling
        for m in (tiny((4, 4, 1)), gated((4, 4, 1)), rnn((4, 4, 1), "row_lstm"))
    )


def test_unsupported_models_raise():
    import keras

    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert not sampling.supports_cached(other)
    with pytest.raises(ValueError, match="use `method='naive'`.*Sequential"):
        sampling.check_cached(other)


def test_deprecated_cached_sampling_module():
    import keras

    model = tiny((4, 4, 1))
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.warns(DeprecationWarning, match="sampling.supports_cached"):
        assert cached_sampling.supports(model)
    with pytest.warns(DeprecationWarning):
        assert not cached_sampling.supports(other)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="naive"):
        cached_sampling.cached_sampler(other)
    seeds = ops.convert_to_tensor(sampling.per_sample_seeds(2, 3))
    zeros = np.zeros((2, 16), "int32")
    args = (
        ops.convert_to_tensor(np.zeros((2, 4, 4, 1), "int32")),
        seeds,
        ops.convert_to_tensor(np.float32(1.0)),
        ops.convert_to_tensor(zeros),
        ops.convert_to_tensor(zeros.astype(bool)),
    )
    with pytest.warns(DeprecationWarning, match="method=.cached"):
        rows = cached_sampling.sample_rows(model, *args, verbose=0)
    with pytest.warns(DeprecationWarning, match="sampling.sample_with_logits"):
        canvas, _ = cached_sampling.sample_with_logits(model, *args)
    expected = model.sample(2, seed=3, verbose=0)
    np.testing.assert_array_equal(ops.convert_to_numpy(rows), expected)
    np.testing.assert_array_equal(ops.convert_to_numpy(canvas), expected)


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="`method` must be one of"):
        tiny((5, 5, 1)).sample(1, seed=0, verbose=0, method="fast")
