"""Exported ONNX generators served by ONNX Runtime: `translate --model model.onnx` with no TensorFlow in the loop.

An `OnnxGenerator` offers what tiled translation asks of a Keras generator (`inputs`, `outputs`,
`name`, `predict_on_batch`), so tiling, blending and GeoTIFF writing are the same code for both.
The run settings `sar2opt export` records in the file's metadata come back as a RunReading.
"""

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_sar2opt.data.scaling import OpticalScaling, SarScaling
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.runs import RunReading

INPUT_NAME, OUTPUT_NAME = "sar", "optical"
# The metadata key holding the exported model's settings as JSON (see keras_sar2opt.export).
METADATA_KEY = "sar2opt"


class TensorPort(NamedTuple):
    """A named input or output and its NHWC shape, None where the size is dynamic (the batch)."""

    name: str
    shape: tuple


def _port(node):
    return TensorPort(node.name, tuple(size if isinstance(size, int) else None for size in node.shape))


def reading_from_metadata(settings, name):
    """The RunReading recorded in an exported model's settings, named after its run (else `name`);
    None without a run's settings."""
    run = settings.get("run")
    if not run:
        return None
    tile = run.get("tile_size")
    return RunReading(
        run.get("name") or name,
        SarScaling.from_config(run.get("sar_options")),
        tuple(tile) if tile else None,
        OpticalScaling.from_config(run.get("optical_options")),
    )


class OnnxGenerator:
    """An ONNX generator (input `sar`, output `optical`, NHWC in [-1, 1]) run by ONNX Runtime on the CPU."""

    def __init__(self, path, threads=None):
        try:
            import onnxruntime
        except ImportError:
            raise Sar2OptError(f"Expected onnxruntime to run {path}: pip install 'keras_sar2opt[export]'") from None
        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for a bad file
            reason = " ".join(str(error).split())[:300]
            raise Sar2OptError(f"Expected a loadable ONNX model, received {path} ({reason})") from None
        self.inputs = [_port(node) for node in self.session.get_inputs()]
        self.outputs = [_port(node) for node in self.session.get_outputs()]
        if len(self.inputs) != 1 or len(self.outputs) != 1 or len(self.inputs[0].shape) != 4:
            raise Sar2OptError(
                f"Expected an ONNX generator with one NHWC input and one output, received {path} with inputs "
                f"{[p.name for p in self.inputs]} and outputs {[p.name for p in self.outputs]}"
            )
        self.name = self.path.name
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        try:
            self.settings = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            raise Sar2OptError(
                f"Expected JSON in the {METADATA_KEY!r} metadata of {path}, received {raw!r:.80}"
            ) from None

    def predict_on_batch(self, batch):
        """The generator's output for an NHWC float32 batch in [-1, 1]."""
        feeds = {self.inputs[0].name: np.asarray(batch, np.float32)}
        return self.session.run([self.outputs[0].name], feeds)[0]

    def reading(self):
        """How the run this model was exported from read its SAR (None: not exported from a run)."""
        return reading_from_metadata(self.settings, self.name)
