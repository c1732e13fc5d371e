"""Hostile input files: mutated PNG/TIFF/.pth give a one-line error or a skip, never a
crash or a hang."""

import contextlib
import os
import random
import signal
import struct
import zipfile
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from safetensors.numpy import save as save_safetensors

from keras_sar2opt.convert.pth_reader import read_checkpoint, read_state_dict
from keras_sar2opt.data import Pair, find_pairs, io, load_pair
from keras_sar2opt.data.io import read_image
from keras_sar2opt.errors import Sar2OptError

pytestmark = pytest.mark.filterwarnings("ignore:Dataset has no geotransform")

SIZE = 16
MUTANTS_PER_SEED = 30  # x 8 seed files = 240 mutated files
TIME_LIMIT = 20  # seconds per file, for every reader together


def _pickle_state_dict(shapes):
    """The data.pkl of torch.save for an OrderedDict of float32 tensors of the given shapes (storage
    key i for the i-th), written without torch (protocol 2)."""

    def text(value):
        data = value.encode()
        return b"X" + struct.pack("<I", len(data)) + data

    def integer(value):
        return b"J" + struct.pack("<i", value)

    def integers(values):
        return b"(" + b"".join(map(integer, values)) + b"t"

    def named(module, name):
        return f"c{module}\n{name}\n".encode()

    ordered_dict = named("collections", "OrderedDict") + b")R"
    out = b"\x80\x02" + ordered_dict
    for key, (name, shape) in enumerate(shapes.items()):
        storage = b"(" + text("storage") + named("torch", "FloatStorage") + text(str(key)) + text("cpu")
        storage += integer(int(np.prod(shape))) + b"tQ"  # a persistent id
        strides = [int(np.prod(shape[i + 1 :])) for i in range(len(shape))]
        arguments = storage + integer(0) + integers(shape) + integers(strides) + b"\x89" + ordered_dict
        out += text(name) + named("torch._utils", "_rebuild_tensor_v2") + b"(" + arguments + b"tRs"
    return out + b"."


def _write_pth(path, tensors):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _pickle_state_dict({k: v.shape for k, v in tensors.items()}))
        archive.writestr("archive/byteorder", "little")
        for key, array in enumerate(tensors.values()):
            archive.writestr(f"archive/data/{key}", array.tobytes())
        archive.writestr("archive/version", "3\n")
    return path


def _png_with_size(width, height):
    """A PNG whose IHDR declares width x height (with a valid CRC) over one row of real data."""
    encoded = bytearray(cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes())
    encoded[16:24] = struct.pack(">II", width, height)
    encoded[29:33] = struct.pack(">I", zlib.crc32(bytes(encoded[12:29])))
    return bytes(encoded)


def _tiff_with_size(path, width, height):
    tifffile.imwrite(path, np.zeros((4, 4), np.float32))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tiff:
        tags = tiff.pages[0].tags
        offsets = [tags[name].valueoffset for name in ("ImageWidth", "ImageLength")]
        kinds = ["<I" if tags[name].dtype == 4 else "<H" for name in ("ImageWidth", "ImageLength")]
    for offset, kind, value in zip(offsets, kinds, (width, height)):
        data[offset : offset + struct.calcsize(kind)] = struct.pack(kind, value)
    return bytes(data)


def _seeds(folder):
    """Valid files of every kind the readers take: name -> bytes."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    seeds = {
        "grey.png": cv2.imencode(".png", grey)[1].tobytes(),
        "rgb.png": cv2.imencode(".png", rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))[1].tobytes(),
        "deep.png": cv2.imencode(".png", rng.integers(0, 65536, (SIZE, SIZE), dtype=np.uint16))[1].tobytes(),
    }
    tifffile.imwrite(folder / "float.tif", rng.gamma(1.0, 0.1, (SIZE, SIZE)).astype(np.float32))
    tifffile.imwrite(folder / "rgb.tif", rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), compression="zlib")
    tensors = {"enc.weight": rng.normal(size=(4, 3, 2, 2)).astype(np.float32), "enc.bias": np.zeros(4, np.float32)}
    _write_pth(folder / "state.pth", tensors)
    assert {k: v.tolist() for k, v in read_state_dict(folder / "state.pth").items()} == {
        k: v.tolist() for k, v in tensors.items()
    }  # the hand-written torch.save format reads back
    (folder / "state.safetensors").write_bytes(save_safetensors(tensors))
    for name in ("float.tif", "rgb.tif", "state.pth", "state.safetensors"):
        seeds[name] = (folder / name).read_bytes()
    return seeds


def _mutate(data, rng):
    """One of: bit flips, header bytes overwritten, truncation, a chunk deleted or repeated, random bytes."""
    data = bytearray(data)
    kind = rng.choice(["flip", "header", "truncate", "delete", "repeat", "random"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "header":
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(min(64, len(data)))] = rng.randrange(256)
    elif kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind in ("delete", "repeat"):
        start = rng.randrange(len(data))
        end = min(len(data), start + rng.randint(1, 64))
        data[start:end] = b"" if kind == "delete" else data[start:end] * 2
    else:
        data = bytearray(rng.randbytes(rng.randint(1, 2 * len(data))))
    return kind, bytes(data)


def _crafted(folder):
    """Hand-made hostile files: name -> bytes."""
    nan_tiff = folder / "crafted.tif"
    tifffile.imwrite(nan_tiff, np.full((SIZE, SIZE), np.nan, np.float32))
    bomb = folder / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", _pickle_state_dict({"w": (1 << 25,)}))
        with archive.open("archive/data/0", "w", force_zip64=True) as member:  # 128 MB of zeros in ~130 kB
            for _ in range(128):
                member.write(bytes(1 << 20))
    side = int(io.MAX_IMAGE_PIXELS**0.5) + 1
    return {
        "bomb-pil.png": _png_with_size(100_000, 100_000),  # past PIL's own limit
        "bomb-cap.png": _png_with_size(side, side),  # past ours only
        "zero-size.png": _png_with_size(0, 0),
        "bomb.tif": _tiff_with_size(folder / "t.tif", 60_000, 60_000),
        "zero-size.tif": _tiff_with_size(folder / "t.tif", 0, SIZE),
        "nan.tif": nan_tiff.read_bytes(),
        "empty.png": b"",
        "empty.pth": b"",
        "bomb.pth": bomb.read_bytes(),
    }


@contextlib.contextmanager
def _time_limit(seconds, case):
    def expire(signum, frame):
        raise TimeoutError(f"{case} took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _outcome(call, *args, **kwargs):
    """The call's result, or its Sar2OptError; any other exception fails the test."""
    try:
        return call(*args, **kwargs)
    except Sar2OptError as error:
        assert "\n" not in str(error), str(error)
        return error


def _check_image(path, optical):
    """read_image, the training loader and find_pairs (both on_bad modes) on a hostile SAR file."""
    image = _outcome(read_image, path)
    if not isinstance(image, Sar2OptError):
        assert image.ndim == 3 and image.size > 0
        assert image.dtype.kind in "ui" or np.isfinite(image).all()
    _outcome(load_pair, Pair("x", path, optical), SIZE)
    root = path.parent.parent
    found = _outcome(find_pairs, root, on_bad="error")
    assert isinstance(found, Sar2OptError) or len(found) == 2
    kept = find_pairs(root, on_bad="skip")  # the good pair always remains
    assert len(kept) + len(kept.skipped) == 2 and "good" in [pair.name for pair in kept.pairs]
    if isinstance(found, Sar2OptError):
        assert [skip.reason for skip in kept.skipped] == [str(found)]
    return image


def _check_checkpoint(path):
    result = _outcome(read_checkpoint, path)
    if not isinstance(result, Sar2OptError):
        _outcome(read_state_dict, path)
    return result


def _dataset(folder, name, data):
    """A sar/optical folder pair: the hostile file as the SAR of pair "x", beside a good pair "good"."""
    for sub in ("sar", "optical"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    good = cv2.imencode(".png", np.full((SIZE, SIZE), 128, np.uint8))[1].tobytes()
    for path in ((folder / "sar" / "good.png"), (folder / "optical" / "good.png"), (folder / "optical" / "x.png")):
        path.write_bytes(good)
    path = folder / "sar" / f"x{os.path.splitext(name)[1]}"
    path.write_bytes(data)
    return path


@pytest.fixture()
def small_pixel_limit(monkeypatch):
    """A 1-megapixel limit: a mutated header may declare any size, and reads stay quick."""
    monkeypatch.setattr(io, "MAX_IMAGE_PIXELS", 1 << 20)


def test_mutated_and_crafted_files_give_a_result_or_one_line_error(tmp_path, small_pixel_limit, caplog):
    seeds = _seeds(tmp_path)
    rng = random.Random(7)
    cases = [
        (f"{name}:{index}", name, *_mutate(data, rng))
        for name, data in seeds.items()
        for index in range(MUTANTS_PER_SEED)
    ]
    cases += [(f"crafted {name}", name, "crafted", data) for name, data in _crafted(tmp_path).items()]
    assert len(cases) >= 200
    outcomes = {}
    for number, (case, name, _kind, data) in enumerate(cases):
        folder = tmp_path / f"case{number}"
        with _time_limit(TIME_LIMIT, case):
            if name.endswith((".png", ".tif")):
                path = _dataset(folder, name, data)
                result = _check_image(path, folder / "optical" / "x.png")
            else:
                folder.mkdir()
                path = folder / name
                path.write_bytes(data)
                result = _check_checkpoint(path)
        if isinstance(result, Sar2OptError):
            assert str(path) in str(result), (case, str(result))
        outcomes[case] = "error" if isinstance(result, Sar2OptError) else "ok"
    # The crafted files are all refused, by name and for their reason.
    crafted = {case: outcomes[case] for case, *_ in cases if case.startswith("crafted")}
    assert set(crafted.values()) == {"error"}, crafted
    assert list(outcomes.values()).count("error") > len(cases) // 2
    assert not [record for record in caplog.records if record.name.startswith("rasterio")]  # no GDAL chatter


@pytest.fixture()
def generator_file(tmp_path):
    from keras_sar2opt.models import unet_generator

    path = tmp_path / "generator.keras"
    unet_generator(image_size=SIZE).save(path)
    return path


def test_hostile_files_through_the_command_line_give_one_line_and_exit_1(tmp_path, cli_error, generator_file):
    crafted = _crafted(tmp_path)
    for name in ("bomb-pil.png", "nan.tif"):
        path = tmp_path / name
        path.write_bytes(crafted[name])
        line = cli_error(["translate", str(path), "--model", str(generator_file), "-o", str(tmp_path / "o")])
        assert line.startswith("sar2opt translate: error: Expected ") and str(path) in line
    for name in ("bomb.pth", "empty.pth"):
        path = tmp_path / name
        path.write_bytes(crafted[name])
        line = cli_error(["convert", str(path), "-o", str(tmp_path / "g.keras")])
        assert line.startswith("sar2opt convert: error: Expected ") and str(path) in line

    data = tmp_path / "data"
    sar = _dataset(data, "x.png", _png_with_size(100_000, 100_000))
    train = [
        "train",
        "--experiment",
        "patchgan",
        "--image-size",
        "32",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--verbose",
        "0",
    ]
    assert str(sar) in cli_error(train)
    sar.unlink()
    sar.symlink_to(sar.name)  # a symbolic link loop
    line = cli_error(train)
    assert (
        line == f"sar2opt train: error: Expected an image file, received {sar}, a symbolic link that loops "
        "or leads nowhere"
    )
    loop = tmp_path / "loop"
    loop.symlink_to(loop.name)
    line = cli_error([*train[:5], "--data", str(loop)])
    assert line == f"sar2opt train: error: Expected --data to be an existing dataset folder or CSV, received {loop}"
    assert "Symlink loop" in str(_outcome(find_pairs, loop))
    assert not (tmp_path / "run").exists()
