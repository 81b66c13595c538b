"""Smoke test of scripts/study_cylinder.py: --quick on the shared synthetic file (tiny models, 3 steps)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def study(load_script):
    return load_script("study_cylinder")


def test_quick_run_writes_its_section_and_report(study, cylinder_file, tmp_path, capsys):
    results = tmp_path / "results.md"
    results.write_text(
        "# Results\n\n<!-- other:start -->\nkeep me\n<!-- other:end -->\n\n<!-- study_cylinder:start -->\n"
        "<!-- study_cylinder:steps9000:start -->\nthe longer run\n<!-- study_cylinder:steps9000:end -->\n"
        "<!-- study_cylinder:end -->\n"
    )
    out = tmp_path / "study"
    args = ["--quick", "--data", str(cylinder_file), "--test", "1", "--val", "1", "--out", str(out)]
    rows = study.main([*args, "--results", str(results), "--no-progress", "--angle", "57"])
    assert len(rows) == 7  # 3 models x {original, mirrored and rotated}, and persistence
    by = {(r["model"], r["test_set"]): r for r in rows}
    assert by[("persistence", "original")]["rmse_all"] > 0
    for name in ("E(2)-equivariant MGN", "EGNN"):  # exactly equivariant: the same errors
        assert by[(name, "mirrored, rotated 57°")]["rmse_all"] == pytest.approx(
            by[(name, "original")]["rmse_all"], rel=1e-4
        )
    base = (
        by[("MeshGraphNet", "mirrored, rotated 57°")]["rmse_all"],
        by[("MeshGraphNet", "original")]["rmse_all"],
    )
    assert base[0] != pytest.approx(base[1], rel=1e-4)  # the baseline is not
    text = results.read_text()
    assert "keep me" in text and "<!-- study_cylinder:start -->" in text
    # one part per training budget: this run's (3 steps) before the longer run's, which is kept
    assert text.index("<!-- study_cylinder:steps3:start -->\n### 3 training steps") < text.index(
        "the longer run"
    )
    assert "| E(2)-equivariant MGN |" in text and "speed-up over the solver" in text
    assert (out / "report" / "report.md").is_file()
    assert "| gap @1 |" in text and "| EGNN | original / mirrored, rotated 57° |" in text
    # the figures beside the results file, linked from its part
    for kind in ("error_curves", "rollout_gap", "probe"):
        figure = tmp_path / "figures" / f"study_cylinder_steps3_{kind}.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](figures/{figure.name})" in text
    # --reuse: nothing retrained, and the rollouts kept unless their settings changed
    names = ("checkpoints/last.pt", "rollout_original.nc", "rollout_rotated.nc")
    files = [out / "egnn" / name for name in names]
    stamps = [f.stat().st_mtime_ns for f in files]
    capsys.readouterr()
    study.main([*args, "--results", "-", "--no-progress", "--reuse", "--models", "egnn", "--angle", "57"])
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert capsys.readouterr().out.count("reusing") == 3  # the checkpoint and both rollouts
    study.main([*args, "--results", "-", "--no-progress", "--reuse", "--models", "egnn", "--angle", "30"])
    assert [f.stat().st_mtime_ns for f in files][:2] == stamps[:2]
    assert files[2].stat().st_mtime_ns != stamps[2]  # another angle: the rotated domain rolled out again
