"""Smoke test of scripts/study_ns2d.py: a --quick run (16^2 data, tiny models, a few steps)."""

from __future__ import annotations

import pytest

NAMES = ("P4M G-CNN", "CNN", "FNO-2D", "O(2) steerable", "O(2) steerable, velocity")
KEYS = ("gcnn_p4m", "cnn", "fno", "steerable", "steerable_velocity")


@pytest.fixture(scope="module")
def study(load_script):
    return load_script("study_ns2d")


def test_quick_run_writes_results_and_reports(study, tmp_path):
    out, results = tmp_path / "study", tmp_path / "results.md"
    results.write_text("# Results\n\n<!-- other:start -->\nkeep me\n<!-- other:end -->\n")
    rows = study.main(
        ["--quick", "--train-sizes", "2", "--out", str(out), "--results", str(results), "--no-progress"]
    )

    assert list(rows) == [2]
    assert {r["model"] for r in rows[2]} == set(NAMES)
    assert len(rows[2]) == 15  # 5 models x {original, rot90, mirror}

    text = results.read_text()
    assert "<!-- study_ns2d:start -->" in text and "<!-- study_ns2d:end -->" in text
    assert "### 2 training trajectories" in text and "Verdict:" in text
    assert "Why the errors grow: the predicted enstrophy" in text
    for name in NAMES:
        assert f"| {name} |" in text
    assert "python scripts/study_ns2d.py --quick" in text
    assert "keep me" in text  # other sections stay

    report = out / "report_n2" / "report.md"
    assert report.is_file()
    body = report.read_text()
    for name in NAMES:
        assert name in body
    for key in KEYS:
        assert (out / f"{key}_n2" / "checkpoints" / "last.pt").is_file()
        assert (out / f"{key}_n2" / "rollout_g1.nc").is_file()
    # the steerable models are exactly D4-equivariant: their rotated and original errors agree
    by = {(r["model"], r["test_set"]): r for r in rows[2]}
    for name in NAMES[3:]:
        original = by[(name, "original")]["rel_l2_avg"]
        assert by[(name, "rot90 (g=1)")]["rel_l2_avg"] == pytest.approx(original, rel=1e-4)
    assert "The O(2) steerable, velocity model: rollout error" in text

    # --reuse keeps the finished runs (nothing retrained) and still writes the whole section; the part of
    # a training-set size this run does not train stays
    stamps = {key: (out / f"{key}_n2" / "checkpoints" / "last.pt").stat().st_mtime_ns for key in KEYS}
    results.write_text(
        "# Results\n\n<!-- study_ns2d:start -->\nold header\n\n<!-- study_ns2d:n2:start -->\nold n2\n"
        "<!-- study_ns2d:n2:end -->\n\n<!-- study_ns2d:n16:start -->\nkept n16\n<!-- study_ns2d:n16:end -->\n"
        "<!-- study_ns2d:end -->\n"
    )
    again = study.main(
        ["--quick", "--train-sizes", "2", "--out", str(out), "--results", str(results), "--no-progress"]
        + ["--reuse", "--models", "cnn", "steerable_velocity"]
    )
    assert {r["model"] for r in again[2]} == {"CNN", "O(2) steerable, velocity"}
    for key in ("cnn", "steerable_velocity"):
        assert (out / f"{key}_n2" / "checkpoints" / "last.pt").stat().st_mtime_ns == stamps[key]
    text = results.read_text()
    assert "| CNN |" in text and " s | " in text
    assert "old n2" not in text and "old header" not in text and "kept n16" in text
    assert text.index("### 2 training trajectories") < text.index("kept n16")  # sizes in order
