"""Reference numerical solvers that make training data: 2D Navier-Stokes on the periodic square,
shallow water on the rotating sphere, flow past a cylinder in a channel (lattice Boltzmann:
``sim.solvers.cylinder.simulate``)."""

from sim.solvers.cylinder import (
    SCHAFER_TUREK_2D2,
    BenchmarkQuantities,
    CylinderFlow,
    CylinderLBM,
    CylinderResult,
    benchmark_quantities,
    shedding_frequency,
    strouhal,
)
from sim.solvers.forcing import FORCINGS, vorticity_forcing
from sim.solvers.ns2d import NavierStokes2D, SolverDivergedError, solenoidal_projection
from sim.solvers.random_fields import gaussian_random_field, sample_seed
from sim.solvers.swe import SWE_GRIDS, ShallowWaterSphere, tilted_axis

__all__ = [
    "FORCINGS",
    "SCHAFER_TUREK_2D2",
    "SWE_GRIDS",
    "BenchmarkQuantities",
    "CylinderFlow",
    "CylinderLBM",
    "CylinderResult",
    "NavierStokes2D",
    "ShallowWaterSphere",
    "SolverDivergedError",
    "benchmark_quantities",
    "gaussian_random_field",
    "sample_seed",
    "shedding_frequency",
    "solenoidal_projection",
    "strouhal",
    "tilted_axis",
    "vorticity_forcing",
]
