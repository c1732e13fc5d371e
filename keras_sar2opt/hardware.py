"""What this machine's CPU offers the networks: its model name, instruction flags and native bfloat16."""

import contextlib
import platform
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that compute bfloat16 natively


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
