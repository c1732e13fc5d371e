"""SAR preprocessing of report §3.5 (median 7x7, gamma 7) plus Lee, enhanced Lee, Frost and histogram matching.

Every function takes a float image in [0, 1], HxW or HxWxC, works channel by channel and
returns float32 in [0, 1].
"""

import functools
import inspect
from pathlib import Path

import numpy as np
from scipy import ndimage

from keras_sar2opt.data.io import read_image
from keras_sar2opt.data.scaling import to_unit
from keras_sar2opt.errors import Sar2OptError

GAMMA_CONVENTIONS = ("power", "inverse")


def _as_image(image):
    return np.asarray(image, dtype=np.float32)


def _size(image, window):
    """Filter footprint: window x window in space, 1 across channels."""
    if int(window) != window or window < 1 or window % 2 == 0:
        raise Sar2OptError(f"Expected an odd positive filter window, received {window!r}")
    return (int(window), int(window)) + (1,) * (image.ndim - 2)


def _local_stats(image, window):
    size = _size(image, window)
    mean = ndimage.uniform_filter(image, size, mode="reflect")
    variance = np.maximum(ndimage.uniform_filter(image * image, size, mode="reflect") - mean * mean, 0.0)
    return mean, variance


def _finish(image):
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def median_filter(image, window=7):
    """Median over a window x window neighbourhood (report §3.5: 7x7), borders reflected."""
    image = _as_image(image)
    return _finish(ndimage.median_filter(image, size=_size(image, window), mode="reflect"))


def gamma_correction(image, gamma=7.0, convention="power"):
    """Gamma correction (report §3.5: gamma 7), in either convention, since the report gives no formula.

    "power": out = in ** gamma (darkens; 0.5 -> 0.008 for gamma 7);
    "inverse": out = in ** (1 / gamma) (brightens; 0.5 -> 0.906).
    """
    if convention not in GAMMA_CONVENTIONS:
        raise Sar2OptError(f"Expected gamma convention among {', '.join(GAMMA_CONVENTIONS)}, received {convention!r}")
    if not gamma > 0:
        raise Sar2OptError(f"Expected a positive gamma, received {gamma!r}")
    exponent = gamma if convention == "power" else 1.0 / gamma
    return _finish(np.power(np.clip(_as_image(image), 0.0, 1.0), exponent))


def lee_filter(image, window=7, looks=1):
    """Lee filter for multiplicative speckle with `looks` looks (noise variation 1 / looks).

    out = m + k (in - m), k = var_x / var, var_x = (var - m^2 / looks) / (1 + 1 / looks),
    with local mean m and variance var over the window.
    """
    image = _as_image(image)
    mean, variance = _local_stats(image, window)
    noise = 1.0 / looks
    signal = (variance - mean * mean * noise) / (1.0 + noise)
    gain = np.clip(signal / np.maximum(variance, 1e-12), 0.0, 1.0)
    return _finish(mean + gain * (image - mean))


def enhanced_lee_filter(image, window=7, looks=1, damping=1.0):
    """Enhanced Lee filter (Lopes et al.): the local mean in homogeneous areas (variation below
    1/sqrt(looks)), the input at point targets (above sqrt(1 + 2/looks)), a damped blend between."""
    image = _as_image(image)
    mean, variance = _local_stats(image, window)
    floor, ceiling = 1.0 / np.sqrt(looks), np.sqrt(1.0 + 2.0 / looks)
    variation = np.sqrt(variance) / np.maximum(mean, 1e-12)
    between = np.clip(variation, floor, ceiling - 1e-6)
    weight = np.exp(-damping * (between - floor) / (ceiling - between))
    blended = mean * weight + image * (1.0 - weight)
    return _finish(np.where(variation <= floor, mean, np.where(variation >= ceiling, image, blended)))


def frost_filter(image, window=7, damping=2.0):
    """Frost filter: a weighted mean with weights exp(-damping * C^2 * distance), where C is the
    local coefficient of variation, so edges (high C) keep their detail."""
    image = _as_image(image)
    mean, variance = _local_stats(image, window)
    strength = damping * variance / np.maximum(mean * mean, 1e-12)
    half = _size(image, window)[0] // 2
    padded = np.pad(image, [(half, half), (half, half)] + [(0, 0)] * (image.ndim - 2), mode="reflect")
    height, width = image.shape[:2]
    total, weights = np.zeros_like(image), np.zeros_like(image)
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            weight = np.exp(-strength * np.hypot(dy, dx))
            total += weight * padded[half + dy : half + dy + height, half + dx : half + dx + width]
            weights += weight
    return _finish(total / weights)


@functools.lru_cache(maxsize=8)
def _load_reference(paths):
    return [to_unit(read_image(path)) for path in paths]


def _reference_channels(reference):
    """Per-channel pooled values of a reference image, path, or list of them (a reference domain)."""
    items = reference if isinstance(reference, (list, tuple)) else [reference]
    paths = tuple(str(item) for item in items if isinstance(item, (str, Path)))
    images = _load_reference(paths) + [_as_image(item) for item in items if not isinstance(item, (str, Path))]
    images = [image[..., None] if image.ndim == 2 else image for image in images]
    channels = {image.shape[-1] for image in images}
    if len(channels) != 1:
        raise Sar2OptError(f"Expected reference images with one channel count, received {sorted(channels)}")
    return [np.concatenate([image[..., c].ravel() for image in images]) for c in range(channels.pop())]


def _match_channel(values, reference):
    source, inverse, counts = np.unique(values.ravel(), return_inverse=True, return_counts=True)
    target, target_counts = np.unique(reference, return_counts=True)
    quantiles = np.cumsum(counts) / values.size
    target_quantiles = np.cumsum(target_counts) / reference.size
    return np.interp(quantiles, target_quantiles, target)[inverse].reshape(values.shape)


def histogram_match(image, reference):
    """Map each channel's value distribution onto the reference's (cumulative histogram matching).

    `reference` is an image array, a path, or a list of them pooled as a reference domain (e.g.
    SAR tiles of the training sensor); a one-channel reference applies to every channel.
    """
    image = _as_image(image)
    reference = _reference_channels(reference)
    if image.ndim == 2:
        return _finish(_match_channel(image, reference[0]))
    if len(reference) not in (1, image.shape[-1]):
        raise Sar2OptError(f"Expected a reference with 1 or {image.shape[-1]} channels, received {len(reference)}")
    matched = [_match_channel(image[..., c], reference[c % len(reference)]) for c in range(image.shape[-1])]
    return _finish(np.stack(matched, axis=-1))


PREPROCESSORS = {
    "median": median_filter,
    "gamma": gamma_correction,
    "lee": lee_filter,
    "enhanced_lee": enhanced_lee_filter,
    "frost": frost_filter,
    "histogram_match": histogram_match,
}


def apply_preprocessing(image, steps):
    """Apply steps in order, e.g. [("median", {"window": 7}), ("gamma", {"gamma": 7, "convention": "power"})].

    A step is a name or a (name, options) pair; names come from `PREPROCESSORS`.
    """
    image = _as_image(image)
    for step in steps or ():
        name, options = (step, {}) if isinstance(step, str) else step
        if name not in PREPROCESSORS:
            raise Sar2OptError(f"Expected a preprocessing step among {', '.join(PREPROCESSORS)}, received {name!r}")
        allowed = list(inspect.signature(PREPROCESSORS[name]).parameters)[1:]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise Sar2OptError(f"Expected options of {name} among {', '.join(allowed)}, received {', '.join(unknown)}")
        try:
            image = PREPROCESSORS[name](image, **options)
        except Sar2OptError as error:
            raise Sar2OptError(f"{error} (preprocessing step {name})") from None
    return image


def check_preprocessing(steps):
    """Raise Sar2OptError, naming the step, for steps that cannot be applied (checked on an 8x8 image)."""
    apply_preprocessing(np.full((8, 8, 1), 0.5, np.float32), steps)


def describe_steps(steps):
    """Preprocessing steps as text, e.g. "median 7 → gamma 7 (power)"; "none" without steps."""
    parts = []
    for name, options in steps or ():
        value = options.get("window", options.get("gamma"))
        text = f"{name} {value:g}" if value is not None else name
        parts.append(text + (f" ({options['convention']})" if "convention" in options else ""))
    return " → ".join(parts) or "none"
