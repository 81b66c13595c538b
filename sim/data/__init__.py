"""Trajectories on disk and training windows: 2D Navier-Stokes data, ERA5-style weather data in every
convention users hold (read as one canonical form), shallow-water trajectories written as ERA5-style
files, normalization statistics and autoregressive windows.

``sim.data.era5_synthetic`` writes small files in each ERA5 convention (for tests and benchmarks).
"""

from sim.data.era5 import Era5Error, check_era5, describe_era5, detect_convention, open_era5
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
from sim.data.swe import SWEDataConfig, generate_swe, preview_swe
from sim.data.weather import (
    PeriodConfig,
    WeatherPrepareConfig,
    WeatherWindows,
    compute_statistics,
    load_statistics,
    prepare_weather,
    save_statistics,
    time_forcings,
)

__all__ = [
    "DataFileError",
    "Era5Error",
    "ForcingConfig",
    "InitialConfig",
    "NS2DDataConfig",
    "NS2DSolverConfig",
    "NS2DWindows",
    "PeriodConfig",
    "SWEDataConfig",
    "WeatherPrepareConfig",
    "WeatherWindows",
    "check_era5",
    "compute_statistics",
    "describe_era5",
    "detect_convention",
    "generate_ns2d",
    "generate_swe",
    "load_statistics",
    "open_era5",
    "prepare_weather",
    "preview_ns2d",
    "preview_swe",
    "save_statistics",
    "time_forcings",
]
