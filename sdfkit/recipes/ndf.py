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

Export (``sdfkit export --to ndf``): ``<synset>/<id>/boundary_<sigma>_samples.npz`` (points,
grid_coords, df), ``voxelized_point_cloud_256res_10000points.npz`` and ``split.npz``. NDF opens
each split entry as it is (not under a data folder), so entries are paths relative to the folder
``export`` ran from (``--relative-to``), like NDF's own ``datasets/shapenet/data/<synset>/<id>``
relative to its repository: run NDF from that folder, and the export may move with it.
"""

from __future__ import annotations

import os

import numpy as np

from sdfkit.geometry.mesh import Mesh, SurfaceSampler, compact
from sdfkit.geometry.sign import unsigned_distance
from sdfkit.recipes.base import ExportContext, Exporter, Recipe, nan_spec, shape_folder
from sdfkit.recipes.deepsdf import SignedMesh
from sdfkit.recipes.ifnet import boundary_specs, write_boundary, write_point_cloud, write_split
from sdfkit.recipes.occnet import occnet_frame

__all__ = ["RECIPE", "SIGMAS", "SAMPLES", "POINT_CLOUD", "RESOLUTION", "sample_ndf"]

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


def _specs(parameters) -> list:
    frame = {"frame": "ndf"}
    specs = boundary_specs(
        "ndf",
        SIGMAS,
        SAMPLES,
        lambda sigma, points: nan_spec(f"ndf/boundary_{sigma}/df", (SAMPLES,), role="udf", points=points, **frame),
    )
    specs.append(nan_spec("ndf/pointcloud", (POINT_CLOUD, 3), role="", **frame))  # on the mesh, not the outer surface
    return specs


def _write_shape(shape: dict, tmp, context: ExportContext) -> int:
    folder = shape_folder(tmp, shape)
    count = write_boundary(shape, folder, "ndf", SIGMAS, "df", np.float64)
    write_point_cloud(folder, shape["ndf/pointcloud"], RESOLUTION)
    return count + 1


def _write_index(tmp, listing: dict, context: ExportContext) -> int:
    root = os.path.relpath(context.out.resolve(), context.relative_to.resolve())
    return write_split(tmp, listing, root)


def _sample(mesh, signed: SignedMesh, *, rng: np.random.Generator, parameters) -> dict:
    return sample_ndf(mesh, signed, rng=rng)


RECIPE = Recipe(
    name="ndf",
    stream=5,
    description="NDF's unsigned distances to every face (sigma 0.08, 0.02, 0.003, 100,000 each) and a 10,000-point "
    "cloud (ndf/*)",
    specs=_specs,
    sample=_sample,
    sample_sets={f"ndf_{sigma}": (f"ndf/boundary_{sigma}/points", f"ndf/boundary_{sigma}/df") for sigma in SIGMAS},
    exporters=(
        Exporter(
            "ndf",
            "NDF's data folder: <synset>/<id>/boundary_<sigma>_samples.npz, voxelized_point_cloud_256res_10000points.npz, "
            "split.npz (entries relative to --relative-to, default the current folder)",
            _write_shape,
            _write_index,
        ),
    ),
)
