"""Report §1.3: the WGAN critic, Table 1's topology with a linear output."""

from keras_sar2opt.models.scratch import table1_network


def wgan_critic(image_size=128, channels=3):
    """Table 1's layers (dropout included) with a linear one-unit score (522,497 params).

    The report gives no table for the critic; it reuses the scratch discriminator's topology.
    Input "optical" (image_size x image_size x channels, image_size a multiple of 32), output (1,).
    """
    return table1_network(image_size, channels, None, "wgan_critic")
