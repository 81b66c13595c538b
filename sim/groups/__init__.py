"""Symmetry groups and how they act: the planar point groups C_N and D_N, field types and grid actions;
SO(2)/O(2) irreps for steerable fields (``O2Irreps``, from ``sim.groups.o2``); SO(3)/O(3) irreps, real
spherical harmonics, Wigner-D matrices and Clebsch-Gordan coefficients (``sim.groups.so3``)."""

from sim.groups.action import act, disk_mask, kernel_transforms, transform_grid
from sim.groups.fields import FieldType
from sim.groups.o2 import Irreps as O2Irreps
from sim.groups.o2 import RestrictedIrreps
from sim.groups.planar import PlanarGroup, cyclic, dihedral, group_from_name
from sim.groups.so3 import (
    Irrep,
    Irreps,
    axis_angle,
    clebsch_gordan,
    random_rotation,
    spherical_harmonics,
    wigner_D,
)

__all__ = [
    "FieldType",
    "Irrep",
    "Irreps",
    "O2Irreps",
    "PlanarGroup",
    "RestrictedIrreps",
    "axis_angle",
    "clebsch_gordan",
    "act",
    "cyclic",
    "dihedral",
    "disk_mask",
    "group_from_name",
    "kernel_transforms",
    "random_rotation",
    "spherical_harmonics",
    "transform_grid",
    "wigner_D",
]
