"""Keras against PyTorch on the report's networks (§2, §3): the same run as `sar2opt benchmark` (same options)."""

import sys

from keras_sar2opt import cli

if __name__ == "__main__":
    sys.exit(cli.main(["benchmark", *sys.argv[1:]]))
