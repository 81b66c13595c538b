"""SO(3)/O(3)-equivariant layers on irreps features: linear, tensor product, gate, and TFN/NequIP convolution.

Features are plain tensors ``[..., irreps.dim]`` in the layout of :class:`sim.groups.so3.Irreps` (per
entry ``mul`` consecutive blocks of ``2l + 1`` components, ``m = -l .. l``); a rotation or reflection ``R``
acts on them by ``x @ irreps.D(R).T``. Every module exposes ``irreps_in`` / ``irreps_out`` (and
``irreps_in1`` / ``irreps_in2`` for the tensor product). Equivariance holds for O(3): parities are tracked
(the spherical harmonics of edge vectors are ``0e + 1o + 2e + ...``).

Normalization follows e3nn's defaults (``irrep_normalization="component"``, ``path_normalization=
"element"``): with unit-variance weights and inputs whose components have unit second moment, every
output component has second moment about 1.

Graphs follow :func:`sim.discretize.mesh.mesh_to_graph`: ``edge_index [2, E]`` with row 0 the senders
``j`` and row 1 the receivers ``i``, ``edge_vec = pos[j] - pos[i]``; the message ``m_ij`` flows from
``j`` to ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from sim.groups.so3 import Irreps, _sh_all, clebsch_gordan

__all__ = [
    "Gate",
    "IrrepsLinear",
    "RadialBasis",
    "SphericalHarmonics",
    "TensorProduct",
    "TensorProductConv",
]


def _irreps(value, what: str) -> Irreps:
    try:
        return Irreps(value)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None


# ---------------------------------------------------------------------------------------------------
class IrrepsLinear(nn.Module):
    """Equivariant linear map: mixes the multiplicities of equal irreps ``(l, p)``, never the components.

    ``out_j = sum_{i: ir_i = ir_j} x_i W_ij / sqrt(fan_in_j)`` with ``W_ij [mul_i, mul_j]`` (standard normal
    at init) and ``fan_in_j`` the total multiplicity of inputs of irrep ``ir_j``; plus a bias on ``0e``
    outputs when ``bias``. Outputs whose irrep is absent from the input are zero (plus bias).

    Args:
        irreps_in, irreps_out: irreps (strings or :class:`Irreps`).
        bias: learnable bias on the ``0e`` outputs (the only place a bias is equivariant).

    Shapes: ``[..., irreps_in.dim] -> [..., irreps_out.dim]``.
    """

    def __init__(self, irreps_in, irreps_out, *, bias: bool = False) -> None:
        super().__init__()
        self.irreps_in = _irreps(irreps_in, "IrrepsLinear irreps_in")
        self.irreps_out = _irreps(irreps_out, "IrrepsLinear irreps_out")
        self.paths: list[tuple[int, int]] = []
        fan_in = {e.ir: 0 for e in self.irreps_out}
        for e in self.irreps_in:
            if e.ir in fan_in:
                fan_in[e.ir] += e.mul
        self.weights = nn.ParameterList()
        self._scale: list[float] = []
        for j, eo in enumerate(self.irreps_out):
            for i, ei in enumerate(self.irreps_in):
                if ei.ir == eo.ir and ei.mul > 0 and eo.mul > 0:
                    self.paths.append((i, j))
                    self.weights.append(nn.Parameter(torch.randn(ei.mul, eo.mul)))
                    self._scale.append(1.0 / math.sqrt(fan_in[eo.ir]))
        n_bias = sum(e.mul for e in self.irreps_out if (e.l, e.p) == (0, 1))
        self.bias = nn.Parameter(torch.zeros(n_bias)) if bias and n_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.irreps_in.check_tensor(x, "IrrepsLinear input")
        lead = x.shape[:-1]
        x = x.reshape(-1, self.irreps_in.dim)  # [B, dim_in]
        ins = [
            x[:, sl].reshape(-1, e.mul, 2 * e.l + 1)  # [B, mul, 2l+1]
            for e, sl in zip(self.irreps_in, self.irreps_in.slices(), strict=True)
        ]
        outs: list[torch.Tensor | None] = [None] * len(self.irreps_out)
        for (i, j), w, s in zip(self.paths, self.weights, self._scale, strict=True):
            y = torch.einsum("bum,uw->bwm", ins[i], w.to(x.dtype) * s)  # [B, mul_out, 2l+1]
            outs[j] = y if outs[j] is None else outs[j] + y
        pieces, b = [], 0
        for j, e in enumerate(self.irreps_out):
            y = outs[j] if outs[j] is not None else x.new_zeros(x.shape[0], e.mul, 2 * e.l + 1)
            if self.bias is not None and (e.l, e.p) == (0, 1):
                y = y + self.bias[b : b + e.mul].to(x.dtype)[None, :, None]
                b += e.mul
            pieces.append(y.reshape(x.shape[0], e.dim))
        return torch.cat(pieces, dim=-1).reshape(*lead, self.irreps_out.dim)

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}"


# ---------------------------------------------------------------------------------------------------
class TensorProduct(nn.Module):
    """The weighted, fully connected tensor product (e3nn's ``FullyConnectedTensorProduct``, ``uvw`` paths).

    For every path ``(i1, i2, i3)`` with ``|l1 - l2| <= l3 <= l1 + l2`` and ``p1 p2 = p3``:

    ``out_i3[w, k] += alpha_i3 sqrt(2 l3 + 1) sum_{u, v, i, j} W_path[u, v, w] C_ijk x1_i1[u, i] x2_i2[v, j]``

    with ``C = clebsch_gordan(l1, l2, l3)`` and ``alpha_i3 = 1 / sqrt(sum of mul1 mul2 over the paths
    into i3)``. Paths are ordered by ``(i1, i2, i3)``; the weights are one flat vector of
    :attr:`weight_numel` entries, path after path, each ``[mul1, mul2, mul3]`` row-major (e3nn's layout).

    Implementation: per input entry ``i1`` one matmul contracts ``x2`` with all its Clebsch-Gordan blocks
    and one batched matmul contracts the result with ``x1``; then per path one matmul with its weights
    (a GEMM with shared weights, a batched matmul with per-sample weights), accumulated per output entry.
    Splits instead of slices (their backward is one ``cat``, not a zero-filled tensor per slice); no
    Python loop over samples.

    Args:
        irreps_in1, irreps_in2, irreps_out: irreps (strings or :class:`Irreps`).
        shared_weights: weights are a parameter of the module (``True``), or passed to ``forward`` per
            sample (``False``, e.g. from a radial MLP).

    Shapes: ``x1 [..., irreps_in1.dim]``, ``x2 [..., irreps_in2.dim]`` (same leading shape),
    ``weight [..., weight_numel]`` when not shared -> ``[..., irreps_out.dim]``.

    Raises:
        ValueError: irreps that do not parse, or no allowed path into any output (the message names the
            three irreps).
    """

    def __init__(self, irreps_in1, irreps_in2, irreps_out, *, shared_weights: bool = True) -> None:
        super().__init__()
        self.irreps_in1 = _irreps(irreps_in1, "TensorProduct irreps_in1")
        self.irreps_in2 = _irreps(irreps_in2, "TensorProduct irreps_in2")
        self.irreps_out = _irreps(irreps_out, "TensorProduct irreps_out")
        self.shared_weights = shared_weights
        in1, in2, out = self.irreps_in1, self.irreps_in2, self.irreps_out
        paths = [
            (i1, i2, i3)
            for i1, a in enumerate(in1)
            for i2, b in enumerate(in2)
            for i3, c in enumerate(out)
            if a.mul and b.mul and c.mul and abs(a.l - b.l) <= c.l <= a.l + b.l and a.p * b.p == c.p
        ]
        if not paths:
            raise ValueError(
                f"TensorProduct: no allowed path from {in1} x {in2} to {out} (need |l1-l2| <= l3 <= l1+l2 "
                "and p1 p2 = p3)"
            )
        self.paths = paths
        fan_in = [sum(in1[p[0]].mul * in2[p[1]].mul for p in paths if p[2] == i3) for i3 in range(len(out))]
        sizes = [in1[a].mul * in2[b].mul * out[c].mul for a, b, c in paths]
        self.weight_numel = int(sum(sizes))

        # Per i1: CG matrix [dim2, Q * (2l1+1)] with columns (path, k, v, i); Q = sum over its paths of
        # mul2 (2 l3 + 1).
        self._by_in1: list[tuple[int, int, list[int], list[int]]] = []  # (i1, Q, its paths, their widths)
        sl2 = in2.slices()
        for i1, a in enumerate(in1):
            mine = [n for n, p in enumerate(paths) if p[0] == i1]
            if not mine:
                continue
            d1 = 2 * a.l + 1
            q = sum(in2[paths[n][1]].mul * (2 * out[paths[n][2]].l + 1) for n in mine)
            big = np.zeros((in2.dim, q, d1))
            col, widths = 0, []
            for n in mine:
                _, i2, i3 = paths[n]
                b, c = in2[i2], out[i3]
                cg = clebsch_gordan(a.l, b.l, c.l).numpy() * math.sqrt(2 * c.l + 1) / math.sqrt(fan_in[i3])
                d2, d3 = 2 * b.l + 1, 2 * c.l + 1
                for v in range(b.mul):
                    rows = slice(sl2[i2].start + v * d2, sl2[i2].start + (v + 1) * d2)
                    cols = col + np.arange(d3) * b.mul + v  # column (k, v)
                    big[rows, cols, :] = cg.transpose(1, 2, 0)  # [j, k, i]
                widths.append(b.mul * d3)
                col += b.mul * d3
            self.register_buffer(f"_cg{i1}", torch.from_numpy(big.reshape(in2.dim, q * d1)), persistent=False)
            self._by_in1.append((i1, q, mine, widths))
        # Per i3: the paths into it (their weights are the slices of ``sizes`` of the flat vector).
        self._sizes = sizes
        self._by_out: list[tuple[int, list[int]]] = []
        for i3 in range(len(out)):
            mine = [n for n, p in enumerate(paths) if p[2] == i3]
            if mine:
                self._by_out.append((i3, mine))
        self.weight = nn.Parameter(torch.randn(self.weight_numel)) if shared_weights else None

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        self.irreps_in1.check_tensor(x1, "TensorProduct x1")
        self.irreps_in2.check_tensor(x2, "TensorProduct x2")
        if x1.shape[:-1] != x2.shape[:-1]:
            raise ValueError(
                "TensorProduct: x1 and x2 need the same leading shape, "
                f"got {list(x1.shape)} and {list(x2.shape)}"
            )
        if self.shared_weights:
            if weight is not None:
                raise ValueError("TensorProduct(shared_weights=True): pass no weight to forward")
            weight = self.weight.to(x1.dtype)
        elif weight is None or weight.shape != (*x1.shape[:-1], self.weight_numel):
            got = None if weight is None else list(weight.shape)
            raise ValueError(
                f"TensorProduct(shared_weights=False): weight must be {[*x1.shape[:-1], self.weight_numel]}, "
                f"got {got}"
            )
        lead = x1.shape[:-1]
        x1 = x1.reshape(-1, self.irreps_in1.dim)  # [E, dim1]
        x2 = x2.reshape(-1, self.irreps_in2.dim)  # [E, dim2]
        n = x1.shape[0]
        if not self.shared_weights:
            weight = weight.reshape(n, self.weight_numel)  # [E, numel]
        # split, not slices: the backward of a split is one cat, that of a slice a zero-filled full tensor
        blocks1 = torch.split(x1, [e.dim for e in self.irreps_in1], dim=-1)  # [E, mul1 (2l1+1)] each
        columns: dict[int, torch.Tensor] = {}  # path -> [E, (k, v), mul1]
        for i1, q, mine, widths in self._by_in1:
            a = self.irreps_in1[i1]
            d1 = 2 * a.l + 1
            m = (x2 @ getattr(self, f"_cg{i1}").to(x2.dtype)).view(n, q, d1)  # [E, Q, 2l1+1]
            z = torch.bmm(m, blocks1[i1].view(n, a.mul, d1).transpose(1, 2))  # [E, Q, mul1]
            columns.update(zip(mine, torch.split(z, widths, dim=1), strict=True))
        weights = torch.split(weight, self._sizes, dim=-1)  # per path, [.., mul1 mul2 mul3] (u, v, w)
        pieces: list[torch.Tensor | None] = [None] * len(self.irreps_out)
        for i3, mine in self._by_out:
            c = self.irreps_out[i3]
            d3 = 2 * c.l + 1
            # One matmul per path, accumulated: shorter sums than one GEMM over all paths, so float32
            # rounding (and the equivariance error) stays at the level of a single path.
            y = None
            for p in mine:
                m1, m2 = self.irreps_in1[self.paths[p][0]].mul, self.irreps_in2[self.paths[p][1]].mul
                z = columns[p].reshape(n, d3, m2 * m1)  # [E, 2l3+1, (v, u)]
                if self.shared_weights:  # [(v, u), mul3]
                    wp = weights[p].view(m1, m2, c.mul).transpose(0, 1).reshape(m2 * m1, c.mul)
                else:  # [E, (v, u), mul3]
                    wp = weights[p].view(n, m1, m2, c.mul).transpose(1, 2).reshape(n, m2 * m1, c.mul)
                yp = torch.matmul(z, wp)  # [E, 2l3+1, mul3]
                y = yp if y is None else y + yp
            pieces[i3] = y.transpose(1, 2).reshape(n, c.dim)  # [E, mul3 (2l3+1)]
        out = [
            p if p is not None else x1.new_zeros(n, e.dim)
            for p, e in zip(pieces, self.irreps_out, strict=True)
        ]
        return torch.cat(out, dim=-1).reshape(*lead, self.irreps_out.dim)

    def extra_repr(self) -> str:
        return (
            f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, {len(self.paths)} paths, "
            f"weight_numel={self.weight_numel}, shared_weights={self.shared_weights}"
        )


# ---------------------------------------------------------------------------------------------------
def _parity(act: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """+1 for an even function, -1 for an odd one, 0 otherwise (checked on a few points)."""
    x = torch.linspace(0.1, 3.0, 16, dtype=torch.float64)
    a, b = act(x), act(-x)
    if torch.allclose(a, b, atol=1e-9):
        return 1
    if torch.allclose(a, -b, atol=1e-9):
        return -1
    return 0


def _per_entry(acts, irreps: Irreps, what: str) -> list:
    if callable(acts):
        return [acts] * len(irreps)
    acts = list(acts)
    if len(acts) != len(irreps):
        raise ValueError(
            f"Gate: {what} needs one activation per entry of {irreps} ({len(irreps)}), got {len(acts)}"
        )
    return acts


class Gate(nn.Module):
    """Gated nonlinearity (e3nn's ``Gate``): activated scalars, and higher-degree fields times gates.

    Input ``[scalars | gates | gated]`` (irreps ``irreps_scalars + irreps_gates + irreps_gated``), output
    ``[act_scalars(scalars) | act_gates(gates)_n * gated_n]`` with gate ``n`` multiplying the ``n``-th
    field of ``irreps_gated``. Scalars and gates must be of degree 0. Parity: an even scalar stays even;
    an odd one needs an odd (output odd) or even (output even) activation. The gated field's parity is
    multiplied by the parity of its activated gate.

    Args:
        irreps_scalars: degree-0 irreps passed through ``act_scalars``.
        act_scalars: one callable, or one per entry of ``irreps_scalars``.
        irreps_gates: degree-0 irreps, as many fields as ``irreps_gated`` has.
        act_gates: one callable, or one per entry of ``irreps_gates``.
        irreps_gated: the fields multiplied by the gates.

    Shapes: ``[..., irreps_in.dim] -> [..., irreps_out.dim]``.

    Raises:
        ValueError: non-scalar scalars or gates, a gate count that differs from the gated fields, an odd
            scalar with an activation that is neither even nor odd.
    """

    def __init__(self, irreps_scalars, act_scalars, irreps_gates, act_gates, irreps_gated) -> None:
        super().__init__()
        self.irreps_scalars = _irreps(irreps_scalars, "Gate irreps_scalars")
        self.irreps_gates = _irreps(irreps_gates, "Gate irreps_gates")
        self.irreps_gated = _irreps(irreps_gated, "Gate irreps_gated")
        for name, ir in (("irreps_scalars", self.irreps_scalars), ("irreps_gates", self.irreps_gates)):
            if any(e.l != 0 for e in ir):
                raise ValueError(f"Gate: {name} must be degree 0 only, got {ir}")
        if self.irreps_gates.num_irreps != self.irreps_gated.num_irreps:
            raise ValueError(
                f"Gate: {self.irreps_gates.num_irreps} gates ({self.irreps_gates}) for "
                f"{self.irreps_gated.num_irreps} gated fields ({self.irreps_gated})"
            )
        self.acts_scalars = _per_entry(act_scalars, self.irreps_scalars, "act_scalars")
        self.acts_gates = _per_entry(act_gates, self.irreps_gates, "act_gates")
        out_scalars = [
            (e.mul, 0, self._out_parity(e.p, act, "scalar"))
            for e, act in zip(self.irreps_scalars, self.acts_scalars, strict=True)
        ]
        gate_parity = []  # one per gate field
        for e, act in zip(self.irreps_gates, self.acts_gates, strict=True):
            gate_parity += [self._out_parity(e.p, act, "gate")] * e.mul
        out_gated, n = [], 0
        for e in self.irreps_gated:
            for _ in range(e.mul):
                out_gated.append((1, e.l, e.p * gate_parity[n]))
                n += 1
        self.irreps_in = self.irreps_scalars + self.irreps_gates + self.irreps_gated
        self.irreps_out = (Irreps(out_scalars) + Irreps(out_gated)).simplify()
        # gate index of every component of the gated block: [dim_gated]
        rep = [
            n
            for n, e in enumerate(f for f in self.irreps_gated for _ in range(f.mul))
            for _ in range(2 * e.l + 1)
        ]
        self.register_buffer("_gate_index", torch.tensor(rep, dtype=torch.int64), persistent=False)

    @staticmethod
    def _out_parity(p: int, act, what: str) -> int:
        if p == 1:
            return 1
        parity = _parity(act)
        if parity == 0:
            raise ValueError(f"Gate: an odd {what} (0o) needs an even or odd activation, got {act!r}")
        return 1 if parity == 1 else -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.irreps_in.check_tensor(x, "Gate input")
        ns, ng = self.irreps_scalars.dim, self.irreps_gates.dim
        scalars, gates, gated = x[..., :ns], x[..., ns : ns + ng], x[..., ns + ng :]
        parts = [
            act(scalars[..., sl])
            for act, sl in zip(self.acts_scalars, self.irreps_scalars.slices(), strict=True)
        ]
        if ng:
            g = torch.cat(
                [
                    act(gates[..., sl])
                    for act, sl in zip(self.acts_gates, self.irreps_gates.slices(), strict=True)
                ],
                dim=-1,
            )  # [..., num_gates]
            parts.append(gated * g[..., self._gate_index])
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}"


# ---------------------------------------------------------------------------------------------------
class SphericalHarmonics(nn.Module):
    """All real spherical harmonics of ``irreps`` (degrees with parity ``(-1)^l``) of ``[..., 3]`` vectors.

    Shapes: ``[..., 3] -> [..., irreps.dim]`` (see :func:`sim.groups.so3.spherical_harmonics`).

    Raises:
        ValueError: an entry with multiplicity other than 1 or parity other than ``(-1)^l``.
    """

    def __init__(self, irreps, *, normalize: bool = True, normalization: str = "component") -> None:
        super().__init__()
        self.irreps_out = _irreps(irreps, "SphericalHarmonics irreps")
        for e in self.irreps_out:
            if e.mul != 1 or e.p != (-1) ** e.l:
                raise ValueError(
                    "SphericalHarmonics: need entries 1x{l}{(-1)^l} (0e, 1o, 2e, ...), "
                    f"got {self.irreps_out}"
                )
        self.normalize, self.normalization = normalize, normalization

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        ys = _sh_all(
            self.irreps_out.lmax, vectors, normalize=self.normalize, normalization=self.normalization
        )
        return torch.cat([ys[l] for l in self.irreps_out.ls], dim=-1)


class RadialBasis(nn.Module):
    """NequIP's Bessel radial basis with a smooth polynomial cutoff.

    ``B_n(r) = sqrt(2 / c) sin(n pi r / c) / r * u(r / c)``, ``n = 1 .. num_basis``, with the envelope
    ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)`` (``p = 6``) for ``x < 1``, 0 beyond.

    Shapes: ``r [...] -> [..., num_basis]``.
    """

    def __init__(self, num_basis: int, *, cutoff: float, p: int = 6) -> None:
        super().__init__()
        if num_basis < 1 or not cutoff > 0:
            raise ValueError(f"RadialBasis: need num_basis >= 1 and cutoff > 0, got {num_basis}, {cutoff}")
        self.num_basis, self.cutoff, self.p = num_basis, float(cutoff), p
        self.register_buffer("_freq", torch.arange(1, num_basis + 1) * math.pi / cutoff, persistent=False)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x = r / self.cutoff
        p = self.p
        env = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
        env = torch.where(x < 1, env, torch.zeros_like(env))
        safe = torch.where(r > 0, r, torch.ones_like(r))
        out = (
            math.sqrt(2 / self.cutoff) * torch.sin(self._freq.to(r.dtype) * safe[..., None]) / safe[..., None]
        )
        return out * env[..., None]


class TensorProductConv(nn.Module):
    """TFN/NequIP message passing: ``m_ij = TP(x_j, Y(edge_vec_ij); MLP(B(|edge_vec_ij|)))``.

    ``out_i = agg_{j -> i} m_ij (+ IrrepsLinear(x_i) with self_interaction)``, with ``Y`` the spherical
    harmonics ``0e + 1o + ... + lmax`` (component normalization), ``B`` the :class:`RadialBasis`, the
    MLP ``num_basis -> hidden -> SiLU -> ... -> weight_numel`` and ``agg`` the sum or the mean over the
    incoming edges (nodes without edges get 0).

    Args:
        irreps_in, irreps_out: node feature irreps.
        lmax: largest degree of the edge harmonics.
        cutoff: radius of the radial basis (edges longer than it carry no message).
        num_basis: radial basis functions.
        hidden: widths of the hidden layers of the radial MLP.
        aggregate: ``"mean"`` or ``"sum"``.
        self_interaction: add a linear map of the receiver's own features (with a bias on ``0e``).

    Forward:
        x: ``[N, irreps_in.dim]`` node features.
        edge_index: ``[2, E]`` int64, row 0 senders ``j``, row 1 receivers ``i``.
        pos: ``[N, 3]`` positions, or
        edge_vec: ``[E, 3]`` = ``pos[j] - pos[i]`` (exactly one of the two).

    Returns:
        ``[N, irreps_out.dim]``.
    """

    def __init__(
        self,
        irreps_in,
        irreps_out,
        *,
        lmax: int = 2,
        cutoff: float,
        num_basis: int = 8,
        hidden: Sequence[int] = (32,),
        aggregate: str = "mean",
        self_interaction: bool = True,
    ) -> None:
        super().__init__()
        if aggregate not in ("mean", "sum"):
            raise ValueError(f"TensorProductConv: aggregate must be 'mean' or 'sum', got {aggregate!r}")
        self.irreps_in = _irreps(irreps_in, "TensorProductConv irreps_in")
        self.irreps_out = _irreps(irreps_out, "TensorProductConv irreps_out")
        self.irreps_sh = Irreps.spherical_harmonics(lmax)
        self.aggregate = aggregate
        self.sh = SphericalHarmonics(self.irreps_sh)
        self.radial = RadialBasis(num_basis, cutoff=cutoff)
        self.tp = TensorProduct(self.irreps_in, self.irreps_sh, self.irreps_out, shared_weights=False)
        layers: list[nn.Module] = []
        width = num_basis
        for h in hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, self.tp.weight_numel))
        self.mlp = nn.Sequential(*layers)
        self.self_interaction = (
            IrrepsLinear(self.irreps_in, self.irreps_out, bias=True) if self_interaction else None
        )

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        *,
        pos: torch.Tensor | None = None,
        edge_vec: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.irreps_in.check_tensor(x, "TensorProductConv x")
        if x.ndim != 2:
            raise ValueError(f"TensorProductConv x: expected [N, {self.irreps_in.dim}], got {list(x.shape)}")
        if edge_index.ndim != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"TensorProductConv edge_index: expected [2, E], got {list(edge_index.shape)}")
        sender, receiver = edge_index[0], edge_index[1]
        if (pos is None) == (edge_vec is None):
            raise ValueError("TensorProductConv: pass exactly one of pos [N, 3] and edge_vec [E, 3]")
        if edge_vec is None:
            if pos.shape != (x.shape[0], 3):
                raise ValueError(f"TensorProductConv pos: expected [{x.shape[0]}, 3], got {list(pos.shape)}")
            edge_vec = pos[sender] - pos[receiver]  # [E, 3]
        elif edge_vec.shape != (edge_index.shape[1], 3):
            raise ValueError(
                f"TensorProductConv edge_vec: expected [{edge_index.shape[1]}, 3], got {list(edge_vec.shape)}"
            )
        edge_vec = edge_vec.to(x.dtype)
        sh = self.sh(edge_vec)  # [E, sh_dim]
        basis = self.radial(torch.linalg.vector_norm(edge_vec, dim=-1))  # [E, num_basis]
        weight = self.mlp(basis.to(self.mlp[0].weight.dtype)).to(x.dtype)  # [E, weight_numel]
        messages = self.tp(x[sender], sh, weight)  # [E, dim_out]
        out = x.new_zeros(x.shape[0], self.irreps_out.dim).index_add_(0, receiver, messages)  # [N, dim_out]
        if self.aggregate == "mean":
            count = torch.bincount(receiver, minlength=x.shape[0]).clamp(min=1).to(x.dtype)  # [N]
            out = out / count[:, None]
        if self.self_interaction is not None:
            out = out + self.self_interaction(x)
        return out

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}, sh {self.irreps_sh}, aggregate={self.aggregate}"
