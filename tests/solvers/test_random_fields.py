"""The FNO Gaussian random field: its spectrum, zero mean and per-sample seeding."""

from __future__ import annotations

import math

import pytest
import torch

from sim.solvers import gaussian_random_field, sample_seed


def test_per_sample_seeds_do_not_depend_on_the_batch():
    seeds = [sample_seed(3, i) for i in range(5)]
    assert len(set(seeds)) == 5 and seeds[2] == sample_seed(3, 2) != sample_seed(4, 2)
    batch = gaussian_random_field(32, seeds)
    alone = gaussian_random_field(32, seeds[2:3])
    assert torch.equal(batch[2], alone[0])
    assert torch.equal(gaussian_random_field(32, seeds[:1], dtype=torch.float32)[0], batch[0].float())


def test_zero_mean_and_the_covariance_spectrum():
    # w = Re sum_k c_k e^{ikx} with c_k = sqrt(2) sigma lam_k^(-alpha/2) xi_k, E|xi_k|^2 = 2. Its Fourier
    # coefficient at k is W_k = (c_k + conj(c_-k)) / 2, so E|W_k|^2 = 2 sigma^2 lam_k^(-alpha), k != 0.
    n, alpha, tau = 16, 2.5, 7.0
    w = gaussian_random_field(n, [sample_seed(0, i) for i in range(4000)], alpha=alpha, tau=tau)
    assert float(w.mean(dim=(-1, -2)).abs().max()) < 1e-14
    power = (torch.fft.fft2(w).abs() ** 2).mean(0) / n**4  # [n, n]
    sigma = tau ** (alpha - 1)
    for k in [(0, 1), (1, 1), (2, 3), (0, 4)]:
        expected = sigma**2 * (4 * math.pi**2 * (k[0] ** 2 + k[1] ** 2) + tau**2) ** (-alpha)
        assert float(power[k]) == pytest.approx(2 * expected, rel=0.08)


def test_bad_parameters():
    with pytest.raises(ValueError, match="alpha > 1"):
        gaussian_random_field(8, [0], alpha=1.0)
    with pytest.raises(ValueError, match="seed and index must be >= 0"):
        sample_seed(-1, 0)
