"""Report §3.1: SAR2Optical's Pix2Pix generator and 70x70 PatchGAN, named like its checkpoints."""

import keras

from keras_sar2opt.models.blocks import (
    check_channels,
    check_choice,
    check_image_size,
    leaky_relu,
    network_builder,
    sar_optical_inputs,
    torch_batch_norm,
    torch_conv4x4,
)

# enc1..enc8: Conv2d 4x4 stride 2 padding 1 (bias only in enc1, BatchNorm from enc2) + LeakyReLU.
# For a 256x256 input each halves the size, down to 1x1x512 after enc8.
ENCODER_FILTERS = (64, 128, 256, 512, 512, 512, 512, 512)
# dec1..dec8: up x2 (no bias) + BatchNorm (+ Dropout 0.5 in dec1..dec3) + ReLU; dec1..dec7 are
# then concatenated with the encoder activation of the same size, cat([enc_{8-k}, dec_k]).
DECODER_FILTERS = (512, 512, 512, 512, 256, 128, 64, 64)
DECODER_DROPOUT_BLOCKS = 3
DECODER_DROPOUT_RATE = 0.5
# The generator's blocks (the prefixes of its layer names), in order, known before it is built.
GENERATOR_BLOCKS = (
    tuple(f"enc{k}" for k in range(1, len(ENCODER_FILTERS) + 1))
    + tuple(f"dec{k}" for k in range(1, len(DECODER_FILTERS) + 1))
    + ("head",)
)
GENERATOR_INPUT_SIZE = {"multiple": 256, "minimum": 256}  # eight stride-2 encoders reach 1x1
# disc0..disc3: (filters, stride), Conv2d 4x4 padding 1 (bias only in disc0, BatchNorm from disc1)
# + LeakyReLU(0.2); disc4 is Conv2d(512 -> 1, 4x4, stride 1, padding 1) giving the patch logits.
DISCRIMINATOR_BLOCKS = ((64, 2), (128, 2), (256, 2), (512, 1))
DISCRIMINATOR_INPUT_SIZE = {"multiple": 8, "minimum": 24}  # a patch grid of at least 1x1

DECODERS = ("transpose", "upsample")
# PyTorch's Upsample "bilinear" (align_corners=False) matches Keras's half-pixel bilinear;
# SAR2Optical's "bicubic" does not (different cubic coefficient), so it is not offered.
UPSAMPLE_MODES = ("nearest", "bilinear")


def _decoder_up(x, filters, decoder, upsample_mode, name):
    """x2 up as `{name}_conv`: ConvTranspose2d(4, 2, padding 1) or Upsample + Conv2d(3, pad 1)."""
    if decoder == "transpose":
        # ConvTranspose2d(4x4, stride 2, padding 1) == Keras "same": output exactly twice the input.
        return keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, name=f"{name}_conv")(
            x
        )
    x = keras.layers.UpSampling2D(2, interpolation=upsample_mode, name=f"{name}_upsample")(x)
    # Conv2d(3x3, padding 1) == Keras "same" (symmetric padding for an odd kernel).
    return keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)


@network_builder
def pix2pix_generator(image_size=256, in_channels=3, out_channels=3, decoder="transpose", upsample_mode="nearest"):
    """SAR2Optical's U-Net generator: 54,541,827 trainable (54,552,835 with BN statistics).

    Input "sar" (image_size a multiple of 256, so enc8 reaches at least 1x1); output
    (image_size, image_size, out_channels) from a 3x3 `head_conv` and tanh. decoder="upsample"
    is SAR2Optical's `use_upsampling` variant: `dec{k}_upsample` (upsample_mode "nearest" or
    "bilinear") then a 3x3 bias-free `dec{k}_conv` in place of each transposed conv.
    """
    model = "pix2pix_generator"
    check_image_size(image_size, **GENERATOR_INPUT_SIZE, model=model)
    check_channels(model, in_channels=in_channels, out_channels=out_channels)
    check_choice(model, "decoder", decoder, DECODERS)
    check_choice(model, "upsample_mode", upsample_mode, UPSAMPLE_MODES)
    sar = keras.Input((image_size, image_size, in_channels), name="sar")
    x = sar
    skips = []
    for k, filters in enumerate(ENCODER_FILTERS, start=1):
        x = torch_conv4x4(x, filters, strides=2, use_bias=k == 1, name=f"enc{k}")
        if k > 1:
            x = torch_batch_norm(f"enc{k}_bn")(x)
        x = leaky_relu(f"enc{k}_lrelu", after_bias=k == 1)(x)
        skips.append(x)
    for k, filters in enumerate(DECODER_FILTERS, start=1):
        x = _decoder_up(x, filters, decoder, upsample_mode, f"dec{k}")
        x = torch_batch_norm(f"dec{k}_bn")(x)
        if k <= DECODER_DROPOUT_BLOCKS:
            x = keras.layers.Dropout(DECODER_DROPOUT_RATE, name=f"dec{k}_dropout")(x)
        x = keras.layers.ReLU(name=f"dec{k}_relu")(x)
        if k < len(DECODER_FILTERS):
            x = keras.layers.Concatenate(name=f"dec{k}_concat")([skips[-k - 1], x])
    # head: Conv2d(64 -> out_channels, 3x3, padding 1, bias) == Keras "same", then tanh.
    x = keras.layers.Conv2D(out_channels, 3, padding="same", name="head_conv")(x)
    outputs = keras.layers.Activation("tanh", name="head_tanh")(x)
    return keras.Model(sar, outputs, name=model)


@network_builder
def pix2pix_discriminator(image_size=256, sar_channels=3, optical_channels=3):
    """SAR2Optical's 70x70 PatchGAN on cat([sar, optical]): 2,768,705 trainable parameters.

    Inputs [sar, optical] (also callable with a dict; image_size a multiple of 8, at least 24);
    output LOGITS (image_size/8 - 2) square, i.e. 30x30x1 for 256x256 inputs.
    """
    model = "pix2pix_discriminator"
    check_image_size(image_size, **DISCRIMINATOR_INPUT_SIZE, model=model)
    check_channels(model, sar_channels=sar_channels, optical_channels=optical_channels)
    sar, optical, x = sar_optical_inputs(image_size, sar_channels, optical_channels)
    for i, (filters, strides) in enumerate(DISCRIMINATOR_BLOCKS):
        x = torch_conv4x4(x, filters, strides=strides, use_bias=i == 0, name=f"disc{i}")
        if i > 0:
            x = torch_batch_norm(f"disc{i}_bn")(x)
        x = leaky_relu(f"disc{i}_lrelu", after_bias=i == 0)(x)
    logits = torch_conv4x4(x, 1, strides=1, use_bias=True, name=f"disc{len(DISCRIMINATOR_BLOCKS)}")
    return keras.Model([sar, optical], logits, name=model)
