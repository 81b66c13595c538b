"""Process-level allocator tuning (applied on Linux/glibc, idempotent, harmless to results) and the
live-tensor memory counter."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from sim.runtime import LiveTensorBytes, tune_cpu_allocator


def _fresh_python(code: str) -> list[str]:
    """The words ``code`` prints, run in a fresh interpreter (process-wide allocator settings stay there)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()


def test_tuning_in_a_fresh_process_keeps_results_identical():
    code = (
        "import torch; from sim.runtime import tune_cpu_allocator;"
        "from sim.solvers import NavierStokes2D, gaussian_random_field;"
        "w = gaussian_random_field(64, [1, 2]); s = NavierStokes2D(64, 1e-3, 1e-2);"
        "a = s.advance(w, 0.1); ok = tune_cpu_allocator(); b = s.advance(w, 0.1);"
        "print(ok, tune_cpu_allocator() == ok, torch.equal(a, b))"
    )
    out = _fresh_python(code)
    expected_ok = "True" if sys.platform.startswith("linux") else "False"
    assert out == [expected_ok, "True", "True"]


def test_is_idempotent_in_this_process():
    first = tune_cpu_allocator()
    assert isinstance(first, bool) and tune_cpu_allocator() is first


def test_live_bytes_counts_each_storage_once_from_creation_to_free():
    with LiveTensorBytes() as mem:
        x = torch.empty(1000, device="meta")  # 4000 bytes
        view = x.view(10, 100)
        x.add_(1.0)  # in place: the same storage
        assert (mem.live, mem.peak) == (4000, 4000)
        y = torch.empty(250, dtype=torch.float64, device="meta") * 2  # the product's 2000 bytes stay
        assert (mem.live, mem.peak) == (6000, 8000)  # the factor lived for a moment
        del y
        assert mem.live == 4000
        del x
        assert mem.live == 4000  # the view keeps the storage
        del view
        assert (mem.live, mem.peak) == (0, 8000)
        mem.reset_peak()
        assert mem.peak == 0
    outside = torch.empty(10, device="meta")  # not counted after the block
    assert mem.live == 0 and outside.numel() == 10


def _mlp_step(device: str, *, checkpoint: bool) -> int:
    torch.manual_seed(0)
    with LiveTensorBytes() as mem:  # parameters and input made on the device: counted on both
        model = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64, device=device), nn.SiLU()) for _ in range(6)])
        h = torch.randn(512, 64, device=device)
        for block in model:
            if checkpoint:
                h = torch.utils.checkpoint.checkpoint(block, h, use_reentrant=False)
            else:
                h = block(h)
        h.square().mean().backward()
    return mem.peak


@pytest.mark.parametrize("checkpoint", [False, True])
def test_live_bytes_on_meta_equal_those_of_the_same_step_on_the_cpu(checkpoint):
    meta, cpu = _mlp_step("meta", checkpoint=checkpoint), _mlp_step("cpu", checkpoint=checkpoint)
    assert meta == cpu
    # at least the parameters, their gradients, the input and what the blocks save (their inputs with
    # checkpointing, else the inputs of both the linear layers and the SiLUs)
    params = 6 * (64 * 64 + 64) * 4
    assert meta > 2 * params + 512 * 64 * 4 * (7 if checkpoint else 13)


def test_checkpointing_lowers_the_counted_peak():
    assert _mlp_step("meta", checkpoint=True) < 0.75 * _mlp_step("meta", checkpoint=False)


def test_release_cpu_memory_returns_freed_heap_to_the_system():
    code = (
        "import torch; from sim.runtime import tune_cpu_allocator, release_cpu_memory;"
        "rss = lambda: next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS'));"
        "tune_cpu_allocator(); x = [torch.ones(3_000_000) for _ in range(40)]; del x; kept = rss();"
        "ok = release_cpu_memory(); print(ok, (kept - rss()) // 1024)"
    )
    out = _fresh_python(code)
    if not sys.platform.startswith("linux"):
        assert out[0] == "False"
        return
    assert out[0] == "True" and int(out[1]) > 300  # MiB of the 480 freed are no longer resident
