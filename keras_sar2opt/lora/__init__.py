"""Report §4.2, Table 7: LoRA on Conv2D/Conv2DTranspose; apply, merge, save and load adapters by name.

Importing this package registers `LoRAConv` for Keras deserialisation.
"""

from keras_sar2opt.lora.adapters import (
    ADAPTER_SUFFIX,
    METADATA_FIELDS,
    METADATA_KEY,
    load_adapters,
    read_adapters,
    save_adapters,
)
from keras_sar2opt.lora.apply import (
    OPTION_FLAGS,
    PIX2PIX_ENCODER_TARGETS,
    apply_lora,
    check_hyperparameters,
    check_layer_names,
    count_lora_parameters,
    count_trainable_parameters,
    leaf_layers,
    merge_lora,
)
from keras_sar2opt.lora.layers import CONV_TYPES, LoRAConv

__all__ = [
    "ADAPTER_SUFFIX",
    "CONV_TYPES",
    "METADATA_FIELDS",
    "METADATA_KEY",
    "OPTION_FLAGS",
    "PIX2PIX_ENCODER_TARGETS",
    "LoRAConv",
    "apply_lora",
    "check_hyperparameters",
    "check_layer_names",
    "count_lora_parameters",
    "count_trainable_parameters",
    "leaf_layers",
    "load_adapters",
    "merge_lora",
    "read_adapters",
    "save_adapters",
]
