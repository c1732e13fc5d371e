"""Table 5 (report §2): the U-Net generator used with every discriminator of §1."""

import keras

from keras_sar2opt.models.blocks import check_channels, check_image_size, leaky_relu, network_builder

# enc1..enc4: Conv2D 4x4 stride 2 "same" (+ BN from enc2) + LeakyReLU(0.2); for 128x128 input:
ENCODER_FILTERS = (
    64,  # 64x64x64
    128,  # 32x32x128
    256,  # 16x16x256
    512,  # 8x8x512
)
# dec1..dec3: Conv2DTranspose 4x4 stride 2 "same" + BN + ReLU, then concat with the encoder
# activation of the same size ([enc, dec], encoder first):
DECODER_FILTERS = (
    256,  # 16x16x256, concat enc3 -> 512
    128,  # 32x32x128, concat enc2 -> 256
    64,  # 64x64x64, concat enc1 -> 128
)
INPUT_SIZE = {"multiple": 16, "minimum": 16}  # four stride-2 encoders


@network_builder
def unet_generator(image_size=128, in_channels=3, out_channels=3):
    """Table 5: SAR -> optical U-Net with skip connections and a tanh output (6,176,387 params).

    Input "sar" (image_size a multiple of 16), output (image_size, image_size, out_channels) in
    [-1, 1]. The skips show in Table 5's counts: dec2, dec3 and `out` see doubled channels.
    Batch normalisation keeps Keras's defaults (the report's networks are Keras models).
    """
    model = "unet_generator"
    check_image_size(image_size, **INPUT_SIZE, model=model)
    check_channels(model, in_channels=in_channels, out_channels=out_channels)
    sar = keras.Input((image_size, image_size, in_channels), name="sar")
    x = sar
    skips = []
    for k, filters in enumerate(ENCODER_FILTERS, start=1):
        x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", name=f"enc{k}")(x)
        if k > 1:
            x = keras.layers.BatchNormalization(name=f"enc{k}_bn")(x)
        x = leaky_relu(f"enc{k}_lrelu", after_bias=k == 1)(x)
        skips.append(x)
    for k, filters in enumerate(DECODER_FILTERS, start=1):
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"dec{k}")(x)
        x = keras.layers.BatchNormalization(name=f"dec{k}_bn")(x)
        x = keras.layers.ReLU(name=f"dec{k}_relu")(x)
        x = keras.layers.Concatenate(name=f"dec{k}_concat")([skips[-k - 1], x])
    x = keras.layers.Conv2DTranspose(out_channels, 4, strides=2, padding="same", name="out")(x)
    outputs = keras.layers.Activation("tanh", name="out_tanh")(x)
    return keras.Model(sar, outputs, name=model)
