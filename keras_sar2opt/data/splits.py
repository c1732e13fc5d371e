"""Seeded train/val/test splits (80/10/10, report Table 6) and the split file a run writes."""

import hashlib
import json
import math
import re
from pathlib import Path

from keras_sar2opt.data.layouts import SPLIT_NAMES, Pair, natural_key, read_sar2optical_split
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.files import read_json, write_text

SPLIT_FORMAT = "keras_sar2opt.split/1"


def _seeded_rank(name, seed):
    """A pair's (or area's) place in the seeded random order: a keyed hash of its name alone."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8, key=str(seed).encode("utf-8")).digest()
    return int.from_bytes(digest, "big"), natural_key(name)


def split_pairs(pairs, seed=0, fractions=(0.8, 0.1, 0.1), group=None):
    """Order `pairs` randomly with `seed` and cut them into {"train", "val", "test"}.

    Each pair's place in the order depends only on its name and the seed (a keyed hash), so the
    split does not depend on the order pairs come in, and adding or removing pairs moves none of
    the others to another side beyond the few at the cuts. Val and test get floor(n * fraction)
    pairs each, at least one from three pairs on; train gets the rest (20,000 -> 16,000 / 2,000 /
    2,000 as in Table 6). group: a regular expression whose first group (or whole match) in a
    pair's name names its scene or area; whole areas are then taken in their seeded order and dealt
    to val and test until each holds its share, the rest to train, so that no area is on two sides.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise Sar2OptError(f"Expected three non-negative split fractions summing to 1, received {fractions}")
    # Under ten pairs a tenth rounds down to none; from three pairs on, val and test still get one each.
    smallest = int(len(pairs) >= 3)
    n_val, n_test = (max(math.floor(len(pairs) * f + 1e-9), smallest if f > 0 else 0) for f in fractions[1:])
    if group is None:
        shuffled = sorted(pairs, key=lambda pair: _seeded_rank(pair.name, seed))
        n_train = len(shuffled) - n_val - n_test
        return {
            "train": shuffled[:n_train],
            "val": shuffled[n_train : n_train + n_val],
            "test": shuffled[n_train + n_val :],
        }
    pattern = check_split_group(group)
    groups = {}
    for pair in sorted(pairs, key=lambda pair: natural_key(pair.name)):
        groups.setdefault(group_key(pair.name, pattern), []).append(pair)
    split = {"train": [], "val": [], "test": []}
    for key in sorted(groups, key=lambda key: _seeded_rank(key, seed)):
        name = "val" if len(split["val"]) < n_val else "test" if len(split["test"]) < n_test else "train"
        split[name] += groups[key]
    return {name: sorted(members, key=lambda pair: natural_key(pair.name)) for name, members in split.items()}


def check_split_group(pattern):
    """The compiled `pattern` of --split-group; Sar2OptError, naming it, if it does not compile."""
    try:
        return re.compile(pattern)
    except re.error as error:
        raise Sar2OptError(
            f"Expected --split-group to be a regular expression, received {pattern!r} ({error})"
        ) from None


def group_key(name, pattern):
    """The area a pair belongs to: the first group (or the whole match) of compiled `pattern` in `name`."""
    match = pattern.search(name)
    if match is None:
        raise Sar2OptError(f"Expected --split-group {pattern.pattern!r} to match every pair name, received {name!r}")
    return match.group(1) if pattern.groups else match.group(0)


def save_split(split, path):
    """Write a split ({"train": [Pair], ...}) as JSON with each pair's name and absolute paths (atomically)."""
    data = {"format": SPLIT_FORMAT}
    for name, pairs in split.items():
        data[name] = [
            {"name": p.name, "sar": str(Path(p.sar).resolve()), "optical": str(Path(p.optical).resolve())}
            for p in pairs
        ]
    return write_text(path, json.dumps(data, indent=1) + "\n")


def _read_split(path):
    """{split: [Pair]} as a split file written by `save_split` or a SAR2Optical `split.json` lists them."""
    path = Path(path)
    data = read_json(path, "JSON split file")
    if isinstance(data, dict) and "data" in data:
        return read_sar2optical_split(path)
    if isinstance(data, dict) and data.get("format") == SPLIT_FORMAT:
        return {
            name: [Pair(e["name"], Path(e["sar"]), Path(e["optical"])) for e in data[name]]
            for name in SPLIT_NAMES
            if name in data
        }
    raise Sar2OptError(f"Expected a split file from save_split or a SAR2Optical split.json, received {path}")


def load_split(path):
    """Read a split file written by `save_split` or a SAR2Optical `split.json` as {split: [Pair]}.

    Every listed file must exist, so a stale split fails here, naming the file, not mid-epoch.
    """
    split = _read_split(path)
    for pairs in split.values():
        for pair in pairs:
            for file in (pair.sar, pair.optical):
                if not file.is_file():
                    raise Sar2OptError(f"Expected {file} listed in {path} to exist, received a missing file")
    return split


def split_of(path, pair_set):
    """The split file `path` applied to the pairs of `pair_set`, matched by name, so a split still
    holds for its dataset moved or copied elsewhere. Pairs the data scan skipped are left out."""
    by_name = {pair.name: pair for pair in pair_set.pairs}
    skipped = {entry.name for entry in pair_set.skipped}
    split = {}
    for name, pairs in _read_split(path).items():
        pairs = [pair for pair in pairs if pair.name not in skipped]
        missing = next((pair.name for pair in pairs if pair.name not in by_name), None)
        if missing is not None:
            raise Sar2OptError(
                f"Expected the pairs of {path} among those of {pair_set.root}, received {missing!r}, which it lacks"
            )
        split[name] = [by_name[pair.name] for pair in pairs]
    return split
