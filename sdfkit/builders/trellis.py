"""TRELLIS' training data (``sdfkit export --to trellis``): what its ``dataset_toolkits`` write
and its ``trellis/datasets`` classes read, from a store's meshes.

Layout, per object keyed by the sha256 of its file's bytes (TRELLIS' ``get_file_hash``):

- ``voxels/<sha256>.ply``: the centres of the 64^3 cells of [-0.5, 0.5]^3 that the mesh's
  surface touches, binary PLY with float32 x, y, z (``utils3d.io.write_ply``), read by
  ``SparseStructure``. TRELLIS' ``voxelize.py`` takes them from open3d's
  ``VoxelGrid.create_from_triangle_mesh_within_bounds``; sdfkit's are the exact triangle-box
  overlaps (:func:`sdfkit.geometry.voxels.surface_voxels`).
- ``renders/<sha256>/``: ``000.png`` ... (``--views``, 150 as theirs, 512 x 512),
  ``transforms.json`` and ``mesh.ply`` in the convention of ``render.py``: the mesh turned z-up
  and fitted into [-0.5, 0.5]^3 (:func:`sdfkit.rendering.blender_frame`), cameras at distance 2
  with a 40 degree field of view on a Hammersley sphere (:func:`sdfkit.rendering.trellis_cameras`).
- ``metadata.csv``: ``sha256``, ``file_identifier`` (the store's id), ``aesthetic_score``,
  ``rendered``, ``voxelized``, ``num_voxels``, ``local_path``, ``category``, ``split``. sdfkit
  has no aesthetic scores: the column holds ``--aesthetic-score`` where given and is empty
  otherwise, and TRELLIS' classes (``min_aesthetic_score`` 4.5 in its configs) drop an object
  without one.

Two ids whose files hold the same bytes are one TRELLIS object: the first is written, the others
are listed in ``duplicates.csv`` (``file_identifier``, ``sha256``, ``kept``: the id written).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from sdfkit.geometry.basics import shape_rng
from sdfkit.geometry.mesh import compact, load_mesh
from sdfkit.geometry.voxels import surface_voxels
from sdfkit.recipes.base import ExportContext, Exporter
from sdfkit.rendering import blender_frame, render_blender_views, trellis_cameras
from sdfkit.sources.objects import file_sha256

__all__ = ["TRELLIS", "RESOLUTION", "VIEWS", "trellis_voxels", "write_points_ply", "read_points_ply"]

RESOLUTION = 64
"""Cells per side of TRELLIS' sparse structure."""
VIEWS = 150
"""Views per object in TRELLIS' ``render.py`` (``--num_views``)."""


def trellis_voxels(vertices: np.ndarray, faces: np.ndarray, resolution: int = RESOLUTION) -> np.ndarray:
    """(n, 3) float32 centres, in [-0.5, 0.5]^3, of the cells a triangle of the mesh touches;
    ``vertices`` already in TRELLIS' frame (:func:`sdfkit.rendering.blender_frame`). Vertices are
    clamped into the open box first, as TRELLIS' ``voxelize.py`` does."""

    inside = np.clip(vertices, -0.5 + 1e-6, 0.5 - 1e-6)
    cells = np.argwhere(surface_voxels(inside, faces, resolution))
    return ((cells + 0.5) / resolution - 0.5).astype(np.float32)


def write_points_ply(path: Path, points: np.ndarray) -> None:
    """A binary little-endian PLY of vertices (float32 x, y, z) alone."""
    points = np.ascontiguousarray(points, dtype="<f4").reshape(-1, 3)
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(points)}\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    )
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(points.tobytes())


def read_points_ply(path: Path) -> np.ndarray:
    """The vertices (n, 3) float32 of a PLY written by :func:`write_points_ply`."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    count = int(next(line for line in data[:end].split(b"\n") if line.startswith(b"element vertex")).split()[2])
    return np.frombuffer(data, dtype="<f4", count=3 * count, offset=end).reshape(count, 3)


def _write_shape(shape: dict, tmp: Path, context: ExportContext) -> int:

    path = context.meshes[shape["id"]]
    sha = file_sha256(str(path))
    voxels = tmp / "voxels" / f"{sha}.ply"
    if voxels.exists():  # the same bytes under another id: one TRELLIS object
        return 0
    voxels.parent.mkdir(exist_ok=True)
    mesh = compact(load_mesh(path))
    vertices, _, _ = blender_frame(mesh.vertices)
    write_points_ply(voxels, trellis_voxels(vertices, mesh.faces))
    views = int(context.options.get("views", VIEWS))
    if views == 0:
        return 1
    cameras = trellis_cameras(views, shape_rng(context.seed, shape["id"], 300))
    render_blender_views(str(path), tmp / "renders" / sha, cameras, size=int(context.options.get("size", 512)))
    return 1 + views + 2


def _write_index(tmp: Path, listing: dict, context: ExportContext) -> int:
    score = context.options.get("aesthetic_score")
    rows, seen, duplicates = [], {}, []
    for split, cats in listing.items():
        for category, ids in cats.items():
            for shape_id in ids:
                path = str(context.meshes[shape_id])
                sha = file_sha256(path)
                if sha in seen:
                    duplicates.append({"file_identifier": shape_id, "sha256": sha, "kept": seen[sha]})
                    continue
                seen[sha] = shape_id
                voxels = read_points_ply(tmp / "voxels" / f"{sha}.ply")
                rows.append(
                    {
                        "sha256": sha,
                        "file_identifier": shape_id,
                        "aesthetic_score": "" if score is None else float(score),
                        "rendered": (tmp / "renders" / sha / "transforms.json").is_file(),
                        "voxelized": True,
                        "num_voxels": len(voxels),
                        "local_path": os.path.relpath(os.path.abspath(path), context.relative_to.resolve()),
                        "category": category,
                        "split": split,
                    }
                )
    with open(tmp / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if not duplicates:
        return 1
    with open(tmp / "duplicates.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(duplicates[0]))
        writer.writeheader()
        writer.writerows(duplicates)
    return 2


TRELLIS = Exporter(
    "trellis",
    "TRELLIS' metadata.csv, voxels/<sha256>.ply (64^3 surface voxels, exact triangle-box overlap) and "
    "renders/<sha256>/ (--views views, transforms.json, mesh.ply), keyed by the sha256 of each mesh file",
    _write_shape,
    _write_index,
    needs_meshes=True,
)
