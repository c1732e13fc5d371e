"""What users run, each in a fresh process: the library path, the CLI path and fit() from the pipeline, against PyTorch.

Every (path, workload) is its own Python process (`benchmarks.worker`), started without
TF_ENABLE_ONEDNN_OPTS, as a user who set nothing starts it, and reports the kernels TensorFlow
actually enabled. The processes of a workload start one after another and warm up; then they are
timed in whole blocks, round after round: a block of calls in each Keras process (each round starting
with the next one), then PyTorch's, never single steps interleaved (PyTorch's OpenMP threads keep spinning after a
call, so a pause separates blocks). A rate is the median over rounds; a ratio is the median of the
per-round ratios against the PyTorch block of the same round.
"""

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.hardware import ONEDNN_VARIABLE

TORCH = "torch"  # the PyTorch process of each workload
WORKLOADS = ("pix2pix-inference", "pix2pix-fit", "report-gan-fit")
# Another workload timed in the same rounds as a workload, in a library-path process: fit()'s cost
# over train_on_batch on the same stream of batches.
COMPANIONS = {"pix2pix-fit": "pix2pix-train-on-batch"}
DESCRIPTIONS = {
    "pix2pix-fit": "Pix2Pix train step, fit() from training_batches",
    "pix2pix-train-on-batch": "Pix2Pix train step, train_on_batch from training_batches",
    "pix2pix-inference": "Pix2Pix generator inference, predict_on_batch",
    "report-gan-fit": "report GAN (Tables 5 + 3) train step, fit() from training_batches",
}
INFERENCE_BATCH = 4  # translate's default batch of tiles
PAUSE = 1.0  # seconds between blocks: PyTorch's OpenMP threads stop spinning
ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class PathTiming:
    """One process's blocks: images/s, the load average after each block and the ratio to PyTorch's block."""

    workload: str
    path: str
    batch: int
    runtime: dict
    rates: list = dataclasses.field(default_factory=list)
    loads: list = dataclasses.field(default_factory=list)
    ratios: list = dataclasses.field(default_factory=list)

    @property
    def rate(self):
        return statistics.median(self.rates) if self.rates else math.nan

    @property
    def ratio(self):
        return statistics.median(self.ratios) if self.ratios else math.nan

    @property
    def load(self):
        return statistics.median(self.loads) if self.loads else math.nan


class Worker:
    """A benchmarks.worker process, warmed up and ready for blocks."""

    def __init__(self, path, workload, data, settings):
        env = {key: value for key, value in os.environ.items() if key != ONEDNN_VARIABLE}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.name = f"{path} {workload}"
        self.log = tempfile.TemporaryFile("w+")
        command = [sys.executable, "-m", "benchmarks.worker", path, workload, str(data), json.dumps(settings)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=ROOT
        )
        self.runtime = self._answer()["ready"]

    def _answer(self):
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            tail = " | ".join(self.log.read().strip().splitlines()[-3:])
            raise Sar2OptError(f"Expected the benchmark process '{self.name}' to answer, received its end: {tail}")
        return json.loads(line)

    def block(self, calls):
        """Seconds of `calls` calls."""
        self.process.stdin.write(json.dumps({"calls": calls}) + "\n")
        self.process.stdin.flush()
        return self._answer()["seconds"]

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()
        self.log.close()


def _batch(workload, settings):
    if workload == "pix2pix-inference":
        return INFERENCE_BATCH
    return settings.train_batch if workload == "pix2pix-fit" else settings.report_gan_batch


def measure(workload, settings, paths, data, torch=True):
    """PathTiming of each path, then of the workload's companion in a library process (COMPANIONS)
    and of PyTorch, for `workload`, from settings.repeats rounds of blocks."""
    worker_settings = {
        "train_batch": settings.train_batch,
        "inference_batch": INFERENCE_BATCH,
        "report_gan_batch": settings.report_gan_batch,
        "pix2pix_size": settings.pix2pix_size,
        "report_gan_size": settings.report_gan_size,
        "pairs": max(settings.pairs, settings.train_batch, settings.report_gan_batch),  # a full batch at least
    }
    batch = _batch(workload, settings)
    processes = [(path, workload) for path in paths]
    processes += [("library", COMPANIONS[workload])] if workload in COMPANIONS else []
    keras_processes = len(processes)
    processes += [(TORCH, workload)] if torch else []
    workers = []
    try:
        for path, name in processes:
            workers.append(Worker(path, name, data, worker_settings))
        # A probe call in each process sizes the blocks: the same number of calls everywhere.
        slowest = max(worker.block(1) for worker in workers)
        calls = max(settings.steps, round(settings.block_seconds / slowest))
        timings = [PathTiming(name, path, batch, worker.runtime) for (path, name), worker in zip(processes, workers)]
        for round_ in range(settings.repeats):
            # Each round starts with the next Keras process: none always runs first, after the last PyTorch block.
            order = [(round_ + i) % keras_processes for i in range(keras_processes)]
            order += list(range(keras_processes, len(workers)))
            for index in order:
                timing, worker = timings[index], workers[index]
                time.sleep(PAUSE)
                timing.rates.append(batch * calls / worker.block(calls))
                timing.loads.append(os.getloadavg()[0])
            if torch:
                for timing in timings[:-1]:
                    timing.ratios.append(timing.rates[-1] / timings[-1].rates[-1])
    finally:
        for worker in workers:
            worker.close()
    return timings
