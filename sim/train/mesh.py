"""The mesh side of the training engine: graph windows, statistics, the MeshStepper, batches.

:func:`sim.train.train` dispatches here when ``config.model`` is a mesh model (``meshgraphnet``,
``equivariant_meshgraphnet``, ``egnn``); the loop itself (unrolled losses, noise, checkpoints, resume,
data parallel) is the engine's, shared with the grid models.
"""

from __future__ import annotations

import math

import torch

from sim.config import ConfigError
from sim.data.cylinder import CylinderWindows, MeshBatch, cylinder_statistics
from sim.models.registry import build_model
from sim.train.config import ExperimentConfig
from sim.train.stepper import MeshGraph, MeshStepper

__all__ = ["build_mesh_stepper", "mesh_signature", "mesh_split", "mesh_statistics", "mesh_windows"]


def mesh_windows(config: ExperimentConfig, samples: range, horizon: int) -> CylinderWindows:
    """The graph windows of ``samples`` (``data.history`` frames in, ``horizon`` out)."""
    d = config.data
    if d.state != "vorticity":  # the default: it names the grid state, meaningless here
        raise ConfigError(
            f"data.state: mesh models step the velocity on the mesh; leave data.state unset, got {d.state!r}",
            key="data.state",
        )
    if config.model.mesh_history() != d.history:
        raise ConfigError(
            f"model.in_fields: expected {d.history}x vector (data.history velocity frames), got "
            f"{config.model.in_fields!r}",
            key="model.in_fields",
        )
    return CylinderWindows(d.path, history=d.history, horizon=horizon, stride=d.stride, samples=samples)


def mesh_statistics(config: ExperimentConfig) -> dict[str, float]:
    """The training samples' velocity, change and edge-length scales (:func:`cylinder_statistics`)."""
    d = config.data
    return cylinder_statistics(d.path, range(*d.train_samples), stride=d.stride)


def build_mesh_stepper(config: ExperimentConfig, stats: dict[str, float] | None) -> MeshStepper:
    """``config.model`` inside a :class:`MeshStepper` with the given scales (ones when None, e.g. before
    loading a checkpoint)."""
    stats = stats or {}
    return MeshStepper(
        build_model(config.model),
        history=config.data.history,
        velocity_std=stats.get("velocity_std", 1.0),
        delta_std=stats.get("delta_std", 1.0),
        length_scale=stats.get("edge_std", 1.0),
        residual=config.train.residual,
    )


def mesh_split(batch: MeshBatch, history: int, device) -> tuple[torch.Tensor, MeshGraph, torch.Tensor]:
    """``(history [N, T, 2], graph, target [N, K, 2])`` of a batch of graph windows."""
    b = batch.to(device, non_blocking=True)
    graph = MeshGraph(b.node_type, b.pos, b.edge_index, b.batch)
    return b.velocity[:, :history], graph, b.velocity[:, history:]


def mesh_signature(windows: CylinderWindows) -> dict:
    """What a stepper trained on ``windows`` assumes of data it is rolled out on: ``{"kind": "cylinder",
    "step_time": frame interval x stride, "viscosity": ..., "height": ...}``."""
    times = windows.times
    interval = float(times[1] - times[0]) if times.size > 1 else math.nan

    def number(key):
        value = windows.attrs.get(key)
        return None if value is None else float(value)

    return {
        "kind": "cylinder",
        "step_time": interval * windows.stride,
        "viscosity": number("viscosity"),
        "height": number("height"),
    }
