"""ERA5 in one canonical form, whatever the source: old and new CDS netCDF, CDS ZIPs, WeatherBench2 zarr.

:func:`open_era5` returns a lazy ``xarray.Dataset`` in this form (the form WeatherBench2 and GraphCast use)::

    dimensions:  time, level, latitude, longitude        (in this order in every variable)
    time         datetime64[ns], strictly ascending, no repeats
    level        int64 hPa, strictly ascending (50, ..., 1000; WeatherBench2's order)
    latitude     float64 degrees, ascending (-90 ... 90), the canonical values of the grid's kind
    longitude    float64 degrees in [0, 360), ascending
    variables    float32, WeatherBench2 long names (``ERA5_NAMES`` maps the ECMWF short names):
                   pressure-level  (time, level, latitude, longitude)  geopotential, temperature, ...
                   surface         (time, latitude, longitude)         2m_temperature, ...
                   static          (latitude, longitude)               land_sea_mask, geopotential_at_surface
                 each with attrs units, long_name (when the source has them), source_name, source_file
    attrs        source_convention ("cds_legacy", "cds_2024", "weatherbench2", "generic"; joined by "+" when
                 files differ), source_files (list of str), expver (when the source has one)

Data are dask arrays in chunks of one time step (whole levels and grid); nothing is read until asked.

Conventions recognized (:func:`detect_convention`):

* ``cds_legacy``: the CDS netCDF before 2024 (``grib_to_netcdf``): ``time`` (hours since 1900),
  ``level`` (millibars), latitude 90 -> -90, ECMWF short names, int16 packed with scale_factor/add_offset;
  optionally an ``expver`` dimension (ERA5 final ``1`` and ERA5T ``5`` mixed).
* ``cds_2024``: the new CDS netCDF (cfgrib): ``valid_time`` (seconds since 1970), ``pressure_level`` (hPa,
  decreasing), latitude decreasing, scalar ``number``, string ``expver(valid_time)``, GRIB_* attributes;
  and the ZIP the CDS returns when instant and accumulated variables are mixed.
* ``weatherbench2``: zarr stores with long names and time/level/latitude/longitude (latitude either way).
* ``generic``: ``lat``/``lon`` dimension names, longitude in -180 ... 180, level in Pa (CDO output), ...

Decisions:

* **expver.** Old style (an ``expver`` dimension): the versions are combined element by element, the lowest
  expver first (ERA5 final ``1`` wins over ERA5T ``5`` where both have data; lazy, nothing is compared).
  New style (a string ``expver(valid_time)`` coordinate): dropped; ``attrs["expver"]`` summarizes it.
* **Several files** are grouped by their variables and levels; each group is concatenated along time (files
  sorted by their first time), and the groups are merged (pressure-level with single-level downloads). All
  files must share one grid; merged groups must share their times. A time present in two files is an error
  (duplicates are never dropped silently), and so is a file whose own time axis is not ascending.
* **ZIP** members are extracted to a fresh temporary folder each (netCDF-C cannot read from inside an
  archive, and reading members into memory would defeat laziness); the folder is removed when the last
  lazy array that reads it is garbage collected (or at interpreter exit).
* **Cheap checks only while opening:** layout, coordinates, grid, times, and truncation (from the file's
  header: the size it declares against the size on disk). Values are read only by :func:`check_era5`
  (all-NaN fields), which ``describe_era5`` (``sim data inspect``) calls and a data pipeline should call.
"""

from __future__ import annotations

import glob as _glob
import os
import shutil
import struct
import tempfile
import types
import warnings
import weakref
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from sim.data.ns2d import DataFileError
from sim.discretize.latlon import GridError, LatLonGrid, grid_from_coords

__all__ = [
    "CANONICAL_DIMS",
    "CONVENTIONS",
    "ERA5_NAMES",
    "PRESSURE_LEVEL_VARIABLES",
    "STATIC_VARIABLES",
    "Era5Error",
    "canonical_name",
    "check_era5",
    "describe_era5",
    "detect_convention",
    "open_era5",
]

CANONICAL_DIMS = ("time", "level", "latitude", "longitude")
CONVENTIONS = ("cds_legacy", "cds_2024", "weatherbench2", "generic")


class Era5Error(DataFileError):
    """An ERA5 source that cannot be read in the canonical form: one line naming the file and the problem."""


# ECMWF short names (GRIB shortName and cfgrib's cfVarName) -> WeatherBench2 long names, by kind. ``z`` is
# geopotential on pressure levels and geopotential_at_surface (orography) without a level: see canonical_name.
_PRESSURE_LEVEL_SHORT = {
    "z": "geopotential",
    "t": "temperature",
    "u": "u_component_of_wind",
    "v": "v_component_of_wind",
    "q": "specific_humidity",
    "w": "vertical_velocity",
    "r": "relative_humidity",
    "vo": "vorticity",
    "d": "divergence",
    "pv": "potential_vorticity",
    "o3": "ozone_mass_mixing_ratio",
    "cc": "fraction_of_cloud_cover",
    "clwc": "specific_cloud_liquid_water_content",
    "ciwc": "specific_cloud_ice_water_content",
    "crwc": "specific_rain_water_content",
    "cswc": "specific_snow_water_content",
}
_SURFACE_SHORT = {  # cfVarName first, then the GRIB shortName where it differs
    "t2m": "2m_temperature",
    "2t": "2m_temperature",
    "d2m": "2m_dewpoint_temperature",
    "2d": "2m_dewpoint_temperature",
    "u10": "10m_u_component_of_wind",
    "10u": "10m_u_component_of_wind",
    "v10": "10m_v_component_of_wind",
    "10v": "10m_v_component_of_wind",
    "u100": "100m_u_component_of_wind",
    "100u": "100m_u_component_of_wind",
    "v100": "100m_v_component_of_wind",
    "100v": "100m_v_component_of_wind",
    "fg10": "10m_wind_gust_since_previous_post_processing",
    "10fg": "10m_wind_gust_since_previous_post_processing",
    "msl": "mean_sea_level_pressure",
    "sp": "surface_pressure",
    "tp": "total_precipitation",
    "tcwv": "total_column_water_vapour",
    "tcw": "total_column_water",
    "tcc": "total_cloud_cover",
    "sst": "sea_surface_temperature",
    "skt": "skin_temperature",
    "ci": "sea_ice_cover",
    "siconc": "sea_ice_cover",
    "sd": "snow_depth",
    "tisr": "toa_incident_solar_radiation",
    "ssrd": "surface_solar_radiation_downwards",
    "strd": "surface_thermal_radiation_downwards",
    "ssr": "surface_net_solar_radiation",
    "str": "surface_net_thermal_radiation",
    "e": "evaporation",
    "blh": "boundary_layer_height",
    "cape": "convective_available_potential_energy",
    "lsp": "large_scale_precipitation",
    "cp": "convective_precipitation",
    "sshf": "surface_sensible_heat_flux",
    "slhf": "surface_latent_heat_flux",
}
_STATIC_SHORT = {  # time-invariant fields (``z`` without level too: geopotential_at_surface)
    "lsm": "land_sea_mask",
    "sdor": "standard_deviation_of_orography",
    "slor": "slope_of_sub_gridscale_orography",
    "anor": "angle_of_sub_gridscale_orography",
    "isor": "anisotropy_of_sub_gridscale_orography",
    "cvh": "high_vegetation_cover",
    "cvl": "low_vegetation_cover",
    "tvh": "type_of_high_vegetation",
    "tvl": "type_of_low_vegetation",
    "slt": "soil_type",
    "cl": "lake_cover",
}
_SHORT_NAMES = {**_PRESSURE_LEVEL_SHORT, **_SURFACE_SHORT, **_STATIC_SHORT}

#: ECMWF short names -> WeatherBench2 long names (read-only; ``z`` maps to geopotential here, and to
#: geopotential_at_surface for fields without a level: see :func:`canonical_name`).
ERA5_NAMES = types.MappingProxyType(_SHORT_NAMES)

#: Long names of variables on pressure levels: (time, level, latitude, longitude).
PRESSURE_LEVEL_VARIABLES = frozenset(_PRESSURE_LEVEL_SHORT.values())

#: Long names of time-invariant fields: (latitude, longitude); the first time step if a file has several.
STATIC_VARIABLES = frozenset(_STATIC_SHORT.values()) | {"geopotential_at_surface"}

_LONG_NAMES = frozenset(_SHORT_NAMES.values()) | {"geopotential_at_surface"}

# Dimension names of each role, in the order they are looked for.
_AXIS_NAMES = {
    "time": ("time", "valid_time"),
    "level": ("level", "pressure_level", "isobaricInhPa", "plev", "lev", "pressure"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon"),
}
_PA_UNITS = {"pa", "pascal", "pascals"}
_HPA_UNITS = {"hpa", "millibars", "millibar", "mbar", "mb"}
_KEEP_ATTRS = ("units", "long_name", "standard_name")


def canonical_name(name: str, *, has_level: bool) -> str:
    """The WeatherBench2 long name of a variable name found in a file.

    Args:
        name: an ECMWF short name (``t``, ``t2m``, ``2t``, ...), or already a long name.
        has_level: whether the variable has a pressure-level dimension: ``z`` is ``geopotential`` with one
            and ``geopotential_at_surface`` (orography) without.

    Returns:
        The long name; names that are neither short nor known long names are returned unchanged.
    """
    if name in _LONG_NAMES:
        return name
    if name == "z" and not has_level:
        return "geopotential_at_surface"
    return _SHORT_NAMES.get(name, name)


# --------------------------------------------------------------------------------------------------------
# Convention detection


def _find_dim(ds: xr.Dataset, role: str) -> str | None:
    return next((n for n in _AXIS_NAMES[role] if n in ds.dims), None)


def _grid_variables(ds: xr.Dataset, lat: str | None, lon: str | None) -> list[str]:
    return [n for n, v in ds.data_vars.items() if lat in v.dims and lon in v.dims]


def _seen(ds: xr.Dataset) -> str:
    dims = ", ".join(f"{d}={n}" for d, n in ds.sizes.items()) or "none"
    names = ", ".join(map(str, list(ds.data_vars)[:12])) or "none"
    return f"dims ({dims}), variables [{names}]"


def detect_convention(ds: xr.Dataset, *, source: str | None = None) -> str:
    """Which layout a dataset opened from one file (or store) follows.

    Args:
        ds: the dataset as opened by xarray (CF-decoded, names as in the file).
        source: the file, for the error message (``ds.encoding["source"]`` when None).

    Returns:
        One of :data:`CONVENTIONS`: ``"cds_2024"`` (``valid_time`` or ``pressure_level`` dimensions, or GRIB_*
        attributes), ``"generic"`` (``lat``/``lon`` names, longitudes below 0, level in Pa, or mixed names),
        ``"cds_legacy"`` (ECMWF short names) or ``"weatherbench2"`` (long names).

    Raises:
        Era5Error: no latitude/longitude dimensions, or no time dimension although some variables change
            in time: the message lists the dimensions and variables seen.
    """
    source = source or ds.encoding.get("source", "dataset")
    lat, lon = _find_dim(ds, "latitude"), _find_dim(ds, "longitude")
    if lat is None or lon is None:
        raise Era5Error(
            f"{source}: unknown layout: {_seen(ds)}; expected latitude and longitude (or lat and lon) "
            "dimensions"
        )
    names = _grid_variables(ds, lat, lon)
    if not names:
        raise Era5Error(
            f"{source}: unknown layout: {_seen(ds)}; expected variables on the latitude-longitude grid"
        )
    time = _find_dim(ds, "time")
    level = _find_dim(ds, "level")
    if time is None:
        dynamic = [
            n for n in names if canonical_name(n, has_level=level in ds[n].dims) not in STATIC_VARIABLES
        ]
        if dynamic:
            raise Era5Error(
                f"{source}: unknown layout: {_seen(ds)}; expected a time dimension (time or valid_time) "
                f"for {', '.join(dynamic[:5])}"
            )
    if (
        "valid_time" in ds.dims
        or "pressure_level" in ds.dims
        or any(str(k).startswith("GRIB_") for k in ds.attrs)
        or any(str(k).startswith("GRIB_") for n in names for k in ds[n].attrs)
    ):
        return "cds_2024"
    if lat == "lat" or lon == "lon" or level not in (None, "level"):
        return "generic"
    if level is not None and str(ds[level].attrs.get("units", "")).lower() in _PA_UNITS:
        return "generic"
    if ds[lon].size and float(ds[lon].min()) < 0:
        return "generic"
    short = [n for n in names if n in _SHORT_NAMES and n not in _LONG_NAMES]
    long = [n for n in names if n in _LONG_NAMES]
    if short and not long:
        return "cds_legacy"
    if long and not short:
        return "weatherbench2"
    return "generic"


# --------------------------------------------------------------------------------------------------------
# Sources: paths, globs, lists, zarr stores, ZIPs


@dataclass(frozen=True)
class _Item:
    """One thing to open: a netCDF file or a zarr store; ``label`` names it in messages."""

    label: str
    path: str
    engine: str  # "netcdf4" or "zarr"
    tmpdir: str | None = None  # a folder to remove when the data read from it are gone


def _is_zarr_dir(path: Path) -> bool:
    return path.is_dir() and any(
        (path / n).exists() for n in (".zgroup", ".zattrs", "zarr.json", ".zmetadata")
    )


def _has_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def _resolve(source) -> list[_Item]:
    """The files and stores a source names, in a stable order (globs sorted)."""
    if isinstance(source, (str, os.PathLike)):
        return _resolve_one(source)
    if isinstance(source, Iterable):
        items = [it for s in source for it in _resolve(s)]
        if not items:
            raise Era5Error("open_era5: empty list of sources; expected at least one file or store")
        return items
    raise Era5Error(
        f"open_era5: expected a path, a glob, a list of paths or a zarr store, got {type(source).__name__}"
    )


def _resolve_one(source: str | os.PathLike) -> list[_Item]:
    text = os.fspath(source)
    if "://" in text:  # a remote zarr store (needs fsspec and its protocol's package)
        return [_Item(text, text, "zarr")]
    path = Path(text).expanduser()
    if not path.exists():
        if _has_glob(text):
            matches = sorted(_glob.glob(os.path.expanduser(text)))
            if not matches:
                raise Era5Error(f"{text}: no files match this pattern")
            return [it for m in matches for it in _resolve_one(m)]
        raise Era5Error(f"{text}: no such file or store")
    if path.is_dir():
        if _is_zarr_dir(path):
            return [_Item(text, text, "zarr")]
        raise Era5Error(f"{text}: is a folder but not a zarr store (no .zgroup, .zattrs or zarr.json)")
    if zipfile.is_zipfile(path):
        return _extract_zip(path, text)
    return [_Item(text, text, "netcdf4")]


def _extract_zip(path: Path, label: str) -> list[_Item]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if not members:
                raise Era5Error(f"{label}: empty ZIP archive; expected netCDF members")
            items = []
            for m in sorted(members, key=lambda m: m.filename):
                if not m.filename.endswith((".nc", ".nc4", ".netcdf")):
                    raise Era5Error(
                        f"{label}: member {m.filename} is not netCDF; expected .nc members (GRIB is not "
                        "read: download netCDF)"
                    )
                tmpdir = tempfile.mkdtemp(prefix="sim-era5-")
                target = Path(tmpdir) / Path(m.filename).name
                with zf.open(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                items.append(_Item(f"{label}:{m.filename}", str(target), "netcdf4", tmpdir))
            return items
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise Era5Error(
            f"{label}: cannot read the ZIP archive ({_one_line(err)}); a truncated download?"
        ) from None


# --------------------------------------------------------------------------------------------------------
# Truncation: compare the size a file's header declares with the size on disk (no data are read)

_NC_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8}


def _classic_expected_size(f, version: int) -> int | None:
    """The size in bytes a netCDF classic (CDF-1) or 64-bit-offset (CDF-2) file must have, from its header."""

    def u32() -> int:
        b = f.read(4)
        if len(b) < 4:
            raise EOFError("header ends early")
        return struct.unpack(">I", b)[0]

    def u64() -> int:
        b = f.read(8)
        if len(b) < 8:
            raise EOFError("header ends early")
        return struct.unpack(">Q", b)[0]

    def skip(n: int) -> None:
        if len(f.read(n)) < n:
            raise EOFError("header ends early")

    def name() -> None:
        n = u32()
        skip(n + (-n) % 4)

    def attributes() -> None:
        u32()  # NC_ATTRIBUTE tag or ABSENT
        for _ in range(u32()):
            name()
            nc_type, count = u32(), u32()
            nbytes = count * _NC_TYPE_SIZE.get(nc_type, 1)
            skip(nbytes + (-nbytes) % 4)

    numrecs = u32()
    u32()  # NC_DIMENSION tag or ABSENT
    dims = []
    for _ in range(u32()):
        name()
        dims.append(u32())
    attributes()
    u32()  # NC_VARIABLE tag or ABSENT
    variables = []  # (is_record, bytes per record or in all, begin)
    for _ in range(u32()):
        name()
        dimids = [u32() for _ in range(u32())]
        attributes()
        nc_type = u32()
        u32()  # vsize (capped for huge variables: recomputed below)
        begin = u32() if version == 1 else u64()
        is_record = bool(dimids) and dims[dimids[0]] == 0
        shape = [dims[i] for i in (dimids[1:] if is_record else dimids)]
        variables.append(
            (is_record, int(np.prod(shape, dtype=np.int64)) * _NC_TYPE_SIZE.get(nc_type, 1), begin)
        )
    if numrecs == 0xFFFFFFFF:  # streaming: the record count is not recorded
        return None
    records = [v for v in variables if v[0]]
    recsize = records[0][1] if len(records) == 1 else sum(n + (-n) % 4 for _, n, _ in records)
    end = f.tell()
    for is_record, nbytes, begin in variables:
        if is_record:
            if numrecs:
                end = max(end, begin + (numrecs - 1) * recsize + nbytes)
        else:
            end = max(end, begin + nbytes)
    return end


def _hdf5_expected_size(head: bytes) -> int | None:
    """The end-of-file address an HDF5 superblock (at offset 0) declares, or None if it cannot be read."""
    version = head[8]
    if version in (0, 1):
        size, base_at = head[13], 24 if version == 0 else 28
        eof_at = base_at + 2 * size
    elif version in (2, 3):
        size, base_at = head[9], 12
        eof_at = base_at + 2 * size
    else:
        return None
    if size not in (4, 8) or len(head) < eof_at + size:
        return None
    code = "<I" if size == 4 else "<Q"  # HDF5 is little-endian
    base = struct.unpack(code, head[base_at : base_at + size])[0]
    eof = struct.unpack(code, head[eof_at : eof_at + size])[0]
    if eof == (1 << (8 * size)) - 1:
        return None
    return base + eof


def _check_file(path: str, label: str) -> None:
    """Raise Era5Error for a file that is not netCDF (or GRIB) or is shorter than its header says."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(96)
        if head[:4] == b"GRIB":
            raise Era5Error(
                f"{label}: is a GRIB file; expected netCDF or zarr (download netCDF from the CDS, or convert "
                "it with cfgrib or grib_to_netcdf)"
            )
        expected = None
        if head[:3] == b"CDF" and len(head) >= 4 and head[3] in (1, 2):
            f.seek(4)
            try:
                expected = _classic_expected_size(f, head[3])
            except (EOFError, struct.error, IndexError):
                raise Era5Error(
                    f"{label}: truncated file: its netCDF header ends early ({size} bytes on disk)"
                ) from None
        elif head[:8] == b"\x89HDF\r\n\x1a\n":
            expected = _hdf5_expected_size(head)
        elif head[:3] != b"CDF":
            raise Era5Error(
                f"{label}: not a netCDF file (starts with {head[:8]!r}); expected netCDF-3, netCDF-4 or a "
                "zarr store"
            )
    if expected is not None and size < expected:
        raise Era5Error(f"{label}: truncated file: {size} bytes on disk, expected {expected} from its header")


# --------------------------------------------------------------------------------------------------------
# Opening one file and putting it in canonical form


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 300 else text[:297] + "..."


class _ExtractedStore(xr.backends.NetCDF4DataStore):
    """A netCDF store that can be weakly referenced (to remove its extracted file once unused)."""

    __slots__ = ("__weakref__",)


def _open_item(item: _Item) -> xr.Dataset:
    """Open lazily (no data read), names as in the file, CF-decoded (packed integers become floats)."""
    try:
        if item.engine == "zarr":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # "failed to open with consolidated metadata"
                return xr.open_dataset(item.path, engine="zarr", chunks=None, decode_timedelta=False)
        _check_file(item.path, item.label)
        if item.tmpdir is None:
            store = xr.backends.NetCDF4DataStore.open(item.path, mode="r")
        else:  # an extracted ZIP member lives as long as the lazy arrays that read it (they hold the store)
            store = _ExtractedStore.open(item.path, mode="r")
            weakref.finalize(store, shutil.rmtree, item.tmpdir, ignore_errors=True)
        return xr.open_dataset(store, cache=False, decode_timedelta=False)
    except Era5Error:
        raise
    except Exception as err:
        kind = "a zarr store" if item.engine == "zarr" else "netCDF"
        raise Era5Error(
            f"{item.label}: cannot be read as {kind} ({type(err).__name__}: {_one_line(err)}); truncated "
            "or corrupt?"
        ) from None


def _level_hpa(ds: xr.Dataset, dim: str, label: str) -> np.ndarray:
    values = np.asarray(ds[dim].values, dtype=np.float64)
    units = str(ds[dim].attrs.get("units", "")).strip().lower()
    if units in _PA_UNITS or (units not in _HPA_UNITS and values.size and np.nanmax(values) > 2000):
        values = values / 100.0
    if not np.isfinite(values).all() or (values <= 0).any():
        raise Era5Error(f"{label}: {dim} has values {values.tolist()}; expected positive pressures")
    rounded = np.round(values)
    if not np.allclose(values, rounded, rtol=0, atol=1e-6):
        raise Era5Error(f"{label}: {dim} = {values.tolist()} hPa; expected whole hPa (ERA5 pressure levels)")
    levels = rounded.astype(np.int64)
    if np.unique(levels).size != levels.size:
        raise Era5Error(f"{label}: {dim} repeats a level: {levels.tolist()} hPa; expected distinct levels")
    return levels


def _times(ds: xr.Dataset, label: str) -> np.ndarray:
    index = ds.indexes["time"]
    if isinstance(index, xr.CFTimeIndex):
        try:
            index = index.to_datetimeindex(time_unit="ns")
        except Exception as err:
            raise Era5Error(f"{label}: time cannot be converted to datetime64 ({_one_line(err)})") from None
    values = np.asarray(index)
    if values.dtype.kind != "M":
        raise Era5Error(
            f"{label}: time has dtype {values.dtype} (units {ds['time'].attrs.get('units')!r}); expected CF "
            "dates (e.g. 'hours since 1900-01-01')"
        )
    values = values.astype("datetime64[ns]")
    if np.isnat(values).any():
        raise Era5Error(
            f"{label}: time has missing values (NaT) at index {int(np.flatnonzero(np.isnat(values))[0])}"
        )
    d = np.diff(values)
    if (d == np.timedelta64(0)).any():
        i = int(np.flatnonzero(d == np.timedelta64(0))[0])
        raise Era5Error(f"{label}: duplicated time {_fmt_time(values[i])} at indices {i} and {i + 1}")
    if (d < np.timedelta64(0)).any():
        i = int(np.flatnonzero(d < np.timedelta64(0))[0])
        raise Era5Error(
            f"{label}: times are not ascending: {_fmt_time(values[i])} before {_fmt_time(values[i + 1])} "
            f"(index {i}); expected a sorted time axis"
        )
    return values


def _fmt_time(t) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "s"), unit="s")).replace(":00:00", ":00")


def _fmt_delta(d) -> str:
    seconds = pd.Timedelta(d).total_seconds()
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return str(pd.Timedelta(d))


def _combine_expver(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    """Old-style ``expver`` dimension: element-wise first non-missing value, lowest expver first."""
    raw = ds["expver"].values
    try:
        keys = np.array([int(str(v).strip()) for v in raw])
    except ValueError:
        keys = np.arange(raw.size)
    order = np.argsort(keys, kind="stable")
    parts = [ds.isel(expver=int(i), drop=True) for i in order]
    combined = parts[0]
    for part in parts[1:]:
        combined = combined.fillna(part)
    names = ", ".join(str(int(keys[i])) for i in order)
    return combined, f"{names} combined (first non-missing value, in this order)"


def _expver_summary(values: np.ndarray) -> str:
    labels = [str(v.decode() if isinstance(v, bytes) else v).strip() for v in np.asarray(values).ravel()]
    uniq = sorted(set(labels))
    counts = ", ".join(f"{u} ({labels.count(u)} times)" for u in uniq)
    return f"{counts} (coordinate dropped)"


def _canonicalize(ds: xr.Dataset, label: str, *, time_chunk: int) -> tuple[xr.Dataset, str, LatLonGrid]:
    """One opened file -> canonical form (lazy). Returns the dataset, its convention and its grid."""
    convention = detect_convention(ds, source=label)
    roles = {role: _find_dim(ds, role) for role in _AXIS_NAMES}
    attrs: dict = {}
    if roles["level"] is None:  # one level kept as a scalar coordinate (cfgrib squeezes size-1 dims)
        scalar = next((n for n in _AXIS_NAMES["level"] if n in ds.coords and ds[n].ndim == 0), None)
        on_levels = [
            n
            for n in _grid_variables(ds, roles["latitude"], roles["longitude"])
            if canonical_name(str(n), has_level=True) in PRESSURE_LEVEL_VARIABLES
        ]
        if scalar is not None and on_levels:
            ds = ds.assign(
                {
                    n: ds[n].expand_dims(scalar, axis=1 if roles["time"] in ds[n].dims else 0)
                    for n in on_levels
                }
            )
            roles["level"] = scalar
    # Drop the names of other roles' candidates that are not dimensions (e.g. a scalar 'time' beside
    # 'valid_time'), and every other coordinate except expver, which is handled below.
    keep = {d for d in roles.values() if d} | {"expver"}
    ds = ds.drop_vars([c for c in ds.coords if c not in keep and c not in ds.dims])
    if "expver" in ds.coords and "expver" not in ds.dims:
        attrs["expver"] = _expver_summary(ds["expver"].values)  # a small coordinate, read before chunking
        ds = ds.drop_vars("expver")
    # Squeeze size-1 extra dimensions (number, step, ...); refuse larger ones (except expver).
    for dim, size in list(ds.sizes.items()):
        if dim in roles.values() or dim == "expver":
            continue
        if size != 1:
            what = "ensemble members" if dim == "number" else f"dimension '{dim}'"
            raise Era5Error(
                f"{label}: unexpected {what} (size {size}); expected only time, level, latitude, longitude"
            )
        ds = ds.isel({dim: 0}, drop=True)
    ds = ds[_grid_variables(ds, roles["latitude"], roles["longitude"])]
    ds = ds.chunk({d: (time_chunk if d == roles["time"] else -1) for d in ds.dims})
    if "expver" in ds.dims:
        ds, attrs["expver"] = _combine_expver(ds)
    ds = ds.rename({orig: role for role, orig in roles.items() if orig is not None and orig != role})

    # Coordinates.
    if "time" in ds.dims:
        ds = ds.assign_coords(time=("time", _times(ds, label), {"long_name": "time"}))
    if "level" in ds.dims:
        levels = _level_hpa(ds, "level", label)
        ds = ds.assign_coords(level=("level", levels, {"units": "hPa", "long_name": "pressure level"}))
        if (np.diff(levels) < 0).all():
            ds = ds.isel(level=slice(None, None, -1))
        elif (np.diff(levels) < 0).any():
            ds = ds.isel(level=np.argsort(levels))
    lat = np.asarray(ds["latitude"].values, dtype=np.float64)
    if lat.size > 1 and (np.diff(lat) < 0).all():
        ds = ds.isel(latitude=slice(None, None, -1))
        lat = lat[::-1]
    lon = np.asarray(ds["longitude"].values, dtype=np.float64) % 360.0
    lon[lon >= 360.0] = 0.0  # -tiny % 360 rounds to 360
    if lon.size > 1 and (np.diff(lon) <= 0).any():
        k = int(np.argmin(lon))
        if lon.size > 1 and (np.diff(np.roll(lon, -k)) > 0).all():
            ds = ds.roll(longitude=-k, roll_coords=True)
            lon = np.roll(lon, -k)
        else:
            order = np.argsort(lon, kind="stable")
            ds = ds.isel(longitude=order)
            lon = lon[order]
    try:
        grid = grid_from_coords(lat, lon)
    except GridError as err:
        raise Era5Error(f"{label}: {err}") from None
    ds = ds.assign_coords(
        latitude=("latitude", grid.lat, {"units": "degrees_north", "long_name": "latitude"}),
        longitude=("longitude", grid.lon, {"units": "degrees_east", "long_name": "longitude"}),
    )

    # Variables: long names, canonical dimension order, float32, tidy attributes.
    out = {}
    for name, var in ds.data_vars.items():
        has_level = "level" in var.dims
        if str(var.attrs.get("GRIB_typeOfLevel", "")) == "isobaricInhPa":
            has_level = True
        long = canonical_name(str(name), has_level=has_level)
        if long in out:
            raise Era5Error(
                f"{label}: variables {out[long].attrs['source_name']!r} and {name!r} are both {long}"
            )
        if long in PRESSURE_LEVEL_VARIABLES and "level" not in var.dims:
            raise Era5Error(
                f"{label}: {name} ({long}) has no level dimension; expected pressure-level data with a level "
                "coordinate (the CDS drops it when one level is downloaded)"
            )
        if long in STATIC_VARIABLES and "time" in var.dims:
            var = var.isel(time=0, drop=True)
        if long not in PRESSURE_LEVEL_VARIABLES and "level" in var.dims and long in _LONG_NAMES:
            raise Era5Error(f"{label}: {name} ({long}) has a level dimension; expected a single-level field")
        var = var.transpose(*[d for d in CANONICAL_DIMS if d in var.dims]).astype(np.float32)
        var.attrs = {k: var.attrs[k] for k in _KEEP_ATTRS if k in var.attrs}
        var.attrs.update(source_name=str(name), source_file=label)
        var.encoding = {}
        out[long] = var
    result = xr.Dataset(out, attrs=attrs)
    for coord in ("level", "latitude", "longitude", "time"):
        if coord in result.coords:
            result[coord].encoding = {}
    return result, convention, grid


# --------------------------------------------------------------------------------------------------------
# Merging several files


@dataclass
class _Part:
    label: str
    ds: xr.Dataset
    convention: str
    grid: LatLonGrid


def _describe_times(t: np.ndarray) -> str:
    if t.size == 0:
        return "no times"
    return f"{t.size} times {_fmt_time(t[0])} ... {_fmt_time(t[-1])}"


def _concat_in_time(parts: list[_Part]) -> xr.Dataset:
    parts = sorted(parts, key=lambda p: p.ds["time"].values[0])
    for a, b in zip(parts, parts[1:], strict=False):
        ta, tb = a.ds["time"].values, b.ds["time"].values
        common = np.intersect1d(ta, tb)
        if common.size:
            raise Era5Error(
                f"{b.label}: duplicated time {_fmt_time(common[0])} (also in {a.label}); expected each time "
                "in one file only"
            )
        if tb[0] < ta[-1]:
            raise Era5Error(
                f"{b.label}: times interleave with those of {a.label}; expected consecutive ranges"
            )
    if len(parts) == 1:
        return parts[0].ds
    return xr.concat(
        [p.ds for p in parts],
        dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="exact",
    )


def _merge(parts: list[_Part]) -> xr.Dataset:
    first = parts[0]
    for p in parts[1:]:
        if p.grid != first.grid:
            raise Era5Error(
                f"{p.label}: mixed grids: {p.grid.nlat} x {p.grid.nlon} ({p.grid.kind}) here but "
                f"{first.grid.nlat} x {first.grid.nlon} ({first.grid.kind}) in {first.label}; expected one "
                "grid"
            )
    static: dict[str, xr.DataArray] = {}  # the first file's, for fields without time
    groups: dict[tuple, list[_Part]] = {}  # (variables, levels) -> files to concatenate in time
    for p in parts:
        dynamic = []
        for name, var in p.ds.data_vars.items():
            if "time" in var.dims:
                dynamic.append(str(name))
            else:
                static.setdefault(str(name), var)
        if not dynamic:
            continue
        levels = tuple(p.ds["level"].values.tolist()) if "level" in p.ds[dynamic].dims else ()
        groups.setdefault((tuple(sorted(dynamic)), levels), []).append(
            _Part(p.label, p.ds[dynamic], p.convention, p.grid)
        )
    merged: list[tuple[str, xr.Dataset]] = []
    owner: dict[str, str] = {}
    for members in groups.values():
        ds = _concat_in_time(members)
        label = members[0].label
        for name in ds.data_vars:
            if name in owner:
                raise Era5Error(
                    f"{label}: {name} is also in {owner[name]} with other levels or variables; expected each "
                    "variable in one set of files"
                )
            owner[str(name)] = label
        if merged:
            t0, t1 = merged[0][1]["time"].values, ds["time"].values
            if not np.array_equal(t0, t1):
                raise Era5Error(
                    f"{label}: {_describe_times(t1)}, but {merged[0][0]} has {_describe_times(t0)}; files "
                    "with different variables must cover the same times"
                )
            if "level" in ds.dims and "level" in merged[0][1].dims:
                l0, l1 = merged[0][1]["level"].values, ds["level"].values
                if not np.array_equal(l0, l1):
                    raise Era5Error(
                        f"{label}: levels {l1.tolist()} hPa, but {merged[0][0]} has {l0.tolist()}; expected "
                        "the same pressure levels in every file"
                    )
        merged.append((label, ds))
    static_ds = xr.Dataset(static)
    datasets = [ds for _, ds in merged] + ([static_ds] if static else [])
    if not datasets:
        raise Era5Error(f"{first.label}: no variables on the grid")
    try:
        return xr.merge(datasets, join="outer", compat="override", combine_attrs="drop_conflicts")
    except ValueError as err:  # pragma: no cover - the checks above catch the known cases
        raise Era5Error(f"{first.label}: cannot merge the files ({_one_line(err)})") from None


# --------------------------------------------------------------------------------------------------------
# Public entry points


def open_era5(
    source,
    *,
    variables: Sequence[str] | str | None = None,
    levels: Sequence[int] | int | None = None,
    time_chunk: int = 1,
) -> xr.Dataset:
    """Open ERA5 from any of the usual sources in the canonical form (see the module docstring), lazily.

    Args:
        source: a netCDF file, a glob (``"era5/*.nc"``), a list of paths or globs, a zarr store (folder or
            URL), or a ZIP from the CDS. Several files are merged (pressure-level with single-level
            downloads; consecutive time ranges are concatenated).
        variables: canonical (WeatherBench2) names to keep, e.g. ``["geopotential", "2m_temperature"]``
            (short names such as ``"t2m"`` are accepted too); all when None.
        levels: pressure levels in hPa to keep (ascending in the result); all when None.
        time_chunk: time steps per dask chunk (1: one chunk per time step, whole levels and grid).

    Returns:
        ``xarray.Dataset``: variables ``(time, level, latitude, longitude)`` float32 (surface variables
        without level, static ones without time), coordinates ``time`` datetime64[ns], ``level`` int64 hPa,
        ``latitude``/``longitude`` float64 degrees; attrs ``source_convention``, ``source_files`` and
        the global attributes all files agree on (e.g. the rotation axis of ``sim generate swe`` data;
        not encodings, GRIB_*, history, title or creation dates).

    Raises:
        Era5Error: one line naming the file and the problem: nothing matches, unreadable or truncated file,
            unknown layout, mixed grids, duplicated or unsorted times, missing requested variables or
            levels, an irregular or incomplete grid.
    """
    if isinstance(time_chunk, bool) or not isinstance(time_chunk, int) or time_chunk < 1:
        raise ValueError(f"open_era5: time_chunk must be an int >= 1, got {time_chunk!r}")
    items = _resolve(source)
    parts, shared = [], None
    for item in items:
        raw = _open_item(item)
        # global attributes every file agrees on (physics metadata such as a rotation axis) are kept
        found = {str(k): v for k, v in raw.attrs.items() if not str(k).startswith(_DROPPED_ATTR_PREFIXES)}
        shared = found if shared is None else {k: v for k, v in shared.items() if _same(found.get(k), v)}
        ds, convention, grid = _canonicalize(raw, item.label, time_chunk=time_chunk)
        parts.append(_Part(item.label, ds, convention, grid))
    ds = _merge(parts)
    label = items[0].label if len(items) == 1 else f"{items[0].label} (and {len(items) - 1} more)"
    ds = _select(ds, label, variables=variables, levels=levels)
    ds = ds[sorted(ds.data_vars, key=_variable_order)]
    conventions = list(dict.fromkeys(p.convention for p in parts))
    expvers = list(dict.fromkeys(p.ds.attrs["expver"] for p in parts if "expver" in p.ds.attrs))
    ds.attrs = {
        **(shared or {}),
        "source_convention": "+".join(conventions),
        "source_files": [it.label for it in items],
    }
    if expvers:
        ds.attrs["expver"] = "; ".join(expvers)
    return ds


# Global attributes not carried over: encodings and provenance of one file, not of the merged data.
_DROPPED_ATTR_PREFIXES = ("_", "GRIB_", "history", "created", "title", "Conventions", "institution")


def _same(a, b) -> bool:
    """Whether two attribute values are equal (arrays element by element)."""
    if a is None or b is None:
        return False
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b


def _variable_order(name) -> tuple:
    name = str(name)
    kind = 0 if name in PRESSURE_LEVEL_VARIABLES else 2 if name in STATIC_VARIABLES else 1
    return (kind, name)


def _select(ds: xr.Dataset, label: str, *, variables, levels) -> xr.Dataset:
    if variables is not None:
        wanted = [variables] if isinstance(variables, str) else list(variables)
        if not wanted:
            raise Era5Error(f"{label}: variables=[] selects nothing; expected at least one name or None")
        names = []
        for w in wanted:
            name = w if w in ds.data_vars else _SHORT_NAMES.get(w, w)
            if name == "geopotential" and name not in ds.data_vars and w == "z":
                name = "geopotential_at_surface"
            names.append(name)
        missing = [w for w, n in zip(wanted, names, strict=True) if n not in ds.data_vars]
        if missing:
            what = "none of the requested variables" if len(missing) == len(wanted) else "missing variables"
            raise Era5Error(f"{label}: {what} {missing}; available: {sorted(map(str, ds.data_vars))}")
        ds = ds[list(dict.fromkeys(names))]
        if "level" in ds.coords and not any("level" in v.dims for v in ds.data_vars.values()):
            ds = ds.drop_vars("level")
    if levels is not None:
        wanted_levels = [levels] if isinstance(levels, (int, np.integer)) else list(levels)
        if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in wanted_levels):
            raise Era5Error(f"{label}: levels must be whole hPa (ints), got {wanted_levels}")
        if "level" not in ds.dims:
            raise Era5Error(f"{label}: levels={wanted_levels} requested but no variable has pressure levels")
        have = ds["level"].values.tolist()
        missing = [int(x) for x in wanted_levels if int(x) not in have]
        if missing:
            raise Era5Error(f"{label}: missing levels {missing} hPa; available: {have}")
        ds = ds.sel(level=sorted(set(int(x) for x in wanted_levels)))
    return ds


def check_era5(ds: xr.Dataset, *, full: bool = False) -> None:
    """Check that no field of an ``open_era5`` dataset is entirely missing (all NaN), reading values.

    A field is one variable at one time (and level). By default only the first, middle and last time steps
    are read (a few fields per variable, streamed); ``full=True`` reads everything (the dataset may be larger
    than memory: it is reduced chunk by chunk).

    Args:
        ds: a dataset returned by :func:`open_era5`.
        full: check every time step.

    Raises:
        Era5Error: naming the file, the variable, the level and time of the first all-NaN field, and how
            many there are.
    """
    import dask

    checks = {}
    for name, var in ds.data_vars.items():
        if "time" in var.dims and not full and var.sizes["time"] > 3:
            n = var.sizes["time"]
            var = var.isel(time=sorted({0, n // 2, n - 1}))
        checks[name] = var.isnull().all(("latitude", "longitude"))
    (results,) = dask.compute(checks)
    for name, empty in results.items():
        bad = np.argwhere(np.asarray(empty.values))
        if empty.ndim == 0:
            if bool(empty):
                source = ds[name].attrs.get("source_file", "dataset")
                raise Era5Error(f"{source}: {name} is all NaN; expected values")
            continue
        if bad.size:
            where = dict(zip(empty.dims, bad[0], strict=True))
            parts = []
            if "level" in where:
                parts.append(f"level {int(empty['level'].values[where['level']])} hPa")
            if "time" in where:
                parts.append(f"time {_fmt_time(empty['time'].values[where['time']])}")
            more = f" (and {len(bad) - 1} more fields)" if len(bad) > 1 else ""
            source = ds[name].attrs.get("source_file", "dataset")
            raise Era5Error(
                f"{source}: {name} is all NaN at {', '.join(parts)}{more}; expected values (a missing expver "
                "or a failed download?)"
            )


def describe_era5(source, *, full: bool = False) -> str:
    """A human summary of an ERA5 source, for ``sim data inspect``; never raises.

    Lists the convention, files, variables (with levels and units), grid (kind, shape, spacing), time range
    and step, and missing values (:func:`check_era5`, on the first, middle and last time steps unless
    ``full``). For a source that cannot be read, the text says why.

    Args:
        source: anything :func:`open_era5` accepts.
        full: check every time step for all-NaN fields.

    Returns:
        Multi-line text (no trailing newline).
    """
    shown = os.fspath(source) if isinstance(source, (str, os.PathLike)) else repr(source)
    lines = [f"source: {shown}"]
    try:
        ds = open_era5(source)
    except Exception as err:
        lines.append(f"problem: {_one_line(err)}")
        return "\n".join(lines)
    try:
        lines += _summary(ds)
        try:
            check_era5(ds, full=full)
            scope = "all time steps" if full else "the first, middle and last time steps"
            lines.append(f"missing values: no all-NaN field in {scope}")
        except Exception as err:
            lines.append(f"problem: {_one_line(err)}")
    except Exception as err:  # pragma: no cover - a summary must never crash the command
        lines.append(f"problem: cannot summarize ({type(err).__name__}: {_one_line(err)})")
    return "\n".join(lines)


def _summary(ds: xr.Dataset) -> list[str]:
    files = ds.attrs.get("source_files", [])
    lines = [f"convention: {ds.attrs.get('source_convention', '?')}", f"files ({len(files)}):"]
    lines += [f"  {f}" for f in files[:20]] + ([f"  ... ({len(files) - 20} more)"] if len(files) > 20 else [])
    if "expver" in ds.attrs:
        lines.append(f"expver: {ds.attrs['expver']}")
    lines.append(f"variables ({len(ds.data_vars)}):")
    width = max((len(str(n)) for n in ds.data_vars), default=0)
    for name, var in ds.data_vars.items():
        dims = ", ".join(map(str, var.dims))
        units = var.attrs.get("units", "")
        src = var.attrs.get("source_name", name)
        extra = f" (from {src})" if src != name else ""
        lines.append(f"  {str(name):<{width}}  ({dims})  {units}{extra}".rstrip())
    if "level" in ds.coords:
        lines.append(f"levels ({ds.sizes['level']}): {', '.join(map(str, ds['level'].values.tolist()))} hPa")
    lat, lon = ds["latitude"].values, ds["longitude"].values
    grid = grid_from_coords(lat, lon)
    dlat = 180.0 / (grid.nlat - 1) if grid.kind == "equiangular_with_poles" else 180.0 / grid.nlat
    spacing = (
        f"{dlat:g} x {grid.dlon:g} degrees"
        if grid.kind != "gaussian"
        else f"Gaussian x {grid.dlon:g} degrees"
    )
    lines.append(
        f"grid: {grid.nlat} x {grid.nlon} {grid.kind} ({spacing}), latitude {lat[0]:g} ... {lat[-1]:g}, "
        f"longitude {lon[0]:g} ... {lon[-1]:g}"
    )
    if "time" in ds.coords:
        t = ds["time"].values
        step = ""
        if t.size > 1:
            d = np.diff(t)
            step = (
                f", every {_fmt_delta(d[0])}"
                if (d == d[0]).all()
                else f", irregular steps {_fmt_delta(d.min())} to {_fmt_delta(d.max())}"
            )
        lines.append(f"time: {_describe_times(t)}{step}")
    return lines
