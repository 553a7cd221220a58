"""Reading meshes as they come (OBJ, OFF, PLY, STL, GLB/GLTF; scenes merged) and normalizing them.

Nothing is repaired here: vertices, faces and their winding stay as in the file (``process=False``),
so that the sign computation sees the mesh as it is. What cannot work at all is refused with a
:class:`~sdfkit.errors.ShapeError` whose one-line message says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdfkit.errors import ShapeError

__all__ = ["MESH_SUFFIXES", "Mesh", "load_mesh", "normalization", "sample_surface"]

MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")


@dataclass(frozen=True)
class Mesh:
    """vertices : (v, 3) float64; faces : (f, 3) int64, indices into vertices."""

    vertices: np.ndarray
    faces: np.ndarray


def load_mesh(path: str | Path) -> Mesh:
    """Load a mesh file; a multi-part file or scene becomes one mesh (transforms applied).

    Raises :class:`ShapeError` for an unreadable, empty, non-finite or degenerate mesh.
    """
    import trimesh

    path = Path(path)
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for broken files
        raise ShapeError(f"cannot read {path.name}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
    return validate(Mesh(vertices, faces), path.name)


def validate(mesh: Mesh, name: str = "mesh") -> Mesh:
    """Check that a mesh can be sampled: faces, finite coordinates, valid indices, some area."""
    if len(mesh.faces) == 0:
        raise ShapeError(f"{name} has no faces (empty mesh)")
    if mesh.faces.min() < 0 or mesh.faces.max() >= len(mesh.vertices):
        raise ShapeError(f"{name} has face indices outside its {len(mesh.vertices)} vertices")
    used = mesh.vertices[np.unique(mesh.faces)]
    if not np.all(np.isfinite(used)):
        raise ShapeError(f"{name} has non-finite vertex coordinates (NaN or inf)")
    tri = mesh.vertices[mesh.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    extent = np.ptp(used, axis=0).max()
    if extent <= 0 or area.sum() <= 1e-12 * extent**2:
        raise ShapeError(f"{name} is degenerate: its {len(mesh.faces)} faces have no area")
    if np.count_nonzero(np.ptp(used, axis=0) > 1e-9 * extent) < 2:
        raise ShapeError(f"{name} is degenerate: all its vertices lie on a line")
    return mesh


def normalization(mesh: Mesh) -> tuple[np.ndarray, float]:
    """DeepSDF's normalization: ``normalized = (raw + offset) * scale``.

    offset = -(centre of the bounding box of the vertices used by faces); scale = 1 / (1.03 *
    the largest distance of a used vertex from that centre), so the shape fits in the unit ball
    with a 3% margin. Returns offset (3,) float64 and scale.
    """
    used = mesh.vertices[np.unique(mesh.faces)]
    offset = -(used.min(axis=0) + used.max(axis=0)) / 2.0
    radius = np.linalg.norm(used + offset, axis=1).max()
    return offset, float(1.0 / (1.03 * radius))


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, *, rng: np.random.Generator):
    """Area-weighted uniform samples on triangles.

    returns : points (count, 3) float64 and the index (count,) of the face each lies on
    """
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    cumulative = np.cumsum(area)
    face = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
    face = np.minimum(face, len(faces) - 1)
    u, v = rng.random(count), rng.random(count)
    outside = u + v > 1.0  # fold the square onto the triangle
    u[outside], v[outside] = 1.0 - u[outside], 1.0 - v[outside]
    t = tri[face]
    points = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    return points, face
