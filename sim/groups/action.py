"""How planar group elements act on fields sampled on square grids, and on convolution kernels.

A field ``f`` of type ``rho`` transforms as ``(g . f)(p) = rho(g) f(g^-1 p)``: the grid is rotated or
reflected about its centre and the channels are mixed by the representation.

* C_N and D_N with ``N`` in {1, 2, 4} act **exactly** on a square grid: rotations by multiples of 90
  degrees are ``torch.rot90(f, k, dims=(-1, -2))`` (counter-clockwise) and the reflection ``x -> -x`` is
  ``torch.flip(f, dims=(-1,))`` (docs/conventions.md).
* Other ``N`` rotate the grid by bilinear interpolation: **approximate**, with errors from the
  interpolation and from the corners that leave the grid. Use :func:`disk_mask` to compare only the
  inner disk, and expect equivariance to hold only up to those errors.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from sim.groups.fields import FieldType
from sim.groups.planar import PlanarGroup

__all__ = ["act", "disk_mask", "kernel_transforms", "transform_grid"]


def _quarter_turns(group: PlanarGroup, g: int) -> int:
    k, _ = group.decompose(g)
    return (4 // group.n) * k


def transform_grid(x: torch.Tensor, group: PlanarGroup, g: int) -> torch.Tensor:
    """Move the values of a field on the grid: ``x'(p) = x(g^-1 p)``, channels untouched.

    Args:
        x: ``[..., H, W]``.
        group, g: the element (see :class:`PlanarGroup`).

    Returns:
        ``[..., H', W']`` (``H' = W, W' = H`` after an odd number of quarter turns). Exact for groups
        with ``exact_on_grid``; bilinear interpolation about the centre (zero outside) otherwise, which
        needs ``H == W``.
    """
    k, m = group.decompose(g)
    if m:
        x = torch.flip(x, dims=(-1,))
    if group.exact_on_grid:
        turns = _quarter_turns(group, g) % 4
        return torch.rot90(x, turns, dims=(-1, -2)) if turns else x
    if k == 0:
        return x
    return _rotate_interpolated(x, group.angle(g))


def _rotate_interpolated(x: torch.Tensor, theta: float) -> torch.Tensor:
    H, W = x.shape[-2:]
    if H != W:
        raise ValueError(f"rotation by {math.degrees(theta):.4g} degrees needs a square grid, got {H}x{W}")
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, H, W)
    c, s = math.cos(theta), math.sin(theta)
    # x'(p) = x(R^-1 p): sample at R(-theta) p; normalised coordinates, +x right, +y along the row index.
    theta_mat = torch.tensor([[c, s, 0.0], [-s, c, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta_mat.expand(flat.shape[0], 2, 3), list(flat.shape), align_corners=True)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(*lead, H, W)


def disk_mask(size: int, *, margin: float = 0.0, dtype=torch.float64, device=None) -> torch.Tensor:
    """``[size, size]`` ones inside the disk inscribed in the grid (radius ``size/2 - margin``), else 0."""
    c = (size - 1) / 2
    r = torch.arange(size, dtype=dtype, device=device) - c
    radius = torch.sqrt(r[:, None] ** 2 + r[None, :] ** 2)
    return (radius <= size / 2 - margin).to(dtype)


def act(x: torch.Tensor, field_type: FieldType, g: int) -> torch.Tensor:
    """Apply group element ``g`` to a field of the given type: ``(g . x)(p) = rho(g) x(g^-1 p)``.

    Args:
        x: ``[B, dim, H, W]``, or ``[B, C, |G|, H, W]`` for an all-regular type, where the regular
            representation permutes the group axis: ``(g . x)[:, :, h] = T_g x[:, :, g^-1 h]``.
        field_type: how the channels transform.
        g: the group element.

    Returns:
        The transformed field, same layout (H and W swap after an odd number of quarter turns).
    """
    group = field_type.group
    field_type.check_tensor(x)
    if field_type.is_regular:
        perm = _regular_permutation(group, g)  # new[h] = old[g^-1 h]
        return transform_grid(x[:, :, list(perm)], group, g)
    rho = torch.tensor(field_type.matrices()[g], dtype=x.dtype, device=x.device)  # [dim, dim]
    return torch.einsum("ij,bjhw->bihw", rho, transform_grid(x, group, g))


@functools.cache
def _regular_permutation(group: PlanarGroup, g: int) -> tuple[int, ...]:
    g_inv = group.inverse(g)
    return tuple(group.compose(g_inv, h) for h in group.elements())


@functools.cache
def kernel_transforms(group: PlanarGroup, size: int) -> tuple[np.ndarray, bool]:
    """How each element moves the pixels of a ``size x size`` kernel.

    Returns:
        ``(M, exact)``: ``M`` is ``[|G|, size*size, size*size]`` with ``(T_g K).flat = M[g] @ K.flat``;
        ``exact`` says the maps are permutations (groups exact on the grid). Otherwise they are bilinear
        interpolation matrices that read only the pixels inside the disk of radius ``size/2`` (the
        corner pixels of a kernel are ignored; rotated kernels may spill a little weight onto them).
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd int (a centre pixel), got {size}")
    eye = torch.eye(size * size, dtype=torch.float64).reshape(size * size, size, size)  # basis kernels
    if not group.exact_on_grid:
        eye = eye * disk_mask(size)
    mats = []
    for g in group.elements():
        moved = transform_grid(eye, group, g)  # [q, size, size]: where basis pixel q goes
        mats.append(moved.reshape(size * size, size * size).T)  # [p, q]
    out = torch.stack(mats).numpy()
    if group.exact_on_grid:
        out = np.round(out)
    out.setflags(write=False)
    return out, group.exact_on_grid
