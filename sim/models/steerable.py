"""A steerable ResNet for planar fields: SO(2)/O(2) irreps features built from ``SteerableConv2d``.

The model maps physical fields to physical fields, ``[B, in_channels, H, W] -> [B, out_channels, H, W]``,
like the G-CNNs of :mod:`sim.models.gcnn`, and is built by ``sim.build_model`` from the same configs
(``name: steerable_resnet``, ``group: O2`` or ``SO2``). Field words map to irreps (see
:mod:`sim.groups.o2`, docs/conventions.md):

============  ==========  ========  ==================================================================
word          O(2)        SO(2)     channels
============  ==========  ========  ==================================================================
scalar        ``0+``      ``0``     1
pseudoscalar  ``0-``      ``0``     1 (vorticity, its forcing: flips sign under the mirror)
vector        ``1``       ``1``     2, in the order (x, y) = (u, v), x the last grid axis
============  ==========  ========  ==================================================================

An irreps string of the group (``"5x0- + 1x1"``) is accepted as well.

Inside, features are irreps fields ``[B, dim, H, W]`` of the **hidden type** ``hidden x (0+ + 0- + 1 +
... + L)`` (O(2); ``hidden x (0 + 1 + ... + L)`` for SO(2)), ``L = max_frequency``:

* **stem** ``conv(in_type -> R)``, a :class:`~sim.nn.NormNonlinearity`, then ``conv(R -> hidden +
  gates)`` and a :class:`~sim.nn.GatedNonlinearity`. ``R`` is the part of the hidden type that a linear
  map can reach from the input: no equivariant kernel turns pseudoscalars into scalars, so from
  ``5x pseudoscalar`` the first conv makes ``hidden x (0- + 1 + ... + L)`` and the gates (scalars) come
  from the second;
* **trunk** of residual blocks ``x + conv(gate(conv(norm(x))))``, the first conv producing the hidden
  type followed by one scalar gate per non-scalar field;
* **projection** ``conv(hidden -> out_type)`` after a last norm.

``norm`` is :class:`~sim.nn.SteerableBatchNorm` (``"batch"``), :class:`~sim.nn.SteerableGroupNorm`
(``"group"``, per sample) or none. Scalars go through
``activation``; every non-scalar field is multiplied by the sigmoid of its gate (the norm nonlinearity of
the stem uses ``activation`` on the shifted norms).

**Symmetry.** Kernels are sampled on the pixel grid, so the model is exactly equivariant under D4 (C4
for SO(2)), the rotations by 90 degrees and the mirrors, and approximately under other angles (the
error depends on the input's smoothness; see tests/models/test_steerable_resnet.py). ``in_type`` and
``out_type`` are the D4 (C4) restrictions as :class:`~sim.groups.FieldType` (``5x pseudoscalar``, ...),
which the equivariance kit, the Stepper and the training engine use; ``in_irreps`` / ``out_irreps`` are
the continuous-group types (for :func:`sim.testing.equivariance_errors_vs_angle`).
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import torch
from torch import nn

from sim.groups.fields import FieldType
from sim.groups.o2 import Irreps
from sim.groups.planar import PlanarGroup, cyclic, dihedral
from sim.models._common import _check_choice, _check_input, _check_int
from sim.nn.steerable import (
    GatedNonlinearity,
    NormNonlinearity,
    SteerableBatchNorm,
    SteerableConv2d,
    SteerableGroupNorm,
    kernel_basis,
    ring_bandlimit,
)

__all__ = ["SteerableResNet", "parse_steerable_fields", "steerable_planar_group"]

ContinuousGroup = Literal["O2", "SO2"]
_WORDS = {"O2": {"scalar": (0, 1), "pseudoscalar": (0, -1), "vector": (1, 1)}}
_WORDS["SO2"] = {"scalar": (0, 1), "pseudoscalar": (0, 1), "vector": (1, 1)}
_WORD_TERM = re.compile(r"^\s*(?:(\d+)\s*x\s*)?([a-z]+)\s*$")


def steerable_planar_group(group: str) -> PlanarGroup:
    """The planar group a steerable model is exact under: D4 for ``"O2"``, C4 for ``"SO2"``.

    Raises:
        ValueError: another name.
    """
    key = str(group).upper()
    if key == "O2":
        return dihedral(4)
    if key == "SO2":
        return cyclic(4)
    raise ValueError(f"steerable group: expected 'O2' or 'SO2', got {group!r}")


def parse_steerable_fields(group: str, spec: str) -> tuple[Irreps, FieldType]:
    """A field spec of physical words or irreps as (continuous type, its D4/C4 restriction).

    Args:
        group: ``"O2"`` or ``"SO2"``.
        spec: ``"5x pseudoscalar + 1x vector"`` (words ``scalar``, ``pseudoscalar``, ``vector``) or an
            irreps string of ``group`` (``"5x0- + 1"``).

    Returns:
        ``(irreps, field_type)``: the :class:`~sim.groups.o2.Irreps` and the :class:`~sim.groups.FieldType`
        of D4 (O2) / C4 (SO2) with the same matrices at the group's elements (named with the physical
        words when ``spec`` uses them).

    Raises:
        ValueError: one line: an unknown word, a bad irreps string, or an irreps type that has no named
            FieldType on the planar group.
    """
    planar = steerable_planar_group(group)
    group = str(group).upper()
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"fields of {group}: expected e.g. '5x pseudoscalar + 1x vector', got {spec!r}")
    terms = [_WORD_TERM.match(t) for t in spec.split("+")]
    if all(terms):  # physical words
        fields: list[tuple[int, int]] = []
        for m in terms:
            mult, word = int(m.group(1) or 1), m.group(2)
            if word not in _WORDS[group]:
                raise ValueError(
                    f"fields {spec!r} of {group}: unknown field {word!r}; expected scalar, pseudoscalar, "
                    "vector or an irreps string like '5x0- + 1'"
                )
            if mult < 1:
                raise ValueError(f"fields {spec!r}: multiplicity must be >= 1, got {mult}")
            fields += [_WORDS[group][word]] * mult
        irreps = Irreps(group, tuple(fields))
        field_type = FieldType.parse(planar, spec)
    else:
        irreps = Irreps.parse(group, spec)
        field_type = irreps.to_fieldtype(planar)
    assert np.abs(field_type.matrices() - irreps.restrict(planar).matrices()).max() < 1e-12
    return irreps, field_type


def _hidden_block(group: str, max_frequency: int) -> tuple[tuple[int, int], ...]:
    """One copy of the hidden irreps: ``0+, 0-, 1, ..., L`` (O2) or ``0, 1, ..., L`` (SO2)."""
    low = ((0, 1), (0, -1)) if group == "O2" else ((0, 1),)
    return low + tuple((k, 1) for k in range(1, max_frequency + 1))


def _reachable(in_type: Irreps, target: Irreps, kernel_size: int) -> Irreps:
    """The fields of ``target`` that some equivariant kernel maps ``in_type`` to (order kept)."""
    half = (kernel_size - 1) // 2
    rings = tuple(float(r) for r in range(half + 1))
    sigmas = tuple(0.005 if r == 0 else 0.4 if r == half else 0.6 for r in rings)
    top = max(ring_bandlimit(r) for r in rings)
    kinds = set(in_type.fields)

    def ok(f):
        return any(kernel_basis(in_type.group, f, k, kernel_size, rings, sigmas, top).shape[0] for k in kinds)

    return Irreps(target.group, tuple(f for f in target.fields if ok(f)))


def _norm(irreps: Irreps, kind: str) -> nn.Module:
    if kind == "batch":
        return SteerableBatchNorm(irreps)
    if kind == "group":
        return SteerableGroupNorm(irreps)
    return nn.Identity()


class _Block(nn.Module):
    """``x + conv(gate(conv(norm(x))))`` on the hidden type."""

    def __init__(self, hidden: Irreps, *, kernel_size: int, padding: str, norm: str, activation: str):
        super().__init__()
        gated = GatedNonlinearity.gated_type(hidden)
        self.norm = _norm(hidden, norm)
        self.conv1 = SteerableConv2d(hidden, gated, kernel_size, padding=padding)
        self.gate = GatedNonlinearity(gated, scalar_function=activation)
        self.conv2 = SteerableConv2d(hidden, hidden, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.gate(self.conv1(self.norm(x))))


class SteerableResNet(nn.Module):
    """Steerable residual network (O(2) or SO(2) irreps features): stem, residual blocks, projection.

    Args:
        in_fields: input fields, e.g. ``"5x pseudoscalar"`` (4 vorticity frames and the forcing), or an
            irreps string of ``group``.
        out_fields: output fields, e.g. ``"1x pseudoscalar"`` (vorticity) or ``"1x vector"`` (velocity
            ``(u, v)``, channels in the order (x, y), x the last grid axis).
        hidden: copies of the hidden block ``0+ + 0- + 1 + ... + L`` (O2), ``0 + 1 + ... + L`` (SO2).
        blocks: residual blocks (two convolutions each).
        kernel_size: odd, ``>= 3``; rings at radii ``0, 1, ..., (kernel_size - 1) / 2`` carry angular
            frequencies up to ``2 r`` (5 resolves every coupling of frequencies up to 2).
        padding: ``"circular"`` for periodic domains, ``"zeros"`` for bounded ones.
        group: ``"O2"`` (exact under D4) or ``"SO2"`` (exact under C4).
        max_frequency: ``L``, the highest frequency of the hidden fields (``>= 1``).
        norm: ``"batch"`` (:class:`~sim.nn.SteerableBatchNorm`), ``"group"``
            (:class:`~sim.nn.SteerableGroupNorm`) or ``"none"``.
        activation: function of the scalar fields and the stem's norms: ``"gelu"``, ``"relu"``, ``"silu"``.

    Attributes:
        in_type, out_type: :class:`~sim.groups.FieldType` of D4 (C4): the restrictions the model is exact
            under. in_irreps, out_irreps: the :class:`~sim.groups.o2.Irreps`. hidden_irreps: the hidden
            type. in_channels, out_channels: the dims. planar_group: D4 or C4.

    Shapes:
        ``[B, in_channels, H, W] -> [B, out_channels, H, W]``.

    Raises:
        ValueError: one line: an unknown field word or group, bad sizes or options; in ``forward``, an
            input without ``in_channels`` channels.

    Example:
        >>> model = SteerableResNet(in_fields="5x pseudoscalar", out_fields="1x vector", hidden=4, blocks=2)
        >>> model(torch.randn(2, 5, 32, 32)).shape
        torch.Size([2, 2, 32, 32])
    """

    def __init__(
        self,
        *,
        in_fields: str,
        out_fields: str,
        hidden: int = 4,
        blocks: int = 3,
        kernel_size: int = 5,
        padding: Literal["circular", "zeros"] = "circular",
        group: ContinuousGroup = "O2",
        max_frequency: int = 2,
        norm: Literal["batch", "group", "none"] = "none",
        activation: Literal["gelu", "relu", "silu"] = "gelu",
    ):
        super().__init__()
        what = type(self).__name__
        try:
            self.planar_group = steerable_planar_group(group)
            group = str(group).upper()
            self.in_irreps, self.in_type = parse_steerable_fields(group, in_fields)
            self.out_irreps, self.out_type = parse_steerable_fields(group, out_fields)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
        _check_int(hidden, what=what, arg="hidden", minimum=1)
        _check_int(blocks, what=what, arg="blocks", minimum=0)
        _check_int(max_frequency, what=what, arg="max_frequency", minimum=1)
        _check_choice(padding, ("circular", "zeros"), what=what, arg="padding")
        _check_choice(norm, ("batch", "group", "none"), what=what, arg="norm")
        _check_choice(activation, ("gelu", "relu", "silu"), what=what, arg="activation")
        odd = isinstance(kernel_size, int) and not isinstance(kernel_size, bool) and kernel_size % 2 == 1
        if not odd or kernel_size < 3:
            raise ValueError(f"{what}: kernel_size must be an odd int >= 3, got {kernel_size!r}")
        self.group, self.hidden, self.blocks, self.max_frequency = group, hidden, blocks, max_frequency
        self.kernel_size, self.padding, self.norm, self.activation = kernel_size, padding, norm, activation
        self.in_channels, self.out_channels = self.in_type.dim, self.out_type.dim
        self.hidden_irreps = Irreps(group, _hidden_block(group, max_frequency) * hidden)
        conv = {"kernel_size": kernel_size, "padding": padding}

        stem_type = _reachable(self.in_irreps, self.hidden_irreps, kernel_size)  # [B, dim_R, H, W]
        gated = GatedNonlinearity.gated_type(self.hidden_irreps)
        self.stem = nn.Sequential(
            SteerableConv2d(self.in_irreps, stem_type, **conv),
            NormNonlinearity(stem_type, function=activation, scalar_function=activation),
            SteerableConv2d(stem_type, gated, **conv),
            GatedNonlinearity(gated, scalar_function=activation),
        )
        self.trunk = nn.Sequential(
            *(
                _Block(self.hidden_irreps, norm=norm, activation=activation, **conv)  # type: ignore[arg-type]
                for _ in range(blocks)
            )
        )
        self.out_norm = _norm(self.hidden_irreps, norm)
        self.project = SteerableConv2d(self.hidden_irreps, self.out_irreps, **conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W] -> [B, out_channels, H, W]``."""
        _check_input(self, x)
        h = self.stem(x)  # [B, hidden_irreps.dim, H, W]
        h = self.trunk(h)
        return self.project(self.out_norm(h))  # [B, out_channels, H, W]

    def extra_repr(self) -> str:
        return f"{self.in_irreps} -> {self.out_irreps}, hidden {self.hidden_irreps}"
