"""Table 1 (report §1.1): the discriminator trained from scratch (its topology is the critic's)."""

import keras

from keras_sar2opt.models.blocks import check_channels, check_image_size, leaky_relu, network_builder

# conv1..conv4: (filters, stride), each 3x3 "same" + LeakyReLU(0.2). The stride of 4 in conv1 is
# what Table 1's shapes imply (128 -> 32); for a 128x128 input the shapes are:
CONVS = (
    (64, 4),  # 32x32x64
    (128, 2),  # 16x16x128
    (128, 2),  # 8x8x128
    (256, 2),  # 4x4x256
)
DROPOUT_RATE = 0.4  # Table 1: Dropout (0.4)
INPUT_SIZE = {"multiple": 32, "minimum": 32}  # strides 4, 2, 2, 2


@network_builder
def table1_network(image_size, channels, output_activation, name):
    """Table 1's conv1..conv4, flatten, dropout and a one-unit `dense` with output_activation."""
    check_image_size(image_size, **INPUT_SIZE, model=name)
    check_channels(name, channels=channels)
    inputs = keras.Input((image_size, image_size, channels), name="optical")
    x = inputs
    for k, (filters, strides) in enumerate(CONVS, start=1):
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", name=f"conv{k}")(x)
        x = leaky_relu(f"lrelu{k}", after_bias=True)(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(DROPOUT_RATE, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation=output_activation, name="dense")(x)
    return keras.Model(inputs, outputs, name=name)


def scratch_discriminator(image_size=128, channels=3):
    """Table 1: unconditional optical discriminator giving a sigmoid probability (522,497 params).

    Input "optical" (image_size x image_size x channels, image_size a multiple of 32);
    output (1,).
    """
    return table1_network(image_size, channels, "sigmoid", "scratch_discriminator")
