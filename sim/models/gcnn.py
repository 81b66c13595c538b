"""Group-equivariant CNNs for planar fields: a residual network and a U-Net built from ``GroupConv2d``.

Both map physical fields to physical fields, ``[B, in_channels, H, W] -> [B, out_channels, H, W]``, with
field types given as strings (``in_fields="5x pseudoscalar"``: four vorticity frames and the forcing).
Inside, features are ``hidden`` regular fields, laid out ``[B, C, |G|, H, W]``:

* **lift** ``GroupConv2d(in_type -> C regular)``;
* **trunk** of pre-activation residual blocks ``x + conv(act(norm(conv(act(norm(x))))))``;
* **projection** ``GroupConv2d(C regular -> out_type)`` after a last norm and activation.

Every piece commutes exactly with the group for C_N/D_N with ``N`` in {1, 2, 4} (C4 = P4, D4 = P4M):

* group convolutions with odd kernels and circular or zero padding;
* :class:`~sim.nn.RegularNorm` (``nn.GroupNorm(groups, C)`` on the 5D tensor, or ``nn.BatchNorm3d(C)``)
  normalises over whole fields (groups of fields times all of ``|G|, H, W``), which the group only
  permutes, with one affine pair per field;
* pointwise activations, which commute with the permutations of the regular representation;
* in the U-Net, ``spatial_pool`` (2x2 blocks) and nearest ``upsample``, exact on grids whose sides are
  multiples of ``2**levels``, and concatenation along the field axis ``C``.

The trunks (in :mod:`sim.models._common`) are generic over how a layer is made, so the plain-CNN
baselines in :mod:`sim.models.cnn` share them block for block.
"""

from __future__ import annotations

import torch
from torch import nn

from sim.groups.fields import FieldType
from sim.groups.planar import PlanarGroup
from sim.models._common import (
    _ACTIVATIONS,
    Activation,
    Norm,
    Padding,
    _as_group,
    _check_common,
    _check_divisible,
    _check_input,
    _check_int,
    _Layers,
    _num_groups,
    _physical_type,
    _ResNetTrunk,
    _UNetTrunk,
)
from sim.nn.gconv import GroupConv2d, RegularNorm

__all__ = ["GCNNResNet", "GCNNUNet"]


def _gcnn_layers(
    group: PlanarGroup,
    *,
    kernel_size: int,
    padding: Padding,
    norm: Norm,
    norm_groups: int,
    activation: Activation,
) -> _Layers:
    """Layers on regular fields ``[B, C, |G|, H, W]``: GroupConv2d and RegularNorm."""

    def conv(c_in: int, c_out: int) -> nn.Module:
        return GroupConv2d(
            FieldType.regular_fields(group, c_in),
            FieldType.regular_fields(group, c_out),
            kernel_size,
            padding=padding,
        )

    def make_norm(channels: int) -> nn.Module:
        if norm == "none":
            return nn.Identity()
        regular = FieldType.regular_fields(group, channels)
        return RegularNorm(regular, norm, groups=_num_groups(channels, norm_groups))

    return _Layers(conv=conv, norm=make_norm, act=_ACTIVATIONS[activation])


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


class _GCNNBase(nn.Module):
    """Shared set-up: group, field types, lift and projection convolutions."""

    def __init__(
        self,
        group: PlanarGroup | str,
        *,
        in_fields: str,
        out_fields: str,
        hidden: int,
        blocks: int,
        kernel_size: int,
        padding: Padding,
        norm: Norm,
        norm_groups: int,
        activation: Activation,
    ):
        super().__init__()
        what = type(self).__name__
        group = _as_group(group, what)
        if not group.exact_on_grid:
            raise ValueError(
                f"{what}: expected a group acting exactly on the grid (C_N or D_N with N in 1, 2, 4; "
                f"P4 = C4, P4M = D4), got {group.name}"
            )
        _check_common(
            what=what,
            kernel_size=kernel_size,
            padding=padding,
            norm=norm,
            norm_groups=norm_groups,
            activation=activation,
            blocks=blocks,
        )
        _check_int(hidden, what=what, arg="hidden", minimum=1)
        self.group = group
        self.in_type = _physical_type(group, in_fields, what=what, arg="in_fields")
        self.out_type = _physical_type(group, out_fields, what=what, arg="out_fields")
        self.in_channels, self.out_channels = self.in_type.dim, self.out_type.dim
        self.hidden, self.blocks, self.kernel_size, self.padding = hidden, blocks, kernel_size, padding
        self.norm, self.norm_groups, self.activation = norm, norm_groups, activation

    def _layers(self) -> _Layers:
        return _gcnn_layers(
            self.group,
            kernel_size=self.kernel_size,
            padding=self.padding,
            norm=self.norm,
            norm_groups=self.norm_groups,
            activation=self.activation,
        )

    def _lift(self, width: int) -> GroupConv2d:
        regular = FieldType.regular_fields(self.group, width)
        return GroupConv2d(self.in_type, regular, self.kernel_size, padding=self.padding)

    def _projection(self, width: int) -> GroupConv2d:
        regular = FieldType.regular_fields(self.group, width)
        return GroupConv2d(regular, self.out_type, self.kernel_size, padding=self.padding)

    def extra_repr(self) -> str:
        return f"{self.in_type} -> {self.out_type}"


class GCNNResNet(_GCNNBase):
    """Equivariant residual network: lift, ``blocks`` pre-activation residual blocks, projection.

    Exactly equivariant under ``group`` (C_N/D_N with N in {1, 2, 4}) on any grid, square or not.

    Args:
        group: a :class:`~sim.groups.PlanarGroup` or its name (``"D4"``, ``"P4M"``, ``"C4"``, ``"P4"``).
        in_fields: input field type, e.g. ``"5x pseudoscalar"`` (no regular fields).
        out_fields: output field type, e.g. ``"1x pseudoscalar"`` (no regular fields).
        hidden: regular fields of the hidden features (``hidden * |G|`` channels).
        blocks: residual blocks (two convolutions each).
        kernel_size: odd.
        padding: ``"circular"`` for periodic domains, ``"zeros"`` for bounded ones.
        norm: :class:`~sim.nn.RegularNorm` kind: ``"group"`` (GroupNorm over whole fields), ``"batch"``
            (BatchNorm3d per field), ``"instance"`` (one field per group), or ``"none"``.
        norm_groups: GroupNorm groups: the largest divisor of the width that is at most this (1: one
            group, a layer norm over all features of a sample).
        activation: ``"gelu"``, ``"relu"`` or ``"silu"``.

    Attributes:
        in_type, out_type: the :class:`~sim.groups.FieldType` of input and output.
        in_channels, out_channels: their dims.

    Shapes:
        ``[B, in_channels, H, W] -> [B, out_channels, H, W]``.

    Raises:
        ValueError: an approximate group (C8, ...), regular in/out fields, an even kernel, an unknown
            option; in ``forward``, an input without ``in_channels`` channels.

    Example:
        >>> model = GCNNResNet("P4M", in_fields="5x pseudoscalar", out_fields="1x pseudoscalar", hidden=8)
        >>> model(torch.randn(2, 5, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(
        self,
        group: PlanarGroup | str,
        *,
        in_fields: str,
        out_fields: str,
        hidden: int = 8,
        blocks: int = 4,
        kernel_size: int = 5,
        padding: Padding = "circular",
        norm: Norm = "group",
        norm_groups: int = 1,
        activation: Activation = "gelu",
    ):
        super().__init__(
            group,
            in_fields=in_fields,
            out_fields=out_fields,
            hidden=hidden,
            blocks=blocks,
            kernel_size=kernel_size,
            padding=padding,
            norm=norm,
            norm_groups=norm_groups,
            activation=activation,
        )
        self.lift = self._lift(hidden)
        self.trunk = _ResNetTrunk(self._layers(), width=hidden, blocks=blocks)
        self.project = self._projection(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W] -> [B, out_channels, H, W]``."""
        _check_input(self, x)
        h = self.lift(x)  # [B, hidden, |G|, H, W]
        return self.project(self.trunk(h))


class GCNNUNet(_GCNNBase):
    """Equivariant U-Net: lift, ``levels`` pooled encoder levels, decoder with skips, projection.

    Level ``l`` (grid ``H / 2^l``) has ``hidden * 2**l`` regular fields and ``blocks`` residual blocks in
    the encoder and in the decoder; see :class:`_UNetTrunk`. Exactly equivariant under ``group`` on
    grids whose sides are multiples of ``2**levels``; ``forward`` refuses other grids.

    Args:
        group: a :class:`~sim.groups.PlanarGroup` or its name (``"D4"``, ``"P4M"``, ``"C4"``, ``"P4"``).
        in_fields: input field type, e.g. ``"5x pseudoscalar"`` (no regular fields).
        out_fields: output field type, e.g. ``"1x pseudoscalar"`` (no regular fields).
        hidden: regular fields at the finest level.
        levels: number of 2x downsamplings (``>= 1``).
        blocks: residual blocks per level, in the encoder and in the decoder.
        kernel_size: odd.
        padding: ``"circular"`` for periodic domains, ``"zeros"`` for bounded ones.
        norm: ``"group"``, ``"batch"``, ``"instance"`` or ``"none"`` (as in :class:`GCNNResNet`).
        norm_groups: GroupNorm groups: the largest divisor of the width that is at most this (1: one
            group, a layer norm over all features of a sample).
        activation: ``"gelu"``, ``"relu"`` or ``"silu"``.

    Attributes:
        in_type, out_type, in_channels, out_channels: as in :class:`GCNNResNet`.

    Shapes:
        ``[B, in_channels, H, W] -> [B, out_channels, H, W]`` with ``H, W`` multiples of ``2**levels``.

    Raises:
        ValueError: as :class:`GCNNResNet`; in ``forward`` also a grid not divisible by ``2**levels``.
    """

    def __init__(
        self,
        group: PlanarGroup | str,
        *,
        in_fields: str,
        out_fields: str,
        hidden: int = 8,
        levels: int = 2,
        blocks: int = 1,
        kernel_size: int = 5,
        padding: Padding = "circular",
        norm: Norm = "group",
        norm_groups: int = 1,
        activation: Activation = "gelu",
    ):
        super().__init__(
            group,
            in_fields=in_fields,
            out_fields=out_fields,
            hidden=hidden,
            blocks=blocks,
            kernel_size=kernel_size,
            padding=padding,
            norm=norm,
            norm_groups=norm_groups,
            activation=activation,
        )
        _check_int(levels, what=type(self).__name__, arg="levels", minimum=1)
        self.levels = levels
        self.lift = self._lift(hidden)
        widths = [hidden * 2**level for level in range(levels + 1)]
        self.trunk = _UNetTrunk(self._layers(), widths=widths, blocks=blocks)
        self.project = self._projection(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W] -> [B, out_channels, H, W]``, ``H, W`` multiples of ``2**levels``."""
        _check_input(self, x)
        _check_divisible(self, x, self.levels, self.kernel_size // 2 if self.padding == "circular" else 0)
        h = self.lift(x)  # [B, hidden, |G|, H, W]
        return self.project(self.trunk(h))
