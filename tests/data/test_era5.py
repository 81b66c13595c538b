"""Reading ERA5 in every convention into one canonical form: sim.data.era5 with files from era5_synthetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback

from sim.data.era5 import (
    CANONICAL_DIMS,
    Era5Error,
    canonical_name,
    check_era5,
    describe_era5,
    detect_convention,
    open_era5,
)
from sim.data.era5_synthetic import sample_field, sample_times, write_era5_sample
from sim.discretize.latlon import equiangular_grid

NLAT, NLON = 19, 36
LEVELS = [500, 850, 1000]
PRESSURE = ["geopotential", "temperature", "u_component_of_wind"]
SURFACE = ["2m_temperature", "mean_sea_level_pressure", "total_precipitation"]
SINGLE = [
    "2m_temperature",
    "total_precipitation",
    "sea_surface_temperature",
    "land_sea_mask",
    "geopotential_at_surface",
]
GRID = equiangular_grid(NLAT, NLON)

# name -> (file name, convention written, keyword arguments, convention detected)
SAMPLES = {
    "cds_legacy": ("legacy.nc", "cds_legacy", {}, "cds_legacy"),
    "cds_legacy_expver": ("legacy_expver.nc", "cds_legacy", {"expver_split": 2}, "cds_legacy"),
    "cds_2024": ("new.nc", "cds_2024", {"expver_split": 3}, "cds_2024"),
    "cds_2024_zip": ("new.zip", "cds_2024", {}, "cds_2024"),
    "weatherbench2": ("wb2.zarr", "weatherbench2", {}, "weatherbench2"),
    "weatherbench2_descending": (
        "wb2_desc.zarr",
        "weatherbench2",
        {"latitude_descending": True},
        "weatherbench2",
    ),
    "generic": ("generic.nc", "generic", {}, "generic"),
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("era5")
    paths = {}
    for key, (name, convention, kwargs, _) in SAMPLES.items():
        paths[key] = str(
            write_era5_sample(
                folder / name,
                convention=convention,
                times=4,
                levels=LEVELS,
                variables=PRESSURE + SURFACE,
                **kwargs,
            )
        )
    return paths


def expected(name: str, times=None, levels=LEVELS) -> np.ndarray:
    """The field as written, on the canonical grid (latitude ascending, longitude from 0)."""
    return sample_field(name, sample_times(4) if times is None else times, levels, GRID.lat, GRID.lon)


def assert_one_line(err: pytest.ExceptionInfo, *fragments: str) -> None:
    text = str(err.value)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, text


def assert_canonical(ds: xr.Dataset) -> None:
    for name, var in ds.data_vars.items():
        assert var.dims == tuple(d for d in CANONICAL_DIMS if d in var.dims), name
        assert var.dtype == np.float32, name
    assert ds["latitude"].dtype == np.float64 and ds["longitude"].dtype == np.float64
    np.testing.assert_array_equal(ds["latitude"].values, GRID.lat)
    np.testing.assert_array_equal(ds["longitude"].values, GRID.lon)
    if "time" in ds.coords:
        assert ds["time"].dtype == np.dtype("datetime64[ns]")
        assert (np.diff(ds["time"].values) > np.timedelta64(0)).all()
    if "level" in ds.coords:
        assert ds["level"].dtype == np.int64
        assert (np.diff(ds["level"].values) > 0).all()


def test_write_layouts_are_faithful(samples):
    with xr.open_dataset(samples["cds_legacy_expver"], engine="netcdf4", mask_and_scale=False) as raw:
        assert raw["t"].dims == ("time", "expver", "level", "latitude", "longitude")
        assert raw["t"].dtype == np.int16 and raw["t"].attrs["_FillValue"] == -32767
        assert raw["latitude"].values[0] == 90 and raw["level"].attrs["units"] == "millibars"
    with xr.open_dataset(samples["cds_legacy"], engine="netcdf4", decode_times=False) as raw:
        assert raw["time"].attrs["units"] == "hours since 1900-01-01 00:00:00.0"
    with xr.open_dataset(samples["cds_2024"], engine="netcdf4", decode_times=False) as raw:
        assert raw["valid_time"].attrs["units"] == "seconds since 1970-01-01"
        assert list(raw["pressure_level"].values) == [1000, 850, 500]
        assert raw["number"].ndim == 0 and raw["expver"].dims == ("valid_time",)
        assert raw["t"].attrs["GRIB_paramId"] == 130 and raw.attrs["Conventions"] == "CF-1.7"
    import zipfile

    with zipfile.ZipFile(samples["cds_2024_zip"]) as zf:
        assert sorted(zf.namelist()) == [
            "data_stream-oper_stepType-accum.nc",
            "data_stream-oper_stepType-instant.nc",
        ]


@pytest.mark.parametrize("key", list(SAMPLES))
def test_every_convention_gives_the_canonical_form(samples, key):
    ds = open_era5(samples[key])
    assert_canonical(ds)
    assert ds.attrs["source_convention"] == SAMPLES[key][3]
    assert sorted(ds.data_vars) == sorted(PRESSURE + SURFACE)
    assert list(ds["level"].values) == LEVELS
    np.testing.assert_array_equal(ds["time"].values, sample_times(4))
    for name in PRESSURE + SURFACE:
        want = expected(name)
        got = ds[name].values
        assert got.shape == want.shape, name
        if key.startswith("cds_legacy"):  # int16 packing: half a packing step
            step = (want.max() - want.min()) / 65532
            np.testing.assert_allclose(got, want, rtol=0, atol=0.51 * step + 1e-6 * np.abs(want).max())
        else:
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("key", ["cds_legacy", "cds_2024", "weatherbench2", "generic"])
def test_detect_convention_on_the_raw_file(samples, key):
    engine = "zarr" if key == "weatherbench2" else "netcdf4"
    with xr.open_dataset(samples[key], engine=engine) as raw:
        assert detect_convention(raw) == key


def test_expver_combined_into_one_series(samples):
    ds = open_era5(samples["cds_legacy_expver"])
    assert "expver" not in ds.dims and "expver" not in ds.coords
    assert "1, 5" in ds.attrs["expver"]
    assert not np.isnan(ds["temperature"].values).any()  # times 0-1 from expver 1, 2-3 from expver 5
    new = open_era5(samples["cds_2024"])
    assert "expver" not in new.coords
    assert "0001 (3 times)" in new.attrs["expver"] and "0005 (1 times)" in new.attrs["expver"]


def test_zip_members_are_merged(samples):
    ds = open_era5(samples["cds_2024_zip"])
    assert ds["total_precipitation"].attrs["source_file"].endswith("stepType-accum.nc")
    assert ds["2m_temperature"].attrs["source_file"].endswith("stepType-instant.nc")
    assert len(ds.attrs["source_files"]) == 2


def test_pressure_and_single_level_files_merge(tmp_path):
    pl = write_era5_sample(
        tmp_path / "pl.nc", convention="cds_legacy", variables=PRESSURE, levels=[1000, 500]
    )
    sl = write_era5_sample(tmp_path / "sl.nc", convention="cds_legacy", variables=SINGLE)
    ds = open_era5([sl, pl])
    assert_canonical(ds)
    assert ds["geopotential"].dims == ("time", "level", "latitude", "longitude")
    assert ds["2m_temperature"].dims == ("time", "latitude", "longitude")
    for static in ("land_sea_mask", "geopotential_at_surface"):  # z without level is the orography
        assert ds[static].dims == ("latitude", "longitude")
        want = expected(static)
        np.testing.assert_allclose(ds[static].values, want, atol=1e-4 * max(1.0, want.max()))
    sst, want = ds["sea_surface_temperature"].values, expected("sea_surface_temperature")
    np.testing.assert_array_equal(np.isnan(sst), np.isnan(want))  # land stays missing, the fill decoded
    np.testing.assert_allclose(sst, want, atol=1e-3)
    assert list(ds["level"].values) == [500, 1000]
    assert [v.attrs["source_name"] for v in ds[["geopotential", "geopotential_at_surface"]].values()] == [
        "z",
        "z",
    ]


def test_glob_and_list_concatenate_months(tmp_path):
    starts = ["2020-01-01T00", "2020-02-01T00", "2020-03-01T00"]
    paths = [
        write_era5_sample(
            tmp_path / f"era5_{i}.nc", convention="cds_legacy", variables=SURFACE, start=s, times=3
        )
        for i, s in enumerate(starts)
    ]
    by_glob = open_era5(str(tmp_path / "era5_*.nc"))
    by_list = open_era5([paths[2], paths[0], paths[1]])
    want = np.concatenate([sample_times(3, start=s) for s in starts])
    for ds in (by_glob, by_list):
        np.testing.assert_array_equal(ds["time"].values, want)
        assert ds["2m_temperature"].shape == (9, NLAT, NLON)
        assert ds["2m_temperature"].chunks[0] == (1,) * 9
    np.testing.assert_array_equal(by_glob["2m_temperature"].values, by_list["2m_temperature"].values)
    np.testing.assert_allclose(
        by_glob["2m_temperature"].values[3:6],
        expected("2m_temperature", sample_times(3, start=starts[1])),
        atol=0.01,
    )


def test_select_variables_and_levels(samples):
    ds = open_era5(samples["weatherbench2"], variables=["temperature", "t2m"], levels=[1000, 500])
    assert sorted(ds.data_vars) == ["2m_temperature", "temperature"]
    assert list(ds["level"].values) == [500, 1000]
    np.testing.assert_array_equal(ds["temperature"].values, expected("temperature")[:, [0, 2]])
    surface_only = open_era5(samples["weatherbench2"], variables="2m_temperature")
    assert "level" not in surface_only.dims


def test_opening_is_lazy(samples):
    class Count(Callback):
        def __init__(self):
            super().__init__()
            self.tasks = 0

        def _pretask(self, key, dsk, state):
            self.tasks += 1

    with Count() as count:
        datasets = [open_era5(path) for path in samples.values()]
    assert count.tasks == 0  # no data were read while opening
    for ds in datasets:
        for var in ds.data_vars.values():
            assert var.chunks is not None and set(var.chunks[0]) == {1}
            assert var.chunks[1:] == tuple((n,) for n in var.shape[1:])
    two = open_era5(samples["cds_2024"], time_chunk=2)
    assert two["temperature"].chunks[0] == (2, 2)


def test_canonical_name():
    assert canonical_name("t", has_level=True) == "temperature"
    assert canonical_name("z", has_level=True) == "geopotential"
    assert canonical_name("z", has_level=False) == "geopotential_at_surface"
    assert canonical_name("2t", has_level=False) == canonical_name("t2m", has_level=False) == "2m_temperature"
    assert canonical_name("2m_temperature", has_level=False) == "2m_temperature"
    assert canonical_name("something_else", has_level=False) == "something_else"


# ---------------------------------------------------------------------------------------------------------
# Bad input: one-line Era5Error naming the file


def test_requested_variables_or_levels_missing(samples):
    path = samples["cds_legacy"]
    with pytest.raises(Era5Error) as err:
        open_era5(path, variables=["relative_humidity", "vorticity"])
    assert_one_line(
        err, path, "none of the requested variables", "relative_humidity", "available", "temperature"
    )
    with pytest.raises(Era5Error) as err:
        open_era5(path, levels=[700, 500])
    assert_one_line(err, path, "missing levels [700]", "500, 850, 1000")


def test_unknown_convention(tmp_path):
    path = tmp_path / "model.nc"
    xr.Dataset({"psi": (("t", "y", "x"), np.zeros((2, 4, 8), np.float32))}).to_netcdf(path, engine="netcdf4")
    with pytest.raises(Era5Error) as err:
        open_era5(path)
    assert_one_line(err, str(path), "unknown layout", "psi", "y=4", "latitude")
    assert "unknown layout" in describe_era5(path)


def test_mixed_grids(tmp_path):
    a = write_era5_sample(tmp_path / "a.nc", convention="cds_2024", variables=SURFACE[:1])
    b = write_era5_sample(tmp_path / "b.nc", convention="cds_2024", variables=SURFACE[1:2], nlat=10, nlon=20)
    with pytest.raises(Era5Error) as err:
        open_era5([a, b])
    assert_one_line(err, str(b), "mixed grids", "10 x 20", "19 x 36", str(a))


def test_incomplete_grid(tmp_path, samples):
    path = tmp_path / "cut.nc"
    with xr.open_dataset(samples["generic"], engine="netcdf4") as ds:
        ds.isel(lon=slice(0, -1)).to_netcdf(path, engine="netcdf4")
    with pytest.raises(Era5Error) as err:
        open_era5(path)
    assert_one_line(err, str(path), "longitude spacing is uneven", "missing")


def test_duplicated_times(tmp_path):
    a = write_era5_sample(tmp_path / "a.nc", convention="cds_legacy", variables=SURFACE, times=4)
    b = write_era5_sample(
        tmp_path / "b.nc", convention="cds_legacy", variables=SURFACE, times=4, start="2020-01-01T12"
    )
    with pytest.raises(Era5Error) as err:
        open_era5([a, b])
    assert_one_line(err, str(b), "duplicated time 2020-01-01T12:00", str(a))
    t = np.array(["2020-01-01T00", "2020-01-01T06", "2020-01-01T06"], dtype="datetime64[ns]")
    c = write_era5_sample(tmp_path / "c.nc", convention="cds_2024", variables=SURFACE, times=t)
    with pytest.raises(Era5Error) as err:
        open_era5(c)
    assert_one_line(err, str(c), "duplicated time 2020-01-01T06:00")


def test_unsorted_times_in_a_file(tmp_path):
    t = np.array(["2020-01-01T06", "2020-01-01T00"], dtype="datetime64[ns]")
    path = write_era5_sample(tmp_path / "u.nc", convention="cds_2024", variables=SURFACE, times=t)
    with pytest.raises(Era5Error) as err:
        open_era5(path)
    assert_one_line(err, str(path), "not ascending")


def test_different_times_for_pressure_and_single_level(tmp_path):
    pl = write_era5_sample(tmp_path / "pl.nc", convention="cds_2024", variables=PRESSURE, times=4)
    sl = write_era5_sample(tmp_path / "sl.nc", convention="cds_2024", variables=SURFACE, times=3)
    with pytest.raises(Era5Error) as err:
        open_era5([pl, sl])
    assert_one_line(err, "same times", "3 times", "4 times")


def test_all_nan_field(tmp_path, samples):
    path = tmp_path / "holes.nc"
    with xr.open_dataset(samples["cds_2024"], engine="netcdf4") as ds:
        ds = ds.load()
    ds["t"][2, 1] = np.nan  # valid_time index 2, pressure_level 850
    ds.to_netcdf(path, engine="netcdf4")
    opened = open_era5(path)  # opening reads no values
    with pytest.raises(Era5Error) as err:
        check_era5(opened)
    assert_one_line(err, str(path), "temperature is all NaN", "level 850 hPa", "2020-01-01T12:00")
    check_era5(open_era5(samples["cds_2024"]), full=True)  # partial NaN (none here) and full scans pass
    assert "temperature is all NaN" in describe_era5(path)


@pytest.mark.parametrize("key", ["cds_legacy", "cds_2024"])
def test_truncated_file(tmp_path, samples, key):
    data = open(samples[key], "rb").read()
    path = tmp_path / "cut.nc"
    for keep in (len(data) - 100, len(data) // 2, 200):
        path.write_bytes(data[:keep])
        with pytest.raises(Era5Error) as err:
            open_era5(path)
        assert_one_line(err, str(path), "truncated")


def test_missing_sources(tmp_path):
    with pytest.raises(Era5Error) as err:
        open_era5(str(tmp_path / "*.nc"))
    assert_one_line(err, "no files match")
    with pytest.raises(Era5Error) as err:
        open_era5(tmp_path / "absent.nc")
    assert_one_line(err, "absent.nc", "no such file")
    grib = tmp_path / "x.nc"
    grib.write_bytes(b"GRIB" + bytes(100))
    with pytest.raises(Era5Error) as err:
        open_era5(grib)
    assert_one_line(err, str(grib), "GRIB")
    with pytest.raises(Era5Error) as err:
        open_era5(tmp_path)
    assert_one_line(err, "not a zarr store")


def test_describe(samples, tmp_path):
    text = describe_era5(samples["cds_legacy_expver"])
    for fragment in (
        "convention: cds_legacy",
        "expver: 1, 5",
        "geopotential",
        "(from z)",
        "levels (3): 500, 850, 1000 hPa",
        "grid: 19 x 36 equiangular_with_poles (10 x 10 degrees)",
        "time: 4 times 2020-01-01T00:00 ... 2020-01-01T18:00, every 6 h",
        "missing values: no all-NaN field",
    ):
        assert fragment in text, text
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"CDF\x02" + bytes(10))
    for source in (bad, tmp_path / "nothing*.nc", [samples["cds_legacy"], samples["cds_legacy"]]):
        text = describe_era5(source)
        assert "problem:" in text, text


def test_static_fields_in_weatherbench2(tmp_path):
    path = write_era5_sample(tmp_path / "s.zarr", convention="weatherbench2", variables=SINGLE, times=2)
    ds = open_era5(path)
    assert_canonical(ds)
    assert "level" not in ds.dims
    assert ds["land_sea_mask"].dims == ("latitude", "longitude")
    np.testing.assert_array_equal(ds["geopotential_at_surface"].values, expected("geopotential_at_surface"))
    sst = ds["sea_surface_temperature"].values
    np.testing.assert_array_equal(sst, expected("sea_surface_temperature", sample_times(2)))  # NaN over land
    check_era5(ds, full=True)  # partly missing fields are fine


def test_a_single_level_kept_as_scalar_coordinate(tmp_path, samples):
    path = tmp_path / "one_level.nc"
    with xr.open_dataset(samples["cds_2024"], engine="netcdf4") as ds:
        ds.isel(pressure_level=1).to_netcdf(path, engine="netcdf4")  # 850 hPa, a scalar coordinate
    ds = open_era5(path)
    assert list(ds["level"].values) == [850]
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert ds["2m_temperature"].dims == ("time", "latitude", "longitude")
    np.testing.assert_array_equal(ds["temperature"].values, expected("temperature", levels=[850]))


def test_extracted_zip_members_are_removed_when_unused(samples):
    import gc
    import glob
    import tempfile

    pattern = str(Path(tempfile.gettempdir()) / "sim-era5-*")
    before = set(glob.glob(pattern))
    ds = open_era5(samples["cds_2024_zip"])
    created = set(glob.glob(pattern)) - before
    assert len(created) == 2
    total = float(ds["total_precipitation"].sum())  # still readable
    assert total > 0
    del ds
    gc.collect()
    assert not created & set(glob.glob(pattern))


def test_writer_refuses_two_z(tmp_path):
    with pytest.raises(ValueError, match="separate"):
        write_era5_sample(tmp_path / "x.nc", convention="cds_legacy", variables=["geopotential", *SINGLE])
