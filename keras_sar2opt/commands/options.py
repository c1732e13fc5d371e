"""Command-line options of the commands that read images: preprocessing (report §3.5), SAR and optical scaling,
and how a command's model is read (preset weights, checkpoint entries, ONNX exports, the run it came from)."""

import argparse
from pathlib import Path

from keras_sar2opt.data.scaling import OpticalScaling, SarScaling
from keras_sar2opt.presets import preset_name
from keras_sar2opt.runs import RunFolder


class _AppendStep(argparse.Action):
    """Collect preprocessing options into `args.steps` in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None):
        steps = list(getattr(namespace, "steps", None) or [])
        name, parameter = self.const
        steps.append((name, {parameter: value}))
        namespace.steps = steps


def add_preprocessing_options(parser):
    """--median/--lee/--enhanced-lee/--frost WINDOW, --gamma GAMMA and --gamma-convention, kept in order."""
    filters = parser.add_argument_group("SAR preprocessing (applied in command-line order)")
    for name, label in (("median", "median"), ("lee", "Lee"), ("enhanced-lee", "enhanced Lee"), ("frost", "Frost")):
        filters.add_argument(
            f"--{name}",
            type=int,
            metavar="WINDOW",
            action=_AppendStep,
            const=(name.replace("-", "_"), "window"),
            help=f"{label} filter with a WINDOW x WINDOW window (odd)",
        )
    filters.add_argument(
        "--gamma",
        type=float,
        metavar="GAMMA",
        action=_AppendStep,
        const=("gamma", "gamma"),
        help="gamma correction with GAMMA (report: 7) in --gamma-convention's form",
    )
    filters.add_argument(
        "--gamma-convention",
        choices=("power", "inverse"),
        default="power",
        help="power: out = in ** gamma (default); inverse: out = in ** (1 / gamma)",
    )
    parser.set_defaults(steps=[])


def preprocessing_steps(args):
    """The `apply_preprocessing` steps of the parsed options, gamma steps carrying --gamma-convention."""
    return [
        (name, {**options, "convention": args.gamma_convention} if name == "gamma" else options)
        for name, options in args.steps
    ]


def add_sar_scaling_options(parser):
    """--sar-band, --sar-input, --db-range and --percentiles: which SAR band is used and how its values
    are scaled to [0, 1]."""
    scaling = parser.add_argument_group("SAR band and scaling to [0, 1]")
    scaling.add_argument(
        "--sar-band",
        type=int,
        metavar="B",
        help="band counted from 1, e.g. 2 for VH of a VV, VH stack (default: the first of 2 bands, else all)",
    )
    scaling.add_argument(
        "--sar-input",
        choices=("auto", "image", "linear", "amplitude", "db"),
        help="how SAR values are stored (default auto: integers are images, negative floats dB, other floats linear)",
    )
    scaling.add_argument("--db-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="dB range mapped to [0, 1]")
    scaling.add_argument("--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"), help="clip percentiles")


def sar_scaling(args):
    """The SarScaling of the band and scaling options given, or None when none was."""
    return SarScaling.from_config(
        {"input": args.sar_input, "db_range": args.db_range, "percentiles": args.percentiles, "band": args.sar_band}
    )


def add_optical_scaling_options(parser):
    """--optical-bands and --optical-range: which optical bands are used and how they are scaled to [0, 1]."""
    optical = parser.add_argument_group("optical bands and scaling to [0, 1]")
    optical.add_argument(
        "--optical-bands",
        type=int,
        nargs="+",
        metavar="B",
        help="1 or 3 bands counted from 1, e.g. 4 3 2 for red, green, blue of a Sentinel-2 stack (default all)",
    )
    optical.add_argument(
        "--optical-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="stored optical values mapped to [0, 1], e.g. 0 3000 for Sentinel-2 reflectance x10000 (1000 4000 "
        "from processing baseline 04.00 on; default: integers by bit depth, floats in [0, 1] as they are)",
    )


def optical_scaling(args):
    """The OpticalScaling of the optical options given, or None when none was."""
    return OpticalScaling.from_config({"bands": args.optical_bands, "range": args.optical_range})


def add_weights_dir_option(parser):
    """--weights-dir: where `preset:NAME` models are downloaded and cached."""
    parser.add_argument(
        "--weights-dir",
        metavar="DIR",
        help="folder of downloaded presets (default $KERAS_HOME/keras_sar2opt/presets, KERAS_HOME defaulting to "
        "~/.keras)",
    )


def add_model_loading_options(parser):
    """--weights-dir, --weights-key and --upsample-mode: how a command's --model/MODEL is read."""
    add_weights_dir_option(parser)
    parser.add_argument(
        "--weights-key",
        metavar="KEY",
        help="entry of a training checkpoint (.pth) holding the weights, e.g. ema or model_ema for the moving "
        "average (default: the model's state_dict, e.g. model_state_dict)",
    )
    parser.add_argument(
        "--upsample-mode",
        default="nearest",
        choices=("nearest", "bilinear"),
        help="interpolation when converting an upsampling-decoder .pth on the fly (default nearest)",
    )


def load_model(args, model):
    """The Keras generator `model` names, read with the options of `add_model_loading_options`."""
    from keras_sar2opt.model_files import load_generator

    return load_generator(
        model, upsample_mode=args.upsample_mode, weights_dir=args.weights_dir, weights_key=args.weights_key
    )


def onnx_model(args):
    """The ONNX Runtime generator of an exported `--model x.onnx` (see `sar2opt export`), else None."""
    if Path(args.model).suffix.lower() != ".onnx":
        return None
    from keras_sar2opt.inference.onnx_runtime import OnnxGenerator
    from keras_sar2opt.model_files import check_weights_key

    check_weights_key(args.model, args.weights_key)

    return OnnxGenerator(args.model)


def model_reading(args, onnx=None):
    """How the run behind `args.model` read SAR (RunReading): the metadata of its ONNX export `onnx`,
    or its run folder's config.json; None for a preset or a model outside a run."""
    if onnx is not None:
        return onnx.reading()
    if preset_name(args.model) is not None:
        return None
    folder = RunFolder.holding(args.model)
    return folder and folder.reading()
