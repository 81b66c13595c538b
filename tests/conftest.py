"""Shared test set-up: every test starts from the same random state, so failures reproduce."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (legacy global state, for code that still uses it)
    yield


@pytest.fixture(scope="session")
def load_script():
    """Import ``scripts/NAME.py`` as a module (for the scripts' smoke tests); removed again at the end."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "scripts"
    loaded = []

    def load(name: str):
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        spec.loader.exec_module(module)
        loaded.append(name)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (small ops run faster without the thread pool on the shared
    cores); the previous setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cylinder_file(tmp_path_factory):
    """A small cylinder-flow file (3 samples x 6 frames, coarse meshes) written without the solver
    (``sim.data.cylinder.write_synthetic_cylinder``); shared, read-only."""
    from sim.data.cylinder import write_synthetic_cylinder

    return write_synthetic_cylinder(tmp_path_factory.mktemp("cylinder") / "cyl.nc", samples=3, frames=6)


@pytest.fixture(scope="session")
def weather_store(tmp_path_factory):
    """A small canonical weather store with winds: ``(path, grid)``.

    16 six-hourly states from 2020-01-01 on a 9 x 20 equiangular grid with poles (18 degree spacing, so
    rolls by 72 degrees map the icosahedral mesh onto itself too): geopotential, u and v at 500 hPa, a
    land-sea mask; ``stats.nc`` inside over all times.
    """
    import xarray as xr

    from sim.data.weather import compute_statistics, save_statistics
    from sim.discretize.latlon import equiangular_grid

    grid = equiangular_grid(9, 20)
    steps = 16
    rng = np.random.default_rng(0)
    times = np.arange(steps) * np.timedelta64(6, "h") + np.datetime64("2020-01-01", "ns")
    shape = (steps, 1, grid.nlat, grid.nlon)
    lat = np.deg2rad(grid.lat)[None, None, :, None]
    dims = ("time", "level", "latitude", "longitude")
    data = {
        "geopotential": (dims, (5.0e4 + 2.0e3 * np.sin(lat) + rng.normal(0, 300, shape)).astype(np.float32)),
        "u_component_of_wind": (dims, (10 + 15 * np.cos(lat) + rng.normal(0, 5, shape)).astype(np.float32)),
        "v_component_of_wind": (dims, rng.normal(0, 5, shape).astype(np.float32)),
        "land_sea_mask": (("latitude", "longitude"), (rng.random(grid.shape) > 0.6).astype(np.float32)),
    }
    coords = {"time": times, "level": np.array([500]), "latitude": grid.lat, "longitude": grid.lon}
    ds = xr.Dataset(data, coords=coords)
    path = tmp_path_factory.mktemp("weather") / "swe.zarr"
    ds.to_zarr(path, zarr_format=2, consolidated=True)
    save_statistics(compute_statistics(ds, time_range=None), path / "stats.nc")
    return path, grid
