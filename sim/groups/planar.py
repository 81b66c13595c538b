"""The planar point groups C_N (rotations) and D_N (rotations and reflections) and their representations.

Elements are integers ``0 .. order-1``; element ``e = m * N + k`` is ``r^k s^m``: first the reflection
``s`` (if ``m = 1``), then the rotation ``r^k`` by ``2 pi k / N`` counter-clockwise. The reflection is the
mirror ``x -> -x`` (``torch.flip(f, dims=(-1,))`` on a field ``[..., y, x]``, see docs/conventions.md).
So ``r^k s^m`` acts on the plane as the matrix ``R(2 pi k / N) @ diag(-1, 1)^m``.

Composition: ``(r^a s^m)(r^b s^n) = r^(a + (-1)^m b) s^(m + n)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PlanarGroup", "cyclic", "dihedral", "group_from_name"]


@dataclass(frozen=True)
class PlanarGroup:
    """C_N (``reflections=False``) or D_N (``reflections=True``), acting on the plane about the origin.

    Args:
        n: number of rotations, ``>= 1``.
        reflections: include the reflections (dihedral group D_N, order 2N) or not (cyclic C_N, order N).
    """

    n: int
    reflections: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"PlanarGroup: n must be an int >= 1, got {self.n!r}")

    # ------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``"C4"``, ``"D4"``, ..."""
        return f"{'D' if self.reflections else 'C'}{self.n}"

    def __repr__(self) -> str:
        return self.name

    @property
    def order(self) -> int:
        """Number of elements."""
        return self.n * (2 if self.reflections else 1)

    @property
    def exact_on_grid(self) -> bool:
        """Whether the group acts exactly on a square pixel grid (rotations by multiples of 90 degrees)."""
        return 4 % self.n == 0

    def elements(self) -> range:
        """All elements, ``range(order)``; 0 is the identity."""
        return range(self.order)

    def decompose(self, g: int) -> tuple[int, int]:
        """``(k, m)`` with ``g = r^k s^m``."""
        self._check(g)
        return g % self.n, g // self.n

    def element(self, k: int, m: int = 0) -> int:
        """The element ``r^k s^m``."""
        if m not in (0, 1) or (m and not self.reflections):
            raise ValueError(f"{self.name}: no reflection part m={m!r}")
        return m * self.n + k % self.n

    def compose(self, g: int, h: int) -> int:
        """The product ``g h`` (apply ``h`` first)."""
        (a, m), (b, n) = self.decompose(g), self.decompose(h)
        return self.element(a + (-1) ** m * b, (m + n) % 2)

    def inverse(self, g: int) -> int:
        """``g^-1``."""
        k, m = self.decompose(g)
        return self.element(k if m else -k, m)

    def angle(self, g: int) -> float:
        """Rotation angle of ``g`` in radians, counter-clockwise."""
        return 2 * math.pi * self.decompose(g)[0] / self.n

    def is_reflection(self, g: int) -> bool:
        """Whether ``g`` reverses orientation (determinant -1)."""
        return self.decompose(g)[1] == 1

    def matrix(self, g: int) -> np.ndarray:
        """``[2, 2]``: how ``g`` acts on points ``(x, y)`` of the plane."""
        return self.representation("standard")[g]

    def _check(self, g: int) -> None:
        if not (isinstance(g, (int, np.integer)) and 0 <= g < self.order):
            raise ValueError(f"{self.name}: element must be an int in [0, {self.order}), got {g!r}")

    # ------------------------------------------------------------------------------------------------
    def irreps(self) -> tuple[str, ...]:
        """Names of the irreducible representations (real, over R).

        C_N: ``irrep(k)`` for ``k = 0 .. N // 2`` (1-dimensional for k = 0 and k = N/2, else 2).
        D_N: ``irrep(0,0)`` trivial, ``irrep(1,0)`` sign, ``irrep(1,k)`` for ``k = 1 .. (N-1)//2``
        (2-dimensional), and for even N ``irrep(0,N/2)``, ``irrep(1,N/2)`` (1-dimensional).
        """
        if not self.reflections:
            return tuple(f"irrep({k})" for k in range(self.n // 2 + 1))
        names = ["irrep(0,0)", "irrep(1,0)"]
        names += [f"irrep(1,{k})" for k in range(1, (self.n - 1) // 2 + 1)]
        if self.n % 2 == 0:
            names += [f"irrep(0,{self.n // 2})", f"irrep(1,{self.n // 2})"]
        return tuple(names)

    def representation(self, name: str) -> np.ndarray:
        """Matrices ``[order, d, d]`` (float64, read-only) of a representation, one per element.

        Names: ``trivial``, ``sign`` (the determinant: -1 on reflections), ``standard`` (the 2D
        rotation/reflection matrices, how vectors transform), ``regular`` (``rho(h) e_g = e_{hg}``,
        i.e. ``(rho(h) f)(g) = f(h^-1 g)``), and the irreps from :meth:`irreps`.
        """
        return _representation(self, name)


def cyclic(n: int) -> PlanarGroup:
    """C_N."""
    return PlanarGroup(n, reflections=False)


def dihedral(n: int) -> PlanarGroup:
    """D_N."""
    return PlanarGroup(n, reflections=True)


_ALIASES = {"P4": "C4", "P4M": "D4"}


def group_from_name(name: str) -> PlanarGroup:
    """``"C8"`` -> C_8, ``"D4"`` -> D_4; ``"P4"`` and ``"P4M"`` (the wallpaper-group names) are C4 and D4."""
    key = _ALIASES.get(str(name).upper(), str(name).upper())
    if len(key) >= 2 and key[0] in "CD" and key[1:].isdigit() and int(key[1:]) >= 1:
        return PlanarGroup(int(key[1:]), reflections=key[0] == "D")
    raise ValueError(f"unknown planar group {name!r}; expected C<N>, D<N> (N >= 1), P4 or P4M")


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _clean(a: np.ndarray) -> np.ndarray:
    """Snap values within 1e-14 of -1, 0, 1 to them, so rot90 matrices are exact signed permutations."""
    a = a.copy()
    for v in (-1.0, 0.0, 1.0):
        a[np.abs(a - v) < 1e-14] = v
    return a


@functools.cache
def _representation(group: PlanarGroup, name: str) -> np.ndarray:
    G, N = group.order, group.n
    mats = []
    if name == "regular":
        mats = np.zeros((G, G, G))
        for h in range(G):
            for g in range(G):
                mats[h, group.compose(h, g), g] = 1.0
    else:
        for e in range(G):
            k, m = e % N, e // N
            det = (-1.0) ** m
            if name in ("trivial", "irrep(0)", "irrep(0,0)"):
                mats.append(np.ones((1, 1)))
            elif name in ("sign", "irrep(1,0)"):
                mats.append(np.full((1, 1), det))
            elif name == "standard":
                mats.append(_rotation(2 * math.pi * k / N) @ np.diag([det, 1.0]))
            elif name.startswith("irrep(") and name in group.irreps():
                args = [int(a) for a in name[6:-1].split(",")]
                freq = args[-1]
                if 2 * freq == N:  # 1-dimensional: (-1)^k, times det for irrep(1, N/2)
                    sign = det if (len(args) == 2 and args[0] == 1) else 1.0
                    mats.append(np.full((1, 1), (-1.0) ** k * sign))
                else:
                    mats.append(_rotation(2 * math.pi * freq * k / N) @ np.diag([det, 1.0]))
            else:
                known = ", ".join(("trivial", "sign", "standard", "regular", *group.irreps()))
                raise ValueError(f"{group.name} has no representation {name!r}; expected one of {known}")
        mats = np.stack(mats)
    mats = _clean(np.asarray(mats, dtype=np.float64))
    mats.setflags(write=False)
    return mats
