"""NavierStokes2D against exact solutions, its convergence order, and its exact discrete symmetries."""

from __future__ import annotations

import math

import pytest
import torch

from sim.discretize.periodic import PeriodicGrid2D
from sim.solvers import (
    NavierStokes2D,
    SolverDivergedError,
    gaussian_random_field,
    sample_seed,
    vorticity_forcing,
)

TWO_PI = 2 * math.pi


def _grf(n: int, batch: int, dtype=torch.float64) -> torch.Tensor:
    return gaussian_random_field(n, [sample_seed(7, i) for i in range(batch)], dtype=dtype)


def _rot(w: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Counter-clockwise rotation by k * 90 degrees of a field [..., y, x]."""
    return torch.rot90(w, k, dims=(-1, -2))


@pytest.mark.parametrize("mode", [(3, 0), (2, 5), (-4, 1)])
def test_single_fourier_mode_decays_exactly(mode):
    # A single wavevector is an exact solution: u . grad w vanishes, w decays as exp(-nu |k|^2 t).
    # Crank-Nicolson's error is t (nu |k|^2)^3 dt^2 / 12, about 2e-7 relative here.
    nu, t = 1e-3, 1.3
    solver = NavierStokes2D(resolution=32, viscosity=nu, dt=1e-3)
    x, y = solver.grid.mesh()
    kx, ky = TWO_PI * mode[0], TWO_PI * mode[1]
    w0 = torch.stack([torch.sin(kx * x + ky * y + 0.4), 2.5 * torch.cos(kx * x + ky * y)])  # [2, n, n]
    w1 = solver.advance(w0, t)
    exact = w0 * math.exp(-nu * (kx**2 + ky**2) * t)
    assert torch.linalg.vector_norm(w1 - exact) / torch.linalg.vector_norm(exact) < 1e-6


def test_forced_mode_relaxes_to_steady_state():
    # Kolmogorov forcing f = A cos(2 pi k y) with w0 a multiple of the same mode:
    # w(t) = w_s + (w0 - w_s) exp(-nu |k|^2 t), w_s = f / (nu |k|^2). Exact (no advection).
    # Crank-Nicolson keeps the steady state exactly and the transient to t lam^3 dt^2 / 12 (3e-7 here).
    nu, amp, kw, t = 1e-2, 0.3, 2, 0.9
    solver = NavierStokes2D(resolution=16, viscosity=nu, dt=1e-3)
    f = vorticity_forcing("kolmogorov", solver.grid, amplitude=amp, wavenumber=kw)
    lam = nu * (TWO_PI * kw) ** 2
    w0 = -0.7 * f[None] / amp
    w1 = solver.advance(w0, t, forcing=f)
    exact = f / lam + (w0 - f / lam) * math.exp(-lam * t)
    assert torch.allclose(w1, exact, rtol=0, atol=1e-6 * float(w0.abs().max()))
    steady = (f / lam)[None]
    assert torch.allclose(solver.advance(steady, t, forcing=f), steady, rtol=0, atol=1e-13)


def test_tendency_matches_analytic_advection():
    # psi = sin(2 pi x) + cos(4 pi y): w = 4 pi^2 sin(2 pi x) + 16 pi^2 cos(4 pi y),
    # u . grad w = 96 pi^4 sin(4 pi y) cos(2 pi x) with u = d psi/dy, v = -d psi/dx.
    nu = 1e-3
    solver = NavierStokes2D(resolution=32, viscosity=nu, dt=1e-3)
    x, y = solver.grid.mesh()
    pi = math.pi
    w = 4 * pi**2 * torch.sin(2 * pi * x) + 16 * pi**2 * torch.cos(4 * pi * y)
    lap_w = -16 * pi**4 * torch.sin(2 * pi * x) - 256 * pi**4 * torch.cos(4 * pi * y)
    exact = -96 * pi**4 * torch.sin(4 * pi * y) * torch.cos(2 * pi * x) + nu * lap_w
    got = solver.tendency(w[None])[0]
    assert torch.allclose(got, exact, atol=1e-10 * float(exact.abs().max()))
    # and the velocity it used
    uv = solver.velocity(w[None])[0]
    assert torch.allclose(uv[0], -4 * pi * torch.sin(4 * pi * y), atol=1e-10)
    assert torch.allclose(uv[1], -2 * pi * torch.cos(2 * pi * x), atol=1e-10)


def test_velocity_is_divergence_free_with_the_right_curl():
    solver = NavierStokes2D(resolution=32, viscosity=1e-3, dt=1e-3)
    w = _grf(32, 2)
    uv = solver.velocity(w)  # [B, 2, n, n]
    kx, ky = solver.grid.wavenumbers()
    kx[:, 16] = 0  # the solver's odd derivatives vanish on the Nyquist modes
    ky[16, :] = 0
    u_hat, v_hat = torch.fft.rfft2(uv[:, 0]), torch.fft.rfft2(uv[:, 1])
    div = torch.fft.irfft2(1j * kx * u_hat + 1j * ky * v_hat, s=(32, 32))
    assert float(div.abs().max()) < 1e-10
    curl_hat = 1j * kx * v_hat - 1j * ky * u_hat  # [B, n, n//2+1]
    w_hat = torch.fft.rfft2(w)
    w_hat[..., 0, 0] = 0
    inner = (slice(None), torch.arange(32) != 16, slice(0, 16))  # all but the Nyquist row and column
    assert torch.allclose(curl_hat[inner], w_hat[inner], atol=1e-9)


def test_second_order_in_time():
    # Errors against a fine-dt reference fall by 4 when dt halves (a nonlinear, forced run).
    n, nu, t = 32, 1e-2, 0.5
    grid = PeriodicGrid2D(n)
    f = vorticity_forcing("fno", grid, amplitude=1.0)
    w0 = 3.0 * _grf(n, 2)

    def run(dt):
        return NavierStokes2D(resolution=n, viscosity=nu, dt=dt).advance(w0, t, forcing=f)

    ref = run(0.5 / 1024)
    errors = [float(torch.linalg.vector_norm(run(dt) - ref)) for dt in (0.5 / 16, 0.5 / 32, 0.5 / 64)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(1.85 < p < 2.3 for p in orders), (errors, orders)


def _forced_run(dtype):
    """A forced 32^2 run: (solver, w0 [3, n, n], forcing [n, n], w(t = 0.2), max |w(0.2)|)."""
    solver = NavierStokes2D(resolution=32, viscosity=1e-3, dt=2e-3)
    w0 = _grf(32, 3, dtype)
    f = vorticity_forcing("fno", solver.grid, dtype=dtype)
    w1 = solver.advance(w0, 0.2, forcing=f)
    return solver, w0, f, w1, float(w1.abs().max())


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_rotation_by_90_degrees_is_exact(dtype, tol):
    solver, w0, f, w1, scale = _forced_run(dtype)
    for k in (1, 2, 3):
        rotated = solver.advance(_rot(w0, k), 0.2, forcing=_rot(f, k))
        assert float((rotated - _rot(w1, k)).abs().max()) < tol * scale


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_reflection_flips_the_sign_of_vorticity(dtype, tol):
    # Vorticity is a pseudoscalar: the transpose (x <-> y) of a solution with the sign flipped is a solution,
    # and so is the mirror image x -> -x with the sign flipped.
    solver, w0, f, w1, scale = _forced_run(dtype)
    transposed = solver.advance(-w0.transpose(-1, -2), 0.2, forcing=-f.transpose(-1, -2))
    assert float((transposed + w1.transpose(-1, -2)).abs().max()) < tol * scale
    mirrored = solver.advance(-w0.flip(-1), 0.2, forcing=-f.flip(-1))
    assert float((mirrored + w1.flip(-1)).abs().max()) < tol * scale
    # Keeping the sign (treating w as a scalar) is NOT a symmetry: the test can tell.
    wrong = solver.advance(w0.flip(-1), 0.2, forcing=f.flip(-1))
    assert float((wrong - w1.flip(-1)).abs().max()) > 1e-3 * scale


def test_symmetric_forcing_is_d4_invariant_pseudoscalar():
    f = vorticity_forcing("symmetric", PeriodicGrid2D(64), amplitude=1.0, wavenumber=2)
    assert float(f.abs().max()) > 0.1
    for k in (1, 2, 3):
        assert torch.equal(_rot(f, k), f) or torch.allclose(_rot(f, k), f, atol=1e-14)
    assert torch.allclose(-f.transpose(-1, -2), f, atol=1e-14)
    assert torch.allclose(-f.flip(-1), f, atol=1e-14)


def test_mean_vorticity_stays_zero():
    n = 32
    solver = NavierStokes2D(resolution=n, viscosity=1e-3, dt=2e-3)
    w0 = _grf(n, 2)
    assert float(w0.mean(dim=(-1, -2)).abs().max()) < 1e-15
    f = vorticity_forcing("fno", solver.grid) + 0.3  # a forcing mean is ignored
    w1 = solver.advance(w0, 0.5, forcing=f)
    assert float(w1.mean(dim=(-1, -2)).abs().max()) < 1e-14


def test_float32_tracks_float64():
    n = 32
    solver = NavierStokes2D(resolution=n, viscosity=1e-3, dt=2e-3)
    w0 = _grf(n, 2)
    f = vorticity_forcing("fno", solver.grid)
    w64 = solver.advance(w0, 0.5, forcing=f)
    w32 = solver.advance(w0.float(), 0.5, forcing=f.float())
    assert w32.dtype == torch.float32
    assert float((w32.double() - w64).abs().max()) < 1e-4 * float(w64.abs().max())


def test_batched_forcing_and_batch_independence():
    n = 16
    solver = NavierStokes2D(resolution=n, viscosity=1e-2, dt=5e-3)
    w0 = _grf(n, 3)
    forcings = torch.stack([vorticity_forcing(k, solver.grid) for k in ("fno", "kolmogorov", "symmetric")])
    batched = solver.advance(w0, 0.3, forcing=forcings)
    for i in range(3):
        alone = solver.advance(w0[i : i + 1], 0.3, forcing=forcings[i])
        assert torch.allclose(batched[i], alone[0], atol=1e-13)


def test_advance_splits_time_into_steps_no_larger_than_dt():
    solver = NavierStokes2D(resolution=16, viscosity=1e-2, dt=0.1)
    w0 = _grf(16, 1)
    once = solver.advance(w0, 0.25)  # 3 steps of 1/12
    fine = NavierStokes2D(resolution=16, viscosity=1e-2, dt=0.25 / 3).advance(w0, 0.25)
    assert torch.allclose(once, fine, atol=1e-14)
    assert torch.equal(solver.advance(w0, 0.0), w0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"resolution": 33, "viscosity": 1e-3, "dt": 1e-3}, "positive even int, got 33"),
        ({"resolution": 0, "viscosity": 1e-3, "dt": 1e-3}, "positive even int, got 0"),
        ({"resolution": -8, "viscosity": 1e-3, "dt": 1e-3}, "positive even int, got -8"),
        (
            {"resolution": 32, "viscosity": -1e-3, "dt": 1e-3},
            "viscosity must be a finite float >= 0, got -0.001",
        ),
        ({"resolution": 32, "viscosity": 1e-3, "dt": 0.0}, "dt must be a finite float > 0, got 0.0"),
        ({"resolution": 32, "viscosity": 1e-3, "dt": float("nan")}, "dt must be a finite float > 0"),
    ],
)
def test_bad_parameters_are_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        NavierStokes2D(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_inputs():
    solver = NavierStokes2D(resolution=16, viscosity=1e-3, dt=1e-3)
    with pytest.raises(ValueError, match=r"shape \[B, 16, 16\], got \[16, 16\]"):
        solver.advance(torch.zeros(16, 16), 0.1)
    with pytest.raises(ValueError, match=r"shape \[B, 16, 16\], got \[2, 16, 32\]"):
        solver.advance(torch.zeros(2, 16, 32), 0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        solver.advance(torch.zeros(2, 16, 16, dtype=torch.int64), 0.1)
    with pytest.raises(ValueError, match="forcing must have shape"):
        solver.advance(torch.zeros(2, 16, 16), 0.1, forcing=torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="t must be a finite float >= 0, got -1"):
        solver.advance(torch.zeros(2, 16, 16), -1)


def test_blow_up_is_detected_with_its_step(monkeypatch):
    n = 32
    solver = NavierStokes2D(resolution=n, viscosity=1e-4, dt=0.5)
    w0 = 50 * _grf(n, 2)
    with pytest.raises(SolverDivergedError, match=r"NaN/Inf at step \d+ of 40 .*reduce dt") as info:
        solver.advance(w0, 20.0)
    assert 1 <= info.value.step <= 40
    assert info.value.time == pytest.approx(info.value.step * 0.5)
    assert "\n" not in str(info.value)
    # The step is exact although finiteness is checked only every few steps: checking every step agrees.
    monkeypatch.setattr(NavierStokes2D, "_CHECK_EVERY", 1)
    with pytest.raises(SolverDivergedError) as every_step:
        solver.advance(w0, 20.0)
    assert every_step.value.step == info.value.step and info.value.step % 16 != 0


def test_module_moves_and_has_no_state():
    solver = NavierStokes2D(resolution=16, viscosity=1e-3, dt=1e-3)
    assert solver.state_dict() == {}
    assert "resolution=16" in repr(solver)


@pytest.mark.slow
def test_spatial_convergence_is_spectral():
    # The same smooth flow at 32^2, 64^2 and 128^2, compared on the coarse grid: the error falls by far
    # more than the 4x of a second-order method when the resolution doubles.
    from sim.discretize import spectral_resample

    w0 = spectral_resample(_grf(256, 2), 256)
    errors = []
    solutions = {}
    for n in (32, 64, 128):
        grid = PeriodicGrid2D(n)
        solver = NavierStokes2D(resolution=n, viscosity=5e-3, dt=2e-3)
        start = 4 * spectral_resample(spectral_resample(w0, 24), n)  # the same band-limited start everywhere
        solutions[n] = solver.advance(start, 1.0, forcing=vorticity_forcing("fno", grid))
    ref = spectral_resample(solutions[128], 32)
    for n in (32, 64):
        errors.append(float(torch.linalg.vector_norm(spectral_resample(solutions[n], 32) - ref)))
    assert errors[1] < errors[0] / 20, errors


@pytest.mark.slow
def test_fno_setup_runs_stably_in_float32():
    n = 256
    solver = NavierStokes2D(resolution=n, viscosity=1e-3, dt=1e-3)
    w = _grf(n, 2, torch.float32)
    f = vorticity_forcing("fno", solver.grid, dtype=torch.float32)
    w = solver.advance(w, 2.0, forcing=f)
    assert bool(torch.isfinite(w).all()) and float(w.abs().max()) < 5.0


def test_vorticity_inverts_velocity_and_is_the_curl():
    solver = NavierStokes2D(32, viscosity=0.0, dt=1.0, length=2.0)
    w = torch.randn(3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spec = torch.fft.fft2(solver.vorticity(solver.velocity(w)) - (w - w.mean(dim=(-2, -1), keepdim=True)))
    spec[:, 16, :] = spec[:, :, 16] = 0  # the Nyquist modes: no odd derivative there
    assert float(spec.abs().max()) < 1e-10
    # the curl of a shear flow u = sin(2 pi y / L), v = 0 is -du/dy
    y = (torch.arange(32, dtype=torch.float64) + 0.5) * 2.0 / 32
    u = torch.sin(torch.pi * y)[:, None].expand(32, 32)  # [y, x]
    w = solver.vorticity(torch.stack([u, torch.zeros_like(u)])[None])[0]
    torch.testing.assert_close(w, -torch.pi * torch.cos(torch.pi * y)[:, None].expand(32, 32))
    with pytest.raises(ValueError, match=r"uv must have shape \[B, 2, n, n\]"):
        solver.vorticity(torch.zeros(1, 3, 32, 32))


def test_solenoidal_projection_keeps_solver_velocities_and_the_curl_and_commutes_with_d4():
    from sim.groups import FieldType, act, dihedral
    from sim.solvers import solenoidal_projection

    n = 32
    solver = NavierStokes2D(n, 1e-3, 1e-2)
    torch.manual_seed(0)
    uv = solver.velocity(gaussian_random_field(n, [2]).double())
    torch.testing.assert_close(solenoidal_projection(uv), uv, atol=1e-12, rtol=0)  # already solenoidal
    x = torch.randn(3, 2, n, n, dtype=torch.float64) + 0.3  # a mean and a gradient part
    p = solenoidal_projection(x)
    torch.testing.assert_close(solenoidal_projection(p), p, atol=1e-12, rtol=0)  # a projection
    torch.testing.assert_close(solver.vorticity(p), solver.vorticity(x), atol=1e-12, rtol=0)
    torch.testing.assert_close(p.mean((-2, -1)), x.mean((-2, -1)), atol=1e-12, rtol=0)
    u_hat, v_hat = torch.fft.rfft2(p).unbind(1)
    div = torch.fft.irfft2(solver._ops[2] * u_hat + solver._ops[3] * v_hat, s=(n, n))
    assert div.abs().max() < 1e-11 and not torch.allclose(p, x)
    vector = FieldType.parse(dihedral(4), "vector")
    for g in range(8):  # rotations by 90 degrees and mirrors, acting on the grid and the components
        torch.testing.assert_close(
            solenoidal_projection(act(x, vector, g)), act(p, vector, g), atol=1e-12, rtol=0
        )
    assert solenoidal_projection(x.float()).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, n, n\]"):
        solenoidal_projection(torch.zeros(2, 3, 8, 8))
