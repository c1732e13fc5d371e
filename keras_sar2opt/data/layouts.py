"""Dataset layouts (data/README.md): how QXSLAB-SAROPT, SEN1-2, SAR2Optical, plain folders and CSV lists
name their SAR/optical pairs, and SAR2Optical's split.json."""

import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from keras_sar2opt.data.io import IMAGE_EXTENSIONS
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.text import counted

ON_BAD = ("error", "skip")
SPLIT_NAMES = ("train", "val", "test")


class Pair(NamedTuple):
    """One SAR/optical pair; `name` identifies it within its dataset (used by split files)."""

    name: str
    sar: Path
    optical: Path


class Skipped(NamedTuple):
    """A pair left out under `on_bad="skip"`; `reason` is the one-line error naming the file."""

    name: str
    reason: str


@dataclass
class PairSet:
    """The pairs found under `root`, in natural name order, and what was left out."""

    pairs: list
    layout: str
    root: Path
    split: dict = None  # split name -> [Pair], from a SAR2Optical split.json
    split_file: Path = None  # that split.json
    skipped: list = field(default_factory=list)  # [Skipped] bad pairs (on_bad="skip")
    ignored: list = field(default_factory=list)  # files not named like the layout
    detected: bool = False  # True when the layout was found by layout="auto"

    def __len__(self):
        return len(self.pairs)

    def describe(self):
        """One line saying which layout was found and what was kept, skipped and ignored."""
        how = "detected" if self.detected else "given"
        text = f"{LAYOUTS[self.layout].title} layout ({how}) at {self.root}: {counted(len(self.pairs), 'pair')}"
        if self.split is not None:
            text += " with split.json (" + ", ".join(f"{len(v)} {k}" for k, v in self.split.items()) + ")"
        if self.skipped:
            text += f"; {len(self.skipped)} bad pairs skipped"
        if self.ignored:
            text += f"; {len(self.ignored)} files not named like the layout ignored"
        return text


class _Scan(NamedTuple):
    sar: dict  # pair name -> path
    optical: dict
    ignored: list
    split_file: Path = None


class Layout(NamedTuple):
    title: str
    detect: Callable  # root -> the layout's base path, or None
    scan: Callable  # base -> _Scan


def natural_key(name):
    """Sort key ordering "p2" before "p10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _subdirs(folder):
    return sorted(entry for entry in folder.iterdir() if entry.is_dir()) if folder.is_dir() else []


def _is_listed_file(entry):
    """A file, or a symbolic link that loops or leads nowhere (`entry`: a DirEntry or Path): listed,
    so that checking its pair names it (`inspect_image`) rather than leaving it out unnoticed."""
    try:
        if entry.is_file():
            return True
    except OSError:  # DirEntry.is_file raises on a symbolic link loop
        return True
    return entry.is_symlink() and not os.path.exists(entry)


def _collect(folder, match, sar, optical, ignored):
    """File `folder/x` goes to sar or optical under name key when match(x) gives (key, is_sar)."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not _is_listed_file(entry):
            continue
        found = match(entry.name)
        if found is None:
            ignored.append(Path(entry.path))
        else:
            key, is_sar = found
            (sar if is_sar else optical)[key] = Path(entry.path)


# QXSLAB-SAROPT: QXSLAB_SAROPT/sar_256_oc_0.2/<n>.png <-> opt_256_oc_0.2/<n>.png
_QXSLAB_DIR = re.compile(r"sar_(.+)")
_QXSLAB_FILE = re.compile(r"(\d+)\.png")


def _qxslab_dirs(folder):
    dirs = []
    for sar_dir in _subdirs(folder):
        match = _QXSLAB_DIR.fullmatch(sar_dir.name)
        if match and (folder / f"opt_{match.group(1)}").is_dir():
            dirs.append((sar_dir, folder / f"opt_{match.group(1)}"))
    return dirs


def _detect_qxslab(root):
    return next((folder for folder in (root, root / "QXSLAB_SAROPT") if _qxslab_dirs(folder)), None)


def _scan_qxslab(base):
    dirs = _qxslab_dirs(base)
    if len(dirs) > 1:
        names = ", ".join(sar_dir.name for sar_dir, _ in dirs)
        raise Sar2OptError(f"Expected one sar_*/opt_* folder pair in {base}, received several: {names}")
    sar, optical, ignored = {}, {}, []
    for folder, is_sar in zip(dirs[0], (True, False)):

        def match(name, is_sar=is_sar):
            m = _QXSLAB_FILE.fullmatch(name)
            return None if m is None else (m.group(1), is_sar)

        _collect(folder, match, sar, optical, ignored)
    return _Scan(sar, optical, ignored)


# SEN1-2: ROIs1158_spring/s1_<k>/ROIs1158_spring_s1_<k>_p<n>.png <-> .../s2_<k>/..._s2_<k>_p<n>.png
_SEN12_ROI = re.compile(r"ROIs\d+_(?:spring|summer|fall|winter)")
_SEN12_SCENE = re.compile(r"s([12])_(\d+)")
_SEN12_FILE = re.compile(r"(ROIs\d+_(?:spring|summer|fall|winter))_s([12])_(\d+)_p(\d+)\.png")


def _sen12_rois(root):
    folders = (
        [root]
        if _SEN12_ROI.fullmatch(root.name)
        else [folder for folder in _subdirs(root) if _SEN12_ROI.fullmatch(folder.name)]
    )
    return [f for f in folders if any(_SEN12_SCENE.fullmatch(d.name) for d in _subdirs(f))]


def _detect_sen12(root):
    return root if _sen12_rois(root) else None


def _scan_sen12(base):
    sar, optical, ignored = {}, {}, []
    for roi in _sen12_rois(base):
        for scene in _subdirs(roi):
            folder = _SEN12_SCENE.fullmatch(scene.name)
            if folder is None:
                continue

            def match(name, roi=roi.name, sensor=folder.group(1), k=folder.group(2)):
                m = _SEN12_FILE.fullmatch(name)
                if m is None or m.group(1, 2, 3) != (roi, sensor, k):  # e.g. a file filed under another scene
                    return None
                return f"{roi}_{k}_p{m.group(4)}", sensor == "1"

            _collect(scene, match, sar, optical, ignored)
    return _Scan(sar, optical, ignored)


# SAR2Optical (Kaggle "sentinel12-image-pairs-segregated-by-terrain"): v_2/<category>/s1/<SEN1-2 name>
# <-> v_2/<category>/s2/<SEN1-2 name with s2>, optional split.json next to v_2.
def _sar2optical_categories(base):
    return [folder for folder in _subdirs(base) if (folder / "s1").is_dir() and (folder / "s2").is_dir()]


def _detect_sar2optical(root):
    return next((base for base in (root / "v_2", root) if _sar2optical_categories(base)), None)


def _sar2optical_match(category, sensor):
    def match(name):
        m = _SEN12_FILE.fullmatch(name)
        if m is None or m.group(2) != sensor:
            return None
        return f"{category}/{m.group(1)}_{m.group(3)}_p{m.group(4)}", sensor == "1"

    return match


def _scan_sar2optical(base):
    sar, optical, ignored = {}, {}, []
    for category in _sar2optical_categories(base):
        for sensor in ("1", "2"):
            _collect(category / f"s{sensor}", _sar2optical_match(category.name, sensor), sar, optical, ignored)
    split_file = next((p for p in (base / "split.json", base.parent / "split.json") if p.is_file()), None)
    return _Scan(sar, optical, ignored, split_file)


def sar2optical_pair(base, sar_relative, source):
    """The Pair of a SAR2Optical split.json entry such as "urban/s1/ROIs1970_fall_s1_47_p421.png"."""
    parts = Path(sar_relative).parts
    found = _sar2optical_match(parts[0], "1")(parts[-1]) if len(parts) == 3 and parts[1] == "s1" else None
    if found is None:
        raise Sar2OptError(
            f"Expected entries like 'urban/s1/ROIs1970_fall_s1_47_p421.png' in {source}, received {sar_relative!r}"
        )
    category, file_name = parts[0], parts[2]
    optical_name = re.sub(r"_s1_(\d+_p\d+\.png)$", r"_s2_\1", file_name)
    return Pair(found[0], base / category / "s1" / file_name, base / category / "s2" / optical_name)


def read_sar2optical_split(path):
    """Read a SAR2Optical split.json ({"data": {"train": [...], ...}}) as split -> [Pair].

    Entries are relative to the `v_2` folder beside the file (or the file's own folder).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())["data"]
        if not all(isinstance(entry, str) for name in SPLIT_NAMES for entry in data.get(name, [])):
            raise TypeError("entries that are not strings")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise Sar2OptError(f"Expected a split.json with a 'data' object, received {path} ({error!r})") from None
    base = path.parent / "v_2" if (path.parent / "v_2").is_dir() else path.parent
    return {name: [sar2optical_pair(base, entry, path) for entry in data[name]] for name in SPLIT_NAMES if name in data}


# Generic: <root>/sar/<stem>.<ext> <-> <root>/optical/<stem>.<ext> (or opt/), or a CSV of paths.
_FOLDER_NAMES = ({"sar"}, {"optical", "opt"})


def _generic_dirs(root):
    found = [[d for d in _subdirs(root) if d.name.lower() in names] for names in _FOLDER_NAMES]
    return (found[0][0], found[1][0]) if all(len(f) == 1 for f in found) else None


def _detect_folders(root):
    return root if _generic_dirs(root) else None


def _scan_folders(base):
    sar, optical, ignored = {}, {}, []
    for folder, is_sar in zip(_generic_dirs(base), (True, False)):
        seen = {}
        for entry in sorted(f for f in folder.iterdir() if _is_listed_file(f)):
            if entry.suffix.lower() not in IMAGE_EXTENSIONS:
                ignored.append(entry)
                continue
            if entry.stem in seen:
                raise Sar2OptError(f"Expected one image per name in {folder}, received {seen[entry.stem]} and {entry}")
            seen[entry.stem] = entry
        (sar if is_sar else optical).update(seen)
    return _Scan(sar, optical, ignored)


def _detect_csv(root):
    if root.is_file():
        return root if root.suffix.lower() == ".csv" else None
    return root / "pairs.csv" if (root / "pairs.csv").is_file() else None


def _scan_csv(path):
    sar, optical = {}, {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"sar", "optical"} - set(reader.fieldnames or ())
            if missing:
                raise Sar2OptError(f"Expected columns sar and optical in {path}, received {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                if not row["sar"] or not row["optical"]:
                    raise Sar2OptError(f"Expected a sar and an optical path on line {line} of {path}, received {row}")
                name = row.get("name") or Path(row["sar"]).stem
                if name in sar:
                    raise Sar2OptError(f"Expected unique pair names in {path}, received {name!r} again on line {line}")
                sar[name], optical[name] = path.parent / row["sar"], path.parent / row["optical"]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise Sar2OptError(f"Expected a readable UTF-8 CSV of sar,optical paths, received {path} ({error})") from None
    return _Scan(sar, optical, [])


LAYOUTS = {
    "qxslab": Layout("QXSLAB-SAROPT", _detect_qxslab, _scan_qxslab),
    "sen12": Layout("SEN1-2", _detect_sen12, _scan_sen12),
    "sar2optical": Layout("SAR2Optical (Kaggle)", _detect_sar2optical, _scan_sar2optical),
    "folders": Layout("sar/optical folders", _detect_folders, _scan_folders),
    "csv": Layout("CSV", _detect_csv, _scan_csv),
}
