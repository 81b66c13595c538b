"""Shallow water on the rotating sphere: a spectral solver on torch-harmonics' spherical harmonic transforms.

Equations (vorticity-divergence form, as torch-harmonics' ``ShallowWaterSolver`` and Hack & Jakob 1992),
for the geopotential ``Phi = g h``, the relative vorticity ``zeta`` and the divergence ``delta``::

    d zeta / dt  = - div((zeta + f) u)
    d delta / dt =   k . curl((zeta + f) u) - Laplacian(Phi + |u|^2 / 2)
    d Phi / dt   = - div(Phi u)

with ``u = (u, v)`` the eastward and northward wind (from ``zeta`` and ``delta`` through the inverse
Laplacian and the vector harmonic transform) and ``f = 2 Omega (n . r)`` the Coriolis parameter of a
rotation about the unit axis ``n`` (``r`` the unit position vector): with ``n = (0, 0, 1)`` it is the usual
``2 Omega sin(lat)``; any other axis tilts the physics away from the grid's pole (Williamson et al. 1992
run their test cases with the flow tilted by ``alpha``; here the rotation itself is tilted, so that models
can be tested on rotated physics on a fixed grid).

Conventions:

* **Grids.** ``grid="equiangular"`` is the equiangular grid with both poles (``nlat`` rows from -90 to 90,
  sim's ``equiangular_with_poles``); ``grid="legendre-gauss"`` the Gaussian grid (sim's ``gaussian``).
  Longitudes are ``360 j / nlon``, ``j = 0 ... nlon - 1``. Grid-point fields in this module's API are
  ``[..., nlat, nlon]`` with latitude ASCENDING (south to north), as ``sim.discretize.latlon``.
  torch-harmonics orders rows north to south: the flip happens at the boundary (``to_grid``,
  ``from_grid``), never in the state.
* **Points** ``r = (cos lat cos lon, cos lat sin lon, sin lat)`` (``sim.discretize.latlon.latlon_to_xyz``).
* **Spectral state** ``[..., 3, lmax, mmax]`` complex: the coefficients of ``(Phi, zeta, delta)`` in
  torch-harmonics' real SHT with ``norm="ortho"`` and ``csphase=False`` (the same basis as its
  ``ShallowWaterSolver``, so states can be exchanged with it): ``f = sum_lm f_lm Y_lm``, ``int Y_lm^2 dOmega
  = 1``; the global mean of ``Phi`` is ``Re Phi_00 / sqrt(4 pi)``. Entries with ``m > l`` are zero.
* **Units** SI: ``Phi`` in m^2 s^-2, ``zeta``/``delta`` in s^-1, winds in m s^-1, times in seconds.
* **Truncation.** ``lmax = mmax = ceil(nlat / 3)`` by default (torch-harmonics' PDE data set): the
  quadratic terms are then alias-free, and the explicit step is stable for moderate ``dt``.
* **Time stepping.** ``stepper="rk4"`` (default): classical 4th-order Runge-Kutta, self-starting, so
  ``advance(advance(x, s), t) == advance(x, s + t)`` up to rounding when both are multiples of ``dt``.
  ``stepper="ab3"``: 3rd-order Adams-Bashforth started by forward Euler and AB2, exactly torch-harmonics'
  ``ShallowWaterSolver.timestep`` (each ``advance`` call restarts it). Stable ``dt`` for gravity waves
  ``c = sqrt(g H)`` at degree ``L``: about ``2.8 a / (c sqrt(L (L + 1)))`` (RK4), ``0.7 a / (...)`` (AB3).
* **Hyperdiffusion** on vorticity and divergence (not on ``Phi``, so mass stays exact): the factor
  ``exp(-h (l (l + 1) / (L (L + 1)))^order / tau)`` per step of length ``h``, ``L = lmax - 1`` the largest
  degree, ``tau = hyperdiffusion_time`` the e-folding time at ``L`` (``order = 4``: a del^8 operator; the
  defaults ``order = 4, tau = 2 h`` are torch-harmonics'). RK4 applies half the factor before the step and
  half after (Strang splitting); AB3 all of it after the step, as torch-harmonics does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch_harmonics as th
from torch import nn

from sim.discretize.latlon import LatLonGrid, equiangular_grid, gaussian_grid
from sim.solvers.ns2d import SolverDivergedError

__all__ = ["SWE_GRIDS", "ShallowWaterSphere", "tilted_axis"]

SWE_GRIDS = ("equiangular", "legendre-gauss")
_DAY = 86400.0


def tilted_axis(alpha: float, longitude: float = 180.0) -> tuple[float, float, float]:
    """The unit rotation axis tilted by ``alpha`` degrees from the north pole towards ``longitude``.

    ``tilted_axis(alpha)`` is Williamson et al.'s tilt: ``(-sin alpha, 0, cos alpha)``, the axis leaning
    towards longitude 180.

    Args:
        alpha: tilt in degrees (0: the grid's pole).
        longitude: the longitude (degrees) the axis leans towards.

    Returns:
        ``(x, y, z)`` of unit length.
    """
    a, lon = math.radians(alpha), math.radians(longitude)
    return (math.sin(a) * math.cos(lon) + 0.0, math.sin(a) * math.sin(lon) + 0.0, math.cos(a) + 0.0)


def _frame(axis: np.ndarray) -> np.ndarray:
    """The rotation ``R`` (``[3, 3]``) taking ``z`` to ``axis`` by the smallest angle (about ``z x axis``)."""
    z = np.array([0.0, 0.0, 1.0])
    c = float(axis @ z)
    k = np.cross(z, axis)
    s = float(np.linalg.norm(k))
    if s < 1e-15:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])  # the half-turn about x for -z
    k = k / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def _check_positive(name: str, value, *, integer: bool = False) -> None:
    if integer:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        expected = "an int >= 1"
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
        expected = "a finite float > 0"
    if not ok:
        raise ValueError(f"ShallowWaterSphere: {name} must be {expected}, got {value!r}")


class ShallowWaterSphere(nn.Module):
    """Batched spectral shallow-water solver on the rotating sphere (see the module docstring).

    The computation runs in ``dtype`` (float32 or float64) on the device the module is moved to
    (``solver.to("cuda")``); all tables are non-persistent buffers, so the module has no state dict.
    States are spectral, ``[..., 3, lmax, mmax]`` complex (``complex64`` for float32): ``(Phi, zeta,
    delta)``; any leading batch shape works.

    Args:
        nlat: latitudes (>= 4); ``nlon``: longitudes (>= 4).
        dt: the largest time step in seconds; ``advance`` splits a span into equal steps no larger.
        grid: ``"equiangular"`` (with poles) or ``"legendre-gauss"``.
        lmax: spectral truncation (degrees ``0 ... lmax - 1``, orders ``m < lmax``); default
            ``ceil(nlat / 3)``.
        radius: sphere radius (m). ``omega``: rotation rate (s^-1). ``gravity``: g (m s^-2).
        havg: mean fluid depth (m) of the initial conditions.
        hyperdiffusion_order: power ``k`` of the Laplacian in the hyperdiffusion (``del^2k``), >= 1.
        hyperdiffusion_time: e-folding time (s) at the largest degree; None switches it off.
        axis: the rotation axis ``(x, y, z)`` (normalized here), e.g. :func:`tilted_axis`.
        stepper: ``"rk4"`` or ``"ab3"``.
        dtype: ``torch.float32`` or ``torch.float64``.
        exact_vector_norm: correct torch-harmonics 0.8.0's vector transform, whose ``1 / (l (l + 1))``
            factor is rounded to float32 (relative errors ~1e-8); False keeps it as it is (as its
            ``ShallowWaterSolver``, e.g. to compare with it to rounding).

    Example:
        >>> solver = ShallowWaterSphere(64, 128, dt=600.0, dtype=torch.float64)
        >>> x0 = solver.galewsky()                    # [3, 22, 22] complex128
        >>> x1 = solver.advance(x0, 86400.0)          # one day later
        >>> fields = solver.to_grid(x1)               # {"geopotential": [64, 128], "u": ..., "v": ...}
    """

    def __init__(
        self,
        nlat: int,
        nlon: int,
        *,
        dt: float,
        grid: str = "equiangular",
        lmax: int | None = None,
        radius: float = 6.37122e6,
        omega: float = 7.292e-5,
        gravity: float = 9.80616,
        havg: float = 10e3,
        hyperdiffusion_order: int = 4,
        hyperdiffusion_time: float | None = 7200.0,
        axis: Sequence[float] = (0.0, 0.0, 1.0),
        stepper: str = "rk4",
        dtype: torch.dtype = torch.float64,
        exact_vector_norm: bool = True,
    ):
        super().__init__()
        for name, value in (("nlat", nlat), ("nlon", nlon)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 4):
                raise ValueError(f"ShallowWaterSphere: {name} must be an int >= 4, got {value!r}")
        if grid not in SWE_GRIDS:
            raise ValueError(f"ShallowWaterSphere: grid must be one of {SWE_GRIDS}, got {grid!r}")
        lmax = math.ceil(nlat / 3) if lmax is None else lmax
        if not (
            isinstance(lmax, int) and not isinstance(lmax, bool) and 2 <= lmax <= min(nlat, nlon // 2 + 1)
        ):
            raise ValueError(
                f"ShallowWaterSphere: lmax must be an int in [2, {min(nlat, nlon // 2 + 1)}] for a "
                f"{nlat} x {nlon} grid, got {lmax!r}"
            )
        for name, value in (("dt", dt), ("radius", radius), ("omega", omega), ("gravity", gravity)):
            if name == "omega":
                if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                    raise ValueError(f"ShallowWaterSphere: omega must be a finite float >= 0, got {value!r}")
                continue
            _check_positive(name, value)
        _check_positive("havg", havg)
        _check_positive("hyperdiffusion_order", hyperdiffusion_order, integer=True)
        if hyperdiffusion_time is not None:
            _check_positive("hyperdiffusion_time", hyperdiffusion_time)
        n = np.asarray(axis, dtype=np.float64)
        if n.shape != (3,) or not np.isfinite(n).all() or np.linalg.norm(n) < 1e-12:
            raise ValueError(f"ShallowWaterSphere: axis must be 3 finite numbers, not all 0, got {axis!r}")
        n = n / np.linalg.norm(n)
        if stepper not in ("rk4", "ab3"):
            raise ValueError(f"ShallowWaterSphere: stepper must be 'rk4' or 'ab3', got {stepper!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"ShallowWaterSphere: dtype must be torch.float32 or torch.float64, got {dtype}")

        self.nlat, self.nlon, self.grid, self.lmax, self.mmax = nlat, nlon, grid, lmax, lmax
        self.dt, self.radius, self.omega, self.gravity = (
            float(dt),
            float(radius),
            float(omega),
            float(gravity),
        )
        self.havg = float(havg)
        self.hyperdiffusion_order = hyperdiffusion_order
        self.hyperdiffusion_time = None if hyperdiffusion_time is None else float(hyperdiffusion_time)
        self.axis = tuple(float(c) for c in n)
        self.stepper = stepper
        self.dtype = dtype
        self.cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128

        kw = {"lmax": lmax, "mmax": lmax, "grid": grid, "csphase": False}
        self.sht = th.RealSHT(nlat, nlon, **kw).to(dtype)
        self.isht = th.InverseRealSHT(nlat, nlon, **kw).to(dtype)
        vsht = th.RealVectorSHT(nlat, nlon, **kw)
        if exact_vector_norm:
            # torch-harmonics 0.8.0 builds the vector SHT's factor 1 / (l (l + 1)) from an int arange in the
            # default dtype (float32): relative errors ~1e-8 per degree, enough to unbalance a steady flow
            # at 1e-8. Replace the factor by its float64 value (the same expression, so the same rounding).
            ell = torch.arange(0, lmax)
            used = (1.0 / ell / (ell + 1)).double()
            used[0] = 1.0
            exact = 1.0 / (
                torch.arange(0, lmax, dtype=torch.float64) * torch.arange(1, lmax + 1, dtype=torch.float64)
            )
            exact[0] = 1.0
            vsht.weights = vsht.weights.double() * (exact / used)[None, None, :, None]
        self.vsht = vsht.to(dtype)
        self.ivsht = th.InverseRealVectorSHT(nlat, nlon, **kw).to(dtype)

        latlon = self.latlon_grid
        xyz = np.flip(latlon.xyz(), axis=0)  # [nlat, nlon, 3], rows north to south (internal order)
        coriolis = 2 * self.omega * (xyz @ n)  # [nlat, nlon]
        ell = np.arange(lmax, dtype=np.float64)[:, None] * np.ones((1, lmax))  # [L, M]
        lap = -ell * (ell + 1) / self.radius**2  # the Laplacian's symbol
        invlap = np.where(ell > 0, 1.0 / np.where(ell > 0, lap, 1.0), 0.0)
        rate = np.zeros_like(ell)  # hyperdiffusion rate (s^-1)
        if self.hyperdiffusion_time is not None:
            top = (lmax - 1) * lmax
            rate = (ell * (ell + 1) / top) ** hyperdiffusion_order / self.hyperdiffusion_time
        if grid == "equiangular":
            _, w = th.quadrature.clenshaw_curtiss_weights(nlat, -1, 1)
        else:
            _, w = th.quadrature.legendre_gauss_weights(nlat, -1, 1)
        # Area element per grid point (m^2), symmetric in latitude so either row order fits.
        area = w.double().numpy()[:, None] * (2 * math.pi / nlon) * self.radius**2 * np.ones((1, nlon))
        tril = np.tril(np.ones((lmax, lmax)))

        def buf(name, a):
            self.register_buffer(
                name, torch.as_tensor(np.ascontiguousarray(a), dtype=dtype), persistent=False
            )

        buf("_xyz", xyz)  # [nlat, nlon, 3] internal order
        buf("_coriolis", coriolis)
        buf("_lap", lap)
        buf("_invlap", invlap)
        buf("_rate", rate)
        buf("_area", area)
        buf("_tril", tril)

    def extra_repr(self) -> str:
        return (
            f"nlat={self.nlat}, nlon={self.nlon}, grid={self.grid!r}, lmax={self.lmax}, dt={self.dt:g}, "
            f"axis={tuple(round(c, 6) for c in self.axis)}, stepper={self.stepper!r}, dtype={self.dtype}"
        )

    @property
    def latlon_grid(self) -> LatLonGrid:
        """The grid in sim's conventions (latitude ascending): equiangular with poles, or Gaussian."""
        if self.grid == "equiangular":
            return equiangular_grid(self.nlat, self.nlon, poles=True)
        return gaussian_grid(self.nlat, self.nlon)

    # ---------------------------------------------------------------------------------------------------
    # checks and conversions

    def _check_state(self, state: torch.Tensor, what: str = "state") -> None:
        if not isinstance(state, torch.Tensor):
            raise TypeError(f"ShallowWaterSphere: {what} must be a torch.Tensor, got {type(state).__name__}")
        if state.dtype != self.cdtype:
            raise TypeError(
                f"ShallowWaterSphere: {what} must be {self.cdtype} (the solver's), got {state.dtype}"
            )
        if state.ndim < 3 or state.shape[-3:] != (3, self.lmax, self.mmax):
            raise ValueError(
                f"ShallowWaterSphere: {what} must have shape [..., 3, {self.lmax}, {self.mmax}], "
                f"got {list(state.shape)}"
            )

    def _check_grid_field(self, x: torch.Tensor, what: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"ShallowWaterSphere: {what} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[-2:] != (self.nlat, self.nlon):
            raise ValueError(
                f"ShallowWaterSphere: {what} must have shape [..., {self.nlat}, {self.nlon}], "
                f"got {list(x.shape)}"
            )
        return x.to(dtype=self.dtype, device=self._lap.device)

    def _wind(self, vortdiv: torch.Tensor) -> torch.Tensor:
        """Wind ``[..., 2, nlat, nlon]`` (east, north; rows north to south) from ``[..., 2, L, M]``."""
        return self.ivsht(self._invlap * vortdiv / self.radius)

    def _vortdiv(self, uv: torch.Tensor) -> torch.Tensor:
        """Spectra ``[..., 2, L, M]`` of (curl, div) of a field ``[..., 2, nlat, nlon]`` (internal rows)."""
        return self._lap * self.radius * self.vsht(uv)

    def to_grid(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """Grid-point fields of a state, latitude ascending.

        Args:
            state: ``[..., 3, lmax, mmax]`` complex.

        Returns:
            ``{"geopotential": Phi (m^2 s^-2), "u": eastward wind, "v": northward wind (m s^-1)}``, each
            ``[..., nlat, nlon]`` in the solver's dtype, rows south to north.
        """
        self._check_state(state)
        phi = self.isht(state[..., 0, :, :])  # [..., nlat, nlon], north to south
        uv = self._wind(state[..., 1:, :, :])  # [..., 2, nlat, nlon]
        return {"geopotential": phi.flip(-2), "u": uv[..., 0, :, :].flip(-2), "v": uv[..., 1, :, :].flip(-2)}

    def from_grid(self, geopotential: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The spectral state of grid-point fields (latitude ascending), truncated to ``lmax``.

        Args:
            geopotential: ``[..., nlat, nlon]`` (m^2 s^-2).
            u, v: eastward and northward wind, ``[..., nlat, nlon]`` (m s^-1).

        Returns:
            ``[..., 3, lmax, mmax]`` complex.
        """
        phi = self._check_grid_field(geopotential, "geopotential").flip(-2)
        uv = torch.stack(
            [self._check_grid_field(u, "u").flip(-2), self._check_grid_field(v, "v").flip(-2)], dim=-3
        )  # [..., 2, nlat, nlon] internal rows
        return torch.cat([self.sht(phi).unsqueeze(-3), self._vortdiv(uv)], dim=-3)

    # ---------------------------------------------------------------------------------------------------
    # physics

    def tendency(self, state: torch.Tensor) -> torch.Tensor:
        """``d state / dt`` without the hyperdiffusion, ``[..., 3, lmax, mmax]`` complex (per second)."""
        self._check_state(state)
        return self._tendency(state)

    def _tendency(self, state: torch.Tensor) -> torch.Tensor:
        g = self.isht(state)  # [..., 3, nlat, nlon]: Phi, zeta, delta
        uv = self._wind(state[..., 1:, :, :])  # [..., 2, nlat, nlon]
        phi = g[..., 0:1, :, :]  # [..., 1, nlat, nlon]
        absvort = g[..., 1:2, :, :] + self._coriolis  # [..., 1, nlat, nlon]
        fluxes = torch.stack([uv * absvort, uv * phi], dim=-4)  # [..., 2, 2, nlat, nlon]
        cd = self._vortdiv(fluxes)  # [..., 2 (flux), 2 (curl, div), L, M]
        energy = self.sht(phi[..., 0, :, :] + 0.5 * (uv * uv).sum(-3))  # [..., L, M]
        d_phi = -cd[..., 1, 1, :, :]
        d_vort = -cd[..., 0, 1, :, :]
        d_div = cd[..., 0, 0, :, :] - self._lap * energy
        return torch.stack([d_phi, d_vort, d_div], dim=-3)

    def _damp(self, state: torch.Tensor, h: float) -> torch.Tensor:
        """Apply the hyperdiffusion factor of a span ``h`` to vorticity and divergence (new tensor)."""
        if self.hyperdiffusion_time is None or h == 0:
            return state
        factor = torch.exp(-h * self._rate)  # [L, M]
        return torch.cat([state[..., :1, :, :], state[..., 1:, :, :] * factor], dim=-3)

    def _rk4(self, x: torch.Tensor, h: float) -> torch.Tensor:
        x = self._damp(x, h / 2)
        k1 = self._tendency(x)
        k2 = self._tendency(x + (h / 2) * k1)
        k3 = self._tendency(x + (h / 2) * k2)
        k4 = self._tendency(x + h * k3)
        x = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        return self._damp(x, h / 2)

    def _ab3(self, x: torch.Tensor, h: float, history: list[torch.Tensor]) -> torch.Tensor:
        """One AB3 step; ``history`` holds the previous tendencies, newest first (updated in place)."""
        d = self._tendency(x)
        history.insert(0, d)
        del history[3:]
        # Start as torch-harmonics does: step 1 forward Euler (d1 = d2 = d0), step 2 with d2 = d0.
        d0 = history[0]
        d1 = history[1] if len(history) > 1 else d0
        d2 = history[2] if len(history) > 2 else d0
        x = x + h * ((23 / 12) * d0 - (16 / 12) * d1 + (5 / 12) * d2)
        return self._damp(x, h)

    def step(self, state: torch.Tensor) -> torch.Tensor:
        """One step of length ``dt``: ``advance(state, dt)``."""
        return self.advance(state, self.dt)

    _CHECK_EVERY = 16

    def advance(self, state: torch.Tensor, duration: float) -> torch.Tensor:
        """Advance a state by ``duration`` seconds, in ``ceil(duration / dt)`` equal steps.

        Args:
            state: ``[..., 3, lmax, mmax]`` complex in the solver's dtype and on its device.
            duration: seconds, ``>= 0``.

        Returns:
            The state ``duration`` later, same shape, dtype and device.

        Raises:
            SolverDivergedError: the state became NaN/Inf; the message names the step and the stable ``dt``.
        """
        self._check_state(state)
        if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration >= 0):
            raise ValueError(
                f"ShallowWaterSphere.advance: duration must be a finite float >= 0, got {duration!r}"
            )
        if duration == 0:
            return state.clone()
        n_steps = max(1, math.ceil(duration / self.dt - 1e-9))
        h = duration / n_steps
        x = state
        history: list[torch.Tensor] = []
        done = 0
        while done < n_steps:
            chunk = min(self._CHECK_EVERY, n_steps - done)
            good, good_history = x, list(history)
            for _ in range(chunk):
                x = self._rk4(x, h) if self.stepper == "rk4" else self._ab3(x, h, history)
            if not bool(torch.isfinite(torch.view_as_real(x[..., 0, 0])).all()):
                x, history = good, good_history  # replay one step at a time to name the step
                for step in range(done + 1, done + chunk + 1):
                    x = self._rk4(x, h) if self.stepper == "rk4" else self._ab3(x, h, history)
                    if not bool(torch.isfinite(torch.view_as_real(x[..., 0, 0])).all()):
                        raise SolverDivergedError(
                            self._diverged_message(state, step, n_steps, h), step=step, time=step * h
                        )
            done += chunk
        return x

    def stable_dt(self, state: torch.Tensor | None = None) -> float:
        """A rough largest stable step (s): gravity waves plus advection at the largest degree.

        Args:
            state: the wind and depth are taken from it if given, else ``havg`` and no wind.
        """
        depth, umax = self.havg, 0.0
        if state is not None:
            fields = self.to_grid(state)
            depth = float(fields["geopotential"].amax()) / self.gravity
            umax = float(torch.hypot(fields["u"], fields["v"]).amax())
        k = math.sqrt((self.lmax - 1) * self.lmax) / self.radius
        limit = 2.8 if self.stepper == "rk4" else 0.7
        return limit / (k * (math.sqrt(self.gravity * max(depth, 0.0)) + umax))

    def _diverged_message(self, state: torch.Tensor, step: int, n_steps: int, h: float) -> str:
        return (
            f"ShallowWaterSphere: the state became NaN/Inf at step {step} of {n_steps} "
            f"(t = {step * h:.6g} s) with dt = {h:.4g} s, {self.nlat} x {self.nlon}, lmax {self.lmax}, "
            f"{self.stepper}: reduce dt below about {self.stable_dt(state):.3g} s or lower lmax"
        )

    # ---------------------------------------------------------------------------------------------------
    # diagnostics

    def integrate(self, field: torch.Tensor) -> torch.Tensor:
        """Area integral (m^2 times the field's unit) of ``[..., nlat, nlon]`` (any row order): ``[...]``."""
        field = self._check_grid_field(field, "field")
        return (field * self._area).sum((-2, -1))

    def mass(self, state: torch.Tensor) -> torch.Tensor:
        """Fluid volume ``int h dA`` (m^3), by quadrature on the grid: ``[...]``."""
        return self.integrate(self.to_grid(state)["geopotential"]) / self.gravity

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        """Total energy per unit density minus that of the fluid at rest (m^5 s^-2): ``[...]``.

        ``E = int (h |u|^2 / 2 + g (h - hbar)^2 / 2) dA``, kinetic plus available potential energy; the
        full ``int (h |u|^2 + g h^2) / 2 dA`` differs from it by ``g hbar^2 A / 2``, constant as mass is.
        """
        f = self.to_grid(state)
        phi = f["geopotential"]
        mean = self.integrate(phi) / (4 * math.pi * self.radius**2)
        dens = 0.5 * phi * (f["u"] ** 2 + f["v"] ** 2) + 0.5 * (phi - mean[..., None, None]) ** 2
        return self.integrate(dens) / self.gravity

    def potential_enstrophy(self, state: torch.Tensor) -> torch.Tensor:
        """``int (zeta + f)^2 / (2 h) dA`` (m s^-2): ``[...]``."""
        self._check_state(state)
        g = self.isht(state[..., :2, :, :])  # [..., 2, nlat, nlon] Phi, zeta (internal rows)
        absvort = g[..., 1, :, :] + self._coriolis
        return self.integrate(0.5 * self.gravity * absvort**2 / g[..., 0, :, :])

    # ---------------------------------------------------------------------------------------------------
    # initial conditions

    def _physics_coords(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Latitude and longitude (radians) about the rotation axis, and the east unit vector of that frame
        in the grid's (east, north) basis; all ``[nlat, nlon]``, internal rows (north to south)."""
        R = torch.as_tensor(_frame(np.asarray(self.axis)), dtype=self.dtype, device=self._xyz.device)
        xyz = self._xyz  # [nlat, nlon, 3]
        p = xyz @ R  # [nlat, nlon, 3]: R^T r, coordinates in the physics frame
        lat = torch.asin(p[..., 2].clamp(-1, 1))
        lon = torch.atan2(p[..., 1], p[..., 0]) % (2 * math.pi)
        # Frame east = R (-sin lon', cos lon', 0); project on the grid's east and north unit vectors.
        east_p = torch.stack([-torch.sin(lon), torch.cos(lon), torch.zeros_like(lon)], -1) @ R.T
        glat = torch.asin(xyz[..., 2].clamp(-1, 1))
        glon = torch.atan2(xyz[..., 1], xyz[..., 0])
        e_east = torch.stack([-torch.sin(glon), torch.cos(glon), torch.zeros_like(glon)], -1)
        e_north = torch.stack(
            [-torch.sin(glat) * torch.cos(glon), -torch.sin(glat) * torch.sin(glon), torch.cos(glat)], -1
        )
        return lat, lon, (east_p * e_east).sum(-1), (east_p * e_north).sum(-1)

    def _balanced_geopotential(
        self, vort: torch.Tensor, uv: torch.Tensor, phi_extra: torch.Tensor
    ) -> torch.Tensor:
        """Nonlinear balance: ``Phi`` with ``d delta / dt = 0`` at ``delta = 0``, plus ``phi_extra``.

        ``vort [..., L, M]`` spectral, ``uv [..., 2, nlat, nlon]``, ``phi_extra [..., nlat, nlon]`` (internal
        rows).
        """
        absvort = self.isht(vort).unsqueeze(-3) + self._coriolis
        curl = self._vortdiv(uv * absvort)[..., 0, :, :]
        return self._invlap * curl - self.sht(0.5 * (uv * uv).sum(-3)) + self.sht(phi_extra)

    def galewsky(self, *, umax: float = 80.0, hamp: float = 120.0) -> torch.Tensor:
        """Galewsky et al. (2004)'s barotropically unstable jet, in the frame of the rotation axis.

        A zonal jet of ``umax`` between latitudes 20 and 70 degrees (about the axis), the geopotential in
        nonlinear balance with it, mean depth ``havg``, plus the unbalanced bump ``hamp cos(lat) exp(-(lon -
        pi)^2 / (1/3)^2) exp(-(pi/4 - lat)^2 / (1/15))`` (m) centred at longitude 180 of the frame. With the
        axis at the pole this is torch-harmonics' ``galewsky_initial_condition`` (same formulas).

        Returns:
            ``[3, lmax, mmax]`` complex.
        """
        lat, lon, ce, cn = self._physics_coords()
        phi0, phi1, phi2 = math.pi / 7, 0.5 * math.pi - math.pi / 7, 0.25 * math.pi
        en = math.exp(-4.0 / (phi1 - phi0) ** 2)
        inside = (lat > phi0) & (lat < phi1)
        safe = torch.where(inside, lat, torch.full_like(lat, (phi0 + phi1) / 2))
        jet = torch.where(inside, (umax / en) * torch.exp(1.0 / ((safe - phi0) * (safe - phi1))), 0.0)
        uv = torch.stack([jet * ce, jet * cn])  # [2, nlat, nlon]
        bump = (
            hamp
            * torch.cos(lat)
            * torch.exp(-(((lon - math.pi) * 3.0) ** 2))
            * torch.exp(-((phi2 - lat) ** 2) * 15.0)
        )
        vortdiv = self._vortdiv(uv)  # [2, L, M]
        phi = self._balanced_geopotential(vortdiv[0], uv, self.gravity * (self.havg + bump))
        return (torch.cat([phi[None], vortdiv]) * self._tril).to(self.cdtype)

    def williamson2(
        self, *, u0: float = 2 * math.pi * 6.37122e6 / (12 * _DAY), gh0: float = 2.94e4
    ) -> torch.Tensor:
        """Williamson et al. (1992) case 2: steady solid-body rotation about the rotation axis.

        ``u = u0 n x r``, ``Phi = gh0 - (a Omega u0 + u0^2 / 2) (n . r)^2``, ``zeta = 2 u0 (n . r) / a``,
        ``delta = 0``: an exact steady solution (with the axis tilted by ``alpha`` it is the case's
        ``alpha`` variant, the Coriolis field tilted along with the flow). All fields have degree <= 2, so
        the spectral state is exact.

        Args:
            u0: the equatorial speed (m s^-1), default ``2 pi a / 12 days`` (for the default radius).
            gh0: the geopotential at the axis' poles (m^2 s^-2).

        Returns:
            ``[3, lmax, mmax]`` complex.
        """
        nr = self._xyz @ torch.as_tensor(self.axis, dtype=self.dtype, device=self._xyz.device)  # [nlat, nlon]
        phi = gh0 - (self.radius * self.omega * u0 + 0.5 * u0**2) * nr**2
        vort = 2 * u0 / self.radius * nr
        spec = self.sht(torch.stack([phi, vort, torch.zeros_like(vort)]))  # [3, L, M]
        return (spec * self._tril).to(self.cdtype)

    def random_initial_condition(
        self, seed: int, *, urms: float = 20.0, peak_degree: int = 8, hamp: float = 0.0
    ) -> torch.Tensor:
        """A random, nearly balanced state: random vorticity, no divergence, the geopotential in balance.

        Vorticity coefficients ``zeta_lm ~ N(0, 1) sqrt(l (l + 1)) exp(-l (l + 1) / (l0 (l0 + 1)))`` for
        ``1 <= l < lmax`` (``l0 = peak_degree``, real for ``m = 0``), scaled so the global rms wind is
        ``urms``; ``Phi`` from nonlinear balance with mean ``g havg``, plus (if ``hamp > 0``) an unbalanced
        random height perturbation of rms ``hamp`` metres with the same spectral shape.

        Args:
            seed: the seed (``torch.Generator`` on the CPU, so a state does not depend on the device).
            urms: rms wind (m s^-1), > 0.
            peak_degree: ``l0 >= 1``.
            hamp: rms of the unbalanced height perturbation (m), >= 0.

        Returns:
            ``[3, lmax, mmax]`` complex.
        """
        if not (isinstance(urms, (int, float)) and 0 < urms < math.inf):
            raise ValueError(f"random_initial_condition: urms must be a finite float > 0, got {urms!r}")
        if not (isinstance(peak_degree, int) and peak_degree >= 1):
            raise ValueError(
                f"random_initial_condition: peak_degree must be an int >= 1, got {peak_degree!r}"
            )
        if not (isinstance(hamp, (int, float)) and 0 <= hamp < math.inf):
            raise ValueError(f"random_initial_condition: hamp must be a finite float >= 0, got {hamp!r}")
        gen = torch.Generator().manual_seed(int(seed))
        L = self.lmax
        ell = torch.arange(L, dtype=torch.float64)[:, None]
        shape = torch.sqrt(ell * (ell + 1)) * torch.exp(-ell * (ell + 1) / (peak_degree * (peak_degree + 1)))
        noise = torch.randn(2, L, L, 2, generator=gen, dtype=torch.float64)  # vorticity, height
        coef = torch.view_as_complex(noise) * shape * torch.tril(torch.ones(L, L, dtype=torch.float64))
        coef[:, :, 0] = coef[:, :, 0].real * math.sqrt(2)  # m = 0: real coefficients
        coef[:, 0, :] = 0  # no mean
        coef = coef.to(device=self._xyz.device, dtype=self.cdtype)
        uv = self._wind(torch.stack([coef[0], torch.zeros_like(coef[0])]))  # [2, nlat, nlon]
        rms = math.sqrt(float(self.integrate((uv * uv).sum(0))) / (4 * math.pi * self.radius**2))
        vort = coef[0] * (urms / rms)
        uv = uv * (urms / rms)
        extra = torch.full_like(uv[0], self.gravity * self.havg)
        if hamp > 0:
            dh = self.isht(coef[1])
            dh_rms = math.sqrt(float(self.integrate(dh * dh)) / (4 * math.pi * self.radius**2))
            extra = extra + self.gravity * hamp / dh_rms * dh
        phi = self._balanced_geopotential(vort, uv, extra)
        return (torch.stack([phi, vort, torch.zeros_like(vort)]) * self._tril).to(self.cdtype)
