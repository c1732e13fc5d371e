"""`sar2opt make-synthetic`: write the built-in synthetic SAR/optical benchmark in a real dataset layout."""

from keras_sar2opt.errors import UsageError


def register(subparsers):
    parser = subparsers.add_parser(
        "make-synthetic",
        help="write synthetic SAR/optical pairs in the QXSLAB-SAROPT, SEN1-2 or SAR2Optical layout",
        description="Write the built-in synthetic benchmark: simulated land-cover scenes with their "
        "optical image and speckled SAR image, in a real dataset's folder layout and file naming. "
        "It is simulated data for demos and tests, not real imagery.",
    )
    parser.add_argument("out", nargs="?", metavar="OUT", help="new or empty output folder")
    parser.add_argument("-o", "--output", metavar="OUT", help="the output folder, as OUT")
    parser.add_argument("--preset", required=True, help="sensor preset: qxslab (single look) or sentinel (4 looks)")
    parser.add_argument("--pairs", required=True, type=int, metavar="N", help="number of pairs")
    parser.add_argument(
        "--layout",
        help="qxslab, sen12 or sar2optical (with split.json); default: the layout of the dataset "
        "the preset imitates (qxslab: qxslab, sentinel: sen12)",
    )
    parser.add_argument(
        "--image-size", "--size", dest="size", type=int, default=256, metavar="PIXELS", help="image size (default 256)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="the same seed writes the same files")
    parser.set_defaults(func=run)


def run(args):
    if (args.out is None) == (args.output is None):
        given = "both" if args.out else "neither"
        raise UsageError(f"Expected the output folder as OUT or -o OUT, received {given}")
    from keras_sar2opt.data.synthetic import get_preset, write_synthetic

    preset = get_preset(args.preset)
    layout = args.layout or preset.layout
    out = write_synthetic(args.out or args.output, preset.name, args.pairs, layout, size=args.size, seed=args.seed)
    print(
        f"sar2opt make-synthetic: wrote {args.pairs} simulated {preset.name} pairs, {args.size}x{args.size}, "
        f"in the {layout} layout to {out} ({preset.description}; synthetic, not real imagery)"
    )
    return 0
