import keras
import numpy as np
import pytest
from keras import ops

from pixel_keras.layers.scan import scan
from pixel_keras.layers.shifting import crop, shift
from gradient_helpers import value_and_gradients  # tests/layers/, on sys.path under pytest


def test_crop_matches_slicing():
    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    np.testing.assert_array_equal(ops.convert_to_numpy(crop(x, 3, axis=1)), x[:, :3])
    np.testing.assert_array_equal(ops.convert_to_numpy(crop(x, -1, axis=1)), x[:, :-1])
    np.testing.assert_array_equal(ops.convert_to_numpy(crop(x, 2, axis=2)), x[:, :, :2])
    assert crop(x, 5, axis=1) is x


def test_shift_moves_one_place_with_zeros_first():
    x = np.arange(1, 2 * 4 * 3 + 1, dtype="float32").reshape(2, 4, 3)
    shifted = ops.convert_to_numpy(shift(x, axis=1))
    np.testing.assert_array_equal(shifted[:, 0], 0.0)
    np.testing.assert_array_equal(shifted[:, 1:], x[:, :-1])


def test_crop_and_shift_gradients_match_slicing():
    x = keras.random.normal((2, 4, 3), seed=0)
    weights = keras.random.normal((2, 4, 3), seed=1)
    reference = ops.convert_to_numpy(
        ops.pad(x[:, :-1], [[0, 0], [1, 0], [0, 0]]) * weights
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(shift(x, axis=1) * weights), reference
    )
    _, (grad,) = value_and_gradients(lambda v: ops.sum(shift(v, axis=1) * weights), x)
    expected = np.zeros((2, 4, 3), "float32")
    expected[:, :-1] = ops.convert_to_numpy(weights)[:, 1:]
    np.testing.assert_allclose(grad, expected)


def test_scan_outputs_need_not_be_the_carry():
    xs = np.arange(1, 6, dtype="float32")[:, None] * np.ones((5, 3), "float32")

    def step(carry, x):
        total, count = carry
        total = total + x
        return (total, count + 1.0), (total * 2.0, ops.sum(total))

    init = (ops.zeros((3,)), ops.zeros(()))
    (total, count), (doubled, sums) = scan(step, init, xs)
    cumulative = np.cumsum(xs, axis=0)
    np.testing.assert_allclose(ops.convert_to_numpy(total), cumulative[-1])
    assert float(count) == 5.0
    np.testing.assert_allclose(ops.convert_to_numpy(doubled), 2.0 * cumulative)
    np.testing.assert_allclose(ops.convert_to_numpy(sums), cumulative.sum(axis=1))


def test_scan_nested_inputs_and_a_single_step():
    xs = (np.ones((1, 2), "float32"), 3.0 * np.ones((1, 2), "float32"))

    def step(carry, x):
        a, b = x
        carry = carry + a * b
        return carry, carry

    carry, ys = scan(step, ops.zeros((2,)), xs)
    np.testing.assert_allclose(ops.convert_to_numpy(carry), [3.0, 3.0])
    np.testing.assert_allclose(ops.convert_to_numpy(ys), [[3.0, 3.0]])


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's while loop"
)
def test_tf_scan_rejects_unknown_length():
    import tensorflow as tf

    from pixel_keras.layers import _tf_scan

    @tf.function(input_signature=[tf.TensorSpec((None, 2))])
    def run(xs):
        return _tf_scan.scan(lambda c, x: (c + x, c), tf.zeros((2,)), xs)

    with pytest.raises(ValueError, match="static, positive leading length"):
        run.get_concrete_function()


def test_scan_gradients_equal_an_unrolled_loop():
    # The TensorFlow scan pops its inputs off a tensor list; its gradients
    # (inputs, carry, captured weights) must be those of a plain loop.
    rng = np.random.default_rng(0)
    xs = (
        rng.normal(size=(5, 3, 4)).astype("float32"),
        rng.normal(size=(5, 2)).astype("float32"),
    )
    init = rng.normal(size=(3, 4)).astype("float32")
    weights = rng.normal(size=(4, 4)).astype("float32")

    def loss(scan_fn, a, b, init, weights):
        def step(carry, x):
            row, scale = x
            carry = ops.tanh(ops.matmul(carry, weights) + row) * ops.sum(scale)
            return carry, (2.0 * carry, ops.sum(carry, axis=-1))

        carry, (doubled, sums) = scan_fn(step, init, (a, b))
        return ops.sum(doubled**2) + ops.sum(ops.sin(sums)) + ops.sum(carry)

    def unrolled(step, carry, xs):
        outputs = []
        for i in range(xs[0].shape[0]):
            carry, y = step(carry, (xs[0][i], xs[1][i]))
            outputs.append(y)
        return carry, tuple(ops.stack(parts) for parts in zip(*outputs))

    args = (*xs, init, weights)
    value, grads = value_and_gradients(lambda *a: loss(scan, *a), *args)
    expected_value, expected_grads = value_and_gradients(
        lambda *a: loss(unrolled, *a), *args
    )
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    for ours, want in zip(grads, expected_grads):
        np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="batch_splits is TensorFlow's"
)
@pytest.mark.parametrize("batch, known", [(5, True), (5, False), (2, False)])
def test_batch_splits_give_the_same_values_and_gradients(batch, known):
    # Independent loops over parts of the batch (some empty when the batch
    # is smaller than the number of parts), a batch known or not when traced.
    import tensorflow as tf

    rng = np.random.default_rng(0)
    xs = tf.constant(rng.normal(size=(4, batch, 3)).astype("float32"))
    weights = tf.constant(rng.normal(size=(3, 3)).astype("float32"))

    def step(carry, x):
        carry = tf.tanh(tf.matmul(carry, weights) + x)
        return carry, 2.0 * carry

    def run(splits):
        spec = tf.TensorSpec((4, batch if known else None, 3))

        @tf.function(input_signature=[spec])
        def f(xs):
            with tf.GradientTape() as tape:
                tape.watch([xs, weights])
                init = tf.zeros_like(xs[0])
                carry, ys = scan(step, init, xs, batch_splits=splits)
                loss = tf.reduce_sum(tf.sin(ys)) + tf.reduce_sum(carry**2)
            assert ys.shape.as_list() == [4, batch if known else None, 3]
            return [carry, ys, *tape.gradient(loss, [xs, weights])]

        return [t.numpy() for t in f(xs)]

    for ours, want in zip(run(3), run(1)):
        np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)


def test_batch_splits_must_be_a_positive_int():
    with pytest.raises(ValueError, match="batch_splits"):
        scan(lambda c, x: (c, x), ops.zeros((2,)), ops.zeros((3, 2)), batch_splits=0)
