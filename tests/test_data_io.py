"""Image decoding (8/16-bit PNG, float TIFF and GeoTIFF) and SAR and optical scaling to [0, 1]."""

import cv2
import numpy as np
import pytest
import rasterio
import tifffile

from keras_sar2opt.data.io import inspect_image, read_image, to_channels, write_png
from keras_sar2opt.data.scaling import (
    OpticalScaling,
    SarScaling,
    optical_to_unit,
    to_unit,
    warn_if_sar_scaling_mismatches,
)
from keras_sar2opt.errors import Sar2OptError


def test_16_bit_png_keeps_its_values(tmp_path):
    grey = np.array([[0, 1000], [32768, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    decoded = read_image(tmp_path / "grey.png")
    assert decoded.dtype == np.uint16 and decoded.shape == (2, 2, 1)
    np.testing.assert_array_equal(decoded[..., 0], grey)
    np.testing.assert_allclose(to_unit(decoded)[..., 0], grey / 65535.0, atol=1e-7)

    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 20000, 65535  # R, G, B
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb[..., ::-1])  # OpenCV writes BGR
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png")[0, 0], [100, 20000, 65535])
    assert inspect_image(tmp_path / "rgb.png") == (2, 2, 3)


def test_float_tiff_and_geotiff_decode(tmp_path):
    linear = np.random.default_rng(0).gamma(1.0, 0.05, (8, 6)).astype(np.float32)
    tifffile.imwrite(tmp_path / "plain.tif", linear)
    decoded = read_image(tmp_path / "plain.tif")
    assert decoded.dtype == np.float32 and decoded.shape == (8, 6, 1)
    np.testing.assert_array_equal(decoded[..., 0], linear)

    bands = np.stack([linear, linear * 0.2])  # VV, VH
    profile = dict(
        driver="GTiff",
        height=8,
        width=6,
        count=2,
        dtype="float32",
        crs="EPSG:32633",
        transform=rasterio.Affine(10, 0, 500000, 0, -10, 4000000),
        compress="lzw",
    )
    with rasterio.open(tmp_path / "scene.tif", "w", **profile) as dataset:
        dataset.write(bands)
    decoded = read_image(tmp_path / "scene.tif")
    assert decoded.shape == (8, 6, 2)
    np.testing.assert_array_equal(np.moveaxis(decoded, -1, 0), bands)
    assert inspect_image(tmp_path / "scene.tif") == (8, 6, 2)


def test_sar_scaling_linear_db_amplitude_and_percentiles():
    linear = np.array([[10**-2.5, 0.1], [1.0, 10.0]], np.float32)[..., None]
    db = SarScaling(input="linear", db_range=[-25, 0])
    np.testing.assert_allclose(to_unit(linear, db)[..., 0], [[0.0, 0.6], [1.0, 1.0]], atol=1e-6)
    # auto: non-negative floats are linear intensity, floats with negatives are already dB
    np.testing.assert_allclose(to_unit(linear, SarScaling(db_range=[-25, 0])), to_unit(linear, db))
    in_db = 10 * np.log10(linear)
    np.testing.assert_allclose(to_unit(in_db, SarScaling(db_range=[-25, 0])), to_unit(linear, db), atol=1e-6)
    amplitude = np.sqrt(linear)
    from_amplitude = to_unit(amplitude, SarScaling(input="amplitude", db_range=[-25, 0]))
    np.testing.assert_allclose(from_amplitude, to_unit(linear, db), atol=1e-5)
    ramp = np.arange(101, dtype=np.float32)[:, None, None] - 50.0  # dB values -50..50
    clipped = to_unit(ramp, SarScaling(percentiles=[10, 90]))[..., 0, 0]
    assert clipped[10] == 0.0 and clipped[90] == 1.0 and clipped[50] == pytest.approx(0.5)
    assert to_unit(np.array([[[0], [255]]], np.uint8), SarScaling()).tolist() == [[[0.0], [1.0]]]
    assert to_unit(np.array([[[-500], [0], [32767]]], np.int16), SarScaling()).tolist() == [[[0.0], [0.0], [1.0]]]
    assert to_unit(linear, SarScaling()).dtype == np.float32
    with pytest.raises(Sar2OptError, match=r"Expected SAR input \(--sar-input\) among"):
        to_unit(linear, SarScaling(input="decibel"))
    with pytest.raises(Sar2OptError, match="received clip"):
        SarScaling.from_config({"clip": [1, 99]})


def test_sar_band_of_a_dual_pol_stack_is_scaled_on_its_own():
    """The band in use is chosen before the percentile stretch: a VH band ~10 dB below VV must not
    shift the stretch of VV (it did when all bands were stretched together, then VH dropped)."""
    rng = np.random.default_rng(0)
    vv = rng.uniform(-20.0, -5.0, (32, 32, 1)).astype(np.float32)
    vh = vv - 10.0 + rng.normal(0.0, 1.0, vv.shape).astype(np.float32)
    stack = np.concatenate([vv, vh], axis=-1)
    np.testing.assert_array_equal(to_unit(stack, SarScaling()), to_unit(vv, SarScaling()))
    np.testing.assert_array_equal(to_unit(stack, SarScaling(band=2)), to_unit(vh, SarScaling()))
    assert to_unit(stack, SarScaling()).shape == (32, 32, 1) and to_unit(vv, SarScaling()).min() == 0.0
    six = np.concatenate([stack] * 3, axis=-1)
    np.testing.assert_array_equal(
        to_unit(six, SarScaling(band=4, db_range=[-25, 0])), to_unit(vh, SarScaling(db_range=[-25, 0]))
    )
    with pytest.raises(Sar2OptError, match=r"Expected SAR band 3 in s1\.tif, received 2 bands"):
        to_unit(stack, SarScaling(band=3), "s1.tif")
    with pytest.raises(
        Sar2OptError, match="Expected 1 to 4 SAR bands in s1.tif, received 6: choose one with --sar-band"
    ):
        to_unit(six, SarScaling(), "s1.tif")
    for band in (0, True, "2", 1.0):
        with pytest.raises(
            Sar2OptError, match=rf"Expected the SAR band \(--sar-band\) as a number counted from 1, received {band!r}"
        ):
            to_unit(stack, SarScaling(band=band))


def test_sar_options_given_replace_a_runs_one_by_one():
    run = SarScaling(input="linear", db_range=[-25, 0], band=2)
    assert run.merged(None) == run and run.to_config() == {"input": "linear", "db_range": [-25, 0], "band": 2}
    assert run.merged(SarScaling(band=1)) == SarScaling(input="linear", db_range=(-25, 0), band=1)
    # A stretch given replaces the run's stretch of either kind (db_range would win over percentiles).
    assert run.merged(SarScaling(percentiles=[2, 98])) == SarScaling(input="linear", percentiles=(2, 98), band=2)
    assert SarScaling(percentiles=[2, 98]).merged(SarScaling(db_range=[-20, 5])) == SarScaling(db_range=(-20, 5))
    assert SarScaling.from_config(None) is None and SarScaling.from_config({"band": None}) is None


def test_sar_scaling_that_does_not_fit_the_values_is_warned_about(caplog):
    rng = np.random.default_rng(0)
    linear = rng.gamma(1.0, 0.05, (16, 16, 1)).astype(np.float32)
    db = 10 * np.log10(linear)
    dual = np.concatenate([db, linear], axis=-1)  # judged on the band in use
    cases = [
        (
            db,
            SarScaling(input="linear"),
            "s1.tif are mostly negative, as dB values are, not linear intensity: pass --sar-input db",
        ),
        (dual, SarScaling(input="amplitude", band=1), "are mostly negative, as dB values are, not amplitude"),
        (
            linear,
            SarScaling(input="db", db_range=[-25, 0]),
            f"s1.tif lie between 0 and {linear.max():.3g} (median {np.median(linear):.3g}), as linear intensity does, "
            "not dB: pass --sar-input linear (or amplitude)",
        ),
        (
            np.zeros((4, 4, 1), np.uint8),
            SarScaling(db_range=[-25, 0]),
            "s1.tif are integers, scaled as a display image: --db-range has no effect (pass --sar-input db",
        ),
    ]
    for values, options, message in cases:
        caplog.clear()
        with caplog.at_level("WARNING"):
            warn_if_sar_scaling_mismatches(values, options, "s1.tif")
        assert len(caplog.messages) == 1 and message in caplog.messages[0], (options, caplog.messages)
    caplog.clear()
    with caplog.at_level("WARNING"):
        for values, options in (
            (db, SarScaling()),
            (db, SarScaling(input="db")),
            (linear, SarScaling(input="linear")),
            (linear, SarScaling()),
            (dual, SarScaling(input="linear", band=2)),
            (np.zeros((4, 4, 1), np.uint16), SarScaling(input="amplitude")),
        ):
            warn_if_sar_scaling_mismatches(values, options, "s1.tif")
    assert not caplog.records


def test_optical_bands_and_range_map_stored_values_to_unit():
    reflectance = np.array([[[0, 300, 1500], [3000, 4500, 10000]]], np.uint16)  # Sentinel-2 L2A x10000
    assert optical_to_unit(reflectance).max() < 0.16  # by bit depth: dark
    scaled = optical_to_unit(reflectance, OpticalScaling(range=[0, 3000]))
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [[[0.0, 0.1, 0.5], [1.0, 1.0, 1.0]]], atol=1e-6)
    floats = np.array([[[0.0, 0.15, 0.3, 0.6]]], np.float32)
    np.testing.assert_allclose(
        optical_to_unit(floats, OpticalScaling(range=(0.0, 0.3))), [[[0.0, 0.5, 1.0, 1.0]]], atol=1e-6
    )
    np.testing.assert_array_equal(optical_to_unit(reflectance), to_unit(reflectance))
    stack = np.arange(13, dtype=np.uint16).reshape(1, 1, 13) * 100  # a 13-band Sentinel-2 pixel, B1..B12
    rgb = optical_to_unit(stack, OpticalScaling(bands=[4, 3, 2], range=[0, 1200]))
    np.testing.assert_allclose(rgb, [[[0.25, 1 / 6, 1 / 12]]], atol=1e-6)
    np.testing.assert_allclose(optical_to_unit(stack, OpticalScaling(bands=[8])), [[[700 / 65535]]], atol=1e-7)
    with pytest.raises(Sar2OptError, match=r"Expected optical band 14 in s2\.tif, received 13 bands"):
        optical_to_unit(stack, OpticalScaling(bands=[14, 3, 2]), "s2.tif")
    for options, message in (
        (
            {"bands": [4, 3]},
            r"optical bands \(--optical-bands\) as 1 or 3 band numbers counted from 1, received \[4, 3\]",
        ),
        ({"bands": [0]}, r"received \[0\]"),
        (
            {"range": [3000, 0]},
            r"optical range \(--optical-range\) as \[low, high\] finite with low < high, received \[3000, 0\]",
        ),
        ({"scale": 2}, "Expected optical options among bands, range, received scale"),
    ):
        with pytest.raises(Sar2OptError, match=message):
            OpticalScaling.from_config(options)
    with pytest.raises(
        Sar2OptError, match=r"db_range \(--db-range\) as \[low, high\] finite with low < high, received \[0, -25\]"
    ):
        to_unit(floats, SarScaling(db_range=[0, -25]))
    with pytest.raises(Sar2OptError, match=r"received \[0, inf\]"):
        to_unit(floats, SarScaling(db_range=[0, float("inf")]))


def test_channels_to_three_and_one():
    grey = np.arange(4, dtype=np.float32).reshape(2, 2, 1)
    assert to_channels(grey).shape == (2, 2, 3) and np.all(to_channels(grey) == grey)
    rgba = np.random.default_rng(0).random((2, 2, 4)).astype(np.float32)
    np.testing.assert_array_equal(to_channels(rgba), rgba[..., :3])
    np.testing.assert_allclose(to_channels(rgba[..., :3], 1)[..., 0], rgba[..., :3].mean(-1), rtol=1e-6)
    with pytest.raises(Sar2OptError, match="Expected 1 to 4 channels in band13.tif, received 13"):
        to_channels(np.zeros((2, 2, 13)), 3, "band13.tif")


def test_write_png_round_trip(tmp_path):
    image = np.random.default_rng(1).random((5, 7, 3)).astype(np.float32)
    path = write_png(tmp_path / "out" / "x.png", image)
    np.testing.assert_allclose(to_unit(read_image(path)), image, atol=0.5 / 255 + 1e-6)


def test_truncated_jpeg_and_unknown_extension(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.random.default_rng(2).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[: len(data) // 2])  # OpenCV would decode it partially
    with pytest.raises(Sar2OptError, match="a.jpg, which is truncated"):
        read_image(tmp_path / "a.jpg")
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(Sar2OptError, match="Expected an image ending in .png.*a.bmp"):
        read_image(tmp_path / "a.bmp")
