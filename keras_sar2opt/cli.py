"""The `sar2opt` command: one subcommand per module in `keras_sar2opt.commands`."""

import argparse
import sys

from keras_sar2opt.commands import (
    benchmark,
    convert,
    evaluate,
    make_synthetic,
    report,
    reproduce,
    summary,
    train,
    translate,
)
from keras_sar2opt.errors import Sar2OptError

# Each command module defines `register(subparsers)`, which adds its parser and
# sets `func` to a callable taking the parsed arguments and returning an exit code.
# Command modules import TensorFlow/Keras inside their functions so `--help` stays fast.
COMMANDS = (
    summary,
    make_synthetic,
    train,
    evaluate,
    convert,
    translate,
    report,
    reproduce,
    benchmark,
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sar2opt", description="GAN-based SAR-to-optical image translation (Keras 3)."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except Sar2OptError as error:
        print(f"sar2opt {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sar2opt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
