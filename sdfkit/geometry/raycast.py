"""open3d's ray casting, in one place: the scene of a triangle mesh and the queries on it that
the sign (:mod:`sdfkit.geometry.sign`), the watertight builder and the shape sources use.

open3d works in float32: points and rays go in as contiguous float32 arrays (:func:`tensor`),
vertices as float32 and faces as uint32 (:func:`scene`). open3d is a dependency, imported on first
use because it is slow to import (:func:`open3d`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["open3d", "scene", "tensor", "occupancy"]


def open3d():
    """The open3d module, imported on first use (about a second)."""
    import open3d as o3d  # a dependency; imported late because it is slow to import

    return o3d


def scene(vertices: np.ndarray, faces: np.ndarray):
    """An open3d ``RaycastingScene`` holding one triangle mesh: vertices (v, 3), faces (f, 3)."""
    o3d = open3d()
    result = o3d.t.geometry.RaycastingScene()
    result.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
    )
    return result


def tensor(array: np.ndarray):
    """Points (n, 3) or rays (n, 6: origin, direction) as the float32 tensor open3d's queries take."""
    return open3d().core.Tensor(np.ascontiguousarray(array, dtype=np.float32))


def occupancy(scene, points: np.ndarray) -> np.ndarray:
    """Inside the scene's closed manifold (n,) bool: ray parity, three rays voting."""
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    return scene.compute_occupancy(tensor(points), nsamples=3).numpy().astype(bool)
