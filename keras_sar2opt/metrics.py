"""Image-quality metrics for translated images: PSNR, SSIM, MAE, RMSE, SAM and FID (§3-§4 evaluation)."""

import logging
import math
import os
import warnings

import keras
import numpy as np

from keras_sar2opt.errors import Sar2OptError

logger = logging.getLogger(__name__)

# SSIM constants of Wang et al. (2004), as in tf.image.ssim and skimage (gaussian_weights=True).
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

INCEPTION_SIZE = 299
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


def _pair(pred, target, value_range):
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
    pred, target = _pair(pred, target, value_range)
    return _per_image(keras.ops.mean(keras.ops.abs(pred - target), axis=(1, 2, 3)))


def rmse(pred, target, value_range):
    """Root mean squared error per image, on the [0, 1] scale."""
    pred, target = _pair(pred, target, value_range)
    return _per_image(keras.ops.sqrt(keras.ops.mean(keras.ops.square(pred - target), axis=(1, 2, 3))))


def psnr(pred, target, value_range):
    """Peak signal-to-noise ratio per image in dB, peak 1 on the [0, 1] scale; inf for identical images."""
    pred, target = _pair(pred, target, value_range)
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
    x, y = _pair(pred, target, value_range)
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
    pred, target = _pair(pred, target, value_range)
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
    pred, target = _pair(pred, target, value_range)
    return {name: metric(pred, target, (0.0, 1.0)) for name, metric in METRICS.items()}


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Fréchet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|² + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½).

    tr((sigma1 sigma2)^½) is computed in the symmetric form tr((s1^½ sigma2 s1^½)^½) with
    eigen-decompositions, so it stays real for singular (few-sample) covariances.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return float(max(distance, 0.0))


def _psd_sqrt(matrix):
    """Square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def feature_statistics(features):
    """Mean and covariance (N - 1 normalisation) of (N, D) features, N >= 2."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise Sar2OptError(
            f"Expected at least 2 images for FID statistics, received features of shape {features.shape}"
        )
    return features.mean(axis=0), np.cov(features, rowvar=False)


def load_inception(weights_path):
    """InceptionV3 (no top, average pooling, 299x299x3) with weights from a local file only."""
    if not os.path.isfile(weights_path):
        raise Sar2OptError(f"Expected an InceptionV3 weights file, received missing file {weights_path}")
    try:
        with warnings.catch_warnings():  # Keras warns, then raises, for another model's weights
            warnings.simplefilter("ignore", UserWarning)
            return keras.applications.InceptionV3(
                include_top=False,
                pooling="avg",
                weights=weights_path,
                input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
            )
    except (ValueError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Sar2OptError(
            f"Expected InceptionV3 (include_top=False) weights in {weights_path}, received: {first_line}"
        ) from None


def inception_features(images, model, value_range, batch_size=32):
    """(N, 2048) pooled InceptionV3 features of an (N, H, W, 3) batch: bilinear resize to 299x299,
    then the Inception input scaling to [-1, 1]."""
    images = to_unit(images, value_range)
    if images.shape[-1] != 3:
        raise Sar2OptError(f"Expected 3-channel images for FID, received {images.shape[-1]} channels")
    features = []
    for start in range(0, images.shape[0], batch_size):
        batch = keras.ops.image.resize(
            images[start : start + batch_size], (INCEPTION_SIZE, INCEPTION_SIZE), interpolation="bilinear"
        )
        features.append(keras.ops.convert_to_numpy(model(batch * 2.0 - 1.0, training=False)))
    return np.concatenate(features, axis=0)


def frechet_inception_distance(real, fake, weights_path, *, value_range, batch_size=32):
    """FID between two (N, H, W, 3) batches, or None with a one-line notice when no weights file
    is given (no download is ever attempted).

    Features come from keras.applications.InceptionV3, so values are comparable only with FIDs
    computed by the same network and weights; with fewer than 2048 images per set the
    covariances are singular and the estimate is biased upwards.
    """
    if weights_path is None:
        logger.warning("FID skipped: no InceptionV3 weights file given (pass one to compute FID).")
        return None
    model = load_inception(weights_path)
    real_stats = feature_statistics(inception_features(real, model, value_range, batch_size))
    fake_stats = feature_statistics(inception_features(fake, model, value_range, batch_size))
    return frechet_distance(*real_stats, *fake_stats)
