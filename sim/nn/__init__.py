"""Layers: plain tensors in and out."""

from sim.nn.gconv import GroupConv2d, RegularNorm, check_exact_group, group_pool, spatial_pool, upsample

__all__ = ["GroupConv2d", "RegularNorm", "check_exact_group", "group_pool", "spatial_pool", "upsample"]
