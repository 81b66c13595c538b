"""Layers: plain tensors in and out. Group convolutions on grids (C_N, D_N), steerable convolutions
(SO(2), O(2)) with their nonlinearities and norms, SO(3)/O(3) tensor products and message passing, and
mesh message passing (EGNN, MeshGraphNets' block and its O(d)-equivariant version)."""

from sim.nn.gconv import GroupConv2d, RegularNorm, check_exact_group, group_pool, spatial_pool, upsample
from sim.nn.mesh_gnn import EGNNLayer, EquivariantMeshBlock, MeshGraphNetBlock, VectorNorm
from sim.nn.steerable import (
    GatedNonlinearity,
    IrrepsToRegular,
    NormNonlinearity,
    RegularToIrreps,
    SteerableBatchNorm,
    SteerableConv2d,
    SteerableGroupNorm,
    kernel_basis,
    ring_bandlimit,
)
from sim.nn.tensor_product import (
    Gate,
    IrrepsLinear,
    RadialBasis,
    SphericalHarmonics,
    TensorProduct,
    TensorProductConv,
)

__all__ = [
    "EGNNLayer",
    "EquivariantMeshBlock",
    "Gate",
    "GatedNonlinearity",
    "GroupConv2d",
    "IrrepsLinear",
    "IrrepsToRegular",
    "MeshGraphNetBlock",
    "NormNonlinearity",
    "RadialBasis",
    "RegularNorm",
    "RegularToIrreps",
    "SteerableBatchNorm",
    "SphericalHarmonics",
    "SteerableConv2d",
    "SteerableGroupNorm",
    "TensorProduct",
    "TensorProductConv",
    "VectorNorm",
    "check_exact_group",
    "group_pool",
    "kernel_basis",
    "ring_bandlimit",
    "spatial_pool",
    "upsample",
]
