"""The reproduction report: run and evaluation folders laid out like the report (Tables 2, 4, 8, Figures 1–9).

Every table puts the report's value (keras_sar2opt.paper) beside ours and names the
dataset ours was measured on. Each table is also written as a CSV holding exactly the numbers
shown; figures are under figures/ (curves as PNG, sample grids as JPEG). A section whose inputs
were not given says what is missing.
"""

from pathlib import Path

from keras_sar2opt import files
from keras_sar2opt.reports.figures import (
    FIGURES_DIR,
    curves_section,
    evaluation_figure_section,
    figure6_section,
    figure8_section,
    figures12_section,
)
from keras_sar2opt.reports.findings import findings_section
from keras_sar2opt.reports.inputs import collect_inputs, parse_figure
from keras_sar2opt.reports.literature import literature_section
from keras_sar2opt.reports.tables import (
    inputs_section,
    metrics_section,
    table2_section,
    table4_section,
    table8_section,
)

REPORT_NAME = "report.md"


def write_report(runs, evaluations, out, title="SAR-to-optical translation: reproduction report"):
    """Write report.md with its CSVs and figures into `out`; returns the path of report.md."""
    out = Path(out)
    files.check_writable(out / FIGURES_DIR, create=True)
    synthetic = any(r.dataset["synthetic"] for r in runs) or any(e.summary["dataset"]["synthetic"] for e in evaluations)
    lines = [
        f"# {title}",
        "",
        'Columns marked *Report* copy the values of the report "GAN-Based SAR-to-Optical Image Translation" '
        "(kept in `keras_sar2opt/paper.py`); columns marked *Ours* come from the run and evaluation "
        "folders listed under Inputs, each with the dataset it was measured on.",
    ]
    if synthetic:
        lines.append(
            "Numbers measured on the built-in synthetic benchmark come from simulated scenes, not real "
            "imagery: they test the pipeline and the report's qualitative findings, not its exact values. "
            "Its presets are calibrated against real pairs (`sentinel`: SEN1-2 in the SAR2Optical Kaggle "
            "radiometry; `qxslab`: QXSLAB-SAROPT): SAR mean, spread and ENL of homogeneous areas, optical "
            "colour balance and spread, and texture scale (docs/synthetic.md)."
        )
    lines.append("")
    lines += inputs_section(runs, evaluations)
    lines += table2_section(runs, out)
    lines += table4_section(runs, out)
    lines += figures12_section(runs, out)
    for role in ("fig3", "fig4", "fig5"):
        lines += evaluation_figure_section(role, evaluations, out)
    lines += figure6_section(runs, out)
    lines += evaluation_figure_section("fig7", evaluations, out)
    lines += table8_section(runs, out)
    lines += figure8_section(runs, out)
    lines += evaluation_figure_section("fig9", evaluations, out)
    lines += metrics_section(evaluations, out)
    lines += literature_section(evaluations, out)
    lines += findings_section(evaluations, out)
    lines += curves_section(runs, out)
    return files.write_text(out / REPORT_NAME, "\n".join(lines).rstrip() + "\n")


def build_report(paths, out, figures=(), title=None):
    """collect_inputs(paths, figures) then write_report; `figures` holds (role, folder) pairs or
    "ROLE=DIR" strings. Returns the path of report.md."""
    files.check_writable(out, "-o")
    figures = [parse_figure(f if isinstance(f, str) else f"{f[0]}={f[1]}") for f in figures]
    runs, evaluations = collect_inputs(paths, figures)
    kwargs = {"title": title} if title else {}
    return write_report(runs, evaluations, out, **kwargs)
