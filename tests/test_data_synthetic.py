"""The synthetic benchmark: real speckle statistics, distinct presets, determinism, real layouts, the CLI."""

import json
import math

import numpy as np
import pytest
from scipy.special import polygamma
from scipy.stats import gamma, kstest

from benchmarks.calibrate_synthetic import autocorrelation, enl90
from keras_sar2opt import cli
from keras_sar2opt.data import find_pairs, load_split
from keras_sar2opt.data.io import read_image
from keras_sar2opt.data.scaling import linear_to_db
from keras_sar2opt.data.synthetic import (
    BUILDINGS,
    CLASS_NAMES,
    FIELDS,
    PRESETS,
    generate_pair,
    simulate_sar,
    speckle_field,
    uniform_scene,
    write_synthetic,
)
from keras_sar2opt.errors import Sar2OptError


def homogeneous_intensity(preset, size=512, seed=0):
    return simulate_sar(uniform_scene(size, FIELDS), preset, np.random.default_rng(seed))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_speckle_coefficient_of_variation_is_one_over_root_looks(name):
    preset = PRESETS[name]
    intensity = homogeneous_intensity(preset)
    expected = 1.0 / math.sqrt(preset.looks)
    assert intensity.std() / intensity.mean() == pytest.approx(expected, rel=0.10)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_speckle_is_gamma_in_every_pixel_and_correlated_as_the_preset_says(name):
    preset = PRESETS[name]
    field = speckle_field((256, 256), preset.looks, preset.speckle_correlation, np.random.default_rng(3))
    # Every pixel follows Gamma(looks, 1/looks) however correlated the field is.
    sample = field[::4, ::4].ravel()  # pixels 4 apart: nearly independent draws
    assert kstest(sample, gamma(preset.looks, scale=1 / preset.looks).cdf).pvalue > 0.01
    white = speckle_field((256, 256), preset.looks, 0.0, np.random.default_rng(3))
    assert abs(autocorrelation(white)[1]) < 0.02
    assert autocorrelation(field)[1] > 0.5  # correlated over the sensor's point spread


def test_db_spread_of_homogeneous_areas_is_the_gamma_speckles():
    # Spread in dB of one homogeneous object: 10/ln10 * sqrt(trigamma(L)): 3.9 dB at 2 looks, 5.57 dB single-look.
    for preset in PRESETS.values():
        flat = linear_to_db(homogeneous_intensity(preset))
        assert flat.std() == pytest.approx(10 / math.log(10) * math.sqrt(polygamma(1, preset.looks)), rel=0.05)


# Real 8-bit pairs measured by benchmarks/calibrate_synthetic.py (means over the images), two
# measurements of each: 30 SEN1-2 pairs (Kaggle radiometry) and 7 QXSLAB-SAROPT pairs, then other
# pairs of the same sets. The values are the figures, never the files (a clone has no real data).
REAL = {
    "sentinel": (
        {"sar_mean": 135.2, "sar_std": 49.5, "enl90": 52.9, "rgb": (89.8, 100.7, 95.0), "optical_std": 46.2},
        {"sar_mean": 135.0, "sar_std": 48.0, "enl90": 47.0, "rgb": (86.0, 97.0, 90.0), "optical_std": 45.0},
    ),
    "qxslab": (
        {"sar_mean": 71.6, "sar_std": 44.9, "enl90": 7.46, "rgb": (105.1, 93.7, 88.9), "optical_std": 39.6},
        {"sar_mean": 62.0, "sar_std": 42.0, "enl90": 7.7, "rgb": (95.0, 91.0, 88.0), "optical_std": 39.0},
    ),
}


def preset_statistics(name, pairs=40):
    pairs = [generate_pair(name, 256, seed=5, index=i) for i in range(pairs)]
    return {
        "sar_mean": np.mean([p.sar.mean() for p in pairs]),
        "sar_std": np.mean([p.sar.std() for p in pairs]),
        "enl90": np.mean([enl90(p.sar) for p in pairs]),
        "rgb": np.mean([p.optical.reshape(-1, 3).mean(axis=0) for p in pairs], axis=0),
        "optical_std": np.mean([p.optical.std() for p in pairs]),
    }


def test_presets_match_real_sar_and_optical_statistics_within_the_acceptance_bounds():
    measured = {name: preset_statistics(name) for name in PRESETS}
    for name, synthetic in measured.items():
        for real in REAL[name]:
            assert abs(synthetic["sar_mean"] - real["sar_mean"]) <= 20, (name, synthetic, real)
            assert abs(synthetic["sar_std"] / real["sar_std"] - 1) <= 0.25, (name, synthetic, real)
            assert 1 / 1.5 <= synthetic["enl90"] / real["enl90"] <= 1.5, (name, synthetic, real)
            assert np.all(np.abs(synthetic["rgb"] - real["rgb"]) <= 20), (name, synthetic, real)
            assert abs(synthetic["optical_std"] / real["optical_std"] - 1) <= 0.25, (name, synthetic, real)
    # As in the real data: QXSLAB's single-look metre-scale SAR is darker and far more speckled than SEN1-2.
    assert measured["qxslab"]["sar_mean"] < measured["sentinel"]["sar_mean"] - 30
    assert measured["qxslab"]["enl90"] * 3 < measured["sentinel"]["enl90"]


def test_enl90_is_the_looks_of_flat_amplitude_speckle():
    # Single-look amplitude (Rayleigh) has mean^2/variance = (pi/4) / (1 - pi/4) = 3.66 in every window;
    # the 90th percentile over 9x9 windows lies above it, and more looks give a higher ENL90.
    rng = np.random.default_rng(0)
    amplitude = {looks: 80 * np.sqrt(rng.gamma(looks, 1 / looks, (256, 256))) for looks in (1, 4)}
    single, four = (enl90(np.clip(amplitude[looks], 0, 255).astype(np.uint8)) for looks in (1, 4))
    assert 3.66 < single < 8 and four > 2.5 * single


def test_scenes_hold_every_class_and_bright_buildings():
    preset = PRESETS["qxslab"]
    seen, urban = set(), 0
    for index in range(20):
        pair = generate_pair(preset, 128, seed=1, index=index)
        seen |= set(np.unique(pair.scene.classes).tolist())
        buildings = pair.scene.classes == BUILDINGS
        if buildings.mean() > 0.05:
            urban += 1
            assert np.median(pair.sar[buildings]) > np.median(pair.sar[~buildings])  # roofs, double bounce
    assert seen == set(range(len(CLASS_NAMES))) and urban >= 2


def test_pairs_are_deterministic_per_seed_and_index():
    first = generate_pair("sentinel", 64, seed=3, index=5)
    again = generate_pair("sentinel", 64, seed=3, index=5)
    np.testing.assert_array_equal(first.sar, again.sar)
    np.testing.assert_array_equal(first.optical, again.optical)
    assert first.sar.shape == (64, 64) and first.optical.shape == (64, 64, 3) and first.sar.dtype == np.uint8
    assert not np.array_equal(first.sar, generate_pair("sentinel", 64, seed=4, index=5).sar)
    assert not np.array_equal(first.optical, generate_pair("sentinel", 64, seed=3, index=6).optical)


@pytest.mark.parametrize("layout, preset", [("qxslab", "qxslab"), ("sen12", "sentinel"), ("sar2optical", "sentinel")])
def test_write_synthetic_writes_the_real_layout(layout, preset, tmp_path):
    root = write_synthetic(tmp_path / "out", preset, 10, layout, size=32, seed=2, progress=False)
    pair_set = find_pairs(root)
    assert pair_set.layout == layout and len(pair_set) == 10 and not pair_set.ignored
    sar, optical = read_image(pair_set.pairs[0].sar), read_image(pair_set.pairs[0].optical)
    assert sar.shape == (32, 32, 1) and optical.shape == (32, 32, 3)
    info = json.loads((root / "synthetic.json").read_text())
    assert info["synthetic"] is True and info["preset"]["name"] == preset and "not real" in info["note"]
    if layout == "qxslab":
        assert (root / "QXSLAB_SAROPT" / "sar_32_oc_0.2" / "10.png").is_file()
    if layout == "sar2optical":
        split = load_split(root / "split.json")
        assert {k: len(v) for k, v in split.items()} == {"train": 8, "val": 1, "test": 1}
        assert split == pair_set.split


def test_same_seed_writes_the_same_files(tmp_path):
    write_synthetic(tmp_path / "a", "qxslab", 3, "qxslab", size=32, seed=9, progress=False)
    write_synthetic(tmp_path / "b", "qxslab", 5, "qxslab", size=32, seed=9, progress=False)
    for folder in ("sar_32_oc_0.2", "opt_32_oc_0.2"):
        for n in (1, 2, 3):
            a = (tmp_path / "a" / "QXSLAB_SAROPT" / folder / f"{n}.png").read_bytes()
            assert a == (tmp_path / "b" / "QXSLAB_SAROPT" / folder / f"{n}.png").read_bytes()


def test_write_synthetic_rejects_bad_arguments(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("user data")
    with pytest.raises(Sar2OptError, match="used, which is not empty"):
        write_synthetic(tmp_path / "used", "qxslab", 2, "qxslab")
    with pytest.raises(Sar2OptError, match="preset among sentinel, qxslab, received 'gf3'"):
        write_synthetic(tmp_path / "new", "gf3", 2, "qxslab")
    with pytest.raises(Sar2OptError, match="layout among qxslab, sen12, sar2optical, received 'folders'"):
        write_synthetic(tmp_path / "new", "qxslab", 2, "folders")
    with pytest.raises(Sar2OptError, match="positive number of pairs, received 0"):
        write_synthetic(tmp_path / "new", "qxslab", 0, "qxslab")


def test_make_synthetic_command(tmp_path, capsys):
    out = tmp_path / "bench"
    assert cli.main(["make-synthetic", "--preset", "qxslab", "--pairs", "4", "--size", "32", str(out)]) == 0
    assert "wrote 4 simulated qxslab pairs" in capsys.readouterr().out
    assert find_pairs(out).layout == "qxslab" and len(find_pairs(out)) == 4
    assert (
        cli.main(["make-synthetic", "--preset", "sentinel", "--pairs", "3", "--size", "32", "-o", str(tmp_path / "s")])
        == 0
    )
    assert find_pairs(tmp_path / "s").layout == "sen12"
    capsys.readouterr()
    for outputs, given in (([], "neither"), ([str(tmp_path / "a"), "-o", str(tmp_path / "b")], "both")):
        assert cli.main(["make-synthetic", "--preset", "qxslab", "--pairs", "4", *outputs]) == 2
        error = capsys.readouterr().err.strip()
        assert error.endswith(f"Expected the output folder as OUT or -o OUT, received {given}")
    assert cli.main(["make-synthetic", "--preset", "qxslab", "--pairs", "4", str(out)]) == 1
    assert f"{out}, which is not empty" in capsys.readouterr().err
    assert cli.main(["make-synthetic", "--preset", "landsat", "--pairs", "4", str(tmp_path / "x")]) == 1
    assert "received 'landsat'" in capsys.readouterr().err


def test_training_data_is_rewritten_when_its_synthetic_json_was_cut_short(tmp_path):
    from keras_sar2opt.runs import RunOptions
    from keras_sar2opt.training.prepare import prepare_data

    settings = {"image_size": 16, "seed": 0, "options": RunOptions(pairs=4)}
    prepare_data(None, tmp_path, **settings)
    (info,) = (tmp_path / "data").glob("*/synthetic.json")
    info.write_text(info.read_text()[:20])  # a write cut short
    again, synthetic = prepare_data(None, tmp_path, **settings)
    assert len(again.pairs) == 4 and json.loads(info.read_text())["pairs"] == synthetic["pairs"] == 4


def test_make_synthetic_under_a_file_is_one_line(tmp_path, cli_error):
    blocker = tmp_path / "file.png"
    blocker.write_bytes(b"not a folder")
    for out in (blocker / "ms", blocker):
        line = cli_error(["make-synthetic", "--preset", "qxslab", "--pairs", "2", "--size", "32", str(out)])
        assert (
            line == f"sar2opt make-synthetic: error: Expected a writable output folder, received {out} "
            f"({blocker} is a file)"
        )
