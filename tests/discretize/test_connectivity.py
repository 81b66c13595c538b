"""Grid <-> mesh connectivity against brute-force references, and its exact symmetry under the D5
rotations shared by the icosahedral meshes and the lat-lon grids."""

from __future__ import annotations

import numpy as np
import pytest

import sim.discretize.connectivity as connectivity
from sim.discretize.connectivity import (
    grid_to_mesh_edges,
    grid_to_mesh_radius,
    knn_edges,
    max_edge_length,
    mesh_to_grid_edges,
)
from sim.discretize.icosahedral import (
    icosahedral_meshes,
    icosahedral_rotations,
    icosahedron,
    vertex_permutation,
)
from sim.discretize.latlon import equiangular_grid, grid_permutation
from sim.discretize.mesh import TriangularMesh


@pytest.fixture(scope="module")
def meshes() -> list[TriangularMesh]:
    return icosahedral_meshes(3)


def _random_points(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _test_points(mesh: TriangularMesh) -> np.ndarray:
    """Random points, a lat-lon grid with poles, the mesh's vertices and some edge midpoints: the ties."""
    grid = equiangular_grid(19, 36).xyz().reshape(-1, 3)
    v, f = mesh.vertices, mesh.faces
    mid = v[f[:40, 0]] + v[f[:40, 1]]
    return np.concatenate([_random_points(300), grid, v, mid / np.linalg.norm(mid, axis=1, keepdims=True)])


def _brute_force_barycentric(points: np.ndarray, mesh: TriangularMesh) -> np.ndarray:
    """``[P, F, 3]`` barycentric coordinates of the ray-plane hit of every point in every face (-inf for a
    face whose plane the ray misses), by intersecting each ray with each plane and solving in the plane."""
    a, b, c = (mesh.vertices[mesh.faces[:, j]][None] for j in range(3))  # [1, F, 3] each
    n = np.cross(b - a, c - a)  # [1, F, 3]
    p = points[:, None]  # [P, 1, 3]
    p_dot_n = np.sum(p * n, axis=-1)  # [P, F]
    with np.errstate(all="ignore"):  # rays parallel to a plane: inf/nan, masked below
        t = np.sum(a * n, axis=-1) / p_dot_n
        q = t[..., None] * p - a  # [P, F, 3] hit point relative to corner a
        e1, e2 = b - a, c - a
        # q = beta e1 + gamma e2: the 2x2 normal equations
        g11, g12, g22 = np.sum(e1 * e1, -1), np.sum(e1 * e2, -1), np.sum(e2 * e2, -1)
        r1, r2 = np.sum(q * e1, -1), np.sum(q * e2, -1)
        det = g11 * g22 - g12**2
        beta, gamma = (g22 * r1 - g12 * r2) / det, (g11 * r2 - g12 * r1) / det
    out = np.stack([1 - beta - gamma, beta, gamma], axis=-1)
    return np.where((p_dot_n > 0)[..., None], out, -np.inf)


def _dense(edge_index: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    w = np.zeros(shape)
    np.add.at(w, (edge_index[1], edge_index[0]), weights)  # [receivers, senders]
    return w


def test_max_edge_length_and_graphcast_radius(meshes):
    edge = 1 / np.sin(np.deg2rad(72))  # the icosahedron's edge for circumradius 1
    assert max_edge_length(icosahedron()) == pytest.approx(edge, rel=1e-14)
    assert grid_to_mesh_radius(icosahedron()) == pytest.approx(0.6 * edge, rel=1e-14)
    v, f = meshes[2]
    brute = max(
        np.linalg.norm(v[a] - v[b])
        for face in f
        for a, b in ((face[0], face[1]), (face[1], face[2]), (face[2], face[0]))
    )
    assert max_edge_length(meshes[2]) == brute
    with pytest.raises(ValueError, match="fraction must be > 0"):
        grid_to_mesh_radius(meshes[0], fraction=0)


def test_grid_to_mesh_matches_brute_force(meshes):
    mesh = meshes[2]
    grid = equiangular_grid(19, 36)
    xyz = grid.xyz().reshape(-1, 3)
    radius = grid_to_mesh_radius(mesh)
    edge_index = grid_to_mesh_edges(grid, mesh.vertices, radius=radius)  # a LatLonGrid is accepted
    np.testing.assert_array_equal(edge_index, grid_to_mesh_edges(xyz, mesh.vertices, radius=radius))
    assert edge_index.dtype == np.int64 and edge_index.shape[0] == 2
    distance = np.linalg.norm(xyz[:, None] - mesh.vertices[None], axis=-1)  # [G, N]
    expected = np.argwhere(distance <= radius).T  # row-major: sorted by (grid point, mesh vertex)
    np.testing.assert_array_equal(edge_index, expected)
    assert np.bincount(edge_index[0], minlength=len(xyz)).min() >= 1
    # a pair exactly at the radius is connected (<=, as GraphCast's query_ball_point)
    corners = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    at_radius = grid_to_mesh_edges(np.array([[1.0, 0.0, 0.0]]), corners, radius=np.sqrt(2))
    np.testing.assert_array_equal(at_radius, [[0, 0], [0, 2]])


def test_graphcast_setting_connects_every_grid_point():
    # M6 with a 1° grid: every grid point reaches a mesh vertex within 0.6 x the longest M6 edge
    fine = icosahedral_meshes(6)[-1]
    grid = equiangular_grid(181, 360)
    edge_index = grid_to_mesh_edges(grid, fine.vertices, radius=grid_to_mesh_radius(fine))
    degree = np.bincount(edge_index[0], minlength=181 * 360)
    assert degree.min() >= 1 and degree.max() <= 4
    keys = edge_index[0] * len(fine.vertices) + edge_index[1]
    assert (np.diff(keys) > 0).all()


def test_grid_to_mesh_rejects_unconnected_points_and_nan(meshes):
    mesh = meshes[1]
    grid = equiangular_grid(19, 36)
    with pytest.raises(ValueError, match="have no mesh vertex within radius"):
        grid_to_mesh_edges(grid, mesh.vertices, radius=0.01)
    edge_index = grid_to_mesh_edges(grid, mesh.vertices, radius=0.01, allow_unconnected=True)
    assert edge_index.shape[1] < 19 * 36  # only the poles, which coincide with vertices
    xyz = grid.xyz().reshape(-1, 3)
    xyz[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"grid_xyz must be finite; point 7"):
        grid_to_mesh_edges(xyz, mesh.vertices, radius=0.5)
    with pytest.raises(ValueError, match="radius must be a positive number"):
        grid_to_mesh_edges(grid, mesh.vertices, radius=np.nan)
    with pytest.raises(ValueError, match=r"mesh_vertices must have shape \[num_points, 3\]"):
        grid_to_mesh_edges(grid, mesh.vertices[:, :2], radius=0.5)


def test_mesh_to_grid_matches_brute_force(meshes):
    mesh = meshes[1]
    points = _test_points(mesh)
    edge_index, weights = mesh_to_grid_edges(points, mesh)
    g = len(points)
    assert edge_index.shape == (2, 3 * g) and weights.shape == (3 * g,) and edge_index.dtype == np.int64
    np.testing.assert_array_equal(edge_index[1], np.repeat(np.arange(g), 3))
    w = weights.reshape(g, 3)
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(axis=1), 1, atol=1e-15)
    bary = _brute_force_barycentric(points, mesh)  # [G, F, 3]
    inside = bary.min(axis=-1) >= -1e-12  # [G, F]
    assert inside.any(axis=1).all()
    # the chosen face contains the point and the weights are its barycentric coordinates there
    corners = edge_index[0].reshape(g, 3)
    face_of = {tuple(f): i for i, f in enumerate(mesh.faces.tolist())}
    chosen = np.array([face_of[tuple(c)] for c in corners.tolist()])
    assert inside[np.arange(g), chosen].all()
    np.testing.assert_allclose(w, np.clip(bary[np.arange(g), chosen], 0, None), atol=1e-12)
    # the interpolation matrix does not depend on which face a tie picks: compare with the first face
    first = np.argmax(inside, axis=1)
    ref_w = np.clip(bary[np.arange(g), first], 0, None)
    ref = _dense(
        np.stack([mesh.faces[first].reshape(-1), np.repeat(np.arange(g), 3)]), ref_w.reshape(-1), (g, 42)
    )
    np.testing.assert_allclose(_dense(edge_index, weights, (g, 42)), ref, atol=1e-12)


def test_mesh_to_grid_weights_are_linear_interpolation(meshes):
    mesh = meshes[3]
    points = _random_points(2000, seed=1) * 2.5  # any length: only the direction matters
    edge_index, weights = mesh_to_grid_edges(points, mesh)
    corners = mesh.vertices[edge_index[0]].reshape(-1, 3, 3)  # [G, 3 corners, 3]
    w = weights.reshape(-1, 3)
    hit = np.einsum("gj,gjk->gk", w, corners)  # where the ray meets the face's plane
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    np.testing.assert_allclose(
        np.einsum("gk,gk->g", hit - corners[:, 0], normal), 0, atol=1e-14
    )  # on the plane
    np.testing.assert_allclose(np.cross(hit, points), 0, atol=1e-14)  # on the ray
    assert (np.einsum("gk,gk->g", hit, points) > 0).all()
    # so any function affine in position is reproduced exactly on the flat face
    a, b = np.array([0.7, -0.2, 1.3]), 0.4
    np.testing.assert_allclose(np.einsum("gj,gj->g", w, corners @ a + b), hit @ a + b, atol=1e-14)
    # a grid point on a vertex takes that vertex's value
    edge_index, weights = mesh_to_grid_edges(mesh.vertices, mesh)
    values = np.random.default_rng(2).normal(size=len(mesh.vertices))
    interpolated = np.bincount(edge_index[1], weights=weights * values[edge_index[0]])
    np.testing.assert_allclose(interpolated, values, atol=1e-12)


def test_mesh_to_grid_fallback_to_all_faces(meshes, monkeypatch):
    mesh = meshes[2]
    points = _test_points(mesh)
    expected = mesh_to_grid_edges(points, mesh)
    monkeypatch.setattr(connectivity, "_CANDIDATES", (1,))  # most points then need the exhaustive pass
    edge_index, weights = mesh_to_grid_edges(points, mesh)
    np.testing.assert_allclose(
        _dense(edge_index, weights, (len(points), len(mesh.vertices))),
        _dense(*expected, (len(points), len(mesh.vertices))),
        atol=1e-12,
    )


def test_mesh_to_grid_rejects_bad_input(meshes):
    mesh = meshes[1]
    points = _random_points(10)
    open_mesh = TriangularMesh(mesh.vertices, mesh.faces[:60])  # a sphere with a hole
    with pytest.raises(ValueError, match="lie in no mesh face"):
        mesh_to_grid_edges(_random_points(500), open_mesh)
    bad = points.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="grid_xyz must be finite; point 3"):
        mesh_to_grid_edges(bad, mesh)
    with pytest.raises(ValueError, match="contains the origin"):
        mesh_to_grid_edges(np.zeros((1, 3)), mesh)
    with pytest.raises(ValueError, match=r"mesh faces index vertices"):
        mesh_to_grid_edges(points, TriangularMesh(mesh.vertices, mesh.faces + 1))
    nan_mesh = TriangularMesh(np.where(np.arange(42)[:, None] == 5, np.nan, mesh.vertices), mesh.faces)
    with pytest.raises(ValueError, match="mesh vertices must be finite; point 5"):
        mesh_to_grid_edges(points, nan_mesh)


def test_knn_matches_brute_force():
    source, target = _random_points(200, seed=3), _random_points(50, seed=4)
    edge_index = knn_edges(source, target, 4)
    assert edge_index.shape == (2, 200) and edge_index.dtype == np.int64
    np.testing.assert_array_equal(edge_index[1], np.repeat(np.arange(50), 4))
    distance = np.linalg.norm(target[:, None] - source[None], axis=-1)  # [T, S]
    np.testing.assert_array_equal(edge_index[0].reshape(50, 4), np.argsort(distance, axis=1)[:, :4])
    np.testing.assert_array_equal(knn_edges(source, target, 1)[0], np.argmin(distance, axis=1))
    for bad in (0, 201, 2.0):
        with pytest.raises(ValueError, match=r"k must be an int in \[1, 200\]"):
            knn_edges(source, target, bad)
    with pytest.raises(ValueError, match="target_xyz must be finite"):
        knn_edges(source, np.full((1, 3), np.nan), 1)


@pytest.mark.parametrize("grid", [equiangular_grid(46, 90), equiangular_grid(30, 90, poles=False)], ids=repr)
def test_connectivity_is_exactly_d5_equivariant(meshes, grid):
    # The 10 icosahedral rotations that keep the polar axis permute both the mesh and the grid, and the
    # grid <-> mesh graphs commute with them: what an end-to-end equivariance test of a sphere model needs.
    mesh = meshes[3]
    rotations = icosahedral_rotations()
    d5 = rotations[np.isclose(np.abs(rotations[:, 2, 2]), 1)]
    num_grid, num_mesh = grid.nlat * grid.nlon, len(mesh.vertices)
    g2m = grid_to_mesh_edges(grid, mesh.vertices, radius=grid_to_mesh_radius(mesh))
    g2m_keys = np.sort(g2m[0] * num_mesh + g2m[1])
    m2g, weights = mesh_to_grid_edges(grid, mesh)
    interpolation = _dense(m2g, weights, (num_grid, num_mesh))  # [G, N]
    for rotation in d5:
        perm_grid, perm_mesh = grid_permutation(grid, rotation), vertex_permutation(rotation, mesh.vertices)
        moved = np.stack([perm_grid[g2m[0]], perm_mesh[g2m[1]]])
        np.testing.assert_array_equal(np.sort(moved[0] * num_mesh + moved[1]), g2m_keys)
        # interpolating a rotated mesh field gives the rotated grid field: W[perm_g][:, perm_m] == W
        np.testing.assert_allclose(interpolation[np.ix_(perm_grid, perm_mesh)], interpolation, atol=1e-12)
