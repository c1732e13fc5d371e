"""TensorFlow's fused kernels for BatchNormalization and Adam in the package's train step.

On the TensorFlow backend Keras 3 computes a training BatchNormalization as separate moment,
normalisation and gradient ops over every activation, and an Adam update as about ten element-wise
ops per variable. TensorFlow has one kernel for each: FusedBatchNormV3 (oneDNN's with oneDNN on)
with its gradient, and ResourceApplyAdam. `kernels()` puts them in while tf_step's train step is
traced, and only then: the layers, the optimisers and every saved file stay plain Keras. The results
agree with Keras's own ops within float32 round-off; reports/cpu-profile.md gives the speed.
"""

import contextlib

import keras
import tensorflow as tf

# The variables Adam updates with ResourceApplyAdam (mixed precision keeps float32 variables).
_ADAM_KERNEL_DTYPES = (tf.float32, tf.float64)


def _fusable_batch_norm(layer, inputs, training, mask):
    """Whether FusedBatchNormV3 computes exactly what Keras's BatchNormalization does here."""
    rank = len(inputs.shape)
    return (
        training
        and layer.trainable
        and mask is None
        and rank == 4
        and layer.axis in (-1, rank - 1)
        and layer.center
        and layer.scale
        and not layer.synchronized
        and not getattr(layer, "renorm", False)
    )


def _batch_norm_call(plain_call):
    def call(layer, inputs, training=None, mask=None):
        if not _fusable_batch_norm(layer, inputs, training, mask):
            return plain_call(layer, inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")  # float32 statistics, as Keras computes them
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=tf.cast(layer.gamma.value, "float32"),
            offset=tf.cast(layer.beta.value, "float32"),
            mean=tf.constant([], "float32"),
            variance=tf.constant([], "float32"),
            epsilon=layer.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel normalises with the biased batch variance but returns the unbiased one (n - 1);
        # Keras's moving variance follows the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
        variance = tf.where(count > 1, variance * (count - 1) / count, tf.zeros_like(variance))
        momentum = layer.momentum
        layer.moving_mean.assign(tf.cast(layer.moving_mean.value, "float32") * momentum + mean * (1.0 - momentum))
        layer.moving_variance.assign(
            tf.cast(layer.moving_variance.value, "float32") * momentum + variance * (1.0 - momentum)
        )
        return tf.cast(outputs, layer.compute_dtype)

    return call


def _adam_update_step(plain_update_step):
    def update_step(optimizer, gradient, variable, learning_rate):
        if optimizer.amsgrad or variable.dtype not in _ADAM_KERNEL_DTYPES:
            return plain_update_step(optimizer, gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(optimizer.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(optimizer.beta_1, dtype), tf.cast(optimizer.beta_2, dtype)
        index = optimizer._get_variable_index(variable)
        # variable := variable - lr·√(1-β₂ᵗ)/(1-β₁ᵗ) · m / (√v + ε), after m and v, as Keras's Adam.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=optimizer._momentums[index].value.handle,
            v=optimizer._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(optimizer.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )

    return update_step


@contextlib.contextmanager
def kernels():
    """While a TensorFlow train step is traced: BatchNormalization in training and Adam's update
    run TensorFlow's fused kernels (where they compute the same thing; otherwise Keras's own ops)."""
    batch_norm, adam = keras.layers.BatchNormalization, keras.optimizers.Adam
    plain = batch_norm.call, adam.update_step
    batch_norm.call, adam.update_step = _batch_norm_call(plain[0]), _adam_update_step(plain[1])
    try:
        yield
    finally:
        batch_norm.call, adam.update_step = plain
