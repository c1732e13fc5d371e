"""Report §3: the SAR2Optical Pix2Pix generator and its 70x70 PatchGAN: `sar2opt train --experiment pix2pix`."""

import sys

from keras_sar2opt.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main("pix2pix"))
