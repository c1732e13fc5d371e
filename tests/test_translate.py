"""Translation: tiled whole scenes without seams, georeferencing kept, preprocessing, folders, the command."""

import logging

import cv2
import keras
import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from keras_sar2opt.cli import main
from keras_sar2opt.data.io import read_image, to_channels, write_png
from keras_sar2opt.data.preprocess import apply_preprocessing
from keras_sar2opt.data.scaling import SarScaling, to_unit
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.inference import (
    blend_weights,
    plan_outputs,
    tile_starts,
    translate_array,
    translate_file,
    translate_strips,
)

CRS = "EPSG:32633"
TRANSFORM = Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 5000040.0)


def smoothing_generator(tile, channels=3):
    """Two 9x9 box filters with zero padding, then tanh: a spatially smooth response whose zero padding
    darkens the outer pixels of every tile, so unblended tiles show seams."""
    sar = keras.Input((tile, tile, channels), name="sar")
    x = sar
    for k in (1, 2):
        conv = keras.layers.Conv2D(3, 9, padding="same", use_bias=False, name=f"box{k}")
        x = conv(x)
        conv.kernel.assign(np.full((9, 9, conv.kernel.shape[2], 3), 1.0 / (81 * conv.kernel.shape[2]), np.float32))
    return keras.Model(sar, keras.layers.Activation("tanh")(x))


def _scene(height, width, seed=0):
    """A smooth SAR-like 8-bit pattern with mild noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    values = 0.5 + 0.35 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    values += np.random.default_rng(seed).normal(0.0, 0.05, values.shape)
    return np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)


def _write_geotiff(path, image):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=image.shape[0],
        width=image.shape[1],
        count=1,
        dtype=image.dtype,
        crs=CRS,
        transform=TRANSFORM,
    ) as dataset:
        dataset.write(image, 1)


def seam_ratio(image, tile, overlap):
    """Mean |difference| of neighbouring pixels straddling tile borders over that elsewhere."""
    grey = image.astype(np.float32).mean(axis=-1)
    height, width = grey.shape
    diff_x, diff_y = np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0))
    at_x, at_y = np.zeros(width - 1, bool), np.zeros(height - 1, bool)
    for starts, mask in ((tile_starts(width, tile, overlap), at_x), (tile_starts(height, tile, overlap), at_y)):
        for start in starts[1:]:
            mask[start - 1] = True
        for start in starts[:-1]:
            mask[start + tile - 1] = True
    seam = np.concatenate([diff_x[:, at_x].ravel(), diff_y[at_y].ravel()]).mean()
    rest = np.concatenate([diff_x[:, ~at_x].ravel(), diff_y[~at_y].ravel()]).mean()
    return seam / rest


def test_tiles_cover_and_blend_weights_sum_to_one():
    assert tile_starts(1000, 128, 32) == [0, 96, 192, 288, 384, 480, 576, 672, 768, 864, 872]
    assert tile_starts(100, 128, 32) == [0]
    ramp_out, ramp_in = blend_weights(128, 32, False, True), blend_weights(128, 32, True, False)
    np.testing.assert_allclose(ramp_out[96:] + ramp_in[:32], 1.0, atol=1e-6)
    assert ramp_out[0] == 1.0 and ramp_in[-1] == 1.0 and ramp_in[0] < 0.01


def test_geotiff_scene_keeps_georeference_and_has_no_seams(tmp_path):
    src = tmp_path / "scene.tif"
    _write_geotiff(src, _scene(1000, 1300))
    model = smoothing_generator(128)
    blended = translate_file(model, src, tmp_path / "out" / "scene.tif", overlap=32, batch_size=8, progress=False)
    with rasterio.open(src) as source, rasterio.open(blended) as result:
        assert (result.height, result.width, result.count) == (1000, 1300, 3)
        assert result.dtypes[0] == "uint8"
        assert result.crs == source.crs and result.transform == source.transform
        output = np.moveaxis(result.read(), 0, -1)
    assert seam_ratio(output, 128, 32) <= 1.1
    # The check can fail: the same model without blending (overlap 0) leaves visible seams.
    unblended = translate_file(model, src, tmp_path / "plain.tif", overlap=0, batch_size=8, progress=False)
    with rasterio.open(unblended) as result:
        assert seam_ratio(np.moveaxis(result.read(), 0, -1), 128, 0) > 1.5


def test_scene_is_read_and_written_in_strips():
    model = smoothing_generator(32)

    class Source:
        height, width = 150, 70
        image = np.random.default_rng(1).uniform(size=(150, 70, 3)).astype(np.float32)
        reads = []

        def read(self, y0, y1):
            self.reads.append((y0, y1))
            return self.image[y0:y1]

    class Sink:
        rows = []

        def write(self, y0, rows):
            self.rows.append((y0, rows.shape[0]))

    source, sink = Source(), Sink()
    translate_strips(model, source, sink, overlap=8, batch_size=2, progress=False)
    assert all(y1 - y0 <= 32 for y0, y1 in source.reads)
    assert [y0 for y0, _ in sink.rows] == np.cumsum([0] + [n for _, n in sink.rows][:-1]).tolist()
    assert sum(n for _, n in sink.rows) == 150
    whole = translate_array(model, source.image, overlap=8, batch_size=2)
    assert whole.shape == (150, 70, 3) and whole.min() >= 0.0 and whole.max() <= 1.0


def test_windowed_preprocessing_equals_whole_image_preprocessing(tmp_path):
    """A GeoTIFF read strip by strip (with a halo) gives the same result as the image read whole."""
    image = _scene(200, 150, seed=2)
    _write_geotiff(tmp_path / "scene.tif", image)
    write_png(tmp_path / "scene.png", image[..., None] / 255.0)
    model = smoothing_generator(64)
    steps = [("median", {"window": 7}), ("gamma", {"gamma": 2.0, "convention": "inverse"})]
    options = dict(steps=steps, sar_options={"input": "auto"}, overlap=16, batch_size=4, progress=False)
    windowed = translate_file(model, tmp_path / "scene.tif", tmp_path / "w.tif", **options)
    whole = translate_file(model, tmp_path / "scene.png", tmp_path / "w.png", **options)
    with rasterio.open(windowed) as result:
        from_strips = np.moveaxis(result.read(), 0, -1)
    assert np.abs(from_strips.astype(int) - read_image(whole).astype(int)).max() <= 1
    expected = translate_array(model, to_channels(apply_preprocessing(to_unit(image[..., None]), steps), 3), overlap=16)
    assert np.abs(read_image(whole).astype(float) - np.round(expected * 255)).max() <= 1


def test_chained_windowed_filters_read_the_context_they_all_need(tmp_path):
    """Each filter of a chain widens the rows a strip needs: median 5 then Lee 5 then median 5 needs 6."""
    noise = np.random.default_rng(0).integers(0, 256, (200, 48)).astype(np.uint8)
    _write_geotiff(tmp_path / "noise.tif", noise)
    sar = keras.Input((32, 32, 3))
    identity = keras.Model(sar, keras.layers.Identity()(sar))
    steps = [("median", {"window": 5}), ("lee", {"window": 5}), ("median", {"window": 5})]
    written = translate_file(
        identity, tmp_path / "noise.tif", tmp_path / "out.tif", steps=steps, overlap=8, progress=False
    )
    with rasterio.open(written) as result:
        from_strips = result.read(1).astype(int)
    whole = np.round(np.clip(apply_preprocessing(to_unit(noise[..., None]), steps)[..., 0], 0, 1) * 255)
    assert np.abs(from_strips - whole).max() <= 1


def test_translate_without_sar_options_scales_float_sar_as_training_does(tmp_path, caplog):
    """Linear float SAR goes to dB then a 1-99 percentile stretch, as in `load_pair`, in both file kinds."""
    intensity = np.random.default_rng(3).gamma(1.0, 0.05, (64, 96)).astype(np.float32)
    _write_geotiff(tmp_path / "sigma0.tif", intensity)
    sar = keras.Input((32, 32, 3))
    identity = keras.Model(sar, keras.layers.Identity()(sar))
    expected = np.round(np.clip(to_unit(intensity[..., None], SarScaling()), 0, 1) * 255)[..., 0]
    for name in ("out.tif", "out.png"):
        written = translate_file(identity, tmp_path / "sigma0.tif", tmp_path / name, overlap=8, progress=False)
        assert np.abs(read_image(written)[..., 0].astype(int) - expected).max() <= 1, name
    # Only the PNG loses the scene's CRS, and says so.
    assert [r.message for r in caplog.records if "georeferencing" in r.message] == [
        f"Writing {tmp_path / 'out.png'} as PNG drops sigma0.tif's georeferencing; write a .tif to keep it"
    ]


def test_downsample_translates_at_the_resolution_of_tiles_resized_for_training(tmp_path, capsys, caplog):
    """--downsample 2 averages 2x2 pixels after preprocessing, as training's area resize of 256-px
    tiles to 128 px does; a scene keeps its georeferencing at twice the pixel size, nodata masked."""
    from keras_sar2opt.data.loading import resize

    height, width = 150, 203  # the last column is not a whole block: left out
    rng = np.random.default_rng(5)
    linear = (10.0 ** (rng.uniform(-20.0, -5.0, (height, width)) / 10.0)).astype(np.float32)
    linear[:40, :30] = np.nan  # a nodata corner; the block at its edge row/column stays valid
    linear[40, 29] = np.nan  # half of a block: that block is masked
    src, dst = tmp_path / "scene.tif", tmp_path / "out.tif"
    _write_geotiff(src, linear)
    options = {"input": "linear", "db_range": [-20.0, -5.0]}
    steps = [("median", {"window": 3})]
    translate_file(_identity_generator(32), src, dst, steps=steps, sar_options=options, downsample=2, progress=False)
    with rasterio.open(dst) as result:
        values, valid, transform = result.read(1).astype(int), result.read_masks(1) > 0, result.transform
        tags = result.tags()
    assert tags["SAR2OPT_MODEL"] == "identity" and tags["SAR2OPT_DOWNSAMPLE"] == "2"
    assert (
        tags["SAR2OPT_SAR_SCALING"] == "input linear, db_range -20..-5" and tags["SAR2OPT_PREPROCESSING"] == "median 3"
    )
    assert values.shape == (75, 101) and transform == TRANSFORM @ Affine.scale(2)
    expected_valid = np.ones((75, 101), bool)
    expected_valid[:20, :15] = False
    expected_valid[20, 14] = False
    np.testing.assert_array_equal(valid, expected_valid)
    filled = np.where(np.isnan(linear), np.nanmedian(linear), linear)[..., None]
    whole = apply_preprocessing(to_unit(filled, SarScaling(**options)), steps)[:, :202, 0]
    area = cv2.resize(whole, (101, 75), interpolation=cv2.INTER_AREA)  # as `resize` shrinks training tiles
    assert np.abs(values - np.round(area * 255))[valid].max() <= 1

    # An 8-bit tile through the command: training's resize of it to the model's size, translated whole.
    tile = _scene(64, 64, seed=4)
    write_png(tmp_path / "tile.png", tile / 255.0)
    run = tmp_path / "run"  # a run that trained on 64-px tiles resized to 32 px
    run.mkdir()
    (run / "config.json").write_text('{"run": {"tile_size": [64, 64]}}')
    model_path = run / "generator.keras"
    _identity_generator(32).save(model_path)
    out = tmp_path / "tile_out.png"
    translate = ["translate", "--model", str(model_path), str(tmp_path / "tile.png"), "-o", str(out)]
    trained_on = resize(to_unit(tile[..., None]), 32)[..., 0]
    for model in (run, model_path):  # without --downsample, the run's resize is taken, and said
        out.unlink(missing_ok=True)
        with caplog.at_level(logging.WARNING):
            assert main([*translate[:2], str(model), *translate[3:]]) == 0
        assert "reading SAR as run was trained: --downsample 2" in capsys.readouterr().out
        assert np.abs(read_image(out)[..., 0].astype(int) - np.round(trained_on * 255)).max() <= 1
    assert not [record for record in caplog.records if "--downsample" in record.getMessage()]
    with caplog.at_level(logging.WARNING):  # another factor given: done, and the run's resize named
        assert main([*translate, "--downsample", "1"]) == 0
    assert (
        "run learned 64x64 tiles resized to 32x32 px; pass --downsample 2 to translate at that ground "
        "resolution (now --downsample 1)" in caplog.messages
    )
    assert read_image(out).shape[:2] == (64, 64)
    other = tmp_path / "other"  # a generator beside another tool's config.json: no hint, no failure
    other.mkdir()
    (other / "generator.keras").write_bytes(model_path.read_bytes())
    for text in ("not json", "[1, 2]", '{"run": {"tile_size": "64"}}'):
        (other / "config.json").write_text(text)
        assert main([*translate[:2], str(other), *translate[3:]]) == 0
    assert (
        main(["translate", "--model", str(model_path), str(tmp_path / "tile.png"), "-o", str(out), "--downsample", "0"])
        == 1
    )
    assert capsys.readouterr().err.strip().endswith("error: Expected --downsample of at least 1, received 0")


def test_scene_outputs_carry_averaged_overviews_down_to_256_pixels(tmp_path):
    scene = _scene(300, 1100, seed=6)
    scene[:50, :100] = 0  # nodata
    src, dst = tmp_path / "scene.tif", tmp_path / "out.tif"
    with rasterio.open(
        src, "w", driver="GTiff", height=300, width=1100, count=1, dtype="uint8", crs=CRS, transform=TRANSFORM, nodata=0
    ) as dataset:
        dataset.write(scene, 1)
    translate_file(_identity_generator(64), src, dst, progress=False)
    with rasterio.open(dst) as result:
        assert result.overviews(1) == [2, 4] and result.tags(ns="rio_overview") == {"resampling": "average"}
        full, quarter = result.read(1).astype(float), result.read(1, out_shape=(75, 275)).astype(float)
        quarter_mask = result.read_masks(1, out_shape=(75, 275))
    assert (quarter_mask[:12, :25] == 0).all() and (quarter_mask[13:, 26:] == 255).all()
    blocks = full[:300, :1100].reshape(75, 4, 275, 4).mean(axis=(1, 3))
    error = np.abs(quarter - blocks)[13:, 26:]  # GDAL averages 8-bit levels from each other: rounding adds up
    assert error.mean() < 0.5 and error.max() <= 3.0


def test_translate_command_on_a_folder_of_50_images(tmp_path, capsys):
    folder = tmp_path / "sar"
    for i in range(50):
        write_png(folder / f"tile_{i:02d}.png", _scene(40, 40, seed=i) / 255.0)
    model_path = tmp_path / "tiny.keras"
    smoothing_generator(32).save(model_path)
    out = tmp_path / "optical"
    argv = ["translate", "--model", str(model_path), str(folder), "-o", str(out), "--median", "3", "--gamma", "2"]
    assert main(argv + ["--batch-size", "4"]) == 0
    written = sorted(out.glob("*.png"))
    assert len(written) == 50 and written[0].name == "tile_00.png"
    assert read_image(written[0]).shape == (40, 40, 3)
    err = capsys.readouterr().err
    assert "50/50" in err  # the progress bar over files


def test_translate_command_single_file_with_grid_and_step_order(tmp_path):
    model_path = tmp_path / "tiny.keras"
    model = smoothing_generator(32)
    model.save(model_path)
    image = _scene(48, 80, seed=3)
    write_png(tmp_path / "in.png", image / 255.0)
    out = tmp_path / "result.png"
    argv = ["translate", "--model", str(model_path), str(tmp_path / "in.png"), "-o", str(out)]
    assert main(argv + ["--gamma", "3", "--gamma-convention", "inverse", "--median", "5", "--grid"]) == 0
    steps = [("gamma", {"gamma": 3.0, "convention": "inverse"}), ("median", {"window": 5})]
    expected = translate_array(model, to_channels(apply_preprocessing(to_unit(image[..., None]), steps), 3))
    assert np.abs(read_image(out).astype(float) - np.round(expected * 255)).max() <= 1
    grid = read_image(tmp_path / "result_grid.png")  # "SAR" and "Generated" above input | gap | output
    label_height = grid.shape[0] - 48
    assert 6 <= label_height <= 24 and grid.shape[1] > 2 * 80
    for columns in (slice(0, 80), slice(-80, None)):
        assert grid[:label_height, columns].min() < 128 and np.mean(grid[:label_height, columns] == 255) > 0.5


def test_translate_errors(tmp_path, capsys):
    write_png(tmp_path / "in.png", np.zeros((8, 8)))
    assert main(["translate", "--model", str(tmp_path / "none.keras"), str(tmp_path / "in.png"), "-o", "x"]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(Sar2OptError, match="does not exist"):
        plan_outputs([tmp_path / "absent"], tmp_path / "out")
    with pytest.raises(Sar2OptError, match="tile overlap"):
        translate_array(smoothing_generator(32), np.zeros((40, 40, 3), np.float32), overlap=32)
    # Bad options and outputs are refused before the model (here a missing file) is read.
    write_png(tmp_path / "second.png", np.zeros((8, 8)))
    translate = ["translate", "--model", str(tmp_path / "none.keras"), str(tmp_path / "in.png")]
    for extra, message in (
        (
            ["-o", "x.png", "--percentiles", "99", "1"],
            "percentiles (--percentiles) as [low, high] finite with low < high, received",
        ),
        (["-o", "x.png", "--median", "4"], "odd positive filter window, received 4 (preprocessing step median)"),
        (
            [str(tmp_path / "second.png"), "-o", str(tmp_path / "x.tif")],
            f"Expected -o to be a folder for several inputs or a folder input, received {tmp_path / 'x.tif'}",
        ),
    ):
        assert main([*translate, *extra]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()


def _identity_generator(tile):
    """Returns its input: the output shows how the scene was scaled."""
    sar = keras.Input((tile, tile, 1), name="sar")
    return keras.Model(sar, keras.layers.Identity()(sar), name="identity")


@pytest.mark.parametrize("nodata", [0.0, float("nan")])
def test_scene_nodata_is_masked_and_left_out_of_the_stretch(tmp_path, nodata):
    """A swath edge of nodata (declared 0, or NaN) must not drag the percentile stretch down to -100 dB."""
    height, width = 150, 200
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)
    linear = (10.0 ** (rng.uniform(-20.0, -5.0, (height, width)) / 10.0)).astype(np.float32)
    outside = xx < 0.8 * (height - yy)  # the corner a rotated swath leaves empty: ~27% of the scene
    linear[outside] = nodata
    src, dst = tmp_path / "scene.tif", tmp_path / "out.tif"
    with rasterio.open(
        src,
        "w",
        driver="GTiff",
        height=height,
        width=width,
        count=1,
        dtype="float32",
        crs=CRS,
        transform=TRANSFORM,
        nodata=None if np.isnan(nodata) else nodata,
    ) as dataset:
        dataset.write(linear, 1)
    translate_file(_identity_generator(64), src, dst, sar_options={"input": "linear"}, grid=True, progress=False)

    with rasterio.open(dst) as result:
        values, mask = result.read(1), result.read_masks(1)
    np.testing.assert_array_equal(mask == 0, outside)
    assert (values[outside] == 0).all()
    grid = read_image(tmp_path / "out_grid.png")[-height:]  # input | gap | output, nodata black on both sides
    assert (grid[:, :width][outside] == 0).all() and (grid[:, -width:][outside] == 0).all()
    db = 10.0 * np.log10(linear[~outside])
    low, high = np.percentile(db, [1, 99])
    expected = np.round(np.clip((db - low) / (high - low), 0.0, 1.0) * 255.0)
    assert np.abs(values[~outside] - expected).max() <= 1


def test_a_dataset_folder_gives_its_sar_images_and_no_output_overwrites_an_input(tmp_path):
    from keras_sar2opt.data.synthetic import write_synthetic

    write_synthetic(tmp_path / "qx", "qxslab", 4, "qxslab", size=32, progress=False)
    plan = plan_outputs([tmp_path / "qx"], tmp_path / "out")
    assert len(plan) == 4 and all("/sar_32_oc_0.2/" in src.as_posix() for src, _ in plan)
    scene = tmp_path / "scene.tif"
    _write_geotiff(scene, _scene(40, 40))
    with pytest.raises(Sar2OptError, match=r"Expected an output that is not an input, received .*scene\.tif"):
        plan_outputs([scene], tmp_path)
    with pytest.raises(Sar2OptError, match="Expected an output that is not an input"):
        plan_outputs([scene], scene)
    with pytest.raises(Sar2OptError, match=r"Expected -o to end in \.png, \.tif, \.tiff \(or to be a folder\)"):
        plan_outputs([scene], tmp_path / "scene.jpg")


def test_translating_a_folder_twice_into_a_folder_inside_it_finds_the_same_inputs(tmp_path):
    folder = tmp_path / "tiles"
    for i in range(3):
        write_png(folder / f"{i}.png", _scene(40, 40, seed=i) / 255.0)
    assert [dst for _, dst in plan_outputs([folder], tmp_path)] == [tmp_path / f"{i}.png" for i in range(3)]
    first = plan_outputs([folder], folder / "out")
    for _, dst in first:
        write_png(dst, _scene(40, 40) / 255.0)
    assert plan_outputs([folder], folder / "out") == first


def test_an_unloadable_model_is_a_short_one_line_error(tmp_path):
    """Keras's error for an unknown class carries the whole model config; ours keeps its start."""
    import json
    import zipfile

    from keras_sar2opt.model_files import load_generator

    smoothing_generator(32).save(tmp_path / "model.keras")
    unknown = tmp_path / "unknown.keras"
    with zipfile.ZipFile(tmp_path / "model.keras") as source, zipfile.ZipFile(unknown, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                config.update(class_name="NoSuchModel", module="nowhere", registered_name="nowhere>NoSuchModel")
                data = json.dumps(config).encode()
            target.writestr(item, data)
    with pytest.raises(Sar2OptError) as error:
        load_generator(unknown)
    message = str(error.value)
    assert message.startswith(f"Expected a loadable .keras model, received {unknown} (") and "NoSuchModel" in message
    assert "\n" not in message and len(message) < 400 + len(str(unknown))
    cut = tmp_path / "cut.keras"  # Keras calls a file it cannot open as a zip "File not found"
    cut.write_bytes((tmp_path / "model.keras").read_bytes()[:5000])
    with pytest.raises(
        Sar2OptError, match=rf"received {cut} \(not a .keras zip archive: cut short, or another format\)"
    ):
        load_generator(cut)

    run = tmp_path / "run"  # an unfinished run, and a LoRA run's adapters given as the model
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    with pytest.raises(Sar2OptError, match=r"received the folder .*run$"):
        load_generator(run)
    (run / "checkpoints" / "last.keras").write_bytes(b"")
    with pytest.raises(
        Sar2OptError, match=f"an unfinished run's latest checkpoint is {run / 'checkpoints' / 'last.keras'}"
    ):
        load_generator(run)
    (run / "adapters.safetensors").write_bytes(b"")
    with pytest.raises(Sar2OptError, match=f"a LoRA run's adapters alone; pass the run folder {run} "):
        load_generator(run / "adapters.safetensors")


def test_a_runs_model_reads_sar_as_the_run_did_unless_told_otherwise(tmp_path, capsys, caplog):
    """translate --model RUN takes the run's SAR band and scaling from config.json (a VH band of a
    dual-pol scene, stretched on its own), says so, and warns when other options are given."""
    rng = np.random.default_rng(7)
    vv = rng.uniform(-20.0, -5.0, (96, 80)).astype(np.float32)
    bands = {"vv": vv, "vh": vv - 9.0 + rng.normal(0.0, 1.5, vv.shape).astype(np.float32)}
    scene = tmp_path / "dual.tif"
    with rasterio.open(
        scene, "w", driver="GTiff", height=96, width=80, count=2, dtype="float32", crs=CRS, transform=TRANSFORM
    ) as dataset:
        dataset.write(np.stack(list(bands.values())))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"run": {"sar_options": {"input": "db", "band": 2}}}')
    _identity_generator(32).save(run / "generator.keras")
    expected = {}
    for name, band in bands.items():
        _write_geotiff(tmp_path / f"{name}.tif", band)
        written = translate_file(
            _identity_generator(32),
            tmp_path / f"{name}.tif",
            tmp_path / f"{name}_out.tif",
            sar_options={"input": "db"},
            progress=False,
        )
        expected[name] = read_image(written)

    out = tmp_path / "out.tif"
    with caplog.at_level(logging.WARNING):
        assert main(["translate", "--model", str(run), str(scene), "-o", str(out)]) == 0
    assert "reading SAR as run was trained: SAR input db, band 2" in capsys.readouterr().out
    assert not caplog.records
    np.testing.assert_array_equal(read_image(out), expected["vh"])
    with caplog.at_level(logging.WARNING):
        assert main(["translate", "--model", str(run), str(scene), "-o", str(out), "--sar-band", "1"]) == 0
    # Options given replace the run's one by one.
    assert caplog.messages == ["run was trained on SAR input db, band 2; translating with SAR input db, band 1"]
    np.testing.assert_array_equal(read_image(out), expected["vv"])
    assert main(["translate", "--model", str(run), str(scene), "-o", str(out), "--sar-band", "3"]) == 1
    assert capsys.readouterr().err.strip().endswith(f"error: Expected SAR band 3 in {scene}, received 2 bands")
    (run / "config.json").write_text('{"run": {"sar_options": {"band": 0}}}')  # not ours: ignored, as none
    assert main(["translate", "--model", str(run), str(scene), "-o", str(out)]) == 0
    assert "reading SAR as" not in capsys.readouterr().out
    np.testing.assert_array_equal(read_image(out), expected["vv"])


def test_output_range_writes_the_optical_values_a_run_learned(tmp_path, capsys):
    """--output-range maps [0, 1] back to stored optical values: 16-bit for integer ends (a PNG or
    GeoTIFF of Sentinel-2 reflectance x10000), 32-bit float GeoTIFFs otherwise."""
    tile = _scene(48, 40, seed=8)
    write_png(tmp_path / "tile.png", tile / 255.0)
    _write_geotiff(tmp_path / "scene.tif", tile)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"run": {"optical_options": {"range": [0, 3000]}}}')
    _identity_generator(32).save(run / "generator.keras")
    unit = tile / 255.0
    translate = ["translate", "--model", str(run)]
    assert main([*translate, str(tmp_path / "tile.png"), "-o", str(tmp_path / "display.png")]) == 0
    assert "run learned optical values 0..3000: --output-range 0 3000 writes them" in capsys.readouterr().out
    assert read_image(tmp_path / "display.png").dtype == np.uint8
    assert (
        main([*translate, str(tmp_path / "tile.png"), "-o", str(tmp_path / "s2.png"), "--output-range", "0", "3000"])
        == 0
    )
    reflectance = read_image(tmp_path / "s2.png")[..., 0]
    assert reflectance.dtype == np.uint16 and np.abs(reflectance - np.round(unit * 3000)).max() <= 1
    assert (
        main([*translate, str(tmp_path / "scene.tif"), "-o", str(tmp_path / "s2.tif"), "--output-range", "0", "0.3"])
        == 0
    )
    with rasterio.open(tmp_path / "s2.tif") as result:
        values, crs, tags = result.read(1), result.crs, result.tags()
    assert values.dtype == np.float32 and crs == CRS
    assert tags["SAR2OPT_MODEL"] == str(run.resolve()) and tags["SAR2OPT_INPUT"] == str(tmp_path / "scene.tif")
    assert tags["SAR2OPT_VALUES"] == "optical 0..0.3" and tags["SAR2OPT_SAR_SCALING"] == "input image"
    assert tags["SAR2OPT_PREPROCESSING"] == "none" and tags["SAR2OPT_DOWNSAMPLE"] == "1"
    assert tags["TIFFTAG_SOFTWARE"].startswith("keras_sar2opt ")
    np.testing.assert_allclose(values, unit * 0.3, atol=1e-6)
    capsys.readouterr()
    missing = ["translate", "--model", str(tmp_path / "absent.keras"), str(tmp_path / "tile.png")]
    for options, message in (
        (
            ["-o", str(tmp_path / "x.png"), "--output-range", "0", "0.3"],  # checked before the model loads
            f"Expected a .tif output for a non-integer --output-range, received {tmp_path / 'x.png'}",
        ),
        (
            ["-o", str(tmp_path / "x.tif"), "--output-range", "3000", "0"],
            "Expected --output-range as [low, high] finite with low < high, received [3000.0, 0.0]",
        ),
    ):
        assert main([*missing, *options]) == 1
        assert capsys.readouterr().err.strip().endswith(f"error: {message}")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.tif").exists()


def test_a_bad_tile_overlap_fails_before_any_output_folder_is_made(tmp_path, capsys):
    _write_geotiff(tmp_path / "scene.tif", _scene(40, 40))
    _identity_generator(32).save(tmp_path / "model.keras")
    for overlap in ("32", "-1"):
        out = tmp_path / "out" / "nested"
        assert (
            main(
                [
                    "translate",
                    "--model",
                    str(tmp_path / "model.keras"),
                    str(tmp_path / "scene.tif"),
                    "-o",
                    str(out),
                    "--tile-overlap",
                    overlap,
                ]
            )
            == 1
        )
        assert (
            capsys.readouterr()
            .err.strip()
            .endswith(f"error: Expected a tile overlap in [0, 31] for 32-pixel tiles, received {overlap}")
        )
        assert not (tmp_path / "out").exists()


def test_scaling_that_does_not_fit_a_scene_is_warned_about_once(tmp_path, caplog):
    """dB values declared linear come out near black: the scene and the option to pass are named."""
    db = np.random.default_rng(9).uniform(-25.0, -5.0, (70, 90)).astype(np.float32)
    _write_geotiff(tmp_path / "db.tif", db)
    for dst in ("out.tif", "out.png"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            translate_file(
                _identity_generator(32),
                tmp_path / "db.tif",
                tmp_path / dst,
                sar_options={"input": "linear"},
                progress=False,
            )
        assert [m for m in caplog.messages if "SAR values" in m] == [
            f"SAR values of {tmp_path / 'db.tif'} are mostly negative, as dB values are, not linear intensity: "
            "pass --sar-input db"
        ]


def test_an_output_under_a_file_is_one_line_before_the_model_loads(tmp_path, cli_error):
    write_png(tmp_path / "sar" / "in.png", np.zeros((8, 8)))
    _write_geotiff(tmp_path / "scene.tif", _scene(40, 40))
    blocker = tmp_path / "file.png"
    blocker.write_bytes(b"not a folder")
    translate = ["translate", "--model", str(tmp_path / "none.keras")]
    for source, out, kind in (
        (tmp_path / "scene.tif", blocker / "x.tif", "file"),
        (tmp_path / "sar" / "in.png", blocker / "x.png", "file"),
        (tmp_path / "sar", blocker / "out", "folder"),
    ):
        line = cli_error([*translate, str(source), "-o", str(out)])
        assert line == f"sar2opt translate: error: Expected a writable -o {kind}, received {out} ({blocker} is a file)"
    # Where the GeoTIFF is written, too.
    with pytest.raises(
        Sar2OptError, match=r"Expected a writable output file, received .*x\.tif \(.*file\.png is a file\)"
    ):
        translate_file(smoothing_generator(32), tmp_path / "scene.tif", blocker / "x.tif", progress=False)
