"""Smoke tests of scripts/bench_sphere.py (no timing assertions): the quick run's table, its section of a
markdown file, a case that does not fit, and what the numbers rest on (memory from a fresh process per
row, the same loss with checkpointing, a reference with one row per node and edge)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_sphere")


def _rows(text: str, grid: str) -> list[list[str]]:
    """The cells of the table rows of ``grid``."""
    return [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in text.splitlines()
        if line.startswith(f"| {grid} |")
    ]


def test_quick_run_prints_both_models_with_and_without_checkpointing(bench, tmp_path, capsys):
    raw = tmp_path / "raw.json"
    assert bench.main(["--quick", "--threads", "1", "--no-progress", "--out", "-", "--json", str(raw)]) == 0
    out = capsys.readouterr().out
    assert f"<!-- {bench.SECTION}:cpu:start -->" in out and "--quick" in out and "torch" in out
    rows = _rows(out, "quick 9×16")
    assert [(r[2], r[3]) for r in rows] == [(m, c) for m in bench.MODELS for c in ("no", "yes")]
    for r in rows:  # grid points, mesh nodes (M0-M2), edges of the three graphs, then the measurements
        assert r[4:7] == ["144", "162", "216 / 1,260 / 344"]
        assert float(r[8]) > 0 and float(r[9].rstrip("×")) > 0 and float(r[10]) > 0 and float(r[11]) > 0
    data = json.loads(raw.read_text())
    assert len(data["rows"]) == 4 and all(row["fits"] for row in data["rows"])
    for row in data["rows"]:  # each child process measured its own peak resident-set growth
        assert row["peak_bytes"] > 0 and row["reference_seconds"] > 0 and row["params"] > 0
    # the first step's loss with checkpointing equals the loss without (same parameters and inputs)
    differences = bench.loss_differences(data["rows"])
    assert len(differences) == 2 and max(differences.values()) == 0
    assert "equal in every pair" in out


def test_run_writes_its_section_keeps_the_others_and_reports_what_does_not_fit(bench, tmp_path):
    md = tmp_path / "benchmarks.md"
    s = bench.SECTION
    md.write_text(
        "# Benchmarks\n\n<!-- other:start -->\nkeep\n<!-- other:end -->\n\n"
        f"<!-- {s}:start -->\nold header\n\n<!-- {s}:cuda:start -->\n### CUDA\ngpu table\n"
        f"<!-- {s}:cuda:end -->\n\n<!-- {s}:cpu:start -->\n### CPU\nstale cpu table\n<!-- {s}:cpu:end -->\n"
        f"<!-- {s}:end -->\n"
    )
    # 5.625 degrees at latent 128 with no address space beyond what the model and its inputs hold
    argv = ["--quick", "--cases", "5.625", "--latent", "128", "--models", "GraphCastNet"]
    argv += ["--checkpoint", "no"]
    argv += ["--max-memory", "0", "--threads", "1", "--no-progress", "--out", str(md)]
    assert bench.main(argv) == 0
    text = md.read_text()
    assert "<!-- other:start -->\nkeep\n<!-- other:end -->" in text
    assert text.count(f"<!-- {s}:start -->") == 1 and text.count(f"<!-- {s}:end -->") == 1
    # the CUDA table of an earlier run stays; the CPU table and the header are replaced
    assert "gpu table" in text and "stale cpu table" not in text and "old header" not in text
    assert text.index("### CPU") < text.index("### CUDA")
    (row,) = _rows(text, "5.625° (32×64)")
    assert row[1:7] == ["M0–M4", "GraphCastNet", "no", "2,048", "2,562", "3,366 / 20,460 / 6,122"]
    assert int(row[7].replace(",", "")) > 0  # parameters, counted before the step ran out of memory
    assert row[8:11] == ["does not fit", "–", "does not fit"]
    assert float(row[11]) > 0  # the memory the step needs, counted without running it
    assert "Did not fit: 5.625° (32×64) GraphCastNet checkpointing no: RuntimeError" in text
    assert "can't allocate memory" in text


def test_reference_has_one_row_per_node_and_edge(bench):
    case = bench.QUICK_CASE
    graph = bench.sphere_graph(bench.equiangular_grid(case.nlat, case.nlon, poles=case.poles), case.splits)
    assert bench.reference_rows(graph) == 144 + 162 + 216 + 1260 + 344
    bench.reference_step(10, 4, "cpu")()  # forward and backward run


def test_layout_counts_channels(bench):
    layout = bench.Layout(5)
    assert (layout.in_scalars, layout.in_vectors, layout.out_scalars, layout.out_vectors) == (38, 12, 17, 6)
    assert "38 scalars in" in layout.describe()


def test_simulated_memory_counts_the_step_on_meta_for_grids_not_run(bench, tmp_path, capsys):
    raw = tmp_path / "raw.json"
    argv = ["--quick", "--simulate", "5.625", "--threads", "1", "--no-progress", "--out", "-"]
    assert bench.main([*argv, "--json", str(raw)]) == 0
    out = capsys.readouterr().out
    assert out.index("### Simulated") < out.index("### CPU")  # the memory model first
    rows = _rows(out, "5.625° (32×64)")  # only simulated: the run itself was the quick grid
    assert [(r[2], r[3], r[8]) for r in rows] == [(m, c, "yes") for m in bench.MODELS for c in ("no", "yes")]
    data = json.loads(raw.read_text())
    simulated = {(r["model"], r["checkpoint"]): r["simulated_bytes"] for r in data["simulated"]}
    for r in rows:
        assert float(r[7]) == pytest.approx(simulated[r[2], r[3] == "yes"] / 2**30, rel=1e-2)
    for model in bench.MODELS:  # checkpointing the blocks lowers the peak
        assert simulated[model, True] < simulated[model, False]
    # the same count, called directly, for the rows of the quick grid that did run
    case = bench.QUICK_CASE
    graph = bench.sphere_graph(bench.equiangular_grid(case.nlat, case.nlon, poles=case.poles), case.splits)
    layout = bench.Layout(bench.QUICK["levels"])
    sizes = {k: bench.QUICK[k] for k in ("latent", "vectors", "steps")}
    for row in data["rows"]:
        expected = bench.simulate_peak(graph, row["model"], layout, **sizes, checkpoint=row["checkpoint"])
        assert row["simulated_bytes"] == expected


def test_simulating_only_runs_nothing_and_keeps_the_device_tables(bench, tmp_path):
    md = tmp_path / "benchmarks.md"
    s = bench.SECTION
    md.write_text(
        f"<!-- {s}:start -->\n<!-- {s}:cpu:start -->\n### CPU\ncpu table\n<!-- {s}:cpu:end -->\n"
        f"<!-- {s}:end -->\n"
    )
    argv = [
        "--cases",
        "--simulate",
        "5.625",
        "--latent",
        "16",
        "--vectors",
        "4",
        "--steps",
        "2",
        "--levels",
        "1",
    ]
    assert bench.main([*argv, "--no-progress", "--out", str(md)]) == 0
    text = md.read_text()
    assert "cpu table" in text and "### Simulated" in text and len(_rows(text, "5.625° (32×64)")) == 4
    with pytest.raises(SystemExit, match="nothing to do"):
        bench.main(["--cases", "--simulate", "--out", "-"])
