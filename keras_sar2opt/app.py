"""A browser demo (Gradio): upload a SAR image, see and download its optical translation (report §3.4–§3.5).

The page follows the field's public demos: one upload, the report's preprocessing (§3.5) and the SAR
scaling as controls, SAR and optical under a before/after slider or side by side, a download. The
translation is `translate`'s: PNG/JPEG (8/16-bit) or float/dB GeoTIFFs of any size, tiled and
blended with a progress bar; a GeoTIFF input gives a GeoTIFF with its CRS and transform. Examples
are synthetic SAR images drawn at start-up (keras_sar2opt.data.synthetic), never real files. It
listens on loopback unless told otherwise, and sends nothing anywhere (no analytics, no share link).
"""

import math
import os
import tempfile
import uuid
from pathlib import Path

import numpy as np

from keras_sar2opt.data.io import IMAGE_EXTENSIONS, TIFF_EXTENSIONS, read_image, to_channels, write_png
from keras_sar2opt.data.preprocess import GAMMA_CONVENTIONS, apply_preprocessing
from keras_sar2opt.data.scaling import SAR_INPUTS, SarScaling, to_unit
from keras_sar2opt.data.synthetic import generate_pair
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.inference import translate_file
from keras_sar2opt.inference.scenes import GeoTIFFSource

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
MAX_UPLOAD = "1gb"  # Gradio refuses larger uploads before they reach the server
DISPLAY_SIDE = 1024  # shown images are decimated to at most this side; downloads keep every pixel
FILTERS = {"none": None, "median": "median", "Lee": "lee", "enhanced Lee": "enhanced_lee", "Frost": "frost"}
# The examples: a synthetic SAR tile of each sensor preset, and a float dB GeoTIFF scene with a CRS.
EXAMPLE_PRESETS = ("sentinel", "qxslab")
EXAMPLE_CRS, EXAMPLE_ORIGIN, EXAMPLE_PIXEL = "EPSG:32633", (500000.0, 4500000.0), 10.0
SEN12_DB_RANGE = (-25.0, 0.0)  # SEN1-2's 8-bit SAR maps -25..0 dB to 0..255 (data/README.md)


def preprocessing_steps(filter_name, window, gamma, convention):
    """The `apply_preprocessing` steps of the page's controls in the report's order (§3.5: a filter,
    then gamma); gamma 1 or less is no gamma."""
    if filter_name not in FILTERS:
        raise Sar2OptError(f"Expected a filter among {', '.join(FILTERS)}, received {filter_name!r}")
    steps = [(FILTERS[filter_name], {"window": int(window)})] if FILTERS[filter_name] else []
    if gamma is not None and gamma > 1:
        steps.append(("gamma", {"gamma": float(gamma), "convention": convention}))
    return steps


def sar_scaling(sar_input, db_low, db_high, band, defaults=None):
    """The SarScaling of the page's controls, over `defaults` (the model's run's) field by field."""
    given = SarScaling.from_config(
        {
            "input": None if sar_input == "auto" else sar_input,
            "db_range": None if db_low is None or db_high is None else (float(db_low), float(db_high)),
            "band": int(band) if band else None,
        }
    )
    return defaults.merged(given) if defaults else given


def write_examples(folder, size=256):
    """Synthetic SAR images for the page's examples: an 8-bit tile of each preset and a float dB GeoTIFF
    scene of 2x1.5 tiles with a CRS (tiled when translated). Returns their paths."""
    import rasterio
    from rasterio.transform import Affine

    folder = Path(folder)
    paths = []
    for index, preset in enumerate(EXAMPLE_PRESETS):
        path = folder / f"synthetic_{preset}_sar.png"
        write_png(path, generate_pair(preset, size=size, seed=0, index=index).sar / 255.0)
        paths.append(path)
    tiles = [generate_pair("sentinel", size=size, seed=1, index=i).sar for i in range(4)]
    scene = np.block([[tiles[0], tiles[1]], [tiles[2], tiles[3]]])[: size * 3 // 2]
    low, high = SEN12_DB_RANGE
    decibels = (low + scene.astype(np.float32) / 255.0 * (high - low)).astype(np.float32)
    path = folder / "synthetic_sentinel_db.tif"
    transform = Affine(EXAMPLE_PIXEL, 0.0, EXAMPLE_ORIGIN[0], 0.0, -EXAMPLE_PIXEL, EXAMPLE_ORIGIN[1])
    profile = dict(driver="GTiff", height=scene.shape[0], width=scene.shape[1], count=1, dtype="float32")
    with rasterio.open(path, "w", crs=EXAMPLE_CRS, transform=transform, **profile) as dataset:
        dataset.write(decibels, 1)
    return [*paths, path]


def _display_step(height, width):
    return max(1, math.ceil(max(height, width) / DISPLAY_SIDE))


def _sar_display(src, steps, scaling):
    """The SAR as the model reads it (scaled, preprocessed), decimated for display; GeoTIFFs strip by strip."""
    if src.suffix.lower() not in TIFF_EXTENSIONS:
        image = apply_preprocessing(to_unit(read_image(src), scaling or SarScaling(), src), steps)
        image = to_channels(image, 1, src)
        step = _display_step(*image.shape[:2])
        return image[::step, ::step]
    with GeoTIFFSource(src, 1, steps, scaling) as source:
        step = _display_step(source.height, source.width)
        strip = step * 64
        rows = [source.read(y, min(y + strip, source.height))[::step, ::step] for y in range(0, source.height, strip)]
    return np.concatenate(rows)


def _output_display(path):
    """The translation's file, decimated for display (a GeoTIFF's overviews are read where it has them)."""
    if path.suffix.lower() in TIFF_EXTENSIONS:
        import rasterio

        with rasterio.open(path) as dataset:
            step = _display_step(dataset.height, dataset.width)
            shape = (dataset.count, math.ceil(dataset.height / step), math.ceil(dataset.width / step))
            return np.moveaxis(dataset.read(out_shape=shape), 0, -1)
    image = read_image(path)
    step = _display_step(*image.shape[:2])
    return image[::step, ::step]


def _as_display(image, size):
    """8-bit RGB of a [0, 1] or 8-bit image, resized to `size` (width, height) so that both sides align."""
    from PIL import Image

    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    image = to_channels(image if image.ndim == 3 else image[..., None], 3)
    shown = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(shown if shown.size == size else shown.resize(size, Image.Resampling.BOX))


class Translator:
    """Translates one upload with the page's settings into `workdir`: (SAR, optical) for display and the file."""

    def __init__(self, model, workdir, sar_defaults=None, downsample=1):
        self.model, self.workdir = model, Path(workdir)
        self.sar_defaults, self.downsample = sar_defaults, downsample

    def __call__(self, upload, filter_name, window, gamma, convention, sar_input, db_low, db_high, band):
        if upload is None:
            raise Sar2OptError("Expected a SAR image: upload a PNG, JPEG or GeoTIFF, or pick an example")
        src = Path(upload)
        if src.suffix.lower() not in IMAGE_EXTENSIONS:
            raise Sar2OptError(
                f"Expected a SAR image (PNG, JPEG or GeoTIFF: {', '.join(IMAGE_EXTENSIONS)}), received {src.name}"
            )
        steps = preprocessing_steps(filter_name, window, gamma, convention)
        scaling = sar_scaling(sar_input, db_low, db_high, band, self.sar_defaults)
        out = self.workdir / uuid.uuid4().hex
        suffix = ".tif" if src.suffix.lower() in TIFF_EXTENSIONS else ".png"
        try:
            dst = translate_file(
                self.model,
                src,
                out / f"{src.stem}_optical{suffix}",
                steps=steps,
                sar_options=scaling,
                downsample=self.downsample,
                model_source=self.model.name,
            )
            optical = _output_display(dst)
            size = (optical.shape[1], optical.shape[0])
            return _as_display(_sar_display(src, steps, scaling), size), _as_display(optical, size), dst
        except Sar2OptError as error:  # the upload's temporary folder says nothing to the user
            raise Sar2OptError(str(error).replace(str(src), src.name)) from None


def build(model, *, title, sar_defaults=None, downsample=1, workdir=None):
    """The Gradio page translating uploads with `model` (a Keras generator or an OnnxGenerator)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise Sar2OptError("Expected Gradio for the app: pip install 'keras_sar2opt[app]'") from None

    workdir = Path(workdir or tempfile.mkdtemp(prefix="sar2opt-app-"))
    translator = Translator(model, workdir, sar_defaults, downsample)

    def translate(upload, *settings, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio's idiom)
        try:
            sar, optical, dst = translator(upload, *settings)
        except Sar2OptError as error:
            raise gr.Error(str(error), duration=None, print_exception=False) from None
        return (sar, optical), sar, optical, str(dst)

    with gr.Blocks(title=f"SAR to optical: {title}", analytics_enabled=False) as page:
        gr.Markdown(
            f"# SAR to optical\nTranslate a SAR image with **{title}**: PNG or JPEG (8 or 16 bit), or a float or dB "
            "GeoTIFF of any size (tiled; the download keeps its georeferencing)."
        )
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="SAR image", type="filepath", elem_id="sar-upload")
                with gr.Accordion("Preprocessing (report §3.5)", open=False):
                    filter_name = gr.Dropdown(list(FILTERS), value="none", label="Speckle filter")
                    window = gr.Slider(3, 15, value=7, step=2, label="Filter window")
                    gamma = gr.Number(value=1, minimum=1, label="Gamma (1: none; the report uses 7)")
                    convention = gr.Radio(
                        list(GAMMA_CONVENTIONS), value="power", label="Gamma convention: in**g or in**(1/g)"
                    )
                with gr.Accordion("SAR scaling to [0, 1]", open=False):
                    sar_input = gr.Dropdown(list(SAR_INPUTS), value="auto", label="Stored values")
                    with gr.Row():
                        db_low = gr.Number(value=None, label="dB range low (e.g. -25)")
                        db_high = gr.Number(value=None, label="dB range high (e.g. 0)")
                    band = gr.Number(value=None, precision=0, minimum=1, label="Band (counted from 1)")
                button = gr.Button("Translate", variant="primary", elem_id="translate")
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Slider"):
                        slider = gr.ImageSlider(label="SAR | optical", type="numpy", elem_id="slider")
                    with gr.Tab("Side by side"):
                        with gr.Row():
                            sar_view = gr.Image(label="SAR", type="numpy", elem_id="sar-view")
                            optical_view = gr.Image(label="Optical", type="numpy", elem_id="optical-view")
                download = gr.File(label="Download (PNG, or GeoTIFF for a GeoTIFF input)", elem_id="download")
        controls = [upload, filter_name, window, gamma, convention, sar_input, db_low, db_high, band]
        gr.Examples(
            [[str(path)] for path in write_examples(workdir / "examples")], inputs=[upload], label="Synthetic examples"
        )
        button.click(translate, controls, [slider, sar_view, optical_view, download])
    return page


def serve(page, host=DEFAULT_HOST, port=DEFAULT_PORT):
    """Serve the page until interrupted; a port that cannot be bound is a Sar2OptError."""
    try:
        page.queue().launch(
            server_name=host, server_port=port, share=False, max_file_size=MAX_UPLOAD, show_error=True, quiet=True
        )
    except OSError as error:
        raise Sar2OptError(f"Expected a free --port on {host}, received {port} ({error})") from None
