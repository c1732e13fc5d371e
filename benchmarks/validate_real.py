"""The package run on a folder of real SAR/optical samples as a user would, one line per check.

    python benchmarks/validate_real.py DATA_ROOT [--work DIR]

Checks, each skipped when DATA_ROOT holds nothing of its kind: layout detection and pairing of every
SEN1-2, SAR2Optical and QXSLAB-SAROPT set; SAR2Optical's split.json with a partial download
(`--on-bad error` refuses in one line, `--on-bad skip` keeps the pairs present and says how many it
skipped); `sar2opt train` for one epoch (one step) of each family on the largest real set, and on
a set of under ten pairs, which keeps one validation and one test pair; `sar2opt evaluate` of the trained Pix2Pix
on its run's test pairs; `sar2opt translate` of every Sentinel-1 GeoTIFF kind (2-band dB, one
file per polarisation, a patch smaller than a tile, EPSG:4326 and UTM) keeping CRS and transform,
and of a copy with a NaN swath edge, which must come out masked.
Commands go through `keras_sar2opt.cli.main`, as the `sar2opt` command does; their output is
kept in WORK/logs. Exits 1 if a check fails.
"""

import argparse
import contextlib
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.calibrate_synthetic import real_datasets
from keras_sar2opt import cli
from keras_sar2opt.data import find_pairs
from keras_sar2opt.data.layouts import LAYOUTS
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.text import counted

ONE_STEP = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--on-bad", "skip", "--verbose", "2"]
SEN12_DB = ["--sar-input", "db", "--db-range", "-25", "0"]  # SEN1-2's stretch: [-25, 0] dB to 0..255
TILE = 256  # the Pix2Pix generator's input


class Checks:
    """Prints one line per check and counts failures."""

    def __init__(self, work):
        self.work, self.failed, self.commands = work, 0, 0

    def report(self, passed, name, detail):
        self.failed += passed is False
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[passed]
        print(f"{verdict}  {name}: {detail}", flush=True)

    def sar2opt(self, *argv):
        """Run `sar2opt ARGV` in this process, its output into WORK/logs; returns (exit code, log path)."""
        self.commands += 1
        log = self.work / "logs" / f"{self.commands:02d}_{argv[0]}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
            print("sar2opt", " ".join(map(str, argv)), flush=True)
            try:
                code = cli.main([str(a) for a in argv])
            except SystemExit as exit_:  # argparse's errors exit 2
                code = exit_.code
        return code, log


def _last_line(log):
    lines = [line for line in Path(log).read_text().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def check_layouts(checks, datasets):
    """Layout detection and pairing: every pair's optical file has its SAR file's scene and patch."""
    pair_sets = {}
    for layout, folder in datasets:
        pair_set = find_pairs(folder, on_bad="skip")
        partner = {"qxslab": lambda p: p.sar.name, "sen12": lambda p: p.sar.name.replace("_s1_", "_s2_")}
        expected = partner.get(layout, partner["sen12"])
        mismatched = [p for p in pair_set.pairs if p.optical.name != expected(p)]
        passed = pair_set.layout == layout and pair_set.detected and len(pair_set) > 0 and not mismatched
        detail = pair_set.describe()
        if mismatched:
            detail += f"; {len(mismatched)} pairs matched to a wrongly named optical file, e.g. {mismatched[0]}"
        checks.report(passed, f"layout detection and pairing ({LAYOUTS[layout].title})", detail)
        pair_sets[layout] = (folder, pair_set)
    if not datasets:
        checks.report(None, "layout detection and pairing", "no SEN1-2, SAR2Optical or QXSLAB-SAROPT set found")
    return pair_sets


def check_partial_split(checks, pair_sets):
    """SAR2Optical's split.json listing pairs that are not there: one line under --on-bad error, kept with skip."""
    found = [(folder, ps) for folder, ps in pair_sets.values() if ps.split_file is not None]
    if not found:
        checks.report(None, "split.json with a partial download", "no SAR2Optical split.json found")
        return
    folder, pair_set = found[0]
    try:
        find_pairs(folder, on_bad="error")
        refused = ""
    except Sar2OptError as error:
        refused = str(error)
    listed = sum(len(part) for part in pair_set.split.values())
    passed = "\n" not in refused and "received no such pair" in refused and listed == len(pair_set)
    detail = (
        f"--on-bad error refuses in one line ({refused[:100]}...); --on-bad skip keeps "
        f"{counted(len(pair_set), 'pair')} ({', '.join(f'{len(v)} {k}' for k, v in pair_set.split.items())}) "
        f"and says {len(pair_set.skipped)} bad pairs skipped"
    )
    checks.report(passed, "split.json with a partial download", detail)


def check_training(checks, pair_sets):
    """One epoch of one step of each family on the largest real set (fine-tuning from the Pix2Pix just
    trained), and on each set of under ten pairs. Returns the runs."""
    if not pair_sets:
        checks.report(None, "train", "no real pairs")
        return {}
    largest = max(pair_sets.values(), key=lambda found: len(found[1]))[0]
    runs = {}
    for experiment in ("pix2pix", "finetune-full", "finetune-lora", "scratch", "patchgan", "wgan"):
        run = checks.work / "runs" / experiment
        extra = ["--generator", run.parent / "pix2pix" / "generator.keras"] if experiment.startswith("finetune") else []
        code, log = checks.sar2opt("train", "--experiment", experiment, "--data", largest, "-o", run, *ONE_STEP, *extra)
        history = run / "history.csv"
        rows = history.read_text().splitlines()[1:] if history.is_file() else []
        losses = [float(v) for v in rows[-1].split(",")[1:] if v] if rows else []
        passed = (
            code == 0 and (run / "generator.keras").is_file() and len(rows) == 1 and all(map(math.isfinite, losses))
        )
        skipped = run / "skipped.csv"
        note = (
            f", {len(skipped.read_text().splitlines()) - 1} skipped pairs in skipped.csv" if skipped.is_file() else ""
        )
        detail = f"1 epoch in history.csv, finite losses, generator.keras written{note} ({largest.name})"
        checks.report(passed, f"train {experiment}", detail if passed else f"exit {code}: {_last_line(log)}")
        if passed:
            runs[experiment] = run
    for folder, pair_set in pair_sets.values():
        if len(pair_set) < 10:  # a tenth rounds down to none: the split still keeps one validation pair
            run = checks.work / "runs" / f"small-{folder.name}"
            code, log = checks.sar2opt("train", "--experiment", "patchgan", "--data", folder, "-o", run, *ONE_STEP)
            split = json.loads((run / "split.json").read_text()) if (run / "split.json").is_file() else {}
            sides = {name: len(split.get(name, [])) for name in ("train", "val", "test")}
            passed = code == 0 and sides["val"] == sides["test"] == 1
            detail = f"split {sides}" if code == 0 else f"exit {code}: {_last_line(log)}"
            checks.report(passed, f"train on {counted(len(pair_set), 'pair')} ({folder.name})", detail)
    return runs


def check_evaluate(checks, runs):
    run = runs.get("pix2pix")
    if run is None:
        checks.report(None, "evaluate", "no trained Pix2Pix run")
        return
    out = checks.work / "evaluate-pix2pix"
    code, log = checks.sar2opt("evaluate", "--model", run, "--split-file", run / "split.json", "-o", out)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    metrics = summary.get("metrics", {})
    passed = code == 0 and (out / "per_image.csv").is_file() and all(math.isfinite(v["mean"]) for v in metrics.values())
    shown = ", ".join(f"{name} {value['mean']:.3f}" for name, value in list(metrics.items())[:5])
    detail = f"{run.name} on its run's {counted(summary.get('pairs', 0), 'test pair')}: {shown}"
    detail = detail if passed else f"exit {code}: {_last_line(log)}"
    checks.report(passed, "evaluate", detail)


def _sar_geotiffs(root):
    """Float GeoTIFFs under root (Sentinel-1 backscatter; optical and label rasters are integers)."""
    import rasterio

    found = []
    for path in sorted(Path(root).rglob("*.tif")):
        with rasterio.open(path) as dataset:
            if dataset.dtypes[0].startswith("float"):
                found.append(path)
    return found


def _same_georeference(src, dst):
    import rasterio

    with rasterio.open(src) as a, rasterio.open(dst) as b:
        same = a.crs == b.crs and a.transform.almost_equals(b.transform) and (a.height, a.width) == (b.height, b.width)
        return same, f"{b.crs}, {b.width}x{b.height}, {b.count} bands, transform kept" if same else "georeference lost"


def _translate(checks, run, name, inputs, out, test):
    code, log = checks.sar2opt("translate", "--model", run, *inputs, "-o", out, *SEN12_DB)
    if code != 0:
        checks.report(False, f"translate {name}", f"exit {code}: {_last_line(log)}")
        return
    passed, detail = test()
    checks.report(passed, f"translate {name}", detail)


def _nan_edge_copy(src, dst, columns):
    """`src` with its first `columns` columns set to NaN, as at a swath edge, NaN declared as nodata."""
    import rasterio

    with rasterio.open(src) as dataset:
        profile, bands = dataset.profile, dataset.read()
    bands[:, :, :columns] = np.nan
    profile.update(nodata=np.nan)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(bands)
    return dst


def check_translate(checks, root, runs):
    """translate of each Sentinel-1 GeoTIFF kind with the Pix2Pix run, as SEN1-2-trained models read dB."""
    import rasterio

    run = runs.get("pix2pix")
    sar = _sar_geotiffs(root)
    kinds = {}
    for path in sar:
        with rasterio.open(path) as dataset:
            split = "_VV" in path.stem.upper() or "_VH" in path.stem.upper()
            geographic = dataset.crs is not None and dataset.crs.is_geographic
            key = ("one file per polarisation" if split else f"{dataset.count}-band dB") + (
                ", EPSG:4326" if geographic else ", UTM"
            )
            kinds.setdefault(key, []).append(path)
            if dataset.nodata is not None and np.isnan(dataset.nodata):
                kinds.setdefault("NaN nodata", []).append(path)
    if run is None or not sar:
        checks.report(None, "translate GeoTIFF", "no trained Pix2Pix run" if run is None else "no float GeoTIFF")
        return
    out = checks.work / "translate"
    for key, paths in sorted(kinds.items()):
        if key == "NaN nodata":
            continue
        if key.startswith("one file per polarisation"):
            folders = sorted({p.parent for p in paths})
            dst = out / "polarisation_files"

            def test(folders=folders, dst=dst):
                outputs = sorted(dst.rglob("*.tif"))
                vv = sorted(p for f in folders for p in f.glob("*.tif") if "_VV" in p.stem.upper())
                results = [_same_georeference(p, dst / p.name) for p in vv]
                small = all(rasterio.open(p).width < TILE for p in vv)
                passed = len(outputs) == len(vv) and all(ok for ok, _ in results) and small
                size = "smaller than the 256-px tile, " if small else ""
                return passed, f"{len(folders)} folders, their VV files translated ({size}{results[0][1]})"

            _translate(checks, run, f"{key} (folders)", folders, dst, test)
            continue
        for path in paths:
            dst = out / path.name

            def test(path=path, dst=dst):
                return _same_georeference(path, dst)

            _translate(checks, run, f"{key}, {path.name}", [path], dst, test)
    with tempfile.TemporaryDirectory(dir=checks.work) as scratch:
        holed = [p for p in kinds.get("NaN nodata", [])] or [p for p in sar if "_V" not in p.stem.upper()][:1]
        for path in holed:
            copy = _nan_edge_copy(path, Path(scratch) / f"{path.stem}_nan_edge.tif", 60)
            dst = out / copy.name

            def test(copy=copy, dst=dst):
                with rasterio.open(dst) as dataset:
                    mask = dataset.read_masks(1)
                    black = dataset.read(1)[:, :60].max()
                masked, valid = mask[:, :60].max() == 0, mask[:, 61:].min() == 255
                same, detail = _same_georeference(copy, dst)
                detail = (
                    f"60 NaN columns masked ({'yes' if masked else 'NO'}) and black ({black}), the rest valid; {detail}"
                )
                return masked and valid and same and black == 0, detail

            _translate(checks, run, f"NaN nodata masked ({path.name} with a NaN swath edge)", [copy], dst, test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", metavar="DATA_ROOT", help="folder of real samples")
    parser.add_argument("--work", help="folder for runs, outputs and logs (default: a new temporary folder)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="validate_real_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"validate_real: {args.data_root}, work folder {work}", flush=True)
    checks = Checks(work)
    pair_sets = check_layouts(checks, real_datasets(args.data_root))
    check_partial_split(checks, pair_sets)
    runs = check_training(checks, pair_sets)
    check_evaluate(checks, runs)
    check_translate(checks, args.data_root, runs)
    print("all checks passed" if not checks.failed else f"{checks.failed} checks failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
