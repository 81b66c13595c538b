"""GroupConv2d: exact equivariance through the kit, the fast filter expansion against a slow reference,
bias rules, caching, pooling and resampling, and bad input."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from sim.groups import FieldType, act, cyclic, dihedral, disk_mask, transform_grid
from sim.nn import GroupConv2d, RegularNorm, group_pool, spatial_pool, upsample
from sim.testing import assert_equivariant, equivariance_errors, random_field

EXACT = [cyclic(4), dihedral(4), cyclic(2), dihedral(2), dihedral(1)]
PHYSICAL = "2x pseudoscalar + vector + scalar"


def _types(group, n_regular=3):
    return (
        FieldType.parse(group, PHYSICAL),
        FieldType.regular_fields(group, n_regular),
        FieldType.parse(group, "pseudoscalar + vector"),
    )


def _randomize(layer: GroupConv2d) -> GroupConv2d:
    if layer.bias is not None:
        nn.init.normal_(layer.bias)
    return layer


@pytest.mark.parametrize("group", EXACT, ids=str)
@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_every_mode_is_exactly_equivariant(group, padding):
    physical, regular, out = _types(group)
    for a, b in [(physical, regular), (regular, regular), (regular, out), (physical, out)]:
        layer = _randomize(GroupConv2d(a, b, 3, padding=padding))
        assert_equivariant(layer, size=(10, 6))


def test_a_stack_with_pointwise_nonlinearities_and_norms_is_equivariant():
    d4 = dihedral(4)
    physical, regular, out = _types(d4, 4)
    net = nn.Sequential(
        GroupConv2d(physical, regular, 5),
        nn.GroupNorm(2, 4),
        nn.GELU(),
        GroupConv2d(regular, regular, 3),
        nn.BatchNorm3d(4),
        nn.ReLU(),
        GroupConv2d(regular, out, 5),
    )
    assert_equivariant(net, physical, out, size=12)
    report = equivariance_errors(net, physical, out, size=12, train=True)  # batch statistics too
    assert report.worst < 1e-10


@pytest.mark.parametrize("kind", ["group", "batch", "instance"])
def test_regular_norm_is_equivariant_in_train_and_eval_mode(kind):
    d4 = dihedral(4)
    reg = FieldType.regular_fields(d4, 4)
    norm = RegularNorm(reg, kind, groups=2)
    nn.init.normal_(norm.norm.weight)
    nn.init.normal_(norm.norm.bias)
    norm.train()(random_field(reg, 6, dtype=torch.float32))  # running statistics for eval
    assert_equivariant(norm, reg, reg, size=6)
    assert equivariance_errors(norm, reg, reg, size=6, train=True).worst < 1e-12
    with pytest.raises(ValueError, match="groups must divide the 4 fields, got 3"):
        RegularNorm(reg, "group", groups=3)
    with pytest.raises(ValueError, match="expected an all-regular field type"):
        RegularNorm(FieldType.parse(d4, "vector"))


def _slow_bank(layer: GroupConv2d) -> torch.Tensor:
    """The filter bank from the definitions, one group element at a time with transform_grid."""
    group = layer.in_type.group
    G, k = group.order, layer.kernel_size
    W = layer.weight.detach().double()
    if not group.exact_on_grid:  # filters of approximate groups live on the inscribed disk
        W = W * disk_mask(k)
    T = lambda a, g: transform_grid(a, group, g)  # noqa: E731
    if layer.mode == "group":  # K_g(h, x) = W(g^-1 h, g^-1 x)
        O, I = layer.out_type.num_fields, layer.in_type.num_fields
        W = W.reshape(O, I, G, k, k)
        blocks = torch.empty(O, G, I, G, k, k, dtype=torch.float64)
        for g, h in itertools.product(range(G), repeat=2):
            blocks[:, g, :, h] = T(W[:, :, group.compose(group.inverse(g), h)], g)
        return blocks.reshape(O * G, I * G, k, k)
    if layer.mode == "lift":  # K_g = T_g(W) rho_in(g)^-1
        rho = torch.tensor(layer.in_type.matrices())
        return torch.stack([torch.einsum("ojpq,ij->oipq", T(W, g), rho[g]) for g in range(G)], 1).flatten(
            0, 1
        )
    if layer.mode == "project":  # block g: rho_out(g) T_g(A)
        rho = torch.tensor(layer.out_type.matrices())
        return torch.stack([torch.einsum("de,eipq->dipq", rho[g], T(W, g)) for g in range(G)], 2).flatten(
            1, 2
        )
    rho_in, rho_out = torch.tensor(layer.in_type.matrices()), torch.tensor(layer.out_type.matrices())
    return sum(torch.einsum("de,efpq,if->dipq", rho_out[g], T(W, g), rho_in[g]) for g in range(G)) / G


@pytest.mark.parametrize("group", [dihedral(4), cyclic(4), cyclic(8), dihedral(3)], ids=str)
def test_fast_filter_expansion_matches_the_slow_reference(group):
    physical, regular, out = _types(group, 2)
    if not group.exact_on_grid:
        physical, out = FieldType.parse(group, "2x scalar + pseudoscalar"), FieldType.parse(group, "scalar")
    for a, b in [(physical, regular), (regular, regular), (regular, out), (physical, out)]:
        layer = GroupConv2d(a, b, 5, allow_approximate=True).double()
        fast, _ = layer.expand_filters()
        slow = _slow_bank(layer)
        assert torch.allclose(fast, slow, atol=1e-12), layer.mode


def test_bias_lives_only_where_the_output_type_has_invariants():
    d4, c4 = dihedral(4), cyclic(4)
    reg = FieldType.regular_fields(d4, 2)
    assert GroupConv2d(reg, FieldType.parse(d4, "pseudoscalar"), 3).bias is None  # flips under reflections
    assert GroupConv2d(reg, FieldType.parse(d4, "vector"), 3).bias is None
    assert GroupConv2d(reg, FieldType.parse(d4, "scalar"), 3).bias.shape == (1,)
    c4_reg = FieldType.regular_fields(c4, 2)
    assert GroupConv2d(c4_reg, FieldType.parse(c4, "pseudoscalar"), 3).bias.shape == (1,)  # rotations only
    layer = _randomize(GroupConv2d(reg, reg, 3))
    assert layer.bias.shape == (2,)
    _, bias = layer.expand_filters()
    assert torch.equal(bias, layer.bias.detach().repeat_interleave(8))
    # the projected bias of a mixed output keeps only its invariant part
    mixed = _randomize(GroupConv2d(reg, FieldType.parse(d4, "scalar + pseudoscalar + vector"), 3))
    _, bias = mixed.expand_filters()
    assert bias[0] != 0 and torch.all(bias[1:] == 0)


def test_parameters_and_state_dict():
    d4 = dihedral(4)
    layer = GroupConv2d(FieldType.regular_fields(d4, 16), FieldType.regular_fields(d4, 16), 5)
    assert layer.weight.shape == (16, 16 * 8, 5, 5)  # = [C_out, C_in, |G|, k, k]: no redundancy
    assert set(layer.state_dict()) == {"weight", "bias"}
    lift = GroupConv2d(FieldType.parse(d4, "5x pseudoscalar"), FieldType.regular_fields(d4, 16), 5)
    assert lift.weight.shape == (16, 5, 5, 5)


def test_eval_outputs_follow_every_kind_of_weight_update():
    d4 = dihedral(4)
    reg = FieldType.regular_fields(d4, 2)
    layer = GroupConv2d(reg, reg, 3, bias=False).eval()
    x = random_field(reg, 8, dtype=torch.float32)
    with torch.no_grad():
        y1 = layer(x)
        layer.weight.data.mul_(2.0)  # bypasses the autograd version counter
        y2 = layer(x)
    assert torch.allclose(y2, 2 * y1, atol=1e-5)


def test_gradients_reach_the_weights():
    d4 = dihedral(4)
    layer = GroupConv2d(FieldType.parse(d4, "pseudoscalar"), FieldType.regular_fields(d4, 2), 3)
    layer(torch.randn(2, 1, 6, 6)).square().sum().backward()
    assert torch.isfinite(layer.weight.grad).all() and layer.weight.grad.abs().sum() > 0


def test_group_pooling_gives_invariant_scalars():
    d4 = dihedral(4)
    reg, scalars = FieldType.regular_fields(d4, 3), FieldType.parse(d4, "3x scalar")
    for mode in ("max", "mean"):
        assert_equivariant(lambda x, mode=mode: group_pool(x, mode), reg, scalars, size=6)


def test_spatial_pool_and_upsample_commute_with_d4_on_even_grids():
    d4 = dihedral(4)
    reg = FieldType.regular_fields(d4, 2)
    phys = FieldType.parse(d4, "pseudoscalar + vector")
    for t in (reg, phys):
        x = random_field(t, (8, 12))
        for g in d4.elements():
            for mode in ("avg", "max") if t.is_regular else ("avg",):  # max is not linear: not for signs
                assert torch.allclose(
                    spatial_pool(act(x, t, g), 2, mode), act(spatial_pool(x, 2, mode), t, g)
                )
            assert torch.allclose(upsample(act(x, t, g)), act(upsample(x), t, g))
    with pytest.raises(ValueError, match="divisible by 2, got 7x8"):
        spatial_pool(torch.zeros(1, 2, 7, 8))


def test_approximate_groups_need_consent_and_are_measured():
    c8 = cyclic(8)
    scal, reg = FieldType.parse(c8, "scalar"), FieldType.regular_fields(c8, 2)
    with pytest.raises(
        ValueError, match="C8 acts on a square grid only approximately .*allow_approximate=True"
    ):
        GroupConv2d(scal, reg, 5)
    layer = GroupConv2d(scal, reg, 5, allow_approximate=True)
    with pytest.raises(ValueError, match="give tol explicitly"):
        assert_equivariant(layer)
    report = equivariance_errors(layer, size=33, smooth=3.0, margin=4)
    assert report.errors[0] < 1e-12
    assert report.errors[2] < 1e-10  # 90 degrees: the interpolation is exact
    assert 1e-6 < report.errors[1] < 0.2  # 45 degrees: small but not zero


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kernel_size": 4}, "kernel_size must be a positive odd int, got 4"),
        ({"kernel_size": 3, "padding": "reflect"}, "padding must be 'circular' or 'zeros', got 'reflect'"),
    ],
)
def test_bad_construction(kwargs, match):
    d4 = dihedral(4)
    with pytest.raises(ValueError, match=match):
        GroupConv2d(FieldType.parse(d4, "scalar"), FieldType.regular_fields(d4, 1), **kwargs)


def test_bad_input_shapes_and_groups():
    d4 = dihedral(4)
    layer = GroupConv2d(FieldType.parse(d4, "5x pseudoscalar"), FieldType.regular_fields(d4, 2), 3)
    with pytest.raises(ValueError, match=r"GroupConv2d input: expected \[B, 5, H, W\] .* got \[2, 4, 8, 8\]"):
        layer(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="in_type is of D4, out_type of C4"):
        GroupConv2d(FieldType.parse(d4, "scalar"), FieldType.regular_fields(cyclic(4), 1), 3)


def test_plain_conv2d_fails_the_kit():
    d4 = dihedral(4)
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular")
    with pytest.raises(AssertionError, match="not equivariant under D4"):
        assert_equivariant(conv, FieldType.parse(d4, "scalar"), FieldType.parse(d4, "scalar"), size=8)
