"""Unsteady incompressible flow past a cylinder in a channel: a D2Q9 lattice-Boltzmann solver.

The Schäfer-Turek (1996) "2D-2" set-up, with the cylinder's position and size, the viscosity and the
inflow speed as parameters (the data source of the mesh-GNN examples). Physical problem::

    channel [0, L] x [0, H] (x to the right, y up), a cylinder of diameter D centred at (cx, cy),
    inflow at x = 0:  u(0, y) = 4 U_max y (H - y) / H^2,  v = 0,   U_mean = 2/3 U_max,
    no slip on y = 0, y = H and the cylinder, outflow at x = L,   Re = U_mean D / nu.

The defaults of :class:`CylinderFlow` are the benchmark (L = 2.2, H = 0.41, centre (0.2, 0.2), D = 0.1,
nu = 1e-3, U_mean = 1: Re = 100), whose periodic state has max C_D 3.22-3.24, max C_L 0.99-1.01,
St = 0.295-0.305 and a front-back pressure difference 2.46-2.50 (:data:`SCHAFER_TUREK_2D2`).

Method (every choice, in the order of one time step):

* **Lattice.** D2Q9, velocities ``c = (0,0), (1,0), (0,1), (-1,0), (0,-1), (1,1), (-1,1), (-1,-1), (1,-1)``
  (index 0-8, opposite of i at ``_OPP[i]``). Populations are ``[9, ny, nx]`` (axis order ``[..., y, x]``
  as docs/conventions.md), node (j, i) at the cell centre ``((i + 1/2) dx, (j + 1/2) dx)``. The channel
  walls lie half-way between nodes, so ``ny = H / dx`` is a whole number: ``ny = round(H / D *
  cells_per_diameter)``, ``dx = H / ny`` (the cells per diameter realised are ``D / dx``, within
  ``D / (2 H)`` of what was asked), ``nx = round(L / dx)``.
* **Scaling** (acoustic: fixed lattice Mach number). ``u_lattice`` is the mean inflow speed in lattice
  units; ``dt = u_lattice dx / U_mean``, ``nu_lattice = nu dt / dx^2 = u_lattice (D / dx) / Re``,
  ``tau = 1/2 + 3 nu_lattice``. Mach number ``Ma = U_max / c_s = 1.5 sqrt(3) u_lattice`` (0.13 at the
  default 0.05); compressibility errors grow as ``Ma^2`` (measured at 20 cells per diameter and fixed
  Lambda: halving Ma from 0.13 lowers max C_D by 0.8% and max C_L by 0.6%). :func:`simulate` lowers
  ``u_lattice`` slightly so that the sampling interval is a whole number of steps.
* **Collision: MRT** (Lallemand & Luo 2000; moments ``rho, e, eps, jx, qx, jy, qy, pxx, pxy``) with the
  second-order equilibrium. The stresses relax at ``1/tau`` (shear viscosity), the heat fluxes at
  ``odd_rate = 1.2`` and the energy moments at ``bulk_rate = 1.0`` (the usual MRT rates): a bulk viscosity
  1/6 (lattice), far above the shear viscosity at Re 100, damps the sound waves that an LBM makes at
  start-up and at every shedding cycle (with TRT they echo between inlet and outlet for seconds and
  pollute C_D). The odd rate stays fast: Ginzburg's Lambda = (tau - 1/2)(1/s_q - 1/2) = 3/16 (bounce-back
  walls exactly half-way) needs s_q = 0.15 at tau = 0.53, which blows up on the cylinder (TRT with a slow
  odd rate goes unstable at the inlet). The price: Lambda (0.01 at 20 cells per diameter, 0.02 at 40) sets
  where the interpolated wall effectively lies, so coarse results depend on s_q (measured at 20 cells per
  diameter, Re 100: s_q = 0.8 / 1.2 / 1.6 give max C_L 0.964 / 0.930 / 0.888); the dependence vanishes
  with refinement. ``collision="trt"`` is the two-relaxation-time special case ``bulk_rate = 1/tau``.
  Either way one linear map per node, ``f* = A f + B m`` with ``m = (rho, jx, jy, jx^2/rho, jy^2/rho, jx
  jy/rho)`` (two small matrix products per step).
* **Streaming** by slicing (no Python loop over cells), then the boundary rules for the populations
  that arrive from outside the fluid:
* **Channel walls: half-way bounce-back**, ``f_i(x, t+1) = f*_opp(i)(x, t)``; at the inlet's corners the
  wall rule wins.
* **Cylinder: linear interpolated bounce-back (Bouzidi, Firdaouss & Lallemand 2001)** with ``q``, the
  fraction of the link from the fluid node to the wall, from the exact intersection of the link with the
  circle (a node is solid if ``|x - c| <= R``)::

      q <  1/2:  f_opp(i)(x_f, t+1) = 2q f*_i(x_f) + (1 - 2q) f*_i(x_f - c_i)
      q >= 1/2:  f_opp(i)(x_f, t+1) = f*_i(x_f) / (2q) + (2q - 1)/(2q) f*_opp(i)(x_f)

  plus the moving-wall term ``6 w_i rho0 (c_opp(i) . u_w)`` (divided by ``2q`` for ``q >= 1/2``) while the
  cylinder spins (the perturbation below). Solid nodes are reset to rest every step (their values are
  never read by the fluid).
* **Inlet (x = 0): velocity bounce-back** (Ladd's moving-wall rule at the half-way inlet plane),
  ``f_i(x_b, t+1) = f*_opp(i)(x_b, t) + 6 w_i rho0 (c_i . u_in)``, ``rho0 = 1``, with the parabolic profile
  evaluated where each link crosses x = 0. (With the local density instead of rho0 the inlet feeds
  acoustic waves back and goes unstable near tau = 1/2.)
* **Outlet: non-equilibrium extrapolation at constant pressure** (Guo, Zheng & Shi 2002) on the last
  node column ``x_b`` (the outlet plane is ``x = L - dx/2``), all populations and rows of it: ``f(x_b) =
  feq(rho0, u(x_b - 1)) + f(x_b - 1) - feq(rho(x_b - 1), u(x_b - 1))``, rho0 = 1: the velocity leaves
  with zero gradient (vortices pass), the stress is carried over and the pressure is fixed there;
  pressures are reported relative to it.
  (Anti-bounce-back with only the equilibrium part drops the shear stress at the outlet and bends the
  flow over the last half channel height.)
* **Forces: momentum exchange** over the cylinder's links in the Galilean-invariant form of Wen et al.
  (2014), ``F = sum (c_i - u_w) f*_i(x_f) - (c_opp(i) - u_w) f_opp(i)(x_f, t+1)`` (the plain exchange for a
  wall at rest). ``C_D = 2 F_x / (rho U_mean^2 D)``, ``C_L = 2 F_y / (rho U_mean^2 D)``; the force of the
  step from t to t + dt is recorded at t.
* **Start.** Equilibrium populations of the channel's Poiseuille profile deflected as the potential
  flow past the cylinder, with Bernoulli's pressure (:meth:`CylinderLBM.initial_state`): the impulsive
  start of a viscous flow, without the pressure pulse that the plain Poiseuille profile would send.
* **Perturbation.** Shedding grows out of the start's asymmetry (at Re 100 and 20 cells per diameter
  the benchmark's 0.005 offset of the cylinder makes it periodic by t = 3-4). To get there sooner (and for
  a centred cylinder), ``simulate(kick=...)`` spins the cylinder counter-clockwise with a surface speed
  ``kick * U_mean * sin^2(pi t / kick_time)`` for ``0 <= t <= kick_time``; then the wall is at rest again
  and the flow relaxes to the same periodic state (measured at 20 cells per diameter: max C_D 3.2819 and
  3.2789, max C_L 0.9301 and 0.9300, St 0.2995 both, with the kick 1.0 over 0.6 and without; also
  ``test_kick_leaves_the_periodic_state_unchanged`` in tests/solvers/test_cylinder.py).
* **Sampling at points** (mesh nodes; :class:`PointStencil`): bilinear interpolation of ``(u, v, p)`` on
  the lattice, in physical units, ``p = rho_phys c_s^2 (rho - 1) (dx/dt)^2`` relative to the outlet
  pressure. Within one cell ``dx`` of a wall (distance ``d``; the nearest of the channel walls and the
  cylinder) the point is moved along the wall normal to distance ``dx`` (whose bilinear stencil holds only
  fluid nodes), the velocity there is scaled by ``d / dx`` (linear to zero at the wall: wall points give
  exactly zero velocity) and the pressure is taken as it is (zero normal gradient over one cell).
  Points inside the cylinder or outside the channel (``y < 0``, ``y > H``) get zero velocity and the
  pressure of the nearest wall point; ``x`` is clamped to the first and last node columns.

Everything runs in float32 or float64 on CPU or CUDA (``device=``); the lattice tables are buffers.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sim.solvers.ns2d import SolverDivergedError

__all__ = [
    "SCHAFER_TUREK_2D2",
    "BenchmarkQuantities",
    "CylinderFlow",
    "CylinderLBM",
    "CylinderResult",
    "LatticeParameters",
    "PointStencil",
    "benchmark_quantities",
    "lattice_parameters",
    "point_stencil",
    "shedding_frequency",
    "simulate",
    "strouhal",
]

# Schäfer & Turek (1996), test case 2D-2 (Re = 100, periodic): the ranges of the reference results.
SCHAFER_TUREK_2D2 = {
    "drag_max": (3.22, 3.24),
    "lift_max": (0.99, 1.01),
    "strouhal": (0.295, 0.305),
    "delta_p": (2.46, 2.50),
}

# D2Q9: velocities (cx, cy), weights, opposite directions.
_C = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (-1, -1), (1, -1))
_W = (4 / 9, 1 / 9, 1 / 9, 1 / 9, 1 / 9, 1 / 36, 1 / 36, 1 / 36, 1 / 36)
_OPP = (0, 3, 4, 1, 2, 7, 8, 5, 6)
_CS2 = 1.0 / 3.0

# Populations that arrive from outside the fluid at each boundary (pull view), and their opposites.
_BOTTOM = [2, 5, 6]  # c_y > 0: come from below y = 0
_TOP = [4, 7, 8]
_INLET = [1, 5, 8]  # c_x > 0: come from x < 0
_BOTTOM_OPP, _TOP_OPP = [_OPP[i] for i in _BOTTOM], [_OPP[i] for i in _TOP]

# Limits of the lattice parameters. Measured: the default MRT runs the cylinder stably down to tau - 1/2 =
# 0.0024 (Re 200, 8 cells per diameter, Mach 0.05); lattice_parameters raises below TAU_MARGIN_MIN and warns
# below TAU_MARGIN_WARN, and raises above MACH_MAX (compressibility errors of several per cent; unstable).
TAU_MARGIN_MIN = 0.002
TAU_MARGIN_WARN = 0.005
MACH_MAX = 0.35


def _check_float(owner: str, name: str, value, *, positive: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and positive:
        ok = value > 0
    if not ok:
        expected = "a finite float > 0" if positive else "a finite float"
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")
    return float(value)


# -------------------------------------------------------------------------------------------------------
# geometry and physics


@dataclass(frozen=True)
class CylinderFlow:
    """The physical problem: a channel with a cylinder, a parabolic inflow and a viscosity.

    The defaults are Schäfer & Turek's 2D-2 benchmark (Re = 100). All lengths in metres (any consistent
    units work), times in seconds.

    Args:
        length: channel length L (inlet at x = 0, outlet at x = L).
        height: channel height H (walls at y = 0 and y = H).
        center: cylinder centre ``(cx, cy)``.
        diameter: cylinder diameter D; also the reference length of the resolution and the coefficients.
        viscosity: kinematic viscosity nu > 0.
        u_mean: mean inflow speed ``U_mean = 2/3 U_max`` (the reference speed of C_D, C_L and St).
        density: fluid density (scales the pressure only).
        cylinder: False leaves the channel empty (Poiseuille flow, for checks); D still sets the scales.

    Raises:
        ValueError: a parameter out of range, or a cylinder that is not strictly inside the channel.
    """

    length: float = 2.2
    height: float = 0.41
    center: tuple[float, float] = (0.2, 0.2)
    diameter: float = 0.1
    viscosity: float = 1e-3
    u_mean: float = 1.0
    density: float = 1.0
    cylinder: bool = True

    def __post_init__(self):
        for name in ("length", "height", "diameter", "viscosity", "u_mean", "density"):
            object.__setattr__(self, name, _check_float("CylinderFlow", name, getattr(self, name)))
        center = self.center
        if not (isinstance(center, Sequence) and len(center) == 2):
            raise ValueError(f"CylinderFlow: center must be a pair (x, y), got {center!r}")
        center = tuple(_check_float("CylinderFlow", "center", c, positive=False) for c in center)
        object.__setattr__(self, "center", center)
        if not isinstance(self.cylinder, bool):
            raise ValueError(f"CylinderFlow: cylinder must be a bool, got {self.cylinder!r}")
        if not self.cylinder:
            return
        (cx, cy), r = center, self.diameter / 2
        gaps = {
            "the inlet x = 0": cx - r,
            f"the outlet x = {self.length:g}": self.length - (cx + r),
            "the bottom wall y = 0": cy - r,
            f"the top wall y = {self.height:g}": self.height - (cy + r),
        }
        for where, gap in gaps.items():
            if gap <= 0:
                raise ValueError(
                    f"CylinderFlow: the cylinder (center {center}, diameter {self.diameter:g}) must lie "
                    f"strictly inside the channel, but it reaches {where} (clearance {gap:.3g})"
                )

    @property
    def radius(self) -> float:
        return self.diameter / 2

    @property
    def u_max(self) -> float:
        """Peak inflow speed, ``3/2 U_mean``."""
        return 1.5 * self.u_mean

    @property
    def reynolds(self) -> float:
        """``U_mean D / nu``."""
        return self.u_mean * self.diameter / self.viscosity

    def inflow(self, y: np.ndarray) -> np.ndarray:
        """The inflow ``4 U_max y (H - y) / H^2`` at heights ``y`` (any shape), zero outside [0, H]."""
        y = np.asarray(y, dtype=np.float64)
        H = self.height
        return np.where((y >= 0) & (y <= H), 4 * self.u_max * y * (H - y) / H**2, 0.0)

    @property
    def front_point(self) -> tuple[float, float]:
        """The cylinder's upstream point ``(cx - R, cy)`` (Schäfer-Turek's a1 = (0.15, 0.2))."""
        return (self.center[0] - self.radius, self.center[1])

    @property
    def back_point(self) -> tuple[float, float]:
        """The cylinder's downstream point ``(cx + R, cy)`` (Schäfer-Turek's a2 = (0.25, 0.2))."""
        return (self.center[0] + self.radius, self.center[1])


@dataclass(frozen=True)
class LatticeParameters:
    """The lattice of one simulation, derived by :func:`lattice_parameters` (see there)."""

    nx: int  # nodes along x
    ny: int  # nodes along y
    dx: float  # node spacing (physical length)
    dt: float  # time step (physical time)
    u_lattice: float  # U_mean in lattice units dx/dt
    tau: float  # relaxation time of the symmetric part (viscosity)
    cells_per_diameter: float  # D / dx as realised
    collision: str = "mrt"  # "mrt" or "trt"
    odd_rate: float = 1.2  # relaxation rate s_q of the odd non-conserved moments (heat fluxes qx, qy)
    bulk_rate: float = 1.0  # MRT rate s_b of the energy moments e, epsilon (sets the bulk viscosity)

    @property
    def viscosity_lattice(self) -> float:
        return (self.tau - 0.5) / 3

    @property
    def magic(self) -> float:
        """Ginzburg's ``Lambda = (tau - 1/2)(1/s_q - 1/2)`` (3/16 puts bounce-back walls exactly half-way)."""
        return (self.tau - 0.5) * (1 / self.odd_rate - 0.5)

    @property
    def bulk_viscosity_lattice(self) -> float:
        """``c_s^2 (1/s_b - 1/2)`` (MRT; TRT: ``c_s^2 (tau - 1/2)``), which damps sound waves."""
        rate = self.bulk_rate if self.collision == "mrt" else 1 / self.tau
        return (1 / rate - 0.5) / 3

    @property
    def mach(self) -> float:
        """``U_max / c_s`` in lattice units, ``1.5 sqrt(3) u_lattice``."""
        return 1.5 * self.u_lattice * math.sqrt(3.0)

    @property
    def nodes(self) -> int:
        return self.nx * self.ny

    @property
    def velocity_scale(self) -> float:
        """Physical velocity of one lattice unit, ``dx / dt``."""
        return self.dx / self.dt


def lattice_parameters(
    flow: CylinderFlow,
    *,
    cells_per_diameter: float,
    u_lattice: float = 0.05,
    collision: str = "mrt",
    odd_rate: float = 1.2,
    bulk_rate: float = 1.0,
    magic: float | None = None,
    sample_every: float | None = None,
) -> LatticeParameters:
    """The lattice for ``flow`` at a resolution (module docstring, *Lattice* and *Scaling*).

    Args:
        flow: the physical problem.
        cells_per_diameter: lattice cells per cylinder diameter (rounded so that the channel height is a
            whole number of cells); 20 is coarse, 40-80 meets the benchmark.
        u_lattice: mean inflow speed in lattice units (``U_mean dt / dx``), which fixes the time step;
            the Mach number is ``1.5 sqrt(3) u_lattice``.
        collision: ``"mrt"`` (default) or ``"trt"`` (module docstring, *Collision*).
        odd_rate: relaxation rate of the odd moments (heat fluxes), in (0, 2).
        bulk_rate: MRT relaxation rate of the energy moments, in (0, 2); lower damps sound more.
        magic: if given, fix Ginzburg's ``Lambda = (tau - 1/2)(1/s_q - 1/2)`` instead of ``odd_rate``
            (``s_q`` follows from tau): a resolution sweep at fixed Lambda is a clean refinement, while at
            a fixed odd rate Lambda grows with tau.
        sample_every: if given, ``dt`` is lowered (``u_lattice`` with it) so that this physical interval
            is a whole number of steps.

    Returns:
        The :class:`LatticeParameters`.

    Raises:
        ValueError: a parameter out of range, ``tau - 1/2 < TAU_MARGIN_MIN`` (0.002; raise
            ``cells_per_diameter`` or ``u_lattice``), a Mach number above ``MACH_MAX`` (0.35; lower
            ``u_lattice``), a cylinder closer than 3 cells to a wall, the inlet or the outlet, or fewer
            than 4 cells across the channel.

    Warns:
        UserWarning: ``tau - 1/2 < TAU_MARGIN_WARN`` (0.005), close to the stability limit.
    """
    if not isinstance(flow, CylinderFlow):
        raise TypeError(f"lattice_parameters: flow must be a CylinderFlow, got {type(flow).__name__}")
    cpd = _check_float("lattice_parameters", "cells_per_diameter", cells_per_diameter)
    u_lat = _check_float("lattice_parameters", "u_lattice", u_lattice)
    if collision not in ("mrt", "trt"):
        raise ValueError(f"lattice_parameters: collision must be 'mrt' or 'trt', got {collision!r}")
    for name, rate in (("odd_rate", odd_rate), ("bulk_rate", bulk_rate)):
        if not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 < rate < 2):
            raise ValueError(f"lattice_parameters: {name} must be a float in (0, 2), got {rate!r}")
    ny = round(flow.height / flow.diameter * cpd)
    if ny < 4:
        raise ValueError(
            f"lattice_parameters: cells_per_diameter={cpd:g} gives {ny} cells across the channel; need >= 4"
        )
    dx = flow.height / ny
    nx = max(4, round(flow.length / dx))
    dt = u_lat * dx / flow.u_mean
    if sample_every is not None:
        sample_every = _check_float("lattice_parameters", "sample_every", sample_every)
        substeps = max(1, math.ceil(sample_every / dt - 1e-9))
        dt = sample_every / substeps
        u_lat = flow.u_mean * dt / dx
    nu_lat = flow.viscosity * dt / dx**2
    tau = 0.5 + 3 * nu_lat
    if magic is not None:
        magic = _check_float("lattice_parameters", "magic", magic)
        odd_rate = 1 / (0.5 + magic / max(tau - 0.5, 1e-300))
        if not odd_rate > 0.3:
            raise ValueError(
                f"lattice_parameters: magic={magic:g} at tau = {tau:.4f} needs an odd rate {odd_rate:.3f} "
                "< 0.3, which is unstable; lower magic or raise the resolution"
            )
    if tau - 0.5 < TAU_MARGIN_MIN:
        raise ValueError(
            f"lattice_parameters: tau = {tau:.5f} is too close to 1/2 (tau - 1/2 = {tau - 0.5:.2e} < "
            f"{TAU_MARGIN_MIN}) for the {collision.upper()} collision at Re = {flow.reynolds:g}, "
            f"cells_per_diameter={cpd:g}, u_lattice={u_lat:g}; raise cells_per_diameter or u_lattice"
        )
    if tau - 0.5 < TAU_MARGIN_WARN:
        warnings.warn(
            f"lattice_parameters: tau = {tau:.5f} is close to 1/2 (Re = {flow.reynolds:g} on "
            f"{cpd:g} cells per diameter): the run may be noisy or unstable; raise cells_per_diameter",
            UserWarning,
            stacklevel=2,
        )
    mach = 1.5 * u_lat * math.sqrt(3.0)
    if mach > MACH_MAX:
        raise ValueError(
            f"lattice_parameters: Mach number {mach:.3f} (u_lattice={u_lat:g}) is above {MACH_MAX}; "
            f"lower u_lattice below {MACH_MAX / (1.5 * math.sqrt(3.0)):.3f}"
        )
    if flow.cylinder:
        (cx, cy), r = flow.center, flow.radius
        clearance = min(cx - r, cy - r, flow.height - cy - r) / dx
        if clearance < 3:
            raise ValueError(
                f"lattice_parameters: the cylinder is {clearance:.2f} cells from a wall or the inlet at "
                f"cells_per_diameter={cpd:g}; need >= 3 (raise cells_per_diameter)"
            )
        if (flow.length - cx - r) / dx < 3:
            raise ValueError(
                f"lattice_parameters: the cylinder is {(flow.length - cx - r) / dx:.2f} cells from the "
                f"outlet at cells_per_diameter={cpd:g}; need >= 3"
            )
    return LatticeParameters(
        nx=nx,
        ny=ny,
        dx=dx,
        dt=dt,
        u_lattice=u_lat,
        tau=tau,
        cells_per_diameter=flow.diameter / dx,
        collision=collision,
        odd_rate=float(odd_rate),
        bulk_rate=float(bulk_rate),
    )


# -------------------------------------------------------------------------------------------------------
# sampling at points


@dataclass(frozen=True)
class PointStencil:
    """How to read ``(u, v, p)`` at N physical points from the lattice (module docstring, *Sampling*).

    Attributes:
        index: ``[N, 4]`` int64, flat node indices ``j * nx + i`` of the bilinear stencil's corners.
        weight: ``[N, 4]`` float64, the bilinear weights (sum 1).
        velocity_scale: ``[N]`` float64 in [0, 1]: ``d / dx`` within one cell of a wall, 0 inside walls.
    """

    index: torch.Tensor
    weight: torch.Tensor
    velocity_scale: torch.Tensor

    def __len__(self) -> int:
        return self.index.shape[0]


def _points_array(points) -> np.ndarray:
    return np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)


def point_stencil(points, flow: CylinderFlow, lattice: LatticeParameters) -> PointStencil:
    """The :class:`PointStencil` of physical points.

    Args:
        points: ``[N, 2]`` array-like of ``(x, y)``, anywhere (see the module docstring for points on or
            outside the walls).
        flow: the problem (walls and cylinder).
        lattice: its lattice.

    Returns:
        The stencil (CPU tensors).

    Raises:
        ValueError: points not of shape ``[N, 2]`` or not finite.
    """
    p = _points_array(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"point_stencil: points must have shape [N, 2], got {list(p.shape)}")
    if not np.isfinite(p).all():
        raise ValueError("point_stencil: points must be finite")
    dx, nx, ny, H = lattice.dx, lattice.nx, lattice.ny, flow.height
    x = np.clip(p[:, 0], 0.5 * dx, (nx - 0.5) * dx)
    y = p[:, 1]
    # Signed distance to the nearest wall and the unit normal pointing into the fluid.
    dist = np.stack([y, H - y], axis=1)  # [N, 2]: bottom, top
    normals = [np.array([0.0, 1.0]), np.array([0.0, -1.0])]
    if flow.cylinder:
        rel = np.stack([x - flow.center[0], y - flow.center[1]], axis=1)  # [N, 2]
        norm = np.linalg.norm(rel, axis=1)
        n_cyl = np.where(norm[:, None] > 0, rel / np.maximum(norm, 1e-300)[:, None], [-1.0, 0.0])
        dist = np.concatenate([dist, (norm - flow.radius)[:, None]], axis=1)  # [N, 3]
    nearest = dist.argmin(axis=1)
    d = dist[np.arange(len(p)), nearest]
    d = np.where(np.abs(d) < 1e-9 * dx, 0.0, d)  # on the wall up to rounding: exactly zero velocity
    normal = np.empty((len(p), 2))
    for k, n_wall in enumerate(normals):
        normal[nearest == k] = n_wall
    if flow.cylinder:
        normal[nearest == 2] = n_cyl[nearest == 2]
    near = d < dx
    # Near a wall: the point at distance dx along the normal (its stencil holds fluid nodes only).
    anchor = np.stack([x, y], axis=1)
    anchor[near] += (dx - d[near])[:, None] * normal[near]
    scale = np.where(near, np.clip(d / dx, 0.0, 1.0), 1.0)
    # Bilinear stencil on the node grid (i + 1/2) dx, (j + 1/2) dx.
    gx = np.clip(anchor[:, 0] / dx - 0.5, 0.0, nx - 1.0)
    gy = np.clip(anchor[:, 1] / dx - 0.5, 0.0, ny - 1.0)
    i0 = np.minimum(np.floor(gx).astype(np.int64), nx - 2)
    j0 = np.minimum(np.floor(gy).astype(np.int64), ny - 2)
    fx, fy = gx - i0, gy - j0
    index = np.stack([j0 * nx + i0, j0 * nx + i0 + 1, (j0 + 1) * nx + i0, (j0 + 1) * nx + i0 + 1], axis=1)
    weight = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    if flow.cylinder:
        # The anchor is dx from the circle, but a corner of its cell can be up to (sqrt(2) - 1) dx inside
        # the curved wall: such solid corners get no weight, the fluid corners' weights are rescaled.
        ci, cj = index % nx, index // nx
        r2 = ((ci + 0.5) * dx - flow.center[0]) ** 2 + ((cj + 0.5) * dx - flow.center[1]) ** 2
        weight = np.where(r2 <= flow.radius**2, 0.0, weight)
        total = weight.sum(axis=1, keepdims=True)
        if (total <= 1e-12).any():
            raise AssertionError("point_stencil: a stencil holds no fluid node (a bug)")
        weight = weight / total
    return PointStencil(
        index=torch.from_numpy(index),
        weight=torch.from_numpy(weight),
        velocity_scale=torch.from_numpy(scale),
    )


# -------------------------------------------------------------------------------------------------------
# the solver


def _relaxation_matrix(lattice: LatticeParameters) -> torch.Tensor:
    """The collision's ``K`` (``f* = f - K (f - feq)``), ``[9, 9]`` float64.

    MRT in Lallemand & Luo's (2000) moments ``(rho, e, eps, jx, qx, jy, qy, pxx, pxy)``: ``K = M^-1 S M``
    with rates ``S = (0, s_b, s_b, 0, s_q, 0, s_q, 1/tau, 1/tau)``, ``s_b = bulk_rate``, ``s_q = odd_rate``.
    TRT is the case ``s_b = 1/tau``: every even moment relaxes at ``1/tau``, every odd one at ``s_q``.
    """
    f64 = dict(dtype=torch.float64)
    M = torch.tensor(
        [
            [1, 1, 1, 1, 1, 1, 1, 1, 1],
            [-4, -1, -1, -1, -1, 2, 2, 2, 2],
            [4, -2, -2, -2, -2, 1, 1, 1, 1],
            [0, 1, 0, -1, 0, 1, -1, -1, 1],
            [0, -2, 0, 2, 0, 1, -1, -1, 1],
            [0, 0, 1, 0, -1, 1, 1, -1, -1],
            [0, 0, -2, 0, 2, 1, 1, -1, -1],
            [0, 1, -1, 1, -1, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 1, -1, 1, -1],
        ],
        **f64,
    )
    s_nu, s_q = 1 / lattice.tau, lattice.odd_rate
    s_b = lattice.bulk_rate if lattice.collision == "mrt" else s_nu
    S = torch.tensor([0, s_b, s_b, 0, s_q, 0, s_q, s_nu, s_nu], **f64)
    return torch.linalg.solve(M, S[:, None] * M)


def _copy_rule(dest: np.ndarray, src: np.ndarray) -> dict:
    """A boundary rule ``f[dest] = post[src]`` in the gather-scatter table's form."""
    coef = np.stack([np.ones(len(src)), np.zeros(len(src)), np.zeros(len(src))])
    return dict(gather=np.stack([src, src, src]), dest=dest, coef=coef, add=np.zeros(len(src)))


def _no_links() -> dict:
    empty = np.zeros(0, dtype=np.int64)
    return dict(
        gather=np.zeros((3, 0), dtype=np.int64), dest=empty, coef=np.zeros((3, 0)), add=np.zeros(0),
        c=np.zeros((0, 2)), spin=np.zeros(0), tangent=np.zeros((0, 2)),
    )  # fmt: skip


@dataclass
class _Work:
    """Buffers reused by every step (allocating tens of MB per step costs as much as the step on a CPU)."""

    moments: torch.Tensor  # [12, n]: rho, jx, jy, then A f (the post-collision populations, flattened)
    quad: torch.Tensor  # [3, n]: jx^2/rho, jy^2/rho, jx jy/rho
    velocity: torch.Tensor  # [2, n]: u, v


class CylinderLBM(nn.Module):
    """D2Q9 MRT (or TRT) lattice-Boltzmann solver for :class:`CylinderFlow` (method: module docstring).

    Populations are ``[9, ny, nx]`` tensors in ``dtype`` on the module's device; the tables are
    non-persistent buffers (``solver.to("cuda")`` moves them; no state dict).

    Args:
        flow: the problem.
        lattice: from :func:`lattice_parameters`.
        dtype: ``torch.float32`` or ``torch.float64``.
        device: where the tables (and the states made by :meth:`initial_state`) live.

    Example:
        >>> flow = CylinderFlow()
        >>> solver = CylinderLBM(flow, lattice_parameters(flow, cells_per_diameter=20))
        >>> f = solver.initial_state()                 # [9, 82, 440]
        >>> solver.advance(f, 1000)                    # in place
        >>> fields = solver.fields(f)                  # [3, 82, 440]: u, v, p (physical)
    """

    def __init__(
        self,
        flow: CylinderFlow,
        lattice: LatticeParameters,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        if not isinstance(flow, CylinderFlow):
            raise TypeError(f"CylinderLBM: flow must be a CylinderFlow, got {type(flow).__name__}")
        if not isinstance(lattice, LatticeParameters):
            raise TypeError(f"CylinderLBM: lattice must be LatticeParameters, got {type(lattice).__name__}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"CylinderLBM: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.flow, self.lattice, self.dtype = flow, lattice, dtype
        nx, ny, dx = lattice.nx, lattice.ny, lattice.dx
        n = nx * ny
        f64 = dict(dtype=torch.float64)
        c = torch.tensor(_C, **f64)  # [9, 2]
        w = torch.tensor(_W, **f64)  # [9]

        # Collision f* = f - K (f - feq), and
        # feq = E m with m = (rho, jx, jy, jx^2/rho, jy^2/rho, jx jy/rho): f* = (I - K) f + (K E) m.
        K = _relaxation_matrix(lattice)
        cx, cy = c[:, 0], c[:, 1]
        E = w[:, None] * torch.stack(
            [torch.ones(9, **f64), 3 * cx, 3 * cy, 4.5 * cx**2 - 1.5, 4.5 * cy**2 - 1.5, 9 * cx * cy], 1
        )  # [9, 6]
        moments = torch.stack([torch.ones(9, **f64), cx, cy])  # [3, 9]
        self.register_buffer("_MA", torch.cat([moments, torch.eye(9, **f64) - K]), persistent=False)
        self.register_buffer("_B", K @ E, persistent=False)  # [9, 6]
        self.register_buffer("_E", E, persistent=False)
        self.register_buffer("_moments", moments, persistent=False)
        self.register_buffer("_w", w, persistent=False)

        # Cylinder: solid nodes.
        xs = (torch.arange(nx, **f64) + 0.5) * dx
        ys = (torch.arange(ny, **f64) + 0.5) * dx
        if flow.cylinder:
            cxp, cyp = flow.center
            r2 = (xs[None, :] - cxp) ** 2 + (ys[:, None] - cyp) ** 2  # [ny, nx]
            solid = r2 <= flow.radius**2
        else:
            solid = torch.zeros(ny, nx, dtype=torch.bool)
        self.register_buffer("_solid_mask", solid, persistent=False)
        solid_index = torch.nonzero(solid.reshape(-1)).reshape(-1)
        self.register_buffer("_solid_index", solid_index, persistent=False)
        self.register_buffer("_solid_fill", w[:, None].expand(9, len(solid_index)).clone(), persistent=False)

        # Every population set by a boundary rule after streaming, as one gather-scatter table:
        # f[dest] = coef[0] post[gather[0]] + coef[1] post[gather[1]] + coef[2] post[gather[2]] + add
        # (flat indices q * n + j * nx + i). The cylinder's Bouzidi links come first (forces, spin).
        links = self._links(solid.numpy()) if flow.cylinder else _no_links()
        self.n_links = len(links["dest"])
        parts = [links, self._walls(), self._inlet_rule()]
        table = {
            key: np.concatenate([part[key] for part in parts], axis=-1) for key in ("gather", "coef", "add")
        }
        table["dest"] = np.concatenate([part["dest"] for part in parts])
        if len(np.unique(table["dest"])) != len(table["dest"]):
            raise AssertionError("CylinderLBM: two boundary rules set the same population (a bug)")
        self.register_buffer("_bc_gather", torch.from_numpy(table["gather"].reshape(-1)), persistent=False)
        self.register_buffer("_bc_dest", torch.from_numpy(table["dest"]), persistent=False)
        self.register_buffer("_bc_coef", torch.from_numpy(table["coef"]), persistent=False)  # [3, nb]
        self.register_buffer("_bc_add", torch.from_numpy(table["add"]), persistent=False)  # [nb]
        for name in ("c", "spin", "tangent"):  # [L, 2], [L], [L, 2]
            self.register_buffer(f"_link_{name}", torch.from_numpy(links[name]), persistent=False)
        self.register_buffer("_ones", torch.ones(1, ny, **f64), persistent=False)

        # Probes at the cylinder's front and back points for delta_p.
        if flow.cylinder:
            probe = point_stencil([flow.front_point, flow.back_point], flow, lattice)
            self.register_buffer("_probe_index", probe.index, persistent=False)
            self.register_buffer("_probe_weight", probe.weight, persistent=False)
        self.to(device=device)
        # the float buffers in the working dtype (the integer ones keep theirs)
        for name, buf in self.named_buffers():
            if buf.is_floating_point():
                setattr(self, name, buf.to(dtype))
        self._n = n

    def extra_repr(self) -> str:
        lat = self.lattice
        return (
            f"nx={lat.nx}, ny={lat.ny}, cells_per_diameter={lat.cells_per_diameter:.3g}, tau={lat.tau:.4f}, "
            f"u_lattice={lat.u_lattice:.4g}, mach={lat.mach:.3f}, links={self.n_links}, dtype={self.dtype}"
        )

    def _links(self, solid_np: np.ndarray) -> dict:
        """The Bouzidi links: every (fluid node, direction i) whose neighbour x_f + c_i is solid."""
        flow, lat = self.flow, self.lattice
        nx, ny, dx, n = lat.nx, lat.ny, lat.dx, lat.nx * lat.ny
        cxl, cyl, r = flow.center[0] / dx - 0.5, flow.center[1] / dx - 0.5, flow.radius / dx  # lattice units
        rows = []
        for q in range(1, 9):
            ex, ey = _C[q]
            # fluid nodes (j, i) whose neighbour (j + ey, i + ex) is solid (the cylinder is >= 3 cells inside)
            nb = np.zeros_like(solid_np)
            nb[max(0, -ey) : ny - max(0, ey), max(0, -ex) : nx - max(0, ex)] = solid_np[
                max(0, ey) : ny + min(0, ey), max(0, ex) : nx + min(0, ex)
            ]
            j, i = np.nonzero(nb & ~solid_np)
            # q: smallest t in (0, 1] with |x_f + t c - center| = R
            ddx, ddy = i - cxl, j - cyl
            a, b, cc = ex * ex + ey * ey, 2 * (ddx * ex + ddy * ey), ddx**2 + ddy**2 - r * r
            t = (-b - np.sqrt(np.maximum(b * b - 4 * a * cc, 0.0))) / (2 * a)
            t = np.clip(t, 1e-12, 1.0)
            rows.append((np.full_like(i, q), j, i, t))
        qd, j, i, t = (np.concatenate(parts) for parts in zip(*rows, strict=True))
        node = j * nx + i
        back = (j - np.array(_C)[qd, 1]) * nx + (i - np.array(_C)[qd, 0])  # x_f - c_i
        if np.asarray(solid_np.reshape(-1)[back]).any():
            raise AssertionError("CylinderLBM: a Bouzidi link's second node is solid (a bug)")
        opp = np.array(_OPP)[qd]
        low = t < 0.5
        gather = np.stack(
            [qd * n + node, np.where(low, qd * n + back, qd * n + node), opp * n + node]
        )  # [3, L]: f*_i(x_f), f*_i(x_f - c_i), f*_opp(i)(x_f)
        coef = np.stack(
            [
                np.where(low, 2 * t, 1 / (2 * t)),
                np.where(low, 1 - 2 * t, 0.0),
                np.where(low, 0.0, (2 * t - 1) / (2 * t)),
            ]
        )  # [3, L]
        # Spinning wall: surface velocity S * tangent at the crossing point (counter-clockwise).
        c = np.array(_C, dtype=np.float64)[qd]  # [L, 2]
        px, py = i + t * c[:, 0] - cxl, j + t * c[:, 1] - cyl
        rad = np.hypot(px, py)
        tangent = np.stack([-py / rad, px / rad], axis=1)  # [L, 2]
        w = np.array(_W)[qd]
        # + 6 w_i (c_opp(i) . u_w), divided by 2q for q >= 1/2
        spin = 6 * w * (-(c * tangent).sum(1)) * np.where(low, 1.0, 1 / (2 * t))
        return dict(
            gather=gather,
            dest=opp * n + node,
            coef=coef,
            add=np.zeros(len(node)),
            c=c,
            spin=spin,
            tangent=tangent,
        )

    def _walls(self) -> dict:
        """Half-way bounce-back on y = 0 and y = H: ``f_i(x) = f*_opp(i)(x)`` on the first and last rows."""
        nx, ny = self.lattice.nx, self.lattice.ny
        n, i = nx * ny, np.arange(nx)
        dest, src = [], []
        for row, qs in ((0, _BOTTOM), (ny - 1, _TOP)):
            for q in qs:
                dest.append(q * n + row * nx + i)
                src.append(_OPP[q] * n + row * nx + i)
        return _copy_rule(np.concatenate(dest), np.concatenate(src))

    def _inlet_rule(self) -> dict:
        """Velocity bounce-back at x = 0: ``f_i = f*_opp(i) + 6 w_i (c_i . u_in)``, u_in where the link
        crosses x = 0; the links that cross a wall first are the wall's."""
        lat, flow = self.lattice, self.flow
        nx, ny, dx = lat.nx, lat.ny, lat.dx
        n = nx * ny
        dest, src, add = [], [], []
        for q in _INLET:
            ex, ey = _C[q]
            j = np.arange(max(0, ey), ny + min(0, ey))  # rows whose link comes from inside the channel
            u_in = flow.inflow((j + 0.5) * dx - ey * dx / 2) / lat.velocity_scale
            dest.append(q * n + j * nx)
            src.append(_OPP[q] * n + j * nx)
            add.append(6 * _W[q] * ex * u_in)
        rule = _copy_rule(np.concatenate(dest), np.concatenate(src))
        rule["add"] = np.concatenate(add)
        return rule

    # ---------------------------------------------------------------------------------------------------
    # states and fields

    def initial_state(self, *, at_rest: bool = False) -> torch.Tensor:
        """The start: equilibrium populations ``[9, ny, nx]`` in the solver's dtype and device.

        The channel's Poiseuille profile ``U(y)``, around the cylinder deflected as the potential flow past
        a cylinder, ``(u, v) = U(y) (1 - R^2 (x'^2 - y'^2) / r^4, -2 R^2 x' y' / r^4)`` (``x', y'`` from the
        centre), with Bernoulli's pressure ``p = (U(y)^2 - |u|^2) / 2``; zero velocity inside the cylinder.
        (Starting with the plain Poiseuille profile would send a strong pressure pulse through the channel,
        whose echoes between inlet and outlet take seconds to die.) ``at_rest``: zero velocity, rho = 1.
        """
        lat, flow = self.lattice, self.flow
        dev = self._w.device
        x = (torch.arange(lat.nx, dtype=torch.float64, device=dev) + 0.5) * lat.dx
        y = (torch.arange(lat.ny, dtype=torch.float64, device=dev) + 0.5) * lat.dx
        u = torch.zeros(lat.ny, lat.nx, dtype=torch.float64, device=dev)
        v, rho = torch.zeros_like(u), torch.ones_like(u)
        if not at_rest:
            profile = torch.as_tensor(flow.inflow(y.cpu().numpy()), device=dev)[:, None] / lat.velocity_scale
            u = profile.expand(lat.ny, lat.nx).clone()
            if flow.cylinder:
                xr, yr = x[None, :] - flow.center[0], y[:, None] - flow.center[1]  # [ny, nx] by broadcasting
                r2 = (xr**2 + yr**2).clamp_min(flow.radius**2)
                a = flow.radius**2 / r2**2
                u = profile * (1 - a * (xr**2 - yr**2))
                v = -profile * 2 * a * xr * yr
                rho = 1 + 1.5 * (profile**2 - u**2 - v**2)  # p / c_s^2 with p = (U^2 - |u|^2) / 2
                u[self._solid_mask], v[self._solid_mask], rho[self._solid_mask] = 0.0, 0.0, 1.0
        return self.equilibrium(rho, u, v).to(self.dtype)

    def equilibrium(self, rho: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Second-order equilibrium populations ``[9, *shape]`` of lattice ``rho``, ``u``, ``v``."""
        jx, jy = rho * u, rho * v
        m = torch.stack([rho, jx, jy, jx * u, jy * v, jx * v])  # [6, *shape]
        E = self._E.to(m.dtype)
        return torch.einsum("qk,k...->q...", E, m)

    def _check_state(self, f: torch.Tensor) -> None:
        lat = self.lattice
        if not isinstance(f, torch.Tensor):
            raise TypeError(f"CylinderLBM: f must be a torch.Tensor, got {type(f).__name__}")
        if f.shape != (9, lat.ny, lat.nx) or f.dtype != self.dtype or not f.is_contiguous():
            raise ValueError(
                f"CylinderLBM: f must be a contiguous {self.dtype} tensor of shape [9, {lat.ny}, {lat.nx}], "
                f"got {f.dtype} {list(f.shape)}"
            )
        if f.device != self._w.device:
            raise ValueError(f"CylinderLBM: f is on {f.device}, the solver on {self._w.device}")

    def macroscopic(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Lattice density and velocity ``(rho, u, v)``, each ``[ny, nx]`` (solid nodes: 1, 0, 0)."""
        self._check_state(f)
        rho, jx, jy = torch.einsum("kq,qyx->kyx", self._moments, f)
        return rho, jx / rho, jy / rho

    def fields(self, f: torch.Tensor) -> torch.Tensor:
        """Physical ``(u, v, p)`` on the lattice nodes.

        Args:
            f: populations ``[9, ny, nx]``.

        Returns:
            ``[3, ny, nx]``, float64: velocity and pressure (relative to the outlet), velocity 0 and
            pressure NaN at solid nodes.
        """
        rho, u, v = (a.double() for a in self.macroscopic(f))
        lat = self.lattice
        vs = lat.velocity_scale
        p = self.flow.density * _CS2 * (rho - 1) * vs**2
        out = torch.stack([u * vs, v * vs, p])
        solid_values = torch.tensor([0.0, 0.0, math.nan], dtype=out.dtype, device=out.device)
        out[:, self._solid_mask] = solid_values[:, None]
        return out

    def stencil(self, points) -> PointStencil:
        """The :class:`PointStencil` of physical points ``[N, 2]`` on this solver's device."""
        s = point_stencil(points, self.flow, self.lattice)
        dev = self._w.device
        return PointStencil(s.index.to(dev), s.weight.to(dev), s.velocity_scale.to(dev))

    def sample(self, f: torch.Tensor, stencil: PointStencil) -> torch.Tensor:
        """Physical ``(u, v, p)`` at the stencil's points (module docstring, *Sampling*).

        Args:
            f: populations ``[9, ny, nx]``.
            stencil: from :meth:`stencil`.

        Returns:
            ``[N, 3]`` in the solver's dtype.
        """
        self._check_state(f)
        corners = f.reshape(9, -1)[:, stencil.index]  # [9, N, 4]
        rho, jx, jy = torch.einsum("kq,qnc->knc", self._moments, corners)  # [N, 4] each
        wgt = stencil.weight.to(f.dtype)
        u = (wgt * jx / rho).sum(1)
        v = (wgt * jy / rho).sum(1)
        p = (wgt * (rho - 1)).sum(1)
        lat = self.lattice
        vs, scale = lat.velocity_scale, stencil.velocity_scale.to(f.dtype)
        return torch.stack([u * scale * vs, v * scale * vs, self.flow.density * _CS2 * vs**2 * p], 1)

    # ---------------------------------------------------------------------------------------------------
    # time stepping

    def _work(self, f: torch.Tensor) -> _Work:
        n = self._n
        return _Work(moments=f.new_empty(12, n), quad=f.new_empty(3, n), velocity=f.new_empty(2, n))

    def _step(self, f: torch.Tensor, work: _Work, spin: float, record: torch.Tensor | None) -> None:
        """One collide-stream-boundary step, in place on ``f``; ``record`` (``[5]``) receives the step's
        lattice drag and lift, front-back density difference times c_s^2, fluid mass and spin speed."""
        lat = self.lattice
        ny, nx, n = lat.ny, lat.nx, self._n
        F = f.view(9, n)
        # collision: f* = (I - K) f + (K E) m
        mom = work.moments
        torch.matmul(self._MA, F, out=mom)  # [12, n]: rho, jx, jy, (I - K) f
        rho, j = mom[0], mom[1:3]
        q, uv = work.quad, work.velocity
        torch.div(j, rho, out=uv)  # u, v
        torch.mul(j, uv, out=q[:2])  # jx^2 / rho, jy^2 / rho
        torch.mul(j[0], uv[1], out=q[2])  # jx jy / rho
        post_flat = mom[3:]  # [9, n]
        post_flat.addmm_(self._B[:, :3], mom[:3]).addmm_(self._B[:, 3:], q)
        post = post_flat.view(9, ny, nx)

        # streaming by slices (pull): f_i(x) = post_i(x - c_i)
        f[0].copy_(post[0])
        for i in range(1, 9):
            ex, ey = _C[i]
            f[i, max(ey, 0) : ny + min(ey, 0), max(ex, 0) : nx + min(ex, 0)] = post[
                i, max(-ey, 0) : ny - max(ey, 0), max(-ex, 0) : nx - max(ex, 0)
            ]
        # cylinder (Bouzidi), channel walls and inlet: one gather-scatter
        got = post_flat.reshape(-1)[self._bc_gather].view(3, -1)  # [3, nb]
        new = (self._bc_coef * got).sum(0).add_(self._bc_add)
        L = self.n_links
        if spin:
            new[:L] += spin * self._link_spin
        f.view(-1)[self._bc_dest] = new
        # outlet: non-equilibrium extrapolation at rho0 = 1 (all populations of the last column); with
        # feq(rho, u) = rho g(u) and (rho, u) of column nx-2: f_b = feq(1, u) + f_b-1 - feq(rho, u)
        #                                                          = f_b-1 + (1 - rho) g(u)
        inner = f[:, :, -2]  # [9, ny]
        m = self._moments @ inner  # [3, ny]: rho, jx, jy
        u = m[1:] / m[0]  # [2, ny]
        g = self._E @ torch.cat([self._ones, u, u * u, u[:1] * u[1:]])  # [9, ny]
        f[:, :, -1] = torch.addcmul(inner, g, 1 - m[:1])

        if L:
            # momentum exchange on the Bouzidi links
            out, back = got[0, :L], new[:L]
            force = (out + back) @ self._link_c  # [2]
            if spin:
                force = force - spin * ((out - back) @ self._link_tangent)
            F.index_copy_(1, self._solid_index, self._solid_fill)  # solid nodes back to rest
            if record is not None:
                record[:2] = force
                probe = (rho[self._probe_index] * self._probe_weight).sum(1)  # [2]
                record[2] = _CS2 * (probe[0] - probe[1])
        if record is not None:
            record[3] = rho.sum() - len(self._solid_index)
            record[4] = spin

    def advance(
        self,
        f: torch.Tensor,
        n_steps: int,
        *,
        spin: Callable[[int], float] | None = None,
        records: torch.Tensor | None = None,
        first_step: int = 0,
    ) -> torch.Tensor:
        """Advance the populations by ``n_steps`` time steps, in place.

        Args:
            f: populations ``[9, ny, nx]`` (from :meth:`initial_state`), overwritten.
            n_steps: steps to take, ``>= 0``.
            spin: the cylinder's surface speed (lattice units, counter-clockwise) as a function of the
                global step number, or None (at rest).
            records: ``[S, 5]`` buffer: row ``first_step + k`` receives step k's lattice drag, lift,
                front-back pressure difference, fluid mass and spin; None records nothing.
            first_step: the global number of the first step (for ``spin`` and ``records``).

        Returns:
            ``f``.

        Raises:
            SolverDivergedError: the populations became NaN/Inf (checked every 64 steps and at the end);
                its ``step`` and ``time`` count from global step 0 (``first_step`` included).
        """
        self._check_state(f)
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
            raise ValueError(f"CylinderLBM.advance: n_steps must be an int >= 0, got {n_steps!r}")
        work = self._work(f)
        for k in range(n_steps):
            step = first_step + k
            s = float(spin(step)) if spin is not None else 0.0
            self._step(f, work, s, None if records is None else records[step])
            if (k + 1) % self._CHECK_EVERY == 0 or k + 1 == n_steps:
                if not bool(torch.isfinite(work.moments[0]).all()):  # NaN anywhere reaches rho soon
                    lat = self.lattice
                    raise SolverDivergedError(
                        f"CylinderLBM: the populations became NaN/Inf by step {step + 1} "
                        f"(t = {(step + 1) * lat.dt:.4g}) with tau = {lat.tau:.4f}, Mach {lat.mach:.3f}, "
                        f"{lat.cells_per_diameter:.3g} cells per diameter; raise the resolution or lower "
                        "u_lattice",
                        step=step + 1,
                        time=(step + 1) * lat.dt,
                    )
        return f

    _CHECK_EVERY = 64


# -------------------------------------------------------------------------------------------------------
# simulation driver


@dataclass(frozen=True)
class CylinderResult:
    """What :func:`simulate` returns (CPU tensors; physical units).

    Attributes:
        flow, lattice: the problem and its lattice.
        times: ``[S]`` float64, the time of every step's record, ``k dt``.
        drag, lift: ``[S]`` float64, C_D and C_L of the step from ``t`` to ``t + dt``.
        delta_p: ``[S]`` float64, pressure at the cylinder's front point minus the back point (empty
            channel: zeros).
        mass: ``[S]`` float64, the fluid's mass relative to the start (1 = conserved).
        sample_times: ``[T]`` float64, the times of the samples.
        points: ``[N, 2]`` float64, the sampled points (None if none were given).
        samples: ``[T, N, 3]`` ``(u, v, p)`` at the points in the simulation's dtype (None without points).
        wall_seconds: wall-clock time of the time loop.
        kick, kick_time: the spin perturbation used (:func:`simulate`).
    """

    flow: CylinderFlow
    lattice: LatticeParameters
    times: torch.Tensor
    drag: torch.Tensor
    lift: torch.Tensor
    delta_p: torch.Tensor
    mass: torch.Tensor
    sample_times: torch.Tensor
    points: torch.Tensor | None
    samples: torch.Tensor | None
    wall_seconds: float
    kick: float = 0.0
    kick_time: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.times)

    @property
    def mlups(self) -> float:
        """Million lattice-node updates per second of the time loop (all ``nx * ny`` nodes)."""
        return self.lattice.nodes * self.steps / max(self.wall_seconds, 1e-12) / 1e6


def simulate(
    flow: CylinderFlow,
    *,
    cells_per_diameter: float,
    t_end: float,
    u_lattice: float = 0.05,
    sample_every: float = 0.01,
    points=None,
    t_start_sampling: float = 0.0,
    kick: float = 0.0,
    kick_time: float = 0.5,
    collision: str = "mrt",
    odd_rate: float = 1.2,
    bulk_rate: float = 1.0,
    magic: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> CylinderResult:
    """Simulate the flow from the start (:meth:`CylinderLBM.initial_state`) to ``t_end``; record the
    forces every step and sample ``(u, v, p)`` at points every ``sample_every``.

    Args:
        flow: the problem.
        cells_per_diameter: lattice resolution (:func:`lattice_parameters`).
        t_end: physical end time.
        u_lattice: mean inflow speed in lattice units (fixes dt and the Mach number; lowered slightly so
            that ``sample_every`` is a whole number of steps).
        sample_every: physical interval between samples of the points.
        points: ``[N, 2]`` physical points (e.g. mesh nodes) to sample ``(u, v, p)`` at, or None.
        t_start_sampling: the first sample time (rounded to a step); samples at
            ``t_start_sampling + k sample_every <= t_end``.
        kick: peak surface speed of the start-up spin of the cylinder, in units of ``U_mean`` (0: none);
            a counter-clockwise spin ``kick U_mean sin^2(pi t / kick_time)`` for ``t <= kick_time``
            triggers vortex shedding within a few periods (the validation uses 1.0 over 0.6).
        kick_time: duration of the spin.
        collision, odd_rate, bulk_rate, magic: the collision (:func:`lattice_parameters`).
        dtype: ``torch.float64`` (default) or ``torch.float32`` (2-3x faster on a CPU; at 20 cells per
            diameter its benchmark quantities agree with float64's to 2e-5).
        device: e.g. ``"cuda"``; None: CPU.
        progress: called as ``progress(t, t_end)`` about a hundred times during the run.

    Returns:
        A :class:`CylinderResult`.

    Raises:
        ValueError: bad parameters (one line naming the value).
        SolverDivergedError: the run became unstable.
    """
    lat = lattice_parameters(
        flow,
        cells_per_diameter=cells_per_diameter,
        u_lattice=u_lattice,
        collision=collision,
        odd_rate=odd_rate,
        bulk_rate=bulk_rate,
        magic=magic,
        sample_every=sample_every,
    )
    t_end = _check_float("simulate", "t_end", t_end)
    t_start_sampling = _check_float("simulate", "t_start_sampling", t_start_sampling, positive=False)
    kick = _check_float("simulate", "kick", kick, positive=False)
    kick_time = _check_float("simulate", "kick_time", kick_time)
    if t_start_sampling < 0:
        raise ValueError(f"simulate: t_start_sampling must be >= 0, got {t_start_sampling!r}")
    if abs(kick) > 2:
        raise ValueError(f"simulate: kick must be within [-2, 2] (units of U_mean), got {kick!r}")
    if kick and not flow.cylinder:
        raise ValueError("simulate: kick needs a cylinder (flow.cylinder is False)")
    if points is not None and t_start_sampling > t_end:
        raise ValueError(f"simulate: t_start_sampling={t_start_sampling!r} is after t_end={t_end!r}")
    solver = CylinderLBM(flow, lat, dtype=dtype, device=device)
    dev = solver._w.device
    n_steps = max(1, round(t_end / lat.dt))
    substeps = round(sample_every / lat.dt)
    first = round(t_start_sampling / lat.dt)
    sample_steps = list(range(first, n_steps + 1, substeps)) if points is not None else []
    stencil = solver.stencil(points) if points is not None else None
    if points is not None:
        points = torch.as_tensor(_points_array(points))

    kick_steps = round(kick_time / lat.dt)
    amplitude = kick * lat.u_lattice

    def spin(step: int) -> float:
        if not amplitude or step >= kick_steps:
            return 0.0
        return amplitude * math.sin(math.pi * step / kick_steps) ** 2

    f = solver.initial_state()
    records = torch.zeros(n_steps, 5, dtype=dtype, device=dev)
    samples = []
    report = set(range(max(1, n_steps // 100), n_steps, max(1, n_steps // 100))) | {n_steps}
    sampled = set(sample_steps)
    done = 0
    t0 = time.perf_counter()
    for stop in sorted(sampled | report):
        solver.advance(f, stop - done, spin=spin, records=records, first_step=done)
        done = stop
        if stop in sampled:
            samples.append(solver.sample(f, stencil).cpu())
        if progress is not None and stop in report:
            progress(stop * lat.dt, n_steps * lat.dt)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    wall = time.perf_counter() - t0
    records = records.double().cpu()
    coef = 2 / (lat.u_lattice**2 * lat.cells_per_diameter)
    pressure = flow.density * lat.velocity_scale**2
    mass = records[:, 3]
    return CylinderResult(
        flow=flow,
        lattice=lat,
        times=torch.arange(n_steps, dtype=torch.float64) * lat.dt,
        drag=records[:, 0] * coef,
        lift=records[:, 1] * coef,
        delta_p=records[:, 2] * pressure,
        mass=mass / mass[0],
        sample_times=torch.tensor(sample_steps, dtype=torch.float64) * lat.dt,
        points=points,
        samples=torch.stack(samples) if samples else None,
        wall_seconds=wall,
        kick=kick,
        kick_time=kick_time,
    )


# -------------------------------------------------------------------------------------------------------
# post-processing


def _as_numpy(a, name: str) -> np.ndarray:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    a = a.astype(np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {list(a.shape)}")
    return a


def _upward_crossings(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Times where ``s`` rises through zero, with hysteresis (it must dip below -h and rise above +h,
    h = half its standard deviation, a third of a sine's amplitude: noise does not count twice),
    interpolated linearly between samples."""
    h = 0.5 * s.std()
    state = np.where(s > h, 1, np.where(s < -h, -1, 0))
    idx = np.nonzero(state)[0]
    if len(idx) < 2:
        return np.zeros(0)
    st = state[idx]
    rises = np.nonzero((st[:-1] == -1) & (st[1:] == 1))[0]
    out = []
    for r in rises:
        lo, hi = idx[r], idx[r + 1]  # last sample below -h, first above +h
        seg = s[lo : hi + 1]
        k = lo + np.nonzero((seg[:-1] < 0) & (seg[1:] >= 0))[0][-1]
        out.append(t[k] + (t[k + 1] - t[k]) * (-s[k]) / (s[k + 1] - s[k]))
    return np.asarray(out)


def shedding_frequency(times, signal, *, t_from: float | None = None) -> float:
    """Frequency of a periodic signal from its upward zero crossings (about its mean).

    Args:
        times: ``[S]`` increasing times.
        signal: ``[S]`` values (e.g. the lift coefficient).
        t_from: use only ``times >= t_from`` (None: all).

    Returns:
        ``(crossings - 1) / (last crossing - first crossing)``.

    Raises:
        ValueError: shapes differ, or fewer than 3 crossings (no oscillation to measure).
    """
    t, s = _as_numpy(times, "shedding_frequency: times"), _as_numpy(signal, "shedding_frequency: signal")
    if t.shape != s.shape:
        raise ValueError(f"shedding_frequency: times {list(t.shape)} and signal {list(s.shape)} differ")
    if t_from is not None:
        keep = t >= t_from
        t, s = t[keep], s[keep]
    crossings = _upward_crossings(t, s - s.mean()) if len(t) > 2 else np.zeros(0)
    if len(crossings) < 3:
        raise ValueError(
            f"shedding_frequency: found {len(crossings)} upward zero crossings; need >= 3 (no oscillation, "
            "or too short a window)"
        )
    return float((len(crossings) - 1) / (crossings[-1] - crossings[0]))


def strouhal(
    times, lift, *, diameter: float = 0.1, u_mean: float = 1.0, t_from: float | None = None
) -> float:
    """Strouhal number ``f D / U_mean`` of the lift signal's frequency (:func:`shedding_frequency`).

    Args:
        times: ``[S]`` times; lift: ``[S]`` lift coefficient.
        diameter, u_mean: the reference length and speed (defaults: the benchmark's).
        t_from: use only ``times >= t_from``.
    """
    diameter = _check_float("strouhal", "diameter", diameter)
    u_mean = _check_float("strouhal", "u_mean", u_mean)
    return shedding_frequency(times, lift, t_from=t_from) * diameter / u_mean


@dataclass(frozen=True)
class BenchmarkQuantities:
    """Schäfer-Turek's 2D-2 quantities of one run, over its last whole lift periods.

    Attributes:
        drag_max, lift_max: the largest C_D and C_L in the window.
        strouhal: ``f D / U_mean`` from the lift's zero crossings in the window.
        delta_p: the front-back pressure difference half a period after the last lift maximum (Schäfer &
            Turek's ``Delta p(t0 + 1/(2f))``, t0 the time of maximal lift).
        delta_p_mean: its mean over the window.
        t_from, t_to: the window (whole periods between upward zero crossings of the lift).
        periods: number of periods in the window.
        lift_max_spread: max - min of the per-period lift maxima (0 for a perfectly periodic state).
        drag_max_spread: the same for the drag maxima.
    """

    drag_max: float
    lift_max: float
    strouhal: float
    delta_p: float
    delta_p_mean: float
    t_from: float
    t_to: float
    periods: int
    lift_max_spread: float
    drag_max_spread: float


def benchmark_quantities(result: CylinderResult, *, periods: int = 5) -> BenchmarkQuantities:
    """Max C_D, max C_L, St and delta-p over the last ``periods`` whole lift periods of a run.

    Args:
        result: from :func:`simulate` (with a cylinder).
        periods: how many whole periods at the end of the run to use (>= 1).

    Raises:
        ValueError: no cylinder, or fewer than ``periods + 1`` lift crossings in the run (not shedding,
            or too short).
    """
    if not result.flow.cylinder:
        raise ValueError("benchmark_quantities: the flow has no cylinder")
    if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
        raise ValueError(f"benchmark_quantities: periods must be an int >= 1, got {periods!r}")
    t = result.times.numpy()
    lift, drag, dp = result.lift.numpy(), result.drag.numpy(), result.delta_p.numpy()
    half = t >= t[-1] / 2  # the mean of the lift from the second half (the first may hold the transient)
    crossings = _upward_crossings(t, lift - lift[half].mean())
    if len(crossings) < periods + 1:
        raise ValueError(
            f"benchmark_quantities: the lift has {len(crossings)} upward zero crossings; need {periods + 1} "
            f"for {periods} periods (no shedding yet: run longer or kick it)"
        )
    edges = crossings[-(periods + 1) :]
    t_from, t_to = float(edges[0]), float(edges[-1])
    window = (t >= t_from) & (t <= t_to)
    freq = periods / (t_to - t_from)
    per_lift, per_drag = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        sel = (t >= a) & (t <= b)
        per_lift.append(lift[sel].max())
        per_drag.append(drag[sel].max())
    # delta p half a period after the lift maximum of the last period
    last = (t >= edges[-2]) & (t <= edges[-1])
    t0 = t[last][np.argmax(lift[last])]
    t_half = t0 + 0.5 / freq
    if t_half > t[-1]:
        t_half -= 1 / freq
    delta_p = float(np.interp(t_half, t, dp))
    flow = result.flow
    return BenchmarkQuantities(
        drag_max=float(drag[window].max()),
        lift_max=float(lift[window].max()),
        strouhal=freq * flow.diameter / flow.u_mean,
        delta_p=delta_p,
        delta_p_mean=float(dp[window].mean()),
        t_from=t_from,
        t_to=t_to,
        periods=periods,
        lift_max_spread=float(np.ptp(per_lift)),
        drag_max_spread=float(np.ptp(per_drag)),
    )
