"""2D Navier-Stokes training data: generate trajectories to netCDF, read them back as training windows.

File layout (one netCDF-4 file per data set, written through xarray)::

    dimensions:  sample (unlimited), time, y, x
    vorticity(sample, time, y, x)  float32   w = dv/dx - du/dy, arrays [..., iy, ix]
    forcing(y, x)                  float32   the time-independent vorticity forcing f
    seed(sample)                   int64     the per-sample seed of the initial condition
    coordinates: time (model time units), y, x (cell centres, domain [0, length)), sample
    attributes:  viscosity, dt, drag, length, solver, solver_resolution, resolution, seed,
                 forcing_*, initial_*, sim_version, created, config (the resolved YAML)

The time coordinate starts at ``warmup`` (0: the first frame is the initial condition).
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import xarray as xr

from sim import __version__
from sim.config import (
    ConfigError,
    cfield,
    device_name,
    dump_yaml,
    finite_positive,
    nonnegative,
    positive,
    positive_even,
)
from sim.discretize.periodic import PeriodicGrid2D, spectral_resample
from sim.io import atomic_output, check_output_path
from sim.runtime import resolve_device
from sim.solvers.forcing import vorticity_forcing
from sim.solvers.ns2d import NavierStokes2D, SolverDivergedError
from sim.solvers.random_fields import gaussian_random_field, sample_seed

__all__ = [
    "DataFileError",
    "ForcingConfig",
    "InitialConfig",
    "NS2DDataConfig",
    "NS2DSolverConfig",
    "NS2DWindows",
    "STATES",
    "generate_ns2d",
    "preview_ns2d",
    "state_to_vorticity",
    "velocity_operator",
    "vorticity_to_state",
]

STATES = ("vorticity", "velocity")  # what NS2DWindows can give as the state

_SOLVER_NAME = "sim.solvers.NavierStokes2D: pseudo-spectral vorticity, 2/3 dealiasing, CN-Heun IMEX"


@dataclass(frozen=True)
class NS2DSolverConfig:
    """The solver: ``NavierStokes2D`` at the resolution the equations are solved at."""

    resolution: int = cfield(256, **positive_even())
    viscosity: float = cfield(1e-3, **nonnegative())
    dt: float = cfield(5e-4, **finite_positive())
    drag: float = cfield(0.0, **nonnegative())
    length: float = cfield(1.0, **finite_positive())
    dtype: Literal["float32", "float64"] = "float32"


@dataclass(frozen=True)
class ForcingConfig:
    """The time-independent forcing (see ``sim.solvers.FORCINGS``)."""

    kind: Literal["fno", "kolmogorov", "symmetric", "none"] = "fno"
    amplitude: float = 0.1
    wavenumber: int = cfield(1, **positive())


@dataclass(frozen=True)
class InitialConfig:
    """Initial vorticity: the FNO Gaussian random field ``sigma^2 (-Laplacian + tau^2)^(-alpha)``."""

    kind: Literal["grf"] = "grf"
    alpha: float = cfield(2.5, check=lambda v: v > 1, expected="a float > 1")
    tau: float = cfield(7.0, **positive())
    sigma: float | None = cfield(None, **positive())


@dataclass(frozen=True)
class NS2DDataConfig:
    """A 2D Navier-Stokes data set: ``sim generate ns2d --config configs/data/<name>.yaml``.

    Frames are stored at ``warmup, warmup + record_every, ..., warmup + t_final``.
    """

    solver: NS2DSolverConfig = field(default_factory=NS2DSolverConfig)
    forcing: ForcingConfig = field(default_factory=ForcingConfig)
    initial: InitialConfig = field(default_factory=InitialConfig)
    resolution: int = cfield(64, **positive_even())
    samples: int = cfield(16, **positive())
    batch_size: int = cfield(8, **positive())
    t_final: float = cfield(10.0, **finite_positive())
    record_every: float = cfield(1.0, **finite_positive())
    warmup: float = cfield(0.0, **nonnegative())
    seed: int = cfield(0, **nonnegative())
    output: str = "data/ns2d.nc"
    device: str = cfield("auto", **device_name())

    def __post_init__(self) -> None:
        ratio = self.t_final / self.record_every
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
            raise ConfigError(
                f"t_final: expected a multiple of record_every={self.record_every:g}, got {self.t_final:g}"
            )
        if self.resolution > self.solver.resolution:
            raise ConfigError(
                f"resolution: expected at most solver.resolution={self.solver.resolution} "
                f"(data are stored at or below the solver's resolution), got {self.resolution}"
            )

    @property
    def n_frames(self) -> int:
        """Frames per trajectory (the initial one included)."""
        return round(self.t_final / self.record_every) + 1


class DataFileError(ValueError):
    """A data file that is missing or not in the expected layout."""


def generate_ns2d(
    config: NS2DDataConfig,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Solve the data set's trajectories and write them to one netCDF file.

    Samples are solved in batches of ``config.batch_size`` and appended to the file as they finish, so
    memory does not grow with the number of samples. The file is written under a temporary name and
    renamed when complete: an interrupted or failed run leaves no file that looks whole. Sample ``i``
    depends only on ``(config.seed, i)``, not on the batch size or device (up to float rounding).

    Args:
        config: the data set.
        out: output file; ``config.output`` when None. Its folder must exist.
        overwrite: replace an existing file.
        progress: show a progress bar on stderr.

    Returns:
        The path written.

    Raises:
        OutputError: the folder is missing or the file exists without ``overwrite``.
        SolverDivergedError: a batch became NaN/Inf; the message names the samples, step and time.
    """
    from tqdm.auto import tqdm

    out = Path(config.output if out is None else out)
    check_output_path(out, overwrite=overwrite)  # fail before any work
    device = resolve_device(config.device)
    dtype = torch.float32 if config.solver.dtype == "float32" else torch.float64
    sc = config.solver
    solver = NavierStokes2D(sc.resolution, sc.viscosity, sc.dt, length=sc.length, drag=sc.drag).to(device)
    fine = PeriodicGrid2D(sc.resolution, sc.length)
    coarse = PeriodicGrid2D(config.resolution, sc.length)
    fc = config.forcing
    forcing = vorticity_forcing(
        fc.kind, fine, amplitude=fc.amplitude, wavenumber=fc.wavenumber, dtype=dtype, device=device
    )  # [n, n]
    ic = config.initial
    steps_per_record = max(1, math.ceil(config.record_every / sc.dt - 1e-9))
    steps_warmup = math.ceil(config.warmup / sc.dt - 1e-9) if config.warmup > 0 else 0

    with atomic_output(out, overwrite=overwrite) as tmp:
        bar = tqdm(
            total=config.samples * config.n_frames,
            unit="frame",
            desc=f"ns2d {sc.resolution}^2 -> {config.resolution}^2",
            disable=not progress,
            dynamic_ncols=True,
        )
        with bar:
            for start in range(0, config.samples, config.batch_size):
                stop = min(start + config.batch_size, config.samples)
                seeds = [sample_seed(config.seed, i) for i in range(start, stop)]
                w = gaussian_random_field(
                    sc.resolution,
                    seeds,
                    alpha=ic.alpha,
                    tau=ic.tau,
                    sigma=ic.sigma,
                    length=sc.length,
                    dtype=dtype,
                    device=device,
                )  # [B, n, n]
                frames = []
                steps_done = 0
                try:
                    if config.warmup > 0:
                        w = solver.advance(w, config.warmup, forcing)
                        steps_done += steps_warmup
                    for j in range(config.n_frames):
                        if j > 0:
                            w = solver.advance(w, config.record_every, forcing)
                            steps_done += steps_per_record
                        frames.append(spectral_resample(w, config.resolution).float().cpu())
                        bar.update(stop - start)
                        bar.set_postfix(samples=f"{start}-{stop - 1}", max_w=f"{float(w.abs().max()):.3g}")
                except SolverDivergedError as err:
                    step = steps_done + err.step
                    raise SolverDivergedError(
                        f"samples {start}-{stop - 1}: the solution became NaN/Inf at solver step {step} "
                        f"(t = {step * sc.dt:.6g}) with dt = {sc.dt:g}, resolution {sc.resolution}, "
                        f"viscosity {sc.viscosity:g}: reduce solver.dt or raise solver.resolution",
                        step=step,
                        time=step * sc.dt,
                    ) from None
                block = torch.stack(frames, dim=1).numpy()  # [B, T, m, m]
                if start == 0:
                    _write_first_batch(
                        tmp, config, block, seeds, spectral_resample(forcing, config.resolution), coarse
                    )
                else:
                    _append_batch(tmp, start, block, seeds)
    return out


def _write_first_batch(
    path: Path,
    config: NS2DDataConfig,
    block: np.ndarray,
    seeds: Sequence[int],
    forcing: torch.Tensor,
    grid: PeriodicGrid2D,
) -> None:
    """Create the file with the first batch, the coordinates and the attributes."""
    B, T, m, _ = block.shape
    sc, fc, ic = config.solver, config.forcing, config.initial
    coords = grid.coords(dtype=torch.float64).numpy()
    times = config.warmup + config.record_every * np.arange(T)
    ds = xr.Dataset(
        data_vars={
            "vorticity": (
                ("sample", "time", "y", "x"),
                block,
                {
                    "long_name": "vorticity",
                    "description": "w = dv/dx - du/dy (a pseudoscalar)",
                },
            ),
            "forcing": (
                ("y", "x"),
                forcing.float().cpu().numpy(),
                {
                    "long_name": "vorticity forcing",
                    "description": f"{fc.kind}, amplitude {fc.amplitude:g}, wavenumber {fc.wavenumber}",
                },
            ),
            "seed": (
                ("sample",),
                np.asarray(seeds, dtype=np.int64),
                {
                    "long_name": "initial-condition seed",
                    "description": "sim.solvers.sample_seed(seed, sample)",
                },
            ),
        },
        coords={
            "sample": ("sample", np.arange(B, dtype=np.int64)),
            "time": ("time", times, {"long_name": "time", "units": "model time units"}),
            "y": ("y", coords, {"long_name": "y (cell centres)", "units": "domain length units"}),
            "x": ("x", coords, {"long_name": "x (cell centres)", "units": "domain length units"}),
        },
        attrs={
            "title": "2D incompressible Navier-Stokes, vorticity form, periodic square",
            "viscosity": sc.viscosity,
            "drag": sc.drag,
            "dt": sc.dt,
            "record_every": config.record_every,
            "length": sc.length,
            "solver": _SOLVER_NAME,
            "solver_resolution": sc.resolution,
            "solver_dtype": sc.dtype,
            "resolution": config.resolution,
            "downsampling": "spectral truncation (|k| < resolution/2), cell-centred grids",
            "seed": config.seed,
            "forcing_kind": fc.kind,
            "forcing_amplitude": fc.amplitude,
            "forcing_wavenumber": fc.wavenumber,
            "initial_condition": "Gaussian random field sigma^2 (-Laplacian + tau^2)^(-alpha) (FNO)",
            "initial_alpha": ic.alpha,
            "initial_tau": ic.tau,
            "initial_sigma": ic.tau ** (ic.alpha - 1) if ic.sigma is None else ic.sigma,
            "axis_convention": "arrays [..., y, x]; x = (i + 1/2) length / n; see docs/conventions.md",
            "sim_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": dump_yaml(config),
        },
    )
    encoding = {
        "vorticity": {"chunksizes": (1, 1, m, m), "dtype": "float32"},
        "sample": {"chunksizes": (1024,)},
        "seed": {"chunksizes": (1024,)},
    }
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4", unlimited_dims=["sample"], encoding=encoding)


def _append_batch(path: Path, start: int, block: np.ndarray, seeds: Sequence[int]) -> None:
    """Append a batch of samples along the unlimited ``sample`` dimension."""
    import netCDF4

    stop = start + block.shape[0]
    with netCDF4.Dataset(path, "a") as nc:
        nc["vorticity"][start:stop] = block
        nc["seed"][start:stop] = np.asarray(seeds, dtype=np.int64)
        nc["sample"][start:stop] = np.arange(start, stop, dtype=np.int64)


@functools.lru_cache(maxsize=8)
def velocity_operator(n: int, length: float) -> NavierStokes2D:
    """The solver's spectral operators on an ``n x n`` periodic square of side ``length``:
    ``.velocity(w)`` and its inverse ``.vorticity(uv)`` (shared, stateless; cached per size)."""
    return NavierStokes2D(n, viscosity=0.0, dt=1.0, length=length)


def vorticity_to_state(w: torch.Tensor, state: str, length: float) -> torch.Tensor:
    """Vorticity frames ``[..., n, n]`` as the state ``[..., C, n, n]``: ``C = 1`` for ``"vorticity"``,
    the velocity ``(u, v)`` (``C = 2``, as the solver computes it, float64 inside) for ``"velocity"``."""
    if state == "vorticity":
        return w.unsqueeze(-3)
    if state != "velocity":
        raise ValueError(f"state: expected one of {STATES}, got {state!r}")
    lead, n = w.shape[:-2], w.shape[-1]
    uv = velocity_operator(n, float(length)).velocity(w.reshape(-1, n, n).double())  # [N, 2, n, n]
    return uv.to(w.dtype).reshape(*lead, 2, n, n)


def state_to_vorticity(x: torch.Tensor, state: str, length: float) -> torch.Tensor:
    """The inverse of :func:`vorticity_to_state`: ``[..., C, n, n] -> [..., n, n]`` (for velocity, its
    curl: a divergent part does not enter)."""
    if state == "vorticity":
        return x.squeeze(-3)
    if state != "velocity":
        raise ValueError(f"state: expected one of {STATES}, got {state!r}")
    lead, n = x.shape[:-3], x.shape[-1]
    w = velocity_operator(n, float(length)).vorticity(x.reshape(-1, 2, n, n).double())  # [N, n, n]
    return w.to(x.dtype).reshape(*lead, n, n)


class NS2DWindows(torch.utils.data.Dataset):
    """Training windows ``(inputs, target)`` from a 2D Navier-Stokes file, read lazily.

    A window starting at frame ``t`` of sample ``s`` (frames ``stride`` apart) gives, with ``C`` state
    channels (1 for the vorticity, 2 for the velocity ``(u, v)``)::

        inputs [history * C + 1, y, x]  the state at frames t, t+stride, ... (history frames, oldest
                                        first, channels of a frame together), then the vorticity forcing
        target [horizon * C, y, x]      the state at the next ``horizon`` frames

    The velocity is computed from the stored vorticity by the solver's spectral operator (divergence-
    free, zero mean), so every data file serves both states.

    Only the frames of the requested window are read from disk; the file handle is opened on first use
    in each process, so the data set works with ``DataLoader(num_workers > 0)``.

    Args:
        path: a file written by ``generate_ns2d``.
        history: input frames (>= 1).
        horizon: target frames (>= 1), for unrolled training.
        samples: which samples (indices along ``sample``) to use, e.g. ``range(0, 1000)`` for a training
            split; all when None.
        stride: frames between consecutive model steps (>= 1).
        state: ``"vorticity"`` (a pseudoscalar) or ``"velocity"`` (a vector).

    Raises:
        DataFileError: the file is missing, lacks a variable, or is too short for one window.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        history: int = 1,
        horizon: int = 1,
        samples: Sequence[int] | None = None,
        stride: int = 1,
        state: Literal["vorticity", "velocity"] = "vorticity",
    ):
        self.path = Path(path)
        for name, v in (("history", history), ("horizon", horizon), ("stride", stride)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"NS2DWindows: {name} must be an int >= 1, got {v!r}")
        if state not in STATES:
            raise ValueError(f"NS2DWindows: state must be one of {STATES}, got {state!r}")
        self.history, self.horizon, self.stride, self.state = history, horizon, stride, state
        if not self.path.is_file():
            raise DataFileError(f"{self.path}: no such file")
        with self._open() as ds:
            for var in ("vorticity", "forcing"):
                if var not in ds.variables:
                    raise DataFileError(f"{self.path}: missing variable '{var}' (not a sim ns2d data file?)")
            dims = ds["vorticity"].dims
            if dims != ("sample", "time", "y", "x"):
                raise DataFileError(f"{self.path}: vorticity has dims {dims}, expected (sample, time, y, x)")
            n_samples, n_frames = ds.sizes["sample"], ds.sizes["time"]
            self.attrs = dict(ds.attrs)
            self.times = ds["time"].values
            self.grid_shape = (ds.sizes["y"], ds.sizes["x"])
            if state == "velocity" and (self.grid_shape[0] != self.grid_shape[1] or "length" not in ds.attrs):
                raise DataFileError(
                    f"{self.path}: state 'velocity' needs a square grid and a 'length' attribute, got "
                    f"{self.grid_shape[0]}x{self.grid_shape[1]} and length={ds.attrs.get('length')!r}"
                )
            forcing = ds["forcing"]
            if forcing.dims not in (("y", "x"), ("sample", "y", "x")):
                raise DataFileError(
                    f"{self.path}: forcing has dims {forcing.dims}, expected (y, x) or (sample, y, x)"
                )
            self._shared_forcing = forcing.dims == ("y", "x")
            self._forcing = (
                torch.from_numpy(np.asarray(forcing.values, dtype=np.float32))
                if self._shared_forcing
                else None
            )
        self.samples = list(range(n_samples)) if samples is None else [int(s) for s in samples]
        bad = [s for s in self.samples if not 0 <= s < n_samples]
        if bad:
            raise ValueError(f"NS2DWindows: sample indices {bad[:5]} out of range for {n_samples} samples")
        span = stride * (history + horizon - 1)  # frames from the first input to the last target
        self.windows_per_sample = n_frames - span
        if self.windows_per_sample < 1:
            raise DataFileError(
                f"{self.path}: {n_frames} frames per sample are too few for history={history}, "
                f"horizon={horizon}, stride={stride} (need at least {span + 1})"
            )
        self._ds: xr.Dataset | None = None
        self._pid: int | None = None

    def _open(self) -> xr.Dataset:
        return xr.open_dataset(self.path, engine="netcdf4", cache=False)

    def _dataset(self) -> xr.Dataset:
        if self._ds is None or self._pid != os.getpid():  # reopen in each DataLoader worker
            self._ds = self._open()
            self._pid = os.getpid()
        return self._ds

    @property
    def state_channels(self) -> int:
        """``C``: 1 (vorticity) or 2 (velocity)."""
        return 2 if self.state == "velocity" else 1

    @property
    def in_channels(self) -> int:
        """Channels of ``inputs``: the history of states plus one forcing channel."""
        return self.history * self.state_channels + 1

    def __len__(self) -> int:
        return len(self.samples) * self.windows_per_sample

    def index(self, i: int) -> tuple[int, int]:
        """The (sample, first frame) of window ``i``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        i %= len(self)
        return self.samples[i // self.windows_per_sample], i % self.windows_per_sample

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.index(i)
        ds = self._dataset()
        last = t + self.stride * (self.history + self.horizon - 1)
        frames = np.asarray(
            ds["vorticity"][s, t : last + 1 : self.stride].values, dtype=np.float32
        )  # [h+H, y, x]
        frames = torch.from_numpy(frames)
        if self.state != "vorticity":
            length = float(self.attrs["length"])
            frames = vorticity_to_state(frames, self.state, length).flatten(0, 1)  # [(h+H)*C, y, x]
        if self._shared_forcing:
            forcing = self._forcing
        else:
            forcing = torch.from_numpy(np.asarray(ds["forcing"][s].values, dtype=np.float32))
        n = self.history * self.state_channels
        inputs = torch.cat([frames[:n], forcing[None]], dim=0)  # [history * C + 1, y, x]
        return inputs, frames[n:]  # target [horizon * C, y, x]

    def close(self) -> None:
        """Close the file handle of this process."""
        if self._ds is not None:
            self._ds.close()
            self._ds = None

    def __getstate__(self) -> dict:  # file handles do not travel to worker processes
        state = self.__dict__.copy()
        state["_ds"] = None
        state["_pid"] = None
        return state


def preview_ns2d(
    path: str | os.PathLike,
    png: str | os.PathLike,
    *,
    sample: int = 0,
    frames: int = 5,
    overwrite: bool = False,
) -> Path:
    """A PNG of one sample's vorticity at evenly spaced times, and the forcing.

    Args:
        path: a file written by ``generate_ns2d``.
        png: the PNG to write.
        sample: which sample.
        frames: how many snapshots.
        overwrite: replace an existing PNG.

    Returns:
        The PNG path.
    """
    from sim.plotting import save_field_row

    with xr.open_dataset(path, engine="netcdf4", cache=False) as ds:
        times = ds["time"].values
        picks = np.unique(np.linspace(0, len(times) - 1, min(frames, len(times))).round().astype(int))
        snaps = [np.asarray(ds["vorticity"][sample, int(t)].values) for t in picks]
        forcing = np.asarray(
            ds["forcing"].values if ds["forcing"].ndim == 2 else ds["forcing"][sample].values
        )
        length = float(ds.attrs.get("length", 1.0))
        title = (
            f"{Path(path).name}: sample {sample}, viscosity {ds.attrs.get('viscosity', float('nan')):g}, "
            f"{ds.sizes['y']}x{ds.sizes['x']} (solved at {ds.attrs.get('solver_resolution', '?')})"
        )
    return save_field_row(
        [*snaps, forcing],
        [*(f"w, t = {times[t]:g}" for t in picks), "forcing"],
        png,
        suptitle=title,
        overwrite=overwrite,
        extent=(0.0, length, 0.0, length),
    )
