"""The equivariance kit itself: it passes what is equivariant, catches what is not, and says where."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sim.groups import FieldType, cyclic, dihedral
from sim.nn import GroupConv2d
from sim.testing import EXACT_TOLERANCE, assert_equivariant, equivariance_errors, random_field


def test_report_lists_every_element_and_leaves_the_module_alone():
    d4 = dihedral(4)
    layer = GroupConv2d(FieldType.parse(d4, "scalar"), FieldType.regular_fields(d4, 2), 3)
    reports = assert_equivariant(layer, size=6)
    assert set(reports) == {torch.float64, torch.float32}
    assert sorted(reports[torch.float64].errors) == list(range(8))
    assert reports[torch.float64].worst < EXACT_TOLERANCE[torch.float64]
    assert layer.weight.dtype == torch.float32 and layer.training  # the kit worked on a copy


def test_rotation_only_model_fails_on_reflections_and_says_so():
    # A C4 layer wrapped to claim D4 types: rotations pass, reflections fail.
    c4, d4 = cyclic(4), dihedral(4)
    # (5x5: a C4-symmetric 3x3 kernel is automatically mirror-symmetric)
    inner = GroupConv2d(FieldType.parse(c4, "pseudoscalar"), FieldType.parse(c4, "pseudoscalar"), 5)
    nn.init.normal_(inner.weight)
    report = equivariance_errors(
        inner, FieldType.parse(d4, "pseudoscalar"), FieldType.parse(d4, "pseudoscalar")
    )
    assert max(report.errors[g] for g in range(4)) < 1e-12
    assert min(report.errors[g] for g in range(4, 8)) > 1e-2
    with pytest.raises(AssertionError, match=r"not equivariant under D4 .* s\^1 .*reflected"):
        assert_equivariant(inner, FieldType.parse(d4, "pseudoscalar"), FieldType.parse(d4, "pseudoscalar"))


def test_tolerances_and_inputs():
    d4 = dihedral(4)
    t = FieldType.parse(d4, "vector")
    x = random_field(t, 5, batch=3, seed=4)
    assert x.shape == (3, 2, 5, 5) and x.dtype == torch.float64
    assert random_field(FieldType.regular_fields(d4, 2), (4, 6)).shape == (2, 2, 8, 4, 6)
    identity = lambda v: v  # noqa: E731
    assert assert_equivariant(identity, t, t, inputs=x)[torch.float32].worst == 0.0
    with pytest.raises(AssertionError):  # a vector treated as two scalars is wrong under rotations
        assert_equivariant(identity, t, FieldType.parse(d4, "2x scalar"), inputs=x)
    with pytest.raises(TypeError, match="give in_type and out_type"):
        assert_equivariant(identity)
    with pytest.raises(ValueError, match="in_type is of D4, out_type of C4"):
        assert_equivariant(identity, t, FieldType.parse(cyclic(4), "vector"))


def test_o3_kit_passes_equivariant_maps_and_catches_broken_ones():
    import pytest

    from sim.testing import assert_o3_equivariant, o3_elements

    x = torch.randn(5, 3, dtype=torch.float64)
    # |x|^2 is invariant, x itself an odd vector ("1o"), a cross product of two vectors an even one ("1e")
    assert_o3_equivariant(lambda v: (v * v).sum(-1, keepdim=True), ["1o"], "0e", [x])
    y = torch.randn(5, 3, dtype=torch.float64)
    assert_o3_equivariant(torch.linalg.cross, ["1o", "1o"], "1e", [x, y])
    with pytest.raises(AssertionError, match="not O\\(3\\)-equivariant"):
        assert_o3_equivariant(torch.linalg.cross, ["1o", "1o"], "1o", [x, y])  # wrong parity
    with pytest.raises(AssertionError, match="not O\\(3\\)-equivariant"):
        assert_o3_equivariant(lambda v: v * torch.tensor([1.0, 2.0, 3.0], dtype=v.dtype), ["1o"], "1o", [x])
    assert [round(float(torch.det(g))) for g in o3_elements()] == [1, 1, -1, -1]
