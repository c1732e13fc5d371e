"""The report's findings (§3.3–4.1.4) tested on the image metrics of the evaluations for Figures 3, 4, 5, 7 and 9."""

import pandas as pd

from keras_sar2opt import files
from keras_sar2opt.evaluation import METRICS
from keras_sar2opt.reports.tables import METRIC_DECIMALS, REPORT_METRICS, format_value, markdown_table, missing

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "sam": False, "l1": False}
# The report's conclusions as comparisons of evaluation roles: (claim tested, what the report says
# and where, better, worse). The claim is that the first figure's model scores better than the second's.
FINDINGS = (
    (
        "Pix2Pix does better on its training domain than on raw target SAR",
        "§3.3–3.4: high-quality results on Sentinel-1/2, severe degradation on QXSLAB-SAROPT",
        "fig3",
        "fig4",
    ),
    ("Median 7 + gamma 7 preprocessing improves on raw target SAR", '§3.5: "marginal improvements"', "fig5", "fig4"),
    (
        "Full fine-tuning improves on raw target SAR",
        '§4.1.3: "captures general color tones and some structural features"',
        "fig7",
        "fig4",
    ),
    (
        "Full fine-tuning improves more than preprocessing",
        '§3.5: preprocessing alone "is insufficient", "necessitating fine-tuning or retraining"',
        "fig7",
        "fig5",
    ),
    (
        "Full fine-tuning scores better than LoRA fine-tuning",
        '§4.1.4: lower training losses than LoRA, but "did not yield significantly better visual quality"',
        "fig7",
        "fig9",
    ),
)


def _best(evaluations, role, metric):
    """The best mean of `metric` over the evaluations standing for `role` (None when there are none)."""
    values = [e.summary["metrics"][metric]["mean"] for e in evaluations if role in e.roles]
    if not values:
        return None
    return max(values) if HIGHER_IS_BETTER[metric] else min(values)


def findings_section(evaluations, out):
    lines = ["## Findings — the report's conclusions tested on our metrics", ""]
    records = []
    for finding, basis, better, worse in FINDINGS:
        for metric in REPORT_METRICS:
            ours_better, ours_worse = _best(evaluations, better, metric), _best(evaluations, worse, metric)
            if ours_better is None or ours_worse is None:
                continue
            gain = ours_better - ours_worse if HIGHER_IS_BETTER[metric] else ours_worse - ours_better
            decimals = METRIC_DECIMALS[metric]  # the values as shown; the gain decides on the exact ones
            records.append(
                {
                    "finding": finding,
                    "report": basis,
                    "better": better,
                    "worse": worse,
                    "metric": metric,
                    "better_value": round(ours_better, decimals),
                    "worse_value": round(ours_worse, decimals),
                    "gain": gain,
                    "holds": gain > 0,
                }
            )
    if not records:
        return lines + missing("evaluation folders for the figures compared here (fig3, fig4, fig5, fig7, fig9).")
    frame = pd.DataFrame(records)
    lines += [
        "Each finding claims that the model of the first figure scores better than that of the second; *Report* "
        "gives what the report says and where. The evaluations standing for each figure are compared on the "
        "metrics of the table below (where a figure has several, its best value per metric, which may come from "
        "different evaluations). *Gain* is the improvement of the first over the "
        "second (higher PSNR and SSIM, lower SAM and L1 are better); the finding holds on a metric when the gain "
        "is positive. Figure 3 is measured on the source domain, the others on the target domain's test split.",
        "",
    ]
    rows = []
    for (finding, basis, better, worse), group in frame.groupby(["finding", "report", "better", "worse"], sort=False):
        cells = {}
        for r in group.to_dict("records"):
            decimals = METRIC_DECIMALS[r["metric"]]
            cells[r["metric"]] = (
                f"{format_value(r['better_value'], decimals)} vs {format_value(r['worse_value'], decimals)} "
                f"({'holds' if r['holds'] else 'fails'})"
            )
        rows.append(
            [finding, basis, f"Fig. {better[3:]} vs Fig. {worse[3:]}"]
            + [cells.get(m, "—") for m in REPORT_METRICS]
            + [f"{int(group['holds'].sum())} of {len(group)}"]
        )
    headers = ["Finding", "Report", "Compared"] + [METRICS[m][0] for m in REPORT_METRICS] + ["Holds on"]
    files.write_csv(out / "findings.csv", frame)
    return lines + markdown_table(headers, rows) + ["", "CSV: [findings.csv](findings.csv)", ""]
