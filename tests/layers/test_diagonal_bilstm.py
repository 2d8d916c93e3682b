import keras
import numpy as np
import pytest

from pixel_keras.layers import (
    DiagonalBiLSTM,
    channel_groups,
    skew,
    unskew,
)
from pixel_keras.layers.row_lstm import lstm_update
from pixel_keras.testing import check_causality, input_gradient
from gradient_helpers import value_and_gradients  # tests/layers/, on sys.path under pytest
from recurrent_helpers import (  # tests/layers/, on sys.path under pytest
    for_backend,
    probe_model,
    random_inputs,
    randomize_weights,
    sigmoid,
)


# ---- skew / unskew ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 4, 2), (1, 5, 2, 3), (2, 1, 4, 1), (1, 4, 1, 2)])
def test_skew_exact_positions(shape):
    x = random_inputs(shape)
    got = keras.ops.convert_to_numpy(skew(x))
    batch, height, width, maps = shape
    assert got.shape == (batch, height, width + height - 1, maps)
    want = np.zeros(got.shape, "float32")
    for r in range(height):
        for c in range(width):
            want[:, r, c + r] = x[:, r, c]
    np.testing.assert_array_equal(got, want)


def test_skew_literal_picture():
    x = np.arange(1, 13, dtype="float32").reshape(1, 3, 4, 1)
    got = keras.ops.convert_to_numpy(skew(x))[0, :, :, 0]
    want = [[1, 2, 3, 4, 0, 0], [0, 5, 6, 7, 8, 0], [0, 0, 9, 10, 11, 12]]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(2, 3, 4, 2), (1, 5, 2, 3), (2, 1, 4, 1), (1, 4, 1, 2)])
def test_unskew_inverts_skew_and_reads_diagonals(shape):
    x = random_inputs(shape, seed=1)
    width = shape[2]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(unskew(skew(x), width)), x)
    y = random_inputs((shape[0], shape[1], width + shape[1] - 1, shape[3]), seed=2)
    got = keras.ops.convert_to_numpy(unskew(y, width))
    for r in range(shape[1]):
        np.testing.assert_array_equal(got[:, r], y[:, r, r : r + width])


def test_skew_under_symbolic_batch():
    inputs = keras.Input((3, 5, 2))
    skewed = skew(inputs)
    assert tuple(skewed.shape) == (None, 3, 7, 2)
    assert tuple(unskew(skewed, 5).shape) == (None, 3, 5, 2)


def test_unskew_bad_width_raises():
    with pytest.raises(ValueError, match="width \\+ height - 1"):
        unskew(np.zeros((1, 3, 6, 1), "float32"), 5)


# ---- the layer -------------------------------------------------------------


def numpy_diagonal_bilstm(layer, x):
    """Diagonal BiLSTM in NumPy, pixel by pixel in raster order, no skew.

    Left to right: (r, c) reads the states of (r - 1, c) and (r, c - 1);
    right to left: of (r - 1, c) and (r, c + 1), then shifted down a row.
    """
    units, groups = layer.units, layer.image_channels
    in_group = channel_groups(x.shape[-1], groups)
    state_group = np.tile(channel_groups(units, groups), 4)
    mask = (in_group[:, None] <= state_group[None, :]).astype("float32")  # 1x1, mask B
    batch, height, width, _ = x.shape

    def sweep(x, conv, recurrent, bias):
        kernel = keras.ops.convert_to_numpy(conv.kernel)[0, 0] * mask
        recurrent = keras.ops.convert_to_numpy(recurrent)  # [2, h, 4h]
        gates = x @ kernel + keras.ops.convert_to_numpy(bias)
        hidden = np.zeros((batch, height + 1, width + 1, units))  # zero row/col first
        cell = np.zeros_like(hidden)
        for r in range(height):
            for c in range(width):
                above, left = hidden[:, r, c + 1], hidden[:, r + 1, c]
                pre = gates[:, r, c] + above @ recurrent[0] + left @ recurrent[1]
                o, f, i, g = np.split(pre, 4, axis=-1)
                # The cell carried from the previous column is row r's: (r, c - 1).
                cell[:, r + 1, c + 1] = sigmoid(f) * cell[:, r + 1, c] + sigmoid(
                    i
                ) * np.tanh(g)
                hidden[:, r + 1, c + 1] = sigmoid(o) * np.tanh(cell[:, r + 1, c + 1])
        return hidden[:, 1:, 1:]

    forward = sweep(x, layer.input_conv, layer.recurrent_kernel, layer.bias)
    backward = sweep(
        x[:, :, ::-1],
        layer.reverse_input_conv,
        layer.reverse_recurrent_kernel,
        layer.reverse_bias,
    )[:, :, ::-1]
    out = forward.copy()
    out[:, 1:] += backward[:, :-1]
    return out


@pytest.mark.parametrize("units, in_maps, groups", [(4, 6, 1), (6, 9, 3)])
def test_output_shape_and_weights(units, in_maps, groups):
    layer = DiagonalBiLSTM(units, image_channels=groups)
    y = layer(random_inputs((2, 5, 7, in_maps)))
    assert tuple(y.shape) == (2, 5, 7, units)
    one_direction = in_maps * 4 * units + 2 * units * 4 * units + 4 * units
    assert layer.count_params() == 2 * one_direction


def test_top_left_pixel_is_one_lstm_step_by_hand():
    # Pixel (0, 0): zero state above and left, nothing from the right-to-left
    # direction (row 0 gets zeros): h = sigmoid(o) * tanh(sigmoid(i) * tanh(g)).
    layer = DiagonalBiLSTM(3)
    x = random_inputs((2, 4, 5, 2))
    layer.build(x.shape)
    randomize_weights(layer, seed=1)
    got = keras.ops.convert_to_numpy(layer(x))[:, 0, 0]
    kernel = keras.ops.convert_to_numpy(layer.input_conv.kernel)[0, 0]
    pre = x[:, 0, 0] @ kernel + keras.ops.convert_to_numpy(layer.bias)
    o, _, i, g = np.split(pre, 4, axis=-1)
    want = sigmoid(o) * np.tanh(sigmoid(i) * np.tanh(g))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "units, shape, groups",
    [(3, (2, 4, 5, 2), 1), (4, (2, 5, 3, 7), 3), (3, (1, 1, 4, 3), 3)],
)
def test_matches_numpy_oracle(units, shape, groups):
    layer = DiagonalBiLSTM(units, image_channels=groups)
    x = random_inputs(shape, seed=2)
    layer.build(x.shape)
    randomize_weights(layer, seed=3)
    got = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, numpy_diagonal_bilstm(layer, x), rtol=1e-4, atol=1e-5)


def test_mixed_bfloat16_training_matches_inference_and_numpy():
    # Under a 16-bit policy, training on TensorFlow runs the LSTM update as
    # XLA-fused kernels (float32 inside); inference runs it in bfloat16.
    layer = DiagonalBiLSTM(4, image_channels=3, dtype="mixed_bfloat16")
    x = random_inputs((2, 5, 3, 7), seed=4)
    layer.build(x.shape)
    randomize_weights(layer, seed=5)
    w = random_inputs((2, 5, 3, 4), seed=6)
    want = numpy_diagonal_bilstm(layer, x)
    grads = {}
    for training in (False, True):
        y = keras.ops.cast(layer(x, training=training), "float32")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(y), want, atol=0.05)

        def loss(x, training=training):
            y = keras.ops.cast(layer(x, training=training), "float32")
            return keras.ops.sum(y * w)

        _, (grads[training],) = value_and_gradients(loss, x)
    scale = np.abs(grads[False]).max()
    np.testing.assert_allclose(grads[True], grads[False], atol=0.03 * scale)


@pytest.mark.tf_only
@pytest.mark.parametrize("cell_dtype", ["float32", "bfloat16"])
def test_fused_lstm_update_matches_lstm_update(cell_dtype):
    import tensorflow as tf

    from pixel_keras import _tf_fused

    rng = np.random.default_rng(7)
    gates, recurrent = (
        tf.constant(rng.normal(size=(3, 5, 8)).astype("float32")) for _ in range(2)
    )
    cell = tf.cast(rng.normal(size=(3, 5, 2)).astype("float32"), cell_dtype)
    w_h, w_c = (rng.normal(size=(3, 5, 2)).astype("float32") for _ in range(2))

    def plain(gates, recurrent, cell):
        hidden, new_cell = lstm_update(gates + recurrent, tf.cast(cell, "float32"))
        return hidden, new_cell

    def fused(gates, recurrent, cell):
        hidden, new_cell = _tf_fused.lstm_update(gates, recurrent, cell, "float32")
        assert new_cell.dtype == cell.dtype
        return hidden, tf.cast(new_cell, "float32")

    results = []
    for fn in (plain, fused):
        args = [gates, recurrent, cell]
        with tf.GradientTape() as tape:
            tape.watch(args)
            hidden, new_cell = fn(*args)
            loss = tf.reduce_sum(hidden * w_h) + tf.reduce_sum(new_cell * w_c)
        grads = tape.gradient(loss, args)
        assert grads[2].dtype == cell.dtype
        results.append([hidden, new_cell, *grads])
    for got, want in zip(results[1], results[0]):
        got, want = (np.asarray(tf.cast(t, "float32")) for t in (got, want))
        if cell_dtype == "float32":
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_allclose(got, want, atol=0.01 * np.abs(want).max())


def test_compiled_call_matches_eager_call():
    inputs = keras.Input((4, 5, 6))
    model = keras.Model(inputs, DiagonalBiLSTM(4, image_channels=3)(inputs))
    x = random_inputs((3, 4, 5, 6))
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        keras.ops.convert_to_numpy(model(x)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_unit_forget_bias():
    layer = DiagonalBiLSTM(2)
    layer.build((None, 3, 3, 2))
    for bias in (layer.bias, layer.reverse_bias):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(bias), [0, 0, 1, 1, 0, 0, 0, 0]
        )


def test_field_over_input_map_is_complete():
    # Over its own input map, output (r, c) reads every position of the rows
    # above (left-to-right: columns <= c; shifted right-to-left: >= c) and
    # row r up to c: one layer has the complete context (paper Figure 4).
    height, width = 5, 6
    model = probe_model(DiagonalBiLSTM(4), (height, width, 1), first_kernel_size=None)
    images = np.random.default_rng(0).integers(0, 4, size=(4, height, width, 1))
    for r, c in for_backend([(4, 0), (1, 0), (3, 5), (2, 2), (0, 3)], [(3, 1)]):
        seen = (input_gradient(model, images, (r, c), 0) != 0).any(axis=0)[..., 0]
        want = np.zeros((height, width), bool)
        want[:r] = True
        want[r, : c + 1] = True
        np.testing.assert_array_equal(seen, want, err_msg=f"output {(r, c)}")


@pytest.mark.parametrize("shape", [(5, 5, 1), (4, 4, 3)])
def test_causality_at_init(shape):
    model = probe_model(DiagonalBiLSTM(4, image_channels=shape[-1]), shape)
    height, width, _ = shape

    def must_see(i, j):
        # Every earlier pixel, but the last sub-pixel of (i - 1, W - 1) is in
        # no input map position before row i; only the 3x3 mask-A conv of the
        # probe brings it to row i, at columns j >= W - 2.
        return [
            (ii, jj)
            for ii in range(height)
            for jj in range(width)
            if (ii, jj) < (i, j)
            and not ((ii, jj) == (i - 1, width - 1) and j + 1 < width - 1)
        ]

    everywhere = [(i, j) for i in range(height) for j in range(width)]
    positions = for_backend(everywhere, [(height // 2, width // 2)])
    checked = check_causality(model, positions=positions, must_see=must_see)
    assert checked == len(positions) * shape[-1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 2, "image_channels": 3}, "units"),
        ({"units": None}, "units"),
        ({"units": 4, "image_channels": 1.0}, "image_channels"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiagonalBiLSTM(**kwargs)


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"\[B, H, W, maps\]"):
        DiagonalBiLSTM(4)(np.zeros((2, 5, 6), "float32"))


def test_config_round_trip():
    layer = DiagonalBiLSTM(4, image_channels=3, unit_forget_bias=False, name="diag")
    x = random_inputs((2, 4, 6, 6))
    y = layer(x)
    config = layer.get_config()
    clone = DiagonalBiLSTM.from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), y, rtol=1e-6)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, DiagonalBiLSTM) and restored.units == 4
