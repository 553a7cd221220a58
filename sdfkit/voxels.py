"""Occupancy and SDF grids of the shapes of a ``shapenet`` store (``sdfkit voxelize``).

The grids come from the same computation as the store's samples: the mesh is normalized as in
``prepare-shapenet``, its outer surface is found with the same seed, and the grid's cell centres
are signed like the samples were. Thresholding the sparse samples would not give a grid.

Grid: ``R`` cells per side over ``[-1, 1]^3`` in the normalized frame; cell ``[i, j, k]`` has
its centre at ``(x_i, y_j, z_k)`` with ``x_i = -1 + (2 i + 1) / R``. The grids are new arrays of
the store (``voxels/occupancy``, ``voxels/sdf``), with their own ``voxels/status`` and
``voxels/error`` columns, written shard by shard, so an interrupted run resumes.
"""

from __future__ import annotations

import datetime as _dt
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from sdfkit.errors import FormatError, InputError, ParameterMismatchError, ShapeError
from sdfkit.store import STATUS_FAILED, STATUS_OK, ArraySpec, create_array, open_store, read_status, shard_ranges

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
    axis = -1.0 + (2.0 * np.arange(resolution) + 1.0) / resolution
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def shape_sdf(job: VoxelJob, points: np.ndarray, *, seed: int, rays: int) -> np.ndarray:
    """Signed distances (n,) float64 at ``points`` (n, 3, normalized frame) of one store shape,
    computed as ``prepare-shapenet`` computed its samples."""
    from sdfkit.mesh import load_mesh, normalization
    from sdfkit.sign import outer_surface, signed_distance

    if not job.path:
        raise ShapeError(job.error or "the shape failed when the store was made")
    mesh = load_mesh(job.path)
    offset, scale = normalization(mesh)  # float64, as prepare-shapenet computed it
    if not (np.allclose(offset, job.offset, rtol=1e-5, atol=1e-6 / scale) and np.isclose(scale, job.scale, rtol=1e-5)):
        raise ShapeError(f"{job.path} is not the mesh the store was made from (its normalization differs)")
    # the same generator, drawn in the same order, as prepare-shapenet: the same outer surface
    rng = np.random.default_rng([seed, zlib.crc32(job.id.encode())])
    outer = outer_surface((mesh.vertices + offset) * scale, mesh.faces, rays=rays, rng=rng)
    if len(outer.faces) == 0:
        raise ShapeError("no face of the mesh is visible from outside")
    return np.concatenate(
        [signed_distance(outer, points[s : s + _BATCH], rng=rng) for s in range(0, len(points), _BATCH)]
    )


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


_COLUMNS = (ArraySpec(f"{PREFIX}/status", (), "uint8", 0), ArraySpec(f"{PREFIX}/error", (), "str", ""))


def store_jobs(group, info: dict, url: str, meshes: str | None) -> list[VoxelJob]:
    from sdfkit.sources.shapenet import mesh_paths
    from sdfkit.store import as_str

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
    from sdfkit.parallel import ShardTask, run_tasks

    start = time.perf_counter()
    if resolution not in RESOLUTIONS:
        raise InputError(f"--resolution must be one of {', '.join(map(str, RESOLUTIONS))}, not {resolution}")
    group = open_store(url, mode="r+")
    info = dict(group.attrs["sdfkit"])
    if info.get("kind") != "shapenet":
        raise FormatError(f"{url}: a {info.get('kind')!r} store; voxelize needs a prepare-shapenet store")
    if not info.get("complete"):
        raise FormatError(f"{url}: the store is unfinished; finish it with prepare-shapenet first")
    params = {"resolution": resolution, "sdf": bool(sdf)}
    previous = info.get("voxels")
    state = "created"
    if previous:
        same = {k: previous.get(k) for k in params} == params and previous.get("initialized")
        if same and previous.get("complete"):
            status = read_status(group, PREFIX)
            return VoxelSummary(url, "complete", time.perf_counter() - start, 0, int((status == STATUS_OK).sum()))
        if same:
            state = "resumed"
        elif not overwrite and previous.get("initialized"):
            raise ParameterMismatchError(
                f"{url}: already has voxel grids at resolution {previous.get('resolution')} "
                f"(sdf: {previous.get('sdf')}); pass --overwrite to replace them"
            )
    jobs = store_jobs(group, info, url, meshes)  # checks the meshes before anything is written
    n = len(jobs)
    size = info["shard_size"]
    specs = _specs(resolution, sdf)
    if state == "created":
        old = [a for a in info["arrays"] if a.startswith(f"{PREFIX}/")]
        info["arrays"] = [a for a in info["arrays"] if a not in old]
        info["voxels"] = {**params, "initialized": False, "complete": False}
        group.attrs["sdfkit"] = info
        for name in old:
            if name in group:
                del group[name]
        for spec in (*_COLUMNS, *specs):
            create_array(group, spec, n, size, overwrite=True)
        info["voxels"] = {**params, "initialized": True, "complete": False}
        group.attrs["sdfkit"] = info

    parameters = info.get("parameters", {})
    process = partial(
        voxelize_mesh, resolution=resolution, sdf=sdf, seed=parameters.get("seed", 0), rays=parameters.get("rays", 32)
    )
    ranges = shard_ranges(n, size)
    status = read_status(group, PREFIX)
    todo = [k for k, (a, b) in enumerate(ranges) if (status[a:b] == 0).any()]
    tasks = [ShardTask(url, k, jobs[a:b], process, specs, PREFIX) for k, (a, b) in enumerate(ranges) if k in todo]
    done = n - sum(ranges[k][1] - ranges[k][0] for k in todo)
    computed = 0
    if progress:
        progress(done, n)
    for report in run_tasks(tasks, workers=workers, isolate=True):
        computed += report.done + report.failed
        done += report.done + report.failed
        if progress:
            progress(done, n)

    status = read_status(group, PREFIX)
    failed = np.nonzero(status == STATUS_FAILED)[0]
    errors = group[f"{PREFIX}/error"][:]
    failures = [(jobs[k].id, str(errors[k])) for k in failed]
    info = dict(group.attrs["sdfkit"])
    info["voxels"] = {
        **params,
        "initialized": True,
        "complete": True,
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "ok": int((status == STATUS_OK).sum()),
        "failed": len(failed),
    }
    info["arrays"] = [*info["arrays"], *[s.name for s in (*_COLUMNS, *specs) if s.name not in info["arrays"]]]
    group.attrs["sdfkit"] = info
    return VoxelSummary(url, state, time.perf_counter() - start, computed, int((status == STATUS_OK).sum()), failures)
