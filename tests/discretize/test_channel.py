"""The channel-with-cylinder meshes of sim.discretize.channel, for other cylinder positions and sizes."""

from __future__ import annotations

import numpy as np
import pytest

from sim.discretize import Channel, NodeType, channel_mesh, channel_node_type, mesh_to_graph


@pytest.mark.parametrize(
    "channel", [Channel(centre=(0.3, 0.16), radius=0.035), Channel(centre=(0.25, 0.24), radius=0.06)]
)
def test_meshes_for_moved_and_resized_cylinders(channel):
    mesh = channel_mesh(channel, h_max=0.03, relax_steps=40, seed=1)  # checked inside: manifold, ccw
    graph = mesh_to_graph(mesh, node_type=channel_node_type(mesh, channel))
    polygon = 48 / 2 * channel.radius**2 * np.sin(2 * np.pi / 48)
    assert float(graph.area.double().sum()) == pytest.approx(
        channel.length * channel.height - polygon, abs=1e-6
    )
    p = mesh.vertices[:, :2]
    r = np.hypot(p[:, 0] - channel.centre[0], p[:, 1] - channel.centre[1])
    assert r.min() == pytest.approx(channel.radius, rel=1e-12)  # nothing inside the cylinder
    types = graph.node_type.numpy()
    on_cylinder = np.isclose(r, channel.radius)
    assert on_cylinder.sum() == 48 and np.all(types[on_cylinder] == NodeType.WALL_BOUNDARY)
    assert np.all(types[(p[:, 0] == 0.0) & (p[:, 1] > 0) & (p[:, 1] < channel.height)] == NodeType.INFLOW)
    assert np.all(types[~graph.boundary.numpy()] == NodeType.NORMAL)
    # graded: edges near the cylinder are ~ 2 pi r / 48, far ones approach h_max
    near = on_cylinder[graph.edge_index[0].numpy()] & on_cylinder[graph.edge_index[1].numpy()]
    lengths = graph.edge_len.numpy().ravel()
    assert lengths[near].mean() == pytest.approx(2 * np.pi * channel.radius / 48, rel=0.02)
    assert np.quantile(lengths, 0.99) < 1.5 * 0.03


def test_same_seed_same_mesh_and_the_default_is_the_committed_geometry():
    a = channel_mesh(Channel(radius=0.04), relax_steps=10, h_max=0.04, seed=3)
    b = channel_mesh(Channel(radius=0.04), relax_steps=10, h_max=0.04, seed=3)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    assert Channel() == Channel(length=1.6, height=0.41, centre=(0.2, 0.2), radius=0.05)


def test_bad_channels():
    with pytest.raises(ValueError, match=r"cylinder \(centre \(0.2, 0.05\), radius 0.05\) must lie inside"):
        Channel(centre=(0.2, 0.05))
    with pytest.raises(ValueError, match="radius must be a finite float > 0, got -0.1"):
        Channel(radius=-0.1)
    with pytest.raises(ValueError, match="cylinder_points must be an int >= 8, got 4"):
        channel_mesh(cylinder_points=4)
