"""SAR2Optical Pix2Pix checkpoints -> Keras (report §3): a naming rule, per-layer-type port helpers, strict checks.

Keras layer `enc3_conv` holds `encoder.enc3.conv_block.0.*`, `dec3_bn` holds `decoder.dec3.conv_block.1.*`,
`disc2_conv` holds `model.model.2.conv_block.0.*`, and so on (report §3.1), so the mapping is computed from
the model's layer names rather than listed.
"""

import dataclasses
import re

import keras
import numpy as np

from keras_sar2opt.convert.pth_reader import read_state_dict
from keras_sar2opt.errors import Sar2OptError

UPSAMPLE_MODES = ("nearest", "bilinear")
_IGNORED_BN_KEY = "num_batches_tracked"
_SHOWN = 8  # keys listed per problem kind in an error message


@dataclasses.dataclass
class PortReport:
    """What a conversion did: checkpoint keys loaded, ignored (BN step counters), missing, unexpected."""

    loaded: list
    ignored: list
    missing: list
    unexpected: list


# Per-layer-type port helpers: each returns [(checkpoint key, Keras variable, NumPy transform)].


def port_conv(layer, prefix):
    """Kernel and bias of a Conv2D or Conv2DTranspose.

    torch Conv2d weight (O, I, kh, kw) -> Keras Conv2D kernel (kh, kw, I, O), and torch ConvTranspose2d
    weight (I, O, kh, kw) -> Keras Conv2DTranspose kernel (kh, kw, O, I): the same axis permutation.
    """
    pairs = [(f"{prefix}.weight", layer.kernel, lambda w: w.transpose(2, 3, 1, 0))]
    if layer.use_bias:
        pairs.append((f"{prefix}.bias", layer.bias, lambda b: b))
    return pairs


def port_batch_norm(layer, prefix):
    """torch BatchNorm2d weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance."""
    variables = (
        ("weight", layer.gamma),
        ("bias", layer.beta),
        ("running_mean", layer.moving_mean),
        ("running_var", layer.moving_variance),
    )
    return [(f"{prefix}.{name}", variable, lambda v: v) for name, variable in variables]


def _port_helper(layer):
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        return port_conv
    if isinstance(layer, keras.layers.BatchNormalization):
        return port_batch_norm
    raise ValueError(f"No port helper for layer {layer.name} of type {type(layer).__name__}")


def generator_prefix(layer_name, decoder="transpose"):
    """Checkpoint module path of a Keras Pix2Pix generator layer, or None for a layer without weights."""
    match = re.fullmatch(r"(enc|dec)(\d)_(conv|bn)", layer_name)
    if match:
        part, k, kind = match.groups()
        index = "1" if kind == "bn" else ("0.1" if part == "dec" and decoder == "upsample" else "0")
        return f"{'encoder' if part == 'enc' else 'decoder'}.{part}{k}.conv_block.{index}"
    return "head.0" if layer_name == "head_conv" else None


def discriminator_prefix(layer_name):
    """Checkpoint module path of a Keras Pix2Pix discriminator layer, or None for one without weights."""
    if layer_name == "disc4_conv":
        return "model.model.4"
    match = re.fullmatch(r"disc(\d)_(conv|bn)", layer_name)
    if match:
        return f"model.model.{match[1]}.conv_block.{'0' if match[2] == 'conv' else '1'}"
    return None


def port_state_dict(model, state_dict, prefix_of, *, strict=True, source="the state_dict", role="model"):
    """Assign `state_dict` to `model` through the naming rule `prefix_of(layer_name)`.

    Strict: missing keys, unexpected keys and shape mismatches are reported together in one
    Sar2OptError. Non-strict: missing and unexpected keys are skipped; shape mismatches still fail.
    """
    expected, layer_of, bn_prefixes = {}, {}, set()
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = prefix_of(layer.name)
        if prefix is None:
            raise ValueError(f"Layer {layer.name} has weights but no checkpoint counterpart")
        helper = _port_helper(layer)
        if helper is port_batch_norm:
            bn_prefixes.add(prefix)
        for key, variable, transform in helper(layer, prefix):
            expected[key] = (variable, transform)
            layer_of[key] = layer.name
    counters = {f"{prefix}.{_IGNORED_BN_KEY}" for prefix in bn_prefixes}
    ignored = sorted(k for k in state_dict if k in counters)
    missing = [k for k in expected if k not in state_dict]
    unexpected = sorted(k for k in state_dict if k not in expected and k not in counters)
    mismatched, values = [], {}
    for key, (variable, transform) in expected.items():
        if key not in state_dict:
            continue
        raw, shape = state_dict[key], tuple(variable.shape)
        value = transform(raw) if raw.ndim == len(shape) else raw
        if value.shape != shape:
            mismatched.append(f"{key} {tuple(raw.shape)} vs Keras {layer_of[key]} {shape}")
        values[key] = np.asarray(value, dtype=variable.dtype)
    problems = [("shape mismatches", mismatched)]
    if strict:
        problems = [("missing keys", missing), ("unexpected keys", unexpected)] + problems
    problems = [(kind, keys) for kind, keys in problems if keys]
    if problems:
        listed = "; ".join(
            f"{len(keys)} {kind}: {', '.join(keys[:_SHOWN])}"
            + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")
            for kind, keys in problems
        )
        raise Sar2OptError(f"Expected {source} to match the Keras {role}, received {listed}")
    for key, value in values.items():
        expected[key][0].assign(value)
    return PortReport(loaded=list(values), ignored=ignored, missing=missing, unexpected=unexpected)


# Prefixes that wrappers add to every key: torch.nn.DataParallel / DistributedDataParallel and
# torch.optim.swa_utils.AveragedModel (`module.`), torch.compile (`_orig_mod.`), in any nesting.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# AveragedModel's count of averaged steps, saved beside its `module.` keys.
_AVERAGED_COUNT = "n_averaged"


def strip_wrapper_prefixes(state_dict):
    """The state_dict with the prefixes of WRAPPER_PREFIXES that all its keys share removed."""
    weights = {k: v for k, v in state_dict.items() if k != _AVERAGED_COUNT}
    if weights and len(weights) < len(state_dict) and all(k.startswith("module.") for k in weights):
        state_dict = weights
    while state_dict:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state_dict)), None)
        if prefix is None:
            break
        state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def generator_config(state_dict, source="the state_dict"):
    """Decoder variant and channel counts of a SAR2Optical generator state_dict, read from its keys."""
    keys = set(state_dict)
    if any(re.fullmatch(r"decoder\.dec\d\.conv_block\.0\.1\.weight", k) for k in keys):
        decoder = "upsample"
    elif any(re.fullmatch(r"decoder\.dec\d\.conv_block\.0\.weight", k) for k in keys):
        decoder = "transpose"
    else:
        raise Sar2OptError(
            f"Expected a SAR2Optical Pix2Pix generator state_dict (decoder.dec<k>.conv_block.0.* keys) in {source}, "
            f"received keys {sorted(keys)[:4]}"
        )
    first, head = state_dict.get("encoder.enc1.conv_block.0.weight"), state_dict.get("head.0.weight")
    return {
        "decoder": decoder,
        "in_channels": first.shape[1] if first is not None and first.ndim == 4 else 3,
        "out_channels": head.shape[0] if head is not None and head.ndim == 4 else 3,
    }


def convert_generator(state_dict, *, image_size=256, upsample_mode="nearest", strict=True, source="the state_dict"):
    """Build the Keras Pix2Pix generator matching `state_dict` and load it. Returns (model, config, report)."""
    from keras_sar2opt.models import pix2pix_generator

    if upsample_mode not in UPSAMPLE_MODES:
        raise Sar2OptError(f"Expected upsample mode in {UPSAMPLE_MODES}, received {upsample_mode!r}")
    state_dict = strip_wrapper_prefixes(state_dict)
    config = generator_config(state_dict, source)
    if config["decoder"] == "upsample":
        config["upsample_mode"] = upsample_mode
    model = pix2pix_generator(image_size=image_size, **config)
    report = port_state_dict(
        model,
        state_dict,
        lambda name: generator_prefix(name, config["decoder"]),
        strict=strict,
        source=source,
        role="Pix2Pix generator",
    )
    return model, config, report


def convert_discriminator(state_dict, *, image_size=256, optical_channels=3, strict=True, source="the state_dict"):
    """Build the Keras Pix2Pix PatchGAN matching `state_dict` and load it. Returns (model, config, report)."""
    from keras_sar2opt.models import pix2pix_discriminator

    state_dict = strip_wrapper_prefixes(state_dict)
    first = state_dict.get("model.model.0.conv_block.0.weight")
    if first is None or first.ndim != 4:
        raise Sar2OptError(
            f"Expected a SAR2Optical PatchGAN state_dict (model.model.<i>.* keys) in {source}, "
            f"received keys {sorted(state_dict)[:4]}"
        )
    if first.shape[1] <= optical_channels:
        raise Sar2OptError(
            f"Expected more than {optical_channels} input channels (SAR + optical) in {source}, "
            f"received {first.shape[1]}"
        )
    config = {"sar_channels": first.shape[1] - optical_channels, "optical_channels": optical_channels}
    model = pix2pix_discriminator(image_size=image_size, **config)
    report = port_state_dict(
        model, state_dict, discriminator_prefix, strict=strict, source=source, role="Pix2Pix discriminator"
    )
    return model, config, report


def load_pix2pix_generator(path, *, image_size=256, upsample_mode="nearest", strict=True, key=None):
    """Read a SAR2Optical generator checkpoint (.pth/.safetensors) into a Keras model, without torch;
    `key`: the entry of a wrapped checkpoint holding the weights (`--weights-key`, e.g. "ema")."""
    state_dict = read_state_dict(path, key=key)
    return convert_generator(
        state_dict, image_size=image_size, upsample_mode=upsample_mode, strict=strict, source=str(path)
    )[0]


def load_pix2pix_discriminator(path, *, image_size=256, optical_channels=3, strict=True, key=None):
    """Read a SAR2Optical PatchGAN checkpoint (.pth/.safetensors) into a Keras model, without torch."""
    state_dict = read_state_dict(path, key=key)
    return convert_discriminator(
        state_dict, image_size=image_size, optical_channels=optical_channels, strict=strict, source=str(path)
    )[0]
