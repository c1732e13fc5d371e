"""The JAX train and test steps of AdversarialModel (report §1–§3): Keras 3's stateless form.

Keras's JAX trainer jits `train_step(state, data)` and passes the model's state as four lists:
trainable, non-trainable, optimizer and metric variables, in the order of the model's
`trainable_variables`, `non_trainable_variables`, `optimizer.variables` (the two optimisers of
`OptimizerPair`, G's first) and `metrics_variables`. The steps here split that state between G
and D, run the same losses as the TensorFlow steps through `stateless_call`, and return new state.
Under `keras.distribution.DataParallel` the batch is one global array, so means are global means.
"""

import jax
import keras
from keras import ops

from keras_sar2opt.training.losses import critic_chunks


def _positions(all_variables, subset):
    index = {id(variable): i for i, variable in enumerate(all_variables)}
    return [index[id(variable)] for variable in subset]


def _take(values, positions):
    return [values[i] for i in positions]


def _put(values, positions, new_values):
    values = list(values)
    for i, value in zip(positions, new_values):
        values[i] = value
    return values


class _Network:
    """Where one sub-model's variables sit in the AdversarialModel's state lists."""

    def __init__(self, model, network):
        self.network = network
        self.trainable = _positions(model.trainable_variables, network.trainable_variables)
        self.non_trainable = _positions(model.non_trainable_variables, network.non_trainable_variables)

    def call(self, trainable, non_trainable, inputs, training):
        """network(inputs) on the given values of its own variables; returns (outputs, non_trainable)."""
        return self.network.stateless_call(trainable, non_trainable, inputs, training=training)


def _discriminate(model, d, d_trainable, d_non_trainable, sar, optical, training):
    inputs = {"sar": sar, "optical": optical} if model.conditional else optical
    return d.call(d_trainable, d_non_trainable, inputs, training)


def _update_metrics(model, metrics_variables, values):
    """Mean trackers updated statelessly with each metric's per-example values; returns (logs, new)."""
    new_variables = []
    logs = {}
    for metric in model.metrics:
        count = len(metric.variables)
        own = metrics_variables[len(new_variables) : len(new_variables) + count]
        if metric.name in values:
            own = metric.stateless_update_state(own, values[metric.name])
        logs[metric.name] = metric.stateless_result(own)
        new_variables.extend(own)
    return logs, new_variables


def _merge_values(chunks):
    """Per-example values of several batch slices, concatenated back to the whole batch."""
    return {name: ops.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}


def train_step(model, state, data):
    """D then G on one (sar, optical) batch, sharing G's forward pass as the TensorFlow step does.

    G's forward pass is linearised once (jax.vjp); D (n_critic slices for WGAN, clipped after each
    update) trains on its output with the gradient stopped; G's loss is then differentiated
    with respect to the generated batch against the updated D and pulled back through G.
    """
    trainable, non_trainable, optimizer_variables, metrics_variables = state
    sar, optical, _ = keras.utils.unpack_x_y_sample_weight(data)
    g = _Network(model, model.generator)
    d = _Network(model, model.discriminator)
    g_opt_count = len(model.g_optimizer.variables)
    g_opt, d_opt = optimizer_variables[:g_opt_count], optimizer_variables[g_opt_count:]

    g_trainable = _take(trainable, g.trainable)
    generated, pullback, g_non_trainable = jax.vjp(
        lambda weights: g.call(weights, _take(non_trainable, g.non_trainable), sar, True),
        g_trainable,
        has_aux=True,
    )
    fixed = jax.lax.stop_gradient(generated)

    d_trainable = _take(trainable, d.trainable)
    d_non_trainable = _take(non_trainable, d.non_trainable)

    def d_loss(weights, non_trainable_values, sar_part, optical_part, fake_part):
        real_output, non_trainable_values = _discriminate(
            model, d, weights, non_trainable_values, sar_part, optical_part, True
        )
        fake_output, non_trainable_values = _discriminate(
            model, d, weights, non_trainable_values, sar_part, fake_part, True
        )
        values = model.discriminator_values(real_output, fake_output)
        return ops.mean(values["d_loss"]), (values, non_trainable_values)

    d_chunks = []
    for start, end in critic_chunks(ops.shape(sar)[0], model.d_steps):
        (_, (values, d_non_trainable)), grads = jax.value_and_grad(d_loss, has_aux=True)(
            d_trainable, d_non_trainable, sar[start:end], optical[start:end], fixed[start:end]
        )
        d_trainable, d_opt = model.d_optimizer.stateless_apply(d_opt, grads, d_trainable)
        if model.is_wasserstein:
            d_trainable = [ops.clip(w, -model.clip_value, model.clip_value) for w in d_trainable]
        d_chunks.append(values)

    def g_loss(generated_batch, d_non_trainable_values):
        fake_output, d_non_trainable_values = _discriminate(
            model, d, d_trainable, d_non_trainable_values, sar, generated_batch, True
        )
        values = model.generator_values(fake_output, generated_batch, optical)
        return ops.mean(values["g_loss"]), (values, d_non_trainable_values)

    (_, (g_values, d_non_trainable)), generated_grad = jax.value_and_grad(g_loss, has_aux=True)(
        generated, d_non_trainable
    )
    (g_grads,) = pullback(generated_grad)
    g_trainable, g_opt = model.g_optimizer.stateless_apply(g_opt, g_grads, g_trainable)

    values = _merge_values(d_chunks) if len(d_chunks) > 1 else d_chunks[0]
    logs, metrics_variables = _update_metrics(model, metrics_variables, {**values, **g_values})
    trainable = _put(_put(trainable, g.trainable, g_trainable), d.trainable, d_trainable)
    non_trainable = _put(_put(non_trainable, g.non_trainable, g_non_trainable), d.non_trainable, d_non_trainable)
    return logs, (trainable, non_trainable, list(g_opt) + list(d_opt), metrics_variables)


def test_step(model, state, data):
    """The same losses and metrics as train_step, in inference mode, with no update."""
    trainable, non_trainable, metrics_variables = state
    sar, optical, _ = keras.utils.unpack_x_y_sample_weight(data)
    g = _Network(model, model.generator)
    d = _Network(model, model.discriminator)
    d_trainable = _take(trainable, d.trainable)
    d_non_trainable = _take(non_trainable, d.non_trainable)
    generated, _ = g.call(_take(trainable, g.trainable), _take(non_trainable, g.non_trainable), sar, False)
    real_output, _ = _discriminate(model, d, d_trainable, d_non_trainable, sar, optical, False)
    fake_output, _ = _discriminate(model, d, d_trainable, d_non_trainable, sar, generated, False)
    values = model.discriminator_values(real_output, fake_output)
    values.update(model.generator_values(fake_output, generated, optical))
    logs, metrics_variables = _update_metrics(model, metrics_variables, values)
    return logs, (trainable, non_trainable, metrics_variables)
