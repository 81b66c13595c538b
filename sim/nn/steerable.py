"""Steerable convolutions for SO(2) and O(2) (Weiler & Cesa 2019), and layers for irreps features.

Features are plain tensors ``[B, dim, H, W]`` whose channels transform by an
:class:`~sim.groups.o2.Irreps` type (``(g . f)(p) = rho(g) f(g^-1 p)``, counter-clockwise angles, mirror
``x -> -x``; see :mod:`sim.groups.o2`).

**Kernel basis.** A convolution kernel ``K: R^2 -> R^{d_out x d_in}`` commutes with the group iff
``K(g q) = rho_out(g) K(q) rho_in(g)^-1``. For SO(2) every solution is ``K(r, phi) = rho_out(phi) A(r)
rho_in(phi)^T``; for irreps of frequencies ``n`` (out) and ``m`` (in) we split ``A`` into parts of pure
angular frequency (the circular harmonics of Weiler & Cesa):

* ``n = m = 0``: ``A = 1``, frequency 0;
* ``n >= 1, m = 0``: ``A = e_1, e_2`` (frequency ``n``); ``n = 0, m >= 1``: ``A = e_1^T, e_2^T``
  (frequency ``m``);
* ``n, m >= 1``: ``A = I, J`` give ``R((n-m) phi)`` and ``J R((n-m) phi)`` (frequency ``|n-m|``);
  ``A = S, J S`` (``S = diag(1, -1)``, ``J = R(90 deg)``) give ``R((n+m) phi) S``, ... (frequency ``n+m``).

For O(2) the mirror adds ``K(s q) = rho_out(s) K(q) rho_in(s)^-1``, which maps the solution of ``A`` to
that of ``M_out A M_in^T`` with ``M = rho(r_pi s)``, a diagonal sign matrix; every ``A`` above is an
eigenvector, and the O(2) basis keeps those with eigenvalue +1 (half of them; none for ``0+ <-> 0-``).

Each angular part is multiplied by Gaussian rings ``exp(-(r - r_j)^2 / (2 sigma_j^2))`` (radii
``r_j = 0, 1, ..., (kernel_size - 1) / 2`` pixels and widths 0.005 / 0.6 / 0.4 for the centre, inner and
rim rings by default, as e2cnn) and kept on ring ``j`` only if its
frequency is at most the ring's **bandlimit** ``floor(2 r_j)`` (capped by ``max_frequency``); the centre
ring keeps frequency 0 only (the angle is undefined there). The functions are sampled at the pixel
centres of an odd ``kernel_size x kernel_size`` grid centred on the middle pixel (offsets ``(x, y) =
(j - c, i - c)`` for pixel row ``i``, column ``j``), so rotations by 90 degrees and the mirrors permute
the samples: the sampled kernels are exactly equivariant for C4 and D4, and approximately for other
angles. Each sampled element is normalised to ``||B||_F^2 = d_out``.

The basis is built once in ``__init__`` (float64, a non-persistent buffer); the learned coefficients (one
per basis element, output field and input field) are expanded into the ``[out_dim, in_dim, k, k]``
filter bank each forward, followed by one ``F.conv2d``. When both types repeat a block (``16x (0 + 1 +
2)`` written out, or any small type) the expansion is one matmul with a dense block basis and a
permute; otherwise one batched einsum over the pairs of distinct irreps in a padded layout, then the
rows and columns picked in channel order. In eval mode without gradients the bank
is cached (invalidated by ``.train()``, in-place parameter updates, dtype and device changes);
``state_dict`` holds only the coefficients and the bias.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sim.groups.fields import FieldType
from sim.groups.o2 import Irreps
from sim.groups.planar import PlanarGroup

__all__ = [
    "GatedNonlinearity",
    "IrrepsToRegular",
    "NormNonlinearity",
    "RegularToIrreps",
    "SteerableBatchNorm",
    "SteerableConv2d",
    "SteerableGroupNorm",
    "kernel_basis",
    "ring_bandlimit",
]

Padding = Literal["circular", "zeros"]
_J = np.array([[0.0, -1.0], [1.0, 0.0]])
_S = np.diag([1.0, -1.0])


# ---------------------------------------------------------------------------------------------------
# the analytic basis
def _angular_parts(group: str, out_irrep: tuple[int, int], in_irrep: tuple[int, int]) -> list:
    """``[(A [d_out, d_in], frequency), ...]``: the angular solutions ``rho_out(phi) A rho_in(phi)^T``."""
    n, m = out_irrep[0], in_irrep[0]
    if n == 0 and m == 0:
        parts = [(np.ones((1, 1)), 0)]
    elif m == 0:
        parts = [(np.array([[1.0], [0.0]]), n), (np.array([[0.0], [1.0]]), n)]
    elif n == 0:
        parts = [(np.array([[1.0, 0.0]]), m), (np.array([[0.0, 1.0]]), m)]
    else:
        parts = [(np.eye(2), abs(n - m)), (_J, abs(n - m)), (_S, n + m), (_J @ _S, n + m)]
    if group == "O2":  # keep the +1 eigenvectors of A -> M_out A M_in^T, M = rho(r_pi s)
        m_out = Irreps(group, (out_irrep,)).rho(math.pi, True).round()
        m_in = Irreps(group, (in_irrep,)).rho(math.pi, True).round()
        kept = []
        for a, f in parts:
            image = m_out @ a @ m_in.T
            assert np.allclose(image, a) or np.allclose(image, -a)
            if np.allclose(image, a):
                kept.append((a, f))
        parts = kept
    return parts


def ring_bandlimit(radius: float) -> int:
    """The highest angular frequency a ring of this radius (pixels) carries: 0 at the centre, else
    ``floor(2 r)`` (about two samples per period along the ring's circumference ``2 pi r``)."""
    return 0 if radius <= 1e-9 else int(math.floor(2 * radius + 1e-9))


def _sample(a: np.ndarray, group: str, out_irrep, in_irrep, q: np.ndarray) -> np.ndarray:
    """``[d_out, d_in, P]``: ``rho_out(phi) A rho_in(phi)^T`` at points ``q [P, 2]`` (x, y)."""
    phi = np.arctan2(q[:, 1], q[:, 0])
    ro = Irreps(group, (out_irrep,))
    ri = Irreps(group, (in_irrep,))
    return np.stack([ro.rho(t) @ a @ ri.rho(t).T for t in phi], axis=-1)


@functools.cache
def kernel_basis(
    group: str,
    out_irrep: tuple[int, int],
    in_irrep: tuple[int, int],
    kernel_size: int,
    rings: tuple[float, ...],
    sigmas: tuple[float, ...],
    max_frequency: int,
) -> np.ndarray:
    """The sampled steerable basis for one pair of irreps, ``[nb, d_out, d_in, k, k]`` float64.

    Args:
        group: ``"SO2"`` or ``"O2"``.
        out_irrep, in_irrep: ``(frequency, parity)`` as in :class:`~sim.groups.o2.Irreps`.
        kernel_size: odd.
        rings, sigmas: ring radii and Gaussian widths (pixels).
        max_frequency: the highest angular frequency on any ring (each ring also obeys
            :func:`ring_bandlimit`).

    Returns:
        The basis elements (for each angular part, its rings in order), each normalised to
        ``||B||_F^2 = d_out`` (read-only); ``nb`` may be 0.
    """
    c = (kernel_size - 1) / 2
    ij = np.arange(kernel_size) - c
    y, x = np.meshgrid(ij, ij, indexing="ij")  # pixel [i, j] is the point (x, y) = (j - c, i - c)
    q = np.stack([x.ravel(), y.ravel()], axis=-1)  # [k*k, 2]
    r = np.hypot(q[:, 0], q[:, 1])
    d_out, d_in = (1 if out_irrep[0] == 0 else 2), (1 if in_irrep[0] == 0 else 2)
    out = []
    for a, freq in _angular_parts(group, out_irrep, in_irrep):
        ang = _sample(a, group, out_irrep, in_irrep, q)  # [d_out, d_in, k*k]
        if freq > 0:
            ang = ang * (r > 1e-9)  # a harmonic of frequency > 0 vanishes at the centre
        for r0, s in zip(rings, sigmas, strict=True):
            if freq > min(ring_bandlimit(r0), max_frequency):
                continue
            b = ang * np.exp(-((r - r0) ** 2) / (2 * s**2))
            norm = np.linalg.norm(b)
            if norm < 1e-8:
                continue
            out.append((b * math.sqrt(d_out) / norm).reshape(d_out, d_in, kernel_size, kernel_size))
    basis = np.stack(out) if out else np.zeros((0, d_out, d_in, kernel_size, kernel_size))
    basis.setflags(write=False)
    return basis


# ---------------------------------------------------------------------------------------------------
class SteerableConv2d(nn.Module):
    """SO(2)- or O(2)-equivariant 2D convolution between irreps field types.

    Args:
        in_type, out_type: :class:`~sim.groups.o2.Irreps` of the same group.
        kernel_size: odd, ``>= 3``.
        rings: ring radii in pixels (default ``0, 1, ..., (kernel_size - 1) / 2``); each ``<=`` the
            kernel's half-width.
        sigma: Gaussian width of the rings in pixels: one value per ring, or a float for the inner rings
            (a ring at radius 0 then gets 0.005, a point, and a ring at the kernel's half-width 0.4, so
            that little weight reaches the corner pixels, which only the diagonals have: measured in
            scripts/bench_steerable.py, a width of 0.6 there doubles the error at 45 degrees).
        max_frequency: cap on the angular frequencies of the basis (default: no cap beyond the rings'
            bandlimits ``floor(2 r)``).
        padding: ``"circular"`` (periodic domains) or ``"zeros"``; the output has the input's size.
        bias: learned bias on the trivial (``0`` / ``0+``) output fields.

    Shapes:
        ``[B, in_type.dim, H, W] -> [B, out_type.dim, H, W]``.

    Raises:
        ValueError: bad types or sizes; ``max_frequency`` above what the largest ring resolves; an output
            field that no basis element reaches (the kernel too small for the frequencies asked for, or
            no equivariant map exists, e.g. ``0+ -> 0-`` alone).
    """

    def __init__(
        self,
        in_type: Irreps,
        out_type: Irreps,
        kernel_size: int,
        *,
        rings: tuple[float, ...] | None = None,
        sigma: float | tuple[float, ...] = 0.6,
        max_frequency: int | None = None,
        padding: Padding = "circular",
        bias: bool = True,
    ):
        super().__init__()
        if not isinstance(in_type, Irreps) or not isinstance(out_type, Irreps):
            raise TypeError(f"SteerableConv2d: expected Irreps types, got {type(in_type)}, {type(out_type)}")
        if in_type.group != out_type.group:
            raise ValueError(f"SteerableConv2d: in_type is of {in_type.group}, out_type of {out_type.group}")
        if (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, int)
            or kernel_size < 3
            or kernel_size % 2 == 0
        ):
            raise ValueError(f"SteerableConv2d: kernel_size must be an odd int >= 3, got {kernel_size!r}")
        if padding not in ("circular", "zeros"):
            raise ValueError(f"SteerableConv2d: padding must be 'circular' or 'zeros', got {padding!r}")
        half = (kernel_size - 1) // 2
        rings = tuple(float(r) for r in (range(half + 1) if rings is None else rings))
        if not rings or min(rings) < 0 or max(rings) > half:
            raise ValueError(
                f"SteerableConv2d: rings must lie in [0, {half}] for kernel_size {kernel_size}, got {rings}"
            )
        if isinstance(sigma, (int, float)):  # the centre a point, the rim ring narrower (as e2cnn)
            sigmas = tuple(0.005 if r == 0 else 0.4 if r == half else float(sigma) for r in rings)
        else:
            sigmas = tuple(float(s) for s in sigma)
            if len(sigmas) != len(rings):
                raise ValueError(f"SteerableConv2d: {len(rings)} rings but {len(sigmas)} sigmas")
        if min(sigmas) <= 0:
            raise ValueError(f"SteerableConv2d: sigma must be > 0, got {sigmas}")
        top = max(ring_bandlimit(r) for r in rings)
        if max_frequency is None:
            max_frequency = top
        elif isinstance(max_frequency, bool) or not isinstance(max_frequency, int) or max_frequency < 0:
            raise ValueError(f"SteerableConv2d: max_frequency must be an int >= 0, got {max_frequency!r}")
        elif max_frequency > top:
            raise ValueError(
                f"SteerableConv2d: max_frequency={max_frequency} is more than kernel_size={kernel_size} "
                f"resolves (rings up to radius {max(rings):g} carry frequencies <= {top}); use kernel_size "
                f">= {2 * math.ceil(max_frequency / 2) + 1}"
            )
        self.in_type, self.out_type = in_type, out_type
        self.kernel_size, self.padding = kernel_size, padding
        self.rings, self.sigmas, self.max_frequency = rings, sigmas, max_frequency
        group = in_type.group

        # Distinct irreps and where each field's channels go in the padded layout [U, Mo, 2] x [V, Mi, 2].
        out_kinds = sorted(set(out_type.fields))
        in_kinds = sorted(set(in_type.fields))
        out_rows, out_mult = _padded_index(out_type, out_kinds)
        in_cols, in_mult = _padded_index(in_type, in_kinds)
        U, V, Mo, Mi = len(out_kinds), len(in_kinds), max(out_mult), max(in_mult)
        bases = {
            (u, v): kernel_basis(group, ko, ki, kernel_size, rings, sigmas, max_frequency)
            for u, ko in enumerate(out_kinds)
            for v, ki in enumerate(in_kinds)
        }
        self.basis_sizes = {(out_kinds[u], in_kinds[v]): b.shape[0] for (u, v), b in bases.items()}
        for u, ko in enumerate(out_kinds):
            if all(bases[u, v].shape[0] == 0 for v in range(V)):
                label = f"{_label(group, ko)}"
                raise ValueError(
                    f"SteerableConv2d: no kernel maps {in_type} to the output irrep {label}: "
                    f"kernel_size={kernel_size} (bandlimit {max_frequency}) is too small for frequency "
                    f"differences up to {max(abs(ko[0] - ki[0]) for ki in in_kinds)}, or no equivariant "
                    "kernel exists"
                )
        k2 = kernel_size * kernel_size
        fan = [sum(in_mult[v] * bases[u, v].shape[0] for v in range(V)) for u in range(U)]
        trivial_out = [i for i, f in enumerate(out_type.fields) if f == (0, 1)]
        if bias and trivial_out:  # bias = self.bias @ _bias_map: one value per trivial output field
            self.bias = nn.Parameter(torch.zeros(len(trivial_out)))
            bias_map = torch.zeros(len(trivial_out), out_type.dim, dtype=torch.float64)
            for j, i in enumerate(trivial_out):
                bias_map[j, out_type.slices()[i].start] = 1.0
        else:
            self.bias, bias_map = None, None
        self.register_buffer("_bias_map", bias_map, persistent=False)  # [n_trivial, out_dim]

        bo, bi = _repeated_blocks(out_type, in_type)
        nbb = sum(
            bases[out_kinds.index(fo), in_kinds.index(fi)].shape[0] for fo in bo.fields for fi in bi.fields
        )
        if nbb * bo.dim * bi.dim * k2 <= _DENSE_BLOCK_LIMIT:
            # Fast path: both types are Mo (Mi) copies of one block; one matmul gives the bank in channel
            # order: bank[(o, c), (i, d), p] = sum_n W[o, i, n] B[n, c, d, p].
            elements, stds = [], []
            for fo, so in zip(bo.fields, bo.slices(), strict=True):
                for fi, si in zip(bi.fields, bi.slices(), strict=True):
                    b = bases[out_kinds.index(fo), in_kinds.index(fi)]
                    for e in b:
                        dense = np.zeros((bo.dim, bi.dim, k2))
                        dense[so, si] = e.reshape(e.shape[0], e.shape[1], k2)
                        elements.append(dense)
                        stds.append(1.0 / math.sqrt(max(fan[out_kinds.index(fo)], 1)))
            Mo_, Mi_ = out_type.num_fields // bo.num_fields, in_type.num_fields // bi.num_fields
            self._layout = (Mo_, Mi_, len(elements), bo.dim, bi.dim)
            std = torch.tensor(stds, dtype=torch.float32)
            self.weight = nn.Parameter((torch.randn(Mo_, Mi_, len(elements)) * std).flatten())
            self.register_buffer(
                "_basis", torch.tensor(np.stack(elements)), persistent=False
            )  # [n, c, d, k2]
            for name in ("_w_index", "_rows", "_cols"):
                self.register_buffer(name, None, persistent=False)
        else:
            # General path: a padded layout [kind, multiplicity, 2] on both sides, one batched einsum over
            # the pairs of kinds, then the rows and columns picked in channel order.
            self._layout = None
            nb = max(1, max(b.shape[0] for b in bases.values()))
            basis = np.zeros((U, V, nb, 2, 2, k2))
            for (u, v), b in bases.items():
                basis[u, v, : b.shape[0], : b.shape[1], : b.shape[2]] = b.reshape(*b.shape[:3], k2)
            # One coefficient per (pair, output field, input field, basis element); padding reads a zero.
            w_index = np.zeros((U, V, Mo, Mi, nb), dtype=np.int64)
            stds, count = [], 0
            for (u, v), b in bases.items():
                n = out_mult[u] * in_mult[v] * b.shape[0]
                idx = np.full((Mo, Mi, nb), -1, dtype=np.int64)
                idx[: out_mult[u], : in_mult[v], : b.shape[0]] = np.arange(count, count + n).reshape(
                    out_mult[u], in_mult[v], b.shape[0]
                )
                w_index[u, v] = idx
                stds += [1.0 / math.sqrt(max(fan[u], 1))] * n
                count += n
            w_index[w_index < 0] = count
            self.weight = nn.Parameter(torch.randn(count) * torch.tensor(stds, dtype=torch.float32))
            self.register_buffer("_basis", torch.tensor(basis), persistent=False)  # [U, V, nb, 2, 2, k2]
            self.register_buffer("_w_index", torch.tensor(w_index), persistent=False)  # [U, V, Mo, Mi, nb]
            self.register_buffer("_rows", torch.tensor(out_rows), persistent=False)  # [out_dim]
            self.register_buffer("_cols", torch.tensor(in_cols), persistent=False)  # [in_dim]
        self._cache: tuple | None = None

    def extra_repr(self) -> str:
        return (
            f"{self.in_type} -> {self.out_type}, kernel_size={self.kernel_size}, rings={self.rings}, "
            f"max_frequency={self.max_frequency}, padding={self.padding}, bias={self.bias is not None}, "
            f"basis={self.basis_size}"
        )

    @property
    def basis_size(self) -> int:
        """Number of learned kernel coefficients."""
        return self.weight.numel()

    # ------------------------------------------------------------------------------------------------
    def expand_filters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The filter bank ``[out_dim, in_dim, k, k]`` and bias ``[out_dim]`` (or None) of ``forward``."""
        k = self.kernel_size
        w = self.weight
        basis = self._basis.to(w.dtype)
        if self._layout is not None:
            Mo, Mi, n, c, d = self._layout
            bank = (w.reshape(Mo * Mi, n) @ basis.reshape(n, -1)).reshape(Mo, Mi, c, d, k * k)
            bank = bank.permute(0, 2, 1, 3, 4)  # [Mo, c, Mi, d, k2]
        else:
            U, V, Mo, Mi, nb = self._w_index.shape
            full = F.pad(w, (0, 1))[self._w_index]  # [U, V, Mo, Mi, nb]
            bank = torch.einsum("uvoin,uvnabp->uoavibp", full, basis)  # [U, Mo, 2, V, Mi, 2, k2]
            bank = bank.reshape(U * Mo * 2, V * Mi * 2, k * k)
            bank = bank.index_select(0, self._rows).index_select(1, self._cols)  # [out_dim, in_dim, k2]
        bank = bank.reshape(self.out_type.dim, self.in_type.dim, k, k)
        bias = None if self.bias is None else self.bias @ self._bias_map.to(w.dtype)
        return bank, bias

    def _filters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        params = [p for p in (self.weight, self.bias) if p is not None]
        if self.training or (torch.is_grad_enabled() and any(p.requires_grad for p in params)):
            self._cache = None
            return self.expand_filters()
        key = tuple((p._version, p.data_ptr(), p.dtype, p.device) for p in params)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, *self.expand_filters())
        return self._cache[1], self._cache[2]

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._cache = None
        return super()._apply(fn, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_dim, H, W] -> [B, out_dim, H, W]``."""
        self.in_type.check_tensor(x, "SteerableConv2d input")
        bank, bias = self._filters()
        p = self.kernel_size // 2
        H, W = x.shape[-2:]
        if self.padding == "circular":
            if p > H or p > W:
                raise ValueError(f"SteerableConv2d: circular padding {p} needs H, W >= {p}, got {H}x{W}")
            return F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), bank, bias)
        return F.conv2d(x, bank, bias, padding=p)


def _label(group: str, irrep: tuple[int, int]) -> str:
    return str(Irreps(group, (irrep,))).split("x", 1)[1].rsplit(" of", 1)[0]


_DENSE_BLOCK_LIMIT = 1 << 22  # entries of the dense block basis of the fast path (32 MiB in float64)


def _repeated_blocks(out_type: Irreps, in_type: Irreps) -> tuple[Irreps, Irreps]:
    """The shortest blocks that ``out_type`` and ``in_type`` repeat (``0 + 1 + 2`` of ``16x (0 + 1 + 2)``;
    the whole type if it repeats nothing)."""
    blocks = []
    for t in (out_type, in_type):
        n = t.num_fields
        period = next(p for p in range(1, n + 1) if n % p == 0 and t.fields == t.fields[:p] * (n // p))
        blocks.append(Irreps(t.group, t.fields[:period]))
    return blocks[0], blocks[1]


def _padded_index(t: Irreps, kinds: list) -> tuple[np.ndarray, list[int]]:
    """Position of each channel in the padded layout ``[kind, multiplicity, 2]``, and multiplicities."""
    mult = [0] * len(kinds)
    pos = []
    for f in t.fields:
        u = kinds.index(f)
        pos.append((u, mult[u]))
        mult[u] += 1
    Mmax = max(mult)
    index = []
    for (u, j), (k, _) in zip(pos, t.fields, strict=True):
        index += [(u * Mmax + j) * 2 + a for a in range(1 if k == 0 else 2)]
    return np.array(index, dtype=np.int64), mult


# ---------------------------------------------------------------------------------------------------
# nonlinearities and normalisation
_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "silu": F.silu,
}


def _function(f: str | Callable, what: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if callable(f):
        return f
    if f not in _FUNCTIONS:
        raise ValueError(
            f"{what}: unknown function {f!r}; expected a callable or one of {sorted(_FUNCTIONS)}"
        )
    return _FUNCTIONS[f]


def _field_sum_matrix(t: Irreps, fields: list[int]) -> torch.Tensor:
    """``[len(fields), dim]``: 1 where channel c belongs to the listed field (sums squares per field)."""
    m = torch.zeros(len(fields), t.dim, dtype=torch.float64)
    slices = t.slices()
    for j, i in enumerate(fields):
        m[j, slices[i]] = 1.0
    return m


class NormNonlinearity(nn.Module):
    """Norm nonlinearity: each non-trivial field ``v`` becomes ``f(|v| + b) v / |v|``; trivial fields go
    through a pointwise function.

    Non-trivial fields: the 2-dim irreps (frequency >= 1) and the O(2) sign irrep ``0-`` (``|v|`` its
    absolute value). Their norms are invariant, so the layer is equivariant for every rotation and
    reflection.

    Args:
        field_type: the :class:`~sim.groups.o2.Irreps` of input and output.
        function: ``f`` for the norms (a name in ``relu, sigmoid, softplus, tanh, gelu, silu`` or a
            callable).
        scalar_function: pointwise function of the trivial fields.
        bias: learn ``b`` per non-trivial field (initialised to -0.1), else ``b = 0``.
        eps: floor of ``|v|`` in the division.

    Shapes:
        ``[B, dim, H, W] -> [B, dim, H, W]``.
    """

    def __init__(
        self,
        field_type: Irreps,
        *,
        function: str | Callable = "relu",
        scalar_function: str | Callable = "relu",
        bias: bool = True,
        eps: float = 1e-12,
    ):
        super().__init__()
        self.in_type = self.out_type = field_type
        self.function = _function(function, "NormNonlinearity")
        self.scalar_function = _function(scalar_function, "NormNonlinearity")
        self.eps = eps
        fields = [i for i, f in enumerate(field_type.fields) if f != (0, 1)]
        scalars = [field_type.slices()[i].start for i, f in enumerate(field_type.fields) if f == (0, 1)]
        self.bias = nn.Parameter(torch.full((len(fields),), -0.1)) if (bias and fields) else None
        self.register_buffer("_sum", _field_sum_matrix(field_type, fields), persistent=False)  # [F, dim]
        self.register_buffer("_scalars", torch.tensor(scalars, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.in_type.check_tensor(x, "NormNonlinearity input")
        m = self._sum.to(x.dtype)
        norm = torch.einsum("fc,bchw->bfhw", m, x * x).sqrt()  # [B, F, H, W]
        shifted = norm if self.bias is None else norm + self.bias[:, None, None]
        scale = self.function(shifted) / norm.clamp_min(self.eps)  # [B, F, H, W]
        y = x * torch.einsum("fc,bfhw->bchw", m, scale)  # the scalar channels get 0 here
        if len(self._scalars):
            y = y.index_copy(1, self._scalars, self.scalar_function(x.index_select(1, self._scalars)))
        return y


class GatedNonlinearity(nn.Module):
    """Gated nonlinearity (Weiler et al. 2018): non-trivial fields times ``sigmoid`` of a scalar gate.

    The input type lists the gates **last**: one trivial field per non-trivial field of the output, in
    the same order. Build it with :meth:`gated_type`. Trivial fields that are not gates go through
    ``scalar_function``; the O(2) sign irrep ``0-`` counts as non-trivial (gated).

    Args:
        in_type: the output's fields followed by the gates.
        scalar_function, gate_function: pointwise functions (names as in :class:`NormNonlinearity`).

    Attributes:
        out_type: ``in_type`` without the gates.

    Shapes:
        ``[B, in_type.dim, H, W] -> [B, out_type.dim, H, W]``.
    """

    def __init__(
        self,
        in_type: Irreps,
        *,
        scalar_function: str | Callable = "relu",
        gate_function: str | Callable = "sigmoid",
    ):
        super().__init__()
        gated = sum(f != (0, 1) for f in in_type.fields)
        if gated == 0 or in_type.num_fields < 2 * gated or any(f != (0, 1) for f in in_type.fields[-gated:]):
            raise ValueError(
                f"GatedNonlinearity: {in_type} must end with one trivial gate per non-trivial field "
                f"({gated}); build it with GatedNonlinearity.gated_type(out_type)"
            )
        self.in_type = in_type
        self.out_type = Irreps(in_type.group, in_type.fields[:-gated])
        self.scalar_function = _function(scalar_function, "GatedNonlinearity")
        self.gate_function = _function(gate_function, "GatedNonlinearity")
        out = self.out_type
        fields = [i for i, f in enumerate(out.fields) if f != (0, 1)]
        scalars = [out.slices()[i].start for i, f in enumerate(out.fields) if f == (0, 1)]
        self.register_buffer("_spread", _field_sum_matrix(out, fields), persistent=False)  # [F, out_dim]
        self.register_buffer("_scalars", torch.tensor(scalars, dtype=torch.long), persistent=False)

    @staticmethod
    def gated_type(out_type: Irreps) -> Irreps:
        """``out_type`` followed by one trivial gate per non-trivial field."""
        gated = sum(f != (0, 1) for f in out_type.fields)
        return Irreps(out_type.group, out_type.fields + ((0, 1),) * gated)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.in_type.check_tensor(x, "GatedNonlinearity input")
        n_out = self.out_type.dim
        feats, gates = x[:, :n_out], x[:, n_out:]  # [B, out_dim, H, W], [B, F, H, W]
        y = feats * torch.einsum("fc,bfhw->bchw", self._spread.to(x.dtype), self.gate_function(gates))
        if len(self._scalars):
            y = y.index_copy(1, self._scalars, self.scalar_function(feats.index_select(1, self._scalars)))
        return y


class SteerableBatchNorm(nn.Module):
    """Equivariant batch normalisation of irreps features.

    Trivial fields: ``nn.BatchNorm2d`` (mean and variance over batch and grid). Non-trivial fields
    (2-dim irreps and ``0-``): divided by the root of their mean squared norm per channel, ``E|v|^2 / d``
    over batch and grid (no mean is subtracted: it would not be equivariant), then scaled by a learned
    factor per field. Running averages as ``nn.BatchNorm2d`` (used in eval mode).

    Args:
        field_type: :class:`~sim.groups.o2.Irreps`.
        eps, momentum, affine: as ``nn.BatchNorm2d``.

    Shapes:
        ``[B, dim, H, W] -> [B, dim, H, W]``.
    """

    def __init__(self, field_type: Irreps, *, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.in_type = self.out_type = field_type
        self.eps, self.momentum = eps, momentum
        fields = [i for i, f in enumerate(field_type.fields) if f != (0, 1)]
        scalars = [field_type.slices()[i].start for i, f in enumerate(field_type.fields) if f == (0, 1)]
        self.scalar_norm = (
            nn.BatchNorm2d(len(scalars), eps=eps, momentum=momentum, affine=affine) if scalars else None
        )
        m = _field_sum_matrix(field_type, fields)
        dims = m.sum(dim=1)  # [F]
        self.register_buffer("_sum", m, persistent=False)  # [F, dim]
        self.register_buffer("_dims", dims, persistent=False)
        self.register_buffer("_scalars", torch.tensor(scalars, dtype=torch.long), persistent=False)
        self.register_buffer("running_sq", torch.ones(len(fields)))
        self.weight = nn.Parameter(torch.ones(len(fields))) if (affine and fields) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.in_type.check_tensor(x, "SteerableBatchNorm input")
        m = self._sum.to(x.dtype)
        y = x
        if m.shape[0]:
            if self.training:
                sq = torch.einsum("fc,bchw->f", m, x * x) / (x.shape[0] * x.shape[2] * x.shape[3])
                sq = sq / self._dims.to(x.dtype)  # [F]: mean square per channel
                with torch.no_grad():
                    self.running_sq.mul_(1 - self.momentum).add_(self.momentum * sq.to(self.running_sq.dtype))
            else:
                sq = self.running_sq.to(x.dtype)
            scale = torch.rsqrt(sq + self.eps)
            if self.weight is not None:
                scale = scale * self.weight
            y = x * (scale @ m)[None, :, None, None]  # scalar channels get 0 here
        if self.scalar_norm is not None:
            y = y.index_copy(1, self._scalars, self.scalar_norm(x.index_select(1, self._scalars)))
        return y


class SteerableGroupNorm(nn.Module):
    """Equivariant normalisation per sample (no batch statistics, the same in train and eval mode).

    Trivial fields: ``nn.GroupNorm`` over them with ``groups`` groups (the largest divisor of their count
    that is at most ``groups``). Non-trivial fields (2-dim irreps and ``0-``): divided by the root of
    their mean squared norm per channel over all of them and the grid, per sample (norms are invariant,
    and no mean is subtracted), then scaled by a learned factor per field. The choice for U-Net-like or
    small-batch training, where batch statistics are noisy.

    Args:
        field_type: :class:`~sim.groups.o2.Irreps`.
        groups: groups of the trivial fields.
        eps: added to the mean square.
        affine: learned scale per field (and shift of the trivial fields).

    Shapes:
        ``[B, dim, H, W] -> [B, dim, H, W]``.
    """

    def __init__(self, field_type: Irreps, *, groups: int = 8, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"SteerableGroupNorm: groups must be an int >= 1, got {groups!r}")
        self.in_type = self.out_type = field_type
        self.eps = eps
        fields = [i for i, f in enumerate(field_type.fields) if f != (0, 1)]
        scalars = [field_type.slices()[i].start for i, f in enumerate(field_type.fields) if f == (0, 1)]
        n_groups = max(g for g in range(1, min(groups, max(len(scalars), 1)) + 1) if len(scalars) % g == 0)
        self.scalar_norm = nn.GroupNorm(n_groups, len(scalars), eps=eps, affine=affine) if scalars else None
        m = _field_sum_matrix(field_type, fields)  # [F, dim]
        self.register_buffer("_sum", m, persistent=False)
        self.register_buffer("_mask", m.sum(dim=0), persistent=False)  # [dim]: 1 on non-trivial channels
        self.register_buffer("_scalars", torch.tensor(scalars, dtype=torch.long), persistent=False)
        self.weight = nn.Parameter(torch.ones(len(fields))) if (affine and fields) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.in_type.check_tensor(x, "SteerableGroupNorm input")
        y = x
        if self._sum.shape[0]:
            mask = self._mask.to(x.dtype)[None, :, None, None]  # [1, dim, 1, 1]
            n = mask.sum() * x.shape[2] * x.shape[3]
            sq = (x * x * mask).sum(dim=(1, 2, 3), keepdim=True) / n  # [B, 1, 1, 1]: per-sample mean square
            scale = torch.rsqrt(sq + self.eps) * mask  # [B, dim, 1, 1]
            if self.weight is not None:
                scale = scale * (self.weight.to(x.dtype) @ self._sum.to(x.dtype))[None, :, None, None]
            y = x * scale  # scalar channels get 0 here
        if self.scalar_norm is not None:
            y = y.index_copy(1, self._scalars, self.scalar_norm(x.index_select(1, self._scalars)))
        return y


# ---------------------------------------------------------------------------------------------------
# regular <-> irreps
def _fourier_irreps(group: PlanarGroup, max_frequency: int) -> Irreps:
    if isinstance(max_frequency, bool) or not isinstance(max_frequency, int) or max_frequency < 0:
        raise ValueError(f"max_frequency must be an int >= 0, got {max_frequency!r}")
    if 2 * max_frequency >= group.n:
        raise ValueError(
            f"max_frequency={max_frequency} aliases on {group.name}: the regular representation of "
            f"{group.name} resolves frequencies < {group.n / 2:g}"
        )
    if group.reflections:
        return Irreps("O2", ((0, 1), (0, -1), *((k, 1) for k in range(1, max_frequency + 1))))
    return Irreps("SO2", tuple((k, 1) for k in range(max_frequency + 1)))


def _synthesis(group: PlanarGroup, irreps: Irreps) -> np.ndarray:
    """``E [|G|, d]``: ``E[g] = concat_k (rho_k(g) e)^T`` with ``e = e_1`` (2-dim) or 1, so that
    ``f(g) = E[g] @ c`` is a regular feature that transforms like ``c`` (``rho_reg(h) E = E rho(h)``)."""
    rows = []
    for g in group.elements():
        rho = irreps.rho(group.angle(g), group.is_reflection(g))
        rows.append(np.concatenate([rho[sl, sl.start] for sl in irreps.slices()]))
    return np.stack(rows)


class RegularToIrreps(nn.Module):
    """Fourier transform on C_N / D_N: regular features (G-CNN layout) to SO(2) / O(2) irreps.

    Each regular field ``f [|G|]`` becomes the coefficients ``c_k = (d_k / |G|) sum_g (rho_k(g) e) f(g)``
    of frequencies ``0 .. max_frequency`` (C_N: ``"0 + 1 + ... + L"`` of SO(2); D_N: ``"0+ + 0- + 1 + ...
    + L"`` of O(2)), field after field. Equivariant for the group (the irreps restricted to it); the
    inverse of :class:`IrrepsToRegular` exactly, and its left inverse on band-limited regular features
    (those in the span of the synthesis).

    Args:
        group: C_N or D_N.
        channels: regular fields ``C``.
        max_frequency: ``L < N / 2`` (higher frequencies alias on the group).

    Attributes:
        in_type: ``FieldType.regular_fields(group, C)``; out_type: :class:`~sim.groups.o2.Irreps` of the
        ``C`` blocks.

    Shapes:
        ``[B, C, |G|, H, W] -> [B, C * d, H, W]``.
    """

    def __init__(self, group: PlanarGroup, channels: int, *, max_frequency: int):
        super().__init__()
        block = _fourier_irreps(group, max_frequency)
        self.group, self.channels = group, channels
        self.in_type = FieldType.regular_fields(group, channels)
        self.out_type = Irreps(block.group, block.fields * channels)
        e = _synthesis(group, block)  # [G, d]
        dims = np.array(
            [float(sl.stop - sl.start) for sl in block.slices() for _ in range(sl.stop - sl.start)]
        )
        self.register_buffer(
            "_analysis", torch.tensor((e * dims / group.order).T), persistent=False
        )  # [d, G]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.in_type.check_tensor(x, "RegularToIrreps input")
        B, C, _, H, W = x.shape
        c = torch.einsum("dg,bcghw->bcdhw", self._analysis.to(x.dtype), x)  # [B, C, d, H, W]
        return c.reshape(B, -1, H, W)  # [B, C*d, H, W]


class IrrepsToRegular(nn.Module):
    """Inverse Fourier transform: SO(2)/O(2) irreps (as :class:`RegularToIrreps` makes them) to regular
    features of C_N / D_N, ``f(g) = sum_k (rho_k(g) e) . c_k``.

    Args, attributes: as :class:`RegularToIrreps`, with in and out swapped.

    Shapes:
        ``[B, C * d, H, W] -> [B, C, |G|, H, W]``.
    """

    def __init__(self, group: PlanarGroup, channels: int, *, max_frequency: int):
        super().__init__()
        block = _fourier_irreps(group, max_frequency)
        self.group, self.channels = group, channels
        self.in_type = Irreps(block.group, block.fields * channels)
        self.out_type = FieldType.regular_fields(group, channels)
        self.register_buffer("_synthesis", torch.tensor(_synthesis(group, block)), persistent=False)  # [G, d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.in_type.check_tensor(x, "IrrepsToRegular input")
        B, _, H, W = x.shape
        c = x.reshape(B, self.channels, -1, H, W)  # [B, C, d, H, W]
        return torch.einsum("gd,bcdhw->bcghw", self._synthesis.to(x.dtype), c)
