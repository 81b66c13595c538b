"""Reference numerical solvers that make training data: 2D Navier-Stokes on the periodic square,
shallow water on the rotating sphere."""

from sim.solvers.forcing import FORCINGS, vorticity_forcing
from sim.solvers.ns2d import NavierStokes2D, SolverDivergedError
from sim.solvers.random_fields import gaussian_random_field, sample_seed
from sim.solvers.swe import SWE_GRIDS, ShallowWaterSphere, tilted_axis

__all__ = [
    "FORCINGS",
    "NavierStokes2D",
    "SWE_GRIDS",
    "ShallowWaterSphere",
    "SolverDivergedError",
    "gaussian_random_field",
    "sample_seed",
    "tilted_axis",
    "vorticity_forcing",
]
