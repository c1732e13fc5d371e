"""Scene I/O in row windows: georeferenced GeoTIFF sources and sinks, PNG and masked sinks, downsampling, previews."""

import contextlib
import math
import warnings
from pathlib import Path

import numpy as np

from keras_sar2opt import files
from keras_sar2opt.data.grids import label_band
from keras_sar2opt.data.io import (
    TIFF_EXTENSIONS,
    check_sar_band,
    select_sar_band,
    to_channels,
    write_png,
    write_png_values,
)
from keras_sar2opt.data.preprocess import apply_preprocessing
from keras_sar2opt.data.scaling import (
    DEFAULT_PERCENTILES,
    SarScaling,
    check_value_range,
    linear_to_db,
    resolve_sar_input,
    to_unit,
    warn_if_sar_scaling_mismatches,
)
from keras_sar2opt.errors import Sar2OptError

# Preprocessing steps a windowed scene can apply strip by strip: pointwise, or local within
# `window` (each strip is read with a halo of the windows' window // 2 rows summed, so results equal
# whole-image ones).
POINTWISE_STEPS = ("gamma",)
LOCAL_STEPS = ("median", "lee", "enhanced_lee", "frost")
DEFAULT_WINDOW = 7
# Scaling statistics (percentiles) of a scene come from a decimated read of at most this many pixels.
OVERVIEW_PIXELS = 1 << 20
# GDAL's block cache (MB) while a scene is translated; its default is 5% of the machine's memory.
GDAL_CACHE_MB = 256
GRID_MAX_SIDE = 1024
# GeoTIFF outputs get overviews (2x, 4x, ...) down to about this side, so GIS software shows a
# whole scene without reading every pixel.
OVERVIEW_MIN_SIDE = 256
GRID_GAP = 8


def _step_options(steps):
    return [(step, {}) if isinstance(step, str) else step for step in steps or ()]


def scene_halo(steps):
    """Rows of context a strip needs so windowed preprocessing equals whole-image preprocessing: the
    sum of the local filters' half windows."""
    halo = 0
    for name, options in _step_options(steps):
        if name in LOCAL_STEPS:
            halo += int(options.get("window", DEFAULT_WINDOW)) // 2  # chained filters widen the context
        elif name not in POINTWISE_STEPS:
            raise Sar2OptError(
                f"Expected scene preprocessing among {', '.join(POINTWISE_STEPS + LOCAL_STEPS)}, received {name!r}"
            )
    return halo


def strip_sar_options(overview, sar):
    """The SarScaling that makes `to_unit` pointwise for a scene read with `sar`, its statistics
    taken from `overview` (its pixels' bands along the last axis).

    Percentile stretches become fixed [low, high] ranges computed on the overview's band in use
    (`select_sar_band`), so every strip of a scene is scaled the same way.
    """
    sar = sar or SarScaling()
    overview = select_sar_band(overview, sar.band)
    kind = resolve_sar_input(overview, sar.kind)
    values = overview.astype(np.float32)
    if kind == "image":
        if overview.dtype.kind in "ui" and sar.percentiles is None:
            return SarScaling(input="image", band=sar.band)
        if sar.percentiles is None and values.min() >= 0.0 and values.max() <= 1.0:
            return SarScaling(input="db", db_range=(0.0, 1.0), band=sar.band)
        # "db" with a db_range is a fixed linear stretch of the values as they are.
        kind = "db"
    elif sar.db_range is not None:
        return SarScaling(input=kind, db_range=sar.db_range, band=sar.band)
    elif kind != "db":
        values = linear_to_db(values, amplitude=kind == "amplitude")
    low, high = (float(v) for v in np.percentile(values, sar.percentiles or DEFAULT_PERCENTILES))
    return SarScaling(
        input=kind, db_range=(low, high if high > low else low + max(abs(low), 1.0) * 1e-6), band=sar.band
    )


class Downsampled:
    """A source averaged over `factor` x `factor` blocks (as training's area resize of tiles by
    1/factor): a scene at the ground resolution such a model learned. Rows and columns past the last
    whole block are left out; a block is valid only where all its pixels are."""

    def __init__(self, source, factor):
        self.source, self.factor = source, factor
        self.height, self.width = source.height // factor, source.width // factor
        if not (self.height and self.width):
            raise Sar2OptError(
                f"Expected an image of at least {factor}x{factor} pixels for --downsample {factor}, "
                f"received {source.height}x{source.width}"
            )
        self.masked = getattr(source, "masked", False)

    def _blocks(self, rows):
        k = self.factor
        rows = rows[:, : self.width * k]
        return rows.reshape(rows.shape[0] // k, k, self.width, k, *rows.shape[2:])

    def read(self, y0, y1):
        return self._blocks(self.source.read(y0 * self.factor, y1 * self.factor)).mean(axis=(1, 3))

    def valid_rows(self, y0, y1):
        return self._blocks(self.source.valid_rows(y0 * self.factor, y1 * self.factor)).all(axis=(1, 3))

    @property
    def georeference(self):
        from rasterio.transform import Affine

        georeference = self.source.georeference
        return {**georeference, "transform": georeference["transform"] @ Affine.scale(self.factor)}


class OutputEncoding:
    """How [0, 1] translations are stored: 8-bit display values, or mapped back to the optical
    `value_range` a model learned (train's --optical-range, e.g. reflectance x10000 0..3000), as
    uint16 where both ends are integers in 0..65535, else float32."""

    def __init__(self, value_range=None):
        if value_range is None:
            self.dtype, self.low, self.span = np.dtype(np.uint8), 0.0, 255.0
            return
        check_value_range("--output-range", value_range)
        low, high = (float(value) for value in value_range)
        integers = all(value.is_integer() and 0 <= value <= np.iinfo(np.uint16).max for value in (low, high))
        self.dtype = np.dtype(np.uint16 if integers else np.float32)
        self.low, self.span = low, high - low

    def check(self, path):
        """Raise Sar2OptError unless `path`'s format can hold these values (PNG: integers only)."""
        if self.dtype.kind == "f" and Path(path).suffix.lower() not in TIFF_EXTENSIONS:
            raise Sar2OptError(f"Expected a .tif output for a non-integer --output-range, received {path}")

    def __call__(self, rows):
        values = np.float32(self.low) + np.clip(rows, 0.0, 1.0) * np.float32(self.span)
        return values.astype(self.dtype) if self.dtype.kind == "f" else np.round(values).astype(self.dtype)


class PNGSink:
    """Collects encoded rows and writes one PNG when its context ends without an error."""

    def __init__(self, path, height, width, channels, encoding):
        encoding.check(path)
        self.path, self.encoding = path, encoding
        self.image = np.zeros((height, width, channels), encoding.dtype)

    def write(self, y0, rows):
        self.image[y0 : y0 + rows.shape[0]] = self.encoding(rows)

    def __enter__(self):
        return self

    def __exit__(self, error_type, *_):
        if error_type is None:
            write_png_values(self.path, self.image)


class GeoTIFFSource:
    """A TIFF read in row windows through rasterio, scaled and preprocessed strip by strip.

    Nodata pixels (the file's nodata value in every band, or NaN/infinite values) are left out of
    the scaling statistics and filled with the valid pixels' per-band median before scaling;
    `valid_rows` says where they were, for the output's mask.
    """

    def __init__(self, path, channels, steps, sar_options):
        import rasterio

        self.path, self.channels, self.steps = path, channels, steps
        self.halo = scene_halo(steps)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self.dataset = rasterio.open(path)
        except rasterio.errors.RasterioError as error:
            raise Sar2OptError(f"Expected a readable TIFF, received {path} ({error})") from None
        try:
            self.height, self.width = self.dataset.height, self.dataset.width
            check_sar_band(self.dataset.count, sar_options and sar_options.band, path)
            self.nodata = self.dataset.nodata
            scale = max(1.0, math.sqrt(self.height * self.width / OVERVIEW_PIXELS))
            shape = (self.dataset.count, max(1, round(self.height / scale)), max(1, round(self.width / scale)))
            overview = self._read(out_shape=shape)
            valid = overview[self._valid(overview)]
            if not len(valid):
                raise Sar2OptError(f"Expected valid pixels in {path}, received nodata only")
            warn_if_sar_scaling_mismatches(valid, sar_options, path)
            self.masked = self.nodata is not None or overview.dtype.kind == "f"
            self.fill = np.median(valid, axis=0).astype(overview.dtype)
            self.options = strip_sar_options(valid, sar_options)
            self._strip_valid = None  # (first row, HxW valid) of the last strip read
        except BaseException:
            self.dataset.close()
            raise

    def _read(self, **kwargs):
        """Bands as HxWxC; GDAL errors become Sar2OptError."""
        import rasterio

        try:
            bands = self.dataset.read(**kwargs)
        except rasterio.errors.RasterioError as error:
            raise Sar2OptError(f"Expected a readable TIFF, received {self.path} ({error})") from None
        return np.moveaxis(bands, 0, -1)

    def _valid(self, bands):
        """HxW: False where every band holds the nodata value, or any band is not finite."""
        valid = np.ones(bands.shape[:2], bool)
        if bands.dtype.kind == "f":
            valid &= np.isfinite(bands).all(axis=-1)
        if self.nodata is not None and not math.isnan(self.nodata):
            valid &= (bands != self.nodata).any(axis=-1)
        return valid

    def read(self, y0, y1):
        from rasterio.windows import Window

        top, bottom = max(0, y0 - self.halo), min(self.height, y1 + self.halo)
        raw = self._read(window=Window(0, top, self.width, bottom - top))
        valid = self._valid(raw)
        self._strip_valid = (top, valid)
        if not valid.all():
            raw = np.where(valid[..., None], raw, self.fill)
        unit = apply_preprocessing(to_unit(raw, self.options), self.steps)
        return to_channels(unit, self.channels, self.path)[y0 - top : y1 - top]

    def valid_rows(self, y0, y1):
        """Where rows y0..y1 of the last strip read held data (HxW bool)."""
        top, valid = self._strip_valid
        return valid[y0 - top : y1 - top]

    @property
    def georeference(self):
        return {"crs": self.dataset.crs, "transform": self.dataset.transform}

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.dataset.close()


class GeoTIFFSink:
    """A GeoTIFF of encoded rows written row window by row window, georeferenced like the input, with
    averaged overviews (see OVERVIEW_MIN_SIDE) and metadata `tags`; removed on error."""

    def __init__(self, path, height, width, channels, georeference, encoding, tags=None):
        import rasterio

        self.path, self.encoding, self.tags = path, encoding, tags or {}
        files.check_writable(path, file=True, create=True)
        profile = dict(
            driver="GTiff",
            height=height,
            width=width,
            count=channels,
            dtype=encoding.dtype.name,
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="deflate",
        )
        profile.update({k: v for k, v in (georeference or {}).items() if v is not None})
        with warnings.catch_warnings(), self._writing():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            self.dataset = rasterio.open(path, "w", **profile)

    @contextlib.contextmanager
    def _writing(self):
        """GDAL's write errors (OSError) as one line naming the output, as PNG outputs have."""
        try:
            yield
        except OSError as error:
            raise Sar2OptError(f"Expected a writable GeoTIFF path, received {self.path} ({error})") from None

    def write(self, y0, rows):
        from rasterio.windows import Window

        window = Window(0, y0, rows.shape[1], rows.shape[0])
        with self._writing():
            self.dataset.write(np.moveaxis(self.encoding(rows), -1, 0), window=window)

    def write_mask(self, y0, valid):
        from rasterio.windows import Window

        with self._writing():
            self.dataset.write_mask(valid, window=Window(0, y0, valid.shape[1], valid.shape[0]))

    def __enter__(self):
        return self

    def __exit__(self, error_type, *_):
        failed = error_type is not None
        try:
            if not failed:
                with self._writing():
                    self.dataset.update_tags(**self.tags)
                    self._build_overviews()
        except BaseException:
            failed = True
            raise
        finally:
            self.dataset.close()
            if failed:
                self.path.unlink(missing_ok=True)

    def _build_overviews(self):
        from rasterio.enums import Resampling

        factors, side = [], max(self.dataset.height, self.dataset.width)
        while side // (2 ** (len(factors) + 1)) >= OVERVIEW_MIN_SIDE:
            factors.append(2 ** (len(factors) + 1))
        if factors:
            self.dataset.build_overviews(factors, Resampling.average)
            self.dataset.update_tags(ns="rio_overview", resampling="average")


class MaskedSink:
    """Rows with the source's nodata pixels set to 0, and its mask written where the sink keeps one."""

    def __init__(self, sink, source):
        self.sink, self.source = sink, source

    def write(self, y0, rows):
        valid = self.source.valid_rows(y0, y0 + rows.shape[0])
        self.sink.write(y0, np.where(valid[..., None], rows, 0.0))
        if hasattr(self.sink, "write_mask"):
            self.sink.write_mask(y0, valid)


class Preview:
    """A decimated copy of the input and output rows as they pass, for the side-by-side grid;
    `valid_rows(y0, y1)`, when given, blacks out nodata pixels as in the output file."""

    def __init__(self, height, width, valid_rows=None):
        self.step = max(1, math.ceil(max(height, width) / GRID_MAX_SIDE))
        self.inputs, self.outputs = [], []
        self.valid_rows = valid_rows

    def add(self, y0, inputs, outputs):
        if self.valid_rows is not None:
            valid = self.valid_rows(y0, y0 + inputs.shape[0])[..., None]
            inputs, outputs = np.where(valid, inputs, 0.0), np.where(valid, outputs, 0.0)
        first = (-y0) % self.step
        self.inputs.append(inputs[first :: self.step, :: self.step])
        self.outputs.append(outputs[first :: self.step, :: self.step])

    def write(self, path):
        inputs = to_channels(np.concatenate(self.inputs), 3)
        outputs = to_channels(np.concatenate(self.outputs), 3)
        gap = np.ones((inputs.shape[0], GRID_GAP, 3), np.float32)
        band = label_band(inputs.shape[1], ("SAR", "Generated"), gap=GRID_GAP)
        return write_png(path, np.concatenate([band, np.concatenate([inputs, gap, outputs], axis=1)]))
