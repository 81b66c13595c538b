"""Weather on the sphere: a GraphCast-style encoder-processor-decoder that is SO(3)-equivariant, and its
non-equivariant GraphCast-like twin, with one forward signature::

    scalars_out, vectors_out = model(scalars, vectors, global_vectors, graph)

Inputs (``B`` samples, ``G`` grid points, ``M`` mesh nodes):

* ``scalars [B, G, in_scalars]``: invariant fields: geopotential, temperature, ..., static fields,
  time-of-year scalars (normalized by the engine).
* ``vectors [B, G, in_vectors, 3]``: winds as 3-D tangent vectors
  (:func:`sim.discretize.latlon.wind_to_vector`), normalized by one scale per vector (a per-component
  scale or mean would break the symmetry).
* ``global_vectors [B, global_vectors, 3]``: vectors the same at every point: the planet's rotation vector,
  the direction of the sun; None when ``global_vectors == 0``.
* ``graph``: a :class:`SphereGraph` (:func:`sphere_graph`): grid and mesh positions on the unit sphere and
  GraphCast's three edge sets, encoder grid -> mesh, processor on the multi-mesh, decoder mesh -> grid.

Outputs: ``scalars_out [B, G, out_scalars]`` and ``vectors_out [B, G, out_vectors, 3]``, the latter tangent
to the sphere at each grid point (``vector_to_wind`` gives ``(u, v)``).

**Symmetry.** :class:`EquivariantSphereNet` is SO(3)-equivariant: rotating everything together (grid and
mesh positions, ``vectors`` and ``global_vectors``) by any rotation ``R`` rotates ``vectors_out`` and leaves
``scalars_out`` unchanged; relabelling grid or mesh nodes (edges relabelled with them) permutes the
outputs. Hence a rotation that maps the grid and the mesh onto themselves, acting on the data alone (fields
moved to the rotated points, vectors turned, global vectors turned unless the rotation fixes them), moves
the outputs the same way: the 60 icosahedral rotations on an icosahedral grid, and on a lat-lon grid whose
longitude spacing divides 36 degrees the turns by multiples of 72 degrees about the pole (which fix the
rotation axis: zonal rolls of the data) and the D5 half-turns (:mod:`sim.discretize.icosahedral`). It is
not O(3)-equivariant: its cross products (a Coriolis force is ``-2 Omega x u``) are chiral, as the physics
is. The graph must be built symmetrically for the discrete statements to hold, which
:func:`sphere_graph` does (see there).

:class:`GraphCastNet` (Lam et al. 2023) feeds ``cos lat, sin lon, cos lon``, the wind components
``(u, v)`` in the local east/north frame, the global vectors' raw components, and edge displacements in the
receiver's local frame to MLPs: not equivariant, the baseline.

A batch shares one graph: the models offset the edge indices per sample (no mixing across samples).
Defaults are small (``latent=128``, ``steps=8``) for CPU studies; GraphCast uses 512 and 16.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from sim.discretize.connectivity import grid_to_mesh_edges, grid_to_mesh_radius, mesh_to_grid_edges
from sim.discretize.icosahedral import icosahedral_meshes, multimesh_edges
from sim.discretize.latlon import LatLonGrid
from sim.models._common import _check_int
from sim.models.cnn import count_parameters
from sim.models.meshgraphnet import vector_invariants
from sim.nn.mesh_gnn import (
    MLP,
    EquivariantMeshBlock,
    MeshGraphNetBlock,
    VectorNorm,
    check_edge_index,
    check_shape,
    mix_vectors,
)

__all__ = ["EquivariantSphereNet", "GraphCastNet", "SphereGraph", "local_frame", "sphere_graph"]

MIN_DECODER_WEIGHT = 1e-9
"""Decoder edges whose barycentric weight is below this are dropped (see :func:`sphere_graph`)."""


class SphereGraph(NamedTuple):
    """GraphCast's graphs on the unit sphere (torch tensors, one device).

    Attributes:
        grid_pos: ``[G, 3]`` grid points.
        mesh_pos: ``[M, 3]`` mesh nodes (the finest icosahedral level's vertices).
        g2m: ``[2, E_enc]`` int64, row 0 grid indices (senders), row 1 mesh indices (receivers).
        mesh: ``[2, E_proc]`` int64 multi-mesh edges (mesh indices, both directions).
        m2g: ``[2, E_dec]`` int64, row 0 mesh indices (senders), row 1 grid indices (receivers).
    """

    grid_pos: torch.Tensor
    mesh_pos: torch.Tensor
    g2m: torch.Tensor
    mesh: torch.Tensor
    m2g: torch.Tensor

    def to(self, device=None, dtype: torch.dtype | None = None) -> SphereGraph:
        """The same graph with positions in ``dtype`` and everything on ``device``."""
        return SphereGraph(
            self.grid_pos.to(device=device, dtype=dtype),
            self.mesh_pos.to(device=device, dtype=dtype),
            self.g2m.to(device),
            self.mesh.to(device),
            self.m2g.to(device),
        )

    def rotated(self, rotation: torch.Tensor) -> SphereGraph:
        """Positions turned by ``rotation [3, 3]`` (``x -> R x``), edges unchanged."""
        R = rotation.to(self.grid_pos)
        return self._replace(grid_pos=self.grid_pos @ R.T, mesh_pos=self.mesh_pos @ R.T)


def sphere_graph(
    grid: LatLonGrid | np.ndarray,
    splits: int,
    *,
    radius_fraction: float = 0.6,
    dtype: torch.dtype = torch.float32,
) -> SphereGraph:
    """GraphCast's encoder, processor and decoder graphs for a grid and the icosahedral multi-mesh.

    * Encoder: every grid point sends to every mesh node within ``radius_fraction`` times the longest
      finest-level edge (:func:`~sim.discretize.connectivity.grid_to_mesh_edges`; GraphCast: 0.6).
    * Processor: the multi-mesh, the finest level's nodes with the edges of levels ``0 ... splits``.
    * Decoder: each grid point receives from the corners of the mesh face containing it
      (:func:`~sim.discretize.connectivity.mesh_to_grid_edges`), except corners of barycentric weight
      below :data:`MIN_DECODER_WEIGHT`: a grid point on a mesh edge receives from that edge's two ends, one
      on a mesh node from it alone. That makes the edge set independent of which face a point on an edge
      is assigned to, so it is mapped onto itself by every rotation that maps the grid and the mesh onto
      themselves, as the encoder's (a distance test) and the processor's are.

    Args:
        grid: a :class:`~sim.discretize.latlon.LatLonGrid` (points in its flattened order) or ``[G, 3]``
            points (any nonzero length; projected to the unit sphere).
        splits: the finest icosahedral level (GraphCast: 6; 2562 nodes at 4, 10242 at 5).
        radius_fraction: of the encoder's query radius.
        dtype: of the positions.

    Raises:
        ValueError: bad points, or a grid point no mesh node reaches (a radius too small).
    """
    xyz = grid.xyz().reshape(-1, 3) if isinstance(grid, LatLonGrid) else np.asarray(grid, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"sphere_graph: grid points must be [G, 3], got {list(xyz.shape)}")
    norm = np.linalg.norm(xyz, axis=1, keepdims=True)
    if not np.isfinite(xyz).all() or (norm == 0).any():
        raise ValueError("sphere_graph: grid points must be finite and nonzero")
    xyz = xyz / norm
    meshes = icosahedral_meshes(splits)
    finest = meshes[-1]
    g2m = grid_to_mesh_edges(
        xyz, finest.vertices, radius=grid_to_mesh_radius(finest, fraction=radius_fraction)
    )
    m2g, weights = mesh_to_grid_edges(xyz, finest)
    m2g = m2g[:, weights >= MIN_DECODER_WEIGHT]
    return SphereGraph(
        torch.as_tensor(xyz, dtype=dtype),
        torch.as_tensor(finest.vertices, dtype=dtype),
        torch.from_numpy(np.ascontiguousarray(g2m)),
        torch.from_numpy(np.ascontiguousarray(multimesh_edges(meshes))),
        torch.from_numpy(np.ascontiguousarray(m2g)),
    )


def local_frame(pos: torch.Tensor) -> torch.Tensor:
    """East, north and up unit vectors at points ``pos [N, 3]`` on the unit sphere: ``[N, 3, 3]`` (rows).

    At a pole (``x = y = 0``) longitude 0 is taken. The frame of
    :func:`sim.discretize.latlon.tangent_frame` elsewhere.
    """
    x, y, z = pos.unbind(-1)
    rho = torch.hypot(x, y)
    at_pole = rho == 0
    safe = torch.where(at_pole, torch.ones_like(rho), rho)
    cos_lon = torch.where(at_pole, torch.ones_like(rho), x / safe)
    sin_lon = torch.where(at_pole, torch.zeros_like(rho), y / safe)
    zero = torch.zeros_like(rho)
    east = torch.stack([-sin_lon, cos_lon, zero], -1)
    north = torch.stack([-z * cos_lon, -z * sin_lon, rho], -1)
    return torch.stack([east, north, pos], -2)


def _batched(edge_index: torch.Tensor, batch: int, stride: int, send: int = 0, receive: int = 0):
    """Senders and receivers ``[batch * E]`` of ``batch`` copies of a graph in a node set of ``stride``
    nodes per sample, with the senders offset by ``send`` and the receivers by ``receive`` in each."""
    offset = torch.arange(batch, device=edge_index.device)[:, None] * stride  # [B, 1]
    return (
        (edge_index[0][None] + send + offset).reshape(-1),
        (edge_index[1][None] + receive + offset).reshape(-1),
    )


class _SphereModel(nn.Module):
    """Shared arguments, input checks, batching of the graph, and gradient checkpointing."""

    def __init__(
        self,
        *,
        in_scalars: int,
        in_vectors: int,
        out_scalars: int,
        out_vectors: int,
        global_vectors: int,
        latent: int,
        steps: int,
        checkpoint: bool,
    ) -> None:
        super().__init__()
        what = type(self).__name__
        for arg, value, least in (
            ("in_scalars", in_scalars, 0),
            ("in_vectors", in_vectors, 0),
            ("out_scalars", out_scalars, 0),
            ("out_vectors", out_vectors, 0),
            ("global_vectors", global_vectors, 0),
            ("latent", latent, 1),
            ("steps", steps, 0),
        ):
            _check_int(value, what=what, arg=arg, minimum=least)
        if out_scalars + out_vectors == 0:
            raise ValueError(f"{what}: needs an output (out_scalars + out_vectors >= 1)")
        self.in_scalars, self.in_vectors = in_scalars, in_vectors
        self.out_scalars, self.out_vectors = out_scalars, out_vectors
        self.global_vectors, self.latent, self.steps = global_vectors, latent, steps
        self.checkpoint = bool(checkpoint)
        self._graph_checked: tuple | None = None

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return count_parameters(self)

    def _check(self, scalars, vectors, global_vectors, graph) -> tuple[int, int, int]:
        """``(B, G, M)`` of checked inputs."""
        what = type(self).__name__
        if not isinstance(graph, SphereGraph):
            raise ValueError(f"{what}: graph must be a SphereGraph, got {type(graph).__name__}")
        check_shape(what, "graph.grid_pos", graph.grid_pos, (None, 3), "G d")
        check_shape(what, "graph.mesh_pos", graph.mesh_pos, (None, 3), "M d")
        G, M = graph.grid_pos.shape[0], graph.mesh_pos.shape[0]
        ref = scalars if scalars is not None else vectors
        if ref is None:
            raise ValueError(f"{what}: give scalars or vectors")
        B = ref.shape[0]
        if self.in_scalars:
            check_shape(what, "scalars", scalars, (B, G, self.in_scalars), "B G in_scalars")
        elif scalars is not None:
            raise ValueError(f"{what}: got scalars but the model was built with in_scalars=0")
        if self.in_vectors:
            check_shape(what, "vectors", vectors, (B, G, self.in_vectors, 3), "B G in_vectors d")
        elif vectors is not None:
            raise ValueError(f"{what}: got vectors but the model was built with in_vectors=0")
        if self.global_vectors:
            check_shape(what, "global_vectors", global_vectors, (B, self.global_vectors, 3), "B K d")
        elif global_vectors is not None:
            raise ValueError(f"{what}: got global_vectors but the model was built with global_vectors=0")
        key = tuple((t.data_ptr(), tuple(t.shape), t._version) for t in graph[2:]) + (G, M)
        # The edges are checked once per graph (they cost a sort); meta tensors (memory estimates,
        # sim.runtime.LiveTensorBytes) have no values to check.
        if key != self._graph_checked and graph.g2m.device.type != "meta":
            _check_bipartite(what, "graph.g2m", graph.g2m, G, M)
            check_edge_index(what, graph.mesh, M)
            _check_bipartite(what, "graph.m2g", graph.m2g, M, G)
            if torch.unique(graph.g2m[0]).numel() != G:
                raise ValueError(f"{what}: graph.g2m leaves grid points without an edge to the mesh")
            if torch.unique(graph.m2g[1]).numel() != G:
                raise ValueError(f"{what}: graph.m2g leaves grid points without an edge from the mesh")
            self._graph_checked = key
        return B, G, M

    def _process(self, blocks, state: tuple, sender, receiver) -> tuple:
        """Blocks in turn; with ``checkpoint`` each recomputes its activations in the backward pass."""
        for block in blocks:
            if self.checkpoint and torch.is_grad_enabled():
                state = _checkpoint(block.forward_internal, *state, sender, receiver, use_reentrant=False)
            else:
                state = block.forward_internal(*state, sender, receiver)
        return state

    def extra_repr(self) -> str:
        return (
            f"in_scalars={self.in_scalars}, in_vectors={self.in_vectors}, out_scalars={self.out_scalars}, "
            f"out_vectors={self.out_vectors}, global_vectors={self.global_vectors}, latent={self.latent}, "
            f"steps={self.steps}" + (", checkpoint=True" if self.checkpoint else "")
        )


def _check_bipartite(what: str, name: str, edge_index, senders: int, receivers: int) -> None:
    if not torch.is_tensor(edge_index) or edge_index.ndim != 2 or edge_index.shape[0] != 2:
        got = list(edge_index.shape) if torch.is_tensor(edge_index) else type(edge_index).__name__
        raise ValueError(f"{what}: {name} must be [2, E], got {got}")
    if edge_index.dtype != torch.int64:
        raise ValueError(f"{what}: {name} must be int64, got {edge_index.dtype}")
    if edge_index.numel():
        for row, n, role in ((0, senders, "senders"), (1, receivers, "receivers")):
            lo, hi = (int(v) for v in torch.aminmax(edge_index[row]))
            if lo < 0 or hi >= n:
                raise ValueError(f"{what}: {name} {role} must be in [0, {n}), got {lo if lo < 0 else hi}")


def _edge_geometry(pos_s: torch.Tensor, pos_r: torch.Tensor, edge_index: torch.Tensor):
    """``(x [E, 3], |x| [E, 1])``: the sender minus the receiver position over the graph's mean edge length
    (a rotation-invariant scale), and its length."""
    x = pos_s.index_select(0, edge_index[0]) - pos_r.index_select(0, edge_index[1])
    length = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    ref = length.mean().clamp_min(torch.finfo(x.dtype).tiny)
    return x / ref, length / ref


class EquivariantSphereNet(_SphereModel):
    """GraphCast's encoder-processor-decoder with scalar and vector channels: exactly SO(3)-equivariant.

    Embedding: at each grid point the vectors are the inputs' winds, the point's position ``r`` and the
    global vectors; an MLP of their invariants (norms and inner products: the latitude relative to the
    rotation axis is ``<r, Omega>``, the solar zenith angle's cosine ``<r, sun>``) and the scalar inputs
    gives ``latent`` scalars (LayerNorm) and ``vectors`` gates for ``VectorNorm(gate * (A v))``, ``A`` a
    linear map over the vector inputs. Mesh nodes the same from ``r`` and the global vectors. Edges of each
    graph: an MLP of the length (over the graph's mean) gives ``latent`` scalars and ``vectors``
    coefficients of the direction. Encoder: one :class:`~sim.nn.mesh_gnn.EquivariantMeshBlock`
    (``cross=True``) on grid and mesh nodes over the encoder edges; processor: ``steps`` of them on the
    mesh nodes over the multi-mesh; decoder: one over the decoder edges. Output: an MLP of the grid
    scalars gives ``out_scalars`` and ``out_vectors x vectors`` coefficients of the grid vectors, the
    vector outputs projected onto the tangent plane.

    Args:
        in_scalars, in_vectors: scalar and vector inputs per grid point.
        out_scalars, out_vectors: outputs per grid point.
        global_vectors: vectors given per sample (rotation vector, sun direction).
        latent: width of scalar features and hidden layers.
        vectors: vector channels on nodes and edges.
        steps: processor blocks.
        checkpoint: recompute each block (encoder, processor, decoder) in the backward pass instead of
            keeping its activations (GraphCast's memory saving at 0.25 degrees); the same numbers.

    Raises:
        ValueError: a bad argument; in ``forward`` inputs that do not fit (one line naming the value).
    """

    def __init__(
        self,
        *,
        in_scalars: int,
        in_vectors: int,
        out_scalars: int,
        out_vectors: int,
        global_vectors: int = 2,
        latent: int = 128,
        vectors: int = 16,
        steps: int = 8,
        checkpoint: bool = False,
    ) -> None:
        super().__init__(
            in_scalars=in_scalars,
            in_vectors=in_vectors,
            out_scalars=out_scalars,
            out_vectors=out_vectors,
            global_vectors=global_vectors,
            latent=latent,
            steps=steps,
            checkpoint=checkpoint,
        )
        _check_int(vectors, what=type(self).__name__, arg="vectors", minimum=1)
        self.vectors = vectors
        L, C, act = latent, vectors, nn.SiLU
        k_grid, k_mesh = in_vectors + 1 + global_vectors, 1 + global_vectors
        inv = lambda k: k * (k + 1) // 2  # noqa: E731 - norms and pairwise inner products
        self.grid_embed = MLP([in_scalars, inv(k_grid)], L, L + C, act=act)
        self.grid_map = nn.Parameter(torch.randn(C, k_grid) / math.sqrt(k_grid))
        self.mesh_embed = MLP([inv(k_mesh)], L, L + C, act=act)
        self.mesh_map = nn.Parameter(torch.randn(C, k_mesh) / math.sqrt(k_mesh))
        self.node_norms = nn.ModuleList([nn.LayerNorm(L), nn.LayerNorm(L)])
        self.node_vnorms = nn.ModuleList([VectorNorm(C), VectorNorm(C)])
        self.edge_embed = nn.ModuleList(MLP([1], L, L + C, act=act) for _ in range(3))  # g2m, mesh, m2g
        self.edge_norms = nn.ModuleList(nn.LayerNorm(L) for _ in range(3))
        self.edge_vnorms = nn.ModuleList(VectorNorm(C) for _ in range(3))
        self.encoder = EquivariantMeshBlock(L, C, cross=True)
        self.blocks = nn.ModuleList(EquivariantMeshBlock(L, C, cross=True) for _ in range(steps))
        self.decoder = EquivariantMeshBlock(L, C, cross=True)
        self.head = MLP([L], L, out_scalars + out_vectors * C, act=act)

    def _nodes(self, k: int, scalars, vecs: torch.Tensor):
        """Node scalars ``[N, L]`` and vectors ``[N, 3, C]`` from ``vecs [N, K, 3]`` (and scalars)."""
        embed, amap = (self.grid_embed, self.grid_map) if k == 0 else (self.mesh_embed, self.mesh_map)
        parts = ([(scalars, None)] if k == 0 else []) + [(vector_invariants(vecs), None)]
        out = embed(*parts)
        L = self.latent
        v = out[:, None, L:] * mix_vectors(vecs.transpose(1, 2), amap)  # [N, 3, C]
        return self.node_norms[k](out[:, :L]), self.node_vnorms[k](v)

    def _edges(self, k: int, pos_s, pos_r, edge_index, batch: int):
        """Edge scalars ``[B E, L]`` and vectors ``[B E, 3, C]`` of graph ``k`` (the same per sample)."""
        x, length = _edge_geometry(pos_s, pos_r, edge_index)
        out = self.edge_embed[k]((length, None))  # [E, L + C]
        L = self.latent
        direction = x / length.clamp_min(torch.finfo(x.dtype).tiny)  # 0 for coincident points
        a = self.edge_norms[k](out[:, :L])
        w = self.edge_vnorms[k](out[:, None, L:] * direction[:, :, None])  # [E, 3, C]
        return (a, w) if batch == 1 else (a.repeat(batch, 1), w.repeat(batch, 1, 1))

    def forward(
        self,
        scalars: torch.Tensor | None,
        vectors: torch.Tensor | None,
        global_vectors: torch.Tensor | None,
        graph: SphereGraph,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, G, M = self._check(scalars, vectors, global_vectors, graph)
        L, C, K = self.latent, self.vectors, self.global_vectors
        ref = scalars if scalars is not None else vectors
        gpos, mpos = graph.grid_pos.to(ref.dtype), graph.mesh_pos.to(ref.dtype)
        glob = global_vectors if K else ref.new_zeros(B, 0, 3)
        gv = [gpos.expand(B, G, 3)[:, :, None], glob[:, None].expand(B, G, K, 3)]
        if self.in_vectors:
            gv.insert(0, vectors)
        gv = torch.cat(gv, dim=2).reshape(B * G, -1, 3)  # [B G, k_grid, 3]
        mv = torch.cat([mpos.expand(B, M, 3)[:, :, None], glob[:, None].expand(B, M, K, 3)], dim=2)
        s_g, v_g = self._nodes(0, None if scalars is None else scalars.reshape(B * G, -1), gv)
        s_m, v_m = self._nodes(1, None, mv.reshape(B * M, -1, 3))
        # grid and mesh nodes of a sample side by side: [G grid | M mesh], B times
        s = torch.cat([s_g.view(B, G, L), s_m.view(B, M, L)], 1).reshape(B * (G + M), L)
        v = torch.cat([v_g.view(B, G, 3, C), v_m.view(B, M, 3, C)], 1).reshape(B * (G + M), 3, C)
        a, w = self._edges(0, gpos, mpos, graph.g2m, B)
        sender, receiver = _batched(graph.g2m, B, G + M, receive=G)
        s, v, _, _ = self._process([self.encoder], (s, v, a, w), sender, receiver)
        s, v = s.view(B, G + M, L), v.view(B, G + M, 3, C)
        sm, vm = s[:, G:].reshape(B * M, L), v[:, G:].reshape(B * M, 3, C)
        a, w = self._edges(1, mpos, mpos, graph.mesh, B)
        sm, vm, _, _ = self._process(self.blocks, (sm, vm, a, w), *_batched(graph.mesh, B, M))
        s = torch.cat([s[:, :G], sm.view(B, M, L)], 1).reshape(B * (G + M), L)
        v = torch.cat([v[:, :G], vm.view(B, M, 3, C)], 1).reshape(B * (G + M), 3, C)
        a, w = self._edges(2, mpos, gpos, graph.m2g, B)
        sender, receiver = _batched(graph.m2g, B, G + M, send=G)
        s, v, _, _ = self._process([self.decoder], (s, v, a, w), sender, receiver)
        s_g = s.view(B, G + M, L)[:, :G].reshape(B * G, L)
        v_g = v.view(B, G + M, 3, C)[:, :G].reshape(B * G, 3, C)
        out = self.head((s_g, None))  # [B G, out_scalars + out_vectors C]
        S = self.out_scalars
        coef = out[:, S:].view(B * G, self.out_vectors, C)
        vec = torch.einsum("nvc,ndc->nvd", coef, v_g) / math.sqrt(C)  # [B G, out_vectors, 3]
        r = gpos.repeat(B, 1)[:, None, :]  # [B G, 1, 3]
        vec = vec - (vec * r).sum(-1, keepdim=True) * r  # tangent
        return out[:, :S].view(B, G, S), vec.view(B, G, self.out_vectors, 3)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", vectors={self.vectors}"


class GraphCastNet(_SphereModel):
    """GraphCast (Lam et al. 2023) at our sizes: the non-equivariant baseline on the same graphs.

    Grid node features: the scalar inputs, each vector input's ``(u, v)`` components in the local
    east/north frame, the global vectors' raw components, and ``cos lat, sin lon, cos lon`` of the point;
    mesh nodes: the last two groups. Edge features: the length and the displacement (sender minus
    receiver) in the receiver's local east/north/up frame, over the graph's mean length (GraphCast's
    edge features). MLPs to ``latent`` with LayerNorm; encoder, ``steps`` processor blocks and decoder are
    :class:`~sim.nn.mesh_gnn.MeshGraphNetBlock` (GraphCast's interaction networks); the output MLP gives
    the scalars and ``(u, v)`` of each vector output, returned as 3-D tangent vectors.

    Args: as :class:`EquivariantSphereNet` without ``vectors``.
    """

    def __init__(
        self,
        *,
        in_scalars: int,
        in_vectors: int,
        out_scalars: int,
        out_vectors: int,
        global_vectors: int = 2,
        latent: int = 128,
        steps: int = 8,
        checkpoint: bool = False,
    ) -> None:
        super().__init__(
            in_scalars=in_scalars,
            in_vectors=in_vectors,
            out_scalars=out_scalars,
            out_vectors=out_vectors,
            global_vectors=global_vectors,
            latent=latent,
            steps=steps,
            checkpoint=checkpoint,
        )
        L, K = latent, global_vectors
        self.grid_embed = MLP([in_scalars, 2 * in_vectors, 3 * K, 3], L, L, layer_norm=True)
        self.mesh_embed = MLP([3 * K, 3], L, L, layer_norm=True)
        self.edge_embed = nn.ModuleList(MLP([1, 3], L, L, layer_norm=True) for _ in range(3))
        self.encoder = MeshGraphNetBlock(L)
        self.blocks = nn.ModuleList(MeshGraphNetBlock(L) for _ in range(steps))
        self.decoder = MeshGraphNetBlock(L)
        self.head = MLP([L], L, out_scalars + 2 * out_vectors)

    @staticmethod
    def _position_features(frame: torch.Tensor) -> torch.Tensor:
        """``cos lat, sin lon, cos lon`` from local frames ``[N, 3, 3]``."""
        east = frame[:, 0]
        return torch.stack([frame[:, 1, 2], -east[:, 0], east[:, 1]], -1)  # north_z = cos lat

    def _edges(self, k: int, pos_s, pos_r, frame_r, edge_index, batch: int) -> torch.Tensor:
        x, length = _edge_geometry(pos_s, pos_r, edge_index)
        local = torch.einsum("eij,ej->ei", frame_r.index_select(0, edge_index[1]), x)  # east, north, up
        e = self.edge_embed[k]((length, None), (local, None))
        return e if batch == 1 else e.repeat(batch, 1)

    def forward(
        self,
        scalars: torch.Tensor | None,
        vectors: torch.Tensor | None,
        global_vectors: torch.Tensor | None,
        graph: SphereGraph,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, G, M = self._check(scalars, vectors, global_vectors, graph)
        L, K = self.latent, self.global_vectors
        ref = scalars if scalars is not None else vectors
        gpos, mpos = graph.grid_pos.to(ref.dtype), graph.mesh_pos.to(ref.dtype)
        gframe, mframe = local_frame(gpos), local_frame(mpos)  # [G, 3, 3], [M, 3, 3]
        glob = (global_vectors if K else ref.new_zeros(B, 0, 3)).reshape(B, 3 * K)
        parts = [
            (None if scalars is None else scalars.reshape(B * G, -1), None),
            (
                None
                if vectors is None
                else torch.einsum("gij,bgvj->bgvi", gframe[:, :2], vectors).reshape(B * G, -1),
                None,
            ),
            (glob.repeat_interleave(G, 0), None),
            (self._position_features(gframe).repeat(B, 1), None),
        ]
        h_g = self.grid_embed(*parts)  # parts of width 0 are skipped
        h_m = self.mesh_embed(
            (glob.repeat_interleave(M, 0), None), (self._position_features(mframe).repeat(B, 1), None)
        )
        h = torch.cat([h_g.view(B, G, L), h_m.view(B, M, L)], 1).reshape(B * (G + M), L)
        e = self._edges(0, gpos, mpos, mframe, graph.g2m, B)
        h, _ = self._process([self.encoder], (h, e), *_batched(graph.g2m, B, G + M, receive=G))
        h = h.view(B, G + M, L)
        hm = h[:, G:].reshape(B * M, L)
        e = self._edges(1, mpos, mpos, mframe, graph.mesh, B)
        hm, _ = self._process(self.blocks, (hm, e), *_batched(graph.mesh, B, M))
        h = torch.cat([h[:, :G], hm.view(B, M, L)], 1).reshape(B * (G + M), L)
        e = self._edges(2, mpos, gpos, gframe, graph.m2g, B)
        h, _ = self._process([self.decoder], (h, e), *_batched(graph.m2g, B, G + M, send=G))
        out = self.head((h.view(B, G + M, L)[:, :G].reshape(B * G, L), None))  # [B G, S + 2 V]
        S, V = self.out_scalars, self.out_vectors
        uv = out[:, S:].view(B, G, V, 2)
        vec = torch.einsum("bgvi,gij->bgvj", uv, gframe[:, :2])  # u east + v north
        return out[:, :S].view(B, G, S), vec
