"""Training on two TensorFlow workers against one process, and the per-step communication between them.

Two measurements on this machine (docs/distributed.md, "Cost on this machine"):

- the wall time of `sar2opt train --experiment patchgan` (64 px, global batch 8, 2 epochs) as one
  process (`--strategy none`) and as two `--strategy multiworker` workers on loopback ports, each
  command from its start to its exit; the workers share the machine's cores, so this is no speed-up;
- the all-reduce each step makes: tensors of the shapes of G's and D's trainable weights (the
  gradients), summed between two workers under `strategy.run` in a `tf.function`, median of repeats.

The one-minute load average is printed before the first run and beside each number (which it then
includes): on a shared machine it says how quiet it was.

    python benchmarks/multiworker.py [--steps 8] [--repeats 10]
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["--experiment", "patchgan", "--image-size", "64", "--pairs", "80", "--batch-size", "8", "--epochs", "2"]


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


def tf_config(ports, index):
    """TF_CONFIG of worker `index` of a cluster of workers on these loopback ports."""
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def run_together(commands, timeout):
    """Run (command, environment) pairs at once; returns the seconds until the last one exited."""
    start = time.perf_counter()
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for command, env in commands
    ]
    try:
        outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    seconds = time.perf_counter() - start
    for process, output in zip(processes, outputs):
        if process.returncode:
            sys.exit(f"a benchmark process failed:\n{output[-3000:]}")
    return seconds, outputs


def last_epoch_step(output):
    """Seconds per step of the last epoch, from the progress line of `--verbose 2`."""
    value, unit = re.findall(r"- (\d+(?:\.\d+)?)(ms|s)/step", output)[-1]
    return float(value) / (1000 if unit == "ms" else 1)


def all_reduce_worker(index, ports, repeats):
    """One of the two all-reduce workers: prints the median seconds of an all-reduce of the gradients."""
    os.environ["TF_CONFIG"] = tf_config(ports, index)
    import tensorflow as tf

    from keras_sar2opt.experiments import get_experiment
    from keras_sar2opt.models import build_model

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    config = get_experiment("patchgan")
    networks = [build_model(name, image_size=64) for name in (config.generator, config.discriminator)]
    tensors = [tf.ones(variable.shape) for network in networks for variable in network.trainable_variables]

    @tf.function
    def reduce():
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("sum", tensors))

    reduce(), reduce()  # tracing and the workers' first meeting
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        reduce()
        seconds.append(time.perf_counter() - start)
    values = sum(int(tensor.shape.num_elements()) for tensor in tensors)
    print(json.dumps({"median": statistics.median(seconds), "fastest": min(seconds), "values": values}))


def environment(**more):
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **more)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="steps per epoch of the training runs")
    parser.add_argument("--repeats", type=int, default=10, help="timed all-reduces (median taken)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # an all-reduce worker's index
    parser.add_argument("--ports", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return all_reduce_worker(args.worker, args.ports, args.repeats)

    rows, walls = [], []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        train = [sys.executable, "-m", "keras_sar2opt.cli", "train", *TRAIN, "--steps-per-epoch", str(args.steps)]
        train += ["--verbose", "2"]
        one = [([*train, "--strategy", "none", "-o", f"{folder}/one"], environment())]
        ports = free_ports(2)
        two = [
            ([*train, "--strategy", "multiworker", "-o", f"{folder}/two"], environment(TF_CONFIG=tf_config(ports, i)))
            for i in range(2)
        ]
        for name, commands in (("1 process (--strategy none)", one), ("2 workers (--strategy multiworker)", two)):
            seconds, outputs = run_together(commands, 1800)
            walls.append(seconds)
            load = os.getloadavg()[0]
            rows.append((f"sar2opt train, {name}", f"{seconds:.1f} s", load))
            rows.append(("  its last epoch, per step", f"{last_epoch_step(outputs[0]):.2f} s", load))
    ports = free_ports(2)
    me = [sys.executable, __file__, "--repeats", str(args.repeats), "--ports", *map(str, ports), "--worker"]
    _, outputs = run_together([([*me, str(i)], environment()) for i in range(2)], 900)
    timing = json.loads(outputs[0].strip().splitlines()[-1])
    what = f"all-reduce of the gradients, {timing['values']:,} float32 ({timing['values'] * 4 / 1e6:.1f} MB)"
    median = f"{timing['median'] * 1e3:.0f} ms (fastest {timing['fastest'] * 1e3:.0f} ms)"
    rows.append((what, median, os.getloadavg()[0]))

    print(f"patchgan, 64 px, global batch 8, 2 epochs of {args.steps} steps; TensorFlow on {os.cpu_count()} cores")
    print(f"load average before the first run: {load_before:.1f}")
    print(f"| {'measurement':<62} | {'time':>26} | load average |")
    print(f"|{'-' * 64}|{'-' * 28}|--------------|")
    for name, value, load in rows:
        print(f"| {name:<62} | {value:>26} | {load:>12.1f} |")
    print(f"2 workers / 1 process, wall time: {walls[1] / walls[0]:.2f}x")


if __name__ == "__main__":
    main()
