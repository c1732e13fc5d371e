"""Report §4.2, Table 7: LoRA fine-tuning of a pre-trained Pix2Pix: `sar2opt train --experiment finetune-lora`."""

import sys

from keras_sar2opt.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main("finetune-lora"))
