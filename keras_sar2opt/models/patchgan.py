"""Table 3 (report §1.2): the PatchGAN discriminator on concatenated SAR and optical images."""

import keras

from keras_sar2opt.models.blocks import (
    check_channels,
    check_image_size,
    leaky_relu,
    network_builder,
    sar_optical_inputs,
)

# conv1..conv4: (filters, stride, batch norm), each 4x4 "same" + LeakyReLU(0.2); for 128x128 inputs:
BLOCKS = (
    (32, 2, False),  # 64x64x32
    (64, 2, True),  # 32x32x64
    (128, 2, True),  # 16x16x128, then Dropout
    (256, 1, True),  # 16x16x256
)
INPUT_SIZE = {"multiple": 8, "minimum": 8}  # three stride-2 blocks
DROPOUT_AFTER = 3  # Table 3 places its Dropout after the third block
# Table 3 does not give the rate. 0.4 is the rate the same authors state for their other
# discriminator (Table 1); it is an assumption, kept as an argument.
DROPOUT_RATE = 0.4


@network_builder
def patchgan_discriminator(image_size=128, sar_channels=3, optical_channels=3, dropout_rate=DROPOUT_RATE):
    """Table 3: PatchGAN over cat([sar, optical]) giving one logit per patch (697,569 params).

    Inputs [sar, optical] (also callable with a dict keyed "sar", "optical"; image_size a
    multiple of 8); output LOGITS (image_size/8, image_size/8, 1) from a linear conv5.
    Table 3 gives no Dropout rate: `dropout_rate` defaults to 0.4, the rate of the report's
    Table 1 discriminator by the same authors (an assumption).
    Batch normalisation keeps Keras's defaults (the report's networks are Keras models).
    """
    model = "patchgan_discriminator"
    check_image_size(image_size, **INPUT_SIZE, model=model)
    check_channels(model, sar_channels=sar_channels, optical_channels=optical_channels)
    sar, optical, x = sar_optical_inputs(image_size, sar_channels, optical_channels)
    for k, (filters, strides, norm) in enumerate(BLOCKS, start=1):
        x = keras.layers.Conv2D(filters, 4, strides=strides, padding="same", name=f"conv{k}")(x)
        if norm:
            x = keras.layers.BatchNormalization(name=f"bn{k}")(x)
        x = leaky_relu(f"lrelu{k}", after_bias=not norm)(x)
        if k == DROPOUT_AFTER:
            x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    logits = keras.layers.Conv2D(1, 4, padding="same", name=f"conv{len(BLOCKS) + 1}")(x)
    return keras.Model([sar, optical], logits, name=model)
