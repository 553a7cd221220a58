"""Occupancy and SDF grids of the shapes of a ``shapenet`` store (``sdfkit voxelize``).

The grids come from the same computation as the store's samples: the same function
(:func:`sdfkit.recipes.deepsdf.signed_mesh`, with the same generator) normalizes the mesh and
finds its outer surface, and the grid's cell centres are signed like the samples were. Thresholding the sparse samples would not give a grid.

Grid: ``R`` cells per side over ``[-1, 1]^3`` in the normalized frame; cell ``[i, j, k]`` has
its centre at ``(x_i, y_j, z_k)`` with ``x_i = -1 + (2 i + 1) / R``. The grids are new arrays of
the store (``voxels/occupancy``, ``voxels/sdf``), with their own ``voxels/status`` and
``voxels/error`` columns: a layer of the common pipeline (:func:`sdfkit.pipeline.build_layer`),
written shard by shard under the store's lock, so an interrupted run resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from sdfkit.errors import FormatError, InputError, ShapeError
from sdfkit.geometry.basics import cell_centres, shape_rng
from sdfkit.geometry.mesh import load_mesh
from sdfkit.pipeline import Layer, build_layer
from sdfkit.recipes.deepsdf import signed_mesh
from sdfkit.sources.shapenet import mesh_paths
from sdfkit.store.format import STATUS_OK, ArraySpec, as_str, open_store, read_status
from sdfkit.store.state import StoreState

__all__ = [
    "RESOLUTIONS",
    "VoxelJob",
    "VoxelSummary",
    "grid_points",
    "voxelize_mesh",
    "voxelize_store",
    "shape_sdf",
    "store_jobs",
]

RESOLUTIONS = (32, 64, 128)
PREFIX = "voxels"
_BATCH = 1 << 19  # query points per closest-point call: bounds the memory of a 128^3 grid


@dataclass(frozen=True)
class VoxelJob:
    id: str
    path: str
    """The mesh file; empty for a shape that failed when the store was made."""
    offset: np.ndarray
    scale: float
    error: str = ""


@dataclass
class VoxelSummary:
    url: str
    state: str
    """``created``, ``resumed`` or ``complete`` (nothing to do)."""
    seconds: float
    computed: int
    ok: int
    failures: list = field(default_factory=list)


def grid_points(resolution: int) -> np.ndarray:
    """Cell centres (R^3, 3) float64 of an R^3 grid over [-1, 1]^3, in ``[i, j, k]`` order."""
    axis = cell_centres(resolution)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def shape_sdf(job: VoxelJob, points: np.ndarray, *, seed: int, rays: int) -> np.ndarray:
    """Signed distances (n,) float64 at ``points`` (n, 3, normalized frame) of one store shape,
    computed as ``prepare-shapenet`` computed its samples."""

    if not job.path:
        raise ShapeError(job.error or "the shape failed when the store was made")
    # the function and the generator prepare-shapenet signs with: the same outer surface
    signed = signed_mesh(load_mesh(job.path), rays=rays, rng=shape_rng(seed, job.id))
    offset, scale = signed.offset, signed.scale
    if not (np.allclose(offset, job.offset, rtol=1e-5, atol=1e-6 / scale) and np.isclose(scale, job.scale, rtol=1e-5)):
        raise ShapeError(f"{job.path} is not the mesh the store was made from (its normalization differs)")
    return signed.sdf(points, batch=_BATCH)


def voxelize_mesh(job: VoxelJob, *, resolution: int, sdf: bool, seed: int, rays: int) -> dict:
    """The grids of one shape: ``voxels/occupancy`` (R, R, R) uint8 (1 inside) and, with
    ``sdf``, ``voxels/sdf`` (R, R, R) float32."""
    values = shape_sdf(job, grid_points(resolution), seed=seed, rays=rays).reshape((resolution,) * 3)
    out = {f"{PREFIX}/occupancy": (values < 0).astype(np.uint8)}
    if sdf:
        out[f"{PREFIX}/sdf"] = values.astype(np.float32)
    return out


def _specs(resolution: int, sdf: bool) -> list[ArraySpec]:
    r = (resolution,) * 3
    specs = [ArraySpec(f"{PREFIX}/occupancy", r, "uint8", 0)]
    if sdf:
        specs.append(ArraySpec(f"{PREFIX}/sdf", r, "float32", float("nan")))
    return specs


def store_jobs(group, info: dict, url: str, meshes: str | None) -> list[VoxelJob]:

    ids = as_str(group["meta/id"][:])
    ok = read_status(group) == STATUS_OK
    errors = as_str(group["meta/error"][:])
    offsets = group["norm/offset"][:]
    scales = group["norm/scale"][:]
    paths = dict(zip(ids[ok], mesh_paths(info, list(ids[ok]), url, meshes), strict=True))
    return [
        VoxelJob(
            str(i),
            paths.get(i, ""),
            offsets[k],
            float(scales[k]),
            "" if ok[k] else f"the shape failed when the store was made: {errors[k]}",
        )
        for k, i in enumerate(ids)
    ]


def voxelize_store(
    url: str,
    *,
    resolution: int = 64,
    sdf: bool = False,
    workers: int = 1,
    meshes: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> VoxelSummary:
    """Add (or finish adding) voxel grids to a complete ``shapenet`` store.

    meshes : the folder the store's meshes are in now, if they moved.
    Raises :class:`ParameterMismatchError` when the store already has grids of another
    resolution, unless ``overwrite``.
    """

    if resolution not in RESOLUTIONS:
        raise InputError(f"--resolution must be one of {', '.join(map(str, RESOLUTIONS))}, not {resolution}")
    group = open_store(url, mode="r")
    info = StoreState.read(group).as_dict()
    if info.get("kind") != "shapenet":
        raise FormatError(f"{url}: a {info.get('kind')!r} store; voxelize needs a prepare-shapenet store")
    if not info.get("complete"):
        raise FormatError(f"{url}: the store is unfinished; finish it with prepare-shapenet first")
    parameters = info.get("parameters", {})
    process = partial(
        voxelize_mesh, resolution=resolution, sdf=sdf, seed=parameters.get("seed", 0), rays=parameters.get("rays", 32)
    )
    layer = Layer(
        prefix=PREFIX,
        jobs=store_jobs(group, info, url, meshes),  # checks the meshes before anything is written
        process=process,
        specs=_specs(resolution, sdf),
        parameters={"resolution": resolution, "sdf": bool(sdf)},
    )
    summary = build_layer(layer, url, workers=workers, overwrite=overwrite, progress=progress)
    ok = summary.per_split["all"]["ok"]
    return VoxelSummary(url, summary.state, summary.seconds, summary.computed, ok, summary.failures)
