"""`sar2opt presets`: the pretrained models `preset:NAME` names, their sources, and whether they are cached."""

from keras_sar2opt.commands.options import add_weights_dir_option
from keras_sar2opt.presets import (
    ARCHITECTURES,
    BASE_URL_VARIABLE,
    IMAGE_SIZE,
    INPUT,
    PRESETS,
    SOURCE,
    cache_folder,
    cached,
)


def register(subparsers):
    parser = subparsers.add_parser(
        "presets",
        help="list the pretrained models that --model preset:NAME downloads, and whether they are cached",
        description=(
            "List the public SAR2Optical checkpoints that commands taking a model accept as preset:NAME: "
            "network, size, reported metric, whether downloaded or converted, and source URL "
            f"({BASE_URL_VARIABLE} replaces its base). Nothing is downloaded."
        ),
    )
    add_weights_dir_option(parser)
    parser.set_defaults(func=run)


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def run(args):
    rows = [("NAME", "NETWORK", "SIZE", "REPORTED", "CACHED", "SOURCE")]
    for preset in PRESETS.values():
        rows.append(
            (
                preset.name,
                preset.network,
                f"{preset.listed_size / 1e6:.3g} MB",
                preset.metric or "-",
                cached(preset.name, args.weights_dir),
                preset.url,
            )
        )
    print(_table(rows))
    print()
    for network, architecture in ARCHITECTURES.items():
        print(f"{network}s: {architecture}, {IMAGE_SIZE} px")
    print(f"input: {INPUT}; reported metrics: {SOURCE}")
    print(f"cache: {cache_folder(args.weights_dir)}")
    return 0
