"""Field types: how each block of channels of a planar field transforms under a group.

A field type is a tuple of representations of a :class:`~sim.groups.planar.PlanarGroup`, written like
e3nn's irreps strings: ``"5x pseudoscalar + 1x vector"``. Physical names:

==============  ===============  ====  ==========================================================
name            representation   dim   example
==============  ===============  ====  ==========================================================
scalar          trivial          1     pressure, temperature, a passive tracer
pseudoscalar    sign             1     vorticity ``dv/dx - du/dy`` and its forcing (flips under s)
vector          standard         2     velocity ``(u, v)``, channels in the order (x, y)
regular         regular          |G|   G-CNN features, one value per group element
==============  ===============  ====  ==========================================================

Irreps are named as in :meth:`PlanarGroup.irreps`, e.g. ``"2x irrep(1,1)"``.

Tensor layouts (plain ``torch.Tensor``):

* a field type with no regular part: ``[B, dim, H, W]``;
* an all-regular field type of C fields (G-CNN features): ``[B, C, |G|, H, W]``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from sim.groups.planar import PlanarGroup

__all__ = ["FieldType"]

_PHYSICAL = {"scalar": "trivial", "pseudoscalar": "sign", "vector": "standard", "regular": "regular"}
_TERM = re.compile(r"^\s*(?:(\d+)\s*x\s*)?([A-Za-z_]+(?:\(\s*\d+\s*(?:,\s*\d+\s*)?\))?)\s*$")


@dataclass(frozen=True)
class FieldType:
    """An immutable description of how the channels of a field transform.

    Args:
        group: the planar group.
        reps: one representation name per field, in channel order (``"pseudoscalar"``, ``"vector"``,
            ``"regular"``, ``"trivial"``, ``"irrep(1,1)"``, ...).

    Example:
        >>> t = FieldType.parse(dihedral(4), "4x pseudoscalar + vector")
        >>> t.dim, t.num_fields
        (6, 5)
    """

    group: PlanarGroup
    reps: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "reps", tuple(self.reps))
        if not self.reps:
            raise ValueError(f"FieldType of {self.group}: expected at least one field, got none")
        for r in self.reps:
            self.group.representation(_PHYSICAL.get(r, r))  # raises on an unknown name

    @classmethod
    def parse(cls, group: PlanarGroup, spec: str) -> FieldType:
        """Build from ``"5x pseudoscalar + 1x vector"`` (multiplicities default to 1)."""
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"field type: expected e.g. '5x pseudoscalar + 1x vector', got {spec!r}")
        reps: list[str] = []
        for term in spec.split("+"):
            match = _TERM.match(term)
            if not match:
                raise ValueError(f"field type {spec!r}: cannot read {term.strip()!r}; expected 'Nx name'")
            count = int(match.group(1) or 1)
            if count < 1:
                raise ValueError(f"field type {spec!r}: multiplicities must be >= 1, got {term.strip()!r}")
            reps += [re.sub(r"\s+", "", match.group(2))] * count
        return cls(group, tuple(reps))

    @classmethod
    def regular_fields(cls, group: PlanarGroup, channels: int) -> FieldType:
        """``channels`` regular fields: the G-CNN feature type."""
        return cls(group, ("regular",) * channels)

    def __str__(self) -> str:
        parts: list[str] = []
        for r in self.reps:
            if parts and parts[-1][1] == r:
                parts[-1] = (parts[-1][0] + 1, r)
            else:
                parts.append((1, r))
        return " + ".join(f"{n}x {r}" for n, r in parts) + f" of {self.group.name}"

    # ------------------------------------------------------------------------------------------------
    @property
    def num_fields(self) -> int:
        return len(self.reps)

    @property
    def dim(self) -> int:
        """Total number of channels."""
        return self.slices()[-1].stop

    @property
    def is_regular(self) -> bool:
        """All fields regular: the tensor layout is ``[B, C, |G|, H, W]``."""
        return bool(self.reps) and all(r == "regular" for r in self.reps)

    @property
    def has_regular(self) -> bool:
        return "regular" in self.reps

    def channel_shape(self) -> tuple[int, ...]:
        """Shape of the channel axes: ``(C, |G|)`` for regular types, ``(dim,)`` otherwise."""
        if self.is_regular:
            return (self.num_fields, self.group.order)
        if self.has_regular:
            raise ValueError(f"{self}: mixing regular and other fields has no tensor layout; split the type")
        return (self.dim,)

    def slices(self) -> list[slice]:
        """The channel range of each field, in order (for non-regular layouts ``[B, dim, H, W]``)."""
        out, start = [], 0
        for r in self.reps:
            d = self.group.representation(_PHYSICAL.get(r, r)).shape[-1]
            out.append(slice(start, start + d))
            start += d
        return out

    def matrices(self) -> np.ndarray:
        """``[|G|, dim, dim]``: the block-diagonal representation on all channels, per element."""
        return _block_diagonal(self.group, self.reps)

    def invariant_projector(self) -> np.ndarray:
        """``[dim, dim]``: the average of the representation over the group, projecting onto the
        channel vectors every element leaves unchanged (where a bias may live)."""
        return self.matrices().mean(axis=0)

    def check_tensor(self, x, what: str = "input") -> None:
        """Raise a one-line ValueError unless ``x`` has this type's layout ``[B, *channel_shape, H, W]``."""
        shape = self.channel_shape()
        if x.ndim != 2 + len(shape) + 1 or tuple(x.shape[1 : 1 + len(shape)]) != shape:
            layout = "[B, C, |G|, H, W]" if self.is_regular else "[B, dim, H, W]"
            expected = "[B, " + ", ".join(str(s) for s in shape) + ", H, W]"
            raise ValueError(f"{what}: expected {expected} for {self} (layout {layout}), got {list(x.shape)}")


@functools.cache
def _block_diagonal(group: PlanarGroup, reps: tuple[str, ...]) -> np.ndarray:
    blocks = [group.representation(_PHYSICAL.get(r, r)) for r in reps]
    dim = sum(b.shape[-1] for b in blocks)
    out = np.zeros((group.order, dim, dim))
    i = 0
    for b in blocks:
        d = b.shape[-1]
        out[:, i : i + d, i : i + d] = b
        i += d
    out.setflags(write=False)
    return out
