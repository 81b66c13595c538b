"""Smoke test of scripts/bench_swe.py in --quick mode (no timing assertions)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_swe")


def test_quick_run_writes_its_section(bench, tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    assert (
        bench.main(["--quick", "--sizes", "32", "--repeats", "1", "--min-seconds", "0", "--out", str(out)])
        == 0
    )
    text = out.read_text()
    assert "<!-- bench_swe:start -->" in text and "keep" in text
    assert "| 32x64 |" in text
