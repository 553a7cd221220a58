"""ShapeNet trees (or any folder of meshes) as shape jobs for the 3D SDF pipeline.

Layouts, detected automatically under ROOT:

- ShapeNetCore v2: ``<synset>/<id>/models/model_normalized.obj``
- ShapeNetCore v1: ``<synset>/<id>/model.obj``
- ModelNet10/40: ``<class>/<train|test>/<name>.off``; the id is the file's name (ModelNet's names
  carry their class), the category the class, the split its folder unless split files say otherwise
- Objaverse 1.0's cache (``glbs/<000-xxx>/<uid>.glb``, with its annotations' licences and names)
  and a ``metadata.csv`` of Objaverse-XL or TRELLIS (``sha256``, ``local_path``): see
  :mod:`sdfkit.sources.objects`; the id is the uid or the sha256
- a plain folder: every mesh file (obj, off, ply, stl, glb, gltf) beneath ROOT; the id is its path
  relative to ROOT without the suffix, the category its first folder ("" at the top).

Split files in DeepSDF's format (``{"ShapeNetV2": {"02691156": [ids]}}``) select the shapes and
name their split: ``train``, ``val`` or ``test`` when the file's name contains that word, else the
file's stem. In a plain folder the ids are unique on their own (paths under ROOT), so a split file
matches them by id whatever category key lists them; ``sdfkit export --to deepsdf`` writes them
under the shape's category (its first folder, ``""`` at the top). Without split files every shape
is in ``train`` (ModelNet: its folders), unless ``split_fractions`` deal them out at random
(:func:`split_by_fractions`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

from sdfkit.errors import InputError, ShapeError, Skipped
from sdfkit.geometry import raycast
from sdfkit.geometry.basics import shape_rng
from sdfkit.geometry.mesh import MESH_SUFFIXES, local_copy, read_mesh
from sdfkit.geometry.sign import METHOD
from sdfkit.pipeline import Plan, build_store
from sdfkit.pipeline.runners import SKIPPED
from sdfkit.recipes import recipe, recipes, specs_for
from sdfkit.recipes.deepsdf import signed_mesh
from sdfkit.sources.ledger import LEDGER_SPECS, PeakMemory, ledger_row, near_duplicates
from sdfkit.sources.objects import (
    NOT_DOWNLOADED,
    ObjectNote,
    RemotePath,
    as_root,
    file_sha256,
    find_listing,
    find_objaverse,
    normalize_licence,
)
from sdfkit.sources.splits import hold_out, is_named_split, read_split_files, split_by_fractions
from sdfkit.store.format import STATUS_OK, STATUS_SKIPPED, ArraySpec, ShapeMeta, as_str, read_status

__all__ = [
    "ShapenetConfig",
    "MeshJob",
    "find_meshes",
    "find_objects",
    "read_split_files",
    "split_by_fractions",
    "hold_out",
    "plan_shapenet",
    "process_mesh",
    "prepare_shapenet",
    "mesh_paths",
]

SHARD_SIZE = 8
"""Shapes per shard (about 38 MB of samples at K = 250,000)."""


@dataclass(frozen=True)
class ShapenetConfig:
    """Parameters of ``prepare-shapenet``; all of them go into the store's attributes."""

    samples: int = 250_000
    """K: SDF samples per shape (DeepSDF's recipe)."""
    surface_samples: int = 30_000
    """S: points on the outer surface per shape, with outward normals."""
    seed: int = 0
    """Seed of every random choice; each shape's generator derives from it and the shape's id."""
    rays: int = 32
    """Rays per face side when finding the outer surface."""
    synsets: tuple[str, ...] | None = None
    """Only these categories (synsets, or first-level folders of a plain tree)."""
    recipes: tuple[str, ...] = ("deepsdf",)
    """What to sample per shape (:func:`sdfkit.recipes.recipes`); ``deepsdf`` is always included."""
    sharp_angle: float = 15.0
    """``vecset``: an edge of the outer surface is sharp where its faces meet at more than this
    many degrees."""
    licences: tuple[str, ...] | None = None
    """Only objects under these licences (:func:`sdfkit.sources.objects.normalize_licence`'s
    spelling); the others are skipped, saying their licence."""
    dedup: bool = False
    """Keep one object of each group of duplicates (the same bytes, or the same shape by its print:
    :mod:`sdfkit.sources.ledger`); the others are skipped, naming the one kept."""
    max_faces: int | None = None
    """Objects with more faces fail ("over --max-faces") instead of being computed."""
    confidence: bool = False
    """Store each SDF sample's rule and confidence (``sdf/rule``, ``sdf/confidence``)."""

    def __post_init__(self):

        for name in self.recipes:
            recipe(name)  # a one-line error for an unknown one
        wanted = {"deepsdf", *self.recipes}
        object.__setattr__(self, "recipes", tuple(r for r in recipes() if r in wanted))  # the registry's order
        if self.samples < 1 or self.surface_samples < 1:
            raise InputError("--samples and --surface-samples must be positive")
        if self.rays < 4:
            raise InputError("--rays must be at least 4")
        if not 0 < self.sharp_angle < 180:
            raise InputError(f"--sharp-angle {self.sharp_angle}: give an angle between 0 and 180 degrees")
        if self.licences is not None:
            wanted = tuple(sorted({normalize_licence(x) for x in self.licences if str(x).strip()}))
            if not wanted:
                raise InputError("--licence: name at least one licence, e.g. cc-by,cc0")
            object.__setattr__(self, "licences", wanted)
        if self.max_faces is not None and self.max_faces < 1:
            raise InputError("--max-faces must be positive")


@dataclass(frozen=True)
class MeshJob:
    id: str
    path: str
    note: ObjectNote = ObjectNote()
    """What the collection says of the object (licence, name, listed sha256)."""
    skip: str = ""
    """Why the object is skipped (a licence, a duplicate), or ``""``."""


def _is_synset(name: str) -> bool:
    return len(name) == 8 and name.isdigit()


def find_meshes(root: str | Path) -> tuple[str, list[tuple[str, str, Path]]]:
    """The layout of ``root`` and its meshes as (category, id, path), sorted (see
    :func:`find_objects`)."""
    layout, found, _ = find_objects(root)
    return layout, found


def find_objects(root: str | Path) -> tuple[str, list[tuple[str, str, Path]], dict[str, ObjectNote]]:
    """The layout of ``root``, its meshes as (category, id, path), sorted, and what its collection
    says of them (id -> :class:`~sdfkit.sources.objects.ObjectNote`; empty but for Objaverse's
    cache and a ``metadata.csv``).

    ``root`` may be a single mesh file (layout ``"file"``), and an fsspec URL
    (``s3://bucket/objects``: the paths are then :class:`~sdfkit.sources.objects.RemotePath`).
    Symbolic links to folders are followed, each real folder once: a link to a folder outside the
    tree brings its meshes, a link to a folder of the tree (or back up it) adds nothing.
    """
    root = as_root(root)
    if root.is_file():
        if root.suffix.lower() not in MESH_SUFFIXES:
            raise InputError(f"{root}: not a mesh file ({', '.join(MESH_SUFFIXES)}); give a mesh or a folder of meshes")
        return "file", [("", root.stem, root)], {}
    if not root.is_dir():
        raise InputError(f"{root}: no such file or folder; give the ShapeNet root, a folder of meshes or a mesh file")
    synsets = sorted(p for p in root.iterdir() if p.is_dir() and _is_synset(p.name))
    for layout, relative in (
        ("shapenet-v2", Path("models") / "model_normalized.obj"),
        ("shapenet-v1", Path("model.obj")),
    ):
        found = [
            (s.name, m.name, m / relative) for s in synsets for m in sorted(s.iterdir()) if (m / relative).is_file()
        ]
        if found:
            return layout, found, {}
    for layout, find in (("objaverse", find_objaverse), ("metadata", find_listing)):
        listed = find(root)
        if listed is not None:
            return layout, *listed
    modelnet = [
        (c.name, m.stem, m)
        for c in sorted(p for p in root.iterdir() if p.is_dir())
        for split in ("train", "test")
        if (c / split).is_dir()
        for m in sorted((c / split).glob("*.off"))
    ]
    if modelnet:
        return "modelnet", modelnet, {}
    found = []
    for path in root.files() if isinstance(root, RemotePath) else _walk(root):
        if path.suffix.lower() in MESH_SUFFIXES:
            rel = path.relative_to(root)
            category = rel.parts[0] if len(rel.parts) > 1 else ""
            found.append((category, str(rel.with_suffix("")), path))
    if not found:
        raise InputError(
            f"{root}: no meshes found (neither ShapeNet's <synset>/<id>/models/model_normalized.obj "
            f"nor mesh files {', '.join(MESH_SUFFIXES)}); check the path"
        )
    by_id: dict[str, list[Path]] = {}
    for _, shape_id, path in found:
        by_id.setdefault(shape_id, []).append(path)
    twins = {k: v for k, v in by_id.items() if len(v) > 1}
    if twins:
        shape_id, paths = next(iter(twins.items()))
        names = " and ".join(str(p.relative_to(root)) for p in paths)
        raise InputError(
            f"{root}: {names} would both be shape {shape_id!r} ({len(twins)} such ids); keep one file per shape "
            "(move or rename the others)"
        )
    return "folder", found, {}


def _walk(root: Path) -> list[Path]:
    """Files beneath ``root``, sorted, following links to folders, each real folder once."""

    seen, files = set(), []
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []  # a link back into the tree: already walked
            continue
        seen.add(real)
        # real folders before links to folders: a link to a folder of the tree is the duplicate
        dirs.sort(key=lambda d: (os.path.islink(os.path.join(folder, d)), d))
        files += [Path(folder) / n for n in names if (Path(folder) / n).is_file()]
    return sorted(files)


def plan_shapenet(
    root: str | Path,
    config: ShapenetConfig,
    split_files: Sequence[str | Path] = (),
    *,
    split_fractions: Sequence[float] | None = None,
    val_shapes: int = 0,
) -> tuple[list[ShapeMeta], list[MeshJob], dict]:
    """List the shapes under ``root``: metadata, jobs and a description of the source.

    split_fractions : deal the shapes out to train/(val)/test at random, seeded by
        ``config.seed`` (:func:`split_by_fractions`), instead of split files.
    val_shapes : then move this many ``train`` shapes to ``val`` (:func:`hold_out`; the MetaSDF
        paper holds out 20).
    """
    if split_fractions and split_files:
        raise InputError("--split and --split-fractions both say which split a shape is in; give one of them")
    layout, meshes, notes = find_objects(root)
    if config.synsets:
        wanted = set(config.synsets)
        meshes = [m for m in meshes if m[0] in wanted]
        if not meshes:
            raise InputError(f"{root}: no meshes in the categories {', '.join(sorted(wanted))}; check --synsets")
    splits = read_split_files(split_files) if split_files else None
    by_id = layout in ("folder", "file")  # a plain folder's ids are unique paths: the category key is moot
    if splits is not None and by_id:
        splits = {("", i): name for (_, i), name in splits.items()}
    dealt = split_by_fractions([m[1] for m in meshes], split_fractions, seed=config.seed) if split_fractions else None
    metas, jobs = [], []
    listed = set()
    for category, shape_id, path in meshes:
        if splits is not None:
            key = ("", shape_id) if by_id else (category, shape_id)
            split = splits.get(key)
            if split is None:
                continue
            listed.add(key)
        elif dealt is not None:
            split = dealt[shape_id]
        else:
            split = path.parent.name if layout == "modelnet" else "train"  # ModelNet: its folders
        metas.append(ShapeMeta(shape_id, category, -1, split, _file_fingerprint(path)))
        jobs.append(MeshJob(shape_id, str(path), notes.get(shape_id, ObjectNote())))
    if splits is not None:
        missing = [k for k in splits if k not in listed and (by_id or not config.synsets or k[0] in config.synsets)]
        if not metas:
            example = next(iter(splits))
            raise InputError(
                f"{root}: none of the shapes in the split files is there (the first they list: "
                f"{'/'.join(p for p in example if p)}; ROOT has e.g. {meshes[0][1]!r}, a {layout} layout); check "
                "ROOT and --split"
            )
    else:
        missing = []
    if val_shapes:
        metas = hold_out(metas, val_shapes, seed=config.seed)
    _check_unique(root, metas, jobs)
    jobs = _skips(jobs, config)
    source = {
        "name": "shapenet",
        "layout": layout,
        "path": str(as_root(root).resolve()),
        "split_files": [str(f) if is_named_split(f) else str(Path(f).resolve()) for f in split_files],
        **({"split_fractions": [float(f) for f in split_fractions], "split_seed": config.seed} if dealt else {}),
        **({"val_shapes": val_shapes, "val_seed": config.seed} if val_shapes else {}),
        "missing_from_root": len(missing),
        "missing_ids": [f"{c}/{i}" if c else i for c, i in missing],
        "id": _source_id(meshes, split_fractions if dealt else None, val_shapes, config.seed),
    }
    return metas, jobs, source


def _check_unique(root, metas: Sequence[ShapeMeta], jobs: Sequence[MeshJob]) -> None:
    """An input error naming two meshes that have the same id."""
    seen: dict[str, str] = {}
    for meta, job in zip(metas, jobs, strict=True):
        if meta.id in seen:
            raise InputError(
                f"{root}: {seen[meta.id]} and {job.path} have the same id {meta.id!r}; ids must be unique across "
                "categories: pick the categories with --synsets or list one of them in --split"
            )
        seen[meta.id] = job.path


def _source_id(meshes, fractions, val_shapes: int, seed: int) -> str:
    """The source's id: every mesh's name, size and modification time (an edited mesh changes
    it), with the fractions that dealt the splits and the hold-out where given."""
    digest = hashlib.sha256(f"{list(fractions)}\n".encode() if fractions else b"")
    if val_shapes:
        digest.update(f"val {val_shapes} {seed}\n".encode())
    for category, shape_id, path in meshes:
        digest.update(f"{category}/{shape_id}:{_file_fingerprint(path)}\n".encode())
    return digest.hexdigest()[:16]


def _file_fingerprint(path) -> str:
    """A file's size and modification time (``missing`` for a listed object not on disk)."""
    try:
        stat = path.stat()
    except (OSError, FileNotFoundError):
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _skips(jobs: list[MeshJob], config: ShapenetConfig) -> list[MeshJob]:
    """The jobs with the reasons to skip some: a licence not in ``config.licences``; with
    ``config.dedup``, the same bytes as an earlier object (the first in store order is kept)."""

    out = list(jobs)
    if config.licences is not None:
        wanted = ",".join(config.licences)
        for k, job in enumerate(out):
            if job.note.licence not in config.licences:
                said = f"licence {job.note.licence}" if job.note.licence else "no licence recorded"
                out[k] = replace(job, skip=f"{said} (--licence {wanted})")
    if config.dedup:
        todo = [k for k, job in enumerate(out) if not job.skip]

        def digest(job: MeshJob) -> str:
            if job.note.sha256:
                return job.note.sha256
            try:
                return file_sha256(job.path)
            except OSError:
                return f"unreadable:{job.path}"  # fails when computed, saying why

        with ThreadPoolExecutor(8) as pool:  # hashing reads files: threads overlap the waits
            digests = list(pool.map(digest, [out[k] for k in todo]))
        first: dict[str, str] = {}
        for k, sha in zip(todo, digests, strict=True):
            kept = first.setdefault(sha, out[k].id)
            if kept != out[k].id:
                out[k] = replace(out[k], skip=f"duplicate of {kept} (the same bytes, sha256 {sha[:12]}...)")
    return out


def array_specs(config: ShapenetConfig) -> list[ArraySpec]:
    """The data arrays of a ``shapenet`` store (besides ``meta/*``): every recipe's, in the
    registry's order."""

    return [*specs_for(config.recipes, asdict(config)), *LEDGER_SPECS]


def _warm() -> None:
    import trimesh  # noqa: F401

    raycast.open3d()


def process_mesh(
    job: MeshJob, *, samples: int, surface_samples: int, seed: int, rays: int, recipes=("deepsdf",), parameters=None
) -> dict:
    """Load one mesh and compute every array of its row: the outer surface once, from the shape's
    stream 0 (as voxelize finds it again), then each recipe from its own stream, and its ledger
    (:mod:`sdfkit.sources.ledger`). ``parameters``: the run's others (:class:`ShapenetConfig`),
    for recipes that read them and ``max_faces``."""

    if job.skip:
        raise Skipped(job.skip)
    if job.path.endswith(NOT_DOWNLOADED):
        raise ShapeError(f"{job.id}: not downloaded (metadata.csv gives no local_path); download it, then run again")
    parameters = {**(parameters or {}), "samples": samples, "surface_samples": surface_samples}
    _warm()  # a worker's first object does not pay the libraries' imports in its seconds and memory
    start = time.perf_counter()
    with PeakMemory() as peak:
        with local_copy(job.path) as local:  # a file in object storage is fetched once
            mesh, found = read_mesh(local)
            sha = file_sha256(local)
        limit = parameters.get("max_faces")
        if limit is not None and len(mesh.faces) > limit:
            raise ShapeError(f"{Path(job.path).name}: {len(mesh.faces):,} faces, over --max-faces {limit:,}")
        if job.note.sha256 and sha != job.note.sha256:
            raise ShapeError(
                f"{Path(job.path).name}: its bytes' sha256 is {sha[:12]}..., not the {job.note.sha256[:12]}... "
                "metadata.csv lists: a different file; download it again"
            )
        signed = signed_mesh(mesh, rays=rays, rng=shape_rng(seed, job.id))
        out = {}
        for name in recipes:
            item = recipe(name)
            out.update(item.sample(mesh, signed, rng=shape_rng(seed, job.id, item.stream), parameters=parameters))
    out.update(
        ledger_row(mesh, found, signed, sha256=sha, licence=job.note.licence, name=job.note.name,
                   seconds=time.perf_counter() - start, memory=peak.bytes)
    )  # fmt: skip
    return out


def processor(config: ShapenetConfig) -> Callable[[MeshJob], dict]:
    return partial(
        process_mesh,
        samples=config.samples,
        surface_samples=config.surface_samples,
        seed=config.seed,
        rays=config.rays,
        recipes=config.recipes,
        parameters=asdict(config),
    )


def parameters(config: ShapenetConfig) -> dict:

    out = asdict(config)
    if "vecset" not in config.recipes:
        del out["sharp_angle"]  # recorded only where it matters: other stores keep their parameters
    out["method"] = METHOD
    for key, default in (("licences", None), ("dedup", False), ("max_faces", None), ("confidence", False)):
        if out[key] == default:
            del out[key]  # recorded where given: other stores keep their parameters
    if config.licences is not None:
        out["licences"] = list(config.licences)
    out["synsets"] = list(config.synsets) if config.synsets else None
    out["recipes"] = list(config.recipes)
    return out


def prepare_shapenet(
    root: str | Path,
    out: str,
    config: ShapenetConfig | None = None,
    *,
    split_files: Sequence[str | Path] = (),
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    shard_size: int = SHARD_SIZE,
    split_fractions: Sequence[float] | None = None,
    val_shapes: int = 0,
    limits=None,
    progress: Callable[[int, int], None] | None = None,
):
    """Build (or resume) a ``shapenet`` store; returns a :class:`~sdfkit.pipeline.RunSummary`.

    Meshes run in worker processes (``workers``), or on a Dask cluster (``scheduler`` address),
    so that a native crash on one mesh fails that mesh alone. ``split_fractions``, ``val_shapes``:
    see :func:`plan_shapenet`. ``limits``: :class:`sdfkit.pipeline.runners.Limits` per mesh (time,
    worker memory); a mesh over one fails saying so, its worker replaced.
    """

    config = config or ShapenetConfig()
    metas, jobs, source = plan_shapenet(
        root, config, split_files, split_fractions=split_fractions, val_shapes=val_shapes
    )
    plan = Plan(
        kind="shapenet",
        metas=metas,
        jobs=jobs,
        process=processor(config),
        specs=array_specs(config),
        parameters=parameters(config),
        source=source,
        shard_size=shard_size,
        finish=mark_near_duplicates if config.dedup else None,
        limits=limits,
    )
    return build_store(
        plan, out, workers=workers, scheduler=scheduler, isolate=True, overwrite=overwrite, progress=progress
    )


NEAR_DUPLICATE = "near-duplicate of "


def mark_near_duplicates(group) -> int:
    """``--dedup``'s pass over a finished store: of each group of near-duplicates among the ok
    shapes (:func:`sdfkit.sources.ledger.near_duplicates` on ``ledger/print``), every shape but
    the first in store order becomes skipped, its error naming the one kept and their distance.
    Shapes an earlier pass marked take part again, so a second pass changes nothing. Returns the
    number marked."""
    import numpy as np

    status = read_status(group)
    errors = as_str(group["meta/error"][:])
    earlier = (status == STATUS_SKIPPED) & np.char.startswith(errors.astype(str), SKIPPED + NEAR_DUPLICATE)
    candidates = np.nonzero((status == STATUS_OK) | earlier)[0]
    prints = group["ledger/print"][:]
    measures = np.concatenate([group["ledger/area"][:][:, None], group["ledger/moments"][:]], axis=1)
    found = near_duplicates(prints, candidates, measures=measures)
    ids = as_str(group["meta/id"][:])
    new_status, new_errors = status.copy(), errors.astype(object).copy()
    for row in candidates:
        new_status[row], new_errors[row] = STATUS_OK, ""
    for row, (kept, distance) in found.items():
        new_status[row] = STATUS_SKIPPED
        new_errors[row] = f"{SKIPPED}{NEAR_DUPLICATE}{ids[kept]} (shape prints {distance:.4f} apart)"
    changed = np.nonzero((new_status != status) | (new_errors != errors.astype(object)))[0]
    if len(changed):  # one writer: this process, after every shard is written
        group["meta/error"][:] = np.asarray(new_errors, dtype=object)
        group["meta/status"][:] = new_status
    return len(found)


def mesh_paths(info: dict, ids: Sequence[str], url: str, root: str | Path | None = None) -> list[str]:
    """The mesh file of each shape of a ``shapenet`` store, from its source tree.

    info : the store's ``sdfkit`` attribute; root : where the tree is now, when it moved since
    the store was made (default: the ``source.path`` recorded in the store).
    Raises :class:`InputError` naming the first missing mesh.
    """
    if info.get("kind") != "shapenet":
        raise InputError(f"{url}: a {info.get('kind')!r} store has no meshes; give a prepare-shapenet store")
    source = info.get("source", {})
    root = as_root(root if root is not None else source.get("path", ""))
    if not root.is_dir():
        raise InputError(
            f"{url}: its meshes were in {root}, which is not there; pass --meshes with the folder they are in now"
        )
    _, found = find_meshes(root)
    by_id = {shape_id: str(path) for _, shape_id, path in found}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise InputError(
            f"{url}: {len(missing)} of its meshes are not under {root} (first: {missing[0]}); "
            "pass --meshes with the folder the store was made from"
        )
    return [by_id[i] for i in ids]
