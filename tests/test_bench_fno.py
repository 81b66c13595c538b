"""scripts/bench_fno.py: our FNO-2D against neuraloperator's, parameter for parameter (skipped without it)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_fno")


@pytest.fixture(scope="module")
def neuralop(bench):
    loaded = bench.load_neuralop()
    if loaded is None:
        pytest.skip("neuraloperator not installed (bench extra)")
    return loaded


def test_our_fno_matches_neuraloperator_with_copied_weights(bench, neuralop):
    out = bench.parity(neuralop, width=4, modes=4, size=16)
    assert out["shapes_equal"] and out["params_ours"] == out["params_theirs"]
    for key in ("spectral", "one_layer", "four_layers_identity"):
        assert out[key] < 1e-6, (key, out[key])


def test_the_parity_check_can_fail(bench, neuralop):
    # a wrong mode order (positive k_y half first) is caught
    from sim.models import FNO2d

    torch.manual_seed(0)
    ours = FNO2d(in_fields="1x pseudoscalar", out_fields="1x pseudoscalar", width=3, modes=3, layers=1)
    theirs = bench.neuralop_fno(neuralop, in_channels=1, out_channels=1, width=3, modes=3, layers=1)
    bench.copy_weights(ours, theirs)
    x = torch.randn(1, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)
        w = theirs.fno_blocks.convs[0].weight.tensor
        w.copy_(torch.roll(w, 3, dims=2))
        assert not torch.allclose(ours(x), theirs(x), atol=1e-3)


def test_speed_rows_and_section(bench, neuralop):
    rows = bench.speed(
        neuralop, width=2, modes=2, size=8, train_batch=2, eval_batches=(1,), repeats=1, min_seconds=0
    )
    assert [r["what"] for r in rows] == ["training step, batch 2", "eval forward, batch 1"]
    assert all(r["ours_ms"] > 0 and r["theirs_ms"] > 0 for r in rows)
    par = [{"width": 2, **bench.parity(neuralop, width=2, modes=2, size=8)}]
    text = bench.format_section(par, rows, machine="test", version="x", seconds=1.0, command="cmd")
    assert "| 2 | training step, batch 2 |" in text and "worst ratio" in text
