"""The weather side of the training engine: windows from a canonical store, the WeatherStepper, batches.

:func:`sim.train.train` dispatches here when ``config.model`` is a sphere model (``equivariant_graphcast``,
``graphcast``, ``sfno``); the loop (unrolled losses with per-step forcings, checkpoints, resume, data
parallel) is the engine's.

**Normalization.** :class:`~sim.data.weather.WeatherWindows` hands over states normalized per channel,
``(x - mean) / std`` (GraphCast's). The stepper keeps that as its state space, so losses and rollouts
compare like with like, and inside re-expresses what each model needs:

* scalar channels go to the models as they are;
* a wind ``(u, v)`` (any ``*u_component_of_wind*`` channel with its ``v`` partner) becomes the 3-D tangent
  vector ``(u e_east + v e_north) / sigma`` with one scale per level, ``sigma^2 = (E[u^2] + E[v^2]) / 2``
  (no mean removed): a per-component mean or scale would not commute with rotations;
* residual outputs are in units of the one-step change: ``diff_std`` per scalar channel, and
  ``sqrt((diff_std_u^2 + diff_std_v^2) / 2)`` per wind.

**Forcings to the models.** The planet's rotation vector (``rotation_x/y/z``) and the sun's direction
(:func:`~sim.data.weather.solar_direction` from the UTC and year-progress forcings) are the global vectors;
the static fields and ``year_progress_sin/cos`` are scalars. The non-equivariant models also get the UTC
and local time-of-day channels (as GraphCast); the equivariant one does not, since the local time is a
function of longitude: the sun's direction carries it.

**Loss.** The engine's normalized MSE, in units of the one-step change (``state_std = diff_std / std``),
weighted by cell area (:func:`~sim.discretize.latlon.area_weights`, mean 1), channels equally.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sim.config import ConfigError
from sim.data.ns2d import DataFileError
from sim.data.weather import TIME_FORCINGS, WeatherWindows, solar_direction
from sim.discretize.latlon import (
    LatLonGrid,
    area_weights,
    grid_from_coords,
    tangent_frame,
    vector_to_wind,
    wind_to_vector,
)
from sim.models.registry import build_sphere_model
from sim.models.sphere import SphereGraph, sphere_graph
from sim.train.config import ExperimentConfig

__all__ = [
    "WeatherStepper",
    "build_weather_stepper",
    "weather_signature",
    "weather_split",
    "weather_windows",
    "wind_channels",
]

_EQUIVARIANT_TIME = ("year_progress_sin", "year_progress_cos")
_OTHER_TIME = ("utc_hour_sin", "utc_hour_cos", "local_hour_sin", "local_hour_cos")


def wind_channels(channel_names) -> tuple[list[int], list[tuple[int, int]]]:
    """``(scalar channel indices, [(u index, v index), ...])``: every channel whose variable contains
    ``u_component_of_wind`` is paired with the same name with ``v_component_of_wind``.

    Raises:
        DataFileError: a ``u`` or ``v`` wind channel without its partner.
    """
    names = list(channel_names)
    index = {n: i for i, n in enumerate(names)}
    winds, used = [], set()
    for i, name in enumerate(names):
        if "u_component_of_wind" in name:
            partner = name.replace("u_component_of_wind", "v_component_of_wind")
            if partner not in index:
                raise DataFileError(f"wind channel {name} has no {partner} (winds come in (u, v) pairs)")
            winds.append((i, index[partner]))
            used |= {i, index[partner]}
        elif "v_component_of_wind" in name and name.replace("v_component", "u_component") not in index:
            raise DataFileError(
                f"wind channel {name} has no {name.replace('v_component', 'u_component')} "
                "(winds come in (u, v) pairs)"
            )
    return [i for i in range(len(names)) if i not in used], winds


def weather_windows(config: ExperimentConfig, split: str, horizon: int) -> WeatherWindows:
    """The windows of ``split`` (``"train"`` or ``"val"``): ``data.history`` states in, ``horizon``
    out, ``data.stride`` data steps apart, over ``data.train_period`` / ``data.val_period``."""
    d = config.data
    period = d.train_period if split == "train" else d.val_period
    if period is None:
        raise ConfigError(f"data.{split}_period: expected a period for a weather model, got none")
    if not Path(d.path).exists():
        raise DataFileError(f"{d.path}: no such store or file (data.path); make one with `sim data prepare`")
    return WeatherWindows(
        d.path,
        stats=d.stats,
        variables=d.variables,
        levels=d.levels,
        history=d.history,
        horizon=horizon,
        lead=d.stride,
        time_range=(period.start, period.end),
        targets="state",
    )


def weather_signature(windows: WeatherWindows) -> dict:
    """What a stepper trained on ``windows`` assumes of the data it is rolled out on, and what rebuilds
    it from a checkpoint: the grid, the channels and forcings, the model step, and the statistics."""
    g = windows.grid
    return {
        "kind": "weather",
        "lat": [float(x) for x in g.lat],
        "lon": [float(x) for x in g.lon],
        "channels": list(windows.channel_names),
        "forcings": list(windows.forcing_names),
        "step_seconds": float(windows.lead_steps * windows.step / np.timedelta64(1, "s")),
        "mean": [float(x) for x in windows.mean],
        "std": [float(x) for x in windows.std],
        "diff_std": [float(x) for x in windows.diff_std],
    }


def weather_split(batch, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(history [B, T, C, nlat, nlon], forcings [B, K, F, nlat, nlon], target [B, K, C, nlat, nlon])``."""
    inputs, targets, forcings = (b.to(device, non_blocking=True) for b in batch)
    return inputs, forcings, targets


def build_weather_stepper(config: ExperimentConfig, signature: dict) -> WeatherStepper:
    """``config.model`` inside a :class:`WeatherStepper` for the data described by ``signature``
    (:func:`weather_signature`, also stored in checkpoints)."""
    grid = grid_from_coords(np.asarray(signature["lat"]), np.asarray(signature["lon"]))
    return WeatherStepper(
        config.model,
        grid=grid,
        channel_names=signature["channels"],
        forcing_names=signature["forcings"],
        mean=torch.tensor(signature["mean"], dtype=torch.float32),
        std=torch.tensor(signature["std"], dtype=torch.float32),
        diff_std=torch.tensor(signature["diff_std"], dtype=torch.float32),
        history=config.data.history,
        residual=config.train.residual,
        step_seconds=float(signature.get("step_seconds", math.nan)),
    )


class WeatherStepper(nn.Module):
    """One step of a weather model on normalized states: ``history [B, T, C, nlat, nlon]`` and the
    forcings at the target time ``[B, F, nlat, nlon]`` -> the next state ``[B, C, nlat, nlon]``.

    Args:
        model_config: a sphere :class:`~sim.models.registry.ModelConfig`; the model is built here for
            the channel layout.
        grid: the data's grid.
        channel_names, forcing_names: as :class:`~sim.data.weather.WeatherWindows` names them.
        mean, std, diff_std: ``[C]`` the windows' normalization (``diff_std`` over one model step).
        history: input states ``T``.
        residual: predict the change from the last state (GraphCast) rather than the state.
        step_seconds: the model step (the time between states), for rollouts.

    Raises:
        DataFileError: winds without their partner, or forcings without the time and rotation channels.
    """

    def __init__(
        self,
        model_config,
        *,
        grid: LatLonGrid,
        channel_names,
        forcing_names,
        mean: torch.Tensor,
        std: torch.Tensor,
        diff_std: torch.Tensor,
        history: int,
        residual: bool = True,
        step_seconds: float = math.nan,
    ) -> None:
        super().__init__()
        self.grid, self.history, self.residual = grid, int(history), bool(residual)
        self.step_seconds = float(step_seconds)
        self.channel_names, self.forcing_names = list(channel_names), list(forcing_names)
        C, F = len(self.channel_names), len(self.forcing_names)
        self.state_channels, self.forcing_channels = C, F
        missing = [n for n in TIME_FORCINGS if n not in self.forcing_names]
        if missing:
            raise DataFileError(
                f"weather forcings lack {', '.join(missing)} (expected {', '.join(TIME_FORCINGS)})"
            )
        scalars, winds = wind_channels(self.channel_names)
        self.num_scalars, self.num_winds = len(scalars), len(winds)
        kind = model_config.name
        self.graph_model = kind != "sfno"
        equivariant = kind == "equivariant_graphcast"
        time = _EQUIVARIANT_TIME if equivariant else _EQUIVARIANT_TIME + _OTHER_TIME
        statics = [n for n in self.forcing_names if n not in TIME_FORCINGS]
        fi = {n: i for i, n in enumerate(self.forcing_names)}
        self.register_buffer("mean", mean.reshape(C).float().clone())
        self.register_buffer("std", std.reshape(C).float().clone())
        self.register_buffer("diff_std", diff_std.reshape(C).float().clone())
        idx = lambda xs: torch.tensor(list(xs), dtype=torch.int64)  # noqa: E731
        self.register_buffer("_scalars", idx(scalars), persistent=False)
        self.register_buffer("_u", idx(u for u, _ in winds), persistent=False)
        self.register_buffer("_v", idx(v for _, v in winds), persistent=False)
        self.register_buffer("_forcing_scalars", idx(fi[n] for n in (*statics, *time)), persistent=False)
        self.register_buffer("_rotation", idx(fi[f"rotation_{c}"] for c in "xyz"), persistent=False)
        self.register_buffer(
            "_sun", idx(fi[n] for n in ("utc_hour_sin", "utc_hour_cos", *_EQUIVARIANT_TIME)), persistent=False
        )
        lat, lon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
        frame = torch.from_numpy(tangent_frame(lat, lon).reshape(-1, 2, 3))  # float64, cast per call
        self.register_buffer("frame", frame, persistent=False)
        w = torch.from_numpy(area_weights(grid)).float()
        self.register_buffer("area", w.reshape(1, 1, -1, 1), persistent=False)
        if self.graph_model:
            g = sphere_graph(grid, model_config.mesh_splits, dtype=torch.float64)  # exact symmetric positions
            for name, value in zip(SphereGraph._fields, g, strict=True):
                self.register_buffer(f"graph_{name}", value, persistent=False)
        self.model = build_sphere_model(
            model_config,
            in_scalars=self.history * self.num_scalars + len(self._forcing_scalars),
            in_vectors=self.history * self.num_winds,
            out_scalars=self.num_scalars,
            out_vectors=self.num_winds,
            global_vectors=2,
            in_channels=self.history * C + F,
            out_channels=C,
            grid=grid,
        )

    # -- scales (recomputed from the buffers, so that loading a checkpoint is all it takes) --------
    @property
    def state_std(self) -> torch.Tensor:
        """``[C]`` the loss scale in normalized units: one step's change, ``diff_std / std``."""
        return self.diff_std / self.std

    def _wind_scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sigma [W], delta_sigma [W])``: each wind's rms magnitude per component and change."""
        m2 = self.mean**2 + self.std**2
        sigma = torch.sqrt((m2[self._u] + m2[self._v]) / 2)
        delta = torch.sqrt((self.diff_std[self._u] ** 2 + self.diff_std[self._v] ** 2) / 2)
        return sigma, delta

    def graph(self) -> SphereGraph:
        return SphereGraph(*(getattr(self, f"graph_{n}") for n in SphereGraph._fields))

    # -- engine hooks -----------------------------------------------------------------------------
    def loss_weights(self, forcing: torch.Tensor) -> torch.Tensor:
        """``[1, 1, nlat, 1]`` cell-area weights, mean 1."""
        return self.area

    @staticmethod
    def forcing_at(forcing: torch.Tensor, i: int) -> torch.Tensor:
        """The forcings of unrolled step ``i`` from the window's ``[B, K, F, nlat, nlon]``."""
        return forcing[:, i]

    def check(self, history: torch.Tensor, forcing: torch.Tensor) -> None:
        shape = (self.history, self.state_channels, *self.grid.shape)
        if history.ndim != 5 or tuple(history.shape[1:]) != shape:
            raise ValueError(
                f"WeatherStepper: history must be [B, {', '.join(map(str, shape))}], "
                f"got {list(history.shape)}"
            )
        fshape = (history.shape[0], self.forcing_channels, *self.grid.shape)
        if tuple(forcing.shape) != fshape:
            raise ValueError(f"WeatherStepper: forcing must be {list(fshape)}, got {list(forcing.shape)}")

    def forward(self, history: torch.Tensor, forcing: torch.Tensor) -> torch.Tensor:
        self.check(history, forcing)
        B, T, C = history.shape[:3]
        G = self.grid.nlat * self.grid.nlon
        last = history[:, -1]  # [B, C, nlat, nlon]
        if not self.graph_model:
            out = self.model(torch.cat([history.reshape(B, T * C, *self.grid.shape), forcing], 1))
            if self.residual:
                return last + out * self.state_std[:, None, None]
            return out
        flat = history.reshape(B, T, C, G)
        phys = flat * self.std[:, None] + self.mean[:, None]  # [B, T, C, G]
        scalars = flat[:, :, self._scalars].permute(0, 3, 1, 2).reshape(B, G, -1)  # [B, G, T S]
        f = forcing.reshape(B, -1, G)
        scalars = torch.cat([scalars, f[:, self._forcing_scalars].transpose(1, 2)], -1)
        sigma, delta = self._wind_scales()
        u = phys[:, :, self._u] / sigma[:, None]  # [B, T, W, G]
        v = phys[:, :, self._v] / sigma[:, None]
        frame = self.frame.to(history.dtype)
        vectors = wind_to_vector(u, v, frame).permute(0, 3, 1, 2, 4).reshape(B, G, T * self.num_winds, 3)
        at0 = f[:, :, 0]  # [B, F]: the time and rotation forcings are the same everywhere
        sun = solar_direction(*at0[:, self._sun].unbind(-1))  # [B, 3]
        glob = torch.stack([at0[:, self._rotation], sun], 1)  # [B, 2, 3]
        graph = self.graph()
        graph = graph._replace(
            grid_pos=graph.grid_pos.to(history.dtype), mesh_pos=graph.mesh_pos.to(history.dtype)
        )
        out_s, out_v = self.model(
            scalars if scalars.shape[-1] else None, vectors if self.num_winds else None, glob, graph
        )
        du, dv = vector_to_wind(out_v.transpose(1, 2), frame)  # [B, W, G] each
        nxt = torch.empty(B, C, G, dtype=history.dtype, device=history.device)
        s_out = out_s.transpose(1, 2)  # [B, S, G]
        if self.residual:
            lastf = flat[:, -1]
            nxt[:, self._scalars] = lastf[:, self._scalars] + s_out * self.state_std[self._scalars, None]
            scale = delta[:, None]
            nxt[:, self._u] = lastf[:, self._u] + du * scale / self.std[self._u, None]
            nxt[:, self._v] = lastf[:, self._v] + dv * scale / self.std[self._v, None]
        else:
            nxt[:, self._scalars] = s_out
            nxt[:, self._u] = (du * sigma[:, None] - self.mean[self._u, None]) / self.std[self._u, None]
            nxt[:, self._v] = (dv * sigma[:, None] - self.mean[self._v, None]) / self.std[self._v, None]
        return nxt.reshape(B, C, *self.grid.shape)

    def rollout(self, history: torch.Tensor, forcings: torch.Tensor, steps: int):
        """Yield ``steps`` next states ``[B, C, nlat, nlon]``, feeding each back; ``forcings [B, steps, F,
        nlat, nlon]`` (or a callable ``k -> [B, F, nlat, nlon]``) at each target time."""
        window = history
        for k in range(steps):
            f = forcings(k) if callable(forcings) else forcings[:, k]
            nxt = self(window, f)
            yield nxt
            window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)

    def extra_repr(self) -> str:
        return (
            f"grid={self.grid.nlat}x{self.grid.nlon}, channels={self.state_channels} "
            f"({self.num_scalars} scalars, {self.num_winds} winds), forcings={self.forcing_channels}, "
            f"history={self.history}, residual={self.residual}"
        )
