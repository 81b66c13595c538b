"""Time-independent vorticity forcings for the 2D Navier-Stokes solver, sampled on cell-centred grids."""

from __future__ import annotations

import math
from typing import Literal

import torch

from sim.discretize.periodic import PeriodicGrid2D

__all__ = ["FORCINGS", "vorticity_forcing"]

ForcingKind = Literal["fno", "kolmogorov", "symmetric", "none"]

FORCINGS: dict[str, str] = {
    "fno": "A (sin 2 pi k (x + y) + cos 2 pi k (x + y)), the FNO forcing (A = 0.1, k = 1 there)",
    "kolmogorov": "A cos(2 pi k y), the curl of the shear force (-A / (2 pi k) sin(2 pi k y), 0)",
    "symmetric": (
        "A sin(2 pi k X) sin(2 pi k Y) (cos 2 pi k X - cos 2 pi k Y) with X, Y measured from the centre: "
        "invariant under rotations by 90 degrees and odd under reflections, i.e. a pseudoscalar left "
        "unchanged by the whole dihedral group D4"
    ),
    "none": "no forcing (decaying turbulence)",
}


def vorticity_forcing(
    kind: str,
    grid: PeriodicGrid2D,
    *,
    amplitude: float = 0.1,
    wavenumber: int = 1,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> torch.Tensor:
    """A forcing field ``f(x, y)`` of the vorticity equation, sampled at the grid's cell centres.

    Args:
        kind: one of ``FORCINGS`` (``fno``, ``kolmogorov``, ``symmetric``, ``none``).
        grid: where to sample.
        amplitude: ``A``.
        wavenumber: ``k``, a positive int (periods per domain side).
        dtype, device: of the result.

    Returns:
        ``[n, n]`` indexed ``[iy, ix]``.
    """
    if kind not in FORCINGS:
        raise ValueError(f"unknown forcing kind {kind!r}; expected one of {', '.join(FORCINGS)}")
    if isinstance(wavenumber, bool) or not isinstance(wavenumber, int) or wavenumber < 1:
        raise ValueError(f"forcing wavenumber must be a positive int, got {wavenumber!r}")
    x, y = grid.mesh(dtype=torch.float64)  # [n, n] each
    k = 2 * math.pi * wavenumber / grid.length
    if kind == "fno":
        f = torch.sin(k * (x + y)) + torch.cos(k * (x + y))
    elif kind == "kolmogorov":
        f = torch.cos(k * y)
    elif kind == "symmetric":
        cx, cy = x - grid.length / 2, y - grid.length / 2
        f = torch.sin(k * cx) * torch.sin(k * cy) * (torch.cos(k * cx) - torch.cos(k * cy))
    else:
        f = torch.zeros_like(x)
    return (amplitude * f).to(dtype=dtype, device=device)
