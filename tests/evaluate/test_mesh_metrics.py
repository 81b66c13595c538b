"""Mesh rollout metrics against constructed cases and a direct numpy computation, the Strouhal number of a
known sinusoid at the probe, one-line errors for files that do not match, and the plots and report."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

import sim
from sim.data.cylinder import write_synthetic_cylinder
from sim.data.ns2d import DataFileError
from sim.evaluate import (
    MESH_SUMMARY_COLUMNS,
    MeshEvalResult,
    evaluate_mesh_rollout,
    format_mesh_summary,
    plot_mesh_error_curves,
    plot_mesh_snapshots,
    plot_probe_signal,
    rollout_gap,
    save_mesh_metrics,
    write_mesh_report,
)
from sim.evaluate.mesh_metrics import describe_test_set
from sim.evaluate.mesh_rollout import persistence_stepper, rollout_mesh_to_netcdf
from sim.io import OutputError
from sim.train.stepper import MeshStepper

PNG = b"\x89PNG\r\n\x1a\n"
FRAMES = 60  # dt 0.01: frames at t = 0, 0.01, ..., 0.59
STEPS = 64  # history 1 from frame 0: leads 1..59 have truth, 60..64 do not
TRUTH_LEADS = FRAMES - 1


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """2 samples (different meshes: the smaller is padded) x 60 frames of the synthetic cylinder flow."""
    return write_synthetic_cylinder(tmp_path_factory.mktemp("mesh_data") / "cyl.nc", samples=2, frames=FRAMES)


@pytest.fixture(scope="module")
def rollout(data, tmp_path_factory) -> Path:
    """A persistence rollout of ``STEPS`` leads (past the truth's last frame)."""
    out = tmp_path_factory.mktemp("mesh_rollouts") / "persistence.nc"
    return rollout_mesh_to_netcdf(persistence_stepper(), data, out, steps=STEPS, progress=False)


def truth_frames(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """The true frames of leads 1..TRUTH_LEADS ``[S, TRUTH_LEADS, N, 2]`` float64 and ``num_nodes [S]``."""
    with netCDF4.Dataset(data) as nc:
        v = np.ma.filled(nc["velocity"][:, 1:], np.nan).astype(np.float64)
        return v, np.asarray(nc["num_nodes"][:], dtype=np.int64)


def edit_rollout(src: Path, dst: Path, *, velocity=None, diverged_at=None, attrs=None, delete=()) -> Path:
    """A copy of a rollout file with its velocity ``[S, L, N, 2]``, diverged_at or attributes replaced."""
    shutil.copy(src, dst)
    with netCDF4.Dataset(dst, "a") as nc:
        if velocity is not None:
            nc["velocity"][:] = velocity
        if diverged_at is not None:
            nc["diverged_at"][:] = diverged_at
        nc.setncatts(dict(attrs or {}))
        for name in delete:
            nc.delncattr(name)
    return dst


def prediction(rollout: Path) -> np.ndarray:
    with netCDF4.Dataset(rollout) as nc:
        return np.ma.filled(nc["velocity"][:], np.nan).astype(np.float64)  # [S, L, N, 2]


# ---------------------------------------------------------------------------------------------------------
# constructed cases


def test_rollout_equal_to_the_truth_scores_zero(data, rollout, tmp_path):
    truth, _ = truth_frames(data)
    v = prediction(rollout)
    v[:, :TRUTH_LEADS] = truth  # NaN on padding, like the truth
    m = evaluate_mesh_rollout(edit_rollout(rollout, tmp_path / "exact.nc", velocity=v))
    assert m.attrs["truth_leads"] == TRUTH_LEADS and m.attrs["test_set"] == "original"
    assert m["rmse"].dims == ("sample", "lead_time") and m["rmse"].shape == (2, STEPS)
    assert np.all(m["rmse"].values[:, :TRUTH_LEADS] == 0) and np.all(m["rel_l2"].values[:, :TRUTH_LEADS] == 0)
    assert np.isnan(m["rmse"].values[:, TRUTH_LEADS:]).all()  # no truth past frame 59
    assert np.isnan(m["rel_l2_mean"].values[TRUTH_LEADS:]).all()
    for name in ("rmse_1", "rmse_50", "rmse_all"):
        assert np.all(m[name].values == 0) and float(m[f"{name}_mean"]) == 0
    assert list(m["frame"].values[:3]) == [1, 2, 3] and m["frame"].values[-1] == -1
    assert m["time"].values[0] == pytest.approx(0.01) and np.isnan(m["time"].values[-1])
    np.testing.assert_array_equal(
        m["probe_v_pred"].values[:, :TRUTH_LEADS], m["probe_v_truth"].values[:, :TRUTH_LEADS]
    )
    np.testing.assert_array_equal(m["strouhal_pred"].values, m["strouhal_truth"].values)


def test_constant_offset_gives_exact_errors_and_padding_is_ignored(data, rollout, tmp_path):
    truth, num_nodes = truth_frames(data)
    assert num_nodes[0] != num_nodes[1]  # one sample is padded
    c = np.array([0.25, -0.5])
    v = prediction(rollout)
    v[:, :TRUTH_LEADS] = truth + c
    small = int(np.argmin(num_nodes))
    v[small, :, num_nodes[small] :] = 1e6  # garbage on the padding nodes must not count
    m = evaluate_mesh_rollout(edit_rollout(rollout, tmp_path / "offset.nc", velocity=v))
    expected = math.sqrt((0.25**2 + 0.5**2) / 2)  # mean over nodes and both components of c^2
    np.testing.assert_allclose(m["rmse"].values[:, :TRUTH_LEADS], expected, rtol=1e-5)
    for name in ("rmse_1", "rmse_50", "rmse_all"):
        np.testing.assert_allclose(m[name].values, expected, rtol=1e-5)
        assert float(m[f"{name}_mean"]) == pytest.approx(expected, rel=1e-5)
    for s, n in enumerate(num_nodes):
        t = truth[s, :, :n]  # [L, n, 2]
        rel = math.sqrt(n * (c**2).sum()) / np.sqrt((t**2).sum(axis=(1, 2)))
        np.testing.assert_allclose(m["rel_l2"].values[s, :TRUTH_LEADS], rel, rtol=1e-5)


def test_errors_and_horizons_match_a_direct_numpy_computation(data, rollout):
    m = evaluate_mesh_rollout(rollout, chunk=7)  # chunks that do not divide the leads
    truth, num_nodes = truth_frames(data)
    pred = prediction(rollout)[:, :TRUTH_LEADS]
    mse = np.stack(
        [((pred[s, :, :n] - truth[s, :, :n]) ** 2).mean(axis=(1, 2)) for s, n in enumerate(num_nodes)]
    )
    rel = np.stack(
        [
            np.linalg.norm((pred[s, :, :n] - truth[s, :, :n]).reshape(TRUTH_LEADS, -1), axis=1)
            / np.linalg.norm(truth[s, :, :n].reshape(TRUTH_LEADS, -1), axis=1)
            for s, n in enumerate(num_nodes)
        ]
    )  # [S, L]
    assert mse.min() > 0  # persistence is wrong from lead 1 on
    np.testing.assert_allclose(m["rmse"].values[:, :TRUTH_LEADS], np.sqrt(mse), rtol=1e-10)
    np.testing.assert_allclose(m["rel_l2"].values[:, :TRUTH_LEADS], rel, rtol=1e-10)
    np.testing.assert_allclose(m["rmse_mean"].values[:TRUTH_LEADS], np.sqrt(mse).mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(m["rel_l2_mean"].values[:TRUTH_LEADS], rel.mean(axis=0), rtol=1e-10)
    for name, h in (("rmse_1", 1), ("rmse_50", 50), ("rmse_all", TRUTH_LEADS)):
        per_sample = np.sqrt(mse[:, :h].mean(axis=1))
        np.testing.assert_allclose(m[name].values, per_sample, rtol=1e-10)
        assert float(m[f"{name}_mean"]) == pytest.approx(math.sqrt((per_sample**2).mean()), rel=1e-10)
    assert float(m["rmse_1_mean"]) < float(m["rmse_50_mean"])  # persistence drifts away
    assert list(m["diverged_at"].values) == [-1, -1] and np.all(m["diverged_fraction"].values == 0)
    # the whole evaluation read in one chunk is the same
    xr.testing.assert_allclose(m.drop_attrs(), evaluate_mesh_rollout(rollout).drop_attrs())


def test_divergence_makes_later_leads_nan_and_the_means_use_the_rest(rollout, tmp_path):
    v = prediction(rollout)
    v[0, 9:] = np.nan  # sample 0 diverged at lead 10
    path = edit_rollout(rollout, tmp_path / "diverged.nc", velocity=v, diverged_at=[10, -1])
    m = evaluate_mesh_rollout(path)
    ref = evaluate_mesh_rollout(rollout)
    assert np.isnan(m["rmse"].values[0, 9:]).all() and np.isfinite(m["rmse"].values[0, :9]).all()
    assert np.isnan(m["rel_l2"].values[0, 9:]).all()
    np.testing.assert_array_equal(m["rmse"].values[:, :9], ref["rmse"].values[:, :9])
    np.testing.assert_array_equal(m["rmse_mean"].values[9:TRUTH_LEADS], ref["rmse"].values[1, 9:TRUTH_LEADS])
    assert m["rmse_1"].values[0] == ref["rmse_1"].values[0]  # lead 1 is before the divergence
    assert np.isnan(m["rmse_50"].values[0]) and np.isnan(m["rmse_all"].values[0])
    assert float(m["rmse_50_mean"]) == pytest.approx(ref["rmse_50"].values[1])  # the finite sample only
    assert list(m["diverged_at"].values) == [10, -1]
    np.testing.assert_array_equal(
        m["diverged_fraction"].values, np.where(np.arange(1, STEPS + 1) >= 10, 0.5, 0)
    )
    assert np.isnan(m["strouhal_pred"].values[0])  # the predicted signal is not finite over the window

    # NaN before the recorded divergence: not a file rollout_mesh_to_netcdf writes
    bad = edit_rollout(rollout, tmp_path / "nan_early.nc", velocity=v)  # diverged_at still -1
    with pytest.raises(
        DataFileError, match="sample 0 is NaN/Inf on real nodes at lead 10 before its divergence"
    ):
        evaluate_mesh_rollout(bad)


# ---------------------------------------------------------------------------------------------------------
# the Strouhal number


def probe_by_hand(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's probe node (nearest real node to (cx + 2 D, cy)) and its (D, u_mean)."""
    with netCDF4.Dataset(data) as nc:
        probes, geometry = [], []
        for s in range(len(nc.dimensions["sample"])):
            n = int(nc["num_nodes"][s])
            pos = np.asarray(nc["pos"][s, :n])
            d, cx, cy, u = (float(nc[k][s]) for k in ("diameter", "center_x", "center_y", "u_mean"))
            probes.append(int(np.argmin(np.hypot(pos[:, 0] - cx - 2 * d, pos[:, 1] - cy))))
            geometry.append((d, u))
    return np.asarray(probes), np.asarray(geometry)


def test_strouhal_of_a_sinusoid_at_the_probe(data, rollout, tmp_path):
    probes, geometry = probe_by_hand(data)
    f_truth, f_pred, f_lift = (12.5, 10.0), (10.0, 12.5), (12.5, 10.0)  # Hz: whole samples per period
    sines = tmp_path / "sines.nc"
    shutil.copy(data, sines)
    with netCDF4.Dataset(sines, "a") as nc:
        t = np.asarray(nc["time"][:])  # [T]
        for s, p in enumerate(probes):
            nc["velocity"][s, :, p, 1] = 0.4 * np.sin(2 * np.pi * f_truth[s] * t + 0.3)
            nc["lift"][s] = 0.8 * np.sin(2 * np.pi * f_lift[s] * t + 0.2)
    v = prediction(rollout)
    for s, p in enumerate(probes):
        v[s, :, p, 1] = 0.3 * np.sin(2 * np.pi * f_pred[s] * 0.01 * np.arange(1, STEPS + 1) - 0.4)
    pred = edit_rollout(rollout, tmp_path / "sine_rollout.nc", velocity=v)
    m = evaluate_mesh_rollout(pred, sines)
    np.testing.assert_array_equal(m["probe_node"].values, probes)
    d, u = geometry.T
    np.testing.assert_allclose(m["strouhal_truth"].values, np.asarray(f_truth) * d / u, rtol=1e-6)
    np.testing.assert_allclose(m["strouhal_pred"].values, np.asarray(f_pred) * d / u, rtol=1e-6)
    np.testing.assert_allclose(m["strouhal_lift"].values, np.asarray(f_lift) * d / u, rtol=1e-6)
    assert float(m["strouhal_truth_mean"]) == pytest.approx(float(np.mean(np.asarray(f_truth) * d / u)))
    # the probe lies behind the cylinder, near (cx + 2 D, cy)
    with netCDF4.Dataset(data) as nc:
        np.testing.assert_allclose(m["probe_y"].values, nc["center_y"][:], atol=0.05)
        assert np.all(m["probe_x"].values > nc["center_x"][:] + nc["diameter"][:])

    # persistence: a flat predicted signal has no frequency (NaN, no error); the truth still has one
    flat = evaluate_mesh_rollout(rollout, sines)
    assert np.isnan(flat["strouhal_pred"].values).all() and np.isnan(float(flat["strouhal_pred_mean"]))
    np.testing.assert_allclose(flat["strouhal_truth"].values, m["strouhal_truth"].values)
    # too short a window for three upward crossings: NaN, the helper's ValueError is caught
    short = rollout_mesh_to_netcdf(
        persistence_stepper(), sines, tmp_path / "short.nc", steps=12, progress=False
    )
    s = evaluate_mesh_rollout(short)
    assert np.isnan(s["strouhal_truth"].values).all() and np.isnan(s["strouhal_lift"].values).all()


# ---------------------------------------------------------------------------------------------------------
# bad input


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_mismatched_or_malformed_files_give_one_line_errors(data, rollout, tmp_path):
    gone = edit_rollout(rollout, tmp_path / "gone.nc", attrs={"data_file": str(tmp_path / "moved.nc")})
    with pytest.raises(DataFileError, match="its data file .*moved.nc does not exist") as err:
        evaluate_mesh_rollout(gone)
    _one_line(err)
    no_attr = edit_rollout(rollout, tmp_path / "no_attr.nc", delete=["data_file"])
    with pytest.raises(DataFileError, match="no data_file attribute"):
        evaluate_mesh_rollout(no_attr)
    assert evaluate_mesh_rollout(no_attr, data).sizes["lead_time"] == STEPS  # given explicitly: fine

    with xr.open_dataset(data) as ds:
        fewer_nodes = ds.isel(node=slice(0, -1)).load().drop_encoding()
        no_lift = ds.drop_vars("lift").load().drop_encoding()
    fewer_nodes.to_netcdf(tmp_path / "fewer_nodes.nc")
    no_lift.to_netcdf(tmp_path / "no_lift.nc")
    with pytest.raises(DataFileError, match=r"nodes per sample but its data file .* has") as err:
        evaluate_mesh_rollout(rollout, tmp_path / "fewer_nodes.nc")
    _one_line(err)
    with pytest.raises(DataFileError, match=r"missing variable\(s\) \['lift'\]") as err:
        evaluate_mesh_rollout(rollout, tmp_path / "no_lift.nc")
    _one_line(err)

    other = tmp_path / "other_samples.nc"
    shutil.copy(rollout, other)
    with netCDF4.Dataset(other, "a") as nc:
        nc["sample"][:] = [0, 7]
    with pytest.raises(DataFileError, match=r"samples \[7\] are not in the data file") as err:
        evaluate_mesh_rollout(other)
    _one_line(err)

    shifted = edit_rollout(rollout, tmp_path / "shifted.nc", attrs={"start": 3})
    with pytest.raises(DataFileError, match="lead 1 is at time 0.01 but frame 4 of") as err:
        evaluate_mesh_rollout(shifted)
    _one_line(err)

    grid = tmp_path / "grid.nc"
    xr.Dataset({"vorticity": (("sample", "lead_time", "y", "x"), np.zeros((1, 2, 4, 4)))}).to_netcdf(grid)
    with pytest.raises(DataFileError, match="a grid rollout: use evaluate_rollout"):
        evaluate_mesh_rollout(grid, data)
    with pytest.raises(DataFileError, match="no such file"):
        evaluate_mesh_rollout(tmp_path / "nope.nc", data)
    with pytest.raises(DataFileError, match="no such file"):
        evaluate_mesh_rollout(rollout, tmp_path / "nope.nc")
    with pytest.raises(ValueError, match="chunk: expected an int >= 1, got 0"):
        evaluate_mesh_rollout(rollout, chunk=0)
    with pytest.raises(ValueError, match="flat_tol: expected a finite float >= 0, got -1"):
        evaluate_mesh_rollout(rollout, flat_tol=-1)


# ---------------------------------------------------------------------------------------------------------
# transformed test sets, plots, report


def tiny_equivariant_stepper() -> MeshStepper:
    """A small E(2)-equivariant MeshGraphNet with seeded weights."""
    torch.manual_seed(0)
    model = sim.build_model(
        {"name": "equivariant_meshgraphnet", "in_fields": "1x vector", "out_fields": "1x vector",
         "latent": 8, "blocks": 1, "vectors": 2}
    )  # fmt: skip
    return MeshStepper(model, history=1, delta_std=0.01, length_scale=0.02)


@pytest.fixture(scope="module")
def transformed(data, tmp_path_factory) -> dict[str, Path]:
    """Short rollouts: persistence on the rotated and the mirrored domain, and a tiny E(2) MeshGraphNet."""
    folder = tmp_path_factory.mktemp("mesh_transformed")
    out = {
        "rot37": rollout_mesh_to_netcdf(
            persistence_stepper(), data, folder / "rot37.nc", steps=12, rotation_deg=37, progress=False
        ),
        "mirror": rollout_mesh_to_netcdf(
            persistence_stepper(), data, folder / "mirror.nc", steps=12, mirror=True, progress=False
        ),
    }
    stepper = tiny_equivariant_stepper()
    out["egnn"] = rollout_mesh_to_netcdf(stepper, data, folder / "egnn.nc", steps=12, progress=False)
    return out


def test_rollout_gap_is_the_rms_difference_on_real_nodes(data, rollout, tmp_path):
    _, num_nodes = truth_frames(data)
    same = rollout_gap(rollout, rollout)
    assert same["gap"].shape == (2, STEPS) and np.all(same["gap"].values == 0)
    v = prediction(rollout)
    v += np.array([0.25, -0.5])
    small = int(np.argmin(num_nodes))
    v[small, :, num_nodes[small] :] = 1e6  # padding nodes must not count
    v[0, 9:] = np.nan  # sample 0 diverged at lead 10
    other = edit_rollout(rollout, tmp_path / "offset.nc", velocity=v, diverged_at=[10, -1])
    gap = rollout_gap(rollout, other)
    expected = math.sqrt((0.25**2 + 0.5**2) / 2)
    np.testing.assert_allclose(gap["gap"].values[1], expected, rtol=1e-6)
    np.testing.assert_allclose(gap["gap"].values[0, :9], expected, rtol=1e-6)
    assert np.isnan(gap["gap"].values[0, 9:]).all()  # from the divergence on
    np.testing.assert_allclose(gap["gap_mean"].values, expected, rtol=1e-6)  # the finite samples
    assert gap.attrs["test_set"] == "original" and gap.attrs["other_rollout_file"] == str(other.resolve())


def test_rollout_gap_measures_equivariance_and_rejects_unlike_rollouts(data, rollout, transformed, tmp_path):
    stepper = tiny_equivariant_stepper()
    rotated = rollout_mesh_to_netcdf(
        stepper, data, tmp_path / "emgn_rot37.nc", steps=12, rotation_deg=37, mirror=True, progress=False
    )
    gap = rollout_gap(transformed["egnn"], rotated)  # the same model on the original domain
    assert gap.attrs["other_test_set"] == "mirrored, rotated 37°"
    assert 0 < float(gap["gap"].max()) < 1e-5  # float32 rounding only: exactly equivariant
    moved = rollout_gap(transformed["egnn"], transformed["rot37"])  # another model: far apart
    assert float(moved["gap_mean"][0]) > 1e-3
    with pytest.raises(DataFileError, match="lead_time") as err:
        rollout_gap(rollout, transformed["rot37"])  # 64 leads against 12
    assert str(rollout) in _one_line(err)
    with pytest.raises(DataFileError, match=r"cyl.nc: velocity has dims .* expected \(sample, lead_time"):
        rollout_gap(rollout, data)


def test_persistence_scores_the_same_on_rotated_and_mirrored_domains(rollout, transformed):
    ref = evaluate_mesh_rollout(rollout)
    for key, name in (("rot37", "rotated 37°"), ("mirror", "mirrored")):
        m = evaluate_mesh_rollout(transformed[key])
        assert m.attrs["test_set"] == name
        np.testing.assert_allclose(m["rmse"].values, ref["rmse"].values[:, :12], rtol=1e-5)
        np.testing.assert_allclose(m["rmse_1"].values, ref["rmse_1"].values, rtol=1e-5)
    assert describe_test_set({"rotation_deg": 90.0, "mirror": 1}) == "mirrored, rotated 90°"
    assert describe_test_set({}) == "original"


def test_mesh_plots_are_pngs(data, rollout, transformed, tmp_path):
    m = evaluate_mesh_rollout(rollout)
    rot = evaluate_mesh_rollout(transformed["rot37"])
    for path in (
        plot_mesh_error_curves([("persistence", m), ("persistence", rot)], tmp_path / "err.png"),
        plot_mesh_error_curves({"persistence": m}, tmp_path / "rel.png", metric="rel_l2"),
        plot_mesh_snapshots(rollout, tmp_path / "snap.png", leads=[1, STEPS], field="v"),  # STEPS: no truth
        plot_probe_signal(m, tmp_path / "probe.png", sample=1),
    ):
        assert path.read_bytes()[:8] == PNG
    with pytest.raises(OutputError, match="already exists"):
        plot_probe_signal(m, tmp_path / "probe.png")
    with pytest.raises(ValueError, match="has no variable 'nope_mean'"):
        plot_mesh_error_curves({"persistence": m}, tmp_path / "x.png", metric="nope")
    with pytest.raises(ValueError, match=rf"leads: expected leads in 1..{STEPS}"):
        plot_mesh_snapshots(rollout, tmp_path / "x.png", leads=[STEPS + 1])
    with pytest.raises(ValueError, match="sample: 5 is not in the rollout"):
        plot_mesh_snapshots(rollout, tmp_path / "x.png", sample=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["err.png", "probe.png", "rel.png", "snap.png"]


def test_report_has_a_row_per_rollout_and_its_files(rollout, transformed, tmp_path):
    out = tmp_path / "report"
    results = [
        ("persistence", rollout),
        ("persistence", transformed["rot37"]),
        MeshEvalResult("persistence", transformed["mirror"]),
        ("E(2) MGN", transformed["egnn"]),
    ]
    rows = write_mesh_report(results, out, title="Tiny mesh evaluation")
    assert [(r["model"], r["test_set"]) for r in rows] == [
        ("persistence", "original"),
        ("persistence", "rotated 37°"),
        ("persistence", "mirrored"),
        ("E(2) MGN", "original"),
    ]
    assert all(list(r) == list(MESH_SUMMARY_COLUMNS) for r in rows)
    ref = evaluate_mesh_rollout(rollout)
    r = rows[0]
    assert (
        r["samples"] == 2 and r["steps"] == STEPS and r["truth_leads"] == TRUTH_LEADS and r["diverged"] == 0
    )
    assert r["rmse_1"] == pytest.approx(float(ref["rmse_1_mean"])) and r["rmse_50"] == pytest.approx(
        float(ref["rmse_50_mean"])
    )
    assert r["rel_l2_50"] == pytest.approx(float(ref["rel_l2_mean"][49]))
    assert math.isnan(rows[1]["rmse_50"]) and rows[1]["truth_leads"] == 12  # 12 leads: no RMSE@50
    stems = ["persistence", "persistence_rot37", "persistence_mirror", "e-2-mgn"]
    expected = {"report.md", "error_curves.png", "rel_l2_curves.png"}
    expected |= {
        f"{kind}_{s}.{ext}"
        for s in stems
        for kind, ext in (("metrics", "nc"), ("snapshots", "png"), ("probe", "png"))
    }
    assert {p.name for p in out.iterdir()} == expected
    assert all((out / name).read_bytes()[:8] == PNG for name in expected if name.endswith(".png"))
    with xr.open_dataset(out / "metrics_persistence.nc") as saved:
        np.testing.assert_array_equal(saved["rmse"].values, ref["rmse"].values)
    text = (out / "report.md").read_text()
    table = format_mesh_summary(rows)
    assert text.startswith("# Tiny mesh evaluation") and table in text
    assert len(table.splitlines()) == 2 + len(results)
    assert "| persistence | rotated 37° | 2 | 12 |" in table and f"({TRUTH_LEADS})" in table
    assert f"{r['rmse_1'] * 1e3:.3g}" in table.splitlines()[2]  # shown x 10^3

    with pytest.raises(OutputError, match="already exists"):
        write_mesh_report(results, out)
    rows_again = write_mesh_report(results[:1], out, overwrite=True)
    assert rows_again[0]["rmse_1"] == r["rmse_1"]
    with pytest.raises(ValueError, match=r"share a model name and test set: \['persistence'\]"):
        write_mesh_report([("persistence", rollout), ("persistence", rollout)], tmp_path / "dupe")
    with pytest.raises(ValueError, match="expected at least one"):
        write_mesh_report([], tmp_path / "empty")
    assert not (tmp_path / "dupe").exists() and not (tmp_path / "empty").exists()


def test_saved_metrics_round_trip(rollout, tmp_path):
    m = evaluate_mesh_rollout(rollout)
    path = save_mesh_metrics(m, tmp_path / "m.nc")
    with xr.open_dataset(path) as back:
        xr.testing.assert_identical(back.load(), m)
    with pytest.raises(OutputError, match="already exists"):
        save_mesh_metrics(m, path)


def test_a_rollout_is_kept_only_when_newer_than_its_checkpoint_and_made_alike(data, rollout, tmp_path):
    import os

    from sim.evaluate import reusable_rollout

    with xr.open_dataset(rollout) as ds:
        assert float(ds.attrs["wall_seconds"]) > 0  # the rollout records its own wall time
    file = shutil.copy(rollout, tmp_path / "r.nc")
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"weights")
    os.utime(file, (ckpt.stat().st_mtime + 10,) * 2)
    made = {"data_file": str(Path(data).resolve()), "steps": STEPS, "mirror": False, "rotation_deg": 0}
    samples = {"sample": np.arange(2)}
    kept = reusable_rollout(file, ckpt, made, samples)
    assert kept is not None and kept["wall_seconds"] > 0
    assert reusable_rollout(file, None, made, samples) is None  # --reuse not asked
    assert reusable_rollout(file, ckpt, {**made, "steps": STEPS + 1}, samples) is None
    assert reusable_rollout(file, ckpt, {**made, "mirror": True}, samples) is None
    assert reusable_rollout(file, ckpt, {**made, "model": "EGNN"}, samples) is None  # not recorded
    assert reusable_rollout(file, ckpt, made, {"sample": np.arange(1)}) is None
    assert reusable_rollout(file, ckpt, made, {"sample": np.array([1, 0])}) is None
    assert reusable_rollout(tmp_path / "missing.nc", ckpt, made) is None
    os.utime(ckpt, (Path(file).stat().st_mtime + 10,) * 2)  # retrained since
    assert reusable_rollout(file, ckpt, made, samples) is None
    os.utime(file, (ckpt.stat().st_mtime + 10,) * 2)
    edit_rollout(rollout, Path(file), delete=["wall_seconds"])  # a file from before wall times: remade
    os.utime(file, (ckpt.stat().st_mtime + 10,) * 2)
    assert reusable_rollout(file, ckpt, made, samples) is None
    Path(file).write_bytes(b"not netCDF")
    assert reusable_rollout(file, ckpt, made, samples) is None


def test_time_mesh_steps_times_each_stepper_on_one_mesh(data):
    from sim.evaluate.mesh_rollout import time_mesh_steps

    model = sim.build_model(
        {"name": "equivariant_meshgraphnet", "in_fields": "1x vector", "out_fields": "1x vector",
         "latent": 8, "blocks": 2, "vectors": 2}
    )  # fmt: skip
    gnn = MeshStepper(model, history=1)
    times = time_mesh_steps({"persistence": persistence_stepper(), "E-MGN": gnn}, data, sample=1, repeats=3)
    assert set(times) == {"persistence", "E-MGN"} and all(t > 0 for t in times.values())
    assert times["E-MGN"] > times["persistence"]  # message passing against a copy
    assert gnn.training  # timed in eval mode, handed back as it came
    with pytest.raises(ValueError, match="^time_mesh_steps: expected at least one stepper, got none$"):
        time_mesh_steps({}, data)
    with pytest.raises(ValueError, match="sample"):
        time_mesh_steps({"persistence": persistence_stepper()}, data, sample=5)
