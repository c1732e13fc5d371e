"""Losses and metrics of the adversarial model (report §1.1.2, §1.3.1, §2) against NumPy references."""

import numpy as np
import pytest
from keras import ops

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.training import losses
from keras_sar2opt.training.losses import critic_chunks


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def _bce(label, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(label * np.log(p) + (1 - label) * np.log(1 - p))


@pytest.fixture
def patches():
    rng = np.random.default_rng(1)
    return rng.normal(size=(3, 4, 4, 1)).astype("float32"), rng.normal(size=(3, 4, 4, 1)).astype("float32")


def test_bce_from_logits_is_patch_averaged_per_example(patches):
    real, fake = patches
    total, real_term, fake_term = losses.discriminator_loss(real, fake, "bce", from_logits=True)
    expected_real = _bce(1, 1 / (1 + np.exp(-real))).mean(axis=(1, 2, 3))
    expected_fake = _bce(0, 1 / (1 + np.exp(-fake))).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(_np(real_term), expected_real, rtol=1e-5)
    np.testing.assert_allclose(_np(fake_term), expected_fake, rtol=1e-5)
    np.testing.assert_allclose(_np(total), (expected_real + expected_fake) / 2, rtol=1e-5)


def test_bce_on_probabilities_matches_reference():
    probabilities = np.array([[0.9], [0.2], [0.5]], np.float32)
    adversarial = losses.adversarial_loss(probabilities, True, "bce", from_logits=False)
    np.testing.assert_allclose(_np(adversarial), _bce(1, probabilities[:, 0]), rtol=1e-5)


def test_wasserstein_losses_are_critic_mean_differences(patches):
    real, fake = patches
    total, real_term, fake_term = losses.discriminator_loss(real, fake, "wasserstein")
    mean_real, mean_fake = real.mean(axis=(1, 2, 3)), fake.mean(axis=(1, 2, 3))
    np.testing.assert_allclose(_np(total), mean_fake - mean_real, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(real_term), -mean_real, rtol=1e-5)
    critic_real, critic_fake, distance = losses.critic_scores(real, fake)
    np.testing.assert_allclose(_np(distance), mean_real - mean_fake, rtol=1e-5, atol=1e-6)
    _, adversarial, _ = losses.generator_loss(fake, fake, fake, "wasserstein")
    np.testing.assert_allclose(_np(adversarial), -mean_fake, rtol=1e-5)


def test_generator_loss_is_adversarial_plus_weighted_l1(patches):
    rng = np.random.default_rng(2)
    generated = rng.uniform(-1, 1, (3, 8, 8, 3)).astype("float32")
    target = rng.uniform(-1, 1, (3, 8, 8, 3)).astype("float32")
    total, adversarial, l1 = losses.generator_loss(patches[1], generated, target, "bce", l1_weight=100.0)
    np.testing.assert_allclose(_np(l1), np.abs(generated - target).mean(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(_np(adversarial), _bce(1, 1 / (1 + np.exp(-patches[1]))).mean(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(_np(total), _np(adversarial) + 100.0 * _np(l1), rtol=1e-5)


def test_accuracy_uses_the_output_convention_threshold():
    assert losses.decision_threshold("bce", from_logits=False) == 0.5
    assert losses.decision_threshold("bce", from_logits=True) == 0.0
    probabilities = np.array([[[[0.9], [0.4]], [[0.6], [0.7]]]], np.float32)  # 3 of 4 patches > 0.5
    assert float(losses.accuracy(probabilities, True, 0.5)[0]) == pytest.approx(0.75)
    assert float(losses.accuracy(probabilities, False, 0.5)[0]) == pytest.approx(0.25)


def test_losses_are_float32_for_bfloat16_outputs(patches):
    real, fake = (ops.cast(p, "bfloat16") for p in patches)
    total, _, _ = losses.discriminator_loss(real, fake, "bce")
    g_total, _, l1 = losses.generator_loss(fake, ops.cast(np.zeros((3, 8, 8, 3)), "bfloat16"), np.ones((3, 8, 8, 3)))
    assert {ops.dtype(total), ops.dtype(g_total), ops.dtype(l1)} == {"float32"}
    np.testing.assert_allclose(_np(l1), 1.0)


def test_unknown_adversarial_loss_is_a_one_line_error(patches):
    with pytest.raises(Sar2OptError, match="bce, wasserstein.*'hinge'"):
        losses.discriminator_loss(*patches, mode="hinge")


@pytest.mark.parametrize("batch_size, steps", [(16, 5), (10, 5), (5, 5), (7, 1), (3, 5), (1, 5)])
def test_critic_chunks_are_non_empty_and_cover_the_batch(batch_size, steps):
    chunks = [(int(start), int(end)) for start, end in critic_chunks(batch_size, steps)]
    assert len(chunks) == steps
    assert all(0 <= start < end <= batch_size for start, end in chunks)
    covered = sorted({i for start, end in chunks for i in range(start, end)})
    assert covered == list(range(batch_size))
    if batch_size >= steps:  # disjoint and consecutive: every example is seen exactly once
        assert chunks[0][0] == 0 and chunks[-1][1] == batch_size
        assert all(end == next_start for (_, end), (next_start, _) in zip(chunks, chunks[1:]))
