"""Reading meshes as they come (OBJ, OFF, PLY, STL, GLB/GLTF; scenes merged) and normalizing them.

Nothing is repaired here: vertices, faces and their winding stay as in the file (``process=False``),
so that the sign computation sees the mesh as it is. What cannot work at all is refused with a
:class:`~sdfkit.errors.ShapeError` whose one-line message says what is wrong.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np

from sdfkit.errors import ShapeError
from sdfkit.geometry.basics import deepsdf_normalization, face_areas

__all__ = [
    "MESH_SUFFIXES",
    "Mesh",
    "MeshFile",
    "load_mesh",
    "read_mesh",
    "local_copy",
    "is_url",
    "compact",
    "normalization",
    "sample_surface",
    "SurfaceSampler",
]

MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")


@dataclass(frozen=True)
class Mesh:
    """vertices : (v, 3) float64; faces : (f, 3) int64, indices into vertices."""

    vertices: np.ndarray
    faces: np.ndarray


_FORMATS = {".obj": "OBJ", ".off": "OFF", ".ply": "PLY", ".stl": "STL", ".glb": "glTF", ".gltf": "glTF"}


@dataclass(frozen=True)
class MeshFile:
    """What reading a file found besides its triangles (:func:`read_mesh`)."""

    meshes: int
    """Triangle meshes placed in the scene: a mesh instanced by three nodes counts three."""
    points: int
    """Points of point-cloud primitives, skipped."""
    line_points: int
    """Vertices of line primitives (segments, polylines), skipped."""
    units: str
    """The scene's units where the file says them (glTF: metres), else ``""``."""


def is_url(path) -> bool:
    """Whether ``path`` names a file in object storage (``s3://``, ``gs://``, any fsspec URL)."""
    return "://" in str(path) and not str(path).startswith("file://")


@contextmanager
def local_copy(path):
    """The file at ``path`` on this machine for the duration: itself where it is local, else a
    copy (fsspec) under its own name in a temporary folder, with the files a ``.gltf`` names
    beside it (its buffers and images)."""
    if not is_url(path):
        yield Path(str(path).removeprefix("file://"))
        return

    url = str(path)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    folder, _, _ = url.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="sdfkit-mesh-") as tmp:
        local = Path(tmp) / name
        try:
            with fsspec.open(url, "rb") as f:
                local.write_bytes(f.read())
        except FileNotFoundError:
            raise ShapeError(f"{name}: not in object storage ({url}); check that it exists") from None
        except OSError as exc:
            raise ShapeError(
                f"{name}: cannot read it from object storage ({' '.join(str(exc).split())[:120]})"
            ) from None
        if local.suffix.lower() == ".gltf":
            try:
                document = json.loads(local.read_text())
            except ValueError:
                document = {}
            for item in [*document.get("buffers", []), *document.get("images", [])]:
                uri = item.get("uri", "") if isinstance(item, dict) else ""
                if uri and not uri.startswith("data:") and "/" not in uri.strip("./"):
                    try:
                        with fsspec.open(f"{folder}/{uri}", "rb") as f:
                            (Path(tmp) / uri).write_bytes(f.read())
                    except OSError:
                        pass  # named as missing when the file is read
        yield local


def load_mesh(path: str | Path) -> Mesh:
    """Load a mesh file; a multi-part file or scene becomes one mesh (node transforms applied,
    instances expanded; points, lines and textures left out).

    Raises :class:`ShapeError` with a one-line message (the file, what is wrong, what to do) for
    an empty, truncated or unreadable file, a point cloud, and a non-finite or degenerate mesh.
    """
    return read_mesh(path)[0]


def read_mesh(path: str | Path) -> tuple[Mesh, MeshFile]:
    """:func:`load_mesh`, and what the file held besides its triangles (:class:`MeshFile`).
    ``path`` may be an fsspec URL (:func:`local_copy`)."""
    if is_url(path):
        with local_copy(path) as local:
            return read_mesh(local)
    # trimesh takes 0.35 s to import: loaded where used
    import trimesh

    path = Path(path)
    kind = _FORMATS.get(path.suffix.lower(), path.suffix.lstrip(".").upper() or "mesh")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ShapeError(
            f"{path.name}: cannot read the file ({exc.strerror}); check that it exists and is readable"
        ) from None
    if size == 0:
        raise ShapeError(f"{path.name}: the file is empty (0 bytes); re-export or re-download it")
    if path.suffix.lower() == ".gltf":
        _check_gltf_sidecars(path)
    try:
        scene = trimesh.load_scene(path, process=False)
        placed = scene.dump()  # every node's geometry with the node's world transform
        triangles = [item for item in placed if isinstance(item, trimesh.Trimesh)]
        loaded = trimesh.util.concatenate(triangles)  # what trimesh.load(force="mesh") returns
    except Exception as exc:  # trimesh raises many types for broken files
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ShapeError(
            f"{path.name}: not a readable {kind} file ({reason}); it may be cut short or not {kind} at all: "
            "re-export or re-download it"
        ) from None
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
    if path.suffix.lower() == ".ply":
        _check_ascii_ply(path)
    if path.suffix.lower() == ".stl":
        _check_stl(path, size)
    if len(faces) == 0:
        lines, points = _faceless(path)
        if lines:
            raise ShapeError(
                f"{path.name}: has no faces: a wireframe of {_count(lines, 'line')} between "
                f"{_count(points, 'point')}; sdfkit needs a triangle mesh (export the surface, not its edges)"
            )
        if points:
            raise ShapeError(
                f"{path.name}: has no faces: a point cloud of {_count(points, 'point')}; sdfkit needs a triangle "
                "mesh (reconstruct a surface from the points first)"
            )
        raise ShapeError(f"{path.name}: has no faces (an empty mesh); re-export it or remove it from the folder")
    found = MeshFile(
        meshes=len(triangles),
        points=sum(len(item.vertices) for item in placed if isinstance(item, trimesh.PointCloud)),
        line_points=sum(len(item.vertices) for item in placed if isinstance(item, trimesh.path.Path3D)),
        units=str(scene.units or ("meters" if path.suffix.lower() in (".glb", ".gltf") else "")),
    )
    return validate(Mesh(vertices, faces), path.name), found


def _count(n: int, noun: str) -> str:
    """``1 point``, ``8 points``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _faceless(path: Path) -> tuple[int, int]:
    """Lines and vertices of a file read without faces ((0, 0) when it holds none or cannot be
    read): a wireframe (OBJ ``l`` records, glTF lines) has lines, a point cloud none."""
    # trimesh takes 0.35 s to import: loaded where used
    import trimesh

    try:
        loaded = trimesh.load(path, process=False)
    except Exception:
        return 0, 0
    items = list(loaded.geometry.values()) if isinstance(loaded, trimesh.Scene) else [loaded]
    lines = sum(len(getattr(item, "entities", ())) for item in items)
    points = sum(len(getattr(item, "vertices", ())) for item in items)
    if path.suffix.lower() == ".obj" and not lines:  # trimesh reads an OBJ's `l` records as bare points
        with path.open("rb") as f:
            lines = sum(1 for line in f if line.startswith(b"l "))
    return lines, points


def _check_gltf_sidecars(path: Path) -> None:
    """A .gltf keeps its geometry in files beside it (``buffers[].uri``): name a missing one."""

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # not JSON: trimesh's own error says so
    for buffer in document.get("buffers", []) if isinstance(document, dict) else []:
        uri = buffer.get("uri", "") if isinstance(buffer, dict) else ""
        if uri and not uri.startswith("data:") and "://" not in uri and not (path.parent / uri).is_file():
            raise ShapeError(
                f"{path.name}: its binary file {uri} is missing (a .gltf keeps its geometry there); copy it next to "
                f"{path.name}, or export the scene as one .glb"
            )


def _check_stl(path: Path, size: int) -> None:
    """An STL cut short: ASCII without ``endsolid``, or binary shorter than its triangle count."""
    with open(path, "rb") as f:
        head = f.read(84)
    if head[:5].lower() == b"solid":
        with open(path, "rb") as f:
            f.seek(max(0, size - 1024))
            if b"endsolid" in f.read().lower():
                return
        if size - 84 != int.from_bytes(head[80:84], "little") * 50:  # not a binary STL that starts with "solid"
            raise ShapeError(f"{path.name}: the STL file is cut short (no 'endsolid'); re-export or re-download it")
        return
    if len(head) == 84:
        triangles = int.from_bytes(head[80:84], "little")
        if size < 84 + 50 * triangles:
            raise ShapeError(
                f"{path.name}: the STL file is cut short: it declares {triangles} triangles ({84 + 50 * triangles} "
                f"bytes) but holds {size} bytes; re-export or re-download it"
            )


def _check_ascii_ply(path: Path) -> None:
    """An ASCII PLY cut short loads without complaint, with fewer faces: count its data lines."""
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply" or b"ascii" not in f.readline():
            return
        declared = {}
        for line in f:
            words = line.split()
            if words[:1] == [b"element"] and len(words) == 3:
                declared[words[1].decode(errors="replace")] = int(words[2])
            if words[:1] == [b"end_header"]:
                break
        lines = sum(1 for line in f if line.strip())
    wanted = sum(declared.values())
    if lines < wanted:
        plural = {"vertex": "vertices", "face": "faces"}
        counts = ", ".join(f"{n} {plural.get(name, name)}" for name, n in declared.items())
        raise ShapeError(
            f"{path.name}: the PLY file is cut short: its header declares {counts} ({wanted} lines) but it holds "
            f"{lines}; re-export or re-download it"
        )


def validate(mesh: Mesh, name: str = "mesh") -> Mesh:
    """Check that a mesh can be sampled: faces, finite coordinates, valid indices, some area.

    Returns it without the vertices no face uses (stray points, a NaN left in the file): they
    play no part in anything sdfkit computes.
    """
    if len(mesh.faces) == 0:
        raise ShapeError(f"{name}: has no faces (an empty mesh); re-export it or remove it from the folder")
    if mesh.faces.min() < 0 or mesh.faces.max() >= len(mesh.vertices):
        raise ShapeError(f"{name} has face indices outside its {len(mesh.vertices)} vertices")
    used = mesh.vertices[np.unique(mesh.faces)]
    if not np.all(np.isfinite(used)):
        raise ShapeError(f"{name} has non-finite vertex coordinates (NaN or inf)")
    area = face_areas(mesh.vertices, mesh.faces)
    extent = np.ptp(used, axis=0).max()
    if extent <= 0 or area.sum() <= 1e-12 * extent**2:
        raise ShapeError(f"{name} is degenerate: its {len(mesh.faces)} faces have no area")
    if np.count_nonzero(np.ptp(used, axis=0) > 1e-9 * extent) < 2:
        raise ShapeError(f"{name} is degenerate: all its vertices lie on a line")
    return compact(mesh)


def compact(mesh: Mesh) -> Mesh:
    """The mesh without unused vertices, faces renumbered, the order of the rest kept (so a mesh
    with stray vertices gives the same arrays as the mesh without them)."""
    used, faces = np.unique(mesh.faces, return_inverse=True)
    if len(used) == len(mesh.vertices):
        return mesh
    return Mesh(mesh.vertices[used], faces.reshape(-1, 3).astype(np.int64))


def normalization(mesh: Mesh) -> tuple[np.ndarray, float]:
    """DeepSDF's normalization: ``normalized = (raw + offset) * scale``.

    offset = -(centre of the bounding box of the vertices used by faces); scale = 1 / (1.03 *
    the largest distance of a used vertex from that centre), so the shape fits in the unit ball
    with a 3% margin. Returns offset (3,) float64 and scale.
    """
    return deepsdf_normalization(mesh.vertices[np.unique(mesh.faces)])


class SurfaceSampler:
    """Area-weighted uniform samples on the triangles of one mesh, the face distribution and the
    triangles' edges computed once: recipes that draw many point sets from one surface pay for
    them once (:func:`sample_surface` draws through one of these).

    vertices : (v, 3) float, faces : (f, 3) int
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        tri = np.asarray(vertices, dtype=np.float64)[faces]
        self.faces = np.asarray(faces)
        areas = face_areas(vertices, faces)
        total = float(areas.sum())
        # each face's share of the area (a surface of zero area: every face alike)
        self._share = areas / total if total > 0 else np.full(len(areas), 1.0 / max(len(areas), 1))
        self._origin = np.ascontiguousarray(tri[:, 0])
        self._edge1 = tri[:, 1] - tri[:, 0]
        self._edge2 = tri[:, 2] - tri[:, 0]

    def sample(self, count: int, *, rng: np.random.Generator, grouped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """points (count, 3) float64 and the index (count,) of the face each lies on: ``count``
        independent draws, in random order. With ``grouped``, the same draws ordered by face, so
        that points close together in space come together (closest-point and ray queries run
        faster on them): shuffle what is computed from them before storing it."""
        # how many points each face gets (multinomial), then which point is which (a shuffle):
        # the law of independent draws, without a binary search per point
        face = np.repeat(np.arange(len(self._share)), rng.multinomial(count, self._share))
        if not grouped:
            rng.shuffle(face)
        u, v = rng.random(count), rng.random(count)
        outside = u + v > 1.0  # fold the square onto the triangle (in place: no gathers)
        np.subtract(1.0, u, out=u, where=outside)
        np.subtract(1.0, v, out=v, where=outside)
        # origin + u * edge1 + v * edge2, in that order (the same bits as the plain expression):
        # np.take along rows and in-place products are four times faster than fancy indexing
        points = np.take(self._origin, face, axis=0)
        edge = np.take(self._edge1, face, axis=0)
        edge *= u[:, None]
        points += edge
        edge = np.take(self._edge2, face, axis=0, out=edge)
        edge *= v[:, None]
        points += edge
        return points, face


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, *, rng: np.random.Generator):
    """Area-weighted uniform samples on triangles (one draw of a :class:`SurfaceSampler`).

    returns : points (count, 3) float64 and the index (count,) of the face each lies on
    """
    return SurfaceSampler(vertices, faces).sample(count, rng=rng)
