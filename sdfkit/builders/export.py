"""Writing a store in the layouts other projects read (``sdfkit export``).

Each recipe brings the exporters of its arrays (:mod:`sdfkit.recipes`): ``deepsdf`` (DeepSDF's data
folder), ``occnet`` (Occupancy Networks'), ``ifnet`` and ``ndf`` (IF-Net's, NDF's), and those of
recipe plug-ins. ``npz``, here: one ``<id>.npz`` per shape with every array of the store's row,
for anything else; ``trellis`` (:mod:`sdfkit.builders.trellis`): TRELLIS' voxels and renders, from
the store's meshes.

The output is built in a hidden sibling folder and renamed into place at the end, so a folder
named OUT_DIR is always a whole export. Shapes that failed or were skipped in the store are not
exported.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdfkit._version import __version__
from sdfkit.builders.trellis import TRELLIS
from sdfkit.errors import InputError
from sdfkit.recipes.base import ExportContext, Exporter, exporters, shape_file
from sdfkit.sources.shapenet import mesh_paths
from sdfkit.store.dataset import open_dataset
from sdfkit.store.format import STATUS_OK

__all__ = ["formats", "ExportSummary", "export_store"]

NPZ = Exporter(
    "npz",
    "one <id>.npz per shape with every array of its row (any store kind)",
    lambda shape, tmp, context: _write_npz(shape, tmp, context.options["arrays"]),
    kinds=("shapenet", "mnist", "renders"),
)


def formats() -> dict[str, tuple[str | None, Exporter]]:
    """``--to`` name -> (the recipe whose arrays it needs, or None; the exporter)."""

    recipes = {name: (item.name, exporter) for name, (item, exporter) in exporters().items()}
    return {**recipes, "npz": (None, NPZ), "trellis": (None, TRELLIS)}


@dataclass
class ExportSummary:
    out: str
    format: str
    shapes: int
    seconds: float
    skipped: list = field(default_factory=list)
    """ids of shapes not exported because they failed or were skipped in the store."""
    files: int = 0


def _write_npz(shape: dict, tmp: Path, arrays: Sequence[str]) -> int:
    content = {}
    for name in arrays:
        value = np.asarray(shape[name])
        # numpy's variable-width strings would be pickled: store fixed-width unicode instead
        if value.dtype.kind in "OT":
            value = np.array([str(v) for v in value.ravel().tolist()], dtype=str).reshape(value.shape)
        content[name] = value
    for name in ("id", "category", "split", "label"):
        content[f"meta/{name}"] = np.asarray(shape[name])
    np.savez_compressed(shape_file(tmp, f"{shape['id']}.npz"), **content)
    return 1


def _prepare_out(out: Path, overwrite: bool) -> Path:
    if out.exists():
        if not out.is_dir():
            raise InputError(f"{out}: is a file; choose an output folder")
        if any(out.iterdir()) and not overwrite:
            raise InputError(f"{out}: the folder is not empty; pass --overwrite to replace it, or choose another -o")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _chosen_rows(everything, url, split: str | None, ids: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """The store rows to export (``ids`` in their order, or every row of the split) whose shapes
    were computed, and the ids of those that failed (left out)."""
    rows = np.arange(len(everything))
    if ids:
        wanted = list(dict.fromkeys(ids))
        position = {shape_id: k for k, shape_id in enumerate(everything.ids)}
        unknown = [i for i in wanted if i not in position]
        if unknown:
            raise InputError(f"{url}: no shape {unknown[0]!r}{' in split ' + split if split else ''}; check --ids")
        rows = np.array([position[i] for i in wanted], dtype=np.int64)
    ok = everything.meta("status")[rows] == STATUS_OK
    skipped = [everything.ids[k] for k in rows[~ok]]
    rows = rows[ok]
    if len(rows) == 0:
        raise InputError(f"{url}: no exportable shape (every selected shape failed or none is selected)")
    return rows, skipped


def _write(everything, rows, exporter, tmp: Path, out: Path, context, progress, meta: dict) -> int:
    """Every row's files and the index into ``tmp``, then ``tmp`` renamed to ``out`` (a half-written
    export is never left under ``out``'s name). Returns the files written."""
    files = 0
    listing: dict[str, dict[str, list[str]]] = {}
    try:
        if progress:
            progress(0, len(rows))
        for done, k in enumerate(rows, 1):
            shape = everything[int(k)]
            listing.setdefault(shape["split"], {}).setdefault(shape["category"], []).append(shape["id"])
            files += exporter.write_shape(shape, tmp, context)
            if progress:
                progress(done, len(rows))
        files += exporter.write_index(tmp, listing, context)
        (tmp / "sdfkit-export.json").write_text(json.dumps(meta, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


def export_store(
    url: str,
    to: str,
    out: str | Path,
    *,
    split: str | None = None,
    ids: Sequence[str] | None = None,
    dataset: str = "ShapeNetV2",
    relative_to: str | Path | None = None,
    meshes_root: str | Path | None = None,
    options: dict | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Write the shapes of a complete store in another project's layout (see the module doc).

    relative_to : the folder that paths inside index files are relative to (NDF's split entries;
        default the current folder).
    meshes_root : where the store's meshes are now, for exporters that render (default: the
        source folder the store records).
    options : what an exporter reads besides (``trellis``: ``views``, ``aesthetic_score``)."""

    start = time.perf_counter()
    table = formats()
    if to not in table:
        raise InputError(f"unknown export format {to!r}; choose one of {', '.join(table)}")
    recipe, exporter = table[to]
    everything = open_dataset(url, split=split, include_failed=True)
    if everything.kind not in exporter.kinds:
        raise InputError(
            f"{url}: a {everything.kind!r} store cannot be exported to {to} "
            f"(it needs {' or '.join(exporter.kinds)}); use --to npz"
        )
    made = everything.parameters.get("recipes") or ["deepsdf"]
    if recipe is not None and recipe not in made:
        raise InputError(
            f"{url}: has no {recipe} samples (each project trains on its own distribution, not DeepSDF's); make the "
            f"store with: sdfkit prepare-shapenet ROOT --recipe {recipe} -o STORE"
        )
    rows, skipped = _chosen_rows(everything, url, split, ids)
    meshes = {}
    if exporter.needs_meshes:
        chosen = [everything.ids[k] for k in rows]
        meshes = dict(zip(chosen, mesh_paths(everything.attrs, chosen, url, meshes_root), strict=True))
    out = Path(out)
    tmp = _prepare_out(out, overwrite)
    arrays = [a for a in everything.arrays if not a.startswith("voxels/") or a in everything.group]
    seed = int(everything.parameters.get("seed", 0))
    context = ExportContext(
        out, dataset, relative_to or Path.cwd(), {**(options or {}), "arrays": arrays}, meshes, seed
    )
    files = _write(everything, rows, exporter, tmp, out, context, progress, meta={
        "format": to, "store": str(url), "split": split, "shapes": len(rows), "skipped_failed": skipped,
        "sdfkit_version": __version__,
    })  # fmt: skip
    return ExportSummary(str(out), to, len(rows), time.perf_counter() - start, skipped, files)
