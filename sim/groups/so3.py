"""SO(3) and O(3): irreps, real spherical harmonics, Wigner-D matrices and Clebsch-Gordan coefficients.

Conventions (shared by every 3D layer in :mod:`sim.nn.tensor_product`):

* **Vectors** are column vectors ``x = (x, y, z)`` in the last axis ``[..., 3]``; a rotation acts as
  ``x' = R @ x``. The **polar axis is z** (as :func:`sim.discretize.latlon` and the icosphere), polar angle
  ``theta`` from +z, longitude ``phi`` from +x towards +y.
* **Real spherical harmonics** of degree ``l`` have ``2l + 1`` components in the order ``m = -l .. l``:

  .. code-block:: text

      Y_l^m  = N_lm * P_l^|m|(cos theta) * cos(m phi)     m > 0
      Y_l^0  = N_l0 * P_l(cos theta)
      Y_l^-m = N_lm * P_l^|m|(cos theta) * sin(|m| phi)   m > 0

  with the associated Legendre functions **without the Condon-Shortley phase** (``P_1^1 = +sin theta``),
  so ``Y_1 = c (y, z, x)`` and every ``Y_l^l`` is positive on the +x axis. Normalization
  ``"component"`` (the default, as e3nn's layers): ``sum_m Y_l^m(x)^2 = 2l + 1`` on unit vectors;
  ``"integral"``: orthonormal on the unit sphere, ``integral Y_l^m Y_l'^m' dS = delta``;
  ``"norm"``: ``sum_m Y_l^m(x)^2 = 1``. Vectors are normalized to unit length first (``normalize=True``).
* **Change of basis to e3nn** (which puts its polar axis on y): ``Y_l(x) = Y_l^e3nn(Q x)`` with ``Q`` the
  cyclic permutation ``(x, y, z) -> (y, z, x)`` (:data:`E3NN_FROM_OURS`), no sign changes, the same
  normalization names; tested to 1e-10 where e3nn is installed (agrees to ~4e-15).
* **Wigner-D**: ``wigner_D(l, R)`` is the ``[2l+1, 2l+1]`` orthogonal matrix with ``Y_l(R x) = D_l(R)
  Y_l(x)``, for any orthogonal ``R`` (for an improper one, ``D_l(R) = (-1)^l D_l(-R)``: harmonics have
  parity ``(-1)^l``). It is the projection ``D = integral Y_l(R x) Y_l(x)^T dS`` evaluated by a quadrature
  that is exact for polynomials of degree ``2l`` (Gauss-Legendre in ``z`` times uniform in ``phi``), so it
  is exact to rounding (~1e-15 in float64), for batches of ``R`` too.
* **Irreps of O(3)** ``(l, p)`` with parity ``p = +1`` (``e``, even) or ``-1`` (``o``, odd): a rotation acts
  by ``D_l(R)``, the inversion ``-I`` by ``p``; so ``D_{l,p}(R) = p^[det R < 0] D_l(R det R)``. The
  harmonics ``Y_l`` are ``(l, (-1)^l)``: ``0e, 1o, 2e, ...``. A feature tensor of ``Irreps`` ``"16x0e +
  8x1o"`` is ``[..., dim]`` with, per entry, ``mul`` consecutive copies of ``2l+1`` components (e3nn's
  ``mul_ir`` layout: index ``u (2l+1) + m``).
* **Clebsch-Gordan** ``clebsch_gordan(l1, l2, l3) [2l1+1, 2l2+1, 2l3+1]`` is the invariant tensor
  ``C_ijk = sum_abc D1_ia D2_jb D3_kc C_abc`` (for every rotation), i.e. ``sum_ij C_ijk x_i y_j``
  transforms as ``Y_l3`` when ``x, y`` transform as ``Y_l1, Y_l2``. Frobenius norm 1 (e3nn's ``wigner_3j``
  normalization) and the sign fixed by making the first entry (row-major) with ``|C| > 1e-6`` positive.
  Zero unless ``|l1 - l2| <= l3 <= l1 + l2``.

Everything is computed in float64 on first use and cached in memory (``functools.lru_cache``); nothing is
written to disk.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "E3NN_FROM_OURS",
    "Irrep",
    "Irreps",
    "axis_angle",
    "clebsch_gordan",
    "matrix_to_angles",
    "random_rotation",
    "spherical_harmonics",
    "wigner_D",
]

NORMALIZATIONS = ("component", "integral", "norm")

E3NN_FROM_OURS = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
"""``Q [3, 3]``: ``spherical_harmonics(l, x) == e3nn.o3.spherical_harmonics(l, x @ Q.T)`` (same
normalization name); ``Q`` is the rotation ``(x, y, z) -> (y, z, x)``."""


# ---------------------------------------------------------------------------------------------------
# Irreps
class Irrep(NamedTuple):
    """One irreducible representation of O(3): degree ``l >= 0``, parity ``p`` in ``{1, -1}``."""

    l: int  # noqa: E741 (the standard name)
    p: int

    @property
    def dim(self) -> int:
        return 2 * self.l + 1

    def __str__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"


class _MulIrrep(NamedTuple):
    mul: int
    l: int  # noqa: E741
    p: int

    @property
    def ir(self) -> Irrep:
        return Irrep(self.l, self.p)

    @property
    def dim(self) -> int:
        return self.mul * (2 * self.l + 1)


_TERM = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+)\s*([eo])\s*$")


@dataclass(frozen=True)
class Irreps:
    """An immutable list of ``(mul, l, p)``: how the channels of a feature tensor ``[..., dim]`` transform.

    Build from a string as e3nn (``Irreps("16x0e + 8x1o + 2e")``: ``MULxLP`` terms joined by ``+``,
    multiplicity 1 when omitted, parity ``e`` or ``o``), from another ``Irreps``, or from a sequence of
    ``(mul, l, p)``.
    Entries keep their order (no implicit sorting or merging: see :meth:`simplify`).

    Example:
        >>> ir = Irreps("16x0e + 8x1o")
        >>> ir.dim, ir.ls, [str(i) for i in ir.irs]
        (40, (0, 1), ['0e', '1o'])

    Raises:
        ValueError: a string that does not parse (naming the string and the term), a multiplicity < 0, a
            degree < 0 or a parity not in ``{1, -1}``.
    """

    entries: tuple[_MulIrrep, ...]

    def __init__(self, spec: str | Irreps | list | tuple = ()) -> None:
        if isinstance(spec, Irreps):
            entries = spec.entries
        elif isinstance(spec, str):
            entries = _parse(spec)
        else:
            entries = []
            for item in spec:
                try:
                    mul, l, p = (int(v) for v in item)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"Irreps: expected (mul, l, p) triples, got {item!r} in {spec!r}"
                    ) from None
                entries.append((mul, l, p))
        checked = []
        for mul, l, p in entries:
            if mul < 0 or l < 0 or p not in (1, -1):
                raise ValueError(
                    f"Irreps: need mul >= 0, l >= 0, p in (1, -1); got {(mul, l, p)} in {spec!r}"
                )
            checked.append(_MulIrrep(int(mul), int(l), int(p)))
        object.__setattr__(self, "entries", tuple(checked))

    @classmethod
    def spherical_harmonics(cls, lmax: int) -> Irreps:
        """``0e + 1o + 2e + ... + lmax``: the irreps of :func:`spherical_harmonics` up to ``lmax``."""
        return cls([(1, l, (-1) ** l) for l in range(lmax + 1)])

    # -- descriptors ---------------------------------------------------------------------------------
    def __str__(self) -> str:
        return " + ".join(f"{m}x{Irrep(l, p)}" for m, l, p in self.entries) or "(empty)"

    def __repr__(self) -> str:
        return f"Irreps({str(self)!r})"

    def __iter__(self) -> Iterator[_MulIrrep]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> _MulIrrep:
        return self.entries[i]

    def __add__(self, other: Irreps | str) -> Irreps:
        return Irreps(self.entries + Irreps(other).entries)

    @property
    def dim(self) -> int:
        """Number of channels: ``sum mul (2l + 1)``."""
        return sum(e.dim for e in self.entries)

    @property
    def num_irreps(self) -> int:
        """Number of irreducible fields: ``sum mul``."""
        return sum(e.mul for e in self.entries)

    @property
    def ls(self) -> tuple[int, ...]:
        """The degree of each entry, in order."""
        return tuple(e.l for e in self.entries)

    @property
    def irs(self) -> tuple[Irrep, ...]:
        return tuple(e.ir for e in self.entries)

    @property
    def lmax(self) -> int:
        if not self.entries:
            raise ValueError("Irreps(): empty irreps have no lmax")
        return max(self.ls)

    def slices(self) -> list[slice]:
        """The channel range of each entry, in order."""
        out, start = [], 0
        for e in self.entries:
            out.append(slice(start, start + e.dim))
            start += e.dim
        return out

    def simplify(self) -> Irreps:
        """Merge consecutive entries with the same ``(l, p)`` and drop those with multiplicity 0."""
        out: list[list[int]] = []
        for mul, l, p in self.entries:
            if mul == 0:
                continue
            if out and (out[-1][1], out[-1][2]) == (l, p):
                out[-1][0] += mul
            else:
                out.append([mul, l, p])
        return Irreps(out)

    def count(self, ir: Irrep | str) -> int:
        """Total multiplicity of one irrep (``"1o"`` or ``Irrep(1, -1)``)."""
        ir = _parse_irrep(ir)
        return sum(e.mul for e in self.entries if e.ir == ir)

    # -- the action ----------------------------------------------------------------------------------
    def D(self, R: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the standard name)
        """Block-diagonal representation of orthogonal matrices.

        Args:
            R: ``[..., 3, 3]`` orthogonal matrices (rotations or improper).

        Returns:
            ``[..., dim, dim]`` in ``R``'s dtype: ``x' = D x`` for features ``x [dim]``, i.e.
            ``features @ D.transpose(-1, -2)`` for ``[N, dim]`` features. An entry ``(l, p)`` gets
            ``p^[det R < 0] D_l(R det R)``.
        """
        R = torch.as_tensor(R)
        det = torch.linalg.det(R)  # [...]
        sign = torch.where(det < 0, -1.0, 1.0).to(R.dtype)
        proper = R * sign[..., None, None]
        out = R.new_zeros((*R.shape[:-2], self.dim, self.dim))
        cache: dict[int, torch.Tensor] = {}
        for (mul, l, p), sl in zip(self.entries, self.slices(), strict=True):
            if l not in cache:
                cache[l] = wigner_D(l, proper)
            d = cache[l] if p == 1 else cache[l] * sign[..., None, None]  # [..., 2l+1, 2l+1]
            for u in range(mul):
                a = sl.start + u * (2 * l + 1)
                out[..., a : a + 2 * l + 1, a : a + 2 * l + 1] = d
        return out

    representation = D

    def check_tensor(self, x: torch.Tensor, what: str = "input") -> None:
        """Raise a one-line ValueError unless ``x`` is ``[..., dim]``."""
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"{what}: expected [..., {self.dim}] for irreps {self}, got {list(x.shape)}")


def _parse_irrep(ir) -> Irrep:
    if isinstance(ir, Irrep):
        return ir
    if isinstance(ir, tuple) and len(ir) == 2:
        return Irrep(int(ir[0]), int(ir[1]))
    match = re.fullmatch(r"\s*(\d+)\s*([eo])\s*", str(ir))
    if not match:
        raise ValueError(f"irrep: expected e.g. '1o' or '2e', got {ir!r}")
    return Irrep(int(match.group(1)), 1 if match.group(2) == "e" else -1)


def _parse(spec: str) -> list[tuple[int, int, int]]:
    if not spec.strip():
        return []
    out = []
    for term in spec.split("+"):
        match = _TERM.match(term)
        if not match:
            raise ValueError(
                f"Irreps {spec!r}: cannot read {term.strip()!r}; expected terms like '16x0e' or '1o' "
                "(multiplicity x degree parity, parity e or o)"
            )
        out.append((int(match.group(1) or 1), int(match.group(2)), 1 if match.group(3) == "e" else -1))
    return out


# ---------------------------------------------------------------------------------------------------
# Spherical harmonics
def _check_l(l: int, name: str = "l") -> int:
    if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or l < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {l!r}")
    return int(l)


@functools.cache
def _sh_norms(l: int) -> tuple[float, ...]:
    """``N_lm`` of the orthonormal ("integral") harmonics for ``m = 0 .. l``, including sqrt(2) for m > 0."""
    out = []
    for m in range(l + 1):
        n = (2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m)
        out.append(math.sqrt(n * (2.0 if m > 0 else 1.0)))
    return tuple(out)


def spherical_harmonics(
    l: int,  # noqa: E741
    vectors: torch.Tensor,
    *,
    normalize: bool = True,
    normalization: str = "component",
) -> torch.Tensor:
    """Real spherical harmonics of degree ``l`` (z polar, ``m = -l .. l``, no Condon-Shortley phase).

    Computed as homogeneous polynomials of the Cartesian components (the recursion of the associated
    Legendre polynomials in ``z`` times ``Re/Im (x + i y)^m``), so differentiable everywhere except at 0,
    and exact to rounding in float32 and float64. See the module docstring for the convention.

    Args:
        l: degree, ``>= 0``.
        vectors: ``[..., 3]`` points ``(x, y, z)``.
        normalize: divide by the length first (0 stays 0); otherwise the result is the homogeneous
            polynomial of degree ``l`` (``|x|^l Y_l(x / |x|)``).
        normalization: ``"component"`` (``sum_m Y^2 = 2l+1``), ``"integral"`` (orthonormal on the sphere)
            or ``"norm"`` (``sum_m Y^2 = 1``).

    Returns:
        ``[..., 2l + 1]`` in the dtype of ``vectors``.

    Raises:
        ValueError: ``l`` not an integer ``>= 0``, ``vectors`` not ``[..., 3]``, an unknown normalization.
    """
    l = _check_l(l)  # noqa: E741
    return _sh_all(l, vectors, normalize=normalize, normalization=normalization)[l]


def _sh_all(lmax: int, vectors: torch.Tensor, *, normalize: bool, normalization: str) -> list[torch.Tensor]:
    """``[Y_0, ..., Y_lmax]``, each ``[..., 2l+1]`` (shares the recursion between degrees)."""
    if not isinstance(vectors, torch.Tensor) or vectors.ndim < 1 or vectors.shape[-1] != 3:
        shape = list(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
        raise ValueError(f"spherical_harmonics: vectors must be a [..., 3] tensor, got {shape}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"spherical_harmonics: normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
        )
    if not vectors.is_floating_point():
        vectors = vectors.to(torch.get_default_dtype())
    if normalize:
        r = torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
        vectors = vectors / torch.where(r > 0, r, torch.ones_like(r))
    x, y, z = vectors.unbind(-1)
    r2 = x * x + y * y + z * z
    # Re/Im (x + iy)^m, m = 0 .. lmax
    cos_m, sin_m = [torch.ones_like(x)], [torch.zeros_like(x)]
    for _ in range(lmax):
        c, s = cos_m[-1], sin_m[-1]
        cos_m.append(c * x - s * y)
        sin_m.append(c * y + s * x)
    # Q[l][m]: P_l^m(z) / sin^m, as homogeneous polynomials (degree l - m) in (z, r^2)
    q: list[list[torch.Tensor]] = []
    for l in range(lmax + 1):  # noqa: E741
        row = []
        for m in range(l + 1):
            if m == l:
                row.append(torch.full_like(x, float(_double_factorial(2 * m - 1))))
            elif m == l - 1:
                row.append((2 * m + 1) * z * q[l - 1][m])
            else:
                row.append(((2 * l - 1) * z * q[l - 1][m] - (l + m - 1) * r2 * q[l - 2][m]) / (l - m))
        q.append(row)
    out = []
    for l in range(lmax + 1):  # noqa: E741
        norms = _sh_norms(l)
        scale = {
            "integral": 1.0,
            "component": math.sqrt(4 * math.pi),
            "norm": math.sqrt(4 * math.pi / (2 * l + 1)),
        }
        s = scale[normalization]
        neg = [norms[m] * s * q[l][m] * sin_m[m] for m in range(l, 0, -1)]
        pos = [norms[m] * s * q[l][m] * cos_m[m] for m in range(1, l + 1)]
        out.append(torch.stack([*neg, norms[0] * s * q[l][0], *pos], dim=-1))
    return out


def _double_factorial(n: int) -> int:
    return math.prod(range(n, 0, -2)) if n > 0 else 1


# ---------------------------------------------------------------------------------------------------
# Wigner-D
@functools.cache
def _quadrature(l: int) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: E741
    """Points ``[P, 3]`` and weights ``[P]`` (sum 4 pi) exact for polynomials of degree ``2l`` on the sphere,
    float64: Gauss-Legendre in ``z`` times ``2l + 1`` uniform longitudes."""
    z, w = np.polynomial.legendre.leggauss(l + 1)
    n_phi = 2 * l + 1
    phi = 2 * np.pi * (np.arange(n_phi) + 0.5) / n_phi
    s = np.sqrt(1 - z**2)
    pts = np.stack(
        [
            s[:, None] * np.cos(phi)[None],
            s[:, None] * np.sin(phi)[None],
            np.broadcast_to(z[:, None], (l + 1, n_phi)),
        ],
        axis=-1,
    ).reshape(-1, 3)
    weights = np.repeat(w * (2 * np.pi / n_phi), n_phi)
    return torch.from_numpy(pts), torch.from_numpy(weights)


@functools.cache
def _projector(l: int) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: E741
    """``(points [P, 3], B [P, 2l+1])`` float64 with ``D = Y(R points)^T B`` (``B = w Y_int(points)``)."""
    pts, w = _quadrature(l)
    y = spherical_harmonics(l, pts, normalization="integral")  # [P, 2l+1]
    return pts, w[:, None] * y


def wigner_D(l: int, R: torch.Tensor) -> torch.Tensor:  # noqa: N802, E741
    """The real Wigner-D matrix of degree ``l``: ``Y_l(R x) = D_l(R) Y_l(x)`` for every ``x``.

    Args:
        l: degree, ``>= 0``.
        R: ``[..., 3, 3]`` orthogonal matrices (proper or improper), acting as ``x' = R @ x``.

    Returns:
        ``[..., 2l+1, 2l+1]`` orthogonal matrices in ``R``'s dtype (computed in float64; exact to ~1e-15
        for orthogonal ``R``). ``D(R1 R2) = D(R1) D(R2)``; for improper ``R``, ``D(R) = (-1)^l D(-R)``.

    Raises:
        ValueError: ``l`` not an integer ``>= 0`` or ``R`` not ``[..., 3, 3]``.
    """
    l = _check_l(l)  # noqa: E741
    R = torch.as_tensor(R)
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"wigner_D: R must be [..., 3, 3], got {list(R.shape)}")
    dtype = R.dtype if R.is_floating_point() else torch.get_default_dtype()
    pts, b = _projector(l)
    pts, b = pts.to(R.device), b.to(R.device)
    rotated = torch.einsum("...ij,pj->...pi", R.to(torch.float64), pts)  # [..., P, 3]
    y = spherical_harmonics(l, rotated, normalize=False, normalization="integral")  # [..., P, 2l+1]
    return torch.einsum("...pm,pn->...mn", y, b).to(dtype)


# ---------------------------------------------------------------------------------------------------
# Clebsch-Gordan
@functools.cache
def _generators(l: int) -> torch.Tensor:  # noqa: E741
    """``[3, 2l+1, 2l+1]`` float64: ``J_k = d/dt D_l(exp(t L_k))`` at ``t = 0`` (antisymmetric)."""
    basis = torch.zeros(3, 3, 3, dtype=torch.float64)  # L_k x = e_k cross x
    for k in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[k] = 1.0
        for j in range(3):
            col = torch.zeros(3, dtype=torch.float64)
            col[j] = 1.0
            basis[k, :, j] = torch.linalg.cross(e, col)
    if l == 0:
        return torch.zeros(3, 1, 1, dtype=torch.float64)
    pts, b = _projector(l)
    with torch.enable_grad():
        pts = pts.clone().requires_grad_(True)
        y = spherical_harmonics(l, pts, normalize=False, normalization="integral")  # [P, 2l+1]
    out = []
    for k in range(3):
        v = pts.detach() @ basis[k].T  # [P, 3] velocity L_k x
        # dY_m/dt = grad Y_m . v, one m at a time
        rows = []
        for m in range(2 * l + 1):
            (g,) = torch.autograd.grad(y[:, m].sum(), pts, retain_graph=True)
            rows.append((g * v).sum(-1))  # [P]
        dy = torch.stack(rows, dim=-1)  # [P, 2l+1]
        out.append(dy.T @ b)
    return torch.stack(out).detach()


@functools.cache
def _clebsch_gordan(l1: int, l2: int, l3: int) -> torch.Tensor:
    d1, d2, d3 = 2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        return torch.zeros(d1, d2, d3, dtype=torch.float64)
    g1, g2, g3 = _generators(l1), _generators(l2), _generators(l3)
    i1, i2, i3 = (torch.eye(d, dtype=torch.float64) for d in (d1, d2, d3))
    casimir = torch.zeros(d1 * d2 * d3, d1 * d2 * d3, dtype=torch.float64)
    for k in range(3):
        total = (
            torch.kron(torch.kron(g1[k], i2), i3)
            + torch.kron(torch.kron(i1, g2[k]), i3)
            + torch.kron(torch.kron(i1, i2), g3[k])
        )
        casimir += total.T @ total  # eigenvalues L (L + 1) of the total angular momentum
    vals, vecs = torch.linalg.eigh(casimir)
    if not (vals[0].abs() < 1e-8 and (len(vals) == 1 or vals[1] > 1.0)):
        raise RuntimeError(f"clebsch_gordan({l1}, {l2}, {l3}): no unique invariant (eigenvalues {vals[:2]})")
    c = vecs[:, 0]
    first = torch.nonzero(c.abs() > 1e-6)[0, 0]
    c = c * torch.sign(c[first])
    return (c / torch.linalg.vector_norm(c)).reshape(d1, d2, d3)


def clebsch_gordan(l1: int, l2: int, l3: int) -> torch.Tensor:
    """Real Clebsch-Gordan coefficients in the basis of :func:`spherical_harmonics`.

    Args:
        l1, l2, l3: degrees ``>= 0``.

    Returns:
        ``C [2l1+1, 2l2+1, 2l3+1]`` float64 (a fresh copy): invariant, ``C = (D1 x D2 x D3) C`` for every
        rotation, Frobenius norm 1, sign fixed by the first entry (row-major) with ``|C| > 1e-6`` being
        positive; zero unless ``|l1 - l2| <= l3 <= l1 + l2``. ``z_k = sum_ij C_ijk x_i y_j`` transforms as
        degree ``l3`` (``sqrt(2 l3 + 1) C`` maps ``component``-normalized inputs to the same
        normalization: e.g. ``C(0, l, l)_0jk = delta_jk / sqrt(2l+1)``).

    Raises:
        ValueError: a degree not an integer ``>= 0``.
    """
    return _clebsch_gordan(_check_l(l1, "l1"), _check_l(l2, "l2"), _check_l(l3, "l3")).clone()


# ---------------------------------------------------------------------------------------------------
# Rotations
def axis_angle(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from axes and angles (right hand: counter-clockwise seen from the tip of the axis).

    Args:
        axis: ``[..., 3]`` (normalized here).
        angle: ``[...]`` radians.

    Returns:
        ``[..., 3, 3]`` (Rodrigues' formula), dtype of ``axis``.
    """
    axis = torch.as_tensor(axis)
    angle = torch.as_tensor(angle, dtype=axis.dtype)
    axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*x.shape, 3, 3)
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return eye + s * k + (1 - c) * (k @ k)


def random_rotation(
    *shape: int, dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotations uniform on SO(3) (Haar measure), from random unit quaternions.

    Returns:
        ``[*shape, 3, 3]`` with determinant +1.
    """
    q = torch.randn(*shape, 4, dtype=torch.float64, generator=generator)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*shape, 3, 3).to(dtype)


def matrix_to_angles(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ZYZ Euler angles of rotations: ``R = Rz(alpha) Ry(beta) Rz(gamma)``.

    Args:
        R: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``(alpha, beta, gamma)``, each ``[...]``, with ``beta`` in ``[0, pi]`` (at ``beta = 0`` or ``pi``
        only ``alpha +- gamma`` is defined; ``gamma = 0`` is returned there).
    """
    R = torch.as_tensor(R)
    beta = torch.atan2(torch.sqrt(R[..., 0, 2] ** 2 + R[..., 1, 2] ** 2), R[..., 2, 2])  # precise near 0, pi
    alpha = torch.atan2(R[..., 1, 2], R[..., 0, 2])
    gamma = torch.atan2(R[..., 2, 1], -R[..., 2, 0])
    degenerate = torch.sqrt(R[..., 0, 2] ** 2 + R[..., 1, 2] ** 2) < 1e-12
    # beta = 0: R = Rz(alpha); beta = pi: R[:2, :2] = [[-cos a, -sin a], [-sin a, cos a]]
    alpha_deg = torch.where(
        R[..., 2, 2] > 0, torch.atan2(R[..., 1, 0], R[..., 0, 0]), torch.atan2(-R[..., 0, 1], -R[..., 0, 0])
    )
    alpha = torch.where(degenerate, alpha_deg, alpha)
    gamma = torch.where(degenerate, torch.zeros_like(gamma), gamma)
    return alpha, beta, gamma
