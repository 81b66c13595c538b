"""Mesh message passing: the E(n) kit of sim.testing (it passes equivariant maps and catches broken ones),
EGNNLayer and MeshGraphNetBlock against slow references of their papers' equations, exact O(d)/E(d)
equivariance of EGNNLayer and EquivariantMeshBlock (rotations, reflections, translations, permutations;
d = 2, 3; float64 and float32), gradients, second moments, and bad input."""

from __future__ import annotations

import pytest
import torch

from sim.nn.mesh_gnn import MLP, EGNNLayer, EquivariantMeshBlock, MeshGraphNetBlock, VectorNorm
from sim.testing import EXACT_TOLERANCE, assert_en_equivariant, en_elements, en_equivariance_errors

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Small graphs: one torch thread (tests/conftest.py)."""


def _graph(n: int = 24, d: int = 2, *, radius: float = 1.4, seed: int = 0):
    """A random point cloud ``pos [n, d]`` (float64) with the radius graph ``edge_index [2, E]`` (both
    directions, no self-loops), every node with at least one incoming edge."""
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, d, dtype=F64, generator=gen)
    dist = torch.cdist(pos, pos)
    adjacency = (dist < radius) & (dist > 0)
    nearest = (dist + torch.eye(n, dtype=F64) * 1e9).argmin(1)  # [n]
    adjacency[torch.arange(n), nearest] = adjacency[nearest, torch.arange(n)] = True
    return pos, torch.nonzero(adjacency).T.contiguous()  # [2, E]


def _randn(*shape, seed: int = 1):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _scatter_loop(src: torch.Tensor, receiver: torch.Tensor, n: int) -> torch.Tensor:
    """Sum over incoming edges, one node at a time (the slow reference)."""
    return torch.stack([src[receiver == k].sum(0) for k in range(n)])


def _assert_all_gradients(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


# ---------------------------------------------------------------------------------------------------
# The kit


@pytest.mark.parametrize("d", [2, 3])
def test_en_elements_are_orthogonal_alternate_det_and_reproduce(d):
    elements = en_elements(d, n=6, seed=3)
    assert len(elements) == 6
    for k, (R, t) in enumerate(elements):
        assert R.shape == (d, d) and t.shape == (d,) and R.dtype == F64
        torch.testing.assert_close(R @ R.T, torch.eye(d, dtype=F64), atol=1e-14, rtol=0)
        assert round(float(torch.det(R))) == (1 if k % 2 == 0 else -1)
    again = en_elements(d, n=6, seed=3)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(elements, again, strict=True)
    )
    assert not torch.equal(elements[0][0], en_elements(d, n=6, seed=4)[0][0])
    with pytest.raises(ValueError, match="en_elements: d must be 2 or 3, got 4"):
        en_elements(4)


def _relative_flux(v, pos, edge_index):
    """An E(d)-equivariant map: sum_j (x_j - x_i) |v_j| + v_i (vector) and |v_i| (scalar)."""
    j, i = edge_index
    out = torch.zeros_like(v).index_add_(0, i, (pos[j] - pos[i]) * v[j].norm(dim=-1, keepdim=True))
    return out + v, v.norm(dim=-1)


KINDS = ["vector", "position", "edge_index"]


@pytest.mark.parametrize("d", [2, 3])
def test_en_kit_passes_an_equivariant_map_and_catches_component_maps(d):
    pos, edge_index = _graph(d=d)
    v = _randn(len(pos), d)
    reports = assert_en_equivariant(_relative_flux, KINDS, ("vector", "scalar"), [v, pos, edge_index])
    assert set(reports) == {torch.float64, torch.float32} and len(reports[F64]) == 4
    assert max(reports[F64]) < 1e-13

    def components(v, pos, edge_index):  # treats the first component as a scalar
        return _relative_flux(v * v[:, :1], pos, edge_index)

    assert min(en_equivariance_errors(components, KINDS, ("vector", "scalar"), [v, pos, edge_index])) > 1e-2
    with pytest.raises(
        AssertionError,
        match=r"^not E\(n\)-equivariant in torch.float64: relative error .* > 1e-10 at element \d "
        r"\(det [+-]1\), nodes and edges permuted$",
    ):
        assert_en_equivariant(components, KINDS, ("vector", "scalar"), [v, pos, edge_index])


@pytest.mark.parametrize("d", [2, 3])
def test_en_kit_catches_pseudovectors_on_reflections_only(d):
    pos, edge_index = _graph(d=d)
    v, w = _randn(len(pos), d), _randn(len(pos), d, seed=2)

    def pseudo(v, w):  # 2D: v turned by +90 degrees; 3D: v x w. Both commute with rotations only.
        if d == 2:
            return torch.stack([-v[:, 1], v[:, 0]], dim=-1)
        return torch.linalg.cross(v, w)

    errors = en_equivariance_errors(
        pseudo, ["vector", "vector"], "vector", [v, w], elements=en_elements(d, n=6)
    )
    assert max(errors[0::2]) < 1e-13 and min(errors[1::2]) > 0.5  # det +1 pass, det -1 fail
    with pytest.raises(AssertionError, match=r"at element 1 \(det -1\)"):
        assert_en_equivariant(pseudo, ["vector", "vector"], "vector", [v, w])


def test_en_kit_catches_absolute_positions_and_node_order():
    pos, edge_index = _graph(d=2)
    shift = [(torch.eye(2, dtype=F64), torch.tensor([0.7, -1.2], dtype=F64))]
    # |x_i| depends on the origin: fails a pure translation, without any permutation
    assert (
        en_equivariance_errors(
            lambda p: p.norm(dim=-1), ["position"], "scalar", [pos], elements=shift, permute=False
        )[0]
        > 1e-2
    )
    # a running sum depends on the node order: fails a pure permutation
    identity = [(torch.eye(2, dtype=F64), torch.zeros(2, dtype=F64))]
    s = _randn(len(pos), 3)
    assert (
        en_equivariance_errors(lambda x: x.cumsum(0), ["scalar"], "scalar", [s], elements=identity)[0] > 1e-2
    )
    assert en_equivariance_errors(lambda x: 2 * x, ["scalar"], "scalar", [s], elements=identity)[0] == 0.0

    # the first edge's message depends on the edge order: fails when only edges are reordered
    def first_edge(x, edge_index):
        return x[edge_index[0, 0]].expand_as(x)

    assert (
        en_equivariance_errors(
            first_edge, ["scalar", "edge_index"], "scalar", [s, edge_index], elements=identity
        )[0]
        > 1e-2
    )


def test_en_kit_takes_keyword_inputs_and_checks_kinds():
    pos, edge_index = _graph(d=3)
    v = _randn(len(pos), 3)
    kinds = {"v": "vector", "pos": "position", "edge_index": "edge_index"}
    inputs = {"v": v, "pos": pos, "edge_index": edge_index}
    assert max(en_equivariance_errors(_relative_flux, kinds, ("vector", "scalar"), inputs)) < 1e-13
    with pytest.raises(ValueError, match="kind must be one of .* got 'vectr'"):
        en_equivariance_errors(
            _relative_flux, ["vectr", "position", "edge_index"], "vector", [v, pos, edge_index]
        )


# ---------------------------------------------------------------------------------------------------
# MLP fast path


def test_split_mlp_matches_the_concatenated_mlp():
    mlp = MLP([5, 5, 3, 0], 8, 4, layer_norm=True).double()
    h, e = _randn(6, 5), _randn(9, 3)
    index_a, index_b = torch.randint(0, 6, (9,)), torch.randint(0, 6, (9,))
    parts = [(h, index_a), (h, index_b), (e, None), (None, None)]
    torch.testing.assert_close(mlp(*parts), mlp.reference(*parts), atol=1e-14, rtol=0)
    assert mlp.first.weight.shape == (8, 13)  # one Linear over the concatenation: the plain layout


# ---------------------------------------------------------------------------------------------------
# EGNNLayer


def _egnn_reference(layer: EGNNLayer, h, pos, edge_index, vectors=None, edge_attr=None):
    """Eqs. 3-7 of Satorras et al., edge by edge with concatenations and loops."""
    j, i = edge_index
    n = len(h)
    diff = pos[i] - pos[j]  # x_i - x_j
    radial = (diff**2).sum(-1, keepdim=True)
    unit = diff / (diff.norm(dim=-1, keepdim=True) + layer.eps)
    parts = [(h, i), (h, j), (radial, None), (edge_attr, None)]
    if layer.vector_invariants:
        v_i, v_j = vectors[i], vectors[j]
        inv = [(v_i * unit[:, None]).sum(-1), (v_j * unit[:, None]).sum(-1), (v_i * v_j).sum(-1)]
        parts.append((torch.cat(inv, dim=-1), None))
    m = layer.phi_e.reference(*parts)  # eq. 3
    direction = unit if layer.normalize else diff
    trans = direction[:, None, :] * layer.phi_x(m)[:, :, None]
    agg = _scatter_loop(trans, i, n)
    if layer.coord_agg == "mean":
        agg = agg / torch.stack([(i == k).sum() for k in range(n)]).clamp(min=1)[:, None, None]
    elif layer.coord_agg != "sum":
        agg = agg * layer.coord_agg
    new_vectors = None
    if layer.vectors:
        new_vectors = layer.phi_v(h)[:, :, None] * vectors + agg  # eq. 7
        new_pos = pos + new_vectors[:, 0]
    else:
        new_pos = pos + agg[:, 0]  # eq. 4
    weight = torch.sigmoid(layer.phi_inf(m)) if layer.infer_edges else torch.ones_like(m[:, :1])
    new_h = h + layer.phi_h.reference((h, None), (_scatter_loop(weight * m, i, n), None))  # eqs. 5-6
    return new_h, (new_pos if layer.update_pos else pos), new_vectors


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(vectors=2, normalize=True, infer_edges=True, coord_agg="sum", edge_dim=3),
        dict(vectors=3, vector_invariants=True, coord_agg=0.5),
    ],
)
def test_egnn_layer_matches_the_papers_equations(options):
    torch.manual_seed(0)
    layer = EGNNLayer(6, **options).double()
    for p in layer.phi_x[-1].parameters():  # lift the tiny init so the coordinate update is visible
        torch.nn.init.normal_(p)
    pos, edge_index = _graph(n=12, d=3)
    h = _randn(12, 6)
    vectors = _randn(12, layer.vectors, 3, seed=2) if layer.vectors else None
    edge_attr = _randn(edge_index.shape[1], layer.edge_dim, seed=3) if layer.edge_dim else None
    got = layer(h, pos, edge_index, vectors=vectors, edge_attr=edge_attr)
    want = _egnn_reference(layer, h, pos, edge_index, vectors, edge_attr)
    for a, b in zip(got, want, strict=True):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert (got[1] - pos).abs().max() > 1e-3  # positions did move


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("vectors", [0, 2])
def test_egnn_layer_is_en_equivariant(d, vectors):
    torch.manual_seed(0)
    layer = EGNNLayer(8, vectors=vectors, vector_invariants=vectors > 0, infer_edges=True, edge_dim=2)
    torch.nn.init.normal_(layer.phi_x[-1].weight)
    pos, edge_index = _graph(d=d)
    kinds = {"h": "scalar", "pos": "position", "edge_index": "edge_index", "edge_attr": "edge_scalar"}
    inputs = {"h": _randn(len(pos), 8), "pos": pos, "edge_index": edge_index}
    inputs["edge_attr"] = _randn(edge_index.shape[1], 2, seed=4)
    if vectors:
        kinds["vectors"], inputs["vectors"] = "vector", _randn(len(pos), vectors, d, seed=5)
    assert_en_equivariant(layer, kinds, ("scalar", "position", "vector"), inputs)


def test_egnn_layer_fixed_positions_and_gradients():
    layer = EGNNLayer(
        8, vectors=1, update_pos=False, normalize=True, vector_invariants=True, infer_edges=True
    )
    pos, edge_index = _graph(d=2)
    h = torch.randn(len(pos), 8)
    v = torch.randn(len(pos), 1, 2)
    v[:3] = 0  # zero vectors (walls) must not give NaN gradients
    h2, pos2, v2 = layer(h, pos.float(), edge_index, vectors=v)
    assert pos2 is not None and torch.equal(pos2, pos.float())
    (h2.square().mean() + v2.square().mean()).backward()
    _assert_all_gradients(layer)


# ---------------------------------------------------------------------------------------------------
# MeshGraphNetBlock


def test_meshgraphnet_block_matches_the_reference_code():
    torch.manual_seed(0)
    block = MeshGraphNetBlock(8).double()
    pos, edge_index = _graph(n=12)
    h, e = _randn(12, 8), _randn(edge_index.shape[1], 8, seed=2)
    j, i = edge_index
    # DeepMind's GraphNetBlock: edge MLP of [sender, receiver, edge]; nodes sum the edge updates
    update = block.edge_mlp.reference((h, j), (h, i), (e, None))
    agg = _scatter_loop(update, i, 12)
    want_h = h + block.node_mlp.reference((h, None), (agg, None))
    got_h, got_e = block(h, e, edge_index)
    torch.testing.assert_close(got_h, want_h, atol=1e-12, rtol=0)
    torch.testing.assert_close(got_e, e + update, atol=1e-12, rtol=0)
    # two hidden layers of width latent, ReLU, LayerNorm on the output
    names = [type(m).__name__ for m in block.edge_mlp.rest]
    assert (
        names == ["ReLU", "Linear", "ReLU", "Linear", "LayerNorm"] and block.edge_mlp.first.in_features == 24
    )


def test_meshgraphnet_block_is_permutation_equivariant_and_trains():
    block = MeshGraphNetBlock(8)
    pos, edge_index = _graph()
    h, e = _randn(len(pos), 8), _randn(edge_index.shape[1], 8, seed=2)
    identity = [(torch.eye(2, dtype=F64), torch.zeros(2, dtype=F64))] * 3
    assert_en_equivariant(
        block,
        ["scalar", "edge_scalar", "edge_index"],
        ("scalar", "edge_scalar"),
        [h, e, edge_index],
        elements=identity,
    )
    h2, e2 = block(h.float(), e.float(), edge_index)
    (h2.square().mean() + e2.square().mean()).backward()
    _assert_all_gradients(block)


# ---------------------------------------------------------------------------------------------------
# EquivariantMeshBlock and VectorNorm


def _block_inputs(d: int, latent: int = 8, vectors: int = 3, seed: int = 0):
    pos, edge_index = _graph(d=d, seed=seed)
    n, E = len(pos), edge_index.shape[1]
    return [
        _randn(n, latent, seed=1),
        _randn(n, vectors, d, seed=2),
        _randn(E, latent, seed=3),
        _randn(E, vectors, d, seed=4),
        edge_index,
    ]


BLOCK_KINDS = ["scalar", "vector", "edge_scalar", "edge_vector", "edge_index"]
BLOCK_OUT = ("scalar", "vector", "edge_scalar", "edge_vector")


@pytest.mark.parametrize("d", [2, 3])
def test_equivariant_block_is_o_d_equivariant(d):
    torch.manual_seed(0)
    block = EquivariantMeshBlock(8, 3, invariants=4)
    reports = assert_en_equivariant(block, BLOCK_KINDS, BLOCK_OUT, _block_inputs(d))
    assert max(reports[torch.float32]) < EXACT_TOLERANCE[torch.float32]


def test_cross_block_is_so3_but_not_o3_equivariant():
    torch.manual_seed(0)
    block = EquivariantMeshBlock(8, 3, invariants=4, cross=True)
    rotations = [g for g in en_elements(3, n=6) if torch.det(g[0]) > 0]
    reports = assert_en_equivariant(block, BLOCK_KINDS, BLOCK_OUT, _block_inputs(3), elements=rotations)
    assert max(reports[torch.float32]) < EXACT_TOLERANCE[torch.float32]
    # a reflection flips the cross products' sign relative to the polar vectors: not O(3)-equivariant
    reflections = [g for g in en_elements(3, n=6) if torch.det(g[0]) < 0]
    with pytest.raises(AssertionError, match="not E\\(n\\)-equivariant"):
        assert_en_equivariant(block, BLOCK_KINDS, BLOCK_OUT, _block_inputs(3), elements=reflections)


def test_cross_block_turns_a_vector_about_another():
    """From ``V = [r, u, r + u]`` the cross block's three-channel vector update spans ``r x u`` at every
    node; without cross it stays in the plane of ``r`` and ``u`` (polar vectors make no pseudovector)."""
    n = 64
    r, u = torch.randn(2, n, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    target = torch.linalg.cross(r, u)  # [n, 3]
    edge_index = torch.zeros(2, 0, dtype=torch.int64)  # nodes only
    residual = {}
    for cross in (False, True):
        torch.manual_seed(0)
        block = EquivariantMeshBlock(8, 3, invariants=2, cross=cross).double()
        V = torch.stack([r, u, r + u], dim=1)  # [n, 3, 3]
        empty = (torch.zeros(0, 8, dtype=F64), torch.zeros(0, 3, 3, dtype=F64))
        dv = block(torch.randn(n, 8, dtype=F64), V, *empty, edge_index)[1] - V  # [n, 3, 3]
        fit = torch.linalg.lstsq(dv.transpose(1, 2), target[..., None]).solution  # per-node best combination
        residual[cross] = float(
            ((dv.transpose(1, 2) @ fit)[..., 0] - target).square().sum() / target.square().sum()
        )
    assert residual[True] < 1e-20, residual
    assert residual[False] == pytest.approx(1.0, abs=1e-12)


def test_cross_block_needs_three_dimensions():
    block = EquivariantMeshBlock(8, 3, cross=True)
    with pytest.raises(ValueError, match=r"^EquivariantMeshBlock: cross=True needs 3-d vectors, got d = 2$"):
        block(*(x.float() if x.is_floating_point() else x for x in _block_inputs(2)))
    assert "cross=True" in repr(block)
    assert sum(p.numel() for p in block.parameters()) > sum(
        p.numel() for p in EquivariantMeshBlock(8, 3).parameters()
    )


def test_equivariant_block_stays_equivariant_through_a_deep_stack():
    torch.manual_seed(0)
    blocks = torch.nn.ModuleList(EquivariantMeshBlock(8, 3) for _ in range(6))

    def stack(s, V, a, W, edge_index):
        for block in blocks:
            s, V, a, W = block(s, V, a, W, edge_index)
        return s, V, a, W

    blocks.double()  # a plain callable: the kit casts only its inputs
    assert_en_equivariant(stack, BLOCK_KINDS, BLOCK_OUT, _block_inputs(3), dtypes=(F64,))
    blocks.float()
    assert_en_equivariant(stack, BLOCK_KINDS, BLOCK_OUT, _block_inputs(3), dtypes=(torch.float32,))


def test_equivariant_block_couples_node_and_edge_vectors():
    # Rotating the node vectors alone (not the edge vectors) changes the invariants it sees: a block
    # that ignored the relative orientation (norms only) would pass this test's first assertion.
    block = EquivariantMeshBlock(8, 3).double()
    s, V, a, W, edge_index = _block_inputs(2)
    R = en_elements(2)[0][0]
    out = block(s, V, a, W, edge_index)
    turned = block(s, V @ R.T, a, W, edge_index)
    assert (turned[0] - out[0]).abs().max() > 1e-3  # node scalars see <V, W>
    both = block(s, V @ R.T, a, W @ R.T, edge_index)
    torch.testing.assert_close(both[0], out[0], atol=1e-12, rtol=0)


def test_equivariant_block_internal_layout_and_gradients():
    block = EquivariantMeshBlock(8, 3)
    s, V, a, W, edge_index = (x.float() if x.is_floating_point() else x for x in _block_inputs(3))
    V[:2] = 0  # zero vectors must not give NaN gradients
    out = block(s, V, a, W, edge_index)
    internal = block.forward_internal(s, V.transpose(1, 2), a, W.transpose(1, 2), *edge_index)
    torch.testing.assert_close(out[1], internal[1].transpose(1, 2))
    sum(o.square().mean() for o in out).backward()
    _assert_all_gradients(block)


def test_equivariant_block_keeps_second_moments_of_order_one():
    torch.manual_seed(0)
    blocks = [EquivariantMeshBlock(32, 8) for _ in range(8)]
    pos, edge_index = _graph(n=200, d=3, radius=0.9)
    n, E = len(pos), edge_index.shape[1]
    s, V = torch.randn(n, 32), torch.randn(n, 8, 3) / 3**0.5  # unit mean |V_c|^2
    a, W = torch.randn(E, 32), torch.randn(E, 8, 3) / 3**0.5
    with torch.no_grad():
        for block in blocks:
            s, V, a, W = block(s, V, a, W, edge_index)
    # residual updates of unit size (LayerNorm, VectorNorm) on unit inputs: growth like sqrt(1 + depth) = 3,
    # though every node sums about 12 incoming edge updates
    for x in (s, a):
        assert torch.isfinite(x).all() and 1.0 < x.std() < 6.0
    for x in (V, W):
        assert torch.isfinite(x).all() and 1.0 < x.square().sum(-1).mean().sqrt() < 6.0


def test_vector_norm():
    norm = VectorNorm(4, layout="channels_first").double()
    V = _randn(5, 4, 3) * 7
    V[0] = 0
    out = norm(V)
    assert torch.equal(out[0], torch.zeros(4, 3, dtype=F64))
    torch.testing.assert_close(out[1:].square().sum(-1).mean(-1), torch.ones(4, dtype=F64))
    assert_en_equivariant(norm, ["vector"], "vector", [V])
    with pytest.raises(ValueError, match=r"VectorNorm: expected \[M, 4, d\], got \[5, 3, 3\]"):
        norm(V[:, :3])


# ---------------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_raises_one_line_errors():
    pos, edge_index = _graph(n=10)
    h, E = torch.randn(10, 8), edge_index.shape[1]
    layer, block, eq = EGNNLayer(8, vectors=1), MeshGraphNetBlock(8), EquivariantMeshBlock(8, 2)
    v = torch.randn(10, 1, 2)
    pos = pos.float()
    cases = [
        (
            lambda: layer(h, pos, edge_index.clone().fill_(12), vectors=v),
            r"^EGNNLayer: edge_index must hold node indices in \[0, 10\), got 12$",
        ),
        (
            lambda: layer(h, pos, edge_index - 1, vectors=v),
            r"edge_index must hold node indices in \[0, 10\), got -1$",
        ),
        (
            lambda: layer(h, pos, edge_index.float(), vectors=v),
            r"^EGNNLayer: edge_index must be int64, got torch.float32$",
        ),
        (
            lambda: layer(h, pos, edge_index[0], vectors=v),
            r"^EGNNLayer: edge_index must be \[2, E\], got \[\d+\]$",
        ),
        (
            lambda: layer(h, torch.randn(10, 4), edge_index, vectors=v),
            r"^EGNNLayer: vectors must have d = 2 or 3 components \(last axis\), got d = 4$",
        ),
        (
            lambda: layer(h, pos, edge_index, vectors=torch.randn(10, 1, 3)),
            r"^EGNNLayer: vectors must be \[N=10, C=1, d=2\], got \[10, 1, 3\]$",
        ),
        (lambda: layer(h, pos, edge_index), r"vectors must be \[N=10, C=1, d=2\], got NoneType$"),
        (
            lambda: layer(h[:, :4], pos, edge_index, vectors=v),
            r"^EGNNLayer: h must be \[N, hidden=8\], got \[10, 4\]$",
        ),
        (
            lambda: block(h, torch.randn(E + 1, 8), edge_index),
            rf"^MeshGraphNetBlock: e must be \[E={E}, latent=8\], got \[{E + 1}, 8\]$",
        ),
        (
            lambda: eq(h, torch.randn(10, 2, 4), torch.randn(E, 8), torch.randn(E, 2, 4), edge_index),
            r"^EquivariantMeshBlock: vectors must have d = 2 or 3 .* got d = 4$",
        ),
        (
            lambda: eq(h, torch.randn(10, 2, 3), torch.randn(E, 8), torch.randn(E, 2, 2), edge_index),
            r"^EquivariantMeshBlock: W must be \[E=\d+, vectors=2, d=3\], got \[\d+, 2, 2\]$",
        ),
        (lambda: EGNNLayer(0), r"^EGNNLayer: hidden must be an int >= 1, got 0$"),
        (
            lambda: EGNNLayer(4, coord_agg="max"),
            r"^EGNNLayer: coord_agg must be 'mean', 'sum' or a float, got 'max'$",
        ),
        (lambda: EGNNLayer(4, vector_invariants=True), r"vector_invariants=True needs vectors >= 1"),
        (lambda: EquivariantMeshBlock(8, 0), r"^EquivariantMeshBlock: vectors must be an int >= 1, got 0$"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
