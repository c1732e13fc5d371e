"""Report §1.1: Table 5's U-Net against Table 1's discriminator from scratch: `sar2opt train --experiment scratch`."""

import sys

from keras_sar2opt.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main("scratch"))
