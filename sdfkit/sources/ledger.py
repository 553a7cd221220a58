"""The quality ledger of a ``shapenet`` store: per object, what its file held, what it cost, and
a shape print that finds near-duplicates (``ledger/*`` arrays; ``sdfkit report`` reads them).

- ``ledger/sha256``: the sha256 of the file's bytes (Objaverse-XL's and TRELLIS' object id);
  ``ledger/licence``, ``ledger/name``: what the collection says (``sdfkit.sources.objects``).
- ``ledger/faces``, ``ledger/vertices``: of the mesh as read (scene flattened);
  ``ledger/meshes``: triangle meshes placed (an instanced mesh counts once per node);
  ``ledger/points``, ``ledger/line_points``: vertices of the point and line primitives skipped; ``ledger/units``: the
  file's units where it says them (glTF: meters); ``ledger/extent``: the longest side of the
  bounding box in those units.
- ``ledger/watertight``: 1 where trimesh calls the mesh watertight (every edge shared by two
  faces once coincident vertices are merged, winding consistent).
- ``ledger/seconds``: the whole per-object step (read, outer surface, every recipe);
  ``ledger/peak_memory``: the most the process's resident memory rose above where it was when
  the object started, sampled every 20 ms (bytes).
- ``ledger/print`` (512,) float32: the unsigned distance from the outer surface at the centres of
  an 8^3 grid over [-1, 1]^3 of the normalized frame. It does not change when a file is
  re-exported, re-triangulated, its vertices reordered, moved or scaled. ``ledger/area``,
  ``ledger/moments``: the input mesh's area and principal second moments in the normalized
  frame (:func:`input_measures`, :func:`surface_moments`). Two objects whose prints are within :data:`NEAR` (root mean
  square) and whose area and moments are each within :data:`NEAR_AREA` are near-duplicates
  (``--dedup``).
"""

from __future__ import annotations

import threading

import numpy as np
from scipy.spatial import cKDTree

from sdfkit.geometry.basics import face_areas
from sdfkit.geometry.sign import unsigned_distance
from sdfkit.pipeline.runners import resident_memory
from sdfkit.store.format import ArraySpec

__all__ = [
    "LEDGER_SPECS",
    "PRINT_GRID",
    "NEAR",
    "NEAR_AREA",
    "PeakMemory",
    "shape_print",
    "surface_moments",
    "input_measures",
    "ledger_row",
    "near_duplicates",
]

PRINT_GRID = 8
NEAR = 0.004
"""Root-mean-square distance between shape prints (normalized frame, unit ball) under which two
objects may be near-duplicates: measured in benchmarks/dedup.py."""
NEAR_AREA = 0.002
"""...and the relative difference of their outer surfaces' areas and principal moments
(normalized frame) under which they are: re-exported copies differ by 1e-4 at most; objects small
in their scene (a part placed far from the rest) have prints alike whatever their shape, not these
alike."""

LEDGER_SPECS = (
    ArraySpec("ledger/sha256", (), "str", ""),
    ArraySpec("ledger/licence", (), "str", ""),
    ArraySpec("ledger/name", (), "str", ""),
    ArraySpec("ledger/faces", (), "int64", -1),
    ArraySpec("ledger/vertices", (), "int64", -1),
    ArraySpec("ledger/meshes", (), "int64", -1),
    ArraySpec("ledger/points", (), "int64", -1),
    ArraySpec("ledger/line_points", (), "int64", -1),
    ArraySpec("ledger/units", (), "str", ""),
    ArraySpec("ledger/extent", (), "float64", float("nan")),
    ArraySpec("ledger/watertight", (), "uint8", 255),
    ArraySpec("ledger/seconds", (), "float32", float("nan")),
    ArraySpec("ledger/peak_memory", (), "int64", -1),
    ArraySpec("ledger/print", (PRINT_GRID**3,), "float32", float("nan")),
    ArraySpec("ledger/area", (), "float64", float("nan")),
    ArraySpec("ledger/moments", (3,), "float64", float("nan")),
)


class PeakMemory:
    """``with PeakMemory() as peak: ...``; then ``peak.bytes``: the most resident memory rose
    above its level at the start, sampled every ``interval`` seconds by a thread."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.bytes = 0
        self._stop = threading.Event()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.bytes = max(self.bytes, resident_memory() - self._start)

    def __enter__(self) -> PeakMemory:
        self._start = resident_memory()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bytes = max(self.bytes, resident_memory() - self._start)
        self._stop.set()
        self._thread.join()


def _print_points() -> np.ndarray:
    centres = (np.arange(PRINT_GRID) + 0.5) / PRINT_GRID * 2.0 - 1.0
    return np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)


def shape_print(signed) -> np.ndarray:
    """(512,) float32: :data:`LEDGER_SPECS`' ``ledger/print`` of a :class:`~sdfkit.recipes.deepsdf.SignedMesh`."""

    outer = signed.outer
    return unsigned_distance(outer.vertices, outer.faces, _print_points()).astype(np.float32)


def ledger_row(mesh, found, signed, *, sha256: str, licence: str, name: str, seconds: float, memory: int) -> dict:
    """The ``ledger/*`` values of one object."""
    # trimesh takes 0.35 s to import: loaded where used
    import trimesh

    used = mesh.vertices[np.unique(mesh.faces)]
    return {
        "ledger/sha256": sha256,
        "ledger/licence": licence,
        "ledger/name": name,
        "ledger/faces": np.int64(len(mesh.faces)),
        "ledger/vertices": np.int64(len(mesh.vertices)),
        "ledger/meshes": np.int64(found.meshes),
        "ledger/points": np.int64(found.points),
        "ledger/line_points": np.int64(found.line_points),
        "ledger/units": found.units,
        "ledger/extent": np.float64(np.ptp(used, axis=0).max()),
        "ledger/watertight": np.uint8(trimesh.Trimesh(mesh.vertices, mesh.faces, process=True).is_watertight),
        "ledger/seconds": np.float32(seconds),
        "ledger/peak_memory": np.int64(memory),
        "ledger/print": shape_print(signed),
        **input_measures(mesh, signed),
    }


def input_measures(mesh, signed) -> dict:
    """``ledger/area`` and ``ledger/moments``: the input mesh's area and principal moments in the
    normalized frame. Not the outer surface's: for a mesh with open parts that surface depends on
    the visibility rays, drawn per object id, so two copies of one file under two ids differed by
    up to 1.9% in area (measured on the scale benchmark's flattened scenes), beyond
    :data:`NEAR_AREA`; the input's faces are the same in every copy."""
    vertices = (np.asarray(mesh.vertices, dtype=np.float64) + signed.offset) * signed.scale
    faces = np.asarray(mesh.faces, dtype=np.int64)
    return {
        "ledger/area": np.float64(face_areas(vertices, faces).sum()),
        "ledger/moments": surface_moments(vertices, faces),
    }


def surface_moments(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(3,) float64: the principal second moments of a surface's area about its area centroid,
    largest first (exact: over a triangle abc of area A, the integral of x x^T is
    A / 12 (a a^T + b b^T + c c^T + s s^T) with s = a + b + c), divided by the area."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    area = face_areas(vertices, faces)
    total = max(float(area.sum()), 1e-300)
    s = tri.sum(axis=1)
    centroid = (area[:, None] * s / 3.0).sum(axis=0) / total
    second = np.einsum("f,fki,fkj->ij", area, tri, tri) + np.einsum("f,fi,fj->ij", area, s, s)
    covariance = second / (12.0 * total) - np.outer(centroid, centroid)
    return np.sort(np.linalg.eigvalsh(covariance))[::-1].copy()


def near_duplicates(
    prints: np.ndarray,
    candidates: np.ndarray,
    *,
    measures: np.ndarray | None = None,
    near: float = NEAR,
    near_area: float = NEAR_AREA,
) -> dict[int, tuple[int, float]]:
    """Groups of near-duplicates among the rows ``candidates`` (indices into ``prints``, (n, 512),
    and ``measures``, (n, k): the outer surface's area and principal moments): row -> (the row it
    duplicates, their print distance) for every row but the first of its group. Two rows match
    when their prints are within ``near`` (root mean square of the difference) and each of their
    measures within ``near_area`` of the other's (relative). Rows are taken in order; each joins the first earlier group whose first row it
    matches itself, so a chain of small steps never joins two objects that do not match. Pairs are
    found in a 16-dimensional random projection with a k-d tree (a pair within ``near`` lies
    within ``2 near`` there but for a vanishing share) and checked on the whole prints."""

    candidates = np.asarray(candidates, dtype=np.int64)
    if len(candidates) < 2:
        return {}
    values = prints[candidates].astype(np.float64) / np.sqrt(prints.shape[1])  # RMS = Euclidean here
    sizes = None if measures is None else np.asarray(measures, dtype=np.float64).reshape(len(prints), -1)[candidates]
    projection = np.random.default_rng(0).normal(size=(values.shape[1], 16)) / np.sqrt(16)
    pairs = cKDTree(values @ projection).query_pairs(2.0 * near, output_type="ndarray")
    earlier: dict[int, list[int]] = {}
    for a, b in pairs:
        earlier.setdefault(int(max(a, b)), []).append(int(min(a, b)))

    def distance(a: int, b: int) -> float:
        return float(np.linalg.norm(values[a] - values[b]))

    def match(a: int, b: int) -> bool:
        if distance(a, b) > near:
            return False
        if sizes is None:
            return True
        return bool(np.all(np.abs(sizes[a] - sizes[b]) <= near_area * np.maximum(np.abs(sizes[a]), np.abs(sizes[b]))))

    first = np.arange(len(candidates))  # each row's group: the index of the group's first row
    out = {}
    for k in sorted(earlier):
        roots = sorted({int(first[j]) for j in earlier[k] if first[j] == j})
        roots += sorted({int(first[j]) for j in earlier[k]} - set(roots))
        for r in roots:
            if r < k and first[r] == r and match(k, r):
                first[k] = r
                out[int(candidates[k])] = (int(candidates[r]), distance(k, r))
                break
    return out
