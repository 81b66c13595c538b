"""Shared helpers of the evaluation stage: D4 elements on vorticity, reading data and rollout files."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from sim.data.ns2d import DataFileError
from sim.groups import FieldType, act, dihedral

GROUP = dihedral(4)
_PSEUDOSCALAR = FieldType.parse(GROUP, "pseudoscalar")

# r^k s^m with s the mirror x -> -x (applied first) and r a quarter turn counter-clockwise.
_ELEMENT_NAMES = {
    0: "identity",
    1: "rot90",
    2: "rot180",
    3: "rot270",
    4: "mirror x",
    5: "mirror x, rot90",
    6: "mirror x, rot180",
    7: "mirror x, rot270",
}


def check_element(element: int | None) -> int:
    """The D4 element as an int ``0..7`` (None is the identity, 0).

    Raises:
        ValueError: not an int in ``0..7``.
    """
    if element is None:
        return 0
    if isinstance(element, bool) or not isinstance(element, (int, np.integer)) or not 0 <= element < 8:
        raise ValueError(f"element: expected None or a D4 element, an int in 0..7, got {element!r}")
    return int(element)


def element_name(element: int | None) -> str:
    """A short name of a D4 element, e.g. ``"rot90 (g=1)"``; ``"identity (g=0)"`` for None or 0."""
    g = check_element(element)
    return f"{_ELEMENT_NAMES[g]} (g={g})"


def transform_vorticity(x: torch.Tensor, element: int | None) -> torch.Tensor:
    """Apply a D4 element to pseudoscalar fields (vorticity, its forcing) with ``sim.groups.act``.

    Args:
        x: ``[..., H, W]`` (at least 2 dims).
        element: ``0..7`` or None (identity: ``x`` is returned as is).

    Returns:
        ``[..., H', W']``, the transformed fields (``H' = W``, ``W' = H`` after an odd quarter turn).
    """
    g = check_element(element)
    if g == 0:
        return x
    lead, (H, W) = x.shape[:-2], x.shape[-2:]
    flat = x.reshape(-1, 1, H, W)  # [N, 1, H, W]: one pseudoscalar per item
    out = act(flat, _PSEUDOSCALAR, g)  # [N, 1, H', W']
    return out.reshape(*lead, *out.shape[-2:])


def check_int(name: str, value, *, minimum: int) -> int:
    """``value`` as an int ``>= minimum``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def check_blowup_factor(value) -> float:
    """The blow-up threshold of a rollout, a float > 1 (or inf); ValueError otherwise."""
    if not (isinstance(value, (int, float)) and value > 1):
        raise ValueError(f"blowup_factor: expected a float > 1 (or inf), got {value!r}")
    return float(value)


def check_samples(samples, n_samples: int) -> np.ndarray:
    """The sample positions ``[S]`` int to roll out: all ``n_samples`` when None.

    Raises:
        ValueError: none given, or indices out of range.
    """
    picks = np.arange(n_samples) if samples is None else np.asarray([int(s) for s in samples])
    if picks.ndim != 1 or picks.size == 0:
        raise ValueError("samples: expected at least one sample index")
    bad = picks[(picks < 0) | (picks >= n_samples)]
    if bad.size:
        raise ValueError(f"samples: indices {bad[:5].tolist()} out of range for {n_samples} samples")
    return picks


def check_history_fits(path, n_frames: int, *, start: int, history: int, stride: int) -> None:
    """Raise DataFileError unless frames ``start, start + stride, ...`` (``history`` of them) exist."""
    need = start + (history - 1) * stride + 1
    if need > n_frames:
        raise DataFileError(
            f"{path}: {n_frames} frames per sample are too few for start={start}, "
            f"history={history} and stride={stride} (need at least {need})"
        )


def check_extra_attrs(attrs, reserved, *, who: str) -> dict:
    """The caller's extra global attributes, as netCDF values; ValueError if one is written by ``who``."""
    extra = dict(attrs or {})
    clash = sorted(set(extra) & set(reserved))
    if clash:
        raise ValueError(f"attrs: {clash} are written by {who} itself; use other names")
    return {k: netcdf_attr(v) for k, v in extra.items()}


@dataclass(frozen=True)
class SourceInfo:
    """What the evaluation needs to know about a 2D Navier-Stokes data file (``sim.data.ns2d`` layout)."""

    path: Path
    n_samples: int
    n_frames: int
    ny: int
    nx: int
    times: np.ndarray  # [time]
    shared_forcing: bool
    has_forcing: bool
    attrs: dict

    @property
    def frame_interval(self) -> float:
        """Time between stored frames (NaN for a single frame)."""
        return float(self.times[1] - self.times[0]) if self.n_frames > 1 else math.nan


def open_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Open a netCDF file lazily with xarray.

    Raises:
        DataFileError: the file is missing or not netCDF, in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        return xr.open_dataset(path, engine="netcdf4", cache=False)
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataFileError(f"{path}: cannot be read as netCDF ({reason})") from None


def open_source(path: str | os.PathLike) -> SourceInfo:
    """Check the layout of a data file and read its metadata.

    Raises:
        DataFileError: missing file, variable or wrong dims.
    """
    path = Path(path)
    with open_netcdf(path) as ds:
        if "vorticity" not in ds.variables:
            raise DataFileError(f"{path}: missing variable 'vorticity' (not a sim ns2d data file?)")
        dims = ds["vorticity"].dims
        if dims != ("sample", "time", "y", "x"):
            raise DataFileError(f"{path}: vorticity has dims {dims}, expected (sample, time, y, x)")
        shared = True
        if "forcing" in ds.variables:
            fdims = ds["forcing"].dims
            if fdims not in (("y", "x"), ("sample", "y", "x")):
                raise DataFileError(f"{path}: forcing has dims {fdims}, expected (y, x) or (sample, y, x)")
            shared = fdims == ("y", "x")
        times = ds["time"].values if "time" in ds.variables else np.arange(ds.sizes["time"], dtype=float)
        return SourceInfo(
            path=path,
            n_samples=ds.sizes["sample"],
            n_frames=ds.sizes["time"],
            ny=ds.sizes["y"],
            nx=ds.sizes["x"],
            times=np.asarray(times, dtype=np.float64),
            shared_forcing=shared,
            has_forcing="forcing" in ds.variables,
            attrs=dict(ds.attrs),
        )


def sample_positions(ds: xr.Dataset, samples: np.ndarray) -> np.ndarray:
    """Positions along ``sample`` of the given sample indices (the coordinate values) of a data file."""
    coord = np.asarray(ds["sample"].values) if "sample" in ds.coords else np.arange(ds.sizes["sample"])
    lookup = {int(s): i for i, s in enumerate(coord)}
    missing = [int(s) for s in samples if int(s) not in lookup]
    if missing:
        raise DataFileError(f"samples {missing[:5]} are not in the data file's 'sample' coordinate")
    return np.asarray([lookup[int(s)] for s in samples], dtype=np.int64)


def read_frames(ds: xr.Dataset, positions: np.ndarray, first: int, stop: int, *, step: int = 1) -> np.ndarray:
    """Vorticity frames ``first, first + step, ...`` (before ``stop``) of the samples at ``positions``,
    ``[S, L, y, x]``."""
    block = ds["vorticity"].isel(sample=xr.DataArray(positions, dims="s"), time=slice(first, stop, step))
    return np.asarray(block.values, dtype=np.float32)  # [S, L, y, x]


def relative_link(target: str | os.PathLike, base: Path) -> str:
    """``target`` relative to the folder ``base`` (for links in a report), or absolute on another drive."""
    try:
        return os.path.relpath(Path(target).resolve(), Path(base).resolve())
    except ValueError:  # another drive
        return str(Path(target).resolve())


def netcdf_attr(value):
    """A value netCDF can store as an attribute: str/int/float unchanged, bool as int, others as str."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    if value is None:
        return ""
    return str(value)


def reusable_rollout(
    path: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    attrs: Mapping[str, object],
    coords: Mapping[str, object] | None = None,
) -> dict | None:
    """The attributes of the rollout file at ``path`` when a study may keep it instead of rolling out again,
    else None.

    Kept when the file exists, is at least as new as ``checkpoint`` (the weights it was rolled out from;
    None: never keep), records its ``wall_seconds`` (so the time per step it was made at can still be
    reported), has the attributes ``attrs`` and the coordinate values ``coords`` (e.g. the samples or the
    initial times); a file that cannot be read is not kept.
    """
    path = Path(path)
    if not checkpoint or not path.is_file() or path.stat().st_mtime < Path(checkpoint).stat().st_mtime:
        return None
    try:
        with xr.open_dataset(path, engine="netcdf4", cache=False) as ds:
            found = dict(ds.attrs)
            same = all(k in ds.coords and _same(ds[k].values, v) for k, v in (coords or {}).items())
    except (OSError, ValueError):
        return None
    if not same or "wall_seconds" not in found:
        return None
    if not all(k in found and _same(found[k], v) for k, v in attrs.items()):
        return None
    return found


def _same(found, wanted) -> bool:
    """Whether a stored value (attribute or coordinate) equals the wanted one, as stored (bools as ints,
    datetimes at ns)."""
    found, wanted = np.asarray(found), np.asarray(netcdf_attr(wanted) if np.ndim(wanted) == 0 else wanted)
    if np.issubdtype(found.dtype, np.datetime64):
        wanted = wanted.astype("M8[ns]")
    return found.shape == wanted.shape and bool((found == wanted).all())
