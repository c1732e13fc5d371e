"""The reproduction report: run and evaluation folders laid out like the report (Tables 2, 4, 8, Figures 1–9).

Every table puts the report's value (keras_sar2opt.paper) beside ours and names the
dataset ours was measured on. Each table is also written as a CSV holding exactly the numbers
shown; figures are under figures/ (curves as PNG, sample grids as JPEG). A section whose inputs
were not given says what is missing.
"""

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from keras_sar2opt.data.preprocess import describe_steps
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.evaluation import METRICS, model_label, read_summary
from keras_sar2opt import files, paper
from keras_sar2opt.data.datasets import describe_dataset
from keras_sar2opt.plots import ACCURACY_PANELS, LOSS_PANELS, plot_curves, read_history
from keras_sar2opt.text import counted

REPORT_NAME = "report.md"
FIGURES_DIR = "figures"
STABILITY_EPOCHS = 5  # Table 4's stability measure: std of the D loss over the last this many epochs
LOSS_DECIMALS = 4  # as Table 8
PERCENT_DECIMALS = 2
METRIC_DECIMALS = {"psnr": 2, "ssim": 4, "mae": 4, "rmse": 4, "sam": 2, "l1": 4}
REPORT_METRICS = ("psnr", "ssim", "sam", "l1")  # the columns of the image-metrics table
_SAMPLE_FILE = re.compile(r"epoch_(\d+)\.png")


logger = logging.getLogger(__name__)


@dataclass
class Run:
    """A training run folder (keras_sar2opt.training.run): its settings, history and sample grids."""

    path: Path
    name: str
    experiment: str
    config: dict
    dataset: dict
    history: pd.DataFrame = None
    problem: str = None  # why there is no history
    samples: dict = field(default_factory=dict)  # epoch -> samples/epoch_NNN.png

    @property
    def epochs(self):
        return int(self.history["epoch"].max()) if self.history is not None and len(self.history) else 0

    def describe(self):
        """One line naming the run, its length and the dataset it was measured on."""
        return f"run `{self.path}` ({self.experiment}, {counted(self.epochs, 'epoch')}) on {self.dataset['label']}"


@dataclass
class Evaluation:
    """An evaluation folder (keras_sar2opt.evaluation) and the report figures it stands for."""

    path: Path
    name: str
    summary: dict
    roles: tuple = ()

    def describe(self):
        summary = self.summary
        return (
            f"`{model_label(summary['model'])}` on the {summary['split']} split "
            f"({counted(summary['pairs'], 'pair')}) of {summary['dataset']['label']}, "
            f"SAR preprocessing: {describe_steps(summary['preprocessing'])}"
        )

    def role_mismatch(self, role):
        """Why this evaluation's model does not fit the figure `role` (its run's config.json says which
        training made it), or None: Figures 7 and 9 show full and LoRA fine-tuning, Figures 3-5 the
        pre-trained model."""
        from keras_sar2opt.inference import run_config

        found = run_config(self.summary["model"]) if Path(self.summary["model"]).exists() else None
        experiment = found[1].get("experiment") if found else None
        experiment = experiment if isinstance(experiment, dict) else {}
        fine_tuned, lora = bool(experiment.get("pretrained")), bool(experiment.get("lora_rank"))
        made_by = f"the {experiment['name']} run {found[0]}" if "name" in experiment else "no fine-tuning run"
        if role == "fig7" and not (fine_tuned and not lora):
            return f"Figure 7 shows full fine-tuning, but the model comes from {made_by}"
        if role == "fig9" and not (fine_tuned and lora):
            return f"Figure 9 shows LoRA fine-tuning, but the model comes from {made_by}"
        if role in ("fig3", "fig4", "fig5") and fine_tuned:
            return f"Figure {role.removeprefix('fig')} shows the pre-trained model, but the model comes from {made_by}"
        return None


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "input"


def _unique(name, taken):
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    taken.add(candidate)
    return candidate


def load_run(path, name=None):
    """A Run from a folder holding config.json; a missing or unreadable history.csv becomes `problem`."""
    path = Path(path)
    config = files.read_json(path / "config.json", "run folder's config.json")
    experiment = config.get("experiment", {})
    experiment = experiment.get("name") if isinstance(experiment, dict) else experiment
    settings = config.get("run", {})
    history, problem = None, None
    if (path / "history.csv").is_file():
        try:
            history = read_history(path / "history.csv")
        except Sar2OptError as error:
            problem = str(error)
    else:
        problem = f"no history.csv in {path}"
    samples = {
        int(match.group(1)): file
        for file in sorted((path / "samples").glob("epoch_*.png"))
        if (match := _SAMPLE_FILE.fullmatch(file.name))
    }
    return Run(
        path=path,
        name=name or _slug(path.name),
        experiment=experiment or "unknown",
        config=config,
        dataset=describe_dataset(settings.get("data"), settings.get("synthetic")),
        history=history,
        problem=problem,
        samples=samples,
    )


def parse_figure(text):
    """"ROLE=EVAL_DIR" (e.g. fig3=evals/sentinel) -> (role, Path)."""
    role, separator, folder = str(text).partition("=")
    if not separator or not folder:
        raise Sar2OptError(f"Expected --figure ROLE=EVAL_DIR, received {text!r}")
    if role not in paper.EVALUATION_FIGURES:
        raise Sar2OptError(f"Expected a --figure role among {', '.join(paper.EVALUATION_FIGURES)}, received {role!r}")
    return role, Path(folder)


def collect_inputs(paths, figures=()):
    """Runs and Evaluations from folders (config.json: a run; summary.json: an evaluation) and
    (role, evaluation folder) pairs. Roles given here replace the role stored in summary.json."""
    runs, evaluations, taken = [], {}, set()
    assigned = {}
    for role, folder in figures:
        assigned.setdefault(Path(folder).resolve(), []).append(role)
    folders = [Path(p) for p in paths] + [Path(folder) for _, folder in figures]
    if not folders:
        raise Sar2OptError("Expected at least one run or evaluation folder, received none")
    for folder in folders:
        key = folder.resolve()
        if (folder / "config.json").is_file():
            if all(run.path.resolve() != key for run in runs):
                runs.append(load_run(folder, _unique(_slug(folder.name), taken)))
        elif (folder / "summary.json").is_file() or key in assigned:
            if key not in evaluations:
                summary = read_summary(folder)
                roles = tuple(dict.fromkeys(assigned.get(key) or [summary.get("role")]))
                evaluations[key] = Evaluation(folder, _unique(_slug(folder.name), taken), summary, tuple(r for r in roles if r))
        else:
            raise Sar2OptError(
                f"Expected a run folder (config.json) or an evaluation folder (summary.json), received {folder}"
            )
    return runs, list(evaluations.values())


# ---------------------------------------------------------------------------------------------
# Formatting


def _number(value, decimals):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, str):
        return value
    return f"{value:.{decimals}f}"


def _markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _emit(out, name, frame, columns):
    """Round each listed column of `frame` to its decimals, write it as CSV `name`, and return the
    Markdown table of [(column, header, decimals)] and a link to the CSV: both show the same numbers."""
    frame = frame.copy()
    for column, _, decimals in columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].round(decimals)
    files.write_csv(out / name, frame)
    headers = [header for _, header, _ in columns]
    rows = [[_number(record[column], decimals) for column, _, decimals in columns] for record in frame.to_dict("records")]
    return _markdown_table(headers, rows) + ["", f"CSV: [{name}]({name})", ""]


def _at(history, column, epoch, scale=1.0):
    """history[column] at `epoch` times `scale`, or NaN when not logged."""
    if history is None or column not in history:
        return math.nan
    values = history.loc[history["epoch"] == epoch, column]
    return float(values.iloc[-1]) * scale if len(values) else math.nan


def _missing(what):
    return [f"*Missing:* {what}", ""]


def _runs_of(runs, experiment):
    return [run for run in runs if run.experiment == experiment or run.experiment.startswith(experiment + "-")]


def _usable(run, lines):
    """True when the run has a history; otherwise note why in `lines`."""
    if run.history is None or not len(run.history):
        lines += _missing(f"training history of {run.path}: {run.problem or 'history.csv is empty'}")
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Sections, in the report's order


def inputs_section(runs, evaluations):
    lines = ["## Inputs", ""]
    if runs:
        rows = [
            [run.name, run.experiment, run.epochs, run.dataset["label"], f"`{run.path}`"] for run in runs
        ]
        lines += _markdown_table(["Run", "Experiment", "Epochs", "Dataset", "Folder"], rows) + [""]
    if evaluations:
        rows = [
            [e.name, ", ".join(e.roles) or "—", e.describe(), f"`{e.path}`"] for e in evaluations
        ]
        lines += _markdown_table(["Evaluation", "Figure", "What", "Folder"], rows) + [""]
    return lines


def table2_section(runs, out):
    lines = ["## Table 2 — Classification accuracy of the baseline discriminator (§1.1.3)", ""]
    selected = _runs_of(runs, paper.TABLE2_EXPERIMENT)
    if not selected:
        return lines + _missing(f"a run folder of the `{paper.TABLE2_EXPERIMENT}` experiment "
                                f"(sar2opt train --experiment {paper.TABLE2_EXPERIMENT}).")
    for run in selected:
        if not _usable(run, lines):
            continue
        epochs = sorted(set(paper.TABLE2_ACCURACY) | {run.epochs})
        frame = pd.DataFrame({
            "epoch": epochs,
            "report_real_pct": [paper.TABLE2_ACCURACY.get(e, (math.nan,) * 2)[0] for e in epochs],
            "report_fake_pct": [paper.TABLE2_ACCURACY.get(e, (math.nan,) * 2)[1] for e in epochs],
            "ours_real_pct": [_at(run.history, "d_real_acc", e, 100.0) for e in epochs],
            "ours_fake_pct": [_at(run.history, "d_fake_acc", e, 100.0) for e in epochs],
            "ours_val_real_pct": [_at(run.history, "val_d_real_acc", e, 100.0) for e in epochs],
            "ours_val_fake_pct": [_at(run.history, "val_d_fake_acc", e, 100.0) for e in epochs],
        })
        d = PERCENT_DECIMALS
        lines += [f"Ours: {run.describe()}. Train accuracies are means over each epoch's training batches, "
                  "val over the validation split; the report's epochs and our last epoch are shown.", ""]
        lines += _emit(out, f"table2_{run.name}.csv", frame, [
            ("epoch", "Epoch", 0), ("report_real_pct", "Report real (%)", 1), ("report_fake_pct", "Report fake (%)", 1),
            ("ours_real_pct", "Ours real (%)", d), ("ours_fake_pct", "Ours fake (%)", d),
            ("ours_val_real_pct", "Ours val real (%)", d), ("ours_val_fake_pct", "Ours val fake (%)", d),
        ])
    return lines


TABLE4_COLUMNS = [
    ("discriminator", "Discriminator", 0), ("loss", "Loss", 0), ("report_stability", "Report stability", 0),
    ("report_accuracy_pct", "Report accuracy (%)", 1), ("report_visual_impact", "Report visual impact", 0),
    ("run", "Our run", 0), ("dataset", "Dataset", 0), ("epochs", "Epochs", 0),
    ("ours_final_d_loss", "Ours D loss", LOSS_DECIMALS), ("ours_final_val_d_loss", "Ours val D loss", LOSS_DECIMALS),
    ("ours_d_loss_std_last_epochs", f"Ours D loss std (last {STABILITY_EPOCHS})", LOSS_DECIMALS),
    ("ours_final_accuracy_pct", "Ours accuracy (%)", PERCENT_DECIMALS),
    ("ours_final_val_accuracy_pct", "Ours val accuracy (%)", PERCENT_DECIMALS),
]


def table4_section(runs, out):
    lines = ["## Table 4 — Comparison of discriminator architectures (§1.4)", ""]
    records = []
    for experiment, (name, loss, stability, accuracy, impact) in paper.TABLE4_COMPARISON.items():
        report = {"discriminator": name, "loss": loss, "report_stability": stability,
                  "report_accuracy_pct": accuracy if accuracy is not None else math.nan, "report_visual_impact": impact}
        usable = [run for run in _runs_of(runs, experiment) if run.history is not None and len(run.history)]
        if not usable:
            records.append({**report, "run": "no run given", "dataset": "—"})
        for run in usable:
            history, last = run.history, run.epochs
            tail = history.loc[history["epoch"] > last - STABILITY_EPOCHS, "d_loss"] if "d_loss" in history else []
            records.append({
                **report,
                "run": run.name,
                "dataset": run.dataset["label"],
                "epochs": last,
                "ours_final_d_loss": _at(history, "d_loss", last),
                "ours_final_val_d_loss": _at(history, "val_d_loss", last),
                "ours_d_loss_std_last_epochs": float(pd.Series(tail).std(ddof=0)) if len(tail) else math.nan,
                "ours_final_accuracy_pct": 50.0 * (_at(history, "d_real_acc", last) + _at(history, "d_fake_acc", last)),
                "ours_final_val_accuracy_pct": 50.0 * (
                    _at(history, "val_d_real_acc", last) + _at(history, "val_d_fake_acc", last)),
            })
    frame = pd.DataFrame(records, columns=[column for column, _, _ in TABLE4_COLUMNS])
    if not any(_runs_of(runs, e) for e in paper.TABLE4_COMPARISON):
        lines += _missing("run folders of the `scratch`, `patchgan` and `wgan` experiments; the report's column alone is shown.")
    lines += [
        f"Ours: final-epoch values of each run; accuracy is the mean of the real and fake accuracies "
        f"(as the report's ~92.8% is of Table 2's 92.7/92.9); stability is the standard deviation of the "
        f"training D loss over the last {STABILITY_EPOCHS} epochs (lower is steadier; BCE and Wasserstein "
        "losses have different scales). The report gives no accuracy for the critic; ours uses its sign.", "",
    ]
    return lines + _emit(out, "table4.csv", frame, TABLE4_COLUMNS)


def _figure_epochs(run):
    """(Figure 1 epoch, Figure 2 epoch): the report's 10 and 130 when sampled, else our first and last grid."""
    epochs = sorted(run.samples)
    first = paper.FIGURE1_EPOCH if paper.FIGURE1_EPOCH in run.samples else epochs[0]
    last = paper.FIGURE2_EPOCH if paper.FIGURE2_EPOCH in run.samples else epochs[-1]
    return first, last


def figures12_section(runs, out):
    lines = ["## Figures 1 and 2 — Generator samples at two epochs (§2)", ""]
    selected = [run for e in paper.SECTION1_EXPERIMENTS for run in _runs_of(runs, e)]
    if not selected:
        return lines + _missing("run folders of the §1 experiments (scratch, patchgan, wgan) with samples/epoch_NNN.png.")
    lines += ["Columns of each grid: SAR | generated | target, on fixed validation pairs. "
              f"The report shows epochs {paper.FIGURE1_EPOCH} and {paper.FIGURE2_EPOCH}; where a run has no grid "
              "at those epochs its first and last grids are shown.", ""]
    records = []
    for run in selected:
        if not run.samples:
            lines += _missing(f"sample grids (samples/epoch_NNN.png) in {run.path}.")
            continue
        for figure, report_epoch, epoch in zip(("Figure 1", "Figure 2"), (paper.FIGURE1_EPOCH, paper.FIGURE2_EPOCH),
                                                _figure_epochs(run)):
            name = f"{FIGURES_DIR}/{'fig1' if figure == 'Figure 1' else 'fig2'}_{run.name}.jpg"
            files.save_jpeg(run.samples[epoch], out / name)
            lines += [f"**{figure}** ({run.describe()}), epoch {epoch}:", "", f"![{figure}, {run.name}, epoch {epoch}]({name})", ""]
            report_g, report_l1 = paper.SECTION2_GENERATOR[report_epoch]
            records.append({
                "figure": figure, "run": run.name, "dataset": run.dataset["label"],
                "report_epoch": report_epoch, "report_g_loss": report_g, "report_g_l1": report_l1, "epoch": epoch,
                "ours_g_loss": _at(run.history, "g_loss", epoch), "ours_g_l1": _at(run.history, "g_l1", epoch),
                "ours_val_g_loss": _at(run.history, "val_g_loss", epoch),
                "ours_val_g_l1": _at(run.history, "val_g_l1", epoch),
            })
    if records:
        d = LOSS_DECIMALS
        lines += ["Generator losses at the figures' epochs (report: §2, 'Training Progress'):", ""]
        lines += _emit(out, "figures1_2.csv", pd.DataFrame(records), [
            ("figure", "Figure", 0), ("run", "Run", 0), ("dataset", "Dataset", 0), ("report_epoch", "Report epoch", 0),
            ("report_g_loss", "Report G loss", 1), ("report_g_l1", "Report L1", 3), ("epoch", "Our epoch", 0),
            ("ours_g_loss", "Ours G loss", d), ("ours_g_l1", "Ours L1", d), ("ours_val_g_loss", "Ours val G loss", d),
            ("ours_val_g_l1", "Ours val L1", d),
        ])
    return lines


def evaluation_figure_section(role, evaluations, out):
    caption, finding = paper.EVALUATION_FIGURES[role]
    number = role.removeprefix("fig")
    lines = [f"## Figure {number} — {caption.split(': ', 1)[1].rstrip('.')}", ""]
    selected = [e for e in evaluations if role in e.roles]
    if not selected:
        return lines + _missing(f"an evaluation folder for {role} (sar2opt evaluate --role {role} ..., "
                                f"or sar2opt report --figure {role}=EVAL_DIR).")
    lines += [f"Report: {finding}. Columns: SAR as the model saw it | generated | target.", ""]
    for evaluation in selected:
        mismatch = evaluation.role_mismatch(role)
        if mismatch:
            logger.warning(f"{evaluation.path} stands for {role}: {mismatch}")
            lines += [f"*Check:* {evaluation.name}: {mismatch}.", ""]
        name = f"{FIGURES_DIR}/{role}_{evaluation.name}.jpg"
        source = evaluation.path / evaluation.summary["files"]["samples"]
        if not source.is_file():
            lines += _missing(f"the sample grid {source}.")
            continue
        files.save_jpeg(source, out / name)
        metrics = evaluation.summary["metrics"]
        values = ", ".join(
            f"{METRICS[m][0]} {_number(round(metrics[m]['mean'], METRIC_DECIMALS[m]), METRIC_DECIMALS[m])}"
            for m in REPORT_METRICS
        )
        lines += [f"Ours ({evaluation.name}): {evaluation.describe()}; {values}.", "",
                  f"![Figure {number}, {evaluation.name}]({name})", ""]
    return lines


def _curves(run, out, figure, reference=None):
    name = f"{FIGURES_DIR}/{figure}_{run.name}.png"
    with files.atomic_path(out / name) as temporary:
        plot_curves(run.history, LOSS_PANELS, temporary, title=f"{run.name}: {run.experiment}", reference=reference)
    return name


def figure6_section(runs, out):
    lines = ["## Figure 6 — Training curves for full fine-tuning (§4.1.2)", ""]
    selected = _runs_of(runs, paper.FIGURE6_EXPERIMENT)
    if not selected:
        return lines + _missing(f"a run folder of the `{paper.FIGURE6_EXPERIMENT}` experiment.")
    for run in selected:
        if not _usable(run, lines):
            continue
        lines += [f"Ours: {run.describe()} (report: {paper.FIGURE6_EPOCHS} epochs).", "",
                  f"![Figure 6, {run.name}]({_curves(run, out, 'fig6', None)})", ""]
        history, half = run.history, run.epochs / 2
        records = []
        for metric, (start, end, low, high) in paper.FIGURE6_STATED.items():
            late = history.loc[history["epoch"] > half, metric] if metric in history else pd.Series(dtype=float)
            records.append({
                "metric": metric, "report_start": start, "report_end": end, "report_low": low, "report_high": high,
                "ours_start": _at(history, metric, 1), "ours_end": _at(history, metric, run.epochs),
                "ours_low_second_half": late.min() if len(late) else math.nan,
                "ours_high_second_half": late.max() if len(late) else math.nan,
            })
        d = LOSS_DECIMALS
        lines += ["Values the report states in §4.1.2 (start → end, or the range it settles in) beside ours "
                  "(first → last epoch, and the range over the second half of training):", ""]
        lines += _emit(out, f"figure6_{run.name}.csv", pd.DataFrame(records), [
            ("metric", "Metric", 0), ("report_start", "Report start", 2), ("report_end", "Report end", 2),
            ("report_low", "Report low", 2), ("report_high", "Report high", 2), ("ours_start", "Ours start", d),
            ("ours_end", "Ours end", d), ("ours_low_second_half", "Ours low", d), ("ours_high_second_half", "Ours high", d),
        ])
    return lines


def table8_section(runs, out):
    lines = ["## Table 8 — LoRA fine-tuning training statistics (§4.2.2)", ""]
    selected = _runs_of(runs, paper.LORA_EXPERIMENT)
    if not selected:
        return lines + _missing(f"a run folder of the `{paper.LORA_EXPERIMENT}` experiment.")
    labels = {"d_loss": "D", "g_loss": "G", "g_l1": "L1"}
    for run in selected:
        if not _usable(run, lines):
            continue
        epochs = sorted(set(paper.TABLE8_LOSSES) | {run.epochs})
        data = {"epoch": epochs}
        columns = [("epoch", "Epoch", 0)]
        for index, metric in enumerate(paper.TABLE8_COLUMNS):
            split, base = ("val", metric[4:]) if metric.startswith("val_") else ("train", metric)
            data[f"report_{metric}"] = [paper.TABLE8_LOSSES.get(e, (math.nan,) * 6)[index] for e in epochs]
            data[f"ours_{metric}"] = [_at(run.history, metric, e) for e in epochs]
            columns += [(f"report_{metric}", f"Report {split} {labels[base]}", 4),
                        (f"ours_{metric}", f"Ours {split} {labels[base]}", LOSS_DECIMALS)]
        lines += [f"Ours: {run.describe()} (report: {paper.FIGURE8_EPOCHS} epochs); the report's epochs and our "
                  "last epoch are shown.", ""]
        lines += _emit(out, f"table8_{run.name}.csv", pd.DataFrame(data), columns)
    return lines


def figure8_section(runs, out):
    lines = ["## Figure 8 — Training curves for LoRA fine-tuning (§4.2.2)", ""]
    selected = _runs_of(runs, paper.LORA_EXPERIMENT)
    if not selected:
        return lines + _missing(f"a run folder of the `{paper.LORA_EXPERIMENT}` experiment.")
    reference = {
        metric: {epoch: values[index] for epoch, values in paper.TABLE8_LOSSES.items()}
        for index, metric in enumerate(paper.TABLE8_COLUMNS)
    }
    for run in selected:
        if _usable(run, lines):
            name = _curves(run, out, "fig8", reference)
            lines += [f"Ours: {run.describe()}; crosses: the report's Table 8.", "", f"![Figure 8, {run.name}]({name})", ""]
    return lines


def metrics_section(evaluations, out):
    lines = ["## Image metrics of every evaluation", ""]
    if not evaluations:
        return lines + _missing("evaluation folders (sar2opt evaluate ... -o EVAL_DIR).")
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
        row += [f"{_number(record[f'{m}_mean'], METRIC_DECIMALS[m])} ± {_number(record[f'{m}_std'], METRIC_DECIMALS[m])}"
                for m in REPORT_METRICS]
        rows.append(row + [_number(record["fid"], 2), record["report_finding"]])
    lines += ["Mean ± standard deviation over the evaluated images. L1 is the report's L1 loss (mean absolute "
              "error on the [-1, 1] scale); SAM is in degrees.", ""]
    files.write_csv(out / "metrics.csv", frame)
    return lines + _markdown_table(headers, rows) + ["", "CSV: [metrics.csv](metrics.csv)", ""]


HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "sam": False, "l1": False}
# The report's conclusions as comparisons of evaluation roles: (claim tested, what the report says
# and where, better, worse). The claim is that the first figure's model scores better than the second's.
FINDINGS = (
    ("Pix2Pix does better on its training domain than on raw target SAR",
     "§3.3–3.4: high-quality results on Sentinel-1/2, severe degradation on QXSLAB-SAROPT", "fig3", "fig4"),
    ("Median 7 + gamma 7 preprocessing improves on raw target SAR",
     "§3.5: \"marginal improvements\"", "fig5", "fig4"),
    ("Full fine-tuning improves on raw target SAR",
     "§4.1.3: \"captures general color tones and some structural features\"", "fig7", "fig4"),
    ("Full fine-tuning improves more than preprocessing",
     "§3.5: preprocessing alone \"is insufficient\", \"necessitating fine-tuning or retraining\"", "fig7", "fig5"),
    ("Full fine-tuning scores better than LoRA fine-tuning",
     "§4.1.4: lower training losses than LoRA, but \"did not yield significantly better visual quality\"",
     "fig7", "fig9"),
)


def _best(evaluations, role, metric):
    """The best mean of `metric` over the evaluations standing for `role` (None when there are none)."""
    values = [e.summary["metrics"][metric]["mean"] for e in evaluations if role in e.roles]
    if not values:
        return None
    return max(values) if HIGHER_IS_BETTER[metric] else min(values)


def findings_section(evaluations, out):
    lines = ["## Findings — the report's conclusions tested on our metrics", ""]
    records = []
    for finding, basis, better, worse in FINDINGS:
        for metric in REPORT_METRICS:
            ours_better, ours_worse = _best(evaluations, better, metric), _best(evaluations, worse, metric)
            if ours_better is None or ours_worse is None:
                continue
            gain = ours_better - ours_worse if HIGHER_IS_BETTER[metric] else ours_worse - ours_better
            decimals = METRIC_DECIMALS[metric]  # the values as shown; the gain decides on the exact ones
            records.append({"finding": finding, "report": basis, "better": better, "worse": worse, "metric": metric,
                            "better_value": round(ours_better, decimals), "worse_value": round(ours_worse, decimals),
                            "gain": gain, "holds": gain > 0})
    if not records:
        return lines + _missing("evaluation folders for the figures compared here (fig3, fig4, fig5, fig7, fig9).")
    frame = pd.DataFrame(records)
    lines += [
        "Each finding claims that the model of the first figure scores better than that of the second; *Report* "
        "gives what the report says and where. The evaluations standing for each figure are compared on the "
        "metrics of the table below (where a figure has several, its best value per metric, which may come from "
        "different evaluations). *Gain* is the improvement of the first over the "
        "second (higher PSNR and SSIM, lower SAM and L1 are better); the finding holds on a metric when the gain "
        "is positive. Figure 3 is measured on the source domain, the others on the target domain's test split.", "",
    ]
    rows = []
    for (finding, basis, better, worse), group in frame.groupby(["finding", "report", "better", "worse"], sort=False):
        cells = {}
        for r in group.to_dict("records"):
            decimals = METRIC_DECIMALS[r["metric"]]
            cells[r["metric"]] = (f"{_number(r['better_value'], decimals)} vs {_number(r['worse_value'], decimals)} "
                                  f"({'holds' if r['holds'] else 'fails'})")
        rows.append([finding, basis, f"Fig. {better[3:]} vs Fig. {worse[3:]}"] + [cells.get(m, "—") for m in REPORT_METRICS]
                    + [f"{int(group['holds'].sum())} of {len(group)}"])
    headers = ["Finding", "Report", "Compared"] + [METRICS[m][0] for m in REPORT_METRICS] + ["Holds on"]
    files.write_csv(out / "findings.csv", frame)
    return lines + _markdown_table(headers, rows) + ["", "CSV: [findings.csv](findings.csv)", ""]


def curves_section(runs, out):
    lines = ["## Training curves of every run", ""]
    shown = [run for run in runs if run.history is not None and len(run.history)]
    if not shown:
        return lines + _missing("run folders with a history.csv.")
    for run in shown:
        name = f"{FIGURES_DIR}/curves_{run.name}.png"
        with files.atomic_path(out / name) as temporary:
            plot_curves(run.history, LOSS_PANELS + ACCURACY_PANELS, temporary, title=f"{run.name}: {run.experiment}")
        lines += [f"{run.describe()}:", "", f"![Training curves, {run.name}]({name})", ""]
    return lines


def write_report(runs, evaluations, out, title="SAR-to-optical translation: reproduction report"):
    """Write report.md with its CSVs and figures into `out`; returns the path of report.md."""
    out = Path(out)
    files.check_writable(out / FIGURES_DIR, create=True)
    synthetic = any(r.dataset["synthetic"] for r in runs) or any(e.summary["dataset"]["synthetic"] for e in evaluations)
    lines = [
        f"# {title}", "",
        "Columns marked *Report* copy the values of the report \"GAN-Based SAR-to-Optical Image Translation\" "
        "(kept in `keras_sar2opt/reports/paper.py`); columns marked *Ours* come from the run and evaluation "
        "folders listed under Inputs, each with the dataset it was measured on.",
    ]
    if synthetic:
        lines.append("Numbers measured on the built-in synthetic benchmark come from simulated scenes, not real "
                     "imagery: they test the pipeline and the report's qualitative findings, not its exact values.")
    lines.append("")
    lines += inputs_section(runs, evaluations)
    lines += table2_section(runs, out)
    lines += table4_section(runs, out)
    lines += figures12_section(runs, out)
    for role in ("fig3", "fig4", "fig5"):
        lines += evaluation_figure_section(role, evaluations, out)
    lines += figure6_section(runs, out)
    lines += evaluation_figure_section("fig7", evaluations, out)
    lines += table8_section(runs, out)
    lines += figure8_section(runs, out)
    lines += evaluation_figure_section("fig9", evaluations, out)
    lines += metrics_section(evaluations, out)
    lines += findings_section(evaluations, out)
    lines += curves_section(runs, out)
    return files.write_text(out / REPORT_NAME, "\n".join(lines).rstrip() + "\n")


def build_report(paths, out, figures=(), title=None):
    """collect_inputs(paths, figures) then write_report; `figures` holds (role, folder) pairs or
    "ROLE=DIR" strings. Returns the path of report.md."""
    files.check_writable(out, "-o")
    figures = [parse_figure(f if isinstance(f, str) else f"{f[0]}={f[1]}") for f in figures]
    runs, evaluations = collect_inputs(paths, figures)
    kwargs = {"title": title} if title else {}
    return write_report(runs, evaluations, out, **kwargs)
