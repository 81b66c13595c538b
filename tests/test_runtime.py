"""Process-level allocator tuning: applied on Linux/glibc, idempotent, harmless to results."""

from __future__ import annotations

import subprocess
import sys

from sim.runtime import tune_cpu_allocator


def test_tuning_in_a_fresh_process_keeps_results_identical():
    code = (
        "import torch; from sim.runtime import tune_cpu_allocator;"
        "from sim.solvers import NavierStokes2D, gaussian_random_field;"
        "w = gaussian_random_field(64, [1, 2]); s = NavierStokes2D(64, 1e-3, 1e-2);"
        "a = s.advance(w, 0.1); ok = tune_cpu_allocator(); b = s.advance(w, 0.1);"
        "print(ok, tune_cpu_allocator() == ok, torch.equal(a, b))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    expected_ok = "True" if sys.platform.startswith("linux") else "False"
    assert out == [expected_ok, "True", "True"]


def test_is_idempotent_in_this_process():
    first = tune_cpu_allocator()
    assert isinstance(first, bool) and tune_cpu_allocator() is first
