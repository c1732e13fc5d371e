"""Translation of SAR images, folders and whole GeoTIFF scenes with a generator (report §3.4–§3.5).

An input larger than the generator's size is cut into overlapping tiles; tile outputs are blended
with separable raised-cosine ramps over the overlaps and normalised by the accumulated weights, so
no seams appear. Scenes are processed one row-strip of tiles at a time, read and written in windows
(GeoTIFF in, GeoTIFF out with the same CRS and transform), so memory stays bounded by the width.
"""

import contextlib
import logging
import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from keras_sar2opt import __version__, files
from keras_sar2opt.data.grids import label_band
from keras_sar2opt.data.io import (
    DEFAULT_PERCENTILES,
    IMAGE_EXTENSIONS,
    TIFF_EXTENSIONS,
    check_sar_band,
    check_sar_options,
    check_value_range,
    describe_options,
    linear_to_db,
    read_image,
    resolve_sar_input,
    select_sar_band,
    to_channels,
    to_unit,
    warn_if_sar_scaling_mismatches,
    write_png,
    write_png_values,
)
from keras_sar2opt.data.layouts import dataset_sar_files
from keras_sar2opt.data.preprocess import apply_preprocessing, describe_steps
from keras_sar2opt.errors import Sar2OptError

logger = logging.getLogger(__name__)

CHECKPOINT_EXTENSIONS = (".pth", ".pt", ".ckpt", ".safetensors")
WRITABLE = (".png",) + TIFF_EXTENSIONS  # translations are written as PNG or GeoTIFF
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


def load_generator(path, *, upsample_mode="nearest"):
    """A generator from a `.keras` file (a generator, or a run's checkpoint holding one) or a run
    folder (its generator.keras), or converted on the fly from a SAR2Optical `.pth`/`.safetensors`."""
    path = Path(path)
    if path.is_dir():
        if not (path / "generator.keras").is_file():
            last = path / "checkpoints" / "last.keras"
            hint = f"; an unfinished run's latest checkpoint is {last}" if last.is_file() else ""
            raise Sar2OptError(
                f"Expected a model file (.keras, .pth, .safetensors) or a run folder holding generator.keras, "
                f"received the folder {path}{hint}"
            )
        path = path / "generator.keras"
    if not path.is_file():
        raise Sar2OptError(f"Expected a model file (.keras, .pth, .safetensors), received {path}, which does not exist")
    from keras_sar2opt.finetune import ADAPTERS_FILE

    suffix = path.suffix.lower()
    if path.name == ADAPTERS_FILE and (path.parent / "config.json").is_file():
        raise Sar2OptError(
            f"Expected a generator, received {path}, a LoRA run's adapters alone; pass the run folder "
            f"{path.parent} (its generator.keras holds the merged generator)"
        )
    if suffix in CHECKPOINT_EXTENSIONS:
        from keras_sar2opt.convert.pix2pix import load_pix2pix_generator

        return load_pix2pix_generator(path, upsample_mode=upsample_mode)
    if suffix != ".keras":
        raise Sar2OptError(f"Expected a model file ending in .keras, .pth or .safetensors, received {path}")
    from keras_sar2opt.training.adversarial import AdversarialModel

    model = load_keras_model(path)
    return model.generator if isinstance(model, AdversarialModel) else model


class RunReading(NamedTuple):
    """How the training run holding a model read its SAR tiles, as its config.json records it."""

    name: str
    sar_options: dict | None  # None: the default scaling
    tile_size: tuple | None  # (height, width) before the resize to the model's size; None: not recorded
    optical_range: list | None  # stored optical values the run mapped to [0, 1]; None: by bit depth


def run_config(model_path):
    """(run folder, its config.json as a dict) of the training run holding `model_path` (the run
    folder, its generator.keras or a checkpoint), or None outside a run or when the config.json
    cannot be read (another tool's file: what it says is only a hint, never a reason to fail)."""
    path = Path(model_path).resolve()
    run_dir = next(
        (folder for folder in (path, path.parent, path.parent.parent) if (folder / "config.json").is_file()), None
    )
    if run_dir is None:
        return None
    try:
        recorded = files.read_json(run_dir / "config.json", "config.json of the model's run")
    except Sar2OptError:
        return None
    return (run_dir, recorded) if isinstance(recorded, dict) else None


def reading_of_run(model_path):
    """The `RunReading` of the training run holding `model_path` (see `run_config`), or None outside
    a run. Invalid settings count as not recorded."""
    found = run_config(model_path)
    run = found[1].get("run") if found else None
    if not isinstance(run, dict):
        return None
    run_dir = found[0]
    tile, options, optical = run.get("tile_size"), run.get("sar_options"), run.get("optical_options")
    if not (isinstance(tile, list) and len(tile) == 2 and all(isinstance(side, int) and side > 0 for side in tile)):
        tile = None
    try:
        check_sar_options(options if isinstance(options, dict) else {})
    except Sar2OptError:
        options = None
    optical_range = optical.get("range") if isinstance(optical, dict) else None
    try:
        check_value_range("optical range", optical_range)
    except Sar2OptError:
        optical_range = None
    return RunReading(run_dir.name, options or None, tuple(tile) if tile else None, optical_range)


def run_downsample(reading, model):
    """The --downsample that translates at the ground resolution `model` learned in its run: the
    factor its tiles were resized by (None when the run did not record their size)."""
    if reading is None or reading.tile_size is None:
        return None
    return max(1, round(min(reading.tile_size) / tile_size(model)))


# Keras's load errors can carry the whole model config; a one-line error keeps its start.
MAX_REASON_CHARS = 300


def load_keras_model(path, option=None):
    """A .keras model without its compile state; a bad archive is a one-line Sar2OptError (naming `option`).

    Importing the package's training and LoRA modules registers their classes, so run checkpoints
    (AdversarialModel) and LoRA models load too.
    """
    import keras

    import keras_sar2opt.lora  # noqa: F401  (registers LoRAConv)
    import keras_sar2opt.training.adversarial  # noqa: F401  (registers AdversarialModel)

    expected = f"{option} to be a loadable .keras model" if option else "a loadable .keras model"
    if not zipfile.is_zipfile(path):  # Keras says "File not found" of these
        raise Sar2OptError(
            f"Expected {expected}, received {path} (not a .keras zip archive: cut short, or another format)"
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        reason = " ".join(str(error).split())
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[:MAX_REASON_CHARS] + "…"
        raise Sar2OptError(f"Expected {expected}, received {path} ({type(error).__name__}: {reason})") from None


def tile_size(model):
    """Side of the square tiles `model` translates; its output must have its input's size."""
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise Sar2OptError(f"Expected a generator with one input and one output, received {model.name}")
    height, width = inputs[0].shape[1:3]
    if height is None or height != width or tuple(outputs[0].shape[1:3]) != (height, width):
        raise Sar2OptError(
            f"Expected a generator with square fixed-size input and output, received {model.name} "
            f"with input {tuple(inputs[0].shape)} and output {tuple(outputs[0].shape)}"
        )
    return height


def tile_starts(length, tile, overlap):
    """Start offsets of tiles covering `length` with at least `overlap` shared pixels; the last ends at `length`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    return [min(i * stride, length - tile) for i in range(count)]


def blend_weights(tile, overlap, ramp_in, ramp_out):
    """1-D tile weights: 1 inside, raised-cosine ramps over `overlap` pixels on sides with a neighbour.

    Facing ramps sum to one (sin^2 + cos^2) where tiles overlap by exactly `overlap`.
    """
    weights = np.ones(tile, np.float32)
    if overlap:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap).astype(np.float32) ** 2
        if ramp_in:
            weights[:overlap] = np.minimum(weights[:overlap], ramp)
        if ramp_out:
            weights[-overlap:] = np.minimum(weights[-overlap:], ramp[::-1])
    return weights


def tile_overlap(tile, overlap=None):
    """The overlap of neighbouring `tile`-pixel tiles: `overlap`, checked, or tile/4 when None."""
    overlap = tile // 4 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise Sar2OptError(f"Expected a tile overlap in [0, {tile - 1}] for {tile}-pixel tiles, received {overlap}")
    return overlap


def translate_strips(model, source, sink, *, overlap=None, batch_size=4, preview=None, progress=True, desc=None):
    """Translate `source` into `sink`, one row-strip of overlapping tiles at a time.

    `source.read(y0, y1)` returns rows y0..y1 as float32 [0, 1] with the model's input channels;
    `sink.write(y0, rows)` receives finished output rows in [0, 1]. Only one strip of input and a
    tile-high accumulator (with its weights) are held in memory.
    """
    tile = tile_size(model)
    overlap = tile_overlap(tile, overlap)
    if batch_size < 1:
        raise Sar2OptError(f"Expected a positive batch size, received {batch_size}")
    height, width = source.height, source.width
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    row_weights = [blend_weights(tile, overlap, i > 0, i < len(ys) - 1) for i in range(len(ys))]
    col_weights = [blend_weights(tile, overlap, j > 0, j < len(xs) - 1) for j in range(len(xs))]
    padded_width = max(width, tile)
    channels = model.outputs[0].shape[-1]
    total = np.zeros((tile, padded_width, channels), np.float32)
    weight = np.zeros((tile, padded_width, 1), np.float32)
    # A bar per image only where the image is more than one row of tiles: small images pass too quickly.
    bar = tqdm(total=len(ys) * len(xs), desc=desc, unit="tile", disable=not progress or len(ys) < 2, leave=False)
    with bar:
        for i, y in enumerate(ys):
            strip = source.read(y, min(y + tile, height))
            padding = ((0, tile - strip.shape[0]), (0, padded_width - width), (0, 0))
            tiles = np.pad(strip, padding, mode="reflect") * 2.0 - 1.0
            for b in range(0, len(xs), batch_size):
                batch = xs[b : b + batch_size]
                outputs = model.predict_on_batch(np.stack([tiles[:, x : x + tile] for x in batch]))
                for j, (x, output) in enumerate(zip(batch, np.asarray(outputs)), start=b):
                    w = (row_weights[i][:, None] * col_weights[j][None, :])[..., None]
                    total[:, x : x + tile] += (output + 1.0) * 0.5 * w
                    weight[:, x : x + tile] += w
                bar.update(len(batch))
            done = (ys[i + 1] if i + 1 < len(ys) else height) - y
            rows = total[:done, :width] / weight[:done, :width]
            sink.write(y, rows)
            if preview is not None:
                preview.add(y, strip[:done], rows)
            total[: tile - done], weight[: tile - done] = total[done:], weight[done:]
            total[tile - done :], weight[tile - done :] = 0.0, 0.0


def translate_array(model, image, *, overlap=None, batch_size=4, progress=False):
    """Translate an in-memory float [0, 1] HxWxC image of any size; returns float32 [0, 1]."""
    source = _ArraySource(np.asarray(image, np.float32))
    sink = _ArraySink(source.height, source.width, model.outputs[0].shape[-1])
    translate_strips(model, source, sink, overlap=overlap, batch_size=batch_size, progress=progress)
    return sink.image


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


def strip_sar_options(overview, sar_options):
    """SAR options that make `to_unit` pointwise, with the scene's statistics taken from `overview`
    (its pixels' bands along the last axis).

    Percentile stretches become fixed [low, high] ranges computed on the overview's band in use
    (`select_sar_band`), so every strip of a scene is scaled the same way.
    """
    options = dict(sar_options or {})
    band = {"band": options["band"]} if options.get("band") is not None else {}
    overview = select_sar_band(overview, options.get("band"))
    kind = resolve_sar_input(overview, options.get("input", "auto"))
    percentiles = options.get("percentiles")
    values = overview.astype(np.float32)
    if kind == "image":
        if overview.dtype.kind in "ui" and percentiles is None:
            return {"input": "image", **band}
        if percentiles is None and values.min() >= 0.0 and values.max() <= 1.0:
            return {"input": "db", "db_range": [0.0, 1.0], **band}
        # "db" with a db_range is a fixed linear stretch of the values as they are.
        kind = "db"
    elif options.get("db_range") is not None:
        return {"input": kind, "db_range": list(options["db_range"]), **band}
    elif kind != "db":
        values = linear_to_db(values, amplitude=kind == "amplitude")
    low, high = (float(v) for v in np.percentile(values, percentiles or DEFAULT_PERCENTILES))
    return {"input": kind, "db_range": [low, high if high > low else low + max(abs(low), 1.0) * 1e-6], **band}


class _ArraySource:
    """An in-memory [0, 1] image."""

    def __init__(self, image):
        self.image = image
        self.height, self.width = image.shape[:2]

    def read(self, y0, y1):
        return self.image[y0:y1]


class _ArraySink:
    def __init__(self, height, width, channels):
        self.image = np.zeros((height, width, channels), np.float32)

    def write(self, y0, rows):
        self.image[y0 : y0 + rows.shape[0]] = rows


class _Downsampled:
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


class _PNGSink:
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


class _GeoTIFFSource:
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
            check_sar_band(self.dataset.count, (sar_options or {}).get("band"), path)
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


class _GeoTIFFSink:
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


class _MaskedSink:
    """Rows with the source's nodata pixels set to 0, and its mask written where the sink keeps one."""

    def __init__(self, sink, source):
        self.sink, self.source = sink, source

    def write(self, y0, rows):
        valid = self.source.valid_rows(y0, y0 + rows.shape[0])
        self.sink.write(y0, np.where(valid[..., None], rows, 0.0))
        if hasattr(self.sink, "write_mask"):
            self.sink.write_mask(y0, valid)


class _Preview:
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


def translate_file(
    model,
    src,
    dst,
    *,
    steps=None,
    sar_options=None,
    downsample=1,
    overlap=None,
    batch_size=4,
    grid=False,
    output_range=None,
    model_source=None,
    progress=True,
):
    """Translate one SAR image file into `dst` (PNG, or GeoTIFF when `dst` ends in .tif/.tiff).

    TIFF inputs are read in windows (scaling statistics from a decimated overview); other formats are
    read whole. A TIFF output keeps the input's CRS and transform; the input's nodata pixels come out
    black and, in a TIFF, masked (an internal mask band). `sar_options`: `to_unit`'s SAR scaling
    (None: detected from the values, as training does). `downsample` K > 1 averages K x K pixels
    after preprocessing (see `_Downsampled`), for a model trained on tiles resized by 1/K; the
    output has the reduced size, its GeoTIFF transform K times the pixel size. `grid=True` also
    writes `<dst stem>_grid.png`: the preprocessed input beside the translation, under their labels.
    Outputs hold 8-bit values, or with `output_range` values mapped back to it (see `OutputEncoding`).
    A GeoTIFF records how it was made in SAR2OPT_* metadata tags (`model_source`: the model's file,
    else the model's name). Returns the output path.
    """
    import rasterio

    if not isinstance(downsample, int) or isinstance(downsample, bool) or downsample < 1:
        raise Sar2OptError(f"Expected --downsample to be a positive integer, received {downsample!r}")
    src, dst = Path(src), Path(dst)
    encoding = OutputEncoding(output_range)
    encoding.check(dst)
    tile_overlap(tile_size(model), overlap)  # before any output folder is made
    channels, out_channels = model.inputs[0].shape[-1], model.outputs[0].shape[-1]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_TIFF_INTERNAL_MASK=True), contextlib.ExitStack() as stack:
        if src.suffix.lower() in TIFF_EXTENSIONS:
            source = stack.enter_context(_GeoTIFFSource(src, channels, steps, sar_options))
            georeference, scaling = source.georeference, source.options  # a stretch as the dB range it became
        else:
            image = read_image(src)
            warn_if_sar_scaling_mismatches(image, sar_options, src)
            image = apply_preprocessing(to_unit(image, sar_options or {}, src), steps)
            source, georeference, scaling = _ArraySource(to_channels(image, channels, src)), None, sar_options
        if downsample > 1:
            source = _Downsampled(source, downsample)
            if georeference is not None:
                georeference = source.georeference
        if dst.suffix.lower() in TIFF_EXTENSIONS:
            tags = {
                "TIFFTAG_SOFTWARE": f"keras_sar2opt {__version__}",
                "SAR2OPT_MODEL": os.fspath(model_source) if model_source is not None else model.name,
                "SAR2OPT_INPUT": os.fspath(src.resolve()),
                "SAR2OPT_SAR_SCALING": describe_options(scaling, "auto"),
                "SAR2OPT_PREPROCESSING": describe_steps(steps),
                "SAR2OPT_DOWNSAMPLE": str(downsample),
                "SAR2OPT_VALUES": "8-bit display"
                if output_range is None
                else f"optical {output_range[0]:g}..{output_range[1]:g}",
            }
            sink = _GeoTIFFSink(dst, source.height, source.width, out_channels, georeference, encoding, tags)
        else:
            if georeference is not None and georeference["crs"] is not None:
                logger.warning(f"Writing {dst} as PNG drops {src.name}'s georeferencing; write a .tif to keep it")
            sink = _PNGSink(dst, source.height, source.width, out_channels, encoding)
        stack.enter_context(sink)
        masked = getattr(source, "masked", False)
        if masked:
            sink = _MaskedSink(sink, source)
        preview = _Preview(source.height, source.width, source.valid_rows if masked else None) if grid else None
        translate_strips(
            model,
            source,
            sink,
            overlap=overlap,
            batch_size=batch_size,
            preview=preview,
            progress=progress,
            desc=src.name,
        )
    if grid:
        preview.write(dst.with_name(f"{dst.stem}_grid.png"))
    return dst


def plan_outputs(inputs, out):
    """Pair each input image (files, or folders searched recursively) with its output path.

    One input file and an `out` ending in .png/.tif/.tiff: that file (another image suffix is
    refused). Otherwise `out` is a folder; outputs keep the inputs' relative paths (folders) or
    names (files), as .tif for TIFF inputs and .png for the rest. A folder holding a dataset layout
    (`find_pairs`) gives its SAR images only, and `out` inside an input folder is not searched (a
    second run finds only the inputs). No output may overwrite an input, and `out` must be writable
    (`files.check_writable`; nothing is written).
    """
    out = Path(out)
    single_file = len(inputs) == 1 and Path(inputs[0]).is_file()
    if single_file and out.suffix.lower() in IMAGE_EXTENSIONS and out.suffix.lower() not in WRITABLE:
        raise Sar2OptError(f"Expected -o to end in {', '.join(WRITABLE)} (or to be a folder), received {out}")
    if not single_file and out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir():
        raise Sar2OptError(f"Expected -o to be a folder for several inputs or a folder input, received {out}")
    sources, resolved_out = [], out.resolve()
    for item in map(Path, inputs):
        if item.is_dir():
            inside = resolved_out != item.resolve() and resolved_out.is_relative_to(item.resolve())
            found = dataset_sar_files(item) or sorted(
                p
                for p in item.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not (inside and p.resolve().is_relative_to(resolved_out))
            )
            if not found:
                raise Sar2OptError(f"Expected images ({', '.join(IMAGE_EXTENSIONS)}) in folder {item}, received none")
            sources += [(p, p.relative_to(item)) for p in found]
        elif item.is_file():
            sources.append((item, Path(item.name)))
        else:
            raise Sar2OptError(f"Expected an image file or folder, received {item}, which does not exist")
    if single_file and out.suffix.lower() in WRITABLE:
        plan = [(sources[0][0], out)]
    else:
        plan, seen = [], {}
        for src, relative in sources:
            suffix = ".tif" if src.suffix.lower() in TIFF_EXTENSIONS else ".png"
            dst = out / relative.with_suffix(suffix)
            if dst in seen:
                raise Sar2OptError(
                    f"Expected distinct output names, received {seen[dst]} and {src} both mapping to {dst}"
                )
            seen[dst] = src
            plan.append((src, dst))
    inputs_resolved = {src.resolve() for src, _ in sources}
    for src, dst in plan:
        if dst.resolve() in inputs_resolved:
            raise Sar2OptError(f"Expected an output that is not an input, received {dst} for {src}; choose another -o")
    files.check_writable(out, "-o", file=single_file and out.suffix.lower() in WRITABLE)
    return plan


def translate_paths(model, inputs, out, *, progress=True, **options):
    """Translate files and folders (see `plan_outputs`) with a progress bar over files; returns output paths."""
    plan = plan_outputs(inputs, out)
    written = []
    for src, dst in tqdm(plan, desc="translate", unit="image", disable=not progress):
        written.append(translate_file(model, src, dst, progress=progress, **options))
    return written


__all__ = [
    "OutputEncoding",
    "blend_weights",
    "load_generator",
    "plan_outputs",
    "reading_of_run",
    "run_config",
    "run_downsample",
    "scene_halo",
    "strip_sar_options",
    "tile_size",
    "tile_overlap",
    "tile_starts",
    "translate_array",
    "translate_file",
    "translate_paths",
    "translate_strips",
]
