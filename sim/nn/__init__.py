"""Layers: plain tensors in and out. Group convolutions on grids (C_N, D_N), steerable convolutions
(SO(2), O(2)) with their nonlinearities and norms."""

from sim.nn.gconv import GroupConv2d, RegularNorm, check_exact_group, group_pool, spatial_pool, upsample
from sim.nn.steerable import (
    GatedNonlinearity,
    IrrepsToRegular,
    NormNonlinearity,
    RegularToIrreps,
    SteerableBatchNorm,
    SteerableConv2d,
    kernel_basis,
    ring_bandlimit,
)

__all__ = [
    "GatedNonlinearity",
    "GroupConv2d",
    "IrrepsToRegular",
    "NormNonlinearity",
    "RegularNorm",
    "RegularToIrreps",
    "SteerableBatchNorm",
    "SteerableConv2d",
    "check_exact_group",
    "group_pool",
    "kernel_basis",
    "ring_bandlimit",
    "spatial_pool",
    "upsample",
]
