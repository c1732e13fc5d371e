"""Published SAR-to-optical numbers beside ours, each with its source, dataset and evaluator (docs/metrics.md).

These are other works' numbers, not this report's and not ours: they are comparable with ours only on
the same dataset and split, at the same image size, with the same metric implementation.
"""

import dataclasses
import math

import pandas as pd

from keras_sar2opt.presets import SOURCE as SAR2OPTICAL_SOURCE
from keras_sar2opt.reports.tables import emit_table


@dataclasses.dataclass(frozen=True)
class Published:
    """One published row: who measured what, where, with which evaluator."""

    source: str
    model: str
    dataset: str
    evaluator: str
    psnr: float = math.nan
    ssim: float = math.nan
    dists: float = math.nan
    fid: float = math.nan


LITERATURE = (
    Published(
        "GeoSET model zoo, QXS-SAROPT table",
        "pix2pix",
        "QXS-SAROPT",
        "GeoSET's own evaluation (FID and DISTS its primary metrics)",
        psnr=12.33,
        ssim=0.203,
        dists=0.373,
        fid=174.6,
    ),
    Published(
        SAR2OPTICAL_SOURCE,
        "Pix2Pix, generator of epoch 180 (preset sar2optical_gen_180)",
        "SEN1-2, SAR2Optical's test split",
        "SAR2Optical's evaluation",
        fid=185.04,
    ),
)
COLUMNS = [
    ("who", "Whose", 0),
    ("source", "Source", 0),
    ("model", "Model", 0),
    ("dataset", "Dataset", 0),
    ("evaluator", "Evaluator", 0),
    ("psnr", "PSNR (dB)", 2),
    ("ssim", "SSIM", 3),
    ("dists", "DISTS", 3),
    ("fid", "FID", 2),
]
OUR_EVALUATOR = "keras_sar2opt: FID on pytorch-fid's Inception, DISTS as DISTS_pytorch (parity-tested)"


def literature_section(evaluations, out):
    """The published rows, then ours for every evaluation with FID or DISTS."""
    from keras_sar2opt.evaluation import model_label

    rows = [{"who": "Theirs", **dataclasses.asdict(published)} for published in LITERATURE]
    for evaluation in evaluations:
        summary = evaluation.summary
        if summary.get("fid") is None and "dists" not in summary["metrics"]:
            continue
        rows.append(
            {
                "who": "Ours",
                "source": evaluation.name,
                "model": model_label(summary["model"]),
                "dataset": f"{summary['dataset']['label']}, {summary['split']} split ({summary['pairs']} pairs)",
                "evaluator": OUR_EVALUATOR,
                "psnr": summary["metrics"]["psnr"]["mean"],
                "ssim": summary["metrics"]["ssim"]["mean"],
                "dists": summary["metrics"].get("dists", {}).get("mean", math.nan),
                "fid": math.nan if summary.get("fid") is None else summary["fid"],
            }
        )
    lines = [
        "## Published numbers beside ours",
        "",
        "Rows marked *Theirs* are other works' numbers on their datasets with their evaluators, copied from "
        "the source named; *Ours* rows come from evaluations here run with `--metrics fid dists`. They are "
        "comparable only on the same dataset, split and image size (FID also depends on the number of "
        "images; docs/metrics.md).",
        "",
    ]
    return lines + emit_table(out, "literature.csv", pd.DataFrame(rows), COLUMNS)
