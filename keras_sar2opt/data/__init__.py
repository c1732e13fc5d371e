"""Paired SAR/optical data (data/README.md): dataset layouts, splits, the tf.data pipeline and the synthetic benchmark.

`make_dataset` is loaded on first use, so importing this package does not import TensorFlow; it
is the tf.data pipeline where TensorFlow is installed and a keras.utils.PyDataset otherwise.
"""

import importlib.util

from keras_sar2opt.data.layouts import LAYOUTS, ON_BAD, Pair, PairSet, Skipped
from keras_sar2opt.data.pairs import find_pairs, save_skipped
from keras_sar2opt.data.splits import load_split, save_split, split_pairs

__all__ = [
    "LAYOUTS",
    "ON_BAD",
    "Pair",
    "PairSet",
    "Skipped",
    "find_pairs",
    "save_skipped",
    "load_split",
    "save_split",
    "split_pairs",
    "make_dataset",
    "load_pair",
]


def __getattr__(name):
    if name == "load_pair":
        from keras_sar2opt.data.loading import load_pair

        return load_pair
    if name == "make_dataset":
        if importlib.util.find_spec("tensorflow") is not None:
            from keras_sar2opt.data.pipeline import make_dataset

            return make_dataset
        from keras_sar2opt.data.pydataset import PairBatches

        return PairBatches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
