"""Reference numerical solvers that make training data."""

from sim.solvers.forcing import FORCINGS, vorticity_forcing
from sim.solvers.ns2d import NavierStokes2D, SolverDivergedError
from sim.solvers.random_fields import gaussian_random_field, sample_seed

__all__ = [
    "FORCINGS",
    "NavierStokes2D",
    "SolverDivergedError",
    "gaussian_random_field",
    "sample_seed",
    "vorticity_forcing",
]
