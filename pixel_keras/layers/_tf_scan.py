"""TensorFlow implementation of `pixel_keras.layers.scan.scan` (TF only)."""

import tensorflow as tf


def scan(step, init, xs):
    """See `pixel_keras.layers.scan.scan`.

    The first step runs before the loop, which gives the outputs' dtypes and
    shapes for their `TensorArray`s; a `tf.while_loop` runs the rest, with the
    carry as loop variables (no per-step `TensorArray` for it).
    """
    xs_flat = [tf.convert_to_tensor(x) for x in tf.nest.flatten(xs)]
    length = xs_flat[0].shape[0]
    if length is None or length < 1:
        raise ValueError(
            "`scan` needs inputs with a static, positive leading length. "
            f"Received: shapes={[tuple(x.shape) for x in xs_flat]}"
        )
    inputs = [
        tf.TensorArray(x.dtype, size=length, element_shape=x.shape[1:]).unstack(x)
        for x in xs_flat
    ]

    def read(i):
        return tf.nest.pack_sequence_as(xs, [array.read(i) for array in inputs])

    carry, first = step(init, read(0))
    first_flat = tf.nest.flatten(first)
    outputs = [
        tf.TensorArray(y.dtype, size=length, element_shape=y.shape).write(0, y)
        for y in first_flat
    ]

    def body(i, carry, outputs):
        carry, y = step(carry, read(i))
        outputs = [array.write(i, v) for array, v in zip(outputs, tf.nest.flatten(y))]
        return i + 1, carry, outputs

    _, carry, outputs = tf.while_loop(
        lambda i, *_: i < length,
        body,
        (tf.constant(1), carry, outputs),
        maximum_iterations=length - 1,
    )
    ys = [array.stack() for array in outputs]
    return carry, tf.nest.pack_sequence_as(first, ys)
