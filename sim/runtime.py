"""Process-level tuning that the applications (the ``sim`` command, the benchmarks) opt into.

Nothing here runs on import: library code never changes process-wide settings by itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["describe_machine", "tune_cpu_allocator"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


@functools.lru_cache(maxsize=1)
def tune_cpu_allocator() -> bool:
    """Let glibc's malloc keep freed memory instead of returning every large block to the system.

    PyTorch has no caching allocator for CPU tensors. glibc serves each allocation above 32 MiB with a
    fresh ``mmap`` and returns it on free, so a loop that allocates tensors of tens of MB every step (the
    FFTs of a 256^2 x 32 Navier-Stokes step) pays for page faults on every touch: measured 2.5-3x slower
    per step there (``python scripts/bench_ns2d.py --no-tune-allocator``). This raises the ``mmap``
    threshold to 1 GiB and the trim threshold to 2 GiB, so freed blocks are reused. The cost: the process
    keeps its peak heap until it exits. Idempotent; does nothing off Linux/glibc.

    Returns:
        True if the settings were applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    ok &= mallopt(_M_TOP_PAD, 64 << 20) == 1
    return bool(ok)


def describe_machine(device=None) -> str:
    """One line naming the hardware and torch version, for benchmark reports."""
    import platform

    import torch

    if device is not None and torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
