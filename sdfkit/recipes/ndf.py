"""NDF's training data (``--recipe ndf``): unsigned distances to every face of the mesh as given.

From ndf ``dataprocessing/`` and ``configs/shapenet_cars.txt``: the frame centres the mesh's
bounding box and scales its longest side to 1 (``convert_to_scaled_off.py``); boundary samples
(``boundary_sampling.py``): 100,000 points sampled on the mesh plus Gaussian noise of standard
deviation ``sigma`` for the sigmas 0.08, 0.02 and 0.003, with ``df`` = the unsigned distance to
the mesh (igl there; open3d's exact closest points here); the input is a voxelized point cloud of
10,000 surface points at 256^3 (``num_points``, ``input_res``). NDF clamps distances at training
time (``max_dist``), not in the data: the stored distances are not clamped.

Unlike the other recipes NDF needs no inside: the mesh is used as given, interior parts, sheets
and holes included, which is what NDF is for.
"""

from __future__ import annotations

import numpy as np

from sdfkit.geometry.mesh import Mesh, SurfaceSampler, compact
from sdfkit.geometry.sign import unsigned_distance
from sdfkit.recipes.deepsdf import SignedMesh
from sdfkit.recipes.occnet import occnet_frame

__all__ = ["SIGMAS", "SAMPLES", "POINT_CLOUD", "RESOLUTION", "sample_ndf"]

SIGMAS = (0.08, 0.02, 0.003)
SAMPLES = 100_000
POINT_CLOUD = 10_000
RESOLUTION = 256


def sample_ndf(mesh: Mesh, signed: SignedMesh, *, rng: np.random.Generator) -> dict:
    """The ``ndf/*`` arrays of one shape, in NDF's frame: every face of ``mesh`` counts."""
    mesh = compact(mesh)
    loc, scale = occnet_frame(signed)
    vertices = (mesh.vertices - loc) / scale
    out = {"ndf/loc": loc, "ndf/scale": np.float64(scale)}
    sampler = SurfaceSampler(vertices, mesh.faces)
    points = []
    for sigma in SIGMAS:
        # ordered by face: the distance queries run faster on points close together; shuffled after
        surface, _ = sampler.sample(SAMPLES, rng=rng, grouped=True)
        points.append(surface + sigma * rng.normal(size=(SAMPLES, 3)))
    distances = np.split(unsigned_distance(vertices, mesh.faces, np.concatenate(points)), len(SIGMAS))
    for sigma, p, d in zip(SIGMAS, points, distances, strict=True):
        order = rng.permutation(len(p))
        # to float32 first: the shuffle then moves half the bytes
        out[f"ndf/boundary_{sigma}/points"] = np.take(p.astype(np.float32), order, axis=0)
        out[f"ndf/boundary_{sigma}/df"] = np.take(d.astype(np.float32), order)
    out["ndf/pointcloud"] = sampler.sample(POINT_CLOUD, rng=rng)[0].astype(np.float32)
    return out
