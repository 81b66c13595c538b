"""Process-level tuning that the applications (the ``sim`` command, the benchmarks) opt into, and the
benchmarks' and generators' shared helpers (timing, machine description, the device a config names).

Nothing here runs on import: library code never changes process-wide settings by itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import statistics
import sys
import time
from collections.abc import Callable

__all__ = [
    "LiveTensorBytes",
    "describe_machine",
    "load_average",
    "release_cpu_memory",
    "resolve_device",
    "sync",
    "time_interleaved",
    "tune_cpu_allocator",
]

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


def release_cpu_memory() -> bool:
    """Hand the heap memory that freed CPU tensors left behind back to the system (glibc's
    ``malloc_trim(0)``), after :func:`tune_cpu_allocator` made the process keep it: a script that trains
    one model after another calls this between them, so the next one does not start with the last one's
    peak still resident. Does nothing off Linux/glibc.

    Returns:
        True if memory was released.
    """
    import gc

    gc.collect()  # tensors in reference cycles first
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    return bool(trim(0))


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


def load_average() -> str:
    """The 1-minute load average as text (``"?"`` where the OS has none), for benchmark reports."""
    import os

    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "?"


def resolve_device(name: str):
    """The ``torch.device`` a config's ``device`` value names: ``"auto"`` is CUDA when one is visible,
    else the CPU.

    Raises:
        ConfigError: a CUDA device is asked for and none is visible (one line naming the value).
    """
    import torch

    from sim.config import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: expected an available device, got {name!r} (no CUDA device is visible)")
    return device


def sync(device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if getattr(device, "type", str(device).split(":")[0]) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    repeats: int,
    min_seconds: float,
    device="cpu",
    max_extra_rounds: int | None = None,
) -> dict[str, dict]:
    """Median seconds per call of each function, the functions timed alternately.

    Each function is warmed up twice, then called ``n`` times per timed run (``n`` so that a run lasts at
    least ``min_seconds``); every round times one run of each function, starting one later each round so
    no function always follows the same one.

    On CPU a round is *contended* when a multi-threaded function (seen using at least 1.5 cores, or taking
    at least 20 ms a call) got less than 85% of its best CPU share (process CPU time / wall time), or of
    95% of the torch threads if that is more: another process took cores from it. Contended rounds are
    re-run, up to ``max_extra_rounds`` (default ``2 * repeats``) extra rounds, and the medians are over the
    clean rounds when there are at least 3 of them.

    Returns:
        ``{name: {"median": s, "min": s, "max": s, "calls": n, "rounds": r, "clean": c, "cpu_share": x,
        "samples": [s, ...]}}``, seconds per call; ``rounds`` timed, ``clean`` of them uncontended;
        ``cpu_share`` the median cores used (process CPU time / wall time); ``samples`` the times of the
        rounds the medians are over, in the same rounds for every function.
    """
    import torch

    device = torch.device(device)
    extra = 2 * repeats if max_extra_rounds is None else max_extra_rounds
    calls = {}
    for name, fn in fns.items():
        fn()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        once = time.perf_counter() - t0
        calls[name] = max(1, min(10_000, math.ceil(min_seconds / max(once, 1e-9))))
    names = list(fns)
    rounds: list[dict[str, tuple[float, float]]] = []  # per round: name -> (s per call, CPU share)

    threads = torch.get_num_threads()

    def clean_rounds() -> list[dict]:
        if device.type != "cpu" or threads < 2:
            return rounds
        best = {name: max(r[name][1] for r in rounds) for name in names}
        slow = {name: statistics.median(r[name][0] for r in rounds) >= 0.02 for name in names}
        # multi-threaded: seen using 1.5+ cores, or long enough (>= 20 ms a call) that ATen splits it
        floor = {
            name: 0.85 * max(best[name], 0.95 * threads) for name in names if best[name] >= 1.5 or slow[name]
        }
        return [r for r in rounds if all(r[name][1] >= f for name, f in floor.items())]

    while len(rounds) < repeats or (len(clean_rounds()) < repeats and len(rounds) < repeats + extra):
        k = len(rounds) % len(names)
        result = {}
        for name in names[k:] + names[:k]:
            fn, n = fns[name], calls[name]
            sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                fn()
            sync(device)
            wall = time.perf_counter() - t0
            result[name] = (wall / n, (time.process_time() - c0) / max(wall, 1e-12))
        rounds.append(result)
    clean = clean_rounds()
    used = clean if len(clean) >= min(3, repeats) else rounds
    out = {}
    for name in names:
        t = [r[name][0] for r in used]
        out[name] = {
            "median": statistics.median(t),
            "min": min(t),
            "max": max(t),
            "calls": calls[name],
            "rounds": len(rounds),
            "clean": len(clean),
            "cpu_share": statistics.median(r[name][1] for r in used),
            "samples": t,
        }
    return out


class LiveTensorBytes:
    """Counts the bytes of the tensor storages alive while it is active, and their peak: the memory a
    computation needs, measured without running it when its tensors are on the ``meta`` device.

    Every tensor an operator creates inside the ``with`` block (forward, backward, the recomputation of
    gradient checkpointing, ``.to("meta")`` copies) is counted from its creation until its storage is
    freed; views and in-place results share a storage and are counted once. Tensors made before the block
    (parameters moved to the device outside it, say) are not counted. On ``meta`` tensors every operator
    only computes shapes, so a 0.25-degree training step runs in a second on a laptop, and ``peak`` is
    what ``torch.cuda.max_memory_allocated`` would report for the same work on a GPU, less the caching
    allocator's rounding (512-byte blocks) and the workspaces of vendor libraries (cuBLAS, cuDNN), which
    are no tensors. Values cannot be inspected on ``meta``: code whose shapes depend on data (``nonzero``,
    boolean masks, ``.item()``) fails there.

    Attributes:
        live: bytes alive now; peak: the most alive at once since entering (or :meth:`reset_peak`).

    Example::

        with LiveTensorBytes() as mem:
            model = build().to("meta")
            loss = model(x.to("meta")).square().mean()
            loss.backward()
        print(mem.peak / 2**30, "GiB")
    """

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}
        self._mode = None

    def reset_peak(self) -> None:
        """Start the peak again from the bytes alive now."""
        self.peak = self.live

    def _track(self, storage) -> None:
        import weakref

        key = storage._cdata
        if key in self._sizes:
            return
        size = storage.nbytes()
        self._sizes[key] = size
        self.live += size
        self.peak = max(self.peak, self.live)
        # A storage keeps its Python object while the C++ storage lives, so this runs when it is freed.
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __enter__(self) -> LiveTensorBytes:
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor):
                        tracker._track(t.untyped_storage())
                return out

        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        mode, self._mode = self._mode, None
        mode.__exit__(*exc)
