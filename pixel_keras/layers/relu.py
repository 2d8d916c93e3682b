"""`ReLU`: `keras.layers.ReLU` with an XLA-fused training pass on TensorFlow."""

import keras

from pixel_keras.precision import use_fused_kernels


@keras.saving.register_keras_serializable(package="pixel_keras")
class ReLU(keras.layers.ReLU):
    """`keras.layers.ReLU`, with its training pass fused on TensorFlow.

    Same arguments and outputs as `keras.layers.ReLU`. With the defaults
    (`max_value=None`, `negative_slope=0`, `threshold=0`), in training
    under a 16-bit policy on TensorFlow
    (`pixel_keras.precision.use_fused_kernels`), the activation and its
    gradient are one XLA-compiled kernel each (`pixel_keras._tf_fused.relu`):
    TensorFlow's own `Relu` and `ReluGrad` CPU kernels are slow on bfloat16
    tensors, and a PixelCNN has three ReLUs per residual block. The numbers
    are the same (exactly: a maximum and a selection). Otherwise, and in
    inference, sampling and export, it is `keras.layers.ReLU`'s own call.

    Example:

    ```python
    y = ReLU(name="relu")(keras.random.normal((2, 4, 4, 8)))
    ```
    """

    def call(self, inputs, training=None):
        if (
            use_fused_kernels(training, self.compute_dtype)
            and self.max_value is None
            and not self.negative_slope
            and not self.threshold
        ):
            from pixel_keras import _tf_fused

            return _tf_fused.relu(inputs)
        return super().call(inputs)
