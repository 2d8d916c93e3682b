"""Training precision: float32, or bfloat16 compute where the CPU has it.

Keras' `"mixed_bfloat16"` policy keeps every variable in float32 and computes
layers in bfloat16. On x86 CPUs with native bfloat16 instructions (AVX-512
BF16 or AMX-BF16: Intel Sapphire Rapids and later, AMD Zen 4 and later)
TensorFlow's oneDNN kernels then run the convolutions and matrix products
several times faster; on CPUs without them (AVX2 only) bfloat16 is emulated
and slower than float32. `resolve_policy("auto")` picks accordingly.

The loss, the softmax and every log-probability stay in float32
(`pixel_keras.losses` casts the logits), and so does everything after training: a
dtype policy is not part of a model's config, so a checkpoint or preset
loads in float32 (the global default) and `pixel-keras evaluate`, sampling
and export compute in float32 whatever precision the model was trained in.
"""

import contextlib
import functools
import os

import keras

from pixel_keras.checks import PRECISION_POLICIES

POLICIES = PRECISION_POLICIES

# /proc/cpuinfo flags of native bfloat16 arithmetic.
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (empty where unavailable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16():
    """True if the CPU computes in bfloat16 natively (AVX-512 BF16 or AMX)."""
    return any(flag in cpu_flags() for flag in _BF16_FLAGS)


def resolve_policy(policy="auto"):
    """The dtype policy name for `policy` ("auto", "float32", "mixed_bfloat16").

    "auto" is "mixed_bfloat16" on the TensorFlow backend when the CPU has
    native bfloat16 (and no GPU is visible), else "float32". The
    environment variable `PIXEL_KERAS_PRECISION` ("float32" or
    "mixed_bfloat16") overrides "auto".
    """
    if policy not in POLICIES:
        raise ValueError(
            f"`precision` must be one of {POLICIES}. Received: precision={policy!r}"
        )
    if policy != "auto":
        return policy
    forced = os.environ.get("PIXEL_KERAS_PRECISION", "auto")
    if forced != "auto":
        # An override for "auto" (the test suite sets float32, so that no
        # test depends on the CPU model).
        return resolve_policy(forced)
    if keras.backend.backend() != "tensorflow" or not native_bfloat16():
        return "float32"
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return "float32"
    return "mixed_bfloat16"


def elementwise_dtype(compute_dtype):
    """The dtype a layer's gate nonlinearities run in: at least float32.

    Under a mixed policy the matrix products run in bfloat16, but
    TensorFlow's bfloat16 element-wise CPU kernels (sigmoid, tanh, products
    and their gradients) are about 3x slower than the float32 ones, and
    float32 keeps the gates' mantissa. A 16-bit `compute_dtype` gives
    "float32"; float32 or float64 is kept.
    """
    dtype = keras.backend.standardize_dtype(compute_dtype)
    return "float32" if dtype in ("bfloat16", "float16") else dtype


def use_fused_kernels(training, compute_dtype):
    """Whether a layer's training pass runs `pixel_keras._tf_fused` kernels.

    True in training (`training` truthy) on the TensorFlow backend under a
    16-bit compute dtype: there TensorFlow's element-wise CPU kernels are
    the slow ones, and one XLA-compiled kernel per chain (forward and
    gradient) is faster: a PixelCNN's forward and backward pass 1.09x with
    its ReLUs fused, the Gated PixelCNN's 1.15-1.17x with its gates, the
    Diagonal BiLSTM's 1.13-1.16x with its LSTM update. In float32 the same
    kernels were slower or even (ReLU 0.89x, LSTM update 0.91x, gate 1.01x),
    so float32 keeps TensorFlow's own ops (benchmarks README).
    """
    if not training or keras.backend.backend() != "tensorflow":
        return False
    dtype = keras.backend.standardize_dtype(compute_dtype)
    return elementwise_dtype(dtype) != dtype


@contextlib.contextmanager
def policy_scope(policy):
    """Sets Keras' global dtype policy to `policy` inside the block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
