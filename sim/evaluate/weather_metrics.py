"""WeatherBench2-style scores of weather forecasts: RMSE, bias, ACC per lead time and region, zonal energy
spectra, reference forecasts (persistence, climatology).

Layouts (xarray, WeatherBench2 variable names as in ``sim.data.weather``):

* **forecast**: a Dataset with variables ``(init_time, lead_time, [level], latitude, longitude)``,
  ``init_time`` datetime64, ``lead_time`` timedelta64 (WeatherBench2's by-init layout);
* **truth**: the canonical form, ``(time, [level], latitude, longitude)``; the truth of
  ``(init_time, lead_time)`` is the field at the *valid time* ``time = init_time + lead_time``;
* **climatology**: WeatherBench2's ``(dayofyear, [hour], [level], latitude, longitude)``, read at the day
  of year (1..366) and hour of the valid time (``hour`` optional), or ``([level], latitude, longitude)``:
  a constant mean field. A variable ``v`` may also be stored as ``v_mean`` (as WeatherBench2 accepts).

Latitude may be stored in either order and is matched by value; forecast, truth and climatology must be on
the same global grid (to 1e-5 degrees).

Definitions (WeatherBench2's ``metrics.py``). For one ``(init_time, lead_time, level)``, with ``w_i`` the
cell-area weight of latitude row ``i`` (:func:`latitude_weights`) and ``m_i`` the region's mask, the
spatial mean is ``<x> = sum_ij m_i w_i x_ij / sum_ij m_i w_i`` (grid points outside the region are set to
0 first, so NaN there do not count). With ``f`` the forecast, ``t`` the truth and ``c`` the climatology
at the valid time, ``f' = f - c``, ``t' = t - c``, and ``E`` the mean over ``init_time``:

* ``mse  = E <(f - t)^2>``;
* ``rmse = sqrt(E <(f - t)^2>)``: the square root *after* the mean over init times (WeatherBench2's
  current definition; the mean of per-init RMSEs, WeatherBench2's ``rmse_sqrt_before_time_avg``, is
  smaller by Jensen's inequality and is not computed here);
* ``bias = E <f - t>``;
* ``acc  = E [<f' t'> / sqrt(<f'^2> <t'^2>)]``: the anomaly correlation of each init time, then averaged
  (anomalies are not re-centred on their spatial mean, as in WeatherBench2).

NaN: the spatial means propagate NaN (WeatherBench2's ``skipna=False``), so a forecast with a NaN point
in the region (a diverged rollout) scores NaN at that init time; the mean over ``init_time`` leaves out
non-finite per-init scores (WeatherBench2's ``--skipna``; its default is False), and is NaN where none
is finite. :func:`evaluate_forecast` reports the kept fraction as the metric ``finite_fraction``.

Everything is computed in memory in float64 (the truth is gathered at every valid time); for a long
period, score a range of init times per call and pool the ``mse`` of the calls weighted by
``n_init_times * finite_fraction`` (the RMSE is the root of the pooled MSE).

Example::

    scores = evaluate_forecast(forecast, era5, climatology=clim)   # (metric, region, lead_time, [level])
    scores["geopotential"].sel(metric="rmse", region="global", level=500)
    baseline = evaluate_forecast(persistence_forecast(era5, inits, ["6h", "12h"]), era5)
    write_metrics_netcdf(scores, "runs/weather_scores.nc")

Regions (:data:`REGIONS`, latitude bounds inclusive, in degrees): WeatherBench2's ``global``,
``tropics`` (-20..20), ``extra-tropics`` (|lat| >= 20), ``northern-hemisphere`` (20..90),
``southern-hemisphere`` (-90..-20), ``arctic`` (60..90), ``antarctic`` (-90..-60), here named
``extratropics``, ``extratropics_north``, ``extratropics_south``; the WeatherBench2 names and
``nhextratropics`` / ``shextratropics`` are accepted as aliases.
"""

from __future__ import annotations

import os
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from sim.discretize.latlon import GridError, LatLonGrid, area_weights, grid_from_coords
from sim.io import atomic_output

__all__ = [
    "EARTH_RADIUS_M",
    "METRICS",
    "REGIONS",
    "REGION_ALIASES",
    "acc",
    "bias",
    "climatology_forecast",
    "evaluate_forecast",
    "latitude_band_mean",
    "latitude_weights",
    "mse",
    "persistence_forecast",
    "rmse",
    "write_metrics_netcdf",
    "zonal_energy_spectrum",
]

EARTH_RADIUS_M = 1000.0 * (6357.0 + 6378.0) / 2
"""WeatherBench2's Earth radius in metres (``schema.EARTH_RADIUS_M``: the mean of the polar and
equatorial radii, 6 367 500 m), used for the circumference in :func:`zonal_energy_spectrum`."""

Bands = tuple[tuple[float, float], ...]

REGIONS: types.MappingProxyType[str, Bands] = types.MappingProxyType(
    {
        "global": ((-90.0, 90.0),),
        "tropics": ((-20.0, 20.0),),
        "extratropics": ((-90.0, -20.0), (20.0, 90.0)),
        "extratropics_north": ((20.0, 90.0),),
        "extratropics_south": ((-90.0, -20.0),),
        "arctic": ((60.0, 90.0),),
        "antarctic": ((-90.0, -60.0),),
    }
)
"""Named regions: latitude bands ``((south, north), ...)`` in degrees, bounds inclusive (read-only)."""

REGION_ALIASES: types.MappingProxyType[str, str] = types.MappingProxyType(
    {
        "extra-tropics": "extratropics",
        "northern-hemisphere": "extratropics_north",
        "southern-hemisphere": "extratropics_south",
        "nhextratropics": "extratropics_north",
        "shextratropics": "extratropics_south",
    }
)
"""WeatherBench2's region names (``scripts/evaluate.py``) and older ones, mapped to :data:`REGIONS`."""

METRICS = ("mse", "rmse", "bias", "acc", "finite_fraction")
"""The ``metric`` coordinate of :func:`evaluate_forecast` (``acc`` only with a climatology)."""
_SPATIAL = ("latitude", "longitude")
_LAT_TOL = 1e-6  # degrees of slack on region bounds
_GRID_TOL = 1e-5  # degrees: forecast, truth and climatology grids must agree to this

Region = str | tuple[float, float] | Sequence[tuple[float, float]]


# ---------------------------------------------------------------------------------------------------------
# weights and regions


def latitude_weights(lat: np.ndarray | Sequence[float] | LatLonGrid) -> np.ndarray:
    """Cell-area weights of the latitude rows of a global grid, normalised to mean 1.

    WeatherBench2's ``get_lat_weights`` (cell bounds halfway between latitudes, ``±90`` at the ends,
    weight ``sin(upper) - sin(lower)``) for equiangular grids, through
    :func:`sim.discretize.latlon.area_weights`; Gaussian latitudes get their Legendre-Gauss quadrature
    weights instead (WeatherBench2 would use the cell-bounds formula, ~6% off in the rows next to the
    poles). Only the latitudes matter, so ``lat`` alone is enough.

    Args:
        lat: ``[nlat]`` degrees in any order (weights come back in the same order), or a LatLonGrid.

    Returns:
        ``[nlat]`` float64, positive, mean 1.

    Raises:
        GridError: the latitudes are not those of a complete global grid (equiangular with or without
            poles, or Gaussian), in one line.
    """
    if isinstance(lat, LatLonGrid):
        return area_weights(lat)
    lat = np.asarray(lat, dtype=np.float64)
    if lat.ndim != 1 or lat.size == 0:
        raise GridError(f"latitude_weights: expected a non-empty 1-D latitude array, got shape {lat.shape}")
    order = np.argsort(lat, kind="stable")
    grid = grid_from_coords(lat[order], [0.0])  # one longitude: only the latitudes are checked
    w = np.empty_like(lat)
    w[order] = area_weights(grid)
    return w


def _resolve_region(region: Region) -> tuple[str, Bands]:
    """The name and latitude bands of a region: a name of :data:`REGIONS` (or an alias), a band
    ``(south, north)`` or a sequence of bands (named like ``"30..60"``)."""
    if isinstance(region, str):
        key = REGION_ALIASES.get(region, region)
        if key not in REGIONS:
            names = sorted(REGIONS) + sorted(REGION_ALIASES)
            raise ValueError(
                f"region: unknown {region!r}; expected one of {names} or (south, north) bounds in degrees"
            )
        return region, REGIONS[key]
    try:
        pairs = [region] if len(region) == 2 and np.isscalar(region[0]) else list(region)
        bands = tuple((float(lo), float(hi)) for lo, hi in pairs)
    except (TypeError, ValueError):
        raise ValueError(
            f"region: expected a name or (south, north) bounds in degrees, got {region!r}"
        ) from None
    if not bands:
        raise ValueError("region: expected at least one (south, north) band")
    for lo, hi in bands:
        if not -90.0 <= lo <= hi <= 90.0:
            raise ValueError(f"region: band ({lo:g}, {hi:g}) is not -90 <= south <= north <= 90 degrees")
    return ",".join(f"{lo:g}..{hi:g}" for lo, hi in bands), bands


def _region_weights(lat: np.ndarray, name: str, bands: Bands) -> xr.DataArray:
    """Area weights ``[latitude]`` of the rows inside the region's bands, 0 outside."""
    mask = np.zeros(lat.size, dtype=bool)
    for lo, hi in bands:
        mask |= (lat >= lo - _LAT_TOL) & (lat <= hi + _LAT_TOL)
    if not mask.any():
        raise ValueError(f"region {name!r}: no grid latitude lies in {list(bands)}")
    return xr.DataArray(np.where(mask, latitude_weights(lat), 0.0), dims="latitude")


def _spatial_mean(x: xr.DataArray, w: xr.DataArray) -> xr.DataArray:
    """``<x>``: the weighted mean over (latitude, longitude) with region weights ``w`` (NaN propagate,
    except at points of zero weight, which are set to 0 first as WeatherBench2 does)."""
    x = x.where(w > 0, 0.0)
    return (x * w).sum(_SPATIAL, skipna=False) / (float(w.sum()) * x.sizes["longitude"])


def _mean_over_init(x: xr.DataArray, *, skipna: bool) -> xr.DataArray:
    """Mean over ``init_time``; with ``skipna`` over the finite values only (NaN where none, no warning)."""
    if not skipna:
        return x.mean("init_time", skipna=False)
    ok = np.isfinite(x)
    n = ok.sum("init_time")
    return x.where(ok, 0.0).sum("init_time") / n.where(n > 0)


# ---------------------------------------------------------------------------------------------------------
# checking and aligning forecast, truth and climatology


def _iso(t) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "s"), unit="s"))


def _fmt_lead(lead) -> str:
    seconds = int(np.timedelta64(lead, "ns") / np.timedelta64(1, "s"))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _describe(values: np.ndarray) -> str:
    return f"{values.size} values {values[0]:g} .. {values[-1]:g}" if values.size else "no values"


def _ascending(obj, dims: Sequence[str] = _SPATIAL):
    """``obj`` sorted along the given coordinate dims where they are not already ascending."""
    for dim in dims:
        if dim in obj.coords and obj[dim].size > 1 and not (np.diff(obj[dim].values) > 0).all():
            obj = obj.sortby(dim)
    return obj


def _check_spatial(obj, where: str) -> None:
    for dim in _SPATIAL:
        if dim not in obj.dims or dim not in obj.coords:
            raise ValueError(f"{where}: no '{dim}' dimension with a coordinate (dims {tuple(obj.dims)})")


def _match_grid(ref: xr.Dataset, other, *, what: str):
    """``other`` (sorted ascending) with exactly ``ref``'s latitude and longitude coordinates.

    Raises:
        GridError: the grids differ by more than 1e-5 degrees, naming the coordinate.
    """
    other = _ascending(other)
    for dim in _SPATIAL:
        a, b = np.asarray(ref[dim].values, np.float64), np.asarray(other[dim].values, np.float64)
        if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=_GRID_TOL):
            raise GridError(f"{what} {dim} ({_describe(b)}) does not match the forecast's ({_describe(a)})")
    return other.assign_coords(latitude=ref["latitude"].values, longitude=ref["longitude"].values)


def _check_forecast(forecast: xr.Dataset) -> xr.Dataset:
    """The forecast sorted ascending in latitude and longitude, after checking its layout."""
    if not isinstance(forecast, xr.Dataset):
        raise TypeError(f"forecast: expected an xarray Dataset, got {type(forecast).__name__}")
    for dim in ("init_time", "lead_time"):
        if dim not in forecast.dims or dim not in forecast.coords:
            raise ValueError(
                f"forecast: no '{dim}' dimension with a coordinate (dims {tuple(forecast.dims)}); "
                "expected (init_time, lead_time, [level], latitude, longitude)"
            )
    _check_spatial(forecast, "forecast")
    if not np.issubdtype(forecast["init_time"].dtype, np.datetime64):
        raise ValueError(f"forecast: init_time has dtype {forecast['init_time'].dtype}, expected datetime64")
    if not np.issubdtype(forecast["lead_time"].dtype, np.timedelta64):
        raise ValueError(f"forecast: lead_time has dtype {forecast['lead_time'].dtype}, expected timedelta64")
    forecast = _ascending(forecast)
    latitude_weights(forecast["latitude"].values)  # a global grid, or GridError
    return forecast


def _forecast_variables(forecast: xr.Dataset, variables: Sequence[str] | None) -> list[str]:
    """The variables to score: those given (checked), or every forecast variable on the full layout."""
    need = {"init_time", "lead_time", *_SPATIAL}
    if variables is None:
        names = [str(k) for k, v in forecast.data_vars.items() if need <= set(v.dims)]
        if not names:
            raise ValueError("forecast: no variable with dims (init_time, lead_time, latitude, longitude)")
        return names
    names = [variables] if isinstance(variables, str) else [str(v) for v in variables]
    if not names:
        raise ValueError("variables: expected at least one variable name")
    for name in names:
        if name not in forecast.data_vars:
            raise ValueError(
                f"forecast: no variable {name!r} (it has {sorted(map(str, forecast.data_vars))})"
            )
        if not need <= set(forecast[name].dims):
            raise ValueError(
                f"forecast: {name} has dims {forecast[name].dims}, expected (init_time, lead_time, "
                "[level], latitude, longitude)"
            )
    return names


def _layout(da: xr.DataArray, lead: Sequence[str], where: str) -> xr.DataArray:
    """``da`` transposed to ``(*lead, [level], latitude, longitude)``; ValueError for other dims."""
    order = [*lead, *(["level"] if "level" in da.dims else []), *_SPATIAL]
    extra = [d for d in da.dims if d not in order]
    if extra:
        raise ValueError(f"{where}: unexpected dims {extra} (expected {tuple(order)})")
    return da.transpose(*order)


def _select_levels(da: xr.DataArray, levels: np.ndarray | None, where: str) -> xr.DataArray:
    """``da`` at the given levels (None: ``da`` must have no level dim)."""
    if levels is None:
        if "level" in da.dims:
            raise ValueError(f"{where} has a level dim but the forecast's variable has none")
        return da
    if "level" not in da.dims:
        raise ValueError(f"{where} has no level dim but the forecast has levels {levels.tolist()}")
    missing = sorted(set(levels.tolist()) - set(da["level"].values.tolist()))
    if missing:
        raise ValueError(f"{where} has no level(s) {missing} (the forecast has them)")
    return da.sel(level=levels)


def _valid_times(forecast: xr.Dataset) -> xr.DataArray:
    """``init_time + lead_time``, ``(init_time, lead_time)`` datetime64[ns]."""
    return (forecast["init_time"] + forecast["lead_time"]).transpose("init_time", "lead_time")


def _truth_at(truth: xr.Dataset, name: str, valid: xr.DataArray, levels: np.ndarray | None) -> xr.DataArray:
    """The truth of ``name`` at the valid times, ``(init_time, lead_time, [level], latitude, longitude)``."""
    if name not in truth.data_vars:
        raise ValueError(f"truth: no variable {name!r} (it has {sorted(map(str, truth.data_vars))})")
    da = truth[name]
    if "time" not in da.dims:
        raise ValueError(f"truth: {name} has dims {da.dims}, expected (time, [level], latitude, longitude)")
    have = np.asarray(truth["time"].values)
    missing = ~np.isin(valid.values, have)
    if missing.any():
        i, j = (int(k[0]) for k in np.nonzero(missing))
        n = int(missing.sum())
        raise ValueError(
            f"truth: no time {_iso(valid.values[i, j])} (the valid time of init_time "
            f"{_iso(valid['init_time'].values[i])} + lead_time {_fmt_lead(valid['lead_time'].values[j])})"
            + (f" and {n - 1} more missing valid times" if n > 1 else "")
        )
    da = _select_levels(da, levels, f"truth: {name}")
    da = da.sel(time=valid).drop_vars("time")
    return _layout(da, ("init_time", "lead_time"), f"truth: {name}")


def _climatology_var(climatology: xr.Dataset, name: str) -> xr.DataArray:
    """Variable ``name`` of a climatology, or ``name_mean`` (as WeatherBench2 accepts)."""
    for key in (name, f"{name}_mean"):
        if key in climatology.data_vars:
            return climatology[key].rename(name)
    raise ValueError(f"climatology: no variable {name!r} (nor {name + '_mean'!r})")


def _climatology_at(
    climatology: xr.Dataset, name: str, valid: xr.DataArray, levels: np.ndarray | None
) -> xr.DataArray:
    """The climatology of ``name`` at the valid times' day of year and hour,
    ``(init_time, lead_time, [level], latitude, longitude)`` (without the time dims when it has none)."""
    da = _climatology_var(climatology, name)
    allowed = {"dayofyear", "hour", "level", *_SPATIAL}
    extra = [d for d in da.dims if d not in allowed]
    if extra:
        raise ValueError(
            f"climatology: {name} has unexpected dims {extra}; expected (dayofyear, [hour], [level], "
            "latitude, longitude) or ([level], latitude, longitude)"
        )
    da = _select_levels(da, levels, f"climatology: {name}")
    select = {}
    for dim, values in (("dayofyear", valid.dt.dayofyear), ("hour", valid.dt.hour)):
        if dim not in da.dims:
            continue
        if dim not in da.coords:
            raise ValueError(f"climatology: {name} has a '{dim}' dim without a coordinate")
        missing = ~np.isin(values.values, da[dim].values)
        if missing.any():
            i, j = (int(k[0]) for k in np.nonzero(missing))
            raise ValueError(
                f"climatology: {name} has no {dim} {int(values.values[i, j])} (needed for the valid time "
                f"{_iso(valid.values[i, j])})"
            )
        select[dim] = values
    if select:
        da = da.sel(select).drop_vars(list(select))
        return _layout(da, ("init_time", "lead_time"), f"climatology: {name}")
    return _layout(da, (), f"climatology: {name}")


def _levels_of(da: xr.DataArray) -> np.ndarray | None:
    return np.asarray(da["level"].values) if "level" in da.dims else None


# ---------------------------------------------------------------------------------------------------------
# scores


def _scores(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    climatology: xr.Dataset | None,
    *,
    regions: Sequence[Region],
    variables: Sequence[str] | None,
    metrics: Sequence[str],
    skipna: bool,
) -> xr.Dataset:
    """The scores of every variable, ``(metric, region, lead_time, [level])`` each (the one code path of
    the public functions)."""
    forecast = _check_forecast(forecast)
    if not isinstance(truth, xr.Dataset):
        raise TypeError(f"truth: expected an xarray Dataset, got {type(truth).__name__}")
    if "time" not in truth.coords:
        raise ValueError(f"truth: no 'time' coordinate (dims {tuple(truth.dims)})")
    _check_spatial(truth, "truth")
    truth = _match_grid(forecast, truth, what="truth")
    if climatology is not None:
        if not isinstance(climatology, xr.Dataset):
            raise TypeError(f"climatology: expected an xarray Dataset, got {type(climatology).__name__}")
        _check_spatial(climatology, "climatology")
        climatology = _match_grid(forecast, climatology, what="climatology")
    if "acc" in metrics and climatology is None:
        raise ValueError("acc: needs a climatology (the anomalies are taken with respect to it)")
    resolved = [_resolve_region(r) for r in regions]
    if not resolved:
        raise ValueError("regions: expected at least one region")
    names = [n for n, _ in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"regions: repeated region names {names}")
    lat = np.asarray(forecast["latitude"].values, np.float64)
    weights = [_region_weights(lat, n, b) for n, b in resolved]

    valid = _valid_times(forecast)
    out = {}
    for name in _forecast_variables(forecast, variables):
        f = _layout(forecast[name], ("init_time", "lead_time"), f"forecast: {name}").astype(np.float64)
        levels = _levels_of(f)
        t = _truth_at(truth, name, valid, levels).astype(np.float64)
        err = f - t
        if "acc" in metrics:
            c = _climatology_at(climatology, name, valid, levels)
            fa, ta = f - c, t - c  # anomalies
        per_region = []
        for w in weights:
            per_init: dict[str, xr.DataArray] = {}  # each (init_time, lead_time, [level])
            if {"mse", "rmse", "finite_fraction"} & set(metrics):
                per_init["mse"] = _spatial_mean(err**2, w)
            if "bias" in metrics:
                per_init["bias"] = _spatial_mean(err, w)
            if "acc" in metrics:
                with np.errstate(divide="ignore", invalid="ignore"):
                    per_init["acc"] = _spatial_mean(fa * ta, w) / np.sqrt(
                        _spatial_mean(fa**2, w) * _spatial_mean(ta**2, w)
                    )
            scores = []
            for metric in metrics:
                if metric == "rmse":
                    value = np.sqrt(_mean_over_init(per_init["mse"], skipna=skipna))
                elif metric == "finite_fraction":
                    value = np.isfinite(per_init["mse"]).mean("init_time").astype(np.float64)
                else:
                    value = _mean_over_init(per_init[metric], skipna=skipna)
                scores.append(value)
            per_region.append(xr.concat(scores, dim="metric", coords="minimal", compat="override"))
        da = xr.concat(per_region, dim="region", coords="minimal", compat="override")
        out[name] = da.transpose("metric", "region", "lead_time", ...)
    ds = xr.Dataset(out).assign_coords(metric=list(metrics), region=names)
    return ds.assign_attrs(
        n_init_times=int(forecast.sizes["init_time"]),
        init_time_first=_iso(forecast["init_time"].values.min()),
        init_time_last=_iso(forecast["init_time"].values.max()),
        skipna=int(skipna),
        conventions=(
            "WeatherBench2: latitude-weighted spatial means per init time, then the mean over init times; "
            "rmse = sqrt(mean over init times of mse); finite_fraction = share of init times with a "
            "finite mse"
        ),
    )


def _one(ds: xr.Dataset, metric: str) -> xr.Dataset:
    return ds.sel(metric=metric).isel(region=0).drop_vars(["metric", "region"]).assign_attrs(metric=metric)


def mse(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    *,
    region: Region = "global",
    variables: Sequence[str] | None = None,
    skipna: bool = True,
) -> xr.Dataset:
    """Latitude-weighted mean square error per lead time, ``E <(f - t)^2>`` (module docstring).

    Args:
        forecast: ``(init_time, lead_time, [level], latitude, longitude)`` variables.
        truth: ``(time, [level], latitude, longitude)`` variables, with every valid time
            ``init_time + lead_time``.
        region: a name of :data:`REGIONS` (or :data:`REGION_ALIASES`), or ``(south, north)`` degrees.
        variables: the variables to score; by default every forecast variable with the layout above.
        skipna: leave non-finite per-init scores out of the mean over ``init_time``.

    Returns:
        A Dataset, one variable per forecast variable, ``(lead_time, [level])`` float64.

    Raises:
        ValueError: a missing variable, level or valid time, an unknown region, a bad layout (one line).
        GridError: the truth's grid differs from the forecast's, or the grid is not global.
    """
    ds = _scores(forecast, truth, None, regions=[region], variables=variables, metrics=["mse"], skipna=skipna)
    return _one(ds, "mse")


def rmse(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    *,
    region: Region = "global",
    variables: Sequence[str] | None = None,
    skipna: bool = True,
) -> xr.Dataset:
    """Latitude-weighted RMSE per lead time as WeatherBench2 defines it: ``sqrt(E <(f - t)^2>)``, the
    square root of the mean over init times of the MSE (not the mean of per-init RMSEs).

    Arguments, returns and errors as :func:`mse`.
    """
    ds = _scores(
        forecast, truth, None, regions=[region], variables=variables, metrics=["rmse"], skipna=skipna
    )
    return _one(ds, "rmse")


def bias(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    *,
    region: Region = "global",
    variables: Sequence[str] | None = None,
    skipna: bool = True,
) -> xr.Dataset:
    """Latitude-weighted mean error (forecast minus truth) per lead time, ``E <f - t>``.

    Arguments, returns and errors as :func:`mse`.
    """
    ds = _scores(
        forecast, truth, None, regions=[region], variables=variables, metrics=["bias"], skipna=skipna
    )
    return _one(ds, "bias")


def acc(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    climatology: xr.Dataset,
    *,
    region: Region = "global",
    variables: Sequence[str] | None = None,
    skipna: bool = True,
) -> xr.Dataset:
    """Anomaly correlation coefficient per lead time as WeatherBench2 defines it:
    ``E [<f' t'> / sqrt(<f'^2> <t'^2>)]`` with anomalies ``f' = f - c``, ``t' = t - c`` from the
    climatology ``c`` at the valid time (per init time, then averaged over init times).

    Args:
        climatology: ``(dayofyear, [hour], [level], latitude, longitude)`` (read at the valid time's day of
            year 1..366 and hour) or ``([level], latitude, longitude)`` (a constant mean); variable ``v`` or
            ``v_mean``.
        forecast, truth, region, variables, skipna: as :func:`mse`.

    Returns:
        A Dataset, one variable per forecast variable, ``(lead_time, [level])`` float64 in ``[-1, 1]``
        (NaN where an anomaly vanishes everywhere in the region).

    Raises:
        ValueError: as :func:`mse`, and a climatology missing a variable, level, day of year or hour.
        GridError: a grid differs from the forecast's.
    """
    ds = _scores(
        forecast, truth, climatology, regions=[region], variables=variables, metrics=["acc"], skipna=skipna
    )
    return _one(ds, "acc")


def evaluate_forecast(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    *,
    climatology: xr.Dataset | None = None,
    regions: Sequence[Region] = ("global", "tropics", "extratropics"),
    variables: Sequence[str] | None = None,
    skipna: bool = True,
) -> xr.Dataset:
    """All deterministic scores of a forecast, in WeatherBench2's results layout.

    Args:
        forecast: ``(init_time, lead_time, [level], latitude, longitude)`` variables.
        truth: ``(time, [level], latitude, longitude)`` variables with every valid time.
        climatology: for the ACC (see :func:`acc`); without it ``acc`` is left out.
        regions: names of :data:`REGIONS` / :data:`REGION_ALIASES` or ``(south, north)`` bands; the
            ``region`` coordinate holds the names as given (a band is named ``"30..60"``).
        variables: the variables to score; by default every forecast variable with the layout above.
        skipna: leave non-finite per-init scores out of the means over ``init_time``.

    Returns:
        A Dataset with one variable per weather variable (``geopotential``, ``2m_temperature``, ...),
        each ``(metric, region, lead_time, [level])`` float64 (surface variables have no level), and
        coordinates ``metric = ["mse", "rmse", "bias", ("acc",) "finite_fraction"]``, ``region``,
        ``lead_time`` (timedelta64) and ``level``. ``finite_fraction`` is the share of init times whose
        MSE is finite (the others are left out of the means). Attributes: ``n_init_times``,
        ``init_time_first``, ``init_time_last``, ``skipna``, ``conventions``. Select one score with
        ``ds["geopotential"].sel(metric="rmse", region="global", level=500)``.

    Raises:
        ValueError: a missing variable, level or valid time (naming it), an unknown region, a bad layout.
        GridError: truth or climatology on another grid than the forecast, or a grid that is not global.
    """
    metrics = [m for m in METRICS if m != "acc" or climatology is not None]
    return _scores(
        forecast,
        truth,
        climatology,
        regions=list(regions),
        variables=variables,
        metrics=metrics,
        skipna=skipna,
    )


# ---------------------------------------------------------------------------------------------------------
# zonal energy spectrum


def _check_longitude(lon: np.ndarray, where: str) -> None:
    """Ascending, equally spaced longitudes covering the circle once."""
    n = lon.size
    step = 360.0 / n
    if n < 2 or not np.allclose(np.diff(lon), step, rtol=0, atol=_GRID_TOL):
        raise GridError(
            f"{where}: longitude ({_describe(lon)}) is not {n} equally spaced values covering 360 degrees"
        )


def zonal_energy_spectrum(
    ds: xr.Dataset,
    *,
    variables: Sequence[str] | None = None,
    lat_band: tuple[float, float] | None = None,
) -> xr.Dataset:
    """WeatherBench2's zonal energy spectrum (``derived_variables.ZonalEnergySpectrum``) of each variable.

    Along each circle of latitude with ``L`` longitudes and circumference ``C = 2 pi R cos(lat)``
    (``R = EARTH_RADIUS_M``), ``F[m] = (1 / L) sum_l f[l] exp(-2 pi i m l / L)`` (``rfft``, norm
    "forward") and ``S[m] = C a_m |F[m]|^2`` for ``m = 0 .. L // 2``, with ``a_0 = 1``, ``a_m = 2`` for
    the wavenumbers that stand for ``±m`` and ``a_{L/2} = 1`` for the Nyquist wavenumber of an even ``L``
    (which has no ``-m`` partner). Then Parseval holds exactly: ``sum_m S[m] = C mean_l f[l]^2 =
    (C / L) sum_l f[l]^2``, the discrete integral of ``f^2`` around the circle. WeatherBench2 doubles the
    Nyquist term too (its ``one_and_many_twos``), so its ``S[L/2]`` is twice this one; all other terms
    agree. Units: those of ``f`` squared times metres.

    Args:
        ds: a Dataset whose variables have ``latitude`` and ``longitude`` dims (any others are kept),
            e.g. a forecast ``(init_time, lead_time, [level], latitude, longitude)``; the longitudes must
            be equally spaced over the whole circle (any latitudes, in any order).
        variables: the variables; by default all with latitude and longitude dims.
        lat_band: if given, the result is averaged over the latitudes in ``[south, north]``
            (:func:`latitude_band_mean`), e.g. ``(30, 60)`` as in WeatherBench2's spectra plots.

    Returns:
        A Dataset, each variable ``(..., zonal_wavenumber, latitude)`` float64 (``(..., zonal_wavenumber)``
        with ``lat_band``), with coordinates ``zonal_wavenumber`` (int ``m``), ``wavelength``
        ``(zonal_wavenumber, latitude)`` ``C / m`` in m (inf at ``m = 0``) and ``frequency`` ``m / C`` in
        1/m (NaN at the poles). NaN fields give NaN spectra.

    Raises:
        ValueError: a missing variable, or one without latitude and longitude dims.
        GridError: longitudes not equally spaced over the circle.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"zonal_energy_spectrum: expected an xarray Dataset, got {type(ds).__name__}")
    _check_spatial(ds, "zonal_energy_spectrum")
    ds = _ascending(ds, ("longitude",))
    lon = np.asarray(ds["longitude"].values, np.float64)
    _check_longitude(lon, "zonal_energy_spectrum")
    if variables is None:
        names = [str(k) for k, v in ds.data_vars.items() if set(_SPATIAL) <= set(v.dims)]
        if not names:
            raise ValueError("zonal_energy_spectrum: no variable with latitude and longitude dims")
    else:
        names = [variables] if isinstance(variables, str) else [str(v) for v in variables]
        for name in names:
            if name not in ds.data_vars or not set(_SPATIAL) <= set(ds[name].dims):
                raise ValueError(
                    f"zonal_energy_spectrum: no variable {name!r} with latitude and longitude dims"
                )
    L = lon.size
    M = L // 2 + 1
    factor = np.full(M, 2.0)  # [M]
    factor[0] = 1.0
    if L % 2 == 0:
        factor[-1] = 1.0
    lat = np.asarray(ds["latitude"].values, np.float64)
    cos = np.where(np.abs(lat) >= 90.0, 0.0, np.cos(np.deg2rad(lat)))
    circumference = xr.DataArray(2 * np.pi * EARTH_RADIUS_M * cos, dims="latitude")  # [nlat]
    m = np.arange(M)
    with np.errstate(divide="ignore", invalid="ignore"):
        wavelength = np.where(m[:, None] > 0, circumference.values[None, :] / m[:, None], np.inf)
        frequency = np.where(
            circumference.values[None, :] > 0, m[:, None] / circumference.values[None, :], np.nan
        )

    def power(x: np.ndarray) -> np.ndarray:  # [..., L] -> [..., M]
        fk = np.fft.rfft(x, axis=-1, norm="forward")
        return (fk.real**2 + fk.imag**2) * factor

    out = {}
    for name in names:
        da = ds[name].astype(np.float64)
        spec = xr.apply_ufunc(
            power,
            da,
            input_core_dims=[["longitude"]],
            output_core_dims=[["zonal_wavenumber"]],
            dask="parallelized",
            output_dtypes=[np.float64],
            dask_gufunc_kwargs={"output_sizes": {"zonal_wavenumber": M}},
        )
        spec = spec * circumference
        lead = [d for d in spec.dims if d not in ("zonal_wavenumber", "latitude")]
        out[name] = spec.transpose(*lead, "zonal_wavenumber", "latitude")
    result = xr.Dataset(out).assign_coords(
        zonal_wavenumber=("zonal_wavenumber", m),
        wavelength=(("zonal_wavenumber", "latitude"), wavelength, {"units": "m"}),
        frequency=(("zonal_wavenumber", "latitude"), frequency, {"units": "1 / m"}),
    )
    result = result.assign_attrs(
        earth_radius_m=EARTH_RADIUS_M,
        conventions=(
            "S[m] = 2 pi R cos(lat) a_m |rfft(f, norm='forward')[m]|^2, a_m = 1 at m = 0 and at the "
            "Nyquist wavenumber, 2 otherwise; sum_m S[m] = circumference * mean of f^2 along the circle"
        ),
    )
    return result if lat_band is None else latitude_band_mean(result, lat_band=lat_band)


def latitude_band_mean(spectrum: xr.Dataset, *, lat_band: tuple[float, float] = (30.0, 60.0)) -> xr.Dataset:
    """The plain (unweighted) mean of zonal spectra over the latitudes in ``[south, north]`` (inclusive).

    The spectra are averaged at equal zonal wavenumber ``m``; the ``wavelength`` coordinate becomes the
    mean over the band of ``C(lat) / m`` (``frequency`` is dropped).

    Args:
        spectrum: the output of :func:`zonal_energy_spectrum`, variables ``(..., zonal_wavenumber,
            latitude)``.
        lat_band: ``(south, north)`` in degrees, e.g. ``(-60, -30)`` for the southern band.

    Returns:
        A Dataset, each variable ``(..., zonal_wavenumber)``, with attribute ``lat_band``.

    Raises:
        ValueError: a band that is not ``-90 <= south <= north <= 90`` or holds no latitude of the data.
    """
    try:
        lo, hi = (float(v) for v in lat_band)
    except (TypeError, ValueError):
        raise ValueError(f"lat_band: expected (south, north) in degrees, got {lat_band!r}") from None
    if not -90.0 <= lo <= hi <= 90.0:
        raise ValueError(f"lat_band: ({lo:g}, {hi:g}) is not -90 <= south <= north <= 90 degrees")
    lat = np.asarray(spectrum["latitude"].values, np.float64)
    inside = (lat >= lo - _LAT_TOL) & (lat <= hi + _LAT_TOL)
    if not inside.any():
        raise ValueError(f"lat_band: no latitude of the spectrum ({_describe(lat)}) lies in [{lo:g}, {hi:g}]")
    band = spectrum.isel(latitude=np.flatnonzero(inside))
    drop = [c for c in ("wavelength", "frequency") if c in band.coords]
    out = band.drop_vars(drop).mean("latitude", skipna=False)
    if "wavelength" in band.coords:
        out = out.assign_coords(
            wavelength=("zonal_wavenumber", band["wavelength"].mean("latitude").values, {"units": "m"})
        )
    return out.assign_attrs(lat_band=f"{lo:g}..{hi:g}")


# ---------------------------------------------------------------------------------------------------------
# reference forecasts


def _times(values, kind: str, name: str) -> np.ndarray:
    """``values`` as a non-empty 1-D datetime64[ns] (``kind="datetime"``) or timedelta64[ns] array."""
    raw = np.atleast_1d(np.asarray(values))
    if kind == "timedelta" and raw.dtype.kind in "iuf":
        raise ValueError(
            f"{name}: expected durations (e.g. '6h' or np.timedelta64(6, 'h')), got numbers {values!r}"
        )
    try:
        conv = pd.to_datetime if kind == "datetime" else pd.to_timedelta
        arr = np.asarray(conv(raw.ravel()), dtype=f"{kind}64[ns]")
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {kind}s, got {values!r}") from None
    if raw.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence, got {values!r}")
    if np.isnat(arr).any():
        raise ValueError(f"{name}: contains NaT (a missing {kind})")
    return arr


def _truth_variables(truth: xr.Dataset, variables: Sequence[str] | None) -> list[str]:
    if variables is None:
        names = [str(k) for k, v in truth.data_vars.items() if {"time", *_SPATIAL} <= set(v.dims)]
        if not names:
            raise ValueError("truth: no variable with dims (time, [level], latitude, longitude)")
        return names
    names = [variables] if isinstance(variables, str) else [str(v) for v in variables]
    for name in names:
        if name not in truth.data_vars:
            raise ValueError(f"truth: no variable {name!r} (it has {sorted(map(str, truth.data_vars))})")
    return names


def persistence_forecast(
    truth: xr.Dataset,
    init_times,
    lead_times,
    *,
    variables: Sequence[str] | None = None,
) -> xr.Dataset:
    """The persistence forecast: the truth at the init time, for every lead time.

    Args:
        truth: ``(time, [level], latitude, longitude)`` variables.
        init_times: ``[I]`` datetimes (anything ``pandas.to_datetime`` reads), each a time of ``truth``.
        lead_times: ``[K]`` durations (``pandas.to_timedelta``: ``"6h"``, ``np.timedelta64``, ...).
        variables: by default every truth variable with a time, latitude and longitude dim.

    Returns:
        A forecast Dataset ``(init_time, lead_time, [level], latitude, longitude)`` (the truth's dtype and
        grid; a read-only broadcast along ``lead_time``: ``.copy()`` it to write into it).

    Raises:
        ValueError: a missing variable or init time (naming it), bad times.
    """
    init = _times(init_times, "datetime", "init_times")
    lead = _times(lead_times, "timedelta", "lead_times")
    have = np.asarray(truth["time"].values) if "time" in truth.coords else np.zeros(0, "datetime64[ns]")
    missing = init[~np.isin(init, have)]
    if missing.size:
        raise ValueError(f"truth: no time {_iso(missing[0])} (an init time of the persistence forecast)")
    out = {}
    for name in _truth_variables(truth, variables):
        if "time" not in truth[name].dims:
            raise ValueError(
                f"truth: {name} has dims {truth[name].dims}, expected (time, [level], latitude, longitude)"
            )
        da = truth[name].sel(time=init).rename(time="init_time").expand_dims(lead_time=lead)
        out[name] = _layout(da, ("init_time", "lead_time"), f"truth: {name}")
    return xr.Dataset(out).assign_coords(init_time=init, lead_time=lead)


def climatology_forecast(
    climatology: xr.Dataset,
    init_times,
    lead_times,
    *,
    like: xr.Dataset | None = None,
    variables: Sequence[str] | None = None,
) -> xr.Dataset:
    """The climatology forecast: the climatology at each valid time's day of year (and hour).

    Args:
        climatology: ``(dayofyear, [hour], [level], latitude, longitude)`` or ``([level], latitude,
            longitude)`` variables (``v`` or ``v_mean``, returned as ``v``).
        init_times: ``[I]`` datetimes (``pandas.to_datetime``).
        lead_times: ``[K]`` durations (``pandas.to_timedelta``).
        like: a truth (or forecast) Dataset: its variables and levels are taken (those the climatology
            has), its grid must match, and its latitude order is kept.
        variables: the variables; by default ``like``'s, else all of the climatology's with latitude and
            longitude dims.

    Returns:
        A forecast Dataset ``(init_time, lead_time, [level], latitude, longitude)`` float.

    Raises:
        ValueError: a missing variable, level, day of year or hour (naming it).
        GridError: the climatology's grid differs from ``like``'s.
    """
    init = _times(init_times, "datetime", "init_times")
    lead = _times(lead_times, "timedelta", "lead_times")
    if not isinstance(climatology, xr.Dataset):
        raise TypeError(f"climatology: expected an xarray Dataset, got {type(climatology).__name__}")
    _check_spatial(climatology, "climatology")
    valid = xr.DataArray(
        init[:, None] + lead[None, :],
        dims=("init_time", "lead_time"),
        coords={"init_time": init, "lead_time": lead},
    )
    if like is not None:
        _check_spatial(like, "like")
        grid = xr.Dataset(coords={dim: like[dim].values for dim in _SPATIAL})
        clim = _match_grid(_ascending(grid), climatology, what="climatology")
    else:
        clim = climatology
    if variables is not None:
        names = [variables] if isinstance(variables, str) else [str(v) for v in variables]
    elif like is not None:
        names = [
            str(k)
            for k, v in like.data_vars.items()
            if set(_SPATIAL) <= set(v.dims) and (k in clim.data_vars or f"{k}_mean" in clim.data_vars)
        ]
        if not names:
            raise ValueError("climatology: has none of like's variables")
    else:
        spatial = [str(k) for k, v in clim.data_vars.items() if set(_SPATIAL) <= set(v.dims)]
        names = list(dict.fromkeys(n.removesuffix("_mean") for n in spatial))  # v_mean -> v, once
        if not names:
            raise ValueError("climatology: no variable with latitude and longitude dims")
    out = {}
    for name in names:
        source = _climatology_var(clim, name)
        if like is not None and name in like.data_vars:
            levels = _levels_of(like[name])
        else:
            levels = _levels_of(source)
        da = _climatology_at(clim, name, valid, levels)
        if "init_time" not in da.dims:  # a constant climatology
            da = da.expand_dims(init_time=init, lead_time=lead)
        out[name] = _layout(da, ("init_time", "lead_time"), f"climatology: {name}")
    result = xr.Dataset(out).assign_coords(init_time=init, lead_time=lead)
    if like is not None:  # like's latitude and longitude order
        result = result.sel(latitude=like["latitude"].values, longitude=like["longitude"].values)
    return result


# ---------------------------------------------------------------------------------------------------------
# output


def write_metrics_netcdf(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a metrics Dataset (e.g. from :func:`evaluate_forecast`) to netCDF-4, atomically.

    Args:
        ds: the Dataset.
        path: the file.
        overwrite: replace an existing file.

    Returns:
        ``path`` as a Path.

    Raises:
        OutputError: the folder is missing, or the file exists and ``overwrite`` is False.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"write_metrics_netcdf: expected an xarray Dataset, got {type(ds).__name__}")
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
    return path
