"""Callbacks of a training run (report §1–§2): sample grids (Figures 1, 2), history, checkpoints, a NaN guard."""

import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from keras_sar2opt.data.grids import write_sample_grid
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.files import write_csv


class SampleGrid(keras.callbacks.Callback):
    """Writes `samples/epoch_NNN.png` (SAR | generated | target) for fixed pairs.

    Written after the first epoch, every `every` epochs and after the last epoch of fit().
    """

    def __init__(self, sar, optical, directory, every=5):
        super().__init__()
        self.sar = np.asarray(sar, np.float32)
        self.optical = np.asarray(optical, np.float32)
        self.directory = Path(directory)
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        if number == 1 or number % self.every == 0 or number == self.params.get("epochs"):
            generated = self.model.generator(self.sar, training=False)
            generated = np.asarray(keras.ops.convert_to_numpy(generated), np.float32)
            write_sample_grid(self.directory / f"epoch_{number:03d}.png", self.sar, generated, self.optical)


class NonFiniteLoss(Sar2OptError):
    """A logged loss or metric became NaN or infinite."""


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite value in the logs, naming the epoch and step.

    It raises `NonFiniteLoss` from the batch (or, for validation values, the epoch end) where
    the value appears, before the callbacks after it in the list save anything of that epoch.
    `last_good` is a callable naming the last good checkpoint for the message.
    """

    def __init__(self, last_good=lambda: "none"):
        super().__init__()
        self.last_good = last_good
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"epoch {self.epoch + 1}, step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, f"the end of epoch {epoch + 1}")

    def _check(self, logs, where):
        for name, value in sorted((logs or {}).items()):
            value = float(np.asarray(value))
            if not math.isfinite(value):
                raise NonFiniteLoss(
                    f"Expected finite losses, received {name} = {value} at {where}; training stopped, "
                    f"last good checkpoint: {self.last_good()}"
                )


class HistoryCSV(keras.callbacks.Callback):
    """history.csv with one row per epoch (CSVLogger's columns: epoch, then the sorted log keys).

    The whole file is rewritten atomically after each epoch, so a killed run leaves complete rows
    only. `rows`: the rows of the epochs already trained (a resumed run); a row for an epoch that
    is trained again is replaced, so each epoch appears once.
    """

    def __init__(self, path, rows=()):
        super().__init__()
        self.path = Path(path)
        self.rows = list(rows)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{key: float(np.asarray(value)) for key, value in (logs or {}).items()}}
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
        frame = pd.DataFrame(self.rows)
        try:
            write_csv(self.path, frame[["epoch", *sorted(c for c in frame.columns if c != "epoch")]])
        except OSError as error:  # e.g. a full disk
            raise Sar2OptError(f"Expected to write {self.path}, received {error.strerror or error}") from None


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model into a `CheckpointStore`: last.keras after every `every` epochs and after the
    last epoch trained (`every=None`: after the last one only), and best.keras when `monitor` reaches
    a new minimum among the saved epochs. `best`: the minimum of the epochs already trained.

    A run killed between saves resumes after the newest saved epoch.
    """

    def __init__(self, store, monitor, best=math.inf, every=1):
        super().__init__()
        self.store = store
        self.monitor = monitor
        self.best = best
        self.every = every
        self.unsaved = None  # (epoch, logs) of the newest epoch trained and not saved

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        if number == self.params.get("epochs") or (self.every is not None and number % self.every == 0):
            self._save(epoch, logs)
        else:
            self.unsaved = (epoch, logs)

    def on_train_end(self, logs=None):
        if self.unsaved is not None:  # early stopping ended the run between saves
            self._save(*self.unsaved)

    def _save(self, epoch, logs):
        value = (logs or {}).get(self.monitor)
        improved = value is not None and float(value) < self.best
        if improved:
            self.best = float(value)
        self.store.save(self.model, epoch + 1, best=improved)
        self.unsaved = None


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping on a value to minimise that first replays the monitored values of the epochs
    already trained, so a resumed run keeps the best value and the patience count of the run it
    continues."""

    def __init__(self, past=(), **kwargs):
        super().__init__(mode="min", **kwargs)
        self.past = list(past)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for epoch, value in enumerate(self.past):  # as on_epoch_end counts them, with min_delta >= 0
            self.wait += 1
            if self.best is None or value < self.best - self.min_delta:
                self.best, self.best_epoch, self.wait = value, epoch, 0
