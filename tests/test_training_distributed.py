"""tf.distribute: one epoch under MirroredStrategy on two logical CPUs equals the single-device run (report §1)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

# Logical devices must be configured before TensorFlow initialises, hence a fresh interpreter.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from keras_sar2opt.training import AdversarialModel

    SIZE = 16

    def generator():
        sar = keras.Input((SIZE, SIZE, 3), name="sar")
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(sar)
        x = keras.layers.BatchNormalization(synchronized=True)(x)  # statistics over the global batch
        return keras.Model(sar, keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(x))

    def discriminator(conditional):
        optical = keras.Input((SIZE, SIZE, 3), name="optical")
        sar = keras.Input((SIZE, SIZE, 3), name="sar")
        inputs = [sar, optical] if conditional else optical
        x = keras.layers.Concatenate()([sar, optical]) if conditional else optical
        x = keras.layers.Conv2D(8, 4, strides=2, padding="same")(x)
        x = keras.layers.LeakyReLU(0.2)(x)
        return keras.Model(inputs, keras.layers.Conv2D(1, 4, padding="same")(x))

    SETUPS = {
        "bce": (True, {"adversarial_loss": "bce"}),
        "wasserstein": (False, {"adversarial_loss": "wasserstein", "n_critic": 1, "clip_value": 0.05}),
    }

    def run(strategy, setup, batch_size):
        conditional, kwargs = SETUPS[setup]
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = AdversarialModel(generator(), discriminator(conditional), conditional=conditional)
            model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), **kwargs)
        rng = np.random.default_rng(0)
        sar = rng.uniform(-1, 1, (26, SIZE, SIZE, 3)).astype("float32")
        data = tf.data.Dataset.from_tensor_slices((sar, np.tanh(2 * sar[..., ::-1])))
        # 19 training and 7 validation pairs: the last batch of each (3) splits 2 + 1 between replicas.
        history = model.fit(data.take(19).batch(batch_size), validation_data=data.skip(19).batch(batch_size),
                            epochs=1, verbose=0).history
        return {"history": {k: v[0] for k, v in history.items()},
                "replicas": strategy.num_replicas_in_sync,
                "weights": [np.asarray(w).tolist() for w in model.trainable_weights]}

    from keras_sar2opt.experiments import get_experiment
    from keras_sar2opt.training.distribute import make_strategy
    from keras_sar2opt.training.run import train_experiment
    mirrored = make_strategy("mirrored")  # all local devices: the two logical CPUs
    results = {f"{setup}-{batch}": [run(tf.distribute.get_strategy(), setup, batch), run(mirrored, setup, batch)]
               for setup, batch in (("bce", 4), ("wasserstein", 4))}
    config = get_experiment("patchgan").with_overrides(image_size=32, batch_size=4, epochs=1)
    train_experiment(config, out=sys.argv[1], pairs=20, strategy="mirrored", steps_per_epoch=5, verbose=0)
    print("RESULTS" + json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def run_folder(module_tmp):
    return module_tmp("mirrored") / "run"


@pytest.fixture(scope="module")
def results(run_folder):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, "-c", SCRIPT, str(run_folder)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS"))
    return json.loads(line[len("RESULTS") :])


# The uneven last batches match only because losses and metrics are averaged over the global batch.
@pytest.mark.parametrize("case", ["bce-4", "wasserstein-4"])
def test_mirrored_losses_equal_single_device(results, case):
    single, mirrored = results[case]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert set(single["history"]) == set(mirrored["history"])
    for name, value in single["history"].items():
        assert mirrored["history"][name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
    for a, b in zip(single["weights"], mirrored["weights"]):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
    if case.startswith("wasserstein"):
        assert "wasserstein" in mirrored["history"]


def test_train_experiment_runs_under_the_mirrored_strategy(results, run_folder):
    config = json.loads((run_folder / "config.json").read_text())
    run = config["run"]
    assert (run["strategy"], run["replicas"], run["steps_per_epoch"]) == ("mirrored", 2, 5)
    history = pd.read_csv(run_folder / "history.csv")
    assert len(history) == 1 and np.isfinite(history.to_numpy()).all()
    assert (run_folder / "generator.keras").is_file()
