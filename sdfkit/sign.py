"""Signed distances to real, broken meshes.

Sign convention: negative inside, positive outside (DeepSDF). Inside means: enclosed by the
mesh's outer surface, the surface visible from outside.

The method (chosen by measurement, see benchmarks/sign_methods.py and docs/shapenet.md):

1. **Outer surface by visibility.** From both sides of every face, rays are cast over the
   hemisphere (open3d ray casting). A side from which rays escape to infinity faces the outside.
   Faces seen from neither side are interior (inner sheets, hidden boxes, the inner copy of a
   double wall) and are dropped; the others are oriented so that their normal points to the side
   that sees more of the outside. This repairs flipped and inconsistent winding, triangle soups
   and duplicated reversed faces, none of which change what is visible.
2. **Distance** is the exact distance to that outer surface (open3d closest points).
3. **Sign** from the angle-weighted pseudonormal at the closest point (Baerentzen and Aanaes):
   the face normal inside a face, the sum of the adjacent face normals on an edge, the
   angle-weighted vertex normal at a vertex. On a closed, consistently oriented surface this sign
   is exact.
4. Where that is unreliable -- the closest face sees the outside from both sides (an open sheet,
   or a thin part whose other side shows through a hole) or the closest point is on a hole's rim
   -- the sign comes from the **winding number** of the oriented outer surface, estimated by
   rays: the mean over random directions of the signed number of surface crossings
   (``sum sign(normal . direction)``), which equals the generalized winding number in
   expectation. Inside where it exceeds 1/2: a hole lowers it a little, an open sheet never
   reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OuterSurface", "outer_surface", "signed_distance", "winding_numbers", "fibonacci_directions"]


def _o3d():
    try:
        import open3d as o3d
    except ImportError as exc:  # pragma: no cover - open3d is a dependency of the mesh extra
        from sdfkit.errors import SdfkitError

        raise SdfkitError(f"open3d is needed for meshes ({exc}); install it with: pip install open3d") from None
    return o3d


def fibonacci_directions(count: int) -> np.ndarray:
    """``count`` unit vectors spread evenly over the sphere: (count, 3) float64."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = np.pi * (1.0 + 5**0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _scene(vertices: np.ndarray, faces: np.ndarray):
    o3d = _o3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
    )
    return scene


@dataclass(frozen=True)
class OuterSurface:
    """The outer surface of a mesh, consistently oriented outwards.

    vertices : (v, 3) float64, merged
    faces : (f, 3) int64, normals (right-hand rule) pointing outwards
    sheet : (f,) bool, faces that see the outside from both sides: open sheets that enclose
        nothing (a single-sheet wing, a lone triangle); points closest to them are outside
    kept : (f_in,) bool, which input faces are part of it
    """

    vertices: np.ndarray
    faces: np.ndarray
    sheet: np.ndarray
    kept: np.ndarray


def outer_surface(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    rays: int = 32,
    min_escape: float = 0.1,
    sheet_escape: float = 0.25,
    rng: np.random.Generator,
    batch: int = 1 << 20,
) -> OuterSurface:
    """Find the faces visible from outside and orient them outwards.

    A face side "escapes" when its rays (``rays`` directions over its hemisphere, from the face's
    centroid nudged off the face) reach infinity without hitting the mesh. A face is kept when
    the better side escapes in at least ``min_escape`` of its rays, and oriented towards that
    side; when the other side escapes in at least ``sheet_escape`` of its rays too, the face is
    an open sheet.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normal, axis=1)
    valid = length > 1e-14
    normal = normal / np.maximum(length, 1e-300)[:, None]
    centroid = tri.mean(axis=1)
    extent = float(np.ptp(vertices, axis=0).max())
    eps = 1e-5 * extent

    scene = _scene(vertices, faces)
    # a first look with few rays decides most faces (one side sees much of the outside, the
    # other none of it); only the uncertain ones get the full count
    first = min(rays, 4)
    escape = _escape(scene, centroid, normal, eps, np.arange(len(faces)), first, rng, batch)
    if first < rays:
        best, worst = escape.max(axis=1), escape.min(axis=1)
        unsure = np.nonzero(valid & ((best < 0.5) | (worst > 0)))[0]
        if len(unsure):
            escape[unsure] = _escape(scene, centroid, normal, eps, unsure, rays, rng, batch)
    best, worst = escape.max(axis=1), escape.min(axis=1)
    kept = valid & (best >= min_escape)
    oriented = faces.copy()
    flip = escape[:, 1] > escape[:, 0]
    oriented[flip] = oriented[flip][:, ::-1]
    merged_vertices, merged_faces, index = _merge(vertices, oriented[kept])
    sheet = (worst >= sheet_escape)[kept][index]
    return OuterSurface(merged_vertices, merged_faces, sheet, kept)


def _escape(scene, centroid, normal, eps, which, rays, rng, batch) -> np.ndarray:
    """(len(which), 2): fraction of ``rays`` hemisphere rays that reach infinity from the front
    (+normal) and back side of each face in ``which``."""
    o3d = _o3d()
    directions = fibonacci_directions(2 * rays)
    out = np.zeros((len(which), 2))
    per_batch = max(1, batch // (2 * rays))
    for start in range(0, len(which), per_batch):
        index = which[start : start + per_batch]
        n = normal[index]
        # a random rotation per face: no direction pattern shared by neighbouring faces
        dirs = np.einsum("fij,kj->fki", _random_rotations(len(index), rng), directions)  # (f, 2k, 3)
        for side, sign in enumerate((1.0, -1.0)):
            facing = np.einsum("fki,fi->fk", dirs, sign * n) > 0
            # of each antipodal pair of directions, the one in this side's hemisphere
            chosen = np.where(facing[..., None], dirs, -dirs)[:, :rays]
            origins = np.broadcast_to((centroid[index] + sign * eps * n)[:, None, :], chosen.shape)
            r = np.concatenate([origins, chosen], axis=2).reshape(-1, 6).astype(np.float32)
            hit = scene.test_occlusions(o3d.core.Tensor(r)).numpy().reshape(len(index), rays)
            out[start : start + len(index), side] = 1.0 - hit.mean(axis=1)
    return out


def _random_rotations(count: int, rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=(count, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
        ],
        axis=1,
    )


def _unique_rows(rows: np.ndarray, **kwargs):
    """``np.unique(rows, axis=0, ...)`` through a 1-D view of each row's bytes: several times
    faster than the axis form on large meshes."""
    rows = np.ascontiguousarray(rows)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    return np.unique(keys, **kwargs)


def _merge(vertices: np.ndarray, faces: np.ndarray, decimals: int = 7):
    """Merge coincident vertices (soups share no vertices), drop collapsed and duplicate faces.

    Returns the vertices, the faces and the index of each output face among the input faces.
    """
    extent = float(np.ptp(vertices, axis=0).max()) or 1.0
    keys = np.round(vertices / extent, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    _, first, inverse = _unique_rows(keys, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    index = np.nonzero((faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2]))[0]
    _, unique = _unique_rows(np.sort(faces[index], axis=1), return_index=True)
    index = index[np.sort(unique)]
    return vertices[first], faces[index], index


def _edges(faces: np.ndarray):
    """Edge e of face f joins its corners e and e+1: (f, 3) ids of the unique edges, and how many
    faces share each edge."""
    pairs = np.sort(np.stack([faces, np.roll(faces, -1, axis=1)], axis=2), axis=2).reshape(-1, 2)
    keys = pairs[:, 0].astype(np.int64) * (int(faces.max()) + 1) + pairs[:, 1]
    _, edge_id, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return edge_id.reshape(-1, 3), counts


def _pseudonormals(vertices: np.ndarray, faces: np.ndarray, edge_id: np.ndarray):
    """Face normals (f, 3), edge pseudonormals per face corner-edge (f, 3, 3) and angle-weighted
    vertex normals (v, 3) of a mesh; ``edge_id`` from :func:`_edges`."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    face_n /= np.maximum(np.linalg.norm(face_n, axis=1, keepdims=True), 1e-300)
    # vertex normals weighted by the incident angle
    vertex_n = np.zeros_like(vertices)
    for corner in range(3):
        a = tri[:, (corner + 1) % 3] - tri[:, corner]
        b = tri[:, (corner + 2) % 3] - tri[:, corner]
        cos = np.einsum("ij,ij->i", a, b) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
        angle = np.arccos(np.clip(cos, -1.0, 1.0))
        np.add.at(vertex_n, faces[:, corner], angle[:, None] * face_n)
    # an edge's pseudonormal sums the normals of the faces sharing it
    edge_n = np.zeros((edge_id.max() + 1, 3))
    np.add.at(edge_n, edge_id.reshape(-1), np.repeat(face_n, 3, axis=0))
    return face_n, edge_n[edge_id], vertex_n


def winding_numbers(
    surface: OuterSurface, points: np.ndarray, *, rays: int = 64, rng: np.random.Generator | None = None, scene=None
) -> np.ndarray:
    """Generalized winding number (n,) of an oriented surface at ``points``, estimated from the
    signed crossings of ``rays`` rays per point (evenly spread directions, randomly rotated per
    point)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return np.zeros(0)
    scene = scene if scene is not None else _scene(surface.vertices, surface.faces)
    tri = surface.vertices[surface.faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    directions = np.einsum("pij,kj->pki", _random_rotations(len(points), rng), fibonacci_directions(rays))
    origins = np.broadcast_to(points[:, None, :], directions.shape)
    r = np.concatenate([origins, directions], axis=2).reshape(-1, 6).astype(np.float32)
    hits = scene.list_intersections(_o3d().core.Tensor(r))
    ray = hits["ray_ids"].numpy().astype(np.int64)
    face = hits["primitive_ids"].numpy().astype(np.int64)
    crossing = np.sign(np.einsum("ij,ij->i", r[ray, 3:].astype(np.float64), face_n[face]))
    total = np.zeros(len(r))
    np.add.at(total, ray, crossing)
    return total.reshape(len(points), rays).mean(axis=1)


def signed_distance(
    surface: OuterSurface, points: np.ndarray, *, tolerance: float = 1e-4, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Signed distance (n,) float64 of ``points`` (n, 3) to an outer surface, negative inside."""
    scene = _scene(surface.vertices, surface.faces)
    result = scene.compute_closest_points(_o3d().core.Tensor(np.ascontiguousarray(points, dtype=np.float32)))
    closest = result["points"].numpy().astype(np.float64)
    face = result["primitive_ids"].numpy().astype(np.int64)
    uv = result["primitive_uvs"].numpy().astype(np.float64)
    weights = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)  # of the 3 corners
    edge_id, edge_faces = _edges(surface.faces)
    face_n, edge_n, vertex_n = _pseudonormals(surface.vertices, surface.faces, edge_id)
    normal = face_n[face].copy()
    small = weights < tolerance
    on_edge = small.sum(axis=1) == 1
    on_vertex = small.sum(axis=1) >= 2
    if on_edge.any():
        # the edge opposite the zero-weight corner c joins corners c+1 and c+2: edge index c+1
        corner = np.argmax(small[on_edge], axis=1)
        normal[on_edge] = edge_n[face[on_edge], (corner + 1) % 3]
    if on_vertex.any():
        corner = np.argmax(weights[on_vertex], axis=1)
        normal[on_vertex] = vertex_n[surface.faces[face[on_vertex], corner]]
    offset = np.asarray(points, dtype=np.float64) - closest
    distance = np.linalg.norm(offset, axis=1)
    along = np.einsum("ij,ij->i", offset, normal)
    inside = along < 0
    # beside a hole's rim (offset more than ~25 degrees off the normal) the pseudonormal cannot
    # tell; straight in front of or behind the rim, it can
    tangent = np.abs(along) < 0.9 * distance * np.linalg.norm(normal, axis=1)
    boundary = edge_faces[edge_id] == 1  # (f, 3): the edge belongs to one face alone, a hole's rim
    rim = on_edge & boundary[face, (np.argmax(small, axis=1) + 1) % 3]
    doubtful = surface.sheet[face] | (rim & tangent)
    if doubtful.any():
        inside[doubtful] = winding_numbers(surface, points[doubtful], rng=rng, scene=scene) > 0.5
    return np.where(inside, -distance, distance)
