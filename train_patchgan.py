"""Report §1.2: Table 5's U-Net against Table 3's PatchGAN discriminator: `sar2opt train --experiment patchgan`."""

import sys

from keras_sar2opt.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main("patchgan"))
