"""Triangular meshes: the shared descriptor, loading through trimesh, and meshes as graphs."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["TriangularMesh"]


class TriangularMesh(NamedTuple):
    """A triangular mesh as two plain arrays (the GraphCast convention).

    Attributes:
        vertices: ``[num_vertices, 3]`` float64 positions (planar meshes have z = 0).
        faces: ``[num_faces, 3]`` int64 vertex indices, counter-clockwise seen from outside the surface
            (for planar meshes: seen from +z).
    """

    vertices: np.ndarray
    faces: np.ndarray
