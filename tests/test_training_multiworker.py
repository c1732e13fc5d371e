"""Training across processes on loopback: two TensorFlow workers (MultiWorkerMirroredStrategy) and
two JAX processes (jax.distributed) train like one process, only the chief writes, and a killed
worker stops the other with one line and resumes (docs/distributed.md)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks.multiworker import free_ports, tf_config

ROOT = Path(__file__).resolve().parents[1]
# 80 pairs split 64/8/8: one validation batch of 8, and one step of the global batch 8 per epoch.
TRAIN = "--experiment patchgan --image-size 64 --pairs 80 --batch-size 8 --epochs 2 --steps-per-epoch 1 --verbose 2"
TIMEOUT = 600  # seconds any one process may take on two busy cores (a hang ends there)
STOPS_WITHIN = 60  # seconds from a kill to the survivor's exit; JAX's own heartbeat check alone takes 100

# One process over two logical CPUs, the replicas of the two workers, trained for one epoch and then
# resumed for the second as the workers are (tf.distribute needs the logical devices before
# TensorFlow initialises, hence a script).
MIRRORED = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_sar2opt.cli import main
    sys.exit(main(sys.argv[1:] + ["--epochs", "1"]) or main(sys.argv[1:]))
    """
)


def test_tensorflow_refuses_the_jax_process_options(cli_error):
    line = cli_error(["train", "--experiment", "patchgan", "--coordinator", "localhost:1", "--process-id", "0"])
    assert line.startswith("sar2opt train: error: Expected --coordinator, --process-id only on the JAX backend")
    assert "TF_CONFIG" in line and "KERAS_BACKEND=tensorflow" in line


def test_a_slurm_job_step_gives_the_tensorflow_cluster(monkeypatch):
    """Inside `srun` (its variables, here set by hand) on nodes without GPUs, the workers are the step's tasks."""
    from keras_sar2opt.training.distribute import cluster_resolver, worker_position

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after the test, whatever the resolver sets
    slurm = {"PROCID": "2", "STEP_NUM_TASKS": "3", "STEP_NODELIST": "node[1-2]", "STEP_TASKS_PER_NODE": "2,1"}
    for name, value in slurm.items():
        monkeypatch.setenv("SLURM_" + name, value)
    resolver = cluster_resolver()
    assert type(resolver).__name__ == "SlurmClusterResolver"
    assert worker_position(SimpleNamespace(cluster_resolver=resolver)) == (2, 3)
    assert resolver.cluster_spec().as_dict() == {"worker": ["node1:8888", "node1:8889", "node2:8888"]}
    cluster = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))  # takes precedence over Slurm
    assert worker_position(SimpleNamespace(cluster_resolver=cluster_resolver())) == (1, 2)


def environment(tmp, backend, **more):
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        KERAS_BACKEND=backend,
        TMPDIR=str(tmp),  # where the workers other than the chief write
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        JAX_PLATFORMS="cpu",
        # oneDNN fuses the multi-worker and one-process graphs differently: two epochs drift by 3e-3.
        TF_ENABLE_ONEDNN_OPTS="0",
        **more,
    )


def train_command(out, *flags):
    return [sys.executable, "-m", "keras_sar2opt.cli", "train", *TRAIN.split(), *flags, "-o", str(out)]


def tf_worker(index, ports, out, tmp):
    config = tf_config(ports, index)
    return train_command(out, "--strategy", "multiworker"), environment(tmp, "tensorflow", TF_CONFIG=config)


def jax_process(index, ports, out, tmp):
    flags = ["--coordinator", f"localhost:{ports[0]}", "--num-processes", "2", "--process-id", str(index)]
    return train_command(out, "--strategy", "mirrored", *flags), environment(tmp, "jax")


def tf_reference(out, tmp):
    command = [sys.executable, "-c", MIRRORED, "train", *TRAIN.split(), "--strategy", "mirrored", "-o", str(out)]
    return command, environment(tmp, "tensorflow")


def jax_reference(out, tmp):
    """One process on two CPU devices, trained without a break (JAX's BatchNormalization sees the global batch)."""
    env = environment(tmp, "jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    return train_command(out, "--strategy", "mirrored"), env


class Processes:
    """Processes started together, each in its own process group, all killed on leaving the block."""

    def __init__(self, commands, tmp):
        self.processes = []
        for command, env in commands:
            log = open(tmp / f"process-{time.monotonic_ns()}.log", "w+")
            process = subprocess.Popen(
                command, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            process.log = log
            self.processes.append(process)

    def __enter__(self):
        return self

    def __exit__(self, *error):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            process.log.close()

    def wait(self):
        """(exit status, output) of each process."""
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


BACKENDS = {
    "tensorflow": SimpleNamespace(launch=tf_worker, reference=tf_reference, worker="worker", workers="workers"),
    "jax": SimpleNamespace(launch=jax_process, reference=jax_reference, worker="process", workers="processes"),
}


@pytest.fixture(scope="module", params=list(BACKENDS))
def runs(request, tmp_path_factory):
    """Two workers, the second killed in epoch 2 and both then rerun; beside them, the one-process reference."""
    backend = BACKENDS[request.param]
    if request.param == "jax":
        pytest.importorskip("jax")
    tmp = tmp_path_factory.mktemp(request.param)
    out = tmp / "runs" / "patchgan"
    reference = tmp / "reference"
    with Processes([backend.reference(reference, tmp)], tmp) as one_process:
        ports = free_ports(2)
        with Processes([backend.launch(index, ports, out, tmp) for index in range(2)], tmp) as workers:
            chief, other = workers.processes
            deadline = time.monotonic() + TIMEOUT
            while not epoch_saved(out, 1) and chief.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert epoch_saved(out, 1), workers.wait()
            os.killpg(other.pid, signal.SIGKILL)  # in epoch 2: the chief's next collective fails
            killed = time.monotonic()
            (killed_status, killed_output), _ = workers.wait()
            stopped_after = time.monotonic() - killed
        ports = free_ports(2)
        with Processes([backend.launch(index, ports, out, tmp) for index in range(2)], tmp) as workers:
            resumed = workers.wait()
        [(status, output)] = one_process.wait()
        assert status == 0, output[-3000:]
    return SimpleNamespace(
        backend=backend,
        tmp=tmp,
        out=out,
        killed=(killed_status, killed_output, stopped_after),
        resumed=resumed,
        reference=reference,
    )


@pytest.mark.slow
def test_a_killed_worker_stops_the_chief_with_one_line(runs):
    status, output, stopped_after = runs.killed
    worker, workers = runs.backend.worker, runs.backend.workers
    assert status == 1, output[-3000:]
    last = output.strip().splitlines()[-1]
    expected = f"sar2opt train: error: Expected all 2 {workers} to train together, received a lost {worker} while "
    assert last.startswith(expected + f"training epoch 2 on {worker} 0 ("), last
    assert last.endswith(f"rerun every {worker}'s command to resume after the last saved epoch")
    assert "Traceback" not in output and "Terminating process" not in output
    assert stopped_after < STOPS_WITHIN


@pytest.mark.slow
def test_rerunning_both_workers_resumes_and_writes_each_epoch_once(runs):
    (chief_status, chief), (status, other) = runs.resumed
    assert (chief_status, status) == (0, 0), (chief[-3000:], other[-3000:])
    assert "Worker 0 of 2 (chief)" in chief and "Worker 1 of 2: writes only to" in other
    assert "Resuming" in chief and "after epoch 1 of 2" in chief
    assert "ran out of data" not in chief + other  # each validation reads its sharded set to the end
    assert pd.read_csv(runs.out / "history.csv")["epoch"].tolist() == [0, 1]


@pytest.mark.slow
def test_two_workers_train_like_one_process_on_two_devices(runs):
    history = pd.read_csv(runs.out / "history.csv")
    reference = pd.read_csv(runs.reference / "history.csv")
    assert list(history.columns) == list(reference.columns)
    # The tolerance of the mirrored test (tests/test_training_distributed.py).
    np.testing.assert_allclose(history.to_numpy(), reference.to_numpy(), rtol=1e-4, atol=1e-5)
    config = json.loads((runs.out / "config.json").read_text())
    assert config["run"]["replicas"] == 2 and config["versions"]["keras_backend"] in BACKENDS


@pytest.mark.slow
def test_only_the_chief_writes_a_run_folder(runs):
    assert sorted(path.name for path in runs.out.parent.iterdir()) == ["patchgan"]
    assert (runs.out / "generator.keras").is_file() and (runs.out / "samples" / "epoch_002.png").is_file()
    assert not list(runs.tmp.glob("sar2opt-worker*"))  # the killed worker's folder too


@pytest.mark.slow
def test_a_jax_process_failing_on_its_own_error_ends_at_once(tmp_path):
    """Without its job's shutdown barrier, which would hold it (and the other process) for 300 s and
    then abort with a stack trace."""
    pytest.importorskip("jax")
    ports = free_ports(2)
    fine, failing = (jax_process(index, ports, tmp_path / "run", tmp_path) for index in range(2))
    failing = (failing[0] + ["--data", str(tmp_path / "nothing")], failing[1])  # refused beside --pairs
    with Processes([fine, failing], tmp_path) as processes:
        process = processes.processes[1]
        process.wait(timeout=TIMEOUT)
        process.log.seek(0)
        output = process.log.read()
    assert process.returncode == 1, output[-3000:]
    assert output.strip().splitlines()[-1].startswith("sar2opt train: error: Expected --pairs only without --data")
