"""The adversarial keras.Model of report §1–§3: a generator and a discriminator/critic trained by fit()."""

import numbers

import keras
from keras import ops

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.training import losses

# The trackers, named exactly like the keys train_step/test_step return (and fit() logs).
METRICS = ("d_loss", "g_loss", "g_adv", "g_l1", "d_real_acc", "d_fake_acc")
WGAN_METRICS = ("critic_real", "critic_fake", "wasserstein")


def _backend_steps():
    """The module holding train_step/test_step for the active Keras backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from keras_sar2opt.training import tf_step

        return tf_step
    if backend == "jax":
        from keras_sar2opt.training import jax_step

        return jax_step
    raise Sar2OptError(f"Expected the Keras backend tensorflow or jax for training, received {backend!r}")


class OptimizerPair:
    """G's and D's optimisers seen as one `model.optimizer` by Keras's trainer.

    Keras's JAX trainer threads `model.optimizer.variables` through its stateless train step
    (G's variables first, then D's), so both optimisers' state travels with the model's state.
    """

    built = True

    def __init__(self, g_optimizer, d_optimizer):
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    @property
    def variables(self):
        return self.g_optimizer.variables + self.d_optimizer.variables


# compile() arguments and the `sar2opt train` options that set them (named in errors).
OPTION_FLAGS = {"l1_weight": "--l1-weight", "n_critic": "--n-critic", "clip_value": "--clip-value"}


def _check_positive(name, value, kind=numbers.Real, allow_zero=False):
    valid = isinstance(value, kind) and not isinstance(value, bool)
    if not valid or not value >= 0 or (value == 0 and not allow_zero):  # NaN too
        bound = "non-negative" if allow_zero else "positive"
        raise Sar2OptError(f"Expected {name} ({OPTION_FLAGS[name]}) to be a {bound} number, received {value!r}")


def check_loss_settings(adversarial_loss="bce", l1_weight=100.0, n_critic=5, clip_value=0.01):
    """Raise Sar2OptError, naming the option, for loss settings compile() does not take."""
    losses.check_adversarial_loss(adversarial_loss)
    _check_positive("l1_weight", l1_weight, allow_zero=True)
    _check_positive("n_critic", n_critic, kind=numbers.Integral)
    _check_positive("clip_value", clip_value)


@keras.saving.register_keras_serializable(package="keras_sar2opt")
class AdversarialModel(keras.Model):
    """A generator G (SAR -> optical) and a discriminator/critic D trained adversarially.

    `conditional=True`: D takes {"sar": sar, "optical": optical} (PatchGAN, §1.2, §3);
    `conditional=False`: D sees the optical image only (Table 1 and the WGAN critic, §1.1, §1.3).
    Calling the model runs the generator. Train with `fit()` on a dataset of (sar, optical)
    batches in [-1, 1]; each step updates D, then G against the updated D. A saved model loads
    with `keras.saving.load_model` once `keras_sar2opt.training` is imported (it registers the
    class); `model.generator` saves on its own as a plain Functional model.
    """

    def __init__(self, generator, discriminator, conditional=True, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.conditional = bool(conditional)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRICS + WGAN_METRICS}
        self.adversarial_loss = "bce"
        self.built = True

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def discriminate(self, sar, optical, training=False):
        """D's output for an optical image (real or generated) and, if conditional, its SAR input."""
        if self.conditional:
            return self.discriminator({"sar": sar, "optical": optical}, training=training)
        return self.discriminator(optical, training=training)

    def compile(
        self,
        g_optimizer,
        d_optimizer,
        adversarial_loss="bce",
        l1_weight=100.0,
        d_from_logits=True,
        n_critic=5,
        clip_value=0.01,
        **kwargs,
    ):
        """Set both optimisers and the losses; other keyword arguments go to `keras.Model.compile`.

        adversarial_loss: "bce" (D outputs probabilities, or logits with `d_from_logits=True`)
        or "wasserstein" (a linear critic; `n_critic` critic updates per generator update, the
        critic's weights clipped to ±`clip_value` after each). l1_weight: λ of L_G = L_adv + λ·L1.
        With "wasserstein", each of the n_critic updates trains on its own consecutive slice of
        the batch (see `critic_chunks`), so the critic sees every example once per epoch and the
        generator update uses the whole batch; with "bce" D makes one update on the whole batch.
        """
        check_loss_settings(adversarial_loss, l1_weight, n_critic, clip_value)
        g_optimizer = keras.optimizers.get(g_optimizer)
        d_optimizer = keras.optimizers.get(d_optimizer)
        if g_optimizer is d_optimizer:
            raise Sar2OptError("Expected two distinct optimizer objects for G and D, received the same one twice")
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.adversarial_loss = adversarial_loss
        self.l1_weight = float(l1_weight)
        self.d_from_logits = bool(d_from_logits)
        self.n_critic = int(n_critic)
        self.clip_value = float(clip_value)
        self.optimizer = OptimizerPair(g_optimizer, d_optimizer)
        # Built now, so a saved model always carries the optimizer state it is loaded with.
        for optimizer, network in ((g_optimizer, self.generator), (d_optimizer, self.discriminator)):
            if not optimizer.built:
                optimizer.build(network.trainable_variables)

    @property
    def is_wasserstein(self):
        return self.adversarial_loss == "wasserstein"

    @property
    def d_steps(self):
        """Discriminator updates per generator update."""
        return self.n_critic if self.is_wasserstein else 1

    @property
    def metrics(self):
        names = METRICS + WGAN_METRICS if self.is_wasserstein else METRICS
        return [self.trackers[name] for name in names]

    def discriminator_values(self, real_output, fake_output):
        """Per-example D loss, patch-averaged accuracies and, for WGAN, critic scores, by metric name."""
        d_loss, _, _ = losses.discriminator_loss(real_output, fake_output, self.adversarial_loss, self.d_from_logits)
        threshold = losses.decision_threshold(self.adversarial_loss, self.d_from_logits)
        values = {
            "d_loss": d_loss,
            "d_real_acc": losses.accuracy(real_output, True, threshold),
            "d_fake_acc": losses.accuracy(fake_output, False, threshold),
        }
        if self.is_wasserstein:
            values.update(zip(WGAN_METRICS, losses.critic_scores(real_output, fake_output)))
        return values

    def generator_values(self, fake_output, generated, target):
        """Per-example generator loss and its adversarial and L1 parts, by metric name."""
        parts = losses.generator_loss(
            fake_output, generated, target, self.adversarial_loss, self.l1_weight, self.d_from_logits
        )
        return dict(zip(("g_loss", "g_adv", "g_l1"), parts))

    def evaluation_values(self, sar, optical):
        """Every metric's per-example values on a batch, in inference mode, without updates."""
        generated = self.generator(sar, training=False)
        real_output = self.discriminate(sar, optical, training=False)
        fake_output = self.discriminate(sar, generated, training=False)
        values = self.discriminator_values(real_output, fake_output)
        values.update(self.generator_values(fake_output, generated, optical))
        return values

    def update_trackers(self, values):
        for name, value in values.items():
            self.trackers[name].update_state(value)

    def metric_results(self):
        return {metric.name: metric.result() for metric in self.metrics}

    def clip_discriminator_weights(self):
        """WGAN weight clipping: every trainable critic weight into [-clip_value, clip_value] (§1.3)."""
        for variable in self.discriminator.trainable_variables:
            variable.assign(ops.clip(variable, -self.clip_value, self.clip_value))

    def train_step(self, *args):
        return _backend_steps().train_step(self, *args)

    def test_step(self, *args):
        return _backend_steps().test_step(self, *args)

    def get_config(self):
        config = super().get_config()
        config.update(
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            conditional=self.conditional,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return {
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "adversarial_loss": self.adversarial_loss,
            "l1_weight": self.l1_weight,
            "d_from_logits": self.d_from_logits,
            "n_critic": self.n_critic,
            "clip_value": self.clip_value,
        }

    def compile_from_config(self, config):
        config = dict(config)
        for key in ("g_optimizer", "d_optimizer"):
            config[key] = keras.optimizers.deserialize(config[key])
        self.compile(**config)
