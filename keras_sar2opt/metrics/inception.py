"""The FID Inception network: the 2015 TensorFlow graph's InceptionV3, as pytorch-fid ports it (docs/metrics.md).

It differs from keras.applications.InceptionV3 in its weights and in three places, as pytorch-fid's
FIDInceptionA/C/E_1/E_2 describe: its 3x3 average pools leave the padding out of the average (as
TensorFlow's "same" pooling does), and the last block pools by maximum, not average. Every layer is
named after pytorch-fid's module path with "__" for ".", so the weight map is a naming rule. Each
convolution carries its BatchNorm (eps 1e-3) folded in at load time: the network is for inference only.
"""

import keras
import numpy as np

from keras_sar2opt.metrics.weights import check_layout, conv_kernel, read_weights, upstream_key

INPUT_SIZE = 299
FEATURES = 2048
BATCH_NORM_EPSILON = 1e-3  # torchvision's BasicConv2d
# Keys of the upstream file the features do not use: the 1008-class logits and BatchNorm's step counters.
IGNORED_KEYS = ("fc.", "num_batches_tracked")


def _conv(x, filters, kernel, name, strides=1, padding="valid"):
    """BasicConv2d: convolution (no bias upstream; the folded BatchNorm's shift here) and ReLU."""
    return keras.layers.Conv2D(filters, kernel, strides, padding=padding, activation="relu", name=name)(x)


def _pool(x, kind, name):
    """A 3x3, stride 1 pool that leaves the padding out (count_include_pad=False, or max)."""
    pool = keras.layers.AveragePooling2D if kind == "avg" else keras.layers.MaxPooling2D
    return pool(3, 1, padding="same", name=f"{name}__pool")(x)


def _block_a(x, pool_features, name):
    """FIDInceptionA (Mixed_5b-5d)."""
    b1 = _conv(x, 64, 1, f"{name}__branch1x1")
    b5 = _conv(_conv(x, 48, 1, f"{name}__branch5x5_1"), 64, 5, f"{name}__branch5x5_2", padding="same")
    b3 = _conv(x, 64, 1, f"{name}__branch3x3dbl_1")
    b3 = _conv(b3, 96, 3, f"{name}__branch3x3dbl_2", padding="same")
    b3 = _conv(b3, 96, 3, f"{name}__branch3x3dbl_3", padding="same")
    pool = _conv(_pool(x, "avg", name), pool_features, 1, f"{name}__branch_pool")
    return keras.layers.Concatenate(name=name)([b1, b5, b3, pool])


def _block_b(x, name):
    """InceptionB (Mixed_6a): the grid reduction from 35 to 17."""
    b3 = _conv(x, 384, 3, f"{name}__branch3x3", strides=2)
    dbl = _conv(x, 64, 1, f"{name}__branch3x3dbl_1")
    dbl = _conv(dbl, 96, 3, f"{name}__branch3x3dbl_2", padding="same")
    dbl = _conv(dbl, 96, 3, f"{name}__branch3x3dbl_3", strides=2)
    pool = keras.layers.MaxPooling2D(3, 2, name=f"{name}__pool")(x)
    return keras.layers.Concatenate(name=name)([b3, dbl, pool])


def _block_c(x, channels_7x7, name):
    """FIDInceptionC (Mixed_6b-6e): factorised 7x7 convolutions."""
    c = channels_7x7
    b1 = _conv(x, 192, 1, f"{name}__branch1x1")
    b7 = _conv(x, c, 1, f"{name}__branch7x7_1")
    b7 = _conv(b7, c, (1, 7), f"{name}__branch7x7_2", padding="same")
    b7 = _conv(b7, 192, (7, 1), f"{name}__branch7x7_3", padding="same")
    dbl = _conv(x, c, 1, f"{name}__branch7x7dbl_1")
    for index, (filters, kernel) in enumerate(((c, (7, 1)), (c, (1, 7)), (c, (7, 1)), (192, (1, 7))), start=2):
        dbl = _conv(dbl, filters, kernel, f"{name}__branch7x7dbl_{index}", padding="same")
    pool = _conv(_pool(x, "avg", name), 192, 1, f"{name}__branch_pool")
    return keras.layers.Concatenate(name=name)([b1, b7, dbl, pool])


def _block_d(x, name):
    """InceptionD (Mixed_7a): the grid reduction from 17 to 8."""
    b3 = _conv(_conv(x, 192, 1, f"{name}__branch3x3_1"), 320, 3, f"{name}__branch3x3_2", strides=2)
    b7 = _conv(x, 192, 1, f"{name}__branch7x7x3_1")
    b7 = _conv(b7, 192, (1, 7), f"{name}__branch7x7x3_2", padding="same")
    b7 = _conv(b7, 192, (7, 1), f"{name}__branch7x7x3_3", padding="same")
    b7 = _conv(b7, 192, 3, f"{name}__branch7x7x3_4", strides=2)
    pool = keras.layers.MaxPooling2D(3, 2, name=f"{name}__pool")(x)
    return keras.layers.Concatenate(name=name)([b3, b7, pool])


def _split_3x3(x, name, first, second):
    """Two parallel 1x3 and 3x1 convolutions of one input, concatenated (InceptionE)."""
    a = _conv(x, 384, (1, 3), f"{name}__{first}", padding="same")
    b = _conv(x, 384, (3, 1), f"{name}__{second}", padding="same")
    return keras.layers.Concatenate(name=f"{name}__{first[:-1]}")([a, b])


def _block_e(x, pool, name):
    """FIDInceptionE_1 (pool "avg", Mixed_7b) and FIDInceptionE_2 (pool "max", Mixed_7c)."""
    b1 = _conv(x, 320, 1, f"{name}__branch1x1")
    b3 = _split_3x3(_conv(x, 384, 1, f"{name}__branch3x3_1"), name, "branch3x3_2a", "branch3x3_2b")
    dbl = _conv(_conv(x, 448, 1, f"{name}__branch3x3dbl_1"), 384, 3, f"{name}__branch3x3dbl_2", padding="same")
    dbl = _split_3x3(dbl, name, "branch3x3dbl_3a", "branch3x3dbl_3b")
    pooled = _conv(_pool(x, pool, name), 192, 1, f"{name}__branch_pool")
    return keras.layers.Concatenate(name=name)([b1, b3, dbl, pooled])


def fid_inception(name="fid_inception"):
    """The FID Inception network, untrained: (N, H, W, 3) images in [0, 1] -> (N, 2048) pool features.

    As pytorch-fid's InceptionV3([3]): bilinear resize to 299x299 (align_corners=False, no antialiasing),
    scaling to [-1, 1], the blocks up to Mixed_7c and a global average pool.
    """
    images = keras.Input((None, None, 3), name="images")
    x = keras.layers.Resizing(INPUT_SIZE, INPUT_SIZE, interpolation="bilinear", name="resize")(images)
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="normalize")(x)
    x = _conv(x, 32, 3, "Conv2d_1a_3x3", strides=2)
    x = _conv(x, 32, 3, "Conv2d_2a_3x3")
    x = _conv(x, 64, 3, "Conv2d_2b_3x3", padding="same")
    x = keras.layers.MaxPooling2D(3, 2, name="maxpool1")(x)
    x = _conv(x, 80, 1, "Conv2d_3b_1x1")
    x = _conv(x, 192, 3, "Conv2d_4a_3x3")
    x = keras.layers.MaxPooling2D(3, 2, name="maxpool2")(x)
    for block, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = _block_a(x, pool_features, block)
    x = _block_b(x, "Mixed_6a")
    for block, channels in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = _block_c(x, channels, block)
    x = _block_d(x, "Mixed_7a")
    x = _block_e(x, "avg", "Mixed_7b")
    x = _block_e(x, "max", "Mixed_7c")
    features = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    return keras.Model(images, features, name=name)


def _convolutions(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def load_fid_inception(weights=None, weights_dir=None, progress=True):
    """The FID Inception network with the weights of pytorch-fid's file: `weights` (a path, used as it is),
    else the cached file, downloaded once (docs/metrics.md)."""
    state, path = read_weights("fid_inception", weights, weights_dir, progress)
    model = fid_inception()
    shapes = {}
    for layer in _convolutions(model):
        prefix = upstream_key(layer)
        kh, kw, cin, cout = layer.kernel.shape
        shapes[f"{prefix}.conv.weight"] = (cout, cin, kh, kw)
        shapes.update({f"{prefix}.bn.{part}": (cout,) for part in ("weight", "bias", "running_mean", "running_var")})
    check_layout(state, shapes, path, IGNORED_KEYS)
    for layer in _convolutions(model):
        prefix = upstream_key(layer)
        bn = {part: np.asarray(state[f"{prefix}.bn.{part}"], np.float64) for part in ("weight", "bias")}
        mean, variance = (np.asarray(state[f"{prefix}.bn.running_{p}"], np.float64) for p in ("mean", "var"))
        scale = bn["weight"] / np.sqrt(variance + BATCH_NORM_EPSILON)
        kernel = conv_kernel(state[f"{prefix}.conv.weight"]).astype(np.float64) * scale
        layer.set_weights([kernel.astype(np.float32), (bn["bias"] - mean * scale).astype(np.float32)])
    return model
