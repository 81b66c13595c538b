"""Graded triangular meshes of a 2D channel with a circular cylinder (flow past a cylinder).

The channel of MeshGraphNets' CylinderFlow data and of the DFG benchmark (Schaefer & Turek 1996) is
``[0, length] x [0, height]`` minus a disc; :class:`Channel` describes it (the defaults: ``[0, 1.6] x [0,
0.41]``, the disc of radius 0.05 around ``(0.2, 0.2)``, as ``meshes/cylinder_channel.ply``). Training data
varies the cylinder's position and size, so every trajectory gets its own mesh from
:func:`channel_mesh`.

No mesh generator is needed: fixed points on the box and the cylinder (spaced by the size function),
interior points drawn with density ``1 / h^2`` and relaxed by DistMesh's spring forces (Persson & Strang
2004), then one Delaunay triangulation (scipy) without the triangles inside the cylinder, whose disc is
replaced by its inscribed polygon. The target spacing ``h`` grows linearly with the distance from the
cylinder from ``2 pi r / cylinder_points`` to ``h_max``. Node types (:func:`channel_node_type`): inflow on
``x = 0`` and outflow on ``x = length`` (corners excluded), walls on ``y = 0``, ``y = height`` and the
cylinder.

    channel = Channel(centre=(0.3, 0.21), radius=0.04)
    mesh = channel_mesh(channel, seed=3)                 # TriangularMesh, z = 0, counter-clockwise
    node_type = channel_node_type(mesh, channel)         # [N] MeshGraphNets' node types
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay

from sim.discretize.mesh import TriangularMesh, check_mesh, classify_boundary, mesh_to_graph

__all__ = ["Channel", "channel_mesh", "channel_node_type"]


@dataclass(frozen=True)
class Channel:
    """The channel ``[0, length] x [0, height]`` minus the disc of ``radius`` around ``centre``.

    Raises:
        ValueError: a non-positive size, or a cylinder that does not lie inside the channel with a gap.
    """

    length: float = 1.6
    height: float = 0.41
    centre: tuple[float, float] = (0.2, 0.2)
    radius: float = 0.05

    def __post_init__(self) -> None:
        for name in ("length", "height", "radius"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"Channel: {name} must be a finite float > 0, got {v!r}")
        cx, cy = (float(c) for c in self.centre)
        object.__setattr__(self, "centre", (cx, cy))
        gap = min(cx, self.length - cx, cy, self.height - cy) - self.radius
        if not gap > 0:
            raise ValueError(
                f"Channel: the cylinder (centre {self.centre}, radius {self.radius}) must lie inside "
                f"[0, {self.length}] x [0, {self.height}] clear of the walls"
            )

    def size(self, p: np.ndarray, *, cylinder_points: int, h_max: float, growth: float) -> np.ndarray:
        """Target edge length at points ``p [K, 2]``: ``h_min`` on the cylinder, growing to ``h_max``.

        Returns:
            ``[K]``.
        """
        h_min = 2 * np.pi * self.radius / cylinder_points
        distance = np.hypot(p[:, 0] - self.centre[0], p[:, 1] - self.centre[1]) - self.radius
        return np.minimum(h_max, h_min + growth * np.maximum(distance, 0.0))

    def distance(self, p: np.ndarray) -> np.ndarray:
        """Signed distance-like function at ``p [K, 2]``: negative inside, zero on the boundary. ``[K]``."""
        box = -np.minimum.reduce([p[:, 0], self.length - p[:, 0], p[:, 1], self.height - p[:, 1]])
        cylinder = self.radius - np.hypot(p[:, 0] - self.centre[0], p[:, 1] - self.centre[1])
        return np.maximum(box, cylinder)


def _graded_segment(a, b, size, *, samples: int = 4096) -> np.ndarray:
    """Points from ``a`` (included) to ``b`` (excluded) spaced by ``size``. Returns ``[K, 2]``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    t = np.linspace(0.0, 1.0, samples + 1)  # [S+1]
    inverse_h = 1.0 / size(a + t[:, None] * (b - a))  # [S+1]
    arc = np.concatenate([[0.0], np.cumsum((inverse_h[1:] + inverse_h[:-1]) / 2 * np.diff(t))])
    arc *= np.hypot(*(b - a))  # number of target spacings from a
    count = max(1, int(round(arc[-1])))
    ts = np.interp(np.linspace(0.0, arc[-1], count + 1)[:-1], arc, t)  # [count]
    return a + ts[:, None] * (b - a)  # exact coordinates on axis-parallel sides


def channel_mesh(
    channel: Channel = Channel(),
    *,
    cylinder_points: int = 48,
    h_max: float = 0.02,
    growth: float = 0.3,
    relax_steps: int = 100,
    seed: int = 0,
) -> TriangularMesh:
    """The graded channel mesh (see the module docstring), planar, counter-clockwise, checked.

    Args:
        channel: the geometry.
        cylinder_points: vertices on the cylinder (``>= 8``).
        h_max: spacing far from the cylinder.
        growth: ``dh / d(distance from the cylinder)``.
        relax_steps: DistMesh iterations.
        seed: interior points are random (reproducibly).

    Returns:
        ``vertices [N, 3]`` (z = 0; the boundary points first: box counter-clockwise from the origin, then
        the cylinder counter-clockwise from angle 0), ``faces [F, 3]``.

    Raises:
        ValueError: bad arguments; MeshError: the result fails :func:`~sim.discretize.mesh.check_mesh`.
    """
    if isinstance(cylinder_points, bool) or not isinstance(cylinder_points, int) or cylinder_points < 8:
        raise ValueError(f"channel_mesh: cylinder_points must be an int >= 8, got {cylinder_points!r}")
    for name, v in (("h_max", h_max), ("growth", growth)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"channel_mesh: {name} must be a finite float > 0, got {v!r}")
    rng = np.random.default_rng(seed)
    L, H = channel.length, channel.height
    centre = np.asarray(channel.centre)

    def size(p: np.ndarray) -> np.ndarray:
        return channel.size(p, cylinder_points=cylinder_points, h_max=h_max, growth=growth)

    corners = [(0.0, 0.0), (L, 0.0), (L, H), (0.0, H)]
    box = np.concatenate(
        [_graded_segment(corners[i], corners[(i + 1) % 4], size) for i in range(4)]
    )  # [B, 2]
    angle = 2 * np.pi * np.arange(cylinder_points) / cylinder_points
    cylinder = centre + channel.radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # [C, 2]
    fixed = np.concatenate([box, cylinder])  # [B + C, 2]
    num_fixed = len(fixed)

    # Interior points with density 1 / h^2, as many as equilateral triangles of size h need (less the
    # boundary's share), kept away from the boundary.
    probe = rng.uniform((0.0, 0.0), (L, H), size=(100_000, 2))
    inside = channel.distance(probe) < 0
    area = L * H * inside.mean()
    wanted = int(round(area * np.mean(2 / np.sqrt(3) / size(probe[inside]) ** 2))) - num_fixed // 2
    candidates = rng.uniform((0.0, 0.0), (L, H), size=(400_000, 2))
    candidates = candidates[channel.distance(candidates) < -0.3 * size(candidates)]
    h_min = size(fixed[-1:])[0]
    accept = rng.uniform(size=len(candidates)) < (h_min / size(candidates)) ** 2
    points = np.concatenate([fixed, candidates[accept][:wanted]])  # [N, 2]

    # DistMesh relaxation: repulsive springs along the Delaunay edges, rest lengths proportional to h.
    last = np.full_like(points, np.inf)
    for _ in range(relax_steps):
        if np.max(np.hypot(*(points - last).T)) > 0.1 * h_min:  # re-triangulate after large moves
            last = points.copy()
            bars = _edges(points, channel)
        vec = points[bars[:, 0]] - points[bars[:, 1]]  # [M, 2]
        length = np.hypot(vec[:, 0], vec[:, 1])  # [M]
        h = size((points[bars[:, 0]] + points[bars[:, 1]]) / 2)  # [M]
        rest = 1.2 * h * np.sqrt(np.sum(length**2) / np.sum(h**2))
        force = (np.maximum(rest - length, 0.0) / length)[:, None] * vec  # [M, 2]
        total = np.zeros_like(points)
        np.add.at(total, bars[:, 0], force)
        np.add.at(total, bars[:, 1], -force)
        total[:num_fixed] = 0.0
        points = points + 0.2 * total
        # Points pushed out of the domain come back onto its boundary (and are dropped below).
        points[:, 0] = np.clip(points[:, 0], 0.0, L)
        points[:, 1] = np.clip(points[:, 1], 0.0, H)
        radius = np.hypot(points[:, 0] - centre[0], points[:, 1] - centre[1])
        sunk = np.flatnonzero(radius < channel.radius)
        points[sunk] = centre + (points[sunk] - centre) * (channel.radius / radius[sunk])[:, None]
    keep = np.ones(len(points), dtype=bool)
    keep[num_fixed:] = channel.distance(points[num_fixed:]) < -0.5 * size(points[num_fixed:])
    points = points[keep]

    faces = delaunay_ccw(points)
    faces = faces[channel.distance(points[faces].mean(axis=1)) < 0]  # drop the cylinder's inside
    mesh = TriangularMesh(np.concatenate([points, np.zeros((len(points), 1))], axis=1), faces)
    name = f"channel_mesh({channel})"
    check_mesh(mesh, name=name)
    _check_channel(mesh, channel, num_box=len(box), cylinder_points=cylinder_points, name=name)
    return mesh


def _edges(points: np.ndarray, channel: Channel) -> np.ndarray:
    """Unique edges ``[M, 2]`` of the Delaunay triangles of ``points [N, 2]`` that lie in the channel."""
    tri = Delaunay(points).simplices  # [T, 3]
    tri = tri[channel.distance(points[tri].mean(axis=1)) < 0]
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)  # [3T, 2]
    keys = np.unique(edges[:, 0] * len(points) + edges[:, 1])  # [M]
    return np.stack([keys // len(points), keys % len(points)], axis=1)


def delaunay_ccw(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles ``[F, 3]`` of ``points [N, 2]``, counter-clockwise, without zero-area ones."""
    faces = Delaunay(points).simplices.astype(np.int64)  # [F, 3]
    a, b, c = (points[faces[:, k]] for k in range(3))
    signed = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    faces[signed < 0] = faces[signed < 0][:, ::-1]
    return faces[np.abs(signed) > 1e-14]  # flat triangles along collinear boundary points, if any


def _check_channel(
    mesh: TriangularMesh, channel: Channel, *, num_box: int, cylinder_points: int, name: str
) -> None:
    """The channel's own invariants: the triangles tile the box minus the cylinder's inscribed polygon."""
    graph = mesh_to_graph(mesh)
    edges = graph.edge_index.numpy()
    on_cylinder = np.zeros(len(mesh.vertices), dtype=bool)
    on_cylinder[num_box : num_box + cylinder_points] = True
    chord = on_cylinder[edges[0]] & on_cylinder[edges[1]]
    step = (edges[1, chord] - edges[0, chord]) % cylinder_points
    if not np.all((step == 1) | (step == cylinder_points - 1)):
        raise RuntimeError(f"{name}: an edge crosses the cylinder")
    if not graph.boundary.numpy()[num_box : num_box + cylinder_points].all():
        raise RuntimeError(f"{name}: a cylinder point is not on the boundary")
    polygon = cylinder_points / 2 * channel.radius**2 * np.sin(2 * np.pi / cylinder_points)
    expected = channel.length * channel.height - polygon
    if abs(float(graph.area.double().sum()) - expected) > 1e-6:
        raise RuntimeError(f"{name}: area {float(graph.area.sum())}, expected {expected}")


def channel_node_type(mesh: TriangularMesh, channel: Channel = Channel()) -> np.ndarray:
    """Node types ``[N]``: inflow on x = 0, outflow on x = length (without the corners), wall elsewhere on
    the boundary (MeshGraphNets' values, :class:`~sim.discretize.mesh.NodeType`)."""
    open_side = lambda p: (p[:, 1] > 0.0) & (p[:, 1] < channel.height)  # noqa: E731
    return classify_boundary(
        mesh,
        inflow=lambda p: (p[:, 0] == 0.0) & open_side(p),
        outflow=lambda p: (p[:, 0] == channel.length) & open_side(p),
        name=f"channel {channel}",
    )
