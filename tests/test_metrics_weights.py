"""Network metrics in `sar2opt evaluate` and their weights: files read in the upstream layouts, cache,
downloads, and one-line errors for a missing, mis-hashed, truncated or unreachable file."""

import dataclasses
import json
import urllib.error
import urllib.request

import keras
import numpy as np
import pandas as pd
import pytest

from keras_sar2opt import metrics
from keras_sar2opt.cli import main
from keras_sar2opt.data.synthetic import write_synthetic
from keras_sar2opt.downloads import sha256_file
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.metrics.dists_vgg import CHANNELS, vgg16_stages
from keras_sar2opt.metrics.inception import fid_inception
from keras_sar2opt.metrics.lpips_alex import alexnet_features
from keras_sar2opt.metrics.networks import check_names, check_weights
from keras_sar2opt.metrics.weights import WEIGHTS, read_weights, upstream_key

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

SIZE = 32


def _conv_shapes(model, batch_norm=False):
    shapes = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            key = upstream_key(layer)
            if batch_norm:
                shapes[f"{key}.conv.weight"] = (cout, cin, kh, kw)
                shapes.update({f"{key}.bn.{p}": (cout,) for p in ("weight", "bias", "running_mean", "running_var")})
            else:
                shapes.update({f"{key}.weight": (cout, cin, kh, kw), f"{key}.bias": (cout,)})
    return shapes


def _save_random(path, shapes, seed):
    """torch.save of random tensors: weights scaled by fan-in; variances, LPIPS heads and α/β positive."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith(("running_var", "bn.weight", "model.1.weight")) or key in ("alpha", "beta"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif len(shape) == 4:
            state[key] = torch.randn(shape, generator=generator) * (2.0 / np.prod(shape[1:])) ** 0.5
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def weights(module_tmp):
    """{weights key: file} of random weights in each upstream layout, under the upstream file names."""
    folder = module_tmp("weights")
    shapes = {
        "fid_inception": _conv_shapes(fid_inception(), batch_norm=True),
        "alexnet": _conv_shapes(alexnet_features()),
        "lpips_alex": {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))},
        "vgg16": _conv_shapes(vgg16_stages()),
        "dists": {key: (1, sum(CHANNELS), 1, 1) for key in ("alpha", "beta")},
    }
    shapes["fid_inception"]["fc.weight"] = (1008, 2048)  # the upstream file's logits, which FID leaves out
    return {
        key: _save_random(folder / WEIGHTS[key].file, shape, seed) for seed, (key, shape) in enumerate(shapes.items())
    }


@pytest.fixture(scope="module")
def data(module_tmp):
    return write_synthetic(module_tmp("eval") / "qxslab", "qxslab", 30, "qxslab", size=64, seed=0, progress=False)


@pytest.fixture(scope="module")
def model_path(module_tmp):
    sar = keras.Input((SIZE, SIZE, 3), name="sar")
    x = keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(sar)
    path = module_tmp("model") / "tiny.keras"
    keras.Model(sar, x).save(path)
    return path


def _weights_options(weights, keys=WEIGHTS):
    return ["--metric-weights", *(f"{key}={weights[key]}" for key in keys)]


@pytest.mark.slow
def test_evaluate_adds_every_network_metric_from_given_weights(data, model_path, weights, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(model_path), "--data", str(data), "--split", "all", "-o", str(out)]
    argv += ["--limit", "10", "--batch-size", "10"]  # one batch: each network is traced once
    assert main([*argv, "--metrics", "all", *_weights_options(weights)]) == 0
    printed = capsys.readouterr().out
    assert "LPIPS " in printed and "DISTS " in printed and "FID " in printed and "KID " in printed
    summary = json.loads((out / "summary.json").read_text())
    frame = pd.read_csv(out / "per_image.csv")
    assert len(frame) == 10 and {"lpips", "dists", "ssim_sar", "closer_to_sar"} <= set(frame.columns)
    assert summary["metrics"]["lpips"]["mean"] == pytest.approx(frame["lpips"].mean(), rel=1e-9)
    assert summary["fid"] > 0 and summary["fid_note"] is None
    assert summary["kid"]["subsets"] == 100 and summary["kid"]["subset_size"] == 10
    assert "KID: " in (out / "summary.md").read_text()


@pytest.mark.slow
def test_identical_images_are_at_distance_zero(weights):
    images = np.random.default_rng(0).random((2, 48, 48, 3)).astype(np.float32)
    other = images[::-1].copy()
    lpips_weights = {key: weights[key] for key in ("alexnet", "lpips_alex")}
    dists_weights = {key: weights[key] for key in ("vgg16", "dists")}
    np.testing.assert_allclose(metrics.lpips(images, images, lpips_weights), 0.0, atol=1e-6)
    np.testing.assert_allclose(metrics.dists(images, images, dists_weights), 0.0, atol=1e-5)
    assert (metrics.lpips(images, other, lpips_weights) > 1e-4).all()
    assert metrics.fid(images, images, weights["fid_inception"]) == pytest.approx(0.0, abs=1e-3)


def test_weights_are_downloaded_once_into_the_cache_and_checked(weights, tmp_path, monkeypatch, capsys):
    source = weights["dists"]  # served from a file:// URL, as if it were DISTS's published file
    published = dataclasses.replace(WEIGHTS["dists"], url=source.as_uri(), sha256=sha256_file(source))
    monkeypatch.setitem(WEIGHTS, "dists", published)
    cache = tmp_path / "cache"
    state, path = read_weights("dists", weights_dir=cache, progress=False)
    assert path == cache / "dists-weights.pt" and path.read_bytes() == source.read_bytes()
    assert set(state) == {"alpha", "beta"} and f"from {source.as_uri()} into {cache}" in capsys.readouterr().out
    with monkeypatch.context() as offline:
        offline.setattr(urllib.request, "urlopen", _offline)
        assert read_weights("dists", weights_dir=cache)[1] == path  # later uses open no connection
    monkeypatch.setitem(WEIGHTS, "dists", dataclasses.replace(published, sha256="0" * 64))
    with pytest.raises(Sar2OptError, match=f"Expected {source.as_uri()} to have SHA-256 0{{64}}, received .*removed"):
        read_weights("dists", weights_dir=tmp_path / "other", progress=False)
    assert list((tmp_path / "other").iterdir()) == []


def _offline(*args, **kwargs):
    raise urllib.error.URLError("Temporary failure in name resolution")


def test_weights_errors_are_one_line_naming_the_file_or_url(
    data, model_path, weights, tmp_path, cli_error, monkeypatch
):
    argv = ["evaluate", "--model", str(model_path), "--data", str(data), "-o", str(tmp_path / "out")]
    missing = tmp_path / "pt_inception.pth"
    line = cli_error([*argv, "--metrics", "fid", "--metric-weights", f"fid_inception={missing}"])
    assert line.endswith(
        f"Expected the FID Inception (the 2015 TensorFlow graph) weights file "
        f"(pt_inception-2015-12-05-6726825d.pth), received {missing}"
    )

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(weights["vgg16"].read_bytes()[:5000])
    line = cli_error(
        [*argv, "--metrics", "dists", "--metric-weights", f"vgg16={truncated}", f"dists={weights['dists']}"]
    )
    assert "truncated or corrupt file" in line and str(truncated) in line

    line = cli_error(
        [
            *argv,
            "--metrics",
            "lpips",
            "--metric-weights",
            f"alexnet={weights['vgg16']}",
            f"lpips_alex={weights['lpips_alex']}",
        ]
    )
    assert f"Expected the upstream layout in {weights['vgg16']}, received missing: features.3.bias" in line

    cache = tmp_path / "cache"
    cache.mkdir()
    wrong = cache / WEIGHTS["fid_inception"].file
    wrong.write_bytes(weights["fid_inception"].read_bytes())  # not pytorch-fid's file: its hash differs
    line = cli_error([*argv, "--metrics", "kid", "--weights-dir", str(cache)])
    assert f"Expected {wrong} to have SHA-256 6726825d…" in line and "delete it to download it again" in line

    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    line = cli_error([*argv, "--metrics", "lpips", "--weights-dir", str(cache)])
    assert line.endswith(
        f"Expected to download {WEIGHTS['alexnet'].url}, received Temporary failure in name resolution; without "
        f"access to it, download the file elsewhere and put it at {cache / 'alexnet-owt-7be5be79.pth'}"
    )
    assert not (tmp_path / "out").exists()  # every check comes before the translation


def test_bad_metric_names_and_options(tmp_path):
    with pytest.raises(Sar2OptError, match="Expected --metrics among lpips, dists, fid, kid or all, received psnr2"):
        check_names(["fid", "psnr2"])
    with pytest.raises(Sar2OptError, match="Expected --metric-weights keys among"):
        check_weights({"inception": "x.pth"})
    assert check_names("all") == ("lpips", "dists", "fid", "kid")
