"""ShapeNet trees (or any folder of meshes) as shape jobs for the 3D SDF pipeline.

Layouts, detected automatically under ROOT:

- ShapeNetCore v2: ``<synset>/<id>/models/model_normalized.obj``
- ShapeNetCore v1: ``<synset>/<id>/model.obj``
- ModelNet10/40: ``<class>/<train|test>/<name>.off``; the id is the file's name (ModelNet's names
  carry their class), the category the class, the split its folder unless split files say otherwise
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
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from sdfkit.errors import InputError
from sdfkit.geometry.basics import shape_rng
from sdfkit.geometry.mesh import MESH_SUFFIXES, load_mesh
from sdfkit.store.format import ArraySpec, ShapeMeta

__all__ = [
    "ShapenetConfig",
    "MeshJob",
    "find_meshes",
    "read_split_files",
    "split_by_fractions",
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

    def __post_init__(self):
        from sdfkit.recipes import recipe, recipes

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


@dataclass(frozen=True)
class MeshJob:
    id: str
    path: str


def _is_synset(name: str) -> bool:
    return len(name) == 8 and name.isdigit()


def find_meshes(root: str | Path) -> tuple[str, list[tuple[str, str, Path]]]:
    """The layout of ``root`` and its meshes as (category, id, path), sorted.

    ``root`` may be a single mesh file (layout ``"file"``). Symbolic links to folders are
    followed, each real folder once: a link to a folder outside the tree brings its meshes, a link
    to a folder of the tree (or back up it) adds nothing.
    """
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() not in MESH_SUFFIXES:
            raise InputError(f"{root}: not a mesh file ({', '.join(MESH_SUFFIXES)}); give a mesh or a folder of meshes")
        return "file", [("", root.stem, root)]
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
            return layout, found
    modelnet = [
        (c.name, m.stem, m)
        for c in sorted(p for p in root.iterdir() if p.is_dir())
        for split in ("train", "test")
        if (c / split).is_dir()
        for m in sorted((c / split).glob("*.off"))
    ]
    if modelnet:
        return "modelnet", modelnet
    found = []
    for path in _walk(root):
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
    return "folder", found


def _walk(root: Path) -> list[Path]:
    """Files beneath ``root``, sorted, following links to folders, each real folder once."""
    import os

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


def _split_name(path: Path) -> str:
    stem = path.stem.lower()
    for name in ("train", "val", "test"):
        if name in stem:
            return name
    return path.stem


def read_split_files(files: Sequence[str | Path]) -> dict[tuple[str, str], str]:
    """(category, id) -> split name, from DeepSDF-style split files."""
    splits: dict[tuple[str, str], str] = {}
    for file in map(Path, files):
        try:
            data = json.loads(file.read_text())
        except FileNotFoundError:
            raise InputError(f"{file}: no such split file") from None
        except (OSError, ValueError) as exc:
            raise InputError(
                f'{file}: not a JSON split file ({exc}); expected {{"<dataset>": {{"<synset>": [ids]}}}}'
            ) from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise InputError(f'{file}: expected DeepSDF\'s split format {{"<dataset>": {{"<synset>": [ids]}}}}')
        name = _split_name(file)
        for categories in data.values():
            for category, ids in categories.items():
                for shape_id in ids:
                    previous = splits.setdefault((str(category), str(shape_id)), name)
                    if previous != name:
                        raise InputError(f"{file}: shape {category}/{shape_id} is also in split {previous!r}")
    return splits


SPLIT_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}
"""The splits that two or three ``--split-fractions`` make, in order."""


def split_by_fractions(ids: Sequence[str], fractions: Sequence[float], *, seed: int = 0) -> dict[str, str]:
    """Deal shapes out to train/test (two fractions) or train/val/test (three), seeded.

    Each id gets a place in a seeded order by the hash of ``seed`` and the id (the same shape keeps
    its place whatever else the folder holds); the first ``round(f * n)`` of that order go to the
    first split and so on, the counts rounded so that they add up to n (largest remainders).
    Returns id -> split.
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) not in SPLIT_NAMES or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise InputError(
            f"--split-fractions {','.join(map(str, fractions))}: give two (train, test) or three (train, val, test) "
            "fractions that add up to 1, e.g. 0.8,0.1,0.1"
        )
    n = len(ids)
    exact = [f * n for f in fractions]
    counts = [int(e) for e in exact]
    for k in sorted(range(len(exact)), key=lambda k: (counts[k] - exact[k], k))[: n - sum(counts)]:
        counts[k] += 1
    order = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    out, start = {}, 0
    for name, count in zip(SPLIT_NAMES[len(fractions)], counts, strict=True):
        out.update({i: name for i in order[start : start + count]})
        start += count
    return out


def plan_shapenet(
    root: str | Path,
    config: ShapenetConfig,
    split_files: Sequence[str | Path] = (),
    *,
    split_fractions: Sequence[float] | None = None,
) -> tuple[list[ShapeMeta], list[MeshJob], dict]:
    """List the shapes under ``root``: metadata, jobs and a description of the source.

    split_fractions : deal the shapes out to train/(val)/test at random, seeded by
        ``config.seed`` (:func:`split_by_fractions`), instead of split files.
    """
    if split_fractions and split_files:
        raise InputError("--split and --split-fractions both say which split a shape is in; give one of them")
    layout, meshes = find_meshes(root)
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
        stat = path.stat()
        metas.append(ShapeMeta(shape_id, category, -1, split, f"{stat.st_size}:{stat.st_mtime_ns}"))
        jobs.append(MeshJob(shape_id, str(path)))
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
    seen: dict[str, str] = {}
    for meta, job in zip(metas, jobs, strict=True):
        if meta.id in seen:
            raise InputError(
                f"{root}: {seen[meta.id]} and {job.path} have the same id {meta.id!r}; ids must be unique across "
                "categories: pick the categories with --synsets or list one of them in --split"
            )
        seen[meta.id] = job.path
    # the source id: every mesh's name, size and modification time (an edited mesh changes it)
    digest = hashlib.sha256(f"{list(split_fractions or [])}\n".encode() if dealt else b"")
    for category, shape_id, path in meshes:
        stat = path.stat()
        digest.update(f"{category}/{shape_id}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    source = {
        "name": "shapenet",
        "layout": layout,
        "path": str(Path(root).resolve()),
        "split_files": [str(Path(f).resolve()) for f in split_files],
        **({"split_fractions": [float(f) for f in split_fractions], "split_seed": config.seed} if dealt else {}),
        "missing_from_root": len(missing),
        "missing_ids": [f"{c}/{i}" if c else i for c, i in missing],
        "id": digest.hexdigest()[:16],
    }
    return metas, jobs, source


def array_specs(config: ShapenetConfig) -> list[ArraySpec]:
    """The data arrays of a ``shapenet`` store (besides ``meta/*``): every recipe's, in the
    registry's order."""
    from sdfkit.recipes import specs_for

    return specs_for(config.recipes, asdict(config))


def process_mesh(
    job: MeshJob, *, samples: int, surface_samples: int, seed: int, rays: int, recipes=("deepsdf",), parameters=None
) -> dict:
    """Load one mesh and compute every array of its row: the outer surface once, from the shape's
    stream 0 (as voxelize finds it again), then each recipe from its own stream. ``parameters``:
    the run's others (:class:`ShapenetConfig`), for recipes that read them."""
    from sdfkit.recipes import recipe
    from sdfkit.recipes.deepsdf import signed_mesh

    mesh = load_mesh(job.path)
    signed = signed_mesh(mesh, rays=rays, rng=shape_rng(seed, job.id))
    parameters = {**(parameters or {}), "samples": samples, "surface_samples": surface_samples}
    out = {}
    for name in recipes:
        item = recipe(name)
        out.update(item.sample(mesh, signed, rng=shape_rng(seed, job.id, item.stream), parameters=parameters))
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
    from sdfkit.geometry.sign import METHOD

    out = asdict(config)
    if "vecset" not in config.recipes:
        del out["sharp_angle"]  # recorded only where it matters: other stores keep their parameters
    out["method"] = METHOD
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
    progress: Callable[[int, int], None] | None = None,
):
    """Build (or resume) a ``shapenet`` store; returns a :class:`~sdfkit.pipeline.RunSummary`.

    Meshes run in worker processes (``workers``), or on a Dask cluster (``scheduler`` address),
    so that a native crash on one mesh fails that mesh alone. ``split_fractions``: see
    :func:`plan_shapenet`.
    """
    from sdfkit.pipeline import Plan, build_store

    config = config or ShapenetConfig()
    metas, jobs, source = plan_shapenet(root, config, split_files, split_fractions=split_fractions)
    plan = Plan(
        kind="shapenet",
        metas=metas,
        jobs=jobs,
        process=processor(config),
        specs=array_specs(config),
        parameters=parameters(config),
        source=source,
        shard_size=shard_size,
    )
    return build_store(
        plan, out, workers=workers, scheduler=scheduler, isolate=True, overwrite=overwrite, progress=progress
    )


def mesh_paths(info: dict, ids: Sequence[str], url: str, root: str | Path | None = None) -> list[str]:
    """The mesh file of each shape of a ``shapenet`` store, from its source tree.

    info : the store's ``sdfkit`` attribute; root : where the tree is now, when it moved since
    the store was made (default: the ``source.path`` recorded in the store).
    Raises :class:`InputError` naming the first missing mesh.
    """
    if info.get("kind") != "shapenet":
        raise InputError(f"{url}: a {info.get('kind')!r} store has no meshes; give a prepare-shapenet store")
    source = info.get("source", {})
    root = Path(root if root is not None else source.get("path", ""))
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
