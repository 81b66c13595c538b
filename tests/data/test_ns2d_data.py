"""Generating 2D Navier-Stokes data to netCDF and reading it back as training windows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr

from sim.config import ConfigError, from_dict
from sim.data import NS2DDataConfig, NS2DWindows, generate_ns2d
from sim.data.ns2d import DataFileError, state_to_vorticity, velocity_operator, vorticity_to_state
from sim.discretize import PeriodicGrid2D, spectral_resample
from sim.io import OutputError
from sim.solvers import (
    NavierStokes2D,
    SolverDivergedError,
    gaussian_random_field,
    sample_seed,
    vorticity_forcing,
)

TINY = {
    "solver": {"resolution": 32, "viscosity": 1e-3, "dt": 5e-3, "dtype": "float64"},
    "forcing": {"kind": "fno", "amplitude": 0.1},
    "resolution": 16,
    "samples": 3,
    "batch_size": 2,
    "t_final": 0.4,
    "record_every": 0.1,
    "seed": 5,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[NS2DDataConfig, str]:
    config = from_dict(NS2DDataConfig, TINY)
    path = tmp_path_factory.mktemp("ns2d") / "tiny.nc"
    generate_ns2d(config, path, progress=False)
    return config, str(path)


def test_file_layout(tiny):
    config, path = tiny
    with xr.open_dataset(path) as ds:
        assert ds["vorticity"].dims == ("sample", "time", "y", "x")
        assert ds["vorticity"].shape == (3, 5, 16, 16)
        assert ds["vorticity"].dtype == np.float32
        assert ds["forcing"].dims == ("y", "x")
        np.testing.assert_allclose(ds["time"].values, [0.0, 0.1, 0.2, 0.3, 0.4])
        np.testing.assert_allclose(ds["x"].values, (np.arange(16) + 0.5) / 16)
        np.testing.assert_array_equal(ds["sample"].values, [0, 1, 2])
        np.testing.assert_array_equal(ds["seed"].values, [sample_seed(5, i) for i in range(3)])
        assert ds.attrs["viscosity"] == 1e-3 and ds.attrs["dt"] == 5e-3
        assert ds.attrs["solver_resolution"] == 32 and ds.attrs["resolution"] == 16
        assert ds.attrs["seed"] == 5 and ds.attrs["forcing_kind"] == "fno"
        assert "NavierStokes2D" in ds.attrs["solver"]
        assert "viscosity: 0.001" in ds.attrs["config"]
        assert ds["vorticity"].encoding["chunksizes"] == (1, 1, 16, 16)


def test_frames_are_the_solver_trajectory_downsampled(tiny):
    # Independent re-computation of sample 2 (the second batch) with the solver and the resampler.
    _, path = tiny
    grid = PeriodicGrid2D(32)
    w = gaussian_random_field(32, [sample_seed(5, 2)])
    f = vorticity_forcing("fno", grid, amplitude=0.1)
    solver = NavierStokes2D(resolution=32, viscosity=1e-3, dt=5e-3)
    expected = [spectral_resample(w, 16)]
    for _ in range(4):
        w = solver.advance(w, 0.1, forcing=f)
        expected.append(spectral_resample(w, 16))
    expected = torch.cat(expected).numpy()  # [T, 16, 16]
    with xr.open_dataset(path) as ds:
        np.testing.assert_allclose(ds["vorticity"][2].values, expected, atol=1e-6)
        np.testing.assert_allclose(ds["forcing"].values, spectral_resample(f, 16).numpy(), atol=1e-7)


def test_samples_do_not_depend_on_the_batch_size(tiny, tmp_path):
    config, path = tiny
    other = tmp_path / "batch3.nc"
    generate_ns2d(dataclasses.replace(config, batch_size=3), other, progress=False)
    with xr.open_dataset(path) as a, xr.open_dataset(other) as b:
        np.testing.assert_allclose(a["vorticity"].values, b["vorticity"].values, atol=1e-6)


def test_warmup_shifts_the_first_frame(tmp_path):
    config = from_dict(NS2DDataConfig, {**TINY, "samples": 1, "warmup": 0.2, "t_final": 0.1})
    path = generate_ns2d(config, tmp_path / "w.nc", progress=False)
    with xr.open_dataset(path) as ds:
        np.testing.assert_allclose(ds["time"].values, [0.2, 0.3])


def test_existing_output_is_refused_unless_overwrite(tiny, tmp_path):
    config, path = tiny
    before = open(path, "rb").read()
    with pytest.raises(OutputError, match="already exists .*--overwrite"):
        generate_ns2d(config, path, progress=False)
    assert open(path, "rb").read() == before
    small = dataclasses.replace(config, samples=1)
    target = tmp_path / "x.nc"
    target.write_text("not data")
    generate_ns2d(small, target, overwrite=True, progress=False)
    with xr.open_dataset(target) as ds:
        assert ds.sizes["sample"] == 1


def test_missing_folder_is_an_error(tiny, tmp_path):
    config, _ = tiny
    with pytest.raises(OutputError, match=r"output folder .*nope does not exist"):
        generate_ns2d(config, tmp_path / "nope" / "x.nc", progress=False)


def test_divergence_leaves_nothing_behind(tmp_path):
    config = from_dict(
        NS2DDataConfig,
        {
            **TINY,
            "solver": {**TINY["solver"], "dt": 0.1, "viscosity": 0.0},
            "initial": {"sigma": 5000.0},
            "t_final": 20.0,
            "record_every": 10.0,
            "samples": 3,
        },
    )
    target = tmp_path / "boom.nc"
    with pytest.raises(
        SolverDivergedError, match=r"samples 0-1: the solution became NaN/Inf at solver step \d+"
    ):
        generate_ns2d(config, target, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_config_checks():
    with pytest.raises(ConfigError, match="t_final: expected a multiple of record_every=0.3"):
        from_dict(NS2DDataConfig, {**TINY, "record_every": 0.3})
    with pytest.raises(ConfigError, match="resolution: expected at most solver.resolution=32"):
        from_dict(NS2DDataConfig, {**TINY, "resolution": 64})
    with pytest.raises(ConfigError, match="solver.resolution: expected a positive even int, got 33"):
        from_dict(NS2DDataConfig, {**TINY, "solver": {"resolution": 33}})
    with pytest.raises(ConfigError, match="solver.viscosity: expected a float >= 0, got -0.1"):
        from_dict(NS2DDataConfig, {**TINY, "solver": {"viscosity": -0.1}})


# ---------------------------------------------------------------------------------------------------------
# reading windows


def test_windows_content(tiny):
    _, path = tiny
    data = NS2DWindows(path, history=2, horizon=2)
    assert data.windows_per_sample == 5 - 3 and len(data) == 3 * 2 and data.in_channels == 3
    with xr.open_dataset(path) as ds:
        w = ds["vorticity"].values
        f = ds["forcing"].values
    inputs, target = data[3]  # sample 1, first frame 1
    assert data.index(3) == (1, 1)
    assert inputs.shape == (3, 16, 16) and target.shape == (2, 16, 16)
    assert inputs.dtype == torch.float32
    np.testing.assert_array_equal(inputs[:2].numpy(), w[1, 1:3])
    np.testing.assert_array_equal(inputs[2].numpy(), f)
    np.testing.assert_array_equal(target.numpy(), w[1, 3:5])


def test_velocity_windows_hold_the_solver_velocity_of_the_stored_vorticity(tiny):
    _, path = tiny
    data = NS2DWindows(path, history=2, horizon=2, state="velocity")
    assert data.state_channels == 2 and data.in_channels == 2 * 2 + 1
    with xr.open_dataset(path) as ds:
        w = torch.from_numpy(ds["vorticity"].values).double()  # [S, T, y, x]
        f = ds["forcing"].values
        length = float(ds.attrs["length"])
    op = velocity_operator(16, length)
    inputs, target = data[3]  # sample 1, first frame 1
    assert inputs.shape == (5, 16, 16) and target.shape == (4, 16, 16) and inputs.dtype == torch.float32
    uv = op.velocity(w[1, 1:5])  # [4, 2, y, x]: frames 1..4 of sample 1
    torch.testing.assert_close(inputs[:4].double(), uv[:2].flatten(0, 1), rtol=0, atol=1e-5)
    torch.testing.assert_close(target.double(), uv[2:].flatten(0, 1), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(inputs[4].numpy(), f)  # the forcing stays the vorticity forcing
    # the curl of the velocity is the stored vorticity, less its mean, on all but the Nyquist modes
    back = state_to_vorticity(target.reshape(2, 2, 16, 16), "velocity", length).double()
    want = w[1, 3:5] - w[1, 3:5].mean(dim=(-2, -1), keepdim=True)
    spec = torch.fft.fft2(back - want)  # [2, 16, 16]
    spec[:, 8, :] = spec[:, :, 8] = 0
    assert float(spec.abs().max()) < 1e-4 * float(torch.fft.fft2(want).abs().max())
    torch.testing.assert_close(vorticity_to_state(w[1, :2], "vorticity", length), w[1, :2, None])
    with pytest.raises(ValueError, match="state must be one of"):
        NS2DWindows(path, state="pressure")


def test_windows_stride_and_split(tiny):
    _, path = tiny
    data = NS2DWindows(path, history=1, horizon=1, stride=2, samples=[2, 0])
    assert data.windows_per_sample == 3 and len(data) == 6
    with xr.open_dataset(path) as ds:
        w = ds["vorticity"].values
    inputs, target = data[4]
    assert data.index(4) == (0, 1)
    np.testing.assert_array_equal(inputs[0].numpy(), w[0, 1])
    np.testing.assert_array_equal(target[0].numpy(), w[0, 3])
    assert data.index(-1) == (0, 2)
    with pytest.raises(IndexError):
        data[6]


def test_windows_through_a_dataloader_with_workers(tiny):
    _, path = tiny
    data = NS2DWindows(path, history=2, horizon=1)
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [tuple(b[0].shape) for b in batches] == [(4, 3, 16, 16), (4, 3, 16, 16), (1, 3, 16, 16)]
    np.testing.assert_array_equal(batches[1][1][0].numpy(), data[4][1].numpy())


def test_windows_bad_input(tiny, tmp_path):
    _, path = tiny
    with pytest.raises(DataFileError, match="no such file"):
        NS2DWindows(tmp_path / "missing.nc")
    with pytest.raises(DataFileError, match="5 frames per sample are too few for history=4, horizon=2"):
        NS2DWindows(path, history=4, horizon=2)
    with pytest.raises(ValueError, match="history must be an int >= 1, got 0"):
        NS2DWindows(path, history=0)
    with pytest.raises(ValueError, match=r"sample indices \[7\] out of range for 3 samples"):
        NS2DWindows(path, samples=[0, 7])
    other = tmp_path / "other.nc"
    xr.Dataset({"u": ("x", np.zeros(3))}).to_netcdf(other)
    with pytest.raises(DataFileError, match="missing variable 'vorticity'"):
        NS2DWindows(other)
