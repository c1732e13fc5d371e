"""`sar2opt translate`: SAR images, folders and GeoTIFF scenes to optical with a generator (report §3.4–§3.5)."""

import logging
from pathlib import Path

from keras_sar2opt.commands.options import (
    add_model_loading_options,
    add_preprocessing_options,
    add_sar_scaling_options,
    load_model,
    model_reading,
    onnx_model,
    preprocessing_steps,
    sar_scaling,
)
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.presets import preset_name

logger = logging.getLogger(__name__)


def register(subparsers):
    parser = subparsers.add_parser(
        "translate",
        help="translate SAR images, folders or whole GeoTIFF scenes with a generator",
        description=(
            "Translate SAR images to optical. Preprocessing options apply in the order given "
            "(report §3.5: --median 7 --gamma 7). Images larger than the model are tiled with "
            "overlap and blended; GeoTIFF inputs give georeferenced GeoTIFFs, others PNGs, of 8-bit values unless "
            "--output-range says otherwise. A model "
            "of a training run (its folder, generator.keras or a checkpoint) reads SAR as the run did: its SAR "
            "band and scaling and its --downsample, unless given here."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    parser.add_argument(
        "--model",
        required=True,
        help="generator: .keras, a SAR2Optical .pth/.safetensors, preset:NAME (sar2opt presets; downloaded once), "
        "or an exported .onnx (run by ONNX Runtime, reading SAR as its run did)",
    )
    add_model_loading_options(parser)
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output folder, or an output file (.png/.tif) for a single input file",
    )
    add_preprocessing_options(parser)
    add_sar_scaling_options(parser)
    parser.add_argument(
        "--downsample",
        type=int,
        metavar="K",
        help="average K x K pixels first, for a model trained on tiles resized by 1/K (e.g. 2 for 256-px tiles "
        "at 128 px): the ground resolution it learned; outputs are K times smaller (default: the run's "
        "resize, else 1)",
    )
    parser.add_argument(
        "--output-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="write optical values mapped back to LOW..HIGH, the --optical-range the model was trained with (e.g. "
        "0 3000 for Sentinel-2 reflectance x10000): 16-bit for integers in 0..65535, else 32-bit float (.tif "
        "only); default 8-bit display values",
    )
    parser.add_argument("--tile-overlap", type=int, help="overlap of neighbouring tiles in pixels (default tile/4)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per model call (default 4)")
    parser.add_argument("--grid", action="store_true", help="also write <name>_grid.png: input beside output")
    parser.set_defaults(func=run)


def _sar_scaling(given, reading):
    """The SAR options to translate with: the run's, those `given` replacing its own one by one; and
    a note of what came from the run. A difference from the run is warned about."""
    if reading is None:
        return given, []
    scaling = reading.sar.merged(given) if reading.sar else given
    if given is None:
        return scaling, [f"SAR {scaling.describe()}"] if scaling else []
    if scaling != reading.sar:
        trained = reading.sar.describe() if reading.sar else "auto"
        logger.warning(f"{reading.name} was trained on SAR {trained}; translating with SAR {scaling.describe()}")
    return scaling, []


def downsample_of(given, reading, model):
    """The --downsample to translate with: `given`, else the run's resize, else 1; and a note of what
    came from the run. A given factor other than the run's is warned about."""
    from keras_sar2opt.model_files import tile_size

    learned = None if reading is None else reading.downsample(tile_size(model))
    if given is None:
        factor = learned or 1
        return factor, [f"--downsample {factor}"] if factor > 1 else []
    if learned is not None and learned != given:
        size = tile_size(model)
        logger.warning(
            f"{reading.name} learned {reading.tile_size[0]}x{reading.tile_size[1]} tiles resized to {size}x{size} "
            f"px; pass --downsample {learned} to translate at that ground resolution (now --downsample {given})"
        )
    return given, []


def run(args):
    from keras_sar2opt.data.loading import check_reading_options
    from keras_sar2opt.inference import OutputEncoding, plan_outputs, translate_paths

    for option, value in (("--batch-size", args.batch_size), ("--downsample", args.downsample)):
        if value is not None and value < 1:
            raise Sar2OptError(f"Expected {option} of at least 1, received {value}")
    preset = preset_name(args.model) is not None
    model = onnx_model(args)  # an ONNX session loads in a second; a Keras model loads after the checks
    steps, reading = preprocessing_steps(args), model_reading(args, model)
    scaling, as_trained = _sar_scaling(sar_scaling(args), reading)
    # Bad options and paths fail here, before the model loads.
    check_reading_options(scaling, preprocessing=steps)
    encoding = OutputEncoding(args.output_range)
    for _, dst in plan_outputs(args.inputs, args.output):
        encoding.check(dst)
    if reading is not None and reading.optical and reading.optical.range and args.output_range is None:
        low, high = reading.optical.range
        print(f"{reading.name} learned optical values {low:g}..{high:g}: --output-range {low:g} {high:g} writes them")
    if model is None:
        model = load_model(args, args.model)
    downsample, from_run = downsample_of(args.downsample, reading, model)
    if as_trained + from_run:
        print(f"reading SAR as {reading.name} was trained: {'; '.join(as_trained + from_run)}")
    written = translate_paths(
        model,
        args.inputs,
        args.output,
        steps=steps,
        sar_options=scaling,
        downsample=downsample,
        overlap=args.tile_overlap,
        batch_size=args.batch_size,
        grid=args.grid,
        output_range=args.output_range,
        model_source=args.model if preset else Path(args.model).resolve(),
    )
    print(f"translated {written[0]}" if len(written) == 1 else f"translated {len(written)} images into {args.output}")
    return 0
