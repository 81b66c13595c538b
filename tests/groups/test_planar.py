"""C_N and D_N: group axioms, and every representation a homomorphism into orthogonal matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim.groups import PlanarGroup, cyclic, dihedral, group_from_name

GROUPS = [cyclic(n) for n in (1, 2, 3, 4, 6, 8)] + [dihedral(n) for n in (1, 2, 3, 4, 6, 8)]


@pytest.mark.parametrize("group", GROUPS, ids=str)
def test_group_axioms(group: PlanarGroup):
    G = list(group.elements())
    assert len(G) == group.order == group.n * (2 if group.reflections else 1)
    for g in G:
        assert group.compose(0, g) == g == group.compose(g, 0)
        assert group.compose(g, group.inverse(g)) == 0 == group.compose(group.inverse(g), g)
    for a, b, c in itertools.product(G, G, G):
        assert group.compose(group.compose(a, b), c) == group.compose(a, group.compose(b, c))


@pytest.mark.parametrize("group", GROUPS, ids=str)
def test_representations_are_orthogonal_homomorphisms(group: PlanarGroup):
    for name in ("trivial", "sign", "standard", "regular", *group.irreps()):
        rho = group.representation(name)
        d = rho.shape[-1]
        np.testing.assert_allclose(rho[0], np.eye(d), atol=1e-14)
        for g, h in itertools.product(group.elements(), repeat=2):
            np.testing.assert_allclose(rho[group.compose(g, h)], rho[g] @ rho[h], atol=1e-12, err_msg=name)
        np.testing.assert_allclose(
            np.einsum("gij,gkj->gik", rho, rho), np.broadcast_to(np.eye(d), rho.shape), atol=1e-12
        )


@pytest.mark.parametrize("group", GROUPS, ids=str)
def test_irreps_have_orthogonal_characters(group: PlanarGroup):
    chars = {name: np.trace(group.representation(name), axis1=1, axis2=2) for name in group.irreps()}
    for a, b in itertools.combinations(chars, 2):
        assert abs(chars[a] @ chars[b]) < 1e-9 * group.order, (a, b)
    norms = {name: chars[name] @ chars[name] / group.order for name in chars}
    if group.reflections:  # all real irreps of D_N are absolutely irreducible: sum of d^2 = |G|
        assert all(abs(v - 1) < 1e-9 for v in norms.values())
        assert sum(group.representation(n).shape[-1] ** 2 for n in chars) == group.order
    else:  # the 2D real irreps of C_N are pairs of complex ones: <chi, chi> = 2
        assert all(abs(v - group.representation(n).shape[-1]) < 1e-9 for n, v in norms.items())


def test_conventions():
    c4, d4 = cyclic(4), dihedral(4)
    r, s = d4.element(1), d4.element(0, 1)
    np.testing.assert_array_equal(c4.matrix(1), [[0, -1], [1, 0]])  # counter-clockwise quarter turn
    np.testing.assert_array_equal(d4.matrix(s), [[-1, 0], [0, 1]])  # mirror x -> -x
    assert d4.compose(s, r) == d4.compose(d4.inverse(r), s)  # s r = r^-1 s
    assert d4.representation("sign")[s, 0, 0] == -1 and d4.representation("sign")[r, 0, 0] == 1
    assert (c4.representation("sign") == 1).all()  # no reflections: a pseudoscalar is a scalar under C4
    assert c4.exact_on_grid and d4.exact_on_grid and cyclic(2).exact_on_grid and not cyclic(8).exact_on_grid
    # the regular representation permutes: (rho(h) f)(g) = f(h^-1 g)
    reg = d4.representation("regular")
    f = np.arange(8.0)
    for h in d4.elements():
        assert all((reg[h] @ f)[g] == f[d4.compose(d4.inverse(h), g)] for g in d4.elements())


def test_names():
    assert group_from_name("p4m") == dihedral(4) and group_from_name("P4") == cyclic(4)
    assert group_from_name("C8") == cyclic(8) and str(dihedral(6)) == "D6"
    for bad in ("Q4", "C0", "D", "4"):
        with pytest.raises(ValueError, match="expected C<N>, D<N>"):
            group_from_name(bad)
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        PlanarGroup(0)
    with pytest.raises(ValueError, match="no representation 'spin'"):
        cyclic(4).representation("spin")
    with pytest.raises(ValueError, match=r"element must be an int in \[0, 4\), got 4"):
        cyclic(4).inverse(4)
