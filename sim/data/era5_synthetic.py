"""Small but faithful ERA5 files in each convention that :func:`sim.data.era5.open_era5` reads, with smooth,
physically plausible fields, for tests and benchmarks (no download needed).

Every field is a pure function of the point ``(time, level, latitude, longitude)``
(:func:`sample_field`), so the values :func:`open_era5` returns can be compared with
``sample_field(name, times, levels, grid.lat, grid.lon)`` evaluated on the canonical grid, whatever the
orientation or packing of the file. Fields are not symmetric in latitude or longitude and change with time,
so a flipped, rolled or shuffled axis shows.

Layouts written (``convention=``):

* ``"cds_legacy"``: netCDF-3 64-bit offset as ``grib_to_netcdf`` wrote it: ``time`` (int32 hours since
  1900-01-01, unlimited), ``level`` (int32 millibars), latitude 90 -> -90, longitude 0 -> 360 - d (float32),
  short names, int16 packed (scale_factor, add_offset, _FillValue = missing_value = -32767); with
  ``expver_split`` an ``expver`` dimension ``[1, 5]`` (ERA5 before the split index, ERA5T from it).
* ``"cds_2024"``: netCDF-4 as the new CDS writes it (cfgrib): ``valid_time`` (int64 seconds since 1970),
  ``pressure_level`` (float64 hPa, decreasing), latitude decreasing, scalar ``number``, string
  ``expver(valid_time)`` (``"0001"``, ``"0005"`` from ``expver_split``), float32 with NaN fill, GRIB_*
  attributes. A path ending in ``.zip`` gives the CDS ZIP: ``data_stream-oper_stepType-instant.nc`` and
  ``data_stream-oper_stepType-accum.nc`` (total_precipitation and other accumulations).
* ``"weatherbench2"``: a zarr (v2, consolidated) store with long names, ``time/level/latitude/longitude``,
  level int64 ascending, latitude ascending (or descending with ``latitude_descending=True``), chunks of one
  time step, static fields ``(latitude, longitude)``.
* ``"generic"``: netCDF-4 with ``lat``/``lon`` dimensions, longitude in ``[-180, 180)``, ``plev`` in Pa,
  short names (the layout of CDO output).
"""

from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from sim.discretize.latlon import equiangular_grid
from sim.io import OutputError, atomic_output

__all__ = ["DEFAULT_VARIABLES", "SAMPLE_CONVENTIONS", "sample_field", "sample_times", "write_era5_sample"]

SAMPLE_CONVENTIONS = ("cds_legacy", "cds_2024", "weatherbench2", "generic")

DEFAULT_VARIABLES = (
    "geopotential",
    "temperature",
    "u_component_of_wind",
    "v_component_of_wind",
    "specific_humidity",
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "total_precipitation",
)

# long name -> (short name, units, long_name attribute, GRIB paramId, pressure level?, static?, accumulated?)
_META = {
    "geopotential": ("z", "m**2 s**-2", "Geopotential", 129, True, False, False),
    "temperature": ("t", "K", "Temperature", 130, True, False, False),
    "u_component_of_wind": ("u", "m s**-1", "U component of wind", 131, True, False, False),
    "v_component_of_wind": ("v", "m s**-1", "V component of wind", 132, True, False, False),
    "specific_humidity": ("q", "kg kg**-1", "Specific humidity", 133, True, False, False),
    "vertical_velocity": ("w", "Pa s**-1", "Vertical velocity", 135, True, False, False),
    "relative_humidity": ("r", "%", "Relative humidity", 157, True, False, False),
    "2m_temperature": ("t2m", "K", "2 metre temperature", 167, False, False, False),
    "10m_u_component_of_wind": ("u10", "m s**-1", "10 metre U wind component", 165, False, False, False),
    "10m_v_component_of_wind": ("v10", "m s**-1", "10 metre V wind component", 166, False, False, False),
    "mean_sea_level_pressure": ("msl", "Pa", "Mean sea level pressure", 151, False, False, False),
    "surface_pressure": ("sp", "Pa", "Surface pressure", 134, False, False, False),
    "total_precipitation": ("tp", "m", "Total precipitation", 228, False, False, True),
    "total_column_water_vapour": (
        "tcwv",
        "kg m**-2",
        "Total column vertically-integrated water vapour",
        137,
        False,
        False,
        False,
    ),
    "sea_surface_temperature": ("sst", "K", "Sea surface temperature", 34, False, False, False),
    "skin_temperature": ("skt", "K", "Skin temperature", 235, False, False, False),
    "toa_incident_solar_radiation": (
        "tisr",
        "J m**-2",
        "TOA incident solar radiation",
        212,
        False,
        False,
        True,
    ),
    "land_sea_mask": ("lsm", "(0 - 1)", "Land-sea mask", 172, False, True, False),
    "geopotential_at_surface": ("z", "m**2 s**-2", "Geopotential", 129, False, True, False),
}
_G = 9.80665


def sample_times(times: int | Sequence, *, start: str = "2020-01-01T00", step_hours: int = 6) -> np.ndarray:
    """The time axis of a sample: ``times`` steps of ``step_hours`` from ``start``, or the given times.

    Returns:
        ``[T]`` datetime64[ns].
    """
    if isinstance(times, (int, np.integer)):
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        return np.datetime64(start, "ns") + np.arange(int(times)) * np.timedelta64(step_hours, "h")
    return np.asarray(times, dtype="datetime64[ns]")


def _phase(name: str, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.8, 1.2))


def sample_field(
    name: str,
    times: np.ndarray | None,
    levels: Sequence[float] | None,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    seed: int = 0,
) -> np.ndarray:
    """A smooth, plausible field of an ERA5 variable at the given points (any orientation, any longitudes).

    Args:
        name: a WeatherBench2 long name from the table of this module (``DEFAULT_VARIABLES`` and more).
        times: ``[T]`` datetime64 (ignored for static fields).
        levels: ``[L]`` pressure in hPa (pressure-level variables only).
        lat: ``[nlat]`` degrees.
        lon: ``[nlon]`` degrees (periodic: -170 and 190 give the same values).
        seed: varies the phase and amplitude of the travelling waves.

    Returns:
        float32 ``[T, L, nlat, nlon]`` (pressure level), ``[T, nlat, nlon]`` (surface) or ``[nlat, nlon]``
        (static). sea_surface_temperature is NaN over land.
    """
    if name not in _META:
        raise ValueError(f"sample_field: unknown variable {name!r}; expected one of {sorted(_META)}")
    _, _, _, _, on_levels, static, _ = _META[name]
    phase, amp = _phase(name, seed)
    phi = np.deg2rad(np.asarray(lat, dtype=np.float64))[:, None]  # [nlat, 1]
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))[None, :]  # [1, nlon]
    s, c = np.sin(phi), np.cos(phi)
    land = np.clip(0.5 + 0.6 * np.sin(2 * lam + 0.3) * c + 0.3 * s, 0.0, 1.0)  # [nlat, nlon]
    orography = 2500.0 * np.clip(land - 0.5, 0.0, None) * c  # metres
    if static:
        out = land if name == "land_sea_mask" else _G * orography
        return np.broadcast_to(out, (phi.size, lam.size)).astype(np.float32)
    hours = (np.asarray(times, dtype="datetime64[ns]") - np.datetime64("2000-01-01", "ns")) / np.timedelta64(
        1, "h"
    )
    t = hours.reshape(-1, 1, 1)  # [T, 1, 1]
    # an eastward travelling wave, a diurnal cycle, and a north-south asymmetry: [T, nlat, nlon]
    wave = amp * c * np.cos(2 * lam - 2 * np.pi * t / 120.0 + phase) + 0.3 * c * np.sin(lam + 0.2 * s + phase)
    diurnal = np.cos(lam + 2 * np.pi * t / 24.0) * c
    if on_levels:
        p = np.asarray(levels, dtype=np.float64).reshape(1, -1, 1, 1)  # [1, L, 1, 1]
        w, di = wave[:, None], diurnal[:, None]  # [T, 1, nlat, nlon]
        height = 7400.0 * np.log(1013.25 / p)  # ~5,200 m at 500 hPa
        if name == "geopotential":
            out = _G * (height - 400.0 * s**2 + 120.0 * s + 150.0 * w)
        elif name == "temperature":
            out = np.clip(288.0 * (p / 1013.25) ** 0.19, 210.0, None) - 25.0 * s**2 + 3.0 * s + 2.0 * w + di
        elif name == "u_component_of_wind":
            out = 25.0 * c**2 * (1.2 - p / 1100.0) - 3.0 + 4.0 * w
        elif name == "v_component_of_wind":
            out = 6.0 * np.sin(2 * phi) * np.sin(lam + phase) + 3.0 * w
        elif name == "specific_humidity":
            out = 0.018 * c**4 * (p / 1000.0) ** 3 * (1.0 + 0.2 * w) + 1e-6
        elif name == "vertical_velocity":
            out = 0.2 * w * (1.0 + s)
        else:  # relative_humidity
            out = 60.0 + 25.0 * w + 5.0 * s
        shape = (wave.shape[0], p.shape[1], phi.size, lam.size)  # [T, L, nlat, nlon]
        return np.ascontiguousarray(np.broadcast_to(out, shape), dtype=np.float32)
    if name in ("2m_temperature", "skin_temperature"):
        out = 288.0 - 40.0 * s**2 + 4.0 * s + 3.0 * wave + 4.0 * diurnal * land
    elif name == "10m_u_component_of_wind":
        out = 8.0 * c**2 - 4.0 + 2.0 * wave
    elif name == "10m_v_component_of_wind":
        out = 3.0 * np.sin(2 * phi) * np.sin(lam + phase) + 2.0 * wave
    elif name == "mean_sea_level_pressure":
        out = 101325.0 + 1200.0 * wave - 800.0 * s**2 + 300.0 * s
    elif name == "surface_pressure":
        out = (101325.0 + 1200.0 * wave - 800.0 * s**2) * np.exp(-orography / 8000.0)
    elif name == "total_precipitation":
        out = 0.002 * np.clip(wave, 0.0, None) * c**2 * (1.2 + s)
    elif name == "total_column_water_vapour":
        out = 50.0 * c**4 * (1.0 + 0.2 * wave) + 2.0
    elif name == "toa_incident_solar_radiation":
        out = 4.0e6 * np.clip(diurnal, 0.0, None)
    else:  # sea_surface_temperature
        out = np.where(land > 0.5, np.nan, 271.5 + 30.0 * c**2 + wave + 0.5 * s)
    shape = (wave.shape[0], phi.size, lam.size)  # [T, nlat, nlon]
    return np.ascontiguousarray(np.broadcast_to(out, shape), dtype=np.float32)


def _lazy_field(name, times, levels, lat, lon, seed):
    """A dask array of ``sample_field`` in chunks of one time step (large samples never sit in memory)."""
    import dask
    import dask.array as da

    _, _, _, _, on_levels, static, _ = _META[name]
    if static:
        return da.from_delayed(
            dask.delayed(sample_field)(name, None, None, lat, lon, seed=seed),
            (lat.size, lon.size),
            np.float32,
        )
    shape = ((len(levels),) if on_levels else ()) + (lat.size, lon.size)
    blocks = [
        da.from_delayed(
            dask.delayed(sample_field)(
                name, times[i : i + 1], levels if on_levels else None, lat, lon, seed=seed
            ),
            (1, *shape),
            np.float32,
        )
        for i in range(times.size)
    ]
    return da.concatenate(blocks, axis=0)


def write_era5_sample(
    path: str | os.PathLike,
    *,
    convention: str,
    nlat: int = 19,
    nlon: int = 36,
    times: int | Sequence = 4,
    start: str = "2020-01-01T00",
    step_hours: int = 6,
    levels: Sequence[int] = (500, 850, 1000),
    variables: Sequence[str] = DEFAULT_VARIABLES,
    seed: int = 0,
    expver_split: int | None = None,
    latitude_descending: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a small ERA5 sample in one of the layouts :func:`sim.data.era5.open_era5` reads.

    The grid is equiangular with poles, ``nlat x nlon`` (19 x 36 is 10°; 121 x 240 is 1.5°; 721 x 1440 is
    ERA5's 0.25°). Fields come from :func:`sample_field` and are generated one time step at a time.

    Args:
        path: the file (netCDF, or ``.zip`` for ``cds_2024``) or zarr store folder to write.
        convention: one of :data:`SAMPLE_CONVENTIONS` (see the module docstring for each layout).
        nlat: latitudes (>= 2), poles included.
        nlon: longitudes (>= 1).
        times: number of time steps, or the times themselves (datetime64-like).
        start: first time when ``times`` is a number.
        step_hours: step between times when ``times`` is a number.
        levels: pressure levels in hPa (written in the convention's order and units); unused when no
            pressure-level variable is asked for.
        variables: WeatherBench2 long names (see ``sample_field``).
        seed: passed to :func:`sample_field`.
        expver_split: ``cds_legacy``: write an ``expver`` dimension, ERA5 (1) before this time index and
            ERA5T (5) from it; ``cds_2024``: the ``expver`` labels switch from "0001" to "0005" here.
        latitude_descending: ``weatherbench2`` only: store latitude 90 -> -90.
        overwrite: replace an existing file or store.

    Returns:
        The path written.

    Raises:
        ValueError: unknown convention or variable.
        OutputError: the folder is missing, or the target exists and ``overwrite`` is False.
    """
    if convention not in SAMPLE_CONVENTIONS:
        raise ValueError(f"convention must be one of {SAMPLE_CONVENTIONS}, got {convention!r}")
    unknown = [v for v in variables if v not in _META]
    if unknown:
        raise ValueError(f"unknown variables {unknown}; expected names from {sorted(_META)}")
    if convention != "weatherbench2" and {"geopotential", "geopotential_at_surface"} <= set(variables):
        raise ValueError(
            "geopotential and geopotential_at_surface are both 'z' in ERA5 files: write them to separate "
            "files (pressure-level and single-level downloads), as the CDS does"
        )
    path = Path(path)
    grid = equiangular_grid(nlat, nlon)
    t = sample_times(times, start=start, step_hours=step_hours)
    levels = [int(x) for x in levels]
    fields = {name: _lazy_field(name, t, levels, grid.lat, grid.lon, seed) for name in variables}
    if convention == "weatherbench2":
        _write_weatherbench2(path, fields, t, levels, grid, latitude_descending, overwrite)
    elif convention == "cds_legacy":
        with atomic_output(path, overwrite=overwrite) as tmp:
            _legacy_dataset(fields, t, levels, grid, expver_split).to_netcdf(
                tmp, engine="netcdf4", format="NETCDF3_64BIT", unlimited_dims=["time"]
            )
    elif convention == "cds_2024":
        if path.suffix == ".zip":
            _write_cds_zip(path, fields, t, levels, grid, expver_split, overwrite)
        else:
            with atomic_output(path, overwrite=overwrite) as tmp:
                _write_cds_2024(tmp, fields, t, levels, grid, expver_split)
    else:
        with atomic_output(path, overwrite=overwrite) as tmp:
            _write_generic(tmp, fields, t, levels, grid)
    return path


def _has_levels(fields) -> bool:
    return any(_META[n][4] for n in fields)


def _dims(name: str, time: str, level: str, lat: str, lon: str) -> tuple[str, ...]:
    on_levels, static = _META[name][4], _META[name][5]
    return (lat, lon) if static else (time,) + ((level,) if on_levels else ()) + (lat, lon)


def _legacy_dataset(fields, t, levels, grid, expver_split) -> xr.Dataset:
    import dask
    import dask.array as da

    lat_order = slice(None, None, -1)  # 90 -> -90
    ranges = dask.compute({n: (da.nanmin(f), da.nanmax(f)) for n, f in fields.items()})[0]
    data_vars, encoding = {}, {}
    for name, arr in fields.items():
        short, units, long_name, _, on_levels, static, _ = _META[name]
        if static:  # single-level downloads of invariant fields have a time axis in the legacy format
            arr = da.broadcast_to(arr[None], (t.size, *arr.shape))
        arr = arr[..., lat_order, :]
        dims = ("time",) + (("level",) if on_levels else ()) + ("latitude", "longitude")
        if expver_split is not None:
            before = (np.arange(t.size) < expver_split).reshape((-1,) + (1,) * (arr.ndim - 1))
            arr = da.stack([da.where(before, arr, np.nan), da.where(before, np.nan, arr)], axis=1)
            dims = dims[:1] + ("expver",) + dims[1:]
        data_vars[short] = (dims, arr, {"units": units, "long_name": long_name})
        lo, hi = (float(x) for x in ranges[name])
        scale = (hi - lo) / (2**16 - 4) if hi > lo else 1.0  # packed extremes: -32766 and 32766
        encoding[short] = {
            "dtype": "int16",
            "scale_factor": scale,
            "add_offset": (hi + lo) / 2,
            "_FillValue": np.int16(-32767),
            "missing_value": np.int16(-32767),
        }
    coords = {
        "longitude": (
            "longitude",
            grid.lon.astype(np.float32),
            {"units": "degrees_east", "long_name": "longitude"},
        ),
        "latitude": (
            "latitude",
            grid.lat[lat_order].astype(np.float32),
            {"units": "degrees_north", "long_name": "latitude"},
        ),
        "time": (  # raw hours, so that the units read exactly as grib_to_netcdf writes them
            "time",
            ((t - np.datetime64("1900-01-01", "ns")) // np.timedelta64(1, "h")).astype(np.int32),
            {"units": "hours since 1900-01-01 00:00:00.0", "long_name": "time", "calendar": "gregorian"},
        ),
    }
    if _has_levels(fields):
        coords["level"] = (
            "level",
            np.asarray(levels, dtype=np.int32),
            {"units": "millibars", "long_name": "pressure_level"},
        )
    if expver_split is not None:
        coords["expver"] = ("expver", np.array([1, 5], dtype=np.int32), {"long_name": "expver"})
    ds = xr.Dataset(
        data_vars,
        coords=coords,
        attrs={
            "Conventions": "CF-1.6",
            "history": "2023-06-01 12:00:00 GMT by grib_to_netcdf-2.25.1: /opt/ecmwf/mars-client/bin/"
            "grib_to_netcdf -S param -o /cache/data/adaptor.mars.internal.nc /cache/tmp/adaptor.grib",
        },
    )
    for name in ds.variables:
        ds[name].encoding.update(encoding.get(name, {}))
    return ds


def _cds_2024_dataset(fields, t, levels, grid, expver_split) -> xr.Dataset:
    lat_order = slice(None, None, -1)
    on_levels = _has_levels(fields)
    pl = sorted(levels, reverse=True)  # 1000, 850, 500: stored decreasing
    level_index = [levels.index(p) for p in pl]
    data_vars = {}
    for name, arr in fields.items():
        short, units, long_name, param, has_level, static, accum = _META[name]
        if static:
            import dask.array as da

            arr = da.broadcast_to(arr[None], (t.size, *arr.shape))
        if has_level:
            arr = arr[:, level_index]
        arr = arr[..., lat_order, :]
        dims = ("valid_time",) + (("pressure_level",) if has_level else ()) + ("latitude", "longitude")
        attrs = {
            "GRIB_paramId": np.int64(param),
            "GRIB_dataType": "fc" if accum else "an",
            "GRIB_numberOfPoints": np.int64(grid.nlat * grid.nlon),
            "GRIB_typeOfLevel": "isobaricInhPa" if has_level else "surface",
            "GRIB_stepUnits": np.int64(1),
            "GRIB_stepType": "accum" if accum else "instant",
            "GRIB_gridType": "regular_ll",
            "GRIB_Nx": np.int64(grid.nlon),
            "GRIB_Ny": np.int64(grid.nlat),
            "GRIB_iDirectionIncrementInDegrees": 360.0 / grid.nlon,
            "GRIB_jDirectionIncrementInDegrees": 180.0 / (grid.nlat - 1),
            "GRIB_latitudeOfFirstGridPointInDegrees": 90.0,
            "GRIB_latitudeOfLastGridPointInDegrees": -90.0,
            "GRIB_longitudeOfFirstGridPointInDegrees": 0.0,
            "GRIB_longitudeOfLastGridPointInDegrees": float(grid.lon[-1]),
            "GRIB_name": long_name,
            "GRIB_shortName": short,
            "GRIB_units": units,
            "long_name": long_name,
            "units": units,
        }
        data_vars[short] = (dims, arr, attrs)
    expver = np.array(["0001"] * t.size, dtype=object)
    if expver_split is not None:
        expver[expver_split:] = "0005"
    coords = {
        "number": ((), np.int64(0), {"long_name": "ensemble member numerical id", "units": "1"}),
        "valid_time": (
            "valid_time",
            ((t - np.datetime64("1970-01-01", "ns")) // np.timedelta64(1, "s")).astype(np.int64),
            {
                "long_name": "time",
                "standard_name": "time",
                "units": "seconds since 1970-01-01",
                "calendar": "proleptic_gregorian",
            },
        ),
        "latitude": (
            "latitude",
            grid.lat[lat_order],
            {"units": "degrees_north", "standard_name": "latitude", "stored_direction": "decreasing"},
        ),
        "longitude": ("longitude", grid.lon.copy(), {"units": "degrees_east", "standard_name": "longitude"}),
        "expver": ("valid_time", expver, {"long_name": "Experiment version"}),
    }
    if on_levels:
        coords["pressure_level"] = (
            "pressure_level",
            np.asarray(pl, dtype=np.float64),
            {"long_name": "pressure", "units": "hPa", "positive": "down", "stored_direction": "decreasing"},
        )
    ds = xr.Dataset(
        data_vars,
        coords=coords,
        attrs={
            "GRIB_centre": "ecmf",
            "GRIB_centreDescription": "European Centre for Medium-Range Weather Forecasts",
            "GRIB_subCentre": np.int64(0),
            "Conventions": "CF-1.7",
            "institution": "European Centre for Medium-Range Weather Forecasts",
            "history": "2024-10-01T12:00 GRIB to CDM+CF via cfgrib-0.9.14.1/ecCodes-2.36.0 with "
            "{'source': 'tmp.grib', 'filter_by_keys': {}, 'encode_cf': ('parameter', 'time', 'geography', "
            "'vertical')}",
        },
    )
    for var in ds.data_vars.values():
        var.encoding.update(
            {
                "dtype": "float32",
                "_FillValue": np.float32(np.nan),
                "zlib": True,
                "complevel": 1,
                "chunksizes": (1,) + var.shape[1:],
            }
        )
    return ds


def _write_cds_2024(tmp, fields, t, levels, grid, expver_split) -> None:
    _cds_2024_dataset(fields, t, levels, grid, expver_split).to_netcdf(
        tmp, engine="netcdf4", format="NETCDF4"
    )


def _write_cds_zip(path, fields, t, levels, grid, expver_split, overwrite) -> None:
    instant = {n: f for n, f in fields.items() if not _META[n][6]}
    accum = {n: f for n, f in fields.items() if _META[n][6]}
    with atomic_output(path, overwrite=overwrite) as tmp:
        members = [("instant", instant), ("accum", accum)]
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for kind, group in members:
                if not group:
                    continue
                member = tmp.with_name(f"{tmp.name}.{kind}.nc")
                try:
                    _write_cds_2024(member, group, t, levels, grid, expver_split)
                    zf.write(member, f"data_stream-oper_stepType-{kind}.nc")
                finally:
                    member.unlink(missing_ok=True)


def _write_generic(tmp, fields, t, levels, grid) -> None:
    lon = grid.lon - 180.0  # [-180, 180)
    roll = grid.nlon // 2 if grid.nlon % 2 == 0 else None
    data_vars = {}
    for name, arr in fields.items():
        short, units, long_name, *_ = _META[name]
        if roll is None:  # odd nlon: -180 is not a grid point of the original; evaluate afresh
            raise ValueError("the generic sample needs an even nlon (longitudes -180 ... 180 - d)")
        import dask.array as da

        arr = da.concatenate([arr[..., roll:], arr[..., :roll]], axis=-1)  # lon 180.. then 0.. -> -180..180
        data_vars[short] = (
            _dims(name, "time", "plev", "lat", "lon"),
            arr,
            {"units": units, "long_name": long_name},
        )
    coords = {
        "time": ("time", t, {"standard_name": "time"}),
        "lat": ("lat", grid.lat.copy(), {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
    }
    if _has_levels(fields):
        coords["plev"] = (
            "plev",
            100.0 * np.asarray(levels, dtype=np.float64),
            {"units": "Pa", "positive": "down"},
        )
    ds = xr.Dataset(
        data_vars, coords=coords, attrs={"Conventions": "CF-1.6", "CDI": "Climate Data Interface"}
    )
    ds["time"].encoding.update({"units": "hours since 2020-01-01 00:00:00", "calendar": "standard"})
    ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")


def _write_weatherbench2(path, fields, t, levels, grid, latitude_descending, overwrite) -> None:
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (pass --overwrite, or overwrite=True, to replace it)")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: output folder {path.parent} does not exist (create it first)")
    lat_order = slice(None, None, -1) if latitude_descending else slice(None)
    data_vars = {}
    for name, arr in fields.items():
        data_vars[name] = (
            _dims(name, "time", "level", "latitude", "longitude"),
            arr[..., lat_order, :],
            {"units": _META[name][1], "long_name": _META[name][2]},
        )
    coords = {
        "time": ("time", t),
        "latitude": ("latitude", grid.lat[lat_order].copy()),
        "longitude": ("longitude", grid.lon.copy()),
    }
    if _has_levels(fields):
        coords["level"] = ("level", np.asarray(sorted(levels), dtype=np.int64))
        order = [levels.index(p) for p in sorted(levels)]
        for name, (dims, arr, attrs) in list(data_vars.items()):
            if "level" in dims:
                data_vars[name] = (dims, arr[:, order], attrs)
    ds = xr.Dataset(data_vars, coords=coords)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        ds.to_zarr(tmp, mode="w-", zarr_format=2, consolidated=True)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
