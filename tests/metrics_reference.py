"""The reference side of tests/test_metrics_reference.py, run by the reference environment's Python
(`make reference-env`: torch, torchvision, pytorch-fid, torch-fidelity, lpips, DISTS_pytorch).

`python tests/metrics_reference.py FOLDER` writes random weights in the upstream layouts into FOLDER
(with torch.save), then computes with the reference packages what FOLDER/job.json asks, from FOLDER's
.npy inputs (benchmarks/fid_speed.py times its FID features):
FID features (pytorch_fid.inception.InceptionV3([3])), Fréchet distance (pytorch_fid's
calculate_frechet_distance), KID (torch_fidelity's kid_features_to_metric), LPIPS (lpips.LPIPS(net='alex'))
and DISTS (DISTS_pytorch.DISTS()). Every URL loader of those packages is replaced by one that serves the
random weights, and any other URL fails: nothing is downloaded. The lpips v0.1 heads and DISTS's α/β are
the files these packages ship.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch


def declare_torchvision_ops():
    """Lets torchvision import beside torch's CPU build, as the reference environment installs it.

    torchvision's PyPI wheels are built against torch's CUDA build; beside the CPU build their C++ ops fail to
    load, and torchvision 0.28 then fails at import while registering fake kernels for `nms` and `qnms`.
    The networks compared here use none of its ops, so declaring those two schemas is enough.
    """
    package = Path(importlib.util.find_spec("torchvision").submodule_search_locations[0])
    try:
        torch.ops.load_library(next(package.glob("_C*.so")))
    except (OSError, StopIteration):
        for op in ("nms", "qnms"):
            torch.library.define(f"torchvision::{op}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


declare_torchvision_ops()

FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


def random_state(shapes, seed):
    """Random values for each (key, tensor) of a state_dict, scaled so that activations neither vanish nor explode."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in shapes.items():
        shape = tensor.shape
        if key.endswith("num_batches_tracked"):
            state[key] = tensor.clone()
        elif key.endswith("running_var") or (key.endswith(".bn.weight")):
            state[key] = 0.8 + 0.4 * torch.rand(shape, generator=generator)
        elif tensor.dim() >= 2:
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=generator) * np.sqrt(2.0 / fan_in)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


def serving(files):
    """A stand-in for load_state_dict_from_url that serves the saved files by URL and refuses any other."""

    def load(url, *args, **kwargs):
        if url not in files:
            raise RuntimeError(f"the reference tried to download {url}")
        return torch.load(files[url], map_location="cpu")

    return load


def write_weights(folder):
    import torchvision
    from pytorch_fid import inception

    captured = {}
    with (
        mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: {}),
        mock.patch.object(torch.nn.Module, "load_state_dict", lambda self, *a, **k: captured.update(model=self)),
    ):
        inception.fid_inception_v3()
    paths = {"fid_inception": folder / FID_FILE}
    torch.save(random_state(captured["model"].state_dict(), 1), paths["fid_inception"])
    for key, network, seed in (("alexnet", torchvision.models.alexnet, 2), ("vgg16", torchvision.models.vgg16, 3)):
        paths[key] = folder / Path({"alexnet": ALEXNET_URL, "vgg16": VGG16_URL}[key]).name
        torch.save(random_state(network().state_dict(), seed), paths[key])
    return paths


def fid_features(images, weights, batch_size=16):
    """pytorch-fid's features of (N, H, W, 3) images (float in [0, 1], or uint8 divided by 255), and the
    seconds they took after one warm-up batch."""
    import time

    from pytorch_fid import inception

    with mock.patch.object(inception, "load_state_dict_from_url", serving({inception.FID_WEIGHTS_URL: weights})):
        model = inception.InceptionV3([3]).eval()

    def run(batch):
        batch = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
        return model(batch.float() / 255 if batch.dtype == torch.uint8 else batch)[0].flatten(1)

    with torch.no_grad():
        run(images[:batch_size])
        start = time.perf_counter()
        features = torch.cat([run(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    return features.numpy(), time.perf_counter() - start


def main(folder):
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torch_fidelity.metric_kid import kid_features_to_metric

    torch.set_num_threads(int(os.environ.get("REFERENCE_THREADS", "2")))
    folder = Path(folder)
    job = json.loads((folder / "job.json").read_text())
    paths = write_weights(folder)
    results = {"weights": {key: str(path) for key, path in paths.items()}}
    features, results["seconds"] = {}, {}
    for name in job["fid_images"]:
        images = np.load(folder / f"{name}.npy")
        features[name], results["seconds"][name] = fid_features(
            images, paths["fid_inception"], job.get("batch_size", 16)
        )
        np.save(folder / f"reference_features_{name}.npy", features[name])
    if "kid" in job:
        real, fake = (features[name] for name in job["fid_images"])
        statistics = [(f.mean(axis=0), np.cov(f, rowvar=False)) for f in (real, fake)]
        results["fid"] = float(calculate_frechet_distance(*statistics[0], *statistics[1]))
        kid = kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake), verbose=False, **job["kid"])
        results["kid"] = {"mean": kid["kernel_inception_distance_mean"], "std": kid["kernel_inception_distance_std"]}
    if "pairs" in job:
        values, shipped = perceptual(folder, job["pairs"], paths)
        results.update(values)
        results["weights"].update(shipped)
    (folder / "results.json").write_text(json.dumps(results, indent=2))


def perceptual(folder, pairs, paths):
    """({"lpips", "dists"} of the image pairs in the .npy files `pairs`, {key: the shipped weights files read})."""
    import DISTS_pytorch
    import lpips
    import torchvision

    loader = serving({ALEXNET_URL: paths["alexnet"], VGG16_URL: paths["vgg16"]})
    pred, target = (torch.from_numpy(np.load(folder / f"{name}.npy")).permute(0, 3, 1, 2) for name in pairs)
    with mock.patch.object(torchvision.models._api, "load_state_dict_from_url", loader):
        lpips_model = lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()
        dists_model = DISTS_pytorch.DISTS().eval()
    shipped = {
        "lpips_alex": str(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"),
        "dists": os.path.join(sys.prefix, "weights.pt"),  # where DISTS() reads it
    }
    with torch.no_grad():
        values = {
            "lpips": lpips_model(2 * pred - 1, 2 * target - 1).flatten().tolist(),
            "dists": dists_model(pred, target).flatten().tolist(),
        }
    return values, shipped


if __name__ == "__main__":
    main(sys.argv[1])
