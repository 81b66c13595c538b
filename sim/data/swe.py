"""Shallow-water training data on the sphere, written as ERA5-style files the weather pipeline reads as is.

``sim generate swe --config configs/data/<name>.yaml`` solves trajectories with
:class:`sim.solvers.swe.ShallowWaterSphere` and writes each one to its own netCDF-4 file in the
canonical WeatherBench2 form (``sim.data.era5``)::

    dimensions:  time (unlimited), level (1), latitude, longitude
    geopotential(time, level, latitude, longitude)         float32  m**2 s**-2   Phi = g h
    u_component_of_wind(time, level, latitude, longitude)  float32  m s**-1      eastward
    v_component_of_wind(time, level, latitude, longitude)  float32  m s**-1      northward
    coordinates: time (datetime64, every record_every_hours from the start date), level (int64 hPa, a
                 nominal level: the shallow-water layer has none), latitude (degrees north, ascending),
                 longitude (degrees east, 0 ... 360 - 360 / nlon)
    attributes:  rotation_axis_x/y/z (the physics' rotation axis, unit vector in the frame of
                 sim.discretize.latlon.latlon_to_xyz), tilt, gravity, radius, omega, mean_depth, solver
                 settings, the initial condition, seed, sample, sim_version, created, config (resolved YAML)

One trajectory per file, so a file's time axis is one contiguous trajectory. With ``samples > 1`` sample
``i`` goes to ``<stem>_<i:03d><suffix>`` (``data/swe.nc`` -> ``data/swe_000.nc`` ...) and its times start
``i * sample_spacing_days`` days after ``start``: dates never repeat across files, and the gap (at least one
day) separates the trajectories when the files are read together.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import xarray as xr

from sim import __version__
from sim.config import ConfigError, cfield, device_name, dump_yaml, finite_positive, nonnegative, positive
from sim.io import atomic_output, check_output_path
from sim.runtime import resolve_device
from sim.solvers.ns2d import SolverDivergedError
from sim.solvers.random_fields import sample_seed
from sim.solvers.swe import ShallowWaterSphere, tilted_axis

__all__ = [
    "SWEDataConfig",
    "SWEGridConfig",
    "SWEInitialConfig",
    "SWESolverConfig",
    "build_solver",
    "generate_swe",
    "preview_swe",
    "swe_output_paths",
]

_VARIABLES = {
    "geopotential": ("geopotential", "Geopotential", "geopotential", "m**2 s**-2"),
    "u": ("u_component_of_wind", "U component of wind", "eastward_wind", "m s**-1"),
    "v": ("v_component_of_wind", "V component of wind", "northward_wind", "m s**-1"),
}


def _parse_start(text: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text)


def _valid_start(text: str) -> bool:
    try:
        _parse_start(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SWEGridConfig:
    """The grid the equations are solved and stored on."""

    nlat: int = cfield(64, check=lambda v: v >= 4, expected="an int >= 4")
    nlon: int = cfield(128, check=lambda v: v >= 4, expected="an int >= 4")
    kind: Literal["equiangular", "legendre-gauss"] = "equiangular"


@dataclass(frozen=True)
class SWESolverConfig:
    """``ShallowWaterSphere`` settings (SI units; see ``sim.solvers.swe``)."""

    dt: float = cfield(600.0, **finite_positive())
    lmax: int | None = cfield(None, check=lambda v: v >= 2, expected="an int >= 2 or null (ceil(nlat / 3))")
    stepper: Literal["rk4", "ab3"] = "rk4"
    hyperdiffusion_order: int = cfield(4, **positive())
    hyperdiffusion_time: float | None = cfield(7200.0, **finite_positive())
    radius: float = cfield(6.37122e6, **finite_positive())
    omega: float = cfield(7.292e-5, **nonnegative())
    gravity: float = cfield(9.80616, **finite_positive())
    havg: float = cfield(10e3, **finite_positive())
    tilt: float = cfield(0.0, check=lambda v: 0 <= v <= 180, expected="degrees in [0, 180]")
    tilt_longitude: float = 180.0
    dtype: Literal["float32", "float64"] = "float64"


@dataclass(frozen=True)
class SWEInitialConfig:
    """The initial condition: ``galewsky``, ``random`` (balanced random vorticity) or ``williamson2``."""

    kind: Literal["galewsky", "random", "williamson2"] = "random"
    urms: float = cfield(20.0, **finite_positive())  # random: rms wind (m/s)
    peak_degree: int = cfield(8, **positive())  # random: spectral peak l0
    hamp: float = cfield(0.0, **nonnegative())  # random: rms unbalanced height (m); galewsky: bump (m)
    umax: float = cfield(80.0, **finite_positive())  # galewsky: jet speed (m/s)
    u0: float | None = cfield(None, **finite_positive())  # williamson2: speed (m/s), None: 2 pi a / 12 d
    gh0: float = cfield(2.94e4, **finite_positive())  # williamson2: pole geopotential (m^2/s^2)


@dataclass(frozen=True)
class SWEDataConfig:
    """A shallow-water data set: ``sim generate swe --config configs/data/<name>.yaml``.

    Frames at ``start + k * record_every_hours``, ``k = 0 ... duration_days * 24 / record_every_hours``
    (the first is the initial condition), one file per sample.
    """

    grid: SWEGridConfig = field(default_factory=SWEGridConfig)
    solver: SWESolverConfig = field(default_factory=SWESolverConfig)
    initial: SWEInitialConfig = field(default_factory=SWEInitialConfig)
    samples: int = cfield(1, **positive())
    seed: int = cfield(0, **nonnegative())
    start: str = cfield(
        "2000-01-01T00:00", check=_valid_start, expected="an ISO date, e.g. '2000-01-01T00:00'"
    )
    record_every_hours: float = cfield(6.0, **finite_positive())
    duration_days: float = cfield(10.0, **finite_positive())
    sample_spacing_days: float | None = cfield(None, **finite_positive())
    level: int = cfield(500, **positive())
    output: str = "data/swe.nc"
    device: str = cfield("auto", **device_name())

    def __post_init__(self) -> None:
        ratio = self.duration_days * 24 / self.record_every_hours
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
            raise ConfigError(
                f"duration_days: expected a multiple of record_every_hours={self.record_every_hours:g} h, "
                f"got {self.duration_days:g} days"
            )
        hours = self.record_every_hours * 3600
        if abs(hours - round(hours)) > 1e-6:
            raise ConfigError(
                f"record_every_hours: expected a whole number of seconds, got {self.record_every_hours!r}"
            )
        if self.sample_spacing_days is not None and self.sample_spacing_days <= self.duration_days:
            raise ConfigError(
                f"sample_spacing_days: expected more than duration_days={self.duration_days:g}, "
                f"got {self.sample_spacing_days:g}"
            )
        lmax = self.solver.lmax
        if lmax is not None and lmax > min(self.grid.nlat, self.grid.nlon // 2 + 1):
            raise ConfigError(
                f"solver.lmax: expected at most {min(self.grid.nlat, self.grid.nlon // 2 + 1)} for a "
                f"{self.grid.nlat} x {self.grid.nlon} grid, got {lmax}"
            )

    @property
    def n_frames(self) -> int:
        """Frames per trajectory (the initial one included)."""
        return round(self.duration_days * 24 / self.record_every_hours) + 1

    @property
    def spacing_days(self) -> float:
        """Days between the start dates of consecutive samples."""
        if self.sample_spacing_days is not None:
            return self.sample_spacing_days
        return math.floor(self.duration_days) + 1.0


def swe_output_paths(config: SWEDataConfig, out: str | os.PathLike | None = None) -> list[Path]:
    """The files ``generate_swe`` writes: ``out`` for one sample, ``<stem>_<i:03d><suffix>`` for several."""
    out = Path(config.output if out is None else out)
    if config.samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i:03d}{out.suffix}") for i in range(config.samples)]


def build_solver(config: SWEDataConfig) -> ShallowWaterSphere:
    """The solver a config describes (on the CPU; move it with ``.to(device)``)."""
    sc, gc = config.solver, config.grid
    return ShallowWaterSphere(
        gc.nlat,
        gc.nlon,
        dt=sc.dt,
        grid=gc.kind,
        lmax=sc.lmax,
        radius=sc.radius,
        omega=sc.omega,
        gravity=sc.gravity,
        havg=sc.havg,
        hyperdiffusion_order=sc.hyperdiffusion_order,
        hyperdiffusion_time=sc.hyperdiffusion_time,
        axis=tilted_axis(sc.tilt, sc.tilt_longitude),
        stepper=sc.stepper,
        dtype=torch.float32 if sc.dtype == "float32" else torch.float64,
    )


def _initial_state(solver: ShallowWaterSphere, config: SWEDataConfig, seed: int) -> torch.Tensor:
    ic = config.initial
    if ic.kind == "galewsky":
        return solver.galewsky(umax=ic.umax, hamp=120.0 if ic.hamp == 0 else ic.hamp)
    if ic.kind == "williamson2":
        u0 = 2 * math.pi * solver.radius / (12 * 86400.0) if ic.u0 is None else ic.u0
        return solver.williamson2(u0=u0, gh0=ic.gh0)
    return solver.random_initial_condition(seed, urms=ic.urms, peak_degree=ic.peak_degree, hamp=ic.hamp)


def generate_swe(
    config: SWEDataConfig,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Solve the data set's trajectories and write each to its own ERA5-style netCDF file.

    Frames are appended as they are computed (memory does not grow with the duration); each file is
    written under a temporary name and renamed when complete. Sample ``i`` of a random initial condition
    uses the seed ``sim.solvers.sample_seed(config.seed, i)``.

    Args:
        config: the data set.
        out: output file (``config.output`` when None); with several samples, the stem of the files
            (see :func:`swe_output_paths`). Its folder must exist.
        overwrite: replace existing files.
        progress: show a progress bar on stderr.

    Returns:
        The files written, in sample order.

    Raises:
        OutputError: the folder is missing or a file exists without ``overwrite`` (before any work).
        SolverDivergedError: a trajectory became NaN/Inf; the message names the sample and time.
    """
    from tqdm.auto import tqdm

    paths = swe_output_paths(config, out)
    for path in paths:
        check_output_path(path, overwrite=overwrite)  # fail before any work
    device = resolve_device(config.device)
    solver = build_solver(config).to(device)
    record = config.record_every_hours * 3600.0
    start = np.datetime64(_parse_start(config.start), "s")
    bar = tqdm(
        total=config.samples * config.n_frames,
        unit="frame",
        desc=f"swe {config.grid.nlat}x{config.grid.nlon} {config.initial.kind}",
        disable=not progress,
        dynamic_ncols=True,
    )
    with bar:
        for i, path in enumerate(paths):
            seed = sample_seed(config.seed, i)
            t0 = start + np.timedelta64(round(i * config.spacing_days * 86400), "s")
            state = _initial_state(solver, config, seed)
            with atomic_output(path, overwrite=overwrite) as tmp:
                for k in range(config.n_frames):
                    if k > 0:
                        try:
                            state = solver.advance(state, record)
                        except SolverDivergedError as err:
                            time = (k - 1) * record + err.time
                            raise SolverDivergedError(
                                f"sample {i}: {err} (at {time / 3600:.4g} h into the trajectory)",
                                step=err.step,
                                time=time,
                            ) from None
                    fields = {name: f.float().cpu().numpy() for name, f in solver.to_grid(state).items()}
                    if k == 0:
                        _create_file(tmp, config, solver, fields, t0, seed=seed, sample=i)
                    else:
                        _append_frame(tmp, k, fields, k * config.record_every_hours)
                    bar.update(1)
                    bar.set_postfix(
                        sample=i, max_wind=f"{float(np.hypot(fields['u'], fields['v']).max()):.3g}"
                    )
    return paths


def _create_file(
    path: Path,
    config: SWEDataConfig,
    solver: ShallowWaterSphere,
    fields: dict[str, np.ndarray],
    t0: np.datetime64,
    *,
    seed: int,
    sample: int,
) -> None:
    """Create a file holding the first frame, the coordinates and the attributes."""
    grid = solver.latlon_grid
    sc, ic = config.solver, config.initial
    data_vars = {}
    for key, (name, long_name, standard_name, units) in _VARIABLES.items():
        data_vars[name] = (
            ("time", "level", "latitude", "longitude"),
            fields[key][None, None].astype(np.float32),  # [1, 1, nlat, nlon]
            {"long_name": long_name, "standard_name": standard_name, "units": units},
        )
    attrs = {
        "title": "shallow water on the rotating sphere (sim.solvers.swe.ShallowWaterSphere)",
        "level_note": f"the shallow-water layer is stored at the nominal level {config.level} hPa",
        "geopotential_note": "geopotential = g h, h the fluid depth (mean depth mean_depth m)",
        "rotation_axis_x": solver.axis[0],
        "rotation_axis_y": solver.axis[1],
        "rotation_axis_z": solver.axis[2],
        "rotation_axis_note": "unit axis (x, y, z) = (cos lat cos lon, cos lat sin lon, sin lat); "
        "Coriolis parameter f = 2 omega (axis . r)",
        "tilt": sc.tilt,
        "tilt_longitude": sc.tilt_longitude,
        "gravity": solver.gravity,
        "radius": solver.radius,
        "omega": solver.omega,
        "mean_depth": solver.havg,
        "solver": "ShallowWaterSphere: spectral vorticity-divergence form, torch-harmonics SHT",
        "solver_grid": config.grid.kind,
        "solver_lmax": solver.lmax,
        "solver_dt": solver.dt,
        "solver_stepper": solver.stepper,
        "solver_dtype": sc.dtype,
        "hyperdiffusion_order": sc.hyperdiffusion_order,
        "hyperdiffusion_time": -1.0 if sc.hyperdiffusion_time is None else sc.hyperdiffusion_time,
        "initial_condition": ic.kind,
        "seed": seed,
        "sample": sample,
        "sim_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": dump_yaml(config),
    }
    ds = xr.Dataset(
        data_vars=data_vars,
        coords={
            "time": ("time", np.array([t0], dtype="datetime64[ns]")),
            "level": (
                "level",
                np.array([config.level], dtype=np.int64),
                {"long_name": "pressure level", "units": "hPa"},
            ),
            "latitude": ("latitude", grid.lat, {"long_name": "latitude", "units": "degrees_north"}),
            "longitude": ("longitude", grid.lon, {"long_name": "longitude", "units": "degrees_east"}),
        },
        attrs=attrs,
    )
    nlat, nlon = grid.shape
    encoding = {
        name: {"chunksizes": (1, 1, nlat, nlon), "dtype": "float32"} for name, *_ in _VARIABLES.values()
    }
    encoding["time"] = {
        "units": f"hours since {np.datetime_as_string(t0, unit='s')}",
        "calendar": "proleptic_gregorian",
        "dtype": "float64",
    }
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4", unlimited_dims=["time"], encoding=encoding)


def _append_frame(path: Path, k: int, fields: dict[str, np.ndarray], hours: float) -> None:
    """Append frame ``k`` (``hours`` after the first) along the unlimited time dimension."""
    import netCDF4

    with netCDF4.Dataset(path, "a") as nc:
        nc["time"][k] = hours
        for key, (name, *_) in _VARIABLES.items():
            nc[name][k, 0] = fields[key].astype(np.float32)


def preview_swe(
    path: str | os.PathLike, png: str | os.PathLike, *, frames: int = 4, overwrite: bool = False
) -> Path:
    """A PNG of one file's geopotential anomaly (about its global mean) at evenly spaced times.

    Args:
        path: a file written by ``generate_swe``.
        png: the PNG to write.
        frames: how many snapshots.
        overwrite: replace an existing PNG.

    Returns:
        The PNG path.
    """
    from sim.plotting import save_field_row

    with xr.open_dataset(path, engine="netcdf4", cache=False) as ds:
        times = ds["time"].values
        picks = np.unique(np.linspace(0, len(times) - 1, min(frames, len(times))).round().astype(int))
        snaps = [np.asarray(ds["geopotential"][int(t), 0].values, dtype=np.float64) for t in picks]
        snaps = [s - s.mean() for s in snaps]
        shape = f"{ds.sizes['latitude']}x{ds.sizes['longitude']}"
        title = f"{Path(path).name}: geopotential anomaly (m^2 s^-2), {shape}"
        labels = [np.datetime_as_string(times[t], unit="h") for t in picks]
    return save_field_row(
        snaps, labels, png, suptitle=title, overwrite=overwrite, extent=(0.0, 360.0, -90.0, 90.0)
    )
