"""SDF samples of one mesh, DeepSDF's recipe, with sdfkit's signs.

Frame: DeepSDF's normalized frame (see :func:`sdfkit.mesh.normalization`): the shape lies in the
unit ball. Sign convention: negative inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdfkit.errors import ShapeError
from sdfkit.mesh import Mesh, compact, normalization, sample_surface
from sdfkit.sign import outer_surface, signed_distance

__all__ = ["MeshSamples", "sample_mesh", "near_surface_points"]

VARIANCES = (0.005, 0.0005)
"""DeepSDF's two Gaussian perturbations of surface points: variances, not standard deviations."""


@dataclass(frozen=True)
class MeshSamples:
    """Everything sdfkit stores for one mesh.

    offset : (3,) float64, scale : float64 -- normalized = (raw + offset) * scale, kept in float64 so
        that a mesh placed far from the origin maps back exactly
    sdf_points : (K, 3) float32, normalized frame, shuffled
    sdf_values : (K,) float32, signed distance, negative inside
    surface_points, surface_normals : (S, 3) float32 on the outer surface, unit outward normals
    """

    offset: np.ndarray
    scale: np.float64
    sdf_points: np.ndarray
    sdf_values: np.ndarray
    surface_points: np.ndarray
    surface_normals: np.ndarray


def near_surface_points(surface_points: np.ndarray, count: int, *, rng: np.random.Generator) -> np.ndarray:
    """DeepSDF's query points: 47/50 of ``count`` are surface points plus Gaussian noise of
    variance 0.005 (half) and 0.0005 (half); 3/50 are uniform in [-1, 1]^3. Exactly ``count``
    points, shuffled. surface_points : (m, 3), drawn from with replacement."""
    near = int(round(count * 47 / 50))
    picks = surface_points[rng.integers(0, len(surface_points), near)]
    half = near // 2
    sigma = np.sqrt(np.array(VARIANCES))
    noise = rng.normal(size=(near, 3))
    noise[:half] *= sigma[0]
    noise[half:] *= sigma[1]
    points = np.concatenate([picks + noise, rng.uniform(-1.0, 1.0, size=(count - near, 3))])
    return points[rng.permutation(count)]


def sample_mesh(
    mesh: Mesh,
    *,
    samples: int = 250_000,
    surface_samples: int = 30_000,
    rays: int = 32,
    rng: np.random.Generator,
) -> MeshSamples:
    """Normalize a mesh, find its outer surface, and sample SDF and surface points.

    Raises :class:`ShapeError` when no face is visible from outside.
    """
    mesh = compact(mesh)
    offset, scale = normalization(mesh)
    vertices = (mesh.vertices + offset) * scale
    outer = outer_surface(vertices, mesh.faces, rays=rays, rng=rng)
    if len(outer.faces) == 0:
        raise ShapeError("no face of the mesh is visible from outside")
    points, face = sample_surface(outer.vertices, outer.faces, surface_samples, rng=rng)
    tri = outer.vertices[outer.faces[face]]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    # the SDF queries perturb fresh surface points, independent of the stored ones
    base, _ = sample_surface(outer.vertices, outer.faces, max(samples, 1), rng=rng)
    queries = near_surface_points(base, samples, rng=rng)
    values = signed_distance(outer, queries)
    return MeshSamples(
        offset=np.asarray(offset, dtype=np.float64),
        scale=np.float64(scale),
        sdf_points=queries.astype(np.float32),
        sdf_values=values.astype(np.float32),
        surface_points=points.astype(np.float32),
        surface_normals=normals.astype(np.float32),
    )
