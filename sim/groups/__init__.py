"""Symmetry groups and how they act: the planar point groups C_N and D_N, field types, grid actions."""

from sim.groups.action import act, disk_mask, kernel_transforms, transform_grid
from sim.groups.fields import FieldType
from sim.groups.planar import PlanarGroup, cyclic, dihedral, group_from_name

__all__ = [
    "FieldType",
    "PlanarGroup",
    "act",
    "cyclic",
    "dihedral",
    "disk_mask",
    "group_from_name",
    "kernel_transforms",
    "transform_grid",
]
