"""The CPU benchmark behind `sar2opt benchmark`: the Keras and PyTorch measurements of one run, in order.

First, what users run, each in a fresh process (`benchmarks.paths`). Then, in this process, it times
the Pix2Pix train step through `AdversarialModel.fit`, fed by `training_batches` from a synthetic tree on
disk and by a constant in-memory batch; generator inference; the report's GAN (Table 5 + Table 3);
each in float32 and mixed_bfloat16; the same Pix2Pix step and inference in PyTorch
(`benchmarks.torch_pix2pix`, float32 and bfloat16 autocast); and a matrix-multiply ceiling.
"""

import tempfile
from pathlib import Path

from benchmarks import paths, torch_pix2pix, worker
from benchmarks.flops import forward_macs, matmul_ceiling, torch_matmul_ceiling, train_flops
from benchmarks.results import (
    CONSTANT,
    DISK,
    MATMUL_DTYPES,
    MEMORY,
    PIX2PIX_INFERENCE,
    PIX2PIX_TRAIN,
    PIX2PIX_TRAIN_XLA,
    REPORT_GAN_TRAIN,
    TORCH_PRECISIONS,
    Results,
    Row,
    fastest,
)
from benchmarks.timing import load_average, time_calls, time_fit, wait_for_quiet
from keras_sar2opt.commands.benchmark import PRECISIONS
from keras_sar2opt.hardware import native_bf16

# TensorFlow's compiled call, and Keras's own batch call; the faster one is used for every row.
INFERENCE_METHODS = {"tensorflow": ("tf.function", "predict_on_batch"), "jax": ("predict_on_batch",)}
TORCH_EMULATED_BF16_MATMUL = 512  # matrix size of PyTorch's bfloat16 ceiling without native bfloat16


def _release_models():
    import gc

    import keras

    keras.backend.clear_session(free_memory=True)
    gc.collect()


def keras_train(config, precision, dataset, settings, jit_compile=False):
    """Build and compile the experiment's AdversarialModel as `sar2opt train` does; time its fit.

    Returns (Timing, train FLOPs per image).
    """
    from keras_sar2opt.training.distribute import dtype_policy
    from keras_sar2opt.training.run import build_adversarial_model

    with dtype_policy(precision):
        model = build_adversarial_model(config)
        model.jit_compile = jit_compile
        flops = train_flops(forward_macs(model.generator), forward_macs(model.discriminator))
        timing = time_fit(model, dataset, config.batch_size, settings)
    del model
    _release_models()
    return timing, flops


def _random_images(batch, size):
    """A constant NHWC batch of 3-channel images, uniform in [-1, 1)."""
    import numpy as np

    return np.random.default_rng(0).uniform(-1.0, 1.0, (batch, size, size, 3)).astype(np.float32)


def inference_call(generator, images, method):
    """A call translating the numpy batch `images` to a numpy batch with `method` (INFERENCE_METHODS)."""
    import numpy as np

    if method == "predict_on_batch":
        return lambda: np.asarray(generator.predict_on_batch(images))
    import tensorflow as tf

    compiled = tf.function(lambda x: generator(x, training=False))
    return lambda: compiled(images).numpy()


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
            synthetic = self.workdir / "synthetic"
            self._pairs = worker.synthetic_pairs(synthetic, self.settings.pairs, self.settings.pix2pix_size)
        return self._pairs

    def disk_dataset(self, config):
        return worker.disk_training_data(self.pairs(), config)

    def torch_networks(self):
        if self._torch_networks is None:
            self._torch_networks = torch_pix2pix.build_networks()
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
    if "paths" in chosen and backend == "tensorflow":
        tasks += [(f"fresh processes: {workload}", _paths_task(run, workload)) for workload in paths.WORKLOADS]

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


def _paths_task(run, workload):
    def task():
        data = run.workdir / "paths-data"
        run.results.paths += paths.measure(workload, run.settings, run.settings.paths, data, torch=run.settings.torch)

    return task


def _keras_inference_task(run, precision, backend):
    settings, results = run.settings, run.results

    def task():
        from keras_sar2opt.models import pix2pix_generator
        from keras_sar2opt.training.distribute import dtype_policy

        with dtype_policy(precision):
            generator = pix2pix_generator(image_size=settings.pix2pix_size)
        flops = 2.0 * forward_macs(generator)
        methods = INFERENCE_METHODS[backend]
        for batch in settings.inference_batches:
            if run.too_slow("Keras", PIX2PIX_INFERENCE, precision, batch):
                continue
            images = _random_images(batch, settings.pix2pix_size)
            # Both calls are compared in float32; the faster one times every row.
            compared = methods if precision == PRECISIONS[0] or not results.methods else (fastest(results),)
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


def _torch_train_task(run, precision):
    settings, results = run.settings, run.results

    def task():
        bf16 = precision != "float32"
        batch, size = settings.train_batch, settings.pix2pix_size
        sar, optical = torch_pix2pix.images(batch, size, seed=1), torch_pix2pix.images(batch, size, seed=2)
        step = torch_pix2pix.train_step(run.torch_networks(), sar, optical, bf16)
        timing = time_calls(lambda: step().item(), batch, settings)
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
            call = torch_pix2pix.inference_call(generator, batch, settings.pix2pix_size, bf16)
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
        results.load_start = load_average()
        tasks = _measurements(run)
        results.total = len(tasks)
        with tqdm(tasks, desc="benchmark", unit="measurement", disable=not progress) as bar:
            for label, task in bar:
                bar.set_postfix_str(f"{label} (waiting for a quiet machine)")
                wait_for_quiet(settings.quiet_wait)
                bar.set_postfix_str(label)
                task()
                results.done += 1
                results.load_end = load_average()
                _attach_torch(results)
                if after_each is not None:
                    after_each(results)
    return results
