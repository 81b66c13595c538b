"""Periodic planar grids: the square torus [0, L)^2 sampled at cell centres.

Conventions (shared by the solvers, the data files and the planar group actions; see docs/conventions.md):

* Arrays are indexed ``[..., iy, ix]``: the last axis is x (to the right), the one before it is y (up).
* Points are cell centres: ``x_i = (i + 1/2) L / n``. With this choice the array operations
  ``torch.rot90`` and ``torch.flip`` are exact rotations and reflections of the square about its centre,
  so a field given by a symmetric formula samples to an exactly symmetric array.
* ``torch.rot90(f, k, dims=(-1, -2))`` rotates a scalar field counter-clockwise by ``k * 90`` degrees:
  ``f'(p) = f(R^-1 p)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PeriodicGrid2D", "spectral_resample"]


@dataclass(frozen=True)
class PeriodicGrid2D:
    """A uniform ``n x n`` cell-centred grid on the periodic square ``[0, length)^2``.

    Args:
        n: points per side (positive).
        length: side of the square.
    """

    n: int
    length: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"grid size n must be a positive int, got {self.n!r}")
        if not self.length > 0:
            raise ValueError(f"grid length must be > 0, got {self.length!r}")

    @property
    def spacing(self) -> float:
        """Distance between neighbouring points."""
        return self.length / self.n

    def coords(self, *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
        """Cell-centre coordinates along one axis, ``(i + 1/2) * length / n``. Returns ``[n]``."""
        return (torch.arange(self.n, dtype=dtype, device=device) + 0.5) * self.spacing

    def mesh(self, *, dtype: torch.dtype = torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates of every point as ``(x, y)``, each ``[n, n]`` indexed ``[iy, ix]``."""
        c = self.coords(dtype=dtype, device=device)
        y, x = torch.meshgrid(c, c, indexing="ij")  # [n, n] each, row = y
        return x.clone(), y.clone()

    def wavenumbers(
        self, *, dtype: torch.dtype = torch.float64, device=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Angular wavenumbers of ``torch.fft.rfft2`` output, as ``(kx, ky)``, each ``[n, n // 2 + 1]``.

        ``kx`` runs over ``rfftfreq`` (last axis), ``ky`` over ``fftfreq`` (first axis), both times
        ``2 pi n / length``, so a mode ``exp(i (kx x + ky y))`` has derivative ``i kx`` in x.
        """
        scale = 2 * torch.pi * self.n / self.length
        kx = torch.fft.rfftfreq(self.n, dtype=dtype, device=device) * scale  # [n//2+1]
        ky = torch.fft.fftfreq(self.n, dtype=dtype, device=device) * scale  # [n]
        ky, kx = torch.meshgrid(ky, kx, indexing="ij")  # [n, n//2+1] each
        return kx.clone(), ky.clone()


def spectral_resample(field: torch.Tensor, m: int) -> torch.Tensor:
    """Band-limited resampling of a periodic, cell-centred field from ``n x n`` to ``m x m`` points.

    The field is read as its trigonometric interpolant (on the ``n`` grid) and evaluated at the
    cell centres of the ``m`` grid, keeping the wavenumbers ``|k| < min(n, m) / 2`` on each axis (the
    Nyquist modes are dropped, so the operation commutes exactly with rot90 and the reflections). For
    a field with no energy at or above those wavenumbers this is exact; for coarsening it is the
    spectral truncation (no aliasing), as in the FNO data where 256^2 solutions are stored at 64^2.

    Args:
        field: ``[..., n, n]`` real tensor, ``n`` even.
        m: target points per side, even.

    Returns:
        ``[..., m, m]`` in the dtype and on the device of ``field``.
    """
    n = field.shape[-1]
    if field.ndim < 2 or field.shape[-2] != n:
        raise ValueError(f"spectral_resample: expected a square field [..., n, n], got {list(field.shape)}")
    if n % 2 or m % 2 or m < 2:
        raise ValueError(f"spectral_resample: sizes must be even, got n={n}, m={m}")
    if m == n:
        return field.clone()
    kc = min(n, m) // 2  # keep |k| < kc on each axis
    spec = torch.fft.rfft2(field)  # [..., n, n//2+1]
    ky = torch.fft.fftfreq(n, device=field.device) * n  # signed integer wavenumbers [n]
    rows = torch.nonzero(ky.abs() < kc).squeeze(-1)  # kept rows, in fftfreq order
    spec = spec[..., rows, :kc]  # [..., 2kc-1, kc]
    ky_kept = ky[rows].to(field.dtype)
    kx_kept = torch.arange(kc, device=field.device, dtype=field.dtype)
    # Shift from the n-grid's cell centres to the m-grid's: exp(i pi k (1/m - 1/n)) per axis.
    shift = torch.pi * (1.0 / m - 1.0 / n)
    phase = (
        torch.polar(torch.ones((), dtype=field.dtype, device=field.device), shift * ky_kept)[:, None]
        * (torch.polar(torch.ones((), dtype=field.dtype, device=field.device), shift * kx_kept)[None, :])
    )  # [2kc-1, kc]
    out = torch.zeros(*field.shape[:-2], m, m // 2 + 1, dtype=spec.dtype, device=field.device)
    ky_m = torch.fft.fftfreq(m, device=field.device) * m
    rows_m = torch.nonzero(ky_m.abs() < kc).squeeze(-1)
    # rows and rows_m list the same wavenumbers in the same (fftfreq) order.
    out[..., rows_m, :kc] = spec * phase * (m * m) / (n * n)
    return torch.fft.irfft2(out, s=(m, m))
