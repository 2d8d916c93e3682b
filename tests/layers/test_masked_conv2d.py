import itertools

import keras
import numpy as np
import pytest

from pixel_keras.layers import MaskedConv2D, build_mask, channel_groups
from pixel_keras.layers.masked_conv2d import bias_add, pointwise
from gradient_helpers import value_and_gradients  # tests/layers/, on sys.path under pytest


def oracle_group(index, num_maps, num_groups):
    """Group of a map by counting block starts: block g starts at ceil(g*n/C)."""
    starts = [-(-g * num_maps // num_groups) for g in range(num_groups)]
    return max(g for g, s in enumerate(starts) if s <= index)


def oracle_mask(kh, kw, n_in, n_out, mask_type, groups):
    """Element-by-element definition of the causal mask."""
    mask = np.zeros((kh, kw, n_in, n_out), "float32")
    for u, v, a, b in itertools.product(
        range(kh), range(kw), range(n_in), range(n_out)
    ):
        du, dv = u - kh // 2, v - kw // 2  # offset of the tap from the centre
        if du < 0 or (du == 0 and dv < 0):
            mask[u, v, a, b] = 1
        elif du == 0 and dv == 0:
            g_in = oracle_group(a, n_in, groups)
            g_out = oracle_group(b, n_out, groups)
            visible = g_in < g_out if mask_type == "A" else g_in <= g_out
            mask[u, v, a, b] = float(visible)
    return mask


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (5, 5), (7, 7), (1, 3), (3, 5)])
@pytest.mark.parametrize("maps", [(3, 3), (3, 12), (12, 6), (7, 5), (4, 10)])
def test_mask_matches_numpy_oracle(groups, mask_type, kernel, maps):
    n_in, n_out = maps
    got = build_mask(kernel, n_in, n_out, mask_type, groups)
    want = oracle_mask(*kernel, n_in, n_out, mask_type, groups)
    np.testing.assert_array_equal(got, want)


def test_centre_tables_rgb_literal():
    # Rows: input group (R, G, B); columns: output group.
    mask_a = build_mask((1, 1), 3, 3, "A", 3)[0, 0]
    mask_b = build_mask((1, 1), 3, 3, "B", 3)[0, 0]
    np.testing.assert_array_equal(mask_a, [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(mask_b, [[1, 1, 1], [0, 1, 1], [0, 0, 1]])


def test_centre_tables_grayscale_literal():
    assert build_mask((1, 1), 1, 1, "A", 1).sum() == 0
    assert build_mask((1, 1), 1, 1, "B", 1).sum() == 1
    spatial = build_mask((3, 3), 1, 1, "A", 1)[:, :, 0, 0]
    np.testing.assert_array_equal(spatial, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])


def test_channel_groups_any_count():
    np.testing.assert_array_equal(channel_groups(4, 3), [0, 0, 1, 2])
    np.testing.assert_array_equal(channel_groups(7, 3), [0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(channel_groups(6, 3), [0, 0, 1, 1, 2, 2])
    # The output reshape [C*K] -> [C, K] puts map c*K + k in group c.
    k = 17
    np.testing.assert_array_equal(channel_groups(3 * k, 3), np.repeat([0, 1, 2], k))


def test_output_shape_and_weights():
    layer = MaskedConv2D(10, 5, "A", image_channels=3)
    y = layer(np.zeros((2, 6, 7, 3), "float32"))
    assert tuple(y.shape) == (2, 6, 7, 10)
    # The mask is a constant: only kernel and bias are weights.
    assert [tuple(w.shape) for w in layer.weights] == [(5, 5, 3, 10), (10,)]
    assert layer.count_params() == 5 * 5 * 3 * 10 + 10


def test_golden_values_constant_kernel():
    layer = MaskedConv2D(1, 3, "A", kernel_initializer="ones", bias_initializer="zeros")
    x = np.arange(1, 17, dtype="float32").reshape(1, 4, 4, 1)
    y = keras.ops.convert_to_numpy(layer(x))[0, :, :, 0]
    # Each output sums the (zero-padded) row above (3 taps) and the left tap.
    img = np.pad(x[0, :, :, 0], 1)
    want = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            want[i, j] = img[i, j : j + 3].sum() + img[i + 1, j]
    np.testing.assert_allclose(y, want)


@pytest.mark.parametrize(
    "kernel, mask_type, groups",
    [
        ((3, 3), "B", 1),
        ((7, 7), "A", 1),
        ((1, 3), "B", 1),
        ((3, 1), "A", 3),
        ((5, 3), "B", 3),
        ((7, 7), "A", 3),
    ],
)
def test_cropped_convolution_equals_full_masked_kernel(kernel, mask_type, groups):
    # `call` convolves with only the kernel rows (or, 1 x k, columns) the
    # mask keeps; that is the "same" convolution with the whole masked kernel.
    layer = MaskedConv2D(6, kernel, mask_type, image_channels=groups)
    x = np.random.default_rng(1).normal(size=(2, 9, 8, 6)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    full = keras.ops.conv(x, layer.masked_kernel(), padding="same") + layer.bias
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(full), atol=1e-5)


def test_mask_applied_in_call_not_by_constraint():
    layer = MaskedConv2D(3, 3, "A", image_channels=3)
    layer.build((None, 5, 5, 3))
    # The raw kernel is unmasked (dense random values) ...
    raw = keras.ops.convert_to_numpy(layer.kernel)
    assert np.count_nonzero(raw[2]) > 0
    # ... yet a change in the future rows never reaches the output.
    x = np.random.default_rng(0).normal(size=(1, 5, 5, 3)).astype("float32")
    x2 = x.copy()
    x2[0, 3:] += 5.0
    x2[0, 2, 3:] += 5.0
    x2[0, 2, 2, 2] += 5.0  # blue of the centre pixel
    y = keras.ops.convert_to_numpy(layer(x))
    y2 = keras.ops.convert_to_numpy(layer(x2))
    np.testing.assert_array_equal(y[0, 2, 2], y2[0, 2, 2])


def test_serialization_round_trip():
    layer = MaskedConv2D(6, (3, 5), "B", image_channels=3, use_bias=False, name="m")
    config = layer.get_config()
    clone = MaskedConv2D.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, MaskedConv2D)
    assert restored.kernel_size == (3, 5) and restored.mask_type == "B"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": 4, "kernel_size": 3, "mask_type": "C"}, "mask_type"),
        ({"filters": 4, "kernel_size": 2}, "kernel_size"),
        ({"filters": 4, "kernel_size": (3, 4)}, "kernel_size"),
        ({"filters": 2, "kernel_size": 3, "image_channels": 3}, "filters"),
        ({"filters": 4, "kernel_size": 3, "image_channels": 0}, "image_channels"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskedConv2D(**kwargs)


def test_bad_input_shape():
    layer = MaskedConv2D(6, 3, "A", image_channels=3)
    with pytest.raises(ValueError, match="at least `image_channels`"):
        layer(np.zeros((1, 4, 4, 2), "float32"))


def test_output_blocks_group_each_block_like_the_state():
    # 4 LSTM gates of h=5 maps, 3 groups: each gate block is grouped like the state
    mask = build_mask((1, 1), 3, 20, "B", 3, output_blocks=4)[0, 0]
    state_groups = channel_groups(5, 3)
    for block in range(4):
        for m in range(5):
            col = mask[:, block * 5 + m]
            np.testing.assert_array_equal(col, np.arange(3) <= state_groups[m])
    layer = MaskedConv2D(20, 3, "B", image_channels=3, output_blocks=4)
    assert MaskedConv2D.from_config(layer.get_config()).output_blocks == 4
    with pytest.raises(ValueError, match="output_blocks"):
        MaskedConv2D(10, 3, image_channels=3, output_blocks=4)


# bfloat16 takes another code path for the gradients (one product per image,
# summed in float32): compared with float32 on the same bfloat16 numbers.
DTYPES = ["float32", "bfloat16"]


def _close_to_float32(ours, reference, dtype, rtol, atol):
    """Asserts arrays match: to `rtol`/`atol` in float32, to 3% of the largest
    reference entry in bfloat16."""
    for a, b in zip(ours, reference):
        a, b = np.asarray(a, "float32"), np.asarray(b, "float32")
        if dtype == "float32":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=0.03 * np.abs(b).max())


def _loss(fn, w):
    """A scalar of `fn`'s output whose upstream gradient varies per element."""
    return lambda *args: keras.ops.sum(fn(*args) * keras.ops.cast(w, "float32"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel_shape", [(6, 4), (1, 1, 6, 4)])
def test_pointwise_value_and_gradients_equal_a_plain_convolution(kernel_shape, dtype):
    # `pointwise` writes its kernel gradient as a matrix product.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3, 6)).astype(dtype)
    kernel = rng.normal(size=kernel_shape).astype(dtype)
    w = rng.normal(size=(2, 5, 3, 4)).astype("float32")

    def plain(x, kernel):
        x, kernel = keras.ops.cast(x, "float32"), keras.ops.cast(kernel, "float32")
        return keras.ops.conv(x, keras.ops.reshape(kernel, (1, 1, 6, 4)))

    def ours(x, kernel):
        return keras.ops.cast(pointwise(x, kernel), "float32")

    _close_to_float32([ours(x, kernel)], [plain(x, kernel)], dtype, 1e-5, 1e-5)
    _, got = value_and_gradients(_loss(ours, w), x, kernel)
    _, want = value_and_gradients(_loss(plain, w), x, kernel)
    assert got[1].shape == kernel_shape
    _close_to_float32(got, want, dtype, 1e-4, 1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_add_value_and_gradients_equal_a_plain_add(dtype):
    # `bias_add` writes the bias gradient as a matrix product.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4, 5)).astype(dtype)
    b = rng.normal(size=(5,)).astype(dtype)
    w = rng.normal(size=(2, 3, 4, 5)).astype("float32")

    def plain(x, b):
        return keras.ops.cast(x, "float32") + keras.ops.cast(b, "float32")

    def ours(x, b):
        return keras.ops.cast(bias_add(x, b), "float32")

    _close_to_float32([ours(x, b)], [plain(x, b)], dtype, 1e-6, 0)
    _, got = value_and_gradients(_loss(ours, w), x, b)
    _, want = value_and_gradients(_loss(plain, w), x, b)
    _close_to_float32(got, want, dtype, 1e-5, 1e-5)
