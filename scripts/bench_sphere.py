#!/usr/bin/env python
"""Benchmark: memory and time per training step of the sphere models (``sim.models.sphere``) at weather
resolutions, with and without gradient checkpointing in the processor.

Grids and meshes (GraphCast's pairings):

* ``5.625``: ``equiangular_grid(32, 64, poles=False)`` (WeatherBench) with the M0-M4 multi-mesh;
* ``1.5``: ``equiangular_grid(121, 240)`` (WeatherBench2) with M0-M5;
* ``0.25``: ``equiangular_grid(721, 1440)`` (ERA5) with M0-M6 (GraphCast's).

Models: :class:`EquivariantSphereNet` and :class:`GraphCastNet`, each with ``checkpoint=False`` and
``True``; batch 1, float32. Channel layout (:class:`Layout`, ``--levels``, default 5 pressure levels): per
time step 3 level scalars (geopotential, temperature, specific humidity) x levels + 2 surface scalars
(2 m temperature, mean sea-level pressure), winds at every level and at 10 m as vectors; inputs 2 time
steps + 2 static fields (land-sea mask, orography) + 2 time-of-year scalars; 2 global vectors (rotation
axis, sun); outputs one time step. With 5 levels: 38 scalars and 12 vectors in, 17 scalars and 6
vectors out.

A training step: gradients cleared, forward, MSE loss against random targets, backward (no optimizer
update). Each (grid, model, checkpointing) runs in a fresh process (``--one-case``, hidden): peak memory is
a per-process high-water mark on the CPU (``VmHWM``), and a case that does not fit (CUDA out of
memory, a CPU allocation refused under ``--max-memory``, a process killed) is reported as such. In that
process the step is timed alternately with the reference (:func:`sim.runtime.time_interleaved`):

* **Reference** (plain torch): one dense MLP, ``Linear(latent, latent) -> SiLU -> Linear(latent,
  latent)``, forward + backward over ``R = grid points + mesh nodes + edges of the three graphs`` rows
  of width ``latent``: one pass over every node and edge, the least work (and memory traffic) of any
  message-passing model on these graphs. The ratio model / reference says how many such passes a step
  costs, a number that does not depend on the machine's speed.

**Simulated memory** (``--simulate``, default all three grids): the same step run on the ``meta``
device, where operators compute shapes only, with :class:`sim.runtime.LiveTensorBytes` counting every
tensor storage from its creation until it is freed: the peak that ``torch.cuda.max_memory_allocated``
would report on a GPU (less allocator rounding and library workspaces), in seconds and on any machine. It
answers whether 0.25 degrees fits in 80 GB where no such GPU is at hand; each measured row shows it next to
its measured peak.

    python scripts/bench_sphere.py                          # CPU: 5.625 and 1.5; CUDA: all three
    python scripts/bench_sphere.py --cases 5.625 --out -    # print only
    python scripts/bench_sphere.py --quick --out -          # a 9x16 grid, tiny widths (the smoke test)
    python scripts/bench_sphere.py --cases 0.25 --checkpoint yes --json sphere.json   # on a GPU
    python scripts/bench_sphere.py --cases --simulate 0.25 --levels 13 --latent 512 --out -  # fits? (seconds)

Writes its section of docs/benchmarks.md (``--out``), one table per device: a run on one device keeps the
other devices' tables of an earlier run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.discretize.latlon import equiangular_grid  # noqa: E402
from sim.io import atomic_output, markdown_blocks, publish_section, read_markdown_blocks  # noqa: E402
from sim.models.sphere import EquivariantSphereNet, GraphCastNet, SphereGraph, sphere_graph  # noqa: E402
from sim.runtime import (  # noqa: E402
    LiveTensorBytes,
    describe_machine,
    load_average,
    resolve_device,
    time_interleaved,
    tune_cpu_allocator,
)

SECTION = "bench_sphere"
MODELS = {"EquivariantSphereNet": EquivariantSphereNet, "GraphCastNet": GraphCastNet}
DEFAULTS = {"latent": 128, "vectors": 16, "steps": 8, "levels": 5, "repeats": 5}
QUICK = {"latent": 16, "vectors": 4, "steps": 2, "levels": 1, "repeats": 1}
DEVICE_ORDER = ("meta", "cpu", "cuda")  # "meta": the simulated memory
GPU_BYTES = 80 * 10**9  # an 80 GB GPU (A100/H100)


@dataclasses.dataclass(frozen=True)
class Case:
    """A lat-lon grid and the finest level of the icosahedral multi-mesh paired with it."""

    name: str
    nlat: int
    nlon: int
    poles: bool
    splits: int

    @property
    def grid_label(self) -> str:
        return f"{self.name}° ({self.nlat}×{self.nlon})" if self.name[0].isdigit() else self.name

    @property
    def mesh_label(self) -> str:
        return f"M0–M{self.splits}"


CASES = {
    "5.625": Case("5.625", 32, 64, False, 4),
    "1.5": Case("1.5", 121, 240, True, 5),
    "0.25": Case("0.25", 721, 1440, True, 6),
}
QUICK_CASE = Case("quick 9×16", 9, 16, True, 2)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Channels of a GraphCast-like weather state with ``levels`` pressure levels (see the module
    docstring): per time step ``3 levels + 2`` scalars and ``levels + 1`` wind vectors."""

    levels: int
    history: int = 2
    level_scalars: int = 3
    surface_scalars: int = 2
    statics: int = 2
    time_scalars: int = 2
    global_vectors: int = 2

    @property
    def out_scalars(self) -> int:
        return self.level_scalars * self.levels + self.surface_scalars

    @property
    def out_vectors(self) -> int:
        return self.levels + 1

    @property
    def in_scalars(self) -> int:
        return self.history * self.out_scalars + self.statics + self.time_scalars

    @property
    def in_vectors(self) -> int:
        return self.history * self.out_vectors

    def describe(self) -> str:
        return (
            f"{self.levels} pressure levels: {self.in_scalars} scalars in = {self.history} time steps × "
            f"({self.level_scalars} level variables × {self.levels} + {self.surface_scalars} surface) + "
            f"{self.statics} static + {self.time_scalars} time-of-year; {self.in_vectors} wind vectors in "
            f"= {self.history} × ({self.levels} levels + 10 m); {self.global_vectors} global vectors "
            f"(rotation axis, sun); out {self.out_scalars} scalars and {self.out_vectors} vectors"
        )


# --------------------------------------------------------------------------------------------- the step
def make_model(
    name: str, layout: Layout, *, latent: int, vectors: int, steps: int, checkpoint: bool, seed: int = 0
) -> nn.Module:
    """The named sphere model for ``layout`` (parameters drawn from ``seed``)."""
    torch.manual_seed(seed)
    kw = dict(
        in_scalars=layout.in_scalars,
        in_vectors=layout.in_vectors,
        out_scalars=layout.out_scalars,
        out_vectors=layout.out_vectors,
        global_vectors=layout.global_vectors,
        latent=latent,
        steps=steps,
        checkpoint=checkpoint,
    )
    if name == "EquivariantSphereNet":
        kw["vectors"] = vectors
    return MODELS[name](**kw)


def _tangent(v: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``v [B, G, K, 3]`` with its component along the unit normal ``pos [G, 3]`` removed."""
    r = pos[None, :, None, :]  # [1, G, 1, 3]
    return v - (v * r).sum(-1, keepdim=True) * r


def make_batch(graph: SphereGraph, layout: Layout, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs and targets of one sample, on the graph's device: ``scalars [1, G, in_scalars]``,
    ``vectors [1, G, in_vectors, 3]`` (tangent), ``global_vectors [1, 2, 3]`` (unit), ``target_scalars
    [1, G, out_scalars]``, ``target_vectors [1, G, out_vectors, 3]`` (tangent)."""
    gen = torch.Generator().manual_seed(seed)
    pos = graph.grid_pos.cpu()
    G = pos.shape[0]
    randn = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    glob = F.normalize(randn(1, layout.global_vectors, 3), dim=-1)
    if layout.global_vectors:
        glob[0, 0] = torch.tensor([0.0, 0.0, 1.0])  # the rotation axis
    batch = {
        "scalars": randn(1, G, layout.in_scalars),
        "vectors": _tangent(randn(1, G, layout.in_vectors, 3), pos),
        "global_vectors": glob,
        "target_scalars": randn(1, G, layout.out_scalars),
        "target_vectors": _tangent(randn(1, G, layout.out_vectors, 3), pos),
    }
    return {k: v.to(graph.grid_pos.device) for k, v in batch.items()}


def training_step(model: nn.Module, graph: SphereGraph, batch: dict[str, torch.Tensor]):
    """``step() -> loss``: gradients cleared, forward, MSE loss, backward."""

    def step() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        s, v = model(batch["scalars"], batch["vectors"], batch["global_vectors"], graph)
        loss = F.mse_loss(s, batch["target_scalars"]) + F.mse_loss(v, batch["target_vectors"])
        loss.backward()
        return loss.detach()

    return step


def reference_rows(graph: SphereGraph) -> int:
    """Rows of the reference: grid points + mesh nodes + edges of the three graphs."""
    G, M = graph.grid_pos.shape[0], graph.mesh_pos.shape[0]
    return G + M + graph.g2m.shape[1] + graph.mesh.shape[1] + graph.m2g.shape[1]


def reference_step(rows: int, latent: int, device, *, seed: int = 0):
    """The plain-torch reference: ``step()`` runs a 2-layer MLP of width ``latent`` forward and backward
    over ``x [rows, latent]`` (gradients of the parameters and of ``x``)."""
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(latent, latent), nn.SiLU(), nn.Linear(latent, latent)).to(device)
    x = torch.randn(rows, latent, device=device, requires_grad=True)

    def step() -> None:
        mlp.zero_grad(set_to_none=True)
        x.grad = None
        mlp(x).square().mean().backward()

    return step


def simulate_peak(
    graph: SphereGraph, name: str, layout: Layout, *, latent: int, vectors: int, steps: int, checkpoint: bool
) -> int:
    """Peak bytes of one training step (graph, parameters, inputs, activations, gradients) counted on the
    ``meta`` device by :class:`sim.runtime.LiveTensorBytes`: the same model, inputs and step as
    :func:`measure`, run for shapes only (seconds, even at 0.25 degrees). What
    ``torch.cuda.max_memory_allocated`` would report on a GPU, less allocator rounding and library
    workspaces."""
    model = make_model(name, layout, latent=latent, vectors=vectors, steps=steps, checkpoint=checkpoint)
    batch = make_batch(graph.to("cpu"), layout)
    with LiveTensorBytes() as mem:
        meta_graph = graph.to("meta")
        step = training_step(model.to("meta"), meta_graph, {k: v.to("meta") for k, v in batch.items()})
        step()
    return mem.peak


# ---------------------------------------------------------------------------------- one case, in a child
def _status_bytes(key: str) -> int:
    """A ``/proc/self/status`` entry (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key + ":"))


class PeakRSS:
    """The growth of this process's peak resident set from the moment of construction.

    On Linux the high-water mark is reset (``/proc/self/clear_refs``, value 5) and read back as
    ``VmHWM``, so an earlier transient (imports) cannot hide a smaller peak; elsewhere the growth of
    ``ru_maxrss`` (a lower bound when the process peaked before).
    """

    def __init__(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.start, self.reset = _status_bytes("VmRSS"), True
        except (OSError, StopIteration, ValueError):
            self.start, self.reset = self._ru_maxrss(), False

    @staticmethod
    def _ru_maxrss() -> int:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux

    def growth(self) -> int:
        """Bytes by which the peak resident set exceeds the resident set at construction."""
        return (_status_bytes("VmHWM") if self.reset else self._ru_maxrss()) - self.start


def _virtual_bytes() -> int | None:
    """The process's address space now (Linux), else None."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return None


def available_memory() -> int | None:
    """``MemAvailable`` in bytes (Linux), else None."""
    try:
        with open("/proc/meminfo") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def measure(spec: dict) -> dict:
    """One (grid, model, checkpointing) in this process (a fresh one: see :func:`run_child`).

    ``spec``: ``graph`` (a file of :func:`save_graph`), ``model``, ``checkpoint``, ``latent``, ``vectors``,
    ``steps``, ``levels``, ``repeats``, ``device``, ``threads``, ``max_memory`` (bytes of further address
    space allowed on the CPU, or None), ``max_extra_rounds``.

    Returns:
        ``{"fits": True, "params", "loss", "peak_bytes", "seconds", "seconds_min", "seconds_max",
        "reference_seconds", "rounds", "clean"}``, or ``{"fits": False, "reason", "params"}`` when memory
        ran out.
    """
    device = torch.device(spec["device"])
    torch.set_num_threads(spec["threads"])
    machine = describe_machine(device)
    if device.type == "cpu":
        tune_cpu_allocator()
        torch.ones(1 << 17).add_(1).sum()  # start the thread pools now (under a memory limit they might not)
        torch.ones(256, 256) @ torch.ones(256, 256)
    if spec["checkpoint"]:  # its first call imports torch._dynamo and sympy (~70 MB): not the model's
        x = torch.ones(2, device=device, requires_grad=True)
        torch.utils.checkpoint.checkpoint(torch.sin, x, use_reentrant=False).sum().backward()
    rss = PeakRSS()  # from here: graph, model, inputs, the step
    graph = SphereGraph(**torch.load(spec["graph"], weights_only=True)).to(device)
    layout = Layout(spec["levels"])
    params = None
    try:
        model = make_model(
            spec["model"],
            layout,
            latent=spec["latent"],
            vectors=spec["vectors"],
            steps=spec["steps"],
            checkpoint=spec["checkpoint"],
        ).to(device)
        params = model.num_parameters()
        batch = make_batch(graph, layout)
        step = training_step(model, graph, batch)
        if device.type == "cpu" and spec.get("max_memory") is not None and _virtual_bytes() is not None:
            limit = _virtual_bytes() + int(spec["max_memory"])
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        loss = float(step())  # the first step: its peak is the step's peak
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
        else:
            peak = rss.growth()
        reference = reference_step(reference_rows(graph), spec["latent"], device)
        times = time_interleaved(
            {"model": step, "reference": reference},
            repeats=spec["repeats"],
            min_seconds=0.0,
            device=device,
            max_extra_rounds=spec["max_extra_rounds"],
        )
    except Exception as exc:
        if not _out_of_memory(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = f"{type(exc).__name__}: {first[:200]}"
        return {"fits": False, "reason": reason, "params": params, "machine": machine}
    model_t, ref_t = times["model"], times["reference"]
    return {
        "fits": True,
        "machine": machine,
        "params": params,
        "loss": loss,
        "peak_bytes": int(peak),
        "seconds": model_t["median"],
        "seconds_min": model_t["min"],
        "seconds_max": model_t["max"],
        "reference_seconds": ref_t["median"],
        "rounds": model_t["rounds"],
        "clean": model_t["clean"],
    }


def save_graph(graph: SphereGraph, path: Path) -> Path:
    """The graph's tensors as a torch file (for the child processes)."""
    torch.save(graph._asdict(), path)
    return path


def run_child(spec: dict) -> dict:
    """:func:`measure` in a fresh Python process (this script with ``--one-case``).

    A process killed by SIGKILL (the kernel's out-of-memory killer) is reported as not fitting.

    Raises:
        RuntimeError: the process failed otherwise (its stderr's last lines).
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one-case", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode == -signal.SIGKILL:
        return {"fits": False, "reason": "killed (SIGKILL: out of memory?)", "params": None}
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        raise RuntimeError(
            f"bench_sphere: the process for {spec['model']} failed (exit code {done.returncode}):\n"
            f"{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------- report
def _fmt_seconds(s: float) -> str:
    return f"{s:.3g}" if s >= 0.001 else f"{s:.2e}"


def device_table(rows: list[dict], *, device: str, command: str, machine: str, header: str) -> str:
    """The markdown block of one device: how it was run, the table, build times and loss checks."""
    lines = [
        f"### {device.upper()}",
        "",
        f"`{command}` on {machine}. {header}",
        "",
        "| grid | mesh | model | checkpointing | grid points | mesh nodes | edges g2m / mesh / m2g | "
        "parameters | s / step (fwd + bwd, median) | vs reference | peak memory (GiB) | simulated (GiB) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        e = r["edges"]
        params = f"{r['params']:,}" if r.get("params") else "?"
        if r["fits"]:
            cells = (
                f"{_fmt_seconds(r['seconds'])} | {r['seconds'] / r['reference_seconds']:.1f}× | "
                f"{r['peak_bytes'] / 2**30:.3g}"
            )
        else:
            cells = "does not fit | – | does not fit"
        simulated = f"{r['simulated_bytes'] / 2**30:.3g}" if r.get("simulated_bytes") else "–"
        lines.append(
            f"| {r['grid']} | {r['mesh']} | {r['model']} | {'yes' if r['checkpoint'] else 'no'} | "
            f"{r['grid_points']:,} | {r['mesh_nodes']:,} | {e['g2m']:,} / {e['mesh']:,} / {e['m2g']:,} | "
            f"{params} | {cells} | {simulated} |"
        )
    built = {}
    for r in rows:
        built.setdefault(r["grid"], (r["mesh"], r["graph_seconds"], r["reference_rows"]))
    lines += [
        "",
        "Graph build (`sphere_graph`, once per grid): "
        + "; ".join(f"{g} with {m}: {s:.3g} s" for g, (m, s, _) in built.items())
        + ". Reference rows (grid points + mesh nodes + edges): "
        + "; ".join(f"{g}: {n:,}" for g, (_, _, n) in built.items())
        + ".",
    ]
    notes = []
    for r in rows:
        if not r["fits"]:
            notes.append(
                f"{r['grid']} {r['model']} checkpointing {'yes' if r['checkpoint'] else 'no'}: {r['reason']}"
            )
    if notes:
        lines += ["", "Did not fit: " + "; ".join(notes) + "."]
    pairs = loss_differences(rows)
    if pairs:
        worst = max(pairs.values())
        lines += [
            "",
            "Loss of the first step with checkpointing against without (same parameters and inputs): "
            + ("equal in every pair." if worst == 0 else f"largest relative difference {worst:.1e}."),
        ]
    rounds = [f"{r['clean']}/{r['rounds']}" for r in rows if r["fits"]]
    if rounds:
        lines += ["", f"Clean timed rounds per row (uncontended / all): {', '.join(rounds)}."]
    return "\n".join(lines)


def loss_differences(rows: list[dict]) -> dict[tuple[str, str], float]:
    """Relative difference of the first step's loss with and without checkpointing, per (grid, model)."""
    losses: dict[tuple[str, str], dict[bool, float]] = {}
    for r in rows:
        if r["fits"]:
            losses.setdefault((r["grid"], r["model"]), {})[r["checkpoint"]] = r["loss"]
    return {
        key: abs(v[True] - v[False]) / max(abs(v[False]), 1e-30) for key, v in losses.items() if len(v) == 2
    }


def simulated_table(rows: list[dict], *, command: str, header: str) -> str:
    """The markdown block of the memory model: the simulated peak of every (grid, model, checkpointing),
    and whether it fits on an 80 GB GPU."""
    lines = [
        "### Simulated (every grid, any device)",
        "",
        f"`{command}`: {header}",
        "",
        "| grid | mesh | model | checkpointing | grid points | mesh nodes | edges g2m / mesh / m2g | "
        "simulated peak (GiB) | fits in 80 GB |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        e = r["edges"]
        fits = "yes" if r["simulated_bytes"] <= GPU_BYTES else "no"
        lines.append(
            f"| {r['grid']} | {r['mesh']} | {r['model']} | {'yes' if r['checkpoint'] else 'no'} | "
            f"{r['grid_points']:,} | {r['mesh_nodes']:,} | {e['g2m']:,} / {e['mesh']:,} / {e['m2g']:,} | "
            f"{r['simulated_bytes'] / 2**30:.3g} | {fits} |"
        )
    return "\n".join(lines)


def section_text(blocks: dict[str, str]) -> str:
    """The whole section: what is measured, then one block per device (in :data:`DEVICE_ORDER`)."""
    lines = [
        "## Sphere models: memory and time per training step at weather resolutions",
        "",
        "`scripts/bench_sphere.py`: `EquivariantSphereNet` and `GraphCastNet` (`sim.models.sphere`) on "
        "GraphCast's graphs (`sphere_graph`) at 5.625° (32×64 without poles, M0–M4), 1.5° (121×240, M0–M5) "
        "and 0.25° (721×1440, M0–M6), with and without gradient checkpointing of every block (encoder, "
        "processor, decoder) "
        "(`checkpoint=True`); batch 1, float32. A step: gradients cleared, forward, MSE loss against random "
        "targets, backward (no optimizer update). Each row runs in a fresh process; its step is timed "
        "alternately with the reference (`sim.runtime.time_interleaved`, 2 warm-up calls each, medians). "
        "**Reference** (plain torch): a dense MLP `Linear(latent, latent) → SiLU → Linear(latent, latent)`, "
        "forward and backward over one row of width `latent` per grid point, mesh node and edge of the three "
        "graphs: a single pass over the graphs, the least work of any message-passing model on them; "
        "*vs reference* = model time / reference time. **Peak memory**: CPU: the process's peak resident "
        "set over the first step (`VmHWM`, reset after the imports, including those "
        "`torch.utils.checkpoint` makes on its first call: torch._dynamo and sympy, ~70 MB) minus its "
        "resident set then: graph, parameters, inputs, activations and gradients (glibc allocator tuned by "
        "`sim.runtime.tune_cpu_allocator`); CUDA: `torch.cuda.max_memory_allocated` over the same. A row "
        "that runs out of memory (CUDA out of memory, a CPU allocation refused under `--max-memory`, a "
        "process killed) reads *does not fit*.",
    ]
    order = lambda d: (DEVICE_ORDER + (d,)).index(d)  # noqa: E731
    return "\n".join(lines) + "\n\n" + markdown_blocks(SECTION, blocks, order=order) + "\n"


# ------------------------------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases",
        nargs="*",
        choices=list(CASES),
        default=None,
        help="grids (degrees) to run; default: all three on CUDA, 5.625 and 1.5 on the CPU; give it no value "
        "to only simulate (--simulate)",
    )
    parser.add_argument(
        "--simulate",
        nargs="*",
        choices=list(CASES),
        default=None,
        help="grids whose peak memory is also counted on the meta device, without running them (the "
        "'Simulated' table); default: all three (none with --quick); give it no value for none",
    )
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument(
        "--checkpoint", nargs="+", choices=["no", "yes"], default=["no", "yes"], help="checkpointing settings"
    )
    parser.add_argument("--latent", type=int, default=None, help=f"default {DEFAULTS['latent']}")
    parser.add_argument(
        "--vectors", type=int, default=None, help=f"EquivariantSphereNet only; default {DEFAULTS['vectors']}"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help=f"processor blocks; default {DEFAULTS['steps']}"
    )
    parser.add_argument(
        "--levels", type=int, default=None, help=f"pressure levels; default {DEFAULTS['levels']}"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help=f"timed rounds; default {DEFAULTS['repeats']}"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--max-memory",
        type=float,
        default=None,
        help="CPU: GiB of further address space each case may take (default: 80%% of the available memory)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="latent 16, 4 vectors, 2 steps, 1 level, 1 round, and a 9x16 grid with M0-M2 unless --cases "
        "is given (the smoke test); options given explicitly win",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file, or - to print"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument("--one-case", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.one_case is not None:
        print(json.dumps(measure(json.loads(args.one_case))), flush=True)
        return 0
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python scripts/bench_sphere.py", *given])
    device = resolve_device(args.device)
    settings = QUICK if args.quick else DEFAULTS
    for key, value in settings.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("latent", "vectors", "steps", "levels", "repeats"):
        if getattr(args, key) < (0 if key == "steps" else 1):
            raise SystemExit(f"bench_sphere: --{key} must be >= {0 if key == 'steps' else 1}")
    if args.cases is not None:
        cases = [CASES[c] for c in args.cases]
    elif args.quick:
        cases = [QUICK_CASE]
    else:
        cases = [CASES[c] for c in (("5.625", "1.5", "0.25") if device.type == "cuda" else ("5.625", "1.5"))]
    if args.max_memory is not None:
        max_memory = int(args.max_memory * 2**30)
    else:
        avail = available_memory()
        max_memory = None if avail is None else int(0.8 * avail)
    if args.simulate is None:
        args.simulate = [] if args.quick else list(CASES)
    if not cases and not args.simulate:
        raise SystemExit("bench_sphere: nothing to do: --cases and --simulate name no grid")
    threads = args.threads if args.threads is not None else torch.get_num_threads()
    return _run(args, cases, device, threads, max_memory, command)


def _build(case: Case) -> tuple[SphereGraph, dict]:
    """The case's graph and its description (sizes, build time) for the rows."""
    start = time.perf_counter()
    graph = sphere_graph(equiangular_grid(case.nlat, case.nlon, poles=case.poles), case.splits)
    info = {
        "grid": case.grid_label,
        "mesh": case.mesh_label,
        "nlat": case.nlat,
        "nlon": case.nlon,
        "splits": case.splits,
        "grid_points": graph.grid_pos.shape[0],
        "mesh_nodes": graph.mesh_pos.shape[0],
        "edges": {k: int(getattr(graph, k).shape[1]) for k in ("g2m", "mesh", "m2g")},
        "reference_rows": reference_rows(graph),
        "graph_seconds": time.perf_counter() - start,
    }
    return graph, info


def _run(args, cases: list[Case], device: torch.device, threads: int, max_memory, command: str) -> int:
    from tqdm.auto import tqdm

    layout = Layout(args.levels)
    checkpoints = [c == "yes" for c in dict.fromkeys(args.checkpoint)]  # in the order given, once each
    runs = [(case, model, ckpt) for case in cases for model in args.models for ckpt in checkpoints]
    pairs = [(model, ckpt) for model in args.models for ckpt in checkpoints]
    sizes = {"latent": args.latent, "vectors": args.vectors, "steps": args.steps}
    simulated: dict[str, tuple[dict, dict]] = {}  # case name -> (its info, {(model, ckpt): peak bytes})

    def simulate(case: Case, graph: SphereGraph, info: dict) -> dict:
        peaks = {(m, c): simulate_peak(graph, m, layout, **sizes, checkpoint=c) for m, c in pairs}
        simulated[case.name] = (info, peaks)
        return peaks

    load0, t0 = load_average(), time.perf_counter()
    rows: list[dict] = []
    bar = tqdm(total=len(runs), unit="run", disable=args.no_progress, desc="bench_sphere")
    with tempfile.TemporaryDirectory(prefix="bench_sphere_") as tmp:
        for case in cases:
            bar.set_postfix_str(f"{case.name}: building the graph")
            graph, info = _build(case)
            path = save_graph(graph, Path(tmp) / f"graph_{case.nlat}x{case.nlon}.pt")
            peaks = simulate(case, graph, info)
            del graph
            for model in args.models:
                for ckpt in checkpoints:
                    bar.set_postfix_str(f"{case.name} {model} checkpoint={ckpt}")
                    spec = {
                        "graph": str(path),
                        "model": model,
                        "checkpoint": ckpt,
                        "latent": args.latent,
                        "vectors": args.vectors,
                        "steps": args.steps,
                        "levels": args.levels,
                        "repeats": args.repeats,
                        "device": str(device),
                        "threads": threads,
                        "max_memory": max_memory if device.type == "cpu" else None,
                        "max_extra_rounds": 0 if args.quick else args.repeats,
                    }
                    row = {**info, "model": model, "checkpoint": ckpt, **run_child(spec)}
                    row["simulated_bytes"] = peaks[model, ckpt]
                    rows.append(row)
                    bar.update(1)
                    bar.write(_progress_line(row))
        for name in args.simulate:  # the grids only simulated
            if name not in simulated:
                bar.set_postfix_str(f"{name}: building the graph to simulate")
                simulate(CASES[name], *_build(CASES[name]))
    bar.close()
    seconds = time.perf_counter() - t0
    simulated_rows = [  # in the order of CASES
        {**simulated[name][0], "model": m, "checkpoint": c, "simulated_bytes": b}
        for name in CASES if name in args.simulate for (m, c), b in simulated[name][1].items()
    ]  # fmt: skip
    # as the children saw it (this process never touches CUDA: its context would take GPU memory)
    machine = next((r["machine"] for r in rows if r.get("machine")), f"{device}, torch {torch.__version__}")
    width = f"latent {args.latent}" + (
        f", {args.vectors} vectors (EquivariantSphereNet)" if "EquivariantSphereNet" in args.models else ""
    )
    header = (
        f"{seconds:.0f} s in all (1-minute load average {load0} before, {load_average()} after); "
        f"{width}, {args.steps} processor steps, batch 1; channels: {layout.describe()}; "
        f"{args.repeats} timed round(s) per row."
    )
    blocks = {} if str(args.out) == "-" else read_markdown_blocks(args.out, SECTION)
    if rows:  # none when only simulating: the device's table of an earlier run stays
        blocks[device.type] = device_table(
            rows, device=device.type, command=command, machine=machine, header=header
        )
    if simulated_rows:
        blocks["meta"] = simulated_table(
            simulated_rows,
            command=command,
            header=f"{width}, {args.steps} processor steps, batch 1, float32, {args.levels} pressure levels. "
            "The training step of the tables below runs on the `meta` device, where operators compute shapes "
            "only, counting every tensor storage from its creation until it is freed "
            "(`sim.runtime.LiveTensorBytes`): graph, parameters, inputs, activations, gradients, and with "
            "checkpointing the recomputed activations. The peak is what `torch.cuda.max_memory_allocated` "
            "reports for the same step on a GPU, less the caching allocator's rounding and the vendor "
            "libraries' workspaces (no tensors). On the CPU the resident set measured below also holds the "
            "memory glibc keeps after frees, so it is higher, most with checkpointing (many short-lived "
            "activations).",
        )
    publish_section(args.out, SECTION, section_text(blocks))
    if args.json is not None:
        raw = {
            "command": command,
            "machine": machine,
            "torch": torch.__version__,
            "device": str(device),
            "threads": threads,
            "settings": {k: getattr(args, k) for k in DEFAULTS} | {"layout": dataclasses.asdict(layout)},
            "seconds": seconds,
            "rows": rows,
            "simulated": simulated_rows,
        }
        with atomic_output(args.json, overwrite=True) as tmp_json:
            tmp_json.write_text(json.dumps(raw, indent=1) + "\n")
    return 0


def _progress_line(row: dict) -> str:
    head = f"{row['grid']} {row['model']} checkpoint={'yes' if row['checkpoint'] else 'no'}:"
    if not row["fits"]:
        return f"{head} does not fit ({row['reason']})"
    return (
        f"{head} {_fmt_seconds(row['seconds'])} s/step, {row['seconds'] / row['reference_seconds']:.1f}× "
        f"reference, peak {row['peak_bytes'] / 2**30:.3g} GiB, {row['params']:,} parameters"
    )


if __name__ == "__main__":
    raise SystemExit(main())
