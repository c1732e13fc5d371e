"""LPIPS v0.1 with the AlexNet backbone, as `lpips.LPIPS(net='alex')` computes it (docs/metrics.md).

Both images are shifted and scaled per channel, passed through torchvision's AlexNet features, and
at each of its five ReLU outputs the channel vectors are normalised to unit length; the squared
differences are weighted per channel by the package's linear heads (1x1 convolutions without bias),
averaged over space and summed over the five layers. Layers are named after the upstream keys
("features__3" holds features.3.weight and .bias, "lin2" holds lin2.model.1.weight).
"""

import keras
import numpy as np

from keras_sar2opt.metrics.weights import check_layout, conv_kernel, load_convolutions, read_weights

# lpips's ScalingLayer, on inputs in [-1, 1]: (x - shift) / scale per RGB channel.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# (upstream index, filters, kernel, stride, padding) of AlexNet's convolutions; a 3x3/2 max pool
# precedes the 2nd and the 3rd. LPIPS taps the ReLU after each one.
ALEXNET = ((0, 64, 11, 4, 2), (3, 192, 5, 1, 2), (6, 384, 3, 1, 1), (8, 256, 3, 1, 1), (10, 256, 3, 1, 1))
NORMALIZE_EPSILON = 1e-10


@keras.saving.register_keras_serializable(package="keras_sar2opt")
class UnitNormalize(keras.layers.Layer):
    """Each pixel's channel vector divided by its length + epsilon (lpips.normalize_tensor)."""

    def __init__(self, epsilon=NORMALIZE_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        return x / (keras.ops.sqrt(keras.ops.sum(keras.ops.square(x), axis=-1, keepdims=True)) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def alexnet_features(name="alexnet"):
    """torchvision AlexNet's feature stack: (N, H, W, 3) -> its five ReLU outputs."""
    images = keras.Input((None, None, 3))
    x, taps = images, []
    for index, (upstream, filters, kernel, stride, padding) in enumerate(ALEXNET):
        if index in (1, 2):
            x = keras.layers.MaxPooling2D(3, 2, name=f"features__{upstream - 1}")(x)
        x = keras.layers.ZeroPadding2D(padding, name=f"features__{upstream}_pad")(x)
        x = keras.layers.Conv2D(filters, kernel, stride, activation="relu", name=f"features__{upstream}")(x)
        taps.append(x)
    return keras.Model(images, taps, name=name)


def lpips_alex(name="lpips_alex"):
    """LPIPS (AlexNet, v0.1), untrained: two (N, H, W, 3) batches in [-1, 1] -> (N, 1) distances."""
    backbone = alexnet_features()
    inputs = [keras.Input((None, None, 3), name=role) for role in ("pred", "target")]
    shift = np.asarray(SHIFT, np.float32)
    scale = np.asarray(SCALE, np.float32)
    scaling = keras.layers.Rescaling(1.0 / scale, offset=-shift / scale, name="scaling")
    taps = [backbone(scaling(image)) for image in inputs]
    distances = []
    for k, (a, b) in enumerate(zip(*taps)):
        difference = keras.layers.Subtract(name=f"difference{k}")(
            [UnitNormalize(name=f"normalize{k}_{role}")(tap) for role, tap in (("pred", a), ("target", b))]
        )
        weighted = keras.layers.Conv2D(1, 1, use_bias=False, name=f"lin{k}")(keras.ops.square(difference))
        distances.append(keras.layers.GlobalAveragePooling2D(name=f"average{k}")(weighted))
    return keras.Model(inputs, keras.layers.Add(name="lpips")(distances), name=name)


def load_lpips_alex(weights=None, weights_dir=None, progress=True):
    """LPIPS with torchvision's AlexNet and the lpips package's v0.1 heads.

    weights: None (both files from the cache, downloaded once) or {"alexnet": path, "lpips_alex": path},
    either key optional (docs/metrics.md).
    """
    weights = dict(weights or {})
    model = lpips_alex()
    state, path = read_weights("alexnet", weights.get("alexnet"), weights_dir, progress)
    load_convolutions(model.get_layer("alexnet"), state, path, ignored=("classifier.",))
    heads, path = read_weights("lpips_alex", weights.get("lpips_alex"), weights_dir, progress)
    lins = [model.get_layer(f"lin{k}") for k in range(len(ALEXNET))]
    check_layout(heads, {f"{lin.name}.model.1.weight": (1, lin.kernel.shape[2], 1, 1) for lin in lins}, path)
    for lin in lins:
        lin.set_weights([conv_kernel(heads[f"{lin.name}.model.1.weight"])])
    return model
