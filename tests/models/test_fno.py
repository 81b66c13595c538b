"""The FNO-2D baseline: spectral convolution against a direct Fourier computation, shift equivariance,
not rotation equivariance, configs and parameter matching."""

from __future__ import annotations

import math

import pytest
import torch

import sim
from sim.models import FNO2d, SpectralConv2d, count_parameters
from sim.testing import equivariance_errors


def test_spectral_conv_keeps_low_modes_and_drops_high_ones():
    conv = SpectralConv2d(1, 1, modes=3).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[..., 0] = 1.0  # identity on the kept modes
    n = 16
    c = torch.arange(n, dtype=torch.float64) / n
    y, x = torch.meshgrid(c, c, indexing="ij")
    low = torch.cos(2 * math.pi * (2 * x - y)).double()[None, None]  # |k_y| = 1, k_x = 2: kept
    high = torch.sin(2 * math.pi * 5 * x).double()[None, None]  # k_x = 5: dropped
    assert torch.allclose(conv(low + high), low, atol=1e-12)


def test_spectral_conv_matches_a_direct_dft():
    torch.manual_seed(1)
    conv = SpectralConv2d(2, 3, modes=2).double()
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    w = torch.view_as_complex(conv.weight.detach())
    spec = torch.fft.rfft2(x)
    ref = torch.zeros(1, 3, 8, 5, dtype=torch.complex128)
    for ky in (0, 1, -2, -1):
        half = 0 if ky >= 0 else 1
        iy = ky % 8
        for kx in range(2):
            for o in range(3):
                ref[0, o, iy, kx] = sum(
                    spec[0, i, iy, kx] * w[half, i, o, iy if half == 0 else iy - 6, kx] for i in range(2)
                )
    assert torch.allclose(conv(x), torch.fft.irfft2(ref, s=(8, 8)), atol=1e-12)


def test_fno_commutes_with_periodic_shifts_but_not_with_rotations():
    model = FNO2d(in_fields="3x pseudoscalar", out_fields="pseudoscalar", width=6, modes=4, layers=2).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    shifted = model(torch.roll(x, (3, 5), dims=(-2, -1)))
    assert torch.allclose(shifted, torch.roll(model(x), (3, 5), dims=(-2, -1)), atol=1e-12)
    assert equivariance_errors(model, size=16).worst > 1e-2


def test_config_matches_the_gcnn_parameter_count_and_trains():
    fno = sim.build_model("configs/ns2d/fno.yaml")
    gcnn = sim.build_model("configs/ns2d/gcnn_p4m.yaml")
    assert abs(count_parameters(fno) / count_parameters(gcnn) - 1) < 0.15
    x = torch.randn(2, 5, 32, 32)
    out = fno(x)
    assert out.shape == (2, 1, 32, 32)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fno.parameters())


def test_too_many_modes_for_the_grid():
    model = FNO2d(in_fields="scalar", out_fields="scalar", width=2, modes=8, layers=1)
    with pytest.raises(ValueError, match="8 modes need H >= 16"):
        model(torch.zeros(1, 1, 8, 8))
