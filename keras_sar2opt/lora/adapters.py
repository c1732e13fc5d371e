"""Report §4.2: save, read and load LoRA adapters (and also-trained layers) by layer name, as safetensors."""

import json
from pathlib import Path

import keras
import numpy as np

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.files import atomic_path
from keras_sar2opt.lora.apply import apply_lora, leaf_layers
from keras_sar2opt.lora.layers import LoRAConv

# Key of the JSON configuration in an adapter file's safetensors metadata, and its entries.
METADATA_KEY = "keras_sar2opt.lora"
METADATA_FIELDS = ("rank", "alpha", "dropout", "targets", "also_train")
ADAPTER_SUFFIX = ".safetensors"


def _adapter_state(model):
    """(configuration, {key: variable}) of what an adapter file holds for an adapted model.

    Keys are "{layer}/lora_a", "{layer}/lora_b" (kernels) for each LoRAConv and "{layer}/{weight}"
    for every weight (BatchNorm statistics included) of the other trainable layers.
    """
    layers = leaf_layers(model)
    wrappers = [layer for layer in layers.values() if isinstance(layer, LoRAConv)]
    if not wrappers:
        raise Sar2OptError(f"Expected a model with LoRA adapters, received {model.name!r} without any")
    settings = {(layer.rank, layer.alpha, layer.dropout_rate) for layer in wrappers}
    if len(settings) > 1:
        raise Sar2OptError(
            f"Expected one rank, alpha and dropout for all adapters of {model.name!r}, received {sorted(settings)}"
        )
    rank, alpha, dropout = settings.pop()
    extra = [
        layer for layer in layers.values() if not isinstance(layer, LoRAConv) and layer.trainable and layer.weights
    ]
    variables = {}
    for layer in wrappers:
        variables[f"{layer.name}/lora_a"] = layer.lora_a.kernel
        variables[f"{layer.name}/lora_b"] = layer.lora_b.kernel
    for layer in extra:
        for weight in layer.weights:
            key = f"{layer.name}/{weight.name}"
            if key in variables:
                raise Sar2OptError(f"Expected unique weight names in layer {layer.name!r}, received {key!r} twice")
            variables[key] = weight
    config = {
        "rank": rank,
        "alpha": alpha,
        "dropout": dropout,
        "targets": [layer.name for layer in wrappers],
        "also_train": [layer.name for layer in extra],
    }
    return config, variables


def save_adapters(model, path):
    """Write only the adapters (and also-trained layers) of an adapted model to a .safetensors file.

    Tensors are keyed by layer name; rank, alpha, dropout, targets and also-trained layers go in
    the file's metadata. Safetensors stores named arrays without pickle, carries string metadata,
    is already a dependency and opens in PyTorch too. Returns the path.
    """
    path = Path(path)
    if path.suffix != ADAPTER_SUFFIX:
        raise Sar2OptError(f"Expected an adapter file name ending in {ADAPTER_SUFFIX}, received {path}")
    from safetensors.numpy import save

    config, variables = _adapter_state(model)
    tensors = {key: np.ascontiguousarray(keras.ops.convert_to_numpy(v)) for key, v in variables.items()}
    with atomic_path(path) as temporary:  # as an ordinary file: safetensors' save_file makes it owner-only
        temporary.write_bytes(save(tensors, metadata={METADATA_KEY: json.dumps({**config, "model": model.name})}))
    return path


def read_adapters(path):
    """(configuration, {key: array}) from an adapter file written by `save_adapters`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise Sar2OptError(f"Expected a LoRA adapter file, received {path} (not found)")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise Sar2OptError(f"Expected a safetensors LoRA adapter file, received {path} ({error})") from error
    try:
        config = json.loads(metadata[METADATA_KEY])
        missing = [field for field in METADATA_FIELDS if field not in config]
    except (KeyError, TypeError, ValueError):
        missing = [METADATA_KEY]
    if missing:
        raise Sar2OptError(
            f"Expected a LoRA adapter file written by save_adapters, received {path} "
            f"(metadata lacks {', '.join(missing)})"
        )
    return config, tensors


def load_adapters(base_model, path, rank=None, alpha=None):
    """`apply_lora` on base_model with an adapter file's settings, then load its adapters.

    Checks that rank and alpha (when given) match the file, that every target and also-trained
    layer exists, and that every tensor matches a variable of the same shape and vice versa.
    """
    config, tensors = read_adapters(path)
    for option, expected in (("rank", rank), ("alpha", alpha)):
        if expected is not None and expected != config[option]:
            raise Sar2OptError(f"Expected {option} {expected} in {path}, received {option} {config[option]}")
    layers = leaf_layers(base_model)
    missing = [name for name in config["targets"] + config["also_train"] if name not in layers]
    if missing:
        raise Sar2OptError(
            f"Expected layers {', '.join(missing)} of {path} in model {base_model.name!r}, "
            "received a model without them"
        )
    model = apply_lora(
        base_model,
        config["targets"],
        rank=config["rank"],
        alpha=config["alpha"],
        dropout=config["dropout"],
        also_train=config["also_train"],
    )
    _, variables = _adapter_state(model)
    if set(variables) != set(tensors):
        unexpected = sorted(set(tensors) - set(variables))
        absent = sorted(set(variables) - set(tensors))
        raise Sar2OptError(
            f"Expected exactly the adapter tensors of model {base_model.name!r} in {path}, received "
            f"missing: {', '.join(absent) or 'none'}; unexpected: {', '.join(unexpected) or 'none'}"
        )
    for key, variable in variables.items():
        if tuple(tensors[key].shape) != tuple(variable.shape):
            raise Sar2OptError(
                f"Expected shape {tuple(variable.shape)} for {key!r} in {path}, received {tuple(tensors[key].shape)}"
            )
        variable.assign(tensors[key])
    return model
