"""Presets: SAR2Optical checkpoints by name, served over loopback HTTP, downloaded, verified, converted and cached."""

import dataclasses
import http.server
import json
import re
import threading

import numpy as np
import pytest
from PIL import Image

from benchmarks.multiworker import free_ports
from keras_sar2opt import downloads, finetune, presets
from keras_sar2opt.cli import main
from keras_sar2opt.convert import torch_reference
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import get_experiment

pytestmark = pytest.mark.torch

GENERATOR, DISCRIMINATOR = "sar2optical_gen_180", "sar2optical_disc_180"
GENERATOR_FILE, DISCRIMINATOR_FILE = "pix2pix_gen_180.pth", "pix2pix_disc_180.pth"
CUT = 1_000_000  # bytes a truncated transfer delivers
TOLERANCE = 1e-4


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET of a file in `server.root`, honouring `Range: bytes=N-`; a file named in `server.cut` has its
    next response cut after CUT bytes. Every request is logged as (path, Range header)."""

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        path = server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match[1]) if match else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        remaining = CUT if path.name in server.cut else size - start
        server.cut.discard(path.name)
        with open(path, "rb") as stream:
            stream.seek(start)
            while remaining > 0:
                chunk = stream.read(min(1 << 20, remaining))
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests, httpd.cut, httpd.root = [], set(), None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def checkpoints(module_tmp, torch_pix2pix):
    """The served folder: a random SAR2Optical generator and discriminator saved as the hub's files,
    with the generator's PyTorch module for parity."""
    import torch

    root = module_tmp("hub")
    module = torch_pix2pix("generator", seed=1)
    torch.save(module.state_dict(), root / GENERATOR_FILE)
    torch.save(torch_pix2pix("discriminator", seed=2).state_dict(), root / DISCRIMINATOR_FILE)
    return root, module


@pytest.fixture
def hub(server, checkpoints, monkeypatch):
    """The served checkpoints as the presets' source: the generator's hash pinned, the discriminator's not."""
    root, _ = checkpoints
    server.root = root
    server.requests.clear()
    server.cut.clear()
    monkeypatch.setenv(presets.BASE_URL_VARIABLE, f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    pinned = downloads.sha256_file(root / GENERATOR_FILE)
    monkeypatch.setitem(presets.PRESETS, GENERATOR, dataclasses.replace(presets.PRESETS[GENERATOR], sha256=pinned))
    monkeypatch.setitem(
        presets.PRESETS, DISCRIMINATOR, dataclasses.replace(presets.PRESETS[DISCRIMINATOR], sha256=None)
    )
    return server


@pytest.fixture(scope="module")
def generator_cache(module_tmp):
    """One --weights-dir for the generator preset, so that it is downloaded and converted once."""
    return module_tmp("weights")


@pytest.fixture
def sar_png(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    return path


def test_translate_downloads_converts_then_uses_the_cache(hub, generator_cache, sar_png, tmp_path, capsys):
    argv = ["translate", "--model", f"preset:{GENERATOR}", "--weights-dir", str(generator_cache), str(sar_png)]
    assert main([*argv, "-o", str(tmp_path / "first")]) == 0
    assert hub.requests == [(f"/{GENERATOR_FILE}", None)]
    out = capsys.readouterr().out
    assert "verified by the pinned SHA-256" in out and presets.PRESETS[GENERATOR].sha256 in out
    record = json.loads((generator_cache / "pix2pix_gen_180.json").read_text())
    assert record["sha256"] == presets.PRESETS[GENERATOR].sha256 and record["verified"] == "pinned sha256"
    assert len(list(generator_cache.glob("pix2pix_gen_180.*.keras"))) == 1
    assert not list(generator_cache.glob("*.part"))
    first = np.asarray(Image.open(tmp_path / "first" / "scene.png"))
    assert first.shape == (64, 64, 3)

    hub.requests.clear()
    assert main([*argv, "-o", str(tmp_path / "second")]) == 0
    assert hub.requests == []
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "second" / "scene.png")), first)
    assert main(["presets", "--weights-dir", str(generator_cache)]) == 0
    listing = capsys.readouterr().out
    assert re.search(rf"^{GENERATOR} .* converted ", listing, re.MULTILINE)
    assert re.search(rf"^{DISCRIMINATOR} .* no ", listing, re.MULTILINE)
    assert hub.requests == []


def test_converted_preset_matches_pytorch(hub, checkpoints, generator_cache):
    import torch

    _, module = checkpoints
    x = np.random.default_rng(0).uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    assert expected.std() > 0.02  # a saturated or constant output would prove nothing
    model = presets.load(GENERATOR, weights_dir=generator_cache)
    assert np.abs(np.asarray(model(x, training=False)) - expected).max() <= TOLERANCE


@pytest.mark.parametrize("interruption", ["dropped connection", "partial file"])
def test_truncated_download_resumes(interruption, hub, checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    cache = tmp_path / "keras_home" / "keras_sar2opt" / "presets"
    served = checkpoints[0] / DISCRIMINATOR_FILE
    if interruption == "dropped connection":
        hub.cut.add(DISCRIMINATOR_FILE)
    else:
        cache.mkdir(parents=True)
        (cache / f"{DISCRIMINATOR_FILE}.part").write_bytes(served.read_bytes()[:CUT])
    model = presets.load(DISCRIMINATOR)
    assert [tuple(t.shape) for t in model.inputs] == [(None, 256, 256, 3)] * 2
    ranges = [header for _, header in hub.requests]
    assert ranges == ([None] if interruption == "dropped connection" else []) + [f"bytes={CUT}-"]
    assert (cache / DISCRIMINATOR_FILE).read_bytes() == served.read_bytes()
    assert not (cache / f"{DISCRIMINATOR_FILE}.part").exists()
    record = json.loads((cache / "pix2pix_disc_180.json").read_text())
    assert record["sha256"] == downloads.sha256_file(served) and record["verified"] == "key schema and shapes"
    assert "no pinned SHA-256; hash recorded" in capsys.readouterr().out


def _bad_discriminator(tmp_path, problem):
    """A served pix2pix_disc_180.pth with a renamed key, a wrong shape, or (for "hash") intact."""
    import torch

    state = torch_reference.pix2pix_discriminator().state_dict()
    if problem == "keys":
        state["model.model.9.weight"] = state.pop("model.model.4.weight")
    elif problem == "shapes":
        state["model.model.2.conv_block.0.weight"] = torch.zeros(256, 128, 3, 3)
    root = tmp_path / "hub"
    root.mkdir()
    torch.save(state, root / DISCRIMINATOR_FILE)
    return root


@pytest.mark.parametrize(
    "problem, message",
    [
        ("keys", "1 missing keys: model.model.4.weight; 1 unexpected keys: model.model.9.weight"),
        ("shapes", "1 shape mismatches: model.model.2.conv_block.0.weight (256, 128, 3, 3)"),
        ("hash", f"to have SHA-256 {'0' * 64} ({DISCRIMINATOR}), received "),
    ],
)
def test_wrong_files_are_refused_in_one_line_and_not_cached(problem, message, hub, tmp_path, monkeypatch):
    hub.root = _bad_discriminator(tmp_path, problem)
    if problem == "hash":
        preset = dataclasses.replace(presets.PRESETS[DISCRIMINATOR], sha256="0" * 64)
        monkeypatch.setitem(presets.PRESETS, DISCRIMINATOR, preset)
    cache = tmp_path / "weights"
    with pytest.raises(Sar2OptError) as error:
        presets.load(DISCRIMINATOR, weights_dir=cache)
    assert "\n" not in str(error.value) and message in str(error.value)
    assert str(cache / DISCRIMINATOR_FILE) in str(error.value)
    assert list(cache.iterdir()) == []
    assert presets.cached(DISCRIMINATOR, cache) == "no"


def test_unreachable_host_gives_the_offline_one_liner(sar_png, tmp_path, monkeypatch, cli_error):
    (port,) = free_ports(1)  # a loopback port with nothing listening
    monkeypatch.setenv(presets.BASE_URL_VARIABLE, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    cache = tmp_path / "weights"
    argv = [
        "translate",
        "--model",
        f"preset:{GENERATOR}",
        "--weights-dir",
        str(cache),
        str(sar_png),
        "-o",
        str(tmp_path / "out"),
    ]
    line = cli_error(argv)
    assert line.startswith(f"sar2opt translate: error: Expected to download http://127.0.0.1:{port}/{GENERATOR_FILE}")
    assert line.endswith(f"download the file elsewhere and put it at {cache / GENERATOR_FILE}")
    assert not (cache / GENERATOR_FILE).exists()


def test_fine_tuning_takes_presets_at_its_image_size(hub, tmp_path):
    cache = tmp_path / "weights"
    network = finetune.load_network(f"preset:{DISCRIMINATOR}", "discriminator", 256, cache)
    smaller = finetune.load_network(f"preset:{DISCRIMINATOR}", "discriminator", 128, cache)
    assert [tuple(t.shape) for t in smaller.inputs] == [(None, 128, 128, 3)] * 2
    for big, small in zip(network.get_weights(), smaller.get_weights()):
        np.testing.assert_array_equal(big, small)
    assert len(hub.requests) == 1
    config = get_experiment("finetune-full")
    finetune.check_finetune_options(config, f"preset:{GENERATOR}", f"preset:{DISCRIMINATOR}", None, None)
    assert len(hub.requests) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["translate", "--model", "preset:nope", "in.png", "-o", "out"],
            f"Expected a preset among {', '.join(presets.PRESETS)} (sar2opt presets), received 'nope'",
        ),
        (
            ["translate", "--model", f"preset:{DISCRIMINATOR}", "in.png", "-o", "out"],
            f"Expected a generator preset (sar2optical_gen_180, sar2optical_gen_265, sar2optical_gen_295), "
            f"received preset:{DISCRIMINATOR}, a discriminator",
        ),
        (
            ["train", "--experiment", "finetune-full", "--generator", f"preset:{DISCRIMINATOR}"],
            "Expected --generator to name a generator (",
        ),
        (
            ["train", "--experiment", "pix2pix", "--weights-dir", "w"],
            "Expected --weights-dir only with --experiment finetune-full or finetune-lora",
        ),
    ],
)
def test_preset_names_are_checked_in_one_line(argv, message, tmp_path, monkeypatch, cli_error):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "in.png")
    assert message in cli_error(argv)
    assert not (tmp_path / "runs").exists()


def test_listing_and_importing_download_nothing(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("a connection was opened")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", refuse)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for preset in presets.PRESETS.values():
        assert re.search(rf"^{preset.name} +{preset.network} .* no +{re.escape(preset.url)}$", out, re.MULTILINE)
    assert f"cache: {tmp_path / 'keras_sar2opt' / 'presets'}" in out
    assert not (tmp_path / "keras_sar2opt").exists()
