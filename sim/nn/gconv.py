"""Group-equivariant convolutions on square grids (Cohen & Welling 2016) for the planar groups C_N, D_N.

One layer, :class:`GroupConv2d`, maps any field type to any other; which filter bank it expands from its
learned weights depends on the pair (the group acts as ``(g . f)(p) = rho(g) f(g^-1 p)``, ``T_g`` moves
kernel pixels):

* **lifting / group convolution** (any type -> regular): ``K_g = T_g(W) rho_in(g)^-1`` for each output
  group element ``g``. For regular inputs this is the G-CNN filter ``K_g(h, x) = W(g^-1 h, g^-1 x)``.
* **projection** (regular -> scalar, pseudoscalar, vector, ...): the block of input element ``g`` is
  ``rho_out(g) T_g(A)``.
* **field to field** (no regular side): the group average ``mean_g rho_out(g) T_g(W) rho_in(g)^-1``.

Each forward expands the weights into one ``[out_dim, in_dim, k, k]`` bank and calls ``F.conv2d`` once;
no Python loop runs over group elements. The expansion is an index gather for exact groups with regular
inputs, and a small einsum otherwise; it costs under 1% of a forward+backward, so it is not cached.

Exactness: with odd kernels, circular (periodic) or zero padding, and a group with ``N`` in {1, 2, 4},
equivariance is exact on any grid. Other ``N`` rotate filters by interpolation (pass
``allow_approximate=True``), which is only approximately equivariant on a pixel grid.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sim.groups.action import kernel_transforms
from sim.groups.fields import FieldType
from sim.groups.planar import PlanarGroup

__all__ = ["GroupConv2d", "RegularNorm", "check_exact_group", "group_pool", "spatial_pool", "upsample"]

Padding = Literal["circular", "zeros"]


def check_exact_group(group: PlanarGroup, allow_approximate: bool, what: str) -> None:
    """Raise unless ``group`` acts exactly on the grid or approximation was asked for."""
    if not group.exact_on_grid and not allow_approximate:
        raise ValueError(
            f"{what}: {group.name} acts on a square grid only approximately (rotations by "
            f"{360 / group.n:g} degrees need interpolation); expected a group with N in {{1, 2, 4}} "
            f"(C4, D4, ...), or pass allow_approximate=True"
        )


class GroupConv2d(nn.Module):
    """Equivariant 2D convolution from fields of type ``in_type`` to fields of type ``out_type``.

    Args:
        in_type: input field type; regular types use the layout ``[B, C, |G|, H, W]``, others
            ``[B, dim, H, W]``.
        out_type: output field type (same group).
        kernel_size: odd.
        padding: ``"circular"`` for periodic domains, ``"zeros"`` for bounded ones (output size = input).
        bias: add a learned bias where the output type allows an invariant one (per regular field; on
            the invariant part of other types, e.g. none for pseudoscalars and vectors under D_N).
        allow_approximate: accept groups that act on the grid only approximately (C8, D16, ...).

    Shapes:
        ``[B, *in_type.channel_shape(), H, W] -> [B, *out_type.channel_shape(), H, W]``.
    """

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        kernel_size: int,
        *,
        padding: Padding = "circular",
        bias: bool = True,
        allow_approximate: bool = False,
    ):
        super().__init__()
        if in_type.group != out_type.group:
            raise ValueError(f"GroupConv2d: in_type is of {in_type.group}, out_type of {out_type.group}")
        group = in_type.group
        check_exact_group(group, allow_approximate, "GroupConv2d")
        if (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, int)
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise ValueError(f"GroupConv2d: kernel_size must be a positive odd int, got {kernel_size!r}")
        if padding not in ("circular", "zeros"):
            raise ValueError(f"GroupConv2d: padding must be 'circular' or 'zeros', got {padding!r}")
        in_type.channel_shape(), out_type.channel_shape()  # reject mixed regular/non-regular types
        self.in_type, self.out_type = in_type, out_type
        self.kernel_size, self.padding = kernel_size, padding
        G, k2 = group.order, kernel_size * kernel_size
        moves, exact = kernel_transforms(group, kernel_size)  # [G, k2, k2]
        self._exact = exact

        if out_type.is_regular:
            self.mode = "lift" if not in_type.is_regular else "group"
            shape = (out_type.num_fields, in_type.dim, kernel_size, kernel_size)
            fan_in = in_type.dim * k2
        elif in_type.is_regular:
            self.mode = "project"
            shape = (out_type.dim, in_type.num_fields, kernel_size, kernel_size)
            fan_in = in_type.dim * k2
        else:
            self.mode = "field"
            shape = (out_type.dim, in_type.dim, kernel_size, kernel_size)
            fan_in = in_type.dim * k2
        self.weight = nn.Parameter(torch.randn(shape) * math.sqrt(2.0 / fan_in))  # He init

        if out_type.is_regular:
            self.bias = nn.Parameter(torch.zeros(out_type.num_fields)) if bias else None
            self.register_buffer("_bias_projector", None, persistent=False)
        else:
            projector = torch.tensor(out_type.invariant_projector(), dtype=torch.float64)
            has_invariant = bool(projector.abs().max() > 1e-9)
            self.bias = nn.Parameter(torch.zeros(out_type.dim)) if (bias and has_invariant) else None
            self.register_buffer("_bias_projector", projector, persistent=False)

        # Tables for the expansion, in float64 so that interpolation weights stay exact for float64 models
        # (non-persistent buffers: they move with .to() and stay out of state_dict).
        self.register_buffer("_moves", torch.tensor(moves, dtype=torch.float64), persistent=False)
        if self.mode == "group" and exact:
            # expanded[o, g, j, h, p] = W[o, j, g^-1 h, src_g(p)]: one gather over the (h, p) axis
            src = moves.argmax(axis=2)  # [G, k2]: source pixel of each target pixel
            inv = [group.inverse(g) for g in range(G)]
            index = torch.empty(G, G * k2, dtype=torch.long)
            for g in range(G):
                for h in range(G):
                    index[g, h * k2 : (h + 1) * k2] = group.compose(inv[g], h) * k2 + torch.tensor(src[g])
            self.register_buffer("_index", index, persistent=False)
        else:
            self.register_buffer("_index", None, persistent=False)
        if self.mode == "group" and not exact:
            perm = torch.tensor([[group.compose(group.inverse(g), h) for h in range(G)] for g in range(G)])
            self.register_buffer("_group_perm", perm, persistent=False)  # [G, G]: g^-1 h
        else:
            self.register_buffer("_group_perm", None, persistent=False)
        if self.mode in ("lift", "field"):
            self.register_buffer(
                "_rho_in", torch.tensor(in_type.matrices(), dtype=torch.float64), persistent=False
            )
        else:
            self.register_buffer("_rho_in", None, persistent=False)
        if self.mode in ("project", "field"):
            self.register_buffer(
                "_rho_out", torch.tensor(out_type.matrices(), dtype=torch.float64), persistent=False
            )
        else:
            self.register_buffer("_rho_out", None, persistent=False)

    def extra_repr(self) -> str:
        return (
            f"{self.in_type} -> {self.out_type}, kernel_size={self.kernel_size}, padding={self.padding}, "
            f"mode={self.mode}, bias={self.bias is not None}"
        )

    # ------------------------------------------------------------------------------------------------
    def expand_filters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The filter bank ``[out_dim, in_dim, k, k]`` and bias ``[out_dim]`` used by ``forward``."""
        group = self.in_type.group
        G, k = group.order, self.kernel_size
        k2 = k * k
        W = self.weight
        dt = W.dtype
        if self.mode == "group":
            O, I = self.out_type.num_fields, self.in_type.num_fields
            flat = W.reshape(O, I, G * k2)  # [O, I, (h, p)]
            if self._index is not None:
                bank = flat[:, :, self._index]  # [O, I, G(out), G*k2]
            else:
                per_h = W.reshape(O, I, G, k2)[:, :, self._group_perm]  # [O, I, G(out), G(in), k2]
                bank = torch.einsum("gpq,oighq->oighp", self._moves.to(dt), per_h)
            bank = bank.reshape(O, I, G, G, k2).permute(0, 2, 1, 3, 4)  # [O, G, I, G, k2]
            bank = bank.reshape(O * G, I * G, k, k)
        elif self.mode == "lift":
            O, D = self.out_type.num_fields, self.in_type.dim
            # K_g = T_g(W) rho_in(g)^-1, with rho^-1 = rho^T (orthogonal representations)
            bank = torch.einsum(
                "gpq,ojq,gij->ogip", self._moves.to(dt), W.reshape(O, D, k2), self._rho_in.to(dt)
            )
            bank = bank.reshape(O * G, D, k, k)
        elif self.mode == "project":
            D, I = self.out_type.dim, self.in_type.num_fields
            # block of input element g: rho_out(g) T_g(A)
            bank = torch.einsum(
                "gde,gpq,eiq->digp", self._rho_out.to(dt), self._moves.to(dt), W.reshape(D, I, k2)
            )
            bank = bank.reshape(D, I * G, k, k)
        else:  # field -> field: group average of rho_out(g) T_g(W) rho_in(g)^-1
            Do, Di = self.out_type.dim, self.in_type.dim
            bank = (
                torch.einsum(
                    "gde,gpq,efq,gif->dip",
                    self._rho_out.to(dt),
                    self._moves.to(dt),
                    W.reshape(Do, Di, k2),
                    self._rho_in.to(dt),
                )
                / G
            )
            bank = bank.reshape(Do, Di, k, k)
        bias = self.bias
        if bias is not None:
            if self.out_type.is_regular:
                bias = bias.repeat_interleave(G)  # one value per field, shared by its |G| channels
            else:
                bias = self._bias_projector.to(dt) @ bias
        return bank, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.in_type.check_tensor(x, "GroupConv2d input")
        B = x.shape[0]
        H, W = x.shape[-2:]
        x = x.reshape(B, self.in_type.dim, H, W)  # [B, in_dim, H, W]
        bank, bias = self.expand_filters()  # <1% of a forward (bench_gconv); no cache to go stale
        p = self.kernel_size // 2
        if self.padding == "circular" and p:
            if p > H or p > W:
                raise ValueError(f"GroupConv2d: circular padding {p} needs H, W >= {p}, got {H}x{W}")
            y = F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), bank, bias)
        else:
            y = F.conv2d(x, bank, bias, padding=p)
        return y.reshape(B, *self.out_type.channel_shape(), H, W)


class RegularNorm(nn.Module):
    """Equivariant normalisation of regular features ``[B, C, |G|, H, W]``.

    Statistics and the affine parameters are shared by the ``|G|`` channels of each field, so the layer
    commutes with the group's permutation of that axis and with any motion of the grid:

    * ``"group"``: ``nn.GroupNorm(groups, C)`` over (fields in a group, |G|, H, W) per sample;
    * ``"batch"``: ``nn.BatchNorm3d(C)`` over (B, |G|, H, W) per field;
    * ``"instance"``: GroupNorm with one field per group.

    Args:
        field_type: an all-regular field type (C fields).
        kind: ``"group"``, ``"batch"`` or ``"instance"``.
        groups: number of groups for ``"group"`` (must divide C).
    """

    def __init__(
        self, field_type: FieldType, kind: Literal["group", "batch", "instance"] = "group", groups: int = 1
    ):
        super().__init__()
        if not field_type.is_regular:
            raise ValueError(f"RegularNorm: expected an all-regular field type, got {field_type}")
        C = field_type.num_fields
        self.field_type, self.kind = field_type, kind
        if kind == "batch":
            self.norm = nn.BatchNorm3d(C)
        elif kind in ("group", "instance"):
            groups = C if kind == "instance" else groups
            if groups < 1 or C % groups:
                raise ValueError(f"RegularNorm: groups must divide the {C} fields, got {groups}")
            self.norm = nn.GroupNorm(groups, C)
        else:
            raise ValueError(f"RegularNorm: kind must be 'group', 'batch' or 'instance', got {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.field_type.check_tensor(x, "RegularNorm input")
        return self.norm(x)


def group_pool(x: torch.Tensor, mode: Literal["max", "mean"] = "mean") -> torch.Tensor:
    """Pool regular features over the group axis: ``[B, C, |G|, H, W] -> [B, C, H, W]`` invariant scalars."""
    if x.ndim != 5:
        raise ValueError(f"group_pool: expected regular features [B, C, |G|, H, W], got {list(x.shape)}")
    if mode == "max":
        return x.amax(dim=2)
    if mode == "mean":
        return x.mean(dim=2)
    raise ValueError(f"group_pool: mode must be 'max' or 'mean', got {mode!r}")


def _check_divisible(x: torch.Tensor, factor: int, what: str) -> None:
    H, W = x.shape[-2:]
    if H % factor or W % factor:
        raise ValueError(
            f"{what}: exact equivariance needs H and W divisible by {factor}, got {H}x{W} "
            f"(use grids whose sides are multiples of 2^levels)"
        )


def spatial_pool(x: torch.Tensor, factor: int = 2, mode: Literal["avg", "max"] = "avg") -> torch.Tensor:
    """Downsample ``[B, ..., H, W]`` by ``factor`` with non-overlapping blocks.

    Blocks of an even grid map onto blocks under rot90 and flips, so this commutes exactly with C4/D4
    (a strided convolution would not: its samples move between even and odd positions). ``"avg"`` is
    linear and suits every field type; ``"max"`` only suits regular features and scalars (it does not
    commute with the sign flips of pseudoscalars and vectors).
    """
    _check_divisible(x, factor, "spatial_pool")
    lead = x.shape[:-2]
    flat = x.reshape(-1, *x.shape[-3:]) if x.ndim > 4 else x
    flat = flat.reshape(flat.shape[0], -1, *x.shape[-2:])
    out = F.avg_pool2d(flat, factor) if mode == "avg" else F.max_pool2d(flat, factor)
    return out.reshape(*lead, *out.shape[-2:])


def upsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling of ``[B, ..., H, W]`` by ``factor`` (commutes exactly with C4/D4)."""
    lead = x.shape[:-2]
    flat = x.reshape(x.shape[0], -1, *x.shape[-2:])
    out = F.interpolate(flat, scale_factor=factor, mode="nearest")
    return out.reshape(*lead, *out.shape[-2:])
