"""The tf.data pipeline (DESIGN §4, Table 6): decode, scale to [-1, 1], resize, joint flips/90° rotations, batch."""

from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from keras_sar2opt.data.io import check_sar_options, read_image, to_channels, to_unit
from keras_sar2opt.data.layouts import Pair, PairSet
from keras_sar2opt.data.preprocess import apply_preprocessing
from keras_sar2opt.errors import Sar2OptError

# Decoded pairs held in the shuffle buffer after a cache (the cache itself is in a random order).
CACHED_SHUFFLE_BUFFER = 64


def resize(image, size):
    """Resize HxWxC to size x size: area averaging when shrinking, bilinear when enlarging."""
    if image.shape[:2] == (size, size):
        return image
    shrink = image.shape[0] > size or image.shape[1] > size
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return resized.reshape(size, size, image.shape[-1])  # OpenCV drops a single channel axis


def _to_signed(image_unit):
    """[0, 1] -> [-1, 1], in place."""
    image_unit *= 2.0
    image_unit -= 1.0
    return image_unit


def load_pair(pair, image_size, sar_options=None, preprocessing=None, sar_channels=3):
    """Read a pair as float32 (sar, optical) in [-1, 1], shapes (S, S, sar_channels) and (S, S, 3).

    SAR is scaled by `to_unit(..., sar_options or {})` (dB conversion, percentile clipping),
    preprocessed on its own channels (`apply_preprocessing` steps), resized, then repeated to
    `sar_channels`; optical is scaled by its bit depth.
    """
    sar = apply_preprocessing(to_unit(read_image(pair.sar), sar_options or {}), preprocessing)
    optical = to_unit(read_image(pair.optical))
    if sar.shape[:2] != optical.shape[:2]:
        raise Sar2OptError(
            f"Expected {pair.optical} to be {sar.shape[0]}x{sar.shape[1]} like its SAR partner {pair.sar}, "
            f"received {optical.shape[0]}x{optical.shape[1]}"
        )
    sar = to_channels(_to_signed(resize(sar, image_size)), sar_channels, pair.sar)
    return sar, to_channels(_to_signed(resize(optical, image_size)), 3, pair.optical)


def augment_pair(sar, optical, choice):
    """One of the 8 flips/90° rotations (`choice` mod 8), the same for both images."""
    turns, flip = tf.cast(choice % 4, tf.int32), choice % 8 >= 4

    def transform(image):
        image = tf.image.rot90(image, k=turns)
        return tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)

    return transform(sar), transform(optical)


def _check(pairs, image_size, batch_size, sar_options, preprocessing, sar_channels):
    if not pairs:
        raise Sar2OptError("Expected at least one pair for the dataset, received none")
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise Sar2OptError(f"Expected an integer image size of at least 8, received {image_size!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise Sar2OptError(f"Expected a positive integer batch size, received {batch_size!r}")
    if sar_channels not in (1, 3):
        raise Sar2OptError(f"Expected 1 or 3 SAR channels, received {sar_channels!r}")
    # Bad options fail here, with their own message, rather than inside tf.data.
    check_sar_options(sar_options or {})
    apply_preprocessing(np.full((8, 8, 1), 0.5, np.float32), preprocessing)


def make_dataset(pairs, image_size, batch_size, *, training, seed=0, augment=None, cache=False,
                 sar_options=None, drop_remainder=None, preprocessing=None, sar_channels=3):
    """A tf.data.Dataset of (sar, optical) float32 batches in [-1, 1], shapes (B, S, S, C).

    pairs: a list of `Pair` or a `PairSet`. training: shuffle (seeded, new order each epoch),
    augment and drop the last partial batch unless `augment` / `drop_remainder` say otherwise.
    Augmentation draws one of the 8 flips/90° rotations per pair, the same for SAR and optical.
    Decoding runs in parallel with a deterministic order, so a seed fixes every batch.
    cache: True keeps decoded, resized pairs in memory (S*S*(3+C)*4 bytes each); a path caches
    them on disk; when training from a cache the pairs are stored in a seeded random order and
    reshuffled each epoch through a buffer of `CACHED_SHUFFLE_BUFFER` pairs.
    sar_options, preprocessing, sar_channels: see `load_pair`.
    """
    pairs = list(pairs.pairs if isinstance(pairs, PairSet) else pairs)
    _check(pairs, image_size, batch_size, sar_options, preprocessing, sar_channels)
    augment = training if augment is None else augment
    drop_remainder = training if drop_remainder is None else drop_remainder
    if drop_remainder and len(pairs) < batch_size:
        raise Sar2OptError(f"Expected at least one full batch of {batch_size} pairs, received {len(pairs)} pairs")

    def load(sar_path, optical_path):
        pair = Pair("", Path(sar_path.decode()), Path(optical_path.decode()))
        return load_pair(pair, image_size, sar_options, preprocessing, sar_channels)

    def load_tensors(sar_path, optical_path):
        sar, optical = tf.numpy_function(load, [sar_path, optical_path], (tf.float32, tf.float32), stateful=False)
        sar.set_shape((image_size, image_size, sar_channels))
        optical.set_shape((image_size, image_size, 3))
        return sar, optical

    dataset = tf.data.Dataset.from_tensor_slices(([str(p.sar) for p in pairs], [str(p.optical) for p in pairs]))
    if training:
        dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=not cache)
    dataset = dataset.map(load_tensors, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
        if training:
            dataset = dataset.shuffle(min(len(pairs), CACHED_SHUFFLE_BUFFER), seed=seed + 1)
    if augment:
        choices = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, choices).map(
            lambda pair, choice: augment_pair(*pair, choice), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
