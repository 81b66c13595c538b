"""Triangular meshes: reading every format through trimesh, validation and repair, meshes as graphs (closed
forms and invariants of the cotangent Laplacian), and the committed meshes in meshes/."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import Delaunay
from torch_geometric.data import Batch
from torch_geometric.utils import get_laplacian, is_undirected

from sim.discretize.mesh import (
    NUM_NODE_TYPES,
    MeshError,
    NodeType,
    TriangularMesh,
    check_mesh,
    classify_boundary,
    face_angles,
    load_mesh,
    load_node_type,
    mesh_to_graph,
    repair_mesh,
    save_mesh,
)
from sim.io import OutputError

ROOT = Path(__file__).resolve().parents[2]
MESHES = ROOT / "meshes"


def _grid(n: int = 4, *, size: float = 1.0) -> TriangularMesh:
    """``(n+1)^2`` vertices on ``[0, size]^2`` (x fastest), each cell split along its rising diagonal, CCW."""
    g = np.linspace(0.0, size, n + 1)
    y, x = np.meshgrid(g, g, indexing="ij")
    vertices = np.stack([x.reshape(-1), y.reshape(-1), np.zeros(x.size)], axis=1)
    i = (np.arange(n)[None, :] + (n + 1) * np.arange(n)[:, None]).reshape(
        -1
    )  # lower-left corner of each cell
    faces = np.concatenate([np.stack([i, i + 1, i + n + 2], 1), np.stack([i, i + n + 2, i + n + 1], 1)])
    return TriangularMesh(vertices, faces.astype(np.int64))


def _random_planar(*, seed: int = 0, n: int = 60) -> TriangularMesh:
    """Delaunay triangulation of random points in the unit square plus its corners, counter-clockwise."""
    rng = np.random.default_rng(seed)
    points = np.concatenate([[[0, 0], [1, 0], [1, 1], [0, 1]], rng.uniform(0.05, 0.95, size=(n, 2))])
    faces = Delaunay(points).simplices.astype(np.int64)
    a, b, c = (points[faces[:, k]] for k in range(3))
    cw = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]) < 0
    faces[cw] = faces[cw][:, ::-1]
    return TriangularMesh(np.concatenate([points, np.zeros((len(points), 1))], axis=1), faces)


def _sphere(subdivisions: int = 1) -> TriangularMesh:
    s = trimesh.creation.icosphere(subdivisions=subdivisions)
    return TriangularMesh(np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int64))


def _laplacian(graph) -> torch.Tensor:
    """Dense ``L = D - W`` ``[N, N]`` float64 from the cotangent weights."""
    index, weight = get_laplacian(graph.edge_index, graph.cot_weight.double(), num_nodes=graph.num_nodes)
    dense = torch.zeros(graph.num_nodes, graph.num_nodes, dtype=torch.float64)
    return dense.index_put_((index[0], index[1]), weight, accumulate=True)


def _write_off(path: Path, vertices, faces) -> Path:
    """An OFF file with exactly these vertices and faces (trimesh reads it as it is)."""
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0"]
    lines += [" ".join(repr(float(c)) for c in v) for v in vertices]
    lines += ["3 " + " ".join(str(int(i)) for i in f) for f in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def _canonical(faces: np.ndarray) -> np.ndarray:
    """Faces rotated to start at their smallest index (orientation kept), sorted: ``[F, 3]``."""
    faces = np.asarray(faces)
    shift = np.argmin(faces, axis=1)
    rolled = np.stack([faces[np.arange(len(faces)), (shift + k) % 3] for k in range(3)], axis=1)
    return rolled[np.lexsort(rolled.T[::-1])]


# --------------------------------------------------------------------------------------------------
# Reading and writing


@pytest.mark.parametrize("fmt", ["obj", "ply", "off"])
@pytest.mark.parametrize("make", [_grid, _sphere], ids=["planar", "sphere"])
def test_formats_keep_vertex_and_face_order(tmp_path, fmt, make):
    mesh = make()
    path = tmp_path / f"mesh.{fmt}"
    trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(path)
    loaded = load_mesh(path)
    assert loaded.vertices.dtype == np.float64 and loaded.faces.dtype == np.int64
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-7)  # PLY export is float32
    np.testing.assert_array_equal(loaded.faces, mesh.faces)


def test_stl_corners_are_merged_into_a_connected_mesh(tmp_path):
    mesh = _sphere(1)
    path = tmp_path / "sphere.stl"
    trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(path)
    loaded = load_mesh(path)
    assert len(loaded.vertices) == len(mesh.vertices) and len(loaded.faces) == len(mesh.faces)
    # Faces stay in file order with the same corners; vertices are numbered by first appearance.
    np.testing.assert_allclose(loaded.vertices[loaded.faces], mesh.vertices[mesh.faces], atol=1e-7)
    first_seen = np.unique(loaded.faces.reshape(-1), return_index=True)[1]
    assert np.all(np.diff(first_seen) > 0)
    graph = mesh_to_graph(loaded)
    assert graph.edge_index.shape[1] == 2 * 120 and not graph.boundary.any()  # 42 - 120 + 80 = 2


def test_stl_with_several_solids_is_joined(tmp_path):
    facet = "facet normal 0 0 1\nouter loop\n{}endloop\nendfacet\n"
    corners = lambda *ps: "".join(f"vertex {x} {y} 0\n" for x, y in ps)  # noqa: E731
    text = (
        f"solid a\n{facet.format(corners((0, 0), (1, 0), (0, 1)))}endsolid a\n"
        f"solid b\n{facet.format(corners((1, 0), (1, 1), (0, 1)))}endsolid b\n"
    )
    (tmp_path / "two.stl").write_text(text)
    mesh = load_mesh(tmp_path / "two.stl")
    assert mesh.vertices.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]
    assert mesh.faces.tolist() == [[0, 1, 2], [1, 3, 2]]


def test_obj_texture_coordinates_and_normals_do_not_cut_the_mesh(tmp_path):
    path = tmp_path / "seam.obj"
    path.write_text(
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.5 0.5\nvn 0 0 1\n"
        "f 1/1/1 2/2/1 3/3/1\nf 1/5/1 3/3/1 4/4/1\n"  # vertex 1 has two texture coordinates
    )
    mesh = load_mesh(path)
    assert mesh.vertices.tolist() == SQUARE and mesh.faces.tolist() == TWO


def test_several_meshes_in_one_file_are_an_error(tmp_path, monkeypatch):
    parts = [trimesh.Trimesh(np.array(SQUARE, dtype=float) + [i, 0, 0], TWO, process=False) for i in (0, 2)]
    monkeypatch.setattr(trimesh, "load_scene", lambda *args, **kwargs: trimesh.Scene(parts))
    (tmp_path / "two.ply").write_text("ply\n")
    with pytest.raises(MeshError, match=r"two\.ply: 2 separate meshes \(.*\); expected one"):
        load_mesh(tmp_path / "two.ply")
    (tmp_path / "two.stl").write_text("solid\n")  # STL solids are joined
    assert load_mesh(tmp_path / "two.stl").vertices.shape == (8, 3)


def test_save_mesh_round_trip_is_exact(tmp_path):
    mesh = _random_planar()
    mesh = TriangularMesh(mesh.vertices * math.pi + 0.1, mesh.faces)  # digits that float32 would lose
    node_type = np.where(np.arange(len(mesh.vertices)) % 3 == 0, NodeType.INFLOW, NodeType.NORMAL)
    path = save_mesh(tmp_path / "m.ply", mesh, node_type=node_type)
    loaded = load_mesh(path)
    np.testing.assert_array_equal(loaded.vertices, mesh.vertices)
    np.testing.assert_array_equal(loaded.faces, mesh.faces)
    np.testing.assert_array_equal(load_node_type(path), node_type)
    assert load_node_type(path).dtype == np.int64
    with pytest.raises(OutputError, match="already exists"):
        save_mesh(path, mesh)
    save_mesh(path, mesh, overwrite=True)  # no node types now
    with pytest.raises(MeshError, match=r"m\.ply: no 'node_type' vertex property"):
        load_node_type(path)


def test_save_mesh_refuses_bad_input(tmp_path):
    mesh = _grid(2)
    with pytest.raises(MeshError, match=r"m\.obj: save_mesh writes PLY only"):
        save_mesh(tmp_path / "m.obj", mesh)
    with pytest.raises(MeshError, match=r"node_type must be an integer array \[9\], got int64 \[8\]"):
        save_mesh(tmp_path / "m.ply", mesh, node_type=np.zeros(8, dtype=np.int64))
    with pytest.raises(MeshError, match=r"node_type values \[7\] are not NodeType values"):
        save_mesh(tmp_path / "m.ply", mesh, node_type=np.full(9, 7))
    with pytest.raises(MeshError, match="clockwise"):
        save_mesh(tmp_path / "m.ply", TriangularMesh(mesh.vertices, mesh.faces[:, ::-1]))
    assert not list(tmp_path.iterdir())


def test_node_types_from_an_ascii_ply(tmp_path):
    path = tmp_path / "ascii.ply"
    path.write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty double x\nproperty double y\nproperty double z\n"
        "property uchar node_type\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0 4\n1.6 0 0 5\n0 0.41 0 6\n3 0 1 2\n"
    )
    assert load_node_type(path).tolist() == [4, 5, 6]
    assert load_mesh(path).vertices[1, 0] == 1.6
    path.write_text(path.read_text().replace("0 0.41 0 6", "0 0.41 0 8"))
    with pytest.raises(MeshError, match=r"ascii\.ply: node_type values \[8\]"):
        load_node_type(path)


# --------------------------------------------------------------------------------------------------
# Bad input: one clear error naming the file

SQUARE = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]
TWO = [[0, 1, 2], [0, 2, 3]]
BAD_MESHES = {
    "nan": (
        [[0, 0, 0], [float("nan"), 0, 0], [0, 1, 0]],
        [[0, 1, 2]],
        r"1 vertices with NaN/Inf coordinates",
    ),
    "inf": (
        [[0, 0, 0], [1, 0, float("inf")], [0, 1, 0]],
        [[0, 1, 2]],
        r"NaN/Inf coordinates, first vertex 1",
    ),
    "collinear": ([*SQUARE, [2, 0, 0]], [*TWO, [0, 1, 4]], r"1 degenerate \(zero-area\) faces, first face 2"),
    "repeated": (SQUARE, [*TWO, [1, 1, 2]], r"degenerate \(zero-area\) faces, first face 2 \[1, 1, 2\]"),
    "duplicate": (SQUARE, [*TWO, [2, 3, 0]], r"1 duplicate faces, first face 2 \[2, 3, 0\] repeats face 1"),
    "unreferenced": ([*SQUARE, [5, 5, 0]], TWO, r"1 unreferenced vertices \(in no face\), first vertex 4"),
    "twin": (
        [*SQUARE, [0, 0, 0]],
        [[0, 1, 2], [4, 2, 3]],
        r"1 duplicate vertices .* first vertex 4 repeats vertex 0",
    ),
    "non_manifold_edge": (
        [*SQUARE, [0.5, 0.5, 1]],
        [*TWO, [0, 4, 2]],
        r"1 non-manifold edges \(in more than two faces\), first edge \[0, 2\] in 3 faces",
    ),
    "inconsistent": (
        SQUARE,
        [[0, 1, 2], [0, 3, 2]],
        r"inconsistent orientation: 1 edges .* first edge \[0, 2\]",
    ),
    "bowtie": (
        [[0, 0, 0], [1, 0, 0], [1, 1, 0], [-1, 0, 0], [-1, -1, 0]],
        [[0, 1, 2], [0, 3, 4]],
        r"1 non-manifold vertices \(their faces form separate fans\), first vertex 0 with 2 fans",
    ),
    "clockwise": (
        SQUARE,
        [[0, 2, 1], [0, 3, 2]],
        r"planar mesh \(z = 0\) with clockwise faces seen from \+z",
    ),
    "folded": (
        [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [1.5, 0.5, 0]],  # the centre pulled outside
        [[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]],
        r"folds over itself: 1 of 4 faces are clockwise seen from \+z, first face 1",
    ),
    "inward": (
        _sphere(0).vertices.tolist(),
        _sphere(0).faces[:, ::-1].tolist(),
        r"closed surface with faces clockwise seen from outside \(enclosed volume -",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MESHES))
def test_bad_meshes_are_one_line_errors_naming_the_file(tmp_path, case):
    vertices, faces, message = BAD_MESHES[case]
    path = _write_off(tmp_path / f"{case}.off", vertices, faces)
    with pytest.raises(MeshError, match=message) as error:
        load_mesh(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)
    with pytest.raises(MeshError, match=message):  # the same check on arrays
        check_mesh(TriangularMesh(np.array(vertices, dtype=np.float64), np.array(faces)), name="arrays")


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("empty.obj", "", "empty file"),
        ("empty.ply", "", "empty file"),
        ("empty.stl", "", "empty file"),
        ("empty.off", "", "empty file"),
        ("points.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "holds a PointCloud without faces"),
        ("garbage.ply", "not a ply file\n", "trimesh cannot read it as PLY"),
        ("range.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "trimesh cannot read it as OFF"),
        ("comments.obj", "# nothing but a comment\n", "no mesh in the file"),
        ("mesh.vtk", "x", r"unsupported mesh format '\.vtk'; expected one of \.obj, \.ply, \.stl, \.off"),
    ],
)
def test_unreadable_files(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(MeshError, match=message) as error:
        load_mesh(path)
    assert str(error.value).startswith(f"{path}: ")


def test_missing_file_and_bad_arrays(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.ply: no such mesh file"):
        load_mesh(tmp_path / "nowhere.ply")
    v, f = _grid(1)
    with pytest.raises(MeshError, match=r"m: vertices must be a float array \[N, 3\], got float64 \[4, 2\]"):
        check_mesh(TriangularMesh(v[:, :2], f), name="m")
    with pytest.raises(MeshError, match=r"m: faces must be an integer array \[F, 3\], got float64"):
        check_mesh(TriangularMesh(v, f.astype(np.float64)), name="m")
    with pytest.raises(MeshError, match=r"m: no faces \(4 vertices\)"):
        check_mesh(TriangularMesh(v, np.zeros((0, 3), dtype=np.int64)), name="m")
    with pytest.raises(
        MeshError, match=r"m: 1 faces index vertices outside 0\.\.3, first face 1 \[0, 2, 4\]"
    ):
        check_mesh(TriangularMesh(v, np.array([[0, 1, 2], [0, 2, 4]])), name="m")
    with pytest.raises(MeshError, match=r"outside 0\.\.3, first face 0 \[-1, 1, 2\]"):
        check_mesh(TriangularMesh(v, np.array([[-1, 1, 2]])), name="m")


# --------------------------------------------------------------------------------------------------
# Repair


def test_repair_removes_and_reorients(tmp_path):
    grid = _grid(3)
    faces = grid.faces.copy()
    faces[4] = faces[4][::-1]  # one clockwise face
    faces = np.concatenate([faces, [[5, 5, 6]], faces[:1][:, [1, 2, 0]]])  # degenerate, duplicate
    vertices = np.concatenate([[[9.0, 9.0, 0.0]], grid.vertices])  # an unreferenced vertex first
    path = _write_off(tmp_path / "messy.off", vertices, faces + 1)
    with pytest.raises(MeshError, match="degenerate"):
        load_mesh(path)
    repaired = load_mesh(path, repair=True)
    np.testing.assert_array_equal(repaired.vertices, grid.vertices)  # the others keep their order
    np.testing.assert_array_equal(_canonical(repaired.faces), _canonical(grid.faces))


def test_repair_merges_seams_and_turns_a_sphere_outward():
    sphere = _sphere(2)
    faces = sphere.faces[:, ::-1].copy()  # inward
    faces[::7] = faces[::7, ::-1]  # and inconsistent
    rows, cols = np.nonzero(faces == 0)  # the five faces around vertex 0
    faces[rows[:2], cols[:2]] = len(sphere.vertices)  # vertex 0 split in two (a seam)
    vertices = np.concatenate([sphere.vertices, sphere.vertices[:1]])
    with pytest.raises(MeshError, match="duplicate vertices"):
        check_mesh(TriangularMesh(vertices, faces))
    repaired = repair_mesh(TriangularMesh(vertices, faces))
    np.testing.assert_array_equal(repaired.vertices, sphere.vertices)
    np.testing.assert_array_equal(_canonical(repaired.faces), _canonical(sphere.faces))


@pytest.mark.parametrize("case", ["nan", "non_manifold_edge", "bowtie", "folded"])
def test_repair_does_not_hide_what_it_cannot_fix(tmp_path, case):
    vertices, faces, message = BAD_MESHES[case]
    path = _write_off(tmp_path / f"{case}.off", vertices, faces)
    with pytest.raises(MeshError, match=message) as error:
        load_mesh(path, repair=True)
    assert str(error.value).startswith(str(path))


def test_repair_of_nothing_left():
    with pytest.raises(MeshError, match="m: no faces left after removing degenerate and duplicate faces"):
        repair_mesh(TriangularMesh(np.array(SQUARE, dtype=np.float64), np.array([[0, 0, 1]])), name="m")


# --------------------------------------------------------------------------------------------------
# Graphs


def test_graph_layout_and_edge_conventions():
    mesh = _random_planar(seed=3)
    graph = mesh_to_graph(mesh)
    n, e = len(mesh.vertices), graph.edge_index.shape[1]
    assert graph.num_nodes == n and graph.edge_index.dtype == torch.int64
    assert graph.pos.shape == (n, 3) and graph.pos.dtype == torch.float32
    send, receive = graph.edge_index.numpy()
    assert np.all(np.lexsort((receive, send)) == np.arange(e))  # sorted by sender, then receiver
    assert graph.is_coalesced() and is_undirected(graph.edge_index) and not np.any(send == receive)
    # Every mesh edge exactly once per direction; E = 2 (V + F - 1) for a disc (Euler).
    pairs = {tuple(sorted(p)) for f in mesh.faces for p in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    assert e == 2 * len(pairs) == 2 * (n + len(mesh.faces) - 1)
    assert set(zip(send.tolist(), receive.tolist(), strict=True)) == pairs | {(j, i) for i, j in pairs}
    # edge_vec = pos[sender] - pos[receiver] (MeshGraphNets' relative_mesh_pos), edge_len its norm.
    pos = torch.from_numpy(mesh.vertices)
    assert torch.equal(graph.edge_vec, (pos[graph.edge_index[0]] - pos[graph.edge_index[1]]).float())
    assert torch.allclose(graph.edge_len, graph.edge_vec.norm(dim=1, keepdim=True))
    assert graph.edge_len.shape == (e, 1) and graph.cot_weight.shape == (e,) and graph.area.shape == (n,)
    assert torch.equal(graph.face, torch.from_numpy(mesh.faces.T))
    # Boundary: the four sides of the square (the convex hull), nothing inside.
    on_side = np.any((mesh.vertices[:, :2] == 0) | (mesh.vertices[:, :2] == 1), axis=1)
    hull = np.zeros(n, dtype=bool)
    hull[Delaunay(mesh.vertices[:, :2]).convex_hull.reshape(-1)] = True
    assert torch.equal(graph.boundary, torch.from_numpy(hull)) and on_side[hull].sum() == 4
    assert torch.equal(graph.node_type, torch.where(graph.boundary, 6, 0))
    graph.validate(raise_on_error=True)


def test_grid_weights_and_areas_in_closed_form():
    n, size = 4, 2.0
    h = size / n
    graph = mesh_to_graph(_grid(n, size=size), dtype=torch.float64)
    p, q = graph.pos[graph.edge_index[0]].numpy(), graph.pos[graph.edge_index[1]].numpy()  # [E, 3] each
    diagonal = (p[:, 0] != q[:, 0]) & (p[:, 1] != q[:, 1])
    on_box = ((p[:, :2] == q[:, :2]) & np.isin(p[:, :2], [0.0, size])).any(axis=1)  # along a side
    # Right isosceles triangles: the right angle faces the diagonal (cot 0), 45 degrees face the legs (cot 1).
    expected = np.where(diagonal, 0.0, np.where(on_box, 0.5, 1.0))  # boundary edges: one term
    np.testing.assert_allclose(graph.cot_weight.numpy(), expected, atol=1e-15)
    # Dual areas: h^2 inside (six triangles), h^2/3 and h^2/6 at the corners, total size^2.
    area = graph.area.numpy().reshape(n + 1, n + 1)
    np.testing.assert_allclose(area[1:-1, 1:-1], h * h)
    np.testing.assert_allclose(
        [area[0, 0], area[0, -1], area[-1, -1], area[-1, 0]], np.array([2, 1, 2, 1]) * h * h / 6
    )
    assert graph.area.sum().item() == pytest.approx(size * size, rel=1e-14)


@pytest.mark.parametrize("make", [lambda: _random_planar(seed=1), lambda: load_mesh(MESHES / "square.ply")])
def test_cotangent_laplacian_on_planar_meshes(make):
    mesh = make()
    graph = mesh_to_graph(mesh, dtype=torch.float64)
    lap = _laplacian(graph)
    assert torch.allclose(lap, lap.T, atol=0)
    eig = torch.linalg.eigvalsh(lap)
    assert eig[0] > -1e-12 * eig[-1] and eig[1] > 1e-6  # PSD, one connected component
    ones = torch.ones(graph.num_nodes, dtype=torch.float64)
    assert torch.allclose(lap @ ones, torch.zeros_like(ones), atol=1e-12)
    # Linear functions are harmonic: L f = 0 at interior vertices (not on the boundary), exactly.
    f = 2 * graph.pos[:, 0] - 3 * graph.pos[:, 1] + 0.5
    lf = lap @ f
    assert torch.allclose(lf[~graph.boundary], torch.zeros(1, dtype=torch.float64), atol=1e-11)
    assert lf[graph.boundary].abs().max() > 0.01
    # Dirichlet energy: f^T L f = |grad f|^2 * area for a linear f.
    total = mesh_to_graph(mesh, dtype=torch.float64).area.sum()
    assert (f @ lf).item() == pytest.approx(13 * total.item(), rel=1e-12)
    assert total.item() == pytest.approx(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).area)


def test_graph_of_a_closed_sphere():
    mesh = _sphere(3)
    graph = mesh_to_graph(mesh, dtype=torch.float64)
    v, e, f = graph.num_nodes, graph.edge_index.shape[1] // 2, graph.face.shape[1]
    assert (v, e, f) == (642, 1920, 1280) and v - e + f == 2
    assert not graph.boundary.any() and torch.all(graph.node_type == NodeType.NORMAL)
    assert graph.area.sum().item() == pytest.approx(
        trimesh.creation.icosphere(subdivisions=3).area, rel=1e-13
    )
    lap = _laplacian(graph)
    # sum_i x_i . (L x)_i = sum over faces of area |grad_S id|^2 = 2 * area, for any surface.
    energy = torch.einsum("ni,ni->", graph.pos, lap @ graph.pos)
    assert energy.item() == pytest.approx(2 * graph.area.sum().item(), rel=1e-12)
    # L x is the mean-curvature normal: along x on the unit sphere, |L x| ~ 2 area.
    lx = lap @ graph.pos
    cos = torch.nn.functional.cosine_similarity(lx, graph.pos, dim=1)
    assert cos.min() > 0.9999
    ratio = lx.norm(dim=1) / (2 * graph.area)
    assert 0.98 < ratio.mean() < 1.05 and ratio.min() > 0.95
    assert torch.all(graph.cot_weight > 0)  # icosphere triangles are acute


def test_node_types_given_derived_and_checked():
    mesh = _grid(3)
    given = np.arange(16) % 7
    graph = mesh_to_graph(mesh, node_type=given)
    assert graph.node_type.dtype == torch.int64 and graph.node_type.tolist() == given.tolist()
    onehot = torch.nn.functional.one_hot(graph.node_type, NUM_NODE_TYPES)
    assert onehot.shape == (16, 9)
    with pytest.raises(MeshError, match=r"grid: node_type values \[9\] are not NodeType values"):
        mesh_to_graph(mesh, node_type=np.full(16, 9), name="grid")
    with pytest.raises(MeshError, match=r"node_type must be an integer array \[16\], got float64 \[16\]"):
        mesh_to_graph(mesh, node_type=np.zeros(16))
    assert [t.value for t in NodeType] == [0, 1, 2, 3, 4, 5, 6]  # MeshGraphNets' values


def test_graph_dtype_batching_and_validation():
    a, b = mesh_to_graph(_grid(2), dtype=torch.float64), mesh_to_graph(_sphere(0))
    assert (
        a.pos.dtype == a.area.dtype == a.cot_weight.dtype == torch.float64 and a.boundary.dtype == torch.bool
    )
    batch = Batch.from_data_list([a, mesh_to_graph(_grid(2), dtype=torch.float64)])
    assert torch.equal(batch.face[:, a.face.shape[1] :], a.face + a.num_nodes)  # faces shift like edges
    assert torch.equal(batch.edge_index[:, a.edge_index.shape[1] :], a.edge_index + a.num_nodes)
    assert b.edge_index.shape[1] == 60 and b.num_nodes == 12
    bad = _grid(2)
    with pytest.raises(MeshError, match="bad: planar mesh"):
        mesh_to_graph(TriangularMesh(bad.vertices, bad.faces[:, ::-1]), name="bad")


def test_face_angles():
    angles = face_angles(_random_planar(seed=2))
    np.testing.assert_allclose(angles.sum(1), np.pi, atol=1e-12)
    np.testing.assert_allclose(
        face_angles(_grid(1)), np.pi / 4 * np.array([[1, 2, 1], [1, 1, 2]]), atol=1e-15
    )
    np.testing.assert_allclose(face_angles(_sphere(0)), np.pi / 3, atol=1e-12)


def test_classify_boundary_rules():
    mesh = _grid(4, size=2.0)
    node_type = classify_boundary(mesh, inflow=lambda p: p[:, 0] == 0.0, outflow=lambda p: p[:, 0] == 2.0)
    x, boundary = mesh.vertices[:, 0], mesh_to_graph(mesh).boundary.numpy()
    assert np.all(node_type[~boundary] == NodeType.NORMAL)
    assert np.all(node_type[x == 0] == NodeType.INFLOW) and np.all(node_type[x == 2] == NodeType.OUTFLOW)
    assert np.count_nonzero(node_type == NodeType.WALL_BOUNDARY) == 6  # y = 0 and y = 2 without corners
    assert np.all(classify_boundary(mesh, wall=NodeType.OBSTACLE)[boundary] == NodeType.OBSTACLE)
    with pytest.raises(MeshError, match="g: 1 boundary vertices are both inflow and outflow, first vertex 0"):
        classify_boundary(mesh, inflow=lambda p: p[:, 1] == 0, outflow=lambda p: p[:, 0] == 0, name="g")
    with pytest.raises(MeshError, match=r"the outflow rule must map \[K, 3\] positions to \[K\] bool"):
        classify_boundary(mesh, outflow=lambda p: p[:, 0])


def test_large_meshes_are_vectorised():
    mesh = _grid(200)  # 40k vertices, 80k faces: seconds if anything looped over faces in Python
    graph = mesh_to_graph(mesh)
    assert graph.edge_index.shape[1] == 2 * (3 * 200 * 200 + 2 * 200)
    assert graph.area.double().sum().item() == pytest.approx(1.0, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# The committed meshes

COMMITTED = {
    # file: (nodes, faces, V - E + F, node type counts)
    "cylinder_channel.ply": (
        2101,
        3954,
        0,
        {"NORMAL": 1853, "INFLOW": 19, "OUTFLOW": 19, "WALL_BOUNDARY": 210},
    ),
    "square.ply": (1024, 1922, 1, {"NORMAL": 900, "WALL_BOUNDARY": 124}),
    "icosphere.ply": (642, 1280, 2, {"NORMAL": 642}),
}


@pytest.mark.parametrize("name", list(COMMITTED))
def test_committed_meshes_are_valid_and_documented(name):
    nodes, faces, euler, types = COMMITTED[name]
    mesh = load_mesh(MESHES / name)
    node_type = load_node_type(MESHES / name)
    graph = mesh_to_graph(mesh, node_type=node_type)
    assert (len(mesh.vertices), len(mesh.faces)) == (nodes, faces)
    assert nodes - graph.edge_index.shape[1] // 2 + faces == euler
    assert {
        t.name: int(np.count_nonzero(node_type == t)) for t in NodeType if np.any(node_type == t)
    } == types
    assert np.all((node_type != NodeType.NORMAL) == graph.boundary.numpy())  # tags on the boundary only
    readme = (MESHES / "README.md").read_text()
    assert f"| `{name}` | {nodes} | {faces} | {graph.edge_index.shape[1] // 2} | {euler} |" in readme
    assert (MESHES / name).stat().st_size < 150_000


def test_committed_channel_geometry():
    mesh = load_mesh(MESHES / "cylinder_channel.ply")
    node_type = load_node_type(MESHES / "cylinder_channel.ply")
    x, y = mesh.vertices[:, 0], mesh.vertices[:, 1]
    assert (x.min(), x.max(), y.min(), y.max()) == (0.0, 1.6, 0.0, 0.41) and not mesh.vertices[:, 2].any()
    # The documented rule gives the stored types.
    side = lambda p: (p[:, 1] > 0) & (p[:, 1] < 0.41)  # noqa: E731
    rule = classify_boundary(
        mesh, inflow=lambda p: (p[:, 0] == 0) & side(p), outflow=lambda p: (p[:, 0] == 1.6) & side(p)
    )
    np.testing.assert_array_equal(rule, node_type)
    # Vertices 200..247: the cylinder, counter-clockwise from angle 0, walls; nothing else on or in it.
    r = np.hypot(x - 0.2, y - 0.2)
    cylinder = np.arange(200, 248)
    np.testing.assert_allclose(r[cylinder], 0.05, rtol=1e-14)
    np.testing.assert_allclose(
        np.arctan2(y - 0.2, x - 0.2)[cylinder] % (2 * np.pi), np.arange(48) * np.pi / 24, atol=1e-12
    )
    assert np.all(node_type[cylinder] == NodeType.WALL_BOUNDARY)
    assert np.all(np.delete(r, cylinder) > 0.05 + 0.004)
    # No edge crosses the cylinder: edges between cylinder vertices join neighbours only, and the faces
    # tile the box less the inscribed 48-gon.
    graph = mesh_to_graph(mesh, node_type=node_type, dtype=torch.float64)
    send, receive = graph.edge_index.numpy() - 200
    chord = (send >= 0) & (send < 48) & (receive >= 0) & (receive < 48)
    assert chord.sum() == 2 * 48 and np.all(np.isin((send - receive)[chord] % 48, [1, 47]))
    polygon = 24 * 0.05**2 * np.sin(2 * np.pi / 48)
    assert graph.area.sum().item() == pytest.approx(1.6 * 0.41 - polygon, rel=1e-13)
    # Graded and well shaped: finer near the cylinder, no angle below 30 degrees.
    near = graph.edge_len[:, 0][(r[graph.edge_index[0]] < 0.07)].mean()
    far = graph.edge_len[:, 0][(r[graph.edge_index[0]] > 0.5)].mean()
    assert far > 2 * near and np.degrees(face_angles(mesh).min()) > 30


@pytest.fixture(scope="module")
def make_meshes(load_script):
    return load_script("make_meshes")


def test_make_meshes_reproduces_the_committed_files(make_meshes, tmp_path, capsys):
    assert make_meshes.main(["--out", str(tmp_path)]) == 0
    identical = True
    for name in COMMITTED:
        new, old = load_mesh(tmp_path / name), load_mesh(MESHES / name)
        np.testing.assert_allclose(new.vertices, old.vertices, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(load_node_type(tmp_path / name), load_node_type(MESHES / name))
        assert new.faces.shape == old.faces.shape
        if not np.array_equal(new.faces, old.faces):
            # Another CPU's last-bit rounding may flip a near-cocircular Delaunay pair: allow a handful.
            identical = False
            a = {tuple(f) for f in np.sort(new.faces, axis=1).tolist()}
            b = {tuple(f) for f in np.sort(old.faces, axis=1).tolist()}
            assert len(a ^ b) <= 0.01 * len(b), f"{name}: {len(a ^ b)} faces differ"
    if identical:
        assert (tmp_path / "README.md").read_text() == (MESHES / "README.md").read_text()
    # Existing files are never replaced without --overwrite, and nothing is recomputed.
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "square.ply").unlink()
    assert make_meshes.main(["--out", str(tmp_path)]) == 1
    assert "cylinder_channel.ply: already exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(before) - {"square.ply"})
