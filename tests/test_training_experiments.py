"""The report's experiments (§1–§3) as named configurations, each trained a few steps."""

import math

import keras
import numpy as np
import pytest

from keras_sar2opt import paper
from keras_sar2opt.data import find_pairs, make_dataset
from keras_sar2opt.data.synthetic import write_synthetic
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import EXPERIMENTS, ExperimentConfig, OptimizerConfig, get_experiment
from keras_sar2opt.training import METRICS, WGAN_METRICS, AdversarialModel
from keras_sar2opt.training.run import build_adversarial_model

SIZE = 32  # the smallest size all of Table 1, 3 and 5's networks accept


def test_registry_names_and_unknown_name():
    assert {"scratch", "patchgan", "wgan", "pix2pix"} <= set(EXPERIMENTS)
    with pytest.raises(Sar2OptError, match="scratch, patchgan, wgan.*'gan'"):
        get_experiment("gan")


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_assumed_settings_name_real_fields(name):
    config = get_experiment(name)
    fields = {field.name for field in ExperimentConfig.__dataclass_fields__.values()}
    assert set(config.assumed) <= fields
    assert config.name == name and config.l1_weight == 100.0


def test_defaults_are_the_reports():
    scratch, patchgan, wgan = (get_experiment(n) for n in ("scratch", "patchgan", "wgan"))
    assert (scratch.discriminator, scratch.conditional, scratch.d_from_logits) == (
        "scratch_discriminator",
        False,
        False,
    )
    assert scratch.d_optimizer == OptimizerConfig(**paper.SECTION11_D_OPTIMIZER)  # §1.1.2
    assert (
        scratch.epochs == paper.SECTION11_EPOCHS and scratch.image_size == 128 and "d_optimizer" not in scratch.assumed
    )
    assert (patchgan.discriminator, patchgan.conditional, patchgan.d_from_logits) == (
        "patchgan_discriminator",
        True,
        True,
    )
    critic = paper.SECTION13_CRITIC  # §1.3.1
    assert (wgan.adversarial_loss, wgan.d_optimizer) == (
        "wasserstein",
        OptimizerConfig("rmsprop", critic["learning_rate"]),
    )
    assert (wgan.clip_value, wgan.n_critic) == (critic["clip_value"], 5) and "n_critic" in wgan.assumed
    assert all(get_experiment(n).generator == "unet_generator" for n in ("scratch", "patchgan", "wgan"))


def test_with_overrides_keeps_defaults_for_none():
    config = get_experiment("wgan").with_overrides(epochs=3, batch_size=None, d_learning_rate=1e-4)
    assert (config.epochs, config.batch_size) == (3, get_experiment("wgan").batch_size)
    assert config.d_optimizer.learning_rate == 1e-4 and config.d_optimizer.name == "rmsprop"
    with pytest.raises(Sar2OptError, match="colour"):
        config.with_overrides(colour="red")


@pytest.fixture(scope="module")
def synthetic_batches(module_tmp):
    root = write_synthetic(module_tmp("qxslab"), "qxslab", 12, "qxslab", size=SIZE, progress=False)
    pairs = find_pairs(root).pairs
    return make_dataset(pairs[:8], SIZE, 4, training=True), make_dataset(pairs[8:], SIZE, 4, training=False)


@pytest.mark.parametrize("name", ["scratch", "patchgan", "wgan"])
def test_experiment_trains_a_few_steps(name, synthetic_batches):
    train, val = synthetic_batches
    config = get_experiment(name).with_overrides(image_size=SIZE)
    model = build_adversarial_model(config)
    assert isinstance(model, AdversarialModel) and model.conditional == config.conditional
    networks = (model.generator, model.discriminator)
    before = [[np.array(w) for w in network.trainable_weights] for network in networks]
    history = model.fit(train, validation_data=val, epochs=2, verbose=0).history
    names = METRICS + (WGAN_METRICS if name == "wgan" else ())
    assert set(history) == set(names) | {f"val_{n}" for n in names}
    assert all(math.isfinite(v) for values in history.values() for v in values)
    for network, weights in zip(networks, before):
        unchanged = [
            w.path
            for w, b in zip(network.trainable_weights, weights)
            if w.path.endswith("kernel") and np.array_equal(b, np.array(w))
        ]
        assert not unchanged, (network.name, unchanged)
    if name == "wgan":
        assert int(model.d_optimizer.iterations) == 5 * int(model.g_optimizer.iterations) == 20
        assert max(float(keras.ops.max(keras.ops.abs(w))) for w in model.discriminator.trainable_weights) <= 0.01


@pytest.mark.parametrize("name", ["scratch", "patchgan"])
def test_mixed_bfloat16_models_compute_in_bfloat16_with_float32_outputs(name):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_adversarial_model(get_experiment(name).with_overrides(image_size=SIZE))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    sar = keras.ops.zeros((2, SIZE, SIZE, 3))
    generated = model.generator(sar)
    assert model.generator.get_layer("enc2").compute_dtype == "bfloat16"
    assert keras.ops.dtype(generated) == "float32"
    assert keras.ops.dtype(model.discriminate(sar, generated)) == "float32"
