"""IF-Net's training data, with sdfkit's signs (``--recipe ifnet``).

From if-net ``data_processing/``: the frame centres the mesh's bounding box and scales its longest
side to 1 (``convert_to_scaled_off.py``: the same frame as Occupancy Networks'); boundary samples
(``boundary_sampling.py``): 100,000 surface points of the (watertight) mesh plus Gaussian noise of
standard deviation ``sigma``, for the sigmas its README uses, 0.1 and 0.01, with their
occupancies (``implicit_waterproofing`` there; sdfkit's sign here) and ``grid_coords`` (x and z
swapped, times 2: computed on export); voxelized point-cloud inputs
(``voxelized_pointcloud_sampling.py``): 300 and 3,000 surface points (its README's counts),
turned into a 128^3 occupancy grid on export.
"""

from __future__ import annotations

import numpy as np

from sdfkit.recipes.deepsdf import SignedMesh
from sdfkit.recipes.occnet import occnet_frame

__all__ = ["SIGMAS", "SAMPLES", "POINT_CLOUDS", "RESOLUTION", "sample_ifnet", "grid_coords", "voxelized_point_cloud"]

SIGMAS = (0.1, 0.01)
SAMPLES = 100_000
POINT_CLOUDS = (300, 3000)
RESOLUTION = 128


def sample_ifnet(signed: SignedMesh, *, rng: np.random.Generator) -> dict:
    """The ``ifnet/*`` arrays of one shape, in IF-Net's frame."""
    loc, scale = occnet_frame(signed)
    to_normalized = scale * signed.scale
    out = {"ifnet/loc": loc, "ifnet/scale": np.float64(scale)}
    points = []
    for sigma in SIGMAS:
        # ordered by face: the queries below run faster on points close together; shuffled after
        surface, _ = signed.sampler.sample(SAMPLES, rng=rng, grouped=True)
        points.append(surface / to_normalized + sigma * rng.normal(size=(SAMPLES, 3)))
    # one query for both sets: the surface's scenes and pseudonormals are built once
    inside = np.split(signed.inside(np.concatenate(points) * to_normalized), len(SIGMAS))
    for sigma, p, occupied in zip(SIGMAS, points, inside, strict=True):
        order = rng.permutation(len(p))
        out[f"ifnet/boundary_{sigma}/points"] = np.take(p.astype(np.float32), order, axis=0)
        out[f"ifnet/boundary_{sigma}/occupancies"] = np.take(occupied.astype(np.uint8), order)
    for count in POINT_CLOUDS:
        surface, _ = signed.sampler.sample(count, rng=rng)
        out[f"ifnet/pointcloud_{count}"] = (surface / to_normalized).astype(np.float32)
    return out


def grid_coords(points: np.ndarray) -> np.ndarray:
    """IF-Net's ``grid_coords``: x and z swapped, times 2 (``boundary_sampling.py``)."""
    coords = np.array(points, dtype=np.float64, copy=True)
    coords[:, 0], coords[:, 2] = points[:, 2], points[:, 0]
    return 2 * coords


def voxelized_point_cloud(points: np.ndarray, resolution: int = RESOLUTION) -> np.ndarray:
    """IF-Net's input grid: (R^3,) int8, 1 at the grid point nearest to each point, grid points
    ``linspace(-0.5, 0.5, R)`` in ``ij`` order (``create_grid_points_from_bounds``)."""
    # the nearest grid point per axis is the nearest in 3D on a regular grid
    index = np.clip(np.rint((np.asarray(points, dtype=np.float64) + 0.5) * (resolution - 1)), 0, resolution - 1)
    index = index.astype(np.int64)
    occupancies = np.zeros(resolution**3, dtype=np.int8)
    occupancies[(index[:, 0] * resolution + index[:, 1]) * resolution + index[:, 2]] = 1
    return occupancies
