"""Lat-lon grids: coordinates of each kind, area weights, validation of data coordinates, and the
rotations that permute the grid (a roll in longitude; the D5 subgroup of the icosahedral group)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.discretize.icosahedral import icosahedral_rotations
from sim.discretize.latlon import (
    GridError,
    LatLonGrid,
    area_weights,
    equiangular_grid,
    gaussian_grid,
    grid_from_coords,
    grid_permutation,
    latlon_to_xyz,
    longitude_roll,
    polar_rotation,
    tangent_frame,
    vector_to_wind,
    wind_to_vector,
    xyz_to_latlon,
)


def _all_grids() -> list[LatLonGrid]:
    return [
        equiangular_grid(121, 240),
        equiangular_grid(721, 1440),
        equiangular_grid(32, 64, poles=False),
        equiangular_grid(5, 8, poles=False, lon0=-180.0),
        gaussian_grid(48, 96),
        gaussian_grid(7, 10),
    ]


def test_equiangular_coordinates():
    g = equiangular_grid(121, 240)
    assert g.kind == "equiangular_with_poles" and g.shape == (121, 240) and g.dlon == 1.5
    assert g.lat[0] == -90 and g.lat[-1] == 90 and g.lat[60] == 0
    np.testing.assert_allclose(np.diff(g.lat), 1.5, atol=1e-13)
    np.testing.assert_array_equal(g.lon, 1.5 * np.arange(240))
    era5 = equiangular_grid(721, 1440)
    np.testing.assert_array_equal(era5.lat, np.arange(-360, 361) * 0.25)  # exact in binary
    wb = equiangular_grid(32, 64, poles=False)  # WeatherBench 5.625°
    assert wb.kind == "equiangular_without_poles"
    np.testing.assert_array_equal(wb.lat, -87.1875 + 5.625 * np.arange(32))
    np.testing.assert_array_equal(wb.lon, 5.625 * np.arange(64))


def test_gaussian_latitudes_are_legendre_roots():
    g = gaussian_grid(12, 24)
    assert g.kind == "gaussian"
    p12 = np.zeros(13)
    p12[12] = 1
    np.testing.assert_allclose(np.polynomial.legendre.legval(np.sin(np.deg2rad(g.lat)), p12), 0, atol=1e-13)
    x, w = np.polynomial.legendre.leggauss(12)
    np.testing.assert_allclose(np.sin(np.deg2rad(g.lat)), x, atol=1e-15)
    np.testing.assert_allclose(area_weights(g), w * 12 / 2, rtol=1e-13)


@pytest.mark.parametrize("grid", _all_grids(), ids=repr)
def test_grids_are_symmetric_and_weights_have_mean_one(grid):
    np.testing.assert_array_equal(grid.lat, -grid.lat[::-1])  # exactly symmetric about the equator
    assert (np.diff(grid.lat) > 0).all() and (np.diff(grid.lon) > 0).all()
    w = area_weights(grid)
    assert w.shape == (grid.nlat,) and (w > 0).all()
    assert abs(w.sum() - grid.nlat) < 1e-10 * grid.nlat
    np.testing.assert_allclose(w, w[::-1], rtol=1e-13)
    xyz = grid.xyz()
    assert xyz.shape == (grid.nlat, grid.nlon, 3)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=-1), 1, atol=1e-15)


def test_area_weights_closed_form_as_weatherbench2():
    # With poles: interior rows 2 cos(lat) sin(dlat/2), pole caps 1 - cos(dlat/2); total 2 before scaling.
    g = equiangular_grid(181, 360)
    d = np.deg2rad(1.0)
    raw = 2 * np.cos(np.deg2rad(g.lat)) * np.sin(d / 2)
    raw[[0, -1]] = 1 - np.cos(d / 2)
    np.testing.assert_allclose(area_weights(g), raw * 181 / 2, rtol=1e-12)
    # Without poles every row is a full band: 2 cos(lat) sin(dlat/2).
    g = equiangular_grid(32, 64, poles=False)
    raw = 2 * np.cos(np.deg2rad(g.lat)) * np.sin(np.deg2rad(5.625) / 2)
    np.testing.assert_allclose(area_weights(g), raw * 32 / 2, rtol=1e-12)
    # The weights are band areas: the northern half sums to exactly half.
    np.testing.assert_allclose(area_weights(g)[16:].sum(), 16, rtol=1e-14)


def test_weights_integrate_harmonics():
    # The mean of f over the sphere is (1/2) ∫ f(lat) cos(lat) dlat; for f = sin^m(lat): 1/(m+1) (m even).
    def sphere_mean(grid, m):
        return (area_weights(grid) * np.sin(np.deg2rad(grid.lat)) ** m).mean()

    g = gaussian_grid(8, 16)
    for m in range(16):  # Gauss-Legendre with 8 nodes: exact up to degree 15
        assert abs(sphere_mean(g, m) - (1 / (m + 1) if m % 2 == 0 else 0)) < 1e-14
    assert abs(sphere_mean(g, 16) - 1 / 17) > 1e-8  # and not beyond
    for n in (91, 181):  # equiangular: second order, WB2's weights
        err = abs(sphere_mean(equiangular_grid(n, 4), 2) - 1 / 3)
        assert err < 0.3 / n**2
    # a zonal harmonic of degree 1, cos(lat) cos(lon), has mean zero on any grid (longitudes are complete)
    g = equiangular_grid(32, 64, poles=False)
    f = g.xyz()[..., 0]
    assert abs((area_weights(g)[:, None] * f).mean()) < 1e-15


def test_xyz_latlon_round_trip_and_poles():
    g = equiangular_grid(19, 36)
    xyz = g.xyz()
    np.testing.assert_array_equal(xyz[0], np.broadcast_to([0.0, 0.0, -1.0], (36, 3)))
    np.testing.assert_array_equal(xyz[-1], np.broadcast_to([0.0, 0.0, 1.0], (36, 3)))
    np.testing.assert_allclose(latlon_to_xyz(0.0, 0.0), [1, 0, 0])
    np.testing.assert_allclose(latlon_to_xyz(0.0, 90.0), [0, 1, 0], atol=1e-16)
    lat, lon = xyz_to_latlon(3.0 * xyz[1:-1])  # any length
    np.testing.assert_allclose(lat, g.lat[1:-1, None] + 0 * g.lon, atol=1e-12)
    np.testing.assert_allclose(lon, np.broadcast_to(g.lon, lat.shape), atol=1e-12)
    assert (xyz_to_latlon(np.array([1.0, -1e-18, 0.0]))[1] == 0).all()  # never 360


@pytest.mark.parametrize(
    "grid", [equiangular_grid(19, 36), equiangular_grid(8, 10, poles=False), gaussian_grid(6, 12)]
)
def test_tangent_frame_is_orthonormal_tangent_and_right_handed(grid):
    lat, lon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    frame = tangent_frame(lat, lon)  # [nlat, nlon, 2, 3]
    r = latlon_to_xyz(lat, lon)
    np.testing.assert_allclose(
        frame @ np.swapaxes(frame, -1, -2), np.broadcast_to(np.eye(2), frame.shape[:-2] + (2, 2)), atol=1e-15
    )
    np.testing.assert_allclose((frame * r[..., None, :]).sum(-1), 0.0, atol=1e-15)
    # east x north = up: the frame has the orientation of the sphere seen from outside
    np.testing.assert_allclose(np.cross(frame[..., 0, :], frame[..., 1, :]), r, atol=1e-15)


def test_tangent_frame_is_the_direction_of_increasing_longitude_and_latitude():
    lat, lon, h = np.array([-60.0, 0.0, 33.0, 89.0]), np.array([10.0, 200.0, 359.0, 45.0]), 1e-6
    frame = tangent_frame(lat, lon)
    d_lon = latlon_to_xyz(lat, lon + h) - latlon_to_xyz(lat, lon - h)
    d_lat = latlon_to_xyz(lat + h, lon) - latlon_to_xyz(lat - h, lon)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(frame[:, 0], unit(d_lon), atol=1e-8)
    np.testing.assert_allclose(frame[:, 1], unit(d_lat), atol=1e-8)


def test_winds_round_trip_exactly_and_poles_are_the_meridian_limit():
    grid = equiangular_grid(19, 36)
    lat, lon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    frame = tangent_frame(lat, lon).reshape(-1, 2, 3)  # [G, 2, 3]
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(2, 4, grid.nlat * grid.nlon))
    vec = wind_to_vector(u, v, frame)  # [4, G, 3]
    u2, v2 = vector_to_wind(vec, frame)
    np.testing.assert_allclose(u2, u, atol=1e-15)
    np.testing.assert_allclose(v2, v, atol=1e-15)
    # one physical vector at the north pole: a constant tangent field w = (1, 2, 0) has, along each meridian,
    # components that tend to the pole row's as the latitude tends to 90 (continuity at the pole)
    w = np.array([1.0, 2.0, 0.0])
    r = latlon_to_xyz(lat, lon).reshape(-1, 3)
    field = w - (r @ w)[:, None] * r  # the tangent projection of w
    uw, vw = (x.reshape(grid.nlat, grid.nlon) for x in vector_to_wind(field, frame))
    pole = slice(-1, None)
    np.testing.assert_allclose(
        wind_to_vector(uw[pole], vw[pole], frame[-grid.nlon :]),
        np.broadcast_to(w, (1, grid.nlon, 3)),
        atol=1e-15,
    )
    near = tangent_frame(90 - 1e-7, grid.lon)  # [nlon, 2, 3]
    np.testing.assert_allclose(near @ w, np.stack([uw[-1], vw[-1]], axis=-1), atol=1e-8)
    # torch tensors work the same way
    torch = pytest.importorskip("torch")
    tu, tv = vector_to_wind(torch.from_numpy(vec), torch.from_numpy(frame))
    np.testing.assert_allclose(tu.numpy(), u, atol=1e-15)
    np.testing.assert_allclose(tv.numpy(), v, atol=1e-15)


def test_winds_are_unchanged_by_a_rotation_about_the_pole():
    """Rolling the (u, v) grids is rotating the 3-D vector field: ``R vec(p) = vec'(R p)``."""
    grid = equiangular_grid(7, 10)
    lat, lon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    frame = tangent_frame(lat, lon).reshape(-1, 2, 3)
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(2, grid.nlat, grid.nlon))
    shift = longitude_roll(grid, 108.0)
    R = polar_rotation(108.0)
    perm = grid_permutation(grid, R)
    vec = wind_to_vector(u.reshape(-1), v.reshape(-1), frame)  # [G, 3]
    rolled = wind_to_vector(np.roll(u, shift, -1).reshape(-1), np.roll(v, shift, -1).reshape(-1), frame)
    np.testing.assert_allclose(rolled[perm], vec @ R.T, atol=1e-14)


@pytest.mark.parametrize("grid", _all_grids()[:1] + _all_grids()[2:], ids=repr)
def test_rotation_about_the_pole_is_a_roll(grid):
    xyz = grid.xyz()  # [nlat, nlon, 3]
    lat, lon = np.meshgrid(np.deg2rad(grid.lat), np.deg2rad(grid.lon), indexing="ij")

    def f(lat, lon):  # an arbitrary smooth field
        return np.sin(lat) + np.cos(lat) * np.cos(lon - 0.4) + np.cos(lat) ** 3 * np.sin(3 * lon)

    for k in (1, 3, -2, grid.nlon + 5):
        angle = k * grid.dlon
        shift = longitude_roll(grid, angle)
        assert shift == k % grid.nlon
        rotation = polar_rotation(angle)
        # on points: R xyz[i, j] == xyz[i, j + shift]
        assert np.abs(xyz @ rotation.T - np.roll(xyz, -shift, axis=1)).max() < 1e-12
        # on fields: f'(p) = f(R^-1 p) is the roll of the array
        rotated = f(lat, lon - np.deg2rad(angle))
        np.testing.assert_allclose(np.roll(f(lat, lon), shift, axis=-1), rotated, atol=1e-12)
        perm = grid_permutation(grid, rotation)
        expected = np.arange(grid.nlat)[:, None] * grid.nlon + (np.arange(grid.nlon) + shift) % grid.nlon
        np.testing.assert_array_equal(
            perm.reshape(grid.shape), expected
        )  # point (i, j) goes to (i, j + shift)
    with pytest.raises(GridError, match="not a roll"):
        longitude_roll(grid, 0.5 * grid.dlon)


@pytest.mark.parametrize(
    "grid",
    [equiangular_grid(46, 90), equiangular_grid(121, 240), equiangular_grid(36, 360, poles=False)],
    ids=repr,
)
def test_d5_subgroup_of_the_icosahedral_rotations_permutes_the_grid(grid):
    rotations = icosahedral_rotations()
    d5 = rotations[np.isclose(np.abs(rotations[:, 2, 2]), 1)]
    assert len(d5) == 10
    xyz = grid.xyz().reshape(-1, 3)
    for rotation in d5:
        perm = grid_permutation(grid, rotation)
        assert np.array_equal(np.sort(perm), np.arange(len(xyz)))
        assert np.abs(xyz @ rotation.T - xyz[perm]).max() < 1e-12  # pole rows included
    with pytest.raises(GridError, match="moves the polar axis"):
        grid_permutation(grid, rotations[~np.isclose(np.abs(rotations[:, 2, 2]), 1)][0])


def test_grid_permutation_of_mirrors_and_bad_maps():
    grid = equiangular_grid(10, 12, poles=False)
    xyz = grid.xyz().reshape(-1, 3)
    for mirror in (np.diag([1.0, 1.0, -1.0]), np.diag([1.0, -1.0, 1.0]), np.diag([-1.0, 1.0, 1.0])):
        perm = grid_permutation(grid, mirror)
        assert np.abs(xyz @ mirror.T - xyz[perm]).max() < 1e-12
    with pytest.raises(GridError, match="not a grid longitude"):
        grid_permutation(grid, polar_rotation(7.0))
    with pytest.raises(GridError, match="orthogonal"):
        grid_permutation(grid, 2 * np.eye(3))
    # a grid whose spacing does not divide 36°: the equatorial half-turns of D5 do not permute it
    with pytest.raises(GridError, match="not a grid longitude"):
        wb = equiangular_grid(32, 64, poles=False)
        rotations = icosahedral_rotations()
        half_turn = rotations[np.isclose(rotations[:, 2, 2], -1)][0]
        grid_permutation(wb, half_turn)


@pytest.mark.parametrize("grid", _all_grids(), ids=repr)
def test_grid_from_coords_recovers_each_kind_from_float32(grid):
    found = grid_from_coords(grid.lat.astype(np.float32), grid.lon.astype(np.float32))
    assert found == grid and hash(found) == hash(grid) and found.kind == grid.kind


LAT, LON = np.linspace(-90, 90, 19), np.arange(36) * 10.0


def _with(a, i, value):
    a = np.array(a, dtype=np.float64)
    a[i] = value
    return a


@pytest.mark.parametrize(
    ("lat", "lon", "match"),
    [
        (_with(LAT, 3, np.nan), LON, r"latitude contains nan at index 3"),
        (LAT, _with(LON, 7, np.inf), r"longitude contains inf at index 7"),
        (_with(LAT, -1, 90.5), LON, r"latitude\[18\] = 90.5 is outside \[-90, 90\]"),
        (LAT[::-1], LON, r"latitude is descending .*flip the latitude axis"),
        (
            LAT[[0, 1, 3, 2, *range(4, 19)]],
            LON,
            r"latitude is not sorted: latitude\[2\] = -60 > latitude\[3\] = -70",
        ),
        (_with(LAT, 4, LAT[3]), LON, r"latitude repeats -60 at indices 3 and 4"),
        (np.r_[LAT[:9], LAT[10:]], LON, r"latitude spacing is uneven .*not Gaussian"),
        (np.linspace(-80, 80, 17), LON, r"do not cover the globe: expected ends ±90"),
        (LAT, np.delete(LON, 5), r"longitude spacing is uneven .*missing"),
        (LAT, LON[:-1], r"cover 350 degrees, not 360: expected 36 columns, got 35"),
        (LAT, np.r_[LON, 360.0], r"longitude repeats the circle"),
        (LAT, LON[[0, 2, 1, *range(3, 36)]], r"longitude is not sorted"),
        (LAT, _with(LON, 1, 0.0), r"longitude repeats 0 at indices 0 and 1"),
        (LAT, _with(LON, 1, 10.5), r"longitude spacing is uneven"),
        (LAT, LON - 200, r"longitude\[0\] = -200 is outside \[-180, 360\]"),
        (LAT[:, None], LON, r"latitude must be a non-empty 1-D array"),
    ],
)
def test_grid_from_coords_rejects_bad_coordinates(lat, lon, match):
    with pytest.raises(GridError, match=match):
        grid_from_coords(lat, lon)


def test_grid_from_coords_accepts_shifted_longitudes_and_snaps():
    g = grid_from_coords(LAT + 1e-7, LON - 180)
    assert g.kind == "equiangular_with_poles" and g.lon[0] == -180
    np.testing.assert_array_equal(g.lat, equiangular_grid(19, 36).lat)  # canonical, exact


def test_grid_is_immutable_and_validated():
    g = equiangular_grid(5, 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.kind = "gaussian"
    with pytest.raises(ValueError, match="read-only"):
        g.lat[0] = 1.0
    with pytest.raises(GridError, match="not the gaussian latitude set"):
        LatLonGrid(g.lat, g.lon, "gaussian")
    with pytest.raises(GridError, match="grid kind must be one of"):
        LatLonGrid(g.lat, g.lon, "regular")
    with pytest.raises(GridError, match="lon0 \\+ j \\* 360 / 7"):
        LatLonGrid(g.lat, g.lon[:-1], g.kind)
    with pytest.raises(GridError, match="nlat must be an int >= 2"):
        equiangular_grid(1, 8)
    with pytest.raises(GridError, match="nlon must be an int >= 1"):
        gaussian_grid(4, 0)
    assert equiangular_grid(5, 8) == g and equiangular_grid(5, 8, poles=False) != g
    with pytest.raises(GridError, match="expects a LatLonGrid"):
        area_weights(g.lat)
