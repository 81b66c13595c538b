"""Field types and the group action on grids: an action (g.(h.x) = (gh).x), matching the physics."""

from __future__ import annotations

import itertools

import pytest
import torch

from sim.groups import FieldType, act, cyclic, dihedral, transform_grid
from sim.solvers import NavierStokes2D, gaussian_random_field, vorticity_forcing
from sim.testing import assert_equivariant, random_field

EXACT = [cyclic(1), cyclic(2), cyclic(4), dihedral(1), dihedral(2), dihedral(4)]


def test_parse_and_describe():
    d4 = dihedral(4)
    t = FieldType.parse(d4, "4x pseudoscalar + vector + 2x irrep(1,1)")
    assert t.dim == 4 + 2 + 4 and t.num_fields == 7 and not t.has_regular
    assert str(t) == "4x pseudoscalar + 1x vector + 2x irrep(1,1) of D4"
    assert FieldType.parse(d4, "3x regular").channel_shape() == (3, 8)
    assert FieldType.parse(d4, "3x regular").dim == 24
    for bad, match in [
        ("", "expected e.g."),
        ("2x", "cannot read"),
        ("3 pseudo scalar", "cannot read"),
        ("2x spinor", "no representation 'spinor'"),
    ]:
        with pytest.raises(ValueError, match=match):
            FieldType.parse(d4, bad)
    with pytest.raises(ValueError, match="mixing regular and other fields"):
        FieldType.parse(d4, "regular + scalar").channel_shape()


def test_check_tensor_names_expected_and_given():
    t = FieldType.parse(dihedral(4), "2x regular")
    with pytest.raises(ValueError, match=r"expected \[B, 2, 8, H, W\] .* got \[1, 2, 4, 5, 5\]"):
        t.check_tensor(torch.zeros(1, 2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"expected \[B, 3, H, W\] .* got \[1, 2, 5, 5\]"):
        FieldType.parse(dihedral(4), "pseudoscalar + vector").check_tensor(torch.zeros(1, 2, 5, 5))


@pytest.mark.parametrize("group", EXACT, ids=str)
@pytest.mark.parametrize("spec", ["2x regular", "scalar + pseudoscalar + vector + {irreps}"])
def test_act_is_a_group_action(group, spec):
    t = FieldType.parse(group, spec.format(irreps=" + ".join(group.irreps())))
    x = random_field(t, (6, 4), batch=1)
    for g, h in itertools.product(group.elements(), repeat=2):
        assert torch.allclose(act(act(x, t, h), t, g), act(x, t, group.compose(g, h)), atol=1e-14)


def test_interpolated_rotation_agrees_with_rot90():
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    c8 = cyclic(8)
    assert torch.allclose(transform_grid(x, c8, 2), torch.rot90(x, 1, dims=(-1, -2)), atol=1e-12)
    assert torch.allclose(transform_grid(x, c8, 4), torch.rot90(x, 2, dims=(-1, -2)), atol=1e-12)


def test_velocity_of_the_solver_is_a_vector_field_of_the_vorticity():
    # The solver's u(w) commutes with D4: w a pseudoscalar in, (u, v) a vector out — checked by the kit.
    solver = NavierStokes2D(resolution=16, viscosity=1e-3, dt=1e-3)
    d4 = dihedral(4)
    assert_equivariant(
        lambda w: solver.velocity(w[:, 0]),
        FieldType.parse(d4, "pseudoscalar"),
        FieldType.parse(d4, "vector"),
        size=16,
    )


def test_navier_stokes_solver_is_d4_equivariant_through_the_kit():
    # inputs: vorticity and forcing (both pseudoscalars); output: vorticity at t = 0.1.
    solver = NavierStokes2D(resolution=16, viscosity=1e-2, dt=0.01)
    d4 = dihedral(4)
    w0 = gaussian_random_field(16, [1, 2])
    f = vorticity_forcing("symmetric", solver.grid, amplitude=1.0).expand(2, 16, 16)
    x = torch.stack([w0, f], dim=1)  # [B, 2, n, n]
    report = assert_equivariant(
        lambda x: solver.advance(x[:, 0], 0.1, forcing=x[:, 1])[:, None],
        FieldType.parse(d4, "2x pseudoscalar"),
        FieldType.parse(d4, "pseudoscalar"),
        inputs=x,
    )
    assert report[torch.float64].worst < 1e-12
    # ...and treating vorticity as a plain scalar is caught:
    with pytest.raises(AssertionError, match="not equivariant under D4"):
        assert_equivariant(
            lambda x: solver.advance(x[:, 0], 0.1, forcing=x[:, 1])[:, None],
            FieldType.parse(d4, "2x scalar"),
            FieldType.parse(d4, "scalar"),
            inputs=x,
        )
