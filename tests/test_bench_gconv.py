"""Smoke tests of scripts/bench_gconv.py with tiny sizes (no timing assertions)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_gconv")


@pytest.fixture(scope="module")
def e2(bench):
    loaded = bench._load_e2cnn()
    if loaded is None:
        pytest.skip("e2cnn not installed")
    return loaded


TINY = {"fields": 2, "batch": 1, "size": 8, "kernel": 3, "repeats": 1, "min_seconds": 0.0}


def test_time_interleaved_reports_every_function(bench):
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1

        return fn

    out = bench.time_interleaved(
        {"a": make("a"), "b": make("b")}, repeats=3, min_seconds=0.0, max_extra_rounds=0
    )
    assert set(out) == {"a", "b"}
    for t in out.values():
        assert t["min"] <= t["median"] <= t["max"] and t["calls"] >= 1 and t["rounds"] == 3
    assert calls["a"] == 2 + 3 * out["a"]["calls"]  # two warm-up calls, then one run per round


@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_bench_speed_without_e2cnn(bench, padding):
    row = bench.bench_speed("P4M", padding=padding, e2=None, **TINY)
    assert row["group"] == "D4" and row["alias"] == "P4M"
    assert set(row["train_ms"]) == {"ours", "plain"} == set(row["eval_ms"])
    # D4: weight [2 fields, 2 fields x 8, 3, 3] + 2 biases; Conv2d 16 -> 16 channels
    assert row["params"] == {"ours": 2 * 16 * 9 + 2, "plain": 16 * 16 * 9 + 16}
    assert row["expand_ms"]["ours"] > 0
    assert row["ratio"]["plain"] > 0 and row["ratio"]["e2cnn"] is None
    table = bench.speed_table([row])
    assert "P4M (D4)" in table and "e2cnn" not in table
    assert "e2cnn" not in bench.params_table([row])
    summary = bench._summary([row], [])
    assert "ours / Conv2d ≤ 1.05: met in" in summary and "e2cnn" not in summary


def test_bench_speed_with_e2cnn(bench, e2):
    row = bench.bench_speed("P4", e2=e2, eval_forward=False, **TINY)
    assert set(row["train_ms"]) == {"ours", "plain", "e2cnn"}
    assert 0 < row["params"]["e2cnn"] < row["params"]["ours"]  # e2cnn's band-limited basis is smaller
    assert "e2cnn" in bench.speed_table([row])
    assert "ours / e2cnn ≤ 1: met in" in bench._summary([row], [])


def test_equivariance_vs_angle_without_e2cnn(bench):
    rows = bench.equivariance_vs_angle(("C4", "C8"), size=16, fields=1, kernel=3, margin=3, e2=None)
    assert [(r["group"], r["angle"]) for r in rows] == [("C4", 90.0 * k) for k in range(4)] + [
        ("C8", 45.0 * k) for k in range(8)
    ]
    for r in rows:
        assert set(r["ours"]) == set(bench.LAYERS) and r["e2cnn"] == {}
        exact = r["group"] == "C4" or r["angle"] % 90 == 0
        for err in r["ours"].values():
            assert (err < 1e-10) if exact else (1e-6 < err < 1.0)
    table = bench.equivariance_table(rows)
    assert "| C8 | 45° |" in table and "e2cnn" not in table and "| 0° |" not in table


def test_e2cnn_channel_map_is_exact_on_c4(bench, e2):
    check = bench.e2cnn_convention_check(e2, size=12, fields=1, kernel=3)
    assert check["mapped"] < 1e-10 < 1e-2 < check["identity"]
    rows = bench.equivariance_vs_angle(("C4", "C8"), size=16, fields=1, kernel=3, margin=3, e2=e2)
    for r in rows:
        if r["group"] == "C4" or r["angle"] % 90 == 0:
            assert max(r["e2cnn"].values()) < 1e-10


def test_e2cnn_dihedral_layer_builds_under_numpy2(bench, e2):
    conv = bench._e2cnn_conv(e2, bench.group_from_name("D4"), "regular", "regular", 1, 3, "circular")
    assert conv.in_type.size == 8


def test_plot_and_section(bench, tmp_path):
    rows = bench.equivariance_vs_angle(("C4", "C8"), size=12, fields=1, kernel=3, margin=2, e2=None)
    png = bench.save_equivariance_plot(rows, tmp_path / "figs" / "eq.png", title="tiny")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    bench.write_section(md, "first")
    bench.write_section(md, "second")
    text = md.read_text()
    assert "keep" in text and "second" in text and "first" not in text
    assert text.count(bench.START) == 1 and text.count(bench.END) == 1


def test_main_without_e2cnn(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "_load_e2cnn", lambda: None)
    speed, equiv = _recording(bench.bench_speed), _recording(_small(bench.equivariance_vs_angle))
    monkeypatch.setattr(bench, "bench_speed", speed)
    monkeypatch.setattr(bench, "equivariance_vs_angle", equiv)
    md, png = tmp_path / "benchmarks.md", tmp_path / "figures" / "eq.png"
    argv = ["--repeats", "1", "--min-seconds", "0", "--batch", "1", "--size", "8", "--fields", "1"]
    argv += ["--kernel", "3", "--equiv-size", "12", "--no-tune-allocator"]
    assert bench.main([*argv, "--out", str(md), "--figure", str(png)]) == 0
    text = md.read_text()
    assert bench.E2CNN_MISSING in capsys.readouterr().out and bench.E2CNN_MISSING in text
    assert "](figures/eq.png)" in text and png.exists()
    assert "python scripts/bench_gconv.py --repeats 1" in text and "--no-tune-allocator" in text
    assert [r["padding"] for r in speed.results] == ["circular"] * 2 + ["zeros"] * 2

    # Print only, e2cnn skipped: the same code path with the measurements replayed.
    monkeypatch.setattr(bench, "bench_speed", _replay(speed.results))
    monkeypatch.setattr(bench, "equivariance_vs_angle", _replay(equiv.results))
    assert bench.main([*argv, "--out", "-", "--skip-e2cnn"]) == 0
    out = capsys.readouterr().out
    assert "skipped (--skip-e2cnn)" in out and "| C8 | 45° |" in out


def _small(fn):
    """equivariance_vs_angle on C4 and C8 only, one field, a small margin."""

    def small(groups, **kw):
        kw.update(fields=1, margin=2)
        return fn(("C4", "C8"), **kw)

    return small


def _recording(fn):
    def wrapped(*args, **kw):
        result = fn(*args, **kw)
        wrapped.results.append(result)
        return result

    wrapped.results = []
    return wrapped


def _replay(results):
    it = iter(list(results))
    return lambda *args, **kw: next(it)


def test_stack_is_invariant_for_c4(bench):
    group = bench.group_from_name("C4")
    stack = bench._our_layers(group, 2, 3, seed=1)["stack"]
    x = torch.randn(1, 1, 10, 10)
    assert torch.allclose(
        stack(torch.rot90(x, 1, dims=(-1, -2))), torch.rot90(stack(x), 1, dims=(-1, -2)), atol=1e-5
    )
