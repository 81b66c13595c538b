"""Tests of the lattice-Boltzmann cylinder-flow solver (sim/solvers/cylinder.py).

Exact solution (Poiseuille flow, second order), a coarse Schäfer-Turek 2D-2 run against the benchmark
with loose tolerances, point sampling against an independent bilinear interpolation, the Strouhal and
benchmark post-processing on synthetic signals, bad input, and a smoke run of scripts/validate_cylinder.py.
The default run takes 20-35 s on 2 busy cores; the slow tests (``-m slow``, ~70 s) add the kick-independence
check and the 32-row Poiseuille grid.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import RegularGridInterpolator

from sim.solvers import SolverDivergedError
from sim.solvers.cylinder import (
    SCHAFER_TUREK_2D2,
    CylinderFlow,
    CylinderLBM,
    CylinderResult,
    benchmark_quantities,
    lattice_parameters,
    point_stencil,
    shedding_frequency,
    simulate,
    strouhal,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# The coarse benchmark run: 12 cells per diameter, Mach 0.21, kicked; measured max C_D 3.49, max C_L 1.03,
# St 0.293 (the fine-grid values are in docs/results.md). Tolerances: C_D and C_L within 12%, St within 4%.
COARSE = dict(cells_per_diameter=12, u_lattice=0.08, t_end=3.0, kick=1.0, kick_time=0.6)
TOLERANCE = {"drag_max": 0.12, "lift_max": 0.12, "strouhal": 0.04}


def _middle(bounds):
    return 0.5 * (bounds[0] + bounds[1])


# ---------------------------------------------------------------------------------------------------------
# exact solution: Poiseuille flow in the empty channel


def _poiseuille_error(ny: int, dtype=torch.float64) -> float:
    """Max relative error of u at mid-channel after the flow has developed from rest (diffusive scaling:
    tau = 1.5 at every resolution, u_lattice and Mach halved with dx)."""
    u_lattice = 0.01 * 8 / ny
    cpd = ny * 0.1 / 0.41
    # nu_lattice = nu dt / dx^2 = nu u_lattice / (U_mean dx) = 1/3 at every ny; channel length 2 H
    flow = CylinderFlow(length=0.82, cylinder=False, viscosity=0.1 * (0.41 / 8) / (3 * 0.01), u_mean=0.1)
    lat = lattice_parameters(flow, cells_per_diameter=cpd, u_lattice=u_lattice)
    assert lat.ny == ny and lat.tau == pytest.approx(1.5)
    solver = CylinderLBM(flow, lat, dtype=dtype)
    f = solver.initial_state(at_rest=True)
    # developed by t = 2.4 H^2 / nu (the slowest viscous mode decays as exp(-pi^2 nu t / H^2), and the
    # approach oscillates with the pressure waves for a while)
    solver.advance(f, math.ceil(2.4 * ny**2 / lat.viscosity_lattice))
    u = solver.fields(f)[0, :, lat.nx // 2].numpy()
    y = (np.arange(ny) + 0.5) * lat.dx
    exact = flow.inflow(y)
    return float(np.abs(u - exact).max() / exact.max())


@pytest.fixture(scope="module")
def poiseuille_errors(one_thread):
    return {ny: _poiseuille_error(ny) for ny in (8, 16)}


def test_poiseuille_profile_second_order(poiseuille_errors):
    errors = poiseuille_errors
    assert errors[16] < 1e-2, errors  # measured 7.0e-3 (8 rows: 2.6e-2, 32 rows: 1.7e-3)
    # halving dx (and the Mach number with it: diffusive scaling) divides the error by about 4
    assert errors[8] / errors[16] > 3.5, errors


@pytest.mark.slow
def test_poiseuille_second_order_to_32_rows(poiseuille_errors):
    assert poiseuille_errors[16] / _poiseuille_error(32) > 3.5


def test_poiseuille_float32_matches_float64(poiseuille_errors):
    assert _poiseuille_error(16, torch.float32) == pytest.approx(poiseuille_errors[16], abs=2e-4)


def test_poiseuille_sampled_at_wall_and_interior_points():
    flow = CylinderFlow(length=0.82, cylinder=False, viscosity=0.01, u_mean=0.1)
    lat = lattice_parameters(flow, cells_per_diameter=16 * flow.diameter / flow.height, u_lattice=0.01)
    solver = CylinderLBM(flow, lat)
    f = solver.initial_state()  # the Poiseuille profile, rho = 1
    y = np.linspace(0, flow.height, 23)
    points = np.stack([np.full_like(y, 0.41), y], axis=1)  # a mesh column, walls included
    uvp = solver.sample(f, solver.stencil(points)).numpy()
    assert uvp[0, :2].tolist() == [0.0, 0.0] and uvp[-1, :2].tolist() == [0.0, 0.0]
    # within a cell of the walls the velocity is linear in the wall distance: O(dx^2) off the parabola
    np.testing.assert_allclose(uvp[:, 0], flow.inflow(y), atol=0.02 * flow.u_max)
    np.testing.assert_allclose(uvp[:, 1:], 0.0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# a coarse Schäfer-Turek 2D-2 run


def _mesh_points(flow: CylinderFlow) -> np.ndarray:
    """A stand-in for a mesh's nodes: 16 on the cylinder, 8 on each wall, a 10 x 5 interior grid."""
    angle = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    circle = np.stack(
        [flow.center[0] + flow.radius * np.cos(angle), flow.center[1] + flow.radius * np.sin(angle)], 1
    )
    x = np.linspace(0, flow.length, 8)
    walls = np.concatenate([np.stack([x, 0 * x], 1), np.stack([x, 0 * x + flow.height], 1)])
    gx, gy = np.meshgrid(np.linspace(0.35, 2.1, 10), np.linspace(0.05, 0.36, 5))
    return np.concatenate([circle, walls, np.stack([gx.ravel(), gy.ravel()], 1)])


@pytest.fixture(scope="module")
def coarse(one_thread):
    flow = CylinderFlow()
    points = _mesh_points(flow)
    progress = []
    result = simulate(
        flow,
        **COARSE,
        points=points,
        sample_every=0.05,
        t_start_sampling=2.0,
        progress=lambda t, t_end: progress.append((t, t_end)),
    )
    return result, progress


def test_coarse_run_is_finite_and_conserves_mass(coarse):
    result, _ = coarse
    for name in ("drag", "lift", "delta_p", "mass"):
        assert torch.isfinite(getattr(result, name)).all(), name
    assert torch.isfinite(result.samples).all()
    # open boundaries: the mass breathes with the pressure waves, by well under 1%
    assert (result.mass - 1).abs().max() < 1e-2  # measured 4.6e-3
    assert result.mlups > 0 and result.wall_seconds > 0


def test_coarse_run_sheds_vortices_at_the_benchmark_frequency(coarse):
    result, _ = coarse
    q = benchmark_quantities(result, periods=3)
    tail = result.times > 2.0
    assert result.lift[tail].min() < -0.5 and result.lift[tail].max() > 0.5  # the lift oscillates
    assert q.lift_max_spread < 0.05  # and periodically
    for name, tol in TOLERANCE.items():
        target = _middle(SCHAFER_TUREK_2D2[name])
        assert abs(getattr(q, name) / target - 1) < tol, (name, getattr(q, name), target)
    assert 2.3 < q.delta_p < 2.7


def test_coarse_run_samples(coarse):
    result, progress = coarse
    T, N = len(result.sample_times), len(result.points)
    assert result.samples.shape == (T, N, 3) and T == 21
    np.testing.assert_allclose(result.sample_times.numpy(), 2.0 + 0.05 * np.arange(T), atol=1e-9)
    walls = result.samples[:, :32, :2]  # the cylinder's and the walls' nodes
    assert walls.abs().max() == 0
    interior = result.samples[:, 32:]
    assert interior[..., 0].mean() > 0.5 and interior[..., :2].abs().max() < 3.0  # (u_mean = 1)
    assert progress[-1] == pytest.approx((result.lattice.dt * result.steps, result.lattice.dt * result.steps))
    assert all(a[0] < b[0] for a, b in zip(progress[:-1], progress[1:], strict=True))


def test_float32_follows_float64():
    flow = CylinderFlow()
    runs = [
        simulate(flow, cells_per_diameter=8, u_lattice=0.1, t_end=0.2, kick=1.0, kick_time=0.1, dtype=dtype)
        for dtype in (torch.float32, torch.float64)
    ]
    late = runs[1].times > 0.1
    np.testing.assert_allclose(runs[0].drag[late], runs[1].drag[late], rtol=2e-3)
    np.testing.assert_allclose(runs[0].lift[late], runs[1].lift[late], atol=2e-3)


@pytest.mark.slow
def test_kick_leaves_the_periodic_state_unchanged():
    """Shedding grown from the start's asymmetry and shedding triggered by a spin reach one state."""
    flow = CylinderFlow()
    settings = dict(COARSE, t_end=8.0)
    kicked = benchmark_quantities(simulate(flow, **settings), periods=5)
    natural = benchmark_quantities(simulate(flow, **dict(settings, kick=0.0)), periods=5)
    for name in ("drag_max", "lift_max", "strouhal", "delta_p"):
        assert getattr(kicked, name) == pytest.approx(getattr(natural, name), rel=5e-3), name


# ---------------------------------------------------------------------------------------------------------
# sampling at points


@pytest.fixture(scope="module")
def solver10():
    flow = CylinderFlow()
    return CylinderLBM(flow, lattice_parameters(flow, cells_per_diameter=10))


def _node_grid(solver):
    lat = solver.lattice
    x = (np.arange(lat.nx) + 0.5) * lat.dx
    y = (np.arange(lat.ny) + 0.5) * lat.dx
    return x, y


def _state(solver, rho, u, v):
    """Equilibrium populations of nodal fields given as float64 arrays ``[ny, nx]`` (lattice units)."""
    return solver.equilibrium(*(torch.as_tensor(a) for a in (rho, u, v))).contiguous()


def _far_from_walls(flow, lat, n, rng):
    """``n`` random points at least one cell from every wall."""
    pts = rng.uniform(
        [0.5 * lat.dx, lat.dx], [flow.length - 0.5 * lat.dx, flow.height - lat.dx], size=(4 * n, 2)
    )
    far = np.hypot(pts[:, 0] - flow.center[0], pts[:, 1] - flow.center[1]) > flow.radius + lat.dx
    return pts[far][:n]


def test_sampling_a_linear_field_is_exact(solver10):
    flow, lat = solver10.flow, solver10.lattice
    x, y = _node_grid(solver10)
    X, Y = np.meshgrid(x, y)  # [ny, nx]
    rho = 1 + 1e-3 * (X + 2 * Y)
    u = 0.01 + 0.02 * X - 0.01 * Y
    v = 0.005 - 0.01 * X + 0.03 * Y
    points = _far_from_walls(flow, lat, 200, np.random.default_rng(1))
    got = solver10.sample(_state(solver10, rho, u, v), solver10.stencil(points)).numpy()
    px, py = points[:, 0], points[:, 1]
    vs = lat.velocity_scale
    np.testing.assert_allclose(got[:, 0], (0.01 + 0.02 * px - 0.01 * py) * vs, rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], (0.005 - 0.01 * px + 0.03 * py) * vs, rtol=1e-12)
    np.testing.assert_allclose(got[:, 2], flow.density / 3 * 1e-3 * (px + 2 * py) * vs**2, rtol=1e-9)


def test_sampling_equals_an_independent_bilinear_interpolation(solver10):
    flow, lat = solver10.flow, solver10.lattice
    x, y = _node_grid(solver10)
    rng = np.random.default_rng(2)
    rho = 1 + 1e-3 * rng.standard_normal((lat.ny, lat.nx))
    u, v = 0.05 * rng.standard_normal((2, lat.ny, lat.nx))
    points = _far_from_walls(flow, lat, 300, rng)
    got = solver10.sample(_state(solver10, rho, u, v), solver10.stencil(points)).numpy()
    vs = lat.velocity_scale
    for k, field in enumerate((u * vs, v * vs, (rho - 1) / 3 * vs**2)):
        ref = RegularGridInterpolator((y, x), field, method="linear")(points[:, ::-1])
        np.testing.assert_allclose(got[:, k], ref, rtol=1e-10, atol=1e-14)


def test_wall_points_have_zero_velocity_and_the_pressure_one_cell_out(solver10):
    flow, lat = solver10.flow, solver10.lattice
    (cx, cy), r, dx = flow.center, flow.radius, lat.dx
    x, y = _node_grid(solver10)
    X, Y = np.meshgrid(x, y)
    f = _state(solver10, 1 + 1e-3 * np.sin(X + Y), 0.05 + 0.01 * np.cos(3 * X), 0.01 * np.sin(5 * Y))
    angle = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    normal = np.stack([np.cos(angle), np.sin(angle)], 1)
    surface = np.array([cx, cy]) + r * normal
    on_walls = np.concatenate([surface, [[0.7, 0.0], [1.3, flow.height], [0.0, 0.0]]])
    inside = np.array([[cx, cy], [cx + 0.3 * r, cy - 0.2 * r], [0.9, -0.05], [1.1, flow.height + 0.1]])
    got = solver10.sample(f, solver10.stencil(np.concatenate([on_walls, inside]))).numpy()
    np.testing.assert_array_equal(got[:, :2], 0.0)
    # the pressure of a surface point is the pressure one cell out along the normal
    out = solver10.sample(f, solver10.stencil(surface + dx * normal)).numpy()
    np.testing.assert_allclose(got[:12, 2], out[:, 2], rtol=1e-12)
    # half a cell from the wall: half the velocity one cell out
    half = solver10.sample(f, solver10.stencil(surface + 0.5 * dx * normal)).numpy()
    np.testing.assert_allclose(half[:, :2], 0.5 * out[:, :2], rtol=1e-12, atol=1e-15)
    # the stencil's rows: weights sum to 1, velocity scales in [0, 1]
    s = point_stencil(np.concatenate([on_walls, inside]), flow, lat)
    np.testing.assert_allclose(s.weight.sum(1).numpy(), 1.0)
    assert s.velocity_scale.min() == 0 and s.velocity_scale.max() <= 1


# ---------------------------------------------------------------------------------------------------------
# post-processing


def test_strouhal_of_a_noisy_sine():
    rng = np.random.default_rng(3)
    t = np.arange(0, 3, 1e-3)
    lift = 0.2 + np.sin(2 * np.pi * 3.07 * t + 0.4) + 0.05 * rng.standard_normal(t.size)
    assert strouhal(t, lift, diameter=0.1, u_mean=1.0) == pytest.approx(0.307, rel=2e-3)
    assert shedding_frequency(torch.as_tensor(t), torch.as_tensor(lift), t_from=1.0) == pytest.approx(
        3.07, rel=3e-3
    )
    with pytest.raises(ValueError, match="zero crossings"):
        strouhal(t, np.ones_like(t))


def _synthetic_result(flow: CylinderFlow, f: float = 3.0) -> CylinderResult:
    t = torch.arange(0, 4, 1e-4, dtype=torch.float64)
    phase = 2 * math.pi * f * t
    lift = torch.sin(phase)
    drag = 3.2 + 0.03 * torch.sin(2 * phase)
    delta_p = 2.48 - 0.05 * torch.sin(phase)  # smallest at max lift, largest half a period later
    lat = lattice_parameters(flow, cells_per_diameter=10)
    return CylinderResult(
        flow=flow,
        lattice=lat,
        times=t,
        drag=drag,
        lift=lift,
        delta_p=delta_p,
        mass=torch.ones_like(t),
        sample_times=torch.zeros(0),
        points=None,
        samples=None,
        wall_seconds=1.0,
    )


def test_benchmark_quantities_of_synthetic_signals():
    q = benchmark_quantities(_synthetic_result(CylinderFlow()), periods=4)
    assert q.strouhal == pytest.approx(0.3, rel=1e-6)
    assert q.drag_max == pytest.approx(3.23, abs=1e-6) and q.lift_max == pytest.approx(1.0, abs=1e-6)
    assert q.delta_p == pytest.approx(2.53, abs=1e-5) and q.delta_p_mean == pytest.approx(2.48, abs=1e-3)
    assert q.periods == 4 and q.t_to - q.t_from == pytest.approx(4 / 3.0, rel=1e-6)
    assert q.lift_max_spread < 1e-6 and q.drag_max_spread < 1e-6
    with pytest.raises(ValueError, match="crossings"):
        benchmark_quantities(_synthetic_result(CylinderFlow()), periods=20)


# ---------------------------------------------------------------------------------------------------------
# parameters and bad input


def test_lattice_parameters_derivation():
    flow = CylinderFlow()
    lat = lattice_parameters(flow, cells_per_diameter=20, u_lattice=0.05)
    assert (lat.ny, lat.nx) == (82, 440) and lat.cells_per_diameter == pytest.approx(20)
    assert lat.dt == pytest.approx(0.05 * 0.005) and lat.tau == pytest.approx(0.5 + 3 * 0.05 * 20 / 100)
    assert lat.mach == pytest.approx(1.5 * 0.05 * math.sqrt(3))
    snapped = lattice_parameters(flow, cells_per_diameter=20, u_lattice=0.047, sample_every=0.01)
    assert 0.01 / snapped.dt == pytest.approx(round(0.01 / snapped.dt), abs=1e-9)
    assert snapped.u_lattice <= 0.047
    odd = lattice_parameters(flow, cells_per_diameter=13)  # H / D not a multiple of the asked resolution
    assert odd.ny == 53 and odd.cells_per_diameter == pytest.approx(0.1 / (0.41 / 53))
    assert lat.odd_rate == 1.2 and lat.magic == pytest.approx((lat.tau - 0.5) / 3)
    for cells in (20, 40):  # a fixed Lambda: the odd rate follows tau
        fixed = lattice_parameters(flow, cells_per_diameter=cells, magic=0.02)
        assert fixed.magic == pytest.approx(0.02) and 0.3 < fixed.odd_rate < 2


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: CylinderFlow(center=(0.2, 0.05)), "bottom wall"),
        (lambda: CylinderFlow(center=(0.2, 0.38)), "top wall"),
        (lambda: CylinderFlow(center=(0.03, 0.2)), "inlet"),
        (lambda: CylinderFlow(viscosity=-1e-3), "viscosity must be a finite float > 0, got -0.001"),
        (lambda: CylinderFlow(diameter=float("nan")), "diameter"),
        (lambda: CylinderFlow(center=(0.2,)), "center"),
        (lambda: lattice_parameters(CylinderFlow(viscosity=1e-5), cells_per_diameter=10), "tau = 0.50"),
        (lambda: lattice_parameters(CylinderFlow(), cells_per_diameter=20, u_lattice=0.2), "Mach number"),
        (lambda: lattice_parameters(CylinderFlow(center=(0.2, 0.07)), cells_per_diameter=10), "cells from a"),
        (lambda: lattice_parameters(CylinderFlow(), cells_per_diameter=0.5), "cells across the channel"),
        (lambda: lattice_parameters(CylinderFlow(), cells_per_diameter=10, collision="bgk"), "collision"),
        (lambda: lattice_parameters(CylinderFlow(), cells_per_diameter=10, odd_rate=2.5), "odd_rate"),
        (lambda: lattice_parameters(CylinderFlow(), cells_per_diameter=10, magic=3 / 16), "magic=0.1875"),
        (lambda: simulate(CylinderFlow(), cells_per_diameter=10, t_end=-1.0), "t_end"),
        (lambda: simulate(CylinderFlow(), cells_per_diameter=10, t_end=1.0, kick=5.0), "kick"),
        (lambda: point_stencil(np.zeros((3, 3)), CylinderFlow(), _lat10()), r"shape \[N, 2\]"),
    ],
)
def test_bad_input_is_a_one_line_value_error(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_tau_close_to_one_half_warns():
    with pytest.warns(UserWarning, match="close to 1/2"):
        lattice_parameters(CylinderFlow(viscosity=5e-4), cells_per_diameter=10, u_lattice=0.02)  # tau 0.503


def _lat10():
    return lattice_parameters(CylinderFlow(), cells_per_diameter=10)


def test_divergence_is_reported_with_the_step():
    flow = CylinderFlow()
    solver = CylinderLBM(flow, _lat10())
    f = solver.initial_state()
    f[1, 20, 30] = math.nan
    with pytest.raises(SolverDivergedError, match="NaN/Inf by step 64") as info:
        solver.advance(f, 100)
    assert info.value.step == 64


# ---------------------------------------------------------------------------------------------------------
# the validation script


def test_validate_script_quick(load_script, tmp_path, capsys):
    script = load_script("validate_cylinder")
    figure = tmp_path / "cd_cl.png"
    assert script.main(["--quick", "--out", "-", "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "| cells per D |" in out and "Schäfer" in out and "max C_D" in out
    assert figure.stat().st_size > 1000


@pytest.mark.parametrize("center", [(0.2, 0.2), (0.237, 0.1913)])
def test_points_on_and_near_the_cylinder_have_fluid_stencils(center):
    # A point one cell out along the normal can have a bilinear cell whose corner lies inside the curved
    # wall (up to (sqrt(2) - 1) dx): such corners must get no weight (mesh nodes sit on the cylinder).
    flow = CylinderFlow(center=center, diameter=0.083)
    lat = lattice_parameters(flow, cells_per_diameter=10)
    angle = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    normal = np.stack([np.cos(angle), np.sin(angle)], 1)
    points = np.concatenate(
        [np.asarray(center) + (flow.radius + h * lat.dx) * normal for h in (0, 0.3, 0.9, 1.4)]
    )
    s = point_stencil(points, flow, lat)
    index, weight = s.index.numpy(), s.weight.numpy()
    ci, cj = index % lat.nx, index // lat.nx
    solid = np.hypot((ci + 0.5) * lat.dx - center[0], (cj + 0.5) * lat.dx - center[1]) <= flow.radius
    assert not (solid & (weight > 0)).any()
    np.testing.assert_allclose(weight.sum(1), 1.0)
    assert np.all(s.velocity_scale.numpy()[: len(angle)] == 0)  # on the wall: zero velocity
