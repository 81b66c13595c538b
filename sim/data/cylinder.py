"""Flow past a cylinder on unstructured meshes: generate trajectories to netCDF, read them as graph windows.

The MeshGraphNets CylinderFlow set-up: a 2D channel of height 0.41 with a circular cylinder, a parabolic
inflow, vortex shedding at Reynolds numbers of about 50-200. Every trajectory draws the cylinder's
position and diameter and the Reynolds number (hence the inflow speed), gets its own graded mesh
(:func:`sim.discretize.channel.channel_mesh`, ``[0, mesh.length] x [0, 0.41]``) and is solved by the
lattice-Boltzmann solver :func:`sim.solvers.cylinder.simulate` on a longer channel (``solver.length``, so
the outlet condition is far from the mesh), sampled at the mesh nodes every ``dt`` after ``warmup``.

File layout (one netCDF-4 file; meshes differ per sample, so the node and face dimensions are the
largest sample's and shorter samples are padded)::

    dimensions:  sample, time, node, face, vertex (3), component (2: x, y)
    velocity(sample, time, node, component)  float32  (u, v) at the mesh nodes; NaN on padding
    pressure(sample, time, node)             float32  relative to the solver's outlet; NaN on padding
    pos(sample, node, component)             float64  mesh vertices (x, y); NaN on padding
    cells(sample, face, vertex)              int32    triangles, counter-clockwise; -1 on padding
    node_type(sample, node)                  int8     MeshGraphNets' types (sim.discretize.NodeType); -1
    num_nodes(sample), num_faces(sample)     int32
    drag(sample, time), lift(sample, time)   float32  C_D and C_L at the frame times (the solver's)
    diameter, center_x, center_y, u_mean, reynolds (sample)  float64, seed(sample) int64
    solver_seconds(sample)                   float64  wall-clock time of the solver's time loop
                                                      (warmup included: t = 0 to the last frame)
    coordinates: sample, time (physical seconds from the solver's start)
    attributes:  viscosity, height, mesh_length, solver_length, dt, warmup, solver, cells_per_diameter,
                 u_lattice, kick, kick_time, sim_version, created, config (the resolved YAML)

Training windows (:class:`CylinderWindows`) are graphs: the velocity at ``history`` frames and the next
``horizon`` frames on one sample's mesh, its node types, positions and edges (both directions);
:func:`collate_graphs` concatenates a batch into one graph.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
import xarray as xr

from sim import __version__
from sim.config import ConfigError, cfield, device_name, dump_yaml, finite_positive, nonnegative, positive
from sim.data.ns2d import DataFileError
from sim.discretize.channel import Channel, channel_mesh, channel_node_type
from sim.discretize.mesh import TriangularMesh, mesh_to_graph
from sim.io import atomic_output, check_output_path
from sim.runtime import resolve_device
from sim.solvers.random_fields import sample_seed

__all__ = [
    "CylinderDataConfig",
    "CylinderMeshConfig",
    "CylinderSolverConfig",
    "CylinderWindows",
    "MeshBatch",
    "collate_graphs",
    "cylinder_statistics",
    "draw_geometry",
    "generate_cylinder",
    "preview_cylinder",
    "write_synthetic_cylinder",
]

_VARIABLES = ("velocity", "pos", "cells", "node_type", "num_nodes")


def _interval(lo: float = 0.0) -> dict:
    return {
        "check": lambda v: len(v) == 2 and lo < v[0] <= v[1] < math.inf,
        "expected": f"[min, max] with {lo:g} < min <= max",
    }


@dataclass(frozen=True)
class CylinderMeshConfig:
    """Each trajectory's mesh (:func:`sim.discretize.channel.channel_mesh`)."""

    length: float = cfield(1.6, **finite_positive(), doc="the meshed part of the channel, [0, length]")
    cylinder_points: int = cfield(48, check=lambda v: v >= 8, expected="an int >= 8")
    h_max: float = cfield(0.02, **finite_positive())
    growth: float = cfield(0.3, **finite_positive())
    relax_steps: int = cfield(100, **nonnegative())


@dataclass(frozen=True)
class CylinderSolverConfig:
    """The lattice-Boltzmann solver (:func:`sim.solvers.cylinder.simulate`)."""

    length: float = cfield(2.2, **finite_positive(), doc="the simulated channel (>= mesh.length)")
    cells_per_diameter: float = cfield(20.0, **finite_positive())
    u_lattice: float = cfield(0.05, check=lambda v: 0 < v <= 0.2, expected="a float in (0, 0.2]")
    kick: float = cfield(0.5, check=lambda v: 0 <= v <= 2, expected="a float in [0, 2]")
    kick_time: float = cfield(0.5, **finite_positive())
    dtype: Literal["float32", "float64"] = "float32"


@dataclass(frozen=True)
class CylinderDataConfig:
    """A cylinder-flow data set: ``sim generate cylinder --config configs/data/<name>.yaml``.

    Frames are stored at ``warmup, warmup + dt, ..., warmup + (frames - 1) dt``.
    """

    solver: CylinderSolverConfig = field(default_factory=CylinderSolverConfig)
    mesh: CylinderMeshConfig = field(default_factory=CylinderMeshConfig)
    samples: int = cfield(8, **positive())
    frames: int = cfield(600, check=lambda v: v >= 2, expected="an int >= 2")
    dt: float = cfield(0.01, **finite_positive())
    warmup: float = cfield(3.0, **nonnegative(), doc="time before the first frame (shedding settles)")
    height: float = cfield(0.41, **finite_positive())
    viscosity: float = cfield(1e-3, **finite_positive())
    reynolds: tuple[float, float] = cfield((50.0, 200.0), **_interval())
    diameter: tuple[float, float] = cfield((0.07, 0.12), **_interval())
    center_x: tuple[float, float] = cfield((0.15, 0.3), **_interval())
    center_y: tuple[float, float] = cfield((0.16, 0.25), **_interval())
    seed: int = cfield(0, **nonnegative())
    output: str = "data/cylinder.nc"
    device: str = cfield("auto", **device_name())

    def __post_init__(self) -> None:
        r = self.diameter[1] / 2
        gap = min(self.center_y[0] - r, self.height - self.center_y[1] - r, self.center_x[0] - r)
        if gap <= 0:
            raise ConfigError(
                f"diameter: the largest cylinder ({self.diameter[1]:g}) at the extreme centres "
                f"(center_x {list(self.center_x)}, center_y {list(self.center_y)}) leaves the channel of "
                f"height {self.height:g}",
                key="diameter",
            )
        if self.center_x[1] + r >= self.mesh.length:
            raise ConfigError(
                f"center_x: expected the cylinder inside the mesh [0, {self.mesh.length:g}], got "
                f"{list(self.center_x)} with diameter up to {self.diameter[1]:g}",
                key="center_x",
            )
        if self.solver.length < self.mesh.length:
            raise ConfigError(
                f"solver.length: expected at least mesh.length={self.mesh.length:g}, "
                f"got {self.solver.length:g}",
                key="solver.length",
            )

    @property
    def t_end(self) -> float:
        """The solver's end time: the last frame."""
        return self.warmup + (self.frames - 1) * self.dt


@dataclass(frozen=True)
class Geometry:
    """One trajectory's draw."""

    seed: int
    diameter: float
    center: tuple[float, float]
    reynolds: float
    u_mean: float


def draw_geometry(config: CylinderDataConfig, index: int) -> Geometry:
    """The cylinder and Reynolds number of sample ``index``: uniform in the configured ranges, a function
    of ``(config.seed, index)`` only."""
    seed = sample_seed(config.seed, index)
    rng = np.random.default_rng(seed)
    diameter = float(rng.uniform(*config.diameter))
    center = (float(rng.uniform(*config.center_x)), float(rng.uniform(*config.center_y)))
    reynolds = float(rng.uniform(*config.reynolds))
    return Geometry(seed, diameter, center, reynolds, reynolds * config.viscosity / diameter)


def _mesh(config: CylinderDataConfig, g: Geometry) -> tuple[TriangularMesh, np.ndarray]:
    m = config.mesh
    channel = Channel(length=m.length, height=config.height, centre=g.center, radius=g.diameter / 2)
    mesh = channel_mesh(
        channel,
        cylinder_points=m.cylinder_points,
        h_max=m.h_max,
        growth=m.growth,
        relax_steps=m.relax_steps,
        seed=g.seed % (2**32),
    )
    return mesh, channel_node_type(mesh, channel)


def generate_cylinder(
    config: CylinderDataConfig,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Mesh and solve every trajectory and write them to one netCDF file (layout: module docstring).

    The meshes are built first (they fix the file's node dimension), then each trajectory is solved and
    written as it finishes; the file is written under a temporary name and renamed when complete, so an
    interrupted run leaves no file that looks whole. Sample ``i`` depends only on ``(config.seed, i)``.

    Returns:
        The path written.

    Raises:
        OutputError: the folder is missing or the file exists without ``overwrite``.
        SolverDivergedError: a trajectory became unstable (the message names it).
        ValueError: a drawn geometry the solver rejects (one line).
    """
    from tqdm.auto import tqdm

    from sim.solvers.cylinder import CylinderFlow, simulate
    from sim.solvers.ns2d import SolverDivergedError

    out = Path(config.output if out is None else out)
    check_output_path(out, overwrite=overwrite)  # fail before any work
    device = resolve_device(config.device)
    dtype = torch.float32 if config.solver.dtype == "float32" else torch.float64
    geometries = [draw_geometry(config, i) for i in range(config.samples)]
    meshes = [
        _mesh(config, g)
        for g in tqdm(geometries, desc="meshes", unit="mesh", disable=not progress, dynamic_ncols=True)
    ]
    sc = config.solver
    with atomic_output(out, overwrite=overwrite) as tmp:
        _create(tmp, config, geometries, meshes)
        bar = tqdm(
            total=config.samples * config.t_end,
            unit="s",
            desc="cylinder flow",
            disable=not progress,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} simulated s [{elapsed}<{remaining}]{postfix}",
        )
        with bar:
            for i, (g, (mesh, _)) in enumerate(zip(geometries, meshes, strict=True)):
                flow = CylinderFlow(
                    length=sc.length,
                    height=config.height,
                    center=g.center,
                    diameter=g.diameter,
                    viscosity=config.viscosity,
                    u_mean=g.u_mean,
                )
                done = [0.0]

                def tick(t: float, _end: float, done=done) -> None:
                    bar.update(t - done[0])
                    done[0] = t

                bar.set_postfix(sample=i, Re=f"{g.reynolds:.0f}")
                try:
                    result = simulate(
                        flow,
                        cells_per_diameter=sc.cells_per_diameter,
                        t_end=config.t_end,
                        u_lattice=sc.u_lattice,
                        sample_every=config.dt,
                        points=mesh.vertices[:, :2],
                        t_start_sampling=config.warmup,
                        kick=sc.kick,
                        kick_time=sc.kick_time,
                        dtype=dtype,
                        device=device,
                        progress=tick,
                    )
                except SolverDivergedError as err:
                    raise SolverDivergedError(
                        f"sample {i} (Re {g.reynolds:.1f}, diameter {g.diameter:.4g}, center "
                        f"({g.center[0]:.4g}, {g.center[1]:.4g})): {err}; lower solver.u_lattice or raise "
                        "solver.cells_per_diameter",
                        step=getattr(err, "step", None),
                        time=getattr(err, "time", None),
                    ) from None
                bar.update(config.t_end - done[0])
                _write_sample(tmp, i, config, result)
    return out


def _create(path: Path, config: CylinderDataConfig, geometries: list[Geometry], meshes: list) -> None:
    import netCDF4

    S, T = config.samples, config.frames
    N = max(len(m.vertices) for m, _ in meshes)
    F = max(len(m.faces) for m, _ in meshes)
    sc = config.solver
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts(
            {
                "title": "flow past a cylinder on unstructured meshes (sim generate cylinder)",
                "viscosity": config.viscosity,
                "height": config.height,
                "mesh_length": config.mesh.length,
                "solver_length": sc.length,
                "dt": config.dt,
                "warmup": config.warmup,
                "solver": "sim.solvers.cylinder.simulate: D2Q9 lattice Boltzmann, interpolated bounce-back",
                "cells_per_diameter": sc.cells_per_diameter,
                "u_lattice": sc.u_lattice,
                "kick": sc.kick,
                "kick_time": sc.kick_time,
                "sim_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "config": dump_yaml(config),
            }
        )
        sizes = {"sample": S, "time": T, "node": N, "face": F, "vertex": 3, "component": 2}
        for name, size in sizes.items():
            nc.createDimension(name, size)
        v = nc.createVariable("sample", "i8", ("sample",))
        v[:] = np.arange(S)
        v = nc.createVariable("time", "f8", ("time",))
        v[:] = config.warmup + config.dt * np.arange(T)
        v.setncatts({"units": "s", "long_name": "time since the solver's start"})
        v = nc.createVariable("component", "S1", ("component",))
        v[:] = np.array(["x", "y"], dtype="S1")
        chunk = (1, 1, N, 2)
        nc.createVariable("velocity", "f4", ("sample", "time", "node", "component"), chunksizes=chunk,
                          fill_value=np.float32(np.nan), zlib=False).setncatts(
            {"long_name": "velocity (u, v) at the mesh nodes", "units": "m s-1"})  # fmt: skip
        nc.createVariable("pressure", "f4", ("sample", "time", "node"), chunksizes=(1, 1, N),
                          fill_value=np.float32(np.nan)).setncatts(
            {"long_name": "pressure relative to the solver's outlet", "units": "Pa (density 1)"})  # fmt: skip
        pos = nc.createVariable("pos", "f8", ("sample", "node", "component"), fill_value=np.nan)
        cells = nc.createVariable("cells", "i4", ("sample", "face", "vertex"), fill_value=np.int32(-1))
        types = nc.createVariable("node_type", "i1", ("sample", "node"), fill_value=np.int8(-1))
        types.long_name = "MeshGraphNets node type: NORMAL 0, INFLOW 4, OUTFLOW 5, WALL_BOUNDARY 6"
        num_nodes = nc.createVariable("num_nodes", "i4", ("sample",))
        num_faces = nc.createVariable("num_faces", "i4", ("sample",))
        for name, long in (("drag", "drag coefficient C_D"), ("lift", "lift coefficient C_L")):
            nc.createVariable(name, "f4", ("sample", "time"), fill_value=np.float32(np.nan)).long_name = long
        for name in ("diameter", "center_x", "center_y", "u_mean", "reynolds"):
            nc.createVariable(name, "f8", ("sample",))
        nc.createVariable("seed", "i8", ("sample",))
        v = nc.createVariable("solver_seconds", "f8", ("sample",), fill_value=np.nan)
        v.long_name = "wall-clock seconds of the solver's time loop, from t = 0 to the last frame"
        for i, (g, (mesh, node_type)) in enumerate(zip(geometries, meshes, strict=True)):
            n, f = len(mesh.vertices), len(mesh.faces)
            pos[i, :n] = mesh.vertices[:, :2]
            cells[i, :f] = mesh.faces.astype(np.int32)
            types[i, :n] = node_type.astype(np.int8)
            num_nodes[i], num_faces[i] = n, f
            nc["diameter"][i], nc["center_x"][i], nc["center_y"][i] = g.diameter, *g.center
            nc["u_mean"][i], nc["reynolds"][i], nc["seed"][i] = g.u_mean, g.reynolds, g.seed


def _write_sample(path: Path, i: int, config: CylinderDataConfig, result) -> None:
    import netCDF4

    samples = result.samples.double().numpy()  # [T', N, 3]
    if samples.shape[0] < config.frames:
        raise RuntimeError(f"sample {i}: the solver gave {samples.shape[0]} frames, expected {config.frames}")
    samples = samples[: config.frames]
    n = samples.shape[1]
    times = result.times.numpy()
    frame_times = config.warmup + config.dt * np.arange(config.frames)
    at = np.clip(np.searchsorted(times, frame_times - 1e-9), 0, len(times) - 1)  # the step at each frame
    with netCDF4.Dataset(path, "a") as nc:
        nc["velocity"][i, :, :n] = samples[..., :2].astype(np.float32)
        nc["pressure"][i, :, :n] = samples[..., 2].astype(np.float32)
        nc["drag"][i] = result.drag.numpy()[at].astype(np.float32)
        nc["lift"][i] = result.lift.numpy()[at].astype(np.float32)
        if hasattr(result, "wall_seconds"):
            nc["solver_seconds"][i] = float(result.wall_seconds)


# ---------------------------------------------------------------------------------------------------------
# reading


class MeshBatch(NamedTuple):
    """A batch of graph windows concatenated into one graph (PyG style).

    Attributes:
        velocity: ``[N, T + K, 2]`` the history then the target frames at every node.
        node_type: ``[N]`` int64, MeshGraphNets' types.
        pos: ``[N, 2]`` mesh positions.
        edge_index: ``[2, E]`` int64, both directions, row 0 senders, offset per graph.
        batch: ``[N]`` int64, the graph of each node.
        num_graphs: how many windows.
    """

    velocity: torch.Tensor
    node_type: torch.Tensor
    pos: torch.Tensor
    edge_index: torch.Tensor
    batch: torch.Tensor
    num_graphs: int

    def to(self, device, non_blocking: bool = False) -> MeshBatch:
        moved = [t.to(device, non_blocking=non_blocking) for t in self[:5]]
        return MeshBatch(*moved, self.num_graphs)


def collate_graphs(items: Sequence[dict]) -> MeshBatch:
    """Concatenate windows (:class:`CylinderWindows` items) into one :class:`MeshBatch`."""
    offsets = np.cumsum([0] + [len(it["node_type"]) for it in items[:-1]])
    return MeshBatch(
        velocity=torch.cat([it["velocity"].transpose(0, 1) for it in items]),  # [N, T+K, 2]
        node_type=torch.cat([it["node_type"] for it in items]),
        pos=torch.cat([it["pos"] for it in items]),
        edge_index=torch.cat(
            [it["edge_index"] + int(o) for it, o in zip(items, offsets, strict=True)], dim=1
        ),
        batch=torch.cat(
            [torch.full((len(it["node_type"]),), b, dtype=torch.int64) for b, it in enumerate(items)]
        ),
        num_graphs=len(items),
    )


def open_cylinder(path: str | os.PathLike) -> xr.Dataset:
    """Open a cylinder-flow file lazily and check its layout.

    Raises:
        DataFileError: missing file, variable or wrong dims, in one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        # fill values as written: -1 for missing node types and cells, NaN for floats
        ds = xr.open_dataset(path, engine="netcdf4", cache=False, mask_and_scale=False)
    except (OSError, ValueError) as err:
        raise DataFileError(
            f"{path}: cannot be read as netCDF ({str(err).strip().splitlines()[0]})"
        ) from None
    missing = [v for v in _VARIABLES if v not in ds.variables]
    if missing:
        ds.close()
        raise DataFileError(f"{path}: missing variable(s) {missing} (not a sim cylinder-flow file?)")
    dims = ds["velocity"].dims
    if dims != ("sample", "time", "node", "component"):
        ds.close()
        raise DataFileError(f"{path}: velocity has dims {dims}, expected (sample, time, node, component)")
    return ds


class CylinderWindows(torch.utils.data.Dataset):
    """Training windows from a cylinder-flow file: graphs read lazily, one sample's mesh each.

    Window ``i`` starting at frame ``t`` of sample ``s`` (frames ``stride`` apart) is a dict::

        velocity   [history + horizon, n, 2] float32  frames t, t + stride, ... (the history, oldest
                                                       first, then the targets)
        node_type  [n] int64       pos [n, 2] float32       edge_index [2, E] int64 (both directions)

    with ``n`` the sample's node count. Batch them with ``collate_fn=collate_graphs``.

    Raises:
        DataFileError: a missing or malformed file, node types missing, mesh and data that disagree in
            node count, or too few frames for one window.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        history: int = 1,
        horizon: int = 1,
        samples: Sequence[int] | None = None,
        stride: int = 1,
    ):
        self.path = Path(path)
        for name, v in (("history", history), ("horizon", horizon), ("stride", stride)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"CylinderWindows: {name} must be an int >= 1, got {v!r}")
        self.history, self.horizon, self.stride = history, horizon, stride
        with open_cylinder(self.path) as ds:
            n_samples, n_frames = ds.sizes["sample"], ds.sizes["time"]
            self.attrs = dict(ds.attrs)
            self.times = np.asarray(ds["time"].values, dtype=np.float64)
            self.num_nodes = np.asarray(ds["num_nodes"].values, dtype=np.int64)
        self.samples = list(range(n_samples)) if samples is None else [int(s) for s in samples]
        bad = [s for s in self.samples if not 0 <= s < n_samples]
        if bad:
            raise ValueError(
                f"CylinderWindows: sample indices {bad[:5]} out of range for {n_samples} samples"
            )
        span = stride * (history + horizon - 1)
        self.windows_per_sample = n_frames - span
        if self.windows_per_sample < 1:
            raise DataFileError(
                f"{self.path}: {n_frames} frames per sample are too few for history={history}, "
                f"horizon={horizon}, stride={stride} (need at least {span + 1})"
            )
        self._ds: xr.Dataset | None = None
        self._pid: int | None = None
        self._graphs: dict[int, dict] = {}

    def _dataset(self) -> xr.Dataset:
        if self._ds is None or self._pid != os.getpid():  # reopen in each DataLoader worker
            self._ds = open_cylinder(self.path)
            self._pid = os.getpid()
            self._graphs = {}
        return self._ds

    def graph(self, s: int) -> dict:
        """Sample ``s``'s mesh as tensors: ``node_type [n]``, ``pos [n, 2]``, ``edge_index [2, E]`` (cached
        per process)."""
        if s not in self._graphs:
            self._graphs[s] = read_graph(self._dataset(), s, path=self.path)
        return self._graphs[s]

    def __len__(self) -> int:
        return len(self.samples) * self.windows_per_sample

    def index(self, i: int) -> tuple[int, int]:
        """The (sample, first frame) of window ``i``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        i %= len(self)
        return self.samples[i // self.windows_per_sample], i % self.windows_per_sample

    def __getitem__(self, i: int) -> dict:
        s, t = self.index(i)
        g = self.graph(s)
        n = len(g["node_type"])
        last = t + self.stride * (self.history + self.horizon - 1)
        v = np.asarray(
            self._dataset()["velocity"][s, t : last + 1 : self.stride, :n].values, dtype=np.float32
        )
        if not np.isfinite(v).all():
            raise DataFileError(f"{self.path}: sample {s} has NaN/Inf velocity in frames {t}-{last}")
        return {**g, "velocity": torch.from_numpy(v), "sample": s}  # velocity [h+H, n, 2]

    def close(self) -> None:
        if self._ds is not None:
            self._ds.close()
            self._ds = None

    def __getstate__(self) -> dict:  # file handles do not travel to worker processes
        state = self.__dict__.copy()
        state.update(_ds=None, _pid=None, _graphs={})
        return state


def read_graph(ds: xr.Dataset, s: int, *, path: str | os.PathLike = "") -> dict:
    """Sample ``s``'s mesh from an open cylinder-flow dataset: ``node_type [n]`` int64, ``pos [n, 2]``
    float32, ``edge_index [2, E]`` int64 (both directions, row 0 senders).

    Raises:
        DataFileError: node types missing (negative) on a mesh node, faces that point outside the mesh,
            or node counts that disagree.
    """
    n, f = int(ds["num_nodes"][s]), int(ds["num_faces"][s]) if "num_faces" in ds else None
    pos = np.asarray(ds["pos"][s, :n].values, dtype=np.float64)
    node_type = np.asarray(ds["node_type"][s, :n].values)
    cells = np.asarray(ds["cells"][s].values)
    cells = cells[:f] if f is not None else cells[(cells >= 0).all(axis=1)]
    if n > ds.sizes["node"] or not np.isfinite(pos).all():
        raise DataFileError(
            f"{path}: sample {s}: num_nodes={n} but the positions hold {np.isfinite(pos).all(1).sum()}"
        )
    if (node_type < 0).any():
        raise DataFileError(
            f"{path}: sample {s}: node_type missing on {(node_type < 0).sum()} of its {n} nodes"
        )
    if cells.size and (cells.min() < 0 or cells.max() >= n):
        raise DataFileError(
            f"{path}: sample {s}: cells point outside its {n} nodes (indices {cells.min()}..{cells.max()})"
        )
    mesh = TriangularMesh(np.concatenate([pos, np.zeros((n, 1))], axis=1), cells.astype(np.int64))
    graph = mesh_to_graph(mesh, dtype=torch.float32)
    return {
        "node_type": torch.from_numpy(node_type.astype(np.int64)),
        "pos": torch.from_numpy(pos.astype(np.float32)),
        "edge_index": graph.edge_index,
    }


def cylinder_statistics(
    path: str | os.PathLike, samples: Sequence[int], *, stride: int = 1
) -> dict[str, float]:
    """Scales of the training samples: the RMS speed ``velocity_std`` (over nodes, frames and both
    components, about zero: a rotation-invariant scale), the RMS one-step change ``delta_std``, and the RMS
    mesh edge length ``edge_std``.

    Returns:
        ``{"velocity_std", "delta_std", "edge_std"}`` (floats).
    """
    v2 = d2 = e2 = 0.0
    nv = nd = ne = 0
    with open_cylinder(path) as ds:
        for s in samples:
            g = read_graph(ds, s, path=path)
            n = len(g["node_type"])
            v = np.asarray(ds["velocity"][s, :, :n].values, dtype=np.float64)  # [T, n, 2]
            v2, nv = v2 + float((v**2).sum()), nv + v.size
            d = v[stride:] - v[:-stride]
            d2, nd = d2 + float((d**2).sum()), nd + d.size
            src, dst = g["edge_index"]
            e = (g["pos"][src] - g["pos"][dst]).double()
            e2, ne = e2 + float((e**2).sum()), ne + e.numel()
    return {
        "velocity_std": math.sqrt(v2 / max(nv, 1)) or 1.0,
        "delta_std": math.sqrt(d2 / max(nd, 1)) or 1.0,
        "edge_std": math.sqrt(e2 / max(ne, 1)) or 1.0,
    }


def preview_cylinder(
    path: str | os.PathLike,
    png: str | os.PathLike,
    *,
    sample: int = 0,
    frames: int = 3,
    overwrite: bool = False,
) -> Path:
    """A PNG of one sample's speed on its mesh at evenly spaced times, and its lift coefficient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.tri import Triangulation

    png = check_output_path(png, overwrite=overwrite)
    with open_cylinder(path) as ds:
        n, f = int(ds["num_nodes"][sample]), int(ds["num_faces"][sample])
        pos = ds["pos"][sample, :n].values
        tri = Triangulation(pos[:, 0], pos[:, 1], ds["cells"][sample, :f].values)
        picks = np.linspace(0, ds.sizes["time"] - 1, frames).round().astype(int)
        speed = [np.hypot(*ds["velocity"][sample, t, :n].values.T) for t in picks]
        times = ds["time"].values
        lift = ds["lift"][sample].values if "lift" in ds else None
        title = (
            f"sample {sample}: Re {float(ds['reynolds'][sample]):.0f}, D {float(ds['diameter'][sample]):.3g}"
        )
    fig, axes = plt.subplots(frames + 1, 1, figsize=(9, 1.9 * (frames + 1)), constrained_layout=True)
    top = max(float(s.max()) for s in speed)
    for ax, t, s in zip(axes, picks, speed, strict=False):
        im = ax.tripcolor(tri, s, shading="gouraud", cmap="viridis", vmin=0, vmax=top)
        ax.set_aspect("equal")
        ax.set_title(f"|u| at t = {times[t]:.2f} s", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[:frames], shrink=0.8, label="speed")
    if lift is not None:
        axes[-1].plot(times, lift, lw=1)
        axes[-1].set_xlabel("t (s)")
        axes[-1].set_ylabel("C_L")
    fig.suptitle(title)
    with atomic_output(png, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return png


class _SyntheticResult(NamedTuple):
    samples: torch.Tensor  # [T, N, 3]
    times: torch.Tensor
    drag: torch.Tensor
    lift: torch.Tensor


def write_synthetic_cylinder(
    path: str | os.PathLike,
    *,
    samples: int = 2,
    frames: int = 6,
    seed: int = 0,
    h_max: float = 0.05,
    overwrite: bool = False,
) -> Path:
    """A small file in the cylinder-flow layout without running the solver (tests, examples).

    Real meshes (coarse: ``h_max``, 16 points on the cylinder) of drawn geometries, and an analytic
    velocity: the parabolic inflow profile plus a travelling wave ``a sin(k (x - c t)) sin(pi y / H)`` in
    ``v`` behind the cylinder, zero on the walls and the cylinder, the inflow profile on the inlet. Not a
    solution of anything: a smooth, time-dependent field with the right boundary values.
    """
    from sim.config import from_dict

    config = from_dict(
        CylinderDataConfig,
        {"samples": samples, "frames": frames, "seed": seed, "warmup": 0.0,
         "mesh": {"h_max": h_max, "relax_steps": 10, "cylinder_points": 16}},
    )  # fmt: skip
    out = check_output_path(path, overwrite=overwrite)
    geometries = [draw_geometry(config, i) for i in range(samples)]
    meshes = [_mesh(config, g) for g in geometries]
    times = config.dt * np.arange(frames)
    with atomic_output(out, overwrite=overwrite) as tmp:
        _create(tmp, config, geometries, meshes)
        for i, (g, (mesh, node_type)) in enumerate(zip(geometries, meshes, strict=True)):
            x, y = mesh.vertices[:, 0], mesh.vertices[:, 1]
            H, r = config.height, g.diameter / 2
            profile = 6 * g.u_mean * y * (H - y) / H**2  # [N]: mean u_mean over the height
            behind = np.clip((x - g.center[0] - r) / (4 * r), 0, 1)  # grows behind the cylinder
            dist = np.hypot(x - g.center[0], y - g.center[1]) - r
            near = np.clip(dist / r, 0, 1)  # 0 on the cylinder
            t = times[:, None]  # [T, 1]
            u = np.broadcast_to(profile * near, (frames, len(x)))
            v = 0.3 * g.u_mean * behind * near * np.sin(2 * np.pi * (x - g.u_mean * t) / (5 * g.diameter))
            v = v * np.sin(np.pi * y / H)  # [T, N]
            wall = node_type == 6
            u, v = np.where(wall, 0.0, u), np.where(wall, 0.0, v)
            p = 0.5 * g.u_mean**2 * (1 - x / config.mesh.length) + 0 * t
            fields = np.stack([u, v, p], axis=-1)  # [T, N, 3]
            lift = 0.5 * np.sin(2 * np.pi * 0.3 * g.u_mean / g.diameter * times)
            result = _SyntheticResult(
                torch.from_numpy(fields), torch.from_numpy(times), torch.full((frames,), 3.0),
                torch.from_numpy(lift),
            )  # fmt: skip
            _write_sample(tmp, i, config, result)
    return out
