"""`sar2opt translate`: SAR images, folders and GeoTIFF scenes to optical with a generator (report §3.4–§3.5)."""

import argparse

from keras_sar2opt.errors import Sar2OptError


class _AppendStep(argparse.Action):
    """Collect preprocessing options into `args.steps` in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None):
        steps = list(getattr(namespace, "steps", None) or [])
        name, parameter = self.const
        steps.append((name, {parameter: value}))
        namespace.steps = steps


def register(subparsers):
    parser = subparsers.add_parser(
        "translate",
        help="translate SAR images, folders or whole GeoTIFF scenes with a generator",
        description=(
            "Translate SAR images to optical. Preprocessing options apply in the order given "
            "(report §3.5: --median 7 --gamma 7). Images larger than the model are tiled with "
            "overlap and blended; GeoTIFF inputs give georeferenced 8-bit GeoTIFFs, others 8-bit PNGs."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    parser.add_argument("--model", required=True, help="generator: .keras, or a SAR2Optical .pth/.safetensors")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT",
        help="output folder, or an output file (.png/.tif) for a single input file",
    )
    filters = parser.add_argument_group("preprocessing (applied in command-line order)")
    for name, label in (("median", "median"), ("lee", "Lee"), ("enhanced-lee", "enhanced Lee"), ("frost", "Frost")):
        filters.add_argument(
            f"--{name}", type=int, metavar="WINDOW", action=_AppendStep, const=(name.replace("-", "_"), "window"),
            help=f"{label} filter with a WINDOW x WINDOW window (odd)",
        )
    filters.add_argument(
        "--gamma", type=float, metavar="GAMMA", action=_AppendStep, const=("gamma", "gamma"),
        help="gamma correction (report: 7)",
    )
    filters.add_argument(
        "--gamma-convention", choices=("power", "inverse"), default="power",
        help="power: out = in ** gamma (default); inverse: out = in ** (1 / gamma)",
    )
    scaling = parser.add_argument_group("SAR scaling to [0, 1]")
    scaling.add_argument(
        "--sar-input", choices=("auto", "image", "linear", "amplitude", "db"), default="auto",
        help="how SAR values are stored (default auto: integers are images, negative floats dB, other floats linear)",
    )
    scaling.add_argument("--db-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="dB range mapped to [0, 1]")
    scaling.add_argument("--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"), help="clip percentiles")
    parser.add_argument("--tile-overlap", type=int, help="overlap of neighbouring tiles in pixels (default tile/4)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per model call (default 4)")
    parser.add_argument("--grid", action="store_true", help="also write <name>_grid.png: input beside output")
    parser.add_argument(
        "--upsample-mode", default="nearest", choices=("nearest", "bilinear"),
        help="interpolation when converting an upsampling-decoder .pth on the fly (default nearest)",
    )
    parser.set_defaults(func=run, steps=[])


def run(args):
    from keras_sar2opt.inference import load_generator, plan_outputs, translate_paths

    if args.batch_size < 1:
        raise Sar2OptError(f"Expected --batch-size of at least 1, received {args.batch_size}")
    plan_outputs(args.inputs, args.output)  # fail on bad paths before loading the model
    steps = [
        (name, {**options, "convention": args.gamma_convention} if name == "gamma" else options)
        for name, options in args.steps
    ]
    sar_options = {"input": args.sar_input}
    if args.db_range:
        sar_options["db_range"] = args.db_range
    if args.percentiles:
        sar_options["percentiles"] = args.percentiles
    model = load_generator(args.model, upsample_mode=args.upsample_mode)
    written = translate_paths(
        model, args.inputs, args.output, steps=steps, sar_options=sar_options,
        overlap=args.tile_overlap, batch_size=args.batch_size, grid=args.grid,
    )
    print(f"translated {len(written)} image(s) into {args.output}")
    return 0
