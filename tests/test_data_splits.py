"""Seeded 80/10/10 splits (Table 6) and the split file a run writes and reloads."""

import json
import random
from pathlib import Path

import pytest

from keras_sar2opt.data import Pair, load_split, save_split, split_pairs
from keras_sar2opt.errors import Sar2OptError


def fake_pairs(count):
    return [Pair(str(n), Path(f"sar/{n}.png"), Path(f"opt/{n}.png")) for n in range(1, count + 1)]


def test_table_6_counts_disjoint_and_complete():
    pairs = fake_pairs(20000)
    split = split_pairs(pairs, seed=0)
    assert {name: len(part) for name, part in split.items()} == {"train": 16000, "val": 2000, "test": 2000}
    names = [p.name for part in split.values() for p in part]
    assert sorted(names) == sorted(p.name for p in pairs)
    assert {k: len(v) for k, v in split_pairs(fake_pairs(10)).items()} == {"train": 8, "val": 1, "test": 1}
    # A handful of real pairs (QXSLAB-SAROPT's 7 samples) still trains and validates.
    assert {k: len(v) for k, v in split_pairs(fake_pairs(7)).items()} == {"train": 5, "val": 1, "test": 1}
    assert {k: len(v) for k, v in split_pairs(fake_pairs(2)).items()} == {"train": 2, "val": 0, "test": 0}
    assert {k: len(v) for k, v in split_pairs(fake_pairs(30), fractions=(0.5, 0.3, 0.2)).items()} == {
        "train": 15,
        "val": 9,
        "test": 6,
    }


def test_split_depends_on_seed_not_on_input_order():
    pairs = fake_pairs(200)
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    assert split_pairs(pairs, seed=3) == split_pairs(shuffled, seed=3)
    assert split_pairs(pairs, seed=3)["val"] != split_pairs(pairs, seed=4)["val"]


def _sides(split):
    return {pair.name: side for side, part in split.items() for pair in part}


def test_removing_or_adding_pairs_leaves_the_others_on_their_sides():
    """A pair skipped as bad, or new files added, must not reshuffle the split (test pairs into training)."""
    pairs = fake_pairs(1000)
    before = _sides(split_pairs(pairs, seed=0))
    # At most one pair per changed pair and per cut moves (an independent reshuffle moves about 340).
    for changed, limit in ((pairs[:417] + pairs[418:], 1 + 2), (pairs + fake_pairs(1010)[1000:], 10 + 2)):
        after = _sides(split_pairs(changed, seed=0))
        moved = [name for name in before.keys() & after.keys() if before[name] != after[name]]
        assert len(moved) <= limit, moved
        assert sorted(after) == sorted(pair.name for pair in changed)


def scene_pairs(scenes, patches):
    """SEN1-2-style names: ROIs1970_fall_s1_<scene>_p<patch>."""
    return [
        Pair(f"ROIs1970_fall_s1_{scene}_p{patch}", Path(f"sar/{scene}_{patch}.png"), Path(f"opt/{scene}_{patch}.png"))
        for scene in range(scenes)
        for patch in range(patches)
    ]


def test_split_by_area_keeps_every_scene_on_one_side():
    pairs = scene_pairs(40, 25)  # 1,000 patches of 40 scenes
    split = split_pairs(pairs, seed=0, group=r"(.*)_p\d+$")
    scenes = {name: {p.name.rsplit("_p", 1)[0] for p in part} for name, part in split.items()}
    assert not (scenes["train"] & scenes["val"] or scenes["train"] & scenes["test"] or scenes["val"] & scenes["test"])
    assert {name: len(part) for name, part in split.items()} == {"train": 800, "val": 100, "test": 100}
    assert sorted(p.name for part in split.values() for p in part) == sorted(p.name for p in pairs)
    random_split = split_pairs(pairs, seed=0)  # without a group, scenes straddle the sides
    assert {p.name.rsplit("_p", 1)[0] for p in random_split["train"]} & {
        p.name.rsplit("_p", 1)[0] for p in random_split["test"]
    }
    assert split_pairs(pairs, seed=1, group=r"(.*)_p\d+$")["test"] != split["test"]


def test_split_group_that_misses_a_name_or_does_not_compile():
    with pytest.raises(Sar2OptError) as missed:
        split_pairs(scene_pairs(2, 2) + fake_pairs(1), group=r"fall_(\d+)")
    assert str(missed.value) == "Expected --split-group 'fall_(\\\\d+)' to match every pair name, received '1'"
    with pytest.raises(Sar2OptError, match="Expected --split-group to be a regular expression, received '[(]'"):
        split_pairs(fake_pairs(10), group="(")


def test_bad_fractions():
    with pytest.raises(Sar2OptError, match="summing to 1, received"):
        split_pairs(fake_pairs(10), fractions=(0.8, 0.1, 0.2))
    with pytest.raises(Sar2OptError, match="three non-negative"):
        split_pairs(fake_pairs(10), fractions=(0.9, 0.1))


def test_save_and_load_round_trip(tmp_path):
    pairs = []
    for n in range(1, 11):
        sar, optical = tmp_path / "sar" / f"{n}.png", tmp_path / "opt" / f"{n}.png"
        for path in (sar, optical):
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"png")
        pairs.append(Pair(str(n), sar, optical))
    split = split_pairs(pairs, seed=5)
    path = save_split(split, tmp_path / "run" / "split.json")
    assert load_split(path) == split
    assert json.loads(path.read_text())["val"][0].keys() == {"name", "sar", "optical"}
    (tmp_path / "sar" / f"{split['test'][0].name}.png").unlink()
    with pytest.raises(Sar2OptError, match=rf"{split['test'][0].name}\.png listed in .*split\.json to exist"):
        load_split(path)
    (tmp_path / "other.json").write_text('{"train": []}')
    with pytest.raises(Sar2OptError, match="Expected a split file from save_split or a SAR2Optical split.json"):
        load_split(tmp_path / "other.json")
