"""Occupancy Networks' (and ConvONet's) training data, with sdfkit's signs (``--recipe occnet``).

From occupancy_networks ``scripts/sample_mesh.py`` run as for its ShapeNet data (``--resize``,
``--packbits``): the frame centres the mesh's bounding box and scales its longest side to 1
(``loc`` = box centre, ``scale`` = longest side, ``bbox_padding`` 0; ``points = (raw - loc) /
scale``); ``points_size`` 100,000 points uniform in the cube of side ``1 + points_padding`` =
1.1 (``points_uniform_ratio`` 1.0) with their occupancies; ``pointcloud_size`` 100,000 surface
points with the normals of their faces. ConvONet reads the same ``points.npz`` for its IoU.

``model.binvox`` (read by OccNet's default config in val and test mode for its voxel IoU): a 32^3
solid voxelization of the outer surface in OccNet's frame over [-0.5, 0.5]^3, a cell filled where
the surface touches it or its centre is inside (``occnet/voxels``).

Export (``sdfkit export --to occnet``): ``<synset>/<id>/points.npz`` (points float32, occupancies
packed bits as ``--packbits``, loc and scale float64 as ``sample_mesh.py`` writes them),
``pointcloud.npz``, ``model.binvox``, ``<synset>/<split>.lst`` (ids joined by newlines, no
trailing newline: OccNet splits the file on ``\\n`` and would read one more, empty, model) and
``metadata.yaml``.

Where OccNet decides occupancy with ``check_mesh_contains`` on a mesh made watertight by
mesh-fusion (depth renders and TSDF fusion, which thickens thin parts and closes holes by
guesswork), sdfkit uses its own outer surface and signs (docs/shapenet.md): occupancy = SDF < 0.
"""

from __future__ import annotations

import numpy as np

from sdfkit.geometry.voxels import solid_voxels, write_binvox
from sdfkit.recipes.base import CATEGORY_FOLDER, ExportContext, Exporter, Recipe, nan_spec, shape_folder
from sdfkit.recipes.deepsdf import SignedMesh
from sdfkit.store.format import ArraySpec

__all__ = ["RECIPE", "POINTS", "SURFACE_POINTS", "PADDING", "VOXELS", "occnet_frame", "sample_occnet", "frame_voxels"]

POINTS = 100_000
SURFACE_POINTS = 100_000
PADDING = 0.1
VOXELS = 32
"""The side of ``model.binvox``'s grid (ShapeNet's, which OccNet's voxel IoU reads)."""


def occnet_frame(signed: SignedMesh) -> tuple[np.ndarray, float]:
    """OccNet's ``loc`` (3,) and ``scale`` of a mesh, float64: its bounding box's centre (the same
    box as DeepSDF's offset) and longest side."""
    return -signed.offset, float(np.max(signed.extent))


def sample_occnet(signed: SignedMesh, *, rng: np.random.Generator) -> dict:
    """The ``occnet/*`` arrays of one shape, in OccNet's frame."""
    loc, scale = occnet_frame(signed)
    to_normalized = scale * signed.scale  # OccNet's frame -> sdfkit's: the same centre
    points = (1.0 + PADDING) * (rng.random((POINTS, 3)) - 0.5)
    inside = signed.inside(points * to_normalized)
    surface, face = signed.sampler.sample(SURFACE_POINTS, rng=rng)
    return {
        "occnet/points": points.astype(np.float32),
        "occnet/occupancies": inside.astype(np.uint8),
        "occnet/surface_points": (surface / to_normalized).astype(np.float32),
        "occnet/surface_normals": np.take(signed.normals, face, axis=0).astype(np.float32),
        "occnet/loc": loc,
        "occnet/scale": np.float64(scale),
        "occnet/voxels": frame_voxels(signed, VOXELS, to_normalized).astype(np.uint8),
    }


def frame_voxels(signed: SignedMesh, resolution: int, to_normalized: float) -> np.ndarray:
    """(R, R, R) bool: the solid voxels (:func:`sdfkit.geometry.voxels.solid_voxels`) of the
    outer surface over [-0.5, 0.5]^3 of a frame whose points times ``to_normalized`` are in the
    normalized frame (OccNet's, IF-Net's)."""
    outer = signed.outer
    return solid_voxels(
        outer.vertices / to_normalized,
        outer.faces,
        lambda p: signed.inside(p * to_normalized),
        resolution,
        closed=bool(outer.closed.all()),
    )


def _specs(parameters) -> list[ArraySpec]:
    frame = {"frame": "occnet"}
    return [
        nan_spec("occnet/points", (POINTS, 3), role="points", parameters={"box": [-0.55, 0.55]}, **frame),
        ArraySpec("occnet/occupancies", (POINTS,), "uint8", 0, role="occupancy", points="occnet/points", **frame),
        nan_spec("occnet/surface_points", (SURFACE_POINTS, 3), role="surface", **frame),
        nan_spec(
            "occnet/surface_normals", (SURFACE_POINTS, 3), role="normals", points="occnet/surface_points", **frame
        ),
        nan_spec("occnet/loc", (3,), "float64", role="loc"),
        nan_spec("occnet/scale", (), "float64", role="scale"),
        ArraySpec("occnet/voxels", (VOXELS,) * 3, "uint8", 0, role="voxels", parameters={"box": [-0.5, 0.5]}, **frame),
    ]


def _write_shape(shape: dict, tmp, context: ExportContext) -> int:
    """OccNet's files of one shape from the recipe's arrays (already in OccNet's frame)."""
    folder = shape_folder(tmp, shape)
    loc = np.asarray(shape["occnet/loc"], dtype=np.float64)  # sample_mesh.py's: float64
    scale = np.float64(shape["occnet/scale"])
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
    write_binvox(folder / "model.binvox", shape["occnet/voxels"].astype(bool))
    return 3


def _write_index(tmp, listing: dict, context: ExportContext) -> int:
    """``<category>/<split>.lst`` for every category and split (ids joined by newlines, with no
    trailing newline), and ``metadata.yaml`` naming the categories."""
    categories = sorted({c for cats in listing.values() for c in cats})
    count = 0
    for category in categories:
        folder = tmp / (category or CATEGORY_FOLDER)
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("train", "val", "test", *sorted(set(listing) - {"train", "val", "test"})):
            (folder / f"{split}.lst").write_text("\n".join(listing.get(split, {}).get(category, [])))
            count += 1
    names = [c or CATEGORY_FOLDER for c in categories]
    (tmp / "metadata.yaml").write_text("".join(f"'{c}':\n  id: '{c}'\n  name: '{c}'\n" for c in names))
    return count + 1


def _sample(mesh, signed: SignedMesh, *, rng: np.random.Generator, parameters) -> dict:
    return sample_occnet(signed, rng=rng)


RECIPE = Recipe(
    name="occnet",
    stream=3,
    description="Occupancy Networks' points: 100,000 uniform in the padded unit cube with occupancies, 100,000 "
    "surface points with normals, a 32^3 voxel grid, OccNet's frame (occnet/*)",
    specs=_specs,
    sample=_sample,
    sample_sets={
        "occnet": ("occnet/points", "occnet/occupancies"),
        "occnet_surface": ("occnet/surface_points", "occnet/surface_normals"),
    },
    exporters=(
        Exporter(
            "occnet",
            "Occupancy Networks' dataset folder: <synset>/<id>/points.npz, pointcloud.npz, model.binvox, "
            "<synset>/<split>.lst, metadata.yaml",
            _write_shape,
            _write_index,
        ),
    ),
)
