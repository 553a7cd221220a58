"""Procedural shapes with exact SDFs, and the defects real ShapeNet meshes have.

A :class:`Solid` is a union of primitives (boxes, capsules, cylinders, tori); its mesh comes from a
boolean union (manifold3d) and its SDF is the minimum of the primitives' analytic SDFs (exact
outside, a lower bound of the distance inside that is exact near the surface, with the right
sign everywhere). This gives an independent ground truth for every damaged copy of its mesh.

Sign convention: negative inside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from sdfkit.errors import InputError
from sdfkit.geometry import constructions
from sdfkit.geometry.primitives import Primitive, Solid, box, capsule, cylinder, placement, rotation, torus
from sdfkit.geometry.sign import unsigned_distance

__all__ = [
    "Primitive",
    "Solid",
    "box",
    "capsule",
    "cylinder",
    "torus",
    "chair",
    "table",
    "airplane",
    "CATEGORIES",
    "DEFECTS",
    "damage",
    "make_shapes",
    "solid_from_json",
    "bracket",
    "DEFAULT_CATEGORIES",
    "Container",
    "CONTAINER_DEFECTS",
]


def chair(rng: np.random.Generator) -> Solid:
    w, d = rng.uniform(0.35, 0.5), rng.uniform(0.35, 0.5)
    seat_h, t = rng.uniform(0.4, 0.5), rng.uniform(0.03, 0.06)
    leg = rng.uniform(0.025, 0.045)
    back_h = rng.uniform(0.35, 0.6)
    parts = [box((w, d, t), at=(0, 0, seat_h))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            at = (sx * (w - leg), sy * (d - leg), seat_h / 2)
            if rng.random() < 0.5:
                parts.append(box((leg, leg, seat_h / 2), at=at))
            else:
                parts.append(cylinder(leg, seat_h / 2, at=at))
    parts.append(
        box(
            (w, t, back_h / 2),
            at=(0, d - t, seat_h + back_h / 2),
            rotation=rotation([1, 0, 0], rng.uniform(-0.15, 0.0)),
        )
    )
    if rng.random() < 0.5:  # armrests
        for sx in (-1, 1):
            parts.append(capsule(t, d * 0.8, at=(sx * w, 0, seat_h + 0.2), rotation=rotation([1, 0, 0], np.pi / 2)))
    return Solid(tuple(parts))


def table(rng: np.random.Generator) -> Solid:
    w, d, h = rng.uniform(0.6, 1.0), rng.uniform(0.4, 0.7), rng.uniform(0.5, 0.75)
    t = rng.uniform(0.03, 0.06)
    parts = [box((w, d, t), at=(0, 0, h))]
    if rng.random() < 0.3:  # pedestal table
        parts += [cylinder(0.06, h / 2, at=(0, 0, h / 2)), cylinder(0.35, 0.03, at=(0, 0, 0.03))]
    else:
        leg = rng.uniform(0.03, 0.06)
        for sx in (-1, 1):
            for sy in (-1, 1):
                parts.append(box((leg, leg, h / 2), at=(sx * (w - 2 * leg), sy * (d - 2 * leg), h / 2)))
        if rng.random() < 0.5:
            parts.append(box((w - 2 * leg, t / 2, t), at=(0, d - 2 * leg, h * 0.3)))
    return Solid(tuple(parts))


def airplane(rng: np.random.Generator) -> Solid:
    length, radius = rng.uniform(0.8, 1.1), rng.uniform(0.07, 0.11)
    span, chord, thick = rng.uniform(0.7, 1.0), rng.uniform(0.15, 0.25), rng.uniform(0.015, 0.03)
    y_axis = rotation([1, 0, 0], np.pi / 2)  # capsule along y: the fuselage
    parts = [
        capsule(radius, length / 2, rotation=y_axis),
        box((span, chord, thick), at=(0, rng.uniform(-0.1, 0.1), 0)),
        box((span * 0.35, chord * 0.6, thick), at=(0, -length / 2, 0.02)),
        box((thick, chord * 0.6, rng.uniform(0.12, 0.2)), at=(0, -length / 2, 0.12)),
    ]
    if rng.random() < 0.6:  # engines under the wings
        for sx in (-1, 1):
            parts.append(
                cylinder(radius * 0.45, chord * 0.8, at=(sx * span * 0.45, 0.05, -radius * 0.9), rotation=y_axis)
            )
    return Solid(tuple(parts))


def bracket(rng: np.random.Generator) -> Solid:
    """A CAD-style mounting block: a plate with narrow bores through it, a cross-bore through its
    boss and a slot. Watertight and consistently oriented, as CAD exports are."""
    w, d, t = rng.uniform(0.5, 0.8), rng.uniform(0.3, 0.5), rng.uniform(0.08, 0.14)
    boss_h = rng.uniform(0.25, 0.4)
    parts = (box((w, d, t)), box((0.2, d, boss_h / 2), at=(0, 0, t + boss_h / 2)))
    radius = rng.uniform(0.02, 0.035)  # narrow: a bore 4-12 times longer than wide
    holes = [cylinder(radius, t + 0.05, at=(sx * (w - 0.12), sy * (d - 0.1), 0)) for sx in (-1, 1) for sy in (-1, 1)]
    holes.append(cylinder(radius * 1.3, d + 0.05, at=(0, 0, t + boss_h / 2), rotation=rotation([1, 0, 0], np.pi / 2)))
    holes.append(box((0.02, d * 0.5, t + 0.05), at=(w * 0.55, 0, 0)))
    return Solid(parts, tuple(holes))


@dataclass(frozen=True)
class Container:
    """A container of single-sided sheets (a cup, a bowl, a vase, a lidless box, a drawer, a
    cabinet with a drawer half out, a mug): its walls enclose nothing, so its inside is air, and
    only its closed ``parts`` (a mug's handle) are solid. The same interface as :class:`Solid`."""

    construction: str
    """Which of :data:`sdfkit.geometry.constructions.CONTAINERS`."""
    vertices: np.ndarray
    """(v, 3) the sheets' vertices."""
    faces: np.ndarray
    """(f, 3) the sheets' faces."""
    parts: tuple[Primitive, ...] = ()
    holes: tuple[Primitive, ...] = ()

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Distance (n,) to the sheets, positive everywhere; negative inside the closed parts."""

        value = unsigned_distance(self.vertices, self.faces, np.asarray(points, dtype=np.float64))
        if self.parts:
            value = np.minimum(value, np.min([p.sdf(points) for p in self.parts], axis=0))
        return value

    def normalized(self, centre: np.ndarray, factor: float) -> Container:
        parts = tuple(p.normalized(centre, factor) for p in self.parts)
        return Container(self.construction, (self.vertices - centre) * factor, self.faces, parts)

    def mesh(self, detail: int = 48) -> trimesh.Trimesh:
        sheets = trimesh.Trimesh(self.vertices, self.faces, process=False)
        return trimesh.util.concatenate([sheets, *[p.mesh(detail) for p in self.parts]])


def container(rng: np.random.Generator) -> Container:
    """One of the containers of :mod:`sdfkit.geometry.constructions`, scaled and turned about z at
    random (a mug's handle becomes a torus primitive: its exact SDF is kept)."""

    names = [n for n in constructions.CONTAINERS if n != "mug"] + ["mug"]
    name = names[int(rng.integers(len(names)))]
    scale, turn = rng.uniform(0.7, 1.3), rotation([0, 0, 1], rng.uniform(0, 2 * np.pi))
    if name == "mug":
        (vertices, faces), handle = constructions.mug_parts()
        parts = (Primitive("torus", handle.size, placement(rotation=turn) @ handle.transform),)
        return Container(name, vertices @ turn.T, faces, parts).normalized(np.zeros(3), scale)
    vertices, faces, _ = constructions.CONTAINERS[name]()
    return Container(name, vertices @ turn.T, faces).normalized(np.zeros(3), scale)


CATEGORIES = {
    "03001627": ("chair", chair),
    "04379243": ("table", table),
    "02691156": ("airplane", airplane),
    "99000001": ("bracket", bracket),
    "99000002": ("container", container),
}
"""Synset -> (name, generator). The first three are ShapeNet's; ``99000001`` and ``99000002`` are
no ShapeNet synsets: CAD parts with narrow bores, and containers of single-sided sheets (air
inside), made only when asked for (``categories=``)."""

CONTAINER_DEFECTS = ("clean", "flipped", "duplicated", "soup")
"""The defects a container takes; the others (holes, interior parts, double walls, overlap) need
a solid's inside, and a container given one of them is made clean (its manifest says so)."""

DEFAULT_CATEGORIES = ("chair", "table", "airplane")


# ---------------------------------------------------------------------------------------------
# Defects

DEFECTS = ("clean", "holes", "interior", "flipped", "duplicated", "double-walls", "soup", "combo", "overlap")


def _delete_faces(mesh, fraction, rng):
    keep = rng.random(len(mesh.faces)) >= fraction
    return trimesh.Trimesh(mesh.vertices, mesh.faces[keep], process=False)


def _flip_faces(mesh, fraction, rng):
    faces = mesh.faces.copy()
    flip = rng.random(len(faces)) < fraction
    faces[flip] = faces[flip][:, ::-1]
    return trimesh.Trimesh(mesh.vertices, faces, process=False)


def _duplicate_reversed(mesh, fraction, rng):
    pick = rng.random(len(mesh.faces)) < fraction
    faces = np.concatenate([mesh.faces, mesh.faces[pick][:, ::-1]])
    return trimesh.Trimesh(mesh.vertices, faces, process=False)


def _deepest_point(solid: Solid, mesh, rng) -> tuple[np.ndarray, float]:
    lo, hi = mesh.bounds
    candidates = rng.uniform(lo, hi, size=(20000, 3))
    d = solid.sdf(candidates)
    k = int(np.argmin(d))
    return candidates[k], float(-d[k])


def _interior(mesh, solid, rng):
    """An inverted box and two sheets hidden inside the solid."""
    centre, depth = _deepest_point(solid, mesh, rng)
    size = 0.45 * depth
    inner = trimesh.creation.box(extents=[size, size, size])
    inner.apply_translation(centre)
    inner.invert()  # normals pointing inwards, as a careless modeller leaves them
    sheets = []
    for axis in range(2):
        quad = trimesh.creation.box(extents=[1.4 * depth, 1.4 * depth, 1e-9])
        quad = trimesh.Trimesh(quad.vertices, quad.faces[quad.face_normals[:, 2] > 0.5], process=False)  # one face
        turn = rotation([1, 0, 0] if axis == 0 else [0, 1, 0], np.pi / 2)
        quad.apply_transform(placement(centre + rng.uniform(-0.2, 0.2, 3) * depth, turn))
        sheets.append(quad)
    return trimesh.util.concatenate([mesh, inner, *sheets])


def _double_walls(mesh, thickness=0.01):
    """An inner copy of the surface, offset inwards and facing the other way."""
    inner = mesh.copy()
    inner.vertices = inner.vertices - thickness * inner.vertex_normals
    inner.invert()
    return trimesh.util.concatenate([mesh, inner])


def _soup(mesh, rng):
    """Every triangle on its own, in random order, with random winding."""
    triangles = mesh.triangles[rng.permutation(len(mesh.faces))]
    flip = rng.random(len(triangles)) < 0.5
    triangles[flip] = triangles[flip][:, ::-1]
    return trimesh.Trimesh(triangles.reshape(-1, 3), np.arange(3 * len(triangles)).reshape(-1, 3), process=False)


def _overlap(mesh, solid, detail):
    """The closed parts concatenated, not unioned: each passes through its neighbours, as
    ShapeNet's chair legs pass into their seats. A solid with holes cannot be built that way and
    keeps its watertight mesh."""
    if solid.holes or len(solid.parts) < 2:
        return mesh.copy()
    return trimesh.util.concatenate([p.mesh(detail) for p in solid.parts])


def damage(
    mesh: trimesh.Trimesh,
    defect: str,
    *,
    solid: Solid | None = None,
    rng: np.random.Generator,
    detail: int = 48,
) -> trimesh.Trimesh:
    """A copy of ``mesh`` with one of ShapeNet's usual defects.

    holes: 5% of faces deleted; interior: an inverted box and two sheets inside (needs ``solid``);
    flipped: 30% of faces reversed; duplicated: 10% of faces duplicated reversed; double-walls: an
    inner offset copy of the surface; soup: disconnected triangles with random winding; combo:
    holes + interior + 20% flipped + 10% duplicated reversed; overlap: the solid's closed parts
    concatenated without a union (needs ``solid``; parts meshed at ``detail``).
    """
    if defect == "clean":
        return mesh.copy()
    if defect == "holes":
        return _delete_faces(mesh, 0.05, rng)
    if defect == "interior":
        return _interior(mesh, solid, rng)
    if defect == "flipped":
        return _flip_faces(mesh, 0.3, rng)
    if defect == "duplicated":
        return _duplicate_reversed(mesh, 0.1, rng)
    if defect == "double-walls":
        return _double_walls(mesh)
    if defect == "soup":
        return _soup(mesh, rng)
    if defect == "combo":
        out = _delete_faces(mesh, 0.05, rng)
        out = _interior(out, solid, rng)
        out = _flip_faces(out, 0.2, rng)
        return _duplicate_reversed(out, 0.1, rng)
    if defect == "overlap":
        return _overlap(mesh, solid, detail)

    raise InputError(f"unknown defect {defect!r}; choose one of {', '.join(DEFECTS)}")


# ---------------------------------------------------------------------------------------------
# A ShapeNet-v2-style tree of procedural shapes


def _primitives_to_json(primitives) -> list[dict]:
    return [{"kind": p.kind, "size": list(p.size), "transform": np.asarray(p.transform).tolist()} for p in primitives]


def _primitives_from_json(items: list[dict]) -> tuple[Primitive, ...]:
    return tuple(Primitive(p["kind"], tuple(p["size"]), np.asarray(p["transform"], dtype=np.float64)) for p in items)


def solid_to_json(solid: Solid) -> list[dict]:
    """The parts of a solid (its holes: :func:`holes_to_json`)."""
    return _primitives_to_json(solid.parts)


def holes_to_json(solid: Solid) -> list[dict]:
    return _primitives_to_json(solid.holes)


def solid_from_json(parts: list[dict], holes: list[dict] | None = None, sheets: dict | None = None):
    """A solid from a manifest entry's ``parts`` (and ``holes``, when it has any); a
    :class:`Container` when the entry has ``sheets`` (``{"construction", "vertices", "faces"}``)."""
    if sheets is not None:
        vertices, faces = np.asarray(sheets["vertices"], dtype=np.float64), np.asarray(sheets["faces"], dtype=np.int64)
        return Container(sheets["construction"], vertices, faces, _primitives_from_json(parts))
    return Solid(_primitives_from_json(parts), _primitives_from_json(holes or []))


def make_shapes(
    out: str | Path,
    count: int,
    *,
    seed: int = 0,
    defects: tuple[str, ...] = DEFECTS,
    categories: tuple[str, ...] = DEFAULT_CATEGORIES,
    test_fraction: float = 0.2,
    detail: int = 48,
    progress=None,
) -> dict:
    """Write ``count`` procedural shapes as a ShapeNetCore v2 tree under ``out``.

    ``out/<synset>/<id>/models/model_normalized.obj`` for ``categories`` (names, see
    :data:`CATEGORIES`) in turn, each damaged with one of ``defects`` in turn; ``out/splits/train.json`` and ``test.json`` in
    DeepSDF's format; ``out/shapes.json`` with each shape's synset, defect and primitives, so that
    its exact SDF can be rebuilt (:func:`solid_from_json`). Returns that manifest.

    Units are ShapeNetCore v2's ``model_normalized``: each shape is centred on its bounding box
    and scaled to a bounding-box diagonal of 1 (the undamaged solid's box; the defects are made
    before scaling, so a defect has the same size relative to its shape at every scale), and the
    manifest's primitives are in the same units, so distances measured on these meshes (Chamfer)
    are in ShapeNet's units.
    """

    out = Path(out)
    manifest = {}
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    by_name = {name: synset for synset, (name, _) in CATEGORIES.items()}
    unknown = [c for c in categories if c not in by_name]
    if unknown or not categories:
        raise InputError(f"unknown category {(unknown or ['(none)'])[0]!r}; choose from {', '.join(by_name)}")
    bad = [d for d in defects if d not in DEFECTS]
    if bad or not defects:
        raise InputError(f"unknown defect {(bad or ['(none)'])[0]!r}; choose from {', '.join(DEFECTS)}")
    synsets = [by_name[c] for c in categories]
    for i in range(count):
        synset = synsets[i % len(synsets)]
        name, generator = CATEGORIES[synset]
        defect = defects[(i // len(synsets)) % len(defects)]
        rng = np.random.default_rng([seed, i])
        solid = generator(rng)
        if isinstance(solid, Container) and defect not in CONTAINER_DEFECTS:
            defect = "clean"
        clean = solid.mesh(detail)
        mesh = damage(clean, defect, solid=solid, rng=rng, detail=detail)
        low, high = clean.bounds
        centre, factor = (low + high) / 2, 1.0 / float(np.linalg.norm(high - low))
        mesh = trimesh.Trimesh((np.asarray(mesh.vertices) - centre) * factor, mesh.faces, process=False)
        solid = solid.normalized(centre, factor)
        shape_id = f"{name}-{i:04d}-{defect}"
        folder = out / synset / shape_id / "models"
        folder.mkdir(parents=True, exist_ok=True)
        mesh.export(folder / "model_normalized.obj", file_type="obj", include_normals=False, include_texture=False)
        split = "test" if rng.random() < test_fraction else "train"
        splits[split].setdefault(synset, []).append(shape_id)
        manifest[shape_id] = {
            "synset": synset,
            "category": name,
            "defect": defect,
            "split": split,
            "parts": solid_to_json(solid),
        }
        if solid.holes:
            manifest[shape_id]["holes"] = holes_to_json(solid)
        if isinstance(solid, Container):  # pass this entry's "sheets" to solid_from_json
            manifest[shape_id]["sheets"] = {
                "construction": solid.construction,
                "vertices": solid.vertices.tolist(),
                "faces": solid.faces.tolist(),
            }
        if progress:
            progress(i + 1, count)
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for split, content in splits.items():
        (out / "splits" / f"{split}.json").write_text(json.dumps({"ShapeNetV2": content}, indent=1))
    (out / "shapes.json").write_text(json.dumps(manifest, indent=1))
    return manifest
