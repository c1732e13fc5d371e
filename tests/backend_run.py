"""Train the report's networks for a few steps on one Keras backend and print the losses as JSON.

Run as `KERAS_BACKEND=jax python tests/backend_run.py EXPERIMENT WEIGHTS OUT` by
tests/test_training_backends.py. The first backend to run saves the initial weights to WEIGHTS;
the next loads them, so both train the same networks on the same batches.
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np

from keras_sar2opt.models import patchgan_discriminator, unet_generator, wgan_critic
from keras_sar2opt.training.adversarial import AdversarialModel

SIZE = 32
BATCH = 4
STEPS = 3


def build(experiment):
    generator = unet_generator(image_size=SIZE)
    if experiment == "wgan":
        critic = wgan_critic(image_size=SIZE)
        critic.get_layer("dropout").rate = 0.0  # no random numbers: see below
        model = AdversarialModel(generator, critic, conditional=False)
        model.compile(
            keras.optimizers.RMSprop(5e-5),
            keras.optimizers.RMSprop(5e-5),
            adversarial_loss="wasserstein",
            n_critic=2,
            clip_value=0.01,
        )
    else:
        # No dropout, so both backends draw no random numbers and see the same networks.
        model = AdversarialModel(generator, patchgan_discriminator(image_size=SIZE, dropout_rate=0.0))
        model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))
    return model


def main(experiment, weights, out):
    keras.utils.set_random_seed(0)
    model = build(experiment)
    weights = Path(weights)
    if weights.exists():
        model.load_weights(weights)
    else:
        model.save_weights(weights)
    rng = np.random.default_rng(0)
    sar = rng.uniform(-1, 1, (BATCH * STEPS, SIZE, SIZE, 3)).astype("float32")
    optical = np.tanh(sar[..., ::-1] * 1.5).astype("float32")
    history = model.fit(
        sar, optical, batch_size=BATCH, epochs=2, shuffle=False, validation_data=(sar, optical), verbose=0
    )
    model.save(Path(out).with_suffix(".keras"))
    reloaded = keras.models.load_model(Path(out).with_suffix(".keras"))
    critic_max = max(float(np.abs(v).max()) for v in model.discriminator.trainable_weights)
    Path(out).write_text(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "history": {key: [float(v) for v in values] for key, values in history.history.items()},
                "critic_max_abs": critic_max,
                "reload_max_diff": float(
                    np.abs(
                        np.asarray(reloaded.predict(sar, verbose=0)) - np.asarray(model.predict(sar, verbose=0))
                    ).max()
                ),
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
