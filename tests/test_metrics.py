"""Pixel metrics: PSNR/SSIM against skimage and tf.image, SAM against NumPy, exact MAE/RMSE; Fréchet distance math."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from keras_sar2opt import metrics
from keras_sar2opt.errors import Sar2OptError

RANGES = [(0.0, 1.0), (-1.0, 1.0)]


def _from_unit(unit, value_range):
    low, high = value_range
    return (low + (high - low) * unit).astype(np.float32)


def _random_pair(rng, shape=(3, 48, 40, 3)):
    return rng.random(shape), rng.random(shape)


def _structured_pair(rng, shape=(3, 48, 40, 3)):
    """A smooth scene and a noisy copy of it, both in [0, 1]."""
    batch, height, width, channels = shape
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    scenes = []
    for b in range(batch):
        bands = [
            0.5 + 0.4 * np.sin(2 * np.pi * (1 + b) * xx + c) * np.cos(3 * np.pi * yy * (c + 1)) for c in range(channels)
        ]
        scenes.append(np.stack(bands, axis=-1))
    clean = np.stack(scenes)
    noisy = np.clip(clean + 0.05 * rng.standard_normal(clean.shape), 0.0, 1.0)
    return noisy, clean


def _skimage_reference(pred, target, value_range):
    """skimage PSNR and SSIM of the images mapped to [0, 1] in float64, data range 1.

    PSNR does not depend on the offset, SSIM does (its luminance term): SSIM is defined on [0, 1].
    """
    low, high = value_range
    pred = (pred.astype(np.float64) - low) / (high - low)
    target = (target.astype(np.float64) - low) / (high - low)
    psnr = [peak_signal_noise_ratio(t, p, data_range=1.0) for p, t in zip(pred, target)]
    ssim = [
        structural_similarity(
            t,
            p,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        for p, t in zip(pred, target)
    ]
    return np.array(psnr), np.array(ssim)


@pytest.mark.parametrize("value_range", RANGES)
@pytest.mark.parametrize("make_pair", [_random_pair, _structured_pair], ids=["random", "structured"])
def test_psnr_and_ssim_match_skimage(value_range, make_pair):
    pred_unit, target_unit = make_pair(np.random.default_rng(1))
    pred, target = _from_unit(pred_unit, value_range), _from_unit(target_unit, value_range)
    expected_psnr, expected_ssim = _skimage_reference(pred, target, value_range)

    psnr = metrics.psnr(pred, target, value_range)
    ssim = metrics.ssim(pred, target, value_range)

    assert psnr.shape == ssim.shape == (3,)
    np.testing.assert_allclose(psnr, expected_psnr, atol=1e-3)
    np.testing.assert_allclose(ssim, expected_ssim, atol=1e-3)


def test_psnr_and_ssim_match_tf_image():
    pred_unit, target_unit = _structured_pair(np.random.default_rng(2))
    pred, target = pred_unit.astype(np.float32), target_unit.astype(np.float32)
    np.testing.assert_allclose(metrics.ssim(pred, target, (0, 1)), tf.image.ssim(pred, target, 1.0), atol=1e-4)
    np.testing.assert_allclose(metrics.psnr(pred, target, (0, 1)), tf.image.psnr(pred, target, 1.0), atol=1e-3)


def test_ssim_is_one_and_psnr_infinite_for_identical_images():
    image = np.random.default_rng(3).random((2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(metrics.ssim(image, image, (0, 1)), 1.0, atol=1e-5)
    assert np.all(np.isinf(metrics.psnr(image, image, (0, 1))))


@pytest.mark.parametrize("value_range", RANGES)
def test_sam_matches_direct_numpy_angles(value_range):
    pred_unit, target_unit = _random_pair(np.random.default_rng(4), shape=(2, 12, 10, 4))
    dot = np.sum(pred_unit * target_unit, axis=-1)
    norms = np.linalg.norm(pred_unit, axis=-1) * np.linalg.norm(target_unit, axis=-1)
    expected = np.degrees(np.arccos(np.clip(dot / norms, -1, 1))).mean(axis=(1, 2))

    sam = metrics.sam(_from_unit(pred_unit, value_range), _from_unit(target_unit, value_range), value_range)

    np.testing.assert_allclose(sam, expected, atol=1e-3)


def test_sam_known_angles_and_zero_vectors():
    # Pixels: 45 degrees, identical, both zero (0 degrees), one zero (90 degrees).
    pred = np.array([[[[1, 0, 0], [0.3, 0.2, 0.1], [0, 0, 0], [0, 0, 0]]]], np.float32)
    target = np.array([[[[1, 1, 0], [0.3, 0.2, 0.1], [0, 0, 0], [0.5, 0.5, 0.5]]]], np.float32)
    np.testing.assert_allclose(metrics.sam(pred, target, (0, 1)), [(45 + 0 + 0 + 90) / 4], atol=1e-4)
    np.testing.assert_allclose(metrics.sam(pred[:, :, 1:2], target[:, :, 1:2], (0, 1)), [0.0], atol=1e-4)


@pytest.mark.parametrize("value_range", RANGES)
def test_mae_and_rmse_exact(value_range):
    target_unit = np.zeros((2, 4, 4, 3))
    pred_unit = np.zeros((2, 4, 4, 3))
    pred_unit[0, :2] = 0.25  # half the pixels off by 0.25
    pred_unit[1] = 0.5  # every pixel off by 0.5
    pred, target = _from_unit(pred_unit, value_range), _from_unit(target_unit, value_range)

    np.testing.assert_allclose(metrics.mae(pred, target, value_range), [0.125, 0.5], rtol=1e-6)
    np.testing.assert_allclose(metrics.rmse(pred, target, value_range), [np.sqrt(0.0625 / 2), 0.5], rtol=1e-6)


def test_tensor_and_numpy_inputs_agree():
    pred_unit, target_unit = _structured_pair(np.random.default_rng(5), shape=(2, 24, 24, 3))
    pred, target = _from_unit(pred_unit, (-1, 1)), _from_unit(target_unit, (-1, 1))

    from_numpy = metrics.compute_all(pred, target, (-1, 1))
    from_tf = metrics.compute_all(tf.constant(pred), tf.constant(target), (-1, 1))
    from_keras = metrics.compute_all(keras.ops.convert_to_tensor(pred), target, (-1, 1))

    assert list(from_numpy) == list(metrics.METRICS) == ["psnr", "ssim", "mae", "rmse", "sam"]
    for name, values in from_numpy.items():
        assert isinstance(from_tf[name], np.ndarray) and values.shape == (2,)
        np.testing.assert_allclose(from_tf[name], values, rtol=1e-6)
        np.testing.assert_allclose(from_keras[name], values, rtol=1e-6)
        np.testing.assert_allclose(metrics.METRICS[name](pred, target, (-1, 1)), values, rtol=1e-6)


BAD_INPUTS = [
    # (pred shape, target shape, value_range, scale of pred, expected message)
    ((1, 16, 16, 3), (1, 16, 16, 3), (0, 1), 255.0, r"values in value_range \[0, 1\], received"),
    ((1, 16, 16, 3), (1, 16, 8, 3), (0, 1), 1.0, "same shape"),
    ((16, 16, 3), (16, 16, 3), (0, 1), 1.0, r"\(B, H, W, C\), received shape \(16, 16, 3\)"),
    ((1, 16, 16, 3), (1, 16, 16, 3), (1, 0), 1.0, "low < high"),
    ((1, 16, 16, 3), (1, 16, 16, 3), "unit", 1.0, r"value_range as \(low, high\)"),
]


def test_bad_inputs_raise_one_line_errors():
    rng = np.random.default_rng(6)
    for pred_shape, target_shape, value_range, scale, match in BAD_INPUTS:
        pred = (scale * rng.random(pred_shape)).astype(np.float32)
        target = rng.random(target_shape).astype(np.float32)
        with pytest.raises(Sar2OptError, match=match) as raised:
            metrics.compute_all(pred, target, value_range)
        assert "\n" not in str(raised.value)


def test_ssim_rejects_images_smaller_than_the_window():
    image = np.zeros((1, 10, 32, 3), np.float32)
    with pytest.raises(Sar2OptError, match="at least 11x11"):
        metrics.ssim(image, image, (0, 1))


def test_frechet_distance_of_identical_statistics_is_zero():
    rng = np.random.default_rng(7)
    features = rng.standard_normal((50, 6))
    mu, sigma = metrics.feature_statistics(features)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_closed_form_for_diagonal_covariances():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    distance = metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert distance == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_scipy_sqrtm_and_handles_singular_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    sigma1, sigma2 = a @ a.T, b @ b.T
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * np.real(linalg.sqrtm(sigma1 @ sigma2)))
    assert metrics.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)

    # Fewer samples than dimensions, as with small FID sets: rank-deficient, still finite and symmetric.
    mu3, sigma3 = metrics.feature_statistics(rng.standard_normal((4, 10)))
    mu4, sigma4 = metrics.feature_statistics(rng.standard_normal((4, 10)) + 1.0)
    forward = metrics.frechet_distance(mu3, sigma3, mu4, sigma4)
    assert np.isfinite(forward) and forward > 0
    assert forward == pytest.approx(metrics.frechet_distance(mu4, sigma4, mu3, sigma3), rel=1e-6)
