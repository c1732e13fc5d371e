"""Callbacks of a training run (report §1–§2): sample grids of fixed held-out pairs (Figures 1, 2)."""

from pathlib import Path

import keras
import numpy as np

from keras_sar2opt.reports.grids import write_sample_grid


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
