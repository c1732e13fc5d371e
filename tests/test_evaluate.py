"""`sar2opt evaluate`: per-image metrics on a dataset split, summaries equal to the CSV, preprocessing, splits."""

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from keras_sar2opt import metrics
from keras_sar2opt.cli import main
from keras_sar2opt.data import find_pairs, load_pair, save_split, split_pairs
from keras_sar2opt.data.grids import sample_grid
from keras_sar2opt.data.io import read_image
from keras_sar2opt.data.synthetic import write_synthetic
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.evaluation import FID_SKIPPED, METRICS, evaluate

SIZE = 32
MEDIAN_GAMMA = [("median", {"window": 7}), ("gamma", {"gamma": 7.0, "convention": "power"})]


def tiny_generator(size=SIZE):
    sar = keras.Input((size, size, 3), name="sar")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(sar)
    x = keras.layers.Conv2D(3, 3, padding="same")(x)
    return keras.Model(sar, keras.layers.Activation("tanh")(x), name="tiny_generator")


@pytest.fixture(scope="module")
def data(module_tmp):
    root = module_tmp("eval") / "qxslab"
    return write_synthetic(root, "qxslab", 30, "qxslab", size=64, seed=0, progress=False)


@pytest.fixture(scope="module")
def model_path(module_tmp):
    path = module_tmp("model") / "tiny.keras"
    keras.utils.set_random_seed(1)
    tiny_generator().save(path)
    return path


def _expected(model, pairs, steps=None):
    """Per-image PSNR and L1 computed directly from load_pair and the model."""
    loaded = [load_pair(pair, SIZE, {}, steps) for pair in pairs]
    sar = np.stack([s for s, _ in loaded])
    optical = np.stack([o for _, o in loaded])
    generated = np.asarray(model.predict_on_batch(sar))
    return metrics.psnr(generated, optical, (-1, 1)), np.abs(generated - optical).mean(axis=(1, 2, 3))


def test_evaluate_command_writes_csv_summary_and_grid(data, model_path, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", "--model", str(model_path), "--data", str(data), "-o", str(out), "--batch-size", "2"])
    assert code == 0
    assert "% of outputs closer to it than to their target" in capsys.readouterr().out
    test_pairs = split_pairs(find_pairs(data).pairs, seed=0)["test"]
    frame = pd.read_csv(out / "per_image.csv", dtype={"name": str})
    assert len(frame) == len(test_pairs) == 3
    assert list(frame["name"]) == [pair.name for pair in test_pairs]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 3 and summary["split"] == "test" and summary["image_size"] == SIZE
    assert summary["fid"] is None and summary["fid_note"] == FID_SKIPPED and summary["kid"] is None
    assert set(summary["metrics"]) == set(METRICS)  # nothing that needs weights by default
    assert summary["dataset"]["synthetic"]["preset"] == "qxslab"
    for name in METRICS:
        assert summary["metrics"][name]["mean"] == pytest.approx(frame[name].mean(), rel=1e-9)
        assert summary["metrics"][name]["std"] == pytest.approx(frame[name].std(ddof=0), rel=1e-9, abs=1e-12)
    psnr, l1 = _expected(keras.saving.load_model(model_path), test_pairs)
    np.testing.assert_allclose(frame["psnr"], psnr, rtol=1e-5)
    np.testing.assert_allclose(frame["l1"], l1, rtol=1e-5)
    np.testing.assert_allclose(frame["mae"] * 2, frame["l1"], rtol=1e-5)
    markdown = (out / "summary.md").read_text()
    assert f"{summary['metrics']['psnr']['mean']:.4f} ± {summary['metrics']['psnr']['std']:.4f}" in markdown
    grid = read_image(out / "samples.png")
    assert grid.shape[0] > 3 * SIZE and grid.shape[1] > 3 * SIZE  # 3 rows of SAR | generated | target


def test_preprocessing_changes_the_numbers_and_is_recorded(data, model_path, tmp_path):
    model = keras.saving.load_model(model_path)
    raw = evaluate(model, data, tmp_path / "raw", progress=False)
    processed = evaluate(model, data, tmp_path / "processed", preprocessing=MEDIAN_GAMMA, progress=False)
    assert processed["preprocessing"] == [list(step) for step in MEDIAN_GAMMA]
    assert abs(processed["metrics"]["psnr"]["mean"] - raw["metrics"]["psnr"]["mean"]) > 1e-3
    frame = pd.read_csv(tmp_path / "processed" / "per_image.csv")
    psnr, _ = _expected(model, split_pairs(find_pairs(data).pairs, seed=0)["test"], MEDIAN_GAMMA)
    np.testing.assert_allclose(frame["psnr"], psnr, rtol=1e-5)


def test_command_line_preprocessing_options_keep_order_and_convention(data, model_path, tmp_path):
    out = tmp_path / "inverse"
    argv = ["evaluate", "--model", str(model_path), "--data", str(data), "-o", str(out), "--role", "fig5"]
    assert main(argv + ["--median", "7", "--gamma", "7", "--gamma-convention", "inverse"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["role"] == "fig5"
    assert summary["preprocessing"] == [["median", {"window": 7}], ["gamma", {"gamma": 7.0, "convention": "inverse"}]]


def test_split_file_split_choice_and_limit(data, model_path, tmp_path, caplog):
    model = keras.saving.load_model(model_path)
    split = split_pairs(find_pairs(data).pairs, seed=5)
    save_split(split, tmp_path / "split.json")
    summary = evaluate(model, data, tmp_path / "val", split="val", split_file=tmp_path / "split.json", progress=False)
    frame = pd.read_csv(tmp_path / "val" / "per_image.csv", dtype={"name": str})
    assert list(frame["name"]) == [pair.name for pair in split["val"]]
    assert summary["pairs"] == len(split["val"])
    assert summary["split_source"] == f"the split file {(tmp_path / 'split.json').resolve()}"
    assert (
        f"- Split: val ({len(split['val'])} pairs) of the split file {(tmp_path / 'split.json').resolve()}\n"
        in (tmp_path / "val" / "summary.md").read_text()
    )
    moved = shutil.copytree(data, tmp_path / "moved")  # a split holds for its data moved elsewhere
    summary = evaluate(
        model, moved, tmp_path / "moved-val", split="val", split_file=tmp_path / "split.json", progress=False
    )
    assert pd.read_csv(tmp_path / "moved-val" / "per_image.csv", dtype={"name": str})["name"].tolist() == [
        pair.name for pair in split["val"]
    ]
    listing = tmp_path / "lists" / "pairs.csv"  # the same pairs listed in a CSV file, paths from its folder
    listing.parent.mkdir()
    listing.write_text(
        "sar,optical\n"
        + "".join(
            f"{os.path.relpath(p.sar, listing.parent)},{os.path.relpath(p.optical, listing.parent)}\n"
            for p in find_pairs(data).pairs
        )
    )
    summary = evaluate(
        model, listing, tmp_path / "csv", split="val", split_file=tmp_path / "split.json", progress=False
    )
    assert summary["pairs"] == len(split["val"]) and summary["dataset"]["path"] == str(listing.resolve())
    summary = evaluate(model, data, tmp_path / "all", split="all", limit=5, sample_rows=2, progress=False)
    assert summary["pairs"] == 5 and len(pd.read_csv(tmp_path / "all" / "per_image.csv")) == 5
    assert summary["split_source"] == "every pair of the dataset"
    summary = evaluate(model, data, tmp_path / "seeded", split="val", seed=5, progress=False)
    assert summary["split_source"] == "the seeded 80/10/10 split (seed 5)" and summary["pairs"] == len(split["val"])
    assert not [m for m in caplog.messages if m.startswith("Replacing")]
    with caplog.at_level("WARNING"):  # an evaluation written again over an earlier one says so
        evaluate(model, data, tmp_path / "seeded", split="test", seed=5, progress=False)
    assert f"Replacing the evaluation in {tmp_path / 'seeded'}" in caplog.messages
    two_rows = sample_grid(*[np.zeros((2, SIZE, SIZE, 3), np.float32)] * 3)
    assert read_image(tmp_path / "all" / "samples.png").shape[:2] == two_rows.shape[:2]


def test_skipped_pairs_are_listed_and_left_out_of_the_split(data, model_path, tmp_path, capsys):
    split = split_pairs(find_pairs(data).pairs, seed=0)
    save_split(split, tmp_path / "split.json")
    damaged = shutil.copytree(data, tmp_path / "damaged")
    bad = split["test"][0]
    (damaged / Path(bad.optical).relative_to(data)).write_bytes(b"not a png")
    argv = [
        "evaluate",
        "--model",
        str(model_path),
        "--data",
        str(damaged),
        "--split-file",
        str(tmp_path / "split.json"),
    ]
    assert main([*argv, "-o", str(tmp_path / "strict")]) == 1
    assert main([*argv, "-o", str(tmp_path / "out"), "--on-bad", "skip"]) == 0
    assert "test split; 1 bad pairs of the dataset left out" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped"] == 1 and summary["pairs"] == len(split["test"]) - 1
    assert pd.read_csv(tmp_path / "out" / "skipped.csv", dtype={"name": str})["name"].tolist() == [bad.name]
    assert bad.name not in pd.read_csv(tmp_path / "out" / "per_image.csv", dtype={"name": str})["name"].tolist()
    assert "1 bad pairs of the dataset left out (`skipped.csv`)" in (tmp_path / "out" / "summary.md").read_text()
    # Beside a run's config.json, the split file brings the run's data and --on-bad.
    (tmp_path / "config.json").write_text(json.dumps({"run": {"data": str(damaged), "on_bad": "skip"}}))
    run_split = ["evaluate", "--model", str(model_path), "--split-file", str(tmp_path / "split.json")]
    assert main([*run_split, "-o", str(tmp_path / "by-run")]) == 0
    assert json.loads((tmp_path / "by-run" / "summary.json").read_text())["skipped"] == 1
    assert main([*run_split, "-o", str(tmp_path / "strict-by-run"), "--on-bad", "error"]) == 1


def test_evaluate_errors(data, model_path, tmp_path, capsys):
    assert (
        main(["evaluate", "--model", str(tmp_path / "none.keras"), "--data", str(data), "-o", str(tmp_path / "o")]) == 1
    )
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(["evaluate", "--model", str(model_path), "--data", str(tmp_path / "nodata"), "-o", str(tmp_path / "o")])
        == 1
    )
    assert "--data" in capsys.readouterr().err
    other = write_synthetic(tmp_path / "other", "qxslab", 40, "qxslab", size=64, seed=3, progress=False)
    save_split(split_pairs(find_pairs(other).pairs), tmp_path / "other_split.json")  # names 1..40; data: 1..30
    with pytest.raises(Sar2OptError, match="among those of .*, which it lacks"):
        evaluate(tiny_generator(), data, tmp_path / "o", split_file=tmp_path / "other_split.json", progress=False)
    with pytest.raises(Sar2OptError, match="--limit"):
        evaluate(tiny_generator(), data, tmp_path / "o", limit=0, progress=False)
    assert not (tmp_path / "o").exists()


def test_an_output_that_cannot_be_a_folder_is_refused_before_data_and_model_are_read(tmp_path, cli_error):
    blocker = tmp_path / "existing.csv"
    blocker.write_text("name,psnr\n")
    missing = ["--model", str(tmp_path / "none.keras"), "--data", str(tmp_path / "nodata")]
    for out in (blocker, blocker / "eval"):
        line = cli_error(["evaluate", *missing, "-o", str(out)])
        assert line == f"sar2opt evaluate: error: Expected a writable -o folder, received {out} ({blocker} is a file)"
    assert blocker.read_text() == "name,psnr\n"


def test_the_literature_table_labels_published_numbers_as_theirs_beside_ours(tmp_path):
    from types import SimpleNamespace

    from keras_sar2opt.reports.literature import literature_section

    stats = {"mean": 0.5, "std": 0.1, "min": 0.0, "max": 1.0}
    summary = {
        "model": "runs/p/generator.keras",
        "dataset": {"label": "QXS-SAROPT"},
        "split": "test",
        "pairs": 64,
        "metrics": {"psnr": {**stats, "mean": 13.0}, "ssim": stats, "dists": {**stats, "mean": 0.3}},
        "fid": 150.0,
    }
    without = {**summary, "fid": None, "metrics": {"psnr": stats, "ssim": stats}}
    evaluations = [SimpleNamespace(name="eval", summary=summary), SimpleNamespace(name="plain", summary=without)]
    lines = literature_section(evaluations, tmp_path)
    table = [line for line in lines if line.startswith("| Theirs") or line.startswith("| Ours")]
    assert table[0].startswith("| Theirs | GeoSET model zoo, QXS-SAROPT table | pix2pix | QXS-SAROPT |")
    assert table[0].endswith("| 12.33 | 0.203 | 0.373 | 174.60 |")
    assert "SEN1-2" in table[1] and table[1].endswith("| — | — | — | 185.04 |")
    assert (
        len(table) == 3
        and table[2].startswith("| Ours | eval |")
        and table[2].endswith("| 13.00 | 0.500 | 0.300 | 150.00 |")
    )
    assert pd.read_csv(tmp_path / "literature.csv")["who"].tolist() == ["Theirs", "Theirs", "Ours"]
