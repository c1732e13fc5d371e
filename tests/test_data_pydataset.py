"""The TensorFlow-free input pipeline gives the same pairs as tf.data, jointly augmented and seeded."""

import numpy as np
import pytest

from keras_sar2opt.data import find_pairs
from keras_sar2opt.data.pipeline import make_dataset
from keras_sar2opt.data.pydataset import PairBatches, augment_arrays
from keras_sar2opt.data.synthetic import write_synthetic
from keras_sar2opt.errors import Sar2OptError


@pytest.fixture(scope="module")
def pairs(module_tmp):
    root = write_synthetic(module_tmp("syn"), "qxslab", 10, layout="qxslab", size=32, progress=False)
    return find_pairs(root).pairs


def test_inference_batches_equal_the_tf_data_pipeline(pairs):
    ours = [batch for batch in PairBatches(pairs, 32, 4, training=False)]
    theirs = [tuple(t.numpy() for t in batch) for batch in make_dataset(pairs, 32, 4, training=False)]
    assert [b[0].shape for b in ours] == [(4, 32, 32, 3), (4, 32, 32, 3), (2, 32, 32, 3)]
    for (sar, optical), (tf_sar, tf_optical) in zip(ours, theirs):
        np.testing.assert_array_equal(sar, tf_sar)
        np.testing.assert_array_equal(optical, tf_optical)
    assert -1.0 <= min(b[0].min() for b in ours) and max(b[1].max() for b in ours) <= 1.0


def test_training_order_is_seeded_and_changes_each_epoch(pairs):
    first = PairBatches(pairs, 32, 4, training=True, seed=3)
    again = PairBatches(pairs, 32, 4, training=True, seed=3)
    assert len(first) == 2  # the partial batch is dropped in training
    np.testing.assert_array_equal(first[0][0], again[0][0])
    epoch0 = first[0][0].copy()
    first.on_epoch_end()
    assert not np.array_equal(epoch0, first[0][0])


def test_augmentation_moves_a_marked_pixel_identically():
    sar = np.zeros((8, 8, 3), np.float32)
    sar[1, 2] = 1.0
    for choice in range(8):
        a, b = augment_arrays(sar, sar.copy(), choice)
        np.testing.assert_array_equal(a, b)
        assert a.sum() == 3.0
    assert len({tuple(np.argwhere(augment_arrays(sar, sar, c)[0][..., 0] == 1)[0]) for c in range(8)}) == 8


def test_too_few_pairs_for_a_training_batch_is_one_clear_error(pairs):
    with pytest.raises(Sar2OptError, match="full batch of 32"):
        PairBatches(pairs, 32, 32, training=True)
    with pytest.raises(Sar2OptError, match="full batch of 2 pairs, received 1 pair$"):
        PairBatches(pairs[:1], 32, 2, training=True)
