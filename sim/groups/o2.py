"""Field types made of irreducible representations of SO(2) and O(2): the steerable-CNN feature types.

Conventions (docs/conventions.md): angles are counter-clockwise, from the x axis towards the y axis; the
reflection ``s`` is the mirror ``x -> -x`` (``torch.flip(f, dims=(-1,))``), as in
:mod:`sim.groups.planar`. An element of O(2) is ``r_theta s^m``: first the mirror (if ``m = 1``), then the
rotation by ``theta``. Irreps (all real, orthogonal):

==========  =====  ====  ======================================================  =====================
irrep       group  dim   rho(r_theta s^m)                                        example
==========  =====  ====  ======================================================  =====================
``0``       SO(2)  1     1                                                       scalar
``k``       SO(2)  2     ``R(k theta)``, ``R(a) = [[cos a, -sin a], [sin a, cos a]]``  ``1``: a vector
``0+``      O(2)   1     1                                                       scalar (pressure)
``0-``      O(2)   1     ``(-1)^m``                                              pseudoscalar (vorticity)
``k``       O(2)   2     ``R(k theta) @ diag(-1, 1)^m``                          ``1``: velocity (u, v)
==========  =====  ====  ======================================================  =====================

So frequency 1 is exactly the "standard"/"vector" representation of :class:`PlanarGroup` and ``0-`` its
"sign"/"pseudoscalar" when restricted to C_N / D_N.

**Grammar** of :meth:`Irreps.parse`: terms separated by ``+``, each ``[M x] k[p]`` with a multiplicity
``M >= 1`` (default 1), a frequency ``k >= 0`` and, for O(2) and ``k = 0`` only, a parity ``p`` that
must follow the digit directly: ``+`` (trivial) or ``-`` (sign). Spaces are free elsewhere. Examples:
``"4x0 + 2x1 + 1x2"`` (SO(2)), ``"2x0+ + 1x0- + 3x1"`` (O(2); ``"0++1"`` also reads as ``0+ + 1``).
A bad string is a one-line ``ValueError`` naming the string and the character position.

**Restriction to C_N / D_N** (:meth:`Irreps.restrict`): the matrices ``rho(g)`` at the group's elements
``r^k s^m`` (angle ``2 pi k / N``). SO(2) types restrict to C_N only; O(2) types to C_N or D_N. On C_N a
frequency ``k`` aliases with ``k mod N`` and ``-k mod N``: the restricted representation is still the one
above, which is equivalent (not always equal as matrices) to a C_N irrep. :meth:`Irreps.to_fieldtype`
names it with :class:`~sim.groups.fields.FieldType` representations where the matrices agree exactly
(``k mod N`` in ``{0, N/2}`` or ``k mod N < N/2``); :meth:`Irreps.restrict` works for every ``k``.

Tensor layout: ``[B, dim, H, W]``, the fields' channels in order.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.groups.fields import FieldType
from sim.groups.planar import PlanarGroup

__all__ = ["Irreps", "RestrictedIrreps"]

GroupName = Literal["SO2", "O2"]
_TERM = re.compile(r"\s*(?:(\d+)\s*x\s*)?(\d+)")


@dataclass(frozen=True)
class Irreps:
    """An immutable list of SO(2) or O(2) irreps, one per field, in channel order.

    Args:
        group: ``"SO2"`` or ``"O2"``.
        fields: one ``(k, p)`` per field: frequency ``k >= 0`` and parity ``p`` (``+1``, or ``-1`` for the
            O(2) sign irrep ``0-``; always ``+1`` for SO(2) and for ``k >= 1``).

    Example:
        >>> t = Irreps.parse("O2", "2x0+ + 0- + 3x1")
        >>> t.dim, t.num_fields, str(t)
        (9, 6, '2x0+ + 1x0- + 3x1 of O2')
    """

    group: GroupName
    fields: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if self.group not in ("SO2", "O2"):
            raise ValueError(f"Irreps: group must be 'SO2' or 'O2', got {self.group!r}")
        fields = tuple((int(k), int(p)) for k, p in self.fields)
        object.__setattr__(self, "fields", fields)
        if not fields:
            raise ValueError(f"Irreps of {self.group}: expected at least one field, got none")
        for k, p in fields:
            if k < 0 or p not in (1, -1) or (p == -1 and (k > 0 or self.group == "SO2")):
                raise ValueError(f"Irreps of {self.group}: no irrep with frequency {k} and parity {p:+d}")

    # ------------------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, group: GroupName, spec: str) -> Irreps:
        """Read ``"4x0 + 2x1"`` (SO(2)) or ``"2x0+ + 0- + 3x1"`` (O(2)); see the module docstring."""
        if group not in ("SO2", "O2"):
            raise ValueError(f"Irreps: group must be 'SO2' or 'O2', got {group!r}")
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"irreps of {group}: expected e.g. '4x0 + 2x1', got {spec!r}")
        fields: list[tuple[int, int]] = []
        pos = 0
        while True:
            match = _TERM.match(spec, pos)
            if not match:
                raise ValueError(
                    f"irreps {spec!r} of {group}: expected '[Mx]k' at position {_skip(spec, pos)}"
                )
            mult, k = int(match.group(1) or 1), int(match.group(2))
            pos = match.end()
            parity = 1
            if group == "O2" and k == 0:
                if pos >= len(spec) or spec[pos] not in "+-":
                    raise ValueError(
                        f"irreps {spec!r} of O2: frequency 0 needs a parity '0+' or '0-' at position {pos}"
                    )
                parity = 1 if spec[pos] == "+" else -1
                pos += 1
            if mult < 1:
                raise ValueError(f"irreps {spec!r}: multiplicity must be >= 1 at position {match.start()}")
            fields += [(k, parity)] * mult
            pos = _skip(spec, pos)
            if pos == len(spec):
                return cls(group, tuple(fields))
            if spec[pos] != "+":
                raise ValueError(f"irreps {spec!r} of {group}: expected '+' or the end at position {pos}")
            pos += 1

    def __str__(self) -> str:
        parts: list[list] = []
        for f in self.fields:
            if parts and parts[-1][1] == f:
                parts[-1][0] += 1
            else:
                parts.append([1, f])
        return " + ".join(f"{n}x{_label(self.group, k, p)}" for n, (k, p) in parts) + f" of {self.group}"

    # ------------------------------------------------------------------------------------------------
    @property
    def num_fields(self) -> int:
        return len(self.fields)

    @property
    def dim(self) -> int:
        """Total number of channels."""
        return sum(_irrep_dim(k) for k, _ in self.fields)

    @property
    def is_regular(self) -> bool:  # the FieldType interface used by sim.groups.act and sim.testing
        return False

    @property
    def has_regular(self) -> bool:
        return False

    @property
    def max_frequency(self) -> int:
        return max(k for k, _ in self.fields)

    @property
    def reflections(self) -> bool:
        return self.group == "O2"

    def channel_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def slices(self) -> list[slice]:
        """The channel range of each field, in order."""
        out, start = [], 0
        for k, _ in self.fields:
            out.append(slice(start, start + _irrep_dim(k)))
            start += _irrep_dim(k)
        return out

    def check_tensor(self, x, what: str = "input") -> None:
        """Raise a one-line ValueError unless ``x`` is ``[B, dim, H, W]``."""
        if x.ndim != 4 or x.shape[1] != self.dim:
            raise ValueError(f"{what}: expected [B, {self.dim}, H, W] for {self}, got {list(x.shape)}")

    def rho(self, angle: float, reflect: bool = False) -> np.ndarray:
        """``[dim, dim]`` float64: the block-diagonal representation of ``r_angle s^reflect``.

        Args:
            angle: rotation angle in radians, counter-clockwise.
            reflect: apply the mirror ``x -> -x`` first (O(2) only).
        """
        if reflect and self.group != "O2":
            raise ValueError(f"{self}: SO(2) has no reflections; use an O2 type")
        out = np.zeros((self.dim, self.dim))
        for (k, p), sl in zip(self.fields, self.slices(), strict=True):
            out[sl, sl] = _irrep_matrix(k, p, angle, bool(reflect))
        return out

    def restrict(self, group: PlanarGroup) -> RestrictedIrreps:
        """This type seen as a representation of C_N / D_N (for :func:`sim.groups.act` and the kit).

        Raises:
            ValueError: an SO(2) type restricted to a dihedral group.
        """
        if group.reflections and self.group != "O2":
            raise ValueError(f"{self}: an SO(2) type has no action of the reflections of {group.name}")
        return RestrictedIrreps(group, self)

    def to_fieldtype(self, group: PlanarGroup) -> FieldType:
        """The same representation as a :class:`FieldType` of C_N / D_N with named representations.

        Frequency ``k`` with ``j = k mod N``: ``j = 0`` gives ``trivial + trivial`` on C_N (``sign + trivial``
        on D_N: ``diag(-1, 1)`` on the reflections); ``2j = N`` gives ``2x irrep(N/2)`` on C_N
        (``irrep(1,N/2) + irrep(0,N/2)`` on D_N); ``0 < j < N/2`` gives ``irrep(j)`` / ``irrep(1,j)``;
        ``0+``/``0-`` give ``trivial``/``sign``. Frequency 1 on C_N/D_N with N >= 3 is ``irrep(1)`` /
        ``irrep(1,1)``, the same matrices as ``vector``.

        Raises:
            ValueError: a frequency with ``k mod N > N/2``: equivalent to a named irrep only up to a
                change of basis (use :meth:`restrict`), or an SO(2) type on a dihedral group.
        """
        self.restrict(group)
        N, dihedral = group.n, group.reflections
        reps: list[str] = []
        for k, p in self.fields:
            if k == 0:
                reps.append("trivial" if p == 1 else "sign")
                continue
            j = k % N
            if j == 0:
                reps += ["sign", "trivial"] if dihedral else ["trivial", "trivial"]
            elif 2 * j == N:
                reps += [f"irrep(1,{j})", f"irrep(0,{j})"] if dihedral else [f"irrep({j})"] * 2
            elif 2 * j < N:
                reps.append(f"irrep(1,{j})" if dihedral else f"irrep({j})")
            else:
                raise ValueError(
                    f"{self}: frequency {k} aliases to {j - N} mod {N} on {group.name}, a named irrep "
                    f"only up to a change of basis; use Irreps.restrict({group.name}) instead"
                )
        ft = FieldType(group, tuple(reps))
        assert np.abs(ft.matrices() - self.restrict(group).matrices()).max() < 1e-12  # same matrices
        return ft


@dataclass(frozen=True)
class RestrictedIrreps:
    """An :class:`Irreps` type restricted to a planar group: the :class:`FieldType` interface that
    :func:`sim.groups.act` and :mod:`sim.testing` use (``group``, ``matrices()``, ``check_tensor``, ...).

    Args:
        group: C_N or D_N (D_N only for O(2) types).
        irreps: the continuous-group type.
    """

    group: PlanarGroup
    irreps: Irreps

    is_regular = False
    has_regular = False

    def __str__(self) -> str:
        return f"{self.irreps} restricted to {self.group.name}"

    @property
    def dim(self) -> int:
        return self.irreps.dim

    @property
    def num_fields(self) -> int:
        return self.irreps.num_fields

    def channel_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def slices(self) -> list[slice]:
        return self.irreps.slices()

    def check_tensor(self, x, what: str = "input") -> None:
        self.irreps.check_tensor(x, what)

    def matrices(self) -> np.ndarray:
        """``[|G|, dim, dim]`` float64 (read-only): ``rho`` at each element ``r^k s^m`` of the group."""
        return _restricted(self.irreps, self.group)


# ---------------------------------------------------------------------------------------------------
def _skip(spec: str, pos: int) -> int:
    while pos < len(spec) and spec[pos].isspace():
        pos += 1
    return pos


def _label(group: str, k: int, p: int) -> str:
    if group == "O2" and k == 0:
        return "0+" if p == 1 else "0-"
    return str(k)


def _irrep_dim(k: int) -> int:
    return 1 if k == 0 else 2


def _irrep_matrix(k: int, p: int, angle: float, reflect: bool) -> np.ndarray:
    """``rho(r_angle s^reflect)`` of one irrep (see the module docstring)."""
    if k == 0:
        return np.full((1, 1), -1.0 if (reflect and p == -1) else 1.0)
    c, s = math.cos(k * angle), math.sin(k * angle)
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.diag([-1.0, 1.0]) if reflect else rot


@functools.cache
def _restricted(irreps: Irreps, group: PlanarGroup) -> np.ndarray:
    mats = np.stack([irreps.rho(group.angle(g), group.is_reflection(g)) for g in group.elements()])
    for v in (-1.0, 0.0, 1.0):  # rotations by multiples of 90 degrees: exact signed permutations
        mats[np.abs(mats - v) < 1e-14] = v
    mats.setflags(write=False)
    return mats
