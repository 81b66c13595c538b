"""Streaming rollouts to netCDF: layout, chunked writing against an in-memory rollout, atomicity, the
group element, and divergence detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from sim.data import DataFileError
from sim.evaluate import rollout_to_netcdf
from sim.evaluate._common import transform_vorticity
from sim.io import OutputError


def _initial(path, samples, start, T):
    with xr.open_dataset(path) as ds:
        w = torch.from_numpy(ds["vorticity"].values[samples, start : start + T])  # [B, T, H, W]
        f = torch.from_numpy(ds["forcing"].values)
    return w, f


def _reference(stepper, path, samples, *, start, steps, batch_size, element=None):
    """The same rollout in memory with ``stepper.rollout``: ``[S, steps, H, W]``."""
    T = stepper.history
    out = []
    for b0 in range(0, len(samples), batch_size):
        w, f = _initial(path, samples[b0 : b0 + batch_size], start, T)
        history = transform_vorticity(w, element)[:, :, None]  # [B, T, 1, H, W]
        forcing = transform_vorticity(f, element).expand(len(history), 1, *f.shape)  # [B, 1, H, W]
        states = list(stepper.eval().rollout(history, forcing, steps))
        out.append(torch.stack(states, dim=1)[:, :, 0])  # [B, steps, H, W]
    return torch.cat(out).numpy()


def test_layout_and_chunked_writing_match_an_in_memory_rollout(tmp_path, ns_data, make_model_stepper):
    stepper = make_model_stepper("gcnn_p4m")
    samples, start, steps = [2, 0, 1], 1, 70  # 3 chunks of 32 (the last partial), 2 batches
    out = rollout_to_netcdf(
        stepper,
        ns_data,
        tmp_path / "roll.nc",
        steps=steps,
        samples=samples,
        start=start,
        batch_size=2,
        chunk=32,
        progress=False,
        attrs={"model": "tiny P4M", "checkpoint": "none"},
    )
    with xr.open_dataset(out) as ds:
        assert ds["vorticity"].dims == ("sample", "lead_time", "y", "x")
        assert ds["vorticity"].dtype == np.float32 and ds["vorticity"].shape == (3, steps, 16, 16)
        assert ds["sample"].values.tolist() == samples
        assert ds["lead_time"].values.tolist() == list(range(1, steps + 1))
        init = 0.1 * (start + stepper.history - 1)
        np.testing.assert_allclose(ds["time"].values, init + 0.1 * np.arange(1, steps + 1), atol=1e-12)
        np.testing.assert_allclose(ds["lead_model_time"].values, 0.1 * np.arange(1, steps + 1), atol=1e-12)
        assert ds["diverged_at"].values.tolist() == [-1, -1, -1]
        a = ds.attrs
        assert a["data_file"] == str(ns_data.resolve()) and a["start"] == start and a["history"] == 4
        assert a["element"] == 0 and a["steps"] == steps and a["group"] == "D4"
        assert a["model"] == "tiny P4M" and a["checkpoint"] == "none"
        pred = ds["vorticity"].values
    ref = _reference(stepper, ns_data, samples, start=start, steps=steps, batch_size=2)
    np.testing.assert_allclose(pred, ref, rtol=0, atol=1e-6)
    assert not list(tmp_path.glob(".*partial*"))


def test_element_transforms_initial_frames_and_forcing(tmp_path, ns_data, make_model_stepper):
    stepper = make_model_stepper("cnn")  # not equivariant: only the inputs are transformed
    out = rollout_to_netcdf(
        stepper, ns_data, tmp_path / "g5.nc", steps=3, element=5, samples=[1], progress=False
    )
    with xr.open_dataset(out) as ds:
        pred = ds["vorticity"].values
        assert ds.attrs["element"] == 5 and "rot90" in ds.attrs["element_name"]
    ref = _reference(stepper, ns_data, [1], start=0, steps=3, batch_size=1, element=5)
    np.testing.assert_allclose(pred, ref, rtol=0, atol=1e-6)


def test_failed_rollout_leaves_no_file_and_existing_files_are_kept(tmp_path, ns_data, make_model_stepper):
    stepper = make_model_stepper("gcnn_p4m")
    calls = {"n": 0}

    def fail_on_call_5(module, args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("boom")

    handle = stepper.model.register_forward_pre_hook(fail_on_call_5)
    target = tmp_path / "roll.nc"
    with pytest.raises(RuntimeError, match="boom"):
        rollout_to_netcdf(stepper, ns_data, target, steps=10, chunk=2, progress=False)
    handle.remove()
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial one

    target.write_text("precious")
    with pytest.raises(OutputError, match="already exists"):
        rollout_to_netcdf(stepper, ns_data, target, steps=2, progress=False)
    assert target.read_text() == "precious"
    rollout_to_netcdf(stepper, ns_data, target, steps=2, progress=False, overwrite=True)
    with xr.open_dataset(target) as ds:
        assert ds.sizes["lead_time"] == 2


def test_bad_arguments_are_one_line_errors(tmp_path, ns_data, make_model_stepper):
    stepper = make_model_stepper("gcnn_p4m")
    out = tmp_path / "r.nc"
    with pytest.raises(ValueError, match="steps: expected an int >= 1, got 0"):
        rollout_to_netcdf(stepper, ns_data, out, steps=0)
    with pytest.raises(ValueError, match="element: expected None or a D4 element"):
        rollout_to_netcdf(stepper, ns_data, out, steps=1, element=8)
    with pytest.raises(DataFileError, match="too few for start=8, history=4 and stride=1"):
        rollout_to_netcdf(stepper, ns_data, out, steps=1, start=8)
    with pytest.raises(ValueError, match=r"samples: indices \[3\] out of range"):
        rollout_to_netcdf(stepper, ns_data, out, steps=1, samples=[3])
    with pytest.raises(OutputError, match="does not exist"):
        rollout_to_netcdf(stepper, ns_data, tmp_path / "no" / "r.nc", steps=1)
    with pytest.raises(ValueError, match="written by rollout_to_netcdf itself"):
        rollout_to_netcdf(stepper, ns_data, out, steps=1, attrs={"start": 3})
    assert not out.exists()


def test_divergence_is_recorded_and_other_samples_continue(tmp_path, make_code_stepper, make_code_data):
    data = make_code_data(tmp_path / "codes.nc", [0.0, 1.0, 0.0])  # steady, doubling, steady
    stepper = make_code_stepper(history=2)
    steps = 12
    out = rollout_to_netcdf(
        stepper, data, tmp_path / "roll.nc", steps=steps, batch_size=2, chunk=4, progress=False
    )
    with xr.open_dataset(data) as ds:
        initial = ds["vorticity"].values[:, :2]  # [S, 2, H, W]
    last = initial[:, 1]  # [S, H, W]
    with xr.open_dataset(out) as ds:
        pred = ds["vorticity"].values
        diverged = ds["diverged_at"].values.tolist()
    # max|w| doubles each step; divergence once it exceeds 100 x the max over the initial frames
    m0, a = np.abs(initial[1]).max(), np.abs(last[1]).max()
    first = next(lead for lead in range(1, steps + 1) if a * 2.0**lead > 100 * m0)
    assert diverged == [-1, first, -1] and 7 <= first <= 9
    for lead in range(1, first):  # intact before divergence
        np.testing.assert_allclose(pred[1, lead - 1], last[1] * 2.0**lead, rtol=1e-6)
    assert np.isnan(pred[1, first - 1 :]).all()
    for s in (0, 2):  # unaffected
        np.testing.assert_array_equal(pred[s], np.broadcast_to(last[s], pred[s].shape))


def test_overflow_is_detected_and_a_fully_diverged_batch_stops(tmp_path, make_code_stepper, make_code_data):
    data = make_code_data(tmp_path / "codes.nc", [1e10 - 1.0])  # x 1e10 per step: inf at lead 4
    stepper = make_code_stepper(history=2)
    out = rollout_to_netcdf(
        stepper,
        data,
        tmp_path / "roll.nc",
        steps=50,
        chunk=8,
        blowup_factor=float("inf"),  # only NaN/Inf count
        progress=False,
    )
    assert stepper.model.calls == 8  # the first chunk, then nothing more to compute
    with xr.open_dataset(out) as ds:
        pred = ds["vorticity"].values
        assert ds["diverged_at"].values.tolist() == [4]
    assert np.isfinite(pred[0, :3]).all() and np.isnan(pred[0, 3:]).all() and pred.shape[1] == 50


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_memory_stays_flat_while_the_trajectory_streams_to_disk(tmp_path, make_code_stepper, make_code_data):
    data = make_code_data(tmp_path / "codes.nc", [0.0], n=64)
    stepper = make_code_stepper(history=2)
    rss = [_rss_mib()]

    def sample_rss(*_):
        if stepper.model.calls % 100 == 0:
            rss.append(_rss_mib())

    stepper.model.register_forward_hook(sample_rss)
    steps = 3000  # 3000 x 64 x 64 x 4 bytes = 47 MiB written
    rollout_to_netcdf(stepper, data, tmp_path / "r.nc", steps=steps, chunk=64, progress=False)
    assert (tmp_path / "r.nc").stat().st_size > 45 * 2**20
    assert len(rss) == 31
    assert max(rss) - rss[0] < 16, f"RSS grew by {max(rss) - rss[0]:.1f} MiB during the rollout"
