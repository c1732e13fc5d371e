"""`sar2opt reproduce`: the report's whole study (§1–§4) trained, evaluated and written as one report."""

from keras_sar2opt.reproduce import SCALES
from keras_sar2opt.runs import PRECISIONS


def register(subparsers):
    parser = subparsers.add_parser(
        "reproduce",
        help="run the report's whole study (three GANs, Pix2Pix, preprocessing, full and LoRA fine-tuning) "
        "and write its report",
        description=(
            "Train the §1 GANs, Pix2Pix on the source domain, evaluate it there (Figure 3), on raw (Figure 4) "
            "and median 7 + gamma 7 preprocessed (Figure 5, both gamma conventions) target SAR, fine-tune it "
            "fully (Figure 7) and with LoRA with and without trainable dec8 + head (Figure 9), then write "
            "OUT/report.md. Without data the domains are the synthetic sentinel and qxslab presets. "
            "--quick runs in minutes on a CPU; --full uses the experiments' own settings, the report's (a "
            "GPU's work). Synthetic pair counts apply only without --data-source/--data-target. Rerunning "
            "continues from the finished stages."
        ),
    )
    scale = parser.add_mutually_exclusive_group()
    for name in SCALES:
        scale.add_argument(
            f"--{name}",
            dest="scale",
            action="store_const",
            const=name,
            help=SCALES[name].summary() + (" (default)" if name == "quick" else ""),
        )
    parser.set_defaults(scale="quick")
    parser.add_argument("-o", "--output", metavar="OUT", help="report folder (default reports/reproduce-SCALE)")
    parser.add_argument(
        "--work", metavar="DIR", help="folder of the run and evaluation folders (default runs/reproduce-SCALE)"
    )
    parser.add_argument(
        "--data-source",
        metavar="PATH",
        help="source-domain dataset (Pix2Pix pre-training; the report's Sentinel-1/2), read with "
        "the default scaling: 8-bit images as the report's datasets are (for float SAR or "
        "16-bit optical, run the experiments with train's scaling options instead)",
    )
    parser.add_argument(
        "--data-target",
        metavar="PATH",
        help="target-domain dataset (GANs, transfer and fine-tuning; the report's QXSLAB-SAROPT), "
        "read as --data-source",
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="float32", help="(default float32)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="stages run at once, each in a process of its own with its output in WORK/logs (default 1: one "
        "after another); 2 keeps a CPU busy where one stage leaves it idle, and needs twice the memory",
    )
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None, help="fit() verbosity (default auto)")
    parser.set_defaults(func=run)


def run(args):
    from keras_sar2opt.reproduce import reproduce

    path = reproduce(
        args.output,
        scale=args.scale,
        work=args.work,
        data_source=args.data_source,
        data_target=args.data_target,
        precision=args.precision,
        jobs=args.jobs,
        verbose="auto" if args.verbose is None else args.verbose,
    )
    print(f"wrote {path}")
    return 0
