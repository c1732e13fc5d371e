"""The adversarial train_step on the JAX backend gives the TensorFlow backend's losses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("jax")

RUNNER = Path(__file__).with_name("backend_run.py")


def run_backend(backend, experiment, weights, out):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    subprocess.run(
        [sys.executable, str(RUNNER), experiment, str(weights), str(out)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(Path(out).read_text())


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["patchgan", "wgan"])
def test_jax_and_tensorflow_train_to_the_same_losses(experiment, tmp_path):
    weights = tmp_path / "initial.weights.h5"
    tf_run = run_backend("tensorflow", experiment, weights, tmp_path / "tf.json")
    jax_run = run_backend("jax", experiment, weights, tmp_path / "jax.json")
    assert jax_run["backend"] == "jax"
    tf_history, jax_history = tf_run["history"], jax_run["history"]
    assert sorted(tf_history) == sorted(jax_history)
    expected = {"d_loss", "g_loss", "g_adv", "g_l1", "d_real_acc", "d_fake_acc"}
    if experiment == "wgan":
        expected |= {"critic_real", "critic_fake", "wasserstein"}
    assert expected | {f"val_{name}" for name in expected} == set(tf_history)
    for name, values in tf_history.items():
        # Two epochs of updates: both backends follow the same trajectory within float32 noise.
        # Accuracies count 192 patches (12 images of 4x4) on either side of a threshold, so float
        # noise (oneDNN kernels on one backend, XLA's on the other) can flip a few of them.
        tolerance = 8 / 192 if name.endswith("_acc") else 2e-3
        assert jax_history[name] == pytest.approx(values, rel=2e-3, abs=tolerance), name
    for run in (tf_run, jax_run):
        assert run["reload_max_diff"] <= 1e-6
        if experiment == "wgan":
            assert run["critic_max_abs"] <= 0.01 + 1e-7


def _train_on_jax(out, strategy):
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="2",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_sar2opt.cli",
            "train",
            "--experiment",
            "patchgan",
            "--image-size",
            "32",
            "--pairs",
            "20",
            "--batch-size",
            "4",
            "--epochs",
            "2",
            "--strategy",
            strategy,
            "--verbose",
            "0",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "config.json").read_text()), pd.read_csv(out / "history.csv")


@pytest.mark.slow
def test_sar2opt_train_runs_data_parallel_on_two_jax_devices_with_single_device_losses(tmp_path):
    config, history = _train_on_jax(tmp_path / "parallel", "mirrored")
    assert config["versions"]["keras_backend"] == "jax"
    assert config["run"]["replicas"] == 2 and config["run"]["strategy"] == "mirrored"
    assert (tmp_path / "parallel" / "generator.keras").stat().st_size > 0
    single_config, single = _train_on_jax(tmp_path / "single", "none")
    assert single_config["run"]["replicas"] == 1
    # The same global batches and seeds: sharding a batch over two devices leaves the losses alone.
    assert list(history.columns) == list(single.columns) and len(history) == 2
    losses = [column for column in history.columns if column.endswith("loss") or column.endswith("l1")]
    np.testing.assert_allclose(history[losses].to_numpy(), single[losses].to_numpy(), rtol=2e-3, atol=2e-3)


def test_multiworker_is_refused_on_the_jax_backend(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_sar2opt.cli",
            "train",
            "--experiment",
            "patchgan",
            "--strategy",
            "multiworker",
            "--out",
            str(tmp_path / "run"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert (
        "sar2opt train: error: Expected --strategy none or mirrored on the JAX backend, received multiworker"
        in done.stderr.splitlines()
    )
