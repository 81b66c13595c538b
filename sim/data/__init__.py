"""Trajectories on disk and training windows."""

from sim.data.ns2d import (
    DataFileError,
    ForcingConfig,
    InitialConfig,
    NS2DDataConfig,
    NS2DSolverConfig,
    NS2DWindows,
    generate_ns2d,
    preview_ns2d,
)

__all__ = [
    "DataFileError",
    "ForcingConfig",
    "InitialConfig",
    "NS2DDataConfig",
    "NS2DSolverConfig",
    "NS2DWindows",
    "generate_ns2d",
    "preview_ns2d",
]
