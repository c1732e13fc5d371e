"""The torch-free checkpoint reader: formats, dtypes, views, wrappers, and refusal of code and damage."""

import collections
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from keras_sar2opt.convert.pth_reader import EMA_KEYS, STATE_DICT_KEYS, read_checkpoint, read_state_dict
from keras_sar2opt.errors import Sar2OptError


class _Exploit:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _torch_tensors():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    base = torch.randn(6, 8)
    return collections.OrderedDict(
        [
            ("float32", torch.randn(2, 3, 4, 4)),
            ("float16", torch.randn(5, 3).half()),
            ("bfloat16", torch.randn(7).bfloat16()),
            ("int64", torch.arange(12).reshape(3, 4)),
            ("bool", torch.tensor([True, False, True])),
            ("float64", torch.randn(3).double()),
            ("scalar", torch.tensor(17)),
            ("transposed", base.t()),  # non-contiguous view
            ("strided", base[1:5, ::3]),  # storage offset and strides
            ("shared", base[2]),  # shares base's storage with the views above
            ("empty", torch.zeros(0, 4)),
        ]
    )


def _expected(tensors):
    torch = pytest.importorskip("torch")
    return {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy() for k, v in tensors.items()}


def _assert_same(loaded, expected):
    assert list(loaded) == list(expected)
    for key, value in expected.items():
        assert loaded[key].dtype == value.dtype, key
        assert loaded[key].shape == value.shape, key
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


@pytest.mark.torch
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reads_torch_save_exactly(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    tensors = _torch_tensors()
    path = tmp_path / "state.pth"
    torch.save(tensors, path, _use_new_zipfile_serialization=zip_format)
    _assert_same(read_state_dict(path), _expected(tensors))


@pytest.mark.torch
def test_reads_big_endian_archive(tmp_path):
    torch = pytest.importorskip("torch")
    tensors = collections.OrderedDict(w=torch.randn(3, 4), n=torch.arange(5), h=torch.randn(4).half())
    little = tmp_path / "little.pth"
    torch.save(tensors, little)
    big = tmp_path / "big.pth"
    with zipfile.ZipFile(little) as source, zipfile.ZipFile(big, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in name:
                # Each storage holds one tensor here; swap its bytes to the big-endian layout.
                key = name.rsplit("/", 1)[1]
                dtype = {"0": "<f4", "1": "<i8", "2": "<f2"}[key]
                data = np.frombuffer(data, dtype).astype(dtype.replace("<", ">")).tobytes()
            target.writestr(name, data)
    _assert_same(read_state_dict(big), _expected(tensors))


@pytest.mark.torch
def test_reads_module_state_dict_and_parameters(tmp_path):
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    torch.save(module.state_dict(), tmp_path / "state.pth")
    torch.save(dict(module.named_parameters()), tmp_path / "params.pth")  # nn.Parameter objects
    state = read_state_dict(tmp_path / "state.pth")
    assert state["1.num_batches_tracked"].dtype == np.int64
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(state[key], value.numpy())
    params = read_state_dict(tmp_path / "params.pth")
    assert sorted(params) == sorted(k for k, _ in module.named_parameters())


@pytest.mark.torch
def test_accepts_wrapped_state_dict_and_rejects_ambiguity(tmp_path):
    torch = pytest.importorskip("torch")
    module = torch.nn.Linear(2, 3)
    optimizer = torch.optim.Adam(module.parameters())
    module(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    path = tmp_path / "wrapped.pth"
    torch.save({"epoch": 180, "netG": module.state_dict(), "optimizer": optimizer.state_dict()}, path)
    state = read_state_dict(path)
    np.testing.assert_array_equal(state["weight"], module.weight.detach().numpy())
    assert "netG" in STATE_DICT_KEYS

    both = tmp_path / "both.pth"
    torch.save({"gen": module.state_dict(), "disc": module.state_dict()}, both)
    with pytest.raises(Sar2OptError, match=r"several.*'gen', 'disc'.*choose one with --weights-key KEY"):
        read_state_dict(both)
    assert sorted(read_state_dict(both, key="disc")) == ["bias", "weight"]
    with pytest.raises(Sar2OptError, match="under key 'nope'"):
        read_state_dict(both, key="nope")

    torch.save({"epoch": 1, "weights": [1, 2]}, tmp_path / "none.pth")
    with pytest.raises(Sar2OptError, match=r"Expected a state_dict.*keys \['epoch', 'weights'\]"):
        read_state_dict(tmp_path / "none.pth")


def _training_checkpoint(torch, module):
    """What a training script saves: epoch, weights, optimizer state after a step, NumPy numbers."""
    optimizer = torch.optim.Adam(module.parameters())
    module(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return {
        "epoch": 180,
        "model_state_dict": module.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": np.float64(0.3125),
        "best_psnr": np.float32(21.5),
        "step": np.int64(9000),
        "dtype": np.dtype(">f4"),
    }


@pytest.mark.torch
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reads_training_checkpoints_with_numpy_scalars(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    module = torch.nn.Linear(2, 3)
    path = tmp_path / "epoch_180.pth"
    torch.save(_training_checkpoint(torch, module), path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(Exception, match="weights_only"):  # what torch.load makes of such a file by default
        torch.load(path)
    checkpoint = read_checkpoint(path)
    assert checkpoint["epoch"] == 180 and checkpoint["step"] == 9000 and checkpoint["step"].dtype == np.int64
    assert checkpoint["loss"] == 0.3125 and checkpoint["loss"].dtype == np.float64
    assert checkpoint["best_psnr"] == np.float32(21.5) and checkpoint["dtype"] == np.dtype(">f4")
    assert checkpoint["optimizer_state_dict"]["param_groups"][0]["betas"] == (0.9, 0.999)
    state = read_state_dict(path)
    assert sorted(state) == ["bias", "weight"]
    np.testing.assert_array_equal(state["weight"], module.weight.detach().numpy())


@pytest.mark.torch
def test_moving_averages_are_chosen_by_key(tmp_path, caplog):
    torch = pytest.importorskip("torch")
    module, average = torch.nn.Linear(2, 3), torch.nn.Linear(2, 3)
    path = tmp_path / "ema.pth"
    for key in ("ema", "model_ema"):
        torch.save({**_training_checkpoint(torch, module), key: average.state_dict()}, path)
        with caplog.at_level("WARNING"):
            state = read_state_dict(path)
        np.testing.assert_array_equal(state["weight"], module.weight.detach().numpy())
        assert f"moving averages under {key!r}" in caplog.text and f"--weights-key {key}" in caplog.text
        caplog.clear()
        np.testing.assert_array_equal(read_state_dict(path, key=key)["bias"], average.bias.detach().numpy())
    assert "model_ema" in EMA_KEYS and not set(EMA_KEYS) & set(STATE_DICT_KEYS)
    with pytest.raises(Sar2OptError, match=r"under key 'swa' \(--weights-key\) in .*ema.pth, received \['best_psnr'"):
        read_state_dict(path, key="swa")


@pytest.mark.torch
def test_a_training_checkpoint_carrying_code_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    checkpoint = _training_checkpoint(torch, torch.nn.Linear(2, 3))
    torch.save({**checkpoint, "scheduler": _Exploit(marker)}, path)
    with pytest.raises(Sar2OptError) as error:
        read_state_dict(path)
    message = str(error.value)
    assert message.startswith(f"Refusing to load {path}: it asks for the global posix.system") and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("value", [np.dtype(object), np.array([1.0]), np.dtype("U4")], ids=["object", "array", "str"])
def test_numpy_values_other_than_numbers_are_refused(tmp_path, value):
    path = tmp_path / "odd.pth"
    path.write_bytes(pickle.dumps({"epoch": 1, "value": value}, protocol=2))
    with pytest.raises(Sar2OptError, match="odd.pth") as error:
        read_checkpoint(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("in_zip", [False, True], ids=["pickle", "zip"])
def test_refuses_code_execution(tmp_path, in_zip):
    marker = tmp_path / "marker"
    payload = pickle.dumps(collections.OrderedDict(weight=_Exploit(marker)), protocol=2)
    path = tmp_path / "evil.pth"
    if in_zip:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("evil/data.pkl", payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(Sar2OptError) as error:
        read_state_dict(path)
    message = str(error.value)
    assert str(path) in message and "system" in message and "\n" not in message
    assert not marker.exists()


def test_refuses_other_globals(tmp_path):
    path = tmp_path / "odd.pth"
    path.write_bytes(pickle.dumps({"w": collections.Counter("ab")}, protocol=2))
    with pytest.raises(Sar2OptError, match="collections.Counter"):
        read_checkpoint(path)


@pytest.mark.torch
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_truncated_or_corrupt_checkpoint_is_a_clear_error(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    whole = tmp_path / "whole.pth"
    torch.save({"w": torch.randn(64, 64)}, whole, _use_new_zipfile_serialization=zip_format)
    data = whole.read_bytes()
    for size in (len(data) // 2, len(data) - 40, 5):
        cut = tmp_path / f"cut{size}.pth"
        cut.write_bytes(data[:size])
        with pytest.raises(Sar2OptError, match=r"truncated or corrupt file: .*cut"):
            read_state_dict(cut)
    if zip_format:
        flipped = bytearray(data)
        flipped[data.index(b"whole/data/0") + 600] ^= 0xFF  # inside the stored tensor bytes
        bad = tmp_path / "flipped.pth"
        bad.write_bytes(bytes(flipped))
        with pytest.raises(Sar2OptError, match="truncated or corrupt"):
            read_state_dict(bad)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(Sar2OptError, match="missing path"):
        read_state_dict(tmp_path / "absent.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(Sar2OptError, match="truncated or corrupt"):
        read_state_dict(tmp_path / "empty.pth")


def test_reads_safetensors(tmp_path):
    from safetensors.numpy import save_file

    tensors = {
        "weight": np.random.default_rng(0).normal(size=(4, 3, 2, 2)).astype(np.float32),
        "half": np.arange(6, dtype=np.float16).reshape(2, 3),
        "count": np.array(5, np.int64),
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    loaded = read_state_dict(path)
    assert sorted(loaded) == sorted(tensors)
    for key, value in tensors.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


@pytest.mark.torch
def test_reads_bfloat16_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    value = torch.randn(3, 5).bfloat16()
    save_file({"w": value}, str(tmp_path / "bf16.safetensors"))
    loaded = read_state_dict(tmp_path / "bf16.safetensors")["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, value.float().numpy())


def test_reader_and_converter_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
        "import keras_sar2opt.convert, keras_sar2opt.convert.torch_reference, keras_sar2opt.inference\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
