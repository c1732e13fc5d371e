"""FID features, FID, KID, LPIPS and DISTS equal the reference implementations' on the same images and weights.

The reference side (tests/metrics_reference.py) runs in the reference environment (`make reference-env`:
pytorch-fid, torch-fidelity, lpips and DISTS_pytorch beside the torchvision they need), writes random
weights in the upstream layouts with torch.save and computes with the reference packages; this side reads
those files through the package's torch-free reader. Nothing is downloaded.
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from keras_sar2opt import metrics
from keras_sar2opt.downloads import sha256_file
from keras_sar2opt.metrics.fid import fid_of_features, kid_of_features
from keras_sar2opt.metrics.weights import WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_PYTHON = Path(os.environ.get("SAR2OPT_REFERENCE_PYTHON", ROOT / ".venv-reference" / "bin" / "python"))
SET_SIZE = 64
KID = {"kid_subsets": 50, "kid_subset_size": 32, "rng_seed": 2020}

pytestmark = [pytest.mark.reference, pytest.mark.slow]


def smooth_images(rng, count, size):
    """Images in [0, 1] with structure at several scales, different from one another."""
    coarse = rng.random((count, 8, 8, 3))
    fine = rng.random((count, size // 4, size // 4, 3))
    grid = np.linspace(0, 7.999, size).astype(int)
    fine_grid = np.minimum(np.arange(size) // 4, size // 4 - 1)
    images = 0.7 * coarse[:, grid][:, :, grid] + 0.3 * fine[:, fine_grid][:, :, fine_grid]
    return (images ** rng.uniform(0.5, 2.0, (count, 1, 1, 1))).astype(np.float32)


@pytest.fixture(scope="module")
def reference(module_tmp):
    if not REFERENCE_PYTHON.is_file():
        pytest.skip(f"no reference environment at {REFERENCE_PYTHON} (make reference-env builds it)")
    folder = module_tmp("reference")
    rng = np.random.default_rng(0)
    inputs = {
        "real_256": smooth_images(rng, SET_SIZE, 256),  # resized to 299 by both sides
        "fake_299": smooth_images(rng, SET_SIZE, 299),
        "pred": smooth_images(rng, 4, 64),
        "target": smooth_images(rng, 4, 64),
    }
    for name, images in inputs.items():
        np.save(folder / f"{name}.npy", images)
    job = {"fid_images": ["real_256", "fake_299"], "kid": KID, "pairs": ["pred", "target"]}
    (folder / "job.json").write_text(json.dumps(job))
    script = Path(__file__).with_name("metrics_reference.py")
    result = subprocess.run(
        [str(REFERENCE_PYTHON), str(script), str(folder)], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text())
    features = {name: np.load(folder / f"reference_features_{name}.npy") for name in job["fid_images"]}
    return {"inputs": inputs, "results": results, "features": features, "weights": results["weights"]}


@pytest.fixture(scope="module")
def keras_features(reference):
    from keras_sar2opt.metrics.inception import load_fid_inception

    model = load_fid_inception(reference["weights"]["fid_inception"], progress=False)
    return {name: metrics.fid_features(reference["inputs"][name], model=model) for name in reference["features"]}


@pytest.mark.parametrize("name", ["fake_299", "real_256"])
def test_fid_features_equal_pytorch_fid(reference, keras_features, name):
    expected = reference["features"][name]
    assert keras_features[name].shape == expected.shape == (SET_SIZE, 2048)
    assert expected.std(axis=0).mean() > 0.01  # the random network tells the images apart
    np.testing.assert_allclose(keras_features[name], expected, rtol=0, atol=1e-3)


def test_fid_equals_pytorch_fid_calculate_frechet_distance(reference, keras_features):
    ours = fid_of_features(keras_features["real_256"], keras_features["fake_299"])
    assert ours > 1.0
    assert ours == pytest.approx(reference["results"]["fid"], rel=1e-3)


def test_kid_equals_torch_fidelity_with_the_same_subset_seed(reference):
    features = reference["features"]
    ours = kid_of_features(
        features["real_256"],
        features["fake_299"],
        subsets=KID["kid_subsets"],
        subset_size=KID["kid_subset_size"],
        seed=KID["rng_seed"],
    )
    assert ours["mean"] > 1e-3
    assert ours["mean"] == pytest.approx(reference["results"]["kid"]["mean"], abs=1e-4)
    assert ours["std"] == pytest.approx(reference["results"]["kid"]["std"], abs=1e-4)


@pytest.mark.parametrize(
    "metric, keys", [("lpips", ("alexnet", "lpips_alex")), ("dists", ("vgg16", "dists"))], ids=["lpips", "dists"]
)
def test_lpips_and_dists_equal_their_packages_per_image(reference, metric, keys):
    weights = {key: reference["weights"][key] for key in keys}
    ours = getattr(metrics, metric)(reference["inputs"]["pred"], reference["inputs"]["target"], weights)
    expected = np.asarray(reference["results"][metric])
    assert ours.shape == (4,) and expected.min() > 1e-3
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


def test_pinned_hashes_are_those_of_the_files_the_reference_packages_ship(reference):
    for key in ("lpips_alex", "dists"):
        assert sha256_file(reference["weights"][key]) == WEIGHTS[key].sha256
