"""Irreps of SO(2)/O(2): grammar, representation matrices, restriction to C_N/D_N."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.groups import FieldType, cyclic, dihedral
from sim.groups.o2 import Irreps


def test_parse_and_print():
    t = Irreps.parse("O2", "2x0+ + 0- + 3x1")
    assert t.fields == ((0, 1),) * 2 + ((0, -1),) + ((1, 1),) * 3
    assert (t.dim, t.num_fields, t.max_frequency) == (9, 6, 1)
    assert str(t) == "2x0+ + 1x0- + 3x1 of O2"
    assert Irreps.parse("O2", str(t).rsplit(" of", 1)[0]) == t
    assert Irreps.parse("O2", "0++1") == Irreps.parse("O2", "0+ + 1")
    s = Irreps.parse("SO2", "4x0 + 2x1 + 1x2")
    assert (s.dim, str(s)) == (10, "4x0 + 2x1 + 1x2 of SO2")
    assert [(sl.start, sl.stop) for sl in s.slices()][4:] == [(4, 6), (6, 8), (8, 10)]


@pytest.mark.parametrize(
    ("group", "spec", "where"),
    [
        ("O2", "0+1", "expected '+' or the end at position 2"),
        ("O2", "2x0 + 1", "needs a parity '0+' or '0-' at position 3"),
        ("SO2", "0-", "position 1"),
        ("SO2", "1 + + 2", "expected '[Mx]k' at position 4"),
        ("SO2", "0x1", "multiplicity must be >= 1 at position 0"),
        ("SO2", "", "expected e.g."),
    ],
)
def test_bad_strings_name_the_string_and_position(group, spec, where):
    with pytest.raises(ValueError) as info:
        Irreps.parse(group, spec)
    msg = str(info.value)
    assert where in msg and repr(spec) in msg and "\n" not in msg


def test_bad_fields_and_group():
    with pytest.raises(ValueError, match="'SU2'"):
        Irreps("SU2", ((0, 1),))
    with pytest.raises(ValueError, match="frequency 1 and parity -1"):
        Irreps("O2", ((1, -1),))
    with pytest.raises(ValueError, match="SO\\(2\\) has no reflections"):
        Irreps.parse("SO2", "1").rho(0.3, reflect=True)


def test_rho_is_an_orthogonal_representation_of_o2():
    t = Irreps.parse("O2", "0+ + 0- + 1 + 2 + 5")
    rng = np.random.default_rng(0)
    for _ in range(10):
        a, b = rng.uniform(-7, 7, size=2)
        m, n = rng.integers(0, 2, size=2)
        # (r_a s^m)(r_b s^n) = r_(a + (-1)^m b) s^(m+n)
        lhs = t.rho(a, bool(m)) @ t.rho(b, bool(n))
        rhs = t.rho(a + (-1) ** m * b, bool((m + n) % 2))
        assert np.abs(lhs - rhs).max() < 1e-12
        r = t.rho(a, bool(m))
        assert np.abs(r @ r.T - np.eye(t.dim)).max() < 1e-12
    assert np.array_equal(t.rho(0.0), np.eye(t.dim))


@pytest.mark.parametrize("group", [cyclic(4), dihedral(4), cyclic(8), dihedral(6)], ids=str)
def test_frequency_one_is_the_vector_and_0minus_the_pseudoscalar(group):
    spec = "0+ + 0- + 1" if group.reflections else "0 + 1"
    names = "scalar + pseudoscalar + vector" if group.reflections else "scalar + vector"
    got = Irreps.parse("O2" if group.reflections else "SO2", spec).restrict(group).matrices()
    assert np.abs(got - FieldType.parse(group, names).matrices()).max() < 1e-14


@pytest.mark.parametrize("group", [cyclic(4), dihedral(4), cyclic(6), dihedral(3)], ids=str)
def test_to_fieldtype_has_the_same_matrices(group):
    t = Irreps.parse("O2", "0+ + 0- + 1 + 2 + 3 + 4 + 6")
    if group.n == 4:  # 3 aliases to -1 mod 4
        with pytest.raises(ValueError, match="frequency 3 aliases to -1 mod 4"):
            t.to_fieldtype(group)
        t = Irreps.parse("O2", "0+ + 0- + 1 + 2 + 4 + 5 + 6")
    if group.n == 6:
        t = Irreps.parse("O2", "0+ + 0- + 1 + 2 + 3 + 6 + 7")
    if group.n == 3:
        t = Irreps.parse("O2", "0+ + 0- + 1 + 3 + 4")
    ft = t.to_fieldtype(group)
    assert ft.dim == t.dim
    assert np.abs(ft.matrices() - t.restrict(group).matrices()).max() < 1e-12
    if group.n == 4:  # exact on the grid: exactly the same signed permutations
        assert np.array_equal(ft.matrices(), t.restrict(group).matrices())


def test_restriction_rules():
    with pytest.raises(ValueError, match="no action of the reflections of D4"):
        Irreps.parse("SO2", "1").restrict(dihedral(4))
    r = Irreps.parse("SO2", "3").restrict(cyclic(4))  # any frequency restricts
    assert np.array_equal(r.matrices()[1], [[0.0, 1.0], [-1.0, 0.0]])  # R(270 deg)
    assert r.matrices().shape == (4, 2, 2) and not r.matrices().flags.writeable
    m = Irreps.parse("O2", "1").restrict(dihedral(8)).matrices()
    assert abs(m[1][0, 0] - math.cos(math.pi / 4)) < 1e-15
