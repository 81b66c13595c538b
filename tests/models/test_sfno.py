"""The SFNO adapter: shapes, gradients, the parameter formula, exact symmetries on the lat-lon grid (zonal
rolls and the equatorial mirror, checked through sim.discretize.latlon's grid permutations), the spectral
filter's band limit, and argument checks.

Float32 throughout: torch-harmonics' spectral layer computes in float32 whatever the input dtype. The
symmetries hold exactly in exact arithmetic, so a relative error of 1e-5 (float32 epsilon 6e-8 times the
length of the contractions, ~1e-6 observed) separates rounding from a broken symmetry, which gives O(1)
errors (the negative controls below show them).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch_harmonics import InverseRealSHT

from sim.discretize.latlon import equiangular_grid, gaussian_grid, grid_permutation, polar_rotation
from sim.models.cnn import count_parameters
from sim.models.sfno import SFNO, exact_band_limit, sfno_num_parameters

GRIDS = ("equiangular", "legendre-gauss")
NLAT, NLON = 32, 64
REL_TOL = 1e-5  # float32 rounding; see the module docstring


def _transform(model: SFNO, matrix: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """``x [..., nlat, nlon]`` moved by the orthogonal map ``matrix`` (a rotation about the pole or a mirror),
    through the grid permutation of :func:`sim.discretize.latlon.grid_permutation`."""
    perm = torch.as_tensor(grid_permutation(model.latlon_grid, matrix))
    flat = x.flatten(-2)  # [..., nlat * nlon]
    out = torch.empty_like(flat)
    out[..., perm] = flat
    return out.reshape(x.shape)


def _relative_error(model: SFNO, g, x: torch.Tensor) -> float:
    """``max |f(g x) - g f(x)| / max |f(x)|`` for a map ``g`` on fields."""
    with torch.no_grad():
        y = model(x)
        return ((model(g(x)) - g(y)).abs().max() / y.abs().max()).item()


def _band_limited(grid: str, degrees: int, *, extra_degree: int | None = None, seed: int = 0):
    """A random real field ``[1, 1, NLAT, NLON]`` (float64) of degrees and orders ``< degrees``, and, if
    asked, a second field: ``Y_{extra_degree, 0} + Y_{extra_degree, 5}``."""
    gen = torch.Generator().manual_seed(seed)
    top = max(degrees, (extra_degree or 0) + 1)
    isht = InverseRealSHT(NLAT, NLON, lmax=top, mmax=top, grid=grid).double()
    coeffs = torch.randn(1, 1, top, top, dtype=torch.complex128, generator=gen)  # [1, 1, l, m]
    l, m = torch.arange(top)[:, None], torch.arange(top)[None, :]
    coeffs = torch.where((m <= l) & (l < degrees), coeffs, 0)
    coeffs[..., 0] = coeffs[..., 0].real  # m = 0: real coefficients for a real field
    field = isht(coeffs)
    if extra_degree is None:
        return field
    extra = torch.zeros_like(coeffs)
    extra[..., extra_degree, 0] = 1.0
    extra[..., extra_degree, 5] = 1.0 - 1.0j
    return field, isht(extra)


def _identity_filter(model: SFNO, block: int):
    """Block ``block``'s spectral convolution ``ISHT(W SHT(x))`` with ``W[l] = identity``: a projection onto
    degrees ``< model.lmax`` (upstream's ``SpectralConvS2`` returns ``(output, residual)``). Upstream gives
    the first and the last block their own transforms, the others the internal grid's: with two blocks,
    all four transforms are checked."""
    conv = model.net.blocks[block].global_conv
    with torch.no_grad():
        conv.weight.copy_(torch.eye(model.embed_dim, dtype=conv.weight.dtype)[:, :, None])
    return lambda x: conv(x)[0]


# --------------------------------------------------------------------------------------------------
# Shapes, gradients, parameters
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("norm", ["none", "instance"])
def test_forward_shape_and_backward(grid, norm):
    torch.manual_seed(0)
    model = SFNO(3, 2, nlat=NLAT, nlon=NLON, grid=grid, embed_dim=8, num_layers=2, norm=norm)
    x = torch.randn(2, 3, NLAT, NLON, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 2, NLAT, NLON) and y.dtype == torch.float32
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        assert (
            p.grad is not None
            and torch.isfinite(torch.view_as_real(p.grad) if p.is_complex() else p.grad).all()
        ), name


def test_parameter_count_pinned_for_the_reference_config():
    equiangular = SFNO(3, 3, nlat=32, nlon=64, embed_dim=64, num_layers=4)
    gauss = SFNO(3, 3, nlat=32, nlon=64, grid="legendre-gauss", embed_dim=64, num_layers=4)
    assert (equiangular.lmax, gauss.lmax) == (16, 32)
    assert equiangular.num_parameters() == 590_720
    assert gauss.num_parameters() == 1_115_008


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=3, out_channels=3, embed_dim=8, num_layers=1),
        dict(in_channels=5, out_channels=2, embed_dim=6, num_layers=3, lmax=7, norm="instance"),
        dict(in_channels=1, out_channels=4, embed_dim=4, num_layers=2, grid="legendre-gauss", lmax=32),
    ],
)
def test_parameter_count_matches_the_formula(kwargs):
    model = SFNO(nlat=NLAT, nlon=NLON, **kwargs)
    formula = sfno_num_parameters(
        kwargs["in_channels"],
        kwargs["out_channels"],
        embed_dim=model.embed_dim,
        num_layers=model.num_layers,
        lmax=model.lmax,
        norm=model.norm,
    )
    assert model.num_parameters() == count_parameters(model) == formula
    # the spectral weights are complex [E, E, lmax] per block, counted twice
    weight = model.net.blocks[0].global_conv.weight
    assert weight.is_complex() and weight.shape == (model.embed_dim, model.embed_dim, model.lmax)


def test_meta_device_is_refused_with_a_pointer_to_the_formula():
    with torch.device("meta"), pytest.raises(RuntimeError, match="sfno_num_parameters"):
        SFNO(3, 3, nlat=NLAT, nlon=NLON)


# --------------------------------------------------------------------------------------------------
# Symmetries
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("norm", ["none", "instance"])
def test_commutes_with_zonal_rolls(grid, norm):
    """A rotation about the polar axis by a multiple of the grid spacing is a roll of the longitude axis;
    it multiplies the order-m coefficients by a phase, which per-degree weights do not see."""
    torch.manual_seed(1)
    model = SFNO(2, 3, nlat=NLAT, nlon=NLON, grid=grid, embed_dim=16, num_layers=2, norm=norm)
    x = torch.randn(2, 2, NLAT, NLON)
    for shift in (1, 7):
        matrix = polar_rotation(shift * 360.0 / NLON)
        assert torch.equal(_transform(model, matrix, x), torch.roll(x, shift, dims=-1))  # the kit's roll
        assert _relative_error(model, lambda f, m=matrix: _transform(model, m, f), x) < REL_TOL, shift


@pytest.mark.parametrize("grid", GRIDS)
def test_commutes_with_the_equatorial_mirror_so_latitude_order_is_immaterial(grid):
    """The mirror z -> -z multiplies Y_lm by (-1)^(l+m), diagonal in (l, m): the model commutes with it, so
    our south-to-north order and torch-harmonics' north-to-south one give the same map."""
    torch.manual_seed(2)
    model = SFNO(2, 2, nlat=NLAT, nlon=NLON, grid=grid, embed_dim=16, num_layers=2)
    x = torch.randn(2, 2, NLAT, NLON)
    mirror = np.diag([1.0, 1.0, -1.0])
    assert torch.equal(_transform(model, mirror, x), x.flip(-2))
    assert _relative_error(model, lambda f: f.flip(-2), x) < REL_TOL


@pytest.mark.parametrize("grid", GRIDS)
def test_is_not_equivariant_under_meridian_mirrors_or_latitude_shifts(grid):
    """Negative controls: a meridian mirror maps order m to -m, and complex weights act as conj(W) there
    (the documented failure of full O(3) equivariance); shifting latitudes is no symmetry at all."""
    torch.manual_seed(3)
    model = SFNO(2, 2, nlat=NLAT, nlon=NLON, grid=grid, embed_dim=16, num_layers=2)
    x = torch.randn(2, 2, NLAT, NLON)
    meridian = np.diag([1.0, -1.0, 1.0])  # lon -> -lon
    assert _relative_error(model, lambda f: _transform(model, meridian, f), x) > 1e-2
    assert _relative_error(model, lambda f: torch.roll(f, 1, dims=-2), x) > 1e-2


# --------------------------------------------------------------------------------------------------
# Grids and the spectral filter
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", GRIDS)
def test_torch_harmonics_nodes_are_our_grid_latitudes(grid):
    """torch-harmonics' quadrature nodes (cos colatitude, flipped as its RealSHT does) are the latitudes of
    the grid ``SFNO.latlon_grid`` names, reversed (north first)."""
    from torch_harmonics.quadrature import clenshaw_curtiss_weights, legendre_gauss_weights

    nodes = {"equiangular": clenshaw_curtiss_weights, "legendre-gauss": legendre_gauss_weights}[grid]
    cost, _ = nodes(NLAT, -1, 1)
    colat = torch.flip(torch.arccos(cost), dims=(0,)).numpy()  # [nlat], 0 = north pole
    ours = equiangular_grid(NLAT, NLON, poles=True) if grid == "equiangular" else gaussian_grid(NLAT, NLON)
    assert SFNO(1, 1, nlat=NLAT, nlon=NLON, grid=grid, embed_dim=1, num_layers=1).latlon_grid == ours
    np.testing.assert_allclose(90.0 - np.rad2deg(colat), np.asarray(ours.lat)[::-1], atol=1e-10)


@pytest.mark.parametrize(("grid", "lmax"), [("equiangular", 16), ("legendre-gauss", 32)])
def test_spectral_filter_keeps_degrees_below_lmax_and_removes_degree_lmax(grid, lmax):
    """With identity weights the spectral convolution is the projection onto degrees < lmax: exact (to
    float32 rounding) at the default band limit, because the grid's quadrature integrates the products."""
    model = SFNO(1, 1, nlat=NLAT, nlon=NLON, grid=grid, embed_dim=1, num_layers=2)
    assert model.lmax == lmax == exact_band_limit(grid, nlat=NLAT, nlon=NLON)
    low, high = _band_limited(grid, lmax, extra_degree=lmax)
    scale = low.abs().max().item()
    for block in range(2):
        project = _identity_filter(model, block)
        assert (project(low.float()) - low).abs().max().item() < REL_TOL * scale, block
        assert (project((low + high).float()) - low).abs().max().item() < REL_TOL * scale, block


def test_equiangular_band_limit_above_the_sampling_limit_aliases():
    """Why the equiangular default is (nlat + 1) // 2 and not upstream's nlat: Clenshaw-Curtis on 32
    latitudes integrates degree <= 31 exactly, so at lmax = 32 the round trip is far from exact."""
    model = SFNO(1, 1, nlat=NLAT, nlon=NLON, grid="equiangular", embed_dim=1, num_layers=1, lmax=NLAT)
    project = _identity_filter(model, 0)
    field = _band_limited("equiangular", NLAT)
    assert (project(field.float()) - field).abs().max().item() > 1e-2 * field.abs().max().item()


def test_exact_band_limit_values():
    assert exact_band_limit("equiangular", nlat=32, nlon=64) == 16
    assert exact_band_limit("equiangular", nlat=721, nlon=1440) == 361
    assert exact_band_limit("legendre-gauss", nlat=32, nlon=64) == 32
    assert exact_band_limit("legendre-gauss", nlat=32, nlon=40) == 20  # limited by the longitudes


# --------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------


def test_wrong_input_shapes_raise():
    model = SFNO(3, 1, nlat=NLAT, nlon=NLON, embed_dim=4, num_layers=1)
    for shape in [(1, 2, NLAT, NLON), (1, 3, NLAT - 1, NLON), (1, 3, NLAT, NLON + 2), (3, NLAT, NLON)]:
        with pytest.raises(
            ValueError, match=rf"expected input \[B, 3, 32, 64\].*got \[{', '.join(map(str, shape))}\]"
        ):
            model(torch.randn(*shape))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(grid="gaussian"), "grid must be one of 'equiangular', 'legendre-gauss', got 'gaussian'"),
        (dict(lmax=0), r"lmax must be an int in \[1, min\(nlat, nlon//2\) = 32\], got 0"),
        (dict(lmax=33), "got 33"),
        (dict(lmax=4.0), "got 4.0"),
        (dict(embed_dim=0), "embed_dim must be an int >= 1, got 0"),
        (dict(num_layers=0), "num_layers must be an int >= 1, got 0"),
        (dict(nlat=1), "nlat must be an int >= 2, got 1"),
        (dict(norm="layer_norm"), "norm must be one of 'none', 'instance', got 'layer_norm'"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    args = dict(nlat=NLAT, nlon=NLON) | kwargs
    with pytest.raises(ValueError, match=message):
        SFNO(2, 2, **args)


def test_missing_torch_harmonics_examples_give_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_harmonics.examples.models.sfno", None)
    with pytest.raises(ImportError, match=r"torch_harmonics\.examples.*torch-harmonics \(>=0\.8\.0,<0\.9\)"):
        SFNO(1, 1, nlat=NLAT, nlon=NLON)
