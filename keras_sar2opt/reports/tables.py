"""The report's tables (inputs, Tables 2, 4, 8, image metrics) in Markdown beside CSVs of the same numbers."""

import math

import pandas as pd

from keras_sar2opt import files, paper
from keras_sar2opt.data.preprocess import describe_steps
from keras_sar2opt.evaluation import METRICS, model_label
from keras_sar2opt.reports.inputs import history_at, runs_of

STABILITY_EPOCHS = 5  # Table 4's stability measure: std of the D loss over the last this many epochs
LOSS_DECIMALS = 4  # as Table 8
PERCENT_DECIMALS = 2
METRIC_DECIMALS = {"psnr": 2, "ssim": 4, "mae": 4, "rmse": 4, "sam": 2, "l1": 4}
REPORT_METRICS = ("psnr", "ssim", "sam", "l1")  # the columns of the image-metrics table


def format_value(value, decimals):
    """`value` with `decimals` decimals; strings as they are, "—" for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, str):
        return value
    return f"{value:.{decimals}f}"


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def emit_table(out, name, frame, columns):
    """Round each listed column of `frame` to its decimals, write it as CSV `name`, and return the
    Markdown table of [(column, header, decimals)] and a link to the CSV: both show the same numbers."""
    frame = frame.copy()
    for column, _, decimals in columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].round(decimals)
    files.write_csv(out / name, frame)
    headers = [header for _, header, _ in columns]
    rows = [
        [format_value(record[column], decimals) for column, _, decimals in columns]
        for record in frame.to_dict("records")
    ]
    return markdown_table(headers, rows) + ["", f"CSV: [{name}]({name})", ""]


def missing(what):
    return [f"*Missing:* {what}", ""]


def check_history(run, lines):
    """True when the run has a history; otherwise note why in `lines`."""
    if run.history is None or not len(run.history):
        lines += missing(f"training history of {run.path}: {run.problem or 'history.csv is empty'}")
        return False
    return True


def inputs_section(runs, evaluations):
    lines = ["## Inputs", ""]
    if runs:
        rows = [[run.name, run.experiment, run.epochs, run.dataset["label"], f"`{run.path}`"] for run in runs]
        lines += markdown_table(["Run", "Experiment", "Epochs", "Dataset", "Folder"], rows) + [""]
    if evaluations:
        rows = [[e.name, ", ".join(e.roles) or "—", e.describe(), f"`{e.path}`"] for e in evaluations]
        lines += markdown_table(["Evaluation", "Figure", "What", "Folder"], rows) + [""]
    return lines


def table2_section(runs, out):
    lines = ["## Table 2 — Classification accuracy of the baseline discriminator (§1.1.3)", ""]
    selected = runs_of(runs, paper.TABLE2_EXPERIMENT)
    if not selected:
        return lines + missing(
            f"a run folder of the `{paper.TABLE2_EXPERIMENT}` experiment "
            f"(sar2opt train --experiment {paper.TABLE2_EXPERIMENT})."
        )
    for run in selected:
        if not check_history(run, lines):
            continue
        epochs = sorted(set(paper.TABLE2_ACCURACY) | {run.epochs})
        frame = pd.DataFrame(
            {
                "epoch": epochs,
                "report_real_pct": [paper.TABLE2_ACCURACY.get(e, (math.nan,) * 2)[0] for e in epochs],
                "report_fake_pct": [paper.TABLE2_ACCURACY.get(e, (math.nan,) * 2)[1] for e in epochs],
                "ours_real_pct": [history_at(run.history, "d_real_acc", e, 100.0) for e in epochs],
                "ours_fake_pct": [history_at(run.history, "d_fake_acc", e, 100.0) for e in epochs],
                "ours_val_real_pct": [history_at(run.history, "val_d_real_acc", e, 100.0) for e in epochs],
                "ours_val_fake_pct": [history_at(run.history, "val_d_fake_acc", e, 100.0) for e in epochs],
            }
        )
        d = PERCENT_DECIMALS
        lines += [
            f"Ours: {run.describe()}. Train accuracies are means over each epoch's training batches, "
            "val over the validation split; the report's epochs and our last epoch are shown.",
            "",
        ]
        lines += emit_table(
            out,
            f"table2_{run.name}.csv",
            frame,
            [
                ("epoch", "Epoch", 0),
                ("report_real_pct", "Report real (%)", 1),
                ("report_fake_pct", "Report fake (%)", 1),
                ("ours_real_pct", "Ours real (%)", d),
                ("ours_fake_pct", "Ours fake (%)", d),
                ("ours_val_real_pct", "Ours val real (%)", d),
                ("ours_val_fake_pct", "Ours val fake (%)", d),
            ],
        )
    return lines


TABLE4_COLUMNS = [
    ("discriminator", "Discriminator", 0),
    ("loss", "Loss", 0),
    ("report_stability", "Report stability", 0),
    ("report_accuracy_pct", "Report accuracy (%)", 1),
    ("report_visual_impact", "Report visual impact", 0),
    ("run", "Our run", 0),
    ("dataset", "Dataset", 0),
    ("epochs", "Epochs", 0),
    ("ours_final_d_loss", "Ours D loss", LOSS_DECIMALS),
    ("ours_final_val_d_loss", "Ours val D loss", LOSS_DECIMALS),
    ("ours_d_loss_std_last_epochs", f"Ours D loss std (last {STABILITY_EPOCHS})", LOSS_DECIMALS),
    ("ours_final_accuracy_pct", "Ours accuracy (%)", PERCENT_DECIMALS),
    ("ours_final_val_accuracy_pct", "Ours val accuracy (%)", PERCENT_DECIMALS),
]


def table4_section(runs, out):
    lines = ["## Table 4 — Comparison of discriminator architectures (§1.4)", ""]
    records = []
    for experiment, (name, loss, stability, accuracy, impact) in paper.TABLE4_COMPARISON.items():
        report = {
            "discriminator": name,
            "loss": loss,
            "report_stability": stability,
            "report_accuracy_pct": accuracy if accuracy is not None else math.nan,
            "report_visual_impact": impact,
        }
        usable = [run for run in runs_of(runs, experiment) if run.history is not None and len(run.history)]
        if not usable:
            records.append({**report, "run": "no run given", "dataset": "—"})
        for run in usable:
            history, last = run.history, run.epochs
            tail = history.loc[history["epoch"] > last - STABILITY_EPOCHS, "d_loss"] if "d_loss" in history else []
            records.append(
                {
                    **report,
                    "run": run.name,
                    "dataset": run.dataset["label"],
                    "epochs": last,
                    "ours_final_d_loss": history_at(history, "d_loss", last),
                    "ours_final_val_d_loss": history_at(history, "val_d_loss", last),
                    "ours_d_loss_std_last_epochs": float(pd.Series(tail).std(ddof=0)) if len(tail) else math.nan,
                    "ours_final_accuracy_pct": 50.0
                    * (history_at(history, "d_real_acc", last) + history_at(history, "d_fake_acc", last)),
                    "ours_final_val_accuracy_pct": 50.0
                    * (history_at(history, "val_d_real_acc", last) + history_at(history, "val_d_fake_acc", last)),
                }
            )
    frame = pd.DataFrame(records, columns=[column for column, _, _ in TABLE4_COLUMNS])
    if not any(runs_of(runs, e) for e in paper.TABLE4_COMPARISON):
        lines += missing(
            "run folders of the `scratch`, `patchgan` and `wgan` experiments; the report's column alone is shown."
        )
    lines += [
        f"Ours: final-epoch values of each run; accuracy is the mean of the real and fake accuracies "
        f"(as the report's ~92.8% is of Table 2's 92.7/92.9); stability is the standard deviation of the "
        f"training D loss over the last {STABILITY_EPOCHS} epochs (lower is steadier; BCE and Wasserstein "
        "losses have different scales). The report gives no accuracy for the critic; ours uses its sign.",
        "",
    ]
    return lines + emit_table(out, "table4.csv", frame, TABLE4_COLUMNS)


def table8_section(runs, out):
    lines = ["## Table 8 — LoRA fine-tuning training statistics (§4.2.2)", ""]
    selected = runs_of(runs, paper.LORA_EXPERIMENT)
    if not selected:
        return lines + missing(f"a run folder of the `{paper.LORA_EXPERIMENT}` experiment.")
    labels = {"d_loss": "D", "g_loss": "G", "g_l1": "L1"}
    for run in selected:
        if not check_history(run, lines):
            continue
        epochs = sorted(set(paper.TABLE8_LOSSES) | {run.epochs})
        data = {"epoch": epochs}
        columns = [("epoch", "Epoch", 0)]
        for index, metric in enumerate(paper.TABLE8_COLUMNS):
            split, base = ("val", metric[4:]) if metric.startswith("val_") else ("train", metric)
            data[f"report_{metric}"] = [paper.TABLE8_LOSSES.get(e, (math.nan,) * 6)[index] for e in epochs]
            data[f"ours_{metric}"] = [history_at(run.history, metric, e) for e in epochs]
            columns += [
                (f"report_{metric}", f"Report {split} {labels[base]}", 4),
                (f"ours_{metric}", f"Ours {split} {labels[base]}", LOSS_DECIMALS),
            ]
        lines += [
            f"Ours: {run.describe()} (report: {paper.FIGURE8_EPOCHS} epochs); the report's epochs and our "
            "last epoch are shown.",
            "",
        ]
        lines += emit_table(out, f"table8_{run.name}.csv", pd.DataFrame(data), columns)
    return lines


def metrics_section(evaluations, out):
    lines = ["## Image metrics of every evaluation", ""]
    if not evaluations:
        return lines + missing("evaluation folders (sar2opt evaluate ... -o EVAL_DIR).")
    records = []
    for evaluation in evaluations:
        summary = evaluation.summary
        record = {
            "evaluation": evaluation.name,
            "figure": ", ".join(evaluation.roles) or "—",
            "model": model_label(summary["model"]),
            "dataset": summary["dataset"]["label"],
            "split": summary["split"],
            "pairs": summary["pairs"],
            "preprocessing": describe_steps(summary["preprocessing"]),
        }
        for metric in REPORT_METRICS:
            for statistic in ("mean", "std"):
                record[f"{metric}_{statistic}"] = round(summary["metrics"][metric][statistic], METRIC_DECIMALS[metric])
        record["fid"] = round(summary["fid"], 2) if summary.get("fid") is not None else math.nan
        record["report_finding"] = "; ".join(paper.EVALUATION_FIGURES[r][1] for r in evaluation.roles) or "—"
        records.append(record)
    frame = pd.DataFrame(records)
    headers = ["Evaluation", "Figure", "Model", "Dataset", "Split", "Pairs", "SAR preprocessing"]
    headers += [f"{METRICS[m][0]} ({METRICS[m][1]})" if METRICS[m][1] else METRICS[m][0] for m in REPORT_METRICS]
    headers += ["FID", "Report (qualitative; it gives no numbers)"]
    rows = []
    for record in frame.to_dict("records"):
        row = [record[key] for key in ("evaluation", "figure", "model", "dataset", "split", "pairs", "preprocessing")]
        for m in REPORT_METRICS:
            decimals = METRIC_DECIMALS[m]
            row.append(f"{format_value(record[f'{m}_mean'], decimals)} ± {format_value(record[f'{m}_std'], decimals)}")
        rows.append(row + [format_value(record["fid"], 2), record["report_finding"]])
    lines += [
        "Mean ± standard deviation over the evaluated images. L1 is the report's L1 loss (mean absolute "
        "error on the [-1, 1] scale); SAM is in degrees.",
        "",
    ]
    files.write_csv(out / "metrics.csv", frame)
    return lines + markdown_table(headers, rows) + ["", "CSV: [metrics.csv](metrics.csv)", ""]
