"""Smoke tests of scripts/bench_steerable.py with tiny sizes (no timing assertions)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_steerable")


def test_speed_row_and_tables(bench):
    row = bench.bench_speed(fields=1, batch=1, size=8, kernel=3, repeats=1, min_seconds=0.0, e2=None)
    assert set(row["train_ms"]) == {"ours", "plain"} and row["ratio"]["e2cnn"] is None
    assert row["params"]["plain"] == 5 * 5 * 9 + 5 and row["expand_ms"] > 0
    eq = bench.equivariance_vs_angle(
        angles=(0.0, 45.0, 90.0), size=16, fields=1, kernel=3, margin=3, seeds=(0,)
    )
    assert eq["e2cnn"] == {} and eq["ours"][90.0] < 1e-12 < eq["ours"][45.0] < 0.2
    assert 1e-12 < eq["floor"][45.0] < 0.2
    table = bench.speed_table([row]) + bench.equivariance_table(eq)
    assert "e2cnn" not in table and "| 45° |" in table and "| 0° |" not in table
    assert "isotropic floor |" in table
    assert "ours / Conv2d ≤ 1.1: met in" in bench._summary([row], eq)


def test_e2cnn_fields_map_onto_ours(bench):
    e2 = bench._load_e2cnn()
    if e2 is None:
        pytest.skip("e2cnn not installed")
    check = bench.e2cnn_convention_check(e2, size=12, kernel=3)
    assert check["mapped"] < 1e-10 < 1e-2 < check["identity"]


def test_main_quick_writes_section_and_figure(bench, tmp_path, capsys):
    md, png = tmp_path / "benchmarks.md", tmp_path / "figures" / "eq.png"
    md.write_text("# Benchmarks\n\n<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    argv = ["--quick", "--skip-e2cnn", "--no-tune-allocator", "--out", str(md), "--figure", str(png)]
    assert bench.main(argv) == 0
    text = md.read_text()
    assert "keep" in text and "<!-- bench_steerable:start -->" in text and "](figures/eq.png)" in text
    assert "skipped (--skip-e2cnn)" in text and png.read_bytes()[:4] == b"\x89PNG"
    assert bench.main([*argv[:3], "--out", "-"]) == 0
    assert "| 45° |" in capsys.readouterr().out
