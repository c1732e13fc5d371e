"""Subcommands of `sar2opt`, each a thin layer over library functions.

Importing this package (as `sar2opt` and the train_*.py scripts do) sets TensorFlow's environment
before TensorFlow is imported: its C++ info logs off, and its oneDNN kernels on. TensorFlow turns
oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; elsewhere its Eigen kernels run
these networks about twice as slowly. Values already in the environment win.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
