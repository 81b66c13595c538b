"""Long autoregressive rollouts of a ``MeshStepper`` on cylinder-flow meshes, streamed to netCDF.

File layout (netCDF-4)::

    dimensions:  sample, lead_time, node, component (2: x, y)
    velocity(sample, lead_time, node, component)  float32  the predicted velocity in the data file's
                                                           frame; NaN on padding nodes and from a
                                                           sample's divergence on
    diverged_at(sample)                 int32     first lead at which the sample diverged, -1 if never
    initial_max_speed(sample)           float32   max |u| over the initial frames (the blow-up reference)
    coordinates: sample (indices of the data file), lead_time (1..steps, model steps),
                 time(lead_time) = the data file's time of the predicted frame
    attributes:  kind = "cylinder", data_file, start, history, stride, steps, rotation_deg, mirror,
                 frame_interval (of the rollout), blowup_factor, sim_version, created, wall_seconds (the
                 rollouts' wall time, model steps and writing, set once they are done) and the caller's

Lead ``l`` of a rollout from frame ``start`` with ``stride`` ``s`` predicts the data file's frame
``start + (history - 1 + l) * s``. With ``rotation_deg`` / ``mirror`` the mesh, its velocities and the
rollout are transformed by ``g`` (a rotation about the origin, after the mirror ``x -> -x``) before the
stepper sees them, and the predictions are transformed back by ``g^-1`` before they are written, so every
rollout file compares with the untransformed data file: for an exactly E(2)-equivariant model the file
is the same whatever ``g`` (up to rounding); for a model that is not, the difference is its error on the
rotated domain.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from sim import __version__
from sim.data.cylinder import collate_graphs, open_cylinder, read_graph
from sim.data.ns2d import DataFileError
from sim.evaluate._common import (
    check_blowup_factor,
    check_extra_attrs,
    check_history_fits,
    check_int,
    check_samples,
)
from sim.io import atomic_output, check_output_path
from sim.train.stepper import MeshGraph, MeshStepper

__all__ = ["persistence_stepper", "planar_transform", "rollout_mesh_to_netcdf", "time_mesh_steps"]

_RESERVED_ATTRS = frozenset(
    {
        "kind", "title", "data_file", "start", "history", "stride", "steps", "rotation_deg", "mirror",
        "frame_interval", "blowup_factor", "frame_convention", "lead_convention", "sim_version", "created",
        "wall_seconds",
    }
)  # fmt: skip


class _NoChange(torch.nn.Module):
    """A mesh model that predicts no change (a residual stepper of it is persistence)."""

    def forward(self, velocity, node_type, pos, edge_index):
        return torch.zeros_like(velocity[:, -1]), None


def persistence_stepper(dim: int = 2) -> MeshStepper:
    """The baseline every mesh surrogate should beat: ``u(t + k) = u(t)``, as a ``MeshStepper`` (history
    1) that :func:`rollout_mesh_to_netcdf` rolls out like a trained one."""
    return MeshStepper(_NoChange(), history=1, dim=dim)


def planar_transform(rotation_deg: float = 0.0, mirror: bool = False) -> torch.Tensor:
    """``g [2, 2]`` float64: the mirror ``x -> -x`` (if asked) followed by the counter-clockwise rotation."""
    a = math.radians(float(rotation_deg))
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    return rot @ torch.diag(torch.tensor([-1.0 if mirror else 1.0, 1.0], dtype=torch.float64))


def rollout_mesh_to_netcdf(
    stepper: MeshStepper,
    data_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    steps: int,
    samples: Sequence[int] | None = None,
    start: int = 0,
    stride: int = 1,
    rotation_deg: float = 0.0,
    mirror: bool = False,
    batch_size: int = 4,
    chunk: int = 50,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    blowup_factor: float = 100.0,
    attrs: Mapping[str, str | int | float] | None = None,
) -> Path:
    """Roll a mesh stepper out for ``steps`` steps from each sample's frames ``start, start + stride, ...``
    and stream the velocities to netCDF (layout: module docstring), written atomically.

    Divergence, per sample: NaN/Inf or a speed above ``blowup_factor`` times the initial frames' maximum;
    that lead and all later ones are written as NaN, the other samples continue.

    Raises:
        OutputError: the folder is missing or the file exists without ``overwrite``.
        DataFileError: the data file is missing, malformed or too short for ``start``.
        ValueError: a bad argument.
    """
    from tqdm.auto import tqdm

    out = check_output_path(out_path, overwrite=overwrite)
    steps = check_int("steps", steps, minimum=1)
    start = check_int("start", start, minimum=0)
    stride = check_int("stride", stride, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    blowup_factor = check_blowup_factor(blowup_factor)
    extra = check_extra_attrs(attrs, _RESERVED_ATTRS, who="rollout_mesh_to_netcdf")
    if not math.isfinite(float(rotation_deg)):
        raise ValueError(f"rotation_deg: expected a finite angle in degrees, got {rotation_deg!r}")
    T = stepper.history
    g = planar_transform(rotation_deg, mirror)  # [2, 2]
    device = torch.device(device)
    dtype = stepper.state_std.dtype
    with open_cylinder(data_path) as ds:
        n_samples, n_frames, n_nodes = ds.sizes["sample"], ds.sizes["time"], ds.sizes["node"]
        check_history_fits(data_path, n_frames, start=start, history=T, stride=stride)
        picks = check_samples(samples, n_samples)
        times = np.asarray(ds["time"].values, dtype=np.float64)
        interval = float(times[1] - times[0]) * stride if times.size > 1 else math.nan
        last = start + (T - 1) * stride
        lead_times = last + stride * np.arange(1, steps + 1)
        lead_time_values = np.where(
            lead_times < n_frames, times[np.minimum(lead_times, n_frames - 1)], np.nan
        ) if times.size else np.full(steps, np.nan)  # fmt: skip
        graphs = [read_graph(ds, int(s), path=data_path) for s in picks]
        initial = [
            _frames(ds, int(s), gr, slice(start, last + 1, stride))
            for s, gr in zip(picks, graphs, strict=True)
        ]
    for s, v in zip(picks, initial, strict=True):
        if not torch.isfinite(v).all():
            raise DataFileError(f"{data_path}: sample {int(s)}: the initial frames contain NaN/Inf")
    meta = {
        "kind": "cylinder",
        "title": "autoregressive rollout of a sim MeshStepper (flow past a cylinder)",
        "data_file": str(Path(data_path).resolve()),
        "start": start,
        "history": T,
        "stride": stride,
        "steps": steps,
        "rotation_deg": float(rotation_deg),
        "mirror": int(bool(mirror)),
        "frame_interval": interval,
        "blowup_factor": blowup_factor,
        "frame_convention": (
            "velocities in the data file's frame: the stepper ran on the mesh transformed by g (mirror "
            "x -> -x if mirror, then rotation by rotation_deg about the origin) and its output was "
            "transformed back by g^-1"
        ),
        "lead_convention": "lead l predicts frame start + (history - 1 + l) * stride of data_file",
        "sim_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    was_training = stepper.training
    stepper.to(device).eval()
    try:
        with (
            atomic_output(out, overwrite=overwrite) as tmp,
            tqdm(total=picks.size * steps, unit="state", desc=f"rollout {steps} steps",
                 disable=not progress, dynamic_ncols=True) as bar,
        ):  # fmt: skip
            with _create(tmp, picks, steps, n_nodes, lead_time_values, meta) as nc:
                t0 = time.perf_counter()
                for b0 in range(0, picks.size, batch_size):
                    items = [
                        {**gr, "velocity": v}
                        for gr, v in zip(
                            graphs[b0 : b0 + batch_size], initial[b0 : b0 + batch_size], strict=True
                        )
                    ]
                    sizes = [len(it["node_type"]) for it in items]
                    history, graph = _batch_graph(items, g, device, dtype)
                    diverged, init_max = _roll_batch(
                        stepper, history, graph, g, sizes, nc, b0,
                        steps=steps, chunk=chunk, blowup_factor=blowup_factor, bar=bar,
                    )  # fmt: skip
                    nc["diverged_at"][b0 : b0 + len(sizes)] = diverged
                    nc["initial_max_speed"][b0 : b0 + len(sizes)] = init_max
                # a study that keeps this file can still report the time per step it was made at
                nc.setncattr("wall_seconds", time.perf_counter() - t0)
    finally:
        stepper.train(was_training)
    return out


def _frames(ds, s: int, graph: dict, frames: slice) -> torch.Tensor:
    """Sample ``s``'s velocity frames ``frames`` on its own nodes (``graph``: its read_graph dict), float32
    ``[T, n, 2]``."""
    n = len(graph["node_type"])
    return torch.from_numpy(np.asarray(ds["velocity"][s, frames, :n].values, dtype=np.float32))


def _batch_graph(items: list[dict], g: torch.Tensor, device, dtype) -> tuple[torch.Tensor, MeshGraph]:
    """One graph of the samples ``items`` (read_graph's dicts with their ``velocity [T, n, 2]``), mesh and
    velocities transformed by ``g``: ``(history [N, T, 2], graph)``."""
    b = collate_graphs(items)  # one graph; velocity [N, T, 2]
    graph = MeshGraph(
        node_type=b.node_type.to(device),
        pos=(b.pos.double() @ g.T).to(device, dtype),  # rows: p -> g p
        edge_index=b.edge_index.to(device),
        batch=b.batch.to(device),
    )
    return (b.velocity.double() @ g.T).to(device, dtype), graph


def time_mesh_steps(
    steppers: Mapping[str, MeshStepper],
    data_path: str | os.PathLike,
    *,
    sample: int = 0,
    repeats: int = 5,
    min_seconds: float = 0.5,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Median seconds of one autoregressive step of each stepper on the mesh of ``sample`` (its first
    frames), the steppers timed alternately in this process (:func:`sim.runtime.time_interleaved`), so
    that their ratios hold on a loaded machine.

    Raises:
        DataFileError: the data file is missing or malformed.
        ValueError: an empty ``steppers`` or a bad ``sample``.
    """
    from sim.runtime import time_interleaved

    if not steppers:
        raise ValueError("time_mesh_steps: expected at least one stepper, got none")
    device = torch.device(device)
    T = max(s.history for s in steppers.values())
    with open_cylinder(data_path) as ds:
        (pick,) = check_samples([sample], ds.sizes["sample"])
        check_history_fits(data_path, ds.sizes["time"], start=0, history=T, stride=1)
        item = read_graph(ds, int(pick), path=data_path)
        item["velocity"] = _frames(ds, int(pick), item, slice(0, T))
    history, graph = _batch_graph([item], torch.eye(2, dtype=torch.float64), device, torch.float32)
    training = {name: stepper.training for name, stepper in steppers.items()}
    fns = {}
    for name, stepper in steppers.items():
        stepper.to(device).eval()
        window = history[:, T - stepper.history :].to(stepper.state_std.dtype)

        def step(stepper=stepper, window=window):
            with torch.no_grad():
                return stepper(window, graph)

        fns[name] = step
    try:
        timed = time_interleaved(fns, repeats=repeats, min_seconds=min_seconds, device=device)
    finally:
        for name, stepper in steppers.items():
            stepper.train(training[name])
    return {name: t["median"] for name, t in timed.items()}


def _roll_batch(
    stepper: MeshStepper,
    history: torch.Tensor,
    graph: MeshGraph,
    g: torch.Tensor,
    sizes: list[int],
    nc,
    b0: int,
    *,
    steps: int,
    chunk: int,
    blowup_factor: float,
    bar,
) -> tuple[np.ndarray, np.ndarray]:
    """Roll one batch of graphs out; write each graph's velocities (back in the data frame)."""
    B, N = len(sizes), history.shape[0]
    device = history.device
    batch = graph.batch
    speed0 = torch.linalg.vector_norm(history, dim=-1).amax(dim=1)  # [N]
    init_max = torch.zeros(B, device=device, dtype=speed0.dtype).scatter_reduce(0, batch, speed0, "amax")
    limit = torch.where(init_max > 0, blowup_factor * init_max, torch.full_like(init_max, math.inf))
    alive = torch.ones(B, dtype=torch.bool, device=device)
    diverged = torch.full((B,), -1, dtype=torch.int64, device=device)
    buffer = torch.empty(N, chunk, 2, dtype=torch.float32)  # [N, chunk, 2], data frame
    back = g.to(device=device, dtype=history.dtype)  # row vectors: v_data = v_rot @ g (g orthogonal)
    lead = 0
    states = stepper.rollout(history, graph, steps)
    bounds = np.cumsum([0, *sizes])
    try:
        for state in states:  # [N, 2]
            lead += 1
            speed = torch.linalg.vector_norm(state, dim=-1)  # [N]
            finite = torch.zeros(B, device=device).scatter_reduce(
                0, batch, (~torch.isfinite(speed)).float(), "amax"
            ) == 0  # fmt: skip
            top = torch.zeros(B, device=device, dtype=speed.dtype).scatter_reduce(
                0, batch, torch.nan_to_num(speed, nan=math.inf), "amax"
            )  # fmt: skip
            bad = ~finite | (top > limit)
            diverged = torch.where(bad & alive, lead, diverged)
            alive &= ~bad
            out = torch.where(alive[batch][:, None], state @ back, math.nan)  # [N, 2]
            buffer[:, (lead - 1) % chunk] = out.float().cpu()
            bar.update(B)
            if lead % chunk == 0 or lead == steps:
                n = (lead - 1) % chunk + 1
                for j in range(B):
                    block = buffer[bounds[j] : bounds[j + 1], :n].transpose(0, 1).numpy()  # [n, nodes, 2]
                    nc["velocity"][b0 + j, lead - n : lead, : sizes[j]] = block
                if not bool(alive.any()):
                    break
    finally:
        states.close()
    if lead < steps:  # every graph diverged: the rest is NaN
        for j in range(B):
            nc["velocity"][b0 + j, lead:steps, : sizes[j]] = np.nan
        bar.update(B * (steps - lead))
    return diverged.cpu().numpy().astype(np.int32), init_max.float().cpu().numpy()


def _create(path: Path, picks: np.ndarray, steps: int, n_nodes: int, times: np.ndarray, attrs: dict):
    """Create the rollout file; returns the open netCDF4 Dataset."""
    import netCDF4

    nc = netCDF4.Dataset(path, "w", format="NETCDF4")
    try:
        nc.setncatts(attrs)
        for name, size in (("sample", picks.size), ("lead_time", steps), ("node", n_nodes), ("component", 2)):
            nc.createDimension(name, size)
        v = nc.createVariable("sample", "i8", ("sample",))
        v[:] = picks
        v.long_name = "sample index in data_file"
        v = nc.createVariable("lead_time", "i4", ("lead_time",))
        v[:] = np.arange(1, steps + 1, dtype=np.int32)
        v.setncatts({"long_name": "lead time", "units": "model steps"})
        v = nc.createVariable("time", "f8", ("lead_time",))
        v[:] = times
        v.setncatts({"long_name": "time of the predicted frame in data_file", "units": "s"})
        v = nc.createVariable(
            "velocity", "f4", ("sample", "lead_time", "node", "component"),
            chunksizes=(1, min(steps, 50), n_nodes, 2), fill_value=np.float32(np.nan),
        )  # fmt: skip
        v.long_name = "predicted velocity (u, v), in the data file's frame"
        v = nc.createVariable("diverged_at", "i4", ("sample",))
        v.long_name = "first lead at which the sample diverged (-1: never)"
        nc.createVariable("initial_max_speed", "f4", ("sample",)).long_name = "max |u| of the initial frames"
    except BaseException:
        nc.close()
        raise
    return nc
