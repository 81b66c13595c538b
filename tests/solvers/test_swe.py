"""ShallowWaterSphere: conservation, steady states, agreement with torch-harmonics, symmetries, checks.

Small grids (32 x 64 and 48 x 96) on one thread (the test machine's cores are shared; torch-harmonics'
small einsums only lose from threading). Measured figures are printed (``pytest -s``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sim.discretize.latlon import polar_rotation
from sim.solvers.ns2d import SolverDivergedError
from sim.solvers.swe import ShallowWaterSphere, tilted_axis

DAY = 86400.0


pytestmark = pytest.mark.usefixtures("one_thread")  # small einsums: faster on one thread


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _grid_error(solver: ShallowWaterSphere, x: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Relative L2 errors of the geopotential anomaly and the wind on the grid."""
    f, g = solver.to_grid(x), solver.to_grid(ref)
    anomaly = g["geopotential"] - g["geopotential"].mean()
    wind = torch.stack([g["u"], g["v"]])
    return {
        "geopotential": float((f["geopotential"] - g["geopotential"]).norm() / anomaly.norm()),
        "wind": float((torch.stack([f["u"], f["v"]]) - wind).norm() / wind.norm()),
    }


# -------------------------------------------------------------------------------------------------------
# conservation


def test_mass_conserved_over_10_days_float64():
    solver = ShallowWaterSphere(32, 64, dt=3600.0)
    x0 = solver.galewsky()
    x1 = solver.advance(x0, 10 * DAY)
    m0, m1 = float(solver.mass(x0)), float(solver.mass(x1))
    drift = abs(m1 - m0) / m0
    print(f"\nmass drift over 10 days (32x64, rk4, dt 1 h): {drift:.2e}")
    assert drift <= 1e-10
    # the spectral mean agrees with the quadrature
    spectral = math.sqrt(4 * math.pi) * float(x1[0, 0, 0].real) * solver.radius**2 / solver.gravity
    assert abs(spectral - m1) / m1 < 1e-12


@pytest.mark.parametrize("case", ["williamson2", "random"])
def test_energy_and_potential_enstrophy_drift_over_10_days(case):
    """Without hyperdiffusion both are invariants of the equations; report how well the scheme keeps them."""
    solver = ShallowWaterSphere(32, 64, dt=3600.0, hyperdiffusion_time=None, axis=tilted_axis(30.0))
    x0 = solver.williamson2() if case == "williamson2" else solver.random_initial_condition(3, urms=15.0)
    x1 = solver.advance(x0, 10 * DAY)
    e0, e1 = float(solver.energy(x0)), float(solver.energy(x1))
    z0, z1 = float(solver.potential_enstrophy(x0)), float(solver.potential_enstrophy(x1))
    de, dz = abs(e1 - e0) / e0, abs(z1 - z0) / z0
    print(f"\n{case}: 10-day relative drift of energy {de:.2e}, potential enstrophy {dz:.2e}")
    bound = 1e-10 if case == "williamson2" else 2e-3
    assert de < bound and dz < bound


def test_hyperdiffusion_only_dissipates():
    solver = ShallowWaterSphere(32, 64, dt=3600.0)
    x0 = solver.random_initial_condition(0, urms=25.0, peak_degree=6)
    x1 = solver.advance(x0, 2 * DAY)
    assert float(solver.potential_enstrophy(x1)) < float(solver.potential_enstrophy(x0))
    assert float(solver.energy(x1)) < float(solver.energy(x0))


# -------------------------------------------------------------------------------------------------------
# steady flow (Williamson case 2), also on a tilted axis


@pytest.mark.parametrize(
    "alpha, grid", [(0.0, "equiangular"), (45.0, "equiangular"), (90.0, "legendre-gauss")]
)
def test_williamson2_stays_steady(alpha, grid):
    axis = tilted_axis(alpha)
    exact = ShallowWaterSphere(32, 64, dt=3600.0, grid=grid, axis=axis, hyperdiffusion_time=None)
    x0 = exact.williamson2()
    err = _grid_error(exact, exact.advance(x0, 3 * DAY), x0)
    damped = ShallowWaterSphere(32, 64, dt=3600.0, grid=grid, axis=axis)  # default hyperdiffusion
    err_damped = _grid_error(damped, damped.advance(x0, 3 * DAY), x0)
    print(f"\nW2 alpha={alpha:g} {grid}: 3-day error {err}, with hyperdiffusion {err_damped}")
    assert max(err.values()) < 1e-11
    assert max(err_damped.values()) < 1e-5  # the del^8 damping of degree 1 over 3 days


def test_williamson2_fields():
    solver = ShallowWaterSphere(32, 64, dt=3600.0, axis=tilted_axis(90.0))
    f = solver.to_grid(solver.williamson2())
    u0 = 2 * math.pi * solver.radius / (12 * DAY)
    speed = torch.hypot(f["u"], f["v"])
    assert abs(float(speed.max()) - u0) / u0 < 1e-3  # the axis' equator is a meridian circle here
    # alpha = 90: the flow crosses the poles, v = -u0 sin(lon) (Williamson's formula)
    lon = torch.as_tensor(np.deg2rad(solver.latlon_grid.lon))
    torch.testing.assert_close(f["v"], (-u0 * torch.sin(lon)).expand_as(f["v"]), atol=1e-8, rtol=0)


# -------------------------------------------------------------------------------------------------------
# agreement with torch-harmonics' ShallowWaterSolver on the Galewsky case


@pytest.fixture(scope="module")
def galewsky_reference():
    from torch_harmonics.examples.shallow_water_equations import ShallowWaterSolver

    nlat, nlon, lmax, dt, steps = 48, 96, 16, 600.0, 72  # 12 hours
    with torch.no_grad():
        ref = ShallowWaterSolver(nlat, nlon, dt, lmax=lmax, mmax=lmax).double()
        x0 = ref.galewsky_initial_condition()
        x1 = ref.timestep(x0, steps)
        fine = ShallowWaterSolver(nlat, nlon, dt / 8, lmax=lmax, mmax=lmax).double()
        x1_fine = fine.timestep(x0, 8 * steps)  # converged in time: AB3's error at dt / 8 is ~1e-6
    return {
        "nlat": nlat,
        "nlon": nlon,
        "lmax": lmax,
        "dt": dt,
        "t": steps * dt,
        "x0": x0,
        "x1": x1,
        "x1_fine": x1_fine,
    }


def test_galewsky_initial_condition_matches_torch_harmonics(galewsky_reference):
    r = galewsky_reference
    solver = ShallowWaterSphere(r["nlat"], r["nlon"], dt=r["dt"], lmax=r["lmax"])
    rel = _rel(solver.galewsky(), r["x0"])
    print(f"\nGalewsky initial state vs torch-harmonics: {rel:.2e} (theirs builds the jet in float32)")
    assert rel < 1e-7


def test_galewsky_ab3_matches_torch_harmonics(galewsky_reference):
    """Same stepper, same state, same (float32-rounded) vector transform: the same discrete equations."""
    r = galewsky_reference
    solver = ShallowWaterSphere(
        r["nlat"], r["nlon"], dt=r["dt"], lmax=r["lmax"], stepper="ab3", exact_vector_norm=False
    )
    x1 = solver.advance(r["x0"].to(solver.cdtype), r["t"])
    err = _grid_error(solver, x1, r["x1"])
    print(f"\nGalewsky 12 h, ab3 vs torch-harmonics: {err}")
    assert max(err.values()) < 1e-10


def test_galewsky_rk4_close_to_torch_harmonics(galewsky_reference):
    """RK4 at dt = 600 s against torch-harmonics at dt = 75 s (converged); at its own dt = 600 s the AB3
    forward-Euler start leaves errors ~0.5% (printed)."""
    r = galewsky_reference
    solver = ShallowWaterSphere(r["nlat"], r["nlon"], dt=r["dt"], lmax=r["lmax"], exact_vector_norm=False)
    x1 = solver.advance(r["x0"].to(solver.cdtype), r["t"])
    err = _grid_error(solver, x1, r["x1_fine"])
    err_same_dt = _grid_error(solver, x1, r["x1"])
    print(f"\nGalewsky 12 h, rk4 vs torch-harmonics at dt/8: {err}; at the same dt: {err_same_dt}")
    assert max(err.values()) < 1e-3


# -------------------------------------------------------------------------------------------------------
# float32


def test_float32_close_to_float64():
    s64 = ShallowWaterSphere(32, 64, dt=1800.0, axis=tilted_axis(20.0))
    s32 = ShallowWaterSphere(32, 64, dt=1800.0, axis=tilted_axis(20.0), dtype=torch.float32)
    x0 = s64.galewsky()
    y64 = s64.advance(x0, DAY)
    y32 = s32.advance(x0.to(torch.complex64), DAY)
    assert y32.dtype == torch.complex64
    assert s32.to_grid(y32)["u"].dtype == torch.float32
    err = _grid_error(s64, y32.to(torch.complex128), y64)
    print(f"\nfloat32 vs float64 after 1 day: {err}")
    assert max(err.values()) < 1e-4


# -------------------------------------------------------------------------------------------------------
# symmetries


@pytest.mark.parametrize("grid", ["equiangular", "legendre-gauss"])
def test_longitude_roll_commutes_with_the_solver(grid):
    solver = ShallowWaterSphere(32, 64, dt=1800.0, grid=grid)
    x0 = solver.to_grid(solver.random_initial_condition(1, urms=20.0))
    shift = 11
    roll = {k: v.roll(shift, -1) for k, v in x0.items()}
    y = solver.to_grid(solver.advance(solver.from_grid(**x0), DAY))
    y_roll = solver.to_grid(solver.advance(solver.from_grid(**roll), DAY))
    for k in y:
        assert _rel(y_roll[k], y[k].roll(shift, -1)) < 1e-12, k


@pytest.mark.parametrize("grid", ["equiangular", "legendre-gauss"])
def test_north_south_mirror_commutes_with_the_solver(grid):
    """Mirror in the equator: Phi and u even, v odd; f = 2 Omega sin(lat) is a pseudoscalar, so the mirrored
    Coriolis force is the same and the equations are invariant."""
    solver = ShallowWaterSphere(32, 64, dt=1800.0, grid=grid)
    x0 = solver.to_grid(solver.random_initial_condition(2, urms=20.0))

    def mirror(f):
        return {"geopotential": f["geopotential"].flip(-2), "u": f["u"].flip(-2), "v": -f["v"].flip(-2)}

    y = solver.to_grid(solver.advance(solver.from_grid(**x0), DAY))
    y_m = solver.to_grid(solver.advance(solver.from_grid(**mirror(x0)), DAY))
    for k, v in mirror(y).items():
        assert _rel(y_m[k], v) < 1e-12, k


def test_tilted_axis_rotated_with_the_state_rolls_the_solution():
    """Rotating the physics axis and the state by the same polar rotation rolls the solution."""
    nlat, nlon, shift = 32, 64, 16  # 90 degrees
    axis = np.asarray(tilted_axis(40.0, longitude=30.0))
    rotated = polar_rotation(360.0 * shift / nlon) @ axis
    s1 = ShallowWaterSphere(nlat, nlon, dt=1800.0, axis=tuple(axis))
    s2 = ShallowWaterSphere(nlat, nlon, dt=1800.0, axis=tuple(rotated))
    x0 = s1.to_grid(s1.galewsky())
    y1 = s1.to_grid(s1.advance(s1.from_grid(**x0), DAY))
    y2 = s2.to_grid(s2.advance(s2.from_grid(**{k: v.roll(shift, -1) for k, v in x0.items()}), DAY))
    for k in y1:
        assert _rel(y2[k], y1[k].roll(shift, -1)) < 1e-10, k
    # and the unrotated axis does not: the symmetry is of the physics, not a property of any solver
    y_wrong = s1.to_grid(s1.advance(s1.from_grid(**{k: v.roll(shift, -1) for k, v in x0.items()}), DAY))
    assert _rel(y_wrong["u"], y1["u"].roll(shift, -1)) > 1e-3


def test_galewsky_on_tilted_axis_is_the_rotated_jet():
    """The initial jet follows the axis: its zonal-mean speed about the axis peaks near 45 degrees."""
    solver = ShallowWaterSphere(48, 96, dt=600.0, axis=tilted_axis(60.0))
    f = solver.to_grid(solver.galewsky())
    xyz = torch.as_tensor(solver.latlon_grid.xyz())
    n = torch.as_tensor(solver.axis, dtype=torch.float64)
    axis_lat = torch.rad2deg(torch.asin((xyz @ n).clamp(-1, 1)))
    speed = torch.hypot(f["u"], f["v"])
    jet = speed > 0.8 * speed.max()
    assert float(speed.max()) > 55  # 80 m/s, smoothed by the truncation at lmax = 16
    assert 35 < float(axis_lat[jet].min()) and float(axis_lat[jet].max()) < 55


# -------------------------------------------------------------------------------------------------------
# interface


def test_round_trip_and_shapes():
    solver = ShallowWaterSphere(32, 64, dt=1800.0, grid="legendre-gauss")
    x = torch.stack([solver.random_initial_condition(s) for s in range(3)])  # [3, 3, 11, 11]
    assert x.shape == (3, 3, 11, 11) and x.dtype == torch.complex128
    f = solver.to_grid(x)
    assert set(f) == {"geopotential", "u", "v"} and f["u"].shape == (3, 32, 64)
    torch.testing.assert_close(solver.from_grid(**f), x, atol=1e-9 * float(x.abs().max()), rtol=0)
    # a batch advances as its members do
    y = solver.advance(x, 3 * 3600.0)
    torch.testing.assert_close(
        y[1], solver.advance(x[1], 3 * 3600.0), atol=1e-12 * float(x.abs().max()), rtol=0
    )
    # latitude ascends: the northern hemisphere of the Galewsky jet is where the wind is
    g = solver.to_grid(solver.galewsky())
    assert float(g["u"][:16].abs().max()) < 0.2 * float(g["u"][16:].max())


def test_advance_composes():
    solver = ShallowWaterSphere(32, 64, dt=1800.0)
    x = solver.random_initial_condition(4)
    torch.testing.assert_close(
        solver.advance(solver.advance(x, 6 * 3600.0), 6 * 3600.0), solver.advance(x, 12 * 3600.0)
    )


def test_random_initial_condition_is_seeded_and_nearly_balanced():
    solver = ShallowWaterSphere(32, 64, dt=1800.0)
    a, b = solver.random_initial_condition(7), solver.random_initial_condition(7)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert _rel(solver.random_initial_condition(8)[1], a[1]) > 0.5
    f = solver.to_grid(a)
    rms = math.sqrt(float(solver.integrate(f["u"] ** 2 + f["v"] ** 2)) / (4 * math.pi * solver.radius**2))
    assert abs(rms - 20.0) < 1e-6
    # balanced: the divergence tendency is small next to the vorticity tendency's scale
    d = solver.tendency(a)
    assert float(d[2].abs().max()) < 0.05 * float(
        solver.tendency(solver.random_initial_condition(7, hamp=50.0))[2].abs().max()
    )


def test_divergence_raises_solver_diverged_error():
    solver = ShallowWaterSphere(32, 64, dt=6 * 3600.0, hyperdiffusion_time=None, stepper="ab3")
    x = solver.random_initial_condition(0, urms=30.0, hamp=200.0)
    with pytest.raises(SolverDivergedError, match="reduce dt below about"):
        solver.advance(x, 100 * DAY)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"nlat": 2}, "nlat must be an int >= 4"),
        ({"grid": "gaussian"}, "grid must be one of"),
        ({"lmax": 40}, "lmax must be an int in"),
        ({"dt": 0.0}, "dt must be a finite float > 0"),
        ({"axis": (0, 0, 0)}, "axis must be 3 finite numbers"),
        ({"stepper": "euler"}, "stepper must be"),
        ({"dtype": torch.float16}, "dtype must be"),
        ({"hyperdiffusion_order": 0}, "hyperdiffusion_order must be an int >= 1"),
    ],
)
def test_constructor_checks(kwargs, match):
    args = {"nlat": 32, "nlon": 64, "dt": 600.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        ShallowWaterSphere(args.pop("nlat"), args.pop("nlon"), **args)


def test_state_checks():
    solver = ShallowWaterSphere(32, 64, dt=600.0)
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3, 11, 11\]"):
        solver.advance(torch.zeros(3, 10, 11, dtype=torch.complex128), 1.0)
    with pytest.raises(TypeError, match="complex128"):
        solver.advance(torch.zeros(3, 11, 11, dtype=torch.complex64), 1.0)
    with pytest.raises(ValueError, match="duration must be"):
        solver.advance(solver.williamson2(), -1.0)
