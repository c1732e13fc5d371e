"""Pixel metrics of translated images (§3–§4 evaluation): PSNR, SSIM, MAE, RMSE and SAM, per image."""

import math

import keras
import numpy as np

from keras_sar2opt.errors import Sar2OptError

# SSIM constants of Wang et al. (2004), as in tf.image.ssim and skimage (gaussian_weights=True).
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# Values outside value_range by more than this fraction of its span are rejected, not clipped.
_RANGE_TOLERANCE = 1e-3


def to_unit(images, value_range):
    """Map a (B, H, W, C) batch with values in `value_range` = (low, high) to float32 [0, 1].

    Accepts NumPy arrays and backend tensors. Raises Sar2OptError on a bad range, a batch that
    is not 4-D, or values outside the stated range (nothing is clipped or guessed).
    """
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise Sar2OptError(f"Expected value_range as (low, high), received {value_range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise Sar2OptError(f"Expected value_range with finite low < high, received {value_range!r}")
    images = keras.ops.cast(keras.ops.convert_to_tensor(images), "float32")
    if len(images.shape) != 4:
        raise Sar2OptError(f"Expected a batch of images shaped (B, H, W, C), received shape {tuple(images.shape)}")
    seen_low = float(keras.ops.min(images))
    seen_high = float(keras.ops.max(images))
    tolerance = _RANGE_TOLERANCE * (high - low)
    if not (seen_low >= low - tolerance and seen_high <= high + tolerance):
        raise Sar2OptError(
            f"Expected values in value_range [{low:g}, {high:g}], received values in [{seen_low:g}, {seen_high:g}]"
        )
    return (images - low) / (high - low)


def pair_in_unit(pred, target, value_range):
    """Both batches in [0, 1], checked to have the same shape."""
    pred = to_unit(pred, value_range)
    target = to_unit(target, value_range)
    if tuple(pred.shape) != tuple(target.shape):
        raise Sar2OptError(
            f"Expected prediction and target of the same shape, received {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    return pred, target


def _per_image(values):
    return np.asarray(keras.ops.convert_to_numpy(values), dtype=np.float64)


def mae(pred, target, value_range):
    """Mean absolute error per image, on the [0, 1] scale (half the L1 on the [-1, 1] scale)."""
    pred, target = pair_in_unit(pred, target, value_range)
    return _per_image(keras.ops.mean(keras.ops.abs(pred - target), axis=(1, 2, 3)))


def rmse(pred, target, value_range):
    """Root mean squared error per image, on the [0, 1] scale."""
    pred, target = pair_in_unit(pred, target, value_range)
    return _per_image(keras.ops.sqrt(keras.ops.mean(keras.ops.square(pred - target), axis=(1, 2, 3))))


def psnr(pred, target, value_range):
    """Peak signal-to-noise ratio per image in dB, peak 1 on the [0, 1] scale; inf for identical images."""
    pred, target = pair_in_unit(pred, target, value_range)
    mse = _per_image(keras.ops.mean(keras.ops.square(pred - target), axis=(1, 2, 3)))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def _gaussian_taps(size=SSIM_WINDOW, sigma=SSIM_SIGMA):
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def ssim(pred, target, value_range):
    """Structural similarity per image, averaged over channels and the valid (uncropped) pixels.

    Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1 after mapping to [0, 1]: the
    values of `tf.image.ssim` and of `skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1)`.
    """
    x, y = pair_in_unit(pred, target, value_range)
    height, width, channels = x.shape[1:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise Sar2OptError(
            f"Expected images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels for SSIM, received {height}x{width}"
        )
    # Filter x, y, x², y², xy together: one separable Gaussian over 5*C channels, "valid" borders.
    stacked = keras.ops.concatenate([x, y, x * x, y * y, x * y], axis=-1)
    taps = _gaussian_taps()
    depth = 5 * channels
    rows = keras.ops.convert_to_tensor(np.tile(taps.reshape(-1, 1, 1, 1), (1, 1, depth, 1)))
    cols = keras.ops.convert_to_tensor(np.tile(taps.reshape(1, -1, 1, 1), (1, 1, depth, 1)))
    filtered = keras.ops.depthwise_conv(stacked, rows, padding="valid", data_format="channels_last")
    filtered = keras.ops.depthwise_conv(filtered, cols, padding="valid", data_format="channels_last")
    mu_x, mu_y, xx, yy, xy = keras.ops.split(filtered, 5, axis=-1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov_xy = xy - mu_x * mu_y
    c1 = SSIM_K1**2
    c2 = SSIM_K2**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return _per_image(keras.ops.mean(ssim_map, axis=(1, 2, 3)))


def sam(pred, target, value_range):
    """Spectral angle mapper per image: the mean over pixels of the angle (degrees) between the
    pixel's channel vectors on the [0, 1] scale.

    Zero vectors: two zero vectors have angle 0; a zero vector against a non-zero one has angle 90
    (the largest angle between non-negative vectors). The angle is computed as
    2·atan2(|â - b̂|, |â + b̂|) of the unit vectors, which stays accurate for nearly equal vectors.
    """
    pred, target = pair_in_unit(pred, target, value_range)
    unit_pred = _unit_vectors(pred)
    unit_target = _unit_vectors(target)
    difference = keras.ops.sqrt(keras.ops.sum(keras.ops.square(unit_pred - unit_target), axis=-1))
    total = keras.ops.sqrt(keras.ops.sum(keras.ops.square(unit_pred + unit_target), axis=-1))
    angles = 2.0 * keras.ops.arctan2(difference, total) * (180.0 / math.pi)
    return _per_image(keras.ops.mean(angles, axis=(1, 2)))


def _unit_vectors(images):
    """Each pixel's channel vector divided by its norm; zero vectors stay zero."""
    norms = keras.ops.sqrt(keras.ops.sum(keras.ops.square(images), axis=-1, keepdims=True))
    safe = keras.ops.where(norms > 0, norms, keras.ops.ones_like(norms))
    return images / safe


METRICS = {"psnr": psnr, "ssim": ssim, "mae": mae, "rmse": rmse, "sam": sam}


def compute_all(pred, target, value_range):
    """Every metric of METRICS on a batch: {name: per-image NumPy array of length B}."""
    pred, target = pair_in_unit(pred, target, value_range)
    return {name: metric(pred, target, (0.0, 1.0)) for name, metric in METRICS.items()}
