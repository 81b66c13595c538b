"""Smoke test of scripts/bench_meshes.py at tiny sizes (no timing assertions)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_meshes")


def test_build_counts(bench):
    out = bench.build(2, 10.0)
    assert out["mesh_vertices"] == 162 and out["mesh_edges"] == 2 * 30 * (1 + 4 + 16)
    assert out["grid_shape"] == (19, 36) and out["grid_points"] == 684
    assert out["m2g_edges"] == 3 * 684 and out["g2m_edges"] >= 684
    assert set(out["seconds"]) == set(bench.STAGES)


def test_quick_run_writes_its_section(bench, tmp_path, capsys):
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    assert bench.main(["--quick", "--out", str(md)]) == 0
    assert bench.main(["--quick", "--out", str(md)]) == 0  # replaces, does not append
    text = md.read_text()
    assert "keep" in text and text.count(bench.START) == 1 and text.count(bench.END) == 1
    assert "`python scripts/bench_meshes.py --quick`" in text
    assert "| M0–M2 | 10° (19×36) | 162 | 1,260 | 684 |" in text and "| M0–M3 | 5° (37×72) | 642 |" in text
    assert "Growth: M2→M3: nodes ×3.9" in text and "not measured" in text
    assert "wrote" in capsys.readouterr().out


def test_summary_verdict(bench):
    row = {"level": 6, "spacing": 1.0, "total": 0.5, "peak_mb": 10.0}
    row.update(mesh_vertices=40962, grid_points=65160)
    assert "met, 0.50 s" in bench.summary([row])
    assert "NOT met" in bench.summary([dict(row, total=12.0)])
