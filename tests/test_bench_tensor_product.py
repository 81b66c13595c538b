"""Smoke test of scripts/bench_tensor_product.py with --quick (no timing assertions)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_tensor_product")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # e3nn's TorchScript
def test_quick_run_writes_its_section(bench, tmp_path, capsys):
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    assert bench.main(["--quick", "--out", str(md)]) == 0
    text = md.read_text()
    assert "keep" in text and text.count(f"<!-- {bench.SECTION}:start -->") == 1
    assert "| shared | 200 |" in text and "| per edge | 200 |" in text and "| float64 |" in text
    assert "--quick" in text
    if bench._load_e3nn() is not None:
        row = next(line for line in text.splitlines() if line.startswith("| float64 |"))
        ours = float(row.split("|")[2])
        assert ours < 1e-12


def test_quick_run_without_e3nn_prints_only(bench, capsys):
    assert bench.main(["--quick", "--skip-e3nn", "--out", "-"]) == 0
    out = capsys.readouterr().out
    assert "skipped (--skip-e3nn)" in out and bench.E3NN_MISSING in out and "| shared | 200 |" in out
