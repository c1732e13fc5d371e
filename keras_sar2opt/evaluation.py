"""Evaluation of a generator on a dataset split (report §3.3–§4): per-image metrics, summary, sample grid.

An evaluation folder holds per_image.csv (one row per pair), summary.json (settings, dataset,
mean/std/min/max of every per-image metric, FID and KID when asked for), summary.md and samples.png
(SAR as the model saw it | generated | target). Pairs are resized to the generator's size.
Pixel metrics and the identity-collapse check are always computed and need nothing but the images;
the network metrics (LPIPS, DISTS, FID, KID; docs/metrics.md) are added by name and read weights.
"""

import json
import logging
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from keras_sar2opt import files
from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.data.datasets import describe_dataset
from keras_sar2opt.data.preprocess import describe_steps
from keras_sar2opt.data.scaling import OpticalScaling, SarScaling
from keras_sar2opt.errors import Sar2OptError, UsageError
from keras_sar2opt.paper import EVALUATION_FIGURES
from keras_sar2opt.presets import preset_name
from keras_sar2opt.runs import RunFolder
from keras_sar2opt.text import counted

logger = logging.getLogger(__name__)

FORMAT = "keras_sar2opt.evaluation/1"
SPLITS = ("test", "val", "train", "all")
# metric -> (label, unit); "l1" is the report's L1 loss: mean |generated - target| on [-1, 1].
# "ssim_sar" and "closer_to_sar" check for identity collapse (a generator that copies its SAR input):
# SSIM of the output against the SAR input, and 1 where the output is closer (L1) to the input than to
# the target, so that its mean is the share of such outputs.
METRICS = {
    "psnr": ("PSNR", "dB"),
    "ssim": ("SSIM", ""),
    "mae": ("MAE", "[0, 1] scale"),
    "rmse": ("RMSE", "[0, 1] scale"),
    "sam": ("SAM", "degrees"),
    "l1": ("L1", "[-1, 1] scale"),
    "ssim_sar": ("SSIM to the SAR input", ""),
    "closer_to_sar": ("Closer to the SAR input than to the target", "share"),
}
IDENTITY = ("ssim_sar", "closer_to_sar")
# per-image network metrics, when asked for
NETWORK_METRICS = {"lpips": ("LPIPS", "AlexNet v0.1"), "dists": ("DISTS", "")}
SAMPLE_ROWS = 4
FID_SKIPPED = "FID not computed: add --metrics fid (pytorch-fid's Inception weights are downloaded once)."
PER_IMAGE, SUMMARY_JSON, SUMMARY_MD, SAMPLES = "per_image.csv", "summary.json", "summary.md", "samples.png"
SKIPPED = "skipped.csv"


def select_pairs(
    data, split="test", split_file=None, seed=0, limit=None, on_bad="error", optical_bands=None, sar_band=None
):
    """The pairs of `split` ("test", "val", "train" or "all") of the dataset folder `data`, its
    PairSet, and where the split came from (a line for summaries).

    The split comes from `split_file` (a run's split.json or a SAR2Optical split.json, its pairs
    matched by name), else the dataset's own split.json, else the seeded 80/10/10 split of
    `split_pairs` (as a training run with the same seed makes it). `limit` keeps the first N pairs
    of the split. Pairs are checked by `find_pairs`, their images for `optical_bands` and `sar_band`.
    """
    from keras_sar2opt.data import find_pairs, split_pairs
    from keras_sar2opt.data.splits import split_of

    if split not in SPLITS:
        raise Sar2OptError(f"Expected --split among {', '.join(SPLITS)}, received {split!r}")
    check_positive_int(limit, "--limit", allow_none=True)
    if not Path(data).exists():
        raise Sar2OptError(f"Expected --data to be an existing dataset folder or CSV file, received {data}")
    pair_set = find_pairs(data, on_bad=on_bad, optical_bands=optical_bands, sar_band=sar_band)
    if split == "all":
        return list(pair_set.pairs)[:limit], pair_set, "every pair of the dataset"
    if split_file is not None:
        parts, source = split_of(split_file, pair_set), f"the split file {Path(split_file).resolve()}"
    elif pair_set.split:
        parts, source = pair_set.split, f"the dataset's split file {pair_set.split_file}"
    else:
        parts, source = split_pairs(pair_set.pairs, seed=seed), f"the seeded 80/10/10 split (seed {seed})"
    pairs = list(parts.get(split, []))
    if not pairs:
        raise Sar2OptError(f"Expected pairs in the {split!r} split of {source} for {data}, received none")
    return pairs[:limit], pair_set, source


def training_run_of(split_file):
    """The RunFolder whose split.json `split_file` is, with its "run" settings, or (None, None)."""
    folder = RunFolder(Path(split_file).parent)
    if not folder.exists():
        return None, None
    run = folder.read_config().get("run")
    return (folder, run) if isinstance(run, dict) and "data" in run else (None, None)


def _check_generator(model):
    from keras_sar2opt.model_files import tile_size

    size = tile_size(model)
    if model.outputs[0].shape[-1] != 3:
        raise Sar2OptError(
            f"Expected a generator with 3 output channels, received {model.name} with {model.outputs[0].shape[-1]}"
        )
    return size


def _check_range(generated, model):
    low, high = float(generated.min()), float(generated.max())
    if low < -1.001 or high > 1.001 or not np.isfinite([low, high]).all():
        raise Sar2OptError(
            f"Expected generator outputs in [-1, 1] (tanh), received [{low:g}, {high:g}] from {model.name}"
        )


def _identity_check(sar, generated, optical):
    """SSIM of each output against its SAR input (grey SAR repeated to the output's channels), and 1.0 where
    the output is closer to the input than to the target by mean absolute difference."""
    from keras_sar2opt.metrics import ssim

    sar = np.broadcast_to(sar, generated.shape) if sar.shape[-1] == 1 else sar
    to_sar = np.abs(generated - sar).mean(axis=(1, 2, 3))
    to_target = np.abs(generated - optical).mean(axis=(1, 2, 3))
    return {"ssim_sar": ssim(generated, sar, (-1.0, 1.0)), "closer_to_sar": (to_sar < to_target).astype(np.float64)}


def evaluate_pairs(
    model,
    pairs,
    *,
    preprocessing=None,
    sar_options=None,
    optical_options=None,
    batch_size=8,
    network_metrics=None,
    sample_rows=SAMPLE_ROWS,
    progress=True,
):
    """Translate `pairs` in batches at the generator's size and measure every generated image.

    network_metrics: a metrics.networks.NetworkMetrics, or None.
    Returns (per-image DataFrame with name, sar, optical, the METRICS columns and those of the per-image
    network metrics; the first `sample_rows` (sar, generated, target) arrays in [-1, 1]; {"fid", "kid"}
    of the network metrics asked for).
    """
    import pandas as pd

    from keras_sar2opt.data import make_dataset
    from keras_sar2opt.metrics import compute_all

    check_positive_int(batch_size, "--batch-size")
    check_positive_int(sample_rows, "--samples")
    size = _check_generator(model)
    dataset = make_dataset(
        pairs,
        size,
        batch_size,
        training=False,
        sar_options=sar_options,
        preprocessing=preprocessing,
        sar_channels=model.inputs[0].shape[-1],
        optical_options=optical_options,
    )
    columns = [*METRICS, *(name for name in NETWORK_METRICS if network_metrics and name in network_metrics.names)]
    rows, samples = {name: [] for name in columns}, [[], [], []]
    with tqdm(total=len(pairs), desc="evaluate", unit="image", disable=not progress) as bar:
        for sar, optical in dataset:
            sar, optical = np.asarray(sar), np.asarray(optical)
            generated = np.asarray(model.predict_on_batch(sar), np.float32)
            _check_range(generated, model)
            values = compute_all(generated, optical, (-1.0, 1.0))
            values["l1"] = np.abs(generated - optical).mean(axis=(1, 2, 3), dtype=np.float64)
            values.update(_identity_check(sar, generated, optical))
            if network_metrics is not None:
                values.update(network_metrics.add(*(np.clip((x + 1.0) / 2.0, 0.0, 1.0) for x in (generated, optical))))
            for name in columns:
                rows[name].extend(values[name].tolist())
            taken = sum(len(s) for s in samples[0])
            for column, images in zip(samples, (sar, generated, optical)):
                column.append(images[: max(0, sample_rows - taken)])
            bar.update(len(sar))
    frame = pd.DataFrame(
        {
            "name": [p.name for p in pairs],
            "sar": [str(p.sar) for p in pairs],
            "optical": [str(p.optical) for p in pairs],
        }
    )
    for name in columns:
        frame[name] = rows[name]
    per_set = network_metrics.per_set() if network_metrics is not None else {}
    return frame, [np.concatenate(column) for column in samples], per_set


def summarize(frame):
    """{metric: {"mean", "std", "min", "max"}} over the images of a per-image frame (std with ddof=0)."""
    return {
        name: {
            "mean": float(frame[name].mean()),
            "std": float(frame[name].std(ddof=0)),
            "min": float(frame[name].min()),
            "max": float(frame[name].max()),
        }
        for name in frame.columns
        if name in METRICS or name in NETWORK_METRICS
    }


def model_label(model):
    """A model file with its folder (run folders all hold a generator.keras), or a model's name."""
    path = Path(model)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def describe_scaling(sar_options, optical_options):
    """How SAR and optical values were scaled to [0, 1], from their recorded dicts, e.g. "SAR input db,
    db_range -25..0; optical bands 4 3 2, range 0..3000"."""
    sar, optical = SarScaling.from_config(sar_options), OpticalScaling.from_config(optical_options)
    return f"SAR {sar.describe() if sar else 'auto'}; optical {optical.describe() if optical else 'by bit depth'}"


def summary_markdown(summary):
    """summary.md: the settings and one row per metric with mean ± std."""
    lines = [
        f"# Evaluation of `{model_label(summary['model'])}`",
        "",
        f"- Dataset: {summary['dataset']['label']}",
        f"- Split: {summary['split']} ({counted(summary['pairs'], 'pair')})"
        + (f" of {summary['split_source']}" if summary.get("split_source") else "")
        + (f"; {summary['skipped']} bad pairs of the dataset left out (`{SKIPPED}`)" if summary.get("skipped") else ""),
        f"- SAR preprocessing: {describe_steps(summary['preprocessing'])}",
        f"- Scaling to [0, 1]: {describe_scaling(summary['sar_options'], summary.get('optical_options'))}",
        f"- Image size: {summary['image_size']} px (the generator's input; pairs are resized to it)",
    ]
    if summary["role"]:
        lines.append(f"- Figure role: {summary['role']} ({EVALUATION_FIGURES[summary['role']][0]})")
    lines += ["", "| Metric | Mean ± std | Min | Max |", "|---|---|---|---|"]
    for name, value in summary["metrics"].items():
        label, unit = {**METRICS, **NETWORK_METRICS}[name]
        label = f"{label} ({unit})" if unit else label
        lines.append(
            f"| {label} | {value['mean']:.4f} ± {value['std']:.4f} | {value['min']:.4f} | {value['max']:.4f} |"
        )
    lines += ["", f"FID: {summary['fid']:.4f}" if summary["fid"] is not None else summary["fid_note"]]
    if summary.get("kid"):
        kid = summary["kid"]
        lines.append(f"KID: {kid['mean']:.5f} ± {kid['std']:.5f} ({kid['subsets']} subsets of {kid['subset_size']})")
    lines += ["", f"Standard deviations are over images (ddof=0). Samples: [{SAMPLES}]({SAMPLES})", ""]
    return "\n".join(lines)


def write_evaluation(out, frame, samples, summary):
    """Write per_image.csv, samples.png, summary.json and summary.md into `out` (summary.json last)."""
    from keras_sar2opt.data.grids import write_sample_grid

    out = Path(out)
    files.write_csv(out / PER_IMAGE, frame)
    with files.atomic_path(out / SAMPLES) as temporary:
        write_sample_grid(temporary, *samples)
    files.write_text(out / SUMMARY_MD, summary_markdown(summary))
    files.write_text(out / SUMMARY_JSON, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return out


def evaluate(
    model,
    data,
    out,
    *,
    split="test",
    split_file=None,
    seed=0,
    limit=None,
    preprocessing=None,
    sar_options=None,
    optical_options=None,
    batch_size=8,
    metrics=(),
    metric_weights=None,
    role=None,
    sample_rows=SAMPLE_ROWS,
    upsample_mode="nearest",
    weights_dir=None,
    on_bad=None,
    progress=True,
    loaded=None,
):
    """Evaluate a generator (a keras.Model, a .keras/.pth/.safetensors path or a `preset:NAME`, downloaded
    into `weights_dir` on first use) on a split of `data` and write the evaluation folder `out`; returns
    the summary dict (also in out/summary.json).

    With the split.json of a training run as `split_file`, `data`, `sar_options`, `optical_options`
    (per key: the optical bands and range) and `on_bad` default to the run's (its config.json);
    otherwise `on_bad` defaults to "error".

    metrics: network metrics to add ("lpips", "dists", "fid", "kid", or "all"), their weights downloaded
    into `weights_dir` (default $KERAS_HOME/keras_sar2opt/metrics) on first use unless `metric_weights`
    ({weights key: file}) gives the file.
    role: the report figure these samples stand for ("fig3", "fig4", "fig5", "fig7", "fig9"), or None.
    sample_rows: pairs shown in samples.png. loaded: the keras.Model already read from the file
    `model`, for a caller that evaluates one file several times (it is recorded as that file).
    """
    from keras_sar2opt.data.loading import check_reading_options, warn_about_scaling
    from keras_sar2opt.metrics.networks import NetworkMetrics, check_names, check_weights
    from keras_sar2opt.model_files import load_generator, tile_size

    sar_options, optical_options = SarScaling.from_config(sar_options), OpticalScaling.from_config(optical_options)
    files.check_writable(out, "-o")  # before the data is scanned and the model loads
    if (Path(out) / SUMMARY_JSON).is_file():
        logger.warning(f"Replacing the evaluation in {out}")
    if role is not None and role not in EVALUATION_FIGURES:
        raise Sar2OptError(f"Expected --role among {', '.join(EVALUATION_FIGURES)}, received {role!r}")
    folder, run = training_run_of(split_file) if split_file else (None, None)
    if data is None:
        expected = "Expected --data, or a --split-file in a run folder (its config.json names the data), received"
        if split_file is None:
            raise UsageError(f"{expected} neither")
        if run is None:
            raise Sar2OptError(f"{expected} {split_file} without a config.json beside it")
        data = run["data"]
        if not Path(data).exists():
            raise Sar2OptError(
                f"Expected the run's data {data} (recorded in {folder.config_path}), "
                "received nothing there; if it moved, pass --data NEW_PATH"
            )
    if run is not None:
        recorded = folder.reading()
        sar_options = recorded.sar.merged(sar_options) if recorded.sar else sar_options
        optical_options = recorded.optical.merged(optical_options) if recorded.optical else optical_options
        on_bad = run.get("on_bad") if on_bad is None else on_bad
    on_bad = on_bad or "error"
    steps = [(step, {}) if isinstance(step, str) else tuple(step) for step in preprocessing or ()]
    check_reading_options(sar_options, optical_options, steps)  # before the model loads
    metrics, metric_weights = check_names(metrics), check_weights(metric_weights)
    pairs, pair_set, split_source = select_pairs(
        data,
        split,
        split_file,
        seed=seed,
        limit=limit,
        on_bad=on_bad,
        optical_bands=optical_options and optical_options.bands,
        sar_band=sar_options and sar_options.band,
    )
    warn_about_scaling(pairs, sar_options, optical_options)
    network_metrics = NetworkMetrics(metrics, metric_weights, weights_dir, progress) if metrics else None
    if isinstance(model, (str, os.PathLike)):
        model_name = os.fspath(model) if preset_name(model) is not None else os.fspath(Path(model).resolve())
        model = loaded or load_generator(model, upsample_mode=upsample_mode, weights_dir=weights_dir)
    else:
        model_name = model.name
    frame, samples, per_set = evaluate_pairs(
        model,
        pairs,
        preprocessing=steps,
        sar_options=sar_options,
        optical_options=optical_options,
        batch_size=batch_size,
        network_metrics=network_metrics,
        sample_rows=sample_rows,
        progress=progress,
    )
    summary = {
        "format": FORMAT,
        "role": role,
        "model": model_name,
        "dataset": {**describe_dataset(data), "layout": pair_set.layout},
        "split": split,
        "split_file": os.fspath(Path(split_file).resolve()) if split_file else None,
        "split_source": split_source,
        "skipped": len(pair_set.skipped),
        "seed": seed,
        "limit": limit,
        "pairs": len(pairs),
        "image_size": tile_size(model),
        "preprocessing": [[name, options] for name, options in steps],
        "sar_options": sar_options.to_config() if sar_options else {},
        "optical_options": optical_options.to_config() if optical_options else None,
        "metrics": summarize(frame),
        "units": {name: unit for name, (_, unit) in {**METRICS, **NETWORK_METRICS}.items() if name in frame},
        "fid": per_set.get("fid"),
        "fid_note": None if "fid" in per_set else FID_SKIPPED,
        "kid": per_set.get("kid"),
        "files": {"per_image": PER_IMAGE, "samples": SAMPLES, "markdown": SUMMARY_MD},
    }
    if pair_set.skipped:
        from keras_sar2opt.data import save_skipped

        summary["files"]["skipped"] = SKIPPED
        listed = save_skipped(pair_set, Path(out) / SKIPPED)
        logger.warning(f"Skipped {len(pair_set.skipped)} bad pairs of {data}, listed in {listed}")
    write_evaluation(out, frame, samples, summary)
    return summary


def read_summary(folder):
    """An evaluation folder's summary.json; Sar2OptError naming the file when it is missing or unreadable."""
    path = Path(folder) / SUMMARY_JSON
    summary = files.read_json(path, "evaluation summary")
    if summary.get("format") != FORMAT:
        raise Sar2OptError(f"Expected an evaluation summary of format {FORMAT}, received {path}")
    return summary
