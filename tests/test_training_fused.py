"""TensorFlow's fused BatchNorm and Adam kernels in the train step (training.fused) against Keras's own ops."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sar2opt.training import fused


def _op_types(function, *args):
    return {op.type for op in function.get_concrete_function(*args).graph.get_operations()}


def _batch_norm_step(shape, use_fused, **layer_options):
    """Output, gradients (input, gamma, beta), moving statistics and op types of one training call."""
    x = tf.constant(np.random.default_rng(0).normal(1.0, 2.0, shape).astype("float32"))
    upstream = tf.constant(np.random.default_rng(1).normal(0.0, 1.0, shape).astype("float32"))
    layer = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **layer_options)
    layer.build(shape)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, training=True)
            loss = tf.reduce_sum(outputs * upstream)
        return [outputs] + tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])

    with fused.kernels() if use_fused else contextlib.nullcontext():
        types = _op_types(step, x)
        values = [v.numpy() for v in step(x)]
    return values + [layer.moving_mean.numpy(), layer.moving_variance.numpy()], types


@pytest.mark.parametrize("shape", [(4, 6, 6, 8), (4, 1, 1, 8), (1, 1, 1, 8)])
def test_batch_norm_equals_keras(shape):
    """Output, gradients and moving statistics, down to one value per channel (the batch variance 0)."""
    ours, types = _batch_norm_step(shape, True)
    keras_ops, keras_types = _batch_norm_step(shape, False)
    assert "FusedBatchNormV3" in types and "FusedBatchNormV3" not in keras_types
    for a, b in zip(ours, keras_ops):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_batch_norm_keeps_keras_ops_where_the_kernel_differs():
    """Batch renormalisation has no fused kernel: the layer computes as Keras does."""
    ours, types = _batch_norm_step((4, 6, 6, 8), True, renorm=True)
    keras_ops, _ = _batch_norm_step((4, 6, 6, 8), False, renorm=True)
    assert "FusedBatchNormV3" not in types
    for a, b in zip(ours, keras_ops):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_equals_keras(amsgrad):
    """Three updates: the variable and both moments as Keras's Adam leaves them (AMSGrad keeps Keras's ops)."""
    gradients = [tf.constant(np.random.default_rng(k).normal(size=(3, 5)).astype("float32")) for k in range(3)]
    results = []
    for use_fused in (True, False):
        variable = keras.Variable(np.ones((3, 5), "float32"))
        optimizer = keras.optimizers.Adam(1e-2, beta_1=0.5, beta_2=0.999, amsgrad=amsgrad)
        optimizer.build([variable])

        @tf.function
        def update(gradient):
            optimizer.apply_gradients([(gradient, variable)])

        with fused.kernels() if use_fused else contextlib.nullcontext():
            types = _op_types(update, gradients[0])
            for gradient in gradients:
                update(gradient)
        assert ("ResourceApplyAdam" in types) == (use_fused and not amsgrad)
        results.append([variable.numpy(), optimizer._momentums[0].numpy(), optimizer._velocities[0].numpy()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_kernels_restore_keras_after_an_error():
    calls = keras.layers.BatchNormalization.call, keras.optimizers.Adam.update_step
    with pytest.raises(RuntimeError), fused.kernels():
        assert keras.layers.BatchNormalization.call is not calls[0]
        raise RuntimeError("traced step failed")
    assert (keras.layers.BatchNormalization.call, keras.optimizers.Adam.update_step) == calls
