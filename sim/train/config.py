"""Experiment configs: one YAML file with ``model:``, ``data:`` and ``train:`` sections."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from sim.config import ConfigError, cfield, device_name, nonnegative, positive
from sim.data.weather import PeriodConfig
from sim.models.registry import ModelConfig

__all__ = ["DataSpec", "ExperimentConfig", "TrainSpec"]


def _sample_range() -> dict:
    return {
        "check": lambda v: len(v) == 2 and 0 <= v[0] < v[1],
        "expected": "[start, stop) sample indices with 0 <= start < stop",
    }


@dataclass(frozen=True)
class DataSpec:
    """Where the trajectories are and how windows are cut from them.

    Grid and mesh data: ``train_samples`` / ``val_samples`` (trajectory indices). Weather data (sphere
    models): ``train_period`` / ``val_period`` of one canonical store; ``stride`` is the model step in
    data steps (the lead), ``history`` the input states (GraphCast: 2).
    """

    path: str = "runs/demo/ns2d_demo.nc"
    state: Literal["vorticity", "velocity"] = cfield(
        "vorticity", doc="the state the model steps: vorticity (1x pseudoscalar) or velocity (1x vector)"
    )
    history: int = cfield(4, **positive())
    stride: int = cfield(1, **positive())
    train_samples: tuple[int, int] = cfield((0, 6), **_sample_range())
    val_samples: tuple[int, int] = cfield((6, 8), **_sample_range())
    num_workers: int = cfield(0, **nonnegative())
    # weather (sphere models): a canonical store (sim data prepare), split by time
    train_period: PeriodConfig | None = cfield(None, doc="weather: the training period (start, end)")
    val_period: PeriodConfig | None = cfield(None, doc="weather: the validation period (start, end)")
    variables: tuple[str, ...] | None = cfield(None, doc="weather: state variables; all when null")
    levels: tuple[int, ...] | None = cfield(None, doc="weather: pressure levels (hPa); all when null")
    stats: str | None = cfield(None, doc="weather: statistics file; null: stats.nc inside the store")


@dataclass(frozen=True)
class TrainSpec:
    """The optimisation: steps, batches, the unroll curriculum, pushforward, noise, prediction mode."""

    steps: int = cfield(1000, **positive())
    batch_size: int = cfield(16, **positive())
    lr: float = cfield(1e-3, check=lambda v: 0 < v < math.inf, expected="a float > 0")
    weight_decay: float = cfield(0.0, **nonnegative())
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = cfield(0, **nonnegative())
    grad_clip: float | None = cfield(1.0, **positive())
    unroll: int = cfield(1, **positive())
    unroll_every: int = cfield(0, **nonnegative())
    pushforward: bool = False
    noise_std: float = cfield(0.0, **nonnegative())
    residual: bool = True
    conserve_mean: bool = False
    divergence_free: bool = False
    seed: int = cfield(0, **nonnegative())
    log_every: int = cfield(20, **positive())
    val_every: int = cfield(200, **positive())
    val_batches: int = cfield(4, **positive())
    checkpoint_every: int = cfield(200, **positive())
    device: str = cfield("auto", **device_name())
    init_from: str | None = cfield(
        None, doc="a checkpoint whose weights (and statistics) start the run: fine-tuning; null: random"
    )

    def unroll_at(self, step: int) -> int:
        """Unrolled steps in the loss at optimiser step ``step`` (0-based): grows by one every
        ``unroll_every`` steps up to ``unroll`` (fixed at ``unroll`` when ``unroll_every`` is 0)."""
        if self.unroll_every <= 0:
            return self.unroll
        return min(self.unroll, 1 + step // self.unroll_every)


@dataclass(frozen=True)
class ExperimentConfig:
    """A training run: ``sim train --config configs/ns2d/gcnn_p4m.yaml``.

    The model's inputs are the ``data.history`` frames of the state plus the forcing channels.
    """

    model: ModelConfig
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    def __post_init__(self) -> None:
        if self.train.pushforward and self.train.unroll < 2:
            raise ConfigError("train.pushforward: expected train.unroll >= 2 (it needs an unroll to push)")
        if self.train.divergence_free and self.data.state != "velocity":
            raise ConfigError(
                f"train.divergence_free: projects a velocity state; expected data.state: velocity, got "
                f"{self.data.state!r}"
            )
