"""The icosahedral hierarchy of sphere meshes, GraphCast's multi-mesh, and the icosahedral rotation group.

Conventions:

* **Orientation.** The icosahedron has a vertex at each pole: vertex 0 is the north pole ``(0, 0, 1)``,
  vertices 1-5 the northern ring at latitude ``atan(1/2)`` (26.57°) and longitudes ``0, 72, ..., 288``,
  vertices 6-10 the southern ring at latitude ``-atan(1/2)`` and longitudes ``36, 108, ..., 324``, vertex 11
  the south pole. GraphCast instead rotates it so that a face centre sits at each pole. Ours keeps the
  five-fold axis on the polar axis, so the dihedral subgroup D5 of the icosahedral rotations (turns by
  multiples of 72° about the pole, and half-turns about the five equatorial two-fold axes at longitudes
  ``18 + 36 k``) also maps every lat-lon grid whose longitude spacing divides 36° onto itself: a sphere
  model can be tested for exact equivariance end to end, grid -> mesh -> grid.
* **Refinement.** Each split cuts every triangle into 4 at its edge midpoints, projected radially to the
  unit sphere. The new vertices are appended after the existing ones, one per edge, in the order of the
  edges sorted by ``(smaller vertex index, larger vertex index)``; so each coarser level's vertices are a
  prefix of the finer level's, and the first 12 are the icosahedron. Face ``f`` of level ``l`` becomes
  faces ``4 f ... 4 f + 3`` of level ``l + 1``: the three corners ``(a, ab, ca), (ab, b, bc), (ca, bc, c)``,
  then the centre ``(ab, bc, ca)``. Faces are counter-clockwise seen from outside.
* **Edges** are ``edge_index [2, E]`` int64 numpy arrays, row 0 senders, row 1 receivers, both directions
  of every undirected edge, no self-loops, no duplicates, sorted by ``(sender, receiver)`` (the order of
  ``torch_geometric.utils.coalesce``). ``torch.from_numpy(edge_index)`` makes it a tensor.
* **Symmetries as permutations.** ``perm = vertex_permutation(R, vertices)`` satisfies
  ``R @ vertices[i] == vertices[perm[i]]``. A scalar field ``f [N]`` rotated by ``R``,
  ``f'(p) = f(R^-1 p)``, is ``f'[perm] = f``, i.e. ``f' = f[np.argsort(perm)]``; an edge ``(s, r)`` goes
  to ``(perm[s], perm[r])``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from sim.discretize.mesh import TriangularMesh

__all__ = [
    "icosahedral_meshes",
    "icosahedral_rotations",
    "icosahedron",
    "mesh_edges",
    "multimesh",
    "multimesh_edges",
    "vertex_permutation",
]


def icosahedron() -> TriangularMesh:
    """The regular icosahedron inscribed in the unit sphere, with a vertex at each pole.

    Returns:
        TriangularMesh with ``vertices [12, 3]`` float64 of unit norm (order: north pole, northern ring
        at longitudes ``72 k``, southern ring at ``36 + 72 k``, south pole) and ``faces [20, 3]`` int64,
        counter-clockwise seen from outside (order: 5 around the north pole, 5 + 5 in the equatorial
        band, 5 around the south pole).
    """
    k = np.arange(5)
    rho, z = 2 / np.sqrt(5), 1 / np.sqrt(5)  # cos and sin of the rings' latitude atan(1/2)
    north_lon = np.deg2rad(72.0 * k)
    north_ring = np.stack(
        [rho * np.cos(north_lon), rho * np.sin(north_lon), np.full(5, z)], axis=-1
    )  # [5, 3]
    # The southern vertex at longitude 36 + 72 k is the antipode of the northern one at 72 (k - 2):
    # negating keeps the mesh exactly symmetric under x -> -x at every level.
    south_ring = -north_ring[(k + 3) % 5]
    vertices = np.concatenate([[[0.0, 0.0, 1.0]], north_ring, south_ring, [[0.0, 0.0, -1.0]]])  # [12, 3]
    north, south = 1 + k, 6 + k  # ring vertex indices
    north_next, south_next = 1 + (k + 1) % 5, 6 + (k + 1) % 5
    # [20, 3]
    faces = np.concatenate(
        [
            np.stack([np.zeros(5, dtype=np.int64), north, north_next], axis=-1),
            np.stack([north, south, north_next], axis=-1),
            np.stack([south, south_next, north_next], axis=-1),
            np.stack([np.full(5, 11), south_next, south], axis=-1),
        ]
    ).astype(np.int64)
    return TriangularMesh(vertices=vertices, faces=faces)


def _split(mesh: TriangularMesh) -> TriangularMesh:
    """One refinement: every triangle into 4, midpoints projected to the unit sphere (see module doc)."""
    vertices, faces = mesh.vertices, mesh.faces
    num_vertices = vertices.shape[0]
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    # [3, F] the edges ab, bc, ca of every face, keyed by (smaller, larger) vertex index
    lo = np.minimum(np.stack([a, b, c]), np.stack([b, c, a]))
    hi = np.maximum(np.stack([a, b, c]), np.stack([b, c, a]))
    keys, inverse = np.unique(lo * num_vertices + hi, return_inverse=True)  # shared edges counted once
    # [num_edges, 3] midpoints on the unit sphere
    mid = vertices[keys // num_vertices] + vertices[keys % num_vertices]
    mid /= np.linalg.norm(mid, axis=-1, keepdims=True)
    ab, bc, ca = (num_vertices + inverse.reshape(3, -1)).astype(np.int64)
    # [F, 4, 3] -> [4F, 3]: the children of face f are rows 4f ... 4f+3
    children = np.stack(
        [
            np.stack([a, ab, ca], axis=-1),
            np.stack([ab, b, bc], axis=-1),
            np.stack([ca, bc, c], axis=-1),
            np.stack([ab, bc, ca], axis=-1),
        ],
        axis=1,
    ).reshape(-1, 3)
    return TriangularMesh(vertices=np.concatenate([vertices, mid]), faces=children)


def _check_splits(splits) -> int:
    if not isinstance(splits, (int, np.integer)) or isinstance(splits, bool) or not 0 <= splits <= 10:
        raise ValueError(f"splits must be an int in [0, 10], got {splits!r}")
    return int(splits)


def icosahedral_meshes(splits: int) -> list[TriangularMesh]:
    """The icosahedral hierarchy, levels ``0 ... splits``.

    Level ``l`` has ``10 * 4^l + 2`` vertices, ``30 * 4^l`` edges and ``20 * 4^l`` faces; its vertices are
    the first ones of every finer level (see the module docstring for the ordering).

    Args:
        splits: number of refinements, 0 (the icosahedron alone) to 10.

    Returns:
        ``splits + 1`` TriangularMesh, coarse to fine, each with unit-norm float64 ``vertices [N_l, 3]``
        and int64 ``faces [F_l, 3]`` counter-clockwise seen from outside.

    Example:
        >>> [m.vertices.shape[0] for m in icosahedral_meshes(2)]
        [12, 42, 162]
    """
    splits = _check_splits(splits)
    meshes = [icosahedron()]
    for _ in range(splits):
        meshes.append(_split(meshes[-1]))
    return meshes


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-D int array by sorting (NumPy 2.4's hash-based ``np.unique`` is ~15x slower)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys


def _directed_edges(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Both directions of every edge of ``faces [F, k]``, as sorted unique keys ``sender * N + receiver``."""
    faces = np.asarray(faces, dtype=np.int64)
    senders = faces.reshape(-1)  # [F * k]
    receivers = np.roll(faces, -1, axis=1).reshape(-1)  # the next corner of the same face
    keys = np.concatenate([senders * num_vertices + receivers, receivers * num_vertices + senders])
    return _sorted_unique(keys)


def _keys_to_edge_index(keys: np.ndarray, num_vertices: int) -> np.ndarray:
    return np.stack([keys // num_vertices, keys % num_vertices]).astype(np.int64)  # [2, E]


def mesh_edges(mesh: TriangularMesh) -> np.ndarray:
    """The edges of a triangular mesh as a graph: both directions of every side of every face.

    Args:
        mesh: any TriangularMesh (closed or with a boundary).

    Returns:
        ``edge_index [2, E]`` int64, row 0 senders, sorted by ``(sender, receiver)``, no duplicates.
        ``E`` is twice the number of undirected edges.
    """
    faces = np.asarray(mesh.faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"mesh faces must have shape [F, 3], got {list(faces.shape)}")
    num_vertices = len(mesh.vertices)
    keys = _directed_edges(faces, num_vertices)
    edge_index = _keys_to_edge_index(keys, num_vertices)
    if (edge_index[0] == edge_index[1]).any():
        raise ValueError("mesh faces repeat a vertex (degenerate triangle); expected 3 distinct corners")
    return edge_index


def multimesh_edges(meshes: Sequence[TriangularMesh]) -> np.ndarray:
    """The union of the edges of a hierarchy of meshes whose vertices are nested prefixes.

    Args:
        meshes: coarse to fine (e.g. :func:`icosahedral_meshes`); each mesh's vertices must be the first
            ones of the next.

    Returns:
        ``edge_index [2, E]`` int64 into the finest mesh's vertices, row 0 senders, both directions, sorted
        by ``(sender, receiver)``, no duplicates.

    Raises:
        ValueError: no meshes, or a mesh's vertices are not a prefix of the next one's.
    """
    if not meshes:
        raise ValueError("multimesh_edges needs at least one mesh, got none")
    for level, (coarse, fine) in enumerate(zip(meshes[:-1], meshes[1:], strict=True)):
        n = len(coarse.vertices)
        if len(fine.vertices) < n or not np.array_equal(fine.vertices[:n], coarse.vertices):
            raise ValueError(
                f"mesh {level}'s {n} vertices are not the first vertices of mesh {level + 1}; expected a "
                "nested hierarchy (coarse vertices a prefix of the fine)"
            )
    num_vertices = len(meshes[-1].vertices)
    keys = _sorted_unique(np.concatenate([_directed_edges(m.faces, num_vertices) for m in meshes]))
    return _keys_to_edge_index(keys, num_vertices)


def multimesh(splits: int) -> tuple[np.ndarray, np.ndarray]:
    """GraphCast's multi-mesh: the finest icosahedral level's vertices with the edges of all levels.

    Since the coarse vertices are a prefix of the fine ones, the edges of level ``l`` index the finest
    vertices directly. No edge appears on two levels (a coarse edge is split in two at the next level).
    To have the finest faces as well (for :func:`~sim.discretize.connectivity.mesh_to_grid_edges`), build
    ``meshes = icosahedral_meshes(splits)`` once and call ``multimesh_edges(meshes)``.

    Args:
        splits: finest level, 0 to 10 (GraphCast: 6).

    Returns:
        ``(vertices, edge_index)``: ``vertices [N, 3]`` float64, unit norm, ``N = 10 * 4^splits + 2``;
        ``edge_index [2, E]`` int64, row 0 senders, both directions, sorted by ``(sender, receiver)``,
        ``E = 2 * sum_l 30 * 4^l`` (M0-M6: 40,962 vertices and 327,660 directed edges).
    """
    meshes = icosahedral_meshes(splits)
    return meshes[-1].vertices, multimesh_edges(meshes)


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthonormal frame [3, 3] (columns) from a unit vector ``a`` and a second, non-parallel ``b``."""
    e2 = b - (a @ b) * a
    e2 /= np.linalg.norm(e2)
    return np.stack([a, e2, np.cross(a, e2)], axis=-1)


def icosahedral_rotations() -> np.ndarray:
    """The 60 rotations of the icosahedral group I, in the orientation of :func:`icosahedron`.

    A rotation of the icosahedron is fixed by where it sends vertex 0 (12 choices) and its neighbour
    vertex 1 (the 5 neighbours of the image): element ``5 v + j`` sends vertex 0 to vertex ``v`` and vertex
    1 to the ``j``-th neighbour of ``v`` (in increasing index). Element 0 is the identity. Elements 0-4
    are the turns about the polar axis by ``0, 72, 144, 216, 288`` degrees (counter-clockwise seen from
    above the north pole); together with the half-turns among the others that fix the polar axis (their
    ``R[2, 2] == -1``) they form the subgroup D5 that also acts on lat-lon grids.

    Returns:
        ``[60, 3, 3]`` float64 rotation matrices (orthogonal to ~1e-16, determinant 1), acting on column
        vectors: ``x' = R @ x``. The set is closed under products and inverses up to rounding.
    """
    ico = icosahedron()
    v = ico.vertices
    edges = mesh_edges(ico)  # sorted by sender: the 5 neighbours of each vertex, increasing
    neighbours = edges[1].reshape(12, 5)  # [12, 5]
    base = _frame(v[0], v[1])
    rotations = [_frame(v[i], v[j]) @ base.T for i in range(12) for j in neighbours[i]]
    return np.stack(rotations)  # [60, 3, 3]


def vertex_permutation(rotation: np.ndarray, vertices: np.ndarray, *, atol: float = 1e-9) -> np.ndarray:
    """The permutation by which an orthogonal map moves a point set onto itself.

    Args:
        rotation: ``[3, 3]`` orthogonal matrix (a rotation, or a reflection), acting as ``x' = R @ x``.
        vertices: ``[N, 3]`` distinct points.
        atol: largest distance between a rotated point and the point it is matched to.

    Returns:
        ``perm [N]`` int64 with ``rotation @ vertices[i] == vertices[perm[i]]`` (to ``atol``). A field
        ``f [N, ...]`` rotated by ``R`` (``f'(p) = f(R^-1 p)``) is ``f'[perm] = f``.

    Raises:
        ValueError: the matrix is not orthogonal, the points are not finite, or the map does not send the
            point set onto itself (a point lands off the set, or two points land on the same one).
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    vertices = np.asarray(vertices, dtype=np.float64)
    if rotation.shape != (3, 3):
        raise ValueError(f"rotation must be a [3, 3] matrix, got shape {list(rotation.shape)}")
    if not np.isfinite(rotation).all() or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9):
        raise ValueError(f"rotation must be orthogonal (R @ R.T == I), got {rotation.tolist()}")
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape [N, 3], got {list(vertices.shape)}")
    bad = np.flatnonzero(~np.isfinite(vertices).all(axis=1))
    if bad.size:
        raise ValueError(f"vertices must be finite; vertex {bad[0]} is {vertices[bad[0]].tolist()}")
    dist, perm = cKDTree(vertices).query(vertices @ rotation.T, k=1)
    worst = int(np.argmax(dist)) if len(dist) else 0
    if len(dist) and dist[worst] > atol:
        raise ValueError(
            f"the rotation does not map the vertices onto themselves: vertex {worst} lands {dist[worst]:.3g} "
            f"from the nearest vertex (atol {atol:g})"
        )
    counts = np.bincount(perm, minlength=len(vertices))
    if (counts > 1).any():
        raise ValueError(
            f"the rotation is not a permutation of the vertices: {int((counts > 1).sum())} vertices are hit "
            "twice (duplicate points?)"
        )
    return perm.astype(np.int64)
