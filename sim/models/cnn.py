"""Plain (non-equivariant) CNN baselines with the same blocks as the G-CNNs, and parameter matching.

:class:`CNNResNet` and :class:`CNNUNet` are :class:`~sim.models.gcnn.GCNNResNet` and
:class:`~sim.models.gcnn.GCNNUNet` with every ``GroupConv2d`` replaced by an ``nn.Conv2d`` (circular or
zero padding) and the norms by their 2D versions, on features ``[B, width, H, W]``. They carry
``in_type``/``out_type`` for a declared group (default D4) so that the equivariance kit can test them:
they are *not* equivariant, which is the point of the comparison.

A fair comparison holds the parameter count fixed: :func:`match_width` picks the CNN width whose count
is closest to a G-CNN's (for D4 about ``sqrt(8) = 2.8`` times the G-CNN's ``hidden``, since a
regular-to-regular group conv has ``|G|`` times the weights of a plain conv with as many fields).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

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

__all__ = ["CNNResNet", "CNNUNet", "count_parameters", "match_width"]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable real parameters (a complex weight counts twice, as in FNO's spectral layers)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters() if p.requires_grad)


def match_width(build: Callable[[int], nn.Module], target: int, *, max_width: int = 4096) -> int:
    """The width whose model has the parameter count closest to ``target`` (the smaller on a tie).

    Args:
        build: ``width -> model``; its parameter count must grow with the width. Candidates are built on
            the meta device (no memory, no initialisation), so ``build`` must only construct modules.
        target: the parameter count to match, e.g. ``count_parameters(gcnn)``.
        max_width: the largest width tried.

    Returns:
        The width, in ``[1, max_width]``.

    Raises:
        ValueError: ``target < 1``, or even ``max_width`` gives fewer parameters than ``target``.

    Example:
        >>> width = match_width(lambda w: CNNResNet(in_fields="5x pseudoscalar",
        ...                                         out_fields="1x pseudoscalar", width=w), 100_000)
    """
    _check_int(target, what="match_width", arg="target", minimum=1)

    def count(width: int) -> int:
        with torch.device("meta"):
            return count_parameters(build(width))

    if count(max_width) < target:
        raise ValueError(
            f"match_width: expected a target reachable with width <= {max_width} "
            f"({count(max_width)} parameters), got {target}"
        )
    lo, hi = 1, max_width  # invariant: the first width with count >= target lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    if lo > 1 and target - count(lo - 1) <= count(lo) - target:
        return lo - 1
    return lo


def _cnn_layers(*, kernel_size: int, padding: Padding, norm: Norm, norm_groups: int, activation: Activation):
    """Layers on plain features ``[B, C, H, W]``: Conv2d (same size), the 2D analogues of RegularNorm."""

    def conv(c_in: int, c_out: int) -> nn.Module:
        return nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, padding_mode=padding)

    def make_norm(channels: int) -> nn.Module:
        if norm == "group":
            return nn.GroupNorm(_num_groups(channels, norm_groups), channels)
        if norm == "instance":
            return nn.GroupNorm(channels, channels)
        if norm == "batch":
            return nn.BatchNorm2d(channels)
        return nn.Identity()

    return _Layers(conv=conv, norm=make_norm, act=_ACTIVATIONS[activation])


class _CNNBase(nn.Module):
    """Shared set-up: declared field types, lift and projection convolutions."""

    def __init__(
        self,
        *,
        in_fields: str,
        out_fields: str,
        width: int,
        blocks: int,
        kernel_size: int,
        padding: Padding,
        norm: Norm,
        norm_groups: int,
        activation: Activation,
        group: PlanarGroup | str,
    ):
        super().__init__()
        what = type(self).__name__
        group = _as_group(group, what)
        _check_common(
            what=what,
            kernel_size=kernel_size,
            padding=padding,
            norm=norm,
            norm_groups=norm_groups,
            activation=activation,
            blocks=blocks,
        )
        _check_int(width, what=what, arg="width", minimum=1)
        self.group = group
        self.in_type = _physical_type(group, in_fields, what=what, arg="in_fields")
        self.out_type = _physical_type(group, out_fields, what=what, arg="out_fields")
        self.in_channels, self.out_channels = self.in_type.dim, self.out_type.dim
        self.width, self.blocks, self.kernel_size, self.padding = width, blocks, kernel_size, padding
        self.norm, self.norm_groups, self.activation = norm, norm_groups, activation

    def _layers(self) -> _Layers:
        return _cnn_layers(
            kernel_size=self.kernel_size,
            padding=self.padding,
            norm=self.norm,
            norm_groups=self.norm_groups,
            activation=self.activation,
        )

    def extra_repr(self) -> str:
        return f"{self.in_type} -> {self.out_type} (declared; not equivariant)"


class CNNResNet(_CNNBase):
    """Plain residual CNN, block for block :class:`~sim.models.gcnn.GCNNResNet` with ``nn.Conv2d``.

    Args:
        in_fields: input field type, e.g. ``"5x pseudoscalar"`` (sets ``in_channels``; no regular fields).
        out_fields: output field type, e.g. ``"1x pseudoscalar"``.
        width: hidden channels (see :func:`match_width` to match a G-CNN's parameter count).
        blocks: residual blocks (two convolutions each).
        kernel_size: odd.
        padding: ``"circular"`` for periodic domains, ``"zeros"`` for bounded ones.
        norm: ``"group"`` (GroupNorm), ``"batch"`` (BatchNorm2d), ``"instance"`` (GroupNorm with one
            channel per group) or ``"none"``.
        norm_groups: GroupNorm groups: the largest divisor of the width that is at most this (1: one
            group, a layer norm over all features of a sample).
        activation: ``"gelu"``, ``"relu"`` or ``"silu"``.
        group: the group the field types are declared under (for tests; the network ignores it).

    Attributes:
        in_type, out_type: declared :class:`~sim.groups.FieldType` of input and output.
        in_channels, out_channels: their dims.

    Shapes:
        ``[B, in_channels, H, W] -> [B, out_channels, H, W]``.

    Raises:
        ValueError: regular in/out fields, an even kernel, an unknown option; in ``forward``, an input
            without ``in_channels`` channels.
    """

    def __init__(
        self,
        *,
        in_fields: str,
        out_fields: str,
        width: int,
        blocks: int = 4,
        kernel_size: int = 5,
        padding: Padding = "circular",
        norm: Norm = "group",
        norm_groups: int = 1,
        activation: Activation = "gelu",
        group: PlanarGroup | str = "D4",
    ):
        super().__init__(
            in_fields=in_fields,
            out_fields=out_fields,
            width=width,
            blocks=blocks,
            kernel_size=kernel_size,
            padding=padding,
            norm=norm,
            norm_groups=norm_groups,
            activation=activation,
            group=group,
        )
        layers = self._layers()
        self.lift = layers.conv(self.in_channels, width)
        self.trunk = _ResNetTrunk(layers, width=width, blocks=blocks)
        self.project = layers.conv(width, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W] -> [B, out_channels, H, W]``."""
        _check_input(self, x)
        h = self.lift(x)  # [B, width, H, W]
        return self.project(self.trunk(h))


class CNNUNet(_CNNBase):
    """Plain U-Net, block for block :class:`~sim.models.gcnn.GCNNUNet` with ``nn.Conv2d``.

    Level ``l`` (grid ``H / 2^l``) has ``width * 2**l`` channels and ``blocks`` residual blocks in the
    encoder and in the decoder; 2x2 average pooling down, nearest upsampling and concatenated skips up.

    Args:
        in_fields: input field type, e.g. ``"5x pseudoscalar"`` (no regular fields).
        out_fields: output field type, e.g. ``"1x pseudoscalar"``.
        width: channels at the finest level.
        levels: number of 2x downsamplings (``>= 1``).
        blocks: residual blocks per level, in the encoder and in the decoder.
        kernel_size: odd.
        padding: ``"circular"`` or ``"zeros"``.
        norm: ``"group"``, ``"batch"``, ``"instance"`` or ``"none"``.
        norm_groups: GroupNorm groups: the largest divisor of the width that is at most this (1: one
            group, a layer norm over all features of a sample).
        activation: ``"gelu"``, ``"relu"`` or ``"silu"``.
        group: the group the field types are declared under (for tests; the network ignores it).

    Attributes:
        in_type, out_type, in_channels, out_channels: as in :class:`CNNResNet`.

    Shapes:
        ``[B, in_channels, H, W] -> [B, out_channels, H, W]`` with ``H, W`` multiples of ``2**levels``.

    Raises:
        ValueError: as :class:`CNNResNet`; in ``forward`` also a grid not divisible by ``2**levels``.
    """

    def __init__(
        self,
        *,
        in_fields: str,
        out_fields: str,
        width: int,
        levels: int = 2,
        blocks: int = 1,
        kernel_size: int = 5,
        padding: Padding = "circular",
        norm: Norm = "group",
        norm_groups: int = 1,
        activation: Activation = "gelu",
        group: PlanarGroup | str = "D4",
    ):
        super().__init__(
            in_fields=in_fields,
            out_fields=out_fields,
            width=width,
            blocks=blocks,
            kernel_size=kernel_size,
            padding=padding,
            norm=norm,
            norm_groups=norm_groups,
            activation=activation,
            group=group,
        )
        _check_int(levels, what=type(self).__name__, arg="levels", minimum=1)
        self.levels = levels
        layers = self._layers()
        self.lift = layers.conv(self.in_channels, width)
        widths = [width * 2**level for level in range(levels + 1)]
        self.trunk = _UNetTrunk(layers, widths=widths, blocks=blocks)
        self.project = layers.conv(width, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W] -> [B, out_channels, H, W]``, ``H, W`` multiples of ``2**levels``."""
        _check_input(self, x)
        _check_divisible(self, x, self.levels, self.kernel_size // 2 if self.padding == "circular" else 0)
        h = self.lift(x)  # [B, width, H, W]
        return self.project(self.trunk(h))
