"""ONNX Runtime against Keras: Pix2Pix generator inference (report §3.1) on this CPU, side by side in one run.

Both run what `sar2opt translate` calls per batch of tiles: Keras's `predict_on_batch` (TensorFlow,
oneDNN) and the exported model's `OnnxGenerator.predict_on_batch` (ONNX Runtime, CPU provider). The
generator has random weights (speed does not depend on them) and is exported with `sar2opt export`'s
code. Timed blocks alternate between the two, so that load from other processes on a shared machine
falls on both; the table gives medians and the load average, which says how quiet the machine was.

    python benchmarks/onnx_speed.py [--batch 4] [--size 256] [--calls 3] [--repeats 5]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `sar2opt` sets it


def _seconds_per_call(predict, batch, calls):
    start = time.perf_counter()
    for _ in range(calls):
        predict(batch)
    return (time.perf_counter() - start) / calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--calls", type=int, default=3, help="calls per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per runtime (median taken)")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import onnxruntime
    import tensorflow as tf

    from keras_sar2opt.export import export_generator
    from keras_sar2opt.inference.onnx_runtime import OnnxGenerator
    from keras_sar2opt.models import pix2pix_generator

    model = pix2pix_generator(image_size=args.size)
    batch = np.random.default_rng(0).uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pix2pix.onnx"
        difference = export_generator(model, path, "onnx")
        runtimes = {
            f"Keras {keras.__version__} (TensorFlow {tf.__version__}) predict_on_batch": model.predict_on_batch,
            f"ONNX Runtime {onnxruntime.__version__} (CPU provider)": OnnxGenerator(path).predict_on_batch,
        }
        for predict in runtimes.values():  # warm-up: tracing, first allocations
            predict(batch)
            predict(batch)
        load_before = os.getloadavg()[0]
        blocks = {name: [] for name in runtimes}
        for _ in range(args.repeats):
            for name, predict in runtimes.items():
                blocks[name].append(_seconds_per_call(predict, batch, args.calls))
        load_after = os.getloadavg()[0]

    print(
        f"Pix2Pix generator ({model.count_params():,} parameters), batch {args.batch}, {args.size}x{args.size}, "
        f"{os.cpu_count()} CPU cores; max |ONNX - Keras| {difference:.2g}"
    )
    print(
        f"medians of {args.repeats} alternating blocks of {args.calls} calls; load average {load_before:.1f} "
        f"before, {load_after:.1f} after (a shared machine: other processes take cores)\n"
    )
    print("| runtime | ms per batch | images/s |")
    print("|---|---:|---:|")
    seconds = {}
    for name, times in blocks.items():
        seconds[name] = statistics.median(times)
        print(f"| {name} | {seconds[name] * 1000:.0f} | {args.batch / seconds[name]:.2f} |")
    keras_name, onnx_name = runtimes
    print(f"\nONNX Runtime / Keras throughput: {seconds[keras_name] / seconds[onnx_name]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
