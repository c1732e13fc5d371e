"""`sar2opt summary`: print the networks and verify them against the report's tables (§1–§3)."""

import sys

from keras_sar2opt.errors import UsageError


def register(subparsers):
    parser = subparsers.add_parser(
        "summary",
        help="print networks and verify them layer by layer against the report's tables",
        description="Print model.summary() and a row-by-row verification against the report's "
        "Tables 1, 3, 5 and the Pix2Pix totals; exit code 1 on any mismatch.",
    )
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="network name, e.g. unet_generator or pix2pix_generator (an unknown name lists them)",
    )
    parser.add_argument("--all", action="store_true", help="check every network")
    parser.set_defaults(func=run)


def run(args):
    if args.all and args.models:
        raise UsageError(f"Expected MODEL names or --all, received both ({' '.join(args.models)} and --all)")
    if not (args.all or args.models):
        raise UsageError("Expected MODEL names or --all, received neither")
    from keras_sar2opt.models import MODELS, build_model, check_model_name
    from keras_sar2opt.models.report_tables import TABLES
    from keras_sar2opt.models.verify import format_checks, verify

    names = list(MODELS) if args.all else args.models
    for name in names:
        check_model_name(name)
    mismatches = []
    for name in names:
        model = build_model(name)
        table = TABLES[name]
        model.summary()
        checks = verify(model, table)
        print(format_checks(name, table.source, checks), end="\n\n")
        mismatches += [f"{name} {table.source} {check.describe()}" for check in checks if not check.ok]
    if mismatches:
        print(f"sar2opt summary: MISMATCH in {'; '.join(mismatches)}", file=sys.stderr)
        return 1
    print(f"All rows match the report for {', '.join(names)}.")
    return 0
