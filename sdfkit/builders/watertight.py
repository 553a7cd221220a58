"""Watertight, manifold meshes from broken ones, with a fidelity report (``sdfkit watertight``).

Each mesh is normalized and signed exactly as ``prepare-shapenet`` does it (the same function and
random stream: :func:`sdfkit.recipes.deepsdf.signed_mesh`), so the watertight mesh is the zero
level set of the signed distance the store's samples carry: holes closed as the signs close them,
interior parts, inner sheets and the inner copy of double walls gone, flipped faces and soups
outward. The level set is taken at 0, not at an offset (nothing thickens), on a sparse grid of
``resolution`` cells along the shape's longest side (:func:`sdfkit.geometry.watertight.level_set`:
only the cells near the surface are evaluated, so 1024 needs no dense grid).

Open sheets (a wing modelled as one surface: it encloses nothing, its SDF is positive on both
sides) have no sign change to mesh; where the closest face is a sheet the field is lowered by half
a cell, so a sheet becomes a closed plate one cell thick centred on it (``sheets=False`` drops
them instead). Closed stretches thinner than a cell (measured from each face straight inwards to
the next face) would fall between the grid's nodes: near them the field is lowered the same way,
to a plate one cell thick. Thinner parts the rays miss can still be lost; the report measures
how much.

Output: one mesh per input, at the input's path relative to the source root, under the output
folder, written atomically (a temporary name, then renamed). Frame ``input`` (the mesh's own
coordinates), ``deepsdf`` (sdfkit's normalized frame) or ``occnet`` (bounding box centred, longest
side 1). The report is a store of kind ``watertight`` (one row per mesh: the checks of the file as
read back, distances, time; failures with their reason) made through the common pipeline, so a run
resumes, runs in parallel or on Dask like ``prepare-shapenet``; distances are in the normalized
frame, in which the shape fits the unit ball.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sdfkit.builders.figures import plot_mesh_rows
from sdfkit.builders.render import RenderConfig, camera_poses, check_renderer, render_mesh_views_shaded
from sdfkit.errors import InputError, ShapeError, StoreError
from sdfkit.geometry import raycast
from sdfkit.geometry.basics import face_areas, face_normals, shape_rng
from sdfkit.geometry.mesh import load_mesh, sample_surface
from sdfkit.geometry.sign import inside_closed, signed_distance, thickness, unsigned_distance
from sdfkit.geometry.watertight import level_set
from sdfkit.pipeline import Plan, build_store
from sdfkit.recipes.deepsdf import signed_mesh
from sdfkit.sources.shapenet import ShapenetConfig, plan_shapenet
from sdfkit.store.format import STATUS_OK, ArraySpec, open_store

__all__ = [
    "FRAMES",
    "FORMATS",
    "CHECKS",
    "WatertightConfig",
    "WatertightJob",
    "watertight_mesh",
    "mesh_checks",
    "drop_enclosed",
    "narrow_walls",
    "process_watertight",
    "prepare_watertight",
    "report_rows",
    "report_paths",
    "summary_lines",
    "SUMMARY_ROWS",
    "plot_before_after",
]

FRAMES = ("input", "deepsdf", "occnet")
FORMATS = ("same", "obj", "ply", "off", "stl")
SHARD_SIZE = 16
PAD = 2
"""Grid cells of margin around the shape's bounding box (the outermost nodes must be outside)."""
CHECKS = (
    "trimesh_watertight",
    "trimesh_winding",
    "o3d_edge_manifold",
    "o3d_vertex_manifold",
    "o3d_orientable",
)
"""Yes/no checks of each output, as read back from its file (trimesh and open3d)."""
NUMBERS = (
    ("vertices", "int64", -1),
    ("faces", "int64", -1),
    ("components", "int64", -1),
    ("volume", "float64", np.nan),
    ("cell", "float64", np.nan),
    ("chamfer_l2", "float64", np.nan),
    ("mean_distance", "float64", np.nan),
    ("hausdorff", "float64", np.nan),
    ("thin_lost", "float64", np.nan),
    ("narrow_closed", "float64", np.nan),
    ("hausdorff_resolvable", "float64", np.nan),
    ("evaluated", "int64", -1),
    ("seconds", "float64", np.nan),
)


@dataclass(frozen=True)
class WatertightConfig:
    resolution: int = 256
    """Grid cells along the longest side of the shape's bounding box."""
    frame: str = "input"
    """Coordinates of the written meshes: ``input``, ``deepsdf`` or ``occnet``."""
    format: str = "same"
    """File format: ``same`` (the input's, or obj for glb/gltf), obj, ply, off or stl."""
    name: str | None = None
    """Write each mesh as ``<category>/<id>/<name>`` (e.g. ``isosurf.off``, IF-Net's layout) instead
    of at the input's place."""
    sheets: bool = True
    """Keep open sheets as plates one cell thick (else they vanish: nothing to close)."""
    largest_component: bool = False
    """Keep only the component of largest volume."""
    seed: int = 0
    """As prepare-shapenet's ``--seed``: the same outer surface."""
    rays: int = 32
    report_points: int = 30_000
    """Points sampled on each surface for the distances of the report."""

    def __post_init__(self):
        if not 16 <= self.resolution <= 2048:
            raise InputError(f"--resolution must be between 16 and 2048, not {self.resolution}")
        if self.frame not in FRAMES:
            raise InputError(f"unknown frame {self.frame!r}; choose from {', '.join(FRAMES)}")
        if self.format not in FORMATS:
            raise InputError(f"unknown format {self.format!r}; choose from {', '.join(FORMATS)}")
        if self.name is not None and (not self.name or "/" in self.name or Path(self.name).suffix[1:] not in FORMATS):
            raise InputError(f"--name must be a file name ending in .obj, .ply, .off or .stl, not {self.name!r}")


@dataclass(frozen=True)
class WatertightJob:
    id: str
    path: str
    output: str
    """The file to write."""


def watertight_mesh(signed, config: WatertightConfig, *, rng: np.random.Generator):
    """The watertight mesh of a signed mesh (:class:`sdfkit.recipes.deepsdf.SignedMesh`), in its
    normalized frame: vertices (v, 3) float64, faces (f, 3) int64 outward, the grid's cell size
    and the field evaluations spent."""

    outer = signed.outer
    # everything negative lies in the box of the outer surface and of the closed parts' union
    # (inside the union is inside even where the outer surface dropped its faces): the grid's
    # outermost nodes, two cells beyond it, are outside
    corners = np.concatenate([outer.vertices, outer.solid_vertices])
    low, high = corners.min(axis=0), corners.max(axis=0)
    cell = float(np.max(high - low)) / (config.resolution - 2 * PAD)
    shape = np.maximum(np.ceil((high - low) / cell).astype(np.int64), 1) + 2 * PAD
    # the box's centre on a node: a flat shape's sheet lies on nodes, its plate's faces between them
    origin = (low + high) / 2 - cell * (shape // 2)
    sheet = outer.sheet if config.sheets else np.zeros(len(outer.faces), dtype=bool)
    # closed stretches thinner than a cell (a gear's thin plate) would fall between the grid's
    # nodes: like sheets, they become plates one cell thick
    thin = thickness(outer) < cell
    plate = sheet | thin

    def field(points: np.ndarray) -> np.ndarray:
        out = np.empty(len(points))
        step = 1 << 19  # points per query: bounded memory
        for s in range(0, len(points), step):
            values, face = signed_distance(outer, points[s : s + step], return_face=True)
            lowered = np.where(sheet[face], values - cell / 2, np.minimum(values, np.abs(values) - cell / 2))
            out[s : s + len(values)] = np.where(plate[face], lowered, values)
        return out

    area = float(face_areas(outer.vertices, outer.faces).sum())
    seeds, _ = signed.sampler.sample(int(np.clip(area / cell**2, 1_000, 20_000_000)), rng=rng)
    result = level_set(field, origin=origin, cell=cell, shape=tuple(int(s) for s in shape), seeds=seeds)
    vertices, faces = drop_enclosed(result.vertices, result.faces, cell, outer)
    if config.largest_component:
        vertices, faces = _largest_component(vertices, faces)
    return vertices, faces, cell, result.evaluated


def _components(faces: np.ndarray, vertex_count: int) -> tuple[int, np.ndarray]:
    """Connected components of faces sharing vertices: their number and each face's label."""

    n = len(faces)
    # the bipartite graph of faces (nodes 0..n-1) and vertices (n..): faces meet through vertices
    rows, cols = np.repeat(np.arange(n), 3), n + faces.reshape(-1)
    graph = coo_matrix((np.ones(3 * n), (rows, cols)), shape=(n + vertex_count,) * 2)
    _, labels = connected_components(graph, directed=False)
    used, label = np.unique(labels[:n], return_inverse=True)
    return len(used), label


def drop_enclosed(vertices: np.ndarray, faces: np.ndarray, cell: float, outer) -> tuple[np.ndarray, np.ndarray]:
    """Drop the components that are pockets of wrong signs: a cavity or a component inside another
    whose surface does not lie on the outer surface ``outer`` (its vertices' median distance to it
    above a cell). Beside a hole's rim the sign estimate can fail deep inside a part; the pocket's
    walls are where the sign flips, away from every face. A cavity that the mesh has (a housing's
    inside, with the gears it holds: cycloidal.ply) lies on the outer surface and stays. A cavity's
    shell faces inwards (negative volume); a solid component is inside another when three points
    just outside three of its faces are inside the rest (ray parity on the whole mesh: a point
    just outside a closed shell crosses it an even number of times)."""

    count, label = _components(faces, len(vertices))
    if count < 2:
        return vertices, faces
    tri = vertices[faces]
    volume = np.bincount(label, weights=_face_volumes(vertices, faces))
    normal = face_normals(vertices, faces)
    # three faces per component: its first, middle and last in face order
    order = np.argsort(label, kind="stable")
    start = np.searchsorted(label[order], np.arange(count))
    stop = np.append(start[1:], len(order))
    probes = np.stack([order[start], order[(start + stop) // 2], order[stop - 1]], axis=1).reshape(-1)
    points = tri[probes].mean(axis=1) + 0.01 * cell * normal[probes]
    enclosed = inside_closed(vertices, faces, points).reshape(count, 3).all(axis=1)
    suspect = np.nonzero((volume < 0) | enclosed)[0]
    if len(suspect) == 0:
        return vertices, faces
    # on the outer surface or not: the median distance of a component's face centroids (up to 64)
    drop = np.zeros(count, dtype=bool)
    for k in suspect:
        which = order[start[k] : stop[k]]
        which = which[np.linspace(0, len(which) - 1, min(len(which), 64)).astype(int)]
        away = np.median(unsigned_distance(outer.vertices, outer.faces, tri[which].mean(axis=1)))
        drop[k] = away > cell
    if not drop.any() or drop.all():
        return vertices, faces
    return _subset(vertices, faces, ~drop[label])


def _largest_component(vertices, faces):
    _, label = _components(faces, len(vertices))
    return _subset(vertices, faces, label == np.argmax(np.bincount(label, weights=_face_volumes(vertices, faces))))


def _face_volumes(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(f,) signed volume of the tetrahedron of each face and the origin (they sum to the enclosed volume)."""
    tri = vertices[faces]
    return np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0


def _subset(vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray):
    """The faces ``keep`` (f,) bool selects, with only the vertices they use."""
    used, kept = np.unique(faces[keep], return_inverse=True)
    return vertices[used], kept.reshape(-1, 3)


def _suffix(job_path: str, config: WatertightConfig) -> str:
    if config.name:
        return Path(config.name).suffix
    if config.format != "same":
        return f".{config.format}"
    suffix = Path(job_path).suffix.lower()
    # STL cannot share vertices (open3d reads every triangle apart: no closed mesh), and a glTF
    # scene holds no single mesh: both become OBJ unless --format asks otherwise
    return suffix if suffix in (".obj", ".ply", ".off") else ".obj"


def output_path(
    path: Path, root: Path, out_dir: Path, config: WatertightConfig, *, category: str = "", shape_id: str = ""
) -> Path:
    """Where the watertight mesh of ``path`` goes: its place under ``root``, under ``out_dir``; with
    ``config.name``, ``out_dir/<category>/<id>/<name>`` (Occupancy Networks' and IF-Net's
    per-shape folders, e.g. ``<synset>/<id>/isosurf.off``)."""
    if config.name:
        return out_dir / category / shape_id / config.name
    relative = Path(path.name) if root.is_file() else path.relative_to(root)
    return out_dir / relative.parent / relative.with_suffix(_suffix(str(path), config)).name


def mesh_checks(path: str | Path) -> dict:
    """trimesh's and open3d's verdicts on a mesh file as each reads it back (trimesh's default
    load, which merges an STL's vertices; open3d's reader, which does not: an STL written by
    anyone fails open3d's checks, as a user of open3d would find). Returns the :data:`CHECKS` as
    bools, and vertices, faces, components and volume of what trimesh read."""
    # open3d takes 0.5 s to import: loaded where used
    import open3d as o3d
    import trimesh

    mesh = trimesh.load(path, force="mesh")
    vertices, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
    read = o3d.io.read_triangle_mesh(str(path))
    components, _ = _components(faces, len(vertices)) if len(faces) else (0, None)
    return {
        "trimesh_watertight": bool(mesh.is_watertight),
        "trimesh_winding": bool(mesh.is_winding_consistent),
        "o3d_edge_manifold": bool(read.is_edge_manifold(allow_boundary_edges=False)),
        "o3d_vertex_manifold": bool(read.is_vertex_manifold()),
        "o3d_orientable": bool(read.is_orientable()),
        "vertices": len(vertices),
        "faces": len(faces),
        "components": int(components),
        "volume": float(mesh.volume) if len(faces) else 0.0,
    }


def _to_frame(vertices: np.ndarray, signed, frame: str) -> np.ndarray:
    """Normalized vertices into the output frame."""
    if frame == "deepsdf":
        return vertices
    raw = vertices / signed.scale - signed.offset
    if frame == "input":
        return raw
    return (raw + signed.offset) / float(np.max(signed.extent))  # occnet: box centred, longest side 1


def _write(vertices, faces, path: Path) -> None:
    """Write atomically: a temporary name in the same folder, then a rename."""
    # trimesh takes 0.35 s to import: loaded where used
    import trimesh

    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(f".{path.name}.partial{path.suffix}")
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    # the blocks' border vertices come twice, at the very same coordinates: one vertex each in the
    # file, or a reader that does not merge (open3d) finds the mesh cut along every block border
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    mesh.export(partial_path)
    os.replace(partial_path, path)


def process_watertight(job: WatertightJob, config: WatertightConfig) -> dict:
    """Make, write and check one watertight mesh; the report row."""

    start = time.perf_counter()
    mesh = load_mesh(job.path)
    signed = signed_mesh(mesh, rays=config.rays, rng=shape_rng(config.seed, job.id))
    vertices, faces, cell, evaluated = watertight_mesh(signed, config, rng=shape_rng(config.seed, job.id, 6))
    output = Path(job.output)
    _write(_to_frame(vertices, signed, config.frame), faces, output)
    seconds = time.perf_counter() - start
    checks = mesh_checks(output)
    if checks["faces"] != len(faces):
        raise ShapeError(f"{output}: read back {checks['faces']} faces of the {len(faces)} written")
    # distances both ways, point to surface, in the normalized frame

    rng = shape_rng(config.seed, job.id, 7)
    on_output, _ = sample_surface(vertices, faces, config.report_points, rng=rng)
    on_input, on_face = signed.sampler.sample(config.report_points, rng=rng)
    to_input = unsigned_distance(signed.outer.vertices, signed.outer.faces, on_output)
    to_output = unsigned_distance(vertices, faces, on_input)
    narrow = np.zeros(len(on_input), dtype=bool)
    far = np.nonzero(to_output > cell)[0]
    narrow[far] = narrow_walls(signed.outer.vertices, signed.outer.faces, on_input[far], on_face[far], cell)
    row = {f"report/{name}": np.uint8(checks[name]) for name in CHECKS}
    row |= {
        "report/input": str(job.path),
        "report/output": str(output),
        "report/vertices": checks["vertices"],
        "report/faces": checks["faces"],
        "report/components": checks["components"],
        "report/volume": _volume(vertices, faces),
        "report/cell": cell,
        "report/chamfer_l2": float(np.mean(to_input**2) + np.mean(to_output**2)),
        "report/mean_distance": float((to_input.mean() + to_output.mean()) / 2),
        "report/hausdorff": float(max(to_input.max(), to_output.max())),
        "report/thin_lost": float(np.mean(to_output > cell)),
        "report/narrow_closed": float(np.mean(narrow)),
        "report/hausdorff_resolvable": float(max(to_input.max(), to_output[~narrow].max(initial=0.0))),
        "report/evaluated": evaluated,
        "report/seconds": seconds,
        "norm/offset": signed.offset,
        "norm/scale": np.float64(signed.scale),
    }
    return row


def narrow_walls(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, face: np.ndarray, width: float):
    """Which ``points`` (on ``faces[face]``) lie on a wall of a clearance narrower than ``width``:
    a ray from the point along its face's normal (outwards) meets another face of the mesh within
    ``width``. A grid of cells ``width`` wide closes such a gap (no node need lie inside it), so
    its walls lie away from a watertight mesh the way a closed hole's rim does."""

    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    normal = face_normals(vertices, faces[face])
    start = points + 1e-6 * normal  # off the point's own face
    hits = raycast.scene(vertices, faces).cast_rays(raycast.tensor(np.concatenate([start, normal], axis=1)))
    return hits["t_hit"].numpy() < width


def _volume(vertices, faces) -> float:
    return float(_face_volumes(vertices, faces).sum())


def array_specs() -> list[ArraySpec]:
    nan = float("nan")
    specs = [ArraySpec(f"report/{name}", (), "uint8", 0) for name in CHECKS]
    specs += [ArraySpec("report/input", (), "str", ""), ArraySpec("report/output", (), "str", "")]
    specs += [ArraySpec(f"report/{name}", (), dtype, fill) for name, dtype, fill in NUMBERS]
    specs += [ArraySpec("norm/offset", (3,), "float64", nan), ArraySpec("norm/scale", (), "float64", nan)]
    return specs


def report_paths(out_dir: str | Path) -> tuple[Path, Path]:
    """The report store and JSON-lines file of an output folder: beside it (a folder inside it
    would look like a category to the projects' own scripts)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f"{out_dir.name}.report.zarr"), out_dir.with_name(f"{out_dir.name}.report.jsonl")


def prepare_watertight(
    root: str | Path,
    out_dir: str | Path,
    config: WatertightConfig = WatertightConfig(),  # noqa: B008 - frozen, never mutated
    *,
    split_files: Sequence[str | Path] = (),
    synsets: Sequence[str] | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    shard_size: int = SHARD_SIZE,
    progress: Callable[[int, int], None] | None = None,
):
    """Make the watertight meshes of a mesh tree (resumable); returns the
    :class:`~sdfkit.pipeline.RunSummary` of its report store."""

    root, out_dir = Path(root), Path(out_dir).absolute()
    if not root.exists():
        raise InputError(f"{root}: no such folder or file; give a ShapeNet tree, a folder of meshes or a mesh")
    if root.is_dir() and (out_dir == root.absolute() or root.absolute() in out_dir.parents):
        # the next run's scan of ROOT would take the outputs for new meshes
        raise InputError(f"{out_dir}: inside the source folder {root}; choose an output folder outside it")
    if out_dir.is_file():
        raise StoreError(f"{out_dir}: is a file; give -o a folder for the meshes")
    if (out_dir / "zarr.json").exists():  # a store's folder: meshes written into it would damage it
        raise StoreError(
            f"{out_dir}: is a zarr store, not a folder for meshes; choose another -o path (the report goes to "
            f"{report_paths(out_dir)[0]})"
        )
    metas, mesh_jobs, info = plan_shapenet(
        root, ShapenetConfig(synsets=tuple(synsets) if synsets else None), split_files
    )
    jobs = [
        WatertightJob(
            j.id, j.path, str(output_path(Path(j.path), root, out_dir, config, category=m.category, shape_id=j.id))
        )
        for m, j in zip(metas, mesh_jobs, strict=True)
    ]
    store, _ = report_paths(out_dir)
    plan = Plan(
        kind="watertight",
        metas=metas,
        jobs=jobs,
        process=partial(process_watertight, config=config),
        specs=array_specs(),
        parameters=asdict(config) | {"output": str(out_dir)},
        source={**info, "name": "watertight"},
        shard_size=shard_size,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = build_store(
        plan, store, workers=workers, scheduler=scheduler, isolate=True, overwrite=overwrite, progress=progress
    )
    write_jsonl(store)
    meshes = sum(Path(j.output).stat().st_size for j in jobs if Path(j.output).is_file())
    summary.bytes = (summary.bytes or 0) + meshes  # what the run left on disk: the meshes and their report
    return summary


def report_rows(store: str | Path) -> list[dict]:
    """One dict per mesh of a ``watertight`` report store: id, status, error and the report's values."""

    group = open_store(store)
    status = group["meta/status"][:]
    columns = {"id": group["meta/id"][:], "error": group["meta/error"][:]}
    names = [f"report/{n}" for n in (*CHECKS, "input", "output", *[n for n, _, _ in NUMBERS])]
    columns |= {name.removeprefix("report/"): group[name][:] for name in names}
    rows = []
    for k in range(len(status)):
        row = {"id": str(columns["id"][k]), "ok": bool(status[k] == STATUS_OK), "error": str(columns["error"][k])}
        if row["ok"]:
            for name in names:
                key = name.removeprefix("report/")
                value = columns[key][k]
                row[key] = (
                    bool(value) if key in CHECKS else (str(value) if key in ("input", "output") else value.item())
                )
        rows.append(row)
    return rows


def write_jsonl(store: str | Path) -> Path:
    """The report as JSON lines beside the store (written to a temporary name, then renamed)."""
    store = Path(store)
    path = store.with_name(store.name.removesuffix(".zarr") + ".jsonl")
    partial_path = path.with_name(f".{path.name}.partial")
    with open(partial_path, "w") as f:
        for row in report_rows(store):
            f.write(json.dumps(row) + "\n")
    os.replace(partial_path, path)
    return path


def summarize(rows: list[dict]) -> dict:
    """Counts and medians of a report: what the command prints at the end."""
    ok = [r for r in rows if r["ok"]]
    both = [r for r in ok if all(r[c] for c in CHECKS)]
    out = {"meshes": len(rows), "ok": len(ok), "failed": len(rows) - len(ok), "watertight_both": len(both)}
    for key in (
        "seconds",
        "faces",
        "components",
        "chamfer_l2",
        "mean_distance",
        "hausdorff",
        "thin_lost",
        "narrow_closed",
    ):
        values = np.array([r[key] for r in ok], dtype=np.float64)
        out[key] = {"median": float(np.median(values)), "max": float(values.max())} if len(values) else None
    # in cells of each mesh's grid, the unit the targets are set in
    for key in ("mean_distance", "hausdorff", "hausdorff_resolvable"):
        values = np.array([r[key] / r["cell"] for r in ok], dtype=np.float64)
        out[f"{key}_cells"] = {"median": float(np.median(values)), "max": float(values.max())} if len(values) else None
    return out


SUMMARY_ROWS = (
    ("seconds", "seconds"),
    ("faces", "faces"),
    ("components", "components"),
    ("mean_distance_cells", "mean distance, cells"),
    ("hausdorff_cells", "Hausdorff, cells"),
    ("hausdorff_resolvable_cells", "Hausdorff, resolvable"),
    ("chamfer_l2", "Chamfer-L2"),
    ("thin_lost", "thin parts lost"),
    ("narrow_closed", "narrow clearances closed"),
)
"""The measures ``sdfkit watertight`` prints at the end, (key of :func:`summarize`, label)."""


def summary_lines(rows: list[dict], numbers: dict) -> list[str]:
    """The lines ``sdfkit watertight`` prints after a run: how many meshes are closed by both
    checks, the medians and worst of :data:`SUMMARY_ROWS`, the meshes not closed, those open3d
    reads in single precision, and those written in another format than they came in."""
    lines = [f"watertight and manifold by trimesh and open3d: {numbers['watertight_both']} of {numbers['ok']} meshes"]
    if numbers["ok"]:
        lines.append(f"{'':<24}{'median':>12}{'worst':>12}")
        for key, label in SUMMARY_ROWS:
            lines.append(f"{label:<24}{numbers[key]['median']:>12.4g}{numbers[key]['max']:>12.4g}")
        bad = [r["id"] for r in rows if r["ok"] and not all(r[c] for c in CHECKS)]
        if bad:
            lines.append(f"not watertight by both checks: {', '.join(bad[:5])}")
        single = [
            r["id"]
            for r in rows
            if r["ok"] and r["trimesh_watertight"] and not r["o3d_edge_manifold"] and r["output"].endswith(".obj")
        ]
        if single:
            lines.append(
                f"open3d reads OBJ coordinates in single precision: {len(single)} closed by trimesh "
                f"are not as open3d reads them (far from the origin?: {', '.join(single[:3])}); "
                "--format ply or --normalized deepsdf keeps them closed for open3d too"
            )
    renamed = [r for r in rows if r["ok"] and Path(r["input"]).suffix.lower() != Path(r["output"]).suffix.lower()]
    if renamed:
        kinds = sorted({Path(r["input"]).suffix.lower() for r in renamed})
        lines.append(
            f"{len(renamed)} mesh{'es' if len(renamed) != 1 else ''} written as {Path(renamed[0]['output']).suffix} "
            f"from {', '.join(kinds)} (STL cannot share vertices and a scene holds no single mesh; --format picks another)"
        )
    return lines


def plot_before_after(shape: dict, path: str | Path, *, views: int = 4, size: int = 256) -> Path:
    """A PNG of one report row: the input mesh as given (top) and its watertight mesh (bottom)
    from ``views`` cameras, both in the normalized frame, with the row's numbers in the title."""

    if shape["status"] != STATUS_OK:
        raise InputError(f"shape {shape['id']} failed ({shape['error']}); nothing to draw")
    check_renderer()
    offset, scale = np.asarray(shape["norm/offset"], np.float64), float(shape["norm/scale"])
    before = load_mesh(str(shape["report/input"]))
    after = load_mesh(str(shape["report/output"]))
    frame = shape.get("parameters", {}).get("frame", "input")
    config = RenderConfig(views=views, size=size)
    poses = camera_poses(config, shape["id"])
    rows = [render_mesh_views_shaded((before.vertices + offset) * scale, before.faces, poses, config)]
    vertices = after.vertices
    if frame == "input":
        vertices = (vertices + offset) * scale
    elif frame == "occnet":
        raw = vertices * float(np.max(np.ptp(before.vertices[np.unique(before.faces)], axis=0))) - offset
        vertices = (raw + offset) * scale
    rows.append(render_mesh_views_shaded(vertices, after.faces, poses, config))
    watertight = all(bool(shape[f"report/{c}"]) for c in CHECKS)
    title = (
        f"{shape['id']}: input ({len(before.faces)} faces) above, watertight ({len(after.faces)} faces, "
        f"{'closed and manifold' if watertight else 'NOT closed and manifold'}) below; "
        f"Hausdorff {float(shape['report/hausdorff']) / float(shape['report/cell']):.2f} cells, "
        f"thin parts lost {100 * float(shape['report/thin_lost']):.2f}%"
    )
    return plot_mesh_rows(rows, ["input", "watertight"], path, title=title)
