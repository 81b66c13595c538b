"""A markdown report of weather rollouts: WeatherBench2 scores against the truth and two reference
forecasts, stability over the whole rollout, zonal energy spectra and maps.

The rollouts are files from :func:`~sim.evaluate.weather_rollout.rollout_weather_to_netcdf` (one per
model, on the same grid with the same variables); the truth is the canonical store they started from::

    rows = write_weather_report(
        [("equivariant GraphCast", "egc.nc"), ("SFNO", "sfno.nc")], "runs/eval_weather",
        climatology="clim.zarr",
    )
    print(format_weather_summary(rows))

Files written into ``out_dir``::

    report.md                 title, what was compared, the summary table, RMSE tables per region, figures
    rmse_<region>.png         latitude-weighted RMSE against lead (days), one panel per variable and level
    bias.png, acc.png         bias and ACC against lead in the first region (acc.png with a climatology)
    spectra.png               zonal energy spectra at 1 day, 5 days and the last saved lead, with the truth
    stability.png             kinetic energy against lead over the whole rollout, first divergence marked
    maps.png                  the headline field at day 1 and day 5 of the first init: truth, models, errors
    <model>_metrics.nc        evaluate_forecast's scores of each model (write_metrics_netcdf)
    persistence_metrics.nc    the same for the references (climatology_metrics.nc with a climatology)

Scores cover the leads whose valid times all lie in the truth; later leads (a rollout run past the end of
the data, e.g. a simulated year) count only for stability. ``<model>`` is the name in lower case with
runs of other characters than letters and digits replaced by ``-``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from sim.data.ns2d import DataFileError
from sim.data.weather import check_canonical
from sim.evaluate._common import open_netcdf, relative_link
from sim.evaluate.plots import _pyplot, _save
from sim.evaluate.weather_metrics import (
    _resolve_region,
    climatology_forecast,
    evaluate_forecast,
    latitude_band_mean,
    latitude_weights,
    persistence_forecast,
    write_metrics_netcdf,
    zonal_energy_spectrum,
)
from sim.io import OutputError, atomic_output, check_output_path

__all__ = ["format_weather_summary", "write_weather_report"]

_REFERENCES = ("persistence", "climatology")
_SPATIAL = ("latitude", "longitude")
_DAY = np.timedelta64(86400, "s")
_GRID_TOL = 1e-5  # degrees
_REF_STYLE = {"persistence": ("0.35", "--"), "climatology": ("0.55", ":")}
_SPECTRUM_BAND = (30.0, 60.0)


# ---------------------------------------------------------------------------------------------------------
# inputs


@dataclass
class _Entry:
    """One line of the plots and one row of the tables: a model's rollout or a reference forecast."""

    name: str
    kind: str  # "model" | "persistence" | "climatology"
    slug: str
    path: Path | None = None  # the rollout file (models)
    ds: xr.Dataset | None = None  # the rollout, opened lazily (models)
    scores: xr.Dataset | None = None  # evaluate_forecast's output
    inits: np.ndarray = field(default_factory=lambda: np.zeros(0, "datetime64[ns]"))  # [I]
    leads: np.ndarray = field(default_factory=lambda: np.zeros(0, "timedelta64[ns]"))  # [K] all saved
    scored: np.ndarray = field(default_factory=lambda: np.zeros(0, "timedelta64[ns]"))  # leads with truth


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def _days(lead) -> np.ndarray:
    """Lead times as float days."""
    return np.asarray(lead).astype("timedelta64[ns]") / _DAY


def _pairs(named) -> list[tuple[str, Path]]:
    items = list(named.items()) if isinstance(named, Mapping) else list(named)
    if not items:
        raise ValueError("write_weather_report: expected at least one (name, rollout file) pair")
    out = []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"write_weather_report: expected (name, rollout file) pairs, got {item!r}")
        out.append((item[0], Path(item[1])))
    slugs = [_slug(n) for n, _ in out]
    dupes = sorted({s for s in slugs if slugs.count(s) > 1} | (set(slugs) & set(_REFERENCES)))
    if dupes:
        raise ValueError(
            f"write_weather_report: model names give the same file names {dupes} (or a reference's: "
            f"{list(_REFERENCES)}); rename them"
        )
    return out


def _check_headline(headline) -> tuple[str, int | None]:
    """``("geopotential", 500)``, ``"geopotential@500"`` or ``"2m_temperature"`` as ``(var, level)``."""
    if isinstance(headline, str):
        var, _, level = headline.partition("@")
        return var, (int(level) if level else None)
    if isinstance(headline, (tuple, list)) and len(headline) == 2 and isinstance(headline[0], str):
        return headline[0], (None if headline[1] is None else int(headline[1]))
    raise ValueError(
        f"headline: expected (variable, level), 'variable@level' or a surface variable, got {headline!r}"
    )


def _check_days(days) -> list[float]:
    try:
        values = [float(d) for d in days]
    except (TypeError, ValueError):
        raise ValueError(f"headline_days: expected positive numbers of days, got {days!r}") from None
    if not values or not all(math.isfinite(d) and d > 0 for d in values):
        raise ValueError(f"headline_days: expected positive numbers of days, got {days!r}")
    return values


def _forecast_vars(ds: xr.Dataset) -> list[str]:
    need = {"init_time", "lead_time", *_SPATIAL}
    return [str(k) for k, v in ds.data_vars.items() if need <= set(v.dims)]


def _open_rollout(path: Path) -> xr.Dataset:
    """A weather rollout file, opened lazily, after checking its kind and layout.

    Raises:
        DataFileError: a missing or unreadable file, another kind of file, or a bad layout (one line).
    """
    ds = open_netcdf(path)
    kind = ds.attrs.get("kind")
    try:
        if kind != "weather":
            raise DataFileError(
                f"{path}: not a weather rollout (attribute kind={kind!r}, expected 'weather'; "
                "write it with rollout_weather_to_netcdf)"
            )
        for dim in ("init_time", "lead_time", *_SPATIAL):
            if dim not in ds.dims or dim not in ds.coords:
                raise DataFileError(f"{path}: no '{dim}' dimension with a coordinate (dims {tuple(ds.dims)})")
        for var in ("diverged_at", "kinetic_energy"):
            if var not in ds.data_vars:
                raise DataFileError(
                    f"{path}: no variable {var!r} (not written by rollout_weather_to_netcdf?)"
                )
        if not _forecast_vars(ds):
            raise DataFileError(f"{path}: no variable with dims (init_time, lead_time, latitude, longitude)")
    except DataFileError:
        ds.close()
        raise
    return ds


def _describe_layout(ds: xr.Dataset) -> tuple[list[str], list[int], np.ndarray, np.ndarray]:
    levels = [int(v) for v in ds["level"].values] if "level" in ds.coords else []
    return _forecast_vars(ds), levels, np.asarray(ds["latitude"].values), np.asarray(ds["longitude"].values)


def _check_same_layout(entries: Sequence[_Entry]) -> None:
    """Every rollout has the first one's variables, levels and grid; DataFileError naming the file."""
    first = entries[0]
    vars0, levels0, lat0, lon0 = _describe_layout(first.ds)
    for e in entries[1:]:
        var, levels, lat, lon = _describe_layout(e.ds)
        if sorted(var) != sorted(vars0):
            raise DataFileError(
                f"{e.path}: variables {sorted(var)} differ from {first.path}'s {sorted(vars0)}"
            )
        if levels != levels0:
            raise DataFileError(f"{e.path}: levels {levels} differ from {first.path}'s {levels0}")
        for dim, a, b in (("latitude", lat0, lat), ("longitude", lon0, lon)):
            if a.shape != b.shape or not np.allclose(np.sort(a), np.sort(b), rtol=0, atol=_GRID_TOL):
                raise DataFileError(
                    f"{e.path}: {dim} ({b.size} values) differs from {first.path}'s ({a.size} values): "
                    "another grid"
                )


def _open_store(source, what: str) -> tuple[xr.Dataset, str, bool]:
    """``(dataset, name for messages, opened here)`` of a path (a folder is zarr, a file netCDF) or a
    Dataset."""
    if isinstance(source, xr.Dataset):
        return source, f"<{what} Dataset>", False
    path = Path(source)
    if not path.exists():
        raise DataFileError(f"{path}: no such {what} store or file")
    try:
        if path.is_dir():
            return xr.open_zarr(path, chunks=None, consolidated=None), str(path), True
        return xr.open_dataset(path, engine="netcdf4", cache=False), str(path), True
    except (OSError, ValueError, KeyError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataFileError(f"{path}: cannot be read as the {what} ({reason})") from None


def _check_truth(truth: xr.Dataset, where: str, ref: _Entry, variables: Sequence[str], levels) -> None:
    layout = check_canonical(truth, where=where)
    _, _, lat, lon = _describe_layout(ref.ds)
    for dim, a, b in (("latitude", lat, layout.grid.lat), ("longitude", lon, layout.grid.lon)):
        if a.shape != b.shape or not np.allclose(np.sort(a), b, rtol=0, atol=_GRID_TOL):
            raise DataFileError(
                f"{where}: {dim} ({b.size} values) differs from {ref.path}'s ({a.size} values)"
            )
    for var in variables:
        if var not in truth.data_vars or "time" not in truth[var].dims:
            raise DataFileError(f"{where}: no variable {var!r} with a time dim (the rollouts have it)")
        if "level" in ref.ds[var].dims:
            have = (
                set(np.asarray(truth[var]["level"].values).tolist()) if "level" in truth[var].dims else set()
            )
            missing = sorted(set(levels) - have)
            if missing:
                raise DataFileError(f"{where}: {var} has no level(s) {missing} (the rollouts have them)")


# ---------------------------------------------------------------------------------------------------------
# scores and rows


def _select_levels(ds: xr.Dataset, levels: Sequence[int]) -> xr.Dataset:
    return ds.sel(level=list(levels)) if levels and "level" in ds.dims else ds


def _score_leads(ds: xr.Dataset, times: np.ndarray) -> np.ndarray:
    """Positions along ``lead_time`` whose valid times ``init_time + lead_time`` all lie in ``times``."""
    valid = ds["init_time"].values[:, None] + ds["lead_time"].values[None, :]  # [I, K]
    return np.flatnonzero(np.isin(valid, times).all(axis=0))


def _panels(ds: xr.Dataset, variables: Sequence[str], levels: Sequence[int]) -> list[tuple[str, int | None]]:
    """``(variable, level | None)`` of every score: each level of the level variables."""
    return [
        (var, lev)
        for var in variables
        for lev in (levels if "level" in ds[var].dims else [None])
    ]  # fmt: skip


def _key(var: str, level: int | None) -> str:
    return var if level is None else f"{var}@{level}"


def _score_at(entry: _Entry, metric: str, region: str, var: str, level, day: float) -> float:
    s = entry.scores
    if s is None or var not in s or metric not in s["metric"].values:
        return math.nan
    hit = np.flatnonzero(np.isclose(_days(s["lead_time"].values), day, rtol=0, atol=1e-9))
    if not hit.size:
        return math.nan
    da = s[var].sel(metric=metric, region=region).isel(lead_time=int(hit[0]))
    if level is not None:
        da = da.sel(level=level)
    return float(da)


def _stability(ds: xr.Dataset) -> tuple[np.ndarray, int, int, float]:
    """``(mean kinetic energy over the inits [K] (NaN where none finite), first divergence step (-1:
    never), diverged inits, KE ratio last / first saved lead)``."""
    ke = np.asarray(ds["kinetic_energy"].values, np.float64)  # [I, K]
    ok = np.isfinite(ke)
    n = ok.sum(axis=0)
    mean = np.where(n > 0, np.where(ok, ke, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)  # [K]
    div = np.asarray(ds["diverged_at"].values, np.int64)  # [I]
    first = int(div[div >= 0].min()) if (div >= 0).any() else -1
    both = ok[:, 0] & ok[:, -1]
    ratio = float(ke[both, -1].mean() / ke[both, 0].mean()) if both.any() else math.nan
    return mean, first, int((div >= 0).sum()), ratio


def _rows(
    entries: Sequence[_Entry],
    panels: Sequence[tuple[str, int | None]],
    region: str,
    headline: tuple[str, int | None],
    days: Sequence[float],
) -> list[dict]:
    rows = []
    for e in entries:
        row = {
            "model": e.name,
            "kind": e.kind,
            "headline": _key(*headline),
            "region": region,
            "inits": int(e.inits.size),
        }
        for var, lev in panels:
            for d in days:
                row[f"rmse_{_key(var, lev)}_{d:g}d"] = _score_at(e, "rmse", region, var, lev, d)
        if e.kind == "model":
            _, first, n_div, ratio = _stability(e.ds)
            row |= {
                "diverged_at": first,
                "diverged_inits": n_div,
                "last_lead_days": float(_days(e.leads[-1])),
                "scored_lead_days": float(_days(e.scored[-1])) if e.scored.size else math.nan,
                "ke_ratio": ratio,
            }
        else:
            last = float(_days(e.scored[-1])) if e.scored.size else math.nan
            row |= {
                "diverged_at": None,
                "diverged_inits": None,
                "last_lead_days": last,
                "scored_lead_days": last,
                "ke_ratio": math.nan,
            }
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------
# tables


def _num(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _table(head: Sequence[str], body: Sequence[Sequence[str]], *, left: int = 1) -> str:
    """A markdown table padded to aligned columns (readable as plain text too); the first ``left``
    columns left-aligned, the others right-aligned."""
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(head)]

    def line(cells):
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i < left else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = (
        "|" + "|".join("-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    )
    return "\n".join([line(head), rule, *(line(r) for r in body)])


def _diverged_cell(row: dict) -> str:
    first = row.get("diverged_at")
    if first is None:
        return "–"
    if first < 0:
        return "none"
    return f"{first} ({row.get('diverged_inits', '?')}/{row['inits']} inits)"


def format_weather_summary(rows: Sequence[dict]) -> str:
    """The summary rows of :func:`write_weather_report` as an aligned text table (also valid markdown).

    Columns: the model; the headline RMSE (``rmse_<headline>_<d>d``, in the first region) at each
    headline day found in the rows ("–": the lead is not saved, beyond the data, or every init diverged
    before it); the number of init times; the first divergence step over the inits with the number of
    diverged inits ("none"; "–" for a reference); the last saved lead and the last scored lead in days;
    the ratio of the mean kinetic energy at the last saved lead to that at the first.
    """
    rows = list(rows)
    if not rows:
        return "(no rows)"
    headline = rows[0]["headline"]
    prefix = f"rmse_{headline}_"
    days = [k[len(prefix) : -1] for k in rows[0] if k.startswith(prefix) and k.endswith("d")]
    head = [
        "model",
        *(f"RMSE {headline} {d}d" for d in days),
        "inits",
        "diverged at step",
        "last lead (d)",
        "scored to (d)",
        "KE last/first",
    ]
    body = [
        [
            r["model"],
            *(_num(r.get(f"{prefix}{d}d")) for d in days),
            str(r["inits"]),
            _diverged_cell(r),
            _num(r["last_lead_days"]),
            _num(r["scored_lead_days"]),
            _num(r["ke_ratio"]),
        ]
        for r in rows
    ]
    return _table(head, body)


def _region_table(entries: Sequence[_Entry], panels, region: str, days: Sequence[float]) -> str:
    head = ["variable", "model", *(f"{d:g}d" for d in days)]
    body = [
        [_key(var, lev), e.name, *(_num(_score_at(e, "rmse", region, var, lev, d)) for d in days)]
        for var, lev in panels
        for e in entries
    ]
    return _table(head, body, left=2)


# ---------------------------------------------------------------------------------------------------------
# figures


def _label(var: str, level) -> str:
    return var if level is None else f"{var} {level} hPa"


def _styles(entries: Sequence[_Entry]) -> dict[str, tuple[str, str]]:
    """Colour and line style per entry: a colour per model, grey dashes for the references."""
    plt = _pyplot()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    out, i = {}, 0
    for e in entries:
        if e.kind == "model":
            out[e.name] = (colors[i % len(colors)], "-")
            i += 1
        else:
            out[e.name] = _REF_STYLE[e.kind]
    return out


def _grid_axes(n: int, *, width: float = 4.2, height: float = 3.0):
    plt = _pyplot()
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _plot_scores(entries, panels, metric: str, region: str, path: Path, overwrite: bool) -> Path:
    """``metric`` of every entry against lead (days), one panel per ``(variable, level)``."""
    style = _styles(entries)
    fig, axes = _grid_axes(len(panels))
    for ax, (var, lev) in zip(axes, panels, strict=True):
        for e in entries:
            s = e.scores
            if s is None or var not in s or metric not in s["metric"].values or not s.sizes["lead_time"]:
                continue
            da = s[var].sel(metric=metric, region=region)
            if lev is not None:
                da = da.sel(level=lev)
            y = np.asarray(da.values, np.float64)
            if not np.isfinite(y).any():
                continue
            color, ls = style[e.name]
            x = _days(s["lead_time"].values)
            ax.plot(x, y, color=color, ls=ls, lw=1.5, marker="." if x.size <= 40 else None, label=e.name)
        if metric == "bias":
            ax.axhline(0.0, color="k", lw=0.6)
        ax.set_title(_label(var, lev), fontsize=9)
        ax.set_xlabel("lead time (days)")
        ax.set_ylabel({"rmse": "RMSE", "bias": "bias (forecast - truth)", "acc": "ACC"}[metric])
        ax.grid(True, lw=0.3, alpha=0.5)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    what = {"rmse": "latitude-weighted RMSE", "bias": "latitude-weighted bias", "acc": "anomaly correlation"}
    fig.suptitle(f"{what[metric]} against lead time, region {region}", fontsize=10)
    return _save(fig, path, overwrite)


def _pick_leads(models: Sequence[_Entry], days: Sequence[float]) -> list[np.timedelta64]:
    """The leads at ``days`` that some model saved and, for spectra, the longest saved lead; the first
    model's first lead if none."""
    saved = sorted({int(v) for e in models for v in e.leads.astype("timedelta64[ns]").astype(np.int64)})
    wanted = [int(round(d * 86400 * 1e9)) for d in days]
    picks = [w for w in wanted if w in saved]
    if not picks:
        picks = [int(models[0].leads.astype("timedelta64[ns]").astype(np.int64)[0])]
    return [np.timedelta64(p, "ns") for p in dict.fromkeys(picks)]


def _spectrum_source(variables, levels, headline) -> tuple[list[str], int | None, str]:
    """The variables whose spectra are summed (the winds, halved: kinetic energy; else the headline
    variable), their level and a label."""
    var, lev = headline
    if "u_component_of_wind" in variables and "v_component_of_wind" in variables:
        wl = lev if lev in levels else (levels[0] if levels else None)
        return ["u_component_of_wind", "v_component_of_wind"], wl, _label("kinetic energy", wl)
    if "10m_u_component_of_wind" in variables and "10m_v_component_of_wind" in variables:
        return ["10m_u_component_of_wind", "10m_v_component_of_wind"], None, "10 m kinetic energy"
    return [var], lev, _label(var, lev)


def _band(lat: np.ndarray) -> tuple[float, float]:
    lo, hi = _SPECTRUM_BAND
    return (lo, hi) if ((lat >= lo) & (lat <= hi)).any() else (-90.0, 90.0)


def _spectrum(fields: Sequence[xr.DataArray], band) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean over the first dim (finite ones) of the band-mean zonal spectrum summed over ``fields``
    (halved for a pair of winds): ``(wavenumbers m >= 1, energy)``; None when nothing is finite."""
    total = None
    for i, da in enumerate(fields):
        spec = latitude_band_mean(zonal_energy_spectrum(xr.Dataset({f"f{i}": da})), lat_band=band)[f"f{i}"]
        total = spec if total is None else total + spec
    total = total * (0.5 if len(fields) == 2 else 1.0)
    values = np.asarray(total.values, np.float64).reshape(-1, total.sizes["zonal_wavenumber"])  # [N, M]
    ok = np.isfinite(values).all(axis=1)
    if not ok.any():
        return None
    m = np.asarray(total["zonal_wavenumber"].values)
    return m[1:], values[ok].mean(axis=0)[1:]


def _field(da: xr.DataArray, level) -> xr.DataArray:
    return da.sel(level=level) if level is not None and "level" in da.dims else da


def _plot_spectra(models, truth, times, leads, source, path: Path, overwrite: bool) -> Path:
    names, lev, label = source
    style = _styles(models)
    lat = np.asarray(models[0].ds["latitude"].values)
    band = _band(lat)
    fig, axes = _grid_axes(len(leads))
    for ax, lead in zip(axes, leads, strict=True):
        truth_inits = None
        for e in models:
            hit = np.flatnonzero(e.leads == lead)
            if not hit.size:
                continue
            fields = [_field(e.ds[n].isel(lead_time=int(hit[0])), lev).load() for n in names]
            got = _spectrum(fields, band)
            if got is not None:
                color, ls = style[e.name]
                ax.loglog(*got, color=color, ls=ls, lw=1.4, label=e.name)
            if truth_inits is None:
                truth_inits = e.inits
        if truth_inits is not None:
            valid = truth_inits + lead
            if np.isin(valid, times).all():
                fields = [_field(truth[n], lev).sel(time=valid).load() for n in names]
                got = _spectrum(fields, band)
                if got is not None:
                    ax.loglog(*got, color="k", lw=1.8, label="truth")
        ax.set_title(f"lead {_days(lead):g} d", fontsize=9)
        ax.set_xlabel("zonal wavenumber")
        ax.set_ylabel("energy density (J/kg m)" if len(names) == 2 else "energy density (units² m)")
        ax.grid(True, which="both", lw=0.3, alpha=0.4)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(
        f"zonal energy spectrum of {label}, mean over latitudes {band[0]:g}..{band[1]:g} and the inits",
        fontsize=10,
    )
    return _save(fig, path, overwrite)


def _wind_pairs(ds: xr.Dataset, variables: Sequence[str]) -> list[tuple[str, str]]:
    return [
        (v, v.replace("u_component_of_wind", "v_component_of_wind"))
        for v in variables
        if "u_component_of_wind" in v and v.replace("u_component_of_wind", "v_component_of_wind") in variables
    ]


def _truth_ke(truth: xr.Dataset, pairs, levels, valid: np.ndarray) -> float:
    """The rollout's kinetic energy (mean of ``(u^2 + v^2) / 2`` over the wind pairs and levels,
    area-weighted) of the truth, averaged over the valid times ``[N]``."""
    w = latitude_weights(np.asarray(truth["latitude"].values))[:, None]  # [nlat, 1]
    total, count = 0.0, 0
    for u, v in pairs:
        for lev in levels if "level" in truth[u].dims else [None]:
            uu = np.asarray(_field(truth[u], lev).sel(time=valid).values, np.float64)  # [N, nlat, nlon]
            vv = np.asarray(_field(truth[v], lev).sel(time=valid).values, np.float64)
            total = total + (0.5 * (uu**2 + vv**2) * w).mean(axis=(-2, -1))  # [N]
            count += 1
    return float(np.mean(total / count))


def _plot_stability(models, truth, times, variables, levels, path: Path, overwrite: bool) -> Path:
    style = _styles(models)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.2), layout="constrained")
    drawn = False
    for e in models:
        mean, first, n_div, _ = _stability(e.ds)
        color, _ = style[e.name]
        x = _days(e.leads)
        y = np.where(mean > 0, mean, np.nan)
        if np.isfinite(y).any():
            ax.plot(x, y, color=color, lw=1.4, label=e.name)
            drawn = True
        if first >= 0:
            step_days = float(e.ds.attrs.get("step_seconds", math.nan)) / 86400
            ax.axvline(
                first * step_days, color=color, ls=":", lw=1.2,
                label=f"{e.name}: first divergence (step {first}, {n_div}/{e.inits.size} inits)",
            )  # fmt: skip
    pairs = _wind_pairs(models[0].ds, variables)
    ref = models[0]
    if pairs:
        k = _score_leads(ref.ds, times)
        if k.size:
            ke = [_truth_ke(truth, pairs, levels, ref.inits + ref.leads[j]) for j in k]
            ax.plot(_days(ref.leads[k]), ke, color="k", lw=1.8, ls="--", label=f"truth (inits of {ref.name})")
            drawn = True
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no kinetic energy (no winds)", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("lead time (days)")
    ax.set_ylabel("kinetic energy (J/kg), mean over inits")
    ax.grid(True, which="both", lw=0.3, alpha=0.4)
    ax.set_title("stability: area-weighted mean kinetic energy over the whole rollout", fontsize=10)
    return _save(fig, path, overwrite)


def _plot_maps(models, truth, times, headline, leads, path: Path, overwrite: bool) -> Path:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    var, lev = headline
    init = models[0].inits[0]
    lat = np.asarray(models[0].ds["latitude"].values)
    lon = np.asarray(models[0].ds["longitude"].values)
    n = len(models)
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(leads), 1 + 2 * n, figsize=(2.9 * (1 + 2 * n) + 1.0, 1.9 * len(leads) + 0.6), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for row, lead in enumerate(leads):
        valid = init + lead
        t = None
        if valid in times:
            t = np.asarray(_field(truth[var], lev).sel(time=valid).values, np.float64)
        preds, notes = [], []
        for e in models:
            i = np.flatnonzero(e.inits == init)
            k = np.flatnonzero(e.leads == lead)
            if not (i.size and k.size):
                preds.append(None)
                notes.append("not saved")
                continue
            da = _field(e.ds[var].isel(init_time=int(i[0]), lead_time=int(k[0])), lev)
            p = np.asarray(da.values, np.float64)
            preds.append(p if np.isfinite(p).all() else None)
            notes.append("" if np.isfinite(p).all() else "diverged")
        fields = [a for a in [t, *preds] if a is not None]
        lo = min((float(a.min()) for a in fields), default=0.0)
        hi = max((float(a.max()) for a in fields), default=1.0)
        errs = [p - t if (p is not None and t is not None) else None for p in preds]
        emax = max((float(np.abs(e).max()) for e in errs if e is not None), default=0.0) or 1.0
        panels = [(t, "truth", "viridis", lo, hi, "" if t is not None else "no truth")]
        panels += [
            (p, m.name, "viridis", lo, hi, note) for p, m, note in zip(preds, models, notes, strict=True)
        ]
        panels += [
            (e, f"{m.name} - truth", "RdBu_r", -emax, emax, "" if e is not None else (note or "no truth"))
            for e, m, note in zip(errs, models, notes, strict=True)
        ]
        for col, (a, name, cmap, vmin, vmax, note) in enumerate(panels):
            ax = axes[row, col]
            if a is not None:
                ax.pcolormesh(lon, lat, a, cmap=cmap, vmin=vmin, vmax=vmax, shading="nearest")
            else:
                ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", fontsize=9)
            ax.set_xlim(lon.min(), lon.max())
            ax.set_ylim(-90, 90)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, {_days(lead):g} d", fontsize=8)
        fig.colorbar(ScalarMappable(Normalize(lo, hi), "viridis"), ax=axes[row, : 1 + n].tolist(), shrink=0.8)
        fig.colorbar(
            ScalarMappable(Normalize(-emax, emax), "RdBu_r"), ax=axes[row, 1 + n :].tolist(), shrink=0.8
        )
    stamp = np.datetime_as_string(init, unit="h")
    fig.suptitle(f"{_label(var, lev)} from init {stamp}: truth, forecasts, forecast - truth", fontsize=10)
    return _save(fig, path, overwrite)


# ---------------------------------------------------------------------------------------------------------
# the report


def write_weather_report(
    named: Sequence[tuple[str, str | os.PathLike]] | Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    truth: str | os.PathLike | xr.Dataset | None = None,
    climatology: str | os.PathLike | xr.Dataset | None = None,
    title: str | None = None,
    regions: Sequence = ("global", "tropics", "extratropics"),
    headline: tuple[str, int | None] | str = ("geopotential", 500),
    headline_days: Sequence[float] = (1, 3, 5),
    overwrite: bool = False,
) -> list[dict]:
    """Score weather rollouts against the truth and write ``report.md`` with its figures and metric files.

    Each rollout is scored with :func:`~sim.evaluate.weather_metrics.evaluate_forecast` on the leads
    whose valid times all lie in the truth; the persistence forecast (the truth at each init time) and,
    with a climatology, the climatology forecast are scored alike over all the models' init times and
    scored leads. The kinetic energy and divergence of every saved lead (past the data too) give the
    stability figure and columns. The files are listed in the module docstring; every output path is
    checked and every score computed before anything is written.

    Args:
        named: ``(model name, rollout file)`` pairs (or a mapping) from ``rollout_weather_to_netcdf``,
            on one grid with the same variables and levels.
        out_dir: the folder (created if missing; its parent must exist).
        truth: the canonical store (a folder: zarr; a file: netCDF) or a Dataset; the first rollout's
            ``data_file`` attribute when None.
        climatology: WeatherBench2's climatology (path or Dataset, see ``evaluate_forecast``): adds the
            ACC and the climatology forecast.
        title: the report's title (default "Weather rollout evaluation").
        regions: regions of ``evaluate_forecast`` (names or ``(south, north)`` bands); the first one
            is the summary's and the bias / ACC figures'.
        headline: the summary's variable ``(name, level)`` (``level`` None for a surface variable), or
            ``"name@level"``.
        headline_days: the lead times in days of the summary and region tables.
        overwrite: replace existing files.

    Returns:
        One row per model, then ``persistence`` (and ``climatology``): dicts with keys ``model`` (the
        name), ``kind`` (``"model"``, ``"persistence"``, ``"climatology"``), ``headline``
        (``"geopotential@500"``), ``region`` (the first region), ``inits`` (number of init times),
        ``rmse_<var>@<level>_<d>d`` (``rmse_<var>_<d>d`` for surface variables) for every variable,
        level and headline day in the first region (NaN: lead not saved, beyond the data, or all inits
        diverged before it), ``diverged_at`` (first divergence step over the inits, -1: none; None for a
        reference), ``diverged_inits`` (how many inits diverged; None for a reference),
        ``last_lead_days`` (the last saved lead; a reference's last scored lead), ``scored_lead_days``
        (the last lead with scores; NaN if none) and ``ke_ratio`` (mean kinetic energy at the last saved
        lead over that at the first, over the inits finite at both; NaN for a reference, without winds,
        or if all diverged). Print them with :func:`format_weather_summary`.

    Raises:
        ValueError: no rollouts, a malformed pair, clashing names, a bad headline or region.
        DataFileError: a rollout that is missing or not a weather rollout, rollouts with different
            grids, variables or levels, a truth or climatology that cannot be read or does not match
            (one line naming the file).
        OutputError: the parent of ``out_dir`` is missing or a file exists without ``overwrite``.
    """
    pairs = _pairs(named)
    var_h, lev_h = _check_headline(headline)
    days = _check_days(headline_days)
    region_names = [_resolve_region(r)[0] for r in regions]
    if not region_names:
        raise ValueError("regions: expected at least one region")
    region_slugs = [_slug(r) for r in region_names]
    if len(set(region_slugs)) != len(region_slugs):
        raise ValueError(f"regions: names {region_names} give the same file names")
    with contextlib.ExitStack() as stack:
        models = []
        for name, path in pairs:
            ds = _open_rollout(path)
            stack.callback(ds.close)
            models.append(
                _Entry(
                    name, "model", _slug(name), path=path, ds=ds,
                    inits=np.asarray(ds["init_time"].values).astype("datetime64[ns]"),
                    leads=np.asarray(ds["lead_time"].values).astype("timedelta64[ns]"),
                )
            )  # fmt: skip
        _check_same_layout(models)
        variables, levels, _, _ = _describe_layout(models[0].ds)
        if var_h not in variables:
            raise ValueError(f"headline: the rollouts have no variable {var_h!r} (they have {variables})")
        if "level" in models[0].ds[var_h].dims:
            if lev_h not in levels:
                raise ValueError(f"headline: {var_h} has levels {levels}, not {lev_h!r}")
        elif lev_h is not None:
            raise ValueError(f"headline: {var_h} is a surface variable; give it without a level")
        headline = (var_h, lev_h)

        if truth is None:
            truth = models[0].ds.attrs.get("data_file")
            if not truth:
                raise DataFileError(f"{models[0].path}: no data_file attribute; pass the truth store")
        truth_ds, truth_name, opened = _open_store(truth, "truth")
        if opened:
            stack.callback(truth_ds.close)
        _check_truth(truth_ds, truth_name, models[0], variables, levels)
        truth_ds = truth_ds[variables]
        times = np.asarray(truth_ds["time"].values).astype("datetime64[ns]")
        clim_ds, clim_name = None, None
        if climatology is not None:
            clim_ds, clim_name, opened = _open_store(climatology, "climatology")
            if opened:
                stack.callback(clim_ds.close)

        out_dir = Path(out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"{out_dir}: is a file; expected a folder")
        if not out_dir.parent.is_dir():
            raise OutputError(f"{out_dir}: parent folder {out_dir.parent} does not exist (create it first)")
        figures = {
            f"rmse_{r}": out_dir / f"rmse_{s}.png" for r, s in zip(region_names, region_slugs, strict=True)
        }
        figures |= {"bias": out_dir / "bias.png"}
        if clim_ds is not None:
            figures |= {"acc": out_dir / "acc.png"}
        figures |= {k: out_dir / f"{k}.png" for k in ("spectra", "stability", "maps")}
        refs = ["persistence", *(["climatology"] if clim_ds is not None else [])]
        metric_files = {s: out_dir / f"{s}_metrics.nc" for s in [*(m.slug for m in models), *refs]}
        report = out_dir / "report.md"
        if out_dir.is_dir():
            for p in [report, *figures.values(), *metric_files.values()]:
                check_output_path(p, overwrite=overwrite)

        # scores: every model on its leads within the data, then the references
        for e in models:
            k = _score_leads(e.ds, times)
            e.scored = e.leads[k]
            e.scores = evaluate_forecast(
                e.ds[variables].isel(lead_time=k), truth_ds, climatology=clim_ds, regions=list(regions),
                variables=variables,
            )  # fmt: skip
        inits = np.unique(np.concatenate([e.inits for e in models]))
        inits = inits[np.isin(inits, times)]
        leads = np.unique(np.concatenate([e.scored for e in models]))
        leads = leads[[np.isin(inits + lead, times).all() for lead in leads]] if inits.size else leads[:0]
        entries = list(models)
        for ref in refs:
            entry = _Entry(ref, ref, ref, inits=inits, leads=leads, scored=leads)
            if inits.size and leads.size:
                if ref == "persistence":
                    fc = persistence_forecast(truth_ds, inits, leads, variables=variables)
                else:
                    fc = climatology_forecast(
                        clim_ds, inits, leads, like=_select_levels(truth_ds, levels), variables=variables
                    )
                entry.scores = evaluate_forecast(
                    _select_levels(fc, levels), truth_ds, climatology=clim_ds, regions=list(regions),
                    variables=variables,
                )  # fmt: skip
            entries.append(entry)
        panels = _panels(models[0].ds, variables, levels)
        rows = _rows(entries, panels, region_names[0], headline, days)

        # files
        out_dir.mkdir(exist_ok=True)
        for p in [report, *figures.values(), *metric_files.values()]:
            check_output_path(p, overwrite=overwrite)
        for e in entries:
            scores = e.scores
            if scores is None:
                scores = xr.Dataset(attrs={"n_init_times": int(e.inits.size), "note": "no lead with truth"})
            attrs = {"model": e.name, "kind": e.kind, "truth_file": truth_name}
            if e.path is not None:
                attrs |= {"rollout_file": str(e.path), "last_lead_hours": float(_days(e.leads[-1]) * 24)}
            write_metrics_netcdf(scores.assign_attrs(attrs), metric_files[e.slug], overwrite=overwrite)
        for r in region_names:
            _plot_scores(entries, panels, "rmse", r, figures[f"rmse_{r}"], overwrite)
        _plot_scores(entries, panels, "bias", region_names[0], figures["bias"], overwrite)
        if "acc" in figures:
            _plot_scores(entries, panels, "acc", region_names[0], figures["acc"], overwrite)
        picks = _pick_leads(models, [1.0, 5.0])
        last = max((e.leads[-1] for e in models), key=lambda v: int(v.astype(np.int64)))
        spectra_leads = list(dict.fromkeys([*picks, last]))
        source = _spectrum_source(variables, levels, headline)
        _plot_spectra(models, truth_ds, times, spectra_leads, source, figures["spectra"], overwrite)
        _plot_stability(models, truth_ds, times, variables, levels, figures["stability"], overwrite)
        _plot_maps(models, truth_ds, times, headline, picks, figures["maps"], overwrite)

        lines = _report_lines(
            title or "Weather rollout evaluation", entries, models, rows, panels, region_names, days,
            figures, metric_files, truth_name, clim_name, source, out_dir,
        )  # fmt: skip
        with atomic_output(report, overwrite=overwrite) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    return rows


def _iso(t) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "s"), unit="s"))


def _report_lines(
    title, entries, models, rows, panels, region_names, days, figures, metric_files, truth_name, clim_name,
    source, out_dir,
) -> list[str]:  # fmt: skip
    first = models[0].ds.attrs
    step_h = float(first.get("step_seconds", math.nan)) / 3600
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    lines = [
        f"# {title}",
        "",
        f"Written {now} by `sim.evaluate.weather_report`. Truth: `{truth_name}`"
        + (f"; climatology: `{clim_name}`." if clim_name else "; no climatology (no ACC)."),
        "",
        "Compared:",
        "",
    ]
    for e in models:
        a = e.ds.attrs
        lines.append(
            f"- **{e.name}**: [{e.path.name}]({relative_link(e.path, out_dir)}), {e.inits.size} init times "
            f"{_iso(e.inits[0])} .. {_iso(e.inits[-1])}, {a.get('steps', '?')} steps of "
            f"{float(a.get('step_seconds', math.nan)) / 3600:g} h (history {a.get('history', '?')}), "
            f"{e.leads.size} saved leads to {_days(e.leads[-1]):g} d, scored to "
            + (f"{_days(e.scored[-1]):g} d." if e.scored.size else "no lead (none within the truth).")
        )
    lines += [
        "- **persistence**: the truth at each init time, for every lead (all the models' init times).",
    ]
    if clim_name:
        lines.append("- **climatology**: the climatology at each valid time's day of year (and hour).")
    lines += [
        "",
        "Scores are WeatherBench2's: latitude-weighted spatial means per init time, then the mean over the "
        "init times; RMSE is the root of the mean square error. Leads whose valid times lie beyond the "
        "truth are not scored but count for stability: the kinetic energy (area-weighted mean of "
        "`(u^2 + v^2) / 2` over the wind levels) of every saved lead and the first step at which a "
        "rollout diverged (NaN/Inf or a normalized value beyond the rollout's blow-up factor, "
        f"{first.get('blowup_factor', '?')}). Model step {step_h:g} h.",
        "",
        "## Summary",
        "",
        f"RMSE of {rows[0]['headline']} in region "
        f"{region_names[0]} (– : the lead is not saved, beyond the data, or every init diverged before "
        "it); diverged at step: the first over the inits (how many inits diverged); KE last/first: the "
        "mean kinetic energy at the last saved lead over that at the first.",
        "",
        format_weather_summary(rows),
        "",
        "## RMSE by region",
        "",
    ]
    for r in region_names:
        lines += [f"### {r}", "", _region_table(entries, panels, r, days), ""]
    lines += ["## Figures", ""]
    captions = {f"rmse_{r}": f"Latitude-weighted RMSE against lead time, region {r}" for r in region_names}
    captions |= {
        "bias": f"Bias (forecast - truth) against lead time, region {region_names[0]}",
        "acc": f"Anomaly correlation against lead time, region {region_names[0]}",
        "spectra": f"Zonal energy spectra of {source[2]} at a few leads, with the truth at the same valid "
        "times where the data reach",
        "stability": "Kinetic energy against lead time over the whole rollout (mean over the inits); dotted: "
        "each model's first divergence",
        "maps": "The headline field at day 1 and day 5 of the first init: truth, each model, and its error",
    }
    for key, path in figures.items():
        lines += [f"**{captions[key]}.**", "", f"![{key}]({path.name})", ""]
    lines += ["## Files", "", "| forecast | metrics |", "|---|---|"]
    for e in entries:
        nc = metric_files[e.slug]
        lines.append(f"| {e.name} | [{nc.name}]({nc.name}) |")
    return lines
