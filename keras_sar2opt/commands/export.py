"""`sar2opt export`: a generator as ONNX, TensorFlow SavedModel or LiteRT, checked against Keras."""

from pathlib import Path

from keras_sar2opt import export
from keras_sar2opt.commands.options import add_model_loading_options, load_model, model_reading
from keras_sar2opt.presets import preset_name


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a generator to ONNX, SavedModel or LiteRT and check it against Keras",
        description=(
            "Export a generator in inference mode (no dropout, BatchNorm's moving statistics) with a dynamic batch "
            "axis: input 'sar', output 'optical', NHWC float32 in [-1, 1]. The metadata records the model's run "
            "settings (SAR band and scaling, tile size). The export is run on a random batch and must match Keras "
            "within 1e-4 (1e-2 at float16); otherwise nothing is written."
        ),
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="generator: .keras, a run folder or checkpoint, a SAR2Optical .pth/.safetensors, or preset:NAME",
    )
    parser.add_argument(
        "--format", required=True, choices=export.FORMATS, help="onnx, saved_model (a folder) or litert"
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="OUT.onnx, a SavedModel folder, or OUT.tflite"
    )
    parser.add_argument(
        "--precision",
        default="float32",
        choices=export.TOLERANCES,
        help="float16 weights for onnx and litert (half the size; checked within 1e-2); default float32",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        metavar="N",
        help="tile side the export takes (default: the generator's own; a Pix2Pix takes multiples of 256)",
    )
    add_model_loading_options(parser)
    parser.set_defaults(func=run)


def run(args):
    output = export.check_target(args.output, args.format, args.precision)
    reading = model_reading(args)
    model = export.at_image_size(load_model(args, args.model), args.image_size)
    source = args.model if preset_name(args.model) else Path(args.model).resolve()
    settings = export.model_settings(source, model, reading)
    difference = export.export_generator(model, output, args.format, precision=args.precision, settings=settings)
    size = settings["image_size"]
    print(f"exported {args.model} -> {output} ({args.format}, {args.precision}, {size}x{size} tiles, dynamic batch)")
    print(
        f"max |{args.format} - Keras| on a random batch of {export.PARITY_BATCH}: {difference:.2g} "
        f"(tolerance {export.TOLERANCES[args.precision]:g})"
    )
    if reading is not None:
        print(f"metadata records how {reading.name} read SAR: {reading.sar.describe() if reading.sar else 'auto'}")
    return 0
