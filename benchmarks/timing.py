"""Timing on a shared CPU: run settings, the runtime's configuration, throughput blocks and CPU accounting.

Throughputs are medians of repeated blocks of calls after warm-up (tracing, compilation and first-call
allocations excluded). Call `configure()` before Keras or TensorFlow is imported: it picks the Keras
backend, turns on TensorFlow's oneDNN kernels and sets the thread pools.
"""

import contextlib
import dataclasses
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.commands.benchmark import BACKENDS, PATHS, PRECISIONS, WORKLOADS
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.hardware import BF16_FLAGS, ONEDNN_VARIABLE, cpu_info, onednn_enabled

# On a shared machine: a timed block during which other processes used less than this many cores
# counts as quiet; medians are over quiet blocks where there are any.
QUIET_CORES = 0.25


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one benchmark run measures, and how long it may spend per measurement."""

    workloads: tuple = WORKLOADS  # --only names
    paths: tuple = PATHS[:2]  # --paths: how the fresh processes of the "paths" workload start
    precisions: tuple = PRECISIONS
    torch: bool = True
    train_batch: int = 4
    inference_batches: tuple = (1, 4, 32)
    report_gan_batch: int = 32
    pix2pix_size: int = 256
    report_gan_size: int = 128
    pairs: int = 48  # synthetic pairs on disk (the data repeats)
    warmup: int = 2  # calls before timing (the first traces and compiles)
    steps: int = 2  # calls per timed block
    repeats: int = 3  # timed blocks; the median block gives the throughput
    budget: float = 60.0  # seconds of timed calls per measurement at most (at least one call)
    quiet_wait: float = 300.0  # seconds to wait, before each measurement, for other processes to go quiet
    block_seconds: float = 12.0  # "paths": a block makes as many calls as fill this long in the slowest process
    matmul_size: int = 2048

    @classmethod
    def quick(cls, **overrides):
        """A few minutes: no XLA variant, inference at batch 1 and 4, single-call blocks."""
        settings = dict(
            workloads=tuple(name for name in WORKLOADS if name != "pix2pix-train-xla"),
            inference_batches=(1, 4),
            pairs=16,
            steps=1,
            repeats=2,
            budget=20.0,
            quiet_wait=60.0,
            block_seconds=6.0,
            matmul_size=1024,
        )
        settings.update(overrides)
        return cls(**settings)


@dataclasses.dataclass
class Timing:
    """A measured throughput: median images/s over the timed blocks, and how it was obtained."""

    rate: float
    calls: int  # timed calls
    others: float = math.nan  # cores used by other processes during the blocks the median is over
    quiet_blocks: int = 0  # blocks with other processes under QUIET_CORES
    blocks: int = 0
    cpu_per_call: float = math.nan  # CPU seconds this process spent per timed call (all its threads)


def configure(backend="tensorflow", threads=None):
    """Set the Keras backend and the thread pools; returns them with the kernels TensorFlow enabled.

    Must run before Keras is imported for the backend. TensorFlow's oneDNN kernels are on as for every
    user of the package (keras_sar2opt/__init__.py; TF_ENABLE_ONEDNN_OPTS=0 in the
    environment keeps them off); the runtime reports whether TensorFlow enabled them. TensorFlow gets
    `threads` intra-op threads and keeps its own inter-op pool, as users run it (one inter-op thread,
    which this benchmark used to set, ran the Pix2Pix train step 0.77-0.94x as fast); PyTorch gets
    `threads` threads.
    """
    if backend not in BACKENDS:
        raise Sar2OptError(f"Expected --backend to be one of {', '.join(BACKENDS)}, received {backend!r}")
    threads = threads or os.cpu_count() or 1
    check_positive_int(threads, "--threads")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise Sar2OptError(
                f"Expected the Keras backend {backend} before Keras is imported, received a process "
                f"already running Keras on {keras.backend.backend()}"
            )
    os.environ["KERAS_BACKEND"] = backend
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # raised once TensorFlow's runtime has started
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    import keras

    cpu, flags = cpu_info()
    runtime = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "native bfloat16": ", ".join(sorted(flags & set(BF16_FLAGS))) or "no (no avx512_bf16/amx_bf16)",
        "python": platform.python_version(),
        "keras": f"{keras.__version__} ({keras.backend.backend()} backend)",
        "tensorflow": tf.__version__,
        "oneDNN kernels in TensorFlow, enabled at run time": _kernels(),
        "TensorFlow threads": f"intra-op {tf.config.threading.get_intra_op_parallelism_threads()}, "
        f"inter-op {tf.config.threading.get_inter_op_parallelism_threads() or 'TensorFlow default'}",
    }
    torch = _import_torch()
    if torch is not None:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # raised once PyTorch's inter-op pool has started
            torch.set_num_interop_threads(1)
        runtime["torch"] = torch.__version__
        runtime["PyTorch threads"] = f"{torch.get_num_threads()} (inter-op {torch.get_num_interop_threads()})"
    return runtime


def _kernels():
    """Whether TensorFlow enabled its oneDNN kernels in this process, and why."""
    value = os.environ.get(ONEDNN_VARIABLE)
    reason = f"{ONEDNN_VARIABLE}={value}" if value is not None else "TensorFlow's default on this CPU"
    return f"{'on' if onednn_enabled() else 'off'} ({reason})"


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _snapshot():
    """(seconds, busy CPU ticks of the whole machine, CPU ticks of this process), or None off Linux."""
    try:
        machine = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    busy = sum(machine) - machine[3] - machine[4]  # all but idle and iowait (steal counts as busy)
    return time.perf_counter(), busy, int(own[11]) + int(own[12])  # utime + stime


def own_cpu_seconds(start, end):
    """CPU seconds this process used between two `_snapshot()`s; NaN if unknown."""
    if start is None or end is None:
        return math.nan
    return (end[2] - start[2]) / os.sysconf("SC_CLK_TCK")


def others_cores(start, end):
    """Cores used by other processes (and the hypervisor) between two `_snapshot()`s; NaN if unknown."""
    if start is None or end is None or end[0] <= start[0]:
        return math.nan
    ticks = os.sysconf("SC_CLK_TCK")
    return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / ticks / (end[0] - start[0]))


def wait_for_quiet(max_wait, sample=2.0):
    """Wait until other processes use under QUIET_CORES (sampled over `sample` s), at most `max_wait` s."""
    deadline = time.perf_counter() + max_wait
    while time.perf_counter() < deadline:
        start = _snapshot()
        time.sleep(sample)
        if not others_cores(start, _snapshot()) >= QUIET_CORES:
            return


def _mean(values):
    values = [value for value in values if not math.isnan(value)]
    return statistics.fmean(values) if values else math.nan


def summarise(rates, others, calls, cpu=None):
    """Timing from per-block rates, the other processes' CPU use and this process's CPU seconds per call.

    The median is taken over the quiet blocks (others under QUIET_CORES) when there are any,
    else over all blocks; `others` and `cpu_per_call` are means over the blocks used.
    """
    quiet = [i for i, cores in enumerate(others) if not cores >= QUIET_CORES]
    used = quiet or list(range(len(rates)))
    cpu = cpu or [math.nan] * len(rates)
    return Timing(
        statistics.median(rates[i] for i in used),
        calls,
        _mean(others[i] for i in used),
        len(quiet),
        len(rates),
        _mean(cpu[i] for i in used),
    )


def _plan_calls(call_seconds, settings):
    """(steps, repeats) of the timed part: the settings', or single calls that fit the budget."""
    if call_seconds * settings.steps * settings.repeats <= settings.budget:
        return settings.steps, settings.repeats
    return 1, max(1, min(settings.steps * settings.repeats, int(settings.budget // max(call_seconds, 1e-9))))


def time_calls(call, batch, settings):
    """Images/s over blocks of calls to `call()` (which must block until its result exists).

    Warm-up stops after the first call when that one alone exceeds the budget.
    """
    for _ in range(max(1, settings.warmup)):
        start = time.perf_counter()
        call()
        call_seconds = time.perf_counter() - start
        if call_seconds > settings.budget:
            break
    steps, repeats = _plan_calls(call_seconds, settings)
    rates, others, cpu = [], [], []
    for _ in range(repeats):
        begin = _snapshot()
        start = time.perf_counter()
        for _ in range(steps):
            call()
        rates.append(batch * steps / (time.perf_counter() - start))
        end = _snapshot()
        others.append(others_cores(begin, end))
        cpu.append(own_cpu_seconds(begin, end) / steps)
    return summarise(rates, others, steps * repeats, cpu)


def time_fit(model, dataset, batch, settings):
    """Images/s of `model.fit` on an endless dataset, as its users run it.

    A first fit of `warmup` steps traces and compiles the train function. A second fit times
    blocks of steps between the ends of consecutive steps (a callback with `on_train_batch_end`
    keeps fit synchronous), after one untimed step that refills the input pipeline.
    """
    import keras

    class StepEnds(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append((time.perf_counter(), _snapshot()))

    warm = StepEnds()
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=max(1, settings.warmup), verbose=0, callbacks=[warm], shuffle=False)
    ends = [start] + [end for end, _ in warm.ends]
    steps, repeats = _plan_calls(ends[-1] - ends[-2], settings)
    timed = StepEnds()
    model.fit(dataset, epochs=1, steps_per_epoch=1 + steps * repeats, verbose=0, callbacks=[timed], shuffle=False)
    blocks = [(timed.ends[r * steps], timed.ends[(r + 1) * steps]) for r in range(repeats)]
    rates = [batch * steps / (end - start) for (start, _), (end, _) in blocks]
    others = [others_cores(begin, finish) for (_, begin), (_, finish) in blocks]
    cpu = [own_cpu_seconds(begin, finish) / steps for (_, begin), (_, finish) in blocks]
    return summarise(rates, others, steps * repeats, cpu)


def load_average():
    """The 1-minute load average; NaN where unknown."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
