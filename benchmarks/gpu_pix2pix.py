"""Pix2Pix train step on one GPU: the package's AdversarialModel on Keras/JAX against PyTorch (report §3).

Usage, on a machine with a CUDA GPU, JAX and PyTorch (TensorFlow is not needed):

    python benchmarks/gpu_pix2pix.py all --batch 32 --device-data --profile 3 --out gpu.json
    python benchmarks/gpu_pix2pix.py torch --batch 32 --channels-last

Each framework runs in its own subprocess so neither holds GPU memory the other needs. Keras
trains through `AdversarialModel.fit` (its JAX stateless `train_step`, jitted by Keras) in float32
and `mixed_bfloat16`, on batches already on the GPU (--device-data, as the PyTorch loop) or from
host arrays that fit slices and copies over at each step. PyTorch runs the same networks and
D-then-G step as the CPU benchmark (`benchmarks.torch_pix2pix`) in eager mode, in float32 and
bfloat16 autocast. Throughputs are medians of timed blocks after warm-up. `--profile N`
then traces N more steps of each and prints where the GPU's time went, kernel by kernel.
"""

import argparse
import collections
import functools
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# keras_sar2opt imports Keras, whose default TensorFlow backend is absent on a JAX/PyTorch GPU machine;
# JAX must not preallocate GPU memory PyTorch will need when both are imported.
os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Run as a script, the checkout's root is not on sys.path: `benchmarks.torch_pix2pix` is imported from it.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SIZE = 256
KERAS_PRECISIONS = ("float32", "mixed_bfloat16")
TORCH_PRECISIONS = ("float32", "bf16 autocast")
PRECISION_CHOICES = {"float32": (0,), "bfloat16": (1,), "both": (0, 1)}  # indices into the two tuples above
# Kernel kinds by name fragments, first match wins: cuDNN names its convolution kernels by pass.
KERNEL_KINDS = (
    ("conv wgrad", ("wgrad",)),
    ("conv dgrad", ("dgrad",)),
    ("conv fprop", ("fprop", "convolve", "conv2d", "conv_")),
    ("copy", ("memcpy", "memset")),
    ("layout", ("nchwtonhwc", "nhwctonchw", "transpose")),
    ("batch norm", ("batch_norm", "batchnorm", "bn_")),
    ("optimizer", ("adam", "multi_tensor")),
    ("gemm", ("gemm", "gemv", "cublas", "cutlass")),
    ("fusion (XLA)", ("fusion", "triton")),
)


def log(*args):
    """Progress on stderr: stdout carries the results' JSON alone."""
    print(*args, file=sys.stderr, flush=True)


def kernel_kind(name):
    """The KERNEL_KINDS kind of a GPU kernel's name, or "other"."""
    lowered = name.lower()
    return next((kind for kind, marks in KERNEL_KINDS if any(mark in lowered for mark in marks)), "other")


def kernel_summary(kernels, steps, wall_s, top=20):
    """Per-step GPU time by kernel kind and the longest kernels, from {kernel name: [total µs, launches]}."""
    kinds = collections.Counter()
    for name, (us, _) in kernels.items():
        kinds[kernel_kind(name)] += us
    longest = sorted(kernels.items(), key=lambda item: -item[1][0])[:top]
    return {
        "steps": steps,
        "wall_ms_per_step": round(wall_s / steps * 1000, 3),
        "kernel_ms_per_step": round(sum(us for us, _ in kernels.values()) / steps / 1000, 3),
        "launches_per_step": round(sum(count for _, count in kernels.values()) / steps),
        "kinds_ms_per_step": {kind: round(us / steps / 1000, 3) for kind, us in kinds.most_common()},
        "top_kernels_ms_per_step": [[name[:120], round(us / steps / 1000, 3)] for name, (us, _) in longest],
    }


def print_summary(label, summary):
    log(
        f"{label}: wall {summary['wall_ms_per_step']} ms/step, GPU kernels {summary['kernel_ms_per_step']} ms/step"
        f" in {summary['launches_per_step']} launches"
    )
    for kind, ms in summary["kinds_ms_per_step"].items():
        log(f"  {kind:<14} {ms:9.3f} ms")
    for name, ms in summary["top_kernels_ms_per_step"]:
        log(f"  {ms:9.3f} ms  {name}")


def jax_kernel_times(run):
    """({kernel name: [total µs, launches]} of the GPU's streams, wall s) of run(), from JAX's profiler."""
    import jax

    with tempfile.TemporaryDirectory() as log_dir:
        with jax.profiler.trace(log_dir, create_perfetto_trace=True):
            start = time.perf_counter()
            run()
            wall_s = time.perf_counter() - start
        with gzip.open(next(Path(log_dir).rglob("perfetto_trace.json.gz"))) as file:
            trace = json.load(file)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {
        (e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    # A GPU's trace holds one line per stream (its kernels) and lines derived from them (modules, HLO ops).
    derived = ("xla modules", "xla ops", "name scope", "source", "steps")
    lines = {
        key: name
        for key, name in threads.items()
        if "GPU" in processes.get(key[0], "") and not any(mark in name.lower() for mark in derived)
    }
    log("GPU kernel lines traced:", sorted(set(lines.values())))
    kernels = collections.defaultdict(lambda: [0, 0])
    for e in events:
        if e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in lines:
            kernels[e["name"]][0] += e.get("dur", 0)
            kernels[e["name"]][1] += 1
    return kernels, wall_s


def keras_rates(batch, steps, repeats, precisions=(0, 1), profile=0, device_data=False, steps_per_execution=1):
    """img/s of AdversarialModel.fit on the Pix2Pix networks, per Keras precision.

    device_data: fit reads batches already on the GPU, as the PyTorch loop does, instead of
    slicing host arrays and copying each batch over. profile: steps traced after the timing (0: none).
    """
    import jax
    import keras
    import numpy as np

    from keras_sar2opt.experiments import PIX2PIX
    from keras_sar2opt.models import pix2pix_discriminator, pix2pix_generator
    from keras_sar2opt.training.adversarial import AdversarialModel

    class DeviceBatches(keras.utils.PyDataset):
        """Batches held on the device: fit would copy JAX arrays given as x and y to host memory."""

        def __init__(self, batches):
            super().__init__()
            self.batches = batches

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            return self.batches[index]

    rng = np.random.default_rng(0)
    sar = rng.uniform(-1, 1, (batch * steps, SIZE, SIZE, 3)).astype("float32")
    optical = rng.uniform(-1, 1, (batch * steps, SIZE, SIZE, 3)).astype("float32")
    on_device = [jax.device_put((sar[i : i + batch], optical[i : i + batch])) for i in range(0, len(sar), batch)]

    def fit(model, step_count):
        if device_data:
            return model.fit(DeviceBatches(on_device[:step_count]), epochs=1, verbose=0)
        count = batch * step_count
        return model.fit(sar[:count], optical[:count], batch_size=batch, epochs=1, verbose=0)

    rates, profiles = {}, {}
    for precision in (KERAS_PRECISIONS[i] for i in precisions):
        keras.mixed_precision.set_global_policy(precision)
        keras.utils.set_random_seed(0)
        model = AdversarialModel(pix2pix_generator(), pix2pix_discriminator(), conditional=True)
        model.compile(**PIX2PIX.compile_kwargs(), steps_per_execution=steps_per_execution)
        start = time.perf_counter()
        fit(model, steps)  # compile and warm up
        log(f"keras/jax {precision}: compile and warm-up {time.perf_counter() - start:.0f} s")
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fit(model, steps)
            times.append(time.perf_counter() - start)
        rates[precision] = batch * steps / statistics.median(times)
        log(f"keras/jax {precision}: {rates[precision]:.1f} img/s")
        if profile:
            traced = profile * steps_per_execution
            kernels, wall_s = jax_kernel_times(functools.partial(fit, model, traced))
            profiles[precision] = kernel_summary(kernels, traced, wall_s)
            print_summary(f"keras/jax {precision}", profiles[precision])
        del model
        keras.backend.clear_session()
    return {
        "framework": f"Keras {keras.__version__} / JAX {jax.__version__}",
        "device": str(jax.devices()[0]),
        "device_data": device_data,
        "steps_per_execution": steps_per_execution,
        "rates": rates,
        "profiles": profiles,
    }


def torch_rates(batch, steps, repeats, precisions=(0, 1), profile=0, channels_last=False, **_):
    """img/s of the same D-then-G step in PyTorch eager mode, per precision; profile as for Keras.

    channels_last: networks and batches in NHWC memory order, which cuDNN's tensor-core kernels
    use, instead of PyTorch's default NCHW.
    """
    import torch
    from torch.autograd import DeviceType

    from benchmarks import torch_pix2pix

    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # CPU: a smoke test only
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rates, profiles = {}, {}
    for precision in (TORCH_PRECISIONS[i] for i in precisions):
        networks = torch_pix2pix.build_networks(device, channels_last)
        sar, optical = (torch_pix2pix.images(batch, SIZE, seed, device, channels_last) for seed in (1, 2))
        step = torch_pix2pix.train_step(networks, sar, optical, bf16=precision != "float32")

        for _ in range(5):
            step()
        times = []
        for _ in range(repeats):
            synchronize()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            synchronize()
            times.append(time.perf_counter() - start)
        rates[precision] = batch * steps / statistics.median(times)
        log(f"torch {precision}: {rates[precision]:.1f} img/s")
        if profile:
            start = time.perf_counter()
            with torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
            ) as trace:
                for _ in range(profile):
                    step()
                synchronize()
            wall_s = time.perf_counter() - start
            kernels = {
                event.key: [event.self_device_time_total, event.count]
                for event in trace.key_averages()
                if event.device_type == DeviceType.CUDA
            }
            profiles[precision] = kernel_summary(kernels, profile, wall_s)
            print_summary(f"torch {precision}", profiles[precision])
    return {
        "framework": f"PyTorch {torch.__version__} eager",
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "channels_last": channels_last,
        "rates": rates,
        "profiles": profiles,
    }


RUNNERS = {"keras": keras_rates, "torch": torch_rates}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=(*RUNNERS, "all"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="train steps per timed block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--device-data",
        action="store_true",
        help="Keras: fit reads batches already on the GPU (PyTorch's loop always does)",
    )
    parser.add_argument("--steps-per-execution", type=int, default=1, help="Keras: train steps per jitted call")
    parser.add_argument("--channels-last", action="store_true", help="PyTorch: NHWC memory order (default NCHW)")
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="both",
        help="float32, bfloat16 (Keras mixed_bfloat16, PyTorch bf16 autocast) or both",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after timing, trace N steps and print the GPU time per kernel (0: no trace)",
    )
    parser.add_argument("--out", type=Path, help="JSON file for the results ('all' only)")
    args = parser.parse_args(argv)
    if args.framework != "all":
        print(
            json.dumps(
                RUNNERS[args.framework](
                    args.batch,
                    args.steps,
                    args.repeats,
                    precisions=PRECISION_CHOICES[args.precision],
                    profile=args.profile,
                    device_data=args.device_data,
                    steps_per_execution=args.steps_per_execution,
                    channels_last=args.channels_last,
                )
            )
        )
        return 0
    results = {}
    for framework in RUNNERS:
        command = [
            sys.executable,
            __file__,
            framework,
            "--batch",
            str(args.batch),
            "--steps",
            str(args.steps),
            "--repeats",
            str(args.repeats),
            "--steps-per-execution",
            str(args.steps_per_execution),
            "--precision",
            args.precision,
            "--profile",
            str(args.profile),
        ]
        command += [
            flag
            for flag, given in (("--device-data", args.device_data), ("--channels-last", args.channels_last))
            if given
        ]
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        results[framework] = json.loads(output.strip().splitlines()[-1])
    if "mixed_bfloat16" in results["keras"]["rates"]:
        best_torch = max(results["torch"]["rates"].values())
        results["ratio_mixed_bfloat16_vs_best_torch"] = results["keras"]["rates"]["mixed_bfloat16"] / best_torch
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
