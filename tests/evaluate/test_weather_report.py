"""The weather report: scores equal to evaluate_forecast's on the leads within the data, the references'
rows, stability to the last saved lead past the data, divergence, files and links, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import xarray as xr

from sim.data.ns2d import DataFileError
from sim.data.weather import PeriodConfig, WeatherWindows
from sim.evaluate.weather_metrics import evaluate_forecast, persistence_forecast
from sim.evaluate.weather_report import format_weather_summary, write_weather_report
from sim.evaluate.weather_rollout import rollout_weather_to_netcdf
from sim.io import OutputError
from sim.models.registry import ModelConfig
from sim.train.config import DataSpec, ExperimentConfig, TrainSpec
from sim.train.weather import build_weather_stepper, weather_signature

Z500 = "rmse_geopotential@500"


def _stepper(store, name):
    config = ExperimentConfig(
        model=ModelConfig(name=name, latent=8, blocks=1, vectors=2, mesh_splits=2),
        data=DataSpec(path=str(store), history=2, train_period=PeriodConfig("2020-01-01", "2020-01-04")),
        train=TrainSpec(device="cpu"),
    )
    torch.manual_seed(0)
    return build_weather_stepper(config, weather_signature(WeatherWindows(store, history=2, horizon=1)))


@pytest.fixture(scope="module")
def rollouts(weather_store, tmp_path_factory, one_thread):
    """Rollouts of untrained steppers on the 4-day store (inits 2020-01-01T06 and T18):
    ``egc`` 2 days every step, ``sfno`` 2 days every 2nd step, ``long`` 6 days from one init (past the
    data's end at 2020-01-04T18), ``bad`` an unstable graphcast that diverges."""
    store, _ = weather_store
    folder = tmp_path_factory.mktemp("weather_rollouts")
    common = dict(max_inits=2, init_every=2, progress=False)
    out = {
        "egc": rollout_weather_to_netcdf(
            _stepper(store, "equivariant_graphcast"), store, folder / "egc.nc", steps=8, **common
        ),
        "sfno": rollout_weather_to_netcdf(
            _stepper(store, "sfno"), store, folder / "sfno.nc", steps=8, save_every=2, **common
        ),
        "long": rollout_weather_to_netcdf(
            _stepper(store, "graphcast"),
            store,
            folder / "long.nc",
            steps=24,
            save_every=4,
            max_inits=1,
            progress=False,
        ),  # fmt: skip
    }
    bad = _stepper(store, "graphcast")
    with torch.no_grad():
        for p in bad.model.head.parameters():
            p.mul_(1e3)
    out["bad"] = rollout_weather_to_netcdf(
        bad, store, folder / "bad.nc", steps=4, blowup_factor=20.0, **common
    )
    return out


def _links_resolve(report) -> list[str]:
    links = re.findall(r"\]\(([^)]+)\)", report.read_text())
    assert links
    return [link for link in links if not (report.parent / link).exists()]


def test_report_of_two_models_with_the_references(weather_store, rollouts, tmp_path):
    store, _ = weather_store
    truth = xr.open_zarr(store)
    clim = truth[["geopotential", "u_component_of_wind", "v_component_of_wind"]].mean("time").load()
    out = tmp_path / "report"
    rows = write_weather_report(
        [("EGC", rollouts["egc"]), ("SFNO", rollouts["sfno"])],
        out,
        climatology=clim,
        headline_days=(1, 2, 5),
        regions=("global", "tropics"),
    )
    names = [
        "report.md", "rmse_global.png", "rmse_tropics.png", "bias.png", "acc.png",
        "spectra.png", "stability.png", "maps.png", "egc_metrics.nc", "sfno_metrics.nc",
        "persistence_metrics.nc", "climatology_metrics.nc",
    ]  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    assert [r["model"] for r in rows] == ["EGC", "SFNO", "persistence", "climatology"]
    assert [r["kind"] for r in rows] == ["model", "model", "persistence", "climatology"]
    egc, sfno, pers, _ = rows
    assert egc["inits"] == 2 and egc["last_lead_days"] == 2.0 and egc["scored_lead_days"] == 2.0
    assert egc["diverged_at"] == -1 and pers["diverged_at"] is None
    # the scores are evaluate_forecast's on the file as it is
    with xr.open_dataset(rollouts["egc"]) as ds:
        ref = evaluate_forecast(ds[["geopotential"]], truth, regions=["global"])
        z = ref["geopotential"].sel(metric="rmse", region="global", level=500)
        assert egc[f"{Z500}_1d"] == pytest.approx(float(z.sel(lead_time=np.timedelta64(1, "D"))), rel=1e-9)
        assert egc[f"{Z500}_2d"] == pytest.approx(float(z.sel(lead_time=np.timedelta64(2, "D"))), rel=1e-9)
        ke = ds["kinetic_energy"].values.astype(np.float64)
        assert egc["ke_ratio"] == pytest.approx(ke[:, -1].mean() / ke[:, 0].mean(), rel=1e-9)
        inits = ds["init_time"].values
    assert np.isnan(egc[f"{Z500}_5d"]) and np.isfinite(sfno[f"{Z500}_1d"])
    assert {"rmse_u_component_of_wind@500_1d", "rmse_v_component_of_wind@500_2d"} <= set(egc)
    # persistence: the truth at the init times
    p = evaluate_forecast(persistence_forecast(truth, inits, ["1D"], variables=["geopotential"]), truth)
    expect = float(p["geopotential"].sel(metric="rmse", region="global", level=500)[0])
    assert pers[f"{Z500}_1d"] == pytest.approx(expect, rel=1e-9)
    assert pers[f"{Z500}_1d"] != pytest.approx(egc[f"{Z500}_1d"], rel=1e-3)

    with xr.open_dataset(out / "egc_metrics.nc") as m:
        assert m.attrs["model"] == "EGC" and "acc" in m["metric"].values
        assert m["lead_time"].values[-1] == np.timedelta64(2, "D")
        assert list(m["region"].values) == ["global", "tropics"]

    table = format_weather_summary(rows)
    lines = table.splitlines()
    assert len({len(line) for line in lines}) == 1  # aligned
    assert len(lines) == 2 + 4
    assert "RMSE geopotential@500 5d" in lines[0]
    assert "none" in lines[2] and "–" in lines[2]
    text = (out / "report.md").read_text()
    assert text.startswith("# Weather rollout evaluation")
    assert table in text
    for section in ("## Summary", "## RMSE by region", "### global", "### tropics", "## Figures"):
        assert section in text
    assert "![" in text and "(spectra.png)" in text and "(maps.png)" in text
    assert _links_resolve(out / "report.md") == []

    # existing files are refused without overwrite, before anything is computed or written
    before = (out / "report.md").stat().st_mtime_ns
    with pytest.raises(OutputError, match="exists"):
        write_weather_report([("EGC", rollouts["egc"])], out)
    assert (out / "report.md").stat().st_mtime_ns == before


def test_a_rollout_past_the_data_is_scored_to_the_data_and_stable_to_its_end(rollouts, tmp_path):
    rows = write_weather_report(
        [("GC", rollouts["long"])], tmp_path / "long", title="Long", regions=["global"]
    )
    gc, pers = rows
    assert gc["last_lead_days"] == 6.0  # the whole rollout
    assert gc["scored_lead_days"] == 3.0  # 2020-01-01T06 + 3 days is the last valid time within the data
    assert np.isfinite(gc[f"{Z500}_1d"]) and np.isfinite(gc[f"{Z500}_3d"]) and np.isnan(gc[f"{Z500}_5d"])
    assert pers["scored_lead_days"] == 3.0 and np.isnan(pers[f"{Z500}_5d"])
    with xr.open_dataset(rollouts["long"]) as ds:
        ke = ds["kinetic_energy"].values[0].astype(np.float64)
    assert ke.size == 6 and np.isfinite(ke).all()
    assert gc["ke_ratio"] == pytest.approx(ke[-1] / ke[0], rel=1e-9)  # the last lead, past the data
    with xr.open_dataset(tmp_path / "long" / "gc_metrics.nc") as m:
        assert m["lead_time"].values[-1] == np.timedelta64(3, "D")
    text = (tmp_path / "long" / "report.md").read_text()
    assert text.startswith("# Long") and "scored to 3 d" in text
    assert not (tmp_path / "long" / "acc.png").exists()


def test_a_diverged_rollout_shows_its_divergence_step(rollouts, tmp_path):
    with xr.open_dataset(rollouts["bad"]) as ds:
        first = ds["diverged_at"].values
    assert (first >= 1).all()
    out = tmp_path / "bad"
    rows = write_weather_report([("unstable", rollouts["bad"])], out, headline_days=(1,), regions=["global"])
    assert rows[0]["diverged_at"] == int(first.min()) and rows[0]["diverged_inits"] == 2
    assert np.isnan(rows[0][f"{Z500}_1d"]) and np.isnan(rows[0]["ke_ratio"])
    cell = f"{int(first.min())} (2/2 inits)"
    assert cell in format_weather_summary(rows).splitlines()[2]
    assert cell in (out / "report.md").read_text()
    # overwrite replaces the report
    before = (out / "report.md").stat().st_mtime_ns
    write_weather_report(
        [("unstable", rollouts["bad"])], out, headline_days=(1,), regions=["global"], overwrite=True
    )
    assert (out / "report.md").stat().st_mtime_ns > before


def test_errors_name_the_file(rollouts, tmp_path):
    other = tmp_path / "ns.nc"
    xr.Dataset({"vorticity": (("x",), np.zeros(3))}, attrs={"kind": "ns2d"}).to_netcdf(other)
    with pytest.raises(DataFileError, match=r"ns\.nc: not a weather rollout") as err:
        write_weather_report([("A", rollouts["egc"]), ("B", other)], tmp_path / "r1")
    assert "\n" not in str(err.value)
    fewer = tmp_path / "no_v.nc"
    with xr.open_dataset(rollouts["egc"]) as ds:
        ds.drop_vars("v_component_of_wind").to_netcdf(fewer)
    with pytest.raises(DataFileError, match=r"no_v\.nc: variables .* differ"):
        write_weather_report([("A", rollouts["egc"]), ("B", fewer)], tmp_path / "r2")
    coarse = tmp_path / "coarse.nc"
    with xr.open_dataset(rollouts["egc"]) as ds:
        ds.isel(longitude=slice(0, None, 2)).to_netcdf(coarse)
    with pytest.raises(DataFileError, match=r"coarse\.nc: longitude"):
        write_weather_report([("A", rollouts["egc"]), ("B", coarse)], tmp_path / "r3")
    with pytest.raises(DataFileError, match="missing.nc: no such file"):
        write_weather_report([("A", tmp_path / "missing.nc")], tmp_path / "r4")
    with pytest.raises(ValueError, match="headline: the rollouts have no variable 'temperature'"):
        write_weather_report([("A", rollouts["egc"])], tmp_path / "r5", headline=("temperature", 850))
    with pytest.raises(ValueError, match="persistence"):
        write_weather_report([("Persistence", rollouts["egc"])], tmp_path / "r6")
    with pytest.raises(OutputError, match="parent folder"):
        write_weather_report([("A", rollouts["egc"])], tmp_path / "no" / "such")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coarse.nc", "no_v.nc", "ns.nc"]  # nothing written
