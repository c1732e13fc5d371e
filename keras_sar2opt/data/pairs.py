"""Finding and checking SAR/optical pairs (data/README.md): locate the dataset layout, match pairs by name,
check every pair, skip or refuse bad ones."""

import csv
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from keras_sar2opt.data.io import check_optical_bands, check_sar_band, inspect_image
from keras_sar2opt.data.layouts import LAYOUTS, ON_BAD, Pair, PairSet, Skipped, natural_key, read_sar2optical_split
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.files import atomic_path

logger = logging.getLogger(__name__)


def _listing(root):
    """What `root` holds, for error messages."""
    if not root.is_dir():
        return "a file"
    names = sorted(entry.name for entry in root.iterdir())
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _locate(root, layout):
    if not root.exists():
        raise Sar2OptError(f"Expected a dataset folder or CSV file, received {root}, which does not exist")
    if root.is_dir() and not any(root.iterdir()):
        raise Sar2OptError(f"Expected image pairs in {root}, received an empty folder")
    if layout != "auto":
        base = LAYOUTS[layout].detect(root)
        if base is None:
            raise Sar2OptError(f"Expected the {LAYOUTS[layout].title} layout at {root}, received {_listing(root)}")
        return layout, base
    found = _detect_layouts(root)
    if not found:
        titles = ", ".join(spec.title for spec in LAYOUTS.values())
        raise Sar2OptError(f"Expected a known dataset layout ({titles}) at {root}, received {_listing(root)}")
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise Sar2OptError(f"Expected one dataset layout at {root}, received several ({names}); pass the layout")
    return found[0]


def _detect_layouts(root):
    """[(layout name, base folder)] of every layout whose files are found at `root`."""
    return [(name, base) for name, spec in LAYOUTS.items() if (base := spec.detect(root)) is not None]


def dataset_sar_files(root):
    """The SAR files of the one dataset layout detected at folder `root` (unchecked), or None."""
    found = _detect_layouts(Path(root))
    if len(found) != 1:
        return None
    name, base = found[0]
    scan = LAYOUTS[name].scan(base)
    return sorted(scan.sar.values(), key=lambda path: natural_key(str(path))) or None


def check_pair(pair, optical_bands=None, sar_band=None):
    """Raise `Sar2OptError` naming the file if a pair cannot be used (see `inspect_image`), its
    images holding the `optical_bands` and `sar_band` asked for (see `check_optical_bands`,
    `check_sar_band`)."""
    sar, optical = inspect_image(pair.sar), inspect_image(pair.optical)
    if sar[:2] != optical[:2]:
        raise Sar2OptError(
            f"Expected {pair.optical} to be {sar.height}x{sar.width} like its SAR partner {pair.sar}, "
            f"received {optical.height}x{optical.width}"
        )
    check_sar_band(sar.channels, sar_band, pair.sar)
    check_optical_bands(optical.channels, optical_bands, pair.optical)


def _problem(candidate, optical_bands=None, sar_band=None):
    """The error message of a candidate (name, sar path or None, optical path or None), or None."""
    name, sar, optical = candidate
    if optical is None:
        return f"Expected an optical partner for {sar} (pair {name!r}), received none"
    if sar is None:
        return f"Expected a SAR partner for {optical} (pair {name!r}), received none"
    try:
        check_pair(Pair(name, sar, optical), optical_bands, sar_band)
    except Sar2OptError as error:
        return str(error)
    return None


def _resolve_split(split_file, by_name, on_bad, skipped):
    split, already_skipped = {}, {s.name for s in skipped}
    for split_name, entries in read_sar2optical_split(split_file).items():
        split[split_name] = []
        for entry in entries:
            if entry.name in by_name:
                split[split_name].append(by_name[entry.name])
            elif entry.name not in already_skipped:
                reason = f"Expected {entry.sar} listed in {split_file} to be a valid pair, received no such pair"
                if on_bad == "error":
                    raise Sar2OptError(reason)
                skipped.append(Skipped(entry.name, reason))
    return split


def find_pairs(root, layout="auto", on_bad="error", optical_bands=None, sar_band=None):
    """Find the SAR/optical pairs under `root` (a folder, or a CSV of sar,optical[,name] paths).

    Pairs are matched by name (never by sort order); files not named like the layout are
    ignored, and every pair is checked (missing partner, empty, truncated or unreadable file,
    non-finite TIFF values, partners of different sizes, SAR and optical images without the
    `sar_band` and `optical_bands` asked for or, without them, of more than 4 bands). `on_bad="error"` raises
    `Sar2OptError` naming the first bad file; `"skip"` leaves bad pairs out and lists them in
    `PairSet.skipped` (see `save_skipped`). A SAR2Optical `split.json` fills `PairSet.split`.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise Sar2OptError(f"Expected layout among auto, {', '.join(LAYOUTS)}, received {layout!r}")
    if on_bad not in ON_BAD:
        raise Sar2OptError(f"Expected on_bad (--on-bad) among {', '.join(ON_BAD)}, received {on_bad!r}")
    try:
        root = Path(root).expanduser().resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a symbolic link loop
        raise Sar2OptError(f"Expected a dataset folder or CSV file, received {root} ({error})") from None
    name, base = _locate(root, layout)
    scan = LAYOUTS[name].scan(base)
    names = sorted(scan.sar.keys() | scan.optical.keys(), key=natural_key)
    if not names:
        raise Sar2OptError(
            f"Expected pairs in the {LAYOUTS[name].title} layout at {base}, "
            f"received none ({len(scan.ignored)} files not named like the layout)"
        )
    candidates = [(n, scan.sar.get(n), scan.optical.get(n)) for n in names]
    with ThreadPoolExecutor(max_workers=8) as pool:
        check = functools.partial(_problem, optical_bands=optical_bands, sar_band=sar_band)
        problems = list(
            tqdm(
                pool.map(check, candidates),
                total=len(candidates),
                desc="Checking pairs",
                unit="pair",
                leave=False,
                disable=len(candidates) < 2000,
            )
        )
    pairs, skipped = [], []
    for (pair_name, sar, optical), problem in zip(candidates, problems):
        if problem is None:
            pairs.append(Pair(pair_name, sar, optical))
        elif on_bad == "error":
            raise Sar2OptError(problem)
        else:
            skipped.append(Skipped(pair_name, problem))
    split = None
    if scan.split_file is not None:
        split = _resolve_split(scan.split_file, {p.name: p for p in pairs}, on_bad, skipped)
    if not pairs:
        raise Sar2OptError(f"Expected at least one valid pair at {base}, received none ({len(skipped)} skipped)")
    result = PairSet(pairs, name, base, split, scan.split_file, skipped, scan.ignored, detected=layout == "auto")
    logger.info(result.describe())
    return result


def save_skipped(pair_set, path):
    """Write the pairs skipped under `on_bad="skip"` as a CSV (name, reason), atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "reason"])
        writer.writerows(pair_set.skipped)
    return path
