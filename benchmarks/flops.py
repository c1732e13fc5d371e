"""FLOPs of the networks, counted from their layers' shapes, and the matrix-multiply ceilings they are set against."""

import math
from typing import NamedTuple

from benchmarks.timing import time_calls


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


def _spatial(shape, data_format):
    return shape[1:-1] if data_format == "channels_last" else shape[2:]


def _channels(shape, data_format):
    return shape[-1] if data_format == "channels_last" else shape[1]


def forward_macs(model):
    """Multiply-accumulates of one example's forward pass through every Conv2D, Conv2DTranspose and Dense.

    Conv2D: H_out·W_out·k_h·k_w·(C_in/groups)·C_out; Conv2DTranspose: H_in·W_in·k_h·k_w·C_in·C_out
    (each input pixel scatters a k_h×k_w×C_out patch); Dense: (positions)·C_in·units. Biases,
    normalisation, activations and padding are not counted.
    """
    import keras

    total = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            shape, data_format = layer.input.shape, layer.data_format
            total += (
                math.prod(_spatial(shape, data_format))
                * math.prod(layer.kernel_size)
                * _channels(shape, data_format)
                * layer.filters
            )
        elif isinstance(layer, keras.layers.Conv2D):
            data_format = layer.data_format
            c_in = _channels(layer.input.shape, data_format)
            total += (
                math.prod(_spatial(layer.output.shape, data_format))
                * math.prod(layer.kernel_size)
                * (c_in // layer.groups)
                * layer.filters
            )
        elif isinstance(layer, keras.layers.Dense):
            shape = layer.input.shape
            total += math.prod(shape[1:-1]) * shape[-1] * layer.units
    return total


def train_flops(generator_macs, discriminator_macs):
    """FLOPs per image of one D-then-G step: 2·(3·MAC_G + 8·MAC_D).

    A pass backpropagated for weight and input gradients costs 3 forward passes (forward, input
    gradient, weight gradient); G: forward + backward = 3. D step: real and fake pairs forward and
    backward = 2·3. G step: D on the fake pair forward and input gradients only (D's weights are
    not differentiated) = 2. Each multiply-accumulate is 2 FLOPs.
    """
    return 2.0 * (3 * generator_macs + 8 * discriminator_macs)


class Ceiling(NamedTuple):
    """GFLOP/s of a matrix multiply."""

    size: int  # square matrices of this side
    gflops: float
    others: float  # cores used by other processes meanwhile


def matmul_ceiling(dtype, size, settings):
    """Ceiling: GFLOP/s of tf.linalg.matmul of two size×size matrices of `dtype` ("float32" or "bfloat16")."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_uniform((size, size), seed=(0, 1), minval=-1.0), dtype)
    b = tf.cast(tf.random.stateless_uniform((size, size), seed=(0, 2), minval=-1.0), dtype)
    product = tf.function(lambda a, b: tf.linalg.matmul(a, b)[0, 0])  # a scalar back: no copy timed
    timing = time_calls(lambda: product(a, b).numpy(), 1, settings)
    return Ceiling(size, 2.0 * size**3 * timing.rate / 1e9, timing.others)


def torch_matmul_ceiling(dtype, size, settings):
    """Ceiling: GFLOP/s of torch.matmul of two size×size matrices of `dtype` ("float32" or "bfloat16")."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a, b = (torch.rand(size, size, generator=generator).to(getattr(torch, dtype)) for _ in range(2))
    timing = time_calls(lambda: torch.matmul(a, b), 1, settings)
    return Ceiling(size, 2.0 * size**3 * timing.rate / 1e9, timing.others)
