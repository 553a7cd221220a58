"""Occupancy Networks' (and ConvONet's) training data, with sdfkit's signs (``--recipe occnet``).

From occupancy_networks ``scripts/sample_mesh.py`` run as for its ShapeNet data (``--resize``,
``--packbits``): the frame centres the mesh's bounding box and scales its longest side to 1
(``loc`` = box centre, ``scale`` = longest side, ``bbox_padding`` 0; ``points = (raw - loc) /
scale``); ``points_size`` 100,000 points uniform in the cube of side ``1 + points_padding`` =
1.1 (``points_uniform_ratio`` 1.0) with their occupancies; ``pointcloud_size`` 100,000 surface
points with the normals of their faces. ConvONet reads the same ``points.npz`` for its IoU.

Where OccNet decides occupancy with ``check_mesh_contains`` on a mesh made watertight by
mesh-fusion (depth renders and TSDF fusion, which thickens thin parts and closes holes by
guesswork), sdfkit uses its own outer surface and signs (docs/shapenet.md): occupancy = SDF < 0.
"""

from __future__ import annotations

import numpy as np

from sdfkit.recipes.deepsdf import SignedMesh

__all__ = ["POINTS", "SURFACE_POINTS", "PADDING", "occnet_frame", "sample_occnet"]

POINTS = 100_000
SURFACE_POINTS = 100_000
PADDING = 0.1


def occnet_frame(signed: SignedMesh) -> tuple[np.ndarray, float]:
    """OccNet's ``loc`` (3,) and ``scale`` of a mesh, float64: its bounding box's centre (the same
    box as DeepSDF's offset) and longest side."""
    return -signed.offset, float(np.max(signed.extent))


def sample_occnet(signed: SignedMesh, *, rng: np.random.Generator) -> dict:
    """The ``occnet/*`` arrays of one shape, in OccNet's frame."""
    loc, scale = occnet_frame(signed)
    to_normalized = scale * signed.scale  # OccNet's frame -> sdfkit's: the same centre
    points = (1.0 + PADDING) * (rng.random((POINTS, 3)) - 0.5)
    inside = signed.inside(points * to_normalized)
    surface, face = signed.sampler.sample(SURFACE_POINTS, rng=rng)
    return {
        "occnet/points": points.astype(np.float32),
        "occnet/occupancies": inside.astype(np.uint8),
        "occnet/surface_points": (surface / to_normalized).astype(np.float32),
        "occnet/surface_normals": np.take(signed.normals, face, axis=0).astype(np.float32),
        "occnet/loc": loc,
        "occnet/scale": np.float64(scale),
    }
