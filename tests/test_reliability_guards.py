"""Guards of a training run: NaN stop, up-front checks, refused resumes."""

import collections
import json
import logging
import os
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_sar2opt.data import find_pairs, pairs, pipeline, split_pairs
from keras_sar2opt.data.synthetic import write_synthetic
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import get_experiment
from keras_sar2opt.runs import RunFolder, RunOptions
from keras_sar2opt.training import run as training_run
from keras_sar2opt.training.checkpoints import MANIFEST_FORMAT, CheckpointStore
from keras_sar2opt.training.prepare import check_same_run

TRAIN = [
    "train",
    "--experiment",
    "patchgan",
    "--image-size",
    "32",
    "--pairs",
    "12",
    "--batch-size",
    "2",
    "--verbose",
    "0",
]


def _poison_batch(monkeypatch, index):
    """Make the training stream's batch `index` (counted from the stream's start) NaN-filled SAR."""
    real = pipeline.training_batches

    def poisoned(*args, **kwargs):
        def poison(position, batch):
            sar, optical = batch
            return tf.where(position == index, tf.fill(tf.shape(sar), np.float32(np.nan)), sar), optical

        return real(*args, **kwargs).enumerate().map(poison)

    monkeypatch.setattr(pipeline, "training_batches", poisoned)


def test_nan_loss_stops_with_epoch_and_step_keeping_the_last_good_checkpoint(tmp_path, cli_error, monkeypatch):
    out = tmp_path / "run"
    _poison_batch(monkeypatch, index=4)  # 3 steps per epoch: epoch 2, step 2
    line = cli_error([*TRAIN, "--epochs", "3", "--steps-per-epoch", "3", "--out", str(out)])
    last = out / "checkpoints" / "last.keras"
    assert line.startswith("sar2opt train: error: Expected finite losses, received ")
    assert "= nan at epoch 2, step 2; training stopped" in line
    assert line.endswith(f"last good checkpoint: {last} (epoch 1)")
    store = CheckpointStore(out / "checkpoints")
    assert store.read() and store.finished is None
    assert store.latest().epoch == 1 and store.verify("last.keras").epoch == 1
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [0] and np.isfinite(history.to_numpy()).all()
    assert not (out / "generator.keras").exists()


def test_a_file_gone_bad_after_the_scan_stops_training_with_one_line(tmp_path, cli_error, monkeypatch):
    data = tmp_path / "data"
    write_synthetic(data, "qxslab", 12, layout="qxslab", size=32, seed=0, progress=False)
    bad = split_pairs(find_pairs(data).pairs, seed=0)["val"][0].sar  # read for the sample grids, before fit()
    bad.write_bytes(b"not an image any more")
    monkeypatch.setattr(pairs, "check_pair", lambda *args: None)  # as if it broke after the scan
    argv = [
        "train",
        "--experiment",
        "patchgan",
        "--image-size",
        "32",
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--verbose",
        "0",
    ]
    line = cli_error(argv)
    assert line == f"sar2opt train: error: Expected a readable .png image, received {bad}, which is not one"


def test_out_under_a_file_is_refused_before_any_work(tmp_path, cli_error):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    line = cli_error([*TRAIN, "--out", str(blocker / "run")])
    assert (
        line == f"sar2opt train: error: Expected a writable --output folder, received {blocker / 'run'} "
        f"({blocker} is a file)"
    )


def test_too_little_disk_for_checkpoints_is_refused_before_data_generation(tmp_path, cli_error, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(training_run.shutil, "disk_usage", lambda path: usage(10**6, 0, 10**6))
    out = tmp_path / "run"
    line = cli_error([*TRAIN, "--out", str(out)])
    # patchgan: 6,874,052 model variables, 2 Adam slots each: 4 copies of ~82 MB, and generator.keras
    assert f"Expected 0.35 GB free for the checkpoints of {out}, received 0.00 GB free" in line
    assert not out.exists()


def _recorded_run(out, **overrides):
    """A run folder as an interrupted patchgan run leaves it: config.json and a checkpoint manifest."""
    config = get_experiment("patchgan").with_overrides(image_size=32, batch_size=2, epochs=3)
    (out / "checkpoints").mkdir(parents=True)
    settings = {"experiment": config.to_dict(), "run": {"steps_per_epoch": None, "synthetic": {"pairs": 12}}}
    settings["run"].update(overrides)
    (out / "config.json").write_text(json.dumps(settings))
    manifest = {"format": MANIFEST_FORMAT, "files": {}, "entries": {}, "finished": None}
    (out / "checkpoints" / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_rerun_with_other_settings_is_refused(tmp_path, capsys, cli_error):
    out = _recorded_run(tmp_path / "run")
    line = cli_error([*TRAIN, "--epochs", "5", "--batch-size", "4", "--steps-per-epoch", "2", "--out", str(out)])
    assert line == (
        f"sar2opt train: error: Expected the settings recorded in {out / 'config.json'} to resume that "
        "run, received a different batch_size, steps_per_epoch; pass the same options, or another --output "
        "for a new run"
    )


def test_resume_with_another_precision_or_starting_generator_is_refused(tmp_path):
    out = _recorded_run(tmp_path / "run", precision="float32")
    settings = json.loads((out / "config.json").read_text())
    settings["finetune"] = {"generator": "/models/a.keras", "discriminator": None}
    (out / "config.json").write_text(json.dumps(settings))
    config = get_experiment("patchgan").with_overrides(image_size=32, batch_size=2, epochs=5)
    same = {"finetune": {"generator": "/models/a.keras", "discriminator": None}}
    folder = RunFolder(out)
    check_same_run(folder, config, RunOptions(precision="float32"), same)  # more epochs only: resumes
    other = {"finetune": {"generator": "/models/b.keras", "discriminator": None}}
    with pytest.raises(Sar2OptError, match=r"different precision, finetune\.generator; pass the same"):
        check_same_run(folder, config, RunOptions(precision="mixed_bfloat16"), other)


def test_sar_and_optical_scaling_reach_every_dataset_and_bind_the_run_and_its_evaluation(
    tmp_path, cli_error, monkeypatch
):
    from keras_sar2opt.cli import main

    scalings = []
    loader = pipeline._pair_loader

    def recording_loader(size, options, preprocessing, channels, optical_options):
        scalings.append((options.to_config(), optical_options.to_config()))
        return loader(size, options, preprocessing, channels, optical_options)

    monkeypatch.setattr(pipeline, "_pair_loader", recording_loader)
    out = tmp_path / "run"
    line = cli_error([*TRAIN, "--out", str(out), "--db-range", "0", "-25"])  # names the option, makes no run
    assert line.endswith("Expected db_range (--db-range) as [low, high] finite with low < high, received [0.0, -25.0]")
    assert not out.exists()
    scaling = ["--sar-input", "image", "--percentiles", "2", "98", "--optical-range", "0", "200"]
    assert main([*TRAIN, "--epochs", "1", "--out", str(out), *scaling]) == 0
    expected = {"input": "image", "percentiles": [2.0, 98.0]}
    assert scalings == [(expected, {"range": [0.0, 200.0]})] * 3  # training stream, validation, sample grid
    run = json.loads((out / "config.json").read_text())["run"]
    assert run["sar_options"] == expected and run["optical_options"] == {"range": [0.0, 200.0]}
    line = cli_error(
        [
            *TRAIN,
            "--epochs",
            "2",
            "--out",
            str(out),
            "--sar-input",
            "image",
            "--percentiles",
            "1",
            "99",
            "--optical-range",
            "0",
            "200",
        ]
    )
    assert "received a different sar_options; pass the same options" in line
    line = cli_error([*TRAIN, "--epochs", "2", "--out", str(out), *scaling[:-3]])
    assert "received a different optical_options; pass the same options" in line
    scalings.clear()
    assert main(["train", "--resume", str(out), "--epochs", "2", "--verbose", "0"]) == 0
    assert scalings == [(expected, {"range": [0.0, 200.0]})] * 3

    # Scored on its own test pairs, the run's data and scaling are the defaults.
    evaluation = ["evaluate", "--model", str(out / "generator.keras"), "--split-file", str(out / "split.json")]
    assert main([*evaluation, "-o", str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    run = json.loads((out / "config.json").read_text())["run"]
    assert summary["dataset"]["path"] == run["data"] and summary["pairs"] == run["pairs"]["test"]
    assert summary["sar_options"] == expected and summary["optical_options"] == {"range": [0.0, 200.0]}
    markdown = (tmp_path / "eval" / "summary.md").read_text()
    assert "- Scaling to [0, 1]: SAR input image, percentiles 2..98; optical range 0..200\n" in markdown
    # Options given replace the run's one by one: its SAR input and optical range still apply.
    given = ["--percentiles", "5", "95", "--sar-band", "1", "--optical-bands", "3", "2", "1"]
    assert main([*evaluation, "-o", str(tmp_path / "eval-db"), *given]) == 0
    summary = json.loads((tmp_path / "eval-db" / "summary.json").read_text())
    assert summary["sar_options"] == {"input": "image", "percentiles": [5.0, 95.0], "band": 1}
    assert summary["optical_options"] == {"range": [0.0, 200.0], "bands": [3, 2, 1]}
    markdown = (tmp_path / "eval-db" / "summary.md").read_text()
    assert (
        "- Scaling to [0, 1]: SAR input image, percentiles 5..95, band 1; optical bands 3 2 1, range 0..200\n"
        in markdown
    )
    (out / "config.json").unlink()
    line = cli_error([*evaluation, "-o", str(tmp_path / "eval-lost")])
    assert line.endswith(f"received {out / 'split.json'} without a config.json beside it")


def test_split_by_area_keeps_each_group_on_one_side_of_a_run(tmp_path, cli_error):
    from keras_sar2opt.cli import main

    bad = tmp_path / "bad"
    line = cli_error([*TRAIN, "--out", str(bad), "--split-group", "("])
    assert "Expected --split-group to be a regular expression, received '('" in line and not bad.exists()
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out), "--split-group", r"(\d)$"]) == 0  # names 1..12
    split = json.loads((out / "split.json").read_text())
    last_digits = {name: {entry["name"][-1] for entry in split[name]} for name in ("train", "val", "test")}
    assert not (
        last_digits["train"] & last_digits["val"]
        or last_digits["train"] & last_digits["test"]
        or last_digits["val"] & last_digits["test"]
    )
    assert sum(len(split[name]) for name in last_digits) == 12
    run = json.loads((out / "config.json").read_text())["run"]
    assert run["split_group"] == r"(\d)$" and run["tile_size"] == [32, 32]
    assert run["command"] == sys.orig_argv  # the interpreter too: the command runs again as recorded
    assert run["cwd"] == os.getcwd()  # where its relative paths start


@pytest.mark.slow
def test_a_resumed_run_keeps_its_split_when_pairs_are_added_and_names_a_lost_one(tmp_path, cli_error, caplog):
    from keras_sar2opt.cli import main

    grown = write_synthetic(tmp_path / "grown", "qxslab", 14, "qxslab", size=32, progress=False)
    data = write_synthetic(tmp_path / "data", "qxslab", 12, "qxslab", size=32, progress=False)
    out = tmp_path / "run"
    argv = [*TRAIN[:5], "--data", str(data), *TRAIN[7:], "--out", str(out)]  # TRAIN without --pairs
    assert main([*argv, "--epochs", "1"]) == 0
    split = (out / "split.json").read_text()
    for pair in find_pairs(grown).pairs[12:]:  # pairs 13 and 14 arrive after the first epoch
        for file in (pair.sar, pair.optical):
            (data / file.relative_to(grown)).write_bytes(file.read_bytes())
    assert len(find_pairs(data).pairs) == 14
    assert main([*argv, "--epochs", "2"]) == 0
    assert (out / "split.json").read_text() == split and len(pd.read_csv(out / "history.csv")) == 2

    test_pair = next(pair for pair in find_pairs(data).pairs if pair.name == json.loads(split)["test"][0]["name"])
    test_pair.sar.unlink(), test_pair.optical.unlink()
    line = cli_error([*argv, "--epochs", "3"])
    assert line.endswith(
        f"received '{test_pair.name}', which it lacks; pass the data of the run to resume, or "
        "another --output for a new run"
    )

    # Other data holding every recorded name resumes, with a warning naming both places.
    trained_on = json.loads((out / "config.json").read_text())["run"]["data"]
    with caplog.at_level(logging.WARNING):
        assert main([*argv[:6], str(grown), *argv[7:], "--epochs", "3"]) == 0
    found = str(find_pairs(grown).root.resolve())
    assert f"Resuming {out} on the pairs of {found}; the run was trained on {trained_on}" in caplog.messages

    # Its data moved: --resume says so, and takes the new place as --data; evaluate likewise.
    moved = grown.rename(tmp_path / "moved")
    line = cli_error(["train", "--resume", str(out), "--epochs", "4", "--verbose", "0"])
    assert line.endswith(
        f"Expected the run's data {found} (recorded in {out / 'config.json'}), received nothing "
        "there; if it moved, pass --data NEW_PATH beside --resume"
    )
    evaluation = ["evaluate", "--model", str(out / "generator.keras"), "--split-file", str(out / "split.json")]
    line = cli_error([*evaluation, "-o", str(tmp_path / "eval")])
    assert line.endswith(
        f"Expected the run's data {found} (recorded in {out / 'config.json'}), received nothing "
        "there; if it moved, pass --data NEW_PATH"
    )
    assert main(["train", "--resume", str(out), "--data", str(moved), "--epochs", "4", "--verbose", "0"]) == 0
    assert len(pd.read_csv(out / "history.csv")) == 4
    assert main([*evaluation, "-o", str(tmp_path / "eval")]) == 0  # config.json now names the new place


def test_resume_of_a_fine_tuning_run_gives_the_command_that_resumes_it(tmp_path, cli_error):
    out = tmp_path / "run"
    out.mkdir()
    command = ["train_finetune_full.py", "--generator", "g 1.pth", "--data", "qx", "--output", "run"]
    run = {"data": "qx", "command": command, "cwd": str(tmp_path / "my data")}
    settings = {"experiment": get_experiment("finetune-full").to_dict(), "run": run}
    (out / "config.json").write_text(json.dumps(settings))
    line = cli_error(["train", "--resume", str(out)])
    assert line.endswith(
        f"received the fine-tuning run {out}, which resumes by rerunning its command: "
        f"cd '{tmp_path / 'my data'}' && train_finetune_full.py --generator 'g 1.pth' --data qx "
        "--output run"
    )


def test_an_interrupted_training_says_how_to_continue(monkeypatch, capsys):
    from keras_sar2opt.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training_run, "train_experiment", interrupted)
    assert main([*TRAIN, "--epochs", "1"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "sar2opt train: interrupted; rerun the same command to continue where it stopped"
    )


def test_corrupt_manifest_is_named(tmp_path, capsys, cli_error):
    out = _recorded_run(tmp_path / "run")
    (out / "checkpoints" / "manifest.json").write_text('{"format": ')
    line = cli_error([*TRAIN, "--epochs", "3", "--out", str(out)])
    assert f"Expected a readable checkpoint manifest, received {out / 'checkpoints' / 'manifest.json'}" in line


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            ["--batch-size", "4", "--no-augment", "-o", "x"],
            "Expected only --epochs, --verbose and --data beside "
            "--resume (the run's config.json holds the rest), "
            "received --output, --batch-size, --no-augment",
        ),
        (["--experiment", "wgan"], "Expected a run of 'wgan' to resume, received {out}/config.json of 'patchgan'"),
    ],
)
def test_resume_with_conflicting_options_is_refused(tmp_path, cli_error, extra, expected):
    out = _recorded_run(tmp_path / "run")
    line = cli_error(["train", "--resume", str(out), *extra])
    assert line == "sar2opt train: error: " + expected.format(out=out)


def test_resume_of_a_folder_without_a_run_is_refused(tmp_path, capsys, cli_error):
    line = cli_error(["train", "--resume", str(tmp_path)])
    assert line == f"sar2opt train: error: Expected a run folder holding config.json to resume, received {tmp_path}"
