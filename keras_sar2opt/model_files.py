"""Loading generators from model files and run folders, and the tile size a generator translates."""

import zipfile
from pathlib import Path

from keras_sar2opt import presets, runs
from keras_sar2opt.errors import Sar2OptError

CHECKPOINT_EXTENSIONS = (".pth", ".pt", ".ckpt", ".safetensors")
# Keras's load errors can carry the whole model config; a one-line error keeps its start.
MAX_REASON_CHARS = 300


def load_generator(path, *, upsample_mode="nearest", weights_dir=None, weights_key=None):
    """A generator from a `.keras` file (a generator, or a run's checkpoint holding one) or a run
    folder (its generator.keras), converted on the fly from a SAR2Optical `.pth`/`.safetensors`
    (its weights under `weights_key` when given, e.g. "ema"), or a `preset:NAME` (downloaded into
    `weights_dir` on first use, keras_sar2opt.presets)."""
    check_weights_key(path, weights_key)
    if presets.preset_name(path) is not None:
        return presets.load(presets.check(path, "generator").name, weights_dir=weights_dir)
    path = Path(path)
    if path.is_dir():
        if not (path / runs.GENERATOR).is_file():
            last = path / runs.CHECKPOINTS / "last.keras"
            hint = f"; an unfinished run's latest checkpoint is {last}" if last.is_file() else ""
            raise Sar2OptError(
                f"Expected a model file (.keras, .pth, .safetensors) or a run folder holding {runs.GENERATOR}, "
                f"received the folder {path}{hint}"
            )
        path = path / runs.GENERATOR
    if not path.is_file():
        raise Sar2OptError(f"Expected a model file (.keras, .pth, .safetensors), received {path}, which does not exist")
    suffix = path.suffix.lower()
    if path.name == runs.ADAPTERS and (path.parent / runs.CONFIG).is_file():
        raise Sar2OptError(
            f"Expected a generator, received {path}, a LoRA run's adapters alone; pass the run folder "
            f"{path.parent} (its {runs.GENERATOR} holds the merged generator)"
        )
    if suffix in CHECKPOINT_EXTENSIONS:
        from keras_sar2opt.convert.pix2pix import load_pix2pix_generator

        return load_pix2pix_generator(path, upsample_mode=upsample_mode, key=weights_key)
    if suffix == ".onnx":
        raise Sar2OptError(
            f"Expected a Keras model here, received {path}; exported ONNX models run in `translate` and `app`"
        )
    if suffix != ".keras":
        raise Sar2OptError(f"Expected a model file ending in .keras, .pth or .safetensors, received {path}")
    from keras_sar2opt.training.adversarial import AdversarialModel

    model = load_keras_model(path)
    return model.generator if isinstance(model, AdversarialModel) else model


def check_weights_key(path, weights_key):
    """Raise Sar2OptError when --weights-key is given for a model other than a .pth/.safetensors checkpoint."""
    if weights_key is not None and Path(path).suffix.lower() not in CHECKPOINT_EXTENSIONS:
        raise Sar2OptError(f"Expected --weights-key with a .pth/.safetensors checkpoint, received {path}")


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
