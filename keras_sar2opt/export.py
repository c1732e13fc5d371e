"""Generators exported for serving outside Keras: ONNX, TensorFlow SavedModel and LiteRT, checked against Keras.

Every export is the generator in inference mode (no dropout, BatchNorm's moving statistics) with a
dynamic batch axis: input `sar`, output `optical`, NHWC float32 in [-1, 1] at the generator's tile
size. The settings of the model's run (SAR band and scaling, tile size, optical range) travel in the
file's metadata: ONNX metadata_props, LiteRT flatbuffer metadata, a SavedModel's assets.extra/.
Keras's exporters do the work (`ExportArchive` for the SavedModel, tf2onnx through
`Model.export(format="onnx")`, the LiteRT converter on that SavedModel).
"""

import contextlib
import gc
import json
import shutil
import tempfile
import threading
import uuid
import warnings
from pathlib import Path

import numpy as np

from keras_sar2opt import files
from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.inference.onnx_runtime import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, OnnxGenerator

# Each format's file suffix ("" for the SavedModel folder) and the precisions it is offered in.
SUFFIXES = {"onnx": ".onnx", "saved_model": "", "litert": ".tflite"}
FORMATS = tuple(SUFFIXES)
PRECISIONS = {"onnx": ("float32", "float16"), "saved_model": ("float32",), "litert": ("float32", "float16")}
# Largest |exported - Keras| accepted on a random batch, by precision.
TOLERANCES = {"float32": 1e-4, "float16": 1e-2}
SAVED_MODEL_SETTINGS = Path("assets.extra") / f"{METADATA_KEY}.json"
SERVING_SIGNATURE = "serving_default"
PARITY_BATCH = 2


def check_target(path, fmt, precision="float32"):
    """The output path of an export, checked before any model is loaded."""
    if fmt not in SUFFIXES:
        raise Sar2OptError(f"Expected --format among {', '.join(FORMATS)}, received {fmt!r}")
    if precision not in PRECISIONS[fmt]:
        raise Sar2OptError(f"Expected --precision among {', '.join(PRECISIONS[fmt])} for {fmt}, received {precision!r}")
    path, suffix = Path(path), SUFFIXES[fmt]
    if suffix and path.suffix.lower() != suffix:
        raise Sar2OptError(f"Expected -o to end in {suffix} for --format {fmt}, received {path}")
    if not suffix and (path.is_file() or (path.is_dir() and any(path.iterdir()) and not _is_saved_model(path))):
        raise Sar2OptError(f"Expected -o to be a new or SavedModel folder for --format {fmt}, received {path}")
    return files.check_writable(path, "-o", file=bool(suffix))


def _is_saved_model(path):
    return (Path(path) / "saved_model.pb").is_file()


def at_image_size(model, image_size):
    """`model` itself, or a copy of its fully convolutional graph taking `image_size` tiles (same weights)."""
    import keras

    from keras_sar2opt.model_files import tile_size

    check_positive_int(image_size, "--image-size", allow_none=True)
    if image_size is None or image_size == tile_size(model):
        return model
    channels = model.inputs[0].shape[-1]
    try:
        copy = keras.models.clone_model(model, input_tensors=keras.Input((image_size, image_size, channels)))
        copy.set_weights(model.get_weights())
        tile_size(copy)
    except (ValueError, TypeError) as error:
        reason = " ".join(str(error).split())[:200]
        raise Sar2OptError(
            f"Expected an --image-size the generator can take, received {image_size} ({reason})"
        ) from None
    return copy


def export_generator(model, path, fmt, *, precision="float32", settings=None):
    """Write `model` (a Keras generator) to `path` in `fmt` and check it: returns max |export - Keras|.

    The file (or SavedModel folder) replaces `path` only when that difference on a random batch is
    within TOLERANCES[precision]; otherwise nothing is written and Sar2OptError says by how much.
    `settings` (a JSON-ready dict, see `model_settings`) goes into the file's metadata.
    """
    path = check_target(path, fmt, precision)
    settings = json.dumps({**(settings or {}), "precision": precision}, sort_keys=True)
    if fmt == "saved_model":
        with _atomic_folder(path) as temporary:
            _write_saved_model(model, temporary, settings)
            return _checked(model, temporary, fmt, precision)
    with files.atomic_path(path) as temporary:
        if fmt == "onnx":
            _write_onnx(model, temporary, precision, settings)
        else:
            with tempfile.TemporaryDirectory() as folder:
                _write_saved_model(model, Path(folder) / "saved_model", settings)
                _write_litert(Path(folder) / "saved_model", temporary, precision, settings)
        return _checked(model, temporary, fmt, precision)


def _checked(model, path, fmt, precision):
    difference = max_difference(model, path, fmt)
    if not difference <= TOLERANCES[precision]:  # NaN fails too
        raise Sar2OptError(
            f"Expected the {fmt} export to match Keras within {TOLERANCES[precision]:g} ({precision}), received a "
            f"max difference of {difference:.3g} on a random batch; nothing was written"
        )
    return difference


@contextlib.contextmanager
def _atomic_folder(path):
    """A temporary folder beside `path` that replaces it (a SavedModel folder) when the block succeeds."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield temporary
        if path.exists():
            shutil.rmtree(path)
        temporary.rename(path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _input_signature(model):
    import tensorflow as tf

    return [tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name=INPUT_NAME)]


def _write_saved_model(model, path, settings):
    """Keras's ExportArchive: one `serving_default` signature, `sar` in, `optical` out, training=False."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SERVING_SIGNATURE,
        lambda sar: {OUTPUT_NAME: model(sar, training=False)},
        input_signature=_input_signature(model),
    )
    archive.write_out(str(path), verbose=False)
    (path / SAVED_MODEL_SETTINGS).parent.mkdir(exist_ok=True)
    (path / SAVED_MODEL_SETTINGS).write_text(settings, encoding="utf-8")


@contextlib.contextmanager
def _collecting_garbage(period=0.2):
    """Run Python's cyclic garbage collector every `period` seconds while the block runs.

    tf2onnx leaves the copies of the frozen graph's constants it makes in reference cycles, which the
    collector reaches late: exporting the 54.5M-parameter Pix2Pix peaked at 10.5 GB without this and
    4.7 GB with it. The objects that exist before the block (TensorFlow's, Keras's) are frozen out of
    the collections, which then take microseconds instead of half a second each.
    """
    done = threading.Event()
    gc.freeze()

    def collect():
        while not done.wait(period):
            gc.collect()

    thread = threading.Thread(target=collect, name="export-gc", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        gc.unfreeze()


def _write_onnx(model, path, precision, settings):
    """tf2onnx through Keras's `Model.export`, then the output named `optical` and the settings added."""
    import onnx

    with warnings.catch_warnings(), _collecting_garbage():
        warnings.simplefilter("ignore", FutureWarning)  # Keras's tf2onnx patch for NumPy 2 probes np.object
        model.export(str(path), format="onnx", input_signature=_input_signature(model), verbose=False)
    proto = onnx.load(str(path))
    exported = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [OUTPUT_NAME if name == exported else name for name in node.output]
    proto.graph.output[0].name = OUTPUT_NAME
    if precision == "float16":
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        half = OnnxModel(convert_float_to_float16(proto, keep_io_types=True))
        half.topological_sort()  # the casts of the float32 input and output come in out of order
        proto = half.model
    proto.metadata_props.add(key=METADATA_KEY, value=settings)
    proto.producer_name = "keras_sar2opt"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _write_litert(saved_model, path, precision, settings):
    """The LiteRT converter (TFLite builtin ops only) on the SavedModel, the settings added as metadata."""
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    flatbuffer = flatbuffer_utils.convert_bytearray_to_object(bytearray(converter.convert()))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(settings.encode("utf-8"), np.uint8)
    flatbuffer.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(flatbuffer.buffers) - 1
    flatbuffer.metadata = [*(flatbuffer.metadata or []), entry]
    Path(path).write_bytes(flatbuffer_utils.convert_object_to_bytearray(flatbuffer))


def exported_settings(path, fmt):
    """The settings an export recorded in `path`'s metadata ({} when none)."""
    if fmt == "onnx":
        return OnnxGenerator(path).settings
    if fmt == "saved_model":
        settings = Path(path) / SAVED_MODEL_SETTINGS
        return json.loads(settings.read_text(encoding="utf-8")) if settings.is_file() else {}
    from ai_edge_litert import schema_py_generated as schema

    flatbuffer = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    for i in range(flatbuffer.MetadataLength()):
        entry = flatbuffer.Metadata(i)
        if entry.Name().decode() == METADATA_KEY:
            return json.loads(flatbuffer.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return {}


def exported_runner(path, fmt):
    """A function running the exported model at `path` on an NHWC float32 batch (any batch size)."""
    if fmt == "onnx":
        return OnnxGenerator(path).predict_on_batch
    if fmt == "saved_model":
        import tensorflow as tf

        signature = tf.saved_model.load(str(path)).signatures[SERVING_SIGNATURE]
        return lambda batch: signature(**{INPUT_NAME: tf.constant(batch)})[OUTPUT_NAME].numpy()
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner(SERVING_SIGNATURE)
    return lambda batch: runner(**{INPUT_NAME: batch})[OUTPUT_NAME]


def max_difference(model, path, fmt, *, batch_size=PARITY_BATCH, seed=0):
    """max |exported - Keras| on a random batch in [-1, 1] of `batch_size` tiles."""
    shape = (batch_size, *model.inputs[0].shape[1:])
    batch = np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)
    expected = np.asarray(model(batch, training=False))
    got = np.asarray(exported_runner(path, fmt)(batch))
    if got.shape != expected.shape:
        raise Sar2OptError(f"Expected the export {path} to output {expected.shape}, received {got.shape}")
    return float(np.abs(got - expected).max())


def model_settings(source, model, reading=None):
    """The JSON-ready settings an export records: its source, tile size and, from a run, how it read SAR."""
    from keras_sar2opt.model_files import tile_size

    settings = {"source": str(source), "image_size": tile_size(model), "range": [-1, 1], "layout": "NHWC"}
    if reading is not None:
        settings["run"] = {
            "name": reading.name,
            "sar_options": reading.sar.to_config() if reading.sar else None,
            "tile_size": list(reading.tile_size) if reading.tile_size else None,
            "optical_options": reading.optical.to_config() if reading.optical else None,
        }
    return settings
