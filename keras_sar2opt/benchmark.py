"""Performance benchmark of the report's networks (§2 Table 3/5, §3 Pix2Pix): Keras against PyTorch.

In one process it times the Pix2Pix train step through `AdversarialModel.fit`, fed by `make_dataset`
from a synthetic tree on disk and by a constant in-memory batch; generator inference; the report's
GAN (Table 5 + Table 3); each in float32 and mixed_bfloat16; the same Pix2Pix step and inference in
PyTorch (`convert.torch_reference`, float32 and bfloat16 autocast); and a matrix-multiply ceiling.
FLOPs are counted from the layers' shapes (`forward_macs`). Throughputs are medians of repeated
blocks of calls after warm-up (tracing, compilation and first-call allocations excluded).

Call `configure()` before Keras or TensorFlow is imported: it picks the Keras backend, turns on
TensorFlow's oneDNN kernels and sets the thread pools.
"""

import contextlib
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.hardware import BF16_FLAGS, cpu_info, native_bf16

BACKENDS = ("tensorflow", "jax")
PRECISIONS = ("float32", "mixed_bfloat16")
# The PyTorch counterpart of each Keras precision: float32, and bfloat16 through torch.autocast.
TORCH_PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bf16 autocast"}
MATMUL_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16"}

PIX2PIX_TRAIN = "pix2pix train step"
PIX2PIX_TRAIN_XLA = "pix2pix train step, XLA"
PIX2PIX_INFERENCE = "pix2pix inference"
REPORT_GAN_TRAIN = "report GAN train step"
# --only names -> workload.
WORKLOADS = {
    "pix2pix-train": PIX2PIX_TRAIN,
    "pix2pix-train-xla": PIX2PIX_TRAIN_XLA,
    "pix2pix-inference": PIX2PIX_INFERENCE,
    "report-gan-train": REPORT_GAN_TRAIN,
}
DISK, CONSTANT, MEMORY = "disk (make_dataset)", "constant batch", "in memory"
# TensorFlow's compiled call, and Keras's own batch call; the faster one is used for every row.
INFERENCE_METHODS = {"tensorflow": ("tf.function", "predict_on_batch"), "jax": ("predict_on_batch",)}

# CPU flags of native bfloat16 arithmetic; without them bfloat16 is emulated in float32 units.
TORCH_EMULATED_BF16_MATMUL = 512  # matrix size of PyTorch's bfloat16 ceiling without native bfloat16
# On a shared machine: a timed block during which other processes used less than this many cores
# counts as quiet; medians are over quiet blocks where there are any.
QUIET_CORES = 0.25


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one benchmark run measures, and how long it may spend per measurement."""

    workloads: tuple = tuple(WORKLOADS)  # --only names
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


class Ceiling(NamedTuple):
    size: int  # square matrices of this side
    gflops: float
    others: float  # cores used by other processes meanwhile


@dataclasses.dataclass
class Row:
    workload: str
    feed: str
    batch: int
    precision: str
    flops_per_image: float
    keras: Timing = None
    torch: Timing = None

    @property
    def ratio(self):
        if self.keras is None or self.torch is None:
            return math.nan
        return self.keras.rate / self.torch.rate


@dataclasses.dataclass
class Results:
    settings: Settings
    runtime: dict
    rows: list = dataclasses.field(default_factory=list)
    ceilings: dict = dataclasses.field(default_factory=dict)  # (framework, dtype) -> Ceiling
    methods: list = dataclasses.field(default_factory=list)  # (batch, precision, method, Timing)
    torch_timings: dict = dataclasses.field(default_factory=dict)  # (workload, batch, torch precision) -> Timing
    skipped: list = dataclasses.field(default_factory=list)
    load_start: float = None
    load_end: float = None
    done: int = 0  # measurements finished, out of `total`
    total: int = 0

    def row(self, workload, batch, precision, feed=None):
        for row in self.rows:
            if (row.workload, row.batch, row.precision) == (workload, batch, precision) and feed in (None, row.feed):
                return row
        return None


# ---------------------------------------------------------------------------------------------
# Runtime


def configure(backend="tensorflow", threads=None):
    """Set the Keras backend, TensorFlow's oneDNN kernels and the thread pools; returns their settings.

    Must run before Keras is imported for the backend and before TensorFlow is imported for oneDNN:
    TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 VNNI/BF16 or AMX, and
    its Eigen fallback runs these networks several times slower (TF_ENABLE_ONEDNN_OPTS=0 in the
    environment keeps it off). TensorFlow gets `threads` intra-op threads and one inter-op thread
    (ops run one after another, each on all cores); PyTorch gets `threads` threads.
    """
    if backend not in BACKENDS:
        raise Sar2OptError(f"Expected --backend to be one of {', '.join(BACKENDS)}, received {backend!r}")
    threads = threads or os.cpu_count() or 1
    if not isinstance(threads, int) or threads < 1:
        raise Sar2OptError(f"Expected --threads to be a positive integer, received {threads!r}")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise Sar2OptError(
                f"Expected the Keras backend {backend} before Keras is imported, received a process "
                f"already running Keras on {keras.backend.backend()}"
            )
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    with contextlib.suppress(RuntimeError):  # raised once TensorFlow's runtime has started
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    cpu, flags = cpu_info()
    runtime = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "native bfloat16": ", ".join(sorted(flags & set(BF16_FLAGS))) or "no (no avx512_bf16/amx_bf16)",
        "python": platform.python_version(),
        "keras": f"{keras.__version__} ({keras.backend.backend()} backend)",
        "tensorflow": tf.__version__,
        "oneDNN kernels in TensorFlow": "on" if _pywrap_util_port.IsMklEnabled() else "off",
        "TensorFlow threads": f"intra-op {tf.config.threading.get_intra_op_parallelism_threads()}, "
        f"inter-op {tf.config.threading.get_inter_op_parallelism_threads()}",
    }
    torch = _import_torch()
    if torch is not None:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # raised once PyTorch's inter-op pool has started
            torch.set_num_interop_threads(1)
        runtime["torch"] = torch.__version__
        runtime["PyTorch threads"] = f"{torch.get_num_threads()} (inter-op {torch.get_num_interop_threads()})"
    return runtime


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---------------------------------------------------------------------------------------------
# FLOPs


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


def _spatial(shape, data_format):
    return shape[1:-1] if data_format == "channels_last" else shape[2:]


def _channels(shape, data_format):
    return shape[-1] if data_format == "channels_last" else shape[1]


def forward_macs(model):
    """Multiply-accumulates of one example's forward pass through every Conv2D, Conv2DTranspose and Dense.

    Conv2D: H_out·W_out·k_h·k_w·(C_in/groups)·C_out; Conv2DTranspose: H_in·W_in·k_h·k_w·C_in·C_out
    (each input pixel scatters a k_h×k_w×C_out patch); Dense: (positions)·C_in·units. Biases,
    normalisation, activations and padding are not counted.
    """
    import keras

    total = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            shape, data_format = layer.input.shape, layer.data_format
            total += (
                math.prod(_spatial(shape, data_format))
                * math.prod(layer.kernel_size)
                * _channels(shape, data_format)
                * layer.filters
            )
        elif isinstance(layer, keras.layers.Conv2D):
            data_format = layer.data_format
            c_in = _channels(layer.input.shape, data_format)
            total += (
                math.prod(_spatial(layer.output.shape, data_format))
                * math.prod(layer.kernel_size)
                * (c_in // layer.groups)
                * layer.filters
            )
        elif isinstance(layer, keras.layers.Dense):
            shape = layer.input.shape
            total += math.prod(shape[1:-1]) * shape[-1] * layer.units
    return total


def train_flops(generator_macs, discriminator_macs):
    """FLOPs per image of one D-then-G step: 2·(3·MAC_G + 8·MAC_D).

    A pass backpropagated for weight and input gradients costs 3 forward passes (forward, input
    gradient, weight gradient); G: forward + backward = 3. D step: real and fake pairs forward and
    backward = 2·3. G step: D on the fake pair forward and input gradients only (D's weights are
    not differentiated) = 2. Each multiply-accumulate is 2 FLOPs.
    """
    return 2.0 * (3 * generator_macs + 8 * discriminator_macs)


# ---------------------------------------------------------------------------------------------
# Timing on a shared machine


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


def _load():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


# ---------------------------------------------------------------------------------------------
# Matrix-multiply ceiling


def matmul_ceiling(dtype, size, settings):
    """Ceiling: GFLOP/s of tf.linalg.matmul of two size×size matrices of `dtype` ("float32" or "bfloat16")."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_uniform((size, size), seed=(0, 1), minval=-1.0), dtype)
    b = tf.cast(tf.random.stateless_uniform((size, size), seed=(0, 2), minval=-1.0), dtype)
    product = tf.function(lambda a, b: tf.linalg.matmul(a, b)[0, 0])  # a scalar back: no copy timed
    timing = time_calls(lambda: product(a, b).numpy(), 1, settings)
    return Ceiling(size, 2.0 * size**3 * timing.rate / 1e9, timing.others)


def torch_matmul_ceiling(dtype, size, settings):
    """Ceiling: GFLOP/s of torch.matmul of two size×size matrices of `dtype` ("float32" or "bfloat16")."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a, b = (torch.rand(size, size, generator=generator).to(getattr(torch, dtype)) for _ in range(2))
    timing = time_calls(lambda: torch.matmul(a, b), 1, settings)
    return Ceiling(size, 2.0 * size**3 * timing.rate / 1e9, timing.others)


# ---------------------------------------------------------------------------------------------
# Keras workloads


def _release_models():
    import gc

    import keras

    keras.backend.clear_session(free_memory=True)
    gc.collect()


def keras_train(config, precision, dataset, settings, jit_compile=False):
    """Build and compile the experiment's AdversarialModel as `sar2opt train` does; time its fit.

    Returns (Timing, train FLOPs per image).
    """
    from keras_sar2opt.training.run import _dtype_policy, build_adversarial_model

    with _dtype_policy(precision):
        model = build_adversarial_model(config)
        model.jit_compile = jit_compile
        flops = train_flops(forward_macs(model.generator), forward_macs(model.discriminator))
        timing = time_fit(model, dataset, config.batch_size, settings)
    del model
    _release_models()
    return timing, flops


def _random_images(batch, size, channels, seed=0, channels_first=False):
    import numpy as np

    shape = (batch, channels, size, size) if channels_first else (batch, size, size, channels)
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)


def inference_call(generator, images, method):
    """A call translating the numpy batch `images` to a numpy batch with `method` (INFERENCE_METHODS)."""
    import numpy as np

    if method == "predict_on_batch":
        return lambda: np.asarray(generator.predict_on_batch(images))
    import tensorflow as tf

    compiled = tf.function(lambda x: generator(x, training=False))
    return lambda: compiled(images).numpy()


# ---------------------------------------------------------------------------------------------
# PyTorch workloads (the SAR2Optical networks of convert.torch_reference)


def torch_pix2pix():
    """The PyTorch SAR2Optical generator and discriminator with their Adam optimisers (as §3)."""
    import torch

    from keras_sar2opt.convert import torch_reference
    from keras_sar2opt.experiments import PIX2PIX

    torch.manual_seed(0)
    generator, discriminator = torch_reference.pix2pix_generator(), torch_reference.pix2pix_discriminator()
    optimizers = []
    for network, config in ((generator, PIX2PIX.g_optimizer), (discriminator, PIX2PIX.d_optimizer)):
        optimizers.append(
            torch.optim.Adam(network.parameters(), config.learning_rate, betas=(config.beta_1, config.beta_2))
        )
    return generator, discriminator, optimizers


def torch_train_call(networks, batch, size, bf16, l1_weight=100.0):
    """One D-then-G step like AdversarialModel's: BCEWithLogits (D: mean of real and fake) + λ·L1."""
    import torch
    from torch import nn

    generator, discriminator, (g_optimizer, d_optimizer) = networks
    bce = nn.BCEWithLogitsLoss()
    sar = torch.from_numpy(_random_images(batch, size, 3, seed=1, channels_first=True))
    optical = torch.from_numpy(_random_images(batch, size, 3, seed=2, channels_first=True))

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def step():
        generator.train()
        discriminator.train()
        with autocast():
            generated = generator(sar)
            real_logits = discriminator(torch.cat([sar, optical], 1))
            fake_logits = discriminator(torch.cat([sar, generated.detach()], 1))
            d_loss = 0.5 * (
                bce(real_logits.float(), torch.ones_like(real_logits, dtype=torch.float32))
                + bce(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32))
            )
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        discriminator.requires_grad_(False)  # the G step differentiates G's weights only
        with autocast():
            fake_logits = discriminator(torch.cat([sar, generated], 1))
            g_loss = bce(fake_logits.float(), torch.ones_like(fake_logits, dtype=torch.float32))
            g_loss = g_loss + l1_weight * torch.mean(torch.abs(generated.float() - optical))
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
        discriminator.requires_grad_(True)
        return g_loss.item()

    return step


def torch_inference_call(generator, batch, size, bf16):
    import torch

    images = torch.from_numpy(_random_images(batch, size, 3, channels_first=True))

    def call():
        generator.eval()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return generator(images).float().numpy()

    return call


# ---------------------------------------------------------------------------------------------
# The run


class _Run:
    """State shared by the measurements of one run: data on disk, models, results."""

    def __init__(self, settings, runtime, workdir):
        self.settings = settings
        self.results = Results(settings, runtime)
        self.workdir = Path(workdir)
        self._pairs = None
        self._torch_networks = None
        self.measured = {}  # (framework, workload, precision, batch) -> Timing

    def pairs(self):
        if self._pairs is None:
            from keras_sar2opt.data import find_pairs
            from keras_sar2opt.data.synthetic import write_synthetic

            root = write_synthetic(
                self.workdir / "synthetic",
                "qxslab",
                self.settings.pairs,
                "qxslab",
                size=self.settings.pix2pix_size,
                progress=False,
            )
            self._pairs = find_pairs(root).pairs
        return self._pairs

    def disk_dataset(self, config):
        from keras_sar2opt.data import make_dataset

        return make_dataset(
            self.pairs(),
            config.image_size,
            config.batch_size,
            training=True,
            seed=config.seed,
            augment=config.augment,
        ).repeat()

    def torch_networks(self):
        if self._torch_networks is None:
            self._torch_networks = torch_pix2pix()
        return self._torch_networks

    def estimated_call_seconds(self, framework, workload, precision, batch):
        """A call's duration predicted from the largest smaller batch measured, or None."""
        measured = [
            (b, timing)
            for (f, w, p, b), timing in self.measured.items()
            if (f, w, p) == (framework, workload, precision) and b < batch
        ]
        if not measured:
            return None
        _, timing = max(measured, key=lambda item: item[0])
        return batch / timing.rate

    def too_slow(self, framework, workload, precision, batch):
        """Skip a measurement whose single call would take over twice the budget; record why."""
        seconds = self.estimated_call_seconds(framework, workload, precision, batch)
        if seconds is None or seconds <= 2 * self.settings.budget:
            return False
        self.results.skipped.append(
            f"{framework} {workload}, batch {batch}, {precision}: one call would take about {seconds:.0f} s "
            f"(more than twice the {self.settings.budget:.0f} s budget)"
        )
        return True

    def record(self, framework, workload, precision, batch, timing):
        self.measured[framework, workload, precision, batch] = timing
        return timing


def _measurements(run):
    """The run's measurements in order, as (label, function) pairs."""
    import keras

    from keras_sar2opt.experiments import PATCHGAN, PIX2PIX

    settings, results = run.settings, run.results
    chosen = set(settings.workloads)
    tasks = []
    pix2pix = PIX2PIX.with_overrides(batch_size=settings.train_batch, image_size=settings.pix2pix_size)
    report_gan = PATCHGAN.with_overrides(batch_size=settings.report_gan_batch, image_size=settings.report_gan_size)
    backend = keras.backend.backend()

    def ceilings():
        for precision in settings.precisions:
            dtype = MATMUL_DTYPES[precision]
            results.ceilings["TensorFlow", dtype] = matmul_ceiling(dtype, settings.matmul_size, settings)
            if settings.torch:
                # PyTorch's bfloat16 matmul without native bfloat16 runs at well under 1 GFLOP/s: smaller matrices.
                size = settings.matmul_size if dtype == "float32" or native_bf16() else TORCH_EMULATED_BF16_MATMUL
                results.ceilings["PyTorch", dtype] = torch_matmul_ceiling(dtype, size, settings)

    tasks.append(("matmul ceiling", ceilings))

    def keras_training(workload, config, feed, precision, jit_compile=False):
        def task():
            dataset = run.disk_dataset(config)
            if feed == CONSTANT:
                import tensorflow as tf

                dataset = tf.data.Dataset.from_tensors(next(iter(dataset))).repeat()
            timing, flops = keras_train(config, precision, dataset, settings, jit_compile=jit_compile)
            results.rows.append(Row(workload, feed, config.batch_size, precision, flops, keras=timing))

        return task

    # Per precision, each Keras measurement next to its PyTorch counterpart, the headline ones first.
    for precision in settings.precisions:
        if "pix2pix-train" in chosen:
            # The pipeline's cost is measured in float32, where the step is fastest.
            for feed in (DISK, CONSTANT) if precision == "float32" else (DISK,):
                tasks.append(
                    (f"Keras pix2pix train {feed} {precision}", keras_training(PIX2PIX_TRAIN, pix2pix, feed, precision))
                )
            if settings.torch:
                tasks.append((f"PyTorch pix2pix train {precision}", _torch_train_task(run, precision)))
        if "pix2pix-inference" in chosen:
            tasks.append((f"Keras pix2pix inference {precision}", _keras_inference_task(run, precision, backend)))
            if settings.torch:
                tasks.append((f"PyTorch pix2pix inference {precision}", _torch_inference_task(run, precision)))
        if "report-gan-train" in chosen:
            tasks.append(
                (f"Keras report GAN train {precision}", keras_training(REPORT_GAN_TRAIN, report_gan, DISK, precision))
            )
        if "pix2pix-train-xla" in chosen and backend == "tensorflow":
            tasks.append(
                (
                    f"Keras pix2pix train XLA {precision}",
                    keras_training(PIX2PIX_TRAIN_XLA, pix2pix, DISK, precision, jit_compile=True),
                )
            )
            if settings.torch and "pix2pix-train" not in chosen:
                tasks.append((f"PyTorch pix2pix train {precision}", _torch_train_task(run, precision)))
    return tasks


def _keras_inference_task(run, precision, backend):
    settings, results = run.settings, run.results

    def task():
        from keras_sar2opt.models import pix2pix_generator
        from keras_sar2opt.training.run import _dtype_policy

        with _dtype_policy(precision):
            generator = pix2pix_generator(image_size=settings.pix2pix_size)
        flops = 2.0 * forward_macs(generator)
        methods = INFERENCE_METHODS[backend]
        for batch in settings.inference_batches:
            if run.too_slow("Keras", PIX2PIX_INFERENCE, precision, batch):
                continue
            images = _random_images(batch, settings.pix2pix_size, 3)
            # Both calls are compared in float32; the faster one times every row.
            compared = methods if precision == PRECISIONS[0] or not results.methods else (_fastest(results),)
            timings = {}
            for method in compared:
                timings[method] = time_calls(inference_call(generator, images, method), batch, settings)
                if len(compared) > 1:
                    results.methods.append((batch, precision, method, timings[method]))
            best = max(timings.values(), key=lambda timing: timing.rate)
            run.record("Keras", PIX2PIX_INFERENCE, precision, batch, best)
            results.rows.append(Row(PIX2PIX_INFERENCE, MEMORY, batch, precision, flops, keras=best))
        del generator
        _release_models()

    return task


def _fastest(results):
    """The inference method with the higher total throughput over the compared batches."""
    totals = {}
    for _, _, method, timing in results.methods:
        totals[method] = totals.get(method, 0.0) + timing.rate
    return max(totals, key=totals.get)


def _torch_train_task(run, precision):
    settings, results = run.settings, run.results

    def task():
        bf16 = precision != "float32"
        call = torch_train_call(run.torch_networks(), settings.train_batch, settings.pix2pix_size, bf16)
        timing = time_calls(call, settings.train_batch, settings)
        results.torch_timings[PIX2PIX_TRAIN, settings.train_batch, TORCH_PRECISIONS[precision]] = timing

    return task


def _torch_inference_task(run, precision):
    settings, results = run.settings, run.results

    def task():
        bf16 = precision != "float32"
        generator = run.torch_networks()[0]
        for batch in settings.inference_batches:
            if run.too_slow("PyTorch", PIX2PIX_INFERENCE, precision, batch):
                continue
            call = torch_inference_call(generator, batch, settings.pix2pix_size, bf16)
            timing = run.record("PyTorch", PIX2PIX_INFERENCE, precision, batch, time_calls(call, batch, settings))
            results.torch_timings[PIX2PIX_INFERENCE, batch, TORCH_PRECISIONS[precision]] = timing

    return task


def _attach_torch(results):
    """Give every Keras row the PyTorch timing of the same workload, batch and precision."""
    for row in results.rows:
        workload = PIX2PIX_TRAIN if row.workload == PIX2PIX_TRAIN_XLA else row.workload
        row.torch = results.torch_timings.get((workload, row.batch, TORCH_PRECISIONS[row.precision]))


def run_benchmark(settings, runtime, progress=True, after_each=None):
    """Run every measurement of `settings` (after `configure()`); returns Results.

    `after_each(results)` is called after each measurement (e.g. to write a partial report).
    """
    from tqdm.auto import tqdm

    with tempfile.TemporaryDirectory(prefix="sar2opt-benchmark-") as workdir:
        run = _Run(settings, runtime, workdir)
        results = run.results
        results.load_start = _load()
        tasks = _measurements(run)
        results.total = len(tasks)
        with tqdm(tasks, desc="benchmark", unit="measurement", disable=not progress) as bar:
            for label, task in bar:
                bar.set_postfix_str(f"{label} (waiting for a quiet machine)")
                wait_for_quiet(settings.quiet_wait)
                bar.set_postfix_str(label)
                task()
                results.done += 1
                results.load_end = _load()
                _attach_torch(results)
                if after_each is not None:
                    after_each(results)
    return results


# ---------------------------------------------------------------------------------------------
# Targets and the report


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    threshold: float
    at_most: bool = False  # the measured value must be <= threshold (else >=)

    def met(self, value):
        if math.isnan(value):
            return None
        return value <= self.threshold if self.at_most else value >= self.threshold


def target_values(results):
    """Issue 6's targets with the values measured in `results` (NaN where not measured)."""
    train_b = results.settings.train_batch

    def rate(row):
        return row.keras.rate if row is not None and row.keras is not None else math.nan

    def cpu(row):
        return row.keras.cpu_per_call if row is not None and row.keras is not None else math.nan

    def torch_rate(workload, batch, precision):
        timing = results.torch_timings.get((workload, batch, precision))
        return timing.rate if timing is not None else math.nan

    train = {p: results.row(PIX2PIX_TRAIN, train_b, p, DISK) for p in PRECISIONS}
    infer = {p: results.row(PIX2PIX_INFERENCE, 4, p) for p in PRECISIONS}
    torch_train_f32 = torch_rate(PIX2PIX_TRAIN, train_b, "float32")
    torch_train_bf16 = torch_rate(PIX2PIX_TRAIN, train_b, "bf16 autocast")
    torch_infer_f32 = torch_rate(PIX2PIX_INFERENCE, 4, "float32")
    constant = results.row(PIX2PIX_TRAIN, train_b, "float32", CONSTANT)
    ceiling = _ceiling(results, "float32")
    f32_flops = train["float32"].flops_per_image if train["float32"] is not None else math.nan
    return [
        (
            Target(f"train step b{train_b}: Keras float32 / PyTorch float32", 1.2),
            rate(train["float32"]) / torch_train_f32,
        ),
        (
            Target(f"train step b{train_b}: Keras mixed_bfloat16 / PyTorch float32", 2.0),
            rate(train["mixed_bfloat16"]) / torch_train_f32,
        ),
        (
            Target(f"train step b{train_b}: Keras mixed_bfloat16 / PyTorch bf16 autocast", 1.0),
            rate(train["mixed_bfloat16"]) / torch_train_bf16,
        ),
        (Target("inference b4: Keras float32 / PyTorch float32", 1.35), rate(infer["float32"]) / torch_infer_f32),
        (
            Target("inference b4: Keras mixed_bfloat16 / PyTorch float32", 2.3),
            rate(infer["mixed_bfloat16"]) / torch_infer_f32,
        ),
        (
            Target(f"train step b{train_b} float32: fraction of the float32 matmul ceiling", 0.55),
            rate(train["float32"]) * f32_flops / 1e9 / ceiling,
        ),
        (
            Target("pipeline cost: disk-fed step time / constant-batch step time - 1", 0.05, at_most=True),
            rate(constant) / rate(train["float32"]) - 1.0,
        ),
        (
            # The same cost in this process's CPU seconds per step, which other processes barely change.
            Target("pipeline cost in CPU time: disk-fed CPU s per step / constant-batch CPU s - 1", 0.05, at_most=True),
            cpu(train["float32"]) / cpu(constant) - 1.0,
        ),
    ]


def _number(value, digits=2):
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


TABLE_COLUMNS = (
    "workload",
    "feed",
    "batch",
    "precision",
    "Keras img/s",
    "PyTorch img/s",
    "Keras/PyTorch",
    "GFLOP/img",
    "Keras GFLOP/s",
    "of matmul ceiling",
    "timed calls (Keras; PyTorch)",
    "other processes, cores (Keras; PyTorch)",
)


def _ceiling(results, dtype):
    ceiling = results.ceilings.get(("TensorFlow", dtype))
    return ceiling.gflops if ceiling is not None else math.nan


def _calls(timing):
    return "—" if timing is None else f"{timing.calls} ({timing.quiet_blocks}/{timing.blocks} blocks quiet)"


def table_rows(results):
    """The main table's cells, one list per row, in TABLE_COLUMNS order."""
    rows = []
    for row in results.rows:
        keras_rate = row.keras.rate if row.keras else math.nan
        torch_rate = row.torch.rate if row.torch else math.nan
        achieved = keras_rate * row.flops_per_image / 1e9
        ceiling = _ceiling(results, MATMUL_DTYPES[row.precision])
        calls = f"{_calls(row.keras)}; {_calls(row.torch)}"
        others = "; ".join(_number(timing.others) if timing else "—" for timing in (row.keras, row.torch))
        rows.append(
            [
                row.workload,
                row.feed,
                row.batch,
                row.precision if row.torch is None else f"{row.precision} / {TORCH_PRECISIONS[row.precision]}",
                _number(keras_rate, 3),
                _number(torch_rate, 3),
                _number(row.ratio),
                f"{row.flops_per_image / 1e9:.4g}",
                _number(achieved, 1),
                f"{_number(100 * achieved / ceiling, 0)}%",
                calls,
                others,
            ]
        )
    return rows


GPU_RESULTS = "gpu_pix2pix_*.jsonl"  # benchmarks/gpu_pix2pix.py results, kept beside the report


def _gpu_input(record):
    """How a GPU record was fed and laid out: Keras's batches, PyTorch's memory order."""
    if record["framework"].startswith("PyTorch"):
        return "channels_last" if record.get("channels_last") else "NCHW"
    feed = ["batches on the GPU" if record.get("device_data") else "host arrays"]
    if record.get("steps_per_execution", 1) > 1:
        feed.append(f"{record['steps_per_execution']} steps per call")
    return ", ".join(feed)


def gpu_section(folder):
    """Markdown lines tabulating the GPU results (GPU_RESULTS files in `folder`), or none without any.

    Each file is one session's lent GPU: every rate is compared with that file's median PyTorch
    bf16 autocast rate in PyTorch's default NCHW order (the issue's reference) and its best PyTorch rate.
    """
    lines = []
    for path in sorted(Path(folder).glob(GPU_RESULTS)):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        torch_records = [r for r in records if r["framework"].startswith("PyTorch")]
        best_torch = max((rate for r in torch_records for rate in r["rates"].values()), default=None)
        reference = [
            r["rates"]["bf16 autocast"]
            for r in torch_records
            if not r.get("channels_last") and "bf16 autocast" in r["rates"]
        ]
        reference = statistics.median(reference) if reference else None
        device = next((r["device"] for r in records if not r["device"].startswith("cuda")), records[0]["device"])
        rows = [
            (
                record["framework"],
                _gpu_input(record),
                precision,
                f"{rate:,.0f}",
                *(_number(rate / base) if base else "—" for base in (reference, best_torch)),
            )
            for record in records
            for precision, rate in record["rates"].items()
        ]
        lines += [
            f"## GPU: Pix2Pix train step, batch 32, 256×256 ({device})",
            "",
            f"From `{path.name}` (`benchmarks/gpu_pix2pix.py` on a lent GPU; `reports/gpu.md` describes the runs). "
            "Rates are compared with the median PyTorch bf16 autocast rate in NCHW order and with the best "
            "PyTorch rate of the same file.",
            "",
            _markdown_table(
                ("framework", "input", "precision", "img/s", "/ PyTorch bf16 autocast", "/ PyTorch best"), rows
            ),
            "",
        ]
    return lines


def format_report(results, command, folder=None):
    """The Markdown report: runtime, main table, targets, ceilings, inference calls, notes, and the
    GPU results kept in `folder` (gpu_section)."""
    settings = results.settings
    lines = [
        "# Benchmarks: keras_sar2opt against the PyTorch SAR2Optical networks",
        "",
        *(
            [f"**Partial: {results.done} of {results.total} measurements done.**", ""]
            if results.done < results.total
            else []
        ),
        f"Produced by `{command}` (`python benchmarks/bench.py` takes the same options). "
        f"1-minute load average {_number(results.load_start)} at the start and {_number(results.load_end)} "
        "at the end. On a shared machine each measurement first waits (up to "
        f"{settings.quiet_wait:.0f} s) for other processes to use under {QUIET_CORES} cores; the cores they "
        "used during the timed blocks are read from /proc and shown per row, and a median is taken over "
        "the quiet blocks where there are any.",
        "",
        "## Machine and settings",
        "",
        _markdown_table(("", ""), [(key, value) for key, value in results.runtime.items()]),
        "",
        "## Throughput",
        "",
        _markdown_table(TABLE_COLUMNS, table_rows(results)),
        "",
        f"Medians over up to {settings.repeats} timed blocks of {settings.steps} calls after {settings.warmup} "
        f"warm-up calls (fewer single calls where one call is slow: at most {settings.budget:.0f} s timed per "
        "measurement). Train steps: `AdversarialModel.fit` compiled as the `pix2pix` experiment (Adam 2e-4, "
        "β (0.5, 0.999), BCE on logits + 100·L1, D then G) and the `patchgan` experiment (Tables 5 and 3); "
        f"fed by `make_dataset` (shuffle, flips/rotations) from {settings.pairs} synthetic pairs on disk, or "
        "by one of its batches held constant in memory. PyTorch: the same networks "
        "(`convert.torch_reference`), the same losses and optimisers, D then G, on constant tensors; "
        "bf16 is `torch.autocast('cpu', dtype=torch.bfloat16)`. Inference: eval mode on a constant batch, "
        "the result copied to NumPy.",
        "",
        "FLOPs per image: 2 × the multiply-accumulates of every Conv2D (H_out·W_out·k²·C_in·C_out), "
        "Conv2DTranspose (H_in·W_in·k²·C_in·C_out) and Dense layer, from the layers' shapes. Inference: "
        "2·MAC_G. Train step: 2·(3·MAC_G + 8·MAC_D): G forward and backward (3 passes), D forward and "
        "backward on the real and the fake pair (2 × 3), D forward and input gradients on the fake pair "
        "for G's loss (2). Achieved GFLOP/s = img/s × GFLOP/img; the ceiling is TensorFlow's matmul in the "
        "row's dtype (bfloat16 for mixed_bfloat16).",
        "",
        "## Targets",
        "",
        "The project's speed targets for this 2-core CPU, as ratios measured in this run.",
        "",
    ]
    target_rows = []
    for target, value in target_values(results):
        met = target.met(value)
        target_rows.append(
            [
                target.name,
                f"{'≤' if target.at_most else '≥'} {target.threshold:g}",
                _number(value, 3),
                "—" if met is None else ("met" if met else "missed"),
            ]
        )
    lines += [_markdown_table(("target", "required", "measured", "result"), target_rows), ""]
    lines += ["## Matrix-multiply ceiling", ""]
    ceiling_rows = [
        (framework, dtype, f"{ceiling.size}×{ceiling.size}", _number(ceiling.gflops, 1), _number(ceiling.others))
        for (framework, dtype), ceiling in sorted(results.ceilings.items())
    ]
    header = ("framework", "dtype", "matrices", "GFLOP/s", "other processes (cores)")
    lines += [_markdown_table(header, ceiling_rows), ""]
    if results.methods:
        lines += ["## Keras inference call", ""]
        method_rows = [
            (batch, precision, method, _number(t.rate, 3)) for batch, precision, method, t in results.methods
        ]
        lines += [
            _markdown_table(("batch", "precision", "call", "img/s"), method_rows),
            "",
            f"The throughput table takes the faster call at each batch; faster overall: `{_fastest(results)}`, "
            "which times the mixed_bfloat16 rows.",
            "",
        ]
    if results.skipped:
        lines += ["## Not measured", ""] + [f"- {reason}" for reason in results.skipped] + [""]
    if folder is not None:
        lines += gpu_section(folder)
    return "\n".join(lines)
