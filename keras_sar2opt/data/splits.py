"""Seeded train/val/test splits (80/10/10, report Table 6) and the split file a run writes."""

import json
import math
from pathlib import Path

import numpy as np

from keras_sar2opt.data.layouts import SPLIT_NAMES, Pair, natural_key, read_sar2optical_split
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.reports.files import write_text

SPLIT_FORMAT = "keras_sar2opt.split/1"


def split_pairs(pairs, seed=0, fractions=(0.8, 0.1, 0.1)):
    """Shuffle `pairs` with `seed` and cut them into {"train", "val", "test"}.

    The result depends only on the pairs' names and the seed, not on the order they come in.
    Val and test get floor(n * fraction) pairs each; train gets the rest (20,000 -> 16,000 /
    2,000 / 2,000 as in Table 6).
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise Sar2OptError(f"Expected three non-negative split fractions summing to 1, received {fractions}")
    ordered = sorted(pairs, key=lambda pair: natural_key(pair.name))
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    n_val, n_test = (math.floor(len(ordered) * f + 1e-9) for f in fractions[1:])
    n_train = len(ordered) - n_val - n_test
    return {
        "train": shuffled[:n_train],
        "val": shuffled[n_train:n_train + n_val],
        "test": shuffled[n_train + n_val:],
    }


def save_split(split, path):
    """Write a split ({"train": [Pair], ...}) as JSON with each pair's name and absolute paths (atomically)."""
    data = {"format": SPLIT_FORMAT}
    for name, pairs in split.items():
        data[name] = [
            {"name": p.name, "sar": str(Path(p.sar).resolve()), "optical": str(Path(p.optical).resolve())}
            for p in pairs
        ]
    return write_text(path, json.dumps(data, indent=1) + "\n")


def load_split(path):
    """Read a split file written by `save_split` or a SAR2Optical `split.json` as {split: [Pair]}.

    Every listed file must exist, so a stale split fails here, naming the file, not mid-epoch.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise Sar2OptError(f"Expected a readable JSON split file, received {path} ({error})") from None
    if isinstance(data, dict) and "data" in data:
        split = read_sar2optical_split(path)
    elif isinstance(data, dict) and data.get("format") == SPLIT_FORMAT:
        split = {
            name: [Pair(e["name"], Path(e["sar"]), Path(e["optical"])) for e in data[name]]
            for name in SPLIT_NAMES if name in data
        }
    else:
        raise Sar2OptError(f"Expected a split file from save_split or a SAR2Optical split.json, received {path}")
    for pairs in split.values():
        for pair in pairs:
            for file in (pair.sar, pair.optical):
                if not file.is_file():
                    raise Sar2OptError(f"Expected {file} listed in {path} to exist, received a missing file")
    return split
