"""SO(3)/O(3): irreps parsing, real spherical harmonics, Wigner-D, Clebsch-Gordan, rotation helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sim.groups.so3 import (
    E3NN_FROM_OURS,
    Irrep,
    Irreps,
    axis_angle,
    clebsch_gordan,
    matrix_to_angles,
    random_rotation,
    spherical_harmonics,
    wigner_D,
)

F64 = torch.float64
LMAX = 6


def _improper(n: int) -> torch.Tensor:
    """``[n, 3, 3]`` random improper orthogonal matrices (rotation times a mirror)."""
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=F64))
    return random_rotation(n) @ mirror


def _sphere_quadrature(n_lat: int, n_lon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre in z times uniform longitude: points ``[P, 3]``, weights ``[P]`` summing to 4 pi."""
    z, w = np.polynomial.legendre.leggauss(n_lat)
    phi = 2 * np.pi * np.arange(n_lon) / n_lon
    s = np.sqrt(1 - z**2)
    pts = np.stack(np.broadcast_arrays(s[:, None] * np.cos(phi), s[:, None] * np.sin(phi), z[:, None]), -1)
    return torch.from_numpy(pts.reshape(-1, 3)), torch.from_numpy(np.repeat(w * 2 * np.pi / n_lon, n_lon))


# ---------------------------------------------------------------------------------------------------
# Irreps
def test_irreps_parse_and_describe():
    ir = Irreps("16x0e + 8x1o+2e")
    assert ir.dim == 16 + 24 + 5 and ir.ls == (0, 1, 2) and ir.num_irreps == 25
    assert list(ir) == [(16, 0, 1), (8, 1, -1), (1, 2, 1)]
    assert str(ir) == "16x0e + 8x1o + 1x2e" and Irreps(str(ir)) == ir and Irreps(ir) == ir
    assert [(s.start, s.stop) for s in ir.slices()] == [(0, 16), (16, 40), (40, 45)]
    assert Irreps("2x1o + 1o + 0x2e + 0e").simplify() == Irreps("3x1o + 0e")
    assert Irreps.spherical_harmonics(2) == Irreps("0e + 1o + 2e")
    assert ir.count("1o") == 8 and ir.count(Irrep(2, 1)) == 1 and str(Irrep(3, -1)) == "3o"
    assert Irreps("") == Irreps() and Irreps("").dim == 0
    assert Irreps([(2, 1, -1)]) == Irreps("2x1o")


@pytest.mark.parametrize("bad", ["16x0y", "1x", "x1o", "3 o x", "1o + + 2e", "-1x0e", "1.5x0e"])
def test_irreps_bad_strings_name_the_term(bad):
    with pytest.raises(ValueError, match="cannot read") as err:
        Irreps(bad)
    assert repr(bad) in str(err.value)


def test_irreps_bad_tuples():
    with pytest.raises(ValueError, match="p in"):
        Irreps([(1, 1, 2)])
    with pytest.raises(ValueError, match="triples"):
        Irreps(["1o"])


def test_irreps_D_is_block_diagonal_with_parity():
    ir = Irreps("2x0e + 0o + 1o + 1e + 2e")
    R = random_rotation(dtype=F64)
    d_rot, d_inv = ir.D(R), ir.D(-torch.eye(3, dtype=F64))
    assert d_rot.shape == (ir.dim, ir.dim)
    torch.testing.assert_close(d_rot @ d_rot.T, torch.eye(ir.dim, dtype=F64), atol=1e-13, rtol=0)
    # inversion: +1 on even, -1 on odd irreps, whatever l
    torch.testing.assert_close(d_inv, torch.diag(torch.tensor([1, 1, -1, -1, -1, -1] + [1.0] * 8, dtype=F64)))
    perm = torch.tensor([1, 2, 0])
    torch.testing.assert_close(d_rot[3:6, 3:6], R[perm][:, perm], atol=1e-13, rtol=0)
    assert ir.D(random_rotation(4)).shape == (4, ir.dim, ir.dim)


# ---------------------------------------------------------------------------------------------------
# Spherical harmonics
def test_low_degrees_closed_form():
    x = torch.randn(50, 3, dtype=F64)
    u = x / x.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(spherical_harmonics(0, x), torch.ones(50, 1, dtype=F64))
    torch.testing.assert_close(spherical_harmonics(1, x), math.sqrt(3) * u[:, [1, 2, 0]])
    ux, uy, uz = u.unbind(-1)
    y2 = torch.stack(
        [
            math.sqrt(15) * ux * uy,
            math.sqrt(15) * uy * uz,
            math.sqrt(5) / 2 * (3 * uz**2 - 1),
            math.sqrt(15) * ux * uz,
            math.sqrt(15) / 2 * (ux**2 - uy**2),
        ],
        -1,
    )
    torch.testing.assert_close(spherical_harmonics(2, x), y2)
    assert spherical_harmonics(3, torch.tensor([1.0, 0, 0], dtype=F64))[-1] > 0  # no Condon-Shortley phase


@pytest.mark.parametrize("normalization", ["component", "norm"])
def test_normalization_sums(normalization):
    x = torch.randn(20, 3, dtype=F64)
    for l in range(LMAX + 1):
        total = spherical_harmonics(l, x, normalization=normalization).pow(2).sum(-1)
        expected = 2 * l + 1 if normalization == "component" else 1
        torch.testing.assert_close(total, torch.full_like(total, float(expected)), atol=1e-12, rtol=0)


def test_harmonics_orthonormal_on_the_sphere():
    pts, w = _sphere_quadrature(LMAX + 2, 2 * LMAX + 3)  # exact for degree 2 LMAX
    y = torch.cat([spherical_harmonics(l, pts, normalization="integral") for l in range(LMAX + 1)], -1)
    gram = y.T @ (w[:, None] * y)
    torch.testing.assert_close(gram, torch.eye(y.shape[1], dtype=F64), atol=1e-12, rtol=0)


def test_unnormalized_harmonics_are_homogeneous_and_float32_works():
    x = torch.randn(10, 3, dtype=F64)
    for l in range(4):
        torch.testing.assert_close(
            spherical_harmonics(l, 2.5 * x, normalize=False),
            2.5**l * spherical_harmonics(l, x, normalize=False),
        )
    y32 = spherical_harmonics(4, x.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), spherical_harmonics(4, x), atol=1e-5, rtol=0)
    assert spherical_harmonics(2, torch.zeros(1, 3)).abs().max() < 10  # zero vector: finite


def test_harmonics_gradcheck():
    x = torch.randn(4, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: spherical_harmonics(3, v), (x,))


def test_harmonics_bad_input():
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        spherical_harmonics(1, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="integer >= 0"):
        spherical_harmonics(-1, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="normalization"):
        spherical_harmonics(1, torch.zeros(4, 3), normalization="schmidt")


# ---------------------------------------------------------------------------------------------------
# Wigner-D
@pytest.mark.parametrize("improper", [False, True])
def test_harmonics_transform_by_wigner_D(improper):
    R = _improper(5) if improper else random_rotation(5)
    x = torch.randn(30, 3, dtype=F64)
    for l in range(LMAX + 1):
        D = wigner_D(l, R)  # [5, 2l+1, 2l+1]
        lhs = spherical_harmonics(l, torch.einsum("rij,pj->rpi", R, x))
        rhs = torch.einsum("rmn,pn->rpm", D, spherical_harmonics(l, x))
        assert (lhs - rhs).abs().max() < 1e-12, l


def test_wigner_D_homomorphism_orthogonal_parity():
    r1, r2 = random_rotation(3), _improper(3)
    eye = torch.eye(3, dtype=F64)
    for l in range(LMAX + 1):
        d1, d2, d12 = wigner_D(l, r1), wigner_D(l, r2), wigner_D(l, r1 @ r2)
        assert (d12 - d1 @ d2).abs().max() < 1e-12
        assert (d1 @ d1.transpose(-1, -2) - torch.eye(2 * l + 1, dtype=F64)).abs().max() < 1e-13
        assert (wigner_D(l, eye) - torch.eye(2 * l + 1, dtype=F64)).abs().max() < 1e-14
        torch.testing.assert_close(wigner_D(l, -eye), (-1) ** l * torch.eye(2 * l + 1, dtype=F64))
        torch.testing.assert_close(d2, (-1) ** l * wigner_D(l, -r2), atol=1e-13, rtol=0)
    assert wigner_D(1, r1.float()).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, 3\]"):
        wigner_D(1, torch.eye(2))


def test_wigner_D_about_z_is_a_rotation_of_m_pairs():
    a = 0.3
    D = wigner_D(2, axis_angle(torch.tensor([0, 0, 1.0], dtype=F64), torch.tensor(a, dtype=F64)))
    # m = +-2 pair turns by 2a, m = +-1 pair by a, m = 0 fixed
    assert (
        abs(D[2, 2] - 1) < 1e-14
        and abs(D[3, 3] - math.cos(a)) < 1e-14
        and abs(D[4, 4] - math.cos(2 * a)) < 1e-14
    )


# ---------------------------------------------------------------------------------------------------
# Clebsch-Gordan
def test_cg_selection_rule_shape_and_sign():
    assert clebsch_gordan(1, 1, 3).abs().max() == 0 and clebsch_gordan(2, 0, 1).abs().max() == 0
    c = clebsch_gordan(1, 2, 3)
    assert c.shape == (3, 5, 7) and abs(c.norm() - 1) < 1e-14
    first = c.flatten()[c.flatten().abs() > 1e-6][0]
    assert first > 0
    torch.testing.assert_close(
        clebsch_gordan(0, 2, 2)[0], torch.eye(5, dtype=F64) / math.sqrt(5), atol=1e-14, rtol=0
    )
    # 1 x 1 -> 1 is the cross product: antisymmetric
    c111 = clebsch_gordan(1, 1, 1)
    torch.testing.assert_close(c111, -c111.transpose(0, 1), atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="l3"):
        clebsch_gordan(1, 1, -2)


@pytest.mark.parametrize(("l1", "l2"), [(1, 1), (1, 2), (2, 2), (3, 2)])
def test_cg_equivariant_orthogonal_complete(l1, l2):
    R = torch.cat([random_rotation(2), _improper(1)])
    d1, d2 = 2 * l1 + 1, 2 * l2 + 1
    blocks = []
    for l3 in range(abs(l1 - l2), l1 + l2 + 1):
        c = clebsch_gordan(l1, l2, l3)
        for r in R:
            sign = (-1) ** (l1 + l2 + l3) if torch.linalg.det(r) < 0 else 1  # improper: parity of the path
            rotated = torch.einsum("ia,jb,kc,abc->ijk", wigner_D(l1, r), wigner_D(l2, r), wigner_D(l3, r), c)
            assert (rotated - sign * c).abs().max() < 1e-12
        blocks.append(math.sqrt(2 * l3 + 1) * c.reshape(d1 * d2, 2 * l3 + 1))
    # the sqrt(2l3+1)-scaled CG of all l3 form an orthogonal change of basis of the d1 d2 products
    u = torch.cat(blocks, dim=1)  # [d1 d2, d1 d2]
    torch.testing.assert_close(u.T @ u, torch.eye(d1 * d2, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(u @ u.T, torch.eye(d1 * d2, dtype=F64), atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------------------
# Rotation helpers
def test_rotation_helpers():
    R = random_rotation(10, dtype=F64)
    torch.testing.assert_close(
        R @ R.transpose(-1, -2), torch.eye(3, dtype=F64).expand(10, 3, 3), atol=1e-14, rtol=0
    )
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(10, dtype=F64))
    quarter = axis_angle(torch.tensor([0.0, 0.0, 2.0], dtype=F64), torch.tensor(math.pi / 2, dtype=F64))
    torch.testing.assert_close(
        quarter @ torch.tensor([1.0, 0, 0], dtype=F64), torch.tensor([0.0, 1, 0], dtype=F64)
    )
    a, b, g = matrix_to_angles(R)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=F64).expand(10, 3)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=F64).expand(10, 3)
    rebuilt = axis_angle(z, a) @ axis_angle(y, b) @ axis_angle(z, g)
    torch.testing.assert_close(rebuilt, R, atol=1e-12, rtol=0)
    for special in (
        torch.eye(3, dtype=F64),
        axis_angle(torch.tensor([1.0, 0, 0], dtype=F64), torch.tensor(math.pi, dtype=F64)),
    ):
        a, b, g = matrix_to_angles(special)
        torch.testing.assert_close(
            axis_angle(z[0], a) @ axis_angle(y[0], b) @ axis_angle(z[0], g), special, atol=1e-12, rtol=0
        )


# ---------------------------------------------------------------------------------------------------
# e3nn (optional): the same harmonics after the documented change of basis, the same CG up to sign
def test_harmonics_match_e3nn_after_change_of_basis():
    o3 = pytest.importorskip("e3nn.o3")
    x = torch.randn(200, 3, dtype=F64)
    q = torch.from_numpy(E3NN_FROM_OURS)
    for normalization in ("component", "integral", "norm"):
        for l in range(LMAX + 1):
            ours = spherical_harmonics(l, x, normalization=normalization)
            theirs = o3.spherical_harmonics(l, x @ q.T, normalize=True, normalization=normalization)
            assert (ours - theirs).abs().max() < 1e-10, (normalization, l)


def test_cg_match_e3nn_up_to_sign():
    o3 = pytest.importorskip("e3nn.o3")
    x = torch.randn(100, 3, dtype=F64)
    # Y_ours(x) = Y_e3nn(Q x) = B Y_e3nn(x) with B = least squares over many points
    basis = {}
    for l in range(4):
        theirs = o3.spherical_harmonics(l, x, normalize=True, normalization="component")
        ours = spherical_harmonics(l, x)
        basis[l] = torch.linalg.lstsq(theirs, ours).solution.T  # [2l+1, 2l+1]
        assert (theirs @ basis[l].T - ours).abs().max() < 1e-10
    for l1, l2, l3 in [(1, 1, 0), (1, 1, 1), (1, 1, 2), (2, 1, 1), (2, 2, 2), (3, 2, 1)]:
        theirs = torch.einsum(
            "ia,jb,kc,abc->ijk", basis[l1], basis[l2], basis[l3], o3.wigner_3j(l1, l2, l3).double()
        )
        ours = clebsch_gordan(l1, l2, l3)
        sign = torch.sign((ours * theirs).sum())
        assert (ours - sign * theirs).abs().max() < 1e-6, (l1, l2, l3)  # e3nn stores wigner_3j in float32
