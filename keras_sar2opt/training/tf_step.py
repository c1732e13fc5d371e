"""The TensorFlow train and test steps of AdversarialModel (report §1–§3): GradientTape and tf.distribute."""

import keras
import tensorflow as tf

from keras_sar2opt.training import fused
from keras_sar2opt.training.losses import critic_chunks


def global_mean(per_example):
    """This replica's sum divided by the global batch size.

    tf.distribute sums gradients over replicas, so the gradient of this value, summed, is the
    gradient of the mean over the global batch, whatever the split between replicas.
    """
    count = tf.cast(tf.shape(per_example)[0], per_example.dtype)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return tf.reduce_sum(per_example) / count


def update_trackers(model, values):
    """Update the metric trackers so that every replica's result is the global-batch mean.

    Each replica adds the all-reduced sum and count, so fit()'s mean over replicas of their
    results equals the mean over every example, however the batch was split.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        model.update_trackers(values)
        return
    names = list(values)
    sums = tf.stack([tf.reduce_sum(values[name]) for name in names])
    counts = tf.stack([tf.cast(tf.size(values[name]), sums.dtype) for name in names])
    sums, counts = context.all_reduce(tf.distribute.ReduceOp.SUM, [sums, counts])
    for index, name in enumerate(names):
        model.trackers[name].update_state(sums[index] / counts[index], sample_weight=counts[index])


def _apply(tape, loss, network, optimizer):
    variables = network.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))


def _discriminator_step(model, sar, optical, generated):
    """One D (or critic) update on a batch slice; WGAN clips the critic's weights after it."""
    with tf.GradientTape() as tape:
        real_output = model.discriminate(sar, optical, training=True)
        fake_output = model.discriminate(sar, generated, training=True)
        values = model.discriminator_values(real_output, fake_output)
        loss = global_mean(values["d_loss"])
    _apply(tape, loss, model.discriminator, model.d_optimizer)
    if model.is_wasserstein:
        model.clip_discriminator_weights()
    update_trackers(model, values)


def train_step(model, data):
    """D then G on one (sar, optical) batch; G's forward pass is shared by both updates.

    The generated batch is computed once; D (n_critic slices for WGAN) trains on it with the
    gradient stopped, then G's loss uses the updated D. Every sub-model call has training=True.
    BatchNorm and Adam run TensorFlow's fused kernels (`fused.kernels`).
    """
    sar, optical, _ = keras.utils.unpack_x_y_sample_weight(data)
    with fused.kernels():
        with tf.GradientTape() as g_tape:
            generated = model.generator(sar, training=True)
            with g_tape.stop_recording():
                fixed = tf.stop_gradient(generated)
                for start, end in critic_chunks(tf.shape(sar)[0], model.d_steps):
                    _discriminator_step(model, sar[start:end], optical[start:end], fixed[start:end])
            fake_output = model.discriminate(sar, generated, training=True)
            values = model.generator_values(fake_output, generated, optical)
            loss = global_mean(values["g_loss"])
        _apply(g_tape, loss, model.generator, model.g_optimizer)
    update_trackers(model, values)
    return model.metric_results()


def test_step(model, data):
    """The same losses and metrics as train_step, in inference mode, with no update."""
    sar, optical, _ = keras.utils.unpack_x_y_sample_weight(data)
    update_trackers(model, model.evaluation_values(sar, optical))
    return model.metric_results()
