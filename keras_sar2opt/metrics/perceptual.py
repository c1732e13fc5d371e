"""LPIPS and DISTS per image pair, on the networks of `lpips_alex` and `dists_vgg` (docs/metrics.md)."""

import numpy as np

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.metrics.image import pair_in_unit

BATCH_SIZE = 16


def _unit_pairs(pred, target, value_range):
    pred, target = (np.asarray(images, np.float32) for images in pair_in_unit(pred, target, value_range))
    if pred.shape[-1] != 3:
        raise Sar2OptError(f"Expected 3-channel (RGB) images, received {pred.shape[-1]} channels")
    return pred, target


def _per_pair(model, pred, target, batch_size):
    values = [
        np.asarray(model.predict_on_batch([pred[i : i + batch_size], target[i : i + batch_size]]), np.float64)
        for i in range(0, len(pred), batch_size)
    ]
    return np.concatenate(values).reshape(-1) if values else np.zeros(0)


def lpips(pred, target, weights=None, *, value_range=(0.0, 1.0), model=None, weights_dir=None, batch_size=BATCH_SIZE):
    """LPIPS (AlexNet, v0.1) of each pair of two (N, H, W, 3) batches with values in `value_range`:
    (N,) NumPy. The network sees them in [-1, 1], as lpips.LPIPS does without normalize=True.

    model: a network from `lpips_alex.load_lpips_alex` (built from `weights`, `weights_dir` when None).
    """
    from keras_sar2opt.metrics.lpips_alex import load_lpips_alex

    pred, target = _unit_pairs(pred, target, value_range)
    model = model if model is not None else load_lpips_alex(weights, weights_dir)
    return _per_pair(model, 2.0 * pred - 1.0, 2.0 * target - 1.0, batch_size)


def dists(pred, target, weights=None, *, value_range=(0.0, 1.0), model=None, weights_dir=None, batch_size=BATCH_SIZE):
    """DISTS of each pair of two (N, H, W, 3) batches with values in `value_range`: (N,) NumPy. The
    network sees them in [0, 1], as DISTS_pytorch does.

    model: a network from `dists_vgg.load_dists` (built from `weights`, `weights_dir` when None).
    """
    from keras_sar2opt.metrics.dists_vgg import load_dists

    pred, target = _unit_pairs(pred, target, value_range)
    model = model if model is not None else load_dists(weights, weights_dir)
    return _per_pair(model, pred, target, batch_size)
