"""What a benchmark run measured: its workloads, feeds and precisions, and the rows of the report."""

import dataclasses
import math

from benchmarks.timing import Settings, Timing

# The PyTorch counterpart of each Keras precision: float32, and bfloat16 through torch.autocast.
TORCH_PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bf16 autocast"}
MATMUL_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16"}

PIX2PIX_TRAIN = "pix2pix train step"
PIX2PIX_TRAIN_XLA = "pix2pix train step, XLA"
PIX2PIX_INFERENCE = "pix2pix inference"
REPORT_GAN_TRAIN = "report GAN train step"
DISK, CONSTANT, MEMORY = "disk (training_batches)", "constant batch", "in memory"


@dataclasses.dataclass
class Row:
    """One line of the throughput table: a Keras timing and the PyTorch one of the same workload."""

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
    """Everything a run measured, filled in measurement by measurement."""

    settings: Settings
    runtime: dict
    rows: list = dataclasses.field(default_factory=list)
    ceilings: dict = dataclasses.field(default_factory=dict)  # (framework, dtype) -> Ceiling
    methods: list = dataclasses.field(default_factory=list)  # (batch, precision, method, Timing)
    torch_timings: dict = dataclasses.field(default_factory=dict)  # (workload, batch, torch precision) -> Timing
    skipped: list = dataclasses.field(default_factory=list)
    paths: list = dataclasses.field(default_factory=list)  # benchmarks.paths.PathTiming, fresh processes
    load_start: float = None
    load_end: float = None
    done: int = 0  # measurements finished, out of `total`
    total: int = 0

    def row(self, workload, batch, precision, feed=None):
        for row in self.rows:
            if (row.workload, row.batch, row.precision) == (workload, batch, precision) and feed in (None, row.feed):
                return row
        return None


def fastest(results):
    """The inference method with the higher total throughput over the compared batches."""
    totals = {}
    for _, _, method, timing in results.methods:
        totals[method] = totals.get(method, 0.0) + timing.rate
    return max(totals, key=totals.get)
