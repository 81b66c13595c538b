#!/usr/bin/env python
"""Benchmark: building GraphCast's sphere graphs, the multi-mesh M0-Mk and the lat-lon grid <-> Mk
connectivities (grid -> mesh by radius query, mesh -> grid by containing triangle), at several sizes.

Each size pairs a mesh level with an equiangular grid with poles whose spacing halves as the mesh
doubles its resolution (M4 / 4°, M5 / 2°, M6 / 1°, M7 / 0.5°), so the work grows 4x per row: near-linear
growth shows as a constant time per (mesh vertex + grid point). Goal: the M6 / 1° row (GraphCast's mesh,
a 181 x 360 grid) under 10 s on 2 CPU cores.

    python scripts/bench_meshes.py                  # M4/4°, M5/2°, M6/1°, M7/0.5°; writes docs/benchmarks.md
    python scripts/bench_meshes.py --quick --out -  # tiny sizes, print only

Times are medians of --repeats runs; peak memory is tracemalloc's peak (NumPy arrays and Python objects,
not the kd-trees' internal C++ nodes) over one more, untimed run.
Writes its section into docs/benchmarks.md between the markers of this benchmark (other sections stay).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.discretize.connectivity import (  # noqa: E402
    grid_to_mesh_edges,
    grid_to_mesh_radius,
    mesh_to_grid_edges,
)
from sim.discretize.icosahedral import icosahedral_meshes, multimesh_edges  # noqa: E402
from sim.discretize.latlon import equiangular_grid  # noqa: E402
from sim.io import write_markdown_section  # noqa: E402
from sim.runtime import describe_machine, load_average  # noqa: E402

NAME = "bench_meshes"
START, END = f"<!-- {NAME}:start -->", f"<!-- {NAME}:end -->"
DEFAULT_SIZES = ((4, 4.0), (5, 2.0), (6, 1.0), (7, 0.5))
QUICK_SIZES = ((2, 10.0), (3, 5.0))
GOAL_LEVEL, GOAL_SPACING, GOAL_SECONDS = 6, 1.0, 10.0
STAGES = ("multimesh", "grid_to_mesh", "mesh_to_grid")


def build(level: int, spacing: float, *, workers: int = 1) -> dict:
    """Build the three graphs once; return the seconds per stage and the sizes."""
    grid = equiangular_grid(round(180 / spacing) + 1, round(360 / spacing))
    t0 = time.perf_counter()
    meshes = icosahedral_meshes(level)
    mesh_edges = multimesh_edges(meshes)  # [2, E]
    finest = meshes[-1]
    t1 = time.perf_counter()
    xyz = grid.xyz().reshape(-1, 3)  # [G, 3]
    g2m = grid_to_mesh_edges(xyz, finest.vertices, radius=grid_to_mesh_radius(finest))
    t2 = time.perf_counter()
    m2g, _ = mesh_to_grid_edges(xyz, finest, workers=workers)
    t3 = time.perf_counter()
    return {
        "seconds": {"multimesh": t1 - t0, "grid_to_mesh": t2 - t1, "mesh_to_grid": t3 - t2},
        "mesh_vertices": len(finest.vertices),
        "mesh_edges": mesh_edges.shape[1],
        "grid_shape": grid.shape,
        "grid_points": len(xyz),
        "g2m_edges": g2m.shape[1],
        "m2g_edges": m2g.shape[1],
    }


def bench_one(level: int, spacing: float, *, repeats: int, workers: int = 1) -> dict:
    """Median seconds per stage over ``repeats`` runs (after one warm-up), and tracemalloc's peak."""
    build(level, spacing, workers=workers)  # warm-up: imports, allocator, caches
    runs = [build(level, spacing, workers=workers) for _ in range(repeats)]
    row = dict(runs[0])
    row["level"], row["spacing"] = level, spacing
    row["seconds"] = {s: statistics.median(r["seconds"][s] for r in runs) for s in STAGES}
    row["total"] = statistics.median(sum(r["seconds"].values()) for r in runs)
    tracemalloc.start()
    try:
        build(level, spacing, workers=workers)
        row["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    row["us_per_node"] = 1e6 * row["total"] / (row["mesh_vertices"] + row["grid_points"])
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| mesh | grid | mesh vertices | multi-mesh edges | grid points | grid→mesh edges | mesh→grid edges "
        "| multi-mesh s | grid→mesh s | mesh→grid s | total s | µs per node | peak MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["seconds"]
        nlat, nlon = r["grid_shape"]
        lines.append(
            f"| M0–M{r['level']} | {r['spacing']:g}° ({nlat}×{nlon}) | {r['mesh_vertices']:,} | "
            f"{r['mesh_edges']:,} | {r['grid_points']:,} | {r['g2m_edges']:,} | {r['m2g_edges']:,} | "
            f"{s['multimesh']:.3f} | {s['grid_to_mesh']:.3f} | {s['mesh_to_grid']:.3f} | {r['total']:.3f} | "
            f"{r['us_per_node']:.2f} | {r['peak_mb']:.0f} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Growth between consecutive sizes and the verdict against the goal."""
    parts = []
    for a, b in zip(rows[:-1], rows[1:], strict=True):
        size = (b["mesh_vertices"] + b["grid_points"]) / (a["mesh_vertices"] + a["grid_points"])
        parts.append(
            f"M{a['level']}→M{b['level']}: nodes ×{size:.1f}, time ×{b['total'] / a['total']:.1f}, "
            f"memory ×{b['peak_mb'] / a['peak_mb']:.1f}"
        )
    growth = ("Growth: " + "; ".join(parts) + ".") if parts else ""
    goal = next((r for r in rows if r["level"] == GOAL_LEVEL and r["spacing"] == GOAL_SPACING), None)
    if goal is None:
        verdict = (
            f"Goal (M0–M{GOAL_LEVEL} with a {GOAL_SPACING:g}° grid under {GOAL_SECONDS:g} s): not measured."
        )
    else:
        met = "met" if goal["total"] < GOAL_SECONDS else "NOT met"
        verdict = (
            f"Goal (M0–M{GOAL_LEVEL} with a {GOAL_SPACING:g}° grid under {GOAL_SECONDS:g} s): {met}, "
            f"{goal['total']:.2f} s."
        )
    return " ".join(p for p in (growth, verdict) if p)


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (or append it), atomically."""
    write_markdown_section(path, NAME, section)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (M2/10°, M3/5°), one run: for tests")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per size (the median is reported)")
    parser.add_argument("--workers", type=int, default=1, help="threads of the kd-tree queries (-1: all)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md",
        help="markdown file to update; '-' to only print",
    )
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    repeats = 1 if args.quick else args.repeats
    load_before = load_average()
    t_start = time.perf_counter()
    rows = []
    for level, spacing in sizes:
        row = bench_one(level, spacing, repeats=repeats, workers=args.workers)
        rows.append(row)
        s = row["seconds"]
        print(
            f"M0-M{level} / {spacing:g}°: multimesh {s['multimesh']:.3f} s, "
            f"grid->mesh {s['grid_to_mesh']:.3f} s, mesh->grid {s['mesh_to_grid']:.3f} s, "
            f"total {row['total']:.3f} s, peak {row['peak_mb']:.0f} MB",
            flush=True,
        )
    elapsed = time.perf_counter() - t_start
    text = table(rows)
    verdict = summary(rows)
    command = (
        "python scripts/bench_meshes.py"
        + (" --quick" if args.quick else "")
        + (f" --repeats {args.repeats}" if args.repeats != 5 and not args.quick else "")
        + (f" --workers {args.workers}" if args.workers != 1 else "")
    )
    section = (
        "## Sphere graphs: multi-mesh and grid ↔ mesh connectivity (cpu)\n\n"
        f"`{command}` on {describe_machine()}; kd-tree queries with `workers={args.workers}` "
        f"({elapsed:.0f} s in all; 1-minute load average {load_before} before, {load_average()} after). "
        f"Median of {repeats} runs after a warm-up. Per size: the multi-mesh (`icosahedral_meshes(k)`, the "
        "hierarchy M0–Mk, and `multimesh_edges`, the union of its edges in both directions); grid → mesh "
        "edges (`grid_to_mesh_edges`, radius 0.6 × the longest Mk edge, as GraphCast, grid points included); "
        "mesh → grid edges with barycentric weights (`mesh_to_grid_edges`, containing Mk triangle by radial "
        "projection). Grids are equiangular with poles. *µs per node*: total time "
        "per (mesh vertex + grid point); constant means linear growth. *Peak MB*: tracemalloc's peak over a "
        "separate run (NumPy and Python allocations; the kd-trees' internal nodes are not traced).\n\n"
        + text
        + "\n\n"
        + verdict
        + "\n"
    )
    print("\n" + text + "\n\n" + verdict)
    if str(args.out) != "-":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_section(args.out, section)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
