"""Report §1.1: Table 5's U-Net against Table 1's discriminator from scratch: `sar2opt train --experiment scratch`."""

import sys

from keras_sar2opt.commands.train import main_for

if __name__ == "__main__":
    sys.exit(main_for("scratch"))
