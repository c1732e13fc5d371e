"""Image decoding and radiometric scaling for SAR and optical tiles (report §3.4, data/README.md)."""

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.files import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TIFF_EXTENSIONS = (".tif", ".tiff")
# End-of-file markers, searched in a file's last 64 bytes: a file without one was cut short.
_END_MARKERS = {".png": b"IEND", ".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9"}
# Largest image read whole (a 11,585-pixel square): a header declaring more is refused before
# decoding, so a small file cannot claim gigabytes (a decompression bomb). Whole scenes are
# translated in windows by `sar2opt translate` instead.
MAX_IMAGE_PIXELS = 2**27
MAX_IMAGE_CHANNELS = 64


class ImageInfo(NamedTuple):
    height: int
    width: int
    channels: int


def _require_image_file(path):
    path = Path(path)
    if not path.is_file():
        if path.is_symlink():
            raise Sar2OptError(f"Expected an image file, received {path}, a symbolic link that loops or leads nowhere")
        what = "a folder" if path.is_dir() else "which does not exist"
        raise Sar2OptError(f"Expected an image file, received {path}, {what}")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise Sar2OptError(f"Expected an image ending in {', '.join(IMAGE_EXTENSIONS)}, received {path}")
    if path.stat().st_size == 0:
        raise Sar2OptError(f"Expected image data in {path}, received an empty file (0 bytes)")
    return path


def _check_complete(path, tail):
    """A PNG/JPEG cut short has no end-of-file marker in its last bytes."""
    if _END_MARKERS[path.suffix.lower()] not in tail[-64:]:
        raise Sar2OptError(f"Expected a complete {path.suffix} file, received {path}, which is truncated")


def _check_size(path, info):
    """Refuse a header declaring no pixels, or more than MAX_IMAGE_PIXELS / MAX_IMAGE_CHANNELS."""
    if min(info) < 1:
        raise Sar2OptError(f"Expected a non-empty image, received {path} of {info.width}x{info.height}x{info.channels}")
    if info.height * info.width > MAX_IMAGE_PIXELS or info.channels > MAX_IMAGE_CHANNELS:
        raise Sar2OptError(
            f"Expected at most {MAX_IMAGE_PIXELS:,} pixels and {MAX_IMAGE_CHANNELS} channels, received {path} "
            f"declaring {info.width}x{info.height}x{info.channels} (refused before decoding)"
        )
    return info


def _read_header(path, verify=False):
    """Size and channels of a PNG/JPEG from its header, after checking that the file is complete
    and that its size is within MAX_IMAGE_PIXELS. verify: also check every PNG chunk's CRC (this
    reads the file), so that damaged data is refused here rather than by libpng, which complains
    on stderr."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = len(image.getbands())
            if verify:
                image.verify()
    except Image.DecompressionBombError as error:
        raise Sar2OptError(f"Expected at most {MAX_IMAGE_PIXELS:,} pixels, received {path} ({error})") from None
    except Exception:  # any failure to parse a header means the file is not a readable image
        raise Sar2OptError(f"Expected a readable {path.suffix} image, received {path}, which is not one") from None
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 64))
        _check_complete(path, handle.read())
    return _check_size(path, ImageInfo(height, width, channels))


class _QuietWhileReading(logging.Filter):
    """Drops rasterio's log records (GDAL's remarks on a damaged file) emitted in a thread while it is
    inside `_read_tiff`, which reports a file it cannot read in one line of its own."""

    reading = threading.local()

    def filter(self, record):
        return not getattr(self.reading, "active", False)


_QUIET = _QuietWhileReading()
for _name in ("rasterio._env", "rasterio._err", "rasterio._io", "rasterio._base"):
    logging.getLogger(_name).addFilter(_QUIET)
# Filters, not catch_warnings() (which is not thread-safe; find_pairs reads files in threads): a
# plain TIFF has no georeferencing, which is fine here, and the pixel limit is MAX_IMAGE_PIXELS.
warnings.filterwarnings("ignore", message="Dataset has no geotransform")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _read_tiff(path):
    """A TIFF/GeoTIFF's bands, HxWxC, its header checked (`_check_size`) before the pixels are read."""
    import rasterio  # GDAL reads every GeoTIFF compression; imported here as it is slow to load

    _QUIET.reading.active = True
    try:
        with rasterio.open(path) as dataset:
            _check_size(path, ImageInfo(dataset.height, dataset.width, dataset.count))
            bands = dataset.read()
    except Sar2OptError:
        raise
    except Exception as error:  # GDAL's errors on a damaged file come under several types
        reason = " ".join(str(error).split())[:200]
        raise Sar2OptError(f"Expected a readable TIFF, received {path} ({type(error).__name__}: {reason})") from None
    finally:
        _QUIET.reading.active = False
    return np.moveaxis(bands, 0, -1)


def _read_raster(path):
    _read_header(path, verify=True)  # complete, undamaged, and of a size worth decoding
    try:
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise Sar2OptError(f"Expected a readable {path.suffix} image, received {path}, which cannot be decoded")
    if image.ndim == 3:  # OpenCV decodes to BGR(A)
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image


def read_image(path):
    """Decode an image file to an HxWxC array of its native dtype (uint8, uint16 or float).

    PNG/JPEG go through OpenCV (8- and 16-bit), TIFF/GeoTIFF through rasterio. Raises
    `Sar2OptError` naming the file when it is missing, empty, truncated, unreadable, declares
    more than MAX_IMAGE_PIXELS pixels, or holds complex or non-finite values.
    """
    path = _require_image_file(path)
    image = _read_tiff(path) if path.suffix.lower() in TIFF_EXTENSIONS else _read_raster(path)
    if image.ndim == 2:
        image = image[..., None]
    if image.size == 0:
        raise Sar2OptError(f"Expected a non-empty image, received {path} with shape {image.shape}")
    if image.dtype.kind not in "uif":
        raise Sar2OptError(f"Expected integer or real pixel values in {path}, received {image.dtype}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        bad = int(image.size - np.count_nonzero(np.isfinite(image)))
        raise Sar2OptError(f"Expected finite values in {path}, received {bad} NaN or infinite pixels")
    return image


def inspect_image(path):
    """Check a file and return its `ImageInfo`, raising `Sar2OptError` naming it if bad.

    PNG/JPEG: header and end-of-file marker only (no decode). TIFF: the header, then the
    pixels, so non-finite values are found before training rather than mid-epoch.
    """
    path = _require_image_file(path)
    if path.suffix.lower() in TIFF_EXTENSIONS:
        return ImageInfo(*read_image(path).shape)
    return _read_header(path)


def to_channels(image, channels=3, path=None):
    """Return an HxWxC image with `channels` (1 or 3) channels.

    One channel is repeated to three (the report's networks take 3); a second band (grey+alpha,
    or VH of dual-pol SAR) and an alpha channel are dropped; three channels become one by
    averaging.
    """
    count = image.shape[-1]
    if count not in (1, 2, 3, 4):
        where = f" in {path}" if path else ""
        raise Sar2OptError(f"Expected 1 to 4 channels{where}, received {count}")
    if channels == 1:
        return image[..., :1] if count <= 2 else image[..., :3].mean(axis=-1, keepdims=True)
    if channels == 3:
        return np.repeat(image[..., :1], 3, axis=-1) if count <= 2 else image[..., :3]
    raise Sar2OptError(f"Expected 1 or 3 output channels, received {channels}")


def check_sar_band(count, band, path=None):
    """Raise Sar2OptError, naming `path`, unless a SAR image of `count` bands has `band` or, without
    it, at most 4 bands."""
    where = f" in {path}" if path is not None else ""
    if band is not None and band > count:
        raise Sar2OptError(f"Expected SAR band {band}{where}, received {count} band{'s' * (count != 1)}")
    if band is None and count > 4:
        raise Sar2OptError(f"Expected 1 to 4 SAR bands{where}, received {count}: choose one with --sar-band")


def select_sar_band(array, band=None, path=None):
    """The SAR band(s) of an HxWxC image that are scaled and fed to a model: `band` (counted from 1),
    else the first of two (VV of a VV, VH stack; grey of grey + alpha), else all."""
    check_sar_band(array.shape[-1], band, path)
    if band is not None:
        return array[..., band - 1 : band]
    return array[..., :1] if array.shape[-1] == 2 else array


def check_optical_bands(count, bands, path=None):
    """Raise Sar2OptError, naming `path`, unless an optical image of `count` bands has the `bands`
    asked for, or without `bands` at most 4 (grey, grey + alpha, RGB, RGBA)."""
    where = f" in {path}" if path is not None else ""
    if bands is not None and max(bands) > count:
        raise Sar2OptError(f"Expected optical band {max(bands)}{where}, received {count} bands")
    if bands is None and count > 4:
        raise Sar2OptError(
            f"Expected 1 to 4 optical bands{where}, received {count}: choose 1 or 3 with --optical-bands "
            "(e.g. 4 3 2, Sentinel-2's red, green and blue)"
        )


def select_optical_bands(array, bands):
    """The `bands` (counted from 1; None: all) of an HxWxC image, checked by `check_optical_bands`."""
    return array if bands is None else array[..., [band - 1 for band in bands]]


def write_png(path, image_unit_float):
    """Write a [0, 1] float image (HxW, HxWx1 or HxWx3) as an 8-bit PNG, atomically; returns the path."""
    image = np.round(np.clip(np.asarray(image_unit_float, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    return write_png_values(path, image)


def write_png_values(path, image):
    """Write a uint8 or uint16 image (HxW, HxWx1 or HxWx3) as a PNG of its bit depth, atomically; returns the path."""
    path = Path(path)
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    try:
        with atomic_path(path) as temporary:
            if not cv2.imwrite(os.fspath(temporary), image):
                raise OSError("OpenCV could not write it")
    except OSError as error:
        raise Sar2OptError(f"Expected a writable PNG path, received {path} ({error})") from None
    return path
