"""How stored SAR and optical values become [0, 1] (report §3.4): one value each, checked, recorded and merged.

A `SarScaling` or `OpticalScaling` field left None is "not given": the reader's default applies,
and a run's recorded value survives a merge with options given later (`evaluate --split-file`,
`translate --model RUN`). Their `to_config()` form is what config.json and summary.json record.
"""

import dataclasses
import logging
import numbers
from dataclasses import dataclass

import cv2
import numpy as np

from keras_sar2opt.data.io import check_optical_bands, select_optical_bands, select_sar_band
from keras_sar2opt.errors import Sar2OptError

SAR_INPUTS = ("auto", "image", "linear", "amplitude", "db")  # how the values of a SAR file may be stored
STRETCHES = ("db_range", "percentiles")  # a given stretch replaces a recorded one of either kind
DEFAULT_PERCENTILES = (1.0, 99.0)

logger = logging.getLogger(__name__)


def check_value_range(name, value):
    """Raise Sar2OptError unless `value` is None or a [low, high] pair of finite numbers with low < high."""
    if value is None:
        return
    try:
        valid = len(value) == 2 and bool(np.isfinite(np.float64(value)).all()) and float(value[0]) < float(value[1])
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise Sar2OptError(f"Expected {name} as [low, high] finite with low < high, received {value!r}")


def _is_band(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _pair(value):
    return None if value is None else tuple(value)


class _Scaling:
    """The config form and merging shared by SarScaling and OpticalScaling."""

    FLAGS = {}

    @classmethod
    def from_config(cls, value):
        """The scaling of a config.json dict (None or empty: None); unknown keys are a Sar2OptError."""
        if value is None or isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise Sar2OptError(f"Expected {cls.WHAT} options as a dict, received {value!r}")
        unknown = sorted(set(value) - set(cls.FLAGS))
        if unknown:
            raise Sar2OptError(
                f"Expected {cls.WHAT} options among {', '.join(cls.FLAGS)}, received {', '.join(unknown)}"
            )
        return cls(**value) if any(item is not None for item in value.values()) else None

    def to_config(self):
        """The given fields as a JSON-ready dict (pairs as lists)."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            if (value := getattr(self, field.name)) is not None
        }

    def describe(self):
        """The given fields in a line, e.g. "input db, db_range -25..0, band 2"."""
        parts = []
        for key, value in self.to_config().items():
            if key == "bands":
                text = " ".join(map(str, value))
            elif isinstance(value, list):
                text = f"{value[0]:g}..{value[1]:g}"
            else:
                text = str(value)
            parts.append(f"{key} {text}")
        return ", ".join(parts)


@dataclass(frozen=True)
class SarScaling(_Scaling):
    """Which SAR band is used and how its stored values map to [0, 1] (`to_unit`).

    input: "image" (display-scaled values), "linear" intensity or "amplitude" (converted to dB),
    "db", or "auto" (integers are images, floats with negative values dB, other floats linear).
    db_range: (low, high) dB mapped to [0, 1]; percentiles: (low, high) clip percentiles;
    band: the band counted from 1 (default: the first of two bands, else all).
    """

    input: str | None = None
    db_range: tuple | None = None
    percentiles: tuple | None = None
    band: int | None = None

    WHAT = "SAR"
    FLAGS = {"input": "--sar-input", "db_range": "--db-range", "percentiles": "--percentiles", "band": "--sar-band"}

    def __post_init__(self):
        if self.input is not None and self.input not in SAR_INPUTS:
            raise Sar2OptError(
                f"Expected SAR input (--sar-input) among {', '.join(SAR_INPUTS)}, received {self.input!r}"
            )
        for key in STRETCHES:
            check_value_range(f"{key} ({self.FLAGS[key]})", getattr(self, key))
            object.__setattr__(self, key, _pair(getattr(self, key)))
        if self.band is not None and not _is_band(self.band):
            raise Sar2OptError(f"Expected the SAR band (--sar-band) as a number counted from 1, received {self.band!r}")

    @property
    def kind(self):
        """How the values are stored, "auto" when not given."""
        return self.input or "auto"

    def merged(self, given):
        """These recorded options with the fields `given` replacing their own; a given stretch
        (db_range or percentiles) replaces the recorded one of either kind."""
        if given is None:
            return self
        mine = self.to_config()
        if any(getattr(given, key) is not None for key in STRETCHES):
            for key in STRETCHES:
                mine.pop(key, None)
        return SarScaling(**{**mine, **given.to_config()})


@dataclass(frozen=True)
class OpticalScaling(_Scaling):
    """Which optical bands are used and how their stored values map to [0, 1]
    (`optical_to_unit`).

    bands: the 1 or 3 bands counted from 1 (e.g. (4, 3, 2): Sentinel-2's red, green and blue);
    range: (low, high) stored values mapped to [0, 1], e.g. (0, 3000) for reflectance x10000.
    Without them all bands are used, scaled by their bit depth.
    """

    bands: tuple | None = None
    range: tuple | None = None

    WHAT = "optical"
    FLAGS = {"bands": "--optical-bands", "range": "--optical-range"}

    def __post_init__(self):
        check_value_range("optical range (--optical-range)", self.range)
        object.__setattr__(self, "range", _pair(self.range))
        bands = self.bands
        if bands is not None and (
            not isinstance(bands, (list, tuple)) or len(bands) not in (1, 3) or not all(map(_is_band, bands))
        ):
            raise Sar2OptError(
                f"Expected optical bands (--optical-bands) as 1 or 3 band numbers counted from 1, received {bands!r}"
            )
        object.__setattr__(self, "bands", _pair(bands))

    def merged(self, given):
        """These recorded options with the fields `given` replacing their own."""
        if given is None:
            return self
        return OpticalScaling(**{**self.to_config(), **given.to_config()})


def linear_to_db(values, amplitude=False):
    """Linear intensity (or amplitude) to decibels, flooring zeros at 1e-10 (-100 dB)."""
    values = np.maximum(np.asarray(values, np.float32), np.float32(1e-10))
    logs = cv2.log(values.reshape(-1, 1)).reshape(values.shape)  # OpenCV's log: several times NumPy's speed
    return logs * np.float32((20.0 if amplitude else 10.0) / np.log(10.0))


def percentile_stretch(values, low, high):
    """Map the [low, high] percentiles of `values` to [0, 1] and clip."""
    lo, hi = (float(v) for v in np.percentile(values, (low, high)))
    return np.clip((values - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


def scale_to_unit(values, low, high):
    """Map stored values `low`..`high` linearly to [0, 1], clipping outside, as float32."""
    values = np.asarray(values, np.float32)
    return np.clip((values - np.float32(low)) * np.float32(1.0 / (high - low)), 0.0, 1.0)


def _image_to_unit(values, percentiles):
    if percentiles is not None:
        return percentile_stretch(values.astype(np.float32), *percentiles)
    if values.dtype.kind in "ui":
        scaled = values.astype(np.float32)
        scaled *= np.float32(1.0 / np.iinfo(values.dtype).max)
        return np.maximum(scaled, 0.0, out=scaled)  # signed integers: negatives count as black
    values = values.astype(np.float32)
    if values.min() >= 0.0 and values.max() <= 1.0:
        return values
    return percentile_stretch(values, *DEFAULT_PERCENTILES)


def resolve_sar_input(values, kind):
    """`kind`, or for "auto" the kind `values` hold: "image" if integers, "db" if any is negative, else "linear"."""
    if kind != "auto":
        return kind
    return "image" if values.dtype.kind in "ui" else ("db" if values.min() < 0 else "linear")


def to_unit(array, sar=None, path=None):
    """Scale an image to float32 in [0, 1].

    `sar=None` (optical, or SAR stored as display images): integers are divided by their dtype's
    maximum (8- and 16-bit); floats in [0, 1] are kept, other floats get a 1-99 percentile stretch.
    A `SarScaling` scales SAR: its band is taken first, so that a VH band never shifts the stretch
    of VV; "image" values are scaled as above (clipped at its percentiles when given); linear
    intensity and amplitude become dB; dB values are mapped by its db_range, or stretched between
    its percentiles (default 1 and 99). `path` names the file in errors.
    """
    array = np.asarray(array)
    if sar is None:
        return _image_to_unit(array, None)
    array = select_sar_band(array, sar.band, path)
    kind = resolve_sar_input(array, sar.kind)
    if kind == "image":
        return _image_to_unit(array, sar.percentiles)
    values = array.astype(np.float32)
    if kind != "db":
        values = linear_to_db(values, amplitude=kind == "amplitude")
    if sar.db_range is not None:
        return scale_to_unit(values, *sar.db_range)
    return percentile_stretch(values, *(sar.percentiles or DEFAULT_PERCENTILES))


def optical_to_unit(array, optical=None, path=None):
    """Scale an optical image to float32 in [0, 1]: its `OpticalScaling` bands (default all), and
    its range of stored values mapped to [0, 1] with clipping, or without one `to_unit`'s scaling
    by bit depth. `path` names the file in errors.
    """
    bands = optical and optical.bands
    check_optical_bands(array.shape[-1], bands, path)
    array = select_optical_bands(array, bands)
    if optical is None or optical.range is None:
        return to_unit(array)
    return scale_to_unit(array, *optical.range)


def warn_if_sar_scaling_mismatches(values, sar, path):
    """Warn, naming `path` and the option to pass, when the SarScaling `sar` looks wrong for the
    SAR image `values` (HxWxC, or pixels x bands): dB values read as linear intensity (they come
    out near black), linear intensity read as dB (near white), or a --db-range given for integer
    images, which are scaled as display images."""
    sar = sar or SarScaling()
    mismatch = _sar_scaling_mismatch(select_sar_band(values, sar.band, path), sar)
    if mismatch:
        logger.warning(f"SAR values of {path} {mismatch}")


def _sar_scaling_mismatch(values, sar):
    kind = sar.kind
    if values.dtype.kind in "ui":
        if kind in ("auto", "image") and sar.db_range is not None:
            return (
                "are integers, scaled as a display image: --db-range has no effect (pass --sar-input db, linear "
                "or amplitude if they are such values)"
            )
        return None
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    if kind in ("linear", "amplitude") and np.count_nonzero(finite < 0) > finite.size / 2:
        stored = "linear intensity" if kind == "linear" else "amplitude"
        return f"are mostly negative, as dB values are, not {stored}: pass --sar-input db"
    median = float(np.median(finite))
    if kind == "db" and finite.min() >= 0 and median < 1:
        return (
            f"lie between 0 and {float(finite.max()):.3g} (median {median:.3g}), as linear intensity does, not "
            "dB: pass --sar-input linear (or amplitude)"
        )
    return None
