"""Training runs (report §1–§2): the run folder, `sar2opt train` and train_*.py, errors, curves and grids."""

import importlib.util
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from keras_sar2opt.cli import main
from keras_sar2opt.data.grids import sample_grid
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.model_files import load_generator
from keras_sar2opt.plots import plot_run_curves, read_history
from keras_sar2opt.training import METRICS, AdversarialModel

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


@pytest.fixture(scope="module")
def run_folder(module_tmp):
    """`python train_patchgan.py --epochs 1` at a toy size, in a fresh interpreter."""
    out = module_tmp("runs") / "patchgan"
    command = [
        sys.executable,
        "train_patchgan.py",
        "--epochs",
        "1",
        "--pairs",
        "20",
        "--image-size",
        str(SIZE),
        "--batch-size",
        "4",
        "--early-stopping",
        "3",
        "--out",
        str(out),
    ]
    if HAS_TENSORBOARD:
        command.append("--tensorboard")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"run folder {out}" in done.stdout
    # Output to a file or pipe gets fit()'s one line per epoch, without the progress bar's colour codes.
    assert "\x1b[" not in done.stdout and len(re.findall(r"^\d+/\d+ - \d+s", done.stdout, re.MULTILINE)) == 1
    return out


def test_train_script_writes_every_run_folder_file(run_folder):
    for name in (
        "config.json",
        "split.json",
        "history.csv",
        "checkpoints/last.keras",
        "checkpoints/best.keras",
        "generator.keras",
        "samples/epoch_001.png",
        "loss_curves.png",
        "accuracy_curves.png",
    ):
        assert (run_folder / name).is_file() and (run_folder / name).stat().st_size > 0, name
    assert not (run_folder / "critic_curves.png").exists()
    if HAS_TENSORBOARD:
        assert any((run_folder / "logs").rglob("events.out.tfevents.*"))


def test_config_records_settings_split_versions_and_seed(run_folder):
    config = json.loads((run_folder / "config.json").read_text())
    assert config["experiment"]["name"] == "patchgan"
    assert (config["experiment"]["epochs"], config["experiment"]["image_size"], config["seed"]) == (1, SIZE, 0)
    d_optimizer = {"name": "adam", "learning_rate": 1e-3, "beta_1": 0.5, "beta_2": 0.999}
    assert config["experiment"]["d_optimizer"] == d_optimizer
    assert "batch_size" in config["experiment"]["assumed"]
    assert config["run"]["synthetic"] == {"preset": "qxslab", "pairs": 20, "size": SIZE, "seed": 0}
    assert (config["run"]["precision"], config["run"]["strategy"], config["run"]["replicas"]) == ("float32", "none", 1)
    assert config["run"]["early_stopping"] == 3
    split = config["split"]
    assert [len(split[name]) for name in ("train", "val", "test")] == [16, 2, 2]
    assert len(set(split["train"]) | set(split["val"]) | set(split["test"])) == 20
    assert {"tensorflow", "keras", "numpy", "keras_sar2opt"} <= set(config["versions"])
    saved = json.loads((run_folder / "split.json").read_text())
    assert [entry["name"] for entry in saved["val"]] == split["val"]


def test_history_checkpoints_and_images_are_usable(run_folder):
    history = pd.read_csv(run_folder / "history.csv")
    assert len(history) == 1
    assert set(METRICS) | {f"val_{name}" for name in METRICS} <= set(history.columns)
    assert np.isfinite(history.drop(columns="epoch").to_numpy()).all()
    best = keras.saving.load_model(run_folder / "checkpoints" / "best.keras")
    assert isinstance(best, AdversarialModel) and best.conditional
    generator = keras.saving.load_model(run_folder / "generator.keras")
    generated = generator.predict(np.zeros((1, SIZE, SIZE, 3), np.float32), verbose=0)
    assert generated.shape == (1, SIZE, SIZE, 3) and np.abs(generated).max() <= 1.0
    by_folder = load_generator(run_folder)  # --model RUN: the run's generator.keras
    np.testing.assert_array_equal(by_folder.predict(np.zeros((1, SIZE, SIZE, 3), np.float32), verbose=0), generated)
    with pytest.raises(Sar2OptError, match="or a run folder holding generator.keras, received the folder"):
        load_generator(run_folder / "samples")
    grid = np.asarray(Image.open(run_folder / "samples" / "epoch_001.png"))
    two_rows = sample_grid(*[np.zeros((2, SIZE, SIZE, 3), np.float32)] * 3)  # the 2 validation pairs
    assert grid.shape == (*two_rows.shape[:2], 3)


def _one_line_error(capsys, argv, code):
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(main(argv))
    assert exit_info.value.code == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    "options, code, expected",
    [
        (["--experiment", "gan"], 2, "--experiment: invalid choice: 'gan'"),
        (["--experiment", "patchgan", "--precision", "fp8"], 2, "--precision: invalid choice: 'fp8'"),
        (["--experiment", "patchgan", "--epochs", "two"], 2, "--epochs: invalid int value: 'two'"),
        (
            ["--experiment", "patchgan", "--epochs", "0"],
            1,
            "Expected epochs (--epochs) to be a positive integer, received 0",
        ),
        (
            ["--experiment", "patchgan", "--n-critic", "3"],
            1,
            "n_critic (--n-critic) and clip_value (--clip-value) only with a wasserstein",
        ),
        (["--experiment", "scratch", "--image-size", "48"], 1, "image_size (--image-size) for scratch_discriminator"),
        (["--experiment", "wgan", "--g-learning-rate", "-1"], 1, "g_learning_rate (--g-learning-rate) to be positive"),
    ],
)
def test_bad_options_give_one_line_and_a_nonzero_exit(capsys, tmp_path, options, code, expected):
    line = _one_line_error(capsys, ["train", *options, "--out", str(tmp_path / "run")], code)
    assert expected in line
    assert not (tmp_path / "run").exists()


def test_bad_data_gives_one_line_naming_it(capsys, tmp_path):
    missing = tmp_path / "missing"
    line = _one_line_error(capsys, ["train", "--experiment", "patchgan", "--data", str(missing)], 1)
    assert str(missing) in line
    (tmp_path / "empty").mkdir()
    line = _one_line_error(
        capsys,
        ["train", "--experiment", "patchgan", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run")],
        1,
    )
    assert "empty" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(HAS_TENSORBOARD, reason="tensorboard is installed")
def test_tensorboard_without_the_package_is_a_one_line_error(capsys, tmp_path):
    line = _one_line_error(capsys, ["train", "--experiment", "patchgan", "--tensorboard", "--out", str(tmp_path)], 1)
    assert "tensorboard" in line


def test_entry_script_reports_a_bad_data_path_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "train_wgan.py", "--data", str(tmp_path / "nowhere")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    message = f"Expected --data to be an existing dataset folder or CSV, received {tmp_path / 'nowhere'}"
    # TensorFlow may log to stderr at import (e.g. oneDNN's notice); the command's own error is one line.
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "error:" in line] == [f"sar2opt train: error: {message}"]
    assert done.stderr.strip().splitlines()[-1] == f"sar2opt train: error: {message}"


def test_sample_grid_rows_are_sar_generated_target_under_their_labels():
    sar = np.full((2, 32, 32, 1), -1.0, np.float32)  # 1-channel SAR becomes grey
    generated = np.zeros((2, 32, 32, 3), np.float32)
    target = np.ones((2, 32, 32, 3), np.float32)
    grid = sample_grid(sar, generated, target)
    top = grid.shape[0] - (2 * 32 + 2)  # the label band's height
    assert grid.shape[1:] == (3 * 32 + 2 * 2, 3) and 6 <= top <= 24
    for left in (0, 34, 68):  # each column's label is drawn in dark text on white
        label = grid[:top, left : left + 32]
        assert label.min() < 0.5 and np.mean(label == 1.0) > 0.5
    tiles = grid[top:]
    np.testing.assert_array_equal(tiles[:32, :32], 0.0)
    np.testing.assert_array_equal(tiles[34:66, 34:66], 0.5)
    np.testing.assert_array_equal(tiles[:32, 68:100], 1.0)
    np.testing.assert_array_equal(tiles[32:34], 1.0)  # white gap between rows


def test_curves_are_drawn_from_history_csv(tmp_path):
    names = METRICS + ("critic_real", "critic_fake", "wasserstein")
    columns = {name: np.linspace(1, 0, 3) for name in names} | {f"val_{name}": np.linspace(1, 0.5, 3) for name in names}
    pd.DataFrame({"epoch": range(3), **columns}).to_csv(tmp_path / "history.csv", index=False)
    history = read_history(tmp_path / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    paths = plot_run_curves(history, tmp_path)
    assert sorted(p.name for p in paths) == ["accuracy_curves.png", "critic_curves.png", "loss_curves.png"]
    assert all(Image.open(p).size[0] > 600 for p in paths)
    (tmp_path / "bce").mkdir()
    bce = history.drop(columns=[c for c in history if "critic" in c or "wasserstein" in c])
    only_bce = plot_run_curves(bce, tmp_path / "bce")
    assert sorted(p.name for p in only_bce) == ["accuracy_curves.png", "loss_curves.png"]


@pytest.mark.parametrize("native", [False, True])
def test_mixed_bfloat16_on_a_cpu_without_bfloat16_instructions_is_warned_about(monkeypatch, caplog, native):
    from keras_sar2opt import hardware
    from keras_sar2opt.training.distribute import warn_if_bfloat16_is_emulated

    monkeypatch.setattr(hardware, "native_bf16", lambda: native)
    with caplog.at_level(logging.WARNING):
        warn_if_bfloat16_is_emulated("float32")
        warn_if_bfloat16_is_emulated("mixed_bfloat16")
    warnings = [message for message in caplog.messages if "bfloat16 is emulated" in message]
    assert len(warnings) == (0 if native else 1)
