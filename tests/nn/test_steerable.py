"""Steerable layers for SO(2)/O(2): exact C4/D4 equivariance through the kit, the kernel constraint on
the continuous kernels, basis counts (Weiler & Cesa), error against angle, caching, conversions between
regular and irreps features, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sim.groups import cyclic, dihedral
from sim.groups.o2 import Irreps
from sim.nn import steerable
from sim.nn.steerable import (
    GatedNonlinearity,
    IrrepsToRegular,
    NormNonlinearity,
    RegularToIrreps,
    SteerableBatchNorm,
    SteerableConv2d,
    SteerableGroupNorm,
    _angular_parts,
    _sample,
    kernel_basis,
)
from sim.testing import assert_equivariant, equivariance_errors, equivariance_errors_vs_angle, random_field

SO2 = Irreps.parse("SO2", "2x0 + 1 + 2 + 3")
O2 = Irreps.parse("O2", "0+ + 0- + 2x1 + 2")
CASES = [(SO2, cyclic(4)), (O2, dihedral(4)), (O2, cyclic(4))]


def _randomize(module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    return module


@pytest.mark.parametrize(("t", "group"), CASES, ids=["SO2-C4", "O2-D4", "O2-C4"])
@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_conv_is_exactly_equivariant_on_the_square(t, group, padding):
    small = Irreps(t.group, t.fields[:3])
    for a, b in [(t, t), (small, t), (t, small)]:
        conv = _randomize(SteerableConv2d(a, b, 5, padding=padding))
        assert_equivariant(conv, group=group, size=(9, 7))  # float64 <= 1e-10, float32 <= 1e-5


@pytest.mark.parametrize("spec", ["2x0 + 1 + 2 + 3", "0 + 1 + 2 + 0 + 1 + 2", "3x0 + 2x2 + 1 + 0"])
def test_fast_and_general_expansions_agree(spec, monkeypatch):
    t = Irreps.parse("SO2", spec)
    fast = SteerableConv2d(t, t, 5)
    monkeypatch.setattr(steerable, "_DENSE_BLOCK_LIMIT", 0)
    general = SteerableConv2d(t, t, 5)
    assert fast._layout is not None and general._layout is None
    assert fast.weight.numel() == general.weight.numel()
    for conv in (fast, general):  # all coefficients 1: the sum of each pair's basis, whatever the order
        with torch.no_grad():
            conv.weight.fill_(1.0)
    assert torch.allclose(fast.expand_filters()[0], general.expand_filters()[0], atol=1e-6)
    assert_equivariant(_randomize(general), group=cyclic(4), size=7)


def test_kernel_constraint_holds_on_the_continuous_kernels():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(7, 2))
    for group, irreps in (
        ("SO2", [(0, 1), (1, 1), (2, 1), (3, 1)]),
        ("O2", [(0, 1), (0, -1), (1, 1), (2, 1)]),
    ):
        for ko in irreps:
            for ki in irreps:
                ro, ri = Irreps(group, (ko,)), Irreps(group, (ki,))
                for a, _ in _angular_parts(group, ko, ki):
                    for _ in range(3):
                        theta, refl = rng.uniform(0, 2 * math.pi), group == "O2" and rng.random() < 0.5
                        g = np.array(
                            [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]
                        )
                        if refl:
                            g = g @ np.diag([-1.0, 1.0])
                        moved = _sample(a, group, ko, ki, q @ g.T)  # K(g q)  [d_out, d_in, P]
                        expected = np.einsum(
                            "ij,jkp,lk->ilp",
                            ro.rho(theta, refl),
                            _sample(a, group, ko, ki, q),
                            ri.rho(theta, refl),
                        )
                        assert np.abs(moved - expected).max() < 1e-12


@pytest.mark.parametrize(
    ("group", "out", "inp", "count"),
    [
        # Weiler & Cesa 2019: per ring 1 (0<-0), 2 (n<-0, 0<-m), 4 (n<-m) for SO(2); O(2) keeps half,
        # none between 0+ and 0-. Kernel 7: rings 0..3 with bandlimits 0, 2, 4, 6; the centre ring keeps
        # frequency 0 only.
        ("SO2", (0, 1), (0, 1), 4),
        ("SO2", (2, 1), (0, 1), 3 * 2),
        ("SO2", (1, 1), (1, 1), 2 + 3 * 4),
        ("SO2", (3, 1), (1, 1), 3 * 2 + 2 * 2),  # |3-1| = 2 on rings 1..3, 3+1 = 4 on rings 2, 3
        ("O2", (0, 1), (0, -1), 0),
        ("O2", (0, -1), (0, -1), 4),
        ("O2", (0, -1), (1, 1), 3),
        ("O2", (1, 1), (1, 1), 1 + 3 * 2),
    ],
)
def test_basis_counts(group, out, inp, count):
    basis = kernel_basis(group, out, inp, 7, (0.0, 1.0, 2.0, 3.0), (0.005, 0.6, 0.6, 0.4), 6)
    assert basis.shape[0] == count
    if count:
        flat = basis.reshape(count, -1)
        assert np.linalg.matrix_rank(flat) == count  # linearly independent
        d_out = basis.shape[1]
        assert np.allclose((flat**2).sum(1), d_out)


def test_same_basis_size_as_e2cnn(load_script):
    bench = load_script("bench_steerable")
    e2 = bench._load_e2cnn()
    if e2 is None:
        pytest.skip("e2cnn not installed")
    t = Irreps.parse("SO2", "0 + 1 + 2 + 0 + 1 + 2")
    ours = SteerableConv2d(t, t, 5, max_frequency=2)
    theirs = bench._e2cnn_conv(e2, 2, 5, "zeros")
    assert ours.weight.numel() == theirs.weights.numel()


def test_error_against_angle_is_small_and_falls_with_smoothness():
    t = Irreps.parse("O2", "0+ + 0- + 1 + 2")
    conv = SteerableConv2d(t, t, 5, padding="zeros", max_frequency=2)
    errs = {
        s: equivariance_errors_vs_angle(conv, angles=(15.0, 45.0, 90.0), size=32, smooth=s, margin=5)
        for s in (1.0, 3.0)
    }
    assert errs[1.0][90.0] < 1e-12 and errs[3.0][90.0] < 1e-12
    for a in (15.0, 45.0):
        assert 1e-5 < errs[3.0][a] < errs[1.0][a] < 0.1
    refl = equivariance_errors_vs_angle(conv, angles=(0.0, 90.0, 30.0), reflect=True, size=32, margin=5)
    assert refl[0.0] < 1e-12 and refl[90.0] < 1e-12 and refl[30.0] < 0.1


def test_kit_vs_angle_catches_a_wrong_type():
    vec, two = Irreps.parse("SO2", "1"), Irreps.parse("SO2", "2x0")
    identity = lambda x: x  # noqa: E731
    assert max(equivariance_errors_vs_angle(identity, vec, vec, size=16).values()) == 0.0
    assert equivariance_errors_vs_angle(identity, vec, two, angles=(90.0,), size=16)[90.0] > 0.5
    with pytest.raises(TypeError, match="rho"):
        equivariance_errors_vs_angle(identity, None, None)


def test_bias_only_on_trivial_fields_and_state_dict():
    conv = SteerableConv2d(O2, O2, 3)
    assert conv.bias.shape == (1,)  # one 0+ field
    bank, bias = conv.expand_filters()
    assert bank.shape == (O2.dim, O2.dim, 3, 3) and bias.shape == (O2.dim,)
    with torch.no_grad():
        conv.bias.fill_(2.0)
    assert conv.expand_filters()[1].tolist() == [2.0] + [0.0] * (O2.dim - 1)
    assert set(conv.state_dict()) == {"weight", "bias"}
    assert SteerableConv2d(Irreps.parse("O2", "0+"), Irreps.parse("O2", "1"), 3).bias is None


def test_eval_cache():
    conv = SteerableConv2d(SO2, SO2, 3).eval()
    x = torch.randn(1, SO2.dim, 6, 6)
    with torch.no_grad():
        a = conv._filters()[0]
        assert conv._filters()[0] is a  # cached
        conv.weight.mul_(2.0)  # in-place update: new version
        b = conv._filters()[0]
        assert b is not a and torch.allclose(b, 2 * a)
        y = conv(x)
    keys = set(conv.state_dict())
    conv.double()
    with torch.no_grad():
        assert conv._filters()[0].dtype == torch.float64  # dtype change invalidates
    conv.float().train()
    assert conv._cache is None and set(conv.state_dict()) == keys
    assert conv._filters()[0] is not conv._filters()[0]  # train mode: expanded every call
    conv.eval()
    out = conv(x)  # grad enabled and parameters need grad: no cache, gradients flow
    assert out.requires_grad and conv._cache is None and torch.allclose(out, y)


def test_gradcheck():
    t = Irreps.parse("O2", "0+ + 1")
    conv = SteerableConv2d(t, t, 3).double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w: torch.func.functional_call(conv, {"weight": w}, (x,)),
        (x, conv.weight.detach().clone().requires_grad_()),
    )


def test_bad_input():
    with pytest.raises(ValueError, match="max_frequency=3 is more than kernel_size=3"):
        SteerableConv2d(SO2, SO2, 3, max_frequency=3)
    with pytest.raises(ValueError, match=r"no kernel maps .* output irrep 3: kernel_size=3"):
        SteerableConv2d(Irreps.parse("SO2", "0"), Irreps.parse("SO2", "3"), 3)
    with pytest.raises(ValueError, match="output irrep 0-"):
        SteerableConv2d(Irreps.parse("O2", "0+"), Irreps.parse("O2", "0-"), 5)
    with pytest.raises(ValueError, match="kernel_size must be an odd int >= 3, got 4"):
        SteerableConv2d(SO2, SO2, 4)
    with pytest.raises(ValueError, match="in_type is of SO2, out_type of O2"):
        SteerableConv2d(SO2, O2, 3)
    with pytest.raises(ValueError, match="padding must be"):
        SteerableConv2d(SO2, SO2, 3, padding="reflect")
    with pytest.raises(ValueError, match=r"expected \[B, 8, H, W\]"):
        SteerableConv2d(SO2, SO2, 3)(torch.randn(1, 7, 5, 5))


@pytest.mark.parametrize(("t", "group"), [(O2, dihedral(4)), (SO2, cyclic(4))], ids=["O2-D4", "SO2-C4"])
def test_nonlinearities_and_norm_are_equivariant(t, group):
    for module in (
        _randomize(NormNonlinearity(t)),
        NormNonlinearity(t, function="sigmoid", bias=False),
        GatedNonlinearity(GatedNonlinearity.gated_type(t)),
        SteerableBatchNorm(t),
        SteerableGroupNorm(t, groups=2),
    ):
        for train in (False, True):
            assert_equivariant(module, group=group, size=6, train=train)


def test_norm_and_gate_values():
    t = Irreps.parse("O2", "0+ + 0- + 1")
    x = torch.tensor([-1.0, -2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
    y = NormNonlinearity(t, bias=False)(x).flatten().tolist()
    assert y == pytest.approx([0.0, -2.0, 3.0, 4.0])  # relu(|v|) v/|v| = v; relu on the scalar
    gate = GatedNonlinearity(GatedNonlinearity.gated_type(t))
    assert str(gate.out_type) == str(t) and gate.in_type.num_fields == 5
    g = torch.cat([x, torch.tensor([0.0, 100.0]).reshape(1, 2, 1, 1)], dim=1)
    assert gate(g).flatten().tolist() == pytest.approx([0.0, -1.0, 3.0, 4.0])  # sigmoid 0.5 and 1
    with pytest.raises(ValueError, match="must end with one trivial gate per non-trivial field"):
        GatedNonlinearity(t)
    bn = SteerableBatchNorm(t)
    z = bn(torch.randn(8, 4, 5, 5) * 3).detach()
    assert abs(float((z[:, 2:] ** 2).mean()) - 1) < 1e-4 and abs(float(z[:, 0].std()) - 1) < 0.05


def test_group_norm_normalises_each_sample_and_ignores_the_batch():
    t = Irreps.parse("O2", "4x0+ + 0- + 2x1 + 2")
    gn = SteerableGroupNorm(t, groups=2, eps=1e-12)
    assert gn.scalar_norm.num_groups == 2
    x = torch.randn(3, t.dim, 6, 6, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1]).reshape(3, 1, 1, 1)
    gn = gn.double()
    z = gn(x).detach()
    for b in range(3):  # per sample: trivial channels zero-mean unit-variance, the rest unit mean square
        torch.testing.assert_close(float((z[b, 4:] ** 2).mean()), 1.0, atol=1e-4, rtol=0)
        assert abs(float(z[b, :4].mean())) < 1e-12
    torch.testing.assert_close(gn(x[1:2]), z[1:2])  # no batch statistics: a sample alone is the same
    gn.eval()
    torch.testing.assert_close(gn(x), z)  # and eval mode changes nothing
    with pytest.raises(ValueError, match="groups must be an int >= 1"):
        SteerableGroupNorm(t, groups=0)


@pytest.mark.parametrize("group", [cyclic(4), dihedral(4), cyclic(8), dihedral(8)], ids=str)
def test_regular_irreps_conversions(group):
    L = (group.n - 1) // 2
    to_irreps = RegularToIrreps(group, 3, max_frequency=L)
    to_regular = IrrepsToRegular(group, 3, max_frequency=L)
    irr = to_irreps.out_type.restrict(group)
    for fn, a, b in ((to_irreps, to_irreps.in_type, irr), (to_regular, irr, to_regular.out_type)):
        errs = equivariance_errors(fn, a, b, size=6)
        assert errs.worst < 1e-10
    c = random_field(irr, 5)
    assert torch.allclose(to_irreps(to_regular(c)), c, atol=1e-12, rtol=0)  # exact inverse
    f = to_regular(c)  # band-limited regular features: the round trip is exact
    assert torch.allclose(to_regular(to_irreps(f)), f, atol=1e-12, rtol=0)
    assert to_irreps(f).shape == (2, to_irreps.out_type.dim, 5, 5) and f.shape == (2, 3, group.order, 5, 5)
    with pytest.raises(ValueError, match=f"max_frequency={group.n // 2} aliases on {group.name}"):
        RegularToIrreps(group, 1, max_frequency=group.n // 2)


def test_conversion_matches_fft_on_cn():
    group = cyclic(8)
    to_irreps = RegularToIrreps(group, 1, max_frequency=3)
    f = torch.randn(1, 1, 8, 1, 1, dtype=torch.float64)
    c = to_irreps(f).flatten()
    spec = torch.fft.fft(f.flatten()) / 8  # sum_j f_j e^{-2 pi i k j / 8}
    assert c[0] == pytest.approx(float(spec[0].real))
    for k in (1, 2, 3):
        assert float(c[2 * k - 1]) == pytest.approx(2 * float(spec[k].real))
        assert float(c[2 * k]) == pytest.approx(-2 * float(spec[k].imag))
