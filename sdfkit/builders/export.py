"""Writing a store in the layouts other projects read (``sdfkit export``).

- ``deepsdf``: DeepSDF's data folder (``SdfSamples``, ``SurfaceSamples``,
  ``NormalizationParameters``, split files), as its ``deep_sdf/data.py`` and ``evaluate.py`` read.
- ``occnet``: Occupancy Networks' dataset folder (``<synset>/<id>/points.npz``,
  ``pointcloud.npz``, ``<synset>/<split>.lst``, ``metadata.yaml``), as its ``im2mesh/data`` fields
  read, from the store's ``occnet`` recipe (uniform points with occupancies, OccNet's frame).
- ``ifnet`` / ``ndf``: IF-Net's or NDF's data folder (``<synset>/<id>/boundary_<sigma>_samples.npz``,
  ``voxelized_point_cloud_<res>res_<n>points.npz``, ``split.npz``), as their
  ``models/data/voxelized_data_shapenet.py`` read, from the store's ``ifnet`` or ``ndf`` recipe.
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

__all__ = ["FORMATS", "ExportSummary", "export_store", "write_ply_points"]

FORMATS = ("deepsdf", "occnet", "ifnet", "ndf", "npz")
_KINDS = {
    "deepsdf": ("shapenet",),
    "occnet": ("shapenet",),
    "ifnet": ("shapenet",),
    "ndf": ("shapenet",),
    "npz": ("shapenet", "mnist", "renders"),
}
_NEEDS = {"occnet": "occnet/points", "ifnet": "ifnet/loc", "ndf": "ndf/loc"}
"""Exports made from a recipe's arrays: the array that tells the store has the recipe."""


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
    """OccNet's two files from the ``occnet`` recipe's arrays (already in OccNet's frame)."""
    folder = tmp / (shape["category"] or OCCNET_CATEGORY) / shape["id"]
    folder.mkdir(parents=True, exist_ok=True)
    loc = np.asarray(shape["occnet/loc"], dtype=np.float32)
    scale = np.float32(shape["occnet/scale"])
    np.savez(
        folder / "points.npz",
        points=shape["occnet/points"].astype(np.float32),
        occupancies=np.packbits(shape["occnet/occupancies"].astype(bool)),  # OccNet's --packbits
        loc=loc,
        scale=scale,
    )
    np.savez(
        folder / "pointcloud.npz",
        points=shape["occnet/surface_points"].astype(np.float32),
        normals=shape["occnet/surface_normals"].astype(np.float32),
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


def _split_files(to: str, tmp: Path, listing: dict[str, dict[str, list[str]]], dataset: str, out: Path) -> int:
    """listing : split -> category -> ids; out : where the export will be (NDF's split holds
    full paths)."""
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
    elif to in ("ifnet", "ndf"):
        # IF-Net reads data_path + entry ('/<synset>/<id>'), NDF the entry itself (a folder path)
        root = "" if to == "ifnet" else str(Path(out).resolve())
        splits = {
            split: np.array([f"{root}/{c or OCCNET_CATEGORY}/{i}" for c, ids in cats.items() for i in ids])
            for split, cats in listing.items()
        }
        for split in ("train", "val", "test"):
            splits.setdefault(split, np.array([], dtype=str))
        np.savez(tmp / "split.npz", **splits)
        count += 1
    return count


def _write_chibane(to: str, shape: dict, tmp: Path) -> int:
    """IF-Net's or NDF's files for one shape: ``boundary_<sigma>_samples.npz`` per sigma and the
    voxelized point-cloud input, as their ``data_processing`` scripts write them."""
    from sdfkit.recipes import ifnet, ndf

    folder = tmp / (shape["category"] or OCCNET_CATEGORY) / shape["id"]
    folder.mkdir(parents=True, exist_ok=True)
    recipe = ifnet if to == "ifnet" else ndf
    for sigma in recipe.SIGMAS:
        points = shape[f"{to}/boundary_{sigma}/points"].astype(np.float64)
        content = {"points": points, "grid_coords": ifnet.grid_coords(points)}
        if to == "ifnet":
            content["occupancies"] = shape[f"ifnet/boundary_{sigma}/occupancies"].astype(bool)
        else:
            content["df"] = shape[f"ndf/boundary_{sigma}/df"].astype(np.float64)
        np.savez(folder / f"boundary_{sigma}_samples.npz", **content)
    clouds = [(n, shape[f"ifnet/pointcloud_{n}"]) for n in ifnet.POINT_CLOUDS] if to == "ifnet" else []
    if to == "ndf":
        clouds = [(ndf.POINT_CLOUD, shape["ndf/pointcloud"])]
    for n, cloud in clouds:
        cloud = cloud.astype(np.float64)
        occupancies = ifnet.voxelized_point_cloud(cloud, recipe.RESOLUTION)
        np.savez(
            folder / f"voxelized_point_cloud_{recipe.RESOLUTION}res_{n}points.npz",
            point_cloud=cloud,
            compressed_occupancies=np.packbits(occupancies),
            bb_min=-0.5,
            bb_max=0.5,
            res=recipe.RESOLUTION,
        )
    return len(recipe.SIGMAS) + len(clouds)


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
    if to in _NEEDS and everything.kind == "shapenet" and _NEEDS[to] not in everything.group:
        raise InputError(
            f"{url}: has no {to} samples (each project trains on its own distribution, not DeepSDF's); make the "
            f"store with: sdfkit prepare-shapenet ROOT --recipe {to} -o STORE"
        )
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
            elif to in ("ifnet", "ndf"):
                files += _write_chibane(to, shape, tmp)
            else:
                files += _write_npz(shape, tmp, arrays)
            if progress:
                progress(done, len(rows))
        files += _split_files(to, tmp, listing, dataset, out)
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
