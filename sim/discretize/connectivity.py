"""Connectivity between points on the sphere: grid -> mesh (radius query), mesh -> grid (containing
triangle with barycentric weights), and k nearest neighbours. All searches use kd-trees (no O(N^2) step).

Conventions:

* Inputs are points ``[G, 3]`` float (a :class:`~sim.discretize.latlon.LatLonGrid` is accepted where grid
  points are expected and means ``grid.xyz().reshape(-1, 3)``, flattened ``g = i_lat * nlon + i_lon``).
* Outputs are int64 numpy arrays ``edge_index [2, E]``, row 0 senders, row 1 receivers (GraphCast builds
  its graphs in numpy too); ``torch.from_numpy`` makes them tensors.
* Distances are chords (straight lines in 3-D), as GraphCast's radius query.
* Edge order: radius edges sorted by ``(sender, receiver)``; mesh -> grid and k-NN edges grouped by
  receiver (``3`` or ``k`` consecutive edges per receiver, receivers ascending), so per-receiver values
  reshape to ``[G, 3]`` / ``[T, k]``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from sim.discretize.latlon import LatLonGrid
from sim.discretize.mesh import TriangularMesh

__all__ = [
    "grid_to_mesh_edges",
    "grid_to_mesh_radius",
    "knn_edges",
    "max_edge_length",
    "mesh_to_grid_edges",
]

# Candidate faces tried per grid point, in turn, before the rare leftovers are tested against every face.
_CANDIDATES = (4, 16, 64)
# Barycentric coordinates down to -_INSIDE_TOL count as inside (points on an edge belong to both faces).
_INSIDE_TOL = 1e-12
# Work arrays of the containment test hold about this many (point, candidate) pairs at a time.
_PAIRS_PER_CHUNK = 1 << 20


def _points(name: str, x) -> np.ndarray:
    """``[P, 3]`` float64, finite, from an array or a LatLonGrid (flattened row-major)."""
    if isinstance(x, LatLonGrid):
        return x.xyz().reshape(-1, 3)
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name} must have shape [num_points, 3], got {list(a.shape)}")
    finite = np.isfinite(a).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} must be finite; point {i} is {a[i].tolist()}")
    return a


def _check_mesh(mesh: TriangularMesh) -> tuple[np.ndarray, np.ndarray]:
    vertices = _points("mesh vertices", mesh.vertices)
    faces = np.asarray(mesh.faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(
            f"mesh faces must be integers of shape [F, 3], got {faces.dtype} {list(faces.shape)}"
        )
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(
            f"mesh faces index vertices {faces.min()} ... {faces.max()}; expected 0 ... {len(vertices) - 1}"
        )
    return vertices, faces.astype(np.int64)


def max_edge_length(mesh: TriangularMesh) -> float:
    """The longest side of any face of ``mesh``, as a chord (straight-line) length."""
    vertices, faces = _check_mesh(mesh)
    sides = vertices[np.roll(faces, -1, axis=1)] - vertices[faces]  # [F, 3, 3]
    return float(np.linalg.norm(sides, axis=-1).max())


def grid_to_mesh_radius(mesh: TriangularMesh, *, fraction: float = 0.6) -> float:
    """GraphCast's grid -> mesh query radius: ``fraction`` times the longest edge of ``mesh`` (pass the
    finest icosahedral level; GraphCast's ``radius_query_fraction_edge_length`` is 0.6)."""
    if not fraction > 0:
        raise ValueError(f"fraction must be > 0, got {fraction!r}")
    return fraction * max_edge_length(mesh)


def grid_to_mesh_edges(
    grid_xyz, mesh_vertices, *, radius: float, allow_unconnected: bool = False
) -> np.ndarray:
    """Edges from every grid point to every mesh vertex within ``radius`` (GraphCast's encoder graph).

    Args:
        grid_xyz: ``[G, 3]`` grid points (or a LatLonGrid).
        mesh_vertices: ``[N, 3]`` mesh vertices.
        radius: chord distance; pairs with distance ``<= radius`` are connected. See
            :func:`grid_to_mesh_radius`.
        allow_unconnected: accept grid points with no mesh vertex within ``radius`` (their data would never
            reach the mesh); by default that is an error.

    Returns:
        ``edge_index [2, E]`` int64, senders grid points, receivers mesh vertices, sorted by
        ``(sender, receiver)``.

    Raises:
        ValueError: non-finite points, a radius that is not positive, or (unless ``allow_unconnected``)
            a grid point left without edges.
    """
    grid = _points("grid_xyz", grid_xyz)
    vertices = _points("mesh_vertices", mesh_vertices)
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    # A structured array of (grid index, mesh index, distance) with distance <= radius (zeros kept).
    pairs = cKDTree(grid).sparse_distance_matrix(cKDTree(vertices), radius, output_type="ndarray")
    senders, receivers = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    order = np.argsort(senders * len(vertices) + receivers, kind="stable")
    edge_index = np.stack([senders[order], receivers[order]])  # [2, E]
    if not allow_unconnected:
        degree = np.bincount(edge_index[0], minlength=len(grid))
        if (degree == 0).any():
            i = int(np.flatnonzero(degree == 0)[0])
            raise ValueError(
                f"{int((degree == 0).sum())} of {len(grid)} grid points (first: {i}) have no mesh vertex "
                f"within radius {radius:g}; expected at least one (use a larger radius, e.g. "
                "grid_to_mesh_radius(mesh))"
            )
    return edge_index


def _contains(points: np.ndarray, normals: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best containing candidate face per point, and its barycentric coordinates.

    Args:
        points: ``[P, 3]``.
        normals: ``[F, 3, 3]``, row ``j`` the normal of the plane through the origin and the side opposite
            corner ``j`` (scaled so that ``normals[f, j] @ corner_j`` is the face's triple product).
        cand: ``[P, K]`` candidate faces.

    Returns:
        ``best [P]`` index into the K candidates (-1 where none contains the point) and ``bary [P, 3]``.
    """
    num, k = cand.shape
    best = np.full(num, -1, dtype=np.int64)
    bary = np.zeros((num, 3))
    chunk = max(1, _PAIRS_PER_CHUNK // k)
    for start in range(0, num, chunk):
        p, c = points[start : start + chunk], cand[start : start + chunk]
        # [P, K, 3] triple products (side j, p): proportional to the barycentric coordinates of the point
        # where the ray from the origin through p meets the face's plane.
        dets = np.einsum("pkij,pj->pki", normals[c], p)
        total = dets.sum(axis=-1)  # [P, K], > 0 when the face faces p
        with np.errstate(divide="ignore", invalid="ignore"):
            coords = dets / total[..., None]  # [P, K, 3]
        score = np.where(total > 0, coords.min(axis=-1), -np.inf)  # [P, K] how deep inside
        score = np.where(np.isfinite(score), score, -np.inf)
        pick = np.argmax(score, axis=1)  # the most interior candidate (the nearest on exact ties)
        ok = score[np.arange(len(p)), pick] >= -_INSIDE_TOL
        best[start : start + chunk] = np.where(ok, pick, -1)
        bary[start : start + chunk] = coords[np.arange(len(p)), pick]
    return best, bary


def mesh_to_grid_edges(grid_xyz, mesh: TriangularMesh, *, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Edges from the three vertices of the mesh triangle containing each grid point (GraphCast's decoder
    graph), with barycentric interpolation weights.

    A grid point ``p`` lies in the face whose flat triangle the ray from the origin through ``p`` crosses
    (radial projection: the faces tile the sphere without gaps or overlaps, and the choice commutes with
    rotations). GraphCast takes the face nearest to ``p`` in 3-D instead, which differs only near edges.
    For a point on an edge or at a vertex, several faces contain it and the one where it lies deepest
    inside (up to rounding) is taken; the interpolation does not depend on that choice, since the weights
    of the corners not shared are 0. Candidate faces come
    from a kd-tree of face centroids, nearest first; the rare points not inside any of 64 candidates are
    tested against all faces.

    Args:
        grid_xyz: ``[G, 3]`` nonzero points (or a LatLonGrid); only their direction matters.
        mesh: a closed triangular mesh around the origin (e.g. an icosahedral level), faces counter-clockwise
            seen from outside.
        workers: threads for the kd-tree queries (-1: all cores).

    Returns:
        ``(edge_index [2, 3G], weights [3G])``: edges ``3 g, 3 g + 1, 3 g + 2`` go from the corners of grid
        point ``g``'s face (in the face's order) to ``g``; ``weights`` are ``>= 0`` and sum to 1 over each
        grid point. ``sum_j weights[3 g + j] * vertices[edge_index[0, 3 g + j]]`` is the point where the
        ray through ``p`` meets the face's plane, so the weights reproduce functions linear in position on
        the flat face and are 1 at a vertex that coincides with ``p``.

    Raises:
        ValueError: non-finite or zero points, bad faces, or a grid point inside no face (mesh not closed
            around the origin).
    """
    points = _points("grid_xyz", grid_xyz)
    if (np.linalg.norm(points, axis=1) == 0).any():
        raise ValueError(
            "grid_xyz contains the origin; expected points on (or off) the sphere, not at its centre"
        )
    vertices, faces = _check_mesh(mesh)
    if len(faces) == 0:
        raise ValueError("mesh has no faces")
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]  # [F, 3] each
    normals = np.stack([np.cross(b, c), np.cross(c, a), np.cross(a, b)], axis=1)  # [F, 3, 3]
    centroids = a + b + c
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    centroids = centroids / np.where(norms > 0, norms, 1.0)  # [F, 3] on the unit sphere
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    tree = cKDTree(centroids)

    num = len(points)
    face = np.full(num, -1, dtype=np.int64)
    bary = np.zeros((num, 3))
    pending = np.arange(num)
    for k in _CANDIDATES:
        if not pending.size:
            break
        k = min(k, len(faces))
        _, cand = tree.query(unit[pending], k=k, workers=workers)
        cand = cand.reshape(len(pending), k)  # [P, k]
        best, coords = _contains(points[pending], normals, cand)
        found = best >= 0
        face[pending[found]] = cand[found, best[found]]
        bary[pending[found]] = coords[found]
        pending = pending[~found]
        if k == len(faces):
            break
    if pending.size and len(faces) > _CANDIDATES[-1]:  # exhaustive test of the leftovers
        cand = np.broadcast_to(np.arange(len(faces)), (len(pending), len(faces)))
        best, coords = _contains(points[pending], normals, cand)
        found = best >= 0
        face[pending[found]] = best[found]
        bary[pending[found]] = coords[found]
        pending = pending[~found]
    if pending.size:
        raise ValueError(
            f"{pending.size} of {num} grid points (first: {int(pending[0])}, {points[pending[0]].tolist()}) "
            "lie in no mesh face; expected a closed mesh around the origin, faces counter-clockwise seen "
            "from outside"
        )
    weights = np.clip(bary, 0.0, None)  # [G, 3]; rounding on an edge can give -1e-17
    weights /= weights.sum(axis=1, keepdims=True)
    edge_index = np.stack([faces[face].reshape(-1), np.repeat(np.arange(num, dtype=np.int64), 3)])  # [2, 3G]
    return edge_index, weights.reshape(-1)


def knn_edges(source_xyz, target_xyz, k: int, *, workers: int = 1) -> np.ndarray:
    """Edges from each target point's ``k`` nearest source points (chord distance) to it.

    Args:
        source_xyz: ``[S, 3]`` (or a LatLonGrid).
        target_xyz: ``[T, 3]`` (or a LatLonGrid).
        k: neighbours per target, ``1 <= k <= S``.
        workers: threads for the kd-tree query (-1: all cores).

    Returns:
        ``edge_index [2, T k]`` int64, senders source points, receivers target points; edges
        ``k t ... k t + k - 1`` go to target ``t``, nearest source first.
    """
    source = _points("source_xyz", source_xyz)
    target = _points("target_xyz", target_xyz)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= len(source):
        raise ValueError(f"k must be an int in [1, {len(source)}] (the number of source points), got {k!r}")
    _, idx = cKDTree(source).query(target, k=int(k), workers=workers)
    idx = np.asarray(idx, dtype=np.int64).reshape(len(target), int(k))  # [T, k]
    return np.stack([idx.reshape(-1), np.repeat(np.arange(len(target), dtype=np.int64), int(k))])
