"""Sphere models (GraphCast-style encoder-processor-decoder): their graphs, exact SO(3) equivariance of
EquivariantSphereNet through the shared kit (random rotations of everything; the icosahedral and D5
symmetries and zonal rolls acting on the data alone), the GraphCast-like baseline's lack of it, batching,
gradient checkpointing and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim.discretize.icosahedral import icosahedral_meshes, icosahedral_rotations, vertex_permutation
from sim.discretize.latlon import (
    equiangular_grid,
    gaussian_grid,
    grid_permutation,
    longitude_roll,
    polar_rotation,
    tangent_frame,
    wind_to_vector,
)
from sim.models.sphere import EquivariantSphereNet, GraphCastNet, SphereGraph, local_frame, sphere_graph
from sim.testing import assert_sphere_equivariant, sphere_equivariance_errors

F64 = torch.float64
GRID = equiangular_grid(19, 40)  # 9 degree spacing: divides 36, so D5 permutes it


def _model(cls, **kw):
    torch.manual_seed(0)
    args = dict(in_scalars=3, in_vectors=2, out_scalars=2, out_vectors=1, latent=16, steps=2)
    if cls is EquivariantSphereNet:
        args["vectors"] = 4
    return cls(**{**args, **kw})


def _inputs(graph: SphereGraph, batch: int = 2, seed: int = 0, in_vectors: int = 2):
    gen = torch.Generator().manual_seed(seed)
    G = graph.grid_pos.shape[0]
    r = graph.grid_pos.to(F64)[None, :, None]  # [1, G, 1, 3]
    vectors = torch.randn(batch, G, in_vectors, 3, dtype=F64, generator=gen)
    vectors = vectors - (vectors * r).sum(-1, keepdim=True) * r  # tangent winds
    scalars = torch.randn(batch, G, 3, dtype=F64, generator=gen)
    global_vectors = torch.randn(batch, 2, 3, dtype=F64, generator=gen)
    return scalars, vectors, global_vectors


@pytest.fixture(scope="module")
def graph():
    return sphere_graph(GRID, 2, dtype=F64)


def _d5(grid, graph):
    mesh = graph.mesh_pos.numpy()
    return [
        (R, grid_permutation(grid, R), vertex_permutation(R, mesh))
        for R in icosahedral_rotations()
        if abs(R[2, 2]) > 0.5  # keeps the polar axis: the 5 turns about it and 5 half-turns
    ]


# ---------------------------------------------------------------------------------------------------
# graphs


def test_sphere_graph_sizes_and_coverage(graph):
    G, M = GRID.nlat * GRID.nlon, 162
    assert graph.grid_pos.shape == (G, 3) and graph.mesh_pos.shape == (M, 3)
    assert graph.mesh.shape == (2, 2 * 30 * (1 + 4 + 16))  # multi-mesh M0-M2
    assert torch.unique(graph.g2m[0]).numel() == G and torch.unique(graph.m2g[1]).numel() == G
    degree = torch.bincount(graph.m2g[1], minlength=G)
    assert int(degree.min()) >= 1 and int(degree.max()) == 3
    # the pole rows sit on icosahedron vertices 11 (south) and 0 (north): one decoder edge each, from it
    south, north = torch.arange(GRID.nlon), torch.arange(G - GRID.nlon, G)
    for rows, vertex in ((south, 11), (north, 0)):
        assert (degree[rows] == 1).all()
        assert (graph.m2g[0][torch.isin(graph.m2g[1], rows)] == vertex).all()


def test_sphere_graph_is_symmetric_under_d5_and_the_icosahedral_group(graph):
    sym = _d5(GRID, graph)
    assert len(sym) == 10
    model = _model(EquivariantSphereNet).double()
    sphere_equivariance_errors(model, *_inputs(graph, batch=1), graph, symmetries=sym)  # checks the edges
    # an icosahedral grid (level-2 vertices) under all 60 rotations, mesh level 1
    points = icosahedral_meshes(2)[-1].vertices
    g = sphere_graph(points, 1, dtype=F64)
    rot = icosahedral_rotations()
    sym = [(R, vertex_permutation(R, points), vertex_permutation(R, g.mesh_pos.numpy())) for R in rot]
    sphere_equivariance_errors(model, *_inputs(g, batch=1), g, symmetries=sym)


def test_an_asymmetric_graph_is_refused(graph):
    model = _model(EquivariantSphereNet).double()
    sym = _d5(GRID, graph)[1:2]
    broken = graph._replace(mesh=graph.mesh[:, 1:])  # one edge fewer: no longer symmetric
    with pytest.raises(ValueError, match=r"does not map graph\.mesh onto itself"):
        sphere_equivariance_errors(model, *_inputs(graph, batch=1), broken, symmetries=sym)


def test_local_frame_matches_the_grid_tangent_frame_off_the_poles():
    lat, lon = np.meshgrid(GRID.lat[1:-1], GRID.lon, indexing="ij")
    want = tangent_frame(lat, lon).reshape(-1, 2, 3)
    pos = torch.from_numpy(GRID.xyz()[1:-1].reshape(-1, 3))
    got = local_frame(pos)
    torch.testing.assert_close(got[:, :2], torch.from_numpy(want), atol=1e-15, rtol=0)
    torch.testing.assert_close(got[:, 2], pos)


# ---------------------------------------------------------------------------------------------------
# equivariance


def test_equivariant_model_is_so3_equivariant(graph):
    model = _model(EquivariantSphereNet)
    reports = assert_sphere_equivariant(model, *_inputs(graph), graph)
    assert max(reports[F64]) < 1e-12


def test_equivariant_model_under_d5_acting_on_the_data(graph):
    model = _model(EquivariantSphereNet)
    assert_sphere_equivariant(model, *_inputs(graph), graph, symmetries=_d5(GRID, graph))


def test_equivariant_model_under_the_60_icosahedral_rotations():
    points = icosahedral_meshes(2)[-1].vertices  # an icosahedral grid of 162 points
    g = sphere_graph(points, 1, dtype=F64)
    rot = icosahedral_rotations()
    sym = [(R, vertex_permutation(R, points), vertex_permutation(R, g.mesh_pos.numpy())) for R in rot]
    model = _model(EquivariantSphereNet)
    reports = assert_sphere_equivariant(model, *_inputs(g), g, symmetries=sym, dtypes=(F64,))
    assert len(reports[F64]) == 60


def test_zonal_roll_of_the_data_rolls_the_prediction(graph):
    """The user's view: roll every field by 72 degrees of longitude, keep the rotation axis (it is fixed by
    the turn), turn the sun direction: the (u, v) prediction is the rolled one."""
    model = _model(EquivariantSphereNet).double().eval()
    lat, lon = np.meshgrid(GRID.lat, GRID.lon, indexing="ij")
    frame = torch.from_numpy(tangent_frame(lat, lon).reshape(-1, 2, 3))
    gen = torch.Generator().manual_seed(3)
    u, v, z = torch.randn(3, 1, GRID.nlat, GRID.nlon, dtype=F64, generator=gen)
    rotation = torch.tensor([[[0.0, 0.0, 1.0], [0.6, 0.0, 0.8]]], dtype=F64)  # Omega, sun
    shift, R = longitude_roll(GRID, 72.0), torch.from_numpy(polar_rotation(72.0))

    def predict(u, v, z, globals_):
        vec = wind_to_vector(u.reshape(1, -1), v.reshape(1, -1), frame)[:, :, None]  # [1, G, 1, 3]
        scalars = torch.stack([z, z**2, u * 0 + 1], -1).reshape(1, -1, 3)
        s, w = model(scalars, torch.cat([vec, vec], 2), globals_, graph)
        uv = (w[0, :, 0, None, :] * frame).sum(-1).reshape(GRID.nlat, GRID.nlon, 2)
        return s[0].reshape(GRID.nlat, GRID.nlon, 2), uv

    with torch.no_grad():
        s0, uv0 = predict(u, v, z, rotation)
        roll = lambda x: torch.roll(x, shift, dims=-1)  # noqa: E731
        turned = torch.stack([rotation[0, 0], rotation[0, 1] @ R.T])[None]
        s1, uv1 = predict(roll(u), roll(v), roll(z), turned)
    torch.testing.assert_close(s1, torch.roll(s0, shift, dims=1), atol=1e-12, rtol=0)
    torch.testing.assert_close(uv1, torch.roll(uv0, shift, dims=1), atol=1e-12, rtol=0)
    # the sun matters: leaving it unturned changes the prediction
    with torch.no_grad():
        s2, _ = predict(roll(u), roll(v), roll(z), rotation)
    assert (s2 - torch.roll(s0, shift, dims=1)).abs().max() > 1e-4


def test_graphcast_baseline_is_permutation_equivariant_but_not_rotation_equivariant(graph):
    model = _model(GraphCastNet)
    assert_sphere_equivariant(model, *_inputs(graph), graph, rotations=[torch.eye(3, dtype=F64)] * 2)
    with pytest.raises(AssertionError, match="not SO\\(3\\)-equivariant"):
        assert_sphere_equivariant(model, *_inputs(graph), graph, dtypes=(F64,))
    with pytest.raises(AssertionError, match="not SO\\(3\\)-equivariant"):  # not even under D5
        assert_sphere_equivariant(
            model, *_inputs(graph), graph, symmetries=_d5(GRID, graph)[1:], dtypes=(F64,)
        )


def test_outputs_are_tangent_and_the_rotation_vector_is_used(graph):
    for cls in (EquivariantSphereNet, GraphCastNet):
        model = _model(cls).double()
        s, v, g = _inputs(graph)
        with torch.no_grad():
            out_s, out_v = model(s, v, g, graph)
            assert out_s.shape == (2, GRID.nlat * GRID.nlon, 2) and out_v.shape == (
                2,
                GRID.nlat * GRID.nlon,
                1,
                3,
            )
            radial = (out_v * graph.grid_pos[None, :, None]).sum(-1)
            assert radial.abs().max() < 1e-12
            tilted = g.clone()
            tilted[:, 0] = torch.tensor([0.0, 0.5, 0.866])
            assert (model(s, v, tilted, graph)[0] - out_s).abs().max() > 1e-4


# ---------------------------------------------------------------------------------------------------
# batching, checkpointing, sizes


@pytest.mark.parametrize("cls", [EquivariantSphereNet, GraphCastNet])
def test_batch_samples_are_independent_and_checkpointing_changes_nothing(cls, graph):
    model = _model(cls).double()
    s, v, g = _inputs(graph, batch=3)
    out = model(s, v, g, graph)
    alone = model(s[1:2], v[1:2], g[1:2], graph)
    torch.testing.assert_close(out[0][1:2], alone[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(out[1][1:2], alone[1], atol=1e-12, rtol=0)
    loss = out[0].square().mean() + out[1].square().mean()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    model.checkpoint = True
    out2 = model(s, v, g, graph)
    grads2 = torch.autograd.grad(out2[0].square().mean() + out2[1].square().mean(), list(model.parameters()))
    torch.testing.assert_close(out2[0], out[0], atol=0, rtol=0)
    for a, b in zip(grads, grads2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert all(gr.abs().sum() > 0 for gr in grads)


def test_models_without_scalar_or_vector_inputs_and_float32(graph):
    g32 = graph.to(dtype=torch.float32)
    for cls in (EquivariantSphereNet, GraphCastNet):
        model = _model(cls, in_scalars=0, global_vectors=0, out_scalars=0)
        _, v, _ = _inputs(graph)
        s_out, v_out = model(None, v.float(), None, g32)
        assert s_out.shape == (2, GRID.nlat * GRID.nlon, 0) and v_out.dtype == torch.float32


def test_a_gaussian_grid_and_a_finer_mesh_work():
    grid = gaussian_grid(12, 24)
    g = sphere_graph(grid, 3)
    assert g.mesh_pos.shape[0] == 642
    model = _model(EquivariantSphereNet)
    s, v, gl = (x.float() for x in _inputs(g, batch=1))
    assert model(s, v, gl, g)[0].isfinite().all()


# ---------------------------------------------------------------------------------------------------
# bad input


def test_bad_arguments_and_inputs_raise_one_line(graph):
    with pytest.raises(ValueError, match=r"^EquivariantSphereNet: needs an output"):
        EquivariantSphereNet(in_scalars=1, in_vectors=1, out_scalars=0, out_vectors=0)
    with pytest.raises(ValueError, match=r"latent"):
        GraphCastNet(in_scalars=1, in_vectors=1, out_scalars=1, out_vectors=1, latent=0)
    model = _model(EquivariantSphereNet).double()
    s, v, g = _inputs(graph)
    with pytest.raises(
        ValueError,
        match=r"^EquivariantSphereNet: scalars must be \[B=2, G=760, in_scalars=3\], got \[2, 760, 4\]$",
    ):
        model(torch.cat([s, s[..., :1]], -1), v, g, graph)
    with pytest.raises(
        ValueError, match=r"vectors must be \[B=2, G=760, in_vectors=2, d=3\], got \[2, 760, 2, 2\]$"
    ):
        model(s, v[..., :2], g, graph)
    with pytest.raises(ValueError, match=r"graph must be a SphereGraph"):
        model(s, v, g, tuple(graph))
    bad = graph._replace(g2m=graph.g2m.clone())
    bad.g2m[1, 0] = 162
    with pytest.raises(ValueError, match=r"graph\.g2m receivers must be in \[0, 162\), got 162"):
        model(s, v, g, bad)
    lonely = graph._replace(m2g=graph.m2g[:, graph.m2g[1] != 5])
    with pytest.raises(ValueError, match=r"graph\.m2g leaves grid points without an edge"):
        model(s, v, g, lonely)
    with pytest.raises(ValueError, match=r"^sphere_graph: grid points must be finite and nonzero$"):
        sphere_graph(np.zeros((3, 3)), 1)
    with pytest.raises(ValueError, match=r"no mesh vertex within radius"):
        sphere_graph(GRID, 1, radius_fraction=0.05)
