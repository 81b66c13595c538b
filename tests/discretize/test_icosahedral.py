"""The icosahedral hierarchy, the multi-mesh, and the 60 rotations as exact vertex permutations."""

from __future__ import annotations

import numpy as np
import pytest

from sim.discretize.icosahedral import (
    icosahedral_meshes,
    icosahedral_rotations,
    icosahedron,
    mesh_edges,
    multimesh,
    multimesh_edges,
    vertex_permutation,
)
from sim.discretize.latlon import polar_rotation, xyz_to_latlon
from sim.discretize.mesh import TriangularMesh


@pytest.fixture(scope="module")
def meshes() -> list[TriangularMesh]:
    return icosahedral_meshes(4)


@pytest.fixture(scope="module")
def rotations() -> np.ndarray:
    return icosahedral_rotations()


def _edge_set(edge_index: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(edge_index[0].tolist(), edge_index[1].tolist(), strict=True))


def _face_normals_outward(mesh: TriangularMesh) -> np.ndarray:
    v, f = mesh.vertices, mesh.faces
    normal = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # [F, 3]
    return np.einsum("fi,fi->f", normal, v[f].mean(axis=1))


def test_icosahedron_geometry():
    ico = icosahedron()
    v, f = ico.vertices, ico.faces
    assert v.shape == (12, 3) and v.dtype == np.float64 and f.shape == (20, 3) and f.dtype == np.int64
    np.testing.assert_array_equal(v[0], [0, 0, 1])
    np.testing.assert_array_equal(v[11], [0, 0, -1])
    lat, lon = xyz_to_latlon(v[1:11])
    np.testing.assert_allclose(lat, [np.rad2deg(np.arctan(0.5))] * 5 + [-np.rad2deg(np.arctan(0.5))] * 5)
    np.testing.assert_allclose(lon, [0, 72, 144, 216, 288, 36, 108, 180, 252, 324], atol=1e-12)
    # 30 edges, all of the regular icosahedron's length 1 / sin(72°) for circumradius 1
    edges = mesh_edges(ico)
    assert edges.shape == (2, 60)
    lengths = np.linalg.norm(v[edges[0]] - v[edges[1]], axis=1)
    np.testing.assert_allclose(lengths, 1 / np.sin(np.deg2rad(72)), rtol=1e-14)
    assert (_face_normals_outward(ico) > 0).all()


def test_counts_norms_orientation_per_level(meshes):
    for level, mesh in enumerate(meshes):
        v, f = mesh.vertices, mesh.faces
        assert v.shape == (10 * 4**level + 2, 3) and f.shape == (20 * 4**level, 3)
        assert v.dtype == np.float64 and f.dtype == np.int64
        num_edges = mesh_edges(mesh).shape[1] // 2
        assert num_edges == 30 * 4**level
        assert len(v) - num_edges + len(f) == 2  # Euler characteristic of the sphere
        assert np.abs(np.linalg.norm(v, axis=1) - 1).max() <= 1e-15
        assert (_face_normals_outward(mesh) > 0).all()  # counter-clockwise seen from outside
        assert len(np.unique(np.round(v, 12), axis=0)) == len(v)  # no duplicate vertices
        # closed and consistently oriented: every directed side appears once, and its reverse once
        sides = np.stack([f, np.roll(f, -1, axis=1)], axis=-1).reshape(-1, 2)
        keys = sides[:, 0] * len(v) + sides[:, 1]
        assert len(np.unique(keys)) == len(keys)
        assert set(keys.tolist()) == set((sides[:, 1] * len(v) + sides[:, 0]).tolist())
        degree = np.bincount(mesh_edges(mesh)[0])
        assert (degree[:12] == 5).all() and (degree[12:] == 6).all()


def test_coarse_vertices_are_a_prefix_and_midpoints_in_edge_order(meshes):
    for coarse, fine in zip(meshes[:-1], meshes[1:], strict=True):
        n = len(coarse.vertices)
        np.testing.assert_array_equal(fine.vertices[:n], coarse.vertices)
        # new vertex n + j is the projected midpoint of the j-th edge in (smaller, larger) order
        e = mesh_edges(coarse)
        lo, hi = e[:, e[0] < e[1]]
        mid = coarse.vertices[lo] + coarse.vertices[hi]
        np.testing.assert_array_equal(fine.vertices[n:], mid / np.linalg.norm(mid, axis=1, keepdims=True))
        # face f's children are 4f ... 4f+3: corners (a, ab, ca), (ab, b, bc), (ca, bc, c), centre
        children = fine.faces.reshape(-1, 4, 3)
        np.testing.assert_array_equal(children[:, 0, 0], coarse.faces[:, 0])
        np.testing.assert_array_equal(children[:, 1, 1], coarse.faces[:, 1])
        np.testing.assert_array_equal(children[:, 2, 2], coarse.faces[:, 2])
        np.testing.assert_array_equal(children[:, 3], children[:, [0, 1, 2], [1, 2, 0]])


def test_multimesh_m6_counts():
    vertices, edge_index = multimesh(6)
    assert vertices.shape == (40_962, 3) and edge_index.shape == (2, 327_660)
    assert edge_index.dtype == np.int64
    np.testing.assert_array_equal(vertices[:12], icosahedron().vertices)


def test_multimesh_is_the_union_of_all_levels(meshes):
    vertices, edge_index = multimesh(3)
    np.testing.assert_array_equal(vertices, meshes[3].vertices)
    assert edge_index.shape == (2, 2 * 30 * (1 + 4 + 16 + 64))
    assert (edge_index[0] != edge_index[1]).all()  # no self-loops
    keys = edge_index[0] * len(vertices) + edge_index[1]
    assert (np.diff(keys) > 0).all()  # sorted by (sender, receiver), no duplicates
    edges = _edge_set(edge_index)
    assert edges == {(r, s) for s, r in edges}  # both directions
    per_level = [_edge_set(mesh_edges(m)) for m in meshes[:4]]
    assert edges == set().union(*per_level)
    assert sum(len(e) for e in per_level) == len(edges)  # no edge on two levels
    # each level's edges have their own length: the multi-mesh has long-range links
    lengths = [np.linalg.norm(np.subtract(*vertices[np.array(sorted(e)).T]), axis=1) for e in per_level]
    for coarse, fine in zip(lengths[:-1], lengths[1:], strict=True):
        assert fine.max() < coarse.min()


def test_multimesh_level0_and_bad_splits():
    vertices, edge_index = multimesh(0)
    np.testing.assert_array_equal(edge_index, mesh_edges(icosahedron()))
    for bad in (-1, 11, 2.0, True, "3"):
        with pytest.raises(ValueError, match="splits must be an int"):
            icosahedral_meshes(bad)


def test_multimesh_edges_checks_the_hierarchy(meshes):
    np.testing.assert_array_equal(multimesh_edges(meshes[:3]), multimesh(2)[1])
    shuffled = TriangularMesh(meshes[1].vertices[::-1], meshes[1].faces)
    with pytest.raises(ValueError, match="not the first vertices of mesh 1"):
        multimesh_edges([meshes[0], shuffled])
    with pytest.raises(ValueError, match="at least one mesh"):
        multimesh_edges([])


def test_mesh_edges_open_mesh_and_degenerate_face():
    tri = TriangularMesh(np.eye(3), np.array([[0, 1, 2]]))
    np.testing.assert_array_equal(mesh_edges(tri), [[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]])
    with pytest.raises(ValueError, match="degenerate"):
        mesh_edges(TriangularMesh(np.eye(3), np.array([[0, 1, 1]])))


def test_rotations_form_the_icosahedral_group(rotations):
    assert rotations.shape == (60, 3, 3)
    np.testing.assert_allclose(rotations[0], np.eye(3), atol=1e-15)
    np.testing.assert_allclose(
        np.einsum("gij,gkj->gik", rotations, rotations), np.broadcast_to(np.eye(3), (60, 3, 3)), atol=1e-14
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1, atol=1e-14)
    flat = rotations.reshape(60, 9)
    assert len(np.unique(np.round(flat, 8), axis=0)) == 60
    products = np.einsum("aij,bjk->abik", rotations, rotations).reshape(-1, 1, 9)
    distance = np.abs(products - flat[None]).max(axis=-1)  # [3600, 60]
    assert distance.min(axis=1).max() < 1e-13  # closed: every product is an element
    # orders: 1 identity, 15 half-turns, 20 of order 3, 24 of order 5
    angles = np.rad2deg(np.arccos(np.clip((np.trace(rotations, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    counts = {a: int(np.sum(np.isclose(angles, a, atol=1e-6))) for a in (0, 72, 120, 144, 180)}
    assert counts == {0: 1, 72: 12, 120: 20, 144: 12, 180: 15}
    # elements 0-4 turn about the pole by 72 k degrees; D5 = the 10 that keep the polar axis
    for k in range(5):
        np.testing.assert_allclose(rotations[k], polar_rotation(72 * k), atol=1e-15)
    assert int(np.sum(np.isclose(np.abs(rotations[:, 2, 2]), 1))) == 10


def _oriented_face_keys(faces: np.ndarray, n: int) -> np.ndarray:
    """Sorted keys of oriented faces, each read from its smallest vertex (so cyclic shifts agree)."""
    shift = np.argmin(faces, axis=1)
    cols = (shift[:, None] + np.arange(3)) % 3
    a, b, c = np.take_along_axis(faces, cols, axis=1).T
    return np.sort((a * n + b) * n + c)


def test_every_rotation_permutes_every_level_exactly(meshes, rotations):
    vertices = meshes[3].vertices
    n = len(vertices)
    faces = [_oriented_face_keys(m.faces, n) for m in meshes[:4]]
    for rotation in rotations:
        perm = vertex_permutation(rotation, vertices)
        assert np.array_equal(np.sort(perm), np.arange(n))
        assert np.abs(vertices @ rotation.T - vertices[perm]).max() < 1e-12
        for level_faces, mesh in zip(faces, meshes, strict=False):
            assert perm[: len(mesh.vertices)].max() < len(mesh.vertices)  # level l's vertices stay in level l
            # oriented faces go to oriented faces (a rotation keeps the orientation)
            np.testing.assert_array_equal(_oriented_face_keys(perm[mesh.faces], n), level_faces)


def test_rotations_map_the_multimesh_onto_itself(rotations):
    vertices, edge_index = multimesh(3)
    edges = _edge_set(edge_index)
    for rotation in rotations:
        perm = vertex_permutation(rotation, vertices)
        assert _edge_set(perm[edge_index]) == edges


def test_permutation_direction_and_composition(meshes, rotations):
    vertices = meshes[2].vertices
    a, b = rotations[7], rotations[23]
    pa, pb, pab = (vertex_permutation(r, vertices) for r in (a, b, a @ b))
    np.testing.assert_array_equal(pab, pa[pb])  # x -> b x -> a b x
    # a scalar field rotated by a: f'(p) = f(a^-1 p), and f'[perm] = f
    coeff = np.array([0.3, -1.2, 2.0])
    f = vertices @ coeff + (vertices[:, 2] ** 2)
    f_rot = np.empty_like(f)
    f_rot[pa] = f
    unrotated = vertices @ a  # rows a^-1 p = a^T p
    np.testing.assert_allclose(f_rot, unrotated @ coeff + unrotated[:, 2] ** 2, atol=1e-12)
    np.testing.assert_array_equal(f_rot, f[np.argsort(pa)])
    # the point reflection -I (with the rotations: the full group Ih) also permutes the vertices
    assert np.abs(vertices[vertex_permutation(-np.eye(3), vertices)] + vertices).max() == 0  # exactly


def test_vertex_permutation_rejects_bad_input(meshes):
    vertices = meshes[1].vertices
    generic = polar_rotation(10.0)
    with pytest.raises(ValueError, match="does not map the vertices onto themselves"):
        vertex_permutation(generic, vertices)
    with pytest.raises(ValueError, match="orthogonal"):
        vertex_permutation(2 * np.eye(3), vertices)
    with pytest.raises(ValueError, match=r"\[3, 3\]"):
        vertex_permutation(np.eye(2), vertices)
    bad = vertices.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="vertex 5"):
        vertex_permutation(np.eye(3), bad)
    with pytest.raises(ValueError, match="hit twice"):
        vertex_permutation(np.eye(3), np.concatenate([vertices, vertices[:1]]))


@pytest.mark.slow
def test_every_rotation_permutes_level_6(rotations):
    vertices, edge_index = multimesh(6)
    keys = np.sort(edge_index[0] * len(vertices) + edge_index[1])
    for rotation in rotations:
        perm = vertex_permutation(rotation, vertices)
        assert np.abs(vertices @ rotation.T - vertices[perm]).max() < 1e-12
        moved = perm[edge_index]
        np.testing.assert_array_equal(np.sort(moved[0] * len(vertices) + moved[1]), keys)
