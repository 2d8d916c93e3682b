"""`scan` for the PixelRNN recurrences: a step's output need not be its carry.

`keras.ops.scan(f, init, xs)` on TensorFlow keeps the carry in a size-1
`TensorArray` (a write and a read per step) and stacks one output per carry
leaf, so `f` must return its whole carry as output: the LSTM cell states are
stacked and, in the backward pass, get a zero gradient per step. This
`scan` lets the step return only what the layer uses (the hidden states).

On TensorFlow it runs `pixel_keras.layers._tf_scan.scan` (a `tf.while_loop`
with the carry as loop variables); on other backends `keras.ops.scan`, whose
JAX version (`jax.lax.scan`) already allows any output structure.
"""

import keras
from keras import ops


def scan(step, init, xs, batch_splits=1):
    """Loops `carry, y = step(carry, x)` over the leading axis of `xs`.

    Args:
        step: callable `(carry, x) -> (carry, y)`; `carry` keeps the
            structure, shapes and dtypes of `init`, `x` is one slice of `xs`
            (same structure), `y` any structure of tensors.
        init: the first carry, a nest of tensors.
        xs: a nest of tensors with the same static leading length n.
        batch_splits: int; on TensorFlow, run this many independent loops,
            each over a part of the batch (axis 0 of every `init` and `y`
            leaf, axis 1 of every `xs` leaf), which TensorFlow runs side by
            side; the results are the same when `step` treats the batch
            entries independently. Ignored on other backends.

    Returns:
        `(final carry, ys)`, `ys` shaped like `y` with a leading axis n.
    """
    if not isinstance(batch_splits, int) or batch_splits < 1:
        raise ValueError(
            f"`batch_splits` must be a positive int. Received: batch_splits={batch_splits!r}"
        )
    if keras.backend.backend() == "tensorflow":
        from pixel_keras.layers import _tf_scan

        return _tf_scan.scan(step, init, xs, batch_splits)
    return ops.scan(step, init, xs)
