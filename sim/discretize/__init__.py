"""Where fields live: periodic planar grids, triangular meshes as graphs, the icosahedral hierarchy and
GraphCast's multi-mesh, lat-lon grids, grid <-> mesh connectivity, and the exact discrete symmetries of
each as permutations.

Geometry is plain numpy (``TriangularMesh(vertices [N, 3], faces [F, 3])``, ``edge_index [2, E]`` int64,
row 0 senders); ``mesh_to_graph`` makes a torch_geometric ``Data``.
"""

from sim.discretize.channel import Channel, channel_mesh, channel_node_type
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
    mesh_edges,
    multimesh,
    multimesh_edges,
    vertex_permutation,
)
from sim.discretize.latlon import (
    GRID_KINDS,
    GridError,
    LatLonGrid,
    area_weights,
    equiangular_grid,
    gaussian_grid,
    grid_from_coords,
    grid_permutation,
    latlon_to_xyz,
    longitude_roll,
    polar_rotation,
    xyz_to_latlon,
)
from sim.discretize.mesh import (
    MESH_FORMATS,
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
from sim.discretize.periodic import PeriodicGrid2D, spectral_resample

__all__ = [
    "Channel",
    "channel_mesh",
    "channel_node_type",
    "GRID_KINDS",
    "MESH_FORMATS",
    "NUM_NODE_TYPES",
    "GridError",
    "LatLonGrid",
    "MeshError",
    "NodeType",
    "PeriodicGrid2D",
    "TriangularMesh",
    "area_weights",
    "check_mesh",
    "classify_boundary",
    "equiangular_grid",
    "face_angles",
    "gaussian_grid",
    "grid_from_coords",
    "grid_permutation",
    "grid_to_mesh_edges",
    "grid_to_mesh_radius",
    "icosahedral_meshes",
    "icosahedral_rotations",
    "icosahedron",
    "knn_edges",
    "latlon_to_xyz",
    "load_mesh",
    "load_node_type",
    "longitude_roll",
    "max_edge_length",
    "mesh_edges",
    "mesh_to_graph",
    "mesh_to_grid_edges",
    "multimesh",
    "multimesh_edges",
    "polar_rotation",
    "repair_mesh",
    "save_mesh",
    "spectral_resample",
    "vertex_permutation",
    "xyz_to_latlon",
]
