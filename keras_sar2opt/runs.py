"""The run folder of a training or fine-tuning run (report §1–§4): its options, its files and what it records.

`RunOptions` is how a run trains beside its experiment's settings (`keras_sar2opt.experiments`),
one checked value that round-trips through config.json. `RunFolder` alone knows the folder's file
names and reads and writes config.json, split.json and history.csv; evaluation, translation and the
report ask it what a run recorded (its data, its SAR and optical scaling, its tile size).
"""

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from keras_sar2opt import files
from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.data.layouts import ON_BAD
from keras_sar2opt.data.scaling import OpticalScaling, SarScaling
from keras_sar2opt.data.splits import check_split_group
from keras_sar2opt.errors import Sar2OptError

CONFIG = "config.json"
SPLIT = "split.json"
HISTORY = "history.csv"
GENERATOR = "generator.keras"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
SKIPPED = "skipped.csv"
ADAPTERS = "adapters.safetensors"
HELD_OUT = "held_out.json"
LOGS = "logs"
DATA = "data"  # synthetic pairs written for a run without --data

SYNTHETIC_PRESET = "qxslab"  # the data of a run without --data
DEFAULT_PAIRS = 400  # synthetic pairs of a run without --data
PRECISIONS = ("float32", "mixed_bfloat16")
STRATEGIES = ("none", "mirrored", "multiworker")


def flag(name):
    """A setting with the `sar2opt train` option that sets it, for messages: "batch_size (--batch-size)"."""
    return f"{name} (--{name.replace('_', '-')})"


def check_choice(name, value, choices):
    """Raise Sar2OptError, naming the option, unless `value` is one of `choices`."""
    if value not in choices:
        raise Sar2OptError(f"Expected {flag(name)} to be one of {', '.join(map(str, choices))}, received {value!r}")


@dataclass(frozen=True)
class RunOptions:
    """How a run trains, beside its experiment's settings; the defaults are `sar2opt train`'s.

    pairs: synthetic pairs without data (of `preset`). precision: "float32" or "mixed_bfloat16".
    strategy: "none", "mirrored" or "multiworker" (the batch size is the global batch).
    steps_per_epoch: batches per epoch (the data repeats; None: one pass). sample_every: epochs
    between sample grids. checkpoint_every: epochs between checkpoints, the last epoch always saved
    (None: the last only; a run killed between saves resumes after the newest). early_stopping:
    patience in epochs on val_g_l1, or None. on_bad: "error" or "skip" for unreadable pairs.
    deterministic: deterministic TensorFlow ops, so that a run, interrupted or not, ends with the
    same weights. sar_options, optical_options: how stored values are scaled (`SarScaling`,
    `OpticalScaling` or their config.json dicts; None: by their type). split_group: a regular
    expression naming each pair's area (`data.split_pairs`), for a split that keeps every area on
    one side.
    """

    pairs: int = DEFAULT_PAIRS
    preset: str = SYNTHETIC_PRESET
    precision: str = "float32"
    strategy: str = "none"
    steps_per_epoch: int | None = None
    sample_every: int = 5
    checkpoint_every: int | None = 1
    tensorboard: bool = False
    early_stopping: int | None = None
    on_bad: str = "error"
    deterministic: bool = False
    sar_options: SarScaling | None = None
    optical_options: OpticalScaling | None = None
    split_group: str | None = None

    NOT_RECORDED = ("pairs", "preset")  # config.json records them under "synthetic"
    # The options a resumed run must share, with the value a run recorded before the option existed.
    RESUME_BINDING = {
        "steps_per_epoch": None,
        "precision": "float32",
        "sar_options": None,
        "optical_options": None,
        "split_group": None,
    }

    def __post_init__(self):
        sar = SarScaling.from_config(self.sar_options)
        if sar is not None and sar.input is None:  # recorded with its input kind
            sar = dataclasses.replace(sar, input="auto")
        object.__setattr__(self, "sar_options", sar)
        object.__setattr__(self, "optical_options", OpticalScaling.from_config(self.optical_options))
        check_positive_int(self.pairs, flag("pairs"))
        check_positive_int(self.steps_per_epoch, flag("steps_per_epoch"), allow_none=True)
        check_positive_int(self.sample_every, flag("sample_every"))
        check_positive_int(self.checkpoint_every, "checkpoint_every", allow_none=True)
        check_positive_int(self.early_stopping, flag("early_stopping"), allow_none=True)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("on_bad", self.on_bad, ON_BAD)
        check_choice("tensorboard", self.tensorboard, (False, True))
        check_choice("deterministic", self.deterministic, (False, True))
        if self.split_group is not None:
            check_split_group(self.split_group)

    def to_config(self):
        """The options config.json["run"] records, JSON-ready."""
        recorded = {}
        for field in dataclasses.fields(self):
            if field.name not in self.NOT_RECORDED:
                value = getattr(self, field.name)
                recorded[field.name] = value.to_config() if hasattr(value, "to_config") else value
        return recorded

    @classmethod
    def from_config(cls, run, **others):
        """The options recorded in config.json["run"] (those missing take their defaults), with `others`."""
        fields = {field.name for field in dataclasses.fields(cls)} - set(cls.NOT_RECORDED)
        return cls(**{key: value for key, value in run.items() if key in fields}, **others)

    def changed_from(self, run):
        """The RESUME_BINDING options whose value differs from the recorded `run` settings."""
        given = json.loads(json.dumps(self.to_config()))
        return [key for key, default in self.RESUME_BINDING.items() if run.get(key, default) != given[key]]


class RunReading(NamedTuple):
    """How a run read its SAR and optical tiles, as its config.json records it: what `evaluate
    --split-file` and `translate --model` inherit from the run."""

    name: str
    sar: SarScaling | None  # None: the default scaling
    tile_size: tuple | None  # (height, width) before the resize to the model's size; None: not recorded
    optical: OpticalScaling | None  # its optical bands and range; None: all bands, by bit depth

    def downsample(self, model_size):
        """The --downsample that translates at the ground resolution a model of `model_size`
        learned: the factor its tiles were resized by (None when their size was not recorded)."""
        if self.tile_size is None:
            return None
        return max(1, round(min(self.tile_size) / model_size))


class RunFolder:
    """A run folder: its file names, config.json, split.json and history.csv."""

    def __init__(self, path):
        self.path = Path(path)

    def __fspath__(self):
        return os.fspath(self.path)

    def __truediv__(self, name):
        return self.path / name

    def __repr__(self):
        return f"RunFolder({os.fspath(self.path)!r})"

    config_path = property(lambda self: self.path / CONFIG)
    split_path = property(lambda self: self.path / SPLIT)
    history_path = property(lambda self: self.path / HISTORY)
    generator_path = property(lambda self: self.path / GENERATOR)
    checkpoints = property(lambda self: self.path / CHECKPOINTS)
    samples = property(lambda self: self.path / SAMPLES)
    skipped_path = property(lambda self: self.path / SKIPPED)
    adapters_path = property(lambda self: self.path / ADAPTERS)
    held_out_path = property(lambda self: self.path / HELD_OUT)
    logs = property(lambda self: self.path / LOGS)

    @classmethod
    def holding(cls, model_path):
        """The run folder holding `model_path` (the folder, its generator.keras or a checkpoint), or None."""
        path = Path(model_path).resolve()
        folder = next((f for f in (path, path.parent, path.parent.parent) if (f / CONFIG).is_file()), None)
        return None if folder is None else cls(folder)

    def exists(self):
        return self.config_path.is_file()

    def read_config(self, what="config.json of the run"):
        """config.json as a dict; a missing or unreadable file is a Sar2OptError naming `what`."""
        recorded = files.read_json(self.config_path, what)
        if not isinstance(recorded, dict):
            raise Sar2OptError(
                f"Expected the settings of a run in {self.config_path}, received {type(recorded).__name__}"
            )
        return recorded

    def hint_config(self):
        """config.json as a dict, or None when it cannot be read: a hint, never a reason to fail."""
        try:
            return self.read_config()
        except Sar2OptError:
            return None

    def settings(self):
        """config.json's "run" settings (data, layout, options, ...), or {} when not recorded."""
        run = (self.hint_config() or {}).get("run")
        return run if isinstance(run, dict) else {}

    def write_config(self, settings):
        files.write_text(self.config_path, json.dumps(settings, indent=2, ensure_ascii=False) + "\n")

    def reading(self):
        """The run's RunReading; settings it recorded badly count as not recorded."""
        run = self.settings()
        tile = run.get("tile_size")
        if not (isinstance(tile, list) and len(tile) == 2 and all(isinstance(s, int) and s > 0 for s in tile)):
            tile = None
        try:
            sar = SarScaling.from_config(run.get("sar_options"))
        except Sar2OptError:
            sar = None
        try:
            optical = OpticalScaling.from_config(run.get("optical_options"))
        except Sar2OptError:
            optical = None
        return RunReading(self.path.name, sar, tuple(tile) if tile else None, optical)

    def history_rows(self, epochs):
        """The rows of history.csv for the first `epochs` epochs, as dicts (none when it is missing)."""
        import pandas as pd

        if not self.history_path.is_file():
            return []
        try:
            frame = pd.read_csv(self.history_path)
        except (OSError, ValueError) as error:
            raise Sar2OptError(
                f"Expected a readable history CSV to resume from, received {self.history_path} ({error})"
            ) from None
        if "epoch" not in frame:
            raise Sar2OptError(
                f"Expected an 'epoch' column in {self.history_path}, received {', '.join(frame.columns)}"
            )
        frame = frame[frame["epoch"] < epochs].drop_duplicates("epoch", keep="last").sort_values("epoch")
        return frame.to_dict("records")
