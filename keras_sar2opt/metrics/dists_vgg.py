"""DISTS, as `DISTS_pytorch.DISTS()` computes it (docs/metrics.md).

Both images (in [0, 1]) are normalised with ImageNet's mean and std and passed through torchvision's
VGG16 features, whose max pools are replaced by L2 pools (a 3x3 Hann window, stride 2). At the input
and at the five stage outputs, each channel's mean (structure S1) and variance/covariance (texture S2)
are compared; the learned α and β weight them, and DISTS = 1 - Σ(α·S1 + β·S2) / Σ(α + β).
Convolutions are named after the upstream keys ("features__28" holds features.28.weight and .bias).
"""

import keras
import numpy as np

from keras_sar2opt.metrics.weights import check_layout, load_convolutions, read_weights

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# VGG16's convolutions per stage by upstream index; an L2 pool precedes every stage but the first.
STAGES = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
CHANNELS = (3, 64, 128, 256, 512, 512)  # of the input and of each stage's output
STABILITY = 1e-6  # DISTS's c1 and c2
L2_POOL_EPSILON = 1e-12


@keras.saving.register_keras_serializable(package="keras_sar2opt")
class L2Pooling(keras.layers.Layer):
    """sqrt(Hann-weighted 3x3 sum of x², stride 2, zero padding 1 + 1e-12), per channel (DISTS's L2pooling)."""

    def call(self, x):
        window = np.hanning(5)[1:-1]
        kernel = np.outer(window, window) / np.outer(window, window).sum()
        kernel = np.tile(kernel[:, :, None, None], (1, 1, x.shape[-1], 1)).astype(np.float32)
        padded = keras.ops.pad(keras.ops.square(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
        pooled = keras.ops.depthwise_conv(padded, kernel, strides=2, padding="valid")
        return keras.ops.sqrt(pooled + L2_POOL_EPSILON)


@keras.saving.register_keras_serializable(package="keras_sar2opt")
class DistsScore(keras.layers.Layer):
    """1 - Σ over the six feature maps of α·S1 + β·S2, with α and β (one per channel) normalised by their sum."""

    def build(self, input_shape):
        self.alpha = self.add_weight(shape=(sum(CHANNELS),), initializer="ones", name="alpha", trainable=False)
        self.beta = self.add_weight(shape=(sum(CHANNELS),), initializer="ones", name="beta", trainable=False)

    def call(self, features):
        ops = keras.ops
        total = ops.sum(self.alpha) + ops.sum(self.beta)
        structure, texture = [], []
        for x, y in zip(features[: len(CHANNELS)], features[len(CHANNELS) :]):
            x_mean, y_mean = ops.mean(x, axis=(1, 2)), ops.mean(y, axis=(1, 2))
            x_var = ops.mean(ops.square(x - x_mean[:, None, None]), axis=(1, 2))
            y_var = ops.mean(ops.square(y - y_mean[:, None, None]), axis=(1, 2))
            covariance = ops.mean(x * y, axis=(1, 2)) - x_mean * y_mean
            structure.append((2 * x_mean * y_mean + STABILITY) / (x_mean**2 + y_mean**2 + STABILITY))
            texture.append((2 * covariance + STABILITY) / (x_var + y_var + STABILITY))
        similarity = ops.concatenate(structure, axis=-1) * self.alpha + ops.concatenate(texture, axis=-1) * self.beta
        return 1.0 - ops.sum(similarity, axis=-1) / total


def vgg16_stages(name="vgg16"):
    """DISTS's VGG16: (N, H, W, 3) in [0, 1] -> its five stage outputs."""
    images = keras.Input((None, None, 3))
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    x = keras.layers.Rescaling(1.0 / std, offset=-mean / std, name="imagenet_normalize")(images)
    outputs = []
    for stage, convolutions in enumerate(STAGES):
        if stage:
            x = L2Pooling(name=f"features__{convolutions[0] - 1}")(x)
        for index in convolutions:
            x = keras.layers.Conv2D(
                CHANNELS[stage + 1], 3, padding="same", activation="relu", name=f"features__{index}"
            )(x)
        outputs.append(x)
    return keras.Model(images, outputs, name=name)


def dists_model(name="dists"):
    """DISTS, untrained: two (N, H, W, 3) batches in [0, 1] -> (N,) distances."""
    backbone = vgg16_stages()
    inputs = [keras.Input((None, None, 3), name=role) for role in ("pred", "target")]
    features = [tensor for image in inputs for tensor in (image, *backbone(image))]
    return keras.Model(inputs, DistsScore(name="alpha_beta")(features), name=name)


def load_dists(weights=None, weights_dir=None, progress=True):
    """DISTS with torchvision's VGG16 and DISTS_pytorch's α/β.

    weights: None (both files from the cache, downloaded once) or {"vgg16": path, "dists": path}, either
    key optional (docs/metrics.md).
    """
    weights = dict(weights or {})
    model = dists_model()
    state, path = read_weights("vgg16", weights.get("vgg16"), weights_dir, progress)
    load_convolutions(model.get_layer("vgg16"), state, path, ignored=("classifier.",))
    alpha_beta, path = read_weights("dists", weights.get("dists"), weights_dir, progress)
    check_layout(alpha_beta, {key: (1, sum(CHANNELS), 1, 1) for key in ("alpha", "beta")}, path)
    model.get_layer("alpha_beta").set_weights(
        [alpha_beta[key].reshape(-1).astype(np.float32) for key in ("alpha", "beta")]
    )
    return model
