"""`sar2opt report`: Tables 2, 4, 8 and Figures 1–9 from run and evaluation folders, the report's values beside ours."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from keras_sar2opt import paper
from keras_sar2opt.cli import main
from keras_sar2opt.data.io import write_png
from keras_sar2opt.evaluation import FORMAT, summarize, write_evaluation

HISTORY_COLUMNS = ("d_loss", "g_loss", "g_adv", "g_l1", "d_real_acc", "d_fake_acc")


def make_run(folder, experiment, epochs, *, data, synthetic=True, seed=0, sample_every=5):
    """A run folder in the format of keras_sar2opt.training.run: config.json, history.csv, samples/."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    config = {
        "experiment": {"name": experiment, "section": "test"},
        "run": {
            "data": str(data),
            "synthetic": {"preset": "qxslab", "pairs": 40, "size": 32, "seed": 0} if synthetic else None,
            "pairs": {"train": 32, "val": 4, "test": 4},
        },
        "seed": 0,
    }
    (folder / "config.json").write_text(json.dumps(config))
    history = {"epoch": np.arange(epochs)}  # CSVLogger counts epochs from 0
    for column in HISTORY_COLUMNS:
        history[column] = rng.uniform(0.0, 1.0, epochs)
        history[f"val_{column}"] = rng.uniform(0.0, 1.0, epochs)
    history["g_loss"] = history["g_loss"] * 40
    pd.DataFrame(history).to_csv(folder / "history.csv", index=False)
    for epoch in sorted({1, epochs} | set(range(sample_every, epochs + 1, sample_every))):
        write_png(folder / "samples" / f"epoch_{epoch:03d}.png", rng.uniform(size=(16, 50, 3)))
    return folder


def make_evaluation(folder, role, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"name": ["1", "2", "3"], "sar": ["a", "b", "c"], "optical": ["d", "e", "f"]})
    for column in ("psnr", "ssim", "mae", "rmse", "sam", "l1"):
        frame[column] = rng.uniform(0.1, 20.0, 3)
    summary = {
        "format": FORMAT,
        "role": role,
        "model": "/models/pix2pix_gen_180.pth",
        "dataset": {"path": "/data/QXSLAB", "synthetic": None, "label": "data at `/data/QXSLAB`", "layout": "qxslab"},
        "split": "test",
        "split_file": None,
        "seed": 0,
        "limit": None,
        "pairs": 3,
        "image_size": 16,
        "preprocessing": [["median", {"window": 7}]],
        "sar_options": {},
        "metrics": summarize(frame),
        "units": {},
        "fid": None,
        "fid_note": "skipped",
        "files": {"per_image": "per_image.csv", "samples": "samples.png", "markdown": "summary.md"},
    }
    samples = [rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32) for _ in range(3)]
    return write_evaluation(folder, frame, samples, summary), summary


def markdown_table(text, heading):
    """The rows (lists of cell strings) of the first table after `heading`."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[0], rows[2:]


def assert_same_numbers(markdown_rows, frame, columns):
    """Every numeric cell in the Markdown equals the CSV value; '—' marks a missing value."""
    assert len(markdown_rows) == len(frame)
    for row, record in zip(markdown_rows, frame.to_dict("records")):
        for cell, column in zip(row, columns):
            value = record[column]
            if cell == "—":
                assert value is None or (isinstance(value, float) and math.isnan(value))
            elif isinstance(value, (int, float)):
                assert float(cell) == pytest.approx(value, abs=1e-9), (column, cell, value)


@pytest.fixture(scope="module")
def report(module_tmp):
    root = module_tmp("report")
    data = root / "data"
    data.mkdir()
    runs = {
        "scratch": make_run(root / "runs" / "scratch", "scratch", 20, data=data, seed=1),
        "patchgan": make_run(root / "runs" / "patchgan", "patchgan", 7, data=data, seed=2),
        "wgan": make_run(root / "runs" / "wgan", "wgan", 3, data=data, seed=3),
        "full": make_run(root / "runs" / "full", "finetune-full", 6, data=root / "real", synthetic=False, seed=4),
        "lora": make_run(root / "runs" / "lora", "finetune-lora", 30, data=data, seed=5),
    }
    evaluation, summary = make_evaluation(root / "evals" / "raw", role="fig4")
    other, _ = make_evaluation(root / "evals" / "gamma", role=None, seed=1)
    out = root / "reports" / "demo"
    argv = ["report", *map(str, runs.values()), str(evaluation), "--figure", f"fig5={other}", "-o", str(out)]
    assert main(argv) == 0
    return {"out": out, "runs": runs, "text": (out / "report.md").read_text(), "summary": summary}


def test_report_has_every_section_and_figure_file(report):
    text, out = report["text"], report["out"]
    for heading in (
        "## Table 2",
        "## Table 4",
        "## Table 8",
        "## Figures 1 and 2",
        "## Figure 3",
        "## Figure 4",
        "## Figure 5",
        "## Figure 6",
        "## Figure 7",
        "## Figure 8",
        "## Figure 9",
        "## Image metrics",
    ):
        assert heading in text
    for name in (
        "fig1_scratch.jpg",
        "fig2_scratch.jpg",
        "fig1_wgan.jpg",
        "fig6_full.png",
        "fig8_lora.png",
        "fig4_raw.jpg",
        "fig5_gamma.jpg",
    ):
        assert (out / "figures" / name).stat().st_size > 0
        assert f"figures/{name}" in text
    # Figure 1 shows the report's epoch 10 when a grid exists; Figure 2 the last one (no epoch 130).
    assert "**Figure 1** (run" in text and "epoch 10:" in text and "epoch 20:" in text
    # Figures 3, 7, 9 had no evaluation: the sections say what is missing.
    for role in ("fig3", "fig7", "fig9"):
        assert f"*Missing:* an evaluation folder for {role}" in text
    assert not list(out.rglob(".*.tmp*"))


def test_table2_numbers_equal_csv_history_and_report(report):
    header, rows = markdown_table(report["text"], "## Table 2")
    frame = pd.read_csv(report["out"] / "table2_scratch.csv")
    assert header[:3] == ["Epoch", "Report real (%)", "Report fake (%)"]
    assert_same_numbers(rows, frame, list(frame.columns))
    assert list(frame["epoch"]) == [1, 5, 10, 15, 20]
    history = pd.read_csv(report["runs"]["scratch"] / "history.csv")
    last = frame.set_index("epoch").loc[20]
    assert last["report_real_pct"] == 92.7 and last["report_fake_pct"] == 92.9
    assert last["ours_real_pct"] == round(100 * history["d_real_acc"].iloc[19], 2)
    assert last["ours_val_fake_pct"] == round(100 * history["val_d_fake_acc"].iloc[19], 2)
    section = report["text"][report["text"].index("## Table 2") : report["text"].index("## Table 4")]
    assert "synthetic `qxslab` preset" in section


def test_table4_compares_the_three_discriminators(report):
    from keras_sar2opt.reports.tables import STABILITY_EPOCHS, TABLE4_COLUMNS

    _, rows = markdown_table(report["text"], "## Table 4")
    frame = pd.read_csv(report["out"] / "table4.csv")
    assert_same_numbers(rows, frame, [column for column, _, _ in TABLE4_COLUMNS])
    assert list(frame["discriminator"]) == ["From scratch", "PatchGAN", "WGAN critic"]
    assert list(frame["report_accuracy_pct"].iloc[:2]) == [92.8, 54.0] and math.isnan(
        frame["report_accuracy_pct"].iloc[2]
    )
    history = pd.read_csv(report["runs"]["patchgan"] / "history.csv")
    patchgan = frame.iloc[1]
    assert patchgan["ours_d_loss_std_last_epochs"] == pytest.approx(
        round(history["d_loss"].iloc[-STABILITY_EPOCHS:].std(ddof=0), 4), abs=1e-12
    )
    assert patchgan["ours_final_accuracy_pct"] == pytest.approx(
        round(50 * (history["d_real_acc"].iloc[-1] + history["d_fake_acc"].iloc[-1]), 2), abs=1e-12
    )


def test_table8_puts_lora_losses_beside_the_reports(report):
    _, rows = markdown_table(report["text"], "## Table 8")
    frame = pd.read_csv(report["out"] / "table8_lora.csv")
    assert_same_numbers(
        rows, frame, ["epoch"] + [f"{side}_{m}" for m in paper.TABLE8_COLUMNS for side in ("report", "ours")]
    )
    assert list(frame["epoch"]) == sorted(paper.TABLE8_LOSSES)
    history = pd.read_csv(report["runs"]["lora"] / "history.csv")
    at25 = frame.set_index("epoch").loc[25]
    assert at25["report_d_loss"] == 0.0015 and at25["report_val_g_loss"] == 37.2212
    assert at25["ours_d_loss"] == round(history["d_loss"].iloc[24], 4)
    assert at25["ours_val_g_l1"] == round(history["val_g_l1"].iloc[24], 4)


def test_figure6_names_real_data_and_metrics_table_matches_summaries(report):
    text = report["text"]
    section = text[text.index("## Figure 6") : text.index("## Figure 7")]
    assert f"data at `{report['runs']['full'].parent.parent / 'real'}`" in section
    _, rows = markdown_table(text, "## Figure 6")
    frame = pd.read_csv(report["out"] / "figure6_full.csv")
    assert_same_numbers(rows, frame, list(frame.columns))
    assert frame.set_index("metric").loc["g_loss", "report_start"] == 32.5

    _, rows = markdown_table(text, "## Image metrics")
    metrics = pd.read_csv(report["out"] / "metrics.csv")
    assert len(rows) == len(metrics) == 2
    assert list(metrics["figure"]) == ["fig4", "fig5"]
    psnr_cells = [row[7] for row in rows]
    for cell, record in zip(psnr_cells, metrics.to_dict("records")):
        mean, std = (float(part) for part in cell.split("±"))
        assert (mean, std) == (record["psnr_mean"], record["psnr_std"])
    assert metrics["psnr_mean"].iloc[0] == round(report["summary"]["metrics"]["psnr"]["mean"], 2)
    assert "severe degradation" in rows[0][-1] and "data at `/data/QXSLAB`" in rows[0][3]


def test_missing_inputs_are_named_and_bad_folders_rejected(tmp_path, capsys):
    evaluation, _ = make_evaluation(tmp_path / "eval", role="fig9")
    assert main(["report", str(evaluation), "-o", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "*Missing:* a run folder of the `scratch` experiment" in text
    assert "*Missing:* a run folder of the `finetune-lora` experiment" in text
    assert "figures/fig9_eval.jpg" in text
    assert main(["report", str(tmp_path / "absent"), "-o", str(tmp_path / "out2")]) == 1
    assert "Expected a run folder (config.json) or an evaluation folder" in capsys.readouterr().err
    assert main(["report", "--figure", "fig2=x", "-o", str(tmp_path / "out3")]) == 1
    assert "fig3, fig4, fig5, fig7, fig9" in capsys.readouterr().err


def _evaluation(role, **means):
    from keras_sar2opt.reports.inputs import Evaluation

    metrics = {metric: {"mean": value, "std": 0.0} for metric, value in means.items()}
    return Evaluation(path=None, name=role, summary={"metrics": metrics}, roles=(role,))


def test_findings_compare_figures_per_metric_with_the_best_of_several(tmp_path):
    from keras_sar2opt.reports.findings import findings_section

    evaluations = [
        _evaluation("fig3", psnr=20.0, ssim=0.6, sam=5.0, l1=0.2),
        _evaluation("fig4", psnr=10.0, ssim=0.2, sam=15.0, l1=0.6),
        _evaluation("fig5", psnr=11.0, ssim=0.1, sam=16.0, l1=0.5),  # better PSNR and L1, worse SSIM and SAM
        _evaluation("fig5", psnr=9.0, ssim=0.25, sam=17.0, l1=0.7),  # better SSIM only
        _evaluation("fig7", psnr=14.0, ssim=0.3, sam=12.0, l1=0.4),
    ]
    text = "\n".join(findings_section(evaluations, tmp_path))
    header, rows = markdown_table(text, "## Findings")
    assert header == ["Finding", "Report", "Compared", "PSNR", "SSIM", "SAM", "L1", "Holds on"]
    by_figures = {row[2]: row for row in rows}
    assert "did not yield significantly better" not in text  # no fig9: the LoRA comparison and its quote are left out
    assert set(by_figures) == {"Fig. 3 vs Fig. 4", "Fig. 5 vs Fig. 4", "Fig. 7 vs Fig. 4", "Fig. 7 vs Fig. 5"}
    assert by_figures["Fig. 3 vs Fig. 4"][3:] == [
        "20.00 vs 10.00 (holds)",
        "0.6000 vs 0.2000 (holds)",
        "5.00 vs 15.00 (holds)",
        "0.2000 vs 0.6000 (holds)",
        "4 of 4",
    ]
    # Figure 5's best per metric: PSNR 11 and L1 0.5 of the first, SSIM 0.25 of the second, SAM 16.
    assert by_figures["Fig. 5 vs Fig. 4"][3:] == [
        "11.00 vs 10.00 (holds)",
        "0.2500 vs 0.2000 (holds)",
        "16.00 vs 15.00 (fails)",
        "0.5000 vs 0.6000 (holds)",
        "3 of 4",
    ]
    assert by_figures["Fig. 7 vs Fig. 5"][-1] == "4 of 4"
    frame = pd.read_csv(tmp_path / "findings.csv")
    assert len(frame) == 16 and frame["holds"].sum() == 15
    sam = frame[(frame["better"] == "fig5") & (frame["metric"] == "sam")].iloc[0]
    assert sam["gain"] == pytest.approx(-1.0) and not sam["holds"]


def test_findings_without_the_compared_figures_say_what_is_missing(tmp_path):
    from keras_sar2opt.reports.findings import findings_section

    text = "\n".join(findings_section([_evaluation("fig4", psnr=10.0, ssim=0.2, sam=15.0, l1=0.6)], tmp_path))
    assert "*Missing:* evaluation folders for the figures compared here" in text
    assert not (tmp_path / "findings.csv").exists()


def test_an_output_that_cannot_be_a_folder_is_one_line(tmp_path, cli_error):
    evaluation, _ = make_evaluation(tmp_path / "eval", role="fig9")
    blocker = tmp_path / "existing.md"
    blocker.write_text("# notes\n")
    for out in (blocker, blocker / "report"):
        line = cli_error(["report", str(evaluation), "-o", str(out)])
        assert line == f"sar2opt report: error: Expected a writable -o folder, received {out} ({blocker} is a file)"
    assert blocker.read_text() == "# notes\n"


def test_an_evaluation_whose_model_does_not_fit_its_figure_is_flagged(tmp_path, caplog):
    """Figure 7 must show a full fine-tuning run's model, Figure 9 a LoRA one's, Figures 3-5 the
    pre-trained model: their run's config.json says which training made a model."""
    from keras_sar2opt.reports.figures import evaluation_figure_section
    from keras_sar2opt.reports.inputs import collect_inputs

    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "config.json").write_text(
        json.dumps({"experiment": {"name": "finetune-lora", "pretrained": True, "lora_rank": 4}})
    )
    (lora / "generator.keras").write_bytes(b"")
    checks = {}
    for role in ("fig9", "fig7", "fig4"):
        folder, summary = make_evaluation(tmp_path / f"eval-{role}", role=role)
        summary["model"] = str(lora / "generator.keras")
        (folder / "summary.json").write_text(json.dumps(summary))
        _, evaluations = collect_inputs([folder])
        with caplog.at_level("WARNING"):
            text = "\n".join(evaluation_figure_section(role, evaluations, tmp_path / "out"))
        checks[role] = [line for line in text.splitlines() if line.startswith("*Check:*")]
    assert checks["fig9"] == []
    assert checks["fig7"] == [
        f"*Check:* eval-fig7: Figure 7 shows full fine-tuning, but the model comes from the finetune-lora run {lora}."
    ]
    assert checks["fig4"] == [
        f"*Check:* eval-fig4: Figure 4 shows the pre-trained model, but the model comes from "
        f"the finetune-lora run {lora}."
    ]
    assert len([m for m in caplog.messages if "stands for" in m]) == 2
    folder, _ = make_evaluation(tmp_path / "eval-pth", role="fig9")  # a .pth was never fine-tuned here
    text = "\n".join(evaluation_figure_section("fig9", collect_inputs([folder])[1], tmp_path / "out"))
    assert "*Check:* eval-pth: Figure 9 shows LoRA fine-tuning, but the model comes from no fine-tuning run." in text
