"""Weather training data in the canonical form: normalization statistics, autoregressive windows, ``prepare``.

The canonical form (what ``sim.data.era5.open_era5`` returns and what ``prepare_weather`` writes) is an
``xarray.Dataset`` with

* pressure-level variables ``(time, level, latitude, longitude)``, surface variables
  ``(time, latitude, longitude)`` and static fields ``(latitude, longitude)``;
* latitude ascending (-90 ... 90), longitude ascending in [0, 360), level int hPa ascending, time
  ``datetime64[ns]`` sorted and unique on a common step; values float32, WeatherBench2 long names.
  Gaps that are whole multiples of the step are allowed and split the time axis into *segments*
  (several trajectories in one store, or a missing month): windows and time differences never straddle
  a gap.

Statistics file layout (``save_statistics`` / ``load_statistics``, netCDF-4)::

    coordinates:  stat = ["mean", "std", "diff_std"]      level (int hPa, those of the data)
    <level var>   (stat, level)  float64                  e.g. temperature
    <surface var> (stat,)        float64                  e.g. 2m_temperature
    <static var>  (stat,)        float64                  e.g. land_sea_mask (diff_std is NaN)
    attributes:   time_start, time_end (the first/last time step used, ISO), n_times, time_step_s,
                  diff_interval_s, source, grid, weights, sim_version, created, layout

``stats[var].sel(stat="mean")`` is GraphCast's ``mean_by_level[var]``, ``sel(stat="diff_std")`` its
``diffs_stddev_by_level[var]``. All three are area-weighted (``sim.discretize.latlon.area_weights``) over
time and space, NaNs (e.g. sea-surface temperature over land) left out; ``std`` and ``diff_std`` are
population standard deviations (ddof 0), ``diff_std`` that of ``x(t + diff_interval) - x(t)`` over pairs
of time steps that both lie in the training period.

Channel order of :class:`WeatherWindows`: the variables in the order given; a level variable contributes
one channel per level in ascending level order, named ``"var@level"`` (``"temperature@500"``); a surface
variable one channel named ``"var"``. Forcing order: :data:`TIME_FORCINGS` then the static fields
(alphabetical), see :class:`WeatherWindows`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from sim import __version__
from sim.config import ConfigError, cfield, nonempty, positive, write_config
from sim.data.ns2d import DataFileError
from sim.discretize.latlon import GridError, LatLonGrid, area_weights, grid_from_coords
from sim.io import OutputError, atomic_output

__all__ = [
    "EARTH_ROTATION_RATE",
    "OBLIQUITY",
    "STATS",
    "TIME_FORCINGS",
    "PeriodConfig",
    "WeatherLayout",
    "WeatherPrepareConfig",
    "WeatherWindows",
    "check_canonical",
    "compute_statistics",
    "load_statistics",
    "prepare_weather",
    "save_statistics",
    "solar_direction",
    "summarize_weather",
    "time_forcings",
]

STATS = ("mean", "std", "diff_std")
"""The ``stat`` coordinate of a statistics Dataset."""

EARTH_ROTATION_RATE = 7.2921159e-5
"""Earth's rotation rate in rad/s; the rotation-vector forcings are in units of it (Earth: (0, 0, 1))."""

TIME_FORCINGS = (
    "utc_hour_sin",
    "utc_hour_cos",
    "local_hour_sin",
    "local_hour_cos",
    "year_progress_sin",
    "year_progress_cos",
    "rotation_x",
    "rotation_y",
    "rotation_z",
)
"""The forcing channels computed from the time and the planet (before the static fields)."""

_LEVEL_DIMS = ("time", "level", "latitude", "longitude")
_SURFACE_DIMS = ("time", "latitude", "longitude")
_STATIC_DIMS = ("latitude", "longitude")
_LAYOUT = (
    "variables as in the data; dim stat = (mean, std, diff_std); level variables (stat, level), "
    "others (stat,); area-weighted over time and space, NaNs left out, ddof 0"
)


# --------------------------------------------------------------------------------------------------
# The canonical form
# --------------------------------------------------------------------------------------------------


def _iso(t) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "s"), unit="s"))


def _fmt_step(step: np.timedelta64) -> str:
    seconds = int(step / np.timedelta64(1, "s"))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _check_times(times: np.ndarray, where: str) -> tuple[np.timedelta64, np.ndarray]:
    """Check that times are datetimes, sorted, unique and on a common step (gaps of whole steps allowed).

    Returns:
        The step (the smallest spacing) and ``segment [T]`` int64: the index of the gap-free run each time
        step belongs to.
    """
    if not np.issubdtype(times.dtype, np.datetime64):
        raise DataFileError(f"{where}: time has dtype {times.dtype}, expected datetime64")
    if times.size < 2:
        raise DataFileError(f"{where}: {times.size} time step(s); expected at least 2 (the step is unknown)")
    if np.isnat(times).any():
        i = int(np.argmax(np.isnat(times)))
        raise DataFileError(f"{where}: time[{i}] is NaT (a missing time value)")
    d = np.diff(times)
    zero = np.timedelta64(0, "ns")
    if (d == zero).any():
        i = int(np.argmax(d == zero)) + 1
        raise DataFileError(f"{where}: duplicated time {_iso(times[i])} (at indices {i - 1} and {i})")
    if (d < zero).any():
        i = int(np.argmax(d < zero)) + 1
        raise DataFileError(
            f"{where}: times are not sorted: {_iso(times[i])} (index {i}) comes after {_iso(times[i - 1])}"
        )
    step = d.min()
    off = (d % step) != zero
    if off.any():
        i = int(np.argmax(off)) + 1
        raise DataFileError(
            f"{where}: times are not on a common step: {_fmt_step(step)} elsewhere, but "
            f"{_fmt_step(d[i - 1])} from {_iso(times[i - 1])} to {_iso(times[i])}"
        )
    segment = np.concatenate([[0], np.cumsum(d != step)]).astype(np.int64)  # [T]
    return step, segment


def _kind(da: xr.DataArray) -> str | None:
    """'level', 'surface', 'static', or None for a variable that is none of these."""
    return {_LEVEL_DIMS: "level", _SURFACE_DIMS: "surface", _STATIC_DIMS: "static"}.get(tuple(da.dims))


@dataclass(frozen=True)
class WeatherLayout:
    """What :func:`check_canonical` found: the grid, the time axis and the kind of each variable."""

    grid: LatLonGrid
    times: np.ndarray  # [T] datetime64[ns]
    step: np.timedelta64
    segment: np.ndarray  # [T] int64: the gap-free run of each time step (0, 0, ..., 1, 1, ...)
    levels: np.ndarray  # [L] int, empty without a level dim
    kinds: dict[str, str]  # variable -> "level" | "surface" | "static"


def check_canonical(ds: xr.Dataset, *, where: str = "<dataset>") -> WeatherLayout:
    """Check that a Dataset is in the canonical form and describe it.

    Args:
        ds: the Dataset (read lazily: only coordinates are loaded).
        where: the store or file named in error messages.

    Returns:
        A record with ``grid`` (LatLonGrid), ``times`` ``[T]``, ``step`` (timedelta64), ``segment``
        ``[T]`` (gap-free runs), ``levels``
        ``[L]`` and ``kinds`` (variable -> ``"level"``, ``"surface"`` or ``"static"``; data variables
        with other dims are left out).

    Raises:
        DataFileError: one line naming ``where`` and the problem: a missing coordinate, a grid that is
            not global and ascending, unsorted/duplicated times or times off a common step, unsorted
            levels.
    """
    for name in ("time", "latitude", "longitude"):
        if name not in ds.coords:
            raise DataFileError(f"{where}: no '{name}' coordinate (not in the canonical form?)")
    try:
        grid = grid_from_coords(ds["latitude"].values, ds["longitude"].values)
    except GridError as err:
        raise DataFileError(f"{where}: {err}") from None
    times = np.asarray(ds["time"].values)
    step, segment = _check_times(times, where)
    levels = np.asarray(ds["level"].values) if "level" in ds.coords else np.zeros(0, dtype=np.int64)
    if levels.size > 1 and (np.diff(levels) <= 0).any():
        raise DataFileError(f"{where}: levels {levels.tolist()} are not strictly ascending")
    kinds = {str(name): kind for name, da in ds.data_vars.items() if (kind := _kind(da)) is not None}
    return WeatherLayout(grid=grid, times=times, step=step, segment=segment, levels=levels, kinds=kinds)


def _time_slice(times: np.ndarray, time_range, where: str) -> tuple[int, int]:
    """Indices ``[i0, i1)`` of the times within ``time_range`` (inclusive ends; None: all)."""
    if time_range is None:
        return 0, times.size
    try:
        start, end = (np.datetime64(t, "ns") for t in time_range)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"time_range: expected (start, end) as ISO strings or datetimes, got {time_range!r}"
        ) from err
    if start > end:
        raise ValueError(f"time_range: start {_iso(start)} is after end {_iso(end)}")
    i0, i1 = int(np.searchsorted(times, start, "left")), int(np.searchsorted(times, end, "right"))
    if i1 <= i0:
        raise DataFileError(
            f"{where}: the period {_iso(start)} .. {_iso(end)} contains no time step "
            f"(the data cover {_iso(times[0])} .. {_iso(times[-1])})"
        )
    return i0, i1


def summarize_weather(ds: xr.Dataset, *, where: str = "<dataset>") -> str:
    """A few lines describing a canonical Dataset: variables, levels, grid, time range and step.

    Raises:
        DataFileError: ``ds`` is not in the canonical form (see :func:`check_canonical`).
    """
    lay = check_canonical(ds, where=where)
    by_kind = {k: [v for v, kk in lay.kinds.items() if kk == k] for k in ("level", "surface", "static")}
    lines = [
        f"{where}",
        f"  grid:     {lay.grid.nlat} x {lay.grid.nlon} {lay.grid.kind}",
        f"  time:     {_iso(lay.times[0])} .. {_iso(lay.times[-1])}, {lay.times.size} steps of "
        f"{_fmt_step(lay.step)}"
        + (f" in {lay.segment[-1] + 1} gap-free segments" if lay.segment[-1] else ""),
        f"  levels:   {', '.join(str(int(v)) for v in lay.levels) or '-'} hPa",
    ]
    for kind, names in by_kind.items():
        lines.append(f"  {kind + ':':9s} {', '.join(names) or '-'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


class _Moments:
    """Streaming weighted mean and variance per level (Chan et al.'s pairwise update, float64)."""

    def __init__(self, nlev: int):
        self.n = np.zeros(nlev)  # sum of weights
        self.mean = np.zeros(nlev)
        self.m2 = np.zeros(nlev)  # sum of w (x - mean)^2

    def add(self, x: np.ndarray, w: np.ndarray) -> None:
        """Add a block ``x [T, L, nlat, nlon]`` with latitude weights ``w [nlat]`` (NaNs skipped)."""
        ok = np.isfinite(x)
        wt = np.where(ok, w[None, None, :, None], 0.0)  # [T, L, nlat, nlon]
        x = np.where(ok, x, 0.0)
        n_b = wt.sum(axis=(0, 2, 3))  # [L]
        has = n_b > 0
        mean_b = np.divide((wt * x).sum(axis=(0, 2, 3)), n_b, out=np.zeros_like(n_b), where=has)
        m2_b = (wt * (x - mean_b[None, :, None, None]) ** 2).sum(axis=(0, 2, 3))
        n = self.n + n_b
        delta = mean_b - self.mean
        frac = np.divide(n_b, n, out=np.zeros_like(n), where=n > 0)
        self.mean = self.mean + delta * frac
        self.m2 = self.m2 + m2_b + delta**2 * self.n * frac
        self.n = n

    def std(self) -> np.ndarray:
        return np.sqrt(np.divide(self.m2, self.n, out=np.full_like(self.n, np.nan), where=self.n > 0))


def _read_f64(da: xr.DataArray, **isel) -> np.ndarray:
    return np.asarray(da.isel(isel).values, dtype=np.float64)


def compute_statistics(
    ds: xr.Dataset,
    *,
    time_range: tuple | None,
    variables: Sequence[str] | None = None,
    diff_steps: int = 1,
    block_mb: float = 256.0,
    source: str | None = None,
) -> xr.Dataset:
    """Area-weighted mean, std and std of the time difference per variable and level, streamed over time.

    Only the time steps in ``time_range`` are read, in blocks of at most ``block_mb`` MB (float64) per
    variable, so data larger than memory work; moments are merged in float64.

    Args:
        ds: a canonical Dataset (lazy, e.g. from ``open_era5`` or ``xr.open_zarr``).
        time_range: ``(start, end)`` of the training period, inclusive, as ISO strings or datetime64;
            None for all times.
        variables: which variables; all level, surface and static variables when None.
        diff_steps: the interval of ``diff_std`` in data steps (GraphCast: the model's step).
        block_mb: memory budget of one block.
        source: the name recorded in the attrs and error messages (default ``ds.encoding['source']``).

    Returns:
        A Dataset in the layout of this module's docstring.

    Raises:
        DataFileError: not canonical, an empty training period, fewer than ``diff_steps + 1`` steps in
            it, a missing variable, or a variable (at a level) with no finite value in the period;
            one line naming the source and the variable.
    """
    where = source or str(ds.encoding.get("source", "<dataset>"))
    if isinstance(diff_steps, bool) or not isinstance(diff_steps, int) or diff_steps < 1:
        raise ValueError(f"compute_statistics: diff_steps must be an int >= 1, got {diff_steps!r}")
    lay = check_canonical(ds, where=where)
    names = list(lay.kinds) if variables is None else list(variables)
    missing = [v for v in names if v not in lay.kinds]
    if missing:
        have = ", ".join(lay.kinds) or "none"
        raise DataFileError(f"{where}: missing variable(s) {', '.join(missing)} (have: {have})")
    i0, i1 = _time_slice(lay.times, time_range, where)
    period = f"{_iso(lay.times[i0])} .. {_iso(lay.times[i1 - 1])}"
    if i1 - i0 <= diff_steps and any(lay.kinds[v] != "static" for v in names):
        raise DataFileError(
            f"{where}: the training period {period} has {i1 - i0} time step(s); diff_std needs at least "
            f"{diff_steps + 1}"
        )
    w = area_weights(lay.grid)  # [nlat]
    nlev = max(lay.levels.size, 1)
    out: dict[str, xr.DataArray] = {}
    for name in names:
        da, kind = ds[name], lay.kinds[name]
        if kind == "static":
            m = _Moments(1)
            m.add(_read_f64(da)[None, None], w)
            values = np.stack([m.mean, m.std(), np.full(1, np.nan)])[:, 0]  # [3]
            bad = m.n == 0
        else:
            per_step = da[0].size * 8
            block = max(diff_steps, int(block_mb * 2**20 // per_step), 1)
            m, dm = _Moments(nlev if kind == "level" else 1), _Moments(nlev if kind == "level" else 1)
            tail, tail_seg = None, None  # the last diff_steps frames of the previous block, their segments
            for a in range(i0, i1, block):
                b = min(a + block, i1)
                x = _read_f64(da, time=slice(a, b))  # [t, (L,) nlat, nlon]
                if kind == "surface":
                    x = x[:, None]  # [t, 1, nlat, nlon]
                m.add(x, w)
                xx = x if tail is None else np.concatenate([tail, x])
                seg = lay.segment[a:b] if tail is None else np.concatenate([tail_seg, lay.segment[a:b]])
                if xx.shape[0] > diff_steps:
                    same = seg[diff_steps:] == seg[:-diff_steps]  # pairs that do not straddle a gap
                    if same.any():
                        dm.add((xx[diff_steps:] - xx[:-diff_steps])[same], w)
                tail, tail_seg = xx[-diff_steps:], seg[-diff_steps:]
            values = np.stack([m.mean, m.std(), dm.std()])  # [3, L]
            bad = m.n == 0
            if kind == "surface":
                values = values[:, 0]
        if bad.any():
            at = f" at level {int(lay.levels[int(np.argmax(bad))])}" if kind == "level" else ""
            raise DataFileError(f"{where}: variable '{name}' is all NaN{at} in the training period {period}")
        dims = ("stat", "level") if kind == "level" else ("stat",)
        out[name] = xr.DataArray(values, dims=dims, attrs=dict(da.attrs))
    coords = {"stat": list(STATS)}
    if any(lay.kinds[v] == "level" for v in names):
        coords["level"] = lay.levels
    step_s = int(lay.step / np.timedelta64(1, "s"))
    attrs = {
        "time_start": _iso(lay.times[i0]),
        "time_end": _iso(lay.times[i1 - 1]),
        "n_times": i1 - i0,
        "time_step_s": step_s,
        "diff_interval_s": step_s * diff_steps,
        "source": where,
        "grid": f"{lay.grid.nlat} x {lay.grid.nlon} {lay.grid.kind}",
        "weights": "sim.discretize.latlon.area_weights (WeatherBench2 cell areas, mean 1)",
        "layout": _LAYOUT,
        "sim_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return xr.Dataset(out, coords=coords, attrs=attrs)


def save_statistics(stats: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write statistics to netCDF atomically (a temporary file renamed into place).

    Returns:
        The path written.

    Raises:
        OutputError: the folder is missing, or the file exists and ``overwrite`` is False.
    """
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        stats.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
    return path


def load_statistics(path: str | os.PathLike) -> xr.Dataset:
    """Read statistics written by :func:`save_statistics` (loaded into memory, file closed).

    Raises:
        DataFileError: the file is missing or not in the statistics layout.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such statistics file")
    try:
        with xr.open_dataset(path, engine="netcdf4") as f:
            stats = f.load()
    except OSError as err:
        raise DataFileError(f"{path}: cannot read as netCDF ({err})") from None
    _check_stats(stats, str(path))
    return stats


def _check_stats(stats: xr.Dataset, where: str) -> None:
    if "stat" not in stats.coords or [str(s) for s in stats["stat"].values] != list(STATS):
        raise DataFileError(f"{where}: not a statistics file (expected a 'stat' coordinate {list(STATS)})")


# --------------------------------------------------------------------------------------------------
# Forcings
# --------------------------------------------------------------------------------------------------


def time_forcings(
    time: np.datetime64, lon: np.ndarray, nlat: int, *, rotation: Sequence[float] = (0.0, 0.0, 1.0)
) -> np.ndarray:
    """The :data:`TIME_FORCINGS` channels at one time.

    * ``utc_hour_*``: sin/cos of 2π · (UTC seconds of the day) / 86400, constant fields;
    * ``local_hour_*``: the same for local mean solar time, ``utc + lon / 15`` hours, varying with
      longitude (GraphCast's local time of day);
    * ``year_progress_*``: sin/cos of 2π · (time since 1 January 00 UTC) / (length of that year);
    * ``rotation_*``: the planet's rotation vector in units of Earth's rate, constant fields.

    Args:
        time: the time (datetime64).
        lon: ``[nlon]`` longitudes in degrees.
        nlat: latitudes of the grid.
        rotation: the rotation vector ``(x, y, z)`` in units of :data:`EARTH_ROTATION_RATE`.

    Returns:
        ``[9, nlat, nlon]`` float32.
    """
    t = np.datetime64(time, "s")
    day = t.astype("datetime64[D]")
    day_frac = float((t - day) / np.timedelta64(1, "s")) / 86400.0
    year = t.astype("datetime64[Y]")
    year_len = float(
        ((year + 1).astype("datetime64[s]") - year.astype("datetime64[s]")) / np.timedelta64(1, "s")
    )
    year_frac = float((t - year.astype("datetime64[s]")) / np.timedelta64(1, "s")) / year_len
    local = 2 * np.pi * (day_frac + np.asarray(lon, dtype=np.float64) / 360.0)  # [nlon]
    nlon = len(lon)
    out = np.empty((9, nlat, nlon), dtype=np.float64)
    out[0], out[1] = math.sin(2 * math.pi * day_frac), math.cos(2 * math.pi * day_frac)
    out[2], out[3] = np.sin(local)[None], np.cos(local)[None]
    out[4], out[5] = math.sin(2 * math.pi * year_frac), math.cos(2 * math.pi * year_frac)
    for k in range(3):
        out[6 + k] = rotation[k]
    return out.astype(np.float32)


OBLIQUITY = 23.44
"""Earth's axial tilt in degrees (the amplitude of the solar declination in :func:`solar_direction`)."""

_EQUINOX_YEAR_FRACTION = 79.0 / 365.25  # the March equinox, about 20 March 00 UTC


def solar_direction(utc_sin, utc_cos, year_sin, year_cos) -> torch.Tensor:
    """The unit vector from the planet's centre to the sun, from the :data:`TIME_FORCINGS` values.

    The subsolar point has longitude ``180 - 360 * (UTC day fraction)`` degrees (the sun is overhead at
    longitude 0 at 12 UTC) and latitude ``OBLIQUITY * sin(2 pi (year fraction - equinox))``: a circular
    orbit without the equation of time, within about 1 degree of the true point (enough for a forcing;
    GraphCast feeds the top-of-atmosphere insolation computed from the same two angles). In the frame of
    :func:`sim.discretize.latlon.latlon_to_xyz`, so ``<r, sun>`` is the cosine of the solar zenith angle at
    ``r``. A zonal rotation of the data by ``theta`` goes with this vector turned by ``theta``.

    Args:
        utc_sin, utc_cos, year_sin, year_cos: tensors of one shape ``[...]``: ``utc_hour_sin`` ...
            ``year_progress_cos``.

    Returns:
        ``[..., 3]``, the dtype of the inputs.
    """
    day = torch.atan2(torch.as_tensor(utc_sin), torch.as_tensor(utc_cos))  # 2 pi * day fraction
    year = torch.atan2(torch.as_tensor(year_sin), torch.as_tensor(year_cos))  # 2 pi * year fraction
    lon = math.pi - day
    lat = math.radians(OBLIQUITY) * torch.sin(year - 2 * math.pi * _EQUINOX_YEAR_FRACTION)
    return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat)], -1)


def _rotation_from_attrs(attrs: dict) -> tuple[float, float, float]:
    """``rotation_axis`` (or ``rotation_axis_x/y/z``; normalized) times ``rotation_rate`` or ``omega``
    (rad/s), in Earth units."""
    default = (0.0, 0.0, 1.0)
    if all(f"rotation_axis_{c}" in attrs for c in "xyz"):  # as sim.data.swe writes it
        default = tuple(float(attrs[f"rotation_axis_{c}"]) for c in "xyz")
    axis = np.asarray(attrs.get("rotation_axis", default), dtype=np.float64).reshape(-1)
    if axis.size != 3 or not np.isfinite(axis).all() or np.linalg.norm(axis) == 0:
        raise DataFileError(f"attribute rotation_axis must be a non-zero 3-vector, got {axis.tolist()}")
    rate = float(attrs.get("rotation_rate", attrs.get("omega", EARTH_ROTATION_RATE)))
    v = axis / np.linalg.norm(axis) * rate / EARTH_ROTATION_RATE
    return (float(v[0]), float(v[1]), float(v[2]))


# --------------------------------------------------------------------------------------------------
# Training windows
# --------------------------------------------------------------------------------------------------


def _open_store(path: Path, *, chunks=None) -> xr.Dataset:
    if path.is_dir():
        return xr.open_zarr(path, chunks=chunks, consolidated=None)
    return xr.open_dataset(path, engine="netcdf4", chunks=chunks, cache=False)


def _lead_steps(lead, step: np.timedelta64, where: str) -> int:
    # np.timedelta64 is an np.integer: a duration, not a count of steps
    if isinstance(lead, (int, np.integer)) and not isinstance(lead, (bool, np.timedelta64)):
        if lead < 1:
            raise ValueError(f"WeatherWindows: lead must be >= 1 data step, got {lead}")
        return int(lead)
    try:
        td = np.timedelta64(lead) if not isinstance(lead, str) else np.timedelta64(_parse_duration(lead))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"WeatherWindows: lead must be an int (data steps) or a duration, got {lead!r}"
        ) from err
    ratio = td / step
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
        raise DataFileError(
            f"{where}: lead {lead} is not a positive multiple of the data step {_fmt_step(step)}"
        )
    return round(ratio)


def _parse_duration(text: str) -> np.timedelta64:
    import pandas as pd

    return pd.Timedelta(text).to_timedelta64()


class WeatherWindows(torch.utils.data.Dataset):
    """Autoregressive training windows ``(inputs, targets, forcings)`` from a canonical store, read lazily.

    With the lead ``k`` data steps and a window starting at time index ``s``::

        inputs   [history, C, nlat, nlon]  states at s, s+k, ..., s+(history-1)k (oldest first)
        targets  [horizon, C, nlat, nlon]  states at the next ``horizon`` lead times
        forcings [horizon, F, nlat, nlon]  forcings at the time of each target (the step's valid time)

    Channels (``channel_names``): the variables in the order given, a level variable as one channel per
    level in ascending order (``"temperature@500"``), a surface variable as one (``"2m_temperature"``).
    Forcings (``forcing_names``): :data:`TIME_FORCINGS` (see :func:`time_forcings`), then the static
    fields (alphabetical, e.g. ``geopotential_at_surface``, ``land_sea_mask``).

    Normalization (as GraphCast): inputs ``(x - mean) / std``; targets the same with
    ``targets="state"``, or with ``targets="residual"`` the change from the previous frame (the last
    input for the first target) divided by ``diff_std`` (which must be for the lead interval); static
    forcings ``(x - mean) / std`` (their own area-weighted moments when the statistics lack them; a
    constant field becomes 0). ``mean``, ``std``, ``diff_std`` (``[C]`` float32 tensors) are exposed so
    a trainer can convert. NaNs in the data pass through.

    A store path is opened on first use in each process (works with ``DataLoader(num_workers > 0)``);
    only the frames of the requested window are read. An open Dataset is used as it is (pickled to
    workers).

    Args:
        source: a canonical zarr store (folder), netCDF file, or an open ``xr.Dataset``.
        stats: a statistics Dataset or netCDF path; None: ``stats.nc`` inside a zarr store.
        variables: level and surface variables; None: all of them, the level variables first, each
            kind in alphabetical order.
        levels: levels (hPa) of the level variables; None: all.
        history: input frames (>= 1).
        horizon: target frames (>= 1), for unrolled training.
        lead: target lead: an int (data steps) or a duration (``"12h"``, timedelta64), a multiple of
            the data step.
        time_range: ``(start, end)``, inclusive: every frame of a window lies in it (a split); all when
            None.
        targets: ``"state"`` or ``"residual"``, see above.
        static: static fields used as forcings; None: all in the store.
        rotation: the rotation vector in Earth units; None: from the attrs ``rotation_axis`` and
            ``rotation_rate`` (rad/s) when present, else ``(0, 0, 1)``.

    Raises:
        DataFileError: one line naming the store: not canonical (unsorted/duplicated/uneven times...),
            missing variables or levels (listed), missing statistics, a lead that is not a multiple of
            the step, a period too short for one window.
    """

    def __init__(
        self,
        source: str | os.PathLike | xr.Dataset,
        *,
        stats: xr.Dataset | str | os.PathLike | None = None,
        variables: Sequence[str] | None = None,
        levels: Sequence[int] | None = None,
        history: int = 1,
        horizon: int = 1,
        lead: int | str | np.timedelta64 = 1,
        time_range: tuple | None = None,
        targets: str = "state",
        static: Sequence[str] | None = None,
        rotation: Sequence[float] | None = None,
    ):
        for name, v in (("history", history), ("horizon", horizon)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"WeatherWindows: {name} must be an int >= 1, got {v!r}")
        if targets not in ("state", "residual"):
            raise ValueError(f"WeatherWindows: targets must be 'state' or 'residual', got {targets!r}")
        self.history, self.horizon, self.targets = history, horizon, targets
        if isinstance(source, xr.Dataset):
            self.path = None
            self.where = str(source.encoding.get("source", "<dataset>"))
            ds, self._ds = source, source
        else:
            self.path = Path(source)
            self.where = str(self.path)
            if not self.path.exists():
                raise DataFileError(f"{self.path}: no such store or file")
            ds, self._ds = _open_store(self.path), None
        self._pid: int | None = None
        where = self.where
        try:
            lay = check_canonical(ds, where=where)
            self.grid, self.times, self.step, self.segment = lay.grid, lay.times, lay.step, lay.segment
            dynamic = sorted(v for v, k in lay.kinds.items() if k == "level")
            dynamic += sorted(v for v, k in lay.kinds.items() if k == "surface")
            self.variables = list(dynamic if variables is None else variables)
            missing = [v for v in self.variables if v not in lay.kinds]
            if missing:
                raise DataFileError(
                    f"{where}: missing variable(s) {', '.join(missing)} "
                    f"(have: {', '.join(dynamic) or 'none'})"
                )
            wrong = [v for v in self.variables if lay.kinds[v] == "static"]
            if wrong:
                raise DataFileError(f"{where}: {', '.join(wrong)} are static fields, not state variables")
            self.kinds = {v: lay.kinds[v] for v in self.variables}
            have = [int(x) for x in lay.levels]
            self.levels = have if levels is None else sorted(int(x) for x in levels)
            missing_lev = [x for x in self.levels if x not in have]
            if missing_lev and any(k == "level" for k in self.kinds.values()):
                raise DataFileError(f"{where}: missing level(s) {missing_lev} hPa (have: {have or 'none'})")
            idx = [have.index(x) for x in self.levels] if "level" in self.kinds.values() else []
            contiguous = bool(idx) and idx == list(range(idx[0], idx[-1] + 1))
            self._level_index = slice(idx[0], idx[-1] + 1) if contiguous else idx  # a slice reads faster
            self.channel_names = []
            for v in self.variables:
                self.channel_names += [f"{v}@{x}" for x in self.levels] if self.kinds[v] == "level" else [v]
            self.lead_steps = _lead_steps(lead, self.step, where)
            self._i0, self._i1 = _time_slice(self.times, time_range, where)
            span = self.lead_steps * (history + horizon - 1)
            first = np.arange(self._i0, max(self._i0, self._i1 - span))  # candidate first frames
            # a window's frames are every lead_steps-th time step: no gap may fall inside it
            self._starts = first[self.segment[first] == self.segment[first + span]] if first.size else first
            self.windows = int(self._starts.size)
            if self.windows < 1:
                raise DataFileError(
                    f"{where}: {self._i1 - self._i0} time steps in the period (gap-free runs of at most "
                    f"{int(np.bincount(self.segment[self._i0 : self._i1]).max())}) are too few for "
                    f"history={history}, "
                    f"horizon={horizon}, lead={self.lead_steps} steps (need at least {span + 1})"
                )
            # statistics
            if stats is None:
                if self.path is None or not (self.path / "stats.nc").is_file():
                    raise DataFileError(f"{where}: no statistics given and no stats.nc in the store")
                stats = self.path / "stats.nc"
            if not isinstance(stats, xr.Dataset):
                stats = load_statistics(stats)
            _check_stats(stats, "statistics")
            self.stats = stats
            self.mean, self.std, self.diff_std = self._channel_stats(stats, where)
            if targets == "residual":
                want = int(self.lead_steps * self.step / np.timedelta64(1, "s"))
                got = stats.attrs.get("diff_interval_s")
                if got is not None and int(got) != want:
                    raise ValueError(
                        f"WeatherWindows: targets='residual' needs diff_std over the lead ({want} s), the "
                        f"statistics have it over {int(got)} s (compute_statistics(diff_steps=...))"
                    )
            # forcings
            statics = (
                sorted(v for v, k in lay.kinds.items() if k == "static") if static is None else list(static)
            )
            bad = [v for v in statics if lay.kinds.get(v) != "static"]
            if bad:
                raise DataFileError(f"{where}: missing static field(s) {', '.join(bad)}")
            self.rotation = (
                tuple(float(x) for x in rotation) if rotation is not None else _rotation_from_attrs(ds.attrs)
            )
            self.forcing_names = [*TIME_FORCINGS, *statics]
            self._static = torch.from_numpy(self._static_fields(ds, statics, stats))  # [S, nlat, nlon]
        finally:
            if self.path is not None:
                ds.close()

    def _channel_stats(self, stats: xr.Dataset, where: str) -> tuple[torch.Tensor, ...]:
        missing = [v for v in self.variables if v not in stats.data_vars]
        if missing:
            raise DataFileError(f"{where}: the statistics lack variable(s) {', '.join(missing)}")
        rows = []
        for v in self.variables:
            s = stats[v]
            if self.kinds[v] == "level":
                lv = [int(x) for x in stats["level"].values]
                lack = [x for x in self.levels if x not in lv]
                if lack:
                    raise DataFileError(f"{where}: the statistics of '{v}' lack level(s) {lack}")
                rows.append(s.sel(level=self.levels).values.T)  # [L, 3]
            else:
                rows.append(s.values[None])  # [1, 3]
        table = np.concatenate(rows).astype(np.float64)  # [C, 3]
        zero = (table[:, 1] <= 0) | ~np.isfinite(table[:, 1])
        if zero.any():
            c = int(np.argmax(zero))
            raise DataFileError(
                f"{where}: std of {self.channel_names[c]} is {table[c, 1]:g} in the statistics "
                "(a constant field cannot be normalized)"
            )
        return tuple(torch.from_numpy(table[:, k].astype(np.float32)) for k in range(3))

    def _static_fields(self, ds: xr.Dataset, names: list[str], stats: xr.Dataset) -> np.ndarray:
        w = area_weights(self.grid)[:, None]  # [nlat, 1]
        out = np.zeros((len(names), *self.grid.shape), dtype=np.float32)
        for i, name in enumerate(names):
            x = np.asarray(ds[name].values, dtype=np.float64)  # [nlat, nlon]
            if name in stats.data_vars:
                mean, std = (float(stats[name].sel(stat=s)) for s in ("mean", "std"))
            else:
                ok = np.isfinite(x)
                ww = np.where(ok, w, 0.0)
                mean = float((ww * np.where(ok, x, 0)).sum() / ww.sum())
                std = float(np.sqrt((ww * np.where(ok, x - mean, 0) ** 2).sum() / ww.sum()))
            out[i] = (x - mean) / (std if std > 0 else 1.0)
        return out

    def _dataset(self) -> xr.Dataset:
        if self.path is None:
            return self._ds
        if self._ds is None or self._pid != os.getpid():  # reopen in each DataLoader worker
            self._ds = _open_store(self.path)
            self._pid = os.getpid()
        return self._ds

    @property
    def in_channels(self) -> int:
        """C, the state channels."""
        return len(self.channel_names)

    def __len__(self) -> int:
        return self.windows

    def index(self, i: int) -> int:
        """The time index of the first input frame of window ``i``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        return int(self._starts[i % len(self)])

    def window_times(self, i: int) -> np.ndarray:
        """``[history + horizon]`` datetime64: the times of window ``i``'s inputs then targets."""
        s = self.index(i)
        return self.times[s : s + self.lead_steps * (self.history + self.horizon - 1) + 1 : self.lead_steps]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.index(i)
        ds = self._dataset()
        k, h = self.lead_steps, self.history
        frames = slice(s, s + k * (h + self.horizon - 1) + 1, k)
        parts = []
        for v in self.variables:
            da = ds[v]
            if self.kinds[v] == "level":
                x = da.isel(time=frames, level=self._level_index).values  # [h+H, L, nlat, nlon]
            else:
                x = da.isel(time=frames).values[:, None]  # [h+H, 1, nlat, nlon]
            parts.append(np.asarray(x, dtype=np.float32))
        x = np.concatenate(parts, axis=1)  # [h+H, C, nlat, nlon]
        mean, std = self.mean.numpy()[:, None, None], self.std.numpy()[:, None, None]  # [C, 1, 1]
        if self.targets == "residual":
            targets = (x[h:] - x[h - 1 : -1]) / self.diff_std.numpy()[:, None, None]  # [H, C, nlat, nlon]
            x = x[:h]
        x -= mean  # in place: numpy, no thread pool in the workers
        x /= std
        inputs = torch.from_numpy(x[:h])  # [h, C, nlat, nlon]
        targets = torch.from_numpy(x[h:] if self.targets == "state" else targets)
        forcings = torch.stack([self.forcings_at(t) for t in self.times[frames][h:]])  # [H, F, nlat, nlon]
        return inputs, targets, forcings

    def forcings_at(self, time) -> torch.Tensor:
        """``[F, nlat, nlon]`` the forcings (``forcing_names``) at any time, in the data or beyond it (the
        time forcings are computed, the static fields are fixed): what a rollout past the data needs."""
        t = time_forcings(np.datetime64(time, "ns"), self.grid.lon, self.grid.nlat, rotation=self.rotation)
        return torch.cat([torch.from_numpy(t), self._static])

    def close(self) -> None:
        """Close this process's handle on the store (an open Dataset given by the caller stays open)."""
        if self.path is not None and self._ds is not None:
            self._ds.close()
            self._ds = None

    def __getstate__(self) -> dict:  # file handles do not travel to worker processes
        state = self.__dict__.copy()
        if self.path is not None:
            state["_ds"] = None
            state["_pid"] = None
        return state


# --------------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------------


def _check_iso(value: str) -> bool:
    try:
        np.datetime64(value, "ns")
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class PeriodConfig:
    """A time period, both ends inclusive, as ISO 8601 strings (``"2016-01-01"``, ``"2016-12-31T18"``)."""

    start: str = cfield(check=_check_iso, expected="an ISO 8601 date or time")
    end: str = cfield(check=_check_iso, expected="an ISO 8601 date or time")

    def __post_init__(self) -> None:
        if np.datetime64(self.start, "ns") > np.datetime64(self.end, "ns"):
            raise ConfigError(f"start {self.start!r} is after end {self.end!r}", key="start")


@dataclass(frozen=True)
class WeatherPrepareConfig:
    """``sim data prepare CONFIG``: raw downloads -> one canonical zarr store with its statistics.

    The store (``output``, a folder) holds the data (zarr format 2, consolidated, chunks of
    ``time_chunk`` steps and whole levels and grid), ``stats.nc`` (statistics over ``train``, see
    :func:`compute_statistics`) and ``prepare.yaml`` (this config, resolved).
    """

    sources: tuple[str, ...] = cfield(**nonempty(), doc="files or glob patterns passed to open_era5")
    train: PeriodConfig = cfield(doc="the training period the statistics are computed over")
    variables: tuple[str, ...] | None = cfield(None, doc="WeatherBench2 names; all when null")
    levels: tuple[int, ...] | None = cfield(None, doc="pressure levels in hPa; all when null")
    output: str = cfield("data/era5/train.zarr", doc="the store to write (a folder)")
    time_chunk: int = cfield(1, **positive(), doc="time steps per zarr chunk")
    diff_steps: int = cfield(1, **positive(), doc="interval of diff_std in data steps")
    block_mb: float = cfield(512.0, **positive(), doc="memory budget of one block read and written")


def _expand_sources(patterns: Sequence[str]) -> list[str]:
    paths: list[str] = []
    for pattern in patterns:
        found = sorted(glob.glob(os.path.expanduser(pattern)))
        if not found:
            raise DataFileError(f"{pattern}: no file or folder matches this source")
        paths += [p for p in found if p not in paths]
    return paths


def _check_fields(block: xr.Dataset, kinds: dict[str, str], where: str) -> None:
    """Raise on a field (a variable at one time and level) that has no finite value."""
    for name, kind in kinds.items():
        x = np.asarray(block[name].values)
        empty = ~np.isfinite(x).any(axis=(-2, -1))  # [t, (L)] or []
        if empty.any():
            at = np.unravel_index(int(np.argmax(empty)), empty.shape)
            text = ""
            if kind != "static":
                text = f" at {_iso(block['time'].values[at[0]])}"
            if kind == "level":
                text += f", level {int(block['level'].values[at[1]])} hPa"
            raise DataFileError(f"{where}: variable '{name}' is all NaN{text}")


def prepare_weather(
    config: WeatherPrepareConfig,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Turn raw downloads into one canonical zarr store with its statistics.

    ``open_era5(sources, variables=..., levels=...)`` reads the sources in any ERA5 convention; the
    canonical data are checked (evenly spaced unique times, a global grid), written block by block into
    a temporary folder beside ``out`` (each field checked for all-NaN as it is written), the statistics
    are computed over ``config.train`` from the written store, and the folder is renamed into place:
    an interrupted run leaves no store that looks whole.

    Args:
        config: what to prepare.
        out: the store folder; ``config.output`` when None. Its parent folder must exist.
        overwrite: replace an existing store.
        progress: show a progress bar and print the summary on stderr/stdout.

    Returns:
        The store path.

    Raises:
        OutputError: the parent folder is missing or the store exists without ``overwrite``.
        DataFileError: no file matches a source, or bad data (``Era5Error`` from the loader, duplicated
            or uneven times, all-NaN fields, an empty training period): one line naming the problem.
    """
    from tqdm.auto import tqdm

    out = Path(config.output if out is None else out)
    if not out.parent.is_dir():
        raise OutputError(f"{out}: output folder {out.parent} does not exist (create it first)")
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: already exists (pass --overwrite, or overwrite=True, to replace it)")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; expected a store folder")
    paths = _expand_sources(config.sources)
    from sim.data.era5 import open_era5  # the loader of every ERA5 convention (the stage above)

    where = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
    ds = open_era5(
        paths if len(paths) > 1 else paths[0],
        variables=list(config.variables) if config.variables is not None else None,
        levels=list(config.levels) if config.levels is not None else None,
    )
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        lay = check_canonical(ds, where=where)
        _time_slice(lay.times, (config.train.start, config.train.end), where)  # fail early
        ds = ds[list(lay.kinds)]
        ds.attrs["sources"] = "\n".join(paths)
        ds.attrs["prepared_by"] = f"sim {__version__} prepare_weather"
        per_step = sum(
            ds[v][0].size * 4 for v, k in lay.kinds.items() if k != "static"
        )  # bytes per time step (float32)
        block = max(1, int(config.block_mb * 2**20 // max(per_step, 1)))
        block = max(config.time_chunk, block - block % config.time_chunk)
        shutil.rmtree(tmp, ignore_errors=True)
        t_total = lay.times.size
        bar = tqdm(total=t_total, unit="step", desc=f"prepare {out.name}", disable=not progress)
        with bar:
            for a in range(0, t_total, block):
                sub = ds.isel(time=slice(a, min(a + block, t_total))).astype(np.float32).load()
                if a > 0:
                    sub = sub.drop_vars([v for v in sub.variables if "time" not in sub[v].dims])
                kinds = {v: k for v, k in lay.kinds.items() if v in sub.data_vars}
                _check_fields(sub, kinds, where)
                for v in sub.variables.values():
                    v.encoding = {}
                if a == 0:
                    enc = {
                        v: {"chunks": (config.time_chunk, *sub[v].shape[1:])}
                        for v, k in lay.kinds.items()
                        if k != "static"
                    }
                    enc["time"] = {"units": "seconds since 1970-01-01", "dtype": "int64"}
                    sub.to_zarr(tmp, mode="w-", zarr_format=2, consolidated=True, encoding=enc)
                else:
                    sub.to_zarr(tmp, append_dim="time", zarr_format=2, consolidated=True)
                bar.update(sub.sizes["time"])
        with xr.open_zarr(tmp, chunks=None) as written:
            stats = compute_statistics(
                written,
                time_range=(config.train.start, config.train.end),
                diff_steps=config.diff_steps,
                block_mb=config.block_mb,
                source=str(out),
            )
            summary = summarize_weather(written, where=str(out))
        save_statistics(stats, tmp / "stats.nc")
        write_config(config, tmp / "prepare.yaml")
        if out.exists():  # overwrite: swap, then remove the old store
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        with contextlib.suppress(Exception):
            ds.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(summary)
        print(f"  stats:    {out / 'stats.nc'} over {stats.attrs['time_start']} .. {stats.attrs['time_end']}")
    return out
