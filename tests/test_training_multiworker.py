"""Training across processes on loopback: two TensorFlow workers (MultiWorkerMirroredStrategy) and
two JAX processes (jax.distributed) train like one process, only the chief writes, and a killed
worker stops the other with one line and resumes (docs/distributed.md)."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# 80 pairs split 64/8/8: one validation batch of 8, 3 steps of the global batch 8 per epoch.
TRAIN = "--experiment patchgan --image-size 64 --pairs 80 --batch-size 8 --epochs 2 --steps-per-epoch 3 --verbose 2"
TIMEOUT = 900  # seconds any one process may take on two busy cores (a hang ends there)

# One process over two logical CPUs: the replicas of the two workers, in one process (tf.distribute
# needs the logical devices before TensorFlow initialises, hence a script).
MIRRORED = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_sar2opt.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def free_ports(count):
    """Ports free on loopback now (bound to port 0 and released together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for one in sockets:
            one.bind(("localhost", 0))
        return [one.getsockname()[1] for one in sockets]
    finally:
        for one in sockets:
            one.close()


def environment(tmp, backend, **more):
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        KERAS_BACKEND=backend,
        TMPDIR=str(tmp),  # where the workers other than the chief write
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        JAX_PLATFORMS="cpu",
        # oneDNN fuses operations differently in the multi-worker and the one-process graphs, and its
        # kernels then differ in the last bits, which two epochs of a GAN amplify past the tolerance.
        TF_ENABLE_ONEDNN_OPTS="0",
        **more,
    )


def tf_worker(index, ports, out, tmp):
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    env = environment(
        tmp, "tensorflow", TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    )
    return [
        sys.executable,
        "-m",
        "keras_sar2opt.cli",
        "train",
        *TRAIN.split(),
        "--strategy",
        "multiworker",
        "-o",
        str(out),
    ], env


def jax_process(index, ports, out, tmp):
    flags = ["--coordinator", f"localhost:{ports[0]}", "--num-processes", "2", "--process-id", str(index)]
    command = [sys.executable, "-m", "keras_sar2opt.cli", "train", *TRAIN.split(), "--strategy", "mirrored", *flags]
    return [*command, "-o", str(out)], environment(tmp, "jax")


class Workers:
    """Worker processes started together, always killed on leaving the block."""

    def __init__(self, launch, out, tmp):
        self.ports = free_ports(2)
        self.processes = []
        for index in range(2):
            command, env = launch(index, self.ports, out, tmp)
            log = open(tmp / f"worker{index}-{time.monotonic_ns()}.log", "w+")
            self.processes.append(subprocess.Popen(command, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT))
            self.processes[-1].log = log

    def __enter__(self):
        return self

    def __exit__(self, *error):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.log.close()

    def wait(self):
        """(exit status, output) of each worker."""
        deadline = time.monotonic() + TIMEOUT
        results = []
        for process in self.processes:
            process.wait(timeout=max(1, deadline - time.monotonic()))
            process.log.seek(0)
            results.append((process.returncode, process.log.read()))
        return results


def epoch_saved(folder, epoch):
    """Whether the run in `folder` has saved the checkpoint of `epoch` completed epochs."""
    try:
        manifest = json.loads((folder / "checkpoints" / "manifest.json").read_text())
        return manifest["entries"][manifest["files"]["last.keras"]]["epoch"] >= epoch
    except (OSError, ValueError, KeyError):
        return False


def one_process(command, env, tmp):
    done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def tf_runs(tmp_path_factory):
    """Two workers, the second killed in epoch 2 and both rerun; and one process on two devices."""
    tmp = tmp_path_factory.mktemp("tf-multiworker")
    out = tmp / "runs" / "patchgan"
    with Workers(tf_worker, out, tmp) as workers:
        chief, other = workers.processes
        deadline = time.monotonic() + TIMEOUT
        while not epoch_saved(out, 1) and chief.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert epoch_saved(out, 1), workers.wait()
        other.send_signal(signal.SIGKILL)  # mid-epoch 2: the chief's next collective fails
        (killed_status, killed), _ = workers.wait()
    with Workers(tf_worker, out, tmp) as workers:
        resumed = workers.wait()
    # Resumed after epoch 1 as well: each replica keeps its own BatchNormalization moving statistics,
    # a checkpoint holds the first replica's, and a resumed run starts every replica from those.
    reference = tmp / "mirrored"
    env = environment(tmp, "tensorflow")
    for epochs in ("1", "2"):
        train = TRAIN.replace("--epochs 2", f"--epochs {epochs}").split()
        command = [sys.executable, "-c", MIRRORED, "train", *train, "--strategy", "mirrored", "-o", str(reference)]
        one_process(command, env, tmp)
    return {"tmp": tmp, "out": out, "killed": (killed_status, killed), "resumed": resumed, "reference": reference}


def test_a_killed_worker_stops_the_chief_with_one_line(tf_runs):
    status, output = tf_runs["killed"]
    assert status == 1, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("sar2opt train: error: Expected all 2 workers to train together, received a lost worker"), (
        last
    )
    assert "rerun every worker's command to resume" in last
    assert "Traceback" not in output


def test_rerunning_both_workers_resumes_and_writes_each_epoch_once(tf_runs):
    (chief_status, chief), (status, other) = tf_runs["resumed"]
    assert (chief_status, status) == (0, 0), (chief[-3000:], other[-3000:])
    assert "Worker 0 of 2 (chief)" in chief and "Worker 1 of 2: writes only to" in other
    assert "Resuming" in chief and "after epoch 1 of 2" in chief
    history = pd.read_csv(tf_runs["out"] / "history.csv")
    assert history["epoch"].tolist() == [0, 1]


def test_two_workers_train_like_one_process_on_two_devices(tf_runs):
    history = pd.read_csv(tf_runs["out"] / "history.csv")
    reference = pd.read_csv(tf_runs["reference"] / "history.csv")
    assert list(history.columns) == list(reference.columns)
    # The tolerance of the mirrored test (tests/test_training_distributed.py), after a resume.
    np.testing.assert_allclose(history.to_numpy(), reference.to_numpy(), rtol=1e-4, atol=1e-5)
    config = json.loads((tf_runs["out"] / "config.json").read_text())["run"]
    assert (config["strategy"], config["replicas"]) == ("multiworker", 2)


def test_only_the_chief_writes_a_run_folder(tf_runs):
    out = tf_runs["out"]
    assert sorted(path.name for path in out.parent.iterdir()) == ["patchgan"]
    assert (out / "generator.keras").is_file() and (out / "samples" / "epoch_002.png").is_file()
    assert not list(tf_runs["tmp"].glob("sar2opt-worker*"))  # the killed worker's folder too


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    pytest.importorskip("jax")
    tmp = tmp_path_factory.mktemp("jax-multiprocess")
    out = tmp / "runs" / "patchgan"
    with Workers(jax_process, out, tmp) as workers:
        results = workers.wait()
    reference = tmp / "one-process"
    env = environment(tmp, "jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    one_process(
        [
            sys.executable,
            "-m",
            "keras_sar2opt.cli",
            "train",
            *TRAIN.split(),
            "--strategy",
            "mirrored",
            "-o",
            str(reference),
        ],
        env,
        tmp,
    )
    return {"tmp": tmp, "out": out, "results": results, "reference": reference}


def test_two_jax_processes_train_like_one_process_on_two_devices(jax_runs):
    (chief_status, chief), (status, other) = jax_runs["results"]
    assert (chief_status, status) == (0, 0), (chief[-3000:], other[-3000:])
    assert "Worker 0 of 2 (chief)" in chief and "Worker 1 of 2: writes only to" in other
    config = json.loads((jax_runs["out"] / "config.json").read_text())
    assert (config["versions"]["keras_backend"], config["run"]["replicas"]) == ("jax", 2)
    history = pd.read_csv(jax_runs["out"] / "history.csv")
    reference = pd.read_csv(jax_runs["reference"] / "history.csv")
    assert history["epoch"].tolist() == [0, 1] and list(history.columns) == list(reference.columns)
    np.testing.assert_allclose(history.to_numpy(), reference.to_numpy(), rtol=1e-4, atol=1e-5)
    assert sorted(path.name for path in jax_runs["out"].parent.iterdir()) == ["patchgan"]
    assert not list(jax_runs["tmp"].glob("sar2opt-worker*"))
