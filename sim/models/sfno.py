"""SFNO baseline (Bonev et al. 2023) for fields on global lat-lon grids: a thin adapter around
torch-harmonics' example model ``torch_harmonics.examples.models.SphericalFourierNeuralOperator``.

``encoder (1x1, no bias) -> num_layers x block -> decoder (1x1, no bias)`` on
``[B, in_channels, nlat, nlon] -> [B, out_channels, nlat, nlon]``, where a block is

    h -> h + MLP(norm(ISHT(W[l] * SHT(h)))),    MLP = 1x1 (2 embed_dim, bias) -> GELU -> 1x1 (no bias)

with ``W[l]`` a complex ``[embed_dim, embed_dim]`` matrix per degree ``l < lmax`` ("driscoll-healy"
weights: one matrix for all orders ``m`` of a degree) and orders ``m < lmax`` kept (triangular truncation).

The upstream constructor arguments are pinned here (:data:`_PINNED`): ``scale_factor=1`` and
``grid_internal = grid`` (every block works on the input grid: upstream's down-sampled internal grid breaks
zonal-roll equivariance, and with ``scale_factor=1`` but a different internal grid its skip connection adds
fields on different latitudes), ``pos_embed="none"``, no dropout, ``mlp_ratio=2``, ``use_mlp=True``,
``bias=False``, ``residual_prediction=False`` (residual prediction wraps a one-step model elsewhere), GELU.

Symmetry. Rolling the longitude axis (a rotation about the polar axis by a multiple of ``360 / nlon``)
multiplies the order-``m`` coefficients by a phase; the weights do not depend on ``m``, and every other
operation is pointwise or a per-channel statistic, so the model commutes with zonal rolls exactly (to
float rounding), and with the mirror in the equator (which multiplies ``Y_lm`` by ``(-1)^(l+m)``). It is
*not* equivariant under general rotations, even in the continuum limit: upstream's weights are complex, so
on a real field a degree's multiplier is ``Re W[l]`` plus ``Im W[l]`` times a longitudinal Hilbert transform
(``i sign(m)``), which commutes only with rotations about the polar axis (and breaks meridian mirrors).

Grids follow :mod:`sim.discretize.latlon`: latitude ascending (south to north) along axis -2, longitude
along axis -1. torch-harmonics orders colatitude (north first); the two orders differ by the mirror in the
equator, which the model commutes with, so no flip is needed (and the tests pin that).
``grid="equiangular"`` is ``equiangular_grid(nlat, nlon, poles=True)`` (torch-harmonics uses
Clenshaw-Curtis quadrature on it), ``grid="legendre-gauss"`` is ``gaussian_grid(nlat, nlon)``.

Precision: upstream's spectral layer computes in float32 (it casts its input with ``.float()`` and keeps
complex64 weights), so float64 inputs run through a float32 spectral path.

``torch_harmonics.examples`` is example code rather than the library's stable API; it is imported when a
model is built, with a clear error if it is missing.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from torch import nn

from sim.discretize.latlon import LatLonGrid, equiangular_grid, gaussian_grid
from sim.models._common import _check_choice, _check_int
from sim.models.cnn import count_parameters

__all__ = ["GRIDS", "SFNO", "exact_band_limit", "sfno_num_parameters"]

Grid = Literal["equiangular", "legendre-gauss"]
GRIDS: tuple[str, ...] = ("equiangular", "legendre-gauss")
_NORMS = {"none": "none", "instance": "instance_norm"}  # ours -> upstream normalization_layer

# Upstream constructor arguments that this adapter fixes (see the module docstring for why).
_PINNED = dict(
    scale_factor=1,
    activation_function="gelu",
    encoder_layers=1,
    use_mlp=True,
    mlp_ratio=2.0,
    drop_rate=0.0,
    drop_path_rate=0.0,
    residual_prediction=False,
    pos_embed="none",
    bias=False,
)


def exact_band_limit(grid: str, *, nlat: int, nlon: int) -> int:
    """The largest ``lmax`` for which the grid's SHT inverts its ISHT exactly (``SHT(ISHT(c)) == c`` for
    all coefficients of degree and order ``< lmax``): the default ``lmax`` of :class:`SFNO`.

    Products of two harmonics of degrees ``< L`` are polynomials in ``sin(lat)`` of degree ``<= 2L - 2``.
    Legendre-Gauss quadrature on ``nlat`` nodes is exact to degree ``2 nlat - 1`` (``L <= nlat``);
    Clenshaw-Curtis on the equiangular grid with poles only to degree ``nlat - 1``
    (``L <= (nlat + 1) // 2``, about the Driscoll-Healy sampling limit of ``2 L`` latitudes). Orders
    ``m < L`` must stay below the longitude Nyquist number (``L <= nlon // 2``). Upstream's default for the
    equiangular grid (``lmax = nlat``) aliases high degrees.

    Args:
        grid: ``"equiangular"`` or ``"legendre-gauss"``.
        nlat, nlon: grid size.

    Returns:
        The band limit ``L`` (degrees ``0 ... L - 1``).

    Example:
        >>> exact_band_limit("equiangular", nlat=721, nlon=1440)
        361
    """
    _check_choice(grid, GRIDS, what="exact_band_limit", arg="grid")
    _check_int(nlat, what="exact_band_limit", arg="nlat", minimum=2)
    _check_int(nlon, what="exact_band_limit", arg="nlon", minimum=2)
    lat_limit = nlat if grid == "legendre-gauss" else (nlat + 1) // 2
    return min(lat_limit, nlon // 2)


def sfno_num_parameters(
    in_channels: int, out_channels: int, *, embed_dim: int, num_layers: int, lmax: int, norm: str = "none"
) -> int:
    """Trainable real parameters of an :class:`SFNO` (a complex weight counts twice), without building it.

    With ``E = embed_dim`` and ``L = lmax``: ``E (in_channels + out_channels)`` for the encoder and decoder,
    and per block ``2 E^2 L`` spectral weights, ``2 E^2 + 2 E`` and ``2 E^2`` for the MLP's two 1x1 convs
    (bias on the first only), ``2 E`` more with ``norm="instance"``. Use it to match widths: torch-harmonics'
    SFNO cannot be built on the meta device.

    Example:
        >>> sfno_num_parameters(3, 3, embed_dim=64, num_layers=4, lmax=16)
        590720
    """
    _check_choice(norm, tuple(_NORMS), what="sfno_num_parameters", arg="norm")
    E = embed_dim
    block = 2 * E * E * lmax + 4 * E * E + 2 * E + (2 * E if norm == "instance" else 0)
    return E * (in_channels + out_channels) + num_layers * block


def _upstream_sfno() -> type[nn.Module]:
    """torch-harmonics' example SFNO class, or an ImportError that says what is needed."""
    try:
        with warnings.catch_warnings():  # its _layers module decorates with the deprecated torch.jit.script
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
            from torch_harmonics.examples.models.sfno import SphericalFourierNeuralOperator
    except ImportError as err:
        raise ImportError(
            "SFNO wraps torch_harmonics.examples.models.sfno.SphericalFourierNeuralOperator (example code, "
            f"not the library's stable API), which could not be imported: {err}. Install the pinned "
            "torch-harmonics (>=0.8.0,<0.9)."
        ) from err
    return SphericalFourierNeuralOperator


class SFNO(nn.Module):
    """Spherical Fourier neural operator on a global lat-lon grid (with torch-harmonics' SFNO inside).

    Trainable real parameters (a complex weight counts twice; :func:`sfno_num_parameters`), with
    ``E = embed_dim``, ``L = lmax``::

        E * (in_channels + out_channels) + num_layers * (2 E^2 L + 4 E^2 + 2 E [+ 2 E with norm="instance"])

    e.g. 590,720 for ``SFNO(3, 3, nlat=32, nlon=64)`` (equiangular, ``L = 16``) and 1,115,008 with
    ``grid="legendre-gauss"`` (``L = 32``).

    Args:
        in_channels, out_channels: channels of the input and output fields.
        nlat, nlon: grid size (latitudes with both poles for ``"equiangular"``; Gaussian latitudes for
            ``"legendre-gauss"``).
        grid: ``"equiangular"`` or ``"legendre-gauss"`` (torch-harmonics' names).
        embed_dim: hidden channels.
        num_layers: SFNO blocks.
        lmax: band limit of the spectral weights (degrees and orders ``< lmax``), at most
            ``min(nlat, nlon // 2)``; default :func:`exact_band_limit` (an exact SHT round trip).
        norm: ``"none"`` or ``"instance"`` (InstanceNorm2d with affine weights, after each spectral conv).
            Upstream's ``"layer_norm"`` is left out: its affine weights live on grid points and would
            break zonal-roll equivariance.

    Raises:
        ValueError: an argument out of range.
        ImportError: ``torch_harmonics.examples`` cannot be imported.
        RuntimeError: built under ``torch.device("meta")`` (upstream needs real tensors to build).

    Example:
        >>> model = SFNO(3, 3, nlat=32, nlon=64, embed_dim=16, num_layers=2)
        >>> model(torch.randn(1, 3, 32, 64)).shape
        torch.Size([1, 3, 32, 64])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        nlat: int,
        nlon: int,
        grid: Grid = "equiangular",
        embed_dim: int = 64,
        num_layers: int = 4,
        lmax: int | None = None,
        norm: Literal["none", "instance"] = "none",
    ):
        super().__init__()
        what = "SFNO"
        for name, value, minimum in (
            ("in_channels", in_channels, 1),
            ("out_channels", out_channels, 1),
            ("nlat", nlat, 2),
            ("nlon", nlon, 2),
            ("embed_dim", embed_dim, 1),
            ("num_layers", num_layers, 1),
        ):
            _check_int(value, what=what, arg=name, minimum=minimum)
        _check_choice(grid, GRIDS, what=what, arg="grid")
        _check_choice(norm, tuple(_NORMS), what=what, arg="norm")
        most = min(nlat, nlon // 2)  # upstream's largest band limit
        if lmax is None:
            lmax = exact_band_limit(grid, nlat=nlat, nlon=nlon)
        elif isinstance(lmax, bool) or not isinstance(lmax, int) or not 1 <= lmax <= most:
            raise ValueError(f"{what}: lmax must be an int in [1, min(nlat, nlon//2) = {most}], got {lmax!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.nlat, self.nlon, self.grid = nlat, nlon, grid
        self.embed_dim, self.num_layers, self.lmax, self.norm = embed_dim, num_layers, lmax, norm
        if torch.get_default_device().type == "meta":
            raise RuntimeError(
                f"{what}: torch-harmonics' SFNO cannot be built on the meta device (it reads tensor values "
                "while building); count parameters with sfno_num_parameters instead"
            )

        # upstream keeps int(most * fraction) degrees; lmax + 1/2 keeps float rounding away from the floor
        self.net = _upstream_sfno()(
            img_size=(nlat, nlon),
            grid=grid,
            grid_internal=grid,
            in_chans=in_channels,
            out_chans=out_channels,
            embed_dim=embed_dim,
            num_layers=num_layers,
            normalization_layer=_NORMS[norm],
            hard_thresholding_fraction=(lmax + 0.5) / most,
            **_PINNED,
        )
        sht = self.net.trans_down
        if (sht.lmax, sht.mmax) != (lmax, lmax):  # guards against a change of upstream's formula
            raise RuntimeError(
                f"{what}: torch-harmonics kept (lmax, mmax) = ({sht.lmax}, {sht.mmax}), not {lmax}"
            )

    @property
    def latlon_grid(self) -> LatLonGrid:
        """The grid the model's inputs and outputs live on, as a :mod:`sim.discretize.latlon` descriptor."""
        if self.grid == "equiangular":
            return equiangular_grid(self.nlat, self.nlon, poles=True)
        return gaussian_grid(self.nlat, self.nlon)

    def num_parameters(self) -> int:
        """Number of trainable real parameters (a complex weight counts twice); see the class docstring."""
        return count_parameters(self)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels} -> {self.out_channels}, grid={self.grid!r} {self.nlat}x{self.nlon}, "
            f"embed_dim={self.embed_dim}, num_layers={self.num_layers}, lmax={self.lmax}, norm={self.norm!r}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x [B, in_channels, nlat, nlon]`` to ``[B, out_channels, nlat, nlon]``.

        Raises:
            ValueError: ``x`` is not ``[B, in_channels, nlat, nlon]``.
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, self.nlat, self.nlon):
            raise ValueError(
                f"SFNO: expected input [B, {self.in_channels}, {self.nlat}, {self.nlon}] "
                f"([B, in_channels, nlat, nlon]), got {list(x.shape)}"
            )
        return self.net(x)  # [B, out_channels, nlat, nlon]
