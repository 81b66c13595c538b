"""The one-step predictor that training and rollouts share: normalisation, residual prediction and
conservation wrapped around any model ``[B, in_channels, *space] -> [B, out_channels, *space]``.

Trajectories are ``[B, T, C, *space]`` (state channels ``C``); forcings are ``[B, F, *space]``. A step
feeds the model ``cat(normalised history flattened over (T, C), normalised forcing)`` and returns the
next state in physical units:

* ``residual=True``: ``next = last + delta_std * y + delta_mean`` (the model predicts the normalised
  tendency, as in GraphCast); otherwise ``next = state_std * y + state_mean``.
* ``conserve_mean=True``: the prediction's spatial mean is reset to the last state's, per channel, so the
  domain mean is conserved exactly (vorticity on the torus has zero mean).
* ``divergence_free=True`` (a velocity state ``C = 2`` on a periodic square grid): the prediction is
  projected onto divergence-free fields (:func:`sim.solvers.ns2d.solenoidal_projection`), so the state fed
  back is incompressible, as the data is; the projection keeps the curl and the mean and commutes with the
  grid's rotations and mirrors.

Normalisation respects the field types, so an equivariant model stays equivariant: means live only on
the invariant part of each field (none for pseudoscalars and vectors under D4), and a vector field has
one scale for both components. The statistics are buffers: they travel in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from sim.groups.fields import FieldType
from sim.solvers.ns2d import solenoidal_projection

__all__ = ["FieldStats", "MeshGraph", "MeshStepper", "Stepper", "field_stats"]


@dataclass(frozen=True)
class FieldStats:
    """Mean and scale per channel, ``[C]`` each (float64)."""

    mean: torch.Tensor
    std: torch.Tensor


def field_stats(sum_: torch.Tensor, sum_sq: torch.Tensor, count: int, field_type: FieldType) -> FieldStats:
    """Statistics that respect the field type, from per-channel sums.

    Args:
        sum_: ``[C]`` sum of values per channel; sum_sq: ``[C]`` sum of squares; count: values per channel.
        field_type: how the ``C`` channels transform (not regular).

    Returns:
        The mean projected onto the invariant subspace (zero for pseudoscalars and vectors under D4), and
        one scale per field: the root mean square about that mean over the field's components (1 where
        the field is constant).
    """
    sum_, sum_sq = sum_.double(), sum_sq.double()
    projector = torch.tensor(field_type.invariant_projector())  # [C, C]
    mean = projector @ (sum_ / count)
    second = sum_sq / count - 2 * mean * sum_ / count + mean**2  # E[(x - mean)^2] per channel
    std = torch.empty_like(mean)
    for sl in field_type.slices():
        rms = float(second[sl].clamp_min(0).mean().sqrt())
        std[sl] = rms if rms > 1e-12 else 1.0
    return FieldStats(mean, std)


class Stepper(nn.Module):
    """One autoregressive step: ``(history [B, T, C, *space], forcing [B, F, *space]) -> [B, C, *space]``.

    Args:
        model: maps ``[B, T*C + F, *space] -> [B, C, *space]``.
        history: ``T``, frames the model sees.
        state: statistics of the state (mean, std), ``[C]``.
        delta: statistics of one-step differences, ``[C]`` (used when ``residual``).
        forcing: statistics of the forcing channels, ``[F]`` (``F`` may be 0).
        residual: predict the tendency (``next = last + ...``) instead of the state.
        conserve_mean: keep the spatial mean of each state channel exactly.
        divergence_free: project a velocity state (``C = 2``, 2D) onto divergence-free fields.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        history: int,
        state: FieldStats,
        delta: FieldStats,
        forcing: FieldStats,
        residual: bool = True,
        conserve_mean: bool = False,
        divergence_free: bool = False,
    ):
        super().__init__()
        C, F = state.mean.numel(), forcing.mean.numel()
        if divergence_free and C != 2:
            raise ValueError(f"Stepper: divergence_free projects a 2-D velocity (2 state channels), got {C}")
        expected_in = history * C + F
        if (
            getattr(model, "in_channels", expected_in) != expected_in
            or getattr(model, "out_channels", C) != C
        ):
            raise ValueError(
                f"Stepper: the model maps {getattr(model, 'in_channels', '?')} -> "
                f"{getattr(model, 'out_channels', '?')} channels; expected {expected_in} -> {C} "
                f"({history} frames x {C} state channels + {F} forcing channels -> {C})"
            )
        self.model = model
        self.history, self.state_channels, self.forcing_channels = history, C, F
        self.residual, self.conserve_mean, self.divergence_free = residual, conserve_mean, divergence_free
        for name, stats in (("state", state), ("delta", delta), ("forcing", forcing)):
            self.register_buffer(f"{name}_mean", stats.mean.float().clone())
            self.register_buffer(f"{name}_std", stats.std.float().clone())

    @staticmethod
    def _shape(v: torch.Tensor, ndim_space: int) -> torch.Tensor:
        return v.reshape(-1, *([1] * ndim_space))  # [C, 1, ..., 1]

    def check(self, history: torch.Tensor, forcing: torch.Tensor | None) -> None:
        """One-line errors for inputs of the wrong shape."""
        T, C, F = self.history, self.state_channels, self.forcing_channels
        if history.ndim < 4 or history.shape[1] != T or history.shape[2] != C:
            raise ValueError(f"Stepper: history must be [B, {T}, {C}, *space], got {list(history.shape)}")
        if F and (forcing is None or forcing.shape[1] != F or forcing.shape[2:] != history.shape[3:]):
            got = None if forcing is None else list(forcing.shape)
            raise ValueError(f"Stepper: forcing must be [B, {F}, *space] matching the history, got {got}")

    def forward(self, history: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        self.check(history, forcing)
        B, T, C = history.shape[:3]
        space = history.shape[3:]
        n = len(space)
        h = (history - self._shape(self.state_mean, n)) / self._shape(self.state_std, n)  # [B, T, C, *space]
        parts = [h.reshape(B, T * C, *space)]
        if self.forcing_channels:
            parts.append((forcing - self._shape(self.forcing_mean, n)) / self._shape(self.forcing_std, n))
        y = self.model(torch.cat(parts, dim=1))  # [B, C, *space]
        last = history[:, -1]
        if self.residual:
            nxt = last + y * self._shape(self.delta_std, n) + self._shape(self.delta_mean, n)
        else:
            nxt = y * self._shape(self.state_std, n) + self._shape(self.state_mean, n)
        if self.conserve_mean:
            dims = tuple(range(2, 2 + n))
            nxt = nxt - nxt.mean(dim=dims, keepdim=True) + last.mean(dim=dims, keepdim=True)
        if self.divergence_free:
            nxt = solenoidal_projection(nxt)
        return nxt

    @torch.no_grad()
    def rollout(self, history: torch.Tensor, forcing: torch.Tensor | None, steps: int):
        """Yield ``steps`` predicted states ``[B, C, *space]`` one by one (nothing is kept).

        Runs in the module's current mode: call ``.eval()`` first for models with batch statistics.
        """
        window = history
        for _ in range(steps):
            nxt = self(window, forcing)
            yield nxt
            window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)


class MeshGraph(NamedTuple):
    """The graph a :class:`MeshStepper` steps on (a batch of meshes concatenated, PyG style).

    Attributes:
        node_type: ``[N]`` int64, MeshGraphNets' types (:class:`sim.discretize.NodeType`).
        pos: ``[N, d]`` mesh positions.
        edge_index: ``[2, E]`` int64, both directions, row 0 senders.
        batch: ``[N]`` int64, the graph of each node.
    """

    node_type: torch.Tensor
    pos: torch.Tensor
    edge_index: torch.Tensor
    batch: torch.Tensor


# Held at their values (MeshGraphNets: boundary conditions, not predicted); the loss and the noise skip them.
_HELD_TYPES = (4, 6)  # INFLOW, WALL_BOUNDARY
_NOISY_TYPES = (0,)  # NORMAL: MeshGraphNets adds training noise to the fluid nodes only


class MeshStepper(nn.Module):
    """One autoregressive step of a velocity field on a mesh:
    ``(history [N, T, d], graph) -> [N, d]``.

    Normalisation keeps the symmetry: velocities are divided by one scale (their RMS, no mean shift, so
    rotating the input rotates the normalised input), positions by the RMS edge length; the model's
    vector output is the normalised change (``residual``) or the normalised velocity. Nodes whose type
    is a boundary condition (INFLOW, WALL_BOUNDARY) keep their last value, as in MeshGraphNets;
    :meth:`loss_mask` and :meth:`noise_mask` name the nodes the loss and the training noise see.

    Args:
        model: ``model(velocity [N, T, d], node_type [N], pos [N, d], edge_index [2, E]) -> ([N, d],
            scalars or None)`` (the models of :mod:`sim.models.meshgraphnet`).
        history: ``T``.
        velocity_std, delta_std, length_scale: the training data's scales (floats).
        residual: predict the change (``next = last + ...``).
        dim: ``d``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        history: int,
        velocity_std: float = 1.0,
        delta_std: float = 1.0,
        length_scale: float = 1.0,
        residual: bool = True,
        dim: int = 2,
    ):
        super().__init__()
        self.model = model
        self.history, self.state_channels, self.forcing_channels = history, dim, 0
        self.residual = residual
        self.register_buffer("state_std", torch.full((dim,), float(velocity_std)))
        self.register_buffer("state_mean", torch.zeros(dim))
        self.register_buffer("delta_std", torch.full((dim,), float(delta_std)))
        self.register_buffer("length_scale", torch.tensor(float(length_scale)))

    def check(self, history: torch.Tensor, graph: MeshGraph) -> None:
        """One-line errors for inputs of the wrong shape."""
        T, d = self.history, self.state_channels
        if history.ndim != 3 or history.shape[1:] != (T, d):
            raise ValueError(f"MeshStepper: history must be [N, {T}, {d}], got {list(history.shape)}")
        if graph.node_type.shape != (history.shape[0],) or graph.pos.shape != (history.shape[0], d):
            raise ValueError(
                f"MeshStepper: node_type [N] and pos [N, {d}] must match the history's {history.shape[0]} "
                f"nodes, got {list(graph.node_type.shape)} and {list(graph.pos.shape)}"
            )

    @staticmethod
    def held(graph: MeshGraph) -> torch.Tensor:
        """``[N]`` bool: the nodes that keep their value (inflow and walls)."""
        return torch.isin(graph.node_type, torch.tensor(_HELD_TYPES, device=graph.node_type.device))

    def loss_mask(self, graph: MeshGraph) -> torch.Tensor:
        """``[N]`` bool: the nodes the loss counts (all but the held ones)."""
        return ~self.held(graph)

    def noise_mask(self, graph: MeshGraph) -> torch.Tensor:
        """``[N]`` bool: the nodes that get training noise (NORMAL)."""
        return torch.isin(graph.node_type, torch.tensor(_NOISY_TYPES, device=graph.node_type.device))

    def forward(self, history: torch.Tensor, graph: MeshGraph) -> torch.Tensor:
        self.check(history, graph)
        scale = self.state_std[0]
        out, _ = self.model(history / scale, graph.node_type, graph.pos / self.length_scale, graph.edge_index)
        last = history[:, -1]  # [N, d]
        nxt = last + out * self.delta_std if self.residual else out * scale
        return torch.where(self.held(graph)[:, None], last, nxt)

    @torch.no_grad()
    def rollout(self, history: torch.Tensor, graph: MeshGraph, steps: int):
        """Yield ``steps`` predicted velocities ``[N, d]`` one by one (nothing is kept)."""
        window = history
        for _ in range(steps):
            nxt = self(window, graph)
            yield nxt
            window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
