"""Small geometric facts sdfkit uses in many places, written once: cell centres, face normals and
areas, DeepSDF's normalization, and the random generator of one shape."""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["cell_centres", "face_normals", "face_areas", "deepsdf_normalization", "shape_rng"]


def cell_centres(resolution: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Centres of the ``resolution`` cells of an axis over [low, high]: (R,) float64."""
    return low + (high - low) * (np.arange(resolution) + 0.5) / resolution


def face_normals(vertices: np.ndarray, faces: np.ndarray, *, unit: bool = True) -> np.ndarray:
    """Normals (f, 3) of triangles by the right-hand rule; ``unit=False``: twice the area long.
    Degenerate triangles get a zero normal."""
    tri = np.asarray(vertices)[np.asarray(faces)]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if unit:
        normal = normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-300)
    return normal


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Areas (f,) of triangles."""
    return 0.5 * np.linalg.norm(face_normals(vertices, faces, unit=False), axis=1)


def deepsdf_normalization(points: np.ndarray) -> tuple[np.ndarray, float]:
    """DeepSDF's normalization of a shape given by points (its vertices, or samples of its
    surface): ``normalized = (raw + offset) * scale`` with offset = -(centre of the bounding box)
    and scale = 1 / (1.03 * the largest distance from that centre): the shape fits in the unit
    ball with a 3% margin. Returns offset (3,) float64 and scale (float)."""
    points = np.asarray(points, dtype=np.float64)
    offset = -(points.min(axis=0) + points.max(axis=0)) / 2.0
    radius = float(np.linalg.norm(points + offset, axis=1).max())
    return offset, 1.0 / (1.03 * radius)


def shape_rng(seed: int, shape_id: str, *streams: int) -> np.random.Generator:
    """The random generator of one shape: from the run's seed and the shape's id (and a stream
    number per use), so any process, in any order, draws the same numbers for it."""
    return np.random.default_rng([seed, zlib.crc32(shape_id.encode()), *streams])
