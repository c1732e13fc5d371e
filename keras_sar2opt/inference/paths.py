"""Translation of SAR image files and folders (report §3.4–§3.5): output planning and the per-file driver."""

import contextlib
import logging
import os
import re
from pathlib import Path

from tqdm.auto import tqdm

from keras_sar2opt import __version__, files
from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.data.io import IMAGE_EXTENSIONS, TIFF_EXTENSIONS, read_image, to_channels
from keras_sar2opt.data.pairs import dataset_sar_files
from keras_sar2opt.data.preprocess import apply_preprocessing, describe_steps
from keras_sar2opt.data.scaling import SarScaling, to_unit, warn_if_sar_scaling_mismatches
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.inference.scenes import (
    GDAL_CACHE_MB,
    Downsampled,
    GeoTIFFSink,
    GeoTIFFSource,
    MaskedSink,
    OutputEncoding,
    PNGSink,
    Preview,
)
from keras_sar2opt.inference.tiling import ArraySource, tile_overlap, translate_strips
from keras_sar2opt.model_files import tile_size

logger = logging.getLogger(__name__)

WRITABLE = (".png",) + TIFF_EXTENSIONS  # translations are written as PNG or GeoTIFF
# One file per polarisation, as BigEarthNet-S1 stores a patch: <scene>_VV.tif beside <scene>_VH.tif.
_POLARISATION = re.compile(r"(.+)_(VV|VH)", re.IGNORECASE)


def co_polarised(found, folder):
    """Of a folder's images, those to translate: where a scene is stored as one file per polarisation
    (<scene>_VV and <scene>_VH), its VV file only, as a dual-pol stack gives its first band (VV); a
    model reads one SAR band. Logs what it left out; a VH file given by name is translated."""
    scenes = {}
    for path in found:
        match = _POLARISATION.fullmatch(path.stem)
        if match:
            scenes.setdefault((path.parent, match.group(1).lower()), {})[match.group(2).upper()] = path
    cross = {pair["VH"] for pair in scenes.values() if pair.keys() == {"VV", "VH"}}
    if cross:
        logger.warning(
            f"{folder} stores {len(cross)} scenes as one file per polarisation (<scene>_VV, <scene>_VH): "
            "translating their VV files; give the _VH files by name to translate VH"
        )
    return [path for path in found if path not in cross]


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
    black and, in a TIFF, masked (an internal mask band). `sar_options`: the SarScaling (or its
    config dict; None: detected from the values, as training does). `downsample` K > 1 averages K x K pixels
    after preprocessing (see `Downsampled`), for a model trained on tiles resized by 1/K; the
    output has the reduced size, its GeoTIFF transform K times the pixel size. `grid=True` also
    writes `<dst stem>_grid.png`: the preprocessed input beside the translation, under their labels.
    Outputs hold 8-bit values, or with `output_range` values mapped back to it (see `OutputEncoding`).
    A GeoTIFF records how it was made in SAR2OPT_* metadata tags (`model_source`: the model's file,
    else the model's name). Returns the output path.
    """
    import rasterio

    check_positive_int(downsample, "--downsample")
    sar_options = SarScaling.from_config(sar_options)
    src, dst = Path(src), Path(dst)
    encoding = OutputEncoding(output_range)
    encoding.check(dst)
    tile_overlap(tile_size(model), overlap)  # before any output folder is made
    channels, out_channels = model.inputs[0].shape[-1], model.outputs[0].shape[-1]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_TIFF_INTERNAL_MASK=True), contextlib.ExitStack() as stack:
        if src.suffix.lower() in TIFF_EXTENSIONS:
            source = stack.enter_context(GeoTIFFSource(src, channels, steps, sar_options))
            georeference, scaling = source.georeference, source.options  # a stretch as the dB range it became
        else:
            image = read_image(src)
            warn_if_sar_scaling_mismatches(image, sar_options, src)
            image = apply_preprocessing(to_unit(image, sar_options or SarScaling(), src), steps)
            source, georeference, scaling = ArraySource(to_channels(image, channels, src)), None, sar_options
        if downsample > 1:
            source = Downsampled(source, downsample)
            if georeference is not None:
                georeference = source.georeference
        if dst.suffix.lower() in TIFF_EXTENSIONS:
            tags = {
                "TIFFTAG_SOFTWARE": f"keras_sar2opt {__version__}",
                "SAR2OPT_MODEL": os.fspath(model_source) if model_source is not None else model.name,
                "SAR2OPT_INPUT": os.fspath(src.resolve()),
                "SAR2OPT_SAR_SCALING": scaling.describe() if scaling else "auto",
                "SAR2OPT_PREPROCESSING": describe_steps(steps),
                "SAR2OPT_DOWNSAMPLE": str(downsample),
                "SAR2OPT_VALUES": "8-bit display"
                if output_range is None
                else f"optical {output_range[0]:g}..{output_range[1]:g}",
            }
            sink = GeoTIFFSink(dst, source.height, source.width, out_channels, georeference, encoding, tags)
        else:
            if georeference is not None and georeference["crs"] is not None:
                logger.warning(f"Writing {dst} as PNG drops {src.name}'s georeferencing; write a .tif to keep it")
            sink = PNGSink(dst, source.height, source.width, out_channels, encoding)
        stack.enter_context(sink)
        masked = getattr(source, "masked", False)
        if masked:
            sink = MaskedSink(sink, source)
        preview = Preview(source.height, source.width, source.valid_rows if masked else None) if grid else None
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
    (`find_pairs`) gives its SAR images only, and scenes stored one file per polarisation their VV
    files (`co_polarised`); `out` inside an input folder is not searched (a second run finds only
    the inputs). No output may overwrite an input, and `out` must be writable
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
            sources += [(p, p.relative_to(item)) for p in co_polarised(found, item)]
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
