"""WeatherBench2-style weather scores against hand-built fields with known answers and direct numpy
computations: RMSE/bias/ACC, latitude weights and regions, WB2's RMSE convention, NaN handling, valid-time
alignment, reference forecasts, the zonal energy spectrum (pure waves, Parseval) and the atomic write."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sim.discretize.latlon import GridError, equiangular_grid
from sim.evaluate.weather_metrics import (
    EARTH_RADIUS_M,
    REGIONS,
    acc,
    bias,
    climatology_forecast,
    evaluate_forecast,
    latitude_band_mean,
    latitude_weights,
    mse,
    persistence_forecast,
    rmse,
    write_metrics_netcdf,
    zonal_energy_spectrum,
)
from sim.io import OutputError

GRID = equiangular_grid(19, 36)  # 10 degrees, with poles
LAT, LON = GRID.lat, GRID.lon
LEVELS = [500, 850]
TIMES = pd.date_range("2020-12-30", periods=12, freq="6h").values.astype("datetime64[ns]")
INIT = TIMES[:3]
LEAD = np.array([0, 6, 12], dtype="timedelta64[h]").astype("timedelta64[ns]")


def wb2_weights(lat_deg: np.ndarray) -> np.ndarray:
    """WeatherBench2's get_lat_weights written out: sin(upper) - sin(lower) of the cell bounds, mean 1."""
    lat = np.deg2rad(np.sort(lat_deg))
    bounds = np.concatenate([[-np.pi / 2], (lat[:-1] + lat[1:]) / 2, [np.pi / 2]])
    w = np.sin(bounds[1:]) - np.sin(bounds[:-1])
    return w / w.mean()


def make_truth(seed: int = 0, *, lat: np.ndarray = LAT) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    nt, nlat, nlon = TIMES.size, lat.size, LON.size
    return xr.Dataset(
        {
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                rng.normal(size=(nt, len(LEVELS), nlat, nlon)).astype(np.float32),
            ),
            "2m_temperature": (("time", "latitude", "longitude"), rng.normal(size=(nt, nlat, nlon))),
        },
        coords={"time": TIMES, "level": LEVELS, "latitude": lat, "longitude": LON},
    )


def at_valid(truth: xr.Dataset) -> xr.Dataset:
    """The truth at each (init_time, lead_time), built with a loop (independently of the module)."""
    out = {}
    for name, da in truth.data_vars.items():
        rows = [[da.sel(time=i + k).values for k in LEAD] for i in INIT]
        dims = ("init_time", "lead_time", *da.dims[1:])
        out[name] = (dims, np.asarray(rows, dtype=np.float64))
    coords = {"init_time": INIT, "lead_time": LEAD, "latitude": truth.latitude, "longitude": truth.longitude}
    return xr.Dataset(out, coords={**coords, "level": LEVELS})


def test_latitude_weights_are_wb2_cell_areas_in_any_order():
    w = latitude_weights(LAT)
    np.testing.assert_allclose(w, wb2_weights(LAT), rtol=1e-12)
    assert w.mean() == pytest.approx(1.0) and w[9] > w[5] > w[1] > w[0] > 0
    np.testing.assert_allclose(latitude_weights(LAT[::-1]), w[::-1], rtol=1e-12)
    np.testing.assert_allclose(latitude_weights(GRID), w, rtol=1e-12)
    with pytest.raises(GridError, match="latitude"):
        latitude_weights([-10.0, 0.0, 10.0])  # not a global grid


def test_constant_error_gives_rmse_abs_c_and_bias_c():
    truth = make_truth()
    forecast = at_valid(truth) - 2.5
    for region in ("global", "tropics", "extratropics"):
        r = rmse(forecast, truth, region=region)
        b = bias(forecast, truth, region=region)
        m = mse(forecast, truth, region=region)
        assert r["temperature"].dims == ("lead_time", "level") and r["2m_temperature"].dims == ("lead_time",)
        for name in ("temperature", "2m_temperature"):
            np.testing.assert_allclose(r[name].values, 2.5, rtol=1e-6)
            np.testing.assert_allclose(b[name].values, -2.5, rtol=1e-6)
            np.testing.assert_allclose(m[name].values, 6.25, rtol=1e-6)
    perfect = rmse(at_valid(truth), truth)
    for name in ("temperature", "2m_temperature"):
        np.testing.assert_allclose(perfect[name].values, 0.0, atol=1e-12)


def test_acc_is_one_for_a_perfect_forecast_and_minus_one_for_the_flipped_anomaly():
    truth = make_truth()
    clim = truth.mean("time")  # a constant climatology
    fc = at_valid(truth)
    a = acc(fc, truth, clim)
    np.testing.assert_allclose(a["temperature"].values, 1.0, atol=1e-12)
    flipped = 2 * clim - fc  # forecast anomaly = - truth anomaly
    np.testing.assert_allclose(acc(flipped, truth, clim)["2m_temperature"].values, -1.0, atol=1e-12)
    scaled = clim + 3.0 * (fc - clim)  # a scaled anomaly still correlates perfectly
    np.testing.assert_allclose(acc(scaled, truth, clim)["temperature"].values, 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="no variable 'temperature'"):
        acc(fc, truth, clim[["2m_temperature"]])


def test_scores_match_a_direct_numpy_computation_with_area_weights():
    truth = make_truth(1)
    rng = np.random.default_rng(2)
    fc = at_valid(truth)
    fc["2m_temperature"] = fc["2m_temperature"] + rng.normal(0.3, 1.0, size=fc["2m_temperature"].shape)
    clim = truth.mean("time")
    t = at_valid(truth)["2m_temperature"].values  # [I, K, nlat, nlon]
    f = fc["2m_temperature"].values
    c = clim["2m_temperature"].values
    w = wb2_weights(LAT)[:, None]  # [nlat, 1]

    def smean(x):  # [I, K, nlat, nlon] -> [I, K]
        return (x * w).sum((-2, -1)) / (w.sum() * LON.size)

    expected_rmse = np.sqrt(smean((f - t) ** 2).mean(0))
    expected_bias = smean(f - t).mean(0)
    fa, ta = f - c, t - c
    expected_acc = (smean(fa * ta) / np.sqrt(smean(fa**2) * smean(ta**2))).mean(0)
    ds = evaluate_forecast(fc, truth, climatology=clim, regions=["global"])
    got = ds["2m_temperature"].sel(region="global")
    np.testing.assert_allclose(got.sel(metric="rmse").values, expected_rmse, rtol=1e-10)
    np.testing.assert_allclose(got.sel(metric="bias").values, expected_bias, rtol=1e-10)
    np.testing.assert_allclose(got.sel(metric="acc").values, expected_acc, rtol=1e-10)
    # the weighting matters: an unweighted mean differs
    unweighted = np.sqrt(((f - t) ** 2).mean((-2, -1)).mean(0))
    assert not np.allclose(got.sel(metric="rmse").values, unweighted, rtol=1e-3)


def test_region_masks_renormalise_weights_inside_the_region():
    truth = make_truth()
    fc = at_valid(truth)
    tropical = xr.DataArray(np.abs(LAT) <= 10, dims="latitude", coords={"latitude": LAT})
    fc = fc + 2.0 * tropical  # an error of 2 at |lat| <= 10 only
    ds = evaluate_forecast(fc, truth, regions=["global", "tropics", "extratropics", "nhextratropics"])
    r = ds["2m_temperature"].sel(metric="rmse")
    w = wb2_weights(LAT)
    np.testing.assert_allclose(r.sel(region="extratropics").values, 0.0, atol=1e-12)
    np.testing.assert_allclose(r.sel(region="nhextratropics").values, 0.0, atol=1e-12)
    in_tropics = np.abs(LAT) <= 20
    expected = 2.0 * math.sqrt(w[np.abs(LAT) <= 10].sum() / w[in_tropics].sum())
    np.testing.assert_allclose(r.sel(region="tropics").values, expected, rtol=1e-10)
    np.testing.assert_allclose(
        r.sel(region="global").values, 2.0 * math.sqrt(w[np.abs(LAT) <= 10].sum() / w.sum()), rtol=1e-10
    )
    # an error in the north only: aliases and custom bands agree with the named regions
    north = xr.DataArray(LAT >= 20, dims="latitude", coords={"latitude": LAT})
    fc_n = at_valid(truth) + 1.0 * north
    assert float(rmse(fc_n, truth, region="extratropics_south")["2m_temperature"].max()) == 0.0
    nh = rmse(fc_n, truth, region="northern-hemisphere")["2m_temperature"].values
    np.testing.assert_allclose(nh, 1.0, rtol=1e-12)
    np.testing.assert_allclose(rmse(fc_n, truth, region=(20, 90))["2m_temperature"].values, nh)
    assert REGIONS["tropics"] == ((-20.0, 20.0),)
    with pytest.raises(ValueError, match="unknown 'mid-latitudes'"):
        rmse(fc, truth, region="mid-latitudes")


def test_rmse_is_the_root_of_the_mean_mse_over_init_times_not_the_mean_rmse():
    truth = make_truth()
    errors = xr.DataArray([1.0, 3.0, 1.0], dims="init_time", coords={"init_time": INIT})
    fc = at_valid(truth) + errors  # per-init RMSE 1, 3, 1
    r = rmse(fc, truth)["2m_temperature"].values
    np.testing.assert_allclose(r, math.sqrt((1 + 9 + 1) / 3), rtol=1e-12)  # WB2: 1.915
    assert not np.allclose(r, (1 + 3 + 1) / 3)  # the mean of per-init RMSEs: 1.667
    np.testing.assert_allclose(mse(fc, truth)["2m_temperature"].values, 11 / 3, rtol=1e-12)


def test_nan_forecasts_drop_out_of_the_mean_over_init_times():
    truth = make_truth()
    errors = xr.DataArray([1.0, 3.0, 1.0], dims="init_time", coords={"init_time": INIT})
    fc = at_valid(truth) + errors
    fc["2m_temperature"][1, :, 0, 5] = np.nan  # init 1 diverged: one NaN at the south pole
    ds = evaluate_forecast(fc, truth, regions=["global", "extratropics_north"])
    g = ds["2m_temperature"].sel(region="global")
    np.testing.assert_allclose(g.sel(metric="rmse").values, 1.0, rtol=1e-12)  # inits 0 and 2 only
    np.testing.assert_allclose(g.sel(metric="finite_fraction").values, 2 / 3)
    # the NaN lies outside the northern region, which keeps all three inits
    n = ds["2m_temperature"].sel(region="extratropics_north")
    np.testing.assert_allclose(n.sel(metric="rmse").values, math.sqrt(11 / 3), rtol=1e-12)
    np.testing.assert_allclose(n.sel(metric="finite_fraction").values, 1.0)
    assert np.isnan(rmse(fc, truth, skipna=False)["2m_temperature"].values).all()
    fc["2m_temperature"][:] = np.nan  # all diverged: NaN, without warnings
    assert np.isnan(rmse(fc, truth)["2m_temperature"].values).all()


def test_acc_with_a_dayofyear_hour_climatology_selected_at_the_valid_time():
    doy, hour = np.arange(1, 367), np.array([0, 6, 12, 18])
    rng = np.random.default_rng(3)
    base = rng.normal(size=(LAT.size, LON.size))
    values = (doy[:, None, None, None] * 0.1 + hour[None, :, None, None] * 0.01) + base  # [366, 4, lat, lon]
    clim = xr.Dataset(
        {"2m_temperature_mean": (("dayofyear", "hour", "latitude", "longitude"), values)},
        coords={"dayofyear": doy, "hour": hour, "latitude": LAT, "longitude": LON},
    )
    valid = INIT[:, None] + LEAD[None, :]  # [I, K]
    ts = pd.DatetimeIndex(valid.ravel())
    c_valid = values[ts.day_of_year.values - 1, ts.hour.values // 6].reshape(*valid.shape, LAT.size, LON.size)
    anomaly = rng.normal(size=(TIMES.size, LAT.size, LON.size))
    truth = make_truth()[["2m_temperature"]]
    for n, t in enumerate(TIMES):  # truth = climatology at its time + anomaly
        s = pd.Timestamp(t)
        truth["2m_temperature"][n] = values[s.day_of_year - 1, s.hour // 6] + anomaly[n]
    t_valid = at_valid(truth)
    fc = t_valid.copy()
    np.testing.assert_allclose(acc(fc, truth, clim)["2m_temperature"].values, 1.0, atol=1e-12)
    flipped = 2 * c_valid - t_valid["2m_temperature"].values
    fc["2m_temperature"][:] = flipped
    np.testing.assert_allclose(acc(fc, truth, clim)["2m_temperature"].values, -1.0, atol=1e-12)
    # 2020-12-31 is day 366: a climatology without it cannot score those valid times
    with pytest.raises(ValueError, match="no dayofyear 366 .*2020-12-31T00:00:00"):
        acc(fc, truth, clim.sel(dayofyear=slice(1, 365)))
    # the climatology forecast is the climatology at the valid times
    cf = climatology_forecast(clim, INIT, LEAD, like=truth)
    assert cf["2m_temperature"].dims == ("init_time", "lead_time", "latitude", "longitude")
    np.testing.assert_allclose(cf["2m_temperature"].values, c_valid)
    # and it has ACC NaN (zero anomaly): scores stay finite elsewhere
    r = evaluate_forecast(cf, truth, climatology=clim, regions=["global"])
    assert np.isnan(r["2m_temperature"].sel(metric="acc").values).all()
    assert np.isfinite(r["2m_temperature"].sel(metric="rmse").values).all()


def test_truth_missing_a_valid_time_is_an_error_naming_it():
    truth = make_truth()
    gap = truth.drop_sel(time=[np.datetime64("2020-12-31T00:00", "ns")])
    with pytest.raises(
        ValueError, match=r"no time 2020-12-31T00:00:00 \(the valid time of init_time "
    ) as err:
        rmse(at_valid(truth), gap)  # 2020-12-30T12 + 12h
    assert "\n" not in str(err.value) and "2020-12-30T12:00:00 + lead_time 12h" in str(err.value)
    gap = truth.drop_sel(time=[np.datetime64("2020-12-30T18:00", "ns")])  # 06 + 12h and 12 + 6h
    with pytest.raises(ValueError, match=r"init_time 2020-12-30T06:00:00 \+ lead_time 12h\) and 1 more"):
        evaluate_forecast(at_valid(truth), gap)


def test_errors_name_missing_variables_levels_and_grid_mismatches():
    truth = make_truth()
    fc = at_valid(truth)
    with pytest.raises(ValueError, match="truth: no variable '2m_temperature'"):
        rmse(fc, truth[["temperature"]])
    with pytest.raises(ValueError, match=r"no level\(s\) \[850\]"):
        rmse(fc, truth.sel(level=[500]))
    with pytest.raises(ValueError, match="forecast: no variable 'geopotential'"):
        rmse(fc, truth, variables=["geopotential"])
    shifted = truth.assign_coords(longitude=truth.longitude + 5.0)
    with pytest.raises(GridError, match="truth longitude .* does not match the forecast's"):
        bias(fc, shifted)
    with pytest.raises(ValueError, match="lead_time has dtype"):
        rmse(fc.assign_coords(lead_time=[0, 6, 12]), truth)


def test_latitude_order_does_not_change_the_scores():
    truth = make_truth(4)
    fc = at_valid(make_truth(5))
    up = evaluate_forecast(fc, truth, climatology=truth.mean("time"))
    down = evaluate_forecast(
        fc.isel(latitude=slice(None, None, -1)), truth.isel(latitude=slice(None, None, -1))
    )
    mixed = evaluate_forecast(fc, truth.isel(latitude=slice(None, None, -1)), climatology=truth.mean("time"))
    xr.testing.assert_allclose(up.drop_sel(metric="acc"), down)
    xr.testing.assert_allclose(up, mixed)


def test_persistence_forecast_is_the_truth_at_init_time():
    truth = make_truth()
    fc = persistence_forecast(truth, INIT, ["0h", "6h", "12h"])
    assert fc["temperature"].dims == ("init_time", "lead_time", "level", "latitude", "longitude")
    assert fc["lead_time"].values.tolist() == LEAD.tolist()
    for i, t in enumerate(INIT):
        for k in range(LEAD.size):
            np.testing.assert_array_equal(
                fc["temperature"][i, k].values, truth["temperature"].sel(time=t).values
            )
    r = rmse(fc, truth)["temperature"]
    np.testing.assert_allclose(r.isel(lead_time=0).values, 0.0, atol=0)  # lead 0 is the truth itself
    assert (r.isel(lead_time=slice(1, None)).values > 0.5).all()
    with pytest.raises(ValueError, match="no time 2021-01-05T00:00:00"):
        persistence_forecast(truth, ["2021-01-05"], ["6h"])
    with pytest.raises(ValueError, match="expected durations"):
        persistence_forecast(truth, INIT, [6, 12])


def test_zonal_spectrum_of_a_pure_wave_is_at_its_wavenumber_only():
    lat = np.array([-60.0, 0.0, 30.0])
    lam = np.deg2rad(LON)
    m0, amp = 3, 2.0
    field = amp * np.cos(m0 * lam + 0.4)[None, :] * np.ones((lat.size, 1))  # [lat, lon]
    ds = xr.Dataset({"z": (("latitude", "longitude"), field)}, coords={"latitude": lat, "longitude": LON})
    spec = zonal_energy_spectrum(ds)["z"]
    assert spec.dims == ("zonal_wavenumber", "latitude") and spec.sizes["zonal_wavenumber"] == 19
    circumference = 2 * np.pi * EARTH_RADIUS_M * np.cos(np.deg2rad(lat))
    np.testing.assert_allclose(spec.sel(zonal_wavenumber=m0).values, circumference * amp**2 / 2, rtol=1e-12)
    others = spec.drop_sel(zonal_wavenumber=m0).values
    assert np.abs(others).max() < 1e-12 * circumference.max()
    np.testing.assert_allclose(spec["wavelength"].sel(zonal_wavenumber=m0).values, circumference / m0)
    # the Nyquist wave (-1)^l is counted once
    nyq = xr.Dataset({"z": (("latitude", "longitude"), np.cos(18 * lam)[None, :] * np.ones((3, 1)))})
    nyq = nyq.assign_coords(latitude=lat, longitude=LON)
    np.testing.assert_allclose(zonal_energy_spectrum(nyq)["z"].sel(zonal_wavenumber=18).values, circumference)


@pytest.mark.parametrize("nlon", [36, 35])
def test_zonal_spectrum_satisfies_parseval(nlon):
    rng = np.random.default_rng(nlon)
    lon = np.arange(nlon) * 360.0 / nlon
    field = rng.normal(size=(2, LAT.size, nlon))  # [time, lat, lon]
    ds = xr.Dataset(
        {"t": (("time", "latitude", "longitude"), field)}, coords={"latitude": LAT, "longitude": lon}
    )
    spec = zonal_energy_spectrum(ds)["t"]
    assert spec.dims == ("time", "zonal_wavenumber", "latitude")
    circumference = 2 * np.pi * EARTH_RADIUS_M * np.where(np.abs(LAT) == 90, 0.0, np.cos(np.deg2rad(LAT)))
    np.testing.assert_allclose(
        spec.sum("zonal_wavenumber").values, circumference * (field**2).mean(-1), rtol=1e-10
    )


def test_latitude_band_mean_of_spectra():
    truth = make_truth()
    spec = zonal_energy_spectrum(truth, variables=["2m_temperature"])
    band = zonal_energy_spectrum(truth, variables=["2m_temperature"], lat_band=(30, 60))
    assert band["2m_temperature"].dims == ("time", "zonal_wavenumber")
    expected = spec["2m_temperature"].sel(latitude=[30.0, 40.0, 50.0, 60.0]).mean("latitude")
    np.testing.assert_allclose(band["2m_temperature"].values, expected.values, rtol=1e-12)
    xr.testing.assert_allclose(latitude_band_mean(spec, lat_band=(30, 60)), band)
    assert band["wavelength"].dims == ("zonal_wavenumber",) and np.isinf(band["wavelength"][0])
    with pytest.raises(ValueError, match="no latitude"):
        latitude_band_mean(spec, lat_band=(31, 39))


def test_evaluate_forecast_layout_and_atomic_write(tmp_path):
    truth = make_truth()
    fc = at_valid(truth) + 1.0
    ds = evaluate_forecast(fc, truth, regions=("global", "tropics", (30, 60)))
    assert ds["temperature"].dims == ("metric", "region", "lead_time", "level")
    assert ds["2m_temperature"].dims == ("metric", "region", "lead_time")
    assert ds["metric"].values.tolist() == ["mse", "rmse", "bias", "finite_fraction"]
    assert ds["region"].values.tolist() == ["global", "tropics", "30..60"]
    assert ds.attrs["n_init_times"] == 3
    path = tmp_path / "scores.nc"
    assert write_metrics_netcdf(ds, path) == path
    with xr.open_dataset(path) as back:
        xr.testing.assert_allclose(back.load(), ds)
    with pytest.raises(OutputError, match="already exists"):
        write_metrics_netcdf(ds * 2, path)
    with xr.open_dataset(path) as back:  # untouched
        xr.testing.assert_allclose(back.load(), ds)
    write_metrics_netcdf(ds * 2, path, overwrite=True)
    with xr.open_dataset(path) as back:
        xr.testing.assert_allclose(back.load(), ds * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.nc"]  # no partial files left
    with pytest.raises(OutputError, match="does not exist"):
        write_metrics_netcdf(ds, tmp_path / "missing" / "scores.nc")


def test_climatology_forecast_of_a_constant_mean_keeps_likes_latitude_order():
    truth = make_truth()
    clim = truth.mean("time").rename({"temperature": "temperature_mean"})
    down = truth.isel(latitude=slice(None, None, -1))
    cf = climatology_forecast(clim, INIT, ["0h", "6h", "12h"], like=down)
    assert set(cf.data_vars) == {"temperature", "2m_temperature"}
    assert cf["temperature"].dims == ("init_time", "lead_time", "level", "latitude", "longitude")
    np.testing.assert_array_equal(cf["latitude"].values, LAT[::-1])
    for i in range(INIT.size):
        for k in range(LEAD.size):
            np.testing.assert_array_equal(
                cf["temperature"][i, k].values, down["temperature"].mean("time").values
            )
    with pytest.raises(GridError, match="climatology latitude"):
        climatology_forecast(clim.isel(latitude=slice(1, None)), INIT, LEAD, like=truth)
