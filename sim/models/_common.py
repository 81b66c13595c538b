"""Pieces shared by the G-CNNs (:mod:`sim.models.gcnn`) and their plain-CNN twins (:mod:`sim.models.cnn`):
argument checks and the residual / U-Net trunks, generic over how a layer is made (:class:`_Layers`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sim.groups.fields import FieldType
from sim.groups.planar import PlanarGroup, group_from_name
from sim.nn.gconv import spatial_pool, upsample

Padding = Literal["circular", "zeros"]
Norm = Literal["group", "batch", "instance", "none"]
Activation = Literal["gelu", "relu", "silu"]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


# --------------------------------------------------------------------------------------------------
# Argument checks shared with sim.models.cnn
# --------------------------------------------------------------------------------------------------


def _as_group(group: PlanarGroup | str, what: str) -> PlanarGroup:
    """A PlanarGroup from itself or a name (``"D4"``, ``"P4M"``, ...)."""
    if isinstance(group, PlanarGroup):
        return group
    if isinstance(group, str):
        try:
            return group_from_name(group)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
    raise TypeError(f"{what}: group must be a PlanarGroup or a name like 'D4', got {type(group).__name__}")


def _physical_type(group: PlanarGroup, spec: str, *, what: str, arg: str) -> FieldType:
    """Parse a field-type string that models take or return: physical fields, never regular ones."""
    try:
        field_type = FieldType.parse(group, spec)
    except ValueError as err:
        raise ValueError(f"{what}: {arg}: {err}") from None
    if field_type.has_regular:
        raise ValueError(
            f"{what}: {arg} must be physical fields (scalar, pseudoscalar, vector, irreps); regular fields "
            f"are internal G-CNN features, got {spec!r}"
        )
    return field_type


def _check_int(value: int, *, what: str, arg: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what}: {arg} must be an int >= {minimum}, got {value!r}")


def _check_choice(value: str, choices: Sequence[str], *, what: str, arg: str) -> None:
    if value not in choices:
        raise ValueError(f"{what}: {arg} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_common(
    *,
    what: str,
    kernel_size: int,
    padding: str,
    norm: str,
    norm_groups: int,
    activation: str,
    blocks: int,
) -> None:
    """Validate the arguments every model of this module and of ``sim.models.cnn`` shares."""
    odd = isinstance(kernel_size, int) and not isinstance(kernel_size, bool) and kernel_size % 2 == 1
    if not (odd and kernel_size >= 1):
        raise ValueError(f"{what}: kernel_size must be an odd int >= 1 (a centre pixel), got {kernel_size!r}")
    _check_choice(padding, ("circular", "zeros"), what=what, arg="padding")
    _check_choice(norm, ("group", "batch", "instance", "none"), what=what, arg="norm")
    _check_choice(activation, tuple(_ACTIVATIONS), what=what, arg="activation")
    _check_int(norm_groups, what=what, arg="norm_groups", minimum=1)
    _check_int(blocks, what=what, arg="blocks", minimum=0)


def _num_groups(channels: int, most: int) -> int:
    """The largest divisor of ``channels`` that is at most ``most``: the number of GroupNorm groups."""
    return max(d for d in range(1, min(channels, most) + 1) if channels % d == 0)


def _check_input(model: nn.Module, x: torch.Tensor) -> None:
    """One-line ValueError unless ``x`` is ``[B, model.in_channels, H, W]``."""
    if x.ndim != 4 or x.shape[1] != model.in_channels:
        raise ValueError(
            f"{type(model).__name__}: expected input [B, {model.in_channels}, H, W] ({model.in_type}), "
            f"got {list(x.shape)}"
        )


def _check_divisible(model: nn.Module, x: torch.Tensor, levels: int, pad: int) -> None:
    """One-line ValueError unless H and W are multiples of ``2**levels`` (and large enough to pad)."""
    H, W = x.shape[-2:]
    factor = 2**levels
    if H % factor or W % factor:
        raise ValueError(
            f"{type(model).__name__}: expected H and W divisible by 2**levels = {factor} (levels={levels}), "
            f"got {H}x{W}"
        )
    if pad > min(H, W) // factor:
        raise ValueError(
            f"{type(model).__name__}: circular padding {pad} at the coarsest level needs H and W >= "
            f"{pad * factor}, got {H}x{W}"
        )


# --------------------------------------------------------------------------------------------------
# Generic trunks: blocks made by a _Layers recipe (regular G-CNN fields here, plain channels in cnn.py)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layers:
    """How a trunk makes its layers; widths count feature fields (regular fields, or plain channels).

    Attributes:
        conv: ``(in_width, out_width) -> module`` keeping ``H, W`` (odd kernel, same padding).
        norm: ``width -> module``.
        act: ``() -> module``, pointwise.
    """

    conv: Callable[[int, int], nn.Module]
    norm: Callable[[int], nn.Module]
    act: Callable[[], nn.Module]

    def pre_act_conv(self, in_width: int, out_width: int) -> nn.Sequential:
        """norm -> activation -> conv."""
        return nn.Sequential(self.norm(in_width), self.act(), self.conv(in_width, out_width))


class _ResidualBlock(nn.Module):
    """``x + conv(act(norm(conv(act(norm(x))))))``; ``[B, width, ...] -> [B, width, ...]``."""

    def __init__(self, layers: _Layers, width: int):
        super().__init__()
        self.branch = nn.Sequential(layers.pre_act_conv(width, width), layers.pre_act_conv(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class _ResNetTrunk(nn.Module):
    """``blocks`` residual blocks at one width, then norm and activation (ready for a projection)."""

    def __init__(self, layers: _Layers, *, width: int, blocks: int):
        super().__init__()
        self.blocks = nn.Sequential(*(_ResidualBlock(layers, width) for _ in range(blocks)))
        self.out = nn.Sequential(layers.norm(width), layers.act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(x))


class _UNetTrunk(nn.Module):
    """Encoder-decoder over ``len(widths)`` resolutions, halving the grid between them.

    Encoder level ``l > 0``: ``spatial_pool`` (2x2 average), a pre-activation conv from ``widths[l-1]``
    to ``widths[l]``, ``blocks`` residual blocks. Decoder level ``l`` (coarse to fine): nearest
    ``upsample``, concatenation with the encoder's output at level ``l`` along axis 1 (the field axis
    ``C``), a pre-activation conv to ``widths[l]``, ``blocks`` residual blocks. Last: norm, activation.
    Features are ``[B, width, ..., H, W]``; ``...`` is the group axis ``|G|`` of regular fields, and
    nothing for plain channels.
    """

    def __init__(self, layers: _Layers, *, widths: Sequence[int], blocks: int):
        super().__init__()
        widths = list(widths)

        def stage(width: int) -> nn.Sequential:
            return nn.Sequential(*(_ResidualBlock(layers, width) for _ in range(blocks)))

        self.encoder = nn.ModuleList(stage(w) for w in widths)
        pairs = list(zip(widths[:-1], widths[1:], strict=True))  # (fine, coarse) neighbours
        self.down = nn.ModuleList(layers.pre_act_conv(fine, coarse) for fine, coarse in pairs)
        self.merge = nn.ModuleList(layers.pre_act_conv(coarse + fine, fine) for fine, coarse in pairs)
        self.decoder = nn.ModuleList(stage(w) for w in widths[:-1])
        self.out = nn.Sequential(layers.norm(widths[0]), layers.act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x  # [B, widths[0], ..., H, W]
        for level, stage in enumerate(self.encoder):
            if level:
                h = self.down[level - 1](spatial_pool(h, 2))  # [B, widths[level], ..., H/2^l, W/2^l]
            h = stage(h)
            skips.append(h)
        for level in reversed(range(len(self.decoder))):
            h = torch.cat([upsample(h, 2), skips[level]], dim=1)  # [B, widths[level+1] + widths[level], ...]
            h = self.decoder[level](self.merge[level](h))  # [B, widths[level], ..., H/2^l, W/2^l]
        return self.out(h)
