"""Shallow-water data files: config checks, ERA5-style layout and values, dates, atomic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim.config import ConfigError, load_config
from sim.data.swe import SWEDataConfig, build_solver, generate_swe, preview_swe, swe_output_paths
from sim.io import OutputError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"
TINY = {
    "grid": {"nlat": 16, "nlon": 32},
    "solver": {"dt": 3600.0, "tilt": 30.0},
    "duration_days": 1.0,
    "samples": 2,
    "device": "cpu",
}


pytestmark = pytest.mark.usefixtures("one_thread")  # small einsums: faster on one thread


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("swe_*.yaml")))
def test_shipped_configs_load(name):
    cfg = load_config(SWEDataConfig, CONFIGS / f"{name}.yaml")
    solver = build_solver(cfg)
    assert solver.dt < solver.stable_dt()


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["duration_days=1.1"], "duration_days: expected a multiple of record_every_hours=6 h"),
        (["start=yesterday"], "start: expected an ISO date"),
        (["grid.kind=gaussian"], "grid.kind"),
        (["solver.lmax=40", "grid.nlat=16", "grid.nlon=32"], "solver.lmax: expected at most 16"),
        (["sample_spacing_days=0.5"], "sample_spacing_days: expected more than duration_days"),
        (["initial.kind=vortex"], "initial.kind"),
        (["solver.dt=-1"], "solver.dt: expected a finite float > 0"),
    ],
)
def test_config_errors_are_one_line(overrides, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_config(SWEDataConfig, TINY, overrides)
    assert "\n" not in str(err.value)


def test_output_paths():
    cfg = load_config(SWEDataConfig, TINY)
    assert swe_output_paths(cfg, "d/x.nc") == [Path("d/x_000.nc"), Path("d/x_001.nc")]
    assert swe_output_paths(load_config(SWEDataConfig, TINY, ["samples=1"]), "d/x.nc") == [Path("d/x.nc")]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("swe")
    cfg = load_config(SWEDataConfig, TINY)
    return cfg, generate_swe(cfg, folder / "swe.nc", progress=False)


def test_layout_is_era5_canonical(tiny_files):
    cfg, paths = tiny_files
    assert [p.name for p in paths] == ["swe_000.nc", "swe_001.nc"]
    with xr.open_dataset(paths[0]) as ds:
        for name in ("geopotential", "u_component_of_wind", "v_component_of_wind"):
            assert ds[name].dims == ("time", "level", "latitude", "longitude")
            assert ds[name].dtype == np.float32
        assert ds["geopotential"].attrs["units"] == "m**2 s**-2"
        assert ds["u_component_of_wind"].attrs["units"] == "m s**-1"
        assert ds.sizes == {"time": 5, "level": 1, "latitude": 16, "longitude": 32}
        assert ds["level"].values.tolist() == [500]
        lat, lon = ds["latitude"].values, ds["longitude"].values
        assert lat[0] == -90 and lat[-1] == 90 and np.all(np.diff(lat) > 0)
        assert lon[0] == 0 and np.allclose(np.diff(lon), 360 / 32)
        axis = [ds.attrs[f"rotation_axis_{c}"] for c in "xyz"]
        assert np.allclose(axis, [-np.sin(np.deg2rad(30)), 0, np.cos(np.deg2rad(30))])
        assert ds.attrs["sample"] == 0 and "config" in ds.attrs


def test_times_are_six_hourly_real_dates(tiny_files):
    _, paths = tiny_files
    with xr.open_dataset(paths[0]) as a, xr.open_dataset(paths[1]) as b:
        ta, tb = a["time"].values, b["time"].values
    assert ta[0] == np.datetime64("2000-01-01T00:00")
    assert np.all(np.diff(ta) == np.timedelta64(6, "h"))
    assert tb[0] == np.datetime64("2000-01-03T00:00")  # the next sample starts after a gap: 2 days later
    assert np.all(np.diff(tb) == np.timedelta64(6, "h"))


def test_values_match_the_solver(tiny_files):
    cfg, paths = tiny_files
    solver = build_solver(cfg)
    from sim.solvers.random_fields import sample_seed

    x = solver.random_initial_condition(
        sample_seed(cfg.seed, 1), urms=cfg.initial.urms, peak_degree=cfg.initial.peak_degree
    )
    last = solver.to_grid(solver.advance(x, 86400.0))
    with xr.open_dataset(paths[1]) as ds:
        z = ds["geopotential"].values[-1, 0]
        u = ds["u_component_of_wind"].values[-1, 0]
        v = ds["v_component_of_wind"].values[-1, 0]
    np.testing.assert_allclose(z, last["geopotential"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(u, last["u"].numpy(), atol=1e-5 * float(last["u"].abs().max()))
    np.testing.assert_allclose(v, last["v"].numpy(), atol=1e-5 * float(last["v"].abs().max()))
    assert 9.0e4 < z.mean() < 1.0e5  # g * 10 km


def test_no_overwrite_and_atomic(tmp_path, tiny_files):
    cfg, _ = tiny_files
    one = load_config(SWEDataConfig, TINY, ["samples=1", "duration_days=0.25"])
    out = tmp_path / "a.nc"
    generate_swe(one, out, progress=False)
    before = out.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        generate_swe(one, out, progress=False)
    assert out.read_bytes() == before
    with pytest.raises(OutputError, match="does not exist"):
        generate_swe(one, tmp_path / "missing" / "a.nc", progress=False)
    # a failure midway leaves nothing behind
    bad = load_config(
        SWEDataConfig,
        TINY,
        [
            "samples=1",
            "duration_days=20",
            "solver.dt=21600",
            "solver.stepper=ab3",
            "solver.hyperdiffusion_time=null",
        ],
    )
    from sim.solvers.ns2d import SolverDivergedError

    with pytest.raises(SolverDivergedError, match="sample 0"):
        generate_swe(bad, tmp_path / "b.nc", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc"]


def test_preview(tmp_path, tiny_files):
    _, paths = tiny_files
    png = preview_swe(paths[0], tmp_path / "p.png")
    assert png.stat().st_size > 1000
