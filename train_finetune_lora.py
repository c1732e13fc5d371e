"""Report §4.2, Table 7: LoRA fine-tuning of a pre-trained Pix2Pix: `sar2opt train --experiment finetune-lora`."""

import sys

from keras_sar2opt.commands.train import main_for

if __name__ == "__main__":
    sys.exit(main_for("finetune-lora"))
