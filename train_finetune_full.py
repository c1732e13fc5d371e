"""Report §4.1, Table 6: full fine-tuning of a pre-trained Pix2Pix: `sar2opt train --experiment finetune-full`."""

import sys

from keras_sar2opt.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main("finetune-full"))
