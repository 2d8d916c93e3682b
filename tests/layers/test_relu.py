import keras
import numpy as np
import pytest

from pixel_keras.layers import ReLU
from gradient_helpers import value_and_gradients  # tests/layers/, on sys.path under pytest


def _inputs(seed=0):
    x = np.random.default_rng(seed).normal(size=(2, 3, 4, 5)).astype("float32")
    x[0, 0, 0] = 0.0  # the gradient at 0 is 0, as TensorFlow's and JAX's
    return x


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("training", [False, True])
def test_value_and_gradient_are_keras_relu(dtype, training):
    # In training under a 16-bit policy on TensorFlow the layer runs the
    # XLA-fused `_tf_fused.relu`; the numbers are exactly Keras' ReLU's.
    ours, theirs = ReLU(dtype=dtype), keras.layers.ReLU(dtype=dtype)
    x = _inputs()
    w = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    results = []
    for layer, kwargs in ((ours, {"training": training}), (theirs, {})):

        def loss(x, layer=layer, kwargs=kwargs):
            return keras.ops.sum(keras.ops.cast(layer(x, **kwargs), "float32") * w)

        value, (grad,) = value_and_gradients(loss, x)
        results.append((value, grad))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.tf_only
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_kernel_value_and_gradient(dtype):
    import tensorflow as tf

    from pixel_keras import _tf_fused

    x = tf.cast(_inputs(2), dtype)
    upstream = tf.cast(np.random.default_rng(3).normal(size=x.shape), dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = _tf_fused.relu(x)
    grad = tape.gradient(y, x, output_gradients=upstream)
    x, upstream = (
        np.asarray(tf.cast(x, "float32")),
        np.asarray(tf.cast(upstream, "float32")),
    )
    assert y.dtype == dtype and grad.dtype == dtype
    np.testing.assert_array_equal(np.asarray(tf.cast(y, "float32")), np.maximum(x, 0))
    np.testing.assert_array_equal(
        np.asarray(tf.cast(grad, "float32")), np.where(x > 0, upstream, 0)
    )


def test_other_arguments_keep_keras_call():
    layer = ReLU(max_value=1.0, negative_slope=0.1, dtype="mixed_bfloat16")
    x = _inputs(4)
    got = keras.ops.convert_to_numpy(keras.ops.cast(layer(x, training=True), "float32"))
    want = keras.layers.ReLU(max_value=1.0, negative_slope=0.1, dtype="mixed_bfloat16")(
        x
    )
    np.testing.assert_array_equal(
        got, keras.ops.convert_to_numpy(keras.ops.cast(want, "float32"))
    )


def test_serialization_round_trip():
    layer = ReLU(max_value=6.0, name="relu_6")
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is ReLU
    assert restored.get_config() == layer.get_config()
