"""Triangular meshes: the shared descriptor, loading through trimesh, and meshes as graphs.

Conventions (shared with the mesh models and the files in ``meshes/``):

* A mesh is a :class:`TriangularMesh` of plain arrays: ``vertices [N, 3]`` float64 and ``faces [F, 3]``
  int64. Planar meshes are meshes whose z coordinates are all exactly 0; their faces must be
  counter-clockwise seen from +z. A closed surface must have its faces counter-clockwise seen from
  outside (positive enclosed volume). Every mesh used as a graph is a valid manifold (see
  :func:`check_mesh`); nothing is repaired unless asked.
* A graph (:func:`mesh_to_graph`) has ``edge_index [2, E]`` with row 0 the senders and row 1 the
  receivers, both directions of every mesh edge, sorted by sender and then receiver (the order of
  ``torch_geometric.utils.coalesce``). Relative positions follow MeshGraphNets' ``relative_mesh_pos`` and
  ``torch_geometric.transforms.Cartesian``: ``edge_vec = pos[sender] - pos[receiver]``.
* Node types are MeshGraphNets' (:class:`NodeType`, same names and values), so the ``node_type`` arrays of
  its data sets can be used as they are; one-hot encodings have :data:`NUM_NODE_TYPES` columns.
* Node types live in the mesh file: :func:`save_mesh` writes a binary PLY with float64 coordinates and a
  ``uchar node_type`` vertex property, :func:`load_node_type` reads it back.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sim.io import atomic_output

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "MESH_FORMATS",
    "NUM_NODE_TYPES",
    "MeshError",
    "NodeType",
    "TriangularMesh",
    "check_mesh",
    "classify_boundary",
    "face_angles",
    "load_mesh",
    "load_node_type",
    "mesh_to_graph",
    "repair_mesh",
    "save_mesh",
]

MESH_FORMATS = ("obj", "ply", "stl", "off")
"""File suffixes :func:`load_mesh` reads (case-insensitive)."""

NUM_NODE_TYPES = 9
"""Width of a one-hot node type (MeshGraphNets' ``NodeType.SIZE``; the values 7 and 8 are unused)."""

# A face is degenerate (zero-area) when its height is below this fraction of its longest edge.
_DEGENERATE_RTOL = 1e-8


class TriangularMesh(NamedTuple):
    """A triangular mesh as two plain arrays (the GraphCast convention).

    Attributes:
        vertices: ``[num_vertices, 3]`` float64 positions (planar meshes have z = 0).
        faces: ``[num_faces, 3]`` int64 vertex indices, counter-clockwise seen from outside the surface
            (for planar meshes: seen from +z).
    """

    vertices: np.ndarray
    faces: np.ndarray


class MeshError(ValueError):
    """A mesh file or array that would not give a correct graph: one line naming the mesh and the problem."""


class NodeType(enum.IntEnum):
    """Node types with MeshGraphNets' names and values (``common.NodeType`` in deepmind-research).

    ``NORMAL`` is an interior (free) node; fluid meshes use ``INFLOW``, ``OUTFLOW`` and ``WALL_BOUNDARY``
    (no-slip walls and obstacles such as the cylinder), cloth and solid meshes ``HANDLE``, ``OBSTACLE``.
    """

    NORMAL = 0
    OBSTACLE = 1
    AIRFOIL = 2
    HANDLE = 3
    INFLOW = 4
    OUTFLOW = 5
    WALL_BOUNDARY = 6


_NODE_TYPE_VALUES = np.array([int(t) for t in NodeType])


# --------------------------------------------------------------------------------------------------
# Files


def load_mesh(path: str | os.PathLike, *, repair: bool = False) -> TriangularMesh:
    """Read a triangle mesh with trimesh, keeping the file's vertex and face order, and validate it.

    trimesh reads with ``process=False`` (no merging, no reordering); OBJ files are read with
    ``maintain_order=True`` and all their materials and groups as one mesh. Polygons are split into
    triangles by trimesh. STL stores every triangle with its own three corners: their exact duplicates
    are merged (vertices numbered in order of first appearance, faces kept in file order), so the
    surface is connected; several solids in one STL file are joined before merging.

    Args:
        path: a ``.obj``, ``.ply``, ``.stl`` or ``.off`` file.
        repair: fix what can be fixed (:func:`repair_mesh`) instead of raising. Repairing can renumber
            vertices, so node types stored in the file (:func:`load_node_type`) only fit an unrepaired mesh.

    Returns:
        The mesh: ``vertices [N, 3]`` float64, ``faces [F, 3]`` int64.

    Raises:
        FileNotFoundError: no such file.
        MeshError: an unsupported suffix, an empty or unreadable file, several meshes in one non-STL file,
            or a mesh that fails :func:`check_mesh`; one line naming the file.
    """
    import trimesh  # lazy: 0.7 s, only for files and repairs

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in MESH_FORMATS:
        raise MeshError(
            f"{path}: unsupported mesh format {path.suffix!r}; expected one of .obj, .ply, .stl, .off"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such mesh file")
    if path.stat().st_size == 0:
        raise MeshError(f"{path}: empty file")
    options = (
        {"maintain_order": True, "group_material": False, "skip_materials": True} if fmt == "obj" else {}
    )
    try:
        scene = trimesh.load_scene(path, file_type=fmt, process=False, **options)
    except Exception as exc:  # trimesh's parsers raise many kinds; all mean "not a readable mesh"
        raise MeshError(f"{path}: trimesh cannot read it as {fmt.upper()}: {exc}") from exc
    geometries = list(scene.geometry.values())
    if not geometries:
        raise MeshError(f"{path}: no mesh in the file (no faces)")
    for geometry in geometries:
        if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
            raise MeshError(
                f"{path}: holds a {type(geometry).__name__} without faces; expected a triangle mesh"
            )
    if len(geometries) > 1 and fmt != "stl":
        names = ", ".join(sorted(scene.geometry))
        raise MeshError(
            f"{path}: {len(geometries)} separate meshes ({names}); expected one (join them, merging shared "
            "vertices, before loading)"
        )
    # Several STL solids: their triangles in file order (each triangle has its own corners anyway).
    vertices = np.concatenate([np.asarray(g.vertices, dtype=np.float64) for g in geometries])
    offsets = np.cumsum([0] + [len(g.vertices) for g in geometries[:-1]])
    faces = np.concatenate(
        [np.asarray(g.faces, dtype=np.int64) + o for g, o in zip(geometries, offsets, strict=True)]
    )
    if fmt == "stl":
        vertices, faces = _merge_duplicate_vertices(vertices, faces)
    mesh = TriangularMesh(vertices, faces)
    if repair:
        return repair_mesh(mesh, name=str(path))
    check_mesh(mesh, name=str(path))
    return mesh


def save_mesh(
    path: str | os.PathLike,
    mesh: TriangularMesh,
    *,
    node_type: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a valid mesh as a binary little-endian PLY: float64 ``x, y, z``, an optional ``uchar node_type``
    vertex property, and triangles as ``vertex_indices`` lists; atomically (:func:`sim.io.atomic_output`).

    The file reads back exactly with :func:`load_mesh` and :func:`load_node_type` (and with any PLY reader:
    trimesh, MeshLab, ParaView). trimesh's own PLY export stores float32 coordinates and cannot read its
    vertex properties back, hence this writer.

    Args:
        path: the ``.ply`` file to write.
        mesh: a mesh that passes :func:`check_mesh`.
        node_type: ``[N]`` integer :class:`NodeType` values per vertex, or None for no such property.
        overwrite: replace an existing file.

    Returns:
        ``path`` as a Path.

    Raises:
        MeshError: the suffix is not ``.ply``, the mesh is invalid, or ``node_type`` does not fit it.
        sim.io.OutputError: the folder is missing, or the file exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.suffix.lower() != ".ply":
        raise MeshError(f"{path}: save_mesh writes PLY only; expected a .ply path, got {path.suffix!r}")
    check_mesh(mesh, name=str(path))
    n = len(mesh.vertices)
    if n >= 2**31:
        raise MeshError(f"{path}: {n} vertices do not fit the PLY int32 vertex indices")
    fields = [("x", "<f8"), ("y", "<f8"), ("z", "<f8")]
    if node_type is not None:
        node_type = _check_node_type(node_type, n, name=str(path))
        fields.append(("node_type", "u1"))
    vertex = np.empty(n, dtype=np.dtype(fields))  # [N] packed records
    vertex["x"], vertex["y"], vertex["z"] = np.asarray(mesh.vertices, dtype=np.float64).T
    if node_type is not None:
        vertex["node_type"] = node_type
    face = np.empty(len(mesh.faces), dtype=np.dtype([("count", "u1"), ("vertex_indices", "<i4", (3,))]))
    face["count"] = 3
    face["vertex_indices"] = mesh.faces
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment sim.discretize.mesh.save_mesh: float64 vertices, MeshGraphNets node types",
        f"element vertex {n}",
        "property double x",
        "property double y",
        "property double z",
        *(["property uchar node_type"] if node_type is not None else []),
        f"element face {len(mesh.faces)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(("\n".join(header) + "\n").encode("ascii"))
            fh.write(vertex.tobytes())
            fh.write(face.tobytes())
    return path


def load_node_type(path: str | os.PathLike) -> np.ndarray:
    """Read the per-vertex ``node_type`` property of a PLY file (as written by :func:`save_mesh`).

    The values line up with the vertices of ``load_mesh(path)`` (without ``repair``).

    Args:
        path: a ``.ply`` file with a ``node_type`` vertex property.

    Returns:
        ``[N]`` int64 :class:`NodeType` values.

    Raises:
        FileNotFoundError: no such file.
        MeshError: not a PLY file, no ``node_type`` property, or values that are not node types.
    """
    import trimesh  # lazy: 0.7 s, only for files and repairs

    path = Path(path)
    if path.suffix.lower() != ".ply":
        raise MeshError(f"{path}: node types are stored in PLY files only; expected a .ply path")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such mesh file")
    try:
        with open(path, "rb") as fh:
            loaded = trimesh.exchange.ply.load_ply(fh)
        vertex = loaded["metadata"]["_ply_raw"]["vertex"]  # the parsed vertex element, all its properties
    except Exception as exc:
        raise MeshError(f"{path}: trimesh cannot read it as PLY: {exc}") from exc
    if "node_type" not in vertex["properties"]:
        names = ", ".join(vertex["properties"])
        raise MeshError(f"{path}: no 'node_type' vertex property (it has: {names})")
    values = np.asarray(vertex["data"]["node_type"]).reshape(-1)  # ASCII PLY gives [N, 1]
    return _check_node_type(values, int(vertex["length"]), name=str(path))


# --------------------------------------------------------------------------------------------------
# Validation and repair


class _Edges(NamedTuple):
    """The edge table of a valid mesh (internal)."""

    edges: np.ndarray  # [M, 2] int64 unique undirected edges (i < j), sorted by (i, j)
    half_edge: np.ndarray  # [3F] int64: undirected edge of half-edge 3f + k (corner k -> corner k + 1)
    count: np.ndarray  # [M] int64 faces per edge (1: boundary, 2: interior)


def check_mesh(mesh: TriangularMesh, *, name: str = "mesh") -> None:
    """Raise unless ``mesh`` gives a correct graph.

    Checked, in this order: array shapes and dtypes; at least one face; finite coordinates; face indices
    in range; degenerate faces (height below ``1e-8`` times the longest edge, which includes faces that
    repeat a vertex); duplicate faces (the same three vertices in any order); unreferenced vertices;
    duplicate vertices (identical coordinates: the surface is cut there, as in STL files or OBJ texture
    seams); non-manifold edges (shared by more than two faces); inconsistent orientation (an edge
    traversed in the same direction by both its faces, including non-orientable surfaces); non-manifold
    vertices (faces around a vertex that form separate fans); for a planar mesh (all z = 0) faces that
    are not counter-clockwise seen from +z; for a closed surface, a negative enclosed volume (faces
    clockwise seen from outside).

    Args:
        mesh: ``vertices [N, 3]`` float, ``faces [F, 3]`` integer.
        name: what to call the mesh in messages (the file name, for meshes read from files).

    Raises:
        MeshError: one line naming the mesh, the problem, the first offending face/vertex and whether
            :func:`repair_mesh` (``repair=True``) fixes it.
    """
    _validate(mesh, name)


def repair_mesh(mesh: TriangularMesh, *, name: str = "mesh") -> TriangularMesh:
    """Repair what has one right repair, through trimesh, then validate the result with :func:`check_mesh`.

    In order: merge vertices with identical coordinates (numbered in order of first appearance); drop
    degenerate faces, then duplicate faces (keeping the first); drop unreferenced vertices (the others
    keep their order); make the winding consistent in each connected part
    (``trimesh.repair.fix_winding``, a Python loop over faces inside trimesh); then flip the planar parts
    that are clockwise seen from +z, or turn closed surfaces outward
    (``trimesh.repair.fix_inversion(multibody=True)``). Not repaired: bad shapes, NaN/Inf coordinates,
    indices out of range, non-manifold edges or vertices, non-orientable surfaces, folded planar meshes.

    Args:
        mesh: ``vertices [N, 3]`` float, ``faces [F, 3]`` integer.
        name: what to call the mesh in messages.

    Returns:
        The repaired mesh, ``vertices [N', 3]`` float64 and ``faces [F', 3]`` int64 with ``N' <= N``,
        ``F' <= F``.

    Raises:
        MeshError: the mesh cannot be repaired; one line naming ``name`` (``"{name} (after repair)"`` for
            problems found in the repaired mesh) and the problem.
    """
    import trimesh  # lazy: 0.7 s, only for files and repairs

    vertices, faces = _check_arrays(mesh, name)
    vertices, faces = _merge_duplicate_vertices(vertices, faces)
    tm = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    tm.update_faces(~_degenerate(vertices, faces))
    faces = np.asarray(tm.faces, dtype=np.int64)
    first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)[1]
    keep = np.zeros(len(faces), dtype=bool)
    keep[first] = True
    tm.update_faces(keep)
    tm.remove_unreferenced_vertices()
    if len(tm.faces) == 0:
        raise MeshError(f"{name}: no faces left after removing degenerate and duplicate faces")
    trimesh.repair.fix_winding(tm)
    vertices = np.asarray(tm.vertices, dtype=np.float64)
    if np.any(vertices[:, 2]):
        trimesh.repair.fix_inversion(tm, multibody=True)
        faces = np.asarray(tm.faces, dtype=np.int64)
    else:  # planar: flip the connected parts that are clockwise seen from +z (a folded part stays folded)
        faces = np.asarray(tm.faces, dtype=np.int64).copy()
        part = trimesh.graph.connected_component_labels(tm.face_adjacency, node_count=len(faces))  # [F]
        clockwise = np.bincount(part, weights=_signed_double_area_z(vertices, faces)) < 0  # per part
        flip = clockwise[part]
        faces[flip] = faces[flip][:, ::-1]
    repaired = TriangularMesh(vertices.copy(), faces.copy())
    check_mesh(repaired, name=f"{name} (after repair)")
    return repaired


def _check_arrays(mesh: TriangularMesh, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Shapes, dtypes, emptiness, finiteness and index range; returns (vertices float64, faces int64)."""
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.dtype.kind != "f":
        raise MeshError(
            f"{name}: vertices must be a float array [N, 3], got {vertices.dtype} {list(vertices.shape)}"
        )
    if faces.ndim != 2 or faces.shape[1] != 3 or (faces.dtype.kind not in "iu" and faces.size):
        raise MeshError(
            f"{name}: faces must be an integer array [F, 3], got {faces.dtype} {list(faces.shape)}"
        )
    if len(faces) == 0:
        raise MeshError(f"{name}: no faces ({len(vertices)} vertices); expected a triangle mesh")
    bad = np.flatnonzero(~np.isfinite(vertices).all(axis=1))
    if len(bad):
        raise MeshError(
            f"{name}: {len(bad)} vertices with NaN/Inf coordinates, first vertex {bad[0]} at "
            f"{vertices[bad[0]].tolist()}"
        )
    faces = faces.astype(np.int64)
    out = np.flatnonzero(((faces < 0) | (faces >= len(vertices))).any(axis=1))
    if len(out):
        raise MeshError(
            f"{name}: {len(out)} faces index vertices outside 0..{len(vertices) - 1}, first face {out[0]} "
            f"{faces[out[0]].tolist()}"
        )
    return vertices.astype(np.float64), faces


def _validate(mesh: TriangularMesh, name: str) -> _Edges:
    """:func:`check_mesh`, returning the edge table that the graph needs."""
    vertices, faces = _check_arrays(mesh, name)
    n = len(vertices)
    degenerate = np.flatnonzero(_degenerate(vertices, faces))
    if len(degenerate):
        f = degenerate[0]
        raise MeshError(
            f"{name}: {len(degenerate)} degenerate (zero-area) faces, first face {f} {faces[f].tolist()}; "
            "repair=True removes them"
        )
    ordered = np.sort(faces, axis=1)  # [F, 3]
    rows = (ordered[:, 0] * n + ordered[:, 1]) * n + ordered[:, 2] if n < 2**21 else ordered  # int64-safe
    _, first, inverse, counts = np.unique(
        rows, axis=0 if rows.ndim == 2 else None, return_index=True, return_inverse=True, return_counts=True
    )
    duplicate = np.flatnonzero(counts[inverse.reshape(-1)] > 1)
    if len(duplicate):
        f = duplicate[np.flatnonzero(duplicate != first[inverse.reshape(-1)[duplicate]])[0]]
        raise MeshError(
            f"{name}: {len(faces) - len(counts)} duplicate faces, first face {f} {faces[f].tolist()} repeats "
            f"face {first[inverse.reshape(-1)[f]]}; repair=True removes them"
        )
    used = np.zeros(n, dtype=bool)
    used[faces.reshape(-1)] = True
    unused = np.flatnonzero(~used)
    if len(unused):
        raise MeshError(
            f"{name}: {len(unused)} unreferenced vertices (in no face), first vertex {unused[0]}; "
            "repair=True removes them"
        )
    _, first, inverse, counts = np.unique(
        vertices + 0.0, axis=0, return_index=True, return_inverse=True, return_counts=True
    )  # + 0.0 turns -0.0 into 0.0
    inverse = inverse.reshape(-1)
    twin = np.flatnonzero(first[inverse] != np.arange(n))
    if len(twin):
        raise MeshError(
            f"{name}: {n - len(counts)} duplicate vertices (same coordinates), first vertex {twin[0]} "
            f"repeats vertex {first[inverse[twin[0]]]} at {vertices[twin[0]].tolist()} (the surface is cut "
            "there); repair=True merges them"
        )

    # Half-edge 3f + k runs from faces[f, k] to faces[f, (k + 1) % 3]; group the half-edges by edge.
    tail = faces.reshape(-1)  # [3F]
    head = faces[:, [1, 2, 0]].reshape(-1)  # [3F]
    keys = np.minimum(tail, head) * n + np.maximum(tail, head)  # [3F] undirected edge i < j as i n + j
    order = np.argsort(keys, kind="stable")  # [3F] half-edges grouped by edge, edges by (i, j)
    first = np.ones(len(order), dtype=bool)
    first[1:] = keys[order[1:]] != keys[order[:-1]]
    starts = np.flatnonzero(first)  # [M] first half-edge of each edge in `order`
    count = np.diff(np.append(starts, len(order)))  # [M] faces per edge
    half_edge = np.empty(len(order), dtype=np.int64)
    half_edge[order] = np.cumsum(first) - 1  # [3F] edge of each half-edge
    edges = np.stack([keys[order[starts]] // n, keys[order[starts]] % n], axis=1)  # [M, 2]
    crowded = np.flatnonzero(count > 2)
    if len(crowded):
        e = crowded[0]
        raise MeshError(
            f"{name}: {len(crowded)} non-manifold edges (in more than two faces), first edge "
            f"{edges[e].tolist()} in {count[e]} faces"
        )
    interior = np.flatnonzero(count == 2)  # [I]
    h1, h2 = order[starts[interior]], order[starts[interior] + 1]  # [I] the two half-edges of each
    same = np.flatnonzero(tail[h1] == tail[h2])
    if len(same):
        raise MeshError(
            f"{name}: inconsistent orientation: {len(same)} edges are traversed in the same direction by "
            f"both their faces, first edge {edges[interior[same[0]]].tolist()}; repair=True fixes the "
            "winding (if the surface is orientable)"
        )
    fans = _fans_per_vertex(faces, h1, h2, n)
    pinched = np.flatnonzero(fans > 1)
    if len(pinched):
        v = pinched[0]
        raise MeshError(
            f"{name}: {len(pinched)} non-manifold vertices (their faces form separate fans), first vertex "
            f"{v} with {fans[v]} fans at {vertices[v].tolist()}"
        )
    if not np.any(vertices[:, 2]):
        clockwise = np.flatnonzero(_signed_double_area_z(vertices, faces) < 0)
        if len(clockwise) == len(faces):
            raise MeshError(
                f"{name}: planar mesh (z = 0) with clockwise faces seen from +z; expected counter-clockwise "
                "(repair=True flips them)"
            )
        if len(clockwise):
            raise MeshError(
                f"{name}: planar mesh (z = 0) folds over itself: {len(clockwise)} of {len(faces)} faces are "
                f"clockwise seen from +z, first face {clockwise[0]} {faces[clockwise[0]].tolist()}"
            )
    elif np.all(count == 2):
        a, b, c = (vertices[faces[:, k]] for k in range(3))
        volume = np.einsum("fi,fi->", a, np.cross(b, c)) / 6
        if volume < 0:
            raise MeshError(
                f"{name}: closed surface with faces clockwise seen from outside (enclosed volume "
                f"{volume:.6g} < 0); expected counter-clockwise (repair=True flips them)"
            )
    return _Edges(edges=edges, half_edge=half_edge, count=count)


def _degenerate(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``[F]`` bool: faces whose height is below ``_DEGENERATE_RTOL`` times their longest edge."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))  # [F, 3] each
    double_area = np.linalg.norm(np.cross(b - a, c - a), axis=1)  # [F]
    longest = np.max(
        [np.sum((b - a) ** 2, axis=1), np.sum((c - b) ** 2, axis=1), np.sum((a - c) ** 2, axis=1)], axis=0
    )  # [F], squared
    return double_area <= _DEGENERATE_RTOL * longest


def _signed_double_area_z(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``[F]``: twice the signed area of each face projected on the xy-plane (> 0: counter-clockwise)."""
    a, b, c = (vertices[faces[:, k], :2] for k in range(3))  # [F, 2] each
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def _fans_per_vertex(faces: np.ndarray, h1: np.ndarray, h2: np.ndarray, n: int) -> np.ndarray:
    """``[N]`` int: number of fans (groups of faces joined through edges at the vertex) around each vertex.

    Corners ``3f + k`` (vertex ``faces[f, k]`` in face ``f``) are joined when their faces share an edge at
    that vertex; a manifold vertex has all its corners in one connected component. ``h1, h2 [I]`` are the
    two half-edges of every interior edge, in opposite directions (half-edge ``h`` runs from corner ``h``
    to corner ``next(h)``).
    """
    num_corners = 3 * len(faces)
    nxt = lambda h: 3 * (h // 3) + (h % 3 + 1) % 3  # noqa: E731
    # h1 runs a -> b, h2 runs b -> a: corners (h1, next(h2)) are at a, (next(h1), h2) at b.
    rows, cols = np.concatenate([h1, nxt(h1)]), np.concatenate([nxt(h2), h2])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_corners, num_corners))
    _, label = connected_components(graph, directed=False)  # [3F]
    pairs = np.unique(faces.reshape(-1) * num_corners + label)  # unique (vertex, component)
    return np.bincount(pairs // num_corners, minlength=n)


def _merge_duplicate_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices with identical coordinates (-0.0 == 0.0), numbered in order of first appearance.

    Returns:
        ``vertices [N', 3]`` float64 and ``faces [F, 3]`` int64 (same faces, renumbered).
    """
    _, first, inverse = np.unique(vertices + 0.0, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # unique rows in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return vertices[first[order]].astype(np.float64), rank[inverse.reshape(-1)][faces].astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Geometry and graphs


def face_angles(mesh: TriangularMesh) -> np.ndarray:
    """Interior angle of every face at every corner.

    Args:
        mesh: ``vertices [N, 3]``, ``faces [F, 3]``.

    Returns:
        ``[F, 3]`` float64 radians; entry ``[f, k]`` is the angle at vertex ``faces[f, k]``.
    """
    corners = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)]  # [F, 3, 3]
    u = np.roll(corners, -1, axis=1) - corners  # [F, 3, 3] to the next corner
    v = np.roll(corners, 1, axis=1) - corners  # [F, 3, 3] to the previous corner
    return np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.einsum("fki,fki->fk", u, v))


def classify_boundary(
    mesh: TriangularMesh,
    *,
    inflow: Callable[[np.ndarray], np.ndarray] | None = None,
    outflow: Callable[[np.ndarray], np.ndarray] | None = None,
    wall: NodeType = NodeType.WALL_BOUNDARY,
    name: str = "mesh",
) -> np.ndarray:
    """Node types from geometric rules: interior vertices are ``NORMAL``; a boundary vertex is ``INFLOW``
    where ``inflow`` holds, ``OUTFLOW`` where ``outflow`` holds, ``wall`` otherwise.

    Example (the channel in ``meshes/``: corners belong to the no-slip walls)::

        node_type = classify_boundary(
            mesh,
            inflow=lambda p: (p[:, 0] == 0.0) & (p[:, 1] > 0.0) & (p[:, 1] < 0.41),
            outflow=lambda p: (p[:, 0] == 1.6) & (p[:, 1] > 0.0) & (p[:, 1] < 0.41),
        )

    Args:
        mesh: a valid mesh, ``vertices [N, 3]``, ``faces [F, 3]``.
        inflow: maps boundary positions ``[K, 3]`` to ``[K]`` bool; None: no inflow.
        outflow: the same for outflow.
        wall: the type of the remaining boundary vertices.
        name: what to call the mesh in messages.

    Returns:
        ``[N]`` int64 node types.

    Raises:
        MeshError: the mesh is invalid, a rule returns the wrong shape, or a vertex is both inflow and
            outflow.
    """
    table = _validate(mesh, name)
    boundary = _boundary_vertices(table, len(mesh.vertices))
    node_type = np.full(len(mesh.vertices), int(NodeType.NORMAL), dtype=np.int64)
    node_type[boundary] = int(NodeType(wall))
    positions = np.asarray(mesh.vertices, dtype=np.float64)[boundary]  # [K, 3]
    hits = {}
    for kind, rule in ((NodeType.INFLOW, inflow), (NodeType.OUTFLOW, outflow)):
        if rule is None:
            continue
        hit = np.asarray(rule(positions))
        if hit.shape != (len(positions),) or hit.dtype != bool:
            raise MeshError(
                f"{name}: the {kind.name.lower()} rule must map [K, 3] positions to [K] bool, got "
                f"{hit.dtype} {list(hit.shape)} for K = {len(positions)}"
            )
        hits[kind] = hit
    if len(hits) == 2 and np.any(hits[NodeType.INFLOW] & hits[NodeType.OUTFLOW]):
        both = np.flatnonzero(boundary)[hits[NodeType.INFLOW] & hits[NodeType.OUTFLOW]]
        raise MeshError(
            f"{name}: {len(both)} boundary vertices are both inflow and outflow, first vertex {both[0]}"
        )
    for kind, hit in hits.items():
        node_type[np.flatnonzero(boundary)[hit]] = int(kind)
    return node_type


def mesh_to_graph(
    mesh: TriangularMesh,
    *,
    node_type: np.ndarray | None = None,
    dtype: torch.dtype = torch.float32,
    name: str = "mesh",
) -> Data:
    """A validated mesh as a torch_geometric graph with the geometric features mesh GNNs and solvers use.

    With ``E = 2 M`` directed edges (both directions of the ``M`` mesh edges), the graph has:

    * ``pos [N, 3]`` vertex positions (always three columns; planar meshes have ``pos[:, 2] == 0``, use
      ``pos[:, :2]`` for MeshGraphNets' 2D ``mesh_pos``).
    * ``edge_index [2, E]`` int64, row 0 senders, row 1 receivers, sorted by sender then receiver
      (coalesced and undirected in torch_geometric's sense).
    * ``edge_vec [E, 3] = pos[sender] - pos[receiver]`` (MeshGraphNets' ``relative_mesh_pos``, PyG's
      ``Cartesian`` without normalization) and ``edge_len [E, 1]`` its length.
    * ``area [N]`` barycentric dual areas: a third of the area of every incident face, so
      ``area.sum()`` is the surface area (the lumped P1 mass matrix).
    * ``cot_weight [E]`` cotangent weights ``w_ij = (cot a_ij + cot b_ij) / 2``, with ``a_ij, b_ij`` the
      angles opposite edge ``ij`` in its two faces (one term on boundary edges); equal in both
      directions. ``L = D - W`` (``torch_geometric.utils.get_laplacian(edge_index, cot_weight)``) is the
      P1 finite-element stiffness matrix: symmetric positive semidefinite, ``f^T L f = integral of
      |grad f|^2`` for the piecewise-linear ``f``, ``L 1 = 0``, and ``-(L f) / area`` approximates the
      Laplace-Beltrami operator. Weights can be negative on non-Delaunay edges.
    * ``boundary [N]`` bool: vertices on an edge with a single face.
    * ``node_type [N]`` int64 :class:`NodeType` values: ``node_type`` if given, otherwise ``NORMAL`` in the
      interior and ``WALL_BOUNDARY`` on the boundary.
    * ``face [3, F]`` int64 (torch_geometric's layout: ``mesh.faces.T``), and ``num_nodes``.

    Args:
        mesh: ``vertices [N, 3]``, ``faces [F, 3]``; must pass :func:`check_mesh`.
        node_type: ``[N]`` integer node types, or None to derive them from the boundary.
        dtype: floating dtype of ``pos``, ``edge_vec``, ``edge_len``, ``area`` and ``cot_weight``
            (computed in float64).
        name: what to call the mesh in messages.

    Returns:
        The graph as ``torch_geometric.data.Data``.

    Raises:
        MeshError: the mesh fails :func:`check_mesh`, or ``node_type`` does not fit it.
    """
    from torch_geometric.data import Data  # here, not at the top: importing it takes seconds

    table = _validate(mesh, name)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)  # [N, 3]
    faces = np.asarray(mesh.faces, dtype=np.int64)  # [F, 3]
    n, m = len(vertices), len(table.edges)
    boundary = _boundary_vertices(table, n)
    if node_type is None:
        node_type = np.where(boundary, int(NodeType.WALL_BOUNDARY), int(NodeType.NORMAL))
    else:
        node_type = _check_node_type(node_type, n, name=name)

    # Undirected edges are sorted by (i, j) with i < j; the directed edges sorted by (sender, receiver).
    senders = np.concatenate([table.edges[:, 0], table.edges[:, 1]])  # [E]
    receivers = np.concatenate([table.edges[:, 1], table.edges[:, 0]])  # [E]
    order = np.lexsort((receivers, senders))
    senders, receivers = senders[order], receivers[order]
    undirected = np.concatenate([np.arange(m), np.arange(m)])[order]  # [E] mesh edge of each directed edge
    edge_vec = vertices[senders] - vertices[receivers]  # [E, 3]

    corners = vertices[faces]  # [F, 3, 3]
    # Half-edge k of face f runs from corner k to corner k + 1; the angle opposite it is at corner k + 2.
    opposite = np.roll(corners, -2, axis=1)  # [F, 3, 3] corner k + 2 for half-edge k
    u = corners - opposite  # [F, 3, 3] opposite corner -> tail
    v = np.roll(corners, -1, axis=1) - opposite  # [F, 3, 3] opposite corner -> head
    cot = np.einsum("fki,fki->fk", u, v) / np.linalg.norm(np.cross(u, v), axis=-1)  # [F, 3]
    cot_weight = np.bincount(table.half_edge, weights=cot.reshape(-1), minlength=m) / 2  # [M]

    double_area = np.linalg.norm(
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1
    )
    area = np.bincount(faces.reshape(-1), weights=np.repeat(double_area / 6, 3), minlength=n)  # [N]

    return Data(
        pos=torch.from_numpy(vertices).to(dtype),
        edge_index=torch.from_numpy(np.stack([senders, receivers])),
        edge_vec=torch.from_numpy(edge_vec).to(dtype),
        edge_len=torch.from_numpy(np.linalg.norm(edge_vec, axis=1, keepdims=True)).to(dtype),
        area=torch.from_numpy(area).to(dtype),
        cot_weight=torch.from_numpy(cot_weight[undirected]).to(dtype),
        boundary=torch.from_numpy(boundary),
        node_type=torch.from_numpy(np.asarray(node_type, dtype=np.int64)),
        face=torch.from_numpy(np.ascontiguousarray(faces.T)),
        num_nodes=n,
    )


def _boundary_vertices(table: _Edges, n: int) -> np.ndarray:
    """``[N]`` bool: vertices on an edge that has a single face."""
    boundary = np.zeros(n, dtype=bool)
    boundary[table.edges[table.count == 1].reshape(-1)] = True
    return boundary


def _check_node_type(node_type, n: int, *, name: str) -> np.ndarray:
    """``[N]`` int64 node types, or a MeshError naming the shape or the values that are not node types."""
    values = np.asarray(node_type)
    if values.shape != (n,) or (values.dtype.kind not in "iu" and values.size):
        raise MeshError(
            f"{name}: node_type must be an integer array [{n}], got {values.dtype} {list(values.shape)}"
        )
    bad = np.setdiff1d(values, _NODE_TYPE_VALUES)
    if len(bad):
        raise MeshError(
            f"{name}: node_type values {bad.tolist()} are not NodeType values {_NODE_TYPE_VALUES.tolist()}"
        )
    return values.astype(np.int64)
