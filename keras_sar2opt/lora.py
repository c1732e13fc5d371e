"""Report §4.2, Table 7: LoRA on Conv2D/Conv2DTranspose; apply, merge, save and load adapters by name."""

import json
import numbers
from pathlib import Path

import keras
import numpy as np

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.files import atomic_path

# Table 7's targets: the eight encoder convolutions of the Pix2Pix generator.
PIX2PIX_ENCODER_TARGETS = tuple(f"enc{k}_conv" for k in range(1, 9))
# Key of the JSON configuration in an adapter file's safetensors metadata, and its entries.
METADATA_KEY = "keras_sar2opt.lora"
METADATA_FIELDS = ("rank", "alpha", "dropout", "targets", "also_train")
ADAPTER_SUFFIX = ".safetensors"
CONV_TYPES = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
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


@keras.saving.register_keras_serializable(package="keras_sar2opt")
class LoRAConv(keras.layers.Wrapper):
    """A frozen Conv2D/Conv2DTranspose plus a low-rank update: `base(x) + alpha/rank · B(A(dropout(x)))`.

    A is a convolution of the base's own class and geometry (kernel size, strides, padding,
    dilation, output padding) into `rank` channels without bias; B is a bias-free 1x1 Conv2D from
    `rank` to the base's filters, initialised to zero so the wrapped layer starts out exactly equal
    to its base. Dropout (Table 7: 0.1) acts on the adapter's input in training only. A base
    activation is applied after the sum (pass it as `activation`; the wrapped layer must be linear).

    Both products are linear in the same input taps, so the update folds exactly into the base
    kernel (`merged_weights`): Conv2D kernels (kh, kw, in, out) gain `einsum("hwir,ro->hwio", A, B)`,
    Conv2DTranspose kernels (kh, kw, out, in) gain `einsum("hwri,ro->hwoi", A, B)`.

    This wraps the layer rather than using Keras's `Conv2D.enable_lora`: the built-in version adds
    `A @ B` to the kernel before the convolution, which leaves no place for dropout on the adapter's
    input, does not exist for Conv2DTranspose, and saves the merged kernel (resetting the adapters
    on load), so adapters cannot be stored on their own. The base layer stays frozen whatever
    `trainable` is set to on the wrapper.
    """

    def __init__(self, layer, rank=16, alpha=32, dropout=0.0, activation=None, **kwargs):
        if not isinstance(layer, CONV_TYPES):
            raise ValueError(f"Expected a Conv2D or Conv2DTranspose to wrap, received {type(layer).__name__}")
        if keras.activations.serialize(layer.activation) != "linear":
            raise ValueError(
                f"Expected a linear convolution inside LoRAConv (pass activation= to the wrapper), "
                f"received activation {keras.activations.serialize(layer.activation)!r}"
            )
        super().__init__(layer, **kwargs)
        self.rank = rank
        self.alpha = alpha
        self.dropout_rate = dropout
        self.scale = alpha / rank
        self.activation = keras.activations.get(activation)
        config = layer.get_config()
        self.lora_dropout = keras.layers.Dropout(dropout, name="lora_dropout")
        self.lora_a = type(layer).from_config(
            {
                **config,
                "name": "lora_a",
                "trainable": True,
                "filters": rank,
                "use_bias": False,
                "activation": None,
                # PEFT's kaiming_uniform(a=sqrt(5)): uniform(±1/sqrt(fan_in)).
                "kernel_initializer": keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
                "kernel_regularizer": None,
                "kernel_constraint": None,
                "activity_regularizer": None,
            }
        )
        self.lora_b = keras.layers.Conv2D(
            layer.filters,
            1,
            use_bias=False,
            kernel_initializer="zeros",
            data_format=config["data_format"],
            dtype=config["dtype"],
            name="lora_b",
        )
        self.layer.trainable = False

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        keras.layers.Layer.trainable.fset(self, value)
        if "layer" in self.__dict__:
            self.layer.trainable = False

    def build(self, input_shape):
        if not self.layer.built:  # a deserialised base arrives built
            self.layer.build(input_shape)
        self.lora_a.build(input_shape)
        self.lora_b.build(self.lora_a.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        update = self.lora_b(self.lora_a(self.lora_dropout(inputs, training=training)))
        return self.activation(self.layer(inputs) + self.scale * update)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "rank": self.rank,
            "alpha": self.alpha,
            "dropout": self.dropout_rate,
            "activation": keras.activations.serialize(self.activation),
        }

    def base_config(self):
        """The configuration of the equivalent plain layer: the base's, with this name and activation."""
        return {
            **self.layer.get_config(),
            "name": self.name,
            "trainable": True,
            "activation": keras.activations.serialize(self.activation),
        }

    def merged_weights(self):
        """The plain layer's weights [kernel(, bias)] with the adapter folded into the kernel."""
        kernel, *bias = [keras.ops.convert_to_numpy(w) for w in self.layer.weights]
        a = keras.ops.convert_to_numpy(self.lora_a.kernel).astype(np.float64)
        b = keras.ops.convert_to_numpy(self.lora_b.kernel)[0, 0].astype(np.float64)
        transposed = isinstance(self.layer, keras.layers.Conv2DTranspose)
        equation = "hwri,ro->hwoi" if transposed else "hwir,ro->hwio"
        delta = self.scale * np.einsum(equation, a, b)
        return [(kernel.astype(np.float64) + delta).astype(kernel.dtype), *bias]


def _leaf_layers(model):
    """Every non-model layer of model (nested models included) by name; names must be unique."""
    layers = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            nested = _leaf_layers(layer)
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
    if not isinstance(rank, numbers.Integral) or isinstance(rank, bool) or rank < 1:
        raise Sar2OptError(f"Expected {_named('rank')} to be a positive integer, received {rank!r}")
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
    layers = _leaf_layers(model)
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
    if not any(isinstance(layer, LoRAConv) for layer in _leaf_layers(model).values()):
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


def _adapter_state(model):
    """(configuration, {key: variable}) of what an adapter file holds for an adapted model.

    Keys are "{layer}/lora_a", "{layer}/lora_b" (kernels) for each LoRAConv and "{layer}/{weight}"
    for every weight (BatchNorm statistics included) of the other trainable layers.
    """
    layers = _leaf_layers(model)
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
    layers = _leaf_layers(base_model)
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


def count_lora_parameters(model, targets=PIX2PIX_ENCODER_TARGETS, rank=16):
    """Closed-form adapter size: Σ over target convolutions of rank·(kh·kw·C_in + C_out)."""
    total = 0
    for layer in _resolve(model, _leaf_layers(model), targets, "targets").values():
        base = layer.layer if isinstance(layer, LoRAConv) else layer
        kh, kw, *channels = base.kernel.shape
        c_in = channels[1] if isinstance(base, keras.layers.Conv2DTranspose) else channels[0]
        total += rank * (kh * kw * c_in + base.filters)
    return total


def count_trainable_parameters(model):
    """The number of scalars in model.trainable_weights."""
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
