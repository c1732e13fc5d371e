"""Pix2Pix's transposed convolutions one op at a time, TensorFlow beside PyTorch: forward and both gradients.

`python -m benchmarks.transposed_conv [--repeats 5] [--batch 4]` prints a Markdown table
(reports/cpu-profile.md). For each decoder layer of the Pix2Pix generator (report §3.1, dec1-dec8:
ConvTranspose2d 4x4, stride 2, padding 1) it times, on random inputs at the layer's size for 256x256
images:

- forward: TensorFlow's Conv2DBackpropInput, which Keras's Conv2DTranspose runs; PyTorch's
  conv_transpose2d;
- input gradient: a stride-2 Conv2D of the output gradient (what TensorFlow's gradient of the
  transposed convolution computes); PyTorch's conv2d with the same arguments;
- filter gradient: TensorFlow's Conv2DBackpropFilter with the output gradient as input; PyTorch's
  convolution_backward asked for the weight gradient alone (the kernel its autograd runs).

TensorFlow's ops run alone, each in a tf.function, all blocks before PyTorch's (PyTorch's OpenMP
threads keep spinning after a call). A time is the mean over `--repeats` calls after one warm-up.
"""

import argparse
import time

from benchmarks.timing import configure

IMAGE_SIZE = 256
KERNEL = 4
OPS = ("forward", "input gradient", "filter gradient")


def decoder_layers():
    """(name, input channels, output channels, input side) of dec1-dec8, read from the Pix2Pix generator
    built for IMAGE_SIZE images (dec_k > 1 reads the concatenation of dec_{k-1} and an encoder output)."""
    from keras_sar2opt.models import pix2pix_generator  # after configure(): imports Keras
    from keras_sar2opt.models.pix2pix import DECODER_FILTERS

    generator = pix2pix_generator(IMAGE_SIZE)
    layers = []
    for k in range(1, len(DECODER_FILTERS) + 1):
        conv = generator.get_layer(f"dec{k}_conv")
        _, side, _, channels = conv.input.shape
        layers.append((f"dec{k}", channels, conv.filters, side))
    return layers


def _mean_seconds(call, repeats):
    call()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def tensorflow_times(layers, batch, repeats):
    """{layer name: seconds of each of OPS} for TensorFlow's kernels."""
    import numpy as np
    import tensorflow as tf

    rng, times = np.random.default_rng(0), {}
    strides = [1, 2, 2, 1]
    for name, cin, cout, side in layers:
        x = tf.constant(rng.standard_normal((batch, side, side, cin), np.float32))
        kernel = tf.constant(rng.standard_normal((KERNEL, KERNEL, cout, cin), np.float32))  # Keras's layout
        dy = tf.constant(rng.standard_normal((batch, 2 * side, 2 * side, cout), np.float32))
        output_shape = tf.constant([batch, 2 * side, 2 * side, cout])
        filter_shape = tf.constant([KERNEL, KERNEL, cout, cin])

        @tf.function
        def forward():
            return tf.raw_ops.Conv2DBackpropInput(
                input_sizes=output_shape, filter=kernel, out_backprop=x, strides=strides, padding="SAME"
            )

        @tf.function
        def input_gradient():
            return tf.raw_ops.Conv2D(input=dy, filter=kernel, strides=strides, padding="SAME")

        @tf.function
        def filter_gradient():
            return tf.raw_ops.Conv2DBackpropFilter(
                input=dy, filter_sizes=filter_shape, out_backprop=x, strides=strides, padding="SAME"
            )

        times[name] = [
            _mean_seconds(lambda op=op: op().numpy(), repeats) for op in (forward, input_gradient, filter_gradient)
        ]
    return times


def torch_times(layers, batch, repeats):
    """{layer name: seconds of each of OPS} for PyTorch's kernels."""
    import torch
    from torch.nn import functional

    torch.manual_seed(0)
    times = {}
    for name, cin, cout, side in layers:
        x = torch.randn(batch, cin, side, side)
        kernel = torch.randn(cin, cout, KERNEL, KERNEL)
        dy = torch.randn(batch, cout, 2 * side, 2 * side)

        def forward():
            with torch.no_grad():
                return functional.conv_transpose2d(x, kernel, stride=2, padding=1)

        def input_gradient():
            with torch.no_grad():
                return functional.conv2d(dy, kernel, stride=2, padding=1)

        def filter_gradient():
            with torch.no_grad():
                return torch.ops.aten.convolution_backward(
                    dy, x, kernel, None, [2, 2], [1, 1], [1, 1], True, [0, 0], 1, [False, True, False]
                )[1]

        times[name] = [_mean_seconds(op, repeats) for op in (forward, input_gradient, filter_gradient)]
    return times


def table(layers, keras, torch):
    """Markdown rows: per layer, each op's milliseconds in TensorFlow and PyTorch, then the sums and ratios."""
    header = " | ".join(f"{op}, TF ms | {op}, PyTorch ms" for op in OPS)
    lines = [f"| layer (in → out channels, input side) | {header} |", "|---" * (1 + 2 * len(OPS)) + "|"]
    sums = [0.0] * (2 * len(OPS))
    for name, cin, cout, side in layers:
        values = [value for pair in zip(keras[name], torch[name]) for value in pair]
        sums = [total + value for total, value in zip(sums, values)]
        cells = " | ".join(f"{1000 * value:.1f}" for value in values)
        lines.append(f"| {name} ({cin} → {cout}, {side}) | {cells} |")
    lines.append("| **sum** | " + " | ".join(f"**{1000 * value:.1f}**" for value in sums) + " |")
    ratios = ", ".join(f"{op} {sums[2 * i] / sums[2 * i + 1]:.2f}" for i, op in enumerate(OPS))
    return "\n".join(lines) + f"\n\nTensorFlow / PyTorch, sums of the times: {ratios}."


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per op (after one warm-up)")
    parser.add_argument("--batch", type=int, default=4, help="images per call")
    args = parser.parse_args(argv)
    runtime = configure("tensorflow")  # oneDNN on, both libraries on every core
    for key in ("cpu", "oneDNN kernels in TensorFlow, enabled at run time", "TensorFlow threads", "PyTorch threads"):
        print(f"- {key}: {runtime.get(key)}")
    layers = decoder_layers()
    keras = tensorflow_times(layers, args.batch, args.repeats)
    torch = torch_times(layers, args.batch, args.repeats)
    print(f"\nBatch {args.batch}, float32, mean of {args.repeats} calls after one warm-up:\n")
    print(table(layers, keras, torch))


if __name__ == "__main__":
    main()
