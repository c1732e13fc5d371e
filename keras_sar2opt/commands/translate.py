"""`sar2opt translate`: SAR images, folders and GeoTIFF scenes to optical with a generator (report §3.4–§3.5)."""

import logging

from keras_sar2opt.commands.options import (
    add_preprocessing_options,
    add_sar_scaling_options,
    preprocessing_steps,
    sar_options,
)
from keras_sar2opt.errors import Sar2OptError

logger = logging.getLogger(__name__)


def register(subparsers):
    parser = subparsers.add_parser(
        "translate",
        help="translate SAR images, folders or whole GeoTIFF scenes with a generator",
        description=(
            "Translate SAR images to optical. Preprocessing options apply in the order given "
            "(report §3.5: --median 7 --gamma 7). Images larger than the model are tiled with "
            "overlap and blended; GeoTIFF inputs give georeferenced 8-bit GeoTIFFs, others 8-bit PNGs. A model "
            "of a training run (its folder, generator.keras or a checkpoint) reads SAR as the run did: its SAR "
            "band and scaling and its --downsample, unless given here."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    parser.add_argument("--model", required=True, help="generator: .keras, or a SAR2Optical .pth/.safetensors")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT",
        help="output folder, or an output file (.png/.tif) for a single input file",
    )
    add_preprocessing_options(parser)
    add_sar_scaling_options(parser)
    parser.add_argument(
        "--downsample", type=int, metavar="K",
        help="average K x K pixels first, for a model trained on tiles resized by 1/K (e.g. 2 for 256-px tiles "
        "at 128 px): the ground resolution it learned; outputs are K times smaller (default: the run's "
        "resize, else 1)",
    )
    parser.add_argument("--tile-overlap", type=int, help="overlap of neighbouring tiles in pixels (default tile/4)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per model call (default 4)")
    parser.add_argument("--grid", action="store_true", help="also write <name>_grid.png: input beside output")
    parser.add_argument(
        "--upsample-mode", default="nearest", choices=("nearest", "bilinear"),
        help="interpolation when converting an upsampling-decoder .pth on the fly (default nearest)",
    )
    parser.set_defaults(func=run)


def run(args):
    from keras_sar2opt.data.io import describe_options, merge_sar_options
    from keras_sar2opt.data.loading import check_reading_options
    from keras_sar2opt.inference import (
        load_generator,
        plan_outputs,
        reading_of_run,
        run_downsample,
        tile_size,
        translate_paths,
    )

    for option, value in (("--batch-size", args.batch_size), ("--downsample", args.downsample)):
        if value is not None and value < 1:
            raise Sar2OptError(f"Expected {option} of at least 1, received {value}")
    steps, scaling = preprocessing_steps(args), sar_options(args)
    reading = reading_of_run(args.model)
    as_trained = []  # settings taken from the model's run
    if reading is not None:
        given, scaling = scaling, merge_sar_options(reading.sar_options, scaling)
        if given is None and scaling is not None:
            as_trained.append(f"SAR {describe_options(scaling, 'auto')}")
        elif scaling != reading.sar_options:
            logger.warning(
                f"{reading.name} was trained on SAR {describe_options(reading.sar_options, 'auto')}; translating "
                f"with SAR {describe_options(scaling, 'auto')}"
            )
    # Bad options and paths fail here, before the model loads.
    check_reading_options(scaling, preprocessing=steps)
    plan_outputs(args.inputs, args.output)
    model = load_generator(args.model, upsample_mode=args.upsample_mode)
    learned = run_downsample(reading, model)
    downsample = args.downsample
    if downsample is None:
        downsample = learned or 1
        if downsample > 1:
            as_trained.append(f"--downsample {downsample}")
    elif learned is not None and learned != downsample:
        size = tile_size(model)
        logger.warning(
            f"{reading.name} learned {reading.tile_size[0]}x{reading.tile_size[1]} tiles resized to {size}x{size} "
            f"px; pass --downsample {learned} to translate at that ground resolution (now --downsample {downsample})"
        )
    if as_trained:
        print(f"reading SAR as {reading.name} was trained: {'; '.join(as_trained)}")
    written = translate_paths(
        model, args.inputs, args.output, steps=steps, sar_options=scaling,
        downsample=downsample, overlap=args.tile_overlap, batch_size=args.batch_size, grid=args.grid,
    )
    print(f"translated {written[0]}" if len(written) == 1 else f"translated {len(written)} images into {args.output}")
    return 0
