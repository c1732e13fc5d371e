"""Report §3: the SAR2Optical Pix2Pix generator and its 70x70 PatchGAN: `sar2opt train --experiment pix2pix`."""

import sys

from keras_sar2opt.commands.train import main_for

if __name__ == "__main__":
    sys.exit(main_for("pix2pix"))
