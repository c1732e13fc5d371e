"""The `sar2opt` command: one subcommand per module in `keras_sar2opt.commands`."""

import argparse
import sys
from pathlib import Path

from keras_sar2opt.commands import (
    app,
    benchmark,
    convert,
    evaluate,
    export,
    make_synthetic,
    presets,
    report,
    reproduce,
    summary,
    train,
    translate,
)
from keras_sar2opt.errors import Sar2OptError, UsageError

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
    export,
    app,
    presets,
    report,
    reproduce,
    benchmark,
)
# Commands that continue where they stopped when rerun after an interruption.
RESUMABLE_COMMANDS = ("train", "reproduce")


def _one_line_errors(parser):
    """Make the parser report a malformed command line as one line (no usage block), exit status 2."""

    def error(message):
        parser.exit(2, f"{parser.prog}: error: {message}\n")

    parser.error = error
    return parser


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sar2opt", description="GAN-based SAR-to-optical image translation (Keras 3)."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    for subparser in (parser, *subparsers.choices.values()):
        _one_line_errors(subparser)
    return parser, subparsers


def parse(argv=None):
    """The parsed command line; an unknown option is reported by its subcommand ("sar2opt train: ...")."""
    parser, subparsers = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv=None):
    args = parse(argv)
    try:
        return args.func(args) or 0
    except UsageError as error:
        code, message = 2, f"error: {error}"
    except Sar2OptError as error:
        code, message = 1, f"error: {error}"
    except KeyboardInterrupt:
        resumable = args.command in RESUMABLE_COMMANDS
        hint = "; rerun the same command to continue where it stopped" if resumable else ""
        code, message = 130, f"interrupted{hint}"
    print(f"sar2opt {args.command}: {message}", file=sys.stderr)
    # A process of a multi-process JAX job ends now: the others cannot finish without it. Only a command
    # that imported the module (read from sys.modules, so an early error never imports Keras) joined one.
    distribute = sys.modules.get("keras_sar2opt.training.distribute")
    if distribute is not None:
        distribute.leave_lost_job(code)
    return code


def train_main(experiment, argv=None):
    """`sar2opt train --experiment EXPERIMENT` with the command line's other arguments (train_*.py)."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg == "--experiment" or arg.startswith("--experiment=") for arg in argv):
        script = Path(sys.argv[0]).name
        print(f"{script}: error: Expected no --experiment: this script trains {experiment}", file=sys.stderr)
        return 2
    return main(["train", "--experiment", experiment, *argv])


if __name__ == "__main__":
    sys.exit(main())
