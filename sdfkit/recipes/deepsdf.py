"""SDF samples of one mesh, DeepSDF's recipe, with sdfkit's signs.

Frame: DeepSDF's normalized frame (see :func:`sdfkit.geometry.mesh.normalization`): the shape lies in the
unit ball. Sign convention: negative inside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sdfkit.errors import ShapeError
from sdfkit.geometry import raycast
from sdfkit.geometry.basics import face_areas, face_normals
from sdfkit.geometry.mesh import Mesh, SurfaceSampler, compact, normalization
from sdfkit.geometry.sign import (
    RULES,
    SURE_DISTANCE,
    OuterSurface,
    in_gap,
    inside,
    outer_surface,
    sign_confidence,
    signed_distance,
)
from sdfkit.recipes.base import ExportContext, Exporter, Recipe, nan_spec, shape_file
from sdfkit.store.format import ArraySpec

__all__ = [
    "RECIPE",
    "MeshSamples",
    "SignedMesh",
    "signed_mesh",
    "sample_mesh",
    "signed_queries",
    "near_surface_points",
]

VARIANCES = (0.005, 0.0005)
"""DeepSDF's two Gaussian perturbations of surface points: variances, not standard deviations."""


@dataclass(frozen=True)
class MeshSamples:
    """Everything sdfkit stores for one mesh.

    offset : (3,) float64, scale : float64 -- normalized = (raw + offset) * scale, kept in float64 so
        that a mesh placed far from the origin maps back exactly
    sdf_points : (K, 3) float32, normalized frame, shuffled
    sdf_values : (K,) float32, signed distance, negative inside
    surface_points, surface_normals : (S, 3) float32 on the outer surface, unit outward normals
    sdf_rule, sdf_confidence : (K,) uint8 or None -- the rule that signed each SDF sample and how
        sure it is (:func:`sdfkit.geometry.sign.sign_confidence`), where asked for
    """

    offset: np.ndarray
    scale: np.float64
    sdf_points: np.ndarray
    sdf_values: np.ndarray
    surface_points: np.ndarray
    surface_normals: np.ndarray
    sdf_rule: np.ndarray | None = None
    sdf_confidence: np.ndarray | None = None


def near_surface_points(
    surface_points: np.ndarray, count: int, *, rng: np.random.Generator, variances: tuple[float, float] = VARIANCES
) -> np.ndarray:
    """DeepSDF's query points: 47/50 of ``count`` are surface points plus Gaussian noise of
    ``variances`` (default 0.005 for half of them, 0.0005 for the other half); 3/50 are uniform in
    [-1, 1]^3. Exactly ``count`` points, shuffled. surface_points : (m, 3), drawn from with
    replacement."""
    near = _near_count(count)
    picks = np.take(surface_points, rng.integers(0, len(surface_points), near), axis=0)
    points = _perturbed(picks, count, rng=rng, variances=variances)
    return np.take(points, rng.permutation(count), axis=0)  # rows gathered: faster than points[order]


def _near_count(count: int) -> int:
    """How many of DeepSDF's ``count`` query points lie near the surface (47/50)."""
    return int(round(count * 47 / 50))


def _perturbed(base: np.ndarray, count: int, *, rng: np.random.Generator, variances: tuple[float, float]):
    """(count, 3): the ``base`` surface points (near, 3), in their order, plus Gaussian noise of
    ``variances`` (half the points each, which ones a random draw), then ``count - near`` points
    uniform in [-1, 1]^3 at the end. Not shuffled."""
    near = len(base)
    sigma = np.sqrt(np.array(variances))[np.repeat([0, 1], [near // 2, near - near // 2])]
    points = np.empty((count, 3))
    np.multiply(rng.normal(size=(near, 3)), rng.permutation(sigma)[:, None], out=points[:near])
    points[:near] += base
    points[near:] = rng.uniform(-1.0, 1.0, size=(count - near, 3))
    return points


class OuterSampler(SurfaceSampler):
    """Area-weighted samples of an outer surface whose closed parts touch (``contact`` > 0), less
    those buried between the parts: a face of the closed parts' union partly in contact with
    another part stays whole when its centroid is clear of it (:func:`sdfkit.geometry.parts.drop_contacts`),
    and a sample on its buried strip, where the point just outside it is inside the union again,
    is drawn afresh. The samples follow the area of what is left, so the distribution is the
    outer surface's as a split at every contact would give it, without splitting faces."""

    redraws = 8
    """Rounds of fresh draws for buried samples (each replaces what the last found buried)."""

    def __init__(self, outer: OuterSurface):
        super().__init__(outer.vertices, outer.faces)
        self.outer = outer
        self.normals = face_normals(outer.vertices, outer.faces)

    def sample(self, count: int, *, rng: np.random.Generator, grouped: bool = False):
        points, face = super().sample(count, rng=rng, grouped=grouped)
        again = self.buried(points, face)
        for _ in range(self.redraws):
            if len(again) == 0:
                break
            points[again], face[again] = super().sample(len(again), rng=rng)
            again = again[self.buried(points[again], face[again])]
        return points, face

    def buried(self, points: np.ndarray, face: np.ndarray) -> np.ndarray:
        """Indices of the ``points`` (on faces ``face``) whose outside, the contact distance off
        them, is inside the closed parts' union (the test that dropped whole faces) or in a gap
        between touching parts (the floor of a slot between two parts that touch)."""
        closed = np.nonzero(self.outer.closed[face])[0]
        outer = self.outer
        scene = outer.cached("solid_scene", lambda: raycast.scene(outer.solid_vertices, outer.solid_faces))
        probe = points[closed] + outer.contact * self.normals[face[closed]]
        solid = raycast.occupancy(scene, probe)
        return closed[solid | in_gap(outer, probe, inside=solid)]


@dataclass(frozen=True)
class SignedMesh:
    """A mesh ready to be signed: its normalization and its outer surface. Every recipe and the
    voxel grids sign through one of these, made by :func:`signed_mesh`, so they agree."""

    offset: np.ndarray
    """(3,) float64: normalized = (raw + offset) * scale"""
    scale: float
    outer: OuterSurface
    """In the normalized frame."""
    extent: np.ndarray
    """(3,) float64: the size of the bounding box of the vertices faces use, raw units (the
    box whose centre is ``-offset``)."""

    @cached_property
    def sampler(self) -> SurfaceSampler:
        """Area-weighted samples of the outer surface (normalized frame), shared by the recipes;
        none on the strips of faces buried between closed parts that touch."""
        if self.outer.contact > 0:
            return OuterSampler(self.outer)
        return SurfaceSampler(self.outer.vertices, self.outer.faces)

    @cached_property
    def normals(self) -> np.ndarray:
        """Unit outward normals (f, 3) float64 of the outer surface's faces, shared by the recipes
        (a sample's normal is its face's: one table, then a lookup per sample)."""
        return face_normals(self.outer.vertices, self.outer.faces)

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Whether ``points`` (n, 3) of the normalized frame are inside: (n,) bool, the sign of
        :meth:`sdf` (cheaper: no distances when the mesh is made of closed parts only)."""
        return inside(self.outer, points)

    def sdf(self, points: np.ndarray, *, batch: int = 1 << 19, confidence: bool = False):
        """Signed distances (n,) float64 at ``points`` (n, 3) of the normalized frame, negative
        inside; ``batch`` points at a time (bounded memory for large grids). With ``confidence``,
        also the rule that signed each point and how sure it is, (n,) uint8 each
        (:func:`sdfkit.geometry.sign.sign_confidence`)."""
        points = np.asarray(points, dtype=np.float64)
        if not confidence:
            if len(points) <= batch:
                return signed_distance(self.outer, points)
            return np.concatenate(
                [signed_distance(self.outer, points[s : s + batch]) for s in range(0, len(points), batch)]
            )
        parts = [
            signed_distance(self.outer, points[s : s + batch], return_rule=True) for s in range(0, len(points), batch)
        ]
        values, rule, margin = (np.concatenate(p) for p in zip(*parts, strict=True))
        return values, rule, sign_confidence(values, rule, margin)


def signed_mesh(mesh: Mesh, *, rays: int = 32, rng: np.random.Generator) -> SignedMesh:
    """Normalize a mesh (DeepSDF's frame) and find its outer surface (``rng``: the visibility
    rays' rotations; give each shape its own, e.g. :func:`sdfkit.geometry.basics.shape_rng`).

    Raises :class:`ShapeError` when no face is visible from outside.
    """
    mesh = compact(mesh)
    offset, scale = normalization(mesh)
    outer = outer_surface((mesh.vertices + offset) * scale, mesh.faces, rays=rays, rng=rng)
    if len(outer.faces) == 0:
        raise ShapeError("no face of the mesh is visible from outside")
    extent = np.ptp(mesh.vertices[np.unique(mesh.faces)], axis=0)
    return SignedMesh(np.asarray(offset, dtype=np.float64), float(scale), outer, extent)


def sample_mesh(
    mesh: Mesh | SignedMesh,
    *,
    samples: int = 250_000,
    surface_samples: int = 30_000,
    rays: int = 32,
    rng: np.random.Generator,
    confidence: bool = False,
) -> MeshSamples:
    """Sample SDF and surface points of a mesh (DeepSDF's recipe, sdfkit's signs).

    mesh : a mesh (normalized and signed here, with ``rng`` first) or a :class:`SignedMesh`
    confidence : also each SDF sample's rule and confidence (``sdf_rule``, ``sdf_confidence``)
    Raises :class:`ShapeError` when no face is visible from outside.
    """
    signed = mesh if isinstance(mesh, SignedMesh) else signed_mesh(mesh, rays=rays, rng=rng)
    offset, scale = signed.offset, signed.scale
    points, face = signed.sampler.sample(surface_samples, rng=rng)
    normals = np.take(signed.normals, face, axis=0)
    # the SDF queries perturb fresh surface points, independent of the stored ones
    queries, values, *sure = signed_queries(signed, samples, rng=rng, confidence=confidence)
    return MeshSamples(
        offset=np.asarray(offset, dtype=np.float64),
        scale=np.float64(scale),
        sdf_points=queries.astype(np.float32),
        sdf_values=values.astype(np.float32),
        surface_points=points.astype(np.float32),
        surface_normals=normals.astype(np.float32),
        sdf_rule=sure[0] if sure else None,
        sdf_confidence=sure[1] if sure else None,
    )


def signed_queries(
    signed: SignedMesh,
    count: int,
    *,
    rng: np.random.Generator,
    variances: tuple[float, float] = VARIANCES,
    confidence: bool = False,
) -> tuple:
    """DeepSDF's ``count`` query points (:func:`near_surface_points`' law, on fresh surface
    points) and their signed distances, both (count, 3) / (count,) float64, shuffled; with
    ``confidence``, also each point's rule and confidence (:meth:`SignedMesh.sdf`).

    The distances are computed in the order of the surface faces the points come from (points
    close together in space together: the closest-point and ray queries run faster) and shuffled
    after; which near point gets which variance is a random draw, as a shuffle would give it.
    """
    base, _ = signed.sampler.sample(_near_count(count), rng=rng, grouped=True)
    points = _perturbed(base, count, rng=rng, variances=variances)
    values = signed.sdf(points, batch=max(count, 1), confidence=confidence)
    order = rng.permutation(count)
    if confidence:
        values, rule, sure = values
        return np.take(points, order, axis=0), values[order], rule[order], sure[order]
    return np.take(points, order, axis=0), values[order]


def write_ply_points(path, points: np.ndarray) -> None:
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


def _write_deepsdf(shape: dict, tmp, context: ExportContext) -> int:
    category, shape_id, dataset = shape["category"], shape["id"], context.dataset
    points, values = shape["sdf/points"], shape["sdf/values"]
    rows = np.concatenate([points, values[:, None]], axis=1).astype(np.float32)
    positive = values > 0
    np.savez(
        shape_file(tmp, "SdfSamples", dataset, category, f"{shape_id}.npz"), pos=rows[positive], neg=rows[~positive]
    )
    offset = np.asarray(shape["norm/offset"], dtype=np.float64)
    scale = float(shape["norm/scale"])
    raw = shape["surface/points"].astype(np.float64) / scale - offset
    write_ply_points(shape_file(tmp, "SurfaceSamples", dataset, category, f"{shape_id}.ply"), raw)
    np.savez(
        shape_file(tmp, "NormalizationParameters", dataset, category, f"{shape_id}.npz"),
        offset=offset.astype(np.float32),  # DeepSDF's files hold float32
        scale=np.array([scale], dtype=np.float32),
    )
    return 3


def _write_deepsdf_splits(tmp, listing: dict, context: ExportContext) -> int:

    (tmp / "splits").mkdir(exist_ok=True)
    for split, categories in listing.items():
        (tmp / "splits" / f"{split}.json").write_text(json.dumps({context.dataset: categories}, indent=1))
    return len(listing)


def outer_summary(signed: SignedMesh) -> dict:
    """What the outer surface of a shape is made of (the ``outer/*`` arrays): whether it is a
    soup of loose triangles that encloses nothing, how many containers it has, and the shares of
    its area on closed parts and on sheets."""
    outer = signed.outer
    area = face_areas(outer.vertices, outer.faces)
    total = max(float(area.sum()), 1e-300)
    return {
        "outer/soup": np.uint8(outer.soup),
        "outer/containers": np.int32(outer.containers),
        "outer/closed_share": np.float32(area[outer.closed].sum() / total),
        "outer/sheet_share": np.float32(area[outer.sheet].sum() / total),
    }


def _specs(parameters) -> list[ArraySpec]:
    k, s = parameters["samples"], parameters["surface_samples"]
    variances = {"variances": list(VARIANCES), "near_share": 47 / 50, "uniform_box": [-1.0, 1.0]}
    return [
        # float64: a mesh placed far from the origin must come back where it was
        nan_spec("norm/offset", (3,), "float64", role="offset"),
        nan_spec("norm/scale", (), "float64", role="scale"),
        nan_spec("sdf/points", (k, 3), role="points", parameters=variances),
        nan_spec("sdf/values", (k,), role="sdf", points="sdf/points"),
        nan_spec("surface/points", (s, 3), role="surface"),
        nan_spec("surface/normals", (s, 3), role="normals", points="surface/points"),
        ArraySpec("outer/soup", (), "uint8", 0),
        ArraySpec("outer/containers", (), "int32", -1),
        nan_spec("outer/closed_share", ()),
        nan_spec("outer/sheet_share", ()),
        nan_spec("sdf/rule_share", (len(RULES),)),
        nan_spec("sdf/unsure_share", ()),
    ] + (
        [
            ArraySpec("sdf/rule", (k,), "uint8", 255, points="sdf/points"),
            ArraySpec("sdf/confidence", (k,), "uint8", 0, points="sdf/points"),
        ]
        if parameters.get("confidence")
        else []
    )


UNSURE = 64
"""``sdf/unsure_share``: samples with a confidence below this (a quarter of the scale) count as unsure."""


def sign_summary(values: np.ndarray, rule: np.ndarray, confidence: np.ndarray) -> dict:
    """``sdf/rule_share`` (the share of the samples each rule signed, in the order of
    :data:`sdfkit.geometry.sign.RULES`) and ``sdf/unsure_share`` (the share of the samples
    farther than ``SURE_DISTANCE`` from the outer surface whose confidence is below
    :data:`UNSURE`: unsure for their sign, not for being near the surface)."""
    far = np.abs(values) > SURE_DISTANCE
    return {
        "sdf/rule_share": (np.bincount(rule, minlength=len(RULES)) / max(len(rule), 1)).astype(np.float32),
        "sdf/unsure_share": np.float32(np.mean(confidence[far] < UNSURE) if far.any() else 0.0),
    }


def _sample(mesh, signed: SignedMesh, *, rng: np.random.Generator, parameters) -> dict:
    result = sample_mesh(
        signed,
        samples=parameters["samples"],
        surface_samples=parameters["surface_samples"],
        rng=rng,
        confidence=True,  # the rules cost no draw: the same samples and values either way
    )
    sure = {}
    if parameters.get("confidence"):
        sure = {"sdf/rule": result.sdf_rule, "sdf/confidence": result.sdf_confidence}
    return {
        **sure,
        **sign_summary(result.sdf_values, result.sdf_rule, result.sdf_confidence),
        "norm/offset": result.offset,
        "norm/scale": result.scale,
        "sdf/points": result.sdf_points,
        "sdf/values": result.sdf_values,
        "surface/points": result.surface_points,
        "surface/normals": result.surface_normals,
        **outer_summary(signed),
    }


RECIPE = Recipe(
    name="deepsdf",
    stream=1,
    description="DeepSDF's training samples: sdf/points, sdf/values (K per shape), surface/points, surface/normals; "
    "always made (every store's normalization and outer/* summary)",
    specs=_specs,
    sample=_sample,
    sample_sets={"sdf": ("sdf/points", "sdf/values"), "surface": ("surface/points", "surface/normals")},
    exporters=(
        Exporter(
            "deepsdf",
            "DeepSDF's data folder: SdfSamples/<dataset>/<class>/<id>.npz (pos, neg), SurfaceSamples (PLY), "
            "NormalizationParameters, splits/<split>.json",
            _write_deepsdf,
            _write_deepsdf_splits,
        ),
    ),
)
