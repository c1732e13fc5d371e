"""Preprocessing of report §3.5 and the despeckling filters, against NumPy references."""

import numpy as np
import pytest
from skimage.exposure import match_histograms

from keras_sar2opt.data.preprocess import (
    PREPROCESSORS,
    apply_preprocessing,
    enhanced_lee_filter,
    frost_filter,
    gamma_correction,
    histogram_match,
    lee_filter,
    median_filter,
)
from keras_sar2opt.errors import Sar2OptError


def speckled_step(rng, looks=4):
    """A 64x64 image, 0.3 on the left half and 0.6 on the right, with Gamma speckle."""
    clean = np.full((64, 64), 0.3, np.float32)
    clean[:, 32:] = 0.6
    return clean, clean * rng.gamma(looks, 1.0 / looks, clean.shape).astype(np.float32)


def test_median_matches_brute_force():
    image = np.random.default_rng(0).random((9, 11, 2)).astype(np.float32)
    padded = np.pad(image, ((3, 3), (3, 3), (0, 0)), mode="symmetric")  # border reflected
    windows = np.lib.stride_tricks.sliding_window_view(padded, (7, 7), axis=(0, 1))
    np.testing.assert_allclose(median_filter(image, 7), np.median(windows, axis=(-2, -1)), atol=1e-7)
    np.testing.assert_allclose(median_filter(image[..., 0], 7), np.median(windows, axis=(-2, -1))[..., 0], atol=1e-7)
    with pytest.raises(Sar2OptError, match="odd positive filter window, received 6"):
        median_filter(image, 6)


def test_gamma_conventions():
    assert gamma_correction(np.float32(0.5), 7, "power") == pytest.approx(0.5**7)
    assert gamma_correction(np.float32(0.5), 7, "inverse") == pytest.approx(0.5 ** (1 / 7))
    with pytest.raises(Sar2OptError, match="convention among power, inverse, received 'gamma'"):
        gamma_correction(np.zeros(3), 7, "gamma")


@pytest.mark.parametrize("despeckle", [lee_filter, enhanced_lee_filter, frost_filter])
def test_despeckling_smooths_flat_areas_and_keeps_the_edge(despeckle):
    rng = np.random.default_rng(1)
    clean, noisy = speckled_step(rng)
    filtered = despeckle(noisy, 7)
    inner = np.s_[8:-8, 8:24]  # inside the left half, away from the edge and borders
    assert filtered[inner].std() < 0.5 * noisy[inner].std()
    assert filtered[inner].mean() == pytest.approx(0.3, rel=0.05)
    step = filtered[8:-8, 36:40].mean() - filtered[8:-8, 24:28].mean()
    assert step > 0.8 * 0.3


def test_histogram_match_equals_skimage_and_pools_a_domain():
    rng = np.random.default_rng(2)
    image = rng.random((20, 30, 3)).astype(np.float32) ** 2
    reference = rng.beta(2, 5, (25, 25, 3)).astype(np.float32)
    expected = match_histograms(image, reference, channel_axis=-1)
    np.testing.assert_allclose(histogram_match(image, reference), expected, atol=1e-6)
    halves = [reference[:12], reference[12:]]  # a reference domain of two images
    np.testing.assert_allclose(histogram_match(image, halves), expected, atol=1e-6)
    grey = histogram_match(image, reference[..., :1])
    np.testing.assert_allclose(grey[..., 2], match_histograms(image[..., 2], reference[..., 0]), atol=1e-6)


def test_histogram_match_reads_reference_paths(tmp_path):
    from keras_sar2opt.data.io import write_png

    reference = np.random.default_rng(3).beta(5, 2, (16, 16)).astype(np.float32)
    path = write_png(tmp_path / "reference.png", reference)
    image = np.random.default_rng(4).random((16, 16)).astype(np.float32)
    matched = histogram_match(image, str(path))
    assert abs(np.median(matched) - np.median(np.round(reference * 255) / 255)) < 0.02


def test_apply_preprocessing_runs_the_report_steps_in_order():
    image = np.random.default_rng(5).random((12, 12, 1)).astype(np.float32)
    steps = [("median", {"window": 7}), ("gamma", {"gamma": 7, "convention": "power"})]
    np.testing.assert_allclose(apply_preprocessing(image, steps), gamma_correction(median_filter(image, 7), 7))
    np.testing.assert_array_equal(apply_preprocessing(image, ["lee"]), lee_filter(image))
    np.testing.assert_array_equal(apply_preprocessing(image, None), image)
    assert set(PREPROCESSORS) >= {"median", "gamma", "lee", "frost", "histogram_match"}
    with pytest.raises(Sar2OptError, match="step among median, gamma.*received 'bilateral'"):
        apply_preprocessing(image, ["bilateral"])
    with pytest.raises(Sar2OptError, match="options of median among window, received size"):
        apply_preprocessing(image, [("median", {"size": 7})])
