"""Report §1.3: Table 5's U-Net against the WGAN critic: `sar2opt train --experiment wgan`."""

import sys

from keras_sar2opt.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main("wgan"))
