"""What this machine's CPU offers the networks: its model name, instruction flags, native bfloat16,
and whether TensorFlow runs its oneDNN kernels."""

import contextlib
import functools
import logging
import os
import platform
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that compute bfloat16 natively
# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI or BF16, AVX-VNNI or
# AMX, unless this variable, read when TensorFlow is imported, says otherwise (importing keras_sar2opt
# first sets it to 1); on other x86 CPUs its Eigen kernels ran these networks up to twice as slowly.
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def cpu_info():
    """(model name, set of /proc/cpuinfo flags); the flags are empty where /proc/cpuinfo is missing."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return model, flags


def native_bf16():
    """Whether this CPU has bfloat16 matrix instructions (AVX-512 BF16 or AMX); without them
    TensorFlow emulates bfloat16 many times slower than float32."""
    return bool(cpu_info()[1] & set(BF16_FLAGS))


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN kernels in this process, as TensorFlow decided when it was
    imported (not whether it was built with them); None while TensorFlow is not imported."""
    if "tensorflow" not in sys.modules:
        return None
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def slow_kernels_message():
    """One line telling how to turn oneDNN on where TensorFlow, imported before keras_sar2opt, left it
    off on an x86 CPU (AVX2) without the user choosing so; None otherwise."""
    if ONEDNN_VARIABLE in os.environ or onednn_enabled() is not False or "avx2" not in cpu_info()[1]:
        return None
    return (
        "TensorFlow was imported before keras_sar2opt with its oneDNN kernels off, which runs these networks "
        f"up to twice as slowly on this CPU: set {ONEDNN_VARIABLE}=1 before importing TensorFlow, or import "
        "keras_sar2opt first"
    )


@functools.cache
def warn_if_slow_kernels():
    """Log slow_kernels_message() once per process, where there is one."""
    message = slow_kernels_message()
    if message is not None:
        logger.warning(message)
