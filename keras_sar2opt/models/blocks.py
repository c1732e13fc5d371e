"""Named layer factories and argument checks shared by the report's networks (§1–§3)."""

import functools
import numbers

import keras

from keras_sar2opt import hardware
from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.errors import Sar2OptError


def network_builder(build):
    """Mark a network builder: the first network built warns once, in one line, where TensorFlow
    runs its slow Eigen kernels because it was imported before keras_sar2opt (hardware)."""

    @functools.wraps(build)
    def builder(*args, **kwargs):
        if keras.backend.backend() == "tensorflow":
            hardware.warn_if_slow_kernels()
        return build(*args, **kwargs)

    return builder


# LeakyReLU(0.2) throughout the report and SAR2Optical; Keras 3 defaults to 0.3.
LEAKY_SLOPE = 0.2


def leaky_relu(name, after_bias=False):
    """LeakyReLU with the report's slope 0.2: a function of a tensor.

    `after_bias=True` (directly after a convolution with a bias) computes max(x, 0.2·x) in two plain
    Keras layers, `{name}_slope` (Rescaling) and `{name}` (Maximum): the same values, and the same
    gradient but at exactly 0. There TensorFlow's graph optimiser, with oneDNN, fuses Conv2D + BiasAdd
    + LeakyRelu although LeakyRelu's gradient still reads the pre-activation, fails, and leaves the
    whole train step without its fusions ("remapper failed ... LeakyReluGrad ... BiasAdd"). Saved
    models keep plain Keras layers, loadable without this package.
    """
    if not after_bias:
        return keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=name)

    def apply(x):
        slope = keras.layers.Rescaling(LEAKY_SLOPE, name=f"{name}_slope")(x)
        return keras.layers.Maximum(name=name)([x, slope])

    return apply


def torch_batch_norm(name):
    """BatchNormalization with PyTorch BatchNorm2d's constants (torch momentum 0.1 is Keras 0.9)."""
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def torch_conv4x4(x, filters, *, strides, use_bias, name):
    """PyTorch `Conv2d(kernel_size=4, stride, padding=1)` as `{name}_conv` (plus `{name}_pad`).

    With stride 2 on even sizes Keras "same" pads (1, 1), exactly like padding=1. With stride 1
    "same" would pad (1, 2), so the padding is explicit: ZeroPadding2D(1) then "valid".
    """
    if strides == 1:
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return keras.layers.Conv2D(filters, 4, strides=strides, padding=padding, use_bias=use_bias, name=f"{name}_conv")(x)


def sar_optical_inputs(image_size, sar_channels, optical_channels):
    """A conditional discriminator's inputs "sar", "optical" and their `concat` [sar, optical]."""
    sar = keras.Input((image_size, image_size, sar_channels), name="sar")
    optical = keras.Input((image_size, image_size, optical_channels), name="optical")
    return sar, optical, keras.layers.Concatenate(name="concat")([sar, optical])


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_image_size(image_size, *, multiple, minimum, model):
    """Raise Sar2OptError unless image_size is an integer multiple of `multiple`, >= `minimum`."""
    if not _is_int(image_size) or image_size < minimum or image_size % multiple:
        raise Sar2OptError(
            f"Expected image_size (--image-size) for {model} to be a multiple of {multiple} "
            f"(at least {minimum}), received {image_size!r}"
        )


def check_channels(model, **channels):
    """Raise Sar2OptError unless every given channel count is a positive integer."""
    for argument, value in channels.items():
        check_positive_int(value, f"{argument} for {model}")


def check_choice(model, argument, value, choices):
    """Raise Sar2OptError unless value is one of choices."""
    if value not in choices:
        raise Sar2OptError(f"Expected {argument} for {model} to be one of {', '.join(choices)}, received {value!r}")
