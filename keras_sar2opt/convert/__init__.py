"""PyTorch checkpoint conversion (report §3): a torch-free reader and the Pix2Pix weight mapping."""

from keras_sar2opt.convert.pix2pix import (
    PortReport,
    convert_discriminator,
    convert_generator,
    load_pix2pix_discriminator,
    load_pix2pix_generator,
)
from keras_sar2opt.convert.pth_reader import STATE_DICT_KEYS, read_checkpoint, read_state_dict

__all__ = [
    "STATE_DICT_KEYS",
    "PortReport",
    "convert_discriminator",
    "convert_generator",
    "load_pix2pix_discriminator",
    "load_pix2pix_generator",
    "read_checkpoint",
    "read_state_dict",
]
