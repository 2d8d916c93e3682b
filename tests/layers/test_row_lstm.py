import keras
import numpy as np
import pytest

from pixel_keras.layers import RowLSTM, channel_groups
from pixel_keras.testing import check_causality, input_gradient
from recurrent_helpers import (  # tests/layers/, on sys.path under pytest
    for_backend,
    probe_model,
    random_inputs,
    randomize_weights,
    sigmoid,
)


def input_to_state_mask(k, in_maps, units, groups):
    """Mask B of the 1 x k kernel, element by element, gates grouped per block."""
    mask = np.zeros((1, k, in_maps, 4 * units), "float32")
    in_group = channel_groups(in_maps, groups)
    state_group = channel_groups(units, groups)
    for v in range(k):
        for a in range(in_maps):
            for b in range(4 * units):
                if v < k // 2:
                    mask[0, v, a, b] = 1
                elif v == k // 2:
                    mask[0, v, a, b] = in_group[a] <= state_group[b % units]
    return mask


def numpy_row_lstm(layer, x):
    """Row LSTM in NumPy, one row per step, from the layer's weights."""
    units, k = layer.units, layer.kernel_size
    kernel = keras.ops.convert_to_numpy(layer.input_conv.kernel)
    kernel = kernel * input_to_state_mask(k, x.shape[-1], units, layer.image_channels)
    recurrent = keras.ops.convert_to_numpy(layer.recurrent_kernel)  # [k, h, 4h]
    bias = keras.ops.convert_to_numpy(layer.bias)
    batch, height, width, _ = x.shape
    pad = k // 2

    def conv_row(row, w):  # row [B, W, D], w [k, D, 4h], "same" padding
        padded = np.pad(row, [(0, 0), (pad, pad), (0, 0)])
        return sum(padded[:, v : v + width] @ w[v] for v in range(k))

    hidden = np.zeros((batch, width, units))
    cell = np.zeros((batch, width, units))
    out = np.zeros((batch, height, width, units))
    for i in range(height):
        pre = conv_row(x[:, i], kernel[0]) + conv_row(hidden, recurrent) + bias
        o, f, g_in, g = np.split(pre, 4, axis=-1)  # paper order [o, f, i, g]
        cell = sigmoid(f) * cell + sigmoid(g_in) * np.tanh(g)
        hidden = sigmoid(o) * np.tanh(cell)
        out[:, i] = hidden
    return out


@pytest.mark.parametrize(
    "units, k, in_maps, groups", [(4, 3, 6, 1), (6, 5, 9, 3), (3, 1, 3, 3)]
)
def test_output_shape_and_weights(units, k, in_maps, groups):
    layer = RowLSTM(units, k, image_channels=groups)
    y = layer(random_inputs((2, 5, 7, in_maps)))
    assert tuple(y.shape) == (2, 5, 7, units)
    shapes = sorted(tuple(w.shape) for w in layer.weights)
    assert shapes == sorted(
        [(1, k, in_maps, 4 * units), (k, units, 4 * units), (4 * units,)]
    )
    assert (
        layer.count_params() == k * in_maps * 4 * units + k * units * 4 * units + 4 * units
    )


def test_first_row_is_one_lstm_step_by_hand():
    # Row 0 has a zero state above: h = sigmoid(o) * tanh(sigmoid(i) * tanh(g)).
    layer = RowLSTM(3, 3, image_channels=1)
    x = random_inputs((2, 4, 5, 2))
    layer.build(x.shape)
    randomize_weights(layer, seed=1)
    got = keras.ops.convert_to_numpy(layer(x))[:, 0]
    kernel = keras.ops.convert_to_numpy(layer.input_conv.kernel)[0]  # [3, 2, 12]
    kernel[2] = 0  # mask B: the tap right of the centre is cut, one group keeps the centre
    padded = np.pad(x[:, 0], [(0, 0), (1, 1), (0, 0)])
    pre = sum(padded[:, v : v + 5] @ kernel[v] for v in range(3))
    pre = pre + keras.ops.convert_to_numpy(layer.bias)
    o, _, i, g = np.split(pre, 4, axis=-1)
    want = sigmoid(o) * np.tanh(sigmoid(i) * np.tanh(g))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "units, k, in_maps, groups", [(3, 3, 2, 1), (4, 5, 7, 3), (3, 3, 3, 3)]
)
def test_matches_numpy_oracle(units, k, in_maps, groups):
    layer = RowLSTM(units, k, image_channels=groups)
    x = random_inputs((2, 5, 6, in_maps), seed=2)
    layer.build(x.shape)
    randomize_weights(layer, seed=3)
    got = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, numpy_row_lstm(layer, x), rtol=1e-4, atol=1e-5)


def test_mixed_bfloat16_matches_float32_to_bfloat16_precision():
    layer = RowLSTM(8, 3, image_channels=1)
    x = random_inputs((2, 6, 5, 4), seed=4)
    layer.build(x.shape)
    randomize_weights(layer, seed=5)
    want = numpy_row_lstm(layer, x)
    mixed = RowLSTM(8, 3, image_channels=1, dtype="mixed_bfloat16")
    mixed.build(x.shape)
    for weight, value in zip(mixed.weights, layer.weights):
        weight.assign(value)
    got = mixed(x)
    assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
    # Products in bfloat16 (8-bit mantissa), the cell state in float32.
    got = keras.ops.convert_to_numpy(keras.ops.cast(got, "float32"))
    np.testing.assert_allclose(got, want, atol=0.1)


@pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="JAX computes in float32 unless x64"
)
def test_float64_layer_is_not_narrowed():
    layer = RowLSTM(8, 3, image_channels=1, dtype="float64")
    x = random_inputs((2, 6, 5, 4), seed=6).astype("float64")
    layer.build(x.shape)
    randomize_weights(layer, seed=7)
    got = layer(x)
    assert keras.backend.standardize_dtype(got.dtype) == "float64"
    want = numpy_row_lstm(layer, x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-9)


def test_compiled_call_matches_eager_call():
    inputs = keras.Input((4, 5, 6))
    model = keras.Model(inputs, RowLSTM(4, image_channels=3)(inputs))
    x = random_inputs((3, 4, 5, 6))
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        keras.ops.convert_to_numpy(model(x)),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "unit_forget_bias, want", [(True, [0, 1, 0, 0]), (False, [0, 0, 0, 0])]
)
def test_unit_forget_bias(unit_forget_bias, want):
    layer = RowLSTM(2, unit_forget_bias=unit_forget_bias)
    layer.build((None, 3, 3, 2))
    bias = keras.ops.convert_to_numpy(layer.bias)
    np.testing.assert_array_equal(bias, np.repeat(want, 2))  # blocks [o, f, i, g]


@pytest.mark.parametrize("shape", [(5, 5, 1), (4, 4, 3)])
def test_causality_at_init(shape):
    model = probe_model(RowLSTM(4, 3, image_channels=shape[-1]), shape)
    height, width, _ = shape

    def must_see(i, j):
        # The state-to-state conv reaches one more column either side per row up.
        return [
            (i - d, jj)
            for d in range(1, i + 1)
            for jj in range(max(0, j - d), min(width, j + d + 1))
        ]

    everywhere = [(i, j) for i in range(height) for j in range(width)]
    positions = for_backend(everywhere, [(height // 2, width // 2)])
    assert (
        check_causality(model, positions=positions, must_see=must_see)
        == len(positions) * shape[-1]
    )


@pytest.mark.parametrize("k", [1, 3, 5])
def test_field_over_input_map_is_a_triangle(k):
    # Over its own input map, output (r, c) reads row r at [c - k//2, c] and
    # row r - s (s >= 1) at [c - (s + 1) * (k//2), c + s * (k//2)].
    height, width = 6, 7
    model = probe_model(RowLSTM(4, k), (height, width, 1), first_kernel_size=None)
    images = np.random.default_rng(0).integers(0, 4, size=(4, height, width, 1))
    b = k // 2
    for r, c in for_backend([(5, 3), (4, 0), (3, 6), (0, 2)], [(5, 3)]):
        seen = (input_gradient(model, images, (r, c), 0) != 0).any(axis=0)[..., 0]
        want = np.zeros((height, width), bool)
        want[r, max(0, c - b) : c + 1] = True
        for s in range(1, r + 1):
            want[r - s, max(0, c - (s + 1) * b) : c + s * b + 1] = True
        np.testing.assert_array_equal(seen, want, err_msg=f"output {(r, c)}")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 2, "image_channels": 3}, "units"),
        ({"units": 4.0}, "units"),
        ({"units": 4, "kernel_size": 2}, "kernel_size"),
        ({"units": 4, "kernel_size": (1, 3)}, "kernel_size"),
        ({"units": 4, "image_channels": 0}, "image_channels"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RowLSTM(**kwargs)


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"\[B, H, W, maps\]"):
        RowLSTM(4)(np.zeros((2, 5, 6), "float32"))


def test_config_round_trip():
    layer = RowLSTM(4, 5, image_channels=3, unit_forget_bias=False, name="rows")
    x = random_inputs((2, 4, 6, 6))
    y = layer(x)
    config = layer.get_config()
    clone = RowLSTM.from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), y, rtol=1e-6)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, RowLSTM) and restored.kernel_size == 5
