#!/usr/bin/env python
"""Regenerate the small meshes in meshes/ (and meshes/README.md, which documents them), deterministically.

* ``cylinder_channel.ply``: the 2D channel of MeshGraphNets' CylinderFlow (the DFG benchmark geometry):
  ``[0, 1.6] x [0, 0.41]`` minus the disc of radius 0.05 around ``(0.2, 0.2)``, about 2k nodes, graded
  from 48 points on the cylinder to a spacing of 0.02 far from it. No mesh generator is needed: fixed
  points on the box and the cylinder (spaced by the size function), interior points drawn with density
  ``1 / h^2`` and relaxed by DistMesh's spring forces (Persson & Strang 2004), then one Delaunay
  triangulation (scipy) without the triangles inside the cylinder. Node types: inflow on ``x = 0``,
  outflow on ``x = 1.6`` (corners excluded), walls on ``y = 0``, ``y = 0.41`` and the cylinder.
* ``square.ply``: the unit square, a 32 x 32 grid whose interior points are jittered by up to a quarter
  of the spacing, Delaunay-triangulated; the boundary is wall.
* ``icosphere.ply``: ``trimesh.creation.icosphere(subdivisions=3)``, the unit sphere, 642 nodes.

Every mesh is checked (``sim.discretize.mesh.check_mesh``) and written with ``save_mesh`` (binary PLY,
float64 coordinates, a ``node_type`` vertex property with MeshGraphNets' values).

    python scripts/make_meshes.py                  # into meshes/; refuses to replace existing files
    python scripts/make_meshes.py --overwrite      # regenerate the committed files
    python scripts/make_meshes.py --out /tmp/m --preview   # elsewhere, with a PNG of the channel
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
import trimesh

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.discretize.channel import Channel, delaunay_ccw  # noqa: E402
from sim.discretize.channel import channel_mesh as build_channel_mesh  # noqa: E402
from sim.discretize.channel import channel_node_type as build_channel_node_type  # noqa: E402
from sim.discretize.mesh import (  # noqa: E402
    NodeType,
    TriangularMesh,
    check_mesh,
    classify_boundary,
    face_angles,
    mesh_to_graph,
    save_mesh,
)
from sim.io import OutputError, atomic_output, check_output_path  # noqa: E402

COMMAND = "python scripts/make_meshes.py --overwrite --preview"
SEED = 0

# The channel (DFG 2D-1/2D-2 benchmark, MeshGraphNets CylinderFlow): box, cylinder centre and radius.
LENGTH, HEIGHT = 1.6, 0.41
CENTRE, RADIUS = np.array([0.2, 0.2]), 0.05
CYLINDER_POINTS = 48  # points on the cylinder: h_min = 2 pi r / 48 ~ 0.0065
H_MAX = 0.02  # spacing far from the cylinder
GROWTH = 0.3  # dh / d(distance from the cylinder)
RELAX_STEPS = 100

SQUARE_POINTS = 32  # per side
SQUARE_JITTER = 0.25  # of the grid spacing

ICOSPHERE_SUBDIVISIONS = 3


# --------------------------------------------------------------------------------------------------
# The channel: sim.discretize.channel builds it (training data makes one per cylinder position)

CHANNEL = Channel(length=LENGTH, height=HEIGHT, centre=(float(CENTRE[0]), float(CENTRE[1])), radius=RADIUS)


def channel_mesh(*, seed: int = SEED) -> TriangularMesh:
    """The committed channel mesh: :func:`sim.discretize.channel.channel_mesh` with this script's sizes."""
    return build_channel_mesh(
        CHANNEL,
        cylinder_points=CYLINDER_POINTS,
        h_max=H_MAX,
        growth=GROWTH,
        relax_steps=RELAX_STEPS,
        seed=seed,
    )


def channel_node_type(mesh: TriangularMesh) -> np.ndarray:
    """Node types ``[N]``: inflow on x = 0, outflow on x = 1.6 (without the corners), wall elsewhere."""
    return build_channel_node_type(mesh, CHANNEL)


# --------------------------------------------------------------------------------------------------
# The square and the sphere


def square_mesh(*, seed: int = SEED) -> TriangularMesh:
    """The jittered unit square (see the module docstring), planar, counter-clockwise, checked.

    Returns:
        ``vertices [N, 3]`` (z = 0, grid order: x fastest), ``faces [F, 3]``.
    """
    rng = np.random.default_rng(seed)
    spacing = 1.0 / (SQUARE_POINTS - 1)
    y, x = np.meshgrid(np.arange(SQUARE_POINTS) * spacing, np.arange(SQUARE_POINTS) * spacing, indexing="ij")
    x[:, -1] = y[-1, :] = 1.0  # exactly on the sides
    points = np.stack([x.reshape(-1), y.reshape(-1)], axis=1)  # [n * n, 2]
    interior = np.all((points > 0.0) & (points < 1.0), axis=1)
    points[interior] += rng.uniform(-SQUARE_JITTER, SQUARE_JITTER, size=(interior.sum(), 2)) * spacing
    mesh = TriangularMesh(np.concatenate([points, np.zeros((len(points), 1))], axis=1), delaunay_ccw(points))
    check_mesh(mesh, name="square")
    return mesh


def icosphere_mesh() -> TriangularMesh:
    """trimesh's icosphere of radius 1, counter-clockwise seen from outside, checked.

    Returns:
        ``vertices [642, 3]``, ``faces [1280, 3]``.
    """
    sphere = trimesh.creation.icosphere(subdivisions=ICOSPHERE_SUBDIVISIONS, radius=1.0)
    mesh = TriangularMesh(
        np.asarray(sphere.vertices, dtype=np.float64), np.asarray(sphere.faces, dtype=np.int64)
    )
    check_mesh(mesh, name="icosphere")
    return mesh


# --------------------------------------------------------------------------------------------------
# Files and documentation


def build_meshes() -> dict[str, tuple[TriangularMesh, np.ndarray]]:
    """Every mesh with its node types: ``{file name: (mesh, node_type [N])}``."""
    channel, square, sphere = channel_mesh(), square_mesh(), icosphere_mesh()
    return {
        "cylinder_channel.ply": (channel, channel_node_type(channel)),
        "square.ply": (square, classify_boundary(square, name="square")),
        "icosphere.ply": (sphere, classify_boundary(sphere, name="icosphere")),
    }


def describe(mesh: TriangularMesh, node_type: np.ndarray) -> dict:
    """Counts, bounds, node-type counts and angles of a mesh, as shown in meshes/README.md."""
    graph = mesh_to_graph(mesh, node_type=node_type, dtype=torch.float64)
    angles = np.degrees(face_angles(mesh))
    types = {t.name: int(np.count_nonzero(node_type == t)) for t in NodeType if np.any(node_type == t)}
    return {
        "nodes": len(mesh.vertices),
        "faces": len(mesh.faces),
        "edges": graph.edge_index.shape[1] // 2,
        "boundary": int(graph.boundary.sum()),
        "euler": len(mesh.vertices) - graph.edge_index.shape[1] // 2 + len(mesh.faces),
        "low": mesh.vertices.min(axis=0),
        "high": mesh.vertices.max(axis=0),
        "area": float(graph.area.sum()),
        "min_angle": float(angles.min()),
        "max_angle": float(angles.max()),
        "min_edge": float(graph.edge_len.min()),
        "max_edge": float(graph.edge_len.max()),
        "types": types,
    }


def readme(stats: dict[str, dict]) -> str:
    """meshes/README.md from the statistics of :func:`describe`."""

    def bounds(s: dict) -> str:
        return " x ".join(f"[{lo:.4g}, {hi:.4g}]" for lo, hi in zip(s["low"], s["high"], strict=True))

    rows = [
        "| file | nodes | faces | edges | V - E + F | bounds (x, y, z) | area | node types | angles (deg) |",
        "|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for name, s in stats.items():
        types = ", ".join(f"{k} {v}" for k, v in s["types"].items())
        rows.append(
            f"| `{name}` | {s['nodes']} | {s['faces']} | {s['edges']} | {s['euler']} | {bounds(s)} | "
            f"{s['area']:.6f} | {types} | {s['min_angle']:.1f} to {s['max_angle']:.1f} |"
        )
    channel = stats["cylinder_channel.ply"]
    box_walls = channel["types"]["WALL_BOUNDARY"] - CYLINDER_POINTS
    num_box = box_walls + channel["types"]["INFLOW"] + channel["types"]["OUTFLOW"]
    h_min = 2 * np.pi * RADIUS / CYLINDER_POINTS
    return f"""# meshes/

Small real meshes that the examples train on. Every file here is written by `scripts/make_meshes.py`
(fixed seed, deterministic; this README too) and regenerated with

    {COMMAND}

The script refuses to replace existing files without `--overwrite` and writes each file atomically.

## Format

Binary little-endian PLY, as written by `sim.discretize.mesh.save_mesh`: `double x, y, z` per vertex
(planar meshes have z = 0), a `uchar node_type` vertex property with MeshGraphNets' node types
(`sim.discretize.mesh.NodeType`: NORMAL 0, INFLOW 4, OUTFLOW 5, WALL_BOUNDARY 6), and triangles as
`vertex_indices`, counter-clockwise seen from +z (planar) or from outside (the sphere). Every mesh
passes `check_mesh` (manifold, consistently oriented, no degenerate or duplicate faces or vertices).

```python
from sim.discretize.mesh import load_mesh, load_node_type, mesh_to_graph

path = "meshes/cylinder_channel.ply"
graph = mesh_to_graph(load_mesh(path), node_type=load_node_type(path))  # torch_geometric Data
```

## The meshes

{chr(10).join(rows)}

Edges are undirected mesh edges (a graph has both directions: twice as many). Angles are the smallest
and largest interior angles of all triangles.

### `cylinder_channel.ply`: flow past a cylinder

The 2D channel of MeshGraphNets' CylinderFlow data, the geometry of the DFG benchmark (Schaefer & Turek
1996): the box [0, {LENGTH}] x [0, {HEIGHT}] without the disc of radius {RADIUS} around
({CENTRE[0]}, {CENTRE[1]}), the disc replaced by its inscribed {CYLINDER_POINTS}-gon. The target spacing
grows linearly with the distance from the cylinder (slope {GROWTH}) from 2 pi r / {CYLINDER_POINTS} =
{h_min:.4f} to {H_MAX}; the edges are {channel["min_edge"]:.4f} to {channel["max_edge"]:.4f} long.
Points: graded on the box sides,
{CYLINDER_POINTS} equally spaced on the cylinder, interior points drawn with density 1/h^2 and relaxed
for {RELAX_STEPS} steps of DistMesh's spring forces (Persson & Strang 2004); then one Delaunay
triangulation (scipy) without the triangles inside the cylinder. The script checks that no edge
crosses the cylinder and that the area is that of the box less the polygon.

Node types: INFLOW on x = 0 and OUTFLOW on x = {LENGTH} (corners excluded), WALL_BOUNDARY on y = 0 and
y = {HEIGHT} ({box_walls} vertices, with the four corners) and on the cylinder ({CYLINDER_POINTS} vertices),
NORMAL inside. Vertex order: the {num_box} box boundary vertices (counter-clockwise from the origin),
then the cylinder's (vertices {num_box} to {num_box + CYLINDER_POINTS - 1}, counter-clockwise from
angle 0), then the interior. The rule is `classify_boundary(mesh, inflow=..., outflow=...)` with
exact coordinate tests (`x == 0.0`, `x == {LENGTH}`), as in the script.

![The channel: triangles; inflow (blue), outflow (red), wall (black) vertices](cylinder_channel.png)

(`cylinder_channel.png` is drawn by `--preview`, with matplotlib.)

### `square.ply`: the unit square

[0, 1]^2: a {SQUARE_POINTS} x {SQUARE_POINTS} grid whose interior points are moved by up to
{SQUARE_JITTER} of the spacing in x and in y (uniformly at random), Delaunay-triangulated. The
boundary vertices (the grid's, not moved) are WALL_BOUNDARY, the others NORMAL. Vertices are in grid
order (x fastest).

### `icosphere.ply`: the unit sphere

`trimesh.creation.icosphere(subdivisions={ICOSPHERE_SUBDIVISIONS})`: the icosahedron subdivided
{ICOSPHERE_SUBDIVISIONS} times, vertices on the unit sphere. Closed (V - E + F = 2, no boundary), all
nodes NORMAL; the area is below 4 pi = {4 * np.pi:.6f} (flat triangles inside the sphere).
"""


def _preview(mesh: TriangularMesh, node_type: np.ndarray, path: Path, *, overwrite: bool) -> None:
    """A small PNG of the channel: the triangles and the boundary vertices coloured by node type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(8, 2.4), dpi=100)
    ax.triplot(mesh.vertices[:, 0], mesh.vertices[:, 1], mesh.faces, lw=0.3, color="0.3")
    for kind, colour in (
        (NodeType.INFLOW, "tab:blue"),
        (NodeType.OUTFLOW, "tab:red"),
        (NodeType.WALL_BOUNDARY, "k"),
    ):
        at = node_type == kind
        ax.plot(*mesh.vertices[at, :2].T, ".", ms=2.5, color=colour, label=kind.name)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False, fontsize=8)
    fig.tight_layout(pad=0.1)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=16)  # a 16-colour palette: small file
    with atomic_output(path, overwrite=overwrite) as tmp:
        image.save(tmp, format="png", optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "meshes", help="folder to write (default: meshes/)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--preview", action="store_true", help="also draw cylinder_channel.png (matplotlib)")
    args = parser.parse_args(argv)

    names = ["cylinder_channel.ply", "square.ply", "icosphere.ply", "README.md"]
    names += ["cylinder_channel.png"] if args.preview else []
    try:
        for name in names:  # refuse before computing anything
            check_output_path(args.out / name, overwrite=args.overwrite)
    except OutputError as exc:
        print(f"make_meshes: {exc}", file=sys.stderr)
        return 1
    meshes = build_meshes()
    stats = {}
    for name, (mesh, node_type) in meshes.items():
        save_mesh(args.out / name, mesh, node_type=node_type, overwrite=args.overwrite)
        stats[name] = describe(mesh, node_type)
        s = stats[name]
        print(
            f"{name}: {s['nodes']} nodes, {s['faces']} faces, "
            f"angles >= {s['min_angle']:.1f} deg, {s['types']}"
        )
    if args.preview:
        channel, node_type = meshes["cylinder_channel.ply"]
        _preview(channel, node_type, args.out / "cylinder_channel.png", overwrite=args.overwrite)
    with atomic_output(args.out / "README.md", overwrite=args.overwrite) as tmp:
        tmp.write_text(readme(stats))
    print(f"wrote {', '.join(names)} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
