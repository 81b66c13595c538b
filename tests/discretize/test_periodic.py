"""Cell-centred periodic grids, their rotation convention, and spectral resampling."""

from __future__ import annotations

import math

import pytest
import torch

from sim.discretize import PeriodicGrid2D, spectral_resample


def _field(grid: PeriodicGrid2D) -> torch.Tensor:
    """A band-limited test field (wavenumbers up to 7), an analytic function of (x, y)."""
    x, y = grid.mesh()
    k = 2 * math.pi / grid.length
    return torch.sin(3 * k * x + 0.3) * torch.cos(5 * k * y) + torch.cos(k * (7 * x - 2 * y)) + 0.25


def test_cell_centres_and_axis_order():
    grid = PeriodicGrid2D(4, length=2.0)
    assert torch.allclose(grid.coords(), torch.tensor([0.25, 0.75, 1.25, 1.75], dtype=torch.float64))
    x, y = grid.mesh()
    assert x[0, 1] > x[0, 0] and y[1, 0] > y[0, 0]  # last axis is x, the one before it y
    assert grid.spacing == 0.5


def test_rot90_convention_is_counter_clockwise_about_the_centre():
    # f'(p) = f(R^-1 p) with R the counter-clockwise quarter turn about the centre (1/2, 1/2).
    grid = PeriodicGrid2D(8)
    x, y = grid.mesh()
    f = torch.exp(torch.sin(2 * math.pi * x) + 0.5 * torch.cos(2 * math.pi * y) * torch.sin(4 * math.pi * x))
    rotated = torch.rot90(f, 1, dims=(-1, -2))
    cx, cy = x - 0.5, y - 0.5
    xs, ys = cy + 0.5, -cx + 0.5  # R^-1 (cx, cy) = (cy, -cx)
    expected = torch.exp(
        torch.sin(2 * math.pi * xs) + 0.5 * torch.cos(2 * math.pi * ys) * torch.sin(4 * math.pi * xs)
    )
    assert torch.allclose(rotated, expected, atol=1e-12)


def test_wavenumbers_differentiate_exactly():
    grid = PeriodicGrid2D(16, length=3.0)
    x, y = grid.mesh()
    k = 2 * math.pi / 3.0
    f = torch.sin(2 * k * x) * torch.cos(3 * k * y)
    kx, ky = grid.wavenumbers()
    fx = torch.fft.irfft2(1j * kx * torch.fft.rfft2(f), s=(16, 16))
    fy = torch.fft.irfft2(1j * ky * torch.fft.rfft2(f), s=(16, 16))
    assert torch.allclose(fx, 2 * k * torch.cos(2 * k * x) * torch.cos(3 * k * y), atol=1e-12)
    assert torch.allclose(fy, -3 * k * torch.sin(2 * k * x) * torch.sin(3 * k * y), atol=1e-12)


@pytest.mark.parametrize("n,m", [(64, 32), (32, 64), (64, 48), (48, 16), (32, 32)])
def test_spectral_resample_is_exact_for_band_limited_fields(n, m):
    length = 2.0
    a = _field(PeriodicGrid2D(n, length))
    b = _field(PeriodicGrid2D(m, length))
    assert torch.allclose(spectral_resample(a, m), b, atol=1e-12)


def test_spectral_resample_commutes_with_the_square_symmetries():
    r = torch.randn(3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = spectral_resample(r, 16)
    for k in (1, 2, 3):
        assert torch.allclose(
            spectral_resample(torch.rot90(r, k, dims=(-1, -2)), 16),
            torch.rot90(out, k, dims=(-1, -2)),
            atol=1e-13,
        )
    assert torch.allclose(spectral_resample(r.flip(-1), 16), out.flip(-1), atol=1e-13)
    assert torch.allclose(spectral_resample(r.transpose(-1, -2), 16), out.transpose(-1, -2), atol=1e-13)
    assert torch.allclose(spectral_resample(r, 16).mean(dim=(-1, -2)), r.mean(dim=(-1, -2)), atol=1e-13)


def test_bad_grids():
    with pytest.raises(ValueError, match="positive int, got 0"):
        PeriodicGrid2D(0)
    with pytest.raises(ValueError, match="length must be > 0"):
        PeriodicGrid2D(8, length=-1.0)
    with pytest.raises(ValueError, match="sizes must be even"):
        spectral_resample(torch.zeros(2, 9, 9), 4)
    with pytest.raises(ValueError, match="square field"):
        spectral_resample(torch.zeros(2, 8, 4), 4)
