"""The report's figures: sample grids (Figures 1-5, 7, 9) and training curves (Figures 6, 8, every run's curves)."""

import logging
import math

import pandas as pd

from keras_sar2opt import files, paper
from keras_sar2opt.evaluation import METRICS
from keras_sar2opt.plots import ACCURACY_PANELS, LOSS_PANELS, plot_curves
from keras_sar2opt.reports.inputs import history_at, runs_of
from keras_sar2opt.reports.tables import (
    LOSS_DECIMALS,
    METRIC_DECIMALS,
    REPORT_METRICS,
    check_history,
    emit_table,
    format_value,
    missing,
)

FIGURES_DIR = "figures"

logger = logging.getLogger(__name__)


def _figure_epochs(run):
    """(Figure 1 epoch, Figure 2 epoch): the report's 10 and 130 when sampled, else our first and last grid."""
    epochs = sorted(run.samples)
    first = paper.FIGURE1_EPOCH if paper.FIGURE1_EPOCH in run.samples else epochs[0]
    last = paper.FIGURE2_EPOCH if paper.FIGURE2_EPOCH in run.samples else epochs[-1]
    return first, last


def figures12_section(runs, out):
    lines = ["## Figures 1 and 2 — Generator samples at two epochs (§2)", ""]
    selected = [run for e in paper.SECTION1_EXPERIMENTS for run in runs_of(runs, e)]
    if not selected:
        return lines + missing(
            "run folders of the §1 experiments (scratch, patchgan, wgan) with samples/epoch_NNN.png."
        )
    lines += [
        "Columns of each grid: SAR | generated | target, on fixed validation pairs. "
        f"The report shows epochs {paper.FIGURE1_EPOCH} and {paper.FIGURE2_EPOCH}; where a run has no grid "
        "at those epochs its first and last grids are shown.",
        "",
    ]
    records = []
    for run in selected:
        if not run.samples:
            lines += missing(f"sample grids (samples/epoch_NNN.png) in {run.path}.")
            continue
        for figure, report_epoch, epoch in zip(
            ("Figure 1", "Figure 2"), (paper.FIGURE1_EPOCH, paper.FIGURE2_EPOCH), _figure_epochs(run)
        ):
            name = f"{FIGURES_DIR}/{'fig1' if figure == 'Figure 1' else 'fig2'}_{run.name}.jpg"
            files.save_jpeg(run.samples[epoch], out / name)
            lines += [
                f"**{figure}** ({run.describe()}), epoch {epoch}:",
                "",
                f"![{figure}, {run.name}, epoch {epoch}]({name})",
                "",
            ]
            report_g, report_l1 = paper.SECTION2_GENERATOR[report_epoch]
            records.append(
                {
                    "figure": figure,
                    "run": run.name,
                    "dataset": run.dataset["label"],
                    "report_epoch": report_epoch,
                    "report_g_loss": report_g,
                    "report_g_l1": report_l1,
                    "epoch": epoch,
                    "ours_g_loss": history_at(run.history, "g_loss", epoch),
                    "ours_g_l1": history_at(run.history, "g_l1", epoch),
                    "ours_val_g_loss": history_at(run.history, "val_g_loss", epoch),
                    "ours_val_g_l1": history_at(run.history, "val_g_l1", epoch),
                }
            )
    if records:
        d = LOSS_DECIMALS
        lines += ["Generator losses at the figures' epochs (report: §2, 'Training Progress'):", ""]
        lines += emit_table(
            out,
            "figures1_2.csv",
            pd.DataFrame(records),
            [
                ("figure", "Figure", 0),
                ("run", "Run", 0),
                ("dataset", "Dataset", 0),
                ("report_epoch", "Report epoch", 0),
                ("report_g_loss", "Report G loss", 1),
                ("report_g_l1", "Report L1", 3),
                ("epoch", "Our epoch", 0),
                ("ours_g_loss", "Ours G loss", d),
                ("ours_g_l1", "Ours L1", d),
                ("ours_val_g_loss", "Ours val G loss", d),
                ("ours_val_g_l1", "Ours val L1", d),
            ],
        )
    return lines


def evaluation_figure_section(role, evaluations, out):
    caption, finding = paper.EVALUATION_FIGURES[role]
    number = role.removeprefix("fig")
    lines = [f"## Figure {number} — {caption.split(': ', 1)[1].rstrip('.')}", ""]
    selected = [e for e in evaluations if role in e.roles]
    if not selected:
        return lines + missing(
            f"an evaluation folder for {role} (sar2opt evaluate --role {role} ..., "
            f"or sar2opt report --figure {role}=EVAL_DIR)."
        )
    lines += [f"Report: {finding}. Columns: SAR as the model saw it | generated | target.", ""]
    for evaluation in selected:
        mismatch = evaluation.role_mismatch(role)
        if mismatch:
            logger.warning(f"{evaluation.path} stands for {role}: {mismatch}")
            lines += [f"*Check:* {evaluation.name}: {mismatch}.", ""]
        name = f"{FIGURES_DIR}/{role}_{evaluation.name}.jpg"
        source = evaluation.path / evaluation.summary["files"]["samples"]
        if not source.is_file():
            lines += missing(f"the sample grid {source}.")
            continue
        files.save_jpeg(source, out / name)
        metrics = evaluation.summary["metrics"]
        values = ", ".join(
            f"{METRICS[m][0]} {format_value(round(metrics[m]['mean'], METRIC_DECIMALS[m]), METRIC_DECIMALS[m])}"
            for m in REPORT_METRICS
        )
        lines += [
            f"Ours ({evaluation.name}): {evaluation.describe()}; {values}.",
            "",
            f"![Figure {number}, {evaluation.name}]({name})",
            "",
        ]
    return lines


def _curves(run, out, figure, reference=None):
    name = f"{FIGURES_DIR}/{figure}_{run.name}.png"
    with files.atomic_path(out / name) as temporary:
        plot_curves(run.history, LOSS_PANELS, temporary, title=f"{run.name}: {run.experiment}", reference=reference)
    return name


def figure6_section(runs, out):
    lines = ["## Figure 6 — Training curves for full fine-tuning (§4.1.2)", ""]
    selected = runs_of(runs, paper.FIGURE6_EXPERIMENT)
    if not selected:
        return lines + missing(f"a run folder of the `{paper.FIGURE6_EXPERIMENT}` experiment.")
    for run in selected:
        if not check_history(run, lines):
            continue
        lines += [
            f"Ours: {run.describe()} (report: {paper.FIGURE6_EPOCHS} epochs).",
            "",
            f"![Figure 6, {run.name}]({_curves(run, out, 'fig6', None)})",
            "",
        ]
        history, half = run.history, run.epochs / 2
        records = []
        for metric, (start, end, low, high) in paper.FIGURE6_STATED.items():
            late = history.loc[history["epoch"] > half, metric] if metric in history else pd.Series(dtype=float)
            records.append(
                {
                    "metric": metric,
                    "report_start": start,
                    "report_end": end,
                    "report_low": low,
                    "report_high": high,
                    "ours_start": history_at(history, metric, 1),
                    "ours_end": history_at(history, metric, run.epochs),
                    "ours_low_second_half": late.min() if len(late) else math.nan,
                    "ours_high_second_half": late.max() if len(late) else math.nan,
                }
            )
        d = LOSS_DECIMALS
        lines += [
            "Values the report states in §4.1.2 (start → end, or the range it settles in) beside ours "
            "(first → last epoch, and the range over the second half of training):",
            "",
        ]
        lines += emit_table(
            out,
            f"figure6_{run.name}.csv",
            pd.DataFrame(records),
            [
                ("metric", "Metric", 0),
                ("report_start", "Report start", 2),
                ("report_end", "Report end", 2),
                ("report_low", "Report low", 2),
                ("report_high", "Report high", 2),
                ("ours_start", "Ours start", d),
                ("ours_end", "Ours end", d),
                ("ours_low_second_half", "Ours low", d),
                ("ours_high_second_half", "Ours high", d),
            ],
        )
    return lines


def figure8_section(runs, out):
    lines = ["## Figure 8 — Training curves for LoRA fine-tuning (§4.2.2)", ""]
    selected = runs_of(runs, paper.LORA_EXPERIMENT)
    if not selected:
        return lines + missing(f"a run folder of the `{paper.LORA_EXPERIMENT}` experiment.")
    reference = {
        metric: {epoch: values[index] for epoch, values in paper.TABLE8_LOSSES.items()}
        for index, metric in enumerate(paper.TABLE8_COLUMNS)
    }
    for run in selected:
        if check_history(run, lines):
            name = _curves(run, out, "fig8", reference)
            lines += [
                f"Ours: {run.describe()}; crosses: the report's Table 8.",
                "",
                f"![Figure 8, {run.name}]({name})",
                "",
            ]
    return lines


def curves_section(runs, out):
    lines = ["## Training curves of every run", ""]
    shown = [run for run in runs if run.history is not None and len(run.history)]
    if not shown:
        return lines + missing("run folders with a history.csv.")
    for run in shown:
        name = f"{FIGURES_DIR}/curves_{run.name}.png"
        with files.atomic_path(out / name) as temporary:
            plot_curves(run.history, LOSS_PANELS + ACCURACY_PANELS, temporary, title=f"{run.name}: {run.experiment}")
        lines += [f"{run.describe()}:", "", f"![Training curves, {run.name}]({name})", ""]
    return lines
