"""FNO-2D baseline (Li et al. 2021), written here in plain torch for periodic domains.

``lift (1x1) -> layers x [spectral conv (lowest `modes` Fourier modes per axis) + 1x1 conv, GELU] ->
projection (1x1 -> 128 -> out)``, on ``[B, in_channels, H, W] -> [B, out_channels, H, W]``. As in the FNO
paper's 2D Navier-Stokes model, the spectral weights are complex ``[width, width, modes, modes]`` for the
positive and for the negative ``k_y`` half. No grid coordinates are appended: the domain is periodic and
the problem translation-invariant. Not rotation-equivariant; it carries declared field types so the kit
can show it.
"""

from __future__ import annotations

import torch
from torch import nn

from sim.models._common import _as_group, _check_input, _check_int, _physical_type

__all__ = ["FNO2d", "SpectralConv2d"]


class SpectralConv2d(nn.Module):
    """``x -> irfft2(W * rfft2(x))`` on the lowest ``modes`` wavenumbers of each axis.

    Args:
        in_channels, out_channels: channels.
        modes: Fourier modes kept per axis (``|k_y| < modes``, ``0 <= k_x < modes``).
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int):
        super().__init__()
        self.modes = modes
        scale = 1.0 / (in_channels * out_channels)
        # [positive | negative k_y, in, out, k_y, k_x, (re, im)]: real storage, so .to(dtype) keeps it whole
        self.weight = nn.Parameter(scale * torch.rand(2, in_channels, out_channels, modes, modes, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        m = self.modes
        if 2 * m > H or m > W // 2 + 1:
            raise ValueError(f"SpectralConv2d: {m} modes need H >= {2 * m} and W >= {2 * m - 2}, got {H}x{W}")
        spec = torch.fft.rfft2(x)  # [B, C, H, W//2+1]
        weight = torch.view_as_complex(self.weight)  # [2, in, out, m, m]
        out = torch.zeros(B, weight.shape[2], H, W // 2 + 1, dtype=spec.dtype, device=x.device)
        out[:, :, :m, :m] = torch.einsum("bixy,ioxy->boxy", spec[:, :, :m, :m], weight[0])
        out[:, :, -m:, :m] = torch.einsum("bixy,ioxy->boxy", spec[:, :, -m:, :m], weight[1])
        return torch.fft.irfft2(out, s=(H, W))


class FNO2d(nn.Module):
    """Fourier neural operator for 2D periodic fields.

    Args:
        in_fields, out_fields: field-type strings (declared under ``group``, e.g. ``"5x pseudoscalar"``).
        width: hidden channels.
        modes: Fourier modes per axis in each spectral convolution.
        layers: Fourier layers.
        group: the group the field types are declared under (the model is not equivariant).
    """

    def __init__(
        self,
        *,
        in_fields: str,
        out_fields: str,
        width: int = 20,
        modes: int = 12,
        layers: int = 4,
        group="D4",
    ):
        super().__init__()
        what = "FNO2d"
        group = _as_group(group, what)
        for name, value in (("width", width), ("modes", modes), ("layers", layers)):
            _check_int(value, what=what, arg=name, minimum=1)
        self.group = group
        self.in_type = _physical_type(group, in_fields, what=what, arg="in_fields")
        self.out_type = _physical_type(group, out_fields, what=what, arg="out_fields")
        self.in_channels, self.out_channels = self.in_type.dim, self.out_type.dim
        self.width, self.modes = width, modes
        self.lift = nn.Conv2d(self.in_channels, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(layers))
        self.project = nn.Sequential(
            nn.Conv2d(width, 128, 1), nn.GELU(), nn.Conv2d(128, self.out_channels, 1)
        )
        self.act = nn.GELU()

    def extra_repr(self) -> str:
        return f"{self.in_type} -> {self.out_type} (declared; not equivariant), modes={self.modes}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x)
        h = self.lift(x)  # [B, width, H, W]
        last = len(self.spectral) - 1
        for i, (spec, point) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            h = spec(h) + point(h)
            if i < last:
                h = self.act(h)
        return self.project(h)
