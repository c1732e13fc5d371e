"""`sar2opt convert`: SAR2Optical PyTorch checkpoints to Keras `.keras` files, without torch (report §3)."""

import math
from pathlib import Path

from keras_sar2opt import files
from keras_sar2opt.errors import Sar2OptError


def register(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="convert SAR2Optical Pix2Pix .pth/.safetensors checkpoints to .keras (no torch needed)",
        description="Convert a SAR2Optical generator checkpoint (and optionally its discriminator) to Keras.",
    )
    parser.add_argument("generator", metavar="GEN.pth", help="generator checkpoint (.pth, .pt or .safetensors)")
    parser.add_argument(
        "--discriminator", "--disc", dest="disc", metavar="DISC.pth", help="discriminator checkpoint to convert as well"
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT.keras", help="generator output file")
    parser.add_argument("--disc-out", metavar="PATH", help="discriminator output file (default: OUT_disc.keras)")
    parser.add_argument("--image-size", type=int, default=256, help="model input size (default 256)")
    parser.add_argument(
        "--upsample-mode",
        default="nearest",
        choices=("nearest", "bilinear"),
        help="interpolation of an upsampling-decoder generator (not stored in checkpoints; default nearest)",
    )
    parser.add_argument(
        "--weights-key",
        "--key",
        dest="key",
        help="key of the generator state_dict inside a wrapped checkpoint (e.g. ema for its moving average)",
    )
    parser.add_argument("--disc-key", help="key of the discriminator state_dict inside a wrapped checkpoint")
    parser.add_argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="skip missing and unexpected keys instead of failing (shape mismatches still fail)",
    )
    parser.set_defaults(func=run)


def _keras_path(path, option):
    path = Path(path)
    if path.suffix != ".keras":
        raise Sar2OptError(f"Expected {option} to end in .keras, received {path}")
    return files.check_writable(path, option, file=True)


def _describe(role, source, destination, model, config, report):
    settings = ", ".join(f"{key} {value}" for key, value in config.items())
    lines = [
        f"{role}: {source} -> {destination}",
        f"  {settings}; {model.count_params():,} parameters "
        f"({sum(math.prod(w.shape) for w in model.trainable_weights):,} trainable)",
        f"  {len(report.loaded)} tensors loaded, {len(report.ignored)} BatchNorm step counters ignored",
    ]
    if report.missing or report.unexpected:
        lines.append(
            f"  not strict: skipped {len(report.missing)} missing and {len(report.unexpected)} unexpected keys"
        )
    return "\n".join(lines)


def run(args):
    from keras_sar2opt.convert.pix2pix import convert_discriminator, convert_generator
    from keras_sar2opt.convert.pth_reader import read_state_dict
    from keras_sar2opt.models import check_model

    output = _keras_path(args.output, "-o")
    disc_output = None
    if args.disc:
        disc_output = (
            _keras_path(args.disc_out, "--disc-out") if args.disc_out else output.with_name(f"{output.stem}_disc.keras")
        )
    elif args.disc_out:
        raise Sar2OptError("Expected --discriminator DISC.pth together with --disc-out, received --disc-out alone")
    jobs = [("generator", args.generator, args.key, output, convert_generator, {"upsample_mode": args.upsample_mode})]
    if args.disc:
        jobs.append(("discriminator", args.disc, args.disc_key, disc_output, convert_discriminator, {}))
    for role, *_ in jobs:  # before reading a checkpoint
        check_model(f"pix2pix_{role}", args.image_size)
    converted = [  # every checkpoint read and mapped before anything is written
        (
            role,
            source,
            destination,
            *convert(
                read_state_dict(source, key=key),
                image_size=args.image_size,
                strict=args.strict,
                source=source,
                **options,
            ),
        )
        for role, source, key, destination, convert, options in jobs
    ]
    for role, source, destination, model, config, report in converted:
        try:
            with files.atomic_path(destination) as temporary:
                model.save(temporary)
        except OSError as error:
            raise Sar2OptError(f"Expected a writable .keras file, received {destination} ({error})") from None
        print(_describe(role, source, destination, model, config, report))
    return 0
