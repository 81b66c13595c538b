"""Where fields live: periodic planar grids (later: lat-lon grids, meshes, the icosahedral multi-mesh)."""

from sim.discretize.periodic import PeriodicGrid2D, spectral_resample

__all__ = ["PeriodicGrid2D", "spectral_resample"]
