"""`sar2opt report`: run and evaluation folders turned into a Markdown report beside the report's tables and figures."""

from keras_sar2opt.paper import EVALUATION_FIGURES


def register(subparsers):
    parser = subparsers.add_parser(
        "report",
        help="write a Markdown report (Tables 2, 4, 8, Figures 1-9, image metrics) from run and evaluation folders",
        description=(
            "Read run folders (config.json, history.csv, samples/) and evaluation folders (summary.json) and "
            "write OUT/report.md with CSV tables and PNG figures laid out like the report, the report's values "
            "beside ours. Sections whose inputs are missing say what is missing."
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="FOLDER", help="run folders and evaluation folders")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="report folder, e.g. reports/NAME")
    parser.add_argument(
        "--figure",
        action="append",
        default=[],
        metavar="ROLE=EVAL_DIR",
        help=f"use an evaluation folder's samples for a figure ({', '.join(EVALUATION_FIGURES)}); repeatable",
    )
    parser.add_argument("--title", help="the report's title")
    parser.set_defaults(func=run)


def run(args):
    from keras_sar2opt.reports.report import build_report

    path = build_report(args.inputs, args.output, figures=args.figure, title=args.title)
    print(f"wrote {path}")
    return 0
