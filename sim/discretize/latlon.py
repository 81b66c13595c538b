"""Global latitude-longitude grids: equiangular (with or without poles) and Gaussian, their area weights,
their points on the unit sphere, and the rotations that map them onto themselves (as permutations).

Conventions:

* **Axis order.** Fields on a grid are arrays ``[..., nlat, nlon]``; latitude ascends (south to north)
  along the first of the two axes, longitude ascends (eastward) along the last. Flattened, grid point
  ``g = i_lat * nlon + i_lon`` (row-major), as GraphCast does.
* **Coordinates** are in degrees. Latitudes lie in ``[-90, 90]`` and are symmetric about the equator.
  Longitudes are ``lon0 + j * 360 / nlon``, ``j = 0 ... nlon - 1``, covering the circle once (no repeated
  360°), with ``lon0`` in ``[-180, 360)`` (usually 0).
* **Kinds.** ``"equiangular_with_poles"``: ``lat_i = -90 + 180 i / (nlat - 1)`` (ERA5 0.25° is 721 x 1440,
  WeatherBench2 1.5° is 121 x 240); ``"equiangular_without_poles"``: cell centres
  ``lat_i = -90 + 180 (i + 1/2) / nlat`` (WeatherBench 5.625° is 32 x 64: -87.1875 ... 87.1875);
  ``"gaussian"``: the Legendre-Gauss nodes ``sin(lat_i)``.
* **Points on the sphere**: ``(x, y, z) = (cos lat cos lon, cos lat sin lon, sin lat)``: z is the polar
  axis, x points to longitude 0 on the equator. A rotation by ``angle`` about z (counter-clockwise seen
  from above the north pole, i.e. eastward) maps the grid onto itself when ``angle`` is a multiple of the
  spacing ``360 / nlon``: it is ``np.roll(field, shift, axis=-1)`` with ``shift = longitude_roll(...)``.
* **Winds as 3-D vectors.** ``(u, v)`` (eastward, northward) at ``(lat, lon)`` is the tangent vector
  ``u e_east + v e_north`` with ``e_east = (-sin lon, cos lon, 0)`` and
  ``e_north = (-sin lat cos lon, -sin lat sin lon, cos lat)`` (:func:`tangent_frame`). At a pole the frame
  is the limit along the grid point's meridian (the convention of ERA5 and WeatherBench2, whose pole rows
  carry one (u, v) per longitude): at the north pole ``e_north = (-cos lon, -sin lon, 0)``, pointing away
  from the meridian ``lon``, at the south pole ``(cos lon, sin lon, 0)``. The frame is orthonormal and
  tangent everywhere, so the conversion both ways (:func:`wind_to_vector`, :func:`vector_to_wind`) is
  exact to rounding, poles included; a pole row is one physical vector when its ``(u, v)`` are.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "GRID_KINDS",
    "GridError",
    "LatLonGrid",
    "area_weights",
    "equiangular_grid",
    "gaussian_grid",
    "grid_from_coords",
    "grid_permutation",
    "latlon_to_xyz",
    "longitude_roll",
    "polar_rotation",
    "tangent_frame",
    "vector_to_wind",
    "wind_to_vector",
    "xyz_to_latlon",
]

GRID_KINDS = ("equiangular_with_poles", "equiangular_without_poles", "gaussian")


class GridError(ValueError):
    """Coordinates that do not describe a complete, sorted global lat-lon grid (or a grid mismatch)."""


def _int_at_least(name: str, value, least: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
        raise GridError(f"{name} must be an int >= {least}, got {value!r}")
    return int(value)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)  # a private copy
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=32)
def _gauss_legendre(nlat: int) -> tuple[np.ndarray, np.ndarray]:
    """Legendre-Gauss nodes (as latitudes in degrees, ascending) and weights (sum 2), exactly symmetric."""
    x, w = np.polynomial.legendre.leggauss(nlat)  # ascending nodes in (-1, 1)
    x = (x - x[::-1]) / 2  # symmetrize the rounding: x[i] == -x[n-1-i] exactly
    w = (w + w[::-1]) / 2
    lat = np.rad2deg(np.arcsin(x))
    lat = (lat - lat[::-1]) / 2
    return _readonly(lat), _readonly(w)


def _canonical_latitudes(kind: str, nlat: int) -> np.ndarray:
    i = np.arange(nlat)
    if kind == "equiangular_with_poles":
        return (2 * i - (nlat - 1)) * 90.0 / (nlat - 1)  # one rounding, so lat[i] == -lat[n-1-i]
    if kind == "equiangular_without_poles":
        return (2 * i + 1 - nlat) * 90.0 / nlat
    return np.array(_gauss_legendre(nlat)[0])


def _canonical_longitudes(nlon: int, lon0: float) -> np.ndarray:
    return lon0 + np.arange(nlon) * 360.0 / nlon


@dataclass(frozen=True, eq=False)
class LatLonGrid:
    """A complete global latitude-longitude grid (immutable; arrays are read-only copies).

    Build one with :func:`equiangular_grid`, :func:`gaussian_grid` or :func:`grid_from_coords` (which
    validates coordinates read from data). Direct construction checks that ``lat`` is the canonical
    latitude set of ``kind`` and ``lon`` a complete equally spaced circle, to 1e-9 degrees.

    Attributes:
        lat: ``[nlat]`` float64 degrees, strictly ascending, symmetric about the equator.
        lon: ``[nlon]`` float64 degrees, ``lon0 + j * 360 / nlon``, ``lon0`` in ``[-180, 360)``.
        kind: one of :data:`GRID_KINDS`.
    """

    lat: np.ndarray
    lon: np.ndarray
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in GRID_KINDS:
            raise GridError(f"grid kind must be one of {GRID_KINDS}, got {self.kind!r}")
        lat = np.asarray(self.lat, dtype=np.float64)
        lon = np.asarray(self.lon, dtype=np.float64)
        if lat.ndim != 1 or lon.ndim != 1:
            raise GridError(f"lat and lon must be 1-D, got shapes {list(lat.shape)} and {list(lon.shape)}")
        least = 2 if self.kind == "equiangular_with_poles" else 1
        if lat.size < least or lon.size < 1:
            raise GridError(
                f"a {self.kind} grid needs nlat >= {least} and nlon >= 1, got {lat.size} x {lon.size}"
            )
        if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
            raise GridError("lat and lon must be finite (no NaN or inf)")
        expected = _canonical_latitudes(self.kind, lat.size)
        if not np.allclose(lat, expected, rtol=0, atol=1e-9):
            raise GridError(f"lat is not the {self.kind} latitude set for nlat={lat.size}")
        if not -180 <= lon[0] < 360 or not np.allclose(
            lon, _canonical_longitudes(lon.size, lon[0]), rtol=0, atol=1e-9
        ):
            raise GridError(
                f"lon must be lon0 + j * 360 / {lon.size} with lon0 in [-180, 360), got {lon[:3]}..."
            )
        object.__setattr__(self, "lat", _readonly(lat))
        object.__setattr__(self, "lon", _readonly(lon))

    def __eq__(self, other) -> bool:
        if not isinstance(other, LatLonGrid):
            return NotImplemented
        return (
            self.kind == other.kind
            and np.array_equal(self.lat, other.lat)
            and np.array_equal(self.lon, other.lon)
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.lat.tobytes(), self.lon.tobytes()))

    def __repr__(self) -> str:
        return f"LatLonGrid({self.nlat} x {self.nlon}, {self.kind}, lon0={self.lon[0]:g})"

    @property
    def nlat(self) -> int:
        return self.lat.size

    @property
    def nlon(self) -> int:
        return self.lon.size

    @property
    def shape(self) -> tuple[int, int]:
        """``(nlat, nlon)``: the last two axes of a field on this grid."""
        return (self.nlat, self.nlon)

    @property
    def dlon(self) -> float:
        """Longitude spacing in degrees, ``360 / nlon``."""
        return 360.0 / self.nlon

    def xyz(self) -> np.ndarray:
        """Grid points on the unit sphere, ``[nlat, nlon, 3]`` float64.

        ``.reshape(-1, 3)`` gives ``[G, 3]`` in the flattened order ``g = i_lat * nlon + i_lon``. The pole
        rows (if any) are exactly ``(0, 0, ±1)``.
        """
        lat, lon = np.meshgrid(self.lat, self.lon, indexing="ij")  # [nlat, nlon] each
        return latlon_to_xyz(lat, lon)


def equiangular_grid(nlat: int, nlon: int, *, poles: bool = True, lon0: float = 0.0) -> LatLonGrid:
    """An equiangular grid, ``nlat x nlon``.

    Args:
        nlat: number of latitudes (>= 2 with poles, >= 1 without).
        nlon: number of longitudes.
        poles: include both poles (``lat = -90 + 180 i / (nlat - 1)``: 121 x 240 is 1.5°, 721 x 1440 is
            ERA5's 0.25°); else cell centres (``lat = -90 + 180 (i + 1/2) / nlat``: 32 x 64 is
            WeatherBench's 5.625°).
        lon0: first longitude in degrees.

    Returns:
        LatLonGrid of kind ``"equiangular_with_poles"`` or ``"equiangular_without_poles"``.
    """
    nlat = _int_at_least("nlat", nlat, 2 if poles else 1)
    nlon = _int_at_least("nlon", nlon, 1)
    kind = "equiangular_with_poles" if poles else "equiangular_without_poles"
    return LatLonGrid(_canonical_latitudes(kind, nlat), _canonical_longitudes(nlon, float(lon0)), kind)


def gaussian_grid(nlat: int, nlon: int, *, lon0: float = 0.0) -> LatLonGrid:
    """A Gaussian grid: latitudes at the Legendre-Gauss nodes (``sin(lat)`` are the roots of ``P_nlat``).

    Its quadrature weights are :func:`area_weights` of the grid: with them a sum over latitudes integrates
    exactly any polynomial of degree up to ``2 nlat - 1`` in ``sin(lat)``.

    Args:
        nlat: number of latitudes (>= 1).
        nlon: number of longitudes (>= 1).
        lon0: first longitude in degrees.
    """
    nlat = _int_at_least("nlat", nlat, 1)
    nlon = _int_at_least("nlon", nlon, 1)
    return LatLonGrid(
        _canonical_latitudes("gaussian", nlat), _canonical_longitudes(nlon, float(lon0)), "gaussian"
    )


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _fmt(x) -> str:
    """A coordinate in an error message: enough digits to show a tiny excess (90.0000001), none extra."""
    return f"{float(x):.10g}"


def _check_axis(name: str, values, *, low: float, high: float, slack: float = 0.0) -> np.ndarray:
    """Finite, 1-D, within [low - slack, high + slack], strictly ascending, no repeats."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise GridError(f"{name} must be a non-empty 1-D array, got shape {list(a.shape)}")
    if not np.isfinite(a).all():
        i = _first_bad(~np.isfinite(a))
        raise GridError(f"{name} contains {a[i]} at index {i}; expected finite degrees")
    outside = (a < low - slack) | (a > high + slack)
    if outside.any():
        i = _first_bad(outside)
        raise GridError(f"{name}[{i}] = {_fmt(a[i])} is outside [{low:g}, {high:g}] degrees")
    d = np.diff(a)
    if (d == 0).any():
        i = _first_bad(d == 0)
        raise GridError(f"{name} repeats {_fmt(a[i])} at indices {i} and {i + 1}; expected distinct values")
    if (d < 0).any():
        i = _first_bad(d < 0)
        raise GridError(
            f"{name} is not sorted: {name}[{i}] = {_fmt(a[i])} > {name}[{i + 1}] = {_fmt(a[i + 1])}"
        )
    return a


def _classify_latitudes(lat: np.ndarray, atol: float) -> str:
    n = lat.size
    for kind in ("equiangular_with_poles", "equiangular_without_poles"):
        if kind == "equiangular_with_poles" and n < 2:
            continue
        if np.allclose(lat, _canonical_latitudes(kind, n), rtol=0, atol=atol):
            return kind
    if np.allclose(lat, _canonical_latitudes("gaussian", n), rtol=0, atol=atol):
        return "gaussian"
    d = np.diff(lat)
    if n > 2 and d.max() - d.min() > atol:
        raise GridError(
            f"latitude spacing is uneven ({_fmt(d.min())} to {_fmt(d.max())} degrees) and not Gaussian; "
            "expected an equiangular grid (with or without poles) or Gaussian latitudes"
        )
    step = d[0] if n > 1 else 180.0
    raise GridError(
        f"latitudes {lat[0]:g} ... {lat[-1]:g} (step {step:g}) do not cover the globe: expected ends "
        f"±90 (with poles) or ±{90 - step / 2:g} (cell centres, without poles)"
    )


def grid_from_coords(lat, lon, *, atol: float = 1e-5) -> LatLonGrid:
    """Validate latitude and longitude coordinates read from data and return the grid they describe.

    The grid is recognised as equiangular with poles, equiangular without poles, or Gaussian, and the
    returned grid holds the canonical float64 coordinates of that kind (which differ from the given ones
    by at most ``atol``, so float32 coordinates from a file give exactly symmetric grids).

    Latitudes must ascend: data stored north to south (ERA5: 90 -> -90) must be flipped first
    (``field[..., ::-1, :]``); a descending axis is an error, never silently reinterpreted.

    Args:
        lat: ``[nlat]`` degrees.
        lon: ``[nlon]`` degrees, ascending, equally spaced, covering 360° exactly once.
        atol: tolerance in degrees for the spacing and the match with the canonical coordinates.

    Returns:
        LatLonGrid.

    Raises:
        GridError: one line naming the problem: NaN or inf, a value out of range, repeated or unsorted
            values, descending latitude, uneven spacing, latitudes that do not reach the poles, longitudes
            that do not cover the circle (a missing column) or repeat it (both 0 and 360).
    """
    lat_raw = np.asarray(lat, dtype=np.float64)
    if lat_raw.ndim == 1 and lat_raw.size > 1 and np.isfinite(lat_raw).all() and (np.diff(lat_raw) < 0).all():
        raise GridError(
            f"latitude is descending ({lat_raw[0]:g} ... {lat_raw[-1]:g}); expected ascending: flip the "
            "latitude axis of the data first (ERA5 stores 90 -> -90)"
        )
    lat = _check_axis("latitude", lat_raw, low=-90.0, high=90.0, slack=atol)
    lon = _check_axis("longitude", lon, low=-180.0, high=360.0)
    kind = _classify_latitudes(lat, atol)
    nlon = lon.size
    if lon[0] >= 360:
        raise GridError(f"longitude[0] = {lon[0]:g}; expected a first longitude in [-180, 360)")
    if nlon > 1:
        d = np.diff(lon)
        if d.max() - d.min() > atol:
            i = int(np.argmax(np.abs(d - np.median(d))))
            raise GridError(
                f"longitude spacing is uneven ({_fmt(d.min())} to {_fmt(d.max())} degrees, at index {i}): "
                "a missing or extra column? expected equally spaced longitudes"
            )
        span = nlon * float(np.mean(d))  # the circle covered by nlon cells of this spacing
        if abs(span - 360.0) > nlon * atol:
            if abs((nlon - 1) * float(np.mean(d)) - 360.0) <= nlon * atol:
                raise GridError(
                    f"longitude repeats the circle: {lon[0]:g} and {lon[-1]:g} are the same meridian; "
                    "drop the last column"
                )
            raise GridError(
                f"longitudes {lon[0]:g} ... {lon[-1]:g} with spacing {np.mean(d):g} cover {span:g} degrees, "
                f"not 360: expected {360.0 / float(np.mean(d)):.6g} columns, got {nlon} (incomplete grid?)"
            )
    expected_lon = _canonical_longitudes(nlon, float(lon[0]))
    if not np.allclose(lon, expected_lon, rtol=0, atol=atol):
        i = _first_bad(~np.isclose(lon, expected_lon, rtol=0, atol=atol))
        raise GridError(
            f"longitude[{i}] = {_fmt(lon[i])}; expected {_fmt(expected_lon[i])} for {nlon} equal columns"
        )
    return LatLonGrid(_canonical_latitudes(kind, lat.size), expected_lon, kind)


def area_weights(grid: LatLonGrid) -> np.ndarray:
    """Cell-area weights per latitude, normalized to mean 1 (``sum == nlat``).

    Equiangular grids: WeatherBench2's definition (``weatherbench2.metrics.get_lat_weights``): cell bounds
    halfway between neighbouring latitudes, ``-90`` and ``90`` at the ends, weight ``sin(upper) -
    sin(lower)`` (the exact area of the band). With poles, the pole rows get the polar caps of half a
    cell; interior rows ``2 cos(lat) sin(dlat / 2)``. Gaussian grids: the Legendre-Gauss quadrature
    weights (exact for polynomials of degree ``2 nlat - 1`` in ``sin(lat)``). The cell-bounds formula on
    Gaussian latitudes would differ from them by O(1/nlat^2) near the equator but by ~6% in the rows
    next to the poles, whatever ``nlat``.

    A global mean of a field ``f [..., nlat, nlon]`` is ``(f * w[:, None]).mean((-2, -1))``.

    Returns:
        ``[nlat]`` float64, positive, symmetric about the equator.
    """
    if not isinstance(grid, LatLonGrid):
        raise GridError(f"area_weights expects a LatLonGrid, got {type(grid).__name__}")
    if grid.kind == "gaussian":
        w = np.array(_gauss_legendre(grid.nlat)[1])
    else:
        lat = np.deg2rad(grid.lat)
        bounds = np.concatenate([[-np.pi / 2], (lat[:-1] + lat[1:]) / 2, [np.pi / 2]])  # [nlat + 1]
        w = np.sin(bounds[1:]) - np.sin(bounds[:-1])
    return w / w.mean()


def latlon_to_xyz(lat, lon) -> np.ndarray:
    """Points on the unit sphere from latitude and longitude in degrees (broadcast together).

    Returns:
        ``[..., 3]`` float64 ``(cos lat cos lon, cos lat sin lon, sin lat)``; at ``lat = ±90`` exactly
        ``(0, 0, ±1)``.
    """
    lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    cos_phi = np.where(np.abs(lat) == 90, 0.0, np.cos(phi))
    sin_phi = np.where(np.abs(lat) == 90, np.sign(lat), np.sin(phi))
    return np.stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), sin_phi], axis=-1)


def xyz_to_latlon(xyz) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in degrees of points ``[..., 3]`` (any nonzero length).

    Returns:
        ``(lat, lon)``, each ``[...]``: ``lat`` in ``[-90, 90]``, ``lon`` in ``[0, 360)`` (0 at the poles).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.shape[-1:] != (3,):
        raise ValueError(f"xyz must have shape [..., 3], got {list(xyz.shape)}")
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lat = np.rad2deg(np.arctan2(z, np.hypot(x, y)))
    lon = np.rad2deg(np.arctan2(y, x)) % 360.0
    return lat, np.where(lon == 360.0, 0.0, lon)  # -tiny % 360 rounds to 360


def tangent_frame(lat, lon) -> np.ndarray:
    """The local east and north unit vectors at points given by latitude and longitude in degrees.

    Args:
        lat, lon: degrees, broadcast together (a pole is ``lat = ±90`` exactly).

    Returns:
        ``[..., 2, 3]`` float64: ``[..., 0, :]`` east, ``[..., 1, :]`` north (see the module docstring; at the
        poles the limit along the meridian ``lon``). Orthonormal and orthogonal to
        ``latlon_to_xyz(lat, lon)`` to rounding.
    """
    lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    pole = np.abs(lat) == 90
    cos_phi = np.where(pole, 0.0, np.cos(phi))
    sin_phi = np.where(pole, np.sign(lat), np.sin(phi))
    cos_lam, sin_lam = np.cos(lam), np.sin(lam)
    east = np.stack([-sin_lam, cos_lam, np.zeros_like(lam)], axis=-1)
    north = np.stack([-sin_phi * cos_lam, -sin_phi * sin_lam, cos_phi], axis=-1)
    return np.stack([east, north], axis=-2)


def wind_to_vector(u, v, frame):
    """3-D tangent vectors ``u e_east + v e_north`` from wind components.

    Args:
        u, v: ``[..., G]`` eastward and northward components (numpy arrays or torch tensors).
        frame: ``[G, 2, 3]`` from :func:`tangent_frame` (flattened grid points), the same array type as
            ``u`` (a tensor: the same dtype and device).

    Returns:
        ``[..., G, 3]``.
    """
    return u[..., None] * frame[:, 0] + v[..., None] * frame[:, 1]


def vector_to_wind(vec, frame):
    """Wind components ``(u, v)`` of 3-D vectors: their projections on ``e_east`` and ``e_north``.

    The inverse of :func:`wind_to_vector` for tangent vectors; for others it drops the radial part (the
    projection onto the tangent plane first), which is what a model's 3-D output should mean.

    Args:
        vec: ``[..., G, 3]`` (numpy or torch).
        frame: ``[G, 2, 3]`` from :func:`tangent_frame`.

    Returns:
        ``(u, v)``, each ``[..., G]``.
    """
    return (vec * frame[:, 0]).sum(-1), (vec * frame[:, 1]).sum(-1)


def polar_rotation(angle: float) -> np.ndarray:
    """The rotation by ``angle`` degrees about the polar (z) axis, eastward (counter-clockwise seen from
    above the north pole): ``[3, 3]`` float64, acting as ``x' = R @ x``."""
    a = np.deg2rad(angle)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def longitude_roll(grid: LatLonGrid, angle: float, *, atol: float = 1e-9) -> int:
    """The roll of the longitude axis that is the rotation by ``angle`` degrees about the polar axis.

    The rotated field ``f'(p) = f(R^-1 p)`` (``R = polar_rotation(angle)``) is
    ``np.roll(f, shift, axis=-1)`` for ``f [..., nlat, nlon]``, exactly; on points,
    ``R @ xyz[i, j] == xyz[i, (j + shift) % nlon]``.

    Returns:
        ``shift`` in ``[0, nlon)``.

    Raises:
        GridError: ``angle`` is not a multiple of the spacing ``360 / nlon`` (to ``atol`` degrees).
    """
    steps = angle / grid.dlon
    shift = round(steps)
    if abs(steps - shift) * grid.dlon > atol:
        raise GridError(
            f"a rotation by {angle:g} degrees is not a roll of this grid: expected a multiple of its "
            f"spacing {grid.dlon:g} degrees"
        )
    return int(shift % grid.nlon)


def grid_permutation(grid: LatLonGrid, rotation: np.ndarray, *, atol: float = 1e-9) -> np.ndarray:
    """The permutation of the (flattened) grid points by an orthogonal map that keeps the polar axis.

    Such maps are ``R = [[Q, 0], [0, s]]`` with ``Q`` a 2x2 orthogonal matrix and ``s = ±1``: rotations about
    the pole (a roll), half-turns about an equatorial axis (flip of both axes), the mirror in the equator
    and mirrors in a meridian plane. They send ``(lat, lon)`` to ``(s lat, lon + theta)`` (``det Q = 1``,
    ``Q`` the rotation by ``theta``) or ``(s lat, 2 alpha - lon)`` (``det Q = -1``, the mirror in the
    meridian at ``alpha``). The pole rows are permuted by this formula too (their points coincide).

    Args:
        grid: the grid.
        rotation: ``[3, 3]`` orthogonal matrix, ``x' = R @ x``.
        atol: tolerance in degrees for landing on a grid longitude, and for the matrix entries.

    Returns:
        ``perm [nlat * nlon]`` int64 with ``R @ xyz[g] == xyz[perm[g]]`` (flattened ``g = i * nlon + j``);
        a field ``f [..., nlat * nlon]`` rotated by ``R`` is ``f'[..., perm] = f``.

    Raises:
        GridError: the matrix is not orthogonal, moves the polar axis, or does not land on grid longitudes.
    """
    R = np.asarray(rotation, dtype=np.float64)
    if R.shape != (3, 3) or not np.isfinite(R).all() or not np.allclose(R @ R.T, np.eye(3), atol=1e-9):
        raise GridError(f"rotation must be an orthogonal [3, 3] matrix, got {R.tolist()}")
    tol = np.deg2rad(atol)
    if np.abs(R[2, :2]).max() > tol or np.abs(R[:2, 2]).max() > tol:
        raise GridError(
            f"the map moves the polar axis to {np.round(R[:, 2], 6).tolist()}: only maps that keep it "
            "(rotations about the pole, half-turns about equatorial axes, mirrors) permute a lat-lon grid"
        )
    s = int(np.sign(R[2, 2]))
    q = R[:2, :2]
    angle = np.rad2deg(np.arctan2(q[1, 0], q[0, 0]))  # theta, or 2 alpha for a mirror
    proper = np.linalg.det(q) > 0
    lat_index = np.arange(grid.nlat) if s > 0 else np.arange(grid.nlat)[::-1]  # latitudes are symmetric
    new_lon = grid.lon + angle if proper else angle - grid.lon  # [nlon]
    steps = (new_lon - grid.lon[0]) / grid.dlon
    lon_index = np.round(steps).astype(np.int64)
    off = np.abs(steps - lon_index) * grid.dlon
    if off.max() > atol:
        j = int(np.argmax(off))
        raise GridError(
            f"the map sends longitude {grid.lon[j]:g} to {new_lon[j] % 360:g}, which is not a grid longitude "
            f"(spacing {grid.dlon:g} from {grid.lon[0]:g})"
        )
    lon_index %= grid.nlon
    return (lat_index[:, None] * grid.nlon + lon_index[None, :]).reshape(-1)  # [nlat * nlon]
