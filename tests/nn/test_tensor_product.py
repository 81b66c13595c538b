"""SO(3)/O(3) layers: equivariance (rotations and reflections, float64), fast path against a slow
reference, e3nn agreement, the icosphere's 60 rotations as permutations, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sim.discretize.icosahedral import icosahedral_meshes, icosahedral_rotations, vertex_permutation
from sim.discretize.mesh import mesh_to_graph
from sim.groups.so3 import Irreps, clebsch_gordan, spherical_harmonics
from sim.nn.tensor_product import (
    Gate,
    IrrepsLinear,
    RadialBasis,
    SphericalHarmonics,
    TensorProduct,
    TensorProductConv,
)
from sim.testing import assert_o3_equivariant

F64 = torch.float64
TOL = 1e-9
IN1 = "3x0e + 2x0o + 2x1o + 2x1e + 2x2e"
IN2 = "0e + 1o + 2e"
OUT = "2x0e + 0o + 2x1o + 1e + 2x2e + 2o + 3o"


def _slow_tensor_product(tp: TensorProduct, x1, x2, weight) -> torch.Tensor:
    """The definition, one path at a time with explicit einsums (``weight [E, numel]``)."""
    in1, in2, out = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
    s1, s2, s3 = in1.slices(), in2.slices(), out.slices()
    result = torch.zeros(x1.shape[0], out.dim, dtype=x1.dtype)
    offset = 0
    for i1, i2, i3 in tp.paths:
        a, b, c = in1[i1], in2[i2], out[i3]
        fan_in = sum(in1[p[0]].mul * in2[p[1]].mul for p in tp.paths if p[2] == i3)
        n = a.mul * b.mul * c.mul
        w = weight[:, offset : offset + n].reshape(-1, a.mul, b.mul, c.mul)
        offset += n
        cg = clebsch_gordan(a.l, b.l, c.l).to(x1.dtype) * math.sqrt(2 * c.l + 1) / math.sqrt(fan_in)
        u = x1[:, s1[i1]].reshape(-1, a.mul, 2 * a.l + 1)
        v = x2[:, s2[i2]].reshape(-1, b.mul, 2 * b.l + 1)
        y = torch.einsum("euvw,ijk,eui,evj->ewk", w, cg, u, v)
        result[:, s3[i3]] += y.reshape(x1.shape[0], -1)
    return result


# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shared", [True, False])
def test_tensor_product_matches_slow_reference(shared):
    tp = TensorProduct(
        "2x0e + 2x1o + 1x2e", "2x0e + 1o + 2x2e", "3x0e + 2x1o + 2x1e + 2x2e", shared_weights=shared
    )
    tp = tp.double()
    x1 = torch.randn(6, tp.irreps_in1.dim, dtype=F64)
    x2 = torch.randn(6, tp.irreps_in2.dim, dtype=F64)
    weight = torch.randn(6, tp.weight_numel, dtype=F64)
    fast = tp(x1, x2) if shared else tp(x1, x2, weight)
    slow = _slow_tensor_product(tp, x1, x2, tp.weight.expand(6, -1) if shared else weight)
    torch.testing.assert_close(fast, slow, atol=1e-13, rtol=0)


@pytest.mark.parametrize("shared", [True, False])
def test_tensor_product_equivariant(shared):
    tp = TensorProduct(IN1, IN2, OUT, shared_weights=shared).double()
    x1, x2 = torch.randn(5, tp.irreps_in1.dim, dtype=F64), torch.randn(5, tp.irreps_in2.dim, dtype=F64)
    inputs, irreps = [x1, x2], [IN1, IN2]
    if not shared:
        inputs.append(torch.randn(5, tp.weight_numel, dtype=F64))
        irreps.append("invariant")
    assert_o3_equivariant(tp, irreps, OUT, inputs, tol=TOL)


def test_tensor_product_preserves_second_moment_and_shapes():
    tp = TensorProduct("16x0e + 16x1o + 16x2e", "0e + 1o + 2e", "16x0e + 16x1o + 16x2e")
    assert len(tp.paths) == 11 and tp.weight_numel == 11 * 256
    x1 = torch.randn(4000, tp.irreps_in1.dim)
    x2 = spherical_harmonics(2, torch.randn(4000, 3))
    x2 = torch.cat([torch.ones(4000, 1), spherical_harmonics(1, torch.randn(4000, 3)), x2], dim=-1)
    y = tp(x1.reshape(2, 2000, -1), x2.reshape(2, 2000, -1))
    assert y.shape == (2, 2000, tp.irreps_out.dim)
    assert 0.6 < y.pow(2).mean().item() < 1.6


def test_tensor_product_gradcheck():
    tp = TensorProduct("0e + 1o", "1o", "1o + 1e + 0e", shared_weights=False).double()
    x1, x2 = (
        torch.randn(3, 4, dtype=F64, requires_grad=True),
        torch.randn(3, 3, dtype=F64, requires_grad=True),
    )
    w = torch.randn(3, tp.weight_numel, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(tp, (x1, x2, w))


def test_irreps_linear_equivariant_and_mixes_only_equal_irreps():
    lin = IrrepsLinear(IN1, "4x0e + 0o + 3x1o + 2x2e + 3o", bias=True).double()
    with torch.no_grad():
        lin.bias.fill_(0.5)
    x = torch.randn(7, lin.irreps_in.dim, dtype=F64)
    assert_o3_equivariant(lin, [IN1], lin.irreps_out, [x], tol=TOL)
    y = lin(torch.zeros(1, lin.irreps_in.dim, dtype=F64))
    assert (
        torch.equal(y[0, :4], torch.full((4,), 0.5, dtype=F64)) and y[0, 4:].abs().max() == 0
    )  # bias on 0e only


def test_gate_equivariant_with_parities():
    gate = Gate(
        "2x0e + 0o",
        [torch.nn.functional.silu, torch.tanh],
        "2x0e + 0o",
        [torch.sigmoid, torch.abs],
        "2x1o + 2e",
    )
    assert gate.irreps_out == Irreps("2x0e + 0o + 2x1o + 2e")  # 0o gate with abs (even) keeps 2e even
    gate = gate.double()
    x = torch.randn(6, gate.irreps_in.dim, dtype=F64)
    assert_o3_equivariant(gate, [gate.irreps_in], gate.irreps_out, [x], tol=TOL)
    odd = Gate("", [], "0o", torch.tanh, "1o")
    assert odd.irreps_out == Irreps("1e")  # an odd gate flips the gated field's parity


def _conv(**kw) -> TensorProductConv:
    return TensorProductConv(
        "4x0e + 2x1o + 2x1e + 0o", "3x0e + 2x1o + 2x2e + 1e + 0o", cutoff=2.5, **kw
    ).double()


@pytest.mark.parametrize("aggregate", ["mean", "sum"])
def test_conv_equivariant_on_a_point_cloud(aggregate):
    conv = _conv(aggregate=aggregate, self_interaction=aggregate == "mean")
    n = 24
    pos = torch.randn(n, 3, dtype=F64)
    dist = torch.cdist(pos, pos)
    edge_index = torch.nonzero((dist < 2.0) & (dist > 0)).T.contiguous()  # [2, E]
    x = torch.randn(n, conv.irreps_in.dim, dtype=F64)
    assert_o3_equivariant(
        lambda f, p: conv(f, edge_index, pos=p),
        [conv.irreps_in, "vector"],
        conv.irreps_out,
        [x, pos],
        tol=TOL,
    )
    # edge_vec path gives the same answer and translations change nothing
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    torch.testing.assert_close(conv(x, edge_index, edge_vec=vec), conv(x, edge_index, pos=pos + 3.0))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script inside torch_geometric
def test_conv_on_icosphere_commutes_with_the_60_rotations():
    mesh = icosahedral_meshes(1)[-1]
    graph = mesh_to_graph(mesh, dtype=F64)
    conv = _conv()
    x = torch.randn(graph.num_nodes, conv.irreps_in.dim, dtype=F64)
    out = conv(x, graph.edge_index, edge_vec=graph.edge_vec)
    d_in, d_out = conv.irreps_in.D, conv.irreps_out.D
    worst = 0.0
    for rot in icosahedral_rotations():
        perm = torch.from_numpy(vertex_permutation(rot, mesh.vertices))
        r = torch.from_numpy(rot)
        moved = torch.empty_like(x)
        moved[perm] = x @ d_in(r).T  # f'(R p) = D f(p), on the same graph
        expected = torch.empty_like(out)
        expected[perm] = out @ d_out(r).T
        got = conv(moved, graph.edge_index, edge_vec=graph.edge_vec)
        worst = max(worst, float(((got - expected).abs().max() / out.abs().max()).detach()))
    assert worst < TOL


def test_radial_basis_smooth_cutoff():
    rb = RadialBasis(6, cutoff=2.0)
    r = torch.tensor([0.5, 1.0, 1.999999, 2.0, 3.0], dtype=F64)
    b = rb(r)
    assert b.shape == (5, 6) and b[2:].abs().max() < 1e-10 and b[0].abs().min() > 0


def test_spherical_harmonics_module():
    sh = SphericalHarmonics("0e + 1o + 2e")
    v = torch.randn(5, 3)
    torch.testing.assert_close(sh(v)[:, 1:4], spherical_harmonics(1, v))
    with pytest.raises(ValueError, match="1o"):
        SphericalHarmonics("0e + 1e")


# ---------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # e3nn's TorchScript
def test_tensor_product_matches_e3nn_up_to_path_signs():
    o3 = pytest.importorskip("e3nn.o3")
    irreps = ("4x0e + 3x1o + 2x2e", "0e + 1o + 2e", "3x0e + 2x1o + 2x2e")
    ours = TensorProduct(*irreps).double()
    theirs = o3.FullyConnectedTensorProduct(*irreps).double()
    assert [(p[0], p[1], p[2]) for p in ours.paths] == [
        (i.i_in1, i.i_in2, i.i_out) for i in theirs.instructions
    ]
    # the change of basis Y_ours(x) = B_l Y_e3nn(x), per degree, by least squares
    x = torch.randn(200, 3, dtype=F64)
    basis = {
        l: torch.linalg.lstsq(
            o3.spherical_harmonics(l, x, normalize=True, normalization="component"), spherical_harmonics(l, x)
        ).solution.T
        for l in range(3)
    }

    def to_ours(ir: Irreps) -> torch.Tensor:
        return torch.block_diag(*[basis[e.l] for e in ir for _ in range(e.mul)])

    # e3nn's CG may differ from ours by a sign per path: flip the weights of those paths
    signs = []
    for i1, i2, i3 in ours.paths:
        a, b, c = ours.irreps_in1[i1], ours.irreps_in2[i2], ours.irreps_out[i3]
        w3j = torch.einsum(
            "ia,jb,kc,abc->ijk", basis[a.l], basis[b.l], basis[c.l], o3.wigner_3j(a.l, b.l, c.l).double()
        )
        signs += [float(torch.sign((w3j * clebsch_gordan(a.l, b.l, c.l)).sum()))] * (a.mul * b.mul * c.mul)
    with torch.no_grad():
        theirs.weight.copy_(ours.weight * torch.tensor(signs, dtype=F64))
    x1 = torch.randn(8, ours.irreps_in1.dim, dtype=F64)
    x2 = torch.randn(8, ours.irreps_in2.dim, dtype=F64)
    m1, m2, mo = to_ours(ours.irreps_in1), to_ours(ours.irreps_in2), to_ours(ours.irreps_out)
    expected = theirs(x1 @ torch.linalg.inv(m1).T, x2 @ torch.linalg.inv(m2).T) @ mo.T
    assert (ours(x1, x2) - expected).abs().max() < 1e-5  # e3nn's Clebsch-Gordan tables are float32


# ---------------------------------------------------------------------------------------------------
def test_bad_input_errors():
    with pytest.raises(ValueError, match=r"TensorProduct irreps_in1: Irreps '16x0y': cannot read '16x0y'"):
        TensorProduct("16x0y", "0e", "0e")
    with pytest.raises(ValueError, match=r"no allowed path from 1x1o x 1x1o to 1x0o \+ 1x3e"):
        TensorProduct("1o", "1o", "0o + 3e")
    tp = TensorProduct("0e + 1o", "1o", "1o", shared_weights=False)
    with pytest.raises(ValueError, match=r"weight must be \[2, 1\]"):
        tp(torch.randn(2, 4), torch.randn(2, 3), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 4\] for irreps 1x0e \+ 1x1o, got \[2, 5\]"):
        tp(torch.randn(2, 5), torch.randn(2, 3), torch.randn(2, 1))
    with pytest.raises(ValueError, match="2 gates"):
        Gate("0e", torch.relu, "2x0e", torch.sigmoid, "1o")
    with pytest.raises(ValueError, match="needs an even or odd activation"):
        Gate("0o", torch.relu, "", [], "")
    with pytest.raises(ValueError, match="degree 0"):
        Gate("1o", torch.tanh, "", [], "")
    conv = TensorProductConv("0e", "0e", cutoff=1.0)
    with pytest.raises(ValueError, match="exactly one of pos"):
        conv(torch.randn(3, 1), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="aggregate"):
        TensorProductConv("0e", "0e", cutoff=1.0, aggregate="max")


def test_modules_expose_irreps():
    conv = _conv()
    assert conv.irreps_in == Irreps("4x0e + 2x1o + 2x1e + 0o") and conv.irreps_sh == Irreps("0e + 1o + 2e")
    assert conv.tp.irreps_in2 == conv.irreps_sh and "paths" in repr(conv)
    assert np.isfinite(
        conv(
            torch.randn(2, conv.irreps_in.dim, dtype=F64),
            torch.tensor([[0], [1]]),
            pos=torch.randn(2, 3, dtype=F64),
        )
        .detach()
        .numpy()
    ).all()
