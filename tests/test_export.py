"""`sar2opt export`: ONNX, SavedModel and LiteRT generators equal to PyTorch and Keras; ONNX Runtime in translate."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_sar2opt import export
from keras_sar2opt.cli import main
from keras_sar2opt.convert.pix2pix import load_pix2pix_generator

pytest.importorskip("onnxruntime")
TOLERANCE = 1e-4


def _batch(size, batch, seed=0, channels=3):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, channels)).astype(np.float32)


def _torch_output(module, x):
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def sar2optical_keras(sar2optical_generator):
    return load_pix2pix_generator(sar2optical_generator[0])


@pytest.fixture(scope="module")
def sar2optical_onnx(sar2optical_generator, module_tmp):
    """The random SAR2Optical checkpoint exported by `sar2opt export` (converted on the fly): (path, printed)."""
    path = module_tmp("onnx") / "sar2optical.onnx"
    printed = _run_cli(["export", str(sar2optical_generator[0]), "--format", "onnx", "-o", str(path)])
    return path, printed


def _run_cli(argv):
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return printed.getvalue()


@pytest.mark.slow
@pytest.mark.torch
def test_onnx_equals_pytorch_at_any_batch_size(sar2optical_generator, sar2optical_onnx):
    import onnxruntime

    path, printed = sar2optical_onnx
    assert "(onnx, float32, 256x256 tiles, dynamic batch)" in printed
    assert "max |onnx - Keras| on a random batch of 2:" in printed and "(tolerance 0.0001)" in printed
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (sar,), (optical,) = session.get_inputs(), session.get_outputs()
    assert (sar.name, optical.name) == ("sar", "optical")
    assert isinstance(sar.shape[0], str) and sar.shape[1:] == [256, 256, 3]  # a dynamic batch axis
    settings = json.loads(session.get_modelmeta().custom_metadata_map["sar2opt"])
    assert settings["image_size"] == 256 and settings["precision"] == "float32"
    assert settings["source"] == str(sar2optical_generator[0].resolve())
    module = sar2optical_generator[1]
    for batch in (1, 3):
        x = _batch(256, batch, seed=batch)
        expected = _torch_output(module, x)
        assert expected.std() > 0.02  # a saturated or constant output would prove nothing
        got = session.run(["optical"], {"sar": x})[0]
        assert got.shape == (batch, 256, 256, 3)
        assert np.abs(got - expected).max() <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("fmt, name", [("saved_model", "sar2optical"), ("litert", "sar2optical.tflite")])
def test_saved_model_and_litert_equal_keras(fmt, name, sar2optical_keras, tmp_path):
    path = tmp_path / name
    difference = export.export_generator(sar2optical_keras, path, fmt, settings={"source": "random"})
    assert difference <= TOLERANCE
    run = export.exported_runner(path, fmt)
    for batch in (1, 3):
        x = _batch(256, batch, seed=batch)
        expected = np.asarray(sar2optical_keras(x, training=False))
        assert expected.std() > 0.02
        got = run(x)
        assert got.shape == (batch, 256, 256, 3)
        assert np.abs(got - expected).max() <= TOLERANCE
    assert export.exported_settings(path, fmt) == {"source": "random", "precision": "float32"}


@pytest.mark.slow
@pytest.mark.torch
def test_translate_serves_onnx_without_tensorflow(sar2optical_generator, sar2optical_onnx, tmp_path):
    """Tiles of a 300x420 image through ONNX Runtime, in a process where TensorFlow and Keras cannot be imported,
    give the image translated by the Keras conversion of the same checkpoint."""
    scene = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 420), dtype=np.uint8)).save(scene)
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "from keras_sar2opt.cli import main\n"
        f"sys.exit(main(['translate', '--model', {str(sar2optical_onnx[0])!r}, {str(scene)!r}, "
        f"'-o', {str(tmp_path / 'onnx.png')!r}, '--median', '3']))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    argv = ["translate", "--model", str(sar2optical_generator[0]), str(scene), "-o", str(tmp_path / "keras.png")]
    assert main([*argv, "--median", "3"]) == 0
    served = np.asarray(Image.open(tmp_path / "onnx.png"), np.int16)
    keras_output = np.asarray(Image.open(tmp_path / "keras.png"), np.int16)
    assert served.shape == keras_output.shape == (300, 420, 3)
    assert np.abs(served - keras_output).max() <= 1  # 8-bit rounding of outputs within 1e-4


def _small_generator(size=32):
    """A generator with dropout and BatchNorm whose moving statistics are far from a batch's: an export in
    training mode would differ from Keras's inference."""
    sar = keras.Input((size, size, 3), name="sar")
    x = keras.layers.Conv2D(8, 3, padding="same")(sar)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(sar, keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(x))
    batch_norm = model.layers[2]
    batch_norm.moving_mean.assign(np.linspace(-0.5, 0.5, 8).astype(np.float32))
    batch_norm.moving_variance.assign(np.linspace(0.2, 3.0, 8).astype(np.float32))
    return model


@pytest.fixture
def small_run(tmp_path):
    """A run folder whose generator read band 2 of dB SAR in -25..0 dB from 64-pixel tiles resized to 32."""
    run = tmp_path / "run"
    run.mkdir()
    settings = {"sar_options": {"input": "db", "db_range": [-25, 0], "band": 2}, "tile_size": [64, 64]}
    (run / "config.json").write_text(json.dumps({"run": settings}))
    _small_generator().save(run / "generator.keras")
    return run


def test_export_records_the_run_and_translate_reads_sar_as_it_did(small_run, tmp_path, capsys):
    out = tmp_path / "small.onnx"
    assert main(["export", str(small_run), "--format", "onnx", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "metadata records how run read SAR: input db, db_range -25..0, band 2" in printed
    model = keras.saving.load_model(small_run / "generator.keras")
    assert export.max_difference(model, out, "onnx", batch_size=3) <= TOLERANCE
    scene = tmp_path / "scene.tif"
    import rasterio
    from rasterio.transform import from_origin

    values = np.random.default_rng(1).uniform(-30, 5, (2, 96, 128)).astype(np.float32)
    profile = dict(driver="GTiff", height=96, width=128, count=2, dtype="float32", crs="EPSG:32633")
    with rasterio.open(scene, "w", transform=from_origin(500000, 4000000, 10, 10), **profile) as dataset:
        dataset.write(values)
    assert main(["translate", "--model", str(out), str(scene), "-o", str(tmp_path / "out.tif")]) == 0
    printed = capsys.readouterr().out
    assert "reading SAR as run was trained: SAR input db, db_range -25..0, band 2; --downsample 2" in printed
    with rasterio.open(tmp_path / "out.tif") as dataset:
        assert (dataset.height, dataset.width, dataset.count) == (48, 64, 3)
        assert dataset.crs.to_epsg() == 32633 and dataset.transform.a == 20


def test_float16_exports_report_their_error(small_run, tmp_path, capsys):
    for fmt, name in (("onnx", "half.onnx"), ("litert", "half.tflite")):
        out = tmp_path / name
        argv = ["export", str(small_run / "generator.keras"), "--format", fmt, "--precision", "float16"]
        assert main([*argv, "-o", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"max |{fmt} - Keras| on a random batch of 2: " in printed and "(tolerance 0.01)" in printed
        assert export.exported_settings(out, fmt)["precision"] == "float16"


def test_image_size_reshapes_a_fully_convolutional_generator(small_run, tmp_path):
    out = tmp_path / "wide"
    assert main(["export", str(small_run), "--format", "saved_model", "-o", str(out), "--image-size", "48"]) == 0
    assert export.exported_runner(out, "saved_model")(_batch(48, 2)).shape == (2, 48, 48, 3)
    assert export.exported_settings(out, "saved_model")["image_size"] == 48


def test_an_export_beyond_tolerance_writes_nothing(small_run, tmp_path, monkeypatch, cli_error):
    monkeypatch.setitem(export.TOLERANCES, "float32", -1.0)  # no difference is within a negative tolerance
    out = tmp_path / "refused.onnx"
    line = cli_error(["export", str(small_run), "--format", "onnx", "-o", str(out)])
    assert "Expected the onnx export to match Keras within -1 (float32)" in line and "nothing was written" in line
    assert list(tmp_path.glob("*refused*")) == []


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "onnx", "-o", "{tmp}/g.tflite"], "Expected -o to end in .onnx for --format onnx"),
        (["--format", "saved_model", "-o", "{tmp}/sm", "--precision", "float16"], "--precision among float32"),
        (["--format", "litert", "-o", "{tmp}/g.tflite", "--weights-key", "ema"], "--weights-key with a .pth"),
        (["--format", "onnx", "-o", "{tmp}/g.onnx", "--image-size", "0"], "--image-size to be a positive integer"),
    ],
)
def test_bad_export_options_are_one_line(small_run, tmp_path, extra, message, cli_error):
    line = cli_error(["export", str(small_run), *(arg.format(tmp=tmp_path) for arg in extra)])
    assert message in line


def test_translate_refuses_a_file_that_is_not_onnx(tmp_path, cli_error):
    fake = tmp_path / "model.onnx"
    fake.write_text("not a model")
    scene = tmp_path / "scene.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(scene)
    line = cli_error(["translate", "--model", str(fake), str(scene), "-o", str(tmp_path / "out")])
    assert f"Expected a loadable ONNX model, received {fake}" in line
