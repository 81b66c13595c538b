"""Mesh GNNs for fluids on meshes (MeshGraphNets' CylinderFlow): the MeshGraphNet baseline, its
O(d)-equivariant twin, and an EGNN, with one forward signature.

All three map the state of a mesh to a per-node vector (velocity change or acceleration) and optional
per-node scalars (pressure)::

    vector_out, scalar_out = model(velocity, node_type, pos, edge_index, scalars)

Inputs (``N`` nodes, ``E`` directed edges, ``d = dim`` in {2, 3}):

* ``velocity``: ``[N, d]``, or ``[N, in_vectors, d]`` for several vector inputs (e.g. a velocity history).
* ``node_type``: ``[N]`` int64 :class:`sim.discretize.mesh.NodeType` values (one-hot encoded inside,
  ``num_node_types`` columns, MeshGraphNets' 9 by default).
* ``pos``: ``[N, d]`` mesh positions (for a planar ``mesh_to_graph`` graph, ``graph.pos[:, :2]``). Only
  relative positions ``x_ij = pos[j] - pos[i]`` (sender minus receiver, ``mesh_to_graph``'s ``edge_vec``)
  and their lengths enter, so all three are translation invariant. Positions are never updated.
* ``edge_index``: ``[2, E]`` int64, row 0 senders, row 1 receivers, both directions of every mesh edge.
* ``scalars``: ``[N, in_scalars]`` invariant inputs (pressure, ...), or None when ``in_scalars == 0``.

Outputs: ``vector_out [N, d]`` and ``scalar_out [N, out_scalars]`` (None when ``out_scalars == 0``).

A batch of graphs is one bigger graph (PyG's concatenation with offset ``edge_index``): no model mixes
information across nodes except along edges. Normalizing inputs and targets and masking boundary nodes by
type are the training engine's job; for the equivariant models, scale vectors and positions by one number
each (a per-component scale would break the symmetry), e.g. positions by the mean edge length.

Which is what:

* :class:`MeshGraphNet` (Pfaff et al. 2021) sees raw components (velocity, ``x_ij``): not equivariant.
* :class:`EquivariantMeshGraphNet`: the same encode-process-decode structure with scalar and vector
  channels (:class:`sim.nn.mesh_gnn.EquivariantMeshBlock`): O(d)-equivariant (rotations and
  reflections), translation invariant, permutation equivariant.
* :class:`EGNN` (Satorras et al. 2021): :class:`sim.nn.mesh_gnn.EGNNLayer` with the velocities as its
  vector channels and fixed positions: E(d)-equivariant.

Defaults are MeshGraphNets' sizes (``latent=128``, ``steps=15``); pass smaller ones for tests.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sim.discretize.mesh import NUM_NODE_TYPES
from sim.models._common import _check_int
from sim.models.cnn import count_parameters
from sim.nn.mesh_gnn import (
    MLP,
    EGNNLayer,
    EquivariantMeshBlock,
    MeshGraphNetBlock,
    VectorNorm,
    check_edge_index,
    check_shape,
    lecun_init_,
    mix_vectors,
)

__all__ = ["EGNN", "EquivariantMeshGraphNet", "MeshGraphNet", "TensorProductMeshNet", "vector_invariants"]


def vector_invariants(vectors: torch.Tensor) -> torch.Tensor:
    """The O(d)-invariants of ``C`` vectors per node: their norms and pairwise inner products.

    Args:
        vectors: ``[N, C, d]``.

    Returns:
        ``[N, C + C (C - 1) / 2]``: ``|v_1| .. |v_C|``, then ``<v_a, v_b>`` for ``a < b`` (row-major).
        Norms of zero vectors have zero gradient.
    """
    norms = torch.linalg.vector_norm(vectors, dim=-1)  # [N, C]
    C = vectors.shape[1]
    if C == 1:
        return norms
    a, b = torch.triu_indices(C, C, offset=1, device=vectors.device)
    dots = (vectors[:, a] * vectors[:, b]).sum(-1)  # [N, C (C - 1) / 2]
    return torch.cat([norms, dots], dim=-1)


class _MeshModel(nn.Module):
    """Shared arguments, input checks and the edge geometry of the three models."""

    def __init__(
        self,
        *,
        dim: int,
        in_vectors: int,
        in_scalars: int,
        out_scalars: int,
        latent: int,
        steps: int,
        num_node_types: int,
    ) -> None:
        super().__init__()
        what = type(self).__name__
        if dim not in (2, 3) or isinstance(dim, bool):
            raise ValueError(f"{what}: dim must be 2 or 3, got {dim!r}")
        _check_int(in_vectors, what=what, arg="in_vectors", minimum=1)
        _check_int(in_scalars, what=what, arg="in_scalars", minimum=0)
        _check_int(out_scalars, what=what, arg="out_scalars", minimum=0)
        _check_int(latent, what=what, arg="latent", minimum=1)
        _check_int(steps, what=what, arg="steps", minimum=0)
        _check_int(num_node_types, what=what, arg="num_node_types", minimum=1)
        self.dim, self.in_vectors = dim, in_vectors
        self.in_scalars, self.out_scalars = in_scalars, out_scalars
        self.latent, self.steps, self.num_node_types = latent, steps, num_node_types
        # invariant node inputs of the equivariant models: one-hot type, norms and inner products, scalars
        self._num_invariants = num_node_types + in_vectors * (in_vectors + 1) // 2 + in_scalars

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return count_parameters(self)

    def _inputs(self, velocity, node_type, pos, edge_index, scalars):
        """Checked inputs: ``velocity [N, C_in, d]``, ``one_hot [N, T]`` (velocity's dtype), ``pos``,
        ``sender``, ``receiver [E]``, ``edge_vec [E, d]`` (sender minus receiver), ``scalars`` or None."""
        what, d = type(self).__name__, self.dim
        if torch.is_tensor(velocity) and velocity.ndim == 2 and self.in_vectors == 1:
            velocity = velocity[:, None, :]  # [N, 1, d]
        check_shape(what, "velocity", velocity, (None, self.in_vectors, d), "N in_vectors d")
        n = velocity.shape[0]
        check_shape(what, "pos", pos, (n, d), "N d")
        check_shape(what, "node_type", node_type, (n,), "N")
        if node_type.dtype != torch.int64:
            raise ValueError(f"{what}: node_type must be int64, got {node_type.dtype}")
        if n and node_type.device.type != "meta":  # meta tensors (memory counts) have no values
            lo, hi = (int(v) for v in torch.aminmax(node_type))
            if lo < 0 or hi >= self.num_node_types:
                bad = lo if lo < 0 else hi
                raise ValueError(f"{what}: node_type values must be in [0, {self.num_node_types}), got {bad}")
        if self.in_scalars:
            check_shape(what, "scalars", scalars, (n, self.in_scalars), "N in_scalars")
        elif scalars is not None:
            raise ValueError(f"{what}: got scalars but the model was built with in_scalars=0")
        sender, receiver = check_edge_index(what, edge_index, n)
        one_hot = F.one_hot(node_type, self.num_node_types).to(velocity.dtype)  # [N, T]
        edge_vec = pos.index_select(0, sender) - pos.index_select(0, receiver)  # [E, d]
        return velocity, one_hot, sender, receiver, edge_vec, scalars

    def _invariant_inputs(self, velocity, one_hot, scalars) -> torch.Tensor:
        """``[N, num_node_types + C_in (C_in + 1) / 2 + in_scalars]``: type, vector invariants, scalars."""
        parts = [one_hot, vector_invariants(velocity)]
        if scalars is not None:
            parts.append(scalars.to(velocity.dtype))
        return torch.cat(parts, dim=-1)

    def _outputs(self, vector: torch.Tensor, scalars: torch.Tensor):
        """``(vector [N, d], scalars [N, out_scalars] or None when out_scalars == 0)``."""
        return vector, (scalars if self.out_scalars else None)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, in_vectors={self.in_vectors}, in_scalars={self.in_scalars}, "
            f"out_scalars={self.out_scalars}, latent={self.latent}, steps={self.steps}"
        )


# ---------------------------------------------------------------------------------------------------
class MeshGraphNet(_MeshModel):
    """MeshGraphNets (Pfaff et al. 2021), the CFD model: the non-equivariant baseline.

    Encoder: node MLP of ``[velocity components (in_vectors * d), scalars, one-hot node type]``, edge MLP
    of ``[x_ij components (d), |x_ij|]``, each to ``latent`` with LayerNorm. Processor: ``steps``
    :class:`~sim.nn.mesh_gnn.MeshGraphNetBlock`. Decoder: MLP ``latent -> d + out_scalars`` without
    LayerNorm. All MLPs have two hidden layers of width ``latent`` and ReLU. Because it sees raw
    components it is permutation equivariant and translation invariant but not rotation equivariant.

    With the defaults (``dim=2``, one velocity, no scalars, ``latent=128``, ``steps=15``) it has 2,332,930
    parameters (DeepMind's CylinderFlow model: about 2.3 M).

    Args:
        dim: ``d``, 2 or 3.
        in_vectors: vector inputs per node (``velocity [N, in_vectors, d]``).
        in_scalars: invariant scalar inputs per node.
        out_scalars: scalar outputs per node (e.g. 1 for pressure).
        latent: width of every latent feature and hidden layer.
        steps: processor blocks (message-passing steps).
        num_node_types: width of the one-hot node type.

    Forward / Returns: see the module docstring; ``(vector_out [N, d], scalar_out [N, out_scalars] | None)``.

    Raises:
        ValueError: a bad argument; in ``forward`` inputs of the wrong shape or dtype, node types out of
            range, or an ``edge_index`` outside the nodes (one line naming the value).
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        in_vectors: int = 1,
        in_scalars: int = 0,
        out_scalars: int = 0,
        latent: int = 128,
        steps: int = 15,
        num_node_types: int = NUM_NODE_TYPES,
    ) -> None:
        super().__init__(
            dim=dim,
            in_vectors=in_vectors,
            in_scalars=in_scalars,
            out_scalars=out_scalars,
            latent=latent,
            steps=steps,
            num_node_types=num_node_types,
        )
        self.node_encoder = MLP(
            [in_vectors * dim, in_scalars, num_node_types], latent, latent, layer_norm=True
        )
        self.edge_encoder = MLP([dim, 1], latent, latent, layer_norm=True)
        self.blocks = nn.ModuleList(MeshGraphNetBlock(latent) for _ in range(steps))
        self.decoder = MLP([latent], latent, dim + out_scalars)

    def forward(
        self,
        velocity: torch.Tensor,
        node_type: torch.Tensor,
        pos: torch.Tensor,
        edge_index: torch.Tensor,
        scalars: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        velocity, one_hot, sender, receiver, edge_vec, scalars = self._inputs(
            velocity, node_type, pos, edge_index, scalars
        )
        n = velocity.shape[0]
        length = torch.linalg.vector_norm(edge_vec, dim=-1, keepdim=True)  # [E, 1]
        h = self.node_encoder((velocity.reshape(n, -1), None), (scalars, None), (one_hot, None))  # [N, L]
        e = self.edge_encoder((edge_vec, None), (length, None))  # [E, L]
        for block in self.blocks:
            h, e = block.forward_internal(h, e, sender, receiver)
        out = self.decoder((h, None))  # [N, d + out_scalars]
        return self._outputs(out[:, : self.dim], out[:, self.dim :])


# ---------------------------------------------------------------------------------------------------
class EquivariantMeshGraphNet(_MeshModel):
    """MeshGraphNets with scalar and vector channels: exactly O(d)-equivariant, translation invariant.

    Encoder: an MLP of the node invariants (one-hot type, ``|v_c|`` and ``<v_a, v_b>`` of the vector
    inputs, the scalars) gives ``latent`` scalars (LayerNorm) and ``vectors`` gates; the node vectors are
    ``VectorNorm(gate * (M v))`` with ``M`` a linear map of the ``in_vectors`` inputs to ``vectors``
    channels. Edges: an MLP of ``|x_ij|`` gives ``latent`` scalars (LayerNorm) and ``vectors``
    coefficients of the edge direction ``x_ij / |x_ij|`` (then ``VectorNorm``). Processor: ``steps``
    :class:`~sim.nn.mesh_gnn.EquivariantMeshBlock`. Decoder: an MLP of the node scalars gives
    ``vectors`` coefficients ``c`` and the ``out_scalars``; the vector output is
    ``sum_c c_c V_c / sqrt(vectors)``. MLPs: two hidden layers of width ``latent``, SiLU.

    With the defaults (``dim=2``, one velocity, no scalars, ``latent=128``, ``vectors=32``, ``steps=15``)
    it has 3,008,608 parameters (1.3x :class:`MeshGraphNet`); ``latent=110`` matches the baseline's count
    (2,339,242; :func:`sim.models.match_width` finds such widths).

    Args:
        dim, in_vectors, in_scalars, out_scalars, latent, steps, num_node_types: as
            :class:`MeshGraphNet`.
        vectors: vector channels on nodes and edges.
        invariants: learned inner products per edge and node in each block (default ``vectors``).

    Forward / Returns: see the module docstring; ``(vector_out [N, d], scalar_out [N, out_scalars] | None)``.

    Raises:
        ValueError: as :class:`MeshGraphNet`.
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        in_vectors: int = 1,
        in_scalars: int = 0,
        out_scalars: int = 0,
        latent: int = 128,
        steps: int = 15,
        vectors: int = 32,
        invariants: int | None = None,
        num_node_types: int = NUM_NODE_TYPES,
    ) -> None:
        super().__init__(
            dim=dim,
            in_vectors=in_vectors,
            in_scalars=in_scalars,
            out_scalars=out_scalars,
            latent=latent,
            steps=steps,
            num_node_types=num_node_types,
        )
        _check_int(vectors, what=type(self).__name__, arg="vectors", minimum=1)
        self.vectors = vectors
        act = nn.SiLU
        self.node_encoder = MLP([self._num_invariants], latent, latent + vectors, act=act)
        self.node_norm = nn.LayerNorm(latent)
        self.node_vec = nn.Parameter(torch.randn(vectors, in_vectors) / in_vectors**0.5)  # M
        self.node_vnorm = VectorNorm(vectors)
        self.edge_encoder = MLP([1], latent, latent + vectors, act=act)
        self.edge_norm = nn.LayerNorm(latent)
        self.edge_vnorm = VectorNorm(vectors)
        self.blocks = nn.ModuleList(
            EquivariantMeshBlock(latent, vectors, invariants=invariants) for _ in range(steps)
        )
        self.decoder = MLP([latent], latent, vectors + out_scalars, act=act)

    def forward(
        self,
        velocity: torch.Tensor,
        node_type: torch.Tensor,
        pos: torch.Tensor,
        edge_index: torch.Tensor,
        scalars: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        velocity, one_hot, sender, receiver, edge_vec, scalars = self._inputs(
            velocity, node_type, pos, edge_index, scalars
        )
        L, C = self.latent, self.vectors
        out = self.node_encoder((self._invariant_inputs(velocity, one_hot, scalars), None))  # [N, L + C]
        s = self.node_norm(out[:, :L])  # [N, L]
        v = self.node_vnorm(
            out[:, None, L:] * mix_vectors(velocity.transpose(1, 2), self.node_vec)
        )  # [N, d, C]
        length = torch.linalg.vector_norm(edge_vec, dim=-1, keepdim=True)  # [E, 1]
        out = self.edge_encoder((length, None))  # [E, L + C]
        a = self.edge_norm(out[:, :L])  # [E, L]
        direction = edge_vec / length.clamp_min(torch.finfo(edge_vec.dtype).tiny)  # [E, d]
        w = self.edge_vnorm(out[:, None, L:] * direction[:, :, None])  # [E, d, C]
        for block in self.blocks:
            s, v, a, w = block.forward_internal(s, v, a, w, sender, receiver)
        out = self.decoder((s, None))  # [N, C + out_scalars]
        vector = (v * out[:, None, :C]).sum(-1) / C**0.5  # [N, d]
        return self._outputs(vector, out[:, C:])

    def extra_repr(self) -> str:
        return super().extra_repr() + f", vectors={self.vectors}"


# ---------------------------------------------------------------------------------------------------
class EGNN(_MeshModel):
    """EGNN (Satorras et al. 2021) on a fixed mesh: the velocities are its vector channels.

    ``h`` starts as a linear embedding of the node invariants (one-hot type, ``|v_c|`` and
    ``<v_a, v_b>`` of the vector inputs, the scalars); ``steps`` :class:`~sim.nn.mesh_gnn.EGNNLayer` with
    ``vectors=in_vectors`` and ``update_pos=False`` update ``h``, and each computes the velocity of the
    paper's eq. 7 from the input velocities, ``v^l = phi_v(h^l) v^init + C sum_j u_ij phi_x(m_ij)``.
    Positions stay where they are (a mesh does not move; they are only read through ``x_i - x_j``), and
    the paper's displacement ``x^L - x^0 = sum_l v^l`` is kept instead, as the mean over the layers
    ``D = sum_l v^l / steps`` (so every layer's vector update reaches the output). The decoder, an MLP of
    ``h`` (one hidden layer, SiLU), gives ``in_vectors`` coefficients, ``vector_out = sum_c coef_c D_c``,
    and the ``out_scalars``.

    By default the layers use ``normalize=True`` (unit ``x_i - x_j`` in the vector update) and
    ``vector_invariants=True`` (messages see ``<v_i, u_ij>``, ``<v_j, u_ij>``, ``<v_i, v_j>``; without
    them the velocity update would be affine in the input velocities, as the paper's messages see only
    ``h`` and distances). With the defaults (``dim=2``, one velocity, ``latent=128``, ``steps=15``) it
    has 2,007,184 parameters (``latent=138``: 2,330,974, the baseline's count).

    Args:
        dim, in_vectors, in_scalars, out_scalars, latent, steps, num_node_types: as
            :class:`MeshGraphNet` (the paper used 4 to 7 layers; 15 matches MeshGraphNets' steps).
        normalize, vector_invariants, infer_edges, coord_agg: of every :class:`~sim.nn.mesh_gnn.EGNNLayer`.

    Forward / Returns: see the module docstring; ``(vector_out [N, d], scalar_out [N, out_scalars] | None)``.

    Raises:
        ValueError: as :class:`MeshGraphNet`.
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        in_vectors: int = 1,
        in_scalars: int = 0,
        out_scalars: int = 0,
        latent: int = 128,
        steps: int = 15,
        num_node_types: int = NUM_NODE_TYPES,
        normalize: bool = True,
        vector_invariants: bool = True,
        infer_edges: bool = False,
        coord_agg: str | float = "mean",
    ) -> None:
        super().__init__(
            dim=dim,
            in_vectors=in_vectors,
            in_scalars=in_scalars,
            out_scalars=out_scalars,
            latent=latent,
            steps=steps,
            num_node_types=num_node_types,
        )
        self.embedding = lecun_init_(nn.Linear(self._num_invariants, latent))
        self.layers = nn.ModuleList(
            EGNNLayer(
                latent,
                vectors=in_vectors,
                update_pos=False,
                normalize=normalize,
                vector_invariants=vector_invariants,
                infer_edges=infer_edges,
                coord_agg=coord_agg,
            )
            for _ in range(steps)
        )
        self.decoder = MLP([latent], latent, in_vectors + out_scalars, hidden_layers=1, act=nn.SiLU)

    def forward(
        self,
        velocity: torch.Tensor,
        node_type: torch.Tensor,
        pos: torch.Tensor,
        edge_index: torch.Tensor,
        scalars: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        velocity, one_hot, _, _, _, scalars = self._inputs(velocity, node_type, pos, edge_index, scalars)
        h = self.embedding(self._invariant_inputs(velocity, one_hot, scalars))  # [N, L]
        displacement = torch.zeros_like(velocity)  # [N, C_in, d]
        for layer in self.layers:
            h, _, v = layer(h, pos, edge_index, vectors=velocity)  # eq. 7: v^init in every layer
            displacement = displacement + v
        displacement = displacement / max(self.steps, 1)  # [N, C_in, d] mean of the layers' v^l
        out = self.decoder((h, None))  # [N, C_in + out_scalars]
        vector = (displacement * out[:, : self.in_vectors, None]).sum(1)  # [N, d]
        return self._outputs(vector, out[:, self.in_vectors :])


# ---------------------------------------------------------------------------------------------------
class TensorProductMeshNet(_MeshModel):
    """The SO(3) tensor-product layers as a mesh model (TFN / NequIP-style), with the same forward.

    Planar meshes live in the plane ``z = 0`` of 3D: positions ``(x, y, 0)`` and vectors as ``1o``
    irreps (our real-harmonic order ``(y, z, x)``, :mod:`sim.groups.so3`), so the model is exactly
    O(3)-equivariant in 3D and hence E(2)-equivariant in the plane (rotations about z, mirrors; only
    relative positions enter). Node features: ``latent x 0e + vectors x 1o + (vectors // 2) x 2e``.

    Encoder: :class:`~sim.nn.IrrepsLinear` of ``[one-hot type, |v| and <v_a, v_b>, scalars] x 0e +
    in_vectors x 1o`` to the features. Processor: ``steps`` residual layers ``x + Gate(TensorProductConv(x))``
    (edge harmonics up to ``l = 2``, a radial basis of the edge length with cutoff ``cutoff``, mean
    aggregation, self-interaction). Decoder: ``IrrepsLinear`` to ``1x1o + out_scalars x 0e``. Give
    positions in units of the typical edge length (``MeshStepper`` divides by the data's RMS edge
    length), so that ``cutoff = 5`` holds every mesh edge.
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        in_vectors: int = 1,
        in_scalars: int = 0,
        out_scalars: int = 0,
        latent: int = 32,
        steps: int = 4,
        vectors: int = 16,
        lmax: int = 2,
        cutoff: float = 5.0,
        num_node_types: int = NUM_NODE_TYPES,
    ) -> None:
        super().__init__(
            dim=dim,
            in_vectors=in_vectors,
            in_scalars=in_scalars,
            out_scalars=out_scalars,
            latent=latent,
            steps=steps,
            num_node_types=num_node_types,
        )
        from sim.groups.so3 import Irreps
        from sim.nn.tensor_product import Gate, IrrepsLinear, TensorProductConv

        _check_int(vectors, what="TensorProductMeshNet", arg="vectors", minimum=2)
        self.vectors = vectors
        gated = Irreps(f"{vectors}x1o + {vectors // 2}x2e")
        self.hidden = Irreps(f"{latent}x0e") + gated
        self.encoder = IrrepsLinear(Irreps(f"{self._num_invariants}x0e + {in_vectors}x1o"), self.hidden)
        pre = Irreps(f"{latent}x0e + {gated.num_irreps}x0e") + gated  # scalars, gates, gated
        self.convs = nn.ModuleList(
            TensorProductConv(self.hidden, pre, lmax=lmax, cutoff=cutoff, aggregate="mean")
            for _ in range(steps)
        )
        self.gates = nn.ModuleList(
            Gate(f"{latent}x0e", [torch.nn.functional.silu], f"{gated.num_irreps}x0e", [torch.sigmoid], gated)
            for _ in range(steps)
        )
        self.decoder = IrrepsLinear(
            self.hidden, Irreps(f"1x1o + {out_scalars}x0e") if out_scalars else "1x1o"
        )

    @staticmethod
    def _to_3d(v: torch.Tensor) -> torch.Tensor:
        """Planar or 3D vectors ``[..., d]`` as ``1o`` components ``[..., 3]`` in the order (y, z, x)."""
        if v.shape[-1] == 2:
            return torch.stack([v[..., 1], torch.zeros_like(v[..., 0]), v[..., 0]], dim=-1)
        return v[..., [1, 2, 0]]

    def forward(
        self,
        velocity: torch.Tensor,
        node_type: torch.Tensor,
        pos: torch.Tensor,
        edge_index: torch.Tensor,
        scalars: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        velocity, one_hot, sender, receiver, edge_vec, scalars = self._inputs(
            velocity, node_type, pos, edge_index, scalars
        )
        n = velocity.shape[0]
        invariants = self._invariant_inputs(velocity, one_hot, scalars)  # [N, k]
        x = self.encoder(torch.cat([invariants, self._to_3d(velocity).reshape(n, -1)], dim=-1))
        vec3 = edge_vec if self.dim == 3 else torch.cat([edge_vec, torch.zeros_like(edge_vec[:, :1])], dim=-1)
        for conv, gate in zip(self.convs, self.gates, strict=True):
            x = x + gate(conv(x, edge_index, edge_vec=vec3))
        out = self.decoder(x)  # [N, 3 + out_scalars]: 1o in (y, z, x), then the scalars
        a, b, c = out[:, 0], out[:, 1], out[:, 2]
        vector = torch.stack([c, a], dim=-1) if self.dim == 2 else torch.stack([c, a, b], dim=-1)
        return self._outputs(vector, out[:, 3:])
