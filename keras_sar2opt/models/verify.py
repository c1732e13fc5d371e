"""Row-by-row verification of a built network against the report (Tables 1, 3, 5, §3.1)."""

import dataclasses
import math

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.models.report_tables import TABLES


@dataclasses.dataclass(frozen=True)
class Check:
    """A verified row: our layers, types, shape, params beside the report's (None: not given)."""

    row: str
    label: str
    layers: tuple
    layer_type: str
    shape: tuple | None
    report_shape: tuple | None
    params: int
    report_params: int | None

    @property
    def ok(self):
        return (self.report_shape is None or self.shape == self.report_shape) and (
            self.report_params is None or self.params == self.report_params
        )

    @property
    def status(self):
        return "ok" if self.ok else "MISMATCH"

    def describe(self):
        """The row as a user finds it: 'row 5 (Conv2D: conv3)', or 'Total params' for totals."""
        if not self.layers:
            return self.label
        return f"row {self.row} ({self.label}: {', '.join(self.layers)})"


def _check_row(model, number, row):
    present = {layer.name for layer in model.layers}
    missing = [name for name in row.layers if name not in present]
    if missing:
        return Check(
            str(number), row.layer, row.layers, f"missing {', '.join(missing)}", None, row.shape, 0, row.params
        )
    layers = [model.get_layer(name) for name in row.layers]
    return Check(
        row=str(number),
        label=row.layer,
        layers=row.layers,
        layer_type=" + ".join(type(layer).__name__ for layer in layers),
        shape=tuple(layers[-1].output.shape[1:]),
        report_shape=row.shape,
        params=sum(layer.count_params() for layer in layers),
        report_params=row.params,
    )


def verify(model, table=None):
    """Checks of `model` against `table` (default: the table of `model.name`): rows, then totals."""
    if table is None:
        if model.name not in TABLES:
            raise Sar2OptError(f"Expected a model named one of {', '.join(TABLES)}, received {model.name!r}")
        table = TABLES[model.name]
    checks = [_check_row(model, number, row) for number, row in enumerate(table.rows, start=1)]
    total = model.count_params()
    checks.append(Check("total", "Total params", (), "", None, None, total, table.total))
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
    checks.append(Check("trainable", "Trainable params", (), "", None, None, trainable, table.trainable))
    return checks


def _shape(shape):
    return "-" if shape is None else "(" + ", ".join(str(size) for size in shape) + ")"


def _count(count):
    return "-" if count is None else f"{count:,}"


def format_checks(model_name, source, checks):
    """The checks as a fixed-width text table headed by the model name and the report source."""
    header = (
        "row",
        "report layer",
        "our layer type",
        "our shape",
        "report shape",
        "our params",
        "report params",
        "status",
    )
    lines = [
        (
            c.row,
            c.label,
            c.layer_type,
            _shape(c.shape),
            _shape(c.report_shape),
            _count(c.params),
            _count(c.report_params),
            c.status,
        )
        for c in checks
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    numeric = {5, 6}
    text = [f"{model_name} vs the report's {source}"]
    for line in [header, *lines]:
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths))
        ]
        text.append("  ".join(cells).rstrip())
    return "\n".join(text)
