"""The tf.data pipeline (report Table 6): decode, scale to [-1, 1], resize, joint flips/90° rotations, batch."""

from pathlib import Path

import tensorflow as tf

from keras_sar2opt.data.layouts import Pair, PairSet
from keras_sar2opt.data.loading import check_dataset_options, load_pair

# Decoded pairs held in the shuffle buffer after a cache (the cache itself is in a random order).
CACHED_SHUFFLE_BUFFER = 64


def _without_autotuning(dataset):
    """`dataset` with tf.data's autotuning off: its AUTOTUNE stages run one call per core, and no
    autotuning thread runs. That thread sleeps between its rounds for ever longer periods and is
    not woken when the iterator is deleted, which then waits for it: up to 25 s at the end of a
    fine-tuning's fit() here (reports/cpu-profile.md, "Iterators that wait at their end")."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def augment_pair(sar, optical, choice):
    """One of the 8 flips/90° rotations (`choice` mod 8), the same for both images."""
    turns, flip = tf.cast(choice % 4, tf.int32), choice % 8 >= 4

    def transform(image):
        image = tf.image.rot90(image, k=turns)
        return tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)

    return transform(sar), transform(optical)


def _pair_loader(image_size, sar_options, preprocessing, sar_channels, optical_options):
    """A tf.data map function: (sar path, optical path) string tensors -> (sar, optical) images."""

    def load(sar_path, optical_path):
        pair = Pair("", Path(sar_path.decode()), Path(optical_path.decode()))
        return load_pair(pair, image_size, sar_options, preprocessing, sar_channels, optical_options)

    def load_tensors(sar_path, optical_path):
        sar, optical = tf.numpy_function(load, [sar_path, optical_path], (tf.float32, tf.float32), stateful=False)
        sar.set_shape((image_size, image_size, sar_channels))
        optical.set_shape((image_size, image_size, 3))
        return sar, optical

    return load_tensors


def make_dataset(
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
):
    """A tf.data.Dataset of (sar, optical) float32 batches in [-1, 1], shapes (B, S, S, C).

    pairs: a list of `Pair` or a `PairSet`. training: shuffle (seeded, new order each epoch),
    augment and drop the last partial batch unless `augment` / `drop_remainder` say otherwise.
    Augmentation draws one of the 8 flips/90° rotations per pair, the same for SAR and optical.
    Decoding runs in parallel with a deterministic order, so a seed fixes every batch.
    cache: True keeps decoded, resized pairs in memory (S*S*(3+C)*4 bytes each); a path caches
    them on disk; when training from a cache the pairs are stored in a seeded random order and
    reshuffled each epoch through a buffer of `CACHED_SHUFFLE_BUFFER` pairs.
    sar_options, preprocessing, sar_channels, optical_options: see `load_pair`.
    `keras_sar2opt.data.pydataset` is the same pipeline without TensorFlow.
    """
    pairs = list(pairs.pairs if isinstance(pairs, PairSet) else pairs)
    augment = training if augment is None else augment
    drop_remainder = training if drop_remainder is None else drop_remainder
    check_dataset_options(
        pairs,
        image_size,
        batch_size,
        sar_options,
        preprocessing,
        sar_channels,
        optical_options,
        full_batch=drop_remainder,
    )

    load_tensors = _pair_loader(image_size, sar_options, preprocessing, sar_channels, optical_options)
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
    return _without_autotuning(dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE))


def training_batches(
    pairs,
    image_size,
    batch_size,
    *,
    seed=0,
    augment=True,
    first_batch=0,
    sar_options=None,
    preprocessing=None,
    sar_channels=3,
    optical_options=None,
):
    """An endless tf.data stream of training batches (sar, optical) whose content depends only on
    (seed, position), so a run resumed at batch `first_batch` sees what an uninterrupted one would.

    The stream is a sequence of passes over `pairs`; pass p takes the pairs in the order of a
    stateless shuffle seeded with (seed, p), drops the last partial batch, and draws each pair's
    flip/rotation (`augment_pair`) from a stateless seed derived from (seed, p) too. Starting at
    `first_batch` skips file names, not decoded images. Other arguments as in `make_dataset`.
    """
    pairs = list(pairs.pairs if isinstance(pairs, PairSet) else pairs)
    check_dataset_options(
        pairs, image_size, batch_size, sar_options, preprocessing, sar_channels, optical_options, full_batch=True
    )
    per_pass = len(pairs) // batch_size
    used = per_pass * batch_size
    first_pass, skipped_batches = divmod(int(first_batch), per_pass)

    def one_pass(index):
        shuffle_seed = tf.stack([tf.constant(seed, tf.int64), 2 * index])
        order = tf.random.experimental.stateless_shuffle(tf.range(len(pairs), dtype=tf.int64), seed=shuffle_seed)
        choices = tf.random.stateless_uniform([used], seed=shuffle_seed + [0, 1], maxval=8, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices((order[:used], choices))

    sar_paths = tf.constant([str(p.sar) for p in pairs])
    optical_paths = tf.constant([str(p.optical) for p in pairs])
    load_tensors = _pair_loader(image_size, sar_options, preprocessing, sar_channels, optical_options)

    def load(index, choice):
        sar, optical = load_tensors(tf.gather(sar_paths, index), tf.gather(optical_paths, index))
        return augment_pair(sar, optical, choice) if augment else (sar, optical)

    dataset = tf.data.Dataset.range(first_pass, 2**62).flat_map(one_pass).skip(skipped_batches * batch_size)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _without_autotuning(dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
