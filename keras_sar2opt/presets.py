"""The public SAR2Optical checkpoints by name: downloaded once, verified, converted and cached as .keras.

`load("sar2optical_gen_180")` returns the Keras generator; commands take such a model as
`preset:sar2optical_gen_180`. Files come from `SAR2OPT_PRESET_BASE_URL` (default: the Hugging Face
hub) into `$KERAS_HOME/keras_sar2opt/presets` or a given folder, where each source file is kept with
a JSON record of its SHA-256 and its converted `.keras`, named by that hash.
"""

import dataclasses
import json
import logging
import os
from pathlib import Path

from keras_sar2opt import downloads, files
from keras_sar2opt.errors import Sar2OptError

logger = logging.getLogger(__name__)

PREFIX = "preset:"
BASE_URL_VARIABLE = "SAR2OPT_PRESET_BASE_URL"
DEFAULT_BASE_URL = "https://huggingface.co/yuulind/pix2pix-sar2rgb/resolve/main"
SOURCE = "SAR2Optical's README (github.com/yuuIind/SAR2Optical)"
INPUT = "8-bit SEN1-2 PNG, the grey SAR repeated to RGB, scaled to [-1, 1]"
IMAGE_SIZE = 256
# What the converter reads from a conforming file (convert.pix2pix's generator_config and the
# discriminator's channel split); any other architecture is refused.
CONFIGS = {
    "generator": {"decoder": "transpose", "in_channels": 3, "out_channels": 3},
    "discriminator": {"sar_channels": 3, "optical_channels": 3},
}
ARCHITECTURES = {
    "generator": "Pix2Pix U-Net, transposed-convolution decoder",
    "discriminator": "Pix2Pix 70x70 PatchGAN on SAR + optical",
}


@dataclasses.dataclass(frozen=True)
class Preset:
    """A published checkpoint: its file on the hub, how to check it, what it is and how well it did.

    listed_size: bytes as the hub lists them (rounded), for display. sha256: the hub's hash of the
    file, or None to verify by key schema and shapes alone.
    """

    name: str
    network: str
    file: str
    listed_size: int
    sha256: str | None
    epochs: int
    metric: str | None = None
    input: str = INPUT
    image_size: int = IMAGE_SIZE

    @property
    def url(self):
        base = os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL
        return f"{base.rstrip('/')}/{self.file}"

    @property
    def architecture(self):
        return f"{ARCHITECTURES[self.network]}, {self.epochs} epochs"

    @property
    def stem(self):
        return Path(self.file).stem


# SHA-256 and sizes as the hub's file pages list them; FID as SAR2Optical's README reports it (SEN1-2 test split).
PRESETS = {
    preset.name: preset
    for preset in (
        Preset(
            "sar2optical_gen_180",
            "generator",
            "pix2pix_gen_180.pth",
            218_000_000,
            "5bdc6bf9b29986860d6537265280bb47b74f85ebe1222256ddc59acce3a743b3",
            180,
            "FID 185.04 on SEN1-2",
        ),
        Preset(
            "sar2optical_gen_265",
            "generator",
            "pix2pix_gen_265.pth",
            218_000_000,
            "77eadd8249d2268d591466057cef11b620021611428ca30eacd9d1d567746d4d",
            265,
            "FID 189.81 on SEN1-2",
        ),
        Preset(
            "sar2optical_gen_295",
            "generator",
            "pix2pix_gen_295.pth",
            218_000_000,
            "dd31ac16d59221bdc13800e684c05edfe904461dd7cbcb657f6ce0927d9da8d5",
            295,
            "FID 187.73 on SEN1-2",
        ),
        Preset(
            "sar2optical_disc_180",
            "discriminator",
            "pix2pix_disc_180.pth",
            11_100_000,
            "f52fefa3833c11c66604033273116433fd3758f8b5834caae6dbabf68d93eb01",
            180,
        ),
        Preset(
            "sar2optical_disc_265",
            "discriminator",
            "pix2pix_disc_265.pth",
            11_100_000,
            "93bc887e376f9021dbe240e5e696adefd6cb9503d8b4419106c7a6b6fd754a79",
            265,
        ),
        Preset(
            "sar2optical_disc_295",
            "discriminator",
            "pix2pix_disc_295.pth",
            11_100_000,
            "051e7894fd28bd25b5f9eb857e720af381eac4438f612ed957563d4b92bd5838",
            295,
        ),
    )
}


def preset_name(value):
    """NAME of a `preset:NAME` model argument, or None for a path."""
    if isinstance(value, (str, os.PathLike)) and os.fspath(value).startswith(PREFIX):
        return os.fspath(value)[len(PREFIX) :]
    return None


def get(name):
    """The Preset called `name`; a Sar2OptError listing the presets for an unknown one."""
    if name not in PRESETS:
        raise Sar2OptError(f"Expected a preset among {', '.join(PRESETS)} (sar2opt presets), received {name!r}")
    return PRESETS[name]


def check(value, network, option=None):
    """The Preset that `value` (`preset:NAME`) names, which must be a `network` ("generator" or
    "discriminator"); a Sar2OptError naming `option` otherwise."""
    name = preset_name(value)
    preset = get(name)
    if preset.network != network:
        same = ", ".join(p.name for p in PRESETS.values() if p.network == network)
        what = f"{option} to name a {network}" if option else f"a {network} preset"
        raise Sar2OptError(f"Expected {what} ({same}), received {value}, a {preset.network}")
    return preset


def cache_folder(weights_dir=None):
    """Where presets are kept: `weights_dir`, else $KERAS_HOME/keras_sar2opt/presets."""
    return downloads.cache_dir("presets", weights_dir)


def _record_path(folder, preset):
    return Path(folder) / f"{preset.stem}.json"


def _keras_path(folder, preset, digest):
    return Path(folder) / f"{preset.stem}.{digest[:16]}.keras"


def _read_record(folder, preset):
    """The cache's record of `preset`'s source file, or None when there is none or it is unreadable."""
    path = _record_path(folder, preset)
    if not path.is_file():
        return None
    try:
        record = files.read_json(path, "preset record")
    except Sar2OptError as error:
        logger.warning(f"{error}; verifying {preset.file} again")
        return None
    return record if isinstance(record, dict) else None


def _current_digest(folder, preset, record):
    """The recorded SHA-256 of the cached source file when the record still describes it, else None."""
    source = Path(folder) / preset.file
    if record is None or not source.is_file() or source.stat().st_size != record.get("bytes"):
        return None
    digest = record.get("sha256")
    if not isinstance(digest, str) or (preset.sha256 is not None and digest != preset.sha256):
        return None
    return digest


def cached(name, weights_dir=None):
    """How far `name` is cached: "converted", "downloaded", or "no"."""
    preset, folder = get(name), cache_folder(weights_dir)
    digest = _current_digest(folder, preset, _read_record(folder, preset))
    if digest is None:
        return "no"
    return "converted" if _keras_path(folder, preset, digest).is_file() else "downloaded"


def _convert(preset, path, image_size):
    """The Keras network in the source file `path`; a Sar2OptError unless it is exactly the preset's architecture."""
    from keras_sar2opt.convert.pix2pix import convert_discriminator, convert_generator
    from keras_sar2opt.convert.pth_reader import read_state_dict

    convert = convert_generator if preset.network == "generator" else convert_discriminator
    model, config, _ = convert(read_state_dict(path), image_size=image_size, source=str(path))
    config = {key: config[key] for key in CONFIGS[preset.network]}
    if config != CONFIGS[preset.network]:
        raise Sar2OptError(
            f"Expected {path} to hold the {ARCHITECTURES[preset.network]} of {preset.name} "
            f"({CONFIGS[preset.network]}), received {config}"
        )
    return model


def _verify(preset, path, digest, recorded, image_size):
    """The network in the new source file `path` of SHA-256 `digest`, once it matches the pinned hash (or
    the hash recorded at its first download) and the preset's key schema and shapes."""
    if preset.sha256 is not None and digest != preset.sha256:
        raise Sar2OptError(f"Expected {path} to have SHA-256 {preset.sha256} ({preset.name}), received {digest}")
    if preset.sha256 is None and recorded is not None and digest != recorded:
        record = _record_path(path.parent, preset)
        raise Sar2OptError(
            f"Expected {path} to have SHA-256 {recorded}, recorded in {record} at its first download, received "
            f"{digest}: the file at {preset.url} changed; delete {record} to accept it"
        )
    return _convert(preset, path, image_size)


def _load_converted(path):
    """The cached .keras network at `path`, or None when it is missing or unreadable."""
    import keras

    if not path.is_file():
        return None
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        logger.warning(f"Converting again: the cached {path} does not load ({type(error).__name__})")
        return None


def load(name, *, weights_dir=None, image_size=None, progress=True):
    """The Keras network of preset `name` (a generator or a discriminator), at `image_size` (default the
    preset's 256 px).

    The first use downloads the source file into `cache_folder(weights_dir)`, verifies it (the pinned
    SHA-256, else the hash recorded at an earlier download; then the exact key schema and shapes),
    converts it and caches the `.keras`; later uses open no connection. A source file put there by
    hand is verified the same way.
    """
    preset = get(name)
    size = preset.image_size if image_size is None else image_size
    folder = cache_folder(weights_dir)
    option = "--weights-dir" if weights_dir is not None else "preset cache ($KERAS_HOME/keras_sar2opt/presets)"
    files.check_writable(folder, option, create=True)
    record = _read_record(folder, preset)
    source = folder / preset.file
    digest = _current_digest(folder, preset, record)
    if digest is not None:
        if size != preset.image_size:
            return _convert(preset, source, size)
        model = _load_converted(_keras_path(folder, preset, digest))
        if model is None:
            model = _convert(preset, source, size)
            _cache(preset, folder, digest, model)
        return model
    recorded = record.get("sha256") if record is not None else None
    if source.is_file():
        digest = downloads.sha256_file(source)
        model = _verify(preset, source, digest, recorded, size)
    else:
        print(f"Downloading {preset.name} from {preset.url} into {folder}")
        verified = {}
        digest = downloads.download(
            preset.url,
            source,
            verify=lambda path, digest: verified.update(model=_verify(preset, path, digest, recorded, size)),
            progress=progress,
        )
        model = verified["model"]
    _cache(preset, folder, digest, model if size == preset.image_size else None)
    how = "the pinned SHA-256" if preset.sha256 else "its key schema and shapes (no pinned SHA-256; hash recorded)"
    print(f"{preset.name}: {source} verified by {how}: SHA-256 {digest}")
    return model


def _cache(preset, folder, digest, model):
    """Save `model` (unless None) as the .keras of `digest`, drop other ones, and record the source file."""
    keras_path = _keras_path(folder, preset, digest)
    if model is not None:
        with files.atomic_path(keras_path) as temporary:
            model.save(temporary)
    for stale in folder.glob(f"{preset.stem}.*.keras"):
        if stale != keras_path:
            stale.unlink()
    record = {
        "preset": preset.name,
        "url": preset.url,
        "file": preset.file,
        "bytes": (folder / preset.file).stat().st_size,
        "sha256": digest,
        "verified": "pinned sha256" if preset.sha256 else "key schema and shapes",
    }
    files.write_text(_record_path(folder, preset), json.dumps(record, indent=2) + "\n")
