"""FID and KID on the features of the FID Inception network, as pytorch-fid and torch-fidelity compute them.

FID: the Fréchet distance between Gaussians fitted to the 2048-d pool features of two image sets.
KID: the unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over
random subsets drawn as torch-fidelity draws them (docs/metrics.md).
"""

import numpy as np
from tqdm.auto import tqdm

from keras_sar2opt.errors import Sar2OptError

BATCH_SIZE = 50  # pytorch-fid's default
# torch-fidelity's defaults: 100 subsets of 1000 images (fewer when a set is smaller), seed 2020.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020


def _check_images(images):
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise Sar2OptError(f"Expected images shaped (N, H, W, 3), received shape {images.shape}")
    low, high = float(images.min(initial=0.0)), float(images.max(initial=1.0))
    if low < 0.0 or high > 1.0:
        raise Sar2OptError(f"Expected image values in [0, 1], received values in [{low:g}, {high:g}]")
    return images


def fid_features(images, weights=None, *, model=None, weights_dir=None, batch_size=BATCH_SIZE, progress=False):
    """(N, 2048) float64 pool features of the FID Inception network for (N, H, W, 3) float images in [0, 1].

    model: a network from `inception.load_fid_inception` (built from `weights` and `weights_dir` when None).
    """
    from keras_sar2opt.metrics.inception import FEATURES, load_fid_inception

    images = _check_images(images)
    model = model if model is not None else load_fid_inception(weights, weights_dir)
    batches = range(0, len(images), batch_size)
    features = [
        np.asarray(model.predict_on_batch(images[start : start + batch_size]), np.float64)
        for start in tqdm(batches, desc="FID features", unit="batch", disable=not progress)
    ]
    return np.concatenate(features) if features else np.zeros((0, FEATURES))


def feature_statistics(features):
    """Mean and covariance (N - 1 normalisation) of (N, D) features, N >= 2."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise Sar2OptError(
            f"Expected at least 2 images for FID statistics, received features of shape {features.shape}"
        )
    return features.mean(axis=0), np.cov(features, rowvar=False)


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


def fid_of_features(real, fake):
    """FID between two (N, 2048) feature sets."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def fid(real, fake, weights=None, *, weights_dir=None, batch_size=BATCH_SIZE):
    """FID between two sets of (N, H, W, 3) images in [0, 1], on the FID Inception network's features.

    With fewer than 2048 images per set the covariances are singular and FID is biased upwards: compare
    FIDs only at equal set sizes (docs/metrics.md).
    """
    from keras_sar2opt.metrics.inception import load_fid_inception

    model = load_fid_inception(weights, weights_dir)
    real, fake = (fid_features(images, model=model, batch_size=batch_size) for images in (real, fake))
    return fid_of_features(real, fake)


def _polynomial_kernel(x, y):
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x, y):
    """Unbiased MMD² of two equal-size samples under the cubic polynomial kernel (diagonals left out)."""
    m = len(x)
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return within - 2.0 * k_xy.sum() / (m * m)


def kid_of_features(real, fake, *, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=KID_SEED):
    """KID of two (N, D) feature sets: {"mean", "std", "subsets", "subset_size"}.

    Each subset draws `subset_size` rows of `real`, then of `fake`, without replacement, from
    np.random.RandomState(seed), as torch-fidelity does; `subset_size` is lowered to the smaller set's
    size when that has fewer rows (torch-fidelity refuses those), which the result records.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise Sar2OptError(f"Expected at least 2 images per set for KID, received {len(real)} and {len(fake)}")
    rng = np.random.RandomState(seed)
    values = [
        _mmd2_unbiased(
            real[rng.choice(len(real), size, replace=False)], fake[rng.choice(len(fake), size, replace=False)]
        )
        for _ in range(subsets)
    ]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "subsets": subsets, "subset_size": size}


def kid(real, fake, weights=None, *, weights_dir=None, batch_size=BATCH_SIZE, **options):
    """KID between two sets of (N, H, W, 3) images in [0, 1] (options: those of `kid_of_features`)."""
    from keras_sar2opt.metrics.inception import load_fid_inception

    model = load_fid_inception(weights, weights_dir)
    real, fake = (fid_features(images, model=model, batch_size=batch_size) for images in (real, fake))
    return kid_of_features(real, fake, **options)
