"""Message passing on meshes and point clouds: EGNN, MeshGraphNets' processor block, and an
O(d)-equivariant version of that block with scalar and vector features.

Conventions (shared with :func:`sim.discretize.mesh.mesh_to_graph` and :mod:`sim.nn.tensor_product`):

* Node features ``[N, F]``; node vector channels ``[N, C, d]`` (``C`` channels of ``d``-vectors,
  ``d = 2`` or ``3``); edge features ``[E, F]`` and edge vector channels ``[E, C, d]``.
* ``edge_index [2, E]`` int64 with row 0 the senders ``j`` and row 1 the receivers ``i``: the message
  ``m_ij`` flows from ``j`` to ``i`` and is summed at ``i``. Both directions of a mesh edge are two edges.
* Relative positions are ``x_ij = pos[j] - pos[i]`` (sender minus receiver, MeshGraphNets'
  ``relative_mesh_pos``, ``mesh_to_graph``'s ``edge_vec``). The EGNN paper writes ``x_i - x_j = -x_ij``.
* A group element ``(R, t)`` of E(d) acts by ``pos -> pos @ R.T + t``, ``V -> V @ R.T`` on vectors and
  leaves scalars alone (:func:`sim.testing.assert_en_equivariant` checks exactly this, with node and edge
  permutations).

Fast path, used by every layer here: the first linear layer of an edge MLP on the concatenation
``[h_i, h_j, e_ij]`` is evaluated as ``(W_r h)[i] + (W_s h)[j] + W_e e_ij``: the same function with the
same parameters (one ``nn.Linear`` over the concatenated width, so state dicts have the plain layout),
two of the three products on ``N`` rows instead of ``E``, and no ``[E, 3F]`` concatenation kept for the
backward pass. Vector channels are kept internally as ``[M, d, C]`` so that channel mixing is one GEMM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "MLP",
    "EGNNLayer",
    "EquivariantMeshBlock",
    "MeshGraphNetBlock",
    "VectorNorm",
    "check_edge_index",
    "check_shape",
    "lecun_init_",
    "mix_vectors",
]


# ---------------------------------------------------------------------------------------------------
# Input checks and small pieces


def check_shape(what: str, name: str, x, expected: Sequence[int | None], labels: str) -> None:
    """Raise unless ``x`` is a tensor of shape ``expected`` (None: any size); ``labels`` names the axes.

    Example: ``check_shape("EGNNLayer", "pos", pos, (10, None), "N d")`` raises
    ``ValueError("EGNNLayer: pos must be [N=10, d], got [10, 2, 1]")`` for a ``[10, 2, 1]`` tensor.
    """
    ok = (
        torch.is_tensor(x)
        and x.ndim == len(expected)
        and all(e is None or s == e for s, e in zip(x.shape, expected, strict=True))
    )
    if not ok:
        got = list(x.shape) if torch.is_tensor(x) else type(x).__name__
        want = ", ".join(
            label if e is None else f"{label}={e}" for label, e in zip(labels.split(), expected, strict=True)
        )
        raise ValueError(f"{what}: {name} must be [{want}], got {got}")


def _check_dim(what: str, d: int) -> None:
    if d not in (2, 3):
        raise ValueError(f"{what}: vectors must have d = 2 or 3 components (last axis), got d = {d}")


def check_edge_index(what: str, edge_index, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Senders and receivers ``[E]`` of a valid ``edge_index [2, E]`` (int64, nodes in ``[0, num_nodes)``).

    Raises:
        ValueError: one line naming ``what``, the expectation and the offending value.
    """
    if not torch.is_tensor(edge_index) or edge_index.ndim != 2 or edge_index.shape[0] != 2:
        got = list(edge_index.shape) if torch.is_tensor(edge_index) else type(edge_index).__name__
        raise ValueError(f"{what}: edge_index must be [2, E], got {got}")
    if edge_index.dtype != torch.int64:
        raise ValueError(f"{what}: edge_index must be int64, got {edge_index.dtype}")
    if edge_index.numel() and edge_index.device.type != "meta":  # meta (memory counts): no values
        lo, hi = (int(v) for v in torch.aminmax(edge_index))
        if lo < 0 or hi >= num_nodes:
            raise ValueError(
                f"{what}: edge_index must hold node indices in [0, {num_nodes}), got {lo if lo < 0 else hi}"
            )
    return edge_index[0], edge_index[1]


def _scatter_sum(src: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``out[n] = sum of src[e] over the edges e with index[e] == n``: ``[E, ...] -> [num_nodes, ...]``.

    Trailing axes are flattened first: ``index_add_`` on ``[E, F]`` rows is several times faster on CPU
    than on ``[E, d, C]`` blocks."""
    flat = src.flatten(1)  # [E, F] (also for E = 0)
    out = flat.new_zeros(num_nodes, flat.shape[1]).index_add_(0, index, flat)  # [num_nodes, F]
    return out.view(num_nodes, *src.shape[1:])


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[index]`` for ``x [N, ...]`` through a flat ``[N, F]`` view (see :func:`_scatter_sum`)."""
    return x.reshape(x.shape[0], -1).index_select(0, index).view(index.shape[0], *x.shape[1:])


def mix_vectors(v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Linear map over the channels of vectors in the internal layout: ``[M, d, C_in] -> [M, d, C_out]``
    with ``weight [C_out, C_in]``; no bias (a bias would not be equivariant)."""
    return F.linear(v, weight.to(v.dtype))


def lecun_init_(module: nn.Module) -> nn.Module:
    """Sonnet's default initialization (MeshGraphNets' reference code) of every ``nn.Linear`` in
    ``module``: weights from a normal distribution of standard deviation ``1 / sqrt(fan_in)`` truncated at
    two standard deviations, zero biases. Activations keep a second moment of order 1 through depth, where
    PyTorch's default (variance ``1 / (3 fan_in)``) shrinks them about 3x per layer."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            std = 1.0 / math.sqrt(max(layer.in_features, 1))
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class MLP(nn.Module):
    """``Linear -> act -> (Linear -> act) x (hidden_layers - 1) -> Linear [-> act] [-> LayerNorm]`` on a
    concatenation of inputs that :meth:`forward` takes in parts.

    The first layer is one ``nn.Linear(sum(sizes_in), hidden)`` (the plain layout of an MLP of
    ``torch.cat(parts)``); each part is multiplied by its block of that weight and then, optionally,
    gathered by an index (the fast path of the module docstring). Parts of width 0 are skipped.

    Args:
        sizes_in: widths of the parts of the input.
        hidden: width of the hidden layers.
        out: output width.
        hidden_layers: number of hidden layers (0: one linear layer).
        act: activation module class.
        final_act: an activation after the last linear layer (EGNN's ``phi_e``).
        layer_norm: a LayerNorm on the output (MeshGraphNets).

    Example: ``mlp((h, sender), (h, receiver), (e, None))`` equals
    ``mlp.reference((h, sender), (h, receiver), (e, None))``, the MLP of
    ``cat([h[sender], h[receiver], e])``.
    """

    def __init__(
        self,
        sizes_in: Sequence[int],
        hidden: int,
        out: int,
        *,
        hidden_layers: int = 2,
        act: type[nn.Module] = nn.ReLU,
        final_act: bool = False,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.sizes_in = tuple(int(s) for s in sizes_in)
        self.first = nn.Linear(sum(self.sizes_in), hidden if hidden_layers else out)
        layers: list[nn.Module] = []
        width = hidden
        for _ in range(max(hidden_layers - 1, 0)):
            layers += [act(), nn.Linear(width, hidden)]
        if hidden_layers:
            layers += [act(), nn.Linear(width, out)]
        if final_act:
            layers.append(act())
        if layer_norm:
            layers.append(nn.LayerNorm(out))
        self.rest = nn.Sequential(*layers)
        lecun_init_(self)

    def forward(self, *parts: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        """``parts``: per input ``(x [M_k, sizes_in[k]], index [R] or None)``; rows ``x[index]`` (or all rows
        of ``x``, which must then number ``R``). Returns ``[R, out]``."""
        weights = torch.split(self.first.weight, self.sizes_in, dim=1)
        y = None
        for (x, index), w in zip(parts, weights, strict=True):
            if w.shape[1] == 0:
                continue
            z = F.linear(x, w)  # [M_k, hidden]
            z = z if index is None else z.index_select(0, index)  # [R, hidden]
            y = z if y is None else y.add_(z)  # in place: y is a fresh tensor no backward needs
        return self.rest(y.add_(self.first.bias))

    def reference(self, *parts: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        """The plain layout: gather, concatenate, then the whole MLP (slow; for tests)."""
        x = torch.cat([p if i is None else p[i] for p, i in parts if p is not None], dim=-1)
        return self.rest(self.first(x))


class VectorNorm(nn.Module):
    """Equivariant RMS normalization of vector channels: ``V_c / sqrt(mean_c |V_c|^2 + eps) * gamma_c``.

    The root mean square norm over the ``C`` channels of each row is invariant under O(d), so the map is
    equivariant; ``gamma [C]`` is a learned per-channel scale (1 at init). Rows of zero vectors stay zero.

    Shapes: ``[M, d, C] -> [M, d, C]`` (the internal layout of this module; ``[M, C, d]`` tensors are
    normalized with ``layout="channels_first"``).
    """

    def __init__(self, channels: int, *, eps: float = 1e-6, layout: str = "channels_last") -> None:
        super().__init__()
        if layout not in ("channels_last", "channels_first"):
            raise ValueError(
                f"VectorNorm: layout must be 'channels_last' or 'channels_first', got {layout!r}"
            )
        self.channels, self.eps, self.layout = channels, eps, layout
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        c_axis = -1 if self.layout == "channels_last" else -2
        if v.ndim != 3 or v.shape[c_axis] != self.channels:
            want = f"[M, d, {self.channels}]" if c_axis == -1 else f"[M, {self.channels}, d]"
            raise ValueError(f"VectorNorm: expected {want}, got {list(v.shape)}")
        flat = v.flatten(1)  # [M, d C] (also for M = 0)
        ms = flat.square().sum(1) / self.channels  # [M] mean |V_c|^2
        weight = self.weight.to(v.dtype)
        weight = weight[None, :] if c_axis == -1 else weight[:, None]  # [1, C] or [C, 1]
        return v * (torch.rsqrt(ms + self.eps)[:, None, None] * weight)  # one full-size product

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}, layout={self.layout}"


# ---------------------------------------------------------------------------------------------------
class EGNNLayer(nn.Module):
    """E(n)-equivariant graph convolution (Satorras, Hoogeboom & Welling 2021, eqs. 3-7).

    With ``x_i - x_j = -x_ij`` (``u_ij`` the same divided by ``|x_i - x_j| + eps`` when ``normalize``):

    * ``m_ij = phi_e(h_i, h_j, |x_i - x_j|^2, a_ij [, vector invariants])`` (eq. 3; two linear layers,
      SiLU after each);
    * vectors (the velocity variant, eq. 7, one coefficient per channel ``c``):
      ``v_i^c' = phi_v(h_i)^c v_i^c + C sum_j u_ij phi_x(m_ij)^c``; the paper passes the *initial*
      velocities ``v^init`` to every layer (see :class:`sim.models.meshgraphnet.EGNN`), a recurrent stack
      passes each layer's output to the next;
    * positions: ``x_i' = x_i + v_i^0'`` with vectors (eq. 7: channel 0 is the velocity that moves the
      points), ``x_i' = x_i + C sum_j u_ij phi_x(m_ij)`` without (eq. 4); unchanged when not
      ``update_pos`` (fixed meshes);
    * ``h_i' = h_i + phi_h(h_i, sum_j e_ij m_ij)`` (eqs. 5-6, residual), with inferred edge weights
      ``e_ij = sigmoid(phi_inf(m_ij))`` when ``infer_edges``, else 1. As in the paper, ``e_ij`` weighs
      only the aggregation into ``h`` (the authors' code also scales the coordinate messages).

    ``C`` is ``1 / (number of incoming edges)`` for ``coord_agg="mean"`` (the authors' default), 1 for
    ``"sum"``, or the given float. ``phi_x``'s last layer has no bias and starts small (Xavier gain 0.001,
    as the authors' code). The authors also detach the norm in ``u_ij``; here gradients are exact.

    ``vector_invariants`` (an extension, off by default): the edge MLP also sees, per vector channel ``c``,
    ``<v_i^c, u_ij>``, ``<v_j^c, u_ij>`` and ``<v_i^c, v_j^c>`` (``u_ij`` of unit length), so that messages
    depend on the vectors and not only on ``h``. All are O(d)-invariants, so equivariance is kept.

    Args:
        hidden: width of ``h`` and of the messages.
        edge_dim: width of the edge attributes ``a_ij`` (0: none).
        vectors: number of vector channels ``C`` carried besides the positions (0: plain EGNN, eq. 4).
        update_pos: move the positions (False for a fixed mesh: ``pos`` is returned unchanged).
        coord_agg: ``"mean"``, ``"sum"`` or a constant ``C``.
        normalize: use ``u_ij = (x_i - x_j) / (|x_i - x_j| + eps)`` in the vector and position updates.
        infer_edges: learn edge weights ``e_ij`` (eq. 6 "edge inference").
        vector_invariants: add the vector inner products above to the message inputs.
        eps: added to lengths before dividing.

    Forward:
        h: ``[N, hidden]`` node scalars.
        pos: ``[N, d]`` positions, ``d`` in {2, 3}.
        edge_index: ``[2, E]`` int64, row 0 senders ``j``, row 1 receivers ``i``.
        vectors: ``[N, C, d]`` (required when ``vectors > 0``, else None).
        edge_attr: ``[E, edge_dim]`` (required when ``edge_dim > 0``, else None).

    Returns:
        ``(h [N, hidden], pos [N, d], vectors [N, C, d] or None)``.

    Raises:
        ValueError: shapes that do not fit, ``d`` not in {2, 3}, ``edge_index`` not int64 ``[2, E]`` or with
            nodes outside ``[0, N)``; one line naming the value and the expectation.
    """

    def __init__(
        self,
        hidden: int,
        *,
        edge_dim: int = 0,
        vectors: int = 0,
        update_pos: bool = True,
        coord_agg: str | float = "mean",
        normalize: bool = False,
        infer_edges: bool = False,
        vector_invariants: bool = False,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        for name, value, least in (("hidden", hidden, 1), ("edge_dim", edge_dim, 0), ("vectors", vectors, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"EGNNLayer: {name} must be an int >= {least}, got {value!r}")
        if isinstance(coord_agg, str) and coord_agg not in ("mean", "sum"):
            raise ValueError(f"EGNNLayer: coord_agg must be 'mean', 'sum' or a float, got {coord_agg!r}")
        if vector_invariants and not vectors:
            raise ValueError("EGNNLayer: vector_invariants=True needs vectors >= 1, got vectors=0")
        self.hidden, self.edge_dim, self.vectors = hidden, edge_dim, vectors
        self.update_pos, self.coord_agg, self.normalize = update_pos, coord_agg, normalize
        self.infer_edges, self.vector_invariants, self.eps = infer_edges, vector_invariants, eps
        n_inv = 3 * vectors if vector_invariants else 0
        self.phi_e = MLP(
            [hidden, hidden, 1, edge_dim, n_inv], hidden, hidden, hidden_layers=1, act=nn.SiLU, final_act=True
        )
        self.phi_x = lecun_init_(
            nn.Sequential(
                nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, max(vectors, 1), bias=False)
            )
        )
        nn.init.xavier_uniform_(self.phi_x[-1].weight, gain=0.001)
        self.phi_v = (
            lecun_init_(nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, vectors)))
            if vectors
            else None
        )
        self.phi_inf = lecun_init_(nn.Linear(hidden, 1)) if infer_edges else None
        self.phi_h = MLP([hidden, hidden], hidden, hidden, hidden_layers=1, act=nn.SiLU)

    def forward(
        self,
        h: torch.Tensor,
        pos: torch.Tensor,
        edge_index: torch.Tensor,
        *,
        vectors: torch.Tensor | None = None,
        edge_attr: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        what = "EGNNLayer"
        check_shape(what, "h", h, (None, self.hidden), "N hidden")
        n = h.shape[0]
        check_shape(what, "pos", pos, (n, None), "N d")
        d = pos.shape[1]
        _check_dim(what, d)
        sender, receiver = check_edge_index(what, edge_index, n)
        if self.vectors:
            check_shape(what, "vectors", vectors, (n, self.vectors, d), "N C d")
        elif vectors is not None:
            raise ValueError(f"{what}: got vectors but the layer was built with vectors=0")
        if self.edge_dim:
            check_shape(what, "edge_attr", edge_attr, (edge_index.shape[1], self.edge_dim), "E edge_dim")
        elif edge_attr is not None:
            raise ValueError(f"{what}: got edge_attr but the layer was built with edge_dim=0")

        diff = pos.index_select(0, receiver) - pos.index_select(0, sender)  # [E, d] x_i - x_j
        radial = diff.square().sum(-1, keepdim=True)  # [E, 1]
        length = radial.sqrt() + self.eps  # [E, 1]
        unit = diff / length if (self.normalize or self.vector_invariants) else diff  # [E, d]
        parts = [(h, receiver), (h, sender), (radial, None), (edge_attr, None)]
        if self.vector_invariants:
            v_i, v_j = _gather(vectors, receiver), _gather(vectors, sender)  # [E, C, d]
            u = unit[:, None, :]  # [E, 1, d]
            inv = torch.cat([(v_i * u).sum(-1), (v_j * u).sum(-1), (v_i * v_j).sum(-1)], dim=-1)  # [E, 3C]
            parts.append((inv, None))
        else:
            parts.append((None, None))
        m = self.phi_e(*parts)  # [E, hidden]

        direction = unit if self.normalize else diff  # [E, d]
        trans = direction[:, None, :] * self.phi_x(m)[:, :, None]  # [E, C', d]
        agg = _scatter_sum(trans, receiver, n)  # [N, C', d]
        if self.coord_agg == "mean":
            count = torch.bincount(receiver, minlength=n).clamp(min=1).to(agg.dtype)  # [N]
            agg = agg / count[:, None, None]
        elif self.coord_agg != "sum":
            agg = agg * float(self.coord_agg)
        new_vectors = None
        if self.vectors:
            new_vectors = self.phi_v(h)[:, :, None] * vectors + agg  # [N, C, d]
            step = new_vectors[:, 0]  # [N, d]
        else:
            step = agg[:, 0]  # [N, d]
        new_pos = pos + step if self.update_pos else pos

        if self.phi_inf is not None:
            m = m * torch.sigmoid(self.phi_inf(m))  # e_ij m_ij
        new_h = h + self.phi_h((h, None), (_scatter_sum(m, receiver, n), None))  # [N, hidden]
        return new_h, new_pos, new_vectors

    def extra_repr(self) -> str:
        return (
            f"hidden={self.hidden}, edge_dim={self.edge_dim}, vectors={self.vectors}, "
            f"update_pos={self.update_pos}, coord_agg={self.coord_agg!r}, normalize={self.normalize}, "
            f"infer_edges={self.infer_edges}, vector_invariants={self.vector_invariants}"
        )


# ---------------------------------------------------------------------------------------------------
class MeshGraphNetBlock(nn.Module):
    """One processor step of MeshGraphNets (Pfaff et al. 2021; DeepMind's ``GraphNetBlock``).

    ``u_ij = MLP_e(h_j, h_i, e_ij)`` (sender, receiver, edge: the reference code's order),
    ``h_i' = h_i + MLP_n(h_i, sum_j u_ij)``, ``e_ij' = e_ij + u_ij``. As in the reference code the node
    update aggregates the edge updates ``u_ij`` (the new edge features before their residual). Each MLP
    has ``hidden_layers`` hidden layers of width ``latent`` with ReLU and a LayerNorm on its output.

    Args:
        latent: width of node and edge features (128 in the paper).
        hidden_layers: hidden layers per MLP (2 in the paper).
        layer_norm: LayerNorm on the MLP outputs.

    Forward:
        h: ``[N, latent]`` node features.
        e: ``[E, latent]`` edge features.
        edge_index: ``[2, E]`` int64, row 0 senders ``j``, row 1 receivers ``i``.

    Returns:
        ``(h [N, latent], e [E, latent])``.

    Raises:
        ValueError: shapes that do not fit, or a bad ``edge_index`` (one line).
    """

    def __init__(self, latent: int = 128, *, hidden_layers: int = 2, layer_norm: bool = True) -> None:
        super().__init__()
        if isinstance(latent, bool) or not isinstance(latent, int) or latent < 1:
            raise ValueError(f"MeshGraphNetBlock: latent must be an int >= 1, got {latent!r}")
        self.latent = latent
        kw = dict(hidden_layers=hidden_layers, act=nn.ReLU, layer_norm=layer_norm)
        self.edge_mlp = MLP([latent, latent, latent], latent, latent, **kw)
        self.node_mlp = MLP([latent, latent], latent, latent, **kw)

    def forward(
        self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        what = "MeshGraphNetBlock"
        check_shape(what, "h", h, (None, self.latent), "N latent")
        sender, receiver = check_edge_index(what, edge_index, h.shape[0])
        check_shape(what, "e", e, (edge_index.shape[1], self.latent), "E latent")
        return self.forward_internal(h, e, sender, receiver)

    def forward_internal(
        self, h: torch.Tensor, e: torch.Tensor, sender: torch.Tensor, receiver: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` without the input checks, on ``sender, receiver [E]`` (for models that check
        once)."""
        update = self.edge_mlp((h, sender), (h, receiver), (e, None))  # [E, latent]
        agg = _scatter_sum(update, receiver, h.shape[0])  # [N, latent]
        return h + self.node_mlp((h, None), (agg, None)), e + update

    def extra_repr(self) -> str:
        return f"latent={self.latent}"


# ---------------------------------------------------------------------------------------------------
class EquivariantMeshBlock(nn.Module):
    """A MeshGraphNets processor step on scalar and vector features, exactly O(d)-equivariant.

    Features: node scalars ``s [N, latent]``, node vectors ``V [N, vectors, d]``, edge scalars
    ``a [E, latent]``, edge vectors ``W [E, vectors, d]``. Positions never enter (only the edge vectors,
    which the model makes from relative positions), so the block is translation invariant; it is
    permutation equivariant like any message passing with sum aggregation.

    **Edge update.** The ``K = 3 * vectors`` vectors at an edge are ``U_ij = [V_i, V_j, W_ij]`` (receiver,
    sender, edge). Its invariants are ``H = invariants`` learned inner products
    ``q_h = <(A U)_h, (B U)_h>``, ``A, B`` linear maps ``K -> H`` over channels: norms and every pairwise
    inner product of the ``U`` are special cases, and the set is bounded by ``H``. An MLP of
    ``[s_i, s_j, a_ij, q_ij]`` gives the scalar update ``da`` (LayerNorm, as MeshGraphNets) and one gate per
    vector of ``U``, ``g [K]``; the vector update is the linear map ``L: K -> vectors`` of the gated
    vectors, ``dW = VectorNorm(L (g * U))`` (PaiNN/GVP-style: linear combinations of the input vectors
    with coefficients from an MLP of invariants). Then ``a' = a + da``, ``W' = W + dW``.

    **Node update.** The same on the ``2 * vectors`` vectors ``[V_i, sum_j dW_ij]``, with the MLP of
    ``[s_i, sum_j da_ij, q_i]``: ``s' = s + LayerNorm(ds)``, ``V' = V + VectorNorm(L_n (g_n * [V_i,
    sum_j dW_ij]))``.

    Everything is built from O(d)-invariants (inner products) and linear combinations of vectors with
    invariant coefficients, so rotations and reflections commute with the block; there are no cross
    products (which would be pseudovectors). With ``cross=True`` (``d = 3`` only) the node update also
    combines the ``H`` cross products ``(A u)_h x (B u)_h`` of its learned vector pairs: the block is then
    SO(3)- but not O(3)-equivariant, and can turn a vector by 90 degrees about another (a Coriolis force
    ``-2 Omega x u``, or ``r x u`` on a sphere), which no O(3)-equivariant map of polar vectors can.
    The scalar MLPs' first layers use the fast path of the module docstring. Cost per edge: the vector
    maps take ``3 d C (2 H + C)`` multiply-adds (18k for ``d = 2``, ``C = H = 32``), the edge MLP about
    ``(3 + (H + 3 C) / latent) latent^2`` (65k at ``latent = 128``), against 49k for
    :class:`MeshGraphNetBlock`'s edge MLP; ``scripts/bench_mesh_gnn.py`` measures both.

    Args:
        latent: width of the node and edge scalars.
        vectors: vector channels on nodes and edges.
        invariants: ``H``, learned inner products per edge and per node (default ``vectors``).
        hidden_layers: hidden layers per MLP (width ``latent``, SiLU).
        eps: of the :class:`VectorNorm`.
        cross: also the ``H`` cross products at each node (SO(3) only, ``d = 3``), see above.

    Forward:
        s: ``[N, latent]``, V: ``[N, vectors, d]``, a: ``[E, latent]``, W: ``[E, vectors, d]``,
        edge_index: ``[2, E]`` int64 (row 0 senders ``j``, row 1 receivers ``i``); ``d`` in {2, 3}
        (3 with ``cross``).

    Returns:
        ``(s [N, latent], V [N, vectors, d], a [E, latent], W [E, vectors, d])``.

    Raises:
        ValueError: shapes that do not fit, ``d`` not in {2, 3}, or a bad ``edge_index`` (one line).
    """

    def __init__(
        self,
        latent: int = 128,
        vectors: int = 32,
        *,
        invariants: int | None = None,
        hidden_layers: int = 2,
        eps: float = 1e-6,
        cross: bool = False,
    ) -> None:
        super().__init__()
        invariants = vectors if invariants is None else invariants
        for name, value in (("latent", latent), ("vectors", vectors), ("invariants", invariants)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EquivariantMeshBlock: {name} must be an int >= 1, got {value!r}")
        self.latent, self.vectors, self.invariants, self.cross = latent, vectors, invariants, bool(cross)
        C, H = vectors, invariants
        K = 2 * C + (H if cross else 0)  # vectors the node update combines
        # channel maps (no bias), standard normal / sqrt(fan_in): unit second moments through
        self.edge_ab = nn.Parameter(torch.randn(2 * H, 3 * C) / math.sqrt(3 * C))  # [A; B]
        self.edge_l = nn.Parameter(torch.randn(C, 3 * C) / math.sqrt(3 * C))  # L
        self.node_ab = nn.Parameter(torch.randn(2 * H, 2 * C) / math.sqrt(2 * C))
        self.node_l = nn.Parameter(torch.randn(C, K) / math.sqrt(K))
        kw = dict(hidden_layers=hidden_layers, act=nn.SiLU)
        self.edge_mlp = MLP([latent, latent, latent, H], latent, latent + 3 * C, **kw)
        self.node_mlp = MLP([latent, latent, H], latent, latent + K, **kw)
        self.edge_norm = nn.LayerNorm(latent)
        self.node_norm = nn.LayerNorm(latent)
        self.edge_vnorm = VectorNorm(C, eps=eps)
        self.node_vnorm = VectorNorm(C, eps=eps)

    def forward(
        self,
        s: torch.Tensor,
        V: torch.Tensor,
        a: torch.Tensor,
        W: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        what = "EquivariantMeshBlock"
        check_shape(what, "s", s, (None, self.latent), "N latent")
        n = s.shape[0]
        check_shape(what, "V", V, (n, self.vectors, None), "N vectors d")
        d = V.shape[2]
        _check_dim(what, d)
        if self.cross and d != 3:
            raise ValueError(f"{what}: cross=True needs 3-d vectors, got d = {d}")
        sender, receiver = check_edge_index(what, edge_index, n)
        E = edge_index.shape[1]
        check_shape(what, "a", a, (E, self.latent), "E latent")
        check_shape(what, "W", W, (E, self.vectors, d), "E vectors d")
        s2, v2, a2, w2 = self.forward_internal(s, V.transpose(1, 2), a, W.transpose(1, 2), sender, receiver)
        return s2, v2.transpose(1, 2), a2, w2.transpose(1, 2)

    def forward_internal(
        self,
        s: torch.Tensor,
        v: torch.Tensor,
        a: torch.Tensor,
        w: torch.Tensor,
        sender: torch.Tensor,
        receiver: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The block on vectors in the internal layout ``v [N, d, C]``, ``w [E, d, C]``, unchecked (for
        models that keep that layout from block to block). Returns ``(s, v, a, w)`` in the same layout."""
        n, L, C, H = s.shape[0], self.latent, self.vectors, self.invariants
        # ---- edges
        u = torch.cat([_gather(v, receiver), _gather(v, sender), w], dim=-1)  # [E, d, 3C]
        p, q = mix_vectors(u, self.edge_ab).split(H, dim=-1)  # [E, d, H] each
        inv = (p * q).sum(1)  # [E, H]
        da, g = self.edge_mlp((s, receiver), (s, sender), (a, None), (inv, None)).split([L, 3 * C], dim=1)
        da = self.edge_norm(da)  # [E, L]
        dw = self.edge_vnorm(mix_vectors(u * g[:, None, :], self.edge_l))  # [E, d, C]
        # ---- nodes
        agg_a = _scatter_sum(da, receiver, n)  # [N, L]
        un = torch.cat([v, _scatter_sum(dw, receiver, n)], dim=-1)  # [N, d, 2C]
        p, q = mix_vectors(un, self.node_ab).split(H, dim=-1)  # [N, d, H] each
        if self.cross:
            un = torch.cat([un, torch.linalg.cross(p, q, dim=1)], dim=-1)  # [N, 3, 2C + H]
        ds, gn = self.node_mlp((s, None), (agg_a, None), ((p * q).sum(1), None)).split(
            [L, un.shape[-1]], dim=1
        )
        dv = self.node_vnorm(mix_vectors(un * gn[:, None, :], self.node_l))  # [N, d, C]
        return s + self.node_norm(ds), v + dv, a + da, w + dw

    def extra_repr(self) -> str:
        cross = ", cross=True" if self.cross else ""
        return f"latent={self.latent}, vectors={self.vectors}, invariants={self.invariants}{cross}"
