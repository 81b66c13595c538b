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
    assert "Skill over persistence" in text and "Verdict:" in text
    for report in ("report_test", "report_tilted", "report_year"):
        assert (out / report / "report.md").is_file()
    # the statistics are over the training trajectories only: the store's prepare period ends before them
    import yaml

    prep = yaml.safe_load((out / "data" / "swe.zarr" / "prepare.yaml").read_text())
    assert prep["train"]["end"] < study._periods(out / "data" / "swe.zarr")[1][0]


def test_reuse_keeps_finished_rollouts(load_script, tmp_path, capsys):
    study = load_script("study_weather")
    args = [
        "--quick",
        "--out",
        str(tmp_path),
        "--models",
        "sfno",
        "--no-progress",
        "--results",
        "-",
        "--reuse",
    ]
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
    assert all(f.stat().st_mtime_ns > s for f, s in zip(files, stamps, strict=True))


def test_verdicts_name_the_best_the_generalizing_and_the_diverged(load_script):
    study = load_script("study_weather")
    head = "geopotential@500"
    rmse = lambda *v: {f"rmse_{head}_{d}d": x for d, x in zip(study.HEADLINE_DAYS, v, strict=True)}  # noqa: E731
    test = {"A": rmse(1, 2, 3), "B": rmse(2, 1, 4), "persistence": rmse(4, 4, 4)}
    tilt = {"A": rmse(1, 2, 3), "B": rmse(5, 5, 5), "persistence": rmse(4, 4, 4)}
    skill = {n: study._skill(test, n, head) + study._skill(tilt, n, head) for n in ("A", "B")}
    assert skill["A"] == (0.75, 0.5, 0.25, 0.75, 0.5, 0.25)
    year = {"A": {"diverged_at": -1}, "B": {"diverged_at": 35}}
    lines = study._verdicts(test, skill, year, study.HEADLINE_DAYS, head)
    assert lines == [
        "- Lowest RMSE on the test trajectory: 1 d A (1), 3 d B (1), 5 d A (3).",
        "- Better than persistence at every lead on the tilted planet (never trained on): "
        "A (skill 0.75 at 1 d).",
        "- No better than persistence at some lead on the tilted planet: B (skill at 1 d 0.50 on the test "
        "trajectory, -0.25 tilted).",
        "- No divergence over the year: A.",
        "- Diverged: B at step 35.",
    ]
