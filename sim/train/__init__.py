"""One training engine for any one-step model: normalisation, unrolled losses, checkpoints, DDP."""

from sim.train.stepper import FieldStats, Stepper, field_stats

__all__ = ["FieldStats", "Stepper", "field_stats"]
