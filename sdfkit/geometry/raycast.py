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


_VOTERS = np.array([[1.0, 2.0**0.5, 3.0**0.5], [-(5.0**0.5), 1.0, 7.0**0.5], [3.0**0.5, -(11.0**0.5), 1.0]])
_VOTERS /= np.linalg.norm(_VOTERS, axis=1, keepdims=True)
"""The directions of :func:`occupancy`'s three rays: along no axis, diagonal or face plane, so
that rays from points of a part built on a grid (a gear's teeth, a box's faces) are unlikely to
run along its faces or through its edges, where a hit can be counted twice or not at all."""


def occupancy(scene, points: np.ndarray) -> np.ndarray:
    """Inside the scene's closed manifold (n,) bool: ray parity, three rays voting, cast along
    :data:`_VOTERS`. (open3d's ``compute_occupancy``, three rays, called points beside
    cycloidal.ply's gears inside, 2-4 cells from any face, where 64 random rays all crossed the
    union an even number of times; its three directions are the same for every point, and there
    two of them miscounted.)"""
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    rays = np.empty((len(points), len(_VOTERS), 6), dtype=np.float32)
    rays[:, :, :3] = np.asarray(points)[:, None, :]
    rays[:, :, 3:] = _VOTERS[None]
    crossings = scene.count_intersections(open3d().core.Tensor(rays.reshape(-1, 6))).numpy()
    odd = (crossings.reshape(len(points), len(_VOTERS)) % 2).sum(axis=1)
    return 2 * odd > len(_VOTERS)
