"""Reading one pair as network inputs (data/README.md), shared by the tf.data and PyDataset pipelines."""

import logging

import cv2
import numpy as np

from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.data.io import read_image, select_optical_bands, to_channels
from keras_sar2opt.data.preprocess import apply_preprocessing, check_preprocessing
from keras_sar2opt.data.scaling import (
    OpticalScaling,
    SarScaling,
    optical_to_unit,
    to_unit,
    warn_if_sar_scaling_mismatches,
)
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.text import counted

logger = logging.getLogger(__name__)
# Integer optical images whose 99th percentile is below this fraction of their type's maximum come
# out dark when scaled by bit depth (16-bit Sentinel-2 reflectance x10000 uses about 5% of it).
DARK_FRACTION = 0.25


def resize(image, size):
    """Resize HxWxC to size x size: area averaging when shrinking, bilinear when enlarging."""
    if image.shape[:2] == (size, size):
        return image
    shrink = image.shape[0] > size or image.shape[1] > size
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return resized.reshape(size, size, image.shape[-1])  # OpenCV drops a single channel axis


def _to_signed(image_unit):
    """[0, 1] -> [-1, 1], in place."""
    image_unit *= 2.0
    image_unit -= 1.0
    return image_unit


def load_pair(pair, image_size, sar_options=None, preprocessing=None, sar_channels=3, optical_options=None):
    """Read a pair as float32 (sar, optical) in [-1, 1], shapes (S, S, sar_channels) and (S, S, 3).

    SAR is scaled by `to_unit` with its SarScaling `sar_options` (None: the defaults), preprocessed
    on its own channels (`apply_preprocessing` steps), resized, then repeated to `sar_channels`;
    optical is scaled by `optical_to_unit` with its OpticalScaling `optical_options` (bands, range).
    """
    sar = apply_preprocessing(to_unit(read_image(pair.sar), sar_options or SarScaling()), preprocessing)
    optical = optical_to_unit(read_image(pair.optical), optical_options, pair.optical)
    if sar.shape[:2] != optical.shape[:2]:
        raise Sar2OptError(
            f"Expected {pair.optical} to be {sar.shape[0]}x{sar.shape[1]} like its SAR partner {pair.sar}, "
            f"received {optical.shape[0]}x{optical.shape[1]}"
        )
    sar = to_channels(_to_signed(resize(sar, image_size)), sar_channels, pair.sar)
    return sar, to_channels(_to_signed(resize(optical, image_size)), 3, pair.optical)


def check_dataset_options(
    pairs, image_size, batch_size, sar_options, preprocessing, sar_channels, optical_options=None, full_batch=False
):
    """Raise Sar2OptError, naming the option, for settings a dataset cannot be built with;
    full_batch: the dataset drops partial batches, so it needs `batch_size` pairs at least."""
    if not pairs:
        raise Sar2OptError("Expected at least one pair for the dataset, received none")
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise Sar2OptError(f"Expected an integer image size of at least 8, received {image_size!r}")
    check_positive_int(batch_size, "the batch size")
    if sar_channels not in (1, 3):
        raise Sar2OptError(f"Expected 1 or 3 SAR channels, received {sar_channels!r}")
    # Bad options fail here, with their own message, rather than inside tf.data.
    check_reading_options(sar_options, optical_options, preprocessing)
    if full_batch and len(pairs) < batch_size:
        raise Sar2OptError(
            f"Expected at least one full batch of {batch_size} pairs, received {counted(len(pairs), 'pair')}"
        )


def check_reading_options(sar_options=None, optical_options=None, preprocessing=None):
    """Raise Sar2OptError, naming the option, for SAR scaling, optical options or preprocessing steps
    that images cannot be read with (the scalings check their own values)."""
    for value, kind in ((sar_options, SarScaling), (optical_options, OpticalScaling)):
        if value is not None and not isinstance(value, kind):
            raise Sar2OptError(f"Expected a {kind.__name__} or None, received {value!r}")
    check_preprocessing(preprocessing)


def warn_about_scaling(pairs, sar_options, optical_options):
    """Warn, naming the option to pass, when the first pair's images look scaled wrongly (see
    `warn_if_sar_scaling_mismatches`, `warn_if_optical_is_dark`)."""
    if pairs:
        warn_if_sar_scaling_mismatches(read_image(pairs[0].sar), sar_options, pairs[0].sar)
        warn_if_optical_is_dark(pairs, optical_options)


def warn_if_optical_is_dark(pairs, optical_options):
    """Without an optical range, warn when the first pair's optical image (its chosen bands) is
    wider than 8 bits and uses little of its range (16-bit reflectance), naming an --optical-range
    that fits it."""
    if (optical_options is not None and optical_options.range is not None) or not pairs:
        return
    path = pairs[0].optical
    image = select_optical_bands(read_image(path), optical_options and optical_options.bands)  # as the networks
    if image.dtype.kind not in "ui" or image.dtype.itemsize < 2:
        return
    high = float(np.percentile(image, 99))
    top = np.iinfo(image.dtype).max
    if 0 < high < DARK_FRACTION * top:  # an empty (all-zero) tile says nothing
        logger.warning(
            f"Optical images such as {path} use values up to {high:.0f} of their type's {top}: scaled by "
            f"bit depth they come out dark; pass --optical-range 0 {high:.0f} (or your sensor's range)"
        )
