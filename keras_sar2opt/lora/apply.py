"""Report §4.2, Table 7: resolve LoRA targets, check names and hyperparameters, apply and merge adapters."""

import numbers

import keras
import numpy as np

from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.lora.layers import CONV_TYPES, LoRAConv

# Table 7's targets: the eight encoder convolutions of the Pix2Pix generator.
PIX2PIX_ENCODER_TARGETS = tuple(f"enc{k}_conv" for k in range(1, 9))
# apply_lora's arguments and the `sar2opt train` options that set them (named in errors).
OPTION_FLAGS = {
    "rank": "--rank",
    "alpha": "--alpha",
    "dropout": "--lora-dropout",
    "targets": "--targets",
    "also_train": "--also-train",
}


def _named(argument):
    """An argument with its command-line option, for error messages: "dropout (--lora-dropout)"."""
    return f"{argument} ({OPTION_FLAGS[argument]})"


def leaf_layers(model):
    """Every non-model layer of model (nested models included) by name; names must be unique."""
    layers = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            nested = leaf_layers(layer)
        elif isinstance(layer, keras.layers.InputLayer):
            continue
        else:
            nested = {layer.name: layer}
        for name, found in nested.items():
            if name in layers:
                raise Sar2OptError(f"Expected unique layer names in model {model.name!r}, received {name!r} twice")
            layers[name] = found
    return layers


def _names(names):
    """A layer name or sequence of them, as a tuple."""
    return (names,) if isinstance(names, str) else tuple(names)


def _unknown_name(argument, model_name, blocks, entry):
    kind = "convolutions" if argument == "targets" else "layers"
    return Sar2OptError(
        f"Expected {_named(argument)} to name {kind} or block prefixes of model {model_name!r} "
        f"({', '.join(blocks)}), received {entry!r}"
    )


def _resolve(model, layers, names, argument):
    """The layers named by `names` (the "targets" or "also_train" of apply_lora): exact layer names,
    or block prefixes ("dec8" -> "dec8_*"; for targets only its convolutions)."""
    convolutions = argument == "targets"
    resolved = {}
    for entry in _names(names):
        if entry in layers:
            matches = [layers[entry]]
            if convolutions and not isinstance(layers[entry], (*CONV_TYPES, LoRAConv)):
                raise Sar2OptError(
                    f"Expected {_named(argument)} to name Conv2D or Conv2DTranspose layers, received {entry!r} "
                    f"({type(layers[entry]).__name__})"
                )
        else:
            matches = [
                layer
                for name, layer in layers.items()
                if name.startswith(f"{entry}_") and (not convolutions or isinstance(layer, (*CONV_TYPES, LoRAConv)))
            ]
        if not matches:
            raise _unknown_name(argument, model.name, dict.fromkeys(name.split("_")[0] for name in layers), entry)
        resolved.update((layer.name, layer) for layer in matches)
    return resolved


def _check_exclusive(both):
    if both:
        raise Sar2OptError(
            f"Expected {_named('also_train')} to exclude the LoRA {_named('targets')}, received "
            f"{', '.join(both)} in both"
        )


def check_layer_names(model_name, blocks, targets, also_train=()):
    """Raise Sar2OptError, as apply_lora would, for `targets` or `also_train` entries outside the
    block prefixes `blocks` of the model `model_name`, or given in both, before the model is at hand.

    Entries whose block exists but whose layer does not are left to apply_lora.
    """
    for argument, names in (("targets", targets), ("also_train", also_train)):
        for entry in _names(names):
            if entry.split("_")[0] not in blocks:
                raise _unknown_name(argument, model_name, blocks, entry)
    _check_exclusive([entry for entry in _names(also_train) if entry in _names(targets)])


def check_hyperparameters(rank, alpha, dropout):
    """Raise Sar2OptError, naming the option, unless rank is a positive integer, alpha positive
    and dropout in [0, 1)."""
    check_positive_int(rank, _named("rank"))
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not alpha > 0:
        raise Sar2OptError(f"Expected {_named('alpha')} to be a positive number, received {alpha!r}")
    if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise Sar2OptError(f"Expected {_named('dropout')} to be in [0, 1), received {dropout!r}")


def _clone(model, clone_layer):
    """Clone model's graph with clone_layer(layer); returns the clone and its (old, new) layer pairs."""
    pairs = []

    def clone_function(layer):
        new = clone_layer(layer)
        pairs.append((layer, new))
        return new

    try:
        cloned = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    except ValueError as error:
        raise Sar2OptError(
            f"Expected a Functional or Sequential Keras model, received {type(model).__name__} ({error})"
        ) from error
    return cloned, pairs


def _copy(layer):
    return type(layer).from_config(layer.get_config())


def _wrap(layer, rank, alpha, dropout):
    """A LoRAConv around a fresh copy of the convolution `layer` (weights copied by the caller)."""
    config = layer.get_config()
    if getattr(layer, "lora_enabled", False):
        raise Sar2OptError(f"Expected {layer.name!r} without Keras's built-in LoRA, received lora_rank set")
    if config.get("groups", 1) != 1:
        raise Sar2OptError(f"Expected LoRA target {layer.name!r} with groups=1, received groups={config['groups']}")
    base = type(layer).from_config({**config, "name": "base", "activation": None})
    return LoRAConv(
        base,
        rank=rank,
        alpha=alpha,
        dropout=dropout,
        activation=config["activation"],
        name=layer.name,
        dtype=config["dtype"],
    )


def apply_lora(model, targets, rank=16, alpha=32, dropout=0.1, also_train=()):
    """A new model with LoRA adapters on `targets`; only the adapters and `also_train` layers train.

    Defaults are Table 7's: r 16, α 32, dropout 0.1, on `PIX2PIX_ENCODER_TARGETS`.
    `targets` and `also_train` take exact layer names or block prefixes ("dec8" means every layer
    named "dec8_*"; for targets only its convolutions). Layer names and graph (skips included) are
    kept, the weights copied, and `model` is left untouched. Every other layer is frozen, so its
    BatchNorm normalises with its moving statistics even when called with training=True. Toggling
    `trainable` on the returned model as a whole unfreezes those layers (never a wrapped base).
    """
    check_hyperparameters(rank, alpha, dropout)
    layers = leaf_layers(model)
    adapted = [name for name, layer in layers.items() if isinstance(layer, LoRAConv)]
    if adapted:
        raise Sar2OptError(
            f"Expected a model without LoRA adapters, received {model.name!r} with adapters on {', '.join(adapted)}"
        )
    wrap = _resolve(model, layers, targets, "targets")
    train = _resolve(model, layers, also_train, "also_train")
    _check_exclusive(sorted(set(wrap) & set(train)))
    target_ids = {id(layer) for layer in wrap.values()}
    train_ids = {id(layer) for layer in train.values()}
    new_model, pairs = _clone(
        model,
        lambda layer: _wrap(layer, rank, alpha, dropout) if id(layer) in target_ids else _copy(layer),
    )
    for old, new in pairs:
        if isinstance(new, LoRAConv):
            new.layer.set_weights(old.get_weights())
        else:
            new.set_weights(old.get_weights())
            new.trainable = id(old) in train_ids
    return new_model


def merge_lora(model):
    """A plain, fully trainable copy of an adapted model with every adapter folded into its kernel.

    The result has the original layer types and names and, in inference mode, the adapted model's
    outputs up to float rounding.
    """
    if not any(isinstance(layer, LoRAConv) for layer in leaf_layers(model).values()):
        raise Sar2OptError(f"Expected a model with LoRA adapters, received {model.name!r} without any")
    new_model, pairs = _clone(
        model,
        lambda layer: (
            type(layer.layer).from_config(layer.base_config()) if isinstance(layer, LoRAConv) else _copy(layer)
        ),
    )
    for old, new in pairs:
        new.set_weights(old.merged_weights() if isinstance(old, LoRAConv) else old.get_weights())
        new.trainable = True
    return new_model


def count_lora_parameters(model, targets=PIX2PIX_ENCODER_TARGETS, rank=16):
    """Closed-form adapter size: Σ over target convolutions of rank·(kh·kw·C_in + C_out)."""
    total = 0
    for layer in _resolve(model, leaf_layers(model), targets, "targets").values():
        base = layer.layer if isinstance(layer, LoRAConv) else layer
        kh, kw, *channels = base.kernel.shape
        c_in = channels[1] if isinstance(base, keras.layers.Conv2DTranspose) else channels[0]
        total += rank * (kh * kw * c_in + base.filters)
    return total


def count_trainable_parameters(model):
    """The number of scalars in model.trainable_weights."""
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
