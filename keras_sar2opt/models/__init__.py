"""The report's networks (§1–§3) as Keras Functional models, chosen by name through MODELS."""

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.models import patchgan, pix2pix, scratch, unet
from keras_sar2opt.models.blocks import check_image_size
from keras_sar2opt.models.patchgan import patchgan_discriminator
from keras_sar2opt.models.pix2pix import pix2pix_discriminator, pix2pix_generator
from keras_sar2opt.models.scratch import scratch_discriminator
from keras_sar2opt.models.unet import unet_generator
from keras_sar2opt.models.wgan import wgan_critic

MODELS = {
    "scratch_discriminator": scratch_discriminator,
    "patchgan_discriminator": patchgan_discriminator,
    "wgan_critic": wgan_critic,
    "unet_generator": unet_generator,
    "pix2pix_generator": pix2pix_generator,
    "pix2pix_discriminator": pix2pix_discriminator,
}
# The input sizes each network takes (a multiple of, at least), checked before it is built.
INPUT_SIZES = {
    "scratch_discriminator": scratch.INPUT_SIZE,
    "patchgan_discriminator": patchgan.INPUT_SIZE,
    "wgan_critic": scratch.INPUT_SIZE,  # Table 1's topology
    "unet_generator": unet.INPUT_SIZE,
    "pix2pix_generator": pix2pix.GENERATOR_INPUT_SIZE,
    "pix2pix_discriminator": pix2pix.DISCRIMINATOR_INPUT_SIZE,
}


def check_model_name(name):
    """Raise Sar2OptError unless name is a key of MODELS."""
    if name not in MODELS:
        raise Sar2OptError(f"Expected a model name out of {', '.join(MODELS)}, received {name!r}")


def check_model(name, image_size):
    """Raise Sar2OptError, as build_model would, unless name is a key of MODELS whose network
    takes image_size square inputs; builds nothing."""
    check_model_name(name)
    check_image_size(image_size, **INPUT_SIZES[name], model=name)


def build_model(name, **kwargs):
    """Build the network registered under name in MODELS with the builder's keyword arguments."""
    check_model_name(name)
    return MODELS[name](**kwargs)


__all__ = [
    "INPUT_SIZES",
    "MODELS",
    "build_model",
    "check_model",
    "check_model_name",
    "patchgan_discriminator",
    "pix2pix_discriminator",
    "pix2pix_generator",
    "scratch_discriminator",
    "unet_generator",
    "wgan_critic",
]
