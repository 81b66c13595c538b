"""Mesh GNN models on real meshes: the equivariant ones are E(d)-equivariant through the shared kit
(rotations, reflections, translations, node and edge permutations; d = 2 on the square mesh, d = 3 on an
icosphere; float64 and float32), the MeshGraphNet baseline is permutation equivariant and translation
invariant but fails under rotations; batches of graphs, second moments at the default sizes, gradients,
parameter counts, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from sim.discretize.icosahedral import icosahedral_meshes
from sim.discretize.mesh import NUM_NODE_TYPES, NodeType, load_mesh, load_node_type, mesh_to_graph
from sim.models.meshgraphnet import (
    EGNN,
    EquivariantMeshGraphNet,
    MeshGraphNet,
    TensorProductMeshNet,
    vector_invariants,
)
from sim.testing import assert_en_equivariant, en_elements, en_equivariance_errors

# torch.jit.script inside torch_geometric, imported by mesh_to_graph
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

F64 = torch.float64
MESHES = Path(__file__).resolve().parents[2] / "meshes"
MODELS = [MeshGraphNet, EquivariantMeshGraphNet, EGNN]
EQUIVARIANT = [EquivariantMeshGraphNet, EGNN, TensorProductMeshNet]
KINDS = ["vector", "scalar", "position", "edge_index", "scalar"]  # velocity, node_type, pos, edges, scalars
OUT = ("vector", "scalar")


def _state(graph, d: int, *, in_vectors: int = 1, in_scalars: int = 0, seed: int = 0):
    """Inputs ``[velocity, node_type, pos, edge_index, scalars]`` in float64 on a mesh graph: positions in
    units of the mean edge length, random velocities (zero on walls), random scalars."""
    gen = torch.Generator().manual_seed(seed)
    n = graph.num_nodes
    pos = (graph.pos[:, :d] / graph.edge_len.mean()).to(F64)  # [N, d]
    velocity = torch.randn(n, in_vectors, d, dtype=F64, generator=gen)
    velocity[graph.node_type == NodeType.WALL_BOUNDARY] = 0
    scalars = torch.randn(n, in_scalars, dtype=F64, generator=gen) if in_scalars else None
    return [velocity if in_vectors > 1 else velocity[:, 0], graph.node_type, pos, graph.edge_index, scalars]


@pytest.fixture(scope="module")
def square():
    path = MESHES / "square.ply"
    return mesh_to_graph(load_mesh(path), node_type=load_node_type(path), dtype=F64)


@pytest.fixture(scope="module")
def sphere():
    return mesh_to_graph(icosahedral_meshes(2)[-1], dtype=F64)  # 162 nodes, 960 edges, all NORMAL


def _small(cls, **kw):
    torch.manual_seed(0)
    return cls(latent=16, steps=2, **kw)


# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", EQUIVARIANT)
def test_equivariant_models_in_2d(cls, square):
    model = _small(cls, dim=2, in_vectors=2, in_scalars=1, out_scalars=2)
    inputs = _state(square, 2, in_vectors=2, in_scalars=1)
    reports = assert_en_equivariant(model, KINDS, OUT, inputs)
    assert len(reports[F64]) == 4  # two rotations and two reflections, with translations and permutations


@pytest.mark.parametrize("cls", EQUIVARIANT)
def test_equivariant_models_in_3d(cls, sphere):
    model = _small(cls, dim=3, out_scalars=1)
    assert_en_equivariant(model, KINDS, OUT, _state(sphere, 3))


def test_meshgraphnet_is_permutation_equivariant_translation_invariant_not_rotation_equivariant(square):
    model = _small(MeshGraphNet, dim=2, out_scalars=1)
    inputs = _state(square, 2)
    shifts = [(torch.eye(2, dtype=F64), t) for _, t in en_elements(2)]
    assert_en_equivariant(model, KINDS, OUT, inputs, elements=shifts)
    # it reads raw components, so rotating the inputs does not rotate its output
    errors = en_equivariance_errors(model, KINDS, OUT, inputs, permute=False)
    assert min(errors) > 0.05, errors
    with pytest.raises(AssertionError, match=r"not E\(n\)-equivariant in torch.float64"):
        assert_en_equivariant(model, KINDS, OUT, inputs, dtypes=(F64,))


@pytest.mark.parametrize("cls", MODELS)
def test_a_batch_is_one_bigger_graph(cls, square, sphere):
    model = _small(cls, dim=2, out_scalars=1).double()
    one = _state(square, 2, seed=1)
    two = _state(sphere, 2, seed=2)  # the sphere's x, y as a second, different 2D graph
    n1 = one[0].shape[0]
    batch = [
        torch.cat([one[0], two[0]]),
        torch.cat([one[1], two[1]]),
        torch.cat([one[2], two[2]]),
        torch.cat([one[3], two[3] + n1], dim=1),
        None,
    ]
    with torch.no_grad():
        vec, sca = model(*batch)
        for part, inputs in ((slice(0, n1), one), (slice(n1, None), two)):
            v, s = model(*inputs)
            torch.testing.assert_close(vec[part], v, atol=1e-12, rtol=0)
            torch.testing.assert_close(sca[part], s, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cls", MODELS)
def test_default_sizes_give_outputs_of_order_one(cls, square):
    torch.manual_seed(0)
    model = cls(out_scalars=1)  # latent 128, 15 steps
    assert (model.latent, model.steps) == (128, 15)
    velocity, node_type, pos, edge_index, _ = (
        x.float() if torch.is_tensor(x) and x.is_floating_point() else x for x in _state(square, 2)
    )
    with torch.no_grad():
        vec, sca = model(velocity, node_type, pos, edge_index)
    assert vec.shape == (square.num_nodes, 2) and sca.shape == (square.num_nodes, 1)
    for out in (vec, sca):
        assert torch.isfinite(out).all()
        assert 0.1 < out.std() < 10, (cls.__name__, float(out.std()))


@pytest.mark.parametrize("cls", MODELS)
def test_gradients_reach_every_parameter(cls, square):
    model = _small(cls, dim=2, in_vectors=2, in_scalars=1, out_scalars=1)
    inputs = [
        x.float() if torch.is_tensor(x) and x.is_floating_point() else x
        for x in _state(square, 2, in_vectors=2, in_scalars=1)
    ]
    assert (inputs[0] == 0).all(-1).any()  # zero velocities on the walls: norms must not give NaN gradients
    vec, sca = model(*inputs)
    (vec.square().mean() + sca.square().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{cls.__name__}: no gradient reaches {name}"
        assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, f"{cls.__name__}: {name}"


@pytest.mark.parametrize("cls", MODELS)
def test_parameter_count_in_the_docstring(cls):
    # the docstring states the count at the default sizes; built on the meta device (no memory)
    with torch.device("meta"):
        count = cls().num_parameters()
    stated = re.search(r"it\s+has ([\d,]+) parameters", " ".join(cls.__doc__.split()))
    assert stated is not None and int(stated.group(1).replace(",", "")) == count


def test_vector_invariants():
    v = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]]])  # [1, 3, 2]
    out = vector_invariants(v)  # norms 5, 1, 0; dots <v0,v1> = 3, <v0,v2> = 0, <v1,v2> = 0
    torch.testing.assert_close(out, torch.tensor([[5.0, 1.0, 0.0, 3.0, 0.0, 0.0]]))


@pytest.mark.parametrize("cls", MODELS)
def test_bad_input_raises_one_line_errors(cls, square):
    model = _small(cls, dim=2)
    velocity, node_type, pos, edge_index, _ = (
        x.float() if torch.is_tensor(x) and x.is_floating_point() else x for x in _state(square, 2)
    )
    n = len(pos)
    name = cls.__name__
    cases = [
        (
            (velocity[:, None].expand(n, 2, 2), node_type, pos, edge_index),
            rf"^{name}: velocity must be \[N, in_vectors=1, d=2\], got \[{n}, 2, 2\]$",
        ),
        (
            (velocity, node_type, pos[:, :1], edge_index),
            rf"^{name}: pos must be \[N={n}, d=2\], got \[{n}, 1\]$",
        ),
        (
            (velocity, node_type.float(), pos, edge_index),
            rf"^{name}: node_type must be int64, got torch.float32$",
        ),
        (
            (velocity, node_type + NUM_NODE_TYPES, pos, edge_index),
            rf"^{name}: node_type values must be in \[0, 9\), got 15$",
        ),
        (
            (velocity, node_type, pos, edge_index + n),
            rf"^{name}: edge_index must hold node indices in \[0, {n}\), got",
        ),
        (
            (velocity, node_type, pos, edge_index, torch.zeros(n, 1)),
            rf"^{name}: got scalars but the model was built with in_scalars=0$",
        ),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            model(*args)
    with pytest.raises(ValueError, match=rf"^{name}: dim must be 2 or 3, got 4$"):
        cls(dim=4)
    with pytest.raises(ValueError, match=rf"^{name}: latent must be an int >= 1, got 0$"):
        cls(latent=0)


def test_tensor_product_mesh_net_learns_through_every_parameter(square):
    model = TensorProductMeshNet(latent=8, steps=3, vectors=4, out_scalars=1).double()
    velocity, node_type, pos, edge_index, _ = _state(square, 2)
    vector, scalars = model(velocity, node_type, pos, edge_index)
    assert vector.shape == (square.num_nodes, 2) and scalars.shape == (square.num_nodes, 1)
    assert torch.isfinite(vector).all() and 0.01 < float(vector.std()) < 10
    (vector.square().sum() + scalars.square().sum()).backward()
    dead = {name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}
    # 2e -> 2e self-interaction: the first layer's 2e inputs are zero (the encoder has no path to 2e) and
    # the last layer's 2e outputs reach no output (the decoder reads 0e and 1o); the middle layer learns
    assert dead == {"convs.0.self_interaction.weights.3", "convs.2.self_interaction.weights.3"}, dead
    with pytest.raises(ValueError, match="vectors"):
        TensorProductMeshNet(vectors=1)
