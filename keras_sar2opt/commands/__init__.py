"""Subcommands of `sar2opt`, each a thin layer over library functions.

Importing this package (as `sar2opt` and the train_*.py scripts do) turns TensorFlow's C++ info logs
off before TensorFlow is imported, unless TF_CPP_MIN_LOG_LEVEL is set; its oneDNN kernels are turned
on by `keras_sar2opt` itself, for every user (keras_sar2opt/__init__.py).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
