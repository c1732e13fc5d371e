"""`sar2opt benchmark`: Keras against PyTorch on the report's networks (§2, §3), written to a Markdown report.

The machinery is the checkout's `benchmarks` package (beside `keras_sar2opt`, not installed), imported
when the command runs. The option choices below are defined here, since the parser is built at every
CLI start, also where `benchmarks` is absent; `benchmarks` imports them from this module (the
precisions from keras_sar2opt.runs).
"""

import shlex
import sys
from pathlib import Path

from keras_sar2opt import files
from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.runs import PRECISIONS

BACKENDS = ("tensorflow", "jax")
# --only names: "paths" is the fresh-process measurement of what users run (benchmarks.paths)
WORKLOADS = ("paths", "pix2pix-train", "pix2pix-train-xla", "pix2pix-inference", "report-gan-train")
# How the fresh processes of "paths" start (--paths): a script or notebook importing the package, the
# `sar2opt` command, TensorFlow imported before the package, this benchmark's own process setup.
PATHS = ("library", "cli", "tensorflow-first", "benchmark-process")


def register(subparsers):
    parser = subparsers.add_parser(
        "benchmark",
        help="time training and inference against the PyTorch SAR2Optical networks",
        description="Time, in one run: what users run, each in a fresh process started as a script "
        "(--paths library), the sar2opt command (cli) or otherwise, with the TensorFlow kernels enabled in "
        "it: Pix2Pix fit() from the training stream (and train_on_batch on it), generator inference through "
        "predict_on_batch and the report's GAN against PyTorch, in whole alternating blocks; then, in this process, "
        "the Pix2Pix train step through AdversarialModel.fit fed from disk "
        "by the training stream and by a constant batch, generator inference at batch 1, 4 and 32, the report's "
        "GAN (Tables 5 + 3) at batch 32, in float32 and mixed_bfloat16; the same Pix2Pix step and "
        "inference in PyTorch (float32 and bf16 autocast); and a matrix-multiply ceiling. Prints a table "
        "(img/s, Keras/PyTorch, FLOPs, achieved GFLOP/s and its fraction of the ceiling) and writes it "
        "with the command to --output. Takes 10-30 minutes (--quick: a few).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats, no XLA variant, inference at batch 1 and 4"
    )
    parser.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0], help="Keras backend")
    parser.add_argument(
        "-o", "--output", "--out", dest="out", default="reports/benchmarks.md", metavar="PATH", help="Markdown report"
    )
    parser.add_argument("--repeats", type=int, metavar="N", help="timed blocks per measurement (median)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=WORKLOADS,
        metavar="WORKLOAD",
        help=f"measure only these: {', '.join(WORKLOADS)} (the matmul ceiling always)",
    )
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=PATHS,
        metavar="PATH",
        help=f"how the fresh processes of `paths` start: {', '.join(PATHS)} (default: {' '.join(PATHS[:2])})",
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        metavar="PRECISION",
        help="float32 and/or mixed_bfloat16 (default both)",
    )
    parser.add_argument("--budget", type=float, metavar="SECONDS", help="timed seconds per measurement at most")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        metavar="SECONDS",
        help="seconds to wait before each measurement for other processes to go quiet",
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="threads for TensorFlow and PyTorch (default: all cores)"
    )
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip the PyTorch side")
    parser.set_defaults(func=run)


def command_line(args):
    """The `sar2opt benchmark` command that reproduces a run with these options."""
    parts = ["sar2opt", "benchmark"]
    if args.quick:
        parts.append("--quick")
    parts += ["--backend", args.backend]
    options = (
        ("--repeats", args.repeats),
        ("--budget", args.budget),
        ("--quiet-wait", args.quiet_wait),
        ("--threads", args.threads),
    )
    for option, value in options:
        if value is not None:
            parts += [option, f"{value:g}" if isinstance(value, float) else str(value)]
    for option, values in (("--only", args.only), ("--paths", args.paths), ("--precision", args.precision)):
        if values:
            parts += [option, *values]
    if not args.torch:
        parts.append("--no-torch")
    parts += ["--output", str(args.out)]
    return " ".join(shlex.quote(part) for part in parts)


def settings_from_args(args, settings_class):
    overrides = {}
    if args.repeats is not None:
        check_positive_int(args.repeats, "--repeats")
        overrides["repeats"] = args.repeats
    if args.budget is not None:
        if not args.budget > 0:
            raise Sar2OptError(f"Expected --budget to be a positive number of seconds, received {args.budget:g}")
        overrides["budget"] = args.budget
    if args.quiet_wait is not None:
        if args.quiet_wait < 0:
            raise Sar2OptError(
                f"Expected --quiet-wait to be a non-negative number of seconds, received {args.quiet_wait:g}"
            )
        overrides["quiet_wait"] = args.quiet_wait
    if args.only:
        overrides["workloads"] = tuple(dict.fromkeys(args.only))
    if args.paths:
        overrides["paths"] = tuple(dict.fromkeys(args.paths))
    if args.precision:
        overrides["precisions"] = tuple(dict.fromkeys(args.precision))
    overrides["torch"] = args.torch
    return settings_class.quick(**overrides) if args.quick else settings_class(**overrides)


def import_benchmarks():
    """Import the `benchmarks` package of the source checkout holding `keras_sar2opt`, its root put on sys.path."""
    import keras_sar2opt

    package = Path(keras_sar2opt.__file__).resolve().parent
    folder = package.parent / "benchmarks"
    if not (folder / "__init__.py").is_file():
        raise Sar2OptError(
            "Expected a source checkout of keras_sar2opt with its benchmarks/ folder for `sar2opt benchmark` "
            f"(clone the repository; pip install -e .), received an installed package at {package}"
        )
    if str(folder.parent) not in sys.path:
        sys.path.insert(0, str(folder.parent))
    import benchmarks

    found = Path(benchmarks.__file__).resolve().parent
    if found != folder:
        raise Sar2OptError(f"Expected the benchmarks package at {folder}, received another one at {found}")


def run(args):
    out = files.check_writable(args.out, "--output", file=True)  # before the backend loads
    import_benchmarks()
    from benchmarks import cpu, report, timing

    settings = settings_from_args(args, timing.Settings)
    runtime = timing.configure(args.backend, args.threads)
    if settings.torch and "torch" not in runtime:
        raise Sar2OptError(
            "Expected PyTorch for the comparison (the benchmark extra), received none: install torch or pass --no-torch"
        )
    command = command_line(args)

    def write(results):
        files.write_text(out, report.format_report(results, command, folder=out.parent) + "\n")

    results = cpu.run_benchmark(settings, runtime, after_each=write)
    print(report.format_report(results, command))
    print(f"\nsar2opt benchmark: wrote {out}")
    return 0
