"""Element-wise chains fused by XLA for TensorFlow training steps (TF only).

TensorFlow runs every element-wise op of a graph as its own CPU kernel, each
reading and writing a whole tensor. Compiling the whole model with XLA is
slower on CPU (its convolutions and matrix products are not oneDNN's), so
only four chains are compiled here, each as one `tf.function(jit_compile=True)`
for the forward pass and one for the gradient, joined by
`tf.custom_gradient`; the convolutions and matrix products around them stay
on TensorFlow's oneDNN kernels.

- `gate`: the Gated PixelCNN's `tanh(a) * sigmoid(b)`. Under a bfloat16
  policy TensorFlow runs it as a cast, a split, a tanh, a sigmoid, a product
  and a cast back, and its gradient as as many more (a concatenation,
  `TanhGrad`, `SigmoidGrad`, products, casts). Here the forward pass keeps
  no intermediate; the gradient recomputes `tanh` and `sigmoid` from the
  input, cheaper than storing and reading back two float32 tensors.
- `nll_per_image`: the 256-way softmax cross-entropy summed per image.
  TensorFlow's fused `SparseSoftmaxCrossEntropyWithLogits` needs float32
  logits (a cast of the bfloat16 ones), writes a float32 gradient in the
  forward pass, and the backward pass scales it by the upstream gradient
  and casts it back. Here the forward pass reads the logits once and keeps
  `softmax - one_hot` in the logits' dtype; the backward pass scales it.
- `relu`: `pixel_keras.layers.ReLU`'s training pass (a PixelCNN has three
  per residual block); the gradient selects by the output's sign.
- `lstm_update`: the Diagonal BiLSTM's LSTM update inside its loop, under a
  16-bit policy (its state stays bfloat16; TensorFlow's bfloat16
  element-wise kernels are the slow ones). The sum of the two
  pre-activation terms, the gates and the cell in float32; the gradient
  recomputes them from the step's inputs.

They compute in float32 (or wider) whatever the input dtype, as the
`keras.ops` versions do (`pixel_keras.layers.GatedBlock.gate`,
`pixel_keras.losses.nll_per_image`, `pixel_keras.layers.row_lstm.lstm_update`),
and agree with them to rounding (tests/layers/test_gated_block.py,
tests/test_recipe.py, tests/layers/test_diagonal_bilstm.py,
tests/layers/test_relu.py).

The layers use the gate, the ReLU and the LSTM update only in training under
a 16-bit policy (`pixel_keras.precision.use_fused_kernels`; in float32
TensorFlow's own kernels measured as fast or faster), so inference,
sampling and exported SavedModels hold no XLA-compiled functions. The loss
is fused on TensorFlow in every dtype (faster in float32 too); exported
models compute log-likelihoods through `pixel_keras.distributions`, not
through it.
"""

import tensorflow as tf

from pixel_keras.precision import elementwise_dtype


@tf.function(jit_compile=True, reduce_retracing=True)
def _gate_forward(x):
    a, b = tf.split(tf.cast(x, elementwise_dtype(x.dtype)), 2, axis=-1)
    return tf.cast(tf.tanh(a) * tf.sigmoid(b), x.dtype)


@tf.function(jit_compile=True, reduce_retracing=True)
def _gate_backward(x, upstream):
    dtype = elementwise_dtype(x.dtype)
    a, b = tf.split(tf.cast(x, dtype), 2, axis=-1)
    tanh_a = tf.tanh(a)
    sigmoid_b = tf.sigmoid(b)
    upstream = tf.cast(upstream, dtype)
    # d/da tanh(a) s = (1 - tanh(a)^2) s;  d/db t sigmoid(b) = t s (1 - s).
    grad_a = upstream * sigmoid_b * (1.0 - tanh_a * tanh_a)
    grad_b = upstream * tanh_a * sigmoid_b * (1.0 - sigmoid_b)
    return tf.cast(tf.concat([grad_a, grad_b], axis=-1), x.dtype)


@tf.custom_gradient
def gate(x):
    """`tanh(a) * sigmoid(b)` for the halves `a, b` of the last axis of `x`.

    Computed in `elementwise_dtype(x.dtype)` (float32 for a 16-bit `x`) and
    returned in `x.dtype`, as `GatedBlock.gate`.
    """

    def grad(upstream):
        return _gate_backward(x, upstream)

    return _gate_forward(x), grad


@tf.function(jit_compile=True, reduce_retracing=True)
def _nll_forward(labels, logits):
    z = tf.cast(logits, "float32")
    shifted = z - tf.reduce_max(z, axis=-1, keepdims=True)
    exp = tf.exp(shifted)
    total = tf.reduce_sum(exp, axis=-1, keepdims=True)
    one_hot = tf.range(tf.shape(z)[-1]) == labels[..., None]
    # -log softmax(z)[label] = log sum exp(z - max) - (z - max)[label].
    nll = tf.math.log(total[..., 0]) - tf.reduce_sum(
        tf.where(one_hot, shifted, 0.0), axis=-1
    )
    grad = tf.cast(exp / total - tf.cast(one_hot, "float32"), logits.dtype)
    return tf.reduce_sum(nll, axis=[1, 2, 3]), grad


@tf.function(jit_compile=True, reduce_retracing=True)
def _nll_backward(grad, upstream):
    upstream = tf.cast(upstream, "float32")[:, None, None, None, None]
    return tf.cast(tf.cast(grad, "float32") * upstream, grad.dtype)


def nll_per_image(images, logits):
    """`pixel_keras.losses.nll_per_image`: nats per image `[B]`, float32.

    `images` `[B, H, W, C]` integers in `[0, K - 1]` (else an
    `InvalidArgumentError`, as from TensorFlow's own cross-entropy op),
    `logits` `[B, H, W, C, K]`; differentiable in `logits`.
    """
    labels = tf.cast(images, "int32")
    logits = tf.convert_to_tensor(logits)
    num_levels = tf.shape(logits)[-1]
    checks = [
        tf.debugging.assert_non_negative(
            labels, message="`images` must hold integers in [0, num_levels - 1]"
        ),
        tf.debugging.assert_less(
            labels,
            num_levels,
            message="`images` must hold integers in [0, num_levels - 1]",
        ),
    ]
    with tf.control_dependencies(checks):
        labels = tf.identity(labels)

    @tf.custom_gradient
    def nll(logits):
        value, grad = _nll_forward(labels, logits)
        return value, lambda upstream: _nll_backward(grad, upstream)

    return nll(logits)


@tf.function(jit_compile=True, reduce_retracing=True)
def _lstm_forward(gates, recurrent, cell, hidden_dtype):
    dtype = elementwise_dtype(cell.dtype)
    pre = tf.cast(gates, dtype) + tf.cast(recurrent, dtype)
    o, f, i, g = tf.split(pre, 4, axis=-1)
    new_cell = tf.sigmoid(f) * tf.cast(cell, dtype) + tf.sigmoid(i) * tf.tanh(g)
    hidden = tf.sigmoid(o) * tf.tanh(new_cell)
    return tf.cast(hidden, hidden_dtype), tf.cast(new_cell, cell.dtype)


@tf.function(jit_compile=True, reduce_retracing=True)
def _lstm_backward(gates, recurrent, cell, d_hidden, d_cell):
    dtype = elementwise_dtype(cell.dtype)
    pre = tf.cast(gates, dtype) + tf.cast(recurrent, dtype)
    o, f, i, g = tf.split(pre, 4, axis=-1)
    o, f, i, g = tf.sigmoid(o), tf.sigmoid(f), tf.sigmoid(i), tf.tanh(g)
    cell_dtype = cell.dtype
    cell = tf.cast(cell, dtype)
    tanh_cell = tf.tanh(f * cell + i * g)
    d_hidden = tf.cast(d_hidden, dtype)
    # h = o tanh(c'), c' = f c + i g: the cell's total gradient first.
    d_new_cell = tf.cast(d_cell, dtype) + d_hidden * o * (1.0 - tanh_cell * tanh_cell)
    d_pre = tf.concat(
        [
            d_hidden * tanh_cell * o * (1.0 - o),
            d_new_cell * cell * f * (1.0 - f),
            d_new_cell * g * i * (1.0 - i),
            d_new_cell * i * (1.0 - g * g),
        ],
        axis=-1,
    )
    return (
        tf.cast(d_pre, gates.dtype),
        tf.cast(d_pre, recurrent.dtype),
        tf.cast(d_new_cell * f, cell_dtype),
    )


def lstm_update(gates, recurrent, cell, hidden_dtype):
    """One LSTM update from two summands of the `[o, f, i, g]` pre-activations.

    `pixel_keras.layers.row_lstm.lstm_update` of `gates + recurrent` and
    `cell`, computed in `elementwise_dtype(cell.dtype)` (the sum included).
    Returns `(hidden in hidden_dtype, cell in cell.dtype)`.
    """

    @tf.custom_gradient
    def update(gates, recurrent, cell):
        hidden, new_cell = _lstm_forward(gates, recurrent, cell, hidden_dtype)

        def grad(d_hidden, d_cell):
            if d_hidden is None:
                d_hidden = tf.zeros_like(hidden)
            if d_cell is None:
                d_cell = tf.zeros_like(new_cell)
            return _lstm_backward(gates, recurrent, cell, d_hidden, d_cell)

        return (hidden, new_cell), grad

    return update(gates, recurrent, cell)


@tf.function(jit_compile=True, reduce_retracing=True)
def _relu_forward(x):
    return tf.nn.relu(x)


@tf.function(jit_compile=True, reduce_retracing=True)
def _relu_backward(y, upstream):
    return tf.where(y > 0, upstream, tf.zeros_like(upstream))


@tf.custom_gradient
def relu(x):
    """`max(x, 0)`; the gradient passes where the output is positive."""
    y = _relu_forward(x)
    return y, lambda upstream: _relu_backward(y, upstream)
