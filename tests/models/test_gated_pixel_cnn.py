import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from pixel_keras import zoo
from pixel_keras.models import GatedPixelCNN
from pixel_keras.testing import check_causality, default_positions, input_gradient


def _paper_config(preset):
    """A zoo preset's config as `GatedPixelCNN(**config)` arguments.

    The paper's sizes are the zoo presets' (zoo/<preset>/config.json).
    """
    config = dict(zoo.get_preset(preset).config)
    config["image_shape"] = tuple(config["image_shape"])
    return config


PAPER_CONFIGS = {
    "gated_pixelcnn_imagenet32": _paper_config("gated_pixelcnn_imagenet32"),
    "gated_pixelcnn_imagenet64": _paper_config("gated_pixelcnn_imagenet64"),
    "gated_pixelcnn_cifar10": _paper_config("gated_pixelcnn_cifar"),
}

# Few distinct configurations, so the JAX backend compiles few new shapes.
SMALL = dict(num_layers=2, hidden_maps=8, kernel_size=3, output_maps=16)
GRAY = (6, 6, 1)
RGB = (4, 4, 3)
RGB_MAPS = dict(hidden_maps=12, output_maps=24)  # 4 maps per channel group
CONDITIONAL = dict(
    num_classes=4, condition_dim=3, condition_map_channels=2, deconv_maps=4
)


def small_model(shape=GRAY, num_levels=17, **kwargs):
    return GatedPixelCNN(
        image_shape=shape, num_levels=num_levels, **{**SMALL, **kwargs}
    )


def random_images(shape, num_levels, n=3, seed=0):
    return np.random.default_rng(seed).integers(0, num_levels, size=(n, *shape))


def random_conditions(shape, n=3, seed=0, num_classes=4):
    rng = np.random.default_rng(seed)
    return {
        "class_label": rng.integers(0, num_classes, size=n),
        "condition": rng.normal(size=(n, 3)).astype("float32"),
        "condition_map": rng.normal(size=(n, *shape[:2], 2)).astype("float32"),
    }


def receptive_field(height, width, position, kernel_size, num_layers):
    """Pixels the output at `position` sees (NumPy oracle, no blind spot).

    With k = n // 2, L blocks see the rectangle of rows i - 1 - L*k .. i - 1,
    columns j - L*k .. j + L*k (vertical stack, up *and* right), and row i,
    columns j - L*k .. j - 1 (horizontal stack), clipped to the image.
    """
    i, j = position
    reach = num_layers * (kernel_size // 2)
    seen = np.zeros((height, width), bool)
    seen[max(0, i - 1 - reach) : i, max(0, j - reach) : j + reach + 1] = True
    seen[i, max(0, j - reach) : j] = True
    return seen


def log_softmax_oracle(logits, images):
    logits = logits.astype("float64")
    top = logits.max(-1)
    log_z = np.log(np.exp(logits - top[..., None]).sum(-1)) + top
    picked = np.take_along_axis(logits, images[..., None].astype(int), -1)[..., 0]
    return (picked - log_z).sum(axis=(1, 2, 3))


@pytest.mark.parametrize(
    "shape, num_levels, conditional",
    [(GRAY, 2, False), ((5, 7, 3), 256, False), (RGB, 17, True)],
)
def test_output_shape(shape, num_levels, conditional):
    kwargs = {**RGB_MAPS, **CONDITIONAL} if conditional else {}
    model = small_model(shape, num_levels, **kwargs)
    images = random_images(shape, num_levels)
    inputs = {"images": images, **random_conditions(shape)} if conditional else images
    assert tuple(model(inputs).shape) == (3, *shape, num_levels)
    names = ("class_label", "condition", "condition_map") if conditional else ()
    assert model.condition_names == names


def test_parameter_count_formula():
    p, n, out, c, k, layers = 8, 5, 16, 3, 256, 3
    with keras.StatelessScope(initialize_variables=False):  # shapes only
        model = GatedPixelCNN((8, 8, c), k, layers, p, n, out)
        count = model.count_params()
    half = n // 2

    def block(maps_in):
        vertical = (half + 1) * n * maps_in * 2 * p + 2 * p  # (k+1) x n conv
        vertical_to_horizontal = 2 * p * 2 * p  # 1x1, no bias
        horizontal = (half + 1) * maps_in * 2 * p + 2 * p  # 1 x (k+1) conv
        output = p * 2 * p + 2 * p  # 1x1: residual and skip halves
        return vertical + vertical_to_horizontal + horizontal + output

    head = (p * out + out) + (out * c * k + c * k)
    assert count == block(c) + (layers - 1) * block(p) + head


def grid_must_see(shape, kernel_size, num_layers):
    def must_see(i, j):
        seen = receptive_field(*shape[:2], (i, j), kernel_size, num_layers)
        return [tuple(p) for p in np.argwhere(seen)]

    return must_see


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        (GRAY, {}),
        (RGB, RGB_MAPS),
        (RGB, {**RGB_MAPS, **CONDITIONAL}),
    ],
)
def test_causality_at_init(shape, kwargs):
    model = small_model(shape, **kwargs)
    conditions = random_conditions(shape, n=6) if "num_classes" in kwargs else ()
    must_see = grid_must_see(shape, model.kernel_size, model.num_layers)
    positions = default_positions(*shape[:2], num_random=2)
    checked = check_causality(
        model, positions, must_see, conditions=conditions, num_images=6
    )
    assert checked > 0


@pytest.mark.parametrize("kernel_size, num_layers", [(3, 3), (5, 2)])
def test_no_blind_spot_receptive_field_is_exact(kernel_size, num_layers):
    shape = (8, 8, 1)
    model = small_model(shape, kernel_size=kernel_size, num_layers=num_layers)
    images = random_images(shape, 17, n=6)
    for r, c in [(4, 2), (5, 4), (7, 7), (3, 0)]:
        seen = (input_gradient(model, images, (r, c), 0) != 0).any(axis=(0, 3))
        want = receptive_field(8, 8, (r, c), kernel_size, num_layers)
        np.testing.assert_array_equal(seen, want, err_msg=f"position {(r, c)}")
        # PixelCNN's blind spot lies up and to the right: it is seen here.
        if c + 3 < 8:
            assert seen[r - 1, c + 2] and seen[r - 2, c + 3]
        reach = num_layers * (kernel_size // 2)
        assert seen[max(0, r - reach) : r, c + 1 : c + reach + 1].all()


def test_rgb_sub_pixel_dependencies():
    shape = RGB
    model = small_model(shape, 17, **RGB_MAPS)
    base = random_images(shape, 17, n=1, seed=3)
    i, j = 2, 1

    def logits_at(images):
        return keras.ops.convert_to_numpy(model(images))[0, i, j]

    ref = logits_at(base)
    changed = {}
    for c in range(3):
        img = base.copy()
        img[0, i, j, c] = (img[0, i, j, c] + 8) % 17
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


@pytest.mark.parametrize("conditional", [False, True])
def test_log_prob_matches_log_softmax_oracle(conditional):
    shape = RGB
    model = small_model(shape, 17, **RGB_MAPS, **(CONDITIONAL if conditional else {}))
    images = random_images(shape, 17, n=4)
    conditions = random_conditions(shape, n=4) if conditional else {}
    inputs = {"images": images, **conditions} if conditional else images
    want = log_softmax_oracle(keras.ops.convert_to_numpy(model(inputs)), images)
    np.testing.assert_allclose(model.log_prob(images, **conditions), want, rtol=1e-5)
    # Batching slices the conditions with the images.
    np.testing.assert_allclose(
        model.log_prob(images, batch_size=3, **conditions), want, rtol=1e-5
    )
    np.testing.assert_allclose(
        model.bits_per_dim(images, **conditions),
        -want / (math.prod(shape) * math.log(2)),
        rtol=1e-5,
    )


def test_class_label_changes_logits_and_one_label_broadcasts():
    shape = GRAY
    model = small_model(shape, 17, num_classes=3)
    images = random_images(shape, 17, n=2)
    by_class = [
        keras.ops.convert_to_numpy(
            model({"images": images, "class_label": np.full(2, label)})
        )
        for label in range(3)
    ]
    assert (np.abs(by_class[0] - by_class[1]) > 0).all()
    assert (np.abs(by_class[1] - by_class[2]) > 0).all()
    np.testing.assert_allclose(
        model.log_prob(images, class_label=2),
        model.log_prob(images, class_label=[2, 2]),
    )
    # The causality helper repeats one condition for every image too.
    np.testing.assert_array_equal(
        input_gradient(model, images, (2, 2), 0, {"class_label": [1]}),
        input_gradient(model, images, (2, 2), 0, {"class_label": [1, 1]}),
    )


def test_spatial_condition_changes_logits_and_deconv_follows_the_label():
    model = small_model(GRAY, 17, **CONDITIONAL)
    deconv = keras.Model(
        model.inputs, model.get_layer(f"{model.name}_deconv_crop").output
    )
    images = random_images(GRAY, 17, n=2)
    conditions = random_conditions(GRAY, n=2)
    ref = model.log_prob(images, **conditions)
    moved = dict(conditions, condition_map=conditions["condition_map"].copy())
    moved["condition_map"][:, 3, 3] += 1.0
    assert (model.log_prob(images, **moved) != ref).all()
    s = [
        keras.ops.convert_to_numpy(
            deconv({"images": images, **conditions, "class_label": np.full(2, c)})
        )
        for c in (0, 1)
    ]
    assert s[0].shape == (2, *GRAY[:2], 4) and not np.allclose(s[0], s[1])


def test_conditional_sampling_is_deterministic_and_follows_the_class():
    shape = GRAY
    model = small_model(shape, 17, num_classes=3)
    a = model.sample(3, seed=11, class_label=[0, 1, 2], verbose=0)
    assert a.shape == (3, *shape) and a.dtype == np.uint8
    assert a.min() >= 0 and a.max() <= 16
    np.testing.assert_array_equal(
        a, model.sample(3, seed=11, class_label=[0, 1, 2], verbose=0)
    )
    # Same seeds, other classes: other images.
    b = model.sample(3, seed=11, class_label=[2, 2, 2], verbose=0)
    assert not np.array_equal(a[:2], b[:2])
    np.testing.assert_array_equal(a[2], b[2])
    # One int is the class of every sample.
    np.testing.assert_array_equal(b, model.sample(3, seed=11, class_label=2, verbose=0))
    # Completion keeps the given pixels.
    images = random_images(shape, 17, n=3)
    mask = np.zeros_like(images)
    mask[:, :2] = 1
    out = model.sample(
        3, seed=1, class_label=0, conditioned_on=(images, mask), verbose=0
    )
    np.testing.assert_array_equal(out[mask == 1], images[mask == 1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"class_label": [0, 3]}, r"`class_label` values must lie in \[0, 2\]"),
        ({"class_label": [-1, 0]}, r"`class_label` values must lie in \[0, 2\]"),
        ({"class_label": [0.0, 1.0]}, "`class_label` must be integers"),
        ({"class_label": [0, 1, 2]}, r"`class_label` must have shape \(2,\)"),
        ({}, "This model is conditional: `class_label` is required"),
        (
            {"class_label": [0, 1], "condition_map": np.zeros((2, 6, 6, 1))},
            "This model takes no `condition_map`",
        ),
    ],
)
def test_bad_conditions_raise(kwargs, match):
    model = small_model(GRAY, 17, num_classes=3)
    images = random_images(GRAY, 17, n=2)
    with pytest.raises(ValueError, match=match):
        model.log_prob(images, **kwargs)
    with pytest.raises(ValueError, match=match):
        model.sample(2, seed=0, verbose=0, **kwargs)


def test_unconditional_model_rejects_conditions():
    model = small_model(GRAY, 17)
    with pytest.raises(ValueError, match=r"takes no `class_label`.*unconditional"):
        model.log_prob(random_images(GRAY, 17), class_label=[0, 0, 0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (6, 6)}, "image_shape"),
        ({"num_levels": 1}, "num_levels"),
        ({"image_shape": (6, 6, 3), "hidden_maps": 2}, "hidden_maps"),
        ({"output_maps": 0}, "output_maps"),
        ({"num_layers": 0}, "num_layers"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"kernel_size": 1}, "kernel_size"),
        ({"num_classes": 1}, "num_classes"),
        ({"condition_dim": 0}, "condition_dim"),
        ({"condition_map_channels": 2.5}, "condition_map_channels"),
        ({"deconv_maps": 4}, "`deconv_maps` needs a condition vector"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GatedPixelCNN(**{**SMALL, **kwargs})


@pytest.mark.parametrize("conditional", [False, True])
def test_config_round_trip_and_keras_save_load(tmp_path, conditional):
    shape = RGB
    model = small_model(shape, 17, **RGB_MAPS, **(CONDITIONAL if conditional else {}))
    images = random_images(shape, 17)
    conditions = random_conditions(shape) if conditional else {}
    config = model.get_config()
    clone = GatedPixelCNN.from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()

    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, GatedPixelCNN)
    np.testing.assert_allclose(
        restored.log_prob(images, **conditions),
        model.log_prob(images, **conditions),
        rtol=1e-6,
    )
    label = {"class_label": [1, 3]} if conditional else {}
    if conditional:
        label.update(condition=np.ones((2, 3)), condition_map=np.ones((2, 4, 4, 2)))
    np.testing.assert_array_equal(
        restored.sample(2, seed=5, verbose=0, **label),
        model.sample(2, seed=5, verbose=0, **label),
    )


def test_fit_lowers_loss_on_real_digits_with_class_labels():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype("int32")[:512, :, :, None]  # 17 levels
    labels = digits.target.astype("int32")[:512]
    model = GatedPixelCNN((8, 8, 1), 17, **{**SMALL, "hidden_maps": 16}, num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(
        {"images": images, "class_label": labels},
        images,
        batch_size=64,
        epochs=3,
        verbose=0,
    )
    loss = history.history["loss"]
    assert loss[-1] < loss[0] - 10.0  # nats/image
    bpd = model.bits_per_dim(images[:64], class_label=labels[:64])
    assert np.isfinite(bpd).all() and bpd.mean() < math.log2(17)


def test_paper_configs_build_with_expected_parameter_counts():
    # Graph only: inside a stateless scope the weights get shapes but are
    # never initialized (no 480 MB of random numbers), and nothing runs.
    counts = {}
    for name, config in PAPER_CONFIGS.items():
        with keras.StatelessScope(initialize_variables=False):
            counts[name] = GatedPixelCNN(**config).count_params()
    assert counts == {
        "gated_pixelcnn_imagenet32": 119_823_616,
        "gated_pixelcnn_imagenet64": 119_823_616,  # fully convolutional
        "gated_pixelcnn_cifar10": 10_676_736,
    }
    for config in PAPER_CONFIGS.values():
        assert config["kernel_size"] == 5 and config["num_levels"] == 256


@pytest.mark.tf_only
def test_same_numbers_under_jax_backend(tmp_path):
    """Weights saved under TensorFlow give the same log_prob under JAX."""
    pytest.importorskip("jax")
    shape = (4, 4, 3)
    kwargs = {**SMALL, "num_classes": 4, "condition_map_channels": 2}
    model = GatedPixelCNN(image_shape=shape, num_levels=256, **kwargs)
    images = random_images(shape, 256, n=2)
    conditions = random_conditions(shape, n=2)
    del conditions["condition"]
    weights = str(tmp_path / "w.weights.h5")
    model.save_weights(weights)
    np.savez(tmp_path / "data.npz", images=images, **conditions)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from pixel_keras.models import GatedPixelCNN
        model = GatedPixelCNN(image_shape={shape!r}, num_levels=256, **{kwargs!r})
        model.load_weights({weights!r})
        data = dict(np.load({str(tmp_path / "data.npz")!r}))
        images = data.pop("images")
        np.save({str(tmp_path / "jax_lp.npy")!r}, model.log_prob(images, **data))
        samples = model.sample(2, seed=7, verbose=0, **data)
        np.save({str(tmp_path / "jax_samples.npy")!r}, samples)
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    np.testing.assert_allclose(
        np.load(tmp_path / "jax_lp.npy"),
        model.log_prob(images, **conditions),
        rtol=1e-5,
    )
    np.testing.assert_array_equal(
        np.load(tmp_path / "jax_samples.npy"),
        model.sample(2, seed=7, verbose=0, **conditions),
    )


# ---- direct calls check conditions; string labels explain themselves -------
@pytest.mark.parametrize(
    "label, match",
    [
        (
            np.array([99, 0]),
            r"`class_label` values must lie in \[0, 2\] \(num_classes=3\)\. "
            r"Received: class_label values in \[0, 99\]",
        ),
        (np.array([-1, 0]), r"Received: class_label values in \[-1, 0\]"),
        (
            np.array([0.0, 1.0]),
            r"`class_label` must be integers in \[0, 2\]\. "
            r"Received: class_label=array\(\[0\., 1\.\]\) \(dtype float64\)",
        ),
        (
            np.array([0, 1, 2]),
            r"`class_label` must have shape \(2,\) \(one per image\) or \(\)\. "
            r"Received: class_label\.shape=\(3,\)",
        ),
    ],
)
def test_direct_calls_check_conditions(label, match):
    model = small_model(GRAY, 17, num_classes=3)
    images = random_images(GRAY, 17, n=2)
    with pytest.raises(ValueError, match=match):
        model({"images": images, "class_label": label})


def test_direct_calls_need_images_and_the_conditions():
    model = small_model(GRAY, 17, num_classes=3)
    images = random_images(GRAY, 17, n=2)
    with pytest.raises(
        ValueError,
        match=r"This model is conditional: `class_label` is required "
        r"\(shape \(None,\)\)\. Received: class_label=None",
    ):
        model(images)
    with pytest.raises(
        ValueError,
        match=r"A dict input must hold the `images` \(and the model's conditions, "
        r"\['class_label'\]\)\. Received: keys \['class_label', 'image'\]",
    ):
        model({"image": images, "class_label": np.array([0, 1])})
    # One label without batch axis is repeated, as in log_prob.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model({"images": images, "class_label": 2})),
        keras.ops.convert_to_numpy(
            model({"images": images, "class_label": np.array([2, 2])})
        ),
    )


@pytest.mark.parametrize(
    "label, received",
    [
        ("3", "class_label='3'"),
        (["a"], r"class_label=\['a'\]"),
        (b"1", "class_label=b'1'"),
    ],
)
def test_string_class_labels_explain_themselves(label, received):
    model = small_model(GRAY, 17, num_classes=3)
    images = random_images(GRAY, 17, n=2)
    match = rf"`class_label` must be integers in \[0, 2\]\. Received: {received} \("
    with pytest.raises(ValueError, match=match):
        model.log_prob(images, class_label=label)
    with pytest.raises(ValueError, match=match):
        model.sample(2, class_label=label, verbose=0)
    with pytest.raises(ValueError, match=match):
        model({"images": images, "class_label": label})


def test_string_float_conditions_explain_themselves():
    model = small_model(GRAY, 17, condition_dim=2)
    images = random_images(GRAY, 17, n=2)
    with pytest.raises(
        ValueError,
        match=r"`condition` must be numbers \(it is fed as float32\)\. "
        r"Received: condition=\[\['a', 'b'\]\] \(dtype ",
    ):
        model.log_prob(images, condition=[["a", "b"]])
