"""The adversarial and reconstruction losses of report §1–§3 as pure per-example functions (keras.ops)."""

from keras import ops

from keras_sar2opt.errors import Sar2OptError

ADVERSARIAL_LOSSES = ("bce", "wasserstein")


def check_adversarial_loss(mode):
    """Raise Sar2OptError unless mode is one of ADVERSARIAL_LOSSES."""
    if mode not in ADVERSARIAL_LOSSES:
        raise Sar2OptError(f"Expected adversarial_loss to be one of {', '.join(ADVERSARIAL_LOSSES)}, received {mode!r}")


def per_example_mean(x):
    """Mean over every axis but the batch axis, in float32: a (B, ...) map becomes (B,)."""
    x = ops.cast(x, "float32")
    return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=1)


def adversarial_loss(output, real, mode="bce", from_logits=True):
    """Per-example loss pushing D's output (a score or a map of patch scores) towards real or fake.

    "bce": binary cross-entropy against label 1 (real) or 0 (fake), averaged over patches (§1.1.2).
    "wasserstein": -mean(score) for real, +mean(score) for fake (§1.3.1).
    """
    output = ops.cast(output, "float32")
    if mode == "wasserstein":
        score = per_example_mean(output)
        return -score if real else score
    labels = ops.ones_like(output) if real else ops.zeros_like(output)
    return per_example_mean(ops.binary_crossentropy(labels, output, from_logits=from_logits))


def discriminator_loss(real_output, fake_output, mode="bce", from_logits=True):
    """Per-example (total, real_term, fake_term) of the discriminator/critic loss.

    "bce": total = (BCE(real, 1) + BCE(fake, 0)) / 2, the report's L_D averaged over the real and
    generated samples. "wasserstein": total = E[D(fake)] - E[D(real)] (§1.3.1).
    """
    check_adversarial_loss(mode)
    real_term = adversarial_loss(real_output, True, mode, from_logits)
    fake_term = adversarial_loss(fake_output, False, mode, from_logits)
    total = real_term + fake_term
    return (total if mode == "wasserstein" else 0.5 * total), real_term, fake_term


def l1_loss(generated, target):
    """Per-example mean absolute error between generated and target images."""
    return per_example_mean(ops.abs(ops.cast(target, "float32") - ops.cast(generated, "float32")))


def generator_loss(fake_output, generated, target, mode="bce", l1_weight=100.0, from_logits=True):
    """Per-example (total, adversarial, l1) of the generator: L_G = L_adv + λ·L1 (§2, §3.2)."""
    check_adversarial_loss(mode)
    adversarial = adversarial_loss(fake_output, True, mode, from_logits)
    l1 = l1_loss(generated, target)
    return adversarial + l1_weight * l1, adversarial, l1


def decision_threshold(mode="bce", from_logits=True):
    """The output value separating "real" from "fake": 0.5 for probabilities, 0 for logits and scores."""
    return 0.5 if mode == "bce" and not from_logits else 0.0


def accuracy(output, real, threshold):
    """Per-example fraction of outputs (patches) classified correctly as real (> threshold) or fake."""
    output = ops.cast(output, "float32")
    correct = ops.greater(output, threshold) if real else ops.less(output, threshold)
    return per_example_mean(ops.cast(correct, "float32"))


def critic_scores(real_output, fake_output):
    """Per-example (critic_real, critic_fake, wasserstein) of the WGAN critic (§1.3)."""
    real = per_example_mean(real_output)
    fake = per_example_mean(fake_output)
    return real, fake, real - fake


__all__ = [
    "ADVERSARIAL_LOSSES",
    "accuracy",
    "adversarial_loss",
    "check_adversarial_loss",
    "critic_scores",
    "decision_threshold",
    "discriminator_loss",
    "generator_loss",
    "l1_loss",
    "per_example_mean",
]


def critic_chunks(batch_size, steps):
    """(start, end) of the batch slice each of `steps` discriminator updates trains on.

    The slices are consecutive, disjoint, non-empty and cover the batch, so D sees every example
    once per training step; a batch with fewer examples than steps reuses single examples.
    Works on a Python int or a scalar tensor batch size.
    """
    static = isinstance(batch_size, int)
    minimum, maximum = (min, max) if static else (ops.minimum, ops.maximum)
    chunks = []
    for i in range(steps):
        start = minimum((i * batch_size) // steps, batch_size - 1)
        end = maximum(((i + 1) * batch_size) // steps, start + 1)
        chunks.append((start, end))
    return chunks
