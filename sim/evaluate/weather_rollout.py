"""Long autoregressive weather rollouts, streamed to netCDF in WeatherBench2's forecast layout.

File layout (netCDF-4)::

    dimensions:  init_time, lead_time, level, latitude, longitude
    <level var>(init_time, lead_time, level, latitude, longitude)  float32  physical units, e.g. geopotential
    <surface var>(init_time, lead_time, latitude, longitude)        float32  e.g. 2m_temperature
    diverged_at(init_time)                  int32    first step at which the rollout diverged (-1: never)
    kinetic_energy(init_time, lead_time)    float32  area-weighted mean (u^2 + v^2) / 2 over the wind levels
                                                     (J/kg; NaN without winds), at every saved lead
    coordinates: init_time (datetime64, the time of the last input state), lead_time (timedelta64: k model
                 steps, the saved ones), level (hPa), latitude (ascending), longitude
    attributes:  kind = "weather", data_file, history, step_seconds, steps, save_every, blowup_factor,
                 divergence, sim_version, created, wall_seconds (the rollouts' wall time, set once they are
                 all written), and the caller's ``attrs``

The valid time of ``(init_time, lead_time)`` is their sum, as in WeatherBench2: ``sim.evaluate.
weather_metrics.evaluate_forecast(forecast, truth)`` reads the file as it is. Forcings at each valid time
are computed (time of day and year, the rotation vector) or fixed (static fields), so a rollout can run
past the end of the data, e.g. a simulated year of 6-hourly steps (1460) from a 10-day trajectory.

Divergence, per initial time: a state with NaN/Inf, or with a normalized value beyond ``blowup_factor``
(in units of the training data's standard deviation per channel; a sane state stays within about 10).
From that lead on the forecast is NaN and ``diverged_at`` records the step; the others continue.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from sim import __version__
from sim.data.ns2d import DataFileError
from sim.data.weather import WeatherWindows
from sim.discretize.latlon import area_weights
from sim.evaluate._common import check_blowup_factor, check_extra_attrs, check_int
from sim.io import atomic_output, check_output_path
from sim.runtime import resolve_device
from sim.train.weather import WeatherStepper, wind_channels

__all__ = ["rollout_weather_to_netcdf", "split_channel"]

_RESERVED_ATTRS = frozenset(
    {"kind", "data_file", "history", "step_seconds", "steps", "save_every", "blowup_factor", "divergence"}
    | {"sim_version", "created", "title", "wall_seconds"}
)


def split_channel(name: str) -> tuple[str, int | None]:
    """``"temperature@500" -> ("temperature", 500)``, ``"2m_temperature" -> ("2m_temperature", None)``."""
    var, _, level = name.partition("@")
    return var, (int(level) if level else None)


def _layout(channels: Sequence[str]) -> tuple[list[str], list[int], dict[str, list[tuple[int, int | None]]]]:
    """Variables (in order), levels (sorted), and per variable its ``(channel, level index | None)``."""
    variables, levels, where = [], set(), {}
    for name in channels:
        var, level = split_channel(name)
        if var not in where:
            variables.append(var)
            where[var] = []
        if level is not None:
            levels.add(level)
    levels = sorted(levels)
    for c, name in enumerate(channels):
        var, level = split_channel(name)
        where[var].append((c, None if level is None else levels.index(level)))
    return variables, levels, where


def _windows(stepper: WeatherStepper, data, period, stats) -> WeatherWindows:
    variables, levels, _ = _layout(stepper.channel_names)
    step = np.timedelta64(round(stepper.step_seconds), "s")
    win = WeatherWindows(
        data,
        stats=stats,
        variables=variables,
        levels=levels or None,
        history=stepper.history,
        horizon=1,
        lead=step,
        time_range=period,
        targets="state",
    )
    if win.grid != stepper.grid:
        raise DataFileError(
            f"{win.where}: grid {win.grid!r} differs from the one the model was trained on, {stepper.grid!r}"
        )
    if list(win.channel_names) != list(stepper.channel_names):
        raise DataFileError(
            f"{win.where}: channels {win.channel_names} differ from the stepper's {stepper.channel_names}"
        )
    if list(win.forcing_names) != list(stepper.forcing_names):
        raise DataFileError(
            f"{win.where}: forcings {win.forcing_names} differ from the stepper's {stepper.forcing_names}"
        )
    return win


def _select(win: WeatherWindows, init_times, init_every: int, max_inits: int | None) -> list[int]:
    """Window indices whose last input state is at each initial time."""
    last = np.array([win.window_times(i)[win.history - 1] for i in range(len(win))])
    if init_times is None:
        chosen = list(range(0, len(win), init_every))
    else:
        chosen = []
        for t in init_times:
            hit = np.flatnonzero(last == np.datetime64(t, "ns"))
            if not hit.size:
                raise DataFileError(
                    f"{win.where}: no window with history {win.history} ends at init time {t} in the period"
                )
            chosen.append(int(hit[0]))
    return chosen[:max_inits] if max_inits is not None else chosen


def rollout_weather_to_netcdf(
    stepper: WeatherStepper,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    steps: int,
    period: tuple | None = None,
    init_times: Sequence | None = None,
    init_every: int = 1,
    max_inits: int | None = None,
    save_every: int = 1,
    batch_size: int = 4,
    stats: str | os.PathLike | None = None,
    device: str = "auto",
    blowup_factor: float = 50.0,
    overwrite: bool = False,
    progress: bool = True,
    attrs: Mapping | None = None,
) -> Path:
    """Roll ``stepper`` out ``steps`` model steps from initial times of a canonical store.

    Args:
        stepper: a trained :class:`~sim.train.weather.WeatherStepper` (``load_stepper``).
        data: the canonical store (zarr folder or netCDF) the initial states and static fields come from.
        out: the file to write (atomic; refused if it exists unless ``overwrite``).
        steps: model steps per rollout.
        period: ``(start, end)``: initial states whose history lies in it; all when None.
        init_times: explicit initial times (the time of the last input state); else every
            ``init_every``-th window of ``period``, at most ``max_inits``.
        save_every: write every this many lead steps (the divergence check runs at every step).
        batch_size: rollouts run together.
        stats: the store's statistics file (default ``stats.nc`` inside a zarr store); only used to read
            states back to physical units, the stepper normalizes with its own.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        blowup_factor: the divergence threshold on normalized values.
        attrs: extra global attributes (must not clash with the file's own).

    Returns:
        ``out`` as a Path.

    Raises:
        DataFileError, OutputError, ValueError: one line naming the problem.
    """
    steps = check_int("steps", steps, minimum=1)
    save_every = check_int("save_every", save_every, minimum=1)
    init_every = check_int("init_every", init_every, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    blowup_factor = check_blowup_factor(blowup_factor)
    extra = check_extra_attrs(attrs, _RESERVED_ATTRS, who="rollout_weather_to_netcdf")
    out = check_output_path(out, overwrite=overwrite)
    win = _windows(stepper, data, period, stats)
    chosen = _select(win, init_times, init_every, max_inits)
    if not chosen:
        raise DataFileError(f"{win.where}: no initial time in the period")
    dev = resolve_device(device)
    stepper = stepper.to(dev).eval()
    variables, levels, where = _layout(stepper.channel_names)
    step = np.timedelta64(round(stepper.step_seconds), "s")
    saved = np.arange(save_every, steps + 1, save_every)  # lead steps written
    init = np.array([win.window_times(i)[win.history - 1] for i in chosen]).astype("datetime64[ns]")
    _, winds = wind_channels(stepper.channel_names)
    area = torch.from_numpy(area_weights(win.grid)).to(dev)[:, None]  # [nlat, 1]
    # the store's normalization back to physical units, then the stepper's: x * a + b
    a = (win.std.to(dev) / stepper.std.to(dev))[:, None, None]
    b = ((win.mean.to(dev) - stepper.mean.to(dev)) / stepper.std.to(dev))[:, None, None]

    from tqdm.auto import tqdm

    with atomic_output(out, overwrite=overwrite) as tmp:
        import netCDF4

        nc = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        try:
            _create(nc, win, variables, levels, where, init, saved, step, len(chosen))
            nc.setncatts(
                {
                    "kind": "weather",
                    "data_file": str(data),
                    "history": stepper.history,
                    "step_seconds": float(stepper.step_seconds),
                    "steps": steps,
                    "save_every": save_every,
                    "blowup_factor": blowup_factor,
                    "divergence": "NaN/Inf or |normalized value| > blowup_factor (diverged_at: first step)",
                    "sim_version": __version__,
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    **extra,
                }
            )
            bar = tqdm(total=len(chosen) * steps, desc="rollout", unit="step", disable=not progress)
            t0 = time.perf_counter()
            with torch.no_grad():
                for b0 in range(0, len(chosen), batch_size):
                    idx = chosen[b0 : b0 + batch_size]
                    x = torch.stack([win[i][0] for i in idx]).to(dev)  # [B, T, C, nlat, nlon]
                    x = (x * a + b).to(next(stepper.parameters()).dtype)
                    diverged = _roll(
                        stepper, nc, x, init[b0 : b0 + len(idx)], b0, win, step, steps, save_every,
                        where, winds, area, blowup_factor, bar,
                    )  # fmt: skip
                    nc["diverged_at"][b0 : b0 + len(idx)] = diverged
            bar.close()
            # the rollouts' wall time (model steps and writing, not the data set-up): a study that keeps
            # this file can still report the time per step it was made at
            nc.setncattr("wall_seconds", time.perf_counter() - t0)
        finally:
            nc.close()
    return out


def _create(nc, win, variables, levels, where, init, saved, step, n_init) -> None:
    nlat, nlon = win.grid.shape
    nc.createDimension("init_time", n_init)
    nc.createDimension("lead_time", len(saved))
    if levels:
        nc.createDimension("level", len(levels))
    nc.createDimension("latitude", nlat)
    nc.createDimension("longitude", nlon)
    v = nc.createVariable("init_time", "i8", ("init_time",))
    v.units, v.calendar = "seconds since 1970-01-01 00:00:00", "proleptic_gregorian"
    v[:] = ((init - np.datetime64("1970-01-01", "ns")) / np.timedelta64(1, "s")).astype(np.int64)
    v = nc.createVariable("lead_time", "f8", ("lead_time",))
    v.units, v.long_name = "hours", "forecast lead time (model steps x the step)"
    v.setncattr("dtype", "timedelta64[ns]")  # xarray decodes it to timedelta64 by this (and the units)
    v[:] = saved * (step / np.timedelta64(1, "h"))
    if levels:
        v = nc.createVariable("level", "i8", ("level",))
        v.units = "hPa"
        v[:] = np.asarray(levels)
    v = nc.createVariable("latitude", "f8", ("latitude",))
    v.units = "degrees_north"
    v[:] = win.grid.lat
    v = nc.createVariable("longitude", "f8", ("longitude",))
    v.units = "degrees_east"
    v[:] = win.grid.lon
    for var in variables:
        has_level = any(li is not None for _, li in where[var])
        dims = ("init_time", "lead_time") + (("level",) if has_level else ()) + ("latitude", "longitude")
        v = nc.createVariable(
            var,
            "f4",
            dims,
            zlib=True,
            complevel=1,
            chunksizes=(1,) * (len(dims) - 2) + (nlat, nlon),  # one field per chunk
            fill_value=np.float32(np.nan),
        )
        v.long_name = f"predicted {var}"
    v = nc.createVariable("diverged_at", "i4", ("init_time",))
    v.long_name = "first lead step at which the rollout diverged (-1: never)"
    v = nc.createVariable("kinetic_energy", "f4", ("init_time", "lead_time"), fill_value=np.float32(np.nan))
    v.units, v.long_name = "J kg-1", "area-weighted mean (u^2 + v^2) / 2 over the wind levels"


def _roll(
    stepper, nc, x, init, b0, win, step, steps, save_every, where, winds, area, blowup, bar
) -> np.ndarray:
    """Roll one batch and write its saved leads; returns ``diverged_at`` per rollout."""
    B = x.shape[0]
    dev = x.device
    std, mean = stepper.std.to(dev)[:, None, None], stepper.mean.to(dev)[:, None, None]
    diverged = np.full(B, -1, dtype=np.int32)
    alive = torch.ones(B, dtype=torch.bool, device=dev)

    def forcings(i: int) -> torch.Tensor:  # [B, F, nlat, nlon] at the valid time of step i + 1
        return torch.stack([win.forcings_at(t) for t in init + (i + 1) * step]).to(dev, x.dtype)

    # samples never mix in a batch, so a diverged one is carried along and only masked in the output
    for k, nxt in enumerate(stepper.rollout(x, forcings, steps), start=1):
        bad = ~torch.isfinite(nxt).all(dim=(1, 2, 3)) | (nxt.abs().amax(dim=(1, 2, 3)) > blowup)
        newly = bad & alive
        if newly.any():
            diverged[newly.cpu().numpy()] = k
            alive &= ~bad
        bar.update(B)
        if k % save_every:
            continue
        lead = k // save_every - 1
        phys = (nxt.double() * std + mean).float()  # [B, C, nlat, nlon]
        phys[~alive] = math.nan
        arr = phys.cpu().numpy()
        for var, chans in where.items():
            if chans[0][1] is None:
                nc[var][b0 : b0 + B, lead] = arr[:, chans[0][0]]
            else:
                for c, li in chans:
                    nc[var][b0 : b0 + B, lead, li] = arr[:, c]
        if winds:
            ke = sum(phys[:, u].double() ** 2 + phys[:, v].double() ** 2 for u, v in winds) / (2 * len(winds))
            ke = (ke * area).mean(dim=(1, 2))  # [B]
            ke[~alive] = math.nan
            nc["kinetic_energy"][b0 : b0 + B, lead] = ke.cpu().numpy().astype(np.float32)
        if not alive.any():
            bar.update(B * (steps - k))
            break
    return diverged
