"""Writing a store in the layouts other projects read (``sdfkit export``).

- ``deepsdf``: DeepSDF's data folder (``SdfSamples``, ``SurfaceSamples``,
  ``NormalizationParameters``, split files), as its ``deep_sdf/data.py`` and ``evaluate.py`` read.
- ``occnet``: Occupancy Networks' dataset folder (``<synset>/<id>/points.npz``,
  ``pointcloud.npz``, ``<synset>/<split>.lst``, ``metadata.yaml``), as its ``im2mesh/data`` fields
  read.
- ``npz``: one ``<id>.npz`` per shape with every array of the store's row, for anything else.

The output is built in a hidden sibling folder and renamed into place at the end, so a folder
named OUT_DIR is always a whole export. Shapes that failed in the store are not exported.
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
from sdfkit.errors import InputError

__all__ = ["FORMATS", "ExportSummary", "export_store", "write_ply_points", "occnet_frame"]

FORMATS = ("deepsdf", "occnet", "npz")
_KINDS = {"deepsdf": ("shapenet",), "occnet": ("shapenet",), "npz": ("shapenet", "mnist", "renders")}


@dataclass
class ExportSummary:
    out: str
    format: str
    shapes: int
    seconds: float
    skipped: list = field(default_factory=list)
    """ids of shapes not exported because they failed in the store."""
    files: int = 0


def write_ply_points(path: Path, points: np.ndarray) -> None:
    """A point cloud as ASCII PLY, the way DeepSDF's preprocessing writes SurfaceSamples: float
    x, y, z per vertex and an empty face element. ``%.9g`` keeps float32 values exact."""
    points = np.asarray(points, dtype=np.float32)
    header = (
        "ply\nformat ascii 1.0\n"
        f"element vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with open(path, "w") as f:
        f.write(header)
        np.savetxt(f, points, fmt="%.9g")


def occnet_frame(offset: np.ndarray, scale: float) -> tuple[np.ndarray, np.float32]:
    """Occupancy Networks' (loc, scale) for a shape stored in DeepSDF's frame.

    OccNet's points are ``(raw - loc) / scale`` and its shapes lie in the unit cube
    ``[-0.5, 0.5]^3``. With ``loc = -offset`` and ``scale = 2 / scale_deepsdf`` its frame is
    sdfkit's normalized frame halved: the unit ball becomes the ball of radius 0.5, inside the cube.
    """
    return (-np.asarray(offset, dtype=np.float32)), np.float32(2.0 / float(scale))


def _path(root: Path, *parts: str) -> Path:
    path = root.joinpath(*[p for p in parts if p])
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_deepsdf(shape: dict, tmp: Path, dataset: str) -> int:
    category, shape_id = shape["category"], shape["id"]
    points, values = shape["sdf/points"], shape["sdf/values"]
    rows = np.concatenate([points, values[:, None]], axis=1).astype(np.float32)
    positive = values > 0
    np.savez(_path(tmp, "SdfSamples", dataset, category, f"{shape_id}.npz"), pos=rows[positive], neg=rows[~positive])
    offset = np.asarray(shape["norm/offset"], dtype=np.float64)
    scale = float(shape["norm/scale"])
    raw = shape["surface/points"].astype(np.float64) / scale - offset
    write_ply_points(_path(tmp, "SurfaceSamples", dataset, category, f"{shape_id}.ply"), raw)
    np.savez(
        _path(tmp, "NormalizationParameters", dataset, category, f"{shape_id}.npz"),
        offset=offset.astype(np.float32),  # DeepSDF's files hold float32
        scale=np.array([scale], dtype=np.float32),
    )
    return 3


OCCNET_CATEGORY = "shapes"
"""The category folder of shapes without a category (a plain folder of meshes): OccNet's loader
reads every folder beside the split files as a category."""


def _write_occnet(shape: dict, tmp: Path) -> int:
    loc, scale = occnet_frame(shape["norm/offset"], shape["norm/scale"])
    folder = tmp / (shape["category"] or OCCNET_CATEGORY) / shape["id"]
    folder.mkdir(parents=True, exist_ok=True)
    inside = shape["sdf/values"] < 0
    np.savez(
        folder / "points.npz",
        points=(shape["sdf/points"] / 2.0).astype(np.float32),
        occupancies=np.packbits(inside),
        loc=loc,
        scale=scale,
    )
    np.savez(
        folder / "pointcloud.npz",
        points=(shape["surface/points"] / 2.0).astype(np.float32),
        normals=shape["surface/normals"].astype(np.float32),
        loc=loc,
        scale=scale,
    )
    return 2


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
    np.savez_compressed(_path(tmp, f"{shape['id']}.npz"), **content)
    return 1


def _split_files(to: str, tmp: Path, listing: dict[str, dict[str, list[str]]], dataset: str) -> int:
    """listing : split -> category -> ids."""
    count = 0
    if to == "deepsdf":
        for split, categories in listing.items():
            (tmp / "splits").mkdir(exist_ok=True)
            (tmp / "splits" / f"{split}.json").write_text(json.dumps({dataset: categories}, indent=1))
            count += 1
    elif to == "occnet":
        categories = sorted({c for cats in listing.values() for c in cats})
        for category in categories:
            folder = tmp / (category or OCCNET_CATEGORY)
            for split in ("train", "val", "test", *sorted(set(listing) - {"train", "val", "test"})):
                ids = listing.get(split, {}).get(category, [])
                (folder / f"{split}.lst").write_text("".join(f"{i}\n" for i in ids))
                count += 1
        names = [c or OCCNET_CATEGORY for c in categories]
        (tmp / "metadata.yaml").write_text("".join(f"'{c}':\n  id: '{c}'\n  name: '{c}'\n" for c in names))
        count += 1
    return count


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


def export_store(
    url: str,
    to: str,
    out: str | Path,
    *,
    split: str | None = None,
    ids: Sequence[str] | None = None,
    dataset: str = "ShapeNetV2",
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Write the shapes of a complete store in another project's layout (see the module doc)."""
    from sdfkit.store.dataset import open_dataset

    start = time.perf_counter()
    if to not in FORMATS:
        raise InputError(f"unknown export format {to!r}; choose one of {', '.join(FORMATS)}")
    everything = open_dataset(url, split=split, include_failed=True)
    if everything.kind not in _KINDS[to]:
        raise InputError(
            f"{url}: a {everything.kind!r} store cannot be exported to {to} "
            f"(it needs {' or '.join(_KINDS[to])}); use --to npz"
        )
    rows = np.arange(len(everything))
    if ids:
        wanted = list(dict.fromkeys(ids))
        position = {shape_id: k for k, shape_id in enumerate(everything.ids)}
        unknown = [i for i in wanted if i not in position]
        if unknown:
            raise InputError(f"{url}: no shape {unknown[0]!r}{' in split ' + split if split else ''}; check --ids")
        rows = np.array([position[i] for i in wanted], dtype=np.int64)
    ok = everything.meta("status")[rows] == 1
    skipped = [everything.ids[k] for k in rows[~ok]]
    rows = rows[ok]
    if len(rows) == 0:
        raise InputError(f"{url}: no exportable shape (every selected shape failed or none is selected)")
    out = Path(out)
    tmp = _prepare_out(out, overwrite)
    arrays = [a for a in everything.arrays if not a.startswith("voxels/") or a in everything.group]
    files = 0
    listing: dict[str, dict[str, list[str]]] = {}
    try:
        if progress:
            progress(0, len(rows))
        for done, k in enumerate(rows, 1):
            shape = everything[int(k)]
            listing.setdefault(shape["split"], {}).setdefault(shape["category"], []).append(shape["id"])
            if to == "deepsdf":
                files += _write_deepsdf(shape, tmp, dataset)
            elif to == "occnet":
                files += _write_occnet(shape, tmp)
            else:
                files += _write_npz(shape, tmp, arrays)
            if progress:
                progress(done, len(rows))
        files += _split_files(to, tmp, listing, dataset)
        (tmp / "sdfkit-export.json").write_text(
            json.dumps(
                {
                    "format": to,
                    "store": str(url),
                    "split": split,
                    "shapes": len(rows),
                    "skipped_failed": skipped,
                    "sdfkit_version": __version__,
                },
                indent=1,
            )
        )
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportSummary(str(out), to, len(rows), time.perf_counter() - start, skipped, files)
