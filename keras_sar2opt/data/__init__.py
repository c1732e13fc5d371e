"""Paired SAR/optical data (DESIGN §5-§6): dataset layouts, splits, the tf.data pipeline and the synthetic benchmark.

`make_dataset` is loaded on first use, so importing this package does not import TensorFlow.
"""

from keras_sar2opt.data.layouts import LAYOUTS, ON_BAD, Pair, PairSet, Skipped, find_pairs, save_skipped
from keras_sar2opt.data.splits import load_split, save_split, split_pairs

__all__ = [
    "LAYOUTS", "ON_BAD", "Pair", "PairSet", "Skipped", "find_pairs", "save_skipped",
    "load_split", "save_split", "split_pairs", "make_dataset", "load_pair",
]


def __getattr__(name):
    if name in ("make_dataset", "load_pair"):
        from keras_sar2opt.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
