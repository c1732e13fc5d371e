"""Dataset layouts: exact pairs in each real layout (with decoys), split.json, and every bad-input error."""

import csv
import json
import re

import cv2
import numpy as np
import pytest
import tifffile

from keras_sar2opt import cli
from keras_sar2opt.data import Pair, find_pairs, load_split, save_skipped
from keras_sar2opt.errors import Sar2OptError


def png(path, size=(16, 16), channels=1, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = size if channels == 1 else (*size, channels)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def train_cli(data, out):
    """`sar2opt train --data DATA`: the command a user meets bad data with."""
    return cli.main(["train", "--experiment", "scratch", "--data", str(data), "--out", str(out)])


def qxslab_tree(root, names, optical_names=None):
    base = root / "QXSLAB_SAROPT"
    for name in names:
        png(base / "sar_256_oc_0.2" / f"{name}.png")
    for name in names if optical_names is None else optical_names:
        png(base / "opt_256_oc_0.2" / f"{name}.png", channels=3)
    return base


def expected(base, sar_dir, optical_dir, names):
    return [Pair(name, base / sar_dir / f"{name}.png", base / optical_dir / f"{name}.png") for name in names]


def test_qxslab_pairs_by_name_and_ignores_decoys(tmp_path):
    base = qxslab_tree(tmp_path, ["1", "2", "10"])
    thumbs = base / "sar_256_oc_0.2" / "Thumbs.db"
    thumbs.write_bytes(b"x")
    decoys = [png(base / "opt_256_oc_0.2" / "2_preview.png"), png(base / "opt_256_oc_0.2" / "10.jpg"), thumbs]
    pair_set = find_pairs(tmp_path)
    assert pair_set.layout == "qxslab" and pair_set.detected
    assert pair_set.root == base.resolve()
    assert pair_set.pairs == expected(base, "sar_256_oc_0.2", "opt_256_oc_0.2", ["1", "2", "10"])
    assert sorted(pair_set.ignored) == sorted(decoys)
    assert "QXSLAB-SAROPT layout (detected)" in pair_set.describe()
    assert find_pairs(base, layout="qxslab").pairs == pair_set.pairs


def test_pairs_match_by_name_not_sort_order(tmp_path):
    # Sorted, SAR 2 would sit opposite optical 3; by name 2 and 4 have no partner.
    base = qxslab_tree(tmp_path, ["1", "2", "3"], optical_names=["1", "3", "4"])
    pair_set = find_pairs(tmp_path, on_bad="skip")
    assert pair_set.pairs == expected(base, "sar_256_oc_0.2", "opt_256_oc_0.2", ["1", "3"])
    assert [s.name for s in pair_set.skipped] == ["2", "4"]
    assert str(base / "sar_256_oc_0.2" / "2.png") in pair_set.skipped[0].reason
    assert str(base / "opt_256_oc_0.2" / "4.png") in pair_set.skipped[1].reason
    written = save_skipped(pair_set, tmp_path / "run" / "skipped_pairs.csv")
    rows = list(csv.DictReader(written.open()))
    assert [row["name"] for row in rows] == ["2", "4"] and "partner" in rows[0]["reason"]


def test_sen12_pairs_and_decoys(tmp_path):
    names = [("ROIs1158_spring", 1, 30), ("ROIs1158_spring", 1, 31), ("ROIs1970_fall", 5, 7)]
    for roi, k, n in names:
        png(tmp_path / roi / f"s1_{k}" / f"{roi}_s1_{k}_p{n}.png")
        png(tmp_path / roi / f"s2_{k}" / f"{roi}_s2_{k}_p{n}.png", channels=3)
    decoys = [
        png(tmp_path / "ROIs1158_spring" / "s2_2" / "ROIs1158_spring_s2_1_p30.png", channels=3),  # wrong scene folder
        png(tmp_path / "ROIs1158_spring" / "s1_1" / "ROIs1158_spring_s1_1_p30 (copy).png"),
        png(tmp_path / "ROIs1970_fall" / "s1_5" / "ROIs1868_summer_s1_5_p7.png"),  # another ROI's name
    ]
    pair_set = find_pairs(tmp_path)
    assert pair_set.layout == "sen12"
    assert pair_set.pairs == [
        Pair(
            f"{roi}_{k}_p{n}",
            tmp_path / roi / f"s1_{k}" / f"{roi}_s1_{k}_p{n}.png",
            tmp_path / roi / f"s2_{k}" / f"{roi}_s2_{k}_p{n}.png",
        )
        for roi, k, n in names
    ]
    assert sorted(pair_set.ignored) == sorted(decoys)


def test_sar2optical_pairs_and_split_json(tmp_path):
    v2 = tmp_path / "v_2"
    entries = {
        "urban": ("ROIs1970_fall", 47, 421),
        "agri": ("ROIs1868_summer", 59, 858),
        "grassland": ("ROIs1970_fall", 11, 18),
    }
    for category, (roi, k, n) in entries.items():
        png(v2 / category / "s1" / f"{roi}_s1_{k}_p{n}.png")
        png(v2 / category / "s2" / f"{roi}_s2_{k}_p{n}.png", channels=3)
    decoy = png(v2 / "agri" / "s2" / "ROIs1970_fall_s1_47_p421.png")  # a SAR name among the optical images
    split = {
        "data": {
            "train": ["urban/s1/ROIs1970_fall_s1_47_p421.png", "agri/s1/ROIs1868_summer_s1_59_p858.png"],
            "val": ["grassland/s1/ROIs1970_fall_s1_11_p18.png"],
            "test": [],
        }
    }
    (tmp_path / "split.json").write_text(json.dumps(split))
    pair_set = find_pairs(tmp_path)
    assert pair_set.layout == "sar2optical" and pair_set.root == v2
    pair = {p.name: p for p in pair_set.pairs}
    assert sorted(pair) == [
        "agri/ROIs1868_summer_59_p858",
        "grassland/ROIs1970_fall_11_p18",
        "urban/ROIs1970_fall_47_p421",
    ]
    assert pair["urban/ROIs1970_fall_47_p421"].optical == v2 / "urban" / "s2" / "ROIs1970_fall_s2_47_p421.png"
    assert pair_set.ignored == [decoy]
    assert pair_set.split == {
        "train": [pair["urban/ROIs1970_fall_47_p421"], pair["agri/ROIs1868_summer_59_p858"]],
        "val": [pair["grassland/ROIs1970_fall_11_p18"]],
        "test": [],
    }
    assert load_split(tmp_path / "split.json") == pair_set.split and pair_set.split_file == tmp_path / "split.json"


def test_folders_and_csv_layouts(tmp_path):
    for name in ("a", "b"):
        png(tmp_path / "sar" / f"{name}.png")
        png(tmp_path / "optical" / f"{name}.png", channels=3)
    decoy = tmp_path / "sar" / "notes.txt"
    decoy.write_text("not an image")
    pair_set = find_pairs(tmp_path)
    assert pair_set.layout == "folders"
    assert pair_set.pairs == expected(tmp_path, "sar", "optical", ["a", "b"]) and pair_set.ignored == [decoy]

    listing = tmp_path / "lists" / "pairs.csv"
    listing.parent.mkdir()
    listing.write_text("name,sar,optical\nfirst,../sar/b.png,../optical/b.png\nsecond,../sar/a.png,../optical/a.png\n")
    pairs = find_pairs(listing).pairs
    assert [(p.name, p.sar.name, p.optical.name) for p in pairs] == [
        ("first", "b.png", "b.png"),
        ("second", "a.png", "a.png"),
    ]
    assert find_pairs(listing.parent, layout="csv").layout == "csv"


def missing_partner(base):
    (base / "opt_256_oc_0.2" / "2.png").unlink()
    return base / "sar_256_oc_0.2" / "2.png"


def unreadable(base):
    bad = base / "opt_256_oc_0.2" / "2.png"
    bad.write_bytes(b"not a png at all")
    return bad


def truncated(base):
    bad = base / "opt_256_oc_0.2" / "2.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return bad


def zero_size(base):
    bad = base / "sar_256_oc_0.2" / "1.png"
    bad.write_bytes(b"")
    return bad


def wrong_size(base):
    return png(base / "opt_256_oc_0.2" / "1.png", size=(16, 12), channels=3)


# Each spoils one file of a good two-pair QXSLAB tree and returns the path the error must name,
# next to a word the error must contain.
BAD_INPUTS = {
    "missing_partner": (missing_partner, "partner"),
    "unreadable": (unreadable, "readable"),
    "truncated": (truncated, "truncated"),
    "zero_size": (zero_size, "empty file"),
    "wrong_size": (wrong_size, "received 16x12"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_pair_is_named_by_library_and_cli(case, tmp_path, capsys):
    base = qxslab_tree(tmp_path / "data", ["1", "2"])
    spoil, word = BAD_INPUTS[case]
    bad = spoil(base)
    with pytest.raises(Sar2OptError, match=re.escape(str(bad))) as raised:
        find_pairs(tmp_path / "data")
    assert word in str(raised.value)
    skipped = find_pairs(tmp_path / "data", on_bad="skip")
    assert len(skipped.pairs) == 1 and len(skipped.skipped) == 1
    assert train_cli(tmp_path / "data", tmp_path / "run") == 1
    error = capsys.readouterr().err
    assert str(bad) in error and "Traceback" not in error and len(error.strip().splitlines()) == 1


def test_non_finite_tiff_is_named(tmp_path, capsys):
    png(tmp_path / "optical" / "a.png", channels=3)
    (tmp_path / "sar").mkdir()
    values = np.ones((16, 16), np.float32)
    values[3, 4] = np.nan
    tifffile.imwrite(tmp_path / "sar" / "a.tif", values)
    with pytest.raises(Sar2OptError, match=re.escape(str(tmp_path / "sar" / "a.tif")) + ".*NaN or infinite"):
        find_pairs(tmp_path)
    assert train_cli(tmp_path, tmp_path / "run") == 1
    assert "a.tif" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["empty folder", "unknown layout", "missing folder"])
def test_unusable_folder_is_named(case, tmp_path, capsys):
    root = tmp_path / "data"
    if case != "missing folder":
        root.mkdir()
    if case == "unknown layout":
        png(root / "images" / "x.png")
    with pytest.raises(Sar2OptError, match=re.escape(str(root))):
        find_pairs(root)
    assert train_cli(root, tmp_path / "run") == 1
    assert str(root) in capsys.readouterr().err


def test_bad_layout_and_policy_names(tmp_path):
    qxslab_tree(tmp_path, ["1"])
    with pytest.raises(Sar2OptError, match="Expected layout among auto, qxslab, sen12, sar2optical.*received 'kaggle'"):
        find_pairs(tmp_path, layout="kaggle")
    with pytest.raises(Sar2OptError, match="received 'ignore'"):
        find_pairs(tmp_path, on_bad="ignore")
    with pytest.raises(Sar2OptError, match="Expected the SEN1-2 layout"):
        find_pairs(tmp_path, layout="sen12")


def test_split_json_naming_a_missing_pair(tmp_path):
    png(tmp_path / "v_2" / "urban" / "s1" / "ROIs1970_fall_s1_47_p421.png")
    png(tmp_path / "v_2" / "urban" / "s2" / "ROIs1970_fall_s2_47_p421.png", channels=3)
    split = {"data": {"train": ["urban/s1/ROIs1970_fall_s1_47_p421.png", "urban/s1/ROIs1970_fall_s1_47_p999.png"]}}
    (tmp_path / "split.json").write_text(json.dumps(split))
    with pytest.raises(Sar2OptError, match=r"ROIs1970_fall_s1_47_p999\.png listed in .*split\.json"):
        find_pairs(tmp_path)
    pair_set = find_pairs(tmp_path, on_bad="skip")
    assert len(pair_set.split["train"]) == 1 and len(pair_set.skipped) == 1
