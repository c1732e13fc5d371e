"""One process of the path benchmark (benchmarks.paths): a workload started as users start it, timed in blocks.

`python -m benchmarks.worker PATH WORKLOAD DATA`, run by benchmarks.paths with TF_ENABLE_ONEDNN_OPTS
removed from the environment, as for a user who set nothing. PATH is one of paths.PATHS; WORKLOAD
one of paths.WORKLOADS or paths.COMPANIONS; DATA the synthetic dataset folder (written by the first
process that needs it).
One JSON object per line: after warm-up the worker prints {"ready": what ran}; then for each line
{"calls": N} it reads, it runs N calls (train steps or inference batches) and prints
{"seconds": wall, "cpu": this process's CPU seconds}; an empty line or end of input stops it.
"""

import json
import os
import sys
import time

WARMUP = 2  # calls before the first block: tracing, compilation, first allocations


def _start(path):
    """Import in the order of `path`; returns what the process runs on."""
    if path == "library":
        from keras_sar2opt import models  # noqa: F401  (a script or notebook)
    elif path == "cli":
        from keras_sar2opt import cli  # noqa: F401  (the `sar2opt` command, the train_*.py scripts)
    elif path == "tensorflow-first":
        import tensorflow  # noqa: F401  (TensorFlow's own kernel choice)

        import keras_sar2opt  # noqa: F401
    elif path == "benchmark-process":
        from benchmarks import timing  # the in-process `sar2opt benchmark`: its threads, PyTorch loaded

        timing.configure("tensorflow")
    elif path == "torch":
        import torch

        return {"framework": f"PyTorch {torch.__version__}", "threads": torch.get_num_threads()}
    import tensorflow as tf

    from keras_sar2opt import hardware

    return {
        "framework": f"TensorFlow {tf.__version__}",
        "onednn": hardware.onednn_enabled(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get(hardware.ONEDNN_VARIABLE),
        "slow-kernels warning": hardware.slow_kernels_message() is not None,
        "threads": f"intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'all'}, "
        f"inter-op {tf.config.threading.get_inter_op_parallelism_threads() or 'all'}",
    }


def synthetic_pairs(data, count, size):
    """The benchmark's `qxslab` pairs in `data`, written there first if the folder does not exist yet."""
    from keras_sar2opt.data import find_pairs
    from keras_sar2opt.data.synthetic import write_synthetic

    if not os.path.isdir(data):  # 256-px tiles, resized by the pipeline for the report's 128-px GAN
        write_synthetic(data, "qxslab", count, "qxslab", size=size, progress=False)
    return find_pairs(data).pairs


def disk_training_data(pairs, config):
    """Endless training batches of `config` read from disk, the stream `sar2opt train` feeds fit()."""
    from keras_sar2opt.data.pipeline import training_batches

    return training_batches(pairs, config.image_size, config.batch_size, seed=config.seed, augment=config.augment)


def keras_model(config):
    """The compiled AdversarialModel of `config`, built from its seed as `sar2opt train` builds it."""
    import keras

    from keras_sar2opt.training.run import build_adversarial_model

    keras.utils.set_random_seed(config.seed)
    return build_adversarial_model(config)


def _keras_fit(config, pairs, serve):
    """fit() as `sar2opt train` runs it, fed by its stream of batches from disk, with its per-step
    callbacks; `serve` times its steps."""
    import keras

    model = keras_model(config)
    dataset = disk_training_data(pairs, config)

    class Blocks(keras.callbacks.Callback):
        """Ends the step after warm-up and after each block by serving the parent's next request."""

        def __init__(self):
            super().__init__()
            self.steps, self.until = 0, WARMUP

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps == self.until:
                calls = serve(None)
                if calls is None:
                    self.model.stop_training = True
                else:
                    self.until += calls

    model.fit(dataset, epochs=1, steps_per_epoch=10**9, verbose=0, callbacks=[*run_step_callbacks(), Blocks()])


def run_step_callbacks():
    """The callbacks of a run (training.run.make_callbacks) that act at every step: the NaN guard.
    The others act at an epoch's end, which the worker's single long epoch never reaches."""
    from keras_sar2opt.training.callbacks import NonFiniteGuard

    return [NonFiniteGuard()]


def _keras_train_on_batch(config, pairs):
    """model.train_on_batch on the batches fit() gets (the same stream, pulled in Python)."""
    model = keras_model(config)
    batches = iter(disk_training_data(pairs, config))

    def call():
        sar, optical = next(batches)
        return model.train_on_batch(sar, optical)

    return call


def _keras_inference(size, batch):
    """The call `translate` and `evaluate` make: predict_on_batch on a NumPy batch, to NumPy."""
    import numpy as np

    from keras_sar2opt.models import pix2pix_generator

    generator = pix2pix_generator(image_size=size)
    images = np.random.default_rng(0).uniform(-1.0, 1.0, (batch, size, size, 3)).astype(np.float32)
    return lambda: np.asarray(generator.predict_on_batch(images))


def _torch_call(workload, settings):
    from benchmarks import torch_pix2pix, torch_report_gan
    from keras_sar2opt.experiments import PATCHGAN

    if workload == "pix2pix-inference":
        generator = torch_pix2pix.build_networks()[0]
        return torch_pix2pix.inference_call(generator, settings["inference_batch"], settings["pix2pix_size"], False)
    if workload == "pix2pix-fit":
        networks, l1_weight = torch_pix2pix.build_networks(), None
        batch, size = settings["train_batch"], settings["pix2pix_size"]
    else:
        networks, l1_weight = torch_report_gan.build_networks(), PATCHGAN.l1_weight
        batch, size = settings["report_gan_batch"], settings["report_gan_size"]
    sar, optical = torch_pix2pix.images(batch, size, seed=1), torch_pix2pix.images(batch, size, seed=2)
    step = torch_pix2pix.train_step(networks, sar, optical, False, l1_weight)
    return lambda: step().item()


def _serve_calls(call, serve):
    for _ in range(WARMUP):
        call()
    calls = serve(None)
    while calls is not None:
        for _ in range(calls):
            call()
        calls = serve(None)


def main(path, workload, data, settings):
    started = _start(path)
    pending = {}

    def serve(_):
        """Report the block just finished (or readiness), then read how many calls the next block makes."""
        now, cpu = time.perf_counter(), time.process_time()
        if pending:
            print(json.dumps({"seconds": now - pending["wall"], "cpu": cpu - pending["cpu"]}), flush=True)
        else:
            print(json.dumps({"ready": started}), flush=True)
        line = sys.stdin.readline().strip()
        if not line:
            return None
        pending.update(wall=time.perf_counter(), cpu=time.process_time())
        return json.loads(line)["calls"]

    if path == "torch":
        _serve_calls(_torch_call(workload, settings), serve)
    elif workload == "pix2pix-inference":
        _serve_calls(_keras_inference(settings["pix2pix_size"], settings["inference_batch"]), serve)
    else:
        from keras_sar2opt.experiments import PATCHGAN, PIX2PIX

        if workload.startswith("pix2pix-"):
            config = PIX2PIX.with_overrides(batch_size=settings["train_batch"], image_size=settings["pix2pix_size"])
        else:
            batch, size = settings["report_gan_batch"], settings["report_gan_size"]
            config = PATCHGAN.with_overrides(batch_size=batch, image_size=size)
        pairs = synthetic_pairs(data, settings["pairs"], settings["pix2pix_size"])
        if workload == "pix2pix-train-on-batch":
            _serve_calls(_keras_train_on_batch(config, pairs), serve)
        else:
            _keras_fit(config, pairs, serve)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
