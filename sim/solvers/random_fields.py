"""Gaussian random fields on the periodic square: the initial conditions of the FNO Navier-Stokes data."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["gaussian_random_field", "sample_seed"]


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` of a data set seeded with ``seed``.

    Each sample gets its own stream, so a sample is the same whatever the batch it was drawn in.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def gaussian_random_field(
    n: int,
    seeds: Sequence[int],
    *,
    alpha: float = 2.5,
    tau: float = 7.0,
    sigma: float | None = None,
    length: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Samples of the Gaussian random field with covariance ``sigma^2 (-Laplacian + tau^2)^(-alpha)``.

    This is the FNO initial-condition generator (Li et al. 2021): on the ``n x n`` grid,
    ``w(x) = Re sum_k sqrt(2) sigma (4 pi^2 |k|^2 / L^2 + tau^2)^(-alpha/2) xi_k exp(2 pi i k.x / L)``
    with ``xi_k = a_k + i b_k``, ``a_k, b_k ~ N(0, 1)`` independent, integer wavevectors ``k`` in
    ``[-n/2, n/2)^2``, the mean mode set to zero, and ``sigma = tau^(alpha - 1)`` by default.
    The noise is drawn on the CPU in float64 from one generator per seed, so a sample does not depend
    on the device, the dtype or the other samples in the batch.

    Args:
        n: grid points per side.
        seeds: one seed per sample (see ``sample_seed``).
        alpha: smoothness exponent (> 1 for a square-integrable field in 2D).
        tau: inverse length scale.
        sigma: amplitude; ``tau ** (alpha - 1)`` when None.
        length: side of the periodic square.
        dtype, device: of the returned tensor.

    Returns:
        ``[len(seeds), n, n]`` fields indexed ``[sample, iy, ix]``, zero mean.
    """
    if n < 2:
        raise ValueError(f"resolution must be >= 2, got {n}")
    if alpha <= 1 or tau <= 0:
        raise ValueError(f"expected alpha > 1 and tau > 0, got alpha={alpha}, tau={tau}")
    if sigma is None:
        sigma = tau ** (alpha - 1.0)
    k = torch.fft.fftfreq(n, dtype=torch.float64) * n  # integer wavenumbers [n]
    k2 = k[:, None] ** 2 + k[None, :] ** 2  # [n, n]
    sqrt_eig = math.sqrt(2.0) * sigma * (4 * math.pi**2 * k2 / length**2 + tau**2) ** (-alpha / 2)
    sqrt_eig[0, 0] = 0.0
    noise = torch.empty(len(seeds), n, n, 2, dtype=torch.float64)  # [B, n, n, re/im]
    for i, s in enumerate(seeds):
        gen = torch.Generator().manual_seed(int(s))
        noise[i] = torch.randn(n, n, 2, generator=gen, dtype=torch.float64)
    coeff = torch.view_as_complex(noise) * sqrt_eig  # [B, n, n]
    field = torch.fft.ifft2(coeff, norm="forward").real  # sum_k coeff_k exp(2 pi i k.x)
    return field.to(dtype=dtype, device=device)
