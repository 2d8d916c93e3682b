import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from pixel_keras import zoo
from pixel_keras.models import DiagonalBiLSTMPixelRNN, PixelRNN, RowLSTMPixelRNN
from pixel_keras.testing import check_causality, default_positions, input_gradient


def _paper_config(preset):
    """A zoo preset's config as `PixelRNN(**config)` arguments (zoo/*/config.json)."""
    preset = zoo.get_preset(preset)
    config = dict(preset.config, cell=preset.model)
    config["image_shape"] = tuple(config["image_shape"])
    return config


# The paper's sizes (Section 5, Table 1 and the text) are the zoo presets'.
PAPER_CONFIGS = {
    "row_lstm_cifar10": _paper_config("row_lstm_cifar"),
    "diagonal_bilstm_cifar10": _paper_config("diagonal_bilstm_cifar"),
    "diagonal_bilstm_binarized_mnist": _paper_config("diagonal_bilstm_mnist"),
    "row_lstm_imagenet32": _paper_config("row_lstm_imagenet32"),
    "row_lstm_imagenet64": _paper_config("row_lstm_imagenet64"),
}

CELLS = ["row_lstm", "diagonal_bilstm"]
SMALL = dict(hidden_maps=8, num_layers=2, output_maps=32)


@pytest.fixture(autouse=True, scope="module")
def jax_compilation_cache(tmp_path_factory):
    """Reuses compiled scans across eager JAX calls; no-op on TensorFlow.

    Eager JAX compiles an `ops.scan` afresh on every call (about 1 s each
    here, for every gradient the causality checks take). The programs repeat
    exactly, so a persistent compilation cache turns repeats into hits. Set
    for this module only and restored afterwards.
    """
    if keras.backend.backend() != "jax":
        yield
        return
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    names = (
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    saved = {name: getattr(jax.config, name) for name in names}
    compilation_cache.reset_cache()
    jax.config.update(names[0], str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update(names[1], 0)
    jax.config.update(names[2], 0)
    yield
    compilation_cache.reset_cache()
    for name, value in saved.items():
        jax.config.update(name, value)


def small_model(cell, shape=(6, 6, 1), num_levels=17, **kwargs):
    return PixelRNN(
        image_shape=shape, num_levels=num_levels, cell=cell, **{**SMALL, **kwargs}
    )


def random_images(shape, num_levels, n=3, seed=0):
    return np.random.default_rng(seed).integers(0, num_levels, size=(n, *shape))


def for_backend(positions, on_jax):
    """`positions` on TensorFlow, the shorter list `on_jax` on JAX.

    Eager JAX compiles every `ops.scan` on every gradient call (about 1 s on
    2 cores), so the TensorFlow run is the exhaustive one and the JAX run
    checks a few positions (every sub-pixel of each).
    """
    return positions if keras.backend.backend() == "tensorflow" else on_jax


def seen_sub_pixels(model, images, position, channel):
    return (input_gradient(model, images, position, channel) != 0).any(axis=0)


def param_count(cell, h, layers, out, c, k, first=7, row_kernel=3):
    """Weights of a PixelRNN, layer by layer (the LSTM gate biases are 4h)."""
    conv_in = first * first * c * 2 * h + 2 * h
    if cell == "row_lstm":
        # 1 x k input-to-state (2h -> 4h), k-wide state-to-state (h -> 4h).
        lstm = row_kernel * 2 * h * 4 * h + row_kernel * h * 4 * h + 4 * h
    else:
        # Two directions: 1x1 input-to-state and 2x1 state-to-state each.
        lstm = 2 * (2 * h * 4 * h + 2 * h * 4 * h + 4 * h)
    conv_out = h * 2 * h + 2 * h
    head = (2 * h * out + out) + (out * c * k + c * k)
    return conv_in + layers * (lstm + conv_out) + head


# ---- shapes, weights, configurations ----------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape, num_levels", [((5, 6, 1), 2), ((4, 5, 3), 256)])
def test_output_shape(cell, shape, num_levels):
    model = small_model(cell, shape, num_levels, num_layers=1)
    logits = model(random_images(shape, num_levels))
    assert tuple(logits.shape) == (3, *shape, num_levels)
    assert np.isfinite(keras.ops.convert_to_numpy(logits)).all()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
def test_parameter_count_formula(cell, residual, channels):
    h, layers, out, k = 8, 2, 16, 256
    model = PixelRNN(
        (8, 8, channels),
        k,
        cell=cell,
        hidden_maps=h,
        num_layers=layers,
        output_maps=out,
        residual=residual,
    )
    assert model.count_params() == param_count(cell, h, layers, out, channels, k)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == (layers if residual else 0)


def test_row_lstm_kernel_size_in_parameter_count():
    model = small_model("row_lstm", (6, 6, 3), 256, kernel_size=5, num_layers=1)
    assert model.count_params() == param_count("row_lstm", 8, 1, 32, 3, 256, row_kernel=5)


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_paper_configs_build_at_real_size(name):
    config = PAPER_CONFIGS[name]
    height, width, channels = config["image_shape"]
    want = param_count(
        config["cell"],
        config["hidden_maps"],
        config["num_layers"],
        config["output_maps"],
        channels,
        config["num_levels"],
    )
    try:
        # Functional graph only: variables stay uninitialized (no QR of the
        # orthogonal initializer for 70M weights), shapes are all we count.
        with keras.StatelessScope(initialize_variables=False):
            model = PixelRNN(**config)
        logits_shape = (None, height, width, channels, config["num_levels"])
        assert tuple(model.output.shape) == logits_shape
        assert model.count_params() == want
    finally:
        # Keras keeps deferred variables in a global list that the next
        # initializing scope (the JAX trainer's) would fill: drop them.
        keras.backend.clear_session()


def test_paper_configs_are_the_papers():
    want = {  # image shape, levels, layers, h, output maps, residual
        "row_lstm_cifar10": ((32, 32, 3), 256, 12, 128, 1024, True),
        "diagonal_bilstm_cifar10": ((32, 32, 3), 256, 12, 128, 1024, True),
        "diagonal_bilstm_binarized_mnist": ((28, 28, 1), 2, 7, 16, 32, True),
        "row_lstm_imagenet32": ((32, 32, 3), 256, 12, 384, 1024, True),
        "row_lstm_imagenet64": ((64, 64, 3), 256, 4, 512, 1024, False),
    }
    keys = ("image_shape", "num_levels", "num_layers", "hidden_maps", "output_maps")
    got = {
        name: (*(config[key] for key in keys), config.get("residual", True))
        for name, config in PAPER_CONFIGS.items()
    }
    assert got == want
    for name, config in PAPER_CONFIGS.items():
        assert name.startswith(config["cell"] + "_")


@pytest.mark.large
def test_paper_mnist_config_runs():
    model = PixelRNN(**PAPER_CONFIGS["diagonal_bilstm_binarized_mnist"])
    assert model.count_params() == 64770
    images = random_images((28, 28, 1), 2, n=2)
    bpd = model.bits_per_dim(images)
    assert bpd.shape == (2,) and np.isfinite(bpd).all()


def test_subclasses_fix_the_cell():
    row = RowLSTMPixelRNN((6, 6, 3), 17, hidden_maps=8, num_layers=1, output_maps=16)
    diag = DiagonalBiLSTMPixelRNN(
        (6, 6, 3), 17, hidden_maps=8, num_layers=1, output_maps=16
    )
    assert (row.name, row.cell, row.kernel_size) == ("row_lstm", "row_lstm", 3)
    assert (diag.name, diag.cell, diag.kernel_size) == ("diagonal_bilstm",) * 2 + (None,)
    assert "cell" not in row.get_config() and "kernel_size" in row.get_config()
    assert "cell" not in diag.get_config() and "kernel_size" not in diag.get_config()
    for model in (row, diag):
        same = PixelRNN(cell=model.cell, **model.get_config())
        assert same.count_params() == model.count_params()
        assert isinstance(model, PixelRNN)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (6, 6)}, "image_shape"),
        ({"num_levels": 1}, "num_levels"),
        ({"cell": "gru"}, "cell"),
        ({"image_shape": (6, 6, 3), "hidden_maps": 2}, "hidden_maps"),
        ({"output_maps": 0}, "output_maps"),
        ({"num_layers": -1}, "num_layers"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"cell": "diagonal_bilstm", "kernel_size": 3}, "row_lstm"),
        ({"first_kernel_size": 6}, "first_kernel_size"),
        ({"residual": "yes"}, "residual"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PixelRNN(**{**SMALL, **kwargs})


def test_bad_images_raise():
    model = small_model("diagonal_bilstm", (6, 6, 1), 17, num_layers=1)
    with pytest.raises(ValueError, match=r"values must lie in \[0, 16\]"):
        model.log_prob(np.full((2, 6, 6, 1), 17))
    with pytest.raises(ValueError, match=r"image shape \(6, 6, 1\)"):
        model.log_prob(np.zeros((2, 6, 5, 1), "int32"))


# ---- causality and receptive fields ----------------------------------------


def diagonal_bilstm_blind(r, c, width, first_kernel_size):
    """The one earlier pixel whose last sub-pixel (r, c) cannot see, or None.

    The stream at (i, j) never holds the last sub-pixel of (i, j) itself
    (mask A, then mask B), so the last sub-pixel of (r - 1, W - 1) is in no
    stream position before row r; in row r only the mask-A input conv of a
    position (r, j <= c) reaches it, i.e. when c + first_kernel_size // 2 >=
    W - 1. The LSTMs see every stream position of the rows above.
    """
    if r == 0 or c + first_kernel_size // 2 >= width - 1:
        return None
    return (r - 1, width - 1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(6, 6, 1), (4, 4, 3)])
def test_causality_at_init(cell, shape):
    model = small_model(cell, shape)
    height, width, _ = shape

    def must_see(i, j):
        if cell == "row_lstm":
            # The triangle: one more column either side per row up.
            return [
                (i - d, jj)
                for d in range(1, i + 1)
                for jj in range(max(0, j - d), min(width, j + d + 1))
            ]
        blind = diagonal_bilstm_blind(i, j, width, 7)
        return [
            (ii, jj)
            for ii in range(height)
            for jj in range(width)
            if (ii, jj) < (i, j) and (ii, jj) != blind
        ]

    positions = for_backend(
        default_positions(height, width, num_random=2), [(height // 2, width // 2)]
    )
    checked = check_causality(model, positions=positions, must_see=must_see, num_images=8)
    assert checked == len(positions) * shape[-1]


@pytest.mark.parametrize(
    "channels, first_kernel_size, num_layers", [(1, 7, 2), (1, 3, 2), (3, 7, 1)]
)
def test_diagonal_bilstm_sees_every_earlier_sub_pixel_but_one(
    channels, first_kernel_size, num_layers
):
    """Paper Figure 4 (right), checked sub-pixel by sub-pixel on 8 x 8."""
    size = 8
    model = small_model(
        "diagonal_bilstm",
        (size, size, channels),
        4,
        first_kernel_size=first_kernel_size,
        num_layers=num_layers,
    )
    images = random_images((size, size, channels), 4, n=8)
    order = np.arange(size * size * channels).reshape(size, size, channels)
    many = [(7, 0), (1, 0), (4, 3), (3, 5), (2, 6), (7, 7)][: 6 // channels + 1]
    for r, c in for_backend(many, [(4, 3)]):
        for ch in range(channels):
            seen = seen_sub_pixels(model, images, (r, c), ch)
            want = order < order[r, c, ch]
            blind = diagonal_bilstm_blind(r, c, size, first_kernel_size)
            if blind is not None:
                want[(*blind, channels - 1)] = False
            np.testing.assert_array_equal(seen, want, err_msg=f"output {(r, c, ch)}")
            if r > 1:
                assert seen[0, size - 1].all()  # the far right of the top row
                assert seen[r - 2, size - 1].all()


def row_lstm_field(height, width, first_kernel_size, kernel_size, num_layers):
    """Oracle: `field[r, c]` = pixels output (r, c) of a grayscale Row LSTM
    model depends on, as a boolean [H, W] map, by following the graph."""
    a, b = first_kernel_size // 2, kernel_size // 2
    stream = np.zeros((height, width, height, width), bool)
    for r in range(height):
        for c in range(width):
            stream[r, c, max(0, r - a) : r, max(0, c - a) : c + a + 1] = True
            stream[r, c, r, max(0, c - a) : c] = True  # mask A: not (r, c) itself
    for _ in range(num_layers):
        hidden = np.zeros_like(stream)
        for r in range(height):
            for c in range(width):
                # 1 x k input-to-state, mask B: stream at (r, c - b) ... (r, c).
                hidden[r, c] = stream[r, max(0, c - b) : c + 1].any(axis=0)
                if r > 0:  # k-wide state-to-state over the row above
                    hidden[r, c] |= hidden[r - 1, max(0, c - b) : c + b + 1].any(axis=0)
        stream = stream | hidden  # residual
    return stream


@pytest.mark.parametrize("kernel_size, num_layers", [(3, 1), (5, 1), (3, 2)])
def test_row_lstm_receptive_field_is_the_triangle(kernel_size, num_layers):
    """Paper Figure 4 (centre): exact field on 8 x 8, first conv 3 x 3."""
    size = 8
    model = small_model(
        "row_lstm",
        (size, size, 1),
        4,
        num_layers=num_layers,
        first_kernel_size=3,
        kernel_size=kernel_size,
    )
    field = row_lstm_field(size, size, 3, kernel_size, num_layers)
    images = random_images((size, size, 1), 4, n=8)
    for r, c in for_backend([(7, 3), (6, 0), (5, 7), (4, 4), (2, 1), (0, 5)], [(7, 3)]):
        seen = seen_sub_pixels(model, images, (r, c), 0)[..., 0]
        np.testing.assert_array_equal(seen, field[r, c], err_msg=f"output {(r, c)}")
    if kernel_size == 3:
        # Rows above reach one column further right per row up, and more
        # layers do not move that edge (they widen the field to the left).
        r, c = 4, 1
        assert field[r, c, r - 1, c + 1] and not field[r, c, r - 1, c + 2]
        assert field[r, c, 0, c + 4] and not field[r, c, 0, c + 5]
        r, c = 6, 6
        left = c - 2 - num_layers
        assert field[r, c, r - 1, left] and not field[r, c, r - 1, left - 1]


# ---- serialization, training, sampling -------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: PixelRNN(
            (4, 4, 3),
            17,
            cell="row_lstm",
            hidden_maps=4,
            num_layers=1,
            output_maps=8,
            kernel_size=5,
            residual=False,
        ),
        lambda: RowLSTMPixelRNN((4, 4, 3), 17, hidden_maps=4, num_layers=1, output_maps=8),
        lambda: DiagonalBiLSTMPixelRNN(
            (4, 4, 3), 17, hidden_maps=4, num_layers=1, output_maps=8
        ),
    ],
    ids=["pixel_rnn", "row_lstm", "diagonal_bilstm"],
)
def test_config_round_trip_and_keras_save_load(make, tmp_path):
    model = make()
    images = random_images((4, 4, 3), 17)
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()

    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    assert restored.get_config() == config
    np.testing.assert_allclose(restored.log_prob(images), model.log_prob(images), rtol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_fit_lowers_loss_on_real_digits(cell):
    from sklearn.datasets import load_digits

    images = load_digits().images.astype("int32")[:256, :, :, None]  # 17 levels
    model = PixelRNN((8, 8, 1), 17, cell=cell, hidden_maps=8, num_layers=1, output_maps=32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(images, images, batch_size=32, epochs=3, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < loss[0] - 10.0  # nats/image
    bpd = history.history["bits_per_dim"]
    np.testing.assert_allclose(bpd[-1], loss[-1] / (64 * math.log(2)), rtol=1e-3)


@pytest.mark.parametrize("cell", CELLS)
def test_naive_sampling(cell):
    shape = (3, 4, 3)
    model = small_model(cell, shape, 17, hidden_maps=4, num_layers=1, output_maps=8)
    samples = model.sample(3, seed=11, verbose=0)
    assert samples.shape == (3, *shape) and samples.dtype == np.uint8
    assert samples.min() >= 0 and samples.max() <= 16
    np.testing.assert_array_equal(model.sample(3, seed=11, verbose=0), samples)
    assert not np.array_equal(model.sample(3, seed=12, verbose=0), samples)
    # Completion keeps the given sub-pixels.
    given = random_images(shape, 17, n=3, seed=5)
    mask = np.zeros(given.shape, bool)
    mask[:, :2] = True
    completed = model.sample(3, seed=1, conditioned_on=(given, mask), verbose=0)
    np.testing.assert_array_equal(completed[mask], given[mask])


@pytest.mark.tf_only
def test_same_numbers_under_jax_backend(tmp_path):
    """Weights saved under TensorFlow give the same log_prob under JAX."""
    pytest.importorskip("jax")
    kwargs = dict(
        image_shape=(5, 4, 3), num_levels=256, hidden_maps=4, num_layers=2, output_maps=16
    )
    images = random_images((5, 4, 3), 256, n=4)
    np.save(tmp_path / "images.npy", images)
    want = {}
    for cell in CELLS:
        model = PixelRNN(cell=cell, **kwargs)
        model.save_weights(str(tmp_path / f"{cell}.weights.h5"))
        want[cell] = (model.log_prob(images), model.sample(2, seed=7, verbose=0))
    script = textwrap.dedent(
        f"""
        import numpy as np
        from pixel_keras.models import PixelRNN
        images = np.load({str(tmp_path / "images.npy")!r})
        for cell in {CELLS!r}:
            model = PixelRNN(cell=cell, **{kwargs!r})
            model.load_weights({str(tmp_path)!r} + f"/{{cell}}.weights.h5")
            np.save({str(tmp_path)!r} + f"/{{cell}}_lp.npy", model.log_prob(images))
            np.save({str(tmp_path)!r} + f"/{{cell}}_samples.npy",
                    model.sample(2, seed=7, verbose=0))
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    for cell in CELLS:
        lp, samples = want[cell]
        np.testing.assert_allclose(np.load(tmp_path / f"{cell}_lp.npy"), lp, rtol=1e-5)
        np.testing.assert_array_equal(np.load(tmp_path / f"{cell}_samples.npy"), samples)
