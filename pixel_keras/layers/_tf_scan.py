"""TensorFlow implementation of `pixel_keras.layers.scan.scan` (TF only)."""

import tensorflow as tf


def scan(step, init, xs, batch_splits=1):
    """See `pixel_keras.layers.scan.scan`.

    With `batch_splits > 1` the batch is split into that many parts (sizes
    computed at run time, so an unknown batch works; a part may be empty),
    each part runs its own loop (`_scan`), and the results are concatenated
    back. TensorFlow's executor runs the independent loops side by side.
    """
    if batch_splits == 1:
        return _scan(step, init, xs)
    init_flat = [tf.convert_to_tensor(c) for c in tf.nest.flatten(init)]
    xs_flat = [tf.convert_to_tensor(x) for x in tf.nest.flatten(xs)]
    batch = tf.shape(init_flat[0])[0]
    sizes = tf.stack(
        [
            (i + 1) * batch // batch_splits - i * batch // batch_splits
            for i in range(batch_splits)
        ]
    )
    init_parts = [tf.split(c, sizes, axis=0, num=batch_splits) for c in init_flat]
    xs_parts = [tf.split(x, sizes, axis=1, num=batch_splits) for x in xs_flat]
    results = [
        _scan(
            step,
            tf.nest.pack_sequence_as(init, [p[i] for p in init_parts]),
            tf.nest.pack_sequence_as(xs, [p[i] for p in xs_parts]),
        )
        for i in range(batch_splits)
    ]
    carries = [tf.nest.flatten(carry) for carry, _ in results]
    ys = [tf.nest.flatten(y) for _, y in results]
    static_batch = init_flat[0].shape[0]  # None when unknown
    carry = []
    for parts, like in zip(zip(*carries), init_flat):
        carry.append(tf.concat(parts, axis=0))
        carry[-1].set_shape(like.shape)
    y = []
    for parts in zip(*ys):
        y.append(tf.concat(parts, axis=1))
        y[-1].set_shape([parts[0].shape[0], static_batch, *parts[0].shape[2:]])
    return (
        tf.nest.pack_sequence_as(results[0][0], carry),
        tf.nest.pack_sequence_as(results[0][1], y),
    )


def _scan(step, init, xs):
    """One loop over all of `xs` (see `scan`).

    The inputs are popped off the back of a reversed tensor list that the
    loop carries (`TensorListPopBack`; the list is built reversed by
    `TensorListScatterV2`, with no reversed copy of the inputs), not read by
    index from a `TensorArray`. The gradient of a pop is a push onto the
    gradient's list. The gradient of an indexed read is a new list with one
    element set, added element by element to the list accumulated over the
    steps, which starts as zeros: a full-size add per step (about a tenth of
    a Row LSTM training step's op time on CPU, benchmarks README).

    The first step runs before the loop, which gives the outputs' dtypes and
    shapes for their `TensorArray`s; a `tf.while_loop` runs the rest, with
    the carry as loop variables (no per-step `TensorArray` for it).
    """
    xs_flat = [tf.convert_to_tensor(x) for x in tf.nest.flatten(xs)]
    length = xs_flat[0].shape[0]
    if length is None or length < 1:
        raise ValueError(
            "`scan` needs inputs with a static, positive leading length. "
            f"Received: shapes={[tuple(x.shape) for x in xs_flat]}"
        )
    shapes = [x.shape[1:] for x in xs_flat]
    dtypes = [x.dtype for x in xs_flat]
    # A list's element shape, -1 where unknown (the batch of a symbolic call).
    element_shapes = [
        tf.constant([-1 if d is None else d for d in s], tf.int32) for s in shapes
    ]
    # Element i of x at position length - 1 - i: the list reversed, without
    # a reversed copy of x (the gradient gathers the same way back).
    backwards = tf.range(length - 1, -1, -1)
    lists = [
        tf.raw_ops.TensorListScatterV2(
            tensor=x, indices=backwards, element_shape=e, num_elements=length
        )
        for x, e in zip(xs_flat, element_shapes)
    ]

    def pop(lists):
        popped, items = [], []
        for handle, shape, element_shape, dtype in zip(
            lists, shapes, element_shapes, dtypes
        ):
            handle, item = tf.raw_ops.TensorListPopBack(
                input_handle=handle, element_shape=element_shape, element_dtype=dtype
            )
            item.set_shape(shape)
            popped.append(handle)
            items.append(item)
        return popped, tf.nest.pack_sequence_as(xs, items)

    lists, x = pop(lists)
    carry, first = step(init, x)
    first_flat = tf.nest.flatten(first)
    outputs = [
        tf.TensorArray(y.dtype, size=length, element_shape=y.shape).write(0, y)
        for y in first_flat
    ]

    def body(i, carry, lists, outputs):
        lists, x = pop(lists)
        carry, y = step(carry, x)
        outputs = [array.write(i, v) for array, v in zip(outputs, tf.nest.flatten(y))]
        return i + 1, carry, lists, outputs

    _, carry, _, outputs = tf.while_loop(
        lambda i, *_: i < length,
        body,
        (tf.constant(1), carry, lists, outputs),
        maximum_iterations=length - 1,
    )
    ys = [array.stack() for array in outputs]
    return carry, tf.nest.pack_sequence_as(first, ys)
