"""Op-level CPU profile of one train step, Keras (TensorFlow profiler) beside PyTorch (torch.profiler), by kind.

`python -m benchmarks.profile_cpu [--workload pix2pix-fit|report-gan-fit] [--steps N]` prints a
Markdown table (reports/cpu-profile.md). The Keras step is AdversarialModel's compiled train function
(`train_on_batch` on a constant batch), profiled with the TensorFlow profiler at host tracer level 3;
the PyTorch step is `benchmarks.torch_pix2pix.train_step` on the same networks, under torch.profiler.
Keras runs its whole block first, then PyTorch (its OpenMP threads keep spinning after a call).
Op times are the time each op ran on its executor thread (using every intra-op thread; TensorFlow may
run two ops at once, so its op times can add up to more than the wall time); a share is of the summed
op time; launch overhead is the step's wall time during which no op ran.
"""

import argparse
import glob
import shutil
import tempfile
import time

from benchmarks.paths import DESCRIPTIONS

KINDS = (
    "convolutions, forward",
    "convolutions, gradients",
    "transposed convolutions, forward",
    "transposed convolutions, gradients",
    "BatchNorm, forward and gradients",
    "activations and their gradients",
    "layout: concat, pad, slice, reorders, copies",
    "optimiser",
    "losses, metrics, other",
    "launch overhead (no op running)",
)
TF_ACTIVATIONS = ("LeakyRelu", "LeakyReluGrad", "Relu", "ReluGrad", "Tanh", "TanhGrad", "Maximum", "Sigmoid")
TF_LAYOUT = ("Transpose", "_MklToTf", "ConcatV2", "Concat", "Pad", "Slice", "StridedSlice", "Reshape", "Identity")
# Ops that only call a function (Keras's train step is a tf.function inside another; a call of a function by
# name has the function's name, "__inference_…", as its type): their time is their ops'.
TF_CALLS = ("StatefulPartitionedCall", "PartitionedCall", "While", "StatelessWhile", "If", "StatelessIf", "Case")
# PyTorch's convolution ops and the position of their `transposed` argument.
TORCH_CONVOLUTIONS = {"aten::convolution": 6, "aten::_convolution": 6, "aten::convolution_backward": 7}


def _tf_kind(name, op_type, transposed):
    """KINDS entry of a TensorFlow op by its type and name scope (layer names of transposed convolutions)."""
    lower = name.lower()
    if "Conv2D" in op_type or op_type in ("BiasAdd", "BiasAddGrad"):
        which = "transposed convolutions" if any(f"/{layer}" in name for layer in transposed) else "convolutions"
        return f"{which}, {'gradients' if 'gradient_tape' in name else 'forward'}"
    if "_bn" in lower or "batch_normalization" in lower:
        return KINDS[4]
    if op_type in TF_ACTIVATIONS or "relu" in lower or "tanh" in lower:
        return KINDS[5]
    if "adam" in lower or "optimizer" in lower or op_type.startswith(("ResourceApply", "Assign")):
        return KINDS[7]
    if op_type in TF_LAYOUT or op_type.startswith("_Mkl") and "Reorder" in op_type:
        return KINDS[6]
    return KINDS[8]


def _union(intervals):
    """Total length of the union of (start, end) intervals."""
    total, current_start, current_end = 0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            total += 0 if current_end is None else current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    return total + (0 if current_end is None else current_end - current_start)


def keras_profile(workload, steps):
    """(seconds per kind per step, wall seconds per step) of the Keras train step."""
    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from keras_sar2opt.experiments import PATCHGAN, PIX2PIX
    from keras_sar2opt.training.run import build_adversarial_model

    config = PIX2PIX if workload == "pix2pix-fit" else PATCHGAN
    config = config.with_overrides(batch_size=4 if workload == "pix2pix-fit" else 32)
    keras.utils.set_random_seed(0)
    model = build_adversarial_model(config)
    transposed = [
        layer.name
        for network in (model.generator, model.discriminator)
        for layer in network.layers
        if isinstance(layer, keras.layers.Conv2DTranspose)
    ]
    rng = np.random.default_rng(0)
    shape = (config.batch_size, config.image_size, config.image_size, 3)
    sar, optical = (rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(2))
    for _ in range(2):
        model.train_on_batch(sar, optical)
    folder = tempfile.mkdtemp(prefix="sar2opt-profile-")
    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=3, python_tracer_level=0)
    tf.profiler.experimental.start(folder, options=options)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(sar, optical)
    wall = (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    (path,) = glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as file:
        space.ParseFromString(file.read())
    shutil.rmtree(folder, ignore_errors=True)
    kinds, intervals = dict.fromkeys(KINDS, 0.0), []
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name  # "name:type"; "A::B" is the executor's
                name, _, op_type = label.rpartition(":")
                if not name or "::" in label or op_type in TF_CALLS or op_type.startswith("__"):
                    continue
                start_ps = line.timestamp_ns * 1000 + event.offset_ps
                intervals.append((start_ps, start_ps + event.duration_ps))
                kinds[_tf_kind(name, op_type, transposed)] += event.duration_ps / 1e12 / steps
    kinds[KINDS[-1]] = max(0.0, wall - _union(intervals) / 1e12 / steps)
    return kinds, wall


def _torch_kind(event):
    """KINDS entry of a torch.profiler event by its name and the events it ran in (with their arguments)."""
    chain, parent = [event], event.cpu_parent
    while parent is not None:
        chain.append(parent)
        parent = parent.cpu_parent
    name = event.name
    if any(e.name.startswith("Optimizer.") for e in chain):
        return KINDS[7]
    convolution = next((e for e in chain if e.name in TORCH_CONVOLUTIONS), None)
    if convolution is not None:
        which = (
            "transposed convolutions"
            if convolution.concrete_inputs[TORCH_CONVOLUTIONS[convolution.name]]
            else "convolutions"
        )
        return f"{which}, {'gradients' if convolution.name.endswith('backward') else 'forward'}"
    if "batch_norm" in name:
        return KINDS[4]
    if any(word in name for word in ("relu", "tanh", "threshold")):
        return KINDS[5]
    if name in ("aten::cat", "aten::copy_", "aten::contiguous", "aten::constant_pad_nd", "aten::slice"):
        return KINDS[6]
    return KINDS[8]


def torch_profile(workload, steps):
    """(seconds per kind per step, wall seconds per step) of the PyTorch train step."""
    from torch.profiler import ProfilerActivity, profile

    from benchmarks import torch_pix2pix, torch_report_gan
    from keras_sar2opt.experiments import PATCHGAN

    if workload == "pix2pix-fit":
        networks, batch, size, l1_weight = torch_pix2pix.build_networks(), 4, 256, None
    else:
        networks, batch, size, l1_weight = torch_report_gan.build_networks(), 32, 128, PATCHGAN.l1_weight
    sar, optical = torch_pix2pix.images(batch, size, seed=1), torch_pix2pix.images(batch, size, seed=2)
    step = torch_pix2pix.train_step(networks, sar, optical, False, l1_weight)
    for _ in range(2):
        step().item()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        start = time.perf_counter()
        for _ in range(steps):
            step().item()
        wall = (time.perf_counter() - start) / steps
    kinds, busy = dict.fromkeys(KINDS, 0.0), 0.0
    for event in profiler.events():
        kinds[_torch_kind(event)] += event.self_cpu_time_total / 1e6 / steps
        if event.cpu_parent is None:
            busy += (event.time_range.end - event.time_range.start) / 1e6 / steps
    kinds[KINDS[-1]] = max(0.0, wall - busy)
    return kinds, wall


def table(workload, steps):
    """The Markdown comparison table of one workload."""
    keras_kinds, keras_wall = keras_profile(workload, steps)
    torch_kinds, torch_wall = torch_profile(workload, steps)
    lines = [
        f"{DESCRIPTIONS[workload]}: seconds per step by kind, {steps} profiled steps after 2 warm-up steps",
        "",
        "| kind | Keras (TensorFlow) s | share | PyTorch s | share | Keras / PyTorch |",
        "|---|---|---|---|---|---|",
    ]
    keras_total, torch_total = sum(keras_kinds.values()), sum(torch_kinds.values())
    for kind in KINDS:
        k, t = keras_kinds[kind], torch_kinds[kind]
        ratio = f"{k / t:.2f}" if t > 0 else "—"
        lines.append(f"| {kind} | {k:.3f} | {k / keras_total:.0%} | {t:.3f} | {t / torch_total:.0%} | {ratio} |")
    walls = f"**{keras_wall:.3f}** | | **{torch_wall:.3f}** | | {keras_wall / torch_wall:.2f}"
    lines.append(f"| **step wall time** | {walls} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("pix2pix-fit", "report-gan-fit"), default="pix2pix-fit")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    print(table(args.workload, args.steps))


if __name__ == "__main__":
    main()
