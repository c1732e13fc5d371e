"""The adversarial keras.Model (report §1–§3) under fit(): metrics, updates, clipping, saving, bfloat16."""

import contextlib
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.training import METRICS, WGAN_METRICS, AdversarialModel

SIZE = 16


def tiny_generator():
    sar = keras.Input((SIZE, SIZE, 3), name="sar")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(sar)
    x = keras.layers.BatchNormalization(name="bn")(x)
    optical = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", name="out")(x)
    return keras.Model(sar, optical, name="tiny_generator")


def tiny_discriminator(conditional, activation=None):
    optical = keras.Input((SIZE, SIZE, 3), name="optical")
    if conditional:
        sar = keras.Input((SIZE, SIZE, 3), name="sar")
        inputs, x = [sar, optical], keras.layers.Concatenate(name="concat")([sar, optical])
    else:
        inputs, x = optical, optical
    x = keras.layers.Conv2D(8, 4, strides=2, padding="same", name="conv1")(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu1")(x)
    x = keras.layers.Conv2D(1, 4, padding="same", activation=activation, name="conv2")(x)
    return keras.Model(inputs, x, name="tiny_discriminator")


# (conditional, D output activation, compile arguments)
SETUPS = {
    "patchgan": (True, None, {"adversarial_loss": "bce", "d_from_logits": True}),
    "scratch": (False, "sigmoid", {"adversarial_loss": "bce", "d_from_logits": False}),
    "wgan": (False, None, {"adversarial_loss": "wasserstein", "n_critic": 5, "clip_value": 0.01}),
}


def make_model(setup):
    conditional, activation, kwargs = SETUPS[setup]
    model = AdversarialModel(tiny_generator(), tiny_discriminator(conditional, activation), conditional=conditional)
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5), **kwargs)
    return model


def pairs(count=24, seed=0):
    rng = np.random.default_rng(seed)
    sar = rng.uniform(-1, 1, (count, SIZE, SIZE, 3)).astype("float32")
    return sar, np.tanh(2 * sar[..., ::-1])


def dataset(count=24, batch_size=8, seed=0):
    return tf.data.Dataset.from_tensor_slices(pairs(count, seed)).batch(batch_size)


def weights(network):
    return [np.array(w) for w in network.trainable_weights]


@pytest.mark.parametrize("setup", list(SETUPS))
def test_fit_logs_every_metric_finite_and_updates_both_networks(setup):
    model = make_model(setup)
    g_before, d_before = weights(model.generator), weights(model.discriminator)
    history = model.fit(dataset(), validation_data=dataset(16, seed=1), epochs=2, verbose=0).history
    names = METRICS + (WGAN_METRICS if setup == "wgan" else ())
    assert set(history) == set(names) | {f"val_{name}" for name in names}
    assert all(len(values) == 2 and all(math.isfinite(v) for v in values) for values in history.values())
    for before, network in ((g_before, model.generator), (d_before, model.discriminator)):
        changed = {w.path: not np.array_equal(b, np.array(w)) for b, w in zip(before, network.trainable_weights)}
        # E[D(fake)] - E[D(real)] does not depend on the critic's output bias: its gradient is 0.
        if setup == "wgan" and network is model.discriminator:
            assert not changed.pop("conv2/bias")
        assert all(changed.values()), changed
    steps = 2 * 3
    assert int(model.g_optimizer.iterations) == steps
    assert int(model.d_optimizer.iterations) == steps * (5 if setup == "wgan" else 1)
    if setup == "wgan":
        assert max(np.abs(w).max() for w in weights(model.discriminator)) <= 0.01 + 1e-7
    else:
        assert all(0.0 <= v <= 1.0 for name in ("d_real_acc", "d_fake_acc") for v in history[name])


def test_evaluate_changes_no_weight_and_matches_the_losses():
    model = make_model("patchgan")
    before = [np.array(w) for w in model.weights]
    logs = model.evaluate(dataset(), verbose=0, return_dict=True)
    assert all(np.array_equal(b, np.array(a)) for b, a in zip(before, model.weights))
    sar, optical = pairs()
    generated = model.generator.predict(sar, verbose=0)
    assert logs["g_l1"] == pytest.approx(np.abs(generated - optical).mean(), rel=1e-4)
    assert logs["g_loss"] == pytest.approx(logs["g_adv"] + 100 * logs["g_l1"], rel=1e-4)


def test_adversarial_model_and_generator_round_trip_as_keras_files(tmp_path):
    model = make_model("wgan")
    model.fit(dataset(), epochs=1, verbose=0)
    model.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras")
    assert isinstance(loaded, AdversarialModel)
    settings = (loaded.conditional, loaded.adversarial_loss, loaded.n_critic, loaded.clip_value)
    assert settings == (False, "wasserstein", 5, 0.01)
    assert int(loaded.d_optimizer.iterations) == int(model.d_optimizer.iterations) == 15
    for a, b in zip(model.weights + model.g_optimizer.variables, loaded.weights + loaded.g_optimizer.variables):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    sar, _ = pairs(4)
    np.testing.assert_allclose(loaded.predict(sar, verbose=0), model.predict(sar, verbose=0), atol=1e-6)
    assert loaded.evaluate(dataset(), verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(dataset(), verbose=0, return_dict=True)
    )
    loaded.fit(dataset(), epochs=1, verbose=0)  # training continues from the restored state
    assert int(loaded.g_optimizer.iterations) == 6

    model.generator.save(tmp_path / "generator.keras")
    generator = keras.saving.load_model(tmp_path / "generator.keras")
    np.testing.assert_allclose(generator.predict(sar, verbose=0), model.generator.predict(sar, verbose=0), atol=1e-6)

    # evaluate/translate take a run's checkpoint as --model: its generator
    from keras_sar2opt.model_files import load_generator

    from_checkpoint = load_generator(tmp_path / "gan.keras")
    np.testing.assert_allclose(
        from_checkpoint.predict(sar, verbose=0), model.generator.predict(sar, verbose=0), atol=1e-6
    )


def test_mixed_bfloat16_trains_with_float32_losses():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = make_model("patchgan")
        history = model.fit(dataset(), validation_data=dataset(8), epochs=1, verbose=0).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.generator.compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in model.generator.weights)
    assert all(math.isfinite(values[0]) for values in history.values())
    sar, optical = (keras.ops.convert_to_tensor(images) for images in pairs(8))
    assert keras.ops.dtype(model.evaluation_values(sar, optical)["g_l1"]) == "float32"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"adversarial_loss": "hinge"}, "adversarial_loss.*'hinge'"),
        ({"n_critic": 0}, "n_critic.*0"),
        ({"clip_value": -1.0}, "clip_value"),
        ({"l1_weight": "a lot"}, "l1_weight"),
    ],
)
def test_compile_rejects_bad_settings_in_one_line(kwargs, message):
    model = AdversarialModel(tiny_generator(), tiny_discriminator(True))
    with pytest.raises(Sar2OptError, match=message):
        model.compile("adam", "adam", **kwargs)


def test_compile_rejects_one_optimizer_for_both_networks():
    model = AdversarialModel(tiny_generator(), tiny_discriminator(True))
    optimizer = keras.optimizers.Adam()
    with pytest.raises(Sar2OptError, match="two distinct optimizer"):
        model.compile(optimizer, optimizer)


def _five_steps(monkeypatch, leaky_relu, fused_kernels=True):
    """Losses of the report's GAN (Tables 5 + 3 at 16 px) after 5 fit() steps from seed 0, built with `leaky_relu`
    (and with Keras's own BatchNorm and Adam ops unless `fused_kernels`)."""
    from keras_sar2opt.experiments import PATCHGAN
    from keras_sar2opt.models import blocks, patchgan, unet
    from keras_sar2opt.training import fused
    from keras_sar2opt.training.run import build_adversarial_model

    for module in (blocks, patchgan, unet):
        monkeypatch.setattr(module, "leaky_relu", leaky_relu)
    if not fused_kernels:
        monkeypatch.setattr(fused, "kernels", contextlib.nullcontext)
    keras.utils.set_random_seed(0)
    model = build_adversarial_model(PATCHGAN.with_overrides(image_size=SIZE, batch_size=4))
    history = model.fit(dataset(20, batch_size=4), epochs=1, verbose=0).history
    return {name: values[-1] for name, values in history.items() if name in ("d_loss", "g_loss", "g_adv", "g_l1")}


def test_fused_batch_norm_and_adam_train_as_keras_ops(monkeypatch):
    """TensorFlow's fused BatchNorm and Adam kernels in the train step (training.fused) keep the losses of
    Keras's own ops within float32 round-off after 5 steps."""
    from keras_sar2opt.models import blocks

    fused = _five_steps(monkeypatch, blocks.leaky_relu)
    keras_ops = _five_steps(monkeypatch, blocks.leaky_relu, fused_kernels=False)
    assert fused == pytest.approx(keras_ops, rel=1e-4)


def test_networks_train_as_with_keras_leaky_relu_layers(monkeypatch):
    """max(x, 0.2·x) after biased convolutions (models.blocks.leaky_relu) keeps the losses of LeakyReLU layers
    within float32 round-off after 5 steps, and saves as plain Keras layers."""
    from keras_sar2opt.models import blocks

    ours = _five_steps(monkeypatch, blocks.leaky_relu)
    keras_layers = _five_steps(monkeypatch, lambda name, after_bias=False: keras.layers.LeakyReLU(0.2, name=name))
    assert ours == pytest.approx(keras_layers, rel=1e-4)
    x = np.linspace(-3, 3, 61, dtype="float32").reshape(1, 61)
    np.testing.assert_array_equal(blocks.leaky_relu("a", after_bias=True)(x), keras.layers.LeakyReLU(0.2)(x))
