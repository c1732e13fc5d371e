"""The synthetic benchmark: real speckle statistics, distinct presets, determinism, real layouts, the CLI."""

import json
import math

import numpy as np
import pytest
from scipy.special import digamma, polygamma

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
    generate_scene,
    simulate_sar,
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


def scene_db(preset, index):
    rng = np.random.default_rng([7, index])
    return linear_to_db(simulate_sar(generate_scene(128, preset, rng), preset, rng))


def test_presets_differ_in_db_mean_and_spread():
    sentinel, qxslab = PRESETS["sentinel"], PRESETS["qxslab"]
    assert sentinel.looks == 4 and qxslab.looks == 1
    # One homogeneous object (the same backscatter draw for both, same seed):
    # spread in dB is the speckle's, 10/ln10 * sqrt(trigamma(L)): 2.31 dB at 4 looks, 5.57 dB single-look;
    # the means differ by the calibration offset plus the log-speckle bias 10/ln10 * (digamma(L) - ln L).
    flat, bias = {}, {}
    for preset in (sentinel, qxslab):
        flat[preset.name] = linear_to_db(homogeneous_intensity(preset))
        expected_spread = 10 / math.log(10) * math.sqrt(polygamma(1, preset.looks))
        assert flat[preset.name].std() == pytest.approx(expected_spread, rel=0.03)
        bias[preset.name] = 10 / math.log(10) * (digamma(preset.looks) - math.log(preset.looks))
    expected_shift = qxslab.calibration_db - sentinel.calibration_db + bias["qxslab"] - bias["sentinel"]
    assert flat["qxslab"].mean() - flat["sentinel"].mean() == pytest.approx(expected_shift, abs=0.1)

    # Whole scenes: qxslab is brighter and more spread in dB, brighter in 8 bits, with a wider range.
    db = {p.name: np.stack([scene_db(p, i) for i in range(12)]) for p in (sentinel, qxslab)}
    pixels = {p.name: np.mean([generate_pair(p, 128, 7, i).sar for i in range(12)]) for p in (sentinel, qxslab)}
    assert db["qxslab"].mean() > db["sentinel"].mean() + 1.0
    assert db["qxslab"].std() > db["sentinel"].std() + 1.0
    assert pixels["qxslab"] > pixels["sentinel"] + 10
    assert qxslab.db_range[1] - qxslab.db_range[0] > sentinel.db_range[1] - sentinel.db_range[0]


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
