"""Image-quality metrics of translated images (§3–§4 evaluation), each comparable with its reference
implementation (docs/metrics.md).

Per image: PSNR, SSIM, MAE, RMSE, SAM (`image`), LPIPS (`lpips`), DISTS (`dists`). Per set: FID and
KID on the FID Inception network's features (`fid`). The network metrics read the reference
implementations' own weights, downloaded once into a cache (`weights`).
"""

from keras_sar2opt.metrics.fid import feature_statistics, fid, fid_features, frechet_distance, kid
from keras_sar2opt.metrics.image import METRICS, compute_all, mae, psnr, rmse, sam, ssim, to_unit
from keras_sar2opt.metrics.perceptual import dists, lpips

__all__ = [
    "METRICS",
    "compute_all",
    "dists",
    "feature_statistics",
    "fid",
    "fid_features",
    "frechet_distance",
    "kid",
    "lpips",
    "mae",
    "psnr",
    "rmse",
    "sam",
    "ssim",
    "to_unit",
]
