"""The synthetic presets measured beside real SAR/optical pairs (docs/synthetic.md).

    python benchmarks/calibrate_synthetic.py DATA_ROOT [--pairs 200]

Finds every dataset layout under DATA_ROOT with the package's own detection (`find_pairs`, bad or
missing pairs skipped), measures each real set and the preset that imitates it (SEN1-2 and
SAR2Optical: `sentinel`; QXSLAB-SAROPT: `qxslab`) the same way on 8-bit images, and prints them
side by side with each statistic checked against the acceptance bounds of docs/synthetic.md.
The constants of keras_sar2opt/data/synthetic.py come from this table. Exits 1 if a bound fails.
"""

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from keras_sar2opt.data import find_pairs
from keras_sar2opt.data.io import read_image, to_channels
from keras_sar2opt.data.layouts import LAYOUTS
from keras_sar2opt.data.synthetic import generate_pair
from keras_sar2opt.errors import Sar2OptError

PRESET_OF_LAYOUT = {"sar2optical": "sentinel", "sen12": "sentinel", "qxslab": "qxslab"}
ENL_WINDOW = 9  # pixels; windows with a local mean above ENL_MIN_MEAN count
ENL_MIN_MEAN = 20.0
CORRELATION_HALF = 0.5  # texture scale: the lag (pixels) where the autocorrelation falls to one half
MAX_LAG = 64


class Measure(NamedTuple):
    label: str
    bound: str  # "abs N": within N levels; "rel F": within F of the real value; "factor F": within x/÷ F
    value: object  # (sar uint8 HxW, optical uint8 HxWx3) -> float


def enl90(sar):
    """ENL over homogeneous regions: the 90th percentile, over 9x9 windows with a local mean above 20, of
    mean^2 / variance of the 8-bit SAR (windows wholly inside the image)."""
    image = sar.astype(np.float64)
    mean = cv2.blur(image, (ENL_WINDOW, ENL_WINDOW))
    variance = cv2.blur(image * image, (ENL_WINDOW, ENL_WINDOW)) - mean * mean
    half = ENL_WINDOW // 2
    mean, variance = mean[half:-half, half:-half], variance[half:-half, half:-half]
    kept = (mean > ENL_MIN_MEAN) & (variance > 0)
    return float(np.percentile(mean[kept] ** 2 / variance[kept], 90)) if kept.any() else float("nan")


def autocorrelation(image):
    """Autocorrelation of an image along rows and columns (averaged) at lags 0..MAX_LAG, 1 at lag 0."""
    centred = image.astype(np.float64) - image.mean()
    power = np.abs(np.fft.rfft2(centred, s=[2 * n for n in centred.shape])) ** 2  # zero padded: no wrap-around
    correlation = np.fft.irfft2(power)
    lags = np.arange(MAX_LAG + 1)
    values = (correlation[0, lags] + correlation[lags, 0]) / 2
    return values / values[0]


def correlation_length(image):
    """Texture scale: the first lag (pixels, interpolated) at which the autocorrelation falls to one half."""
    values = autocorrelation(image)
    below = np.flatnonzero(values < CORRELATION_HALF)
    if not below.size:
        return float(MAX_LAG)
    lag = below[0]
    return float(lag - 1 + (values[lag - 1] - CORRELATION_HALF) / (values[lag - 1] - values[lag]))


def _percentile(q):
    return lambda sar, optical: float(np.percentile(sar, q))


MEASURES = (
    Measure("SAR mean", "abs 20", lambda sar, optical: float(sar.mean())),
    Measure("SAR std", "rel 0.25", lambda sar, optical: float(sar.std())),
    Measure("SAR p5", "", _percentile(5)),
    Measure("SAR median", "", _percentile(50)),
    Measure("SAR p95", "", _percentile(95)),
    Measure("SAR ENL90", "factor 1.5", lambda sar, optical: enl90(sar)),
    Measure("SAR lag-1 corr.", "", lambda sar, optical: float(autocorrelation(sar)[1])),
    Measure("optical R mean", "abs 20", lambda sar, optical: float(optical[..., 0].mean())),
    Measure("optical G mean", "abs 20", lambda sar, optical: float(optical[..., 1].mean())),
    Measure("optical B mean", "abs 20", lambda sar, optical: float(optical[..., 2].mean())),
    Measure("optical std", "rel 0.25", lambda sar, optical: float(optical.std())),
    Measure("optical texture px", "factor 1.5", lambda sar, optical: correlation_length(optical.mean(axis=-1))),
    Measure("SAR texture px (median 5)", "factor 1.5", lambda sar, optical: correlation_length(cv2.medianBlur(sar, 5))),
)


def measure(pairs):
    """Means over the images of every measure: {label: value}, for (sar, optical) 8-bit images."""
    rows = np.array([[m.value(sar, optical) for m in MEASURES] for sar, optical in pairs])
    return dict(zip((m.label for m in MEASURES), np.nanmean(rows, axis=0)))


def within(bound, synthetic, real):
    """True, False, or None where a measure has no acceptance bound."""
    if not bound:
        return None
    kind, size = bound.split()
    size = float(size)
    if kind == "abs":
        return bool(abs(synthetic - real) <= size)
    if kind == "rel":
        return bool(abs(synthetic - real) <= size * real)
    return bool(real / size <= synthetic <= real * size)


def real_datasets(root, max_depth=3):
    """[(layout, folder)] of every SEN1-2, SAR2Optical and QXSLAB-SAROPT set found at or below `root`."""
    found, root = [], Path(root)
    for folder, subfolders, _ in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        if depth >= max_depth:
            subfolders.clear()
        for layout in PRESET_OF_LAYOUT:
            if LAYOUTS[layout].detect(Path(folder)) is not None:
                found.append((layout, Path(folder)))
                subfolders.clear()  # a dataset's own folders hold no other dataset
    return found


def real_pairs(pair_set):
    """8-bit (SAR HxW, optical HxWx3) images of a PairSet; other kinds of file are left out."""
    for pair in pair_set.pairs:
        sar, optical = read_image(pair.sar), read_image(pair.optical)
        if sar.dtype == np.uint8 and optical.dtype == np.uint8:
            yield to_channels(sar, 1)[..., 0], to_channels(optical, 3)


def synthetic_pairs(preset, count, size=256, seed=0):
    for index in range(count):
        pair = generate_pair(preset, size, seed, index)
        yield pair.sar, pair.optical


def generation_speed(preset, size=256, count=200):
    """Synthetic pairs generated per second: (one thread, per second of that thread's CPU time,
    os.cpu_count() threads as write_synthetic draws them)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for index in range(count):
        generate_pair(preset, size, 1, index)
    one_thread = count / (time.perf_counter() - wall), count / (time.thread_time() - cpu)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(lambda index: generate_pair(preset, size, 2, index), range(count)))
    return (*one_thread, count / (time.perf_counter() - start))


def print_table(title, real, synthetic, real_count, synthetic_count):
    """Print one real set beside its preset; returns the number of failed bounds."""
    print(f"\n{title}: {real_count} real pairs, {synthetic_count} synthetic pairs (means over the images)")
    print(f"| {'measure':<26} | {'real':>8} | {'synthetic':>9} | {'bound':<10} | check |")
    print(f"|{'-' * 28}|{'-' * 10}|{'-' * 11}|{'-' * 12}|-------|")
    failed = 0
    for m in MEASURES:
        verdict = within(m.bound, synthetic[m.label], real[m.label])
        failed += verdict is False
        check = "" if verdict is None else ("pass" if verdict else "FAIL")
        print(f"| {m.label:<26} | {real[m.label]:8.2f} | {synthetic[m.label]:9.2f} | {m.bound:<10} | {check:<5} |")
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", metavar="DATA_ROOT", help="folder holding real datasets in known layouts")
    parser.add_argument("--pairs", type=int, default=200, help="synthetic pairs measured per preset (default 200)")
    args = parser.parse_args(argv)
    datasets = real_datasets(args.data_root)
    if not datasets:
        print(f"calibrate_synthetic: error: Expected SEN1-2, SAR2Optical or QXSLAB-SAROPT pairs under {args.data_root}")
        return 1
    failed, darker = 0, {}
    for layout, folder in datasets:
        try:
            pair_set = find_pairs(folder, layout=layout, on_bad="skip")
        except Sar2OptError as error:
            print(f"{folder}: {error}")
            continue
        images = list(real_pairs(pair_set))
        if not images:
            print(f"{folder}: no 8-bit pairs to measure")
            continue
        preset = PRESET_OF_LAYOUT[layout]
        real = measure(images)
        synthetic = measure(synthetic_pairs(preset, args.pairs))
        title = f"{LAYOUTS[layout].title} at {folder} against preset {preset!r}"
        failed += print_table(title, real, synthetic, len(images), args.pairs)
        darker[preset] = real["SAR mean"], synthetic["SAR mean"]
    if {"sentinel", "qxslab"} <= darker.keys():
        real_order = darker["qxslab"][0] < darker["sentinel"][0]
        synthetic_order = darker["qxslab"][1] < darker["sentinel"][1]
        verdict = "pass" if real_order == synthetic_order else "FAIL"
        failed += verdict == "FAIL"
        print(f"\nqxslab SAR darker than sentinel: real {real_order}, synthetic {synthetic_order}: {verdict}")
    print(f"\ngeneration speed at 256x256 ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}):")
    for preset in ("sentinel", "qxslab"):
        wall, cpu, threads = generation_speed(preset)
        print(
            f"  {preset}: {wall:.0f} pairs/s on one thread ({cpu:.0f} per second of its CPU time), "
            f"{threads:.0f} pairs/s on {os.cpu_count()} threads"
        )
    print(f"\n{'all bounds hold' if not failed else f'{failed} bounds fail'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
