"""Shared test setup: quiet TensorFlow logs, seed every test, share the pre-training of the fine-tuning tests."""

import contextlib
import io
import os
import shutil
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

# The session's pre-training (finetune.pretrain_generator): Pix2Pix on synthetic sentinel pairs, 2 epochs of 2 steps.
PIX2PIX_PRETRAINING = {
    "image_size": 256,
    "batch_size": 2,
    "pairs": 20,
    "epochs": 2,
    "steps_per_epoch": 2,
    "precision": "float32",
    "seed": 0,
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under `pytest -n N` (pytest-xdist, `--dist loadgroup` in setup.cfg), the tests of a module that share one of
    its module- or session-scoped fixtures run on one worker, so that the fixture is built once; other tests go
    to whichever worker is free, the slow ones first so that quick ones fill the end. An explicit `xdist_group`
    mark takes precedence."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None and _uses_a_shared_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    if hasattr(config, "workerinput"):  # on an xdist worker; a run in one process keeps the file order
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _uses_a_shared_fixture(item):
    """Whether the test function `item` uses a fixture of this suite (not a plugin's) scoped wider than one test."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(defs[-1].scope != "function" and defs[-1].baseid for defs in definitions)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def cli_error(capsys):
    """Run `sar2opt ARGV`, expect exit status 1, and return the one error line it ends with.

    Progress bars may precede the line; no other line may be an error, and no traceback is printed.
    """
    from keras_sar2opt.cli import main

    def run(argv):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert [line for line in lines if "error:" in line] == lines[-1:], lines
        return lines[-1]

    return run


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request):
    """`module_tmp(name)`: tmp_path_factory.mktemp for a test module's shared fixtures. The folders go when the
    module's tests are done, unless one failed: Pix2Pix runs and checkpoints take hundreds of MB each."""
    root = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    failed = request.session.testsfailed

    def make(name):
        path = root / name
        path.mkdir()
        return path

    yield make
    if request.session.testsfailed == failed:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pretrained_pix2pix(tmp_path_factory):
    """A fine-tuning cache (`--cache`) holding one Pix2Pix pre-trained with PIX2PIX_PRETRAINING.

    Attributes: cache, generator (its generator.keras), settings, printed (what the pre-training printed).
    Its users share the xdist group "pix2pix", so that it is built once. Read-only.
    """
    from keras_sar2opt import finetune

    cache = tmp_path_factory.mktemp("pix2pix-cache")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        generator = finetune.pretrain_generator(cache, strategy="none", verbose=0, **PIX2PIX_PRETRAINING)
    return SimpleNamespace(
        cache=cache,
        generator=generator,
        settings=PIX2PIX_PRETRAINING,
        printed=printed.getvalue(),
    )


@pytest.fixture(scope="session")
def torch_pix2pix():
    """`build(network="generator", seed=0, **options)`: a SAR2Optical PyTorch network of
    keras_sar2opt.convert.torch_reference with seeded random weights, non-trivial BatchNorm affine
    parameters and running statistics, in eval mode (dropout off, running statistics used)."""
    torch = pytest.importorskip("torch")
    from keras_sar2opt.convert import torch_reference

    def build(network="generator", seed=0, **options):
        torch.manual_seed(seed)
        module = getattr(torch_reference, f"pix2pix_{network}")(**options)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in module.modules():
                if isinstance(layer, torch.nn.BatchNorm2d):
                    layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) + 0.5)
                    layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator) * 0.4 - 0.2)
                    layer.running_mean.copy_(torch.rand(layer.running_mean.shape, generator=generator) - 0.5)
                    layer.running_var.copy_(torch.rand(layer.running_var.shape, generator=generator) * 1.5 + 0.5)
                    layer.num_batches_tracked.fill_(180)
        return module.eval()

    return build


@pytest.fixture(scope="session")
def sar2optical_generator(tmp_path_factory, torch_pix2pix):
    """A random transposed-decoder SAR2Optical generator saved as the published checkpoints are (a bare
    state_dict): (path, PyTorch module). Read-only."""
    import torch

    module = torch_pix2pix("generator", seed=1)
    path = tmp_path_factory.mktemp("sar2optical") / "pix2pix_gen_180.pth"
    torch.save(module.state_dict(), path)
    return path, module
