"""sim.data.weather: statistics against numpy, windows and forcings, bad input, prepare end to end."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch
import xarray as xr

from sim.config import ConfigError, load_config
from sim.data.ns2d import DataFileError
from sim.data.weather import (
    OBLIQUITY,
    STATS,
    TIME_FORCINGS,
    WeatherPrepareConfig,
    WeatherWindows,
    compute_statistics,
    load_statistics,
    prepare_weather,
    save_statistics,
    solar_direction,
    summarize_weather,
    time_forcings,
)
from sim.discretize.latlon import area_weights, equiangular_grid, xyz_to_latlon
from sim.io import OutputError

LEVELS = [500, 850]


def canonical(
    *, nlat=9, nlon=16, steps=12, start="2020-01-01", step="6h", nan_var=False, seed=0
) -> xr.Dataset:
    """A small canonical Dataset: temperature (level), 2m_temperature (surface), land_sea_mask (static)."""
    rng = np.random.default_rng(seed)
    grid = equiangular_grid(nlat, nlon)
    times = np.arange(steps) * np.timedelta64(int(step[:-1]), "h") + np.datetime64(start, "ns")
    t = rng.normal(250, 10, (steps, len(LEVELS), nlat, nlon)).astype(np.float32)
    t += np.arange(steps, dtype=np.float32)[:, None, None, None]  # a trend: diffs differ from values
    t2 = rng.normal(280, 5, (steps, nlat, nlon)).astype(np.float32)
    data = {
        "temperature": (("time", "level", "latitude", "longitude"), t),
        "2m_temperature": (("time", "latitude", "longitude"), t2),
        "land_sea_mask": (("latitude", "longitude"), (rng.random((nlat, nlon)) > 0.6).astype(np.float32)),
    }
    if nan_var:
        sst = rng.normal(290, 3, (steps, nlat, nlon)).astype(np.float32)
        sst[:, : nlat // 2] = np.nan  # "land"
        data["sea_surface_temperature"] = (("time", "latitude", "longitude"), sst)
    coords = {"time": times, "level": np.array(LEVELS), "latitude": grid.lat, "longitude": grid.lon}
    return xr.Dataset(data, coords=coords)


def direct_stats(x: np.ndarray, w: np.ndarray, k: int = 1) -> tuple[float, float, float]:
    """Weighted mean, std, diff std of ``x [T, nlat, nlon]`` by the plain formulas (NaNs skipped)."""

    def moments(a):
        ww = np.broadcast_to(w[None, :, None], a.shape)
        ok = np.isfinite(a)
        m = np.sum(ww[ok] * a[ok]) / np.sum(ww[ok])
        return m, np.sqrt(np.sum(ww[ok] * (a[ok] - m) ** 2) / np.sum(ww[ok]))

    x = x.astype(np.float64)
    mean, std = moments(x)
    return mean, std, moments(x[k:] - x[:-k])[1] if x.shape[0] > k else np.nan


# --------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block_mb", [1e-4, 100.0])  # one step per block, or all at once
def test_statistics_match_numpy_on_the_training_period(block_mb):
    ds = canonical(nan_var=True)
    stats = compute_statistics(ds, time_range=("2020-01-01T12", "2020-01-03"), block_mb=block_mb)
    w = area_weights(equiangular_grid(9, 16))
    train = ds.isel(time=slice(2, 9))  # 12 h ... 48 h inclusive
    assert stats.attrs["time_start"] == "2020-01-01T12:00:00" and stats.attrs["n_times"] == 7
    for li, level in enumerate(LEVELS):
        want = direct_stats(train["temperature"].values[:, li], w)
        np.testing.assert_allclose(stats["temperature"].sel(level=level).values, want, rtol=1e-10)
    for name in ("2m_temperature", "sea_surface_temperature"):
        np.testing.assert_allclose(stats[name].values, direct_stats(train[name].values, w), rtol=1e-10)
    lsm = ds["land_sea_mask"].values[None]
    np.testing.assert_allclose(stats["land_sea_mask"].values[:2], direct_stats(lsm, w)[:2], rtol=1e-10)
    assert np.isnan(stats["land_sea_mask"].sel(stat="diff_std"))
    # the period matters: stats over all times differ
    full = compute_statistics(ds, time_range=None)
    assert abs(float(full["temperature"][0, 0]) - float(stats["temperature"][0, 0])) > 0.1


def test_diff_std_over_several_steps_and_a_dask_dataset():
    ds = canonical().chunk({"time": 1})
    stats = compute_statistics(ds, time_range=None, variables=["2m_temperature"], diff_steps=3, block_mb=1e-4)
    w = area_weights(equiangular_grid(9, 16))
    want = direct_stats(ds["2m_temperature"].values, w, k=3)
    np.testing.assert_allclose(stats["2m_temperature"].values, want, rtol=1e-10)
    assert list(stats.data_vars) == ["2m_temperature"] and stats.attrs["diff_interval_s"] == 3 * 6 * 3600


def test_gaps_split_the_time_axis_into_segments(tmp_path):
    # two trajectories in one store: 6-hourly, then a 1-day gap (as sim generate swe writes them)
    ds = canonical(steps=12)
    times = ds["time"].values.copy()
    times[6:] += np.timedelta64(1, "D")
    ds = ds.assign_coords(time=times)
    stats = compute_statistics(ds, time_range=None, variables=["2m_temperature"], diff_steps=2)
    w = area_weights(equiangular_grid(9, 16))
    x = ds["2m_temperature"].values.astype(np.float64)
    pairs = np.concatenate([x[2:6] - x[0:4], x[8:12] - x[6:10]])  # no pair straddles the gap
    np.testing.assert_allclose(float(stats["2m_temperature"].sel(stat="diff_std")), direct_stats(pairs, w)[1])
    windows = WeatherWindows(ds, stats=compute_statistics(ds, time_range=None), history=2, horizon=2)
    # 6 steps per segment, a window spans 4: 3 windows each; none crosses the gap
    assert len(windows) == 6 and [windows.index(i) for i in range(6)] == [0, 1, 2, 6, 7, 8]
    for i in range(6):
        assert (np.diff(windows.window_times(i)) == np.timedelta64(6, "h")).all()
    assert "2 gap-free segments" in summarize_weather(ds)


def test_statistics_round_trip(tmp_path):
    stats = compute_statistics(canonical(), time_range=None, source="x.zarr")
    path = save_statistics(stats, tmp_path / "stats.nc")
    back = load_statistics(path)
    assert [str(s) for s in back["stat"].values] == list(STATS)
    xr.testing.assert_identical(back, stats)
    assert back["temperature"].dims == ("stat", "level") and back["2m_temperature"].dims == ("stat",)
    with pytest.raises(OutputError, match="already exists"):
        save_statistics(stats, path)
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(DataFileError, match="other.nc: not a statistics file"):
        load_statistics(tmp_path / "other.nc")


def test_statistics_errors():
    ds = canonical()
    with pytest.raises(DataFileError, match=r"x\.zarr: the period 2021-01-01.* contains no time step"):
        compute_statistics(ds, time_range=("2021-01-01", "2021-02-01"), source="x.zarr")
    with pytest.raises(DataFileError, match="has 1 time step"):
        compute_statistics(ds, time_range=("2020-01-01", "2020-01-01"), source="x.zarr")
    bad = ds.copy(deep=True)
    bad["temperature"][:, 1] = np.nan
    with pytest.raises(DataFileError, match="x.zarr: variable 'temperature' is all NaN at level 850") as err:
        compute_statistics(bad, time_range=None, source="x.zarr")
    assert "\n" not in str(err.value)
    with pytest.raises(DataFileError, match="missing variable.*geopotential"):
        compute_statistics(ds, time_range=None, variables=["geopotential"])


# --------------------------------------------------------------------------------------------------
# forcings and windows
# --------------------------------------------------------------------------------------------------


def test_time_forcings_at_known_times():
    lon = np.array([0.0, 90.0, 180.0, 270.0])
    f = time_forcings(np.datetime64("2020-01-01T06"), lon, 3)  # [9, 3, 4]
    assert f.shape == (len(TIME_FORCINGS), 3, 4)
    np.testing.assert_allclose(
        f[:2], np.broadcast_to(np.array([1.0, 0.0])[:, None, None], (2, 3, 4)), atol=1e-6
    )
    np.testing.assert_allclose(f[2, 0], [1, 0, -1, 0], atol=1e-6)  # local hour 6, 12, 18, 24
    np.testing.assert_allclose(f[3, 0], [0, -1, 0, 1], atol=1e-6)
    np.testing.assert_allclose(f[6:, 1, 1], [0, 0, 1])
    # 2020 is a leap year: 2 July 00 UTC is day 183 of 366, half way
    g = time_forcings(np.datetime64("2020-07-02"), lon, 1, rotation=(1.0, 0.0, 0.0))
    np.testing.assert_allclose(g[4:6, 0, 0], [0.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(g[6:, 0, 0], [1, 0, 0])


def test_solar_direction_at_known_times():
    lon = np.array([0.0])

    def sun(time):
        f = torch.from_numpy(time_forcings(np.datetime64(time), lon, 1)[:6, 0, 0].astype(np.float64))
        return solar_direction(f[0], f[1], f[4], f[5]).numpy()

    def subsolar(time):
        lat, lon_ = xyz_to_latlon(sun(time))
        return float(lat), float(lon_)

    # noon UTC near the March equinox: overhead at (0, 0); 18 UTC: 90 W; June solstice: the tropic of Cancer
    lat, lon_ = subsolar("2021-03-20T12")
    assert abs(lat) < 0.5 and abs(lon_) < 1e-6
    assert subsolar("2021-03-20T18")[1] == pytest.approx(270.0)
    assert subsolar("2021-06-21T12")[0] == pytest.approx(OBLIQUITY, abs=0.2)
    assert subsolar("2021-12-21T12")[0] == pytest.approx(-OBLIQUITY, abs=0.2)
    np.testing.assert_allclose(np.linalg.norm(sun("2021-09-01T03")), 1.0, atol=1e-12)


@pytest.fixture()
def store(tmp_path):
    """A zarr store with stats.nc inside, and the Dataset it holds."""
    ds = canonical()
    ds.attrs["rotation_axis"] = [0.0, 1.0, 1.0]
    path = tmp_path / "train.zarr"
    ds.to_zarr(path, zarr_format=2, consolidated=True)
    save_statistics(compute_statistics(ds, time_range=None), path / "stats.nc")
    return path, ds


def test_windows_shapes_normalization_and_forcings(store):
    path, ds = store
    win = WeatherWindows(path, history=2, horizon=3, lead="12h")
    assert win.lead_steps == 2 and len(win) == 12 - 2 * 4
    assert win.channel_names == ["temperature@500", "temperature@850", "2m_temperature"]
    assert win.forcing_names == [*TIME_FORCINGS, "land_sea_mask"]
    inputs, targets, forcings = win[1]
    assert inputs.shape == (2, 3, 9, 16) and targets.shape == (3, 3, 9, 16)
    assert forcings.shape == (3, 10, 9, 16) and inputs.dtype == torch.float32
    raw = inputs * win.std[:, None, None] + win.mean[:, None, None]  # [2, C, 9, 16]
    np.testing.assert_allclose(raw[1, 1], ds["temperature"].values[3, 1], rtol=1e-5)
    np.testing.assert_allclose(raw[0, 2], ds["2m_temperature"].values[1], rtol=1e-5)
    raw_t = targets * win.std[:, None, None] + win.mean[:, None, None]
    np.testing.assert_allclose(raw_t[2, 0], ds["temperature"].values[9, 0], rtol=1e-5)
    times = win.window_times(1)
    assert str(times[2])[:13] == "2020-01-02T06"  # the first target's time: its forcings
    np.testing.assert_allclose(forcings[0, :2, 0, 0], [1.0, 0.0], atol=1e-6)  # 06 UTC
    np.testing.assert_allclose(forcings[0, 6:9, 0, 0], [0.0, 2**-0.5, 2**-0.5], atol=1e-6)  # tilted axis
    lsm = ds["land_sea_mask"].values
    assert torch.equal(forcings[0, 9] > 0, torch.from_numpy(lsm > 0.5))  # normalized, same sign pattern
    # the time range restricts the windows; residual targets
    split = WeatherWindows(path, lead=1, time_range=("2020-01-02", "2020-01-03T18"), targets="residual")
    assert len(split) == 7 and str(split.window_times(0)[0])[:10] == "2020-01-02"
    x, y, _ = split[0]
    t = ds["temperature"].values
    want = (t[5, 0] - t[4, 0]) / split.diff_std[0].item()
    np.testing.assert_allclose(y[0, 0], want, rtol=1e-4, atol=1e-5)


def test_windows_with_an_open_dataset_and_netcdf(store, tmp_path):
    path, ds = store
    stats = load_statistics(path / "stats.nc")
    a = WeatherWindows(ds, stats=stats, variables=["2m_temperature"], history=1)
    nc = tmp_path / "data.nc"
    ds.to_netcdf(nc)
    b = WeatherWindows(nc, stats=path / "stats.nc", variables=["2m_temperature"], rotation=(0, 0, 1))
    for u, v in zip(a[3], b[3], strict=True):
        assert u.shape == v.shape
    assert torch.equal(a[3][0], b[3][0])
    assert b[3][2][0, 8].eq(1).all() and a[3][2][0, 7].eq(2**-0.5).all()


def test_windows_in_dataloader_workers(store):
    path, _ = store
    win = WeatherWindows(path, variables=["temperature"], levels=[850], history=2)
    loader = torch.utils.data.DataLoader(win, batch_size=4, num_workers=2)
    batches = list(loader)
    x = torch.cat([b[0] for b in batches])
    assert x.shape == (len(win), 2, 1, 9, 16)
    assert torch.equal(x[5], win[5][0])


def write_nc(ds: xr.Dataset, path):
    ds.to_netcdf(path)
    return path


def test_windows_bad_input(tmp_path, store):
    path, ds = store
    stats = path / "stats.nc"
    times = ds["time"].values.copy()
    dup = times.copy()
    dup[4] = dup[3]
    f = write_nc(ds.assign_coords(time=dup), tmp_path / "dup.nc")
    with pytest.raises(
        DataFileError, match=r"dup.nc: duplicated time 2020-01-01T18:00:00 \(at indices 3 and 4\)"
    ):
        WeatherWindows(f, stats=stats)
    swapped = times.copy()
    swapped[[5, 6]] = swapped[[6, 5]]
    f = write_nc(ds.assign_coords(time=swapped), tmp_path / "unsorted.nc")
    with pytest.raises(
        DataFileError, match=r"unsorted.nc: times are not sorted: 2020-01-02T06:00:00 \(index 6\)"
    ):
        WeatherWindows(f, stats=stats)
    off = times.copy()
    off[7:] += np.timedelta64(3, "h")
    f = write_nc(ds.assign_coords(time=off), tmp_path / "off.nc")
    with pytest.raises(DataFileError, match="off.nc: times are not on a common step: 6h elsewhere, but 9h"):
        WeatherWindows(f, stats=stats)
    with pytest.raises(
        DataFileError, match="train.zarr: lead 9h is not a positive multiple of the data step 6h"
    ):
        WeatherWindows(path, lead="9h")
    with pytest.raises(
        DataFileError, match=r"missing variable\(s\) geopotential, u_component_of_wind \(have"
    ):
        WeatherWindows(path, variables=["temperature", "geopotential", "u_component_of_wind"])
    with pytest.raises(DataFileError, match=r"missing level\(s\) \[300, 1000\] hPa"):
        WeatherWindows(path, levels=[300, 500, 1000])
    with pytest.raises(DataFileError, match="too few"):
        WeatherWindows(path, history=7, horizon=6)
    with pytest.raises(DataFileError, match="no statistics given"):
        WeatherWindows(write_nc(ds, tmp_path / "ok.nc"))
    flipped = write_nc(ds.isel(latitude=slice(None, None, -1)), tmp_path / "flipped.nc")
    with pytest.raises(DataFileError, match="flipped.nc: latitude is descending"):
        WeatherWindows(flipped, stats=stats)


# --------------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------------


def fake_era5(monkeypatch):
    """Stand in for sim.data.era5 with a loader that only opens canonical netCDF files."""

    def open_era5(source, *, variables=None, levels=None):
        paths = source if isinstance(source, list) else [source]
        ds = xr.open_mfdataset(
            paths, combine="by_coords", chunks={"time": 1}, join="outer", compat="no_conflicts"
        )
        ds = ds[variables] if variables else ds
        return ds.sel(level=levels) if levels else ds

    module = types.ModuleType("sim.data.era5")
    module.open_era5 = open_era5
    monkeypatch.setitem(sys.modules, "sim.data.era5", module)


def test_prepare_end_to_end(tmp_path, monkeypatch, capsys):
    fake_era5(monkeypatch)
    ds = canonical(steps=16)
    write_nc(ds.isel(time=slice(0, 8)), tmp_path / "a.nc")
    write_nc(ds.isel(time=slice(8, 16)).drop_vars("land_sea_mask"), tmp_path / "b.nc")
    (tmp_path / "era5.yaml").write_text(
        f"sources: ['{tmp_path}/*.nc']\ntrain: {{start: '2020-01-01', end: '2020-01-03'}}\n"
        f"output: {tmp_path}/out.zarr\ntime_chunk: 2\nblock_mb: 0.001\n"
    )
    cfg = load_config(WeatherPrepareConfig, tmp_path / "era5.yaml")
    out = prepare_weather(cfg)
    assert "out.zarr" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    back = xr.open_zarr(out)
    xr.testing.assert_allclose(back.load(), ds)
    assert back["temperature"].encoding["chunks"] == (2, 2, 9, 16)
    stats = load_statistics(out / "stats.nc")
    want = compute_statistics(ds, time_range=("2020-01-01", "2020-01-03"))
    xr.testing.assert_allclose(stats, want)
    assert load_config(WeatherPrepareConfig, out / "prepare.yaml") == cfg
    assert len(WeatherWindows(out, history=2)) == 14
    with pytest.raises(OutputError, match="already exists"):
        prepare_weather(cfg)
    prepare_weather(cfg, overwrite=True, progress=False)
    # all-NaN field: an error naming it, and nothing left behind
    bad = ds.isel(time=slice(8, 16)).drop_vars("land_sea_mask").copy(deep=True)
    bad["2m_temperature"][3] = np.nan
    write_nc(bad, tmp_path / "b.nc")
    with pytest.raises(DataFileError, match="variable '2m_temperature' is all NaN at 2020-01-03T18:00:00"):
        prepare_weather(cfg, tmp_path / "bad.zarr", progress=False)
    assert not (tmp_path / "bad.zarr").exists() and not list(tmp_path.glob(".bad.zarr*"))


def test_prepare_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="train.start: expected an ISO 8601 date or time, got 'soon'"):
        load_config(WeatherPrepareConfig, {"sources": ["x"], "train": {"start": "soon", "end": "2020"}})
    with pytest.raises(ConfigError, match="start '2021' is after end '2020'"):
        load_config(WeatherPrepareConfig, {"sources": ["x"], "train": {"start": "2021", "end": "2020"}})
    with pytest.raises(ConfigError, match="missing key 'sources'"):
        load_config(WeatherPrepareConfig, {"train": {"start": "2020", "end": "2020"}})
    cfg = load_config(
        WeatherPrepareConfig, {"sources": [f"{tmp_path}/none*.nc"], "train": {"start": "2020", "end": "2020"}}
    )
    with pytest.raises(DataFileError, match="none.*no file or folder matches"):
        prepare_weather(cfg, tmp_path / "x.zarr")


@pytest.mark.parametrize("name", ["era5_example", "weather_demo"])
def test_example_configs_load(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "data" / f"{name}.yaml"
    cfg = load_config(WeatherPrepareConfig, path)
    assert cfg.sources and cfg.train.start <= cfg.train.end


@pytest.mark.skipif(
    importlib.util.find_spec("sim.data.era5_synthetic") is None,
    reason="sim.data.era5_synthetic not there yet",
)
@pytest.mark.parametrize("convention", ["cds_legacy", "weatherbench2"])
def test_prepare_through_open_era5(tmp_path, convention):
    from sim.data.era5_synthetic import write_era5_sample

    suffix = ".zarr" if convention == "weatherbench2" else ".nc"
    times = np.arange(8) * np.timedelta64(6, "h") + np.datetime64("2020-01-01", "ns")
    write_era5_sample(
        tmp_path / f"raw{suffix}",
        convention=convention,
        nlat=9,
        nlon=16,
        times=times,
        levels=LEVELS,
        variables=["temperature", "2m_temperature"],
        seed=0,
    )
    cfg = load_config(
        WeatherPrepareConfig,
        {"sources": [str(tmp_path / f"raw{suffix}")], "train": {"start": "2020-01-01", "end": "2020-01-02"}},
    )
    out = prepare_weather(cfg, tmp_path / "out.zarr", progress=False)
    win = WeatherWindows(out, variables=["temperature", "2m_temperature"])
    assert win.channel_names == ["temperature@500", "temperature@850", "2m_temperature"]
    x, y, f = win[0]
    assert x.shape == (1, 3, 9, 16) and y.shape == (1, 3, 9, 16) and f.shape == (1, 9, 9, 16)
    # (the int16-packed cds_legacy sample may turn its minimum into the fill value: a few NaNs)
    assert torch.isfinite(x).float().mean() > 0.9


# --------------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------------


def test_bench_weather_quick(load_script, tmp_path, capsys):
    bench = load_script("bench_weather")
    md = tmp_path / "benchmarks.md"
    assert bench.main(["--quick", "--out", str(md), "--workdir", str(tmp_path / "work")]) == 0
    text = md.read_text()
    assert (
        text.count("<!-- bench_weather:start -->") == 1
        and "`python scripts/bench_weather.py --quick`" in text
    )
    assert "| zarr |" in text and "| netcdf |" in text and "load average" in text
