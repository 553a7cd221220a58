"""Primitives with exact SDFs (boxes, capsules, cylinders, tori) and their unions, the
:class:`Solid`: the ground truth of :mod:`sdfkit.geometry.shapes` and
:mod:`sdfkit.geometry.constructions`.

Sign convention: negative inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from sdfkit.errors import InputError

__all__ = ["Primitive", "Solid", "box", "capsule", "cylinder", "torus", "rotation", "placement"]


@dataclass(frozen=True)
class Primitive:
    kind: str
    """box, capsule, cylinder or torus"""
    size: tuple[float, ...]
    """box: half extents (3); capsule: radius, half length; cylinder: radius, half height;
    torus: major, minor radius. Capsules and cylinders run along their local z axis, tori lie in
    their local xy plane."""
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))
    """4 x 4 local-to-world matrix (rotation + translation)."""

    def _local(self, points: np.ndarray) -> np.ndarray:
        inverse = np.linalg.inv(self.transform)
        return points @ inverse[:3, :3].T + inverse[:3, 3]

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Exact signed distance of ``points`` (n, 3), negative inside."""
        p = self._local(np.asarray(points, dtype=np.float64))
        if self.kind == "box":
            q = np.abs(p) - np.asarray(self.size)
            return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)
        if self.kind == "capsule":
            r, h = self.size
            z = np.clip(p[:, 2], -h, h)
            return np.linalg.norm(p - np.stack([0 * z, 0 * z, z], axis=1), axis=1) - r
        if self.kind == "cylinder":
            r, h = self.size
            d = np.stack([np.hypot(p[:, 0], p[:, 1]) - r, np.abs(p[:, 2]) - h], axis=1)
            return np.linalg.norm(np.maximum(d, 0), axis=1) + np.minimum(d.max(axis=1), 0)
        if self.kind == "torus":
            big, small = self.size
            q = np.stack([np.hypot(p[:, 0], p[:, 1]) - big, p[:, 2]], axis=1)
            return np.linalg.norm(q, axis=1) - small
        raise _unknown_kind(self.kind)

    def normalized(self, centre: np.ndarray, factor: float) -> Primitive:
        """This primitive after ``x -> (x - centre) * factor``: sizes scale, the rotation stays;
        its SDF is ``factor`` times the old one at the old point, exactly."""
        transform = np.array(self.transform, dtype=np.float64)
        transform[:3, 3] = (transform[:3, 3] - centre) * factor
        return Primitive(self.kind, tuple(float(v) * factor for v in self.size), transform)

    def mesh(self, detail: int = 48) -> trimesh.Trimesh:
        if self.kind == "box":
            m = trimesh.creation.box(extents=2 * np.asarray(self.size))
            m = m.subdivide_to_size(max_edge=max(self.size) / 4)
        elif self.kind == "capsule":
            r, h = self.size
            m = trimesh.creation.capsule(height=2 * h, radius=r, count=[detail, detail // 2])
        elif self.kind == "cylinder":
            r, h = self.size
            m = trimesh.creation.cylinder(radius=r, height=2 * h, sections=detail)
        elif self.kind == "torus":
            big, small = self.size
            m = trimesh.creation.torus(big, small, major_sections=detail, minor_sections=detail // 2)
        else:
            raise _unknown_kind(self.kind)
        m.apply_transform(self.transform)
        return m


def _unknown_kind(kind: str):

    return InputError(f"unknown primitive kind {kind!r}; choose box, capsule, cylinder or torus")


def placement(translation=(0, 0, 0), rotation=None) -> np.ndarray:
    """The 4 x 4 matrix that rotates by ``rotation`` (3 x 3, or none) and then moves by ``translation``."""
    t = np.eye(4)
    if rotation is not None:
        t[:3, :3] = rotation
    t[:3, 3] = translation
    return t


def rotation(axis, angle) -> np.ndarray:
    """The 3 x 3 rotation by ``angle`` radians about ``axis``."""
    return trimesh.transformations.rotation_matrix(angle, axis)[:3, :3]


def box(half, at=(0, 0, 0), rotation=None) -> Primitive:
    return Primitive("box", tuple(map(float, half)), placement(at, rotation))


def capsule(radius, half_length, at=(0, 0, 0), rotation=None) -> Primitive:
    return Primitive("capsule", (float(radius), float(half_length)), placement(at, rotation))


def cylinder(radius, half_height, at=(0, 0, 0), rotation=None) -> Primitive:
    return Primitive("cylinder", (float(radius), float(half_height)), placement(at, rotation))


def torus(major, minor, at=(0, 0, 0), rotation=None) -> Primitive:
    return Primitive("torus", (float(major), float(minor)), placement(at, rotation))


@dataclass(frozen=True)
class Solid:
    """A union of primitives, less an optional union of holes (bores drilled through it)."""

    parts: tuple[Primitive, ...]
    holes: tuple[Primitive, ...] = ()

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (n,), negative inside: exact outside and near the surface for a union;
        with holes, max(union, -holes), whose sign is exact and whose distance is exact near the
        surface away from the rims of the holes."""
        value = np.min([p.sdf(points) for p in self.parts], axis=0)
        if self.holes:
            value = np.maximum(value, -np.min([h.sdf(points) for h in self.holes], axis=0))
        return value

    def normalized(self, centre: np.ndarray, factor: float) -> Solid:
        """This solid after ``x -> (x - centre) * factor`` (see :meth:`Primitive.normalized`)."""
        return Solid(
            tuple(p.normalized(centre, factor) for p in self.parts),
            tuple(h.normalized(centre, factor) for h in self.holes),
        )

    def mesh(self, detail: int = 48) -> trimesh.Trimesh:
        """The watertight union's surface, holes drilled out (manifold3d booleans)."""
        meshes = [p.mesh(detail) for p in self.parts]
        mesh = meshes[0] if len(meshes) == 1 else trimesh.boolean.union(meshes, engine="manifold")
        if self.holes:
            mesh = trimesh.boolean.difference([mesh, *[h.mesh(detail) for h in self.holes]], engine="manifold")
        return mesh


# ---------------------------------------------------------------------------------------------
# Categories in the style of ShapeNet (synset ids as ShapeNet's)
