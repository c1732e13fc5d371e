"""The network metrics of an evaluation (LPIPS and DISTS per image, FID and KID per set), gathered batch by batch."""

import numpy as np

from keras_sar2opt.errors import Sar2OptError

# metric -> the weights files it reads (metrics.weights.WEIGHTS keys)
NETWORK_METRICS = {
    "lpips": ("alexnet", "lpips_alex"),
    "dists": ("vgg16", "dists"),
    "fid": ("fid_inception",),
    "kid": ("fid_inception",),
}
PER_IMAGE = ("lpips", "dists")


def check_names(names):
    """The network metrics `names` (an iterable, or "all"), in NETWORK_METRICS order; Sar2OptError naming --metrics."""
    names = list(NETWORK_METRICS) if names == "all" or names == ["all"] else list(names or ())
    unknown = [name for name in names if name not in NETWORK_METRICS]
    if unknown:
        raise Sar2OptError(
            f"Expected --metrics among {', '.join(NETWORK_METRICS)} or all, received {', '.join(unknown)}"
        )
    return tuple(name for name in NETWORK_METRICS if name in names)


def check_weights(weights):
    """{weights key: path} given by hand (`--metric-weights KEY=FILE`); Sar2OptError for an unknown key."""
    from keras_sar2opt.metrics.weights import WEIGHTS

    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(WEIGHTS))
    if unknown:
        raise Sar2OptError(f"Expected --metric-weights keys among {', '.join(WEIGHTS)}, received {', '.join(unknown)}")
    return weights


class NetworkMetrics:
    """The chosen network metrics of generated images against their targets.

    Every network is loaded (and its weights downloaded) when this is made, before any image is
    translated. `add` takes batches in [0, 1] and returns the per-image values; `per_set` the FID and KID.
    """

    def __init__(self, names, weights=None, weights_dir=None, progress=True):
        from keras_sar2opt.metrics.dists_vgg import load_dists
        from keras_sar2opt.metrics.inception import load_fid_inception
        from keras_sar2opt.metrics.lpips_alex import load_lpips_alex

        self.names = check_names(names)
        weights = check_weights(weights)
        loaders = {"lpips": load_lpips_alex, "dists": load_dists}
        self.models = {
            name: loaders[name](
                {key: weights[key] for key in NETWORK_METRICS[name] if key in weights}, weights_dir, progress
            )
            for name in self.names
            if name in loaders
        }
        wants_features = any(name in self.names for name in ("fid", "kid"))
        self.inception = (
            load_fid_inception(weights.get("fid_inception"), weights_dir, progress) if wants_features else None
        )
        self.features = {"real": [], "fake": []}

    def add(self, generated, target):
        """{metric: (B,) values} of the per-image metrics for a batch; the features are kept for `per_set`."""
        from keras_sar2opt.metrics.fid import fid_features
        from keras_sar2opt.metrics.perceptual import dists, lpips

        functions = {"lpips": lpips, "dists": dists}
        values = {name: functions[name](generated, target, model=model) for name, model in self.models.items()}
        if self.inception is not None:
            self.features["real"].append(fid_features(target, model=self.inception))
            self.features["fake"].append(fid_features(generated, model=self.inception))
        return values

    def per_set(self):
        """{"fid": float, "kid": {"mean", "std", "subsets", "subset_size"}} for the chosen ones."""
        from keras_sar2opt.metrics.fid import fid_of_features, kid_of_features

        if self.inception is None:
            return {}
        real, fake = (np.concatenate(self.features[side]) for side in ("real", "fake"))
        results = {"fid": fid_of_features(real, fake)} if "fid" in self.names else {}
        if "kid" in self.names:
            results["kid"] = kid_of_features(real, fake)
        return results
