"""The input pipeline without TensorFlow (report Table 6): a keras.utils.PyDataset over the same readers.

Used by `make_dataset` on a Keras backend whose installation has no TensorFlow (e.g. JAX on a
GPU machine). Same pairs, scaling, joint flips/90° rotations and seeding rules as the tf.data
pipeline; batches are read by Keras's worker threads.
"""

import math

import keras
import numpy as np

from keras_sar2opt.data.layouts import PairSet
from keras_sar2opt.data.loading import check_dataset_options, load_pair


def augment_arrays(sar, optical, choice):
    """One of the 8 flips/90° rotations (`choice` mod 8), the same for both images (NumPy)."""

    def transform(image):
        image = np.rot90(image, k=choice % 4, axes=(0, 1))
        return np.ascontiguousarray(image[:, ::-1] if choice % 8 >= 4 else image)

    return transform(sar), transform(optical)


class PairBatches(keras.utils.PyDataset):
    """(sar, optical) float32 batches in [-1, 1]; a new seeded order and augmentation each epoch."""

    def __init__(
        self,
        pairs,
        image_size,
        batch_size,
        *,
        training,
        seed=0,
        augment=None,
        cache=False,
        sar_options=None,
        drop_remainder=None,
        preprocessing=None,
        sar_channels=3,
        optical_options=None,
        workers=2,
    ):
        super().__init__(workers=workers, use_multiprocessing=False)
        self.pairs = list(pairs.pairs if isinstance(pairs, PairSet) else pairs)
        self.training = training
        self.augment = training if augment is None else augment
        drop_remainder = training if drop_remainder is None else drop_remainder
        check_dataset_options(
            self.pairs,
            image_size,
            batch_size,
            sar_options,
            preprocessing,
            sar_channels,
            optical_options,
            full_batch=drop_remainder,
        )
        rounding = math.floor if drop_remainder else math.ceil
        self.batches = rounding(len(self.pairs) / batch_size)
        self.batch_size = batch_size
        self.options = (image_size, sar_options, preprocessing, sar_channels, optical_options)
        # cache: any true value keeps decoded pairs in memory (tf.data's on-disk cache has no twin here).
        self.cache = {} if cache else None
        self.seed = seed
        self.epoch = 0
        self._draw_epoch()

    def _draw_epoch(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        count = len(self.pairs)
        self.order = rng.permutation(count) if self.training else np.arange(count)
        self.choices = rng.integers(0, 8, count) if self.augment else np.zeros(count, int)

    def load(self, position):
        if self.cache is not None and position in self.cache:
            return self.cache[position]
        pair = load_pair(self.pairs[position], *self.options)
        if self.cache is not None:
            self.cache[position] = pair
        return pair

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        positions = range(index * self.batch_size, min((index + 1) * self.batch_size, len(self.pairs)))
        sars, opticals = [], []
        for position in positions:
            sar, optical = self.load(self.order[position])
            sar, optical = augment_arrays(sar, optical, self.choices[position])
            sars.append(sar)
            opticals.append(optical)
        return np.stack(sars), np.stack(opticals)

    def on_epoch_end(self):
        self.epoch += 1
        self._draw_epoch()
