"""`sar2opt reproduce` at a toy size: every stage runs, and the report's numbers are those of its run folders."""

import json
import logging

import pandas as pd
import pytest

from keras_sar2opt import files
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.evaluation import read_summary
from keras_sar2opt.reports.tables import METRIC_DECIMALS, REPORT_METRICS
from keras_sar2opt.reproduce import Scale, _Task, reproduce, run_tasks

TOY = Scale(
    "toy",
    gan_image_size=32,
    gan_pairs=12,
    gan_epochs=2,
    gan_batch_size=4,
    pix2pix_pairs=12,
    pix2pix_epochs=1,
    finetune_epochs=1,
    lora_epochs=1,
    pix2pix_batch_size=2,
    pix2pix_steps=1,
    sample_every=1,
    keep_all_checkpoints=False,
)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def study(module_tmp):
    """The toy study with two stages at once (`--jobs 2`), as `make demo` runs it."""
    root = module_tmp("reproduce")
    tensorflow_log = _Records()
    logging.getLogger("tensorflow").addHandler(tensorflow_log)
    try:
        report = reproduce(root / "report", scale=TOY, work=root / "work", jobs=2, verbose=0)
    finally:
        logging.getLogger("tensorflow").removeHandler(tensorflow_log)
    logs = {path.stem: path.read_text() for path in (root / "work" / "logs").glob("*.log")}
    return {
        "work": root / "work",
        "out": root / "report",
        "text": report.read_text(),
        "tensorflow_log": tensorflow_log.messages + list(logs.values()),
        "logs": logs,
    }


@pytest.mark.slow
def test_every_stage_writes_its_run_or_evaluation_folder(study):
    work = study["work"]
    for run in (
        "scratch",
        "patchgan",
        "wgan",
        "pix2pix-source",
        "finetune-full",
        "finetune-lora",
        "finetune-lora-dec8-head",
    ):
        assert (work / run / "generator.keras").is_file(), run
        # Finished runs saved and keep their last checkpoint only, as the quick scale does.
        assert sorted(p.name for p in (work / run / "checkpoints").iterdir()) == ["last.keras", "manifest.json"]
        assert json.loads((work / run / "config.json").read_text())["run"]["checkpoint_every"] is None
    lora = json.loads((work / "finetune-lora-dec8-head" / "config.json").read_text())
    assert lora["experiment"]["also_train"] == ["dec8", "head"]
    assert lora["finetune"]["generator"] == str((work / "pix2pix-source" / "generator.keras").resolve())
    roles = {folder.name: read_summary(folder)["role"] for folder in (work / "evaluations").iterdir()}
    assert sorted(roles.values()) == ["fig3", "fig4", "fig5", "fig5", "fig7", "fig9", "fig9"]
    gammas = [read_summary(work / "evaluations" / name)["preprocessing"] for name in roles if name.startswith("fig5")]
    assert sorted(steps[1][1]["convention"] for steps in gammas) == ["inverse", "power"]
    # Figure 3 is measured on the source domain (sentinel), the others on the target (qxslab).
    datasets = {name: read_summary(work / "evaluations" / name)["dataset"]["synthetic"]["preset"] for name in roles}
    assert {name: preset for name, preset in datasets.items() if preset == "sentinel"} == {"fig3-source": "sentinel"}
    # Each stage ran in a process of its own and wrote its output into logs/; every stage traces its
    # own model's functions, and TensorFlow's warning about retracing is not shown.
    assert sorted(study["logs"]) == sorted(
        ["pix2pix-source", "evaluations-fig3-5", "scratch", "patchgan", "wgan"]
        + ["finetune-full", "finetune-lora", "finetune-lora-dec8-head"]
    )
    assert "Held-out L1 on the val split" in study["logs"]["finetune-lora"]
    assert not [message for message in study["tensorflow_log"] if "retracing" in message]


@pytest.mark.slow
def test_report_has_every_section_and_no_missing_input(study):
    text = study["text"]
    for heading in (
        "## Table 2",
        "## Table 4",
        "## Figures 1 and 2",
        "## Figure 3",
        "## Figure 4",
        "## Figure 5",
        "## Figure 6",
        "## Figure 7",
        "## Table 8",
        "## Figure 8",
        "## Figure 9",
        "## Image metrics",
        "## Findings",
    ):
        assert heading in text
    assert "*Missing:*" not in text
    assert "(toy scale)" in text.splitlines()[0]


@pytest.mark.slow
def test_report_numbers_equal_the_run_and_evaluation_folders(study):
    work, out = study["work"], study["out"]
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 7
    for folder in (work / "evaluations").iterdir():
        summary = read_summary(folder)
        row = metrics[metrics["evaluation"] == folder.name].iloc[0]
        for metric in REPORT_METRICS:
            assert row[f"{metric}_mean"] == round(summary["metrics"][metric]["mean"], METRIC_DECIMALS[metric])
    history = pd.read_csv(work / "finetune-lora" / "history.csv")
    table8 = pd.read_csv(out / "table8_finetune-lora.csv")
    last = table8[table8["epoch"] == 1].iloc[0]
    for column in ("d_loss", "g_loss", "g_l1", "val_d_loss", "val_g_loss", "val_g_l1"):
        assert last[f"ours_{column}"] == pytest.approx(history[column].iloc[-1], abs=1e-4)
    findings = pd.read_csv(out / "findings.csv")
    assert set(findings["better"]) == {"fig3", "fig5", "fig7"} and len(findings) == 20
    raw = read_summary(work / "evaluations" / "fig4-target-raw")["metrics"]
    for record in findings[findings["worse"] == "fig4"].to_dict("records"):
        metric = record["metric"]
        assert record["worse_value"] == pytest.approx(round(raw[metric]["mean"], METRIC_DECIMALS[metric]))


def test_an_unknown_scale_is_refused(cli_error, tmp_path):
    from keras_sar2opt.errors import Sar2OptError

    with pytest.raises(Sar2OptError, match="Expected a scale among quick, full, received 'huge'"):
        reproduce(tmp_path / "out", scale="huge")


def test_missing_target_data_is_a_one_line_error(cli_error, tmp_path):
    line = cli_error(["reproduce", "--data-target", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")])
    assert (
        line == f"sar2opt reproduce: error: Expected --data-target to be an existing dataset folder, received "
        f"{tmp_path / 'nowhere'}"
    )
    assert not (tmp_path / "out").exists()


def test_outputs_under_a_file_are_refused_before_any_training(cli_error, tmp_path):
    blocker = tmp_path / "file.png"
    blocker.write_bytes(b"not a folder")
    for option in ("-o", "--work"):
        line = cli_error(["reproduce", option, str(blocker / "x")])
        assert (
            line == f"sar2opt reproduce: error: Expected a writable {option} folder, received {blocker / 'x'} "
            f"({blocker} is a file)"
        )


class _Started(list):
    """The stage callable of run_tasks, recording the (text, log) of each stage started."""

    def __call__(self, text, log=None):
        self.append((text, log))

    def finished(self, name):
        pass


def _tasks(folder):
    """A task that writes a file, one after it that fails on a missing file, and one of its own."""
    return [
        _Task("first", "Writing first.txt", files.write_text, {"path": folder / "first.txt", "text": "1"}),
        _Task(
            "broken",
            "Reading missing.json",
            files.read_json,
            {"path": folder / "missing.json", "what": "the missing file"},
            after=("first",),
        ),
        _Task("third", "Writing third.txt", files.write_text, {"path": folder / "third.txt", "text": "3"}),
    ]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failed_stage_stops_the_study_after_the_stages_it_waited_for(tmp_path, jobs):
    started = _Started()
    with pytest.raises(Sar2OptError, match="missing.json") as raised:
        run_tasks(_tasks(tmp_path), jobs, started, tmp_path / "logs")
    assert (tmp_path / "first.txt").read_text() == "1"
    if jobs == 1:  # in list order, in this process
        assert started == [("Writing first.txt", None), ("Reading missing.json", None)]
        assert not (tmp_path / "third.txt").exists()
    else:  # the independent stage ran beside the first; each wrote its output into logs/
        assert [text for text, _ in started] == ["Writing first.txt", "Writing third.txt", "Reading missing.json"]
        assert (tmp_path / "third.txt").read_text() == "3"
        assert [log for _, log in started] == [
            tmp_path / "logs" / f"{name}.log" for name in ("first", "third", "broken")
        ]
        assert str(raised.value).endswith(
            f"(stage: Reading missing.json; its output: {tmp_path / 'logs' / 'broken.log'})"
        )


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_task_listed_before_the_task_it_waits_for_is_refused_before_any_runs(tmp_path, jobs):
    first, broken, third = _tasks(tmp_path)
    with pytest.raises(
        ValueError, match=r"Expected the tasks \['first'\] listed before 'broken', which waits for them"
    ):
        run_tasks([broken, first, third], jobs, _Started(), tmp_path / "logs")
    assert not (tmp_path / "first.txt").exists() and not (tmp_path / "logs").exists()


def test_jobs_must_be_a_positive_count(cli_error, tmp_path):
    line = cli_error(["reproduce", "--jobs", "0", "-o", str(tmp_path / "out"), "--work", str(tmp_path / "work")])
    assert line == "sar2opt reproduce: error: Expected --jobs to be a positive integer, received 0"
