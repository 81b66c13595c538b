"""Weather training: the WeatherStepper's bookkeeping (normalization, winds as tangent vectors, residuals,
forcings to global vectors), its exact equivariance end to end for the equivariant model (a zonal roll of
the data with the sun turned), and the engine training, checkpointing and reloading all three sphere
models on a small canonical store."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sim.config import ConfigError
from sim.data.ns2d import DataFileError
from sim.data.weather import TIME_FORCINGS, PeriodConfig, WeatherWindows
from sim.discretize.latlon import equiangular_grid, longitude_roll
from sim.models.registry import ModelConfig
from sim.train import train
from sim.train.config import DataSpec, ExperimentConfig, TrainSpec
from sim.train.engine import load_stepper
from sim.train.weather import build_weather_stepper, weather_signature, wind_channels


@pytest.fixture(scope="module")
def store(weather_store):
    return weather_store[0]


def _config(store, name: str, **train) -> ExperimentConfig:
    model = ModelConfig(name=name, latent=8, blocks=1, vectors=2, mesh_splits=2)
    data = DataSpec(
        path=str(store),
        history=2,
        train_period=PeriodConfig("2020-01-01", "2020-01-03T00"),
        val_period=PeriodConfig("2020-01-03T06", "2020-01-04T18"),
    )
    spec = dict(steps=3, batch_size=2, unroll=2, lr=1e-3, log_every=1, val_every=3, checkpoint_every=3)
    return ExperimentConfig(model=model, data=data, train=TrainSpec(device="cpu", **{**spec, **train}))


def _windows(store, horizon: int = 1) -> WeatherWindows:
    return WeatherWindows(store, history=2, horizon=horizon, targets="state")


def test_wind_channels_pair_u_with_v():
    names = [
        "geopotential@500",
        "u_component_of_wind@500",
        "10m_u_component_of_wind",
        "v_component_of_wind@500",
    ]
    names.append("10m_v_component_of_wind")
    assert wind_channels(names) == ([0], [(1, 3), (2, 4)])
    with pytest.raises(DataFileError, match=r"u_component_of_wind@850 has no v_component_of_wind@850"):
        wind_channels(["u_component_of_wind@850"])
    with pytest.raises(DataFileError, match=r"v_component_of_wind has no u_component_of_wind"):
        wind_channels(["v_component_of_wind"])


@pytest.mark.parametrize("name", ["equivariant_graphcast", "graphcast", "sfno"])
def test_a_zero_residual_is_persistence(store, name):
    """With the model's output zeroed the step returns the last state exactly: the unit conversions
    (normalized -> physical -> tangent vectors -> back) are consistent."""
    win = _windows(store)
    stepper = build_weather_stepper(_config(store, name), weather_signature(win)).double()
    for p in stepper.model.parameters():
        torch.nn.init.zeros_(p)
    x, _, f = win[0]
    with torch.no_grad():
        nxt = stepper(x[None].double(), f[0][None].double())
    torch.testing.assert_close(nxt[0], x[-1].double(), atol=1e-12, rtol=0)


def test_the_equivariant_stepper_commutes_with_a_zonal_roll(weather_store):
    """Roll every field by 72 degrees and turn the sun with it (UTC 4.8 h earlier): the next state is the
    rolled one, exactly. The rotation axis is the polar axis, which the roll fixes."""
    store, grid = weather_store
    win = _windows(store)
    torch.manual_seed(0)
    stepper = build_weather_stepper(_config(store, "equivariant_graphcast"), weather_signature(win)).double()
    stepper.eval()
    x, _, f = win[3]
    x, f = x[None].double(), f[0][None].double()  # [1, T, C, nlat, nlon], [1, F, nlat, nlon]
    shift = longitude_roll(grid, 72.0)
    roll = lambda a: torch.roll(a, shift, dims=-1)  # noqa: E731
    names = stepper.forcing_names
    g = roll(f)
    angle = torch.atan2(f[0, names.index("utc_hour_sin"), 0, 0], f[0, names.index("utc_hour_cos"), 0, 0])
    g[:, names.index("utc_hour_sin")] = torch.sin(angle - np.deg2rad(72.0))
    g[:, names.index("utc_hour_cos")] = torch.cos(angle - np.deg2rad(72.0))
    with torch.no_grad():
        y = stepper(x, f)
        y_rolled = stepper(roll(x), g)
        torch.testing.assert_close(y_rolled, roll(y), atol=1e-10, rtol=0)
        # the baseline sees longitude: it does not commute
        base = build_weather_stepper(_config(store, "graphcast"), weather_signature(win)).double().eval()
        assert (base(roll(x), g) - roll(base(x, f))).abs().max() > 1e-3


def test_loss_weights_are_cell_areas(weather_store):
    store, grid = weather_store
    stepper = build_weather_stepper(_config(store, "graphcast"), weather_signature(_windows(store)))
    w = stepper.loss_weights(None)
    assert w.shape == (1, 1, grid.nlat, 1) and float(w.mean()) == pytest.approx(1.0)
    assert float(w[0, 0, grid.nlat // 2, 0]) > float(w[0, 0, 1, 0])  # the equator outweighs the polar rows


@pytest.mark.parametrize("name", ["equivariant_graphcast", "graphcast", "sfno"])
def test_the_engine_trains_reloads_and_resumes_a_sphere_model(store, tmp_path, name):
    config = _config(store, name)
    out = tmp_path / name
    result = train(config, out, progress=False)
    assert np.isfinite(result.loss) and np.isfinite(result.val_loss_1)
    stepper, cfg, ckpt = load_stepper(result.checkpoint)
    assert cfg == config and ckpt["layout"]["channels"] == [
        "geopotential@500",
        "u_component_of_wind@500",
        "v_component_of_wind@500",
    ]
    win = _windows(store)
    torch.testing.assert_close(stepper.std, win.std)  # the statistics travel with the weights
    x, _, f = win[0]
    with torch.no_grad():
        assert stepper(x[None], f[0][None]).isfinite().all()
    # resume to more steps
    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=4))
    assert train(longer, out, resume=True, progress=False).step == 4


def test_weather_config_errors(store, tmp_path):
    config = _config(store, "equivariant_graphcast")
    no_val = dataclasses.replace(config, data=dataclasses.replace(config.data, val_period=None))
    with pytest.raises(ConfigError, match=r"data\.val_period: expected a period"):
        train(no_val, tmp_path / "a", progress=False)
    missing = dataclasses.replace(
        config, data=dataclasses.replace(config.data, path=str(tmp_path / "none.zarr"))
    )
    with pytest.raises(DataFileError, match=r"none\.zarr: no such store or file"):
        train(missing, tmp_path / "b", progress=False)
    with pytest.raises(
        ConfigError, match=r"in_fields: sphere models take their channels from data\.variables"
    ):
        ModelConfig(name="graphcast", in_fields="1x scalar")


def test_the_shipped_weather_configs_load_and_have_matched_sizes():
    """The study's three configs have about the same parameter count on its data (one geopotential and one
    wind at 500 hPa, 2 input states, no static fields); the ERA5 config loads."""
    from pathlib import Path

    from sim.config import load_config

    root = Path(__file__).resolve().parents[2] / "configs" / "weather"
    assert {p.name for p in root.glob("*.yaml")} >= {
        "equivariant_graphcast.yaml",
        "graphcast.yaml",
        "sfno.yaml",
    }
    grid = equiangular_grid(32, 64)
    signature = {
        "lat": list(grid.lat),
        "lon": list(grid.lon),
        "channels": ["geopotential@500", "u_component_of_wind@500", "v_component_of_wind@500"],
        "forcings": list(TIME_FORCINGS),
        "step_seconds": 21600.0,
        "mean": [0.0] * 3,
        "std": [1.0] * 3,
        "diff_std": [1.0] * 3,
    }
    counts = {}
    for name in ("equivariant_graphcast", "graphcast", "sfno"):
        config = load_config(ExperimentConfig, root / f"{name}.yaml")
        counts[name] = build_weather_stepper(config, signature).model.num_parameters()  # complex: 2
    assert counts == {"equivariant_graphcast": 558_385, "graphcast": 541_155, "sfno": 591_488}
    era5 = load_config(ExperimentConfig, root / "era5_5625.yaml")
    assert era5.model.is_sphere and era5.data.levels is None


@pytest.mark.parametrize("name", ["equivariant_graphcast", "sfno"])
def test_training_memory_of_a_sphere_model_is_counted_on_meta(store, name):
    from sim.train.engine import training_memory

    config = _config(store, name)
    one, two = training_memory(config, unroll=1), training_memory(config, unroll=2)
    assert 4 * one["parameter_bytes"] < one["peak"] < two["peak"] and one["batch"] == 2
