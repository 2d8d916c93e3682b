import keras
import numpy as np
import pytest

from pixel_keras.layers import GatedBlock, build_mask, channel_groups
from gradient_helpers import value_and_gradients  # tests/layers/, on sys.path under pytest


def weights_of(layer):
    return {w.name: keras.ops.convert_to_numpy(w) for w in layer.weights}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def oracle_block(layer, vertical, horizontal, condition=None, condition_map=None):
    """Element-by-element NumPy definition of a gated block (float64 loops).

    Vertical pre-activation at (i, j): taps (a, t) of the (k+1) x n kernel
    read input (i - k + a, j - k + t). Horizontal pre-activation: taps t of
    the 1 x (k+1) kernel read (i, j - k + t), the last (t = k, the pixel
    itself) only between the channel groups the mask type allows; plus the
    vertical pre-activation of (i - 1, j) through a 1 x 1 kernel.
    """
    w = {name: value.astype("float64") for name, value in weights_of(layer).items()}
    vertical = vertical.astype("float64")
    horizontal = horizontal.astype("float64")
    batch, height, width, h_in = horizontal.shape
    p, n = layer.filters, layer.kernel_size
    k = n // 2
    groups = layer.image_channels
    in_group = channel_groups(h_in, groups)
    out_group = np.tile(channel_groups(p, groups), 2)
    centre = np.zeros((h_in, 2 * p))
    for a in range(h_in):
        for b in range(2 * p):
            if layer.mask_type == "A":
                centre[a, b] = in_group[a] < out_group[b]
            else:
                centre[a, b] = in_group[a] <= out_group[b]
    state_group = channel_groups(p, groups)
    point = (state_group[:, None] <= np.tile(state_group, 2)[None, :]).astype("float64")

    def inside(i, j):
        return 0 <= i < height and 0 <= j < width

    v_pre = np.zeros((batch, height, width, 2 * p))
    h_pre = np.zeros((batch, height, width, 2 * p))
    for i in range(height):
        for j in range(width):
            v_pre[:, i, j] = w["vertical_bias"]
            for a in range(k + 1):
                for t in range(n):
                    ii, jj = i - k + a, j - k + t
                    if inside(ii, jj):
                        v_pre[:, i, j] += (
                            vertical[:, ii, jj] @ w["vertical_kernel"][a, t]
                        )
            h_pre[:, i, j] = w["horizontal_bias"]
            for t in range(k + 1):
                jj = j - k + t
                if inside(i, jj):
                    kernel = w["horizontal_kernel"][0, t]
                    if t == k:
                        kernel = kernel * centre
                    h_pre[:, i, j] += horizontal[:, i, jj] @ kernel
    if condition is not None:
        v_pre += (condition @ w["vertical_condition_kernel"])[:, None, None]
        h_pre += (condition @ w["horizontal_condition_kernel"])[:, None, None]
    if condition_map is not None:
        v_pre += condition_map @ w["vertical_condition_map_kernel"]
        h_pre += condition_map @ w["horizontal_condition_map_kernel"]
    for i in range(1, height):
        h_pre[:, i] += v_pre[:, i - 1] @ w["vertical_to_horizontal_kernel"]

    def gate(x):
        return np.tanh(x[..., :p]) * sigmoid(x[..., p:])

    gated = gate(h_pre)
    out = gated @ (w["output_kernel"] * point) + w["output_bias"]
    h_out, skip = out[..., :p], out[..., p:]
    if layer.residual:
        h_out = h_out + horizontal
    return gate(v_pre), h_out, skip


def random_maps(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# One map count and one input size for every test keeps the JAX backend from
# compiling new shapes in each test. p = 7 splits unevenly into 3 groups.
P, BATCH, HEIGHT, WIDTH = 7, 2, 5, 6


@pytest.mark.parametrize(
    "kernel_size, mask_type, channels, maps, conditional",
    [(3, "A", 1, 1, False), (5, "A", 3, 3, False), (7, "B", 3, P, True)],
)
def test_matches_numpy_oracle(kernel_size, mask_type, channels, maps, conditional):
    residual = mask_type == "B"
    layer = GatedBlock(
        P, kernel_size, mask_type, image_channels=channels, residual=residual
    )
    v_in = random_maps((BATCH, HEIGHT, WIDTH, maps), seed=1)
    h_in = random_maps((BATCH, HEIGHT, WIDTH, maps), seed=2)
    conditions = {}
    if conditional:
        conditions = dict(
            condition=random_maps((BATCH, 4), 3),
            condition_map=random_maps((BATCH, HEIGHT, WIDTH, 2), 4),
        )
    got = [keras.ops.convert_to_numpy(t) for t in layer(v_in, h_in, **conditions)]
    want = oracle_block(layer, v_in, h_in, **conditions)
    for g, o in zip(got, want):
        np.testing.assert_allclose(g, o, rtol=1e-4, atol=1e-5)


def test_mixed_bfloat16_matches_numpy_oracle_to_bfloat16_precision():
    layer = GatedBlock(P, 3, "B", image_channels=1, dtype="mixed_bfloat16")
    v_in = random_maps((BATCH, HEIGHT, WIDTH, P), seed=5)
    h_in = random_maps((BATCH, HEIGHT, WIDTH, P), seed=6)
    outputs = layer(v_in, h_in)
    want = oracle_block(layer, v_in, h_in)
    for got, o in zip(outputs, want):
        assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
        # Products in bfloat16 (8-bit mantissa), the gates in float32.
        got = keras.ops.convert_to_numpy(keras.ops.cast(got, "float32"))
        np.testing.assert_allclose(got, o, atol=0.05)


def _fused_gate(x):
    from pixel_keras import _tf_fused

    return _tf_fused.gate(x)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_gate_value_and_gradient_match_numpy(dtype, fused):
    # `fused`: the XLA-compiled forward and hand-written gradient of
    # `_tf_fused.gate`, which `gate(x, training=True)` runs under a 16-bit
    # policy on TensorFlow; otherwise the plain ops.
    if keras.backend.backend() == "jax" and (fused or dtype == "float64"):
        pytest.skip("TensorFlow only / JAX computes in float32 unless x64")
    layer = GatedBlock(P, 3, "B", image_channels=1)
    x = random_maps((BATCH, HEIGHT, WIDTH, 2 * P), seed=11)
    w = random_maps((BATCH, HEIGHT, WIDTH, P), seed=12)
    x = keras.ops.convert_to_numpy(keras.ops.cast(x, dtype))
    gate = _fused_gate if fused else layer.gate
    value, (grad,) = value_and_gradients(
        lambda x: keras.ops.sum(keras.ops.cast(gate(x), "float32") * w), x
    )
    x64 = np.asarray(x, "float64")
    a, b = x64[..., :P], x64[..., P:]
    want_value = np.sum(np.tanh(a) * sigmoid(b) * w)
    want_grad = np.concatenate(
        [
            w * sigmoid(b) * (1.0 - np.tanh(a) ** 2),
            w * np.tanh(a) * sigmoid(b) * (1.0 - sigmoid(b)),
        ],
        axis=-1,
    )
    assert grad.dtype == x.dtype
    grad = np.asarray(grad, "float64")
    if dtype == "bfloat16":
        # The product and the gradient are rounded to bfloat16 once each.
        np.testing.assert_allclose(value, want_value, atol=0.01 * np.abs(w).sum())
        np.testing.assert_allclose(grad, want_grad, rtol=0.01, atol=1e-3)
    else:
        np.testing.assert_allclose(value, want_value, rtol=1e-5)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_training_outputs_equal_inference_outputs(dtype):
    layer = GatedBlock(P, 5, "B", image_channels=3, dtype=dtype)
    v_in = random_maps((BATCH, HEIGHT, WIDTH, P), seed=13)
    h_in = random_maps((BATCH, HEIGHT, WIDTH, P), seed=14)
    inference = layer(v_in, h_in, training=False)
    training = layer(v_in, h_in, training=True)
    for got, want in zip(training, inference):
        got = keras.ops.convert_to_numpy(keras.ops.cast(got, "float32"))
        want = keras.ops.convert_to_numpy(keras.ops.cast(want, "float32"))
        if dtype == "float32":
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_allclose(got, want, atol=0.02 * np.abs(want).max())


@pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="JAX computes in float32 unless x64"
)
def test_float64_layer_is_not_narrowed():
    layer = GatedBlock(P, 3, "B", image_channels=1, dtype="float64")
    v_in = random_maps((BATCH, HEIGHT, WIDTH, P), seed=7).astype("float64")
    h_in = random_maps((BATCH, HEIGHT, WIDTH, P), seed=8).astype("float64")
    outputs = layer(v_in, h_in)
    for got, o in zip(outputs, oracle_block(layer, v_in, h_in)):
        assert keras.backend.standardize_dtype(got.dtype) == "float64"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), o, rtol=1e-10)


@pytest.mark.parametrize("with_conditions", [False, True])
def test_output_shapes_and_weight_counts(with_conditions):
    p, n, c_in, d, s = P, 5, 3, 4, 2
    k = n // 2
    layer = GatedBlock(p, n, "A", image_channels=3, residual=False)
    x = random_maps((BATCH, HEIGHT, WIDTH, c_in))
    kwargs = {}
    if with_conditions:
        kwargs = dict(
            condition=random_maps((BATCH, d)),
            condition_map=random_maps((BATCH, HEIGHT, WIDTH, s)),
        )
    outputs = layer(x, x, **kwargs)
    assert [tuple(t.shape) for t in outputs] == [(BATCH, HEIGHT, WIDTH, p)] * 3
    want = (
        (k + 1) * n * c_in * 2 * p + 2 * p  # vertical (k+1) x n
        + 2 * p * 2 * p  # vertical -> horizontal 1x1, no bias
        + (k + 1) * c_in * 2 * p + 2 * p  # horizontal 1 x (k+1)
        + p * 2 * p + 2 * p  # output 1x1: residual and skip halves
    )  # fmt: skip
    if with_conditions:
        want += 2 * (d * 2 * p) + 2 * (s * 2 * p)
    assert layer.count_params() == want
    # No wasted taps: the kernels have exactly the (k+1) x n and 1 x (k+1) shapes.
    shapes = {w.name: tuple(w.shape) for w in layer.weights}
    assert shapes["vertical_kernel"] == (k + 1, n, c_in, 2 * p)
    assert shapes["horizontal_kernel"] == (1, k + 1, c_in, 2 * p)


def test_horizontal_mask_literal_rgb():
    # Rows: input R, G, B; columns: the tanh half then the sigmoid half,
    # each [R, G, B] (p = 3).
    first = GatedBlock(3, 3, "A", image_channels=3, residual=False)
    first.build((None, 4, 4, 3), (None, 4, 4, 3))
    later = GatedBlock(3, 3, "B", image_channels=3)
    later.build((None, 4, 4, 3), (None, 4, 4, 3))
    a = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    b = [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    np.testing.assert_array_equal(first.horizontal_mask[0, 1], np.tile(a, 2))
    np.testing.assert_array_equal(later.horizontal_mask[0, 1], np.tile(b, 2))
    # The left tap is unmasked, and the mask is the left half of build_mask.
    assert first.horizontal_mask[0, 0].all()
    np.testing.assert_array_equal(
        later.horizontal_mask, build_mask((1, 3), 3, 6, "B", 3, output_blocks=2)[:, :2]
    )
    np.testing.assert_array_equal(later.output_mask, np.tile(b, 2))


def test_vertical_sees_rows_up_to_its_own_horizontal_strictly_above():
    """Perturb one input pixel: which outputs of a single block change."""
    n, k = 5, 2
    layer = GatedBlock(P, n, "A", image_channels=1, residual=False)
    x = random_maps((1, 7, 7, 1))
    base = [keras.ops.convert_to_numpy(t)[0, ..., 0] for t in layer(x, x)]
    r, c = 3, 3
    x2 = x.copy()
    x2[0, r, c, 0] += 1.0
    changed = [
        np.abs(keras.ops.convert_to_numpy(t)[0, ..., 0] - b0) > 0
        for t, b0 in zip(layer(x2, x2), base)
    ]
    vertical, horizontal, skip = changed
    # Vertical output (i, j) reads rows i - k .. i: input row r reaches rows
    # r .. r + k, columns c - k .. c + k (the current row included).
    want_v = np.zeros((7, 7), bool)
    want_v[r : r + k + 1, c - k : c + k + 1] = True
    np.testing.assert_array_equal(vertical, want_v)
    # Horizontal: row r to the right (k taps, mask A: not the pixel itself),
    # and, through the one-row shift, rows r + 1 .. r + k + 1.
    want_h = np.zeros((7, 7), bool)
    want_h[r, c + 1 : c + k + 1] = True
    want_h[r + 1 : r + k + 2, c - k : c + k + 1] = True
    np.testing.assert_array_equal(horizontal, want_h)
    np.testing.assert_array_equal(skip, want_h)


def test_conditions_change_every_output():
    layer = GatedBlock(P, 3, "B", image_channels=3)
    v = random_maps((BATCH, HEIGHT, WIDTH, P), 1)
    h = random_maps((BATCH, HEIGHT, WIDTH, P), 2)
    cmap = random_maps((BATCH, HEIGHT, WIDTH, 2), 3)
    zeros, ones = np.zeros((BATCH, 4), "float32"), np.ones((BATCH, 4), "float32")
    a = layer(v, h, condition=zeros, condition_map=cmap)
    b = layer(v, h, condition=ones, condition_map=cmap)
    c = layer(v, h, condition=zeros, condition_map=cmap + 1)
    for x, y, z in zip(a, b, c):
        x, y, z = (keras.ops.convert_to_numpy(t) for t in (x, y, z))
        assert (np.abs(x - y) > 0).all()
        assert (np.abs(x - z) > 0).all()
    with pytest.raises(ValueError, match="`condition` must be given on every call"):
        layer(v, h, condition_map=cmap)
    with pytest.raises(ValueError, match="`condition_map` must be given"):
        layer(v, h, condition=zeros)


def test_serialization_round_trip():
    layer = GatedBlock(6, 5, "A", image_channels=3, residual=False, name="g")
    config = layer.get_config()
    clone = GatedBlock.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, GatedBlock)
    assert (restored.kernel_size, restored.mask_type, restored.residual) == (
        5,
        "A",
        False,
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": 4, "kernel_size": 4}, "kernel_size"),
        ({"filters": 4, "kernel_size": 1}, "kernel_size"),
        ({"filters": 4, "kernel_size": (3, 3)}, "kernel_size"),
        ({"filters": 4, "mask_type": "C"}, "mask_type"),
        ({"filters": 2, "image_channels": 3}, "filters"),
        ({"filters": 4, "image_channels": 0}, "image_channels"),
        ({"filters": 4, "residual": "yes"}, "residual"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GatedBlock(**kwargs)


def test_bad_input_shapes():
    x = random_maps((1, 4, 4, 3))
    with pytest.raises(ValueError, match="With `residual=True`"):
        GatedBlock(6, 3, "A", image_channels=3)(x, x)
    with pytest.raises(ValueError, match="at least `image_channels`"):
        GatedBlock(6, 3, "A", image_channels=3, residual=False)(x[..., :2], x[..., :2])
    with pytest.raises(ValueError, match="`condition` must have shape"):
        GatedBlock(6, 3, "A", image_channels=3, residual=False)(
            x, x, condition=random_maps((1, 2, 2))
        )
    with pytest.raises(ValueError, match="same height and width"):
        GatedBlock(6, 3, "A", image_channels=3, residual=False)(x, x[:, :3])
