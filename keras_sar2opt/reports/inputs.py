"""The report's inputs: run folders (Tables 2, 4, 8, Figures 1, 2, 6, 8) and evaluation folders (Figures 3-5, 7, 9)."""

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from keras_sar2opt import paper
from keras_sar2opt.data.datasets import describe_dataset
from keras_sar2opt.data.preprocess import describe_steps
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.evaluation import SUMMARY_JSON, model_label, read_summary
from keras_sar2opt.plots import read_history
from keras_sar2opt.runs import CONFIG, RunFolder
from keras_sar2opt.text import counted

_SAMPLE_FILE = re.compile(r"epoch_(\d+)\.png")


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
        folder = RunFolder.holding(self.summary["model"]) if Path(self.summary["model"]).exists() else None
        experiment = (folder.hint_config() or {}).get("experiment") if folder else None
        experiment = experiment if isinstance(experiment, dict) else {}
        fine_tuned, lora = bool(experiment.get("pretrained")), bool(experiment.get("lora_rank"))
        made_by = f"the {experiment['name']} run {folder.path}" if "name" in experiment else "no fine-tuning run"
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
    folder = RunFolder(path)
    path = folder.path
    config = folder.read_config(f"run folder's {folder.config_path.name}")
    experiment = config.get("experiment", {})
    experiment = experiment.get("name") if isinstance(experiment, dict) else experiment
    settings = config.get("run", {})
    history, problem = None, None
    if folder.history_path.is_file():
        try:
            history = read_history(folder.history_path)
        except Sar2OptError as error:
            problem = str(error)
    else:
        problem = f"no {folder.history_path.name} in {path}"
    samples = {
        int(match.group(1)): file
        for file in sorted(folder.samples.glob("epoch_*.png"))
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
    """ "ROLE=EVAL_DIR" (e.g. fig3=evals/sentinel) -> (role, Path)."""
    role, separator, folder = str(text).partition("=")
    if not separator or not folder:
        raise Sar2OptError(f"Expected --figure ROLE=EVAL_DIR, received {text!r}")
    if role not in paper.EVALUATION_FIGURES:
        raise Sar2OptError(f"Expected a --figure role among {', '.join(paper.EVALUATION_FIGURES)}, received {role!r}")
    return role, Path(folder)


def collect_inputs(paths, figures=()):
    """Runs and Evaluations from folders (config.json: a run; summary.json: an evaluation) and
    (role, evaluation folder) pairs. Roles given here replace the role stored in summary.json."""
    loaded, evaluations, taken = [], {}, set()
    assigned = {}
    for role, folder in figures:
        assigned.setdefault(Path(folder).resolve(), []).append(role)
    folders = [Path(p) for p in paths] + [Path(folder) for _, folder in figures]
    if not folders:
        raise Sar2OptError("Expected at least one run or evaluation folder, received none")
    for folder in folders:
        key = folder.resolve()
        if RunFolder(folder).exists():
            if all(run.path.resolve() != key for run in loaded):
                loaded.append(load_run(folder, _unique(_slug(folder.name), taken)))
        elif (folder / SUMMARY_JSON).is_file() or key in assigned:
            if key not in evaluations:
                summary = read_summary(folder)
                roles = tuple(dict.fromkeys(assigned.get(key) or [summary.get("role")]))
                evaluations[key] = Evaluation(
                    folder, _unique(_slug(folder.name), taken), summary, tuple(r for r in roles if r)
                )
        else:
            raise Sar2OptError(
                f"Expected a run folder ({CONFIG}) or an evaluation folder ({SUMMARY_JSON}), received {folder}"
            )
    return loaded, list(evaluations.values())


def runs_of(loaded, experiment):
    """The runs of `experiment` and of its variants (`experiment-...`)."""
    return [run for run in loaded if run.experiment == experiment or run.experiment.startswith(experiment + "-")]


def history_at(history, column, epoch, scale=1.0):
    """history[column] at `epoch` times `scale`, or NaN when not logged."""
    if history is None or column not in history:
        return math.nan
    values = history.loc[history["epoch"] == epoch, column]
    return float(values.iloc[-1]) * scale if len(values) else math.nan
