"""Weather rollouts: WeatherBench2's layout, the first lead equal to one step of the stepper in physical
units, rollouts past the data, divergence bookkeeping, and WeatherBench2 metrics on the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from sim.data.ns2d import DataFileError
from sim.data.weather import PeriodConfig, WeatherWindows
from sim.discretize.latlon import area_weights
from sim.evaluate.weather_metrics import evaluate_forecast
from sim.evaluate.weather_rollout import rollout_weather_to_netcdf, split_channel
from sim.io import OutputError
from sim.models.registry import ModelConfig
from sim.train.config import DataSpec, ExperimentConfig, TrainSpec
from sim.train.weather import build_weather_stepper, weather_signature


def _stepper(store, name="equivariant_graphcast"):
    config = ExperimentConfig(
        model=ModelConfig(name=name, latent=8, blocks=1, vectors=2, mesh_splits=2),
        data=DataSpec(path=str(store), history=2, train_period=PeriodConfig("2020-01-01", "2020-01-04")),
        train=TrainSpec(device="cpu"),
    )
    win = WeatherWindows(store, history=2, horizon=1)
    torch.manual_seed(0)
    return build_weather_stepper(config, weather_signature(win)), win


def test_split_channel():
    assert split_channel("temperature@500") == ("temperature", 500)
    assert split_channel("2m_temperature") == ("2m_temperature", None)


def test_rollout_layout_and_first_lead(weather_store, tmp_path):
    store, grid = weather_store
    stepper, win = _stepper(store)
    out = rollout_weather_to_netcdf(
        stepper, store, tmp_path / "r.nc", steps=4, max_inits=3, init_every=2, progress=False
    )
    ds = xr.open_dataset(out)
    assert ds.attrs["kind"] == "weather" and ds.attrs["wall_seconds"] > 0
    assert ds["geopotential"].dims == ("init_time", "lead_time", "level", "latitude", "longitude")
    assert ds["geopotential"].shape == (3, 4, 1, grid.nlat, grid.nlon)
    assert ds["lead_time"].values[0] == np.timedelta64(6, "h")
    np.testing.assert_array_equal(ds["init_time"].values, [win.window_times(i)[1] for i in (0, 2, 4)])
    assert (ds["diverged_at"].values == -1).all() and np.isfinite(ds["kinetic_energy"].values).all()
    # lead 1 is one step of the stepper from the window, in physical units
    x, _, f = win[2]
    with torch.no_grad():
        y = stepper(x[None], f[0][None])[0] * stepper.std[:, None, None] + stepper.mean[:, None, None]
    np.testing.assert_allclose(ds["geopotential"].values[1, 0, 0], y[0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(ds["v_component_of_wind"].values[1, 0, 0], y[2].numpy(), rtol=1e-4, atol=1e-4)
    ke = 0.5 * (y[1].double() ** 2 + y[2].double() ** 2)
    w = torch.from_numpy(area_weights(grid))[:, None]
    assert float(ds["kinetic_energy"].values[1, 0]) == pytest.approx(float((ke * w).mean()), rel=1e-5)
    # WeatherBench2 metrics read the file as it is (leads within the data)
    truth = xr.open_zarr(store)
    metrics = evaluate_forecast(ds[["geopotential"]].isel(lead_time=slice(0, 2)), truth)
    assert np.isfinite(metrics["geopotential"].sel(metric="rmse", region="global")).all()
    ds.close()
    with pytest.raises(OutputError, match="exists"):
        rollout_weather_to_netcdf(stepper, store, out, steps=1, progress=False)


def test_a_long_rollout_runs_past_the_data_and_saves_every_kth_lead(weather_store, tmp_path):
    store, _ = weather_store
    stepper, _ = _stepper(store, "sfno")
    out = rollout_weather_to_netcdf(
        stepper, store, tmp_path / "long.nc", steps=40, save_every=8, max_inits=1, progress=False
    )  # 10 days from a 4-day store
    with xr.open_dataset(out) as ds:
        assert ds.sizes["lead_time"] == 5
        assert ds["lead_time"].values[-1] == np.timedelta64(240, "h")


def test_divergence_is_recorded_and_nan_after(weather_store, tmp_path):
    store, _ = weather_store
    stepper, _ = _stepper(store, "graphcast")
    with torch.no_grad():
        for p in stepper.model.head.parameters():
            p.mul_(1e3)  # an unstable model
    out = rollout_weather_to_netcdf(
        stepper, store, tmp_path / "bad.nc", steps=6, max_inits=2, blowup_factor=20.0, progress=False
    )
    with xr.open_dataset(out) as ds:
        first = ds["diverged_at"].values
        assert (first >= 1).all()
        k = int(first[0])
        assert np.isnan(ds["geopotential"].values[0, k - 1 :]).all()
        assert np.isfinite(ds["geopotential"].values[0, : k - 1]).all()


def test_bad_arguments(weather_store, tmp_path):
    store, _ = weather_store
    stepper, _ = _stepper(store)
    with pytest.raises(ValueError, match="steps"):
        rollout_weather_to_netcdf(stepper, store, tmp_path / "x.nc", steps=0, progress=False)
    with pytest.raises(Exception, match="init time 1999-01-01"):
        rollout_weather_to_netcdf(
            stepper, store, tmp_path / "y.nc", steps=1, init_times=["1999-01-01"], progress=False
        )
    assert not (tmp_path / "y.nc").exists()


def test_a_checkpoint_on_other_variables_or_another_grid_is_refused(weather_store, tmp_path):
    from sim.discretize.latlon import equiangular_grid
    from sim.train.weather import WeatherStepper

    store, grid = weather_store
    stepper, win = _stepper(store)
    model = ModelConfig(name="graphcast", latent=8, blocks=1, mesh_splits=2)
    kw = dict(forcing_names=win.forcing_names, history=2, step_seconds=21600.0)
    other = WeatherStepper(
        model,
        grid=grid,
        channel_names=["temperature@500"],
        mean=torch.zeros(1),
        std=torch.ones(1),
        diff_std=torch.ones(1),
        **kw,
    )
    with pytest.raises(DataFileError, match=r"missing variable\(s\) temperature"):
        rollout_weather_to_netcdf(other, store, tmp_path / "a.nc", steps=1, progress=False)
    coarse = WeatherStepper(
        model,
        grid=equiangular_grid(7, 20),
        channel_names=win.channel_names,
        mean=win.mean,
        std=win.std,
        diff_std=win.diff_std,
        **kw,
    )
    with pytest.raises(
        DataFileError, match=r"grid LatLonGrid\(9 x 20.*differs from the one the model was trained on"
    ):
        rollout_weather_to_netcdf(coarse, store, tmp_path / "b.nc", steps=1, progress=False)
