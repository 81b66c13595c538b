"""Smoke test of scripts/study_weather.py: --quick (tiny shallow-water data, tiny models, 2 steps)."""

from __future__ import annotations


def test_quick_run_writes_its_section_and_reports(load_script, tmp_path):
    study = load_script("study_weather")
    results = tmp_path / "results.md"
    results.write_text("# Results\n\n<!-- other:start -->\nkeep me\n<!-- other:end -->\n")
    out = tmp_path / "study"
    args = ["--quick", "--out", str(out), "--models", "equivariant_graphcast", "sfno", "--no-progress"]
    rows = study.main([*args, "--results", str(results)])
    assert [r["model"] for r in rows] == ["SO(3)-equivariant GraphCast", "SFNO", "persistence"]
    text = results.read_text()
    assert "keep me" in text and "<!-- study_weather:start -->" in text
    assert "| SO(3)-equivariant GraphCast |" in text and "tilted by 45°" in text and "Stability over" in text
    for report in ("report_test", "report_tilted", "report_year"):
        assert (out / report / "report.md").is_file()
    # the statistics are over the training trajectories only: the store's prepare period ends before them
    import yaml

    prep = yaml.safe_load((out / "data" / "swe.zarr" / "prepare.yaml").read_text())
    assert prep["train"]["end"] < study._periods(out / "data" / "swe.zarr")[1][0]


def test_reuse_keeps_finished_rollouts(load_script, tmp_path, capsys):
    study = load_script("study_weather")
    args = ["--quick", "--out", str(tmp_path), "--models", "sfno", "--no-progress", "--results", "-", "--reuse"]
    first = study.main(args)
    files = sorted(tmp_path.glob("sfno/rollout_*.nc"))
    stamps = [f.stat().st_mtime_ns for f in files]
    assert len(files) == 3 and "reusing" not in capsys.readouterr().out
    second = study.main(args)  # the run and its rollouts are kept, and the report is the same
    assert capsys.readouterr().out.count("reusing") == 4  # the checkpoint and the three rollouts
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert first == second
    # a rollout older than its checkpoint is made again
    ckpt = tmp_path / "sfno/checkpoints/last.pt"
    ckpt.touch()
    study.main(args)
    assert capsys.readouterr().out.count("reusing") == 1
    assert all(f.stat().st_mtime_ns > s for f, s in zip(files, stamps))
