"""One training engine for any one-step model: normalisation, unrolled losses, checkpoints, DDP."""

from sim.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sim.train.config import DataSpec, ExperimentConfig, TrainSpec
from sim.train.engine import (
    TrainResult,
    build_stepper,
    check_data_fits,
    compute_statistics,
    data_signature,
    load_stepper,
    train,
)
from sim.train.stepper import FieldStats, Stepper, field_stats

__all__ = [
    "CheckpointError",
    "DataSpec",
    "ExperimentConfig",
    "FieldStats",
    "Stepper",
    "TrainResult",
    "TrainSpec",
    "build_stepper",
    "check_data_fits",
    "compute_statistics",
    "data_signature",
    "field_stats",
    "load_checkpoint",
    "load_stepper",
    "save_checkpoint",
    "train",
]
