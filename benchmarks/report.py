"""The benchmark's Markdown report: the throughput table, the speed targets, the ceilings and the GPU results."""

import dataclasses
import json
import math
import statistics
from pathlib import Path

from benchmarks.paths import DESCRIPTIONS
from benchmarks.results import (
    CONSTANT,
    DISK,
    MATMUL_DTYPES,
    PIX2PIX_INFERENCE,
    PIX2PIX_TRAIN,
    TORCH_PRECISIONS,
    fastest,
)
from benchmarks.timing import QUIET_CORES
from keras_sar2opt.commands.benchmark import PRECISIONS


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    threshold: float
    at_most: bool = False  # the measured value must be <= threshold (else >=)
    tolerance: float = None  # the measured value must be within threshold ± tolerance

    def met(self, value):
        if math.isnan(value):
            return None
        if self.tolerance is not None:
            return abs(value - self.threshold) <= self.tolerance
        return value <= self.threshold if self.at_most else value >= self.threshold

    @property
    def required(self):
        if self.tolerance is not None:
            return f"{self.threshold:g} ± {self.tolerance:g}"
        return f"{'≤' if self.at_most else '≥'} {self.threshold:g}"


NOISE = 0.05  # "within noise" for two paths timed side by side


def _path_timing(results, workload, path):
    return next((t for t in results.paths if (t.workload, t.path) == (workload, path)), None)


def path_target_values(results):
    """The targets on what users run (benchmarks.paths), with their values (NaN where not measured)."""

    def ratio(workload, path="library"):
        timing = _path_timing(results, workload, path)
        return timing.ratio if timing is not None else math.nan

    def per_round(first, second):
        """The median over rounds of first's rate over second's, two (workload, path) timed in the same rounds."""
        a, b = _path_timing(results, *first), _path_timing(results, *second)
        return statistics.median(x / y for x, y in zip(a.rates, b.rates)) if a and b else math.nan

    fit = ("pix2pix-fit", "library")
    return [
        (Target("Pix2Pix fit, library path / CLI path", 1.0, tolerance=NOISE), per_round(fit, ("pix2pix-fit", "cli"))),
        (
            Target("Pix2Pix fit() / train_on_batch, same batches, library path", 1.0 - NOISE),
            per_round(fit, ("pix2pix-train-on-batch", "library")),
        ),
        (Target("Pix2Pix fit() from training_batches b4, library path / PyTorch", 1.2), ratio("pix2pix-fit")),
        (Target("Pix2Pix inference b4 predict_on_batch, library path / PyTorch", 1.6), ratio("pix2pix-inference")),
        (Target("report GAN fit() b32 (Tables 5 + 3), library path / PyTorch", 1.0), ratio("report-gan-fit")),
    ]


def target_values(results):
    """The project's speed targets with the values measured in `results` (NaN where not measured)."""
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
    bf16 autocast rate in PyTorch's default NCHW order (the reference) and its best PyTorch rate.
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


def _kernels(runtime):
    if "onednn" not in runtime:
        return f"{runtime['framework']}, {runtime['threads']} threads"
    value = runtime["TF_ENABLE_ONEDNN_OPTS"]
    reason = f"TF_ENABLE_ONEDNN_OPTS={value}" if value is not None else "not set: TensorFlow's default"
    warned = "; warned" if runtime["slow-kernels warning"] else ""
    return f"oneDNN {'on' if runtime['onednn'] else 'off'} ({reason}{warned}), {runtime['threads']}"


def paths_section(results):
    """Markdown lines for the fresh-process measurements of what users run, or none."""
    if not results.paths:
        return []
    rows = [
        (
            DESCRIPTIONS[t.workload],
            t.batch,
            t.path,
            _kernels(t.runtime),
            ", ".join(f"{rate:.3g}" for rate in t.rates),
            _number(t.rate, 3),
            _number(t.ratio),
            _number(t.load),
        )
        for t in results.paths
    ]
    header = ("workload", "batch", "path", "kernels enabled at run time", "img/s per round", "median img/s")
    return [
        "## What users run: fresh processes",
        "",
        _markdown_table((*header, "/ PyTorch (median of rounds)", "load average"), rows),
        "",
        "Each row is its own Python process started without TF_ENABLE_ONEDNN_OPTS, as by a user who set "
        "nothing (`benchmarks/paths.py`): `library` imports `keras_sar2opt.models` first, as a script or "
        "notebook does; `cli` imports `keras_sar2opt.cli`, as `sar2opt` does; `tensorflow-first` imports "
        "TensorFlow before the package; `benchmark-process` sets the process up as the in-process rows below "
        "(`timing.configure`: its threads, PyTorch loaded). "
        "The kernels are what TensorFlow reports it enabled in that process. "
        "Train steps: fit() as `sar2opt train` runs it, fed by `data.pipeline.training_batches` from synthetic "
        "pairs on disk, with the run's per-step callback (the NaN guard); `train_on_batch`: a library process "
        "timed in the same rounds, calling `model.train_on_batch` on batches of the same stream; "
        "PyTorch: the same networks and losses on constant tensors (`benchmarks.torch_pix2pix`, "
        "`benchmarks.torch_report_gan`). Processes run whole blocks in turn, never single steps "
        "interleaved; a ratio is the median over rounds of a block's rate over the PyTorch block of the same "
        "round; the load average is the machine's 1-minute one after the blocks (median).",
        "",
    ]


def throughput_section(results):
    """Markdown lines for the in-process measurements: the throughput table and how it was measured."""
    settings = results.settings
    return [
        "## Throughput",
        "",
        _markdown_table(TABLE_COLUMNS, table_rows(results)),
        "",
        f"Medians over up to {settings.repeats} timed blocks of {settings.steps} calls after {settings.warmup} "
        f"warm-up calls (fewer single calls where one call is slow: at most {settings.budget:.0f} s timed per "
        "measurement). Train steps: `AdversarialModel.fit` compiled as the `pix2pix` experiment (Adam 2e-4, "
        "β (0.5, 0.999), BCE on logits + 100·L1, D then G) and the `patchgan` experiment (Tables 5 and 3); "
        "fed by `data.pipeline.training_batches` (a seeded shuffle, flips/rotations) from "
        f"{settings.pairs} synthetic pairs on disk, or by one of its batches held constant in memory. "
        "PyTorch: the same networks "
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
    ]


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
        *paths_section(results),
        *(throughput_section(results) if results.rows else []),
        "## Targets",
        "",
        "The project's speed targets for this 2-core CPU, as ratios measured in this run.",
        "",
    ]
    target_rows = []
    for target, value in path_target_values(results) + target_values(results):
        met = target.met(value)
        target_rows.append(
            [target.name, target.required, _number(value, 3), "—" if met is None else ("met" if met else "missed")]
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
            f"The throughput table takes the faster call at each batch; faster overall: `{fastest(results)}`, "
            "which times the mixed_bfloat16 rows.",
            "",
        ]
    if results.skipped:
        lines += ["## Not measured", ""] + [f"- {reason}" for reason in results.skipped] + [""]
    if folder is not None:
        lines += gpu_section(folder)
    return "\n".join(lines)
