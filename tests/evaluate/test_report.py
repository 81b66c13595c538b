"""Plots and the markdown report: the files are written (refusing to overwrite) and the summary table
has one row per model and test set."""

from __future__ import annotations

import pytest

from sim.evaluate import (
    SUMMARY_COLUMNS,
    EvalResult,
    evaluate_rollout,
    format_summary,
    plot_error_curves,
    plot_snapshots,
    plot_spectra,
    rollout_to_netcdf,
    write_report,
)
from sim.io import OutputError

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, ns_data, make_model_stepper) -> list[EvalResult]:
    """Two tiny models, each on the original and the rot90 test set, rolled out past the truth."""
    folder = tmp_path_factory.mktemp("rollouts")
    results = []
    for name, config in (("P4M G-CNN", "gcnn_p4m"), ("CNN", "cnn")):
        stepper = make_model_stepper(config)
        for g in (None, 1):
            roll = rollout_to_netcdf(
                stepper,
                ns_data,
                folder / f"{config}_{g}.nc",
                steps=12,
                element=g,
                progress=False,
                attrs={"model": name},
            )
            results.append(EvalResult(name, evaluate_rollout(roll, ns_data), rollout=roll))
    return results


def test_plots_are_pngs(tmp_path, evaluated):
    curves = {r.name: r.metrics for r in evaluated if r.element == 0}
    transformed = {r.name: r.metrics for r in evaluated if r.element != 0}
    for path in (
        plot_error_curves(curves, tmp_path / "err.png", transformed=transformed, thresholds=(0.1, 0.5)),
        plot_error_curves(curves, tmp_path / "corr.png", metric="correlation"),
        plot_spectra(curves, tmp_path / "spec.png"),
        plot_snapshots(evaluated[1].rollout, tmp_path / "snap.png", leads=[1, 7, 12]),  # 12: no truth
    ):
        assert path.read_bytes()[:8] == PNG
    with pytest.raises(OutputError, match="already exists"):
        plot_spectra(curves, tmp_path / "spec.png")
    with pytest.raises(ValueError, match="has no variable 'nope_mean'"):
        plot_error_curves(curves, tmp_path / "x.png", metric="nope")
    with pytest.raises(ValueError, match=r"leads: expected leads in 1..12"):
        plot_snapshots(evaluated[0].rollout, tmp_path / "x.png", leads=[13])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corr.png", "err.png", "snap.png", "spec.png"]


def test_report_files_and_summary_rows(tmp_path, evaluated):
    out = tmp_path / "eval"
    rows = write_report(evaluated, out, title="Tiny evaluation")
    assert [(r["model"], r["test_set"]) for r in rows] == [
        ("P4M G-CNN", "original"),
        ("P4M G-CNN", "rot90 (g=1)"),
        ("CNN", "original"),
        ("CNN", "rot90 (g=1)"),
    ]
    assert all(list(r) == list(SUMMARY_COLUMNS) for r in rows)
    r = rows[0]
    assert r["samples"] == 3 and r["steps"] == 12 and r["end_lead"] == 7  # 11 frames, history 4
    assert r["rel_l2_1"] == pytest.approx(float(evaluated[0].metrics["rel_l2_mean"][0]))
    assert r["rel_l2_end"] == pytest.approx(float(evaluated[0].metrics["rel_l2_mean"][6]))
    assert set(r["time_to_thresholds"]) == {0.1, 0.5} and r["diverged"] == 0 and r["first_divergence"] == -1
    assert r["rel_l2_10"] != r["rel_l2_10"]  # NaN: lead 10 is past the truth
    for key in ("rel_l2_1", "rel_l2_end", "rel_l2_avg", "enstrophy_ratio_end"):  # equivariant: same on rot90
        assert rows[1][key] == pytest.approx(r[key], rel=1e-5)
    m = evaluated[0].metrics
    assert r["enstrophy_ratio_end"] == pytest.approx(
        float(m["enstrophy_pred_mean"][6] / m["enstrophy_truth_mean"][6]), rel=1e-12
    )

    names = {p.name for p in out.iterdir()}
    stems = ["p4m-g-cnn", "p4m-g-cnn_g1", "cnn", "cnn_g1"]
    assert names == {
        "report.md",
        "error_curves.png",
        "correlation.png",
        "enstrophy_ratio.png",
        "spectra.png",
        *(f"metrics_{s}.{ext}" for s in stems for ext in ("nc", "csv")),
        *(f"snapshots_{s}.png" for s in stems),
    }
    text = (out / "report.md").read_text()
    assert text.startswith("# Tiny evaluation")
    table = format_summary(rows)
    assert table in text and len(table.splitlines()) == 2 + 4
    assert "| P4M G-CNN | rot90 (g=1) |" in table
    for link in (
        "(error_curves.png)",
        "(enstrophy_ratio.png)",
        "(spectra.png)",
        "(metrics_cnn_g1.csv)",
        "(snapshots_cnn.png)",
    ):
        assert link in text
    with pytest.raises(OutputError, match="already exists"):
        write_report(evaluated, out)
    write_report(evaluated[:1], out, overwrite=True)
    with pytest.raises(ValueError, match="share a model name and test set"):
        write_report([evaluated[0], evaluated[0]], tmp_path / "other")


def test_summary_counts_divergences(tmp_path, make_code_stepper, make_code_data):
    data = make_code_data(tmp_path / "codes.nc", [0.0, 1.0], frames=4)  # steady, doubling
    roll = rollout_to_netcdf(make_code_stepper(), data, tmp_path / "r.nc", steps=20, progress=False)
    metrics = evaluate_rollout(roll, data)
    div = int(metrics["diverged_at"].values[1])
    (row,) = write_report([EvalResult("toy", metrics)], tmp_path / "eval")
    assert row["diverged"] == 1 and row["first_divergence"] == div > 0 and row["end_lead"] == 2
    assert f"| 1/2 | {div} |" in (tmp_path / "eval" / "report.md").read_text()
