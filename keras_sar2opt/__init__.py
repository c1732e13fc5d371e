"""keras_sar2opt: GAN-based SAR-to-optical image translation in Keras 3."""

import os
import sys

__version__ = "0.1.0"

# TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it is imported, and turns its oneDNN kernels on by
# itself only on CPUs with AVX-512 VNNI or BF16, AVX-VNNI or AMX (keras_sar2opt.hardware). Imported
# before TensorFlow, the package turns them on for every user unless the variable is set (README,
# Performance); once TensorFlow is imported, the variable would change nothing.
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
