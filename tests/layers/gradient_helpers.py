"""A scalar function's value and gradients on the current Keras backend."""

import keras
import numpy as np


def value_and_gradients(fn, *args):
    """`fn(*args)`, a scalar, and its gradients w.r.t. every arg, as NumPy."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            value = fn(*tensors)
        return float(value), [g.numpy() for g in tape.gradient(value, tensors)]
    import jax

    value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)
    return float(value), [np.asarray(g) for g in grads]
