"""The training data of 3DShape2VecSet-style generators (``--recipe vecset``): Hunyuan3D-2.1's
sample sets, with sdfkit's signs, exported for Hunyuan3D-2.1 and Dora.

From Hunyuan3D-2.1's ``hy3dshape/tools/watertight/watertight_and_sample.py`` (its code, not its
README), per shape, in its frame:

- **frame**: ``normalize_to_unit_box``: ``(v - min) / (1.01 * longest side)``, the shape in
  [0, 0.99]^3. Its own training data (``tools/mini_trainset``: surface points from -0.008 to
  0.998, the 2/256 shell around [0, 0.99]) is in this frame, and its DiT loader feeds them to the
  VAE as they are: the frame its training reads. sdfkit stores the recipe's arrays in it
  (``vecset/loc`` the box's min corner, ``vecset/scale`` = 1.01 x longest side; raw = p * scale + loc).
- **surface**: 124,928 (``499712 // 4``) area-weighted points of the outer surface with their
  faces' outward normals.
- **sharp**: 124,928 points on the outer surface's sharp edges, edges drawn by length and points
  uniform along them, with the mean normal of the edge's two faces. An edge is sharp where its
  faces meet at more than ``--sharp-angle`` degrees (default 15, Dora's ``edges_select_sharp``
  threshold in its README; Hunyuan's own test, both ends' vertex normals more than acos(0.985) =
  9.9 degrees from a face's, picks a clean crease above about 20 degrees). A shape with no sharp
  edge gets surface points here (``vecset/sharp_edges`` = 0 says so).
- **near**: the surface points plus truncated Gaussian offsets (truncnorm, +-0.25) of standard
  deviation 0.005 (the first 124,928) and 0.05 (the others), shuffled together.
- **sharp near**: the sharp points plus Gaussian offsets, a sixth each at 0.001, 0.003, 0.06,
  0.01, 0.02 and 0.04 (the last sixth takes the remainder), shuffled.
- **volume**: 249,856 (twice the sharp count) points uniform in [-1.05, 1.05]^3 of the frame, as
  its code draws them (the shape fills [0, 0.99]^3 of it).

Labels: sdfkit's signed distance to the outer surface (negative inside), in the frame's units,
float32 in the store; not the distance to a 2/256 shell around the surface, which is what
Hunyuan3D-2.1 signs (with igl's fast winding number) after its watertighting. Its files store
``label = -sdf`` (positive inside) in float16; the ``hunyuan3d`` export writes that.

Exports: ``hunyuan3d`` (its ``preprocessed/<uid>/geo_data`` and ``render_cond`` layout) and
``dora`` (the npz keys of Dora's ``craftsman/data/objaverse.py``, in Dora's frame): see
:func:`write_hunyuan3d` and :func:`write_dora`.
"""

from __future__ import annotations

import json
import os

import fpsample
import numpy as np

from sdfkit.geometry.basics import shape_rng
from sdfkit.geometry.topology import sharp_edges
from sdfkit.recipes.base import ExportContext, Exporter, Recipe, nan_spec
from sdfkit.recipes.deepsdf import SignedMesh
from sdfkit.rendering import render_condition_views
from sdfkit.store.format import ArraySpec

__all__ = ["RECIPE", "COUNT", "SHARP_ANGLE", "sample_vecset", "unit_box_frame", "sharp_points"]

COUNT = 499_712 // 4
"""Surface and sharp points per shape (Hunyuan3D-2.1's ``sample_num``)."""
NEAR_SIGMAS = (0.005, 0.05)
TRUNCATE = 0.25
SHARP_SIGMAS = (0.001, 0.003, 0.06, 0.01, 0.02, 0.04)
VOLUME_BOX = 1.05
SHARP_ANGLE = 15.0
SETS = ("near", "sharp_near", "volume")


def unit_box_frame(signed: SignedMesh) -> tuple[np.ndarray, float]:
    """Hunyuan3D-2.1's frame of a shape: its bounding box's min corner (3,) and 1.01 times its
    longest side, float64: p = (raw - loc) / scale."""
    centre = -signed.offset
    return centre - signed.extent / 2, float(1.01 * np.max(signed.extent))


def _to_normalized(signed: SignedMesh) -> tuple[float, np.ndarray]:
    """(A, B): normalized = p * A + B for points p of the unit-box frame."""
    loc, scale = unit_box_frame(signed)
    return scale * signed.scale, (loc + signed.offset) * signed.scale


def sharp_points(signed: SignedMesh, count: int, angle: float, *, rng: np.random.Generator):
    """``count`` points on the outer surface's sharp edges (normalized frame), their unit normals,
    and the number of sharp edges (0: the points are surface points instead)."""
    a, b, normal = sharp_edges(signed.outer, angle)
    length = np.linalg.norm(b - a, axis=1)
    if len(a) == 0 or length.sum() <= 0:
        points, face = signed.sampler.sample(count, rng=rng)
        return points, np.take(signed.normals, face, axis=0), 0
    edge = np.searchsorted(np.cumsum(length) / length.sum(), rng.random(count), side="right")
    edge = np.minimum(edge, len(a) - 1)
    t = rng.random((count, 1))
    return a[edge] + t * (b[edge] - a[edge]), normal[edge], len(a)


def _truncated(rng: np.random.Generator, sigma: float, size) -> np.ndarray:
    """Gaussian offsets of standard deviation ``sigma`` truncated to +-TRUNCATE (scipy's
    truncnorm, as Hunyuan3D-2.1 draws them), by rejection: a value beyond the bound is drawn
    again (at sigma 0.05 one in 1.7 million is)."""
    values = rng.normal(scale=sigma, size=size)
    while True:
        bad = np.abs(values) > TRUNCATE
        if not bad.any():
            return values
        values[bad] = rng.normal(scale=sigma, size=int(bad.sum()))


def sample_vecset(signed: SignedMesh, *, rng: np.random.Generator, sharp_angle: float = SHARP_ANGLE) -> dict:
    """The ``vecset/*`` arrays of one shape, in Hunyuan3D-2.1's unit-box frame."""
    loc, scale = unit_box_frame(signed)
    a, b = _to_normalized(signed)
    surface, face = signed.sampler.sample(COUNT, rng=rng)
    normals = np.take(signed.normals, face, axis=0)
    sharp, sharp_normals, edges = sharp_points(signed, COUNT, sharp_angle, rng=rng)
    surface, sharp = (surface - b) / a, (sharp - b) / a
    near = np.concatenate([surface + _truncated(rng, s, surface.shape) for s in NEAR_SIGMAS])
    sixth = COUNT // 6
    sigma = np.repeat(SHARP_SIGMAS, [sixth] * 5 + [COUNT - 5 * sixth])
    sharp_near = sharp + rng.normal(size=sharp.shape) * sigma[:, None]
    near, sharp_near = near[rng.permutation(len(near))], sharp_near[rng.permutation(len(sharp_near))]
    volume = (rng.random((2 * COUNT, 3)) - 0.5) * 2 * VOLUME_BOX
    sets = {"near": near, "sharp_near": sharp_near, "volume": volume}
    queries = np.concatenate(list(sets.values())) * a + b
    order = _z_order(queries)  # nearby queries together: the closest-point search runs faster
    values = np.empty(len(queries))
    values[order] = signed.sdf(queries[order]) / a
    out = {
        "vecset/loc": loc,
        "vecset/scale": np.float64(scale),
        "vecset/surface_points": surface.astype(np.float32),
        "vecset/surface_normals": normals.astype(np.float32),
        "vecset/sharp_points": sharp.astype(np.float32),
        "vecset/sharp_normals": sharp_normals.astype(np.float32),
        "vecset/sharp_edges": np.int32(edges),
    }
    start = 0
    for name, points in sets.items():
        out[f"vecset/{name}_points"] = points.astype(np.float32)
        out[f"vecset/{name}_sdf"] = values[start : start + len(points)].astype(np.float32)
        start += len(points)
    return out


def _z_order(points: np.ndarray, bits: int = 5) -> np.ndarray:
    """The order of ``points`` along a Morton (z-order) curve of 2^bits cells per axis over their
    bounding box. Five bits make a 15-bit key, which numpy sorts by radix: 0.05 s for 625,000
    points where a 30-bit key took 0.13 s, for the same speed-up of the closest-point search."""
    low = points.min(axis=0)
    top = (1 << bits) - 1
    cells = (points - low) * ((top + 1) / max(float(np.ptp(points, axis=0).max()), 1e-300))
    cells = np.minimum(cells, top).astype(np.intp)
    spread = np.zeros(top + 1, dtype=np.uint16)  # bit b of a cell index goes to bit 3b of the key
    index = np.arange(top + 1, dtype=np.uint16)
    for bit in range(bits):
        spread |= ((index >> bit) & 1) << (3 * bit)
    code = spread[cells[:, 0]] | (spread[cells[:, 1]] << 1) | (spread[cells[:, 2]] << 2)
    return np.argsort(code, kind="stable")


def _specs(parameters) -> list[ArraySpec]:
    frame = {"frame": "vecset"}
    laws = {
        "near": {"sigmas": list(NEAR_SIGMAS), "truncate": TRUNCATE, "count_per_sigma": COUNT},
        "sharp_near": {"sigmas": list(SHARP_SIGMAS)},
        "volume": {"box": [-VOLUME_BOX, VOLUME_BOX]},
    }
    counts = {"near": 2 * COUNT, "sharp_near": COUNT, "volume": 2 * COUNT}
    angle = {"sharp_angle": float(parameters.get("sharp_angle", SHARP_ANGLE))}
    specs = [
        nan_spec("vecset/loc", (3,), "float64", role="loc"),
        nan_spec("vecset/scale", (), "float64", role="scale"),
        nan_spec("vecset/surface_points", (COUNT, 3), role="surface", **frame),
        nan_spec("vecset/surface_normals", (COUNT, 3), role="normals", points="vecset/surface_points", **frame),
        nan_spec("vecset/sharp_points", (COUNT, 3), role="surface", parameters=angle, **frame),
        nan_spec("vecset/sharp_normals", (COUNT, 3), role="normals", points="vecset/sharp_points", **frame),
        ArraySpec("vecset/sharp_edges", (), "int32", -1, parameters=angle),
    ]
    for name in SETS:
        points = f"vecset/{name}_points"
        specs += [
            nan_spec(points, (counts[name], 3), role="points", parameters=laws[name], **frame),
            nan_spec(f"vecset/{name}_sdf", (counts[name],), role="sdf", points=points, **frame),
        ]
    return specs


def _sample(mesh, signed: SignedMesh, *, rng: np.random.Generator, parameters) -> dict:
    return sample_vecset(signed, rng=rng, sharp_angle=float(parameters.get("sharp_angle", SHARP_ANGLE)))


def _uid(shape: dict) -> str:
    """A shape's id as a folder name: Hunyuan3D-2.1 takes the last part of an item's path as its
    uid, so a plain folder's ``chairs/a`` becomes ``chairs__a``."""
    return shape["id"].replace("/", "__")


def write_hunyuan3d(shape: dict, tmp, context: ExportContext) -> int:
    """``preprocessed/<uid>/geo_data/<uid>_surface.npz`` (``random_surface``, ``sharp_surface``:
    (124928, 6) float16, points and unit normals) and ``<uid>_sdf.npz`` (``vol_points``,
    ``vol_label``, ``random_near_points``, ``random_near_label``, ``sharp_near_points``,
    ``sharp_near_label``: float16, labels = -sdf, positive inside), Hunyuan3D-2.1's frame; and
    ``render_cond/``: 24 RGBA views, ``transforms.json`` and ``mesh.ply``
    (:func:`sdfkit.rendering.render_condition_views`, from the shape's mesh)."""
    uid = _uid(shape)
    folder = tmp / "preprocessed" / uid
    (folder / "geo_data").mkdir(parents=True, exist_ok=True)
    half = np.float16

    def joined(points, normals):
        return np.concatenate([shape[points], shape[normals]], axis=1).astype(half)

    np.savez(
        folder / "geo_data" / f"{uid}_surface.npz",
        random_surface=joined("vecset/surface_points", "vecset/surface_normals"),
        sharp_surface=joined("vecset/sharp_points", "vecset/sharp_normals"),
    )
    np.savez(
        folder / "geo_data" / f"{uid}_sdf.npz",
        vol_points=shape["vecset/volume_points"].astype(half),
        vol_label=(-shape["vecset/volume_sdf"]).astype(half),
        random_near_points=shape["vecset/near_points"].astype(half),
        random_near_label=(-shape["vecset/near_sdf"]).astype(half),
        sharp_near_points=shape["vecset/sharp_near_points"].astype(half),
        sharp_near_label=(-shape["vecset/sharp_near_sdf"]).astype(half),
    )

    render_condition_views(context.meshes[shape["id"]], folder / "render_cond", seed=context.seed, key=shape["id"])
    return 2 + 24 + 2


def _split_lists(tmp, listing: dict, context: ExportContext, entry) -> int:
    """``<split>.json`` per split: the entries of its shapes, paths relative to ``relative_to``."""
    root = os.path.relpath(context.out.resolve(), context.relative_to.resolve())
    count = 0
    for split in sorted({"train", "val", "test", *listing}):
        ids = [{"id": i} for cats in listing.get(split, {}).values() for i in cats]
        (tmp / f"{split}.json").write_text(json.dumps([entry(root, item) for item in ids], indent=1))
        count += 1
    return count


def write_hunyuan3d_index(tmp, listing: dict, context: ExportContext) -> int:
    """``<split>/<uid>`` links to ``preprocessed/<uid>`` (Hunyuan3D-2.1's data module takes a
    folder as its ``train_data_list`` and reads every item in it; its JSON reader does not run:
    it names an undefined variable) and ``<split>.json`` lists of the same items."""
    for split, cats in listing.items():
        folder = tmp / split
        folder.mkdir(exist_ok=True)
        for ids in cats.values():
            for shape_id in ids:
                uid = _uid({"id": shape_id})
                os.symlink(os.path.join("..", "preprocessed", uid), folder / uid)
    return _split_lists(tmp, listing, context, lambda root, item: os.path.join(root, "preprocessed", _uid(item)))


DORA_POINTS = 32_768
"""Dora's ``fps_*`` sets: ``point_number // 2`` for its README's ``--point_number 65536``."""
DORA_NEAR_ROWS = 400_000
"""Dora's loader reads ``rand_points[:400000]`` as near-surface points, the rest as uniform."""
DORA_BOX = 1.05


def _dora_frame(shape: dict) -> tuple[float, np.ndarray]:
    """(A, B): Dora's p = unit-box p * A + B; Dora centres the bounding box and scales its
    longest side to 2 (``to_watertight_mesh.py``)."""
    scale = float(shape["vecset/scale"])
    longest = scale / 1.01
    centre = -np.asarray(shape["norm/offset"], dtype=np.float64)
    return 2 * scale / longest, (np.asarray(shape["vecset/loc"], dtype=np.float64) - centre) * 2 / longest


def write_dora(shape: dict, tmp, context: ExportContext) -> int:
    """``<uid>.npz`` with the keys Dora's ``ObjaverseDataset`` reads, float32, Dora's frame
    (bounding box centred, longest side 2), sdf positive inside (pysdf's sign, which its loader's
    ``sdf < 0 -> outside`` expects):

    - ``fps_coarse_surface`` (32768, 1, 6), ``fps_sharp_surface`` (32768, 1, 6): farthest-point
      samples (fpsample's ``bucket_fps_kdline_sampling``, h=5, as Dora's) of the surface and sharp
      points, with normals;
    - ``sharp_near_surface`` (124928, 4): the sharp-near points and their sdf;
    - ``rand_points`` (400000 + m, 4): the 249,856 near points first, drawn again with
      replacement to fill the 400,000 rows that Dora reads as near-surface, then the m volume
      points that fall in Dora's [-1.05, 1.05]^3 (uniform there; about 30,000).
    """

    a, b = _dora_frame(shape)
    rng = shape_rng(context.seed, shape["id"], 100)  # the extra near rows: the same on every export

    def fps(points: str, normals: str) -> np.ndarray:
        p = shape[points].astype(np.float64) * a + b
        index = fpsample.bucket_fps_kdline_sampling(p, min(DORA_POINTS, len(p)), h=5, start_idx=0)
        return np.concatenate([p[index], shape[normals][index]], axis=1)[:, None, :].astype(np.float32)

    def signed(name: str, take=slice(None)) -> np.ndarray:
        points = shape[f"vecset/{name}_points"][take].astype(np.float64) * a + b
        return np.concatenate([points, -shape[f"vecset/{name}_sdf"][take, None] * a], axis=1)

    near = signed("near")
    extra = rng.integers(0, len(near), DORA_NEAR_ROWS - len(near))
    volume = signed("volume")
    volume = volume[(np.abs(volume[:, :3]) <= DORA_BOX).all(axis=1)]
    np.savez(
        tmp / f"{_uid(shape)}.npz",
        fps_sharp_surface=fps("vecset/sharp_points", "vecset/sharp_normals"),
        sharp_near_surface=signed("sharp_near").astype(np.float32),
        fps_coarse_surface=fps("vecset/surface_points", "vecset/surface_normals"),
        rand_points=np.concatenate([near, near[extra], volume]).astype(np.float32),
    )
    return 1


def write_dora_index(tmp, listing: dict, context: ExportContext) -> int:
    """``<split>.json`` (train, val, test): lists of npz paths relative to ``relative_to``, as
    Dora's ``data/dataset1/*.json`` (its loader opens them as they are)."""
    return _split_lists(tmp, listing, context, lambda root, item: os.path.join(root, f"{_uid(item)}.npz"))


RECIPE = Recipe(
    name="vecset",
    stream=6,
    description="Hunyuan3D-2.1's and Dora's samples (3DShape2VecSet): 124,928 surface and sharp-edge points with "
    "normals, near-surface, sharp-near and volume points with signed distances, unit-box frame (vecset/*)",
    specs=_specs,
    sample=_sample,
    sample_sets={
        "vecset_surface": ("vecset/surface_points", "vecset/surface_normals"),
        "vecset_sharp": ("vecset/sharp_points", "vecset/sharp_normals"),
        **{f"vecset_{name}": (f"vecset/{name}_points", f"vecset/{name}_sdf") for name in SETS},
    },
    exporters=(
        Exporter(
            "hunyuan3d",
            "Hunyuan3D-2.1's preprocessed/<uid>/geo_data/<uid>_{surface,sdf}.npz (float16, labels positive inside) "
            "and render_cond/ (24 views, transforms.json, mesh.ply); <split>/ folders of links for its data module",
            write_hunyuan3d,
            write_hunyuan3d_index,
            needs_meshes=True,
        ),
        Exporter(
            "dora",
            "Dora's <uid>.npz (fps_coarse_surface, fps_sharp_surface, sharp_near_surface, rand_points; float32, its "
            "(-1, 1) frame, sdf positive inside) and <split>.json lists",
            write_dora,
            write_dora_index,
        ),
    ),
)
