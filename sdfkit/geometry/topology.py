"""The structure of a triangle mesh, without rays: merged vertices, edges and their keys, the
parts faces form across shared edges, which of them are closed, their consistent orientation,
pseudonormals, and the random rotations and sphere directions the ray queries use.

Used by :mod:`sdfkit.geometry.parts` and :mod:`sdfkit.geometry.sign`.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sdfkit.geometry.basics import face_areas, face_normals

__all__ = [
    "fibonacci_directions",
    "random_rotations",
    "merge_vertices",
    "edge_ids",
    "pseudonormals",
    "vertex_parts",
    "closed_parts",
    "outward_flips",
    "is_soup",
    "boxes_meeting",
]


def fibonacci_directions(count: int) -> np.ndarray:
    """``count`` unit vectors spread evenly over the sphere: (count, 3) float64."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = np.pi * (1.0 + 5**0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


_SOUP_SHARE = 0.9
"""A mesh without closed parts is a soup when this share of its face area lies in faces that
share no edge with another face (after coincident vertices are merged)."""


def is_soup(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """Whether open faces are a soup of loose triangles (see :data:`_SOUP_SHARE`): they bound
    nothing, whatever their orientation or the way they cross each other. A mesh exported as
    separate triangles is not: its merged vertices join its faces again."""
    if len(faces) < 2:
        return False
    edge_id, counts = edge_ids(faces)
    loose = (counts[edge_id] == 1).all(axis=1)
    area = face_areas(vertices, faces)
    return bool(area[loose].sum() >= _SOUP_SHARE * max(area.sum(), 1e-300))


def vertex_parts(vertices, faces) -> tuple[np.ndarray, int]:
    """(f,) the connected part (faces sharing vertices) of each face, and how many there are."""

    n = len(faces)
    graph = coo_matrix((np.ones(3 * n), (np.repeat(np.arange(n), 3), faces.reshape(-1))), shape=(n, len(vertices)))
    incidence = graph.tocsr()
    parts, part = connected_components(incidence @ incidence.T, directed=False)
    return part, parts


def closed_parts(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per face (f,): the id of its closed, orientable part, or -1 when its part is open. The
    faces of closed parts are oriented in place (consistently, outwards).

    A part is a set of faces joined across edges that exactly two faces share; it is closed when
    each edge of its faces has exactly two faces of the part, whatever other parts' faces meet
    there (two boxes stacked edge to edge, a leg's end on a seat's edge). Faces of zero area
    (slivers along an edge, collapsed corners) decide nothing: they belong to no part.

    The closed parts found are then set aside and the rest looked at again, until no closed part
    is left to find: a pin whose rim lies on the edge of the hole it sits in has four faces on each
    rim edge (the pin's side and cap, the plate's top and bore), so its side and cap join only once
    the plate is out of the way (cycloidal.ply).
    """

    result = _closed_parts_once(vertices, faces)
    while True:
        rest = np.nonzero(result < 0)[0]
        if len(rest) < 4 or len(rest) == len(faces):
            return result
        subset = faces[rest]
        found = _closed_parts_once(vertices, subset)
        if not (found >= 0).any():
            return result
        faces[rest] = subset  # oriented in place, as the first pass does
        result[rest] = np.where(found >= 0, found + result.max() + 1, -1)


def _closed_parts_once(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """One pass of :func:`closed_parts` over ``faces``, edges counted among them alone."""

    n = len(faces)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    size = np.ptp(vertices, axis=0).max() if len(vertices) else 1.0
    real = face_areas(vertices, faces) > _SLIVER_AREA * size**2
    start = faces.reshape(-1)
    keys = _edge_keys(faces)
    keys = np.where(np.repeat(real, 3), keys, -1 - np.arange(3 * n))  # a sliver's edges join nothing
    order = np.argsort(keys, kind="stable")
    _, first, counts = np.unique(keys[order], return_index=True, return_counts=True)
    pair = first[counts == 2]
    c1, c2 = order[pair], order[pair + 1]  # the two face corners of each two-face edge
    f1, f2 = c1 // 3, c2 // 3
    same = start[c1] == start[c2]  # both faces run the edge the same way: one must flip

    _, part = connected_components(coo_matrix((np.ones(len(f1)), (f1, f2)), shape=(n, n)), directed=False)
    parts = part.max() + 1
    # closed: every (edge, part) of the part's faces holds exactly two of its faces
    corner_part = np.repeat(part, 3)
    grouped = keys.astype(np.int64) * parts + corner_part
    _, group, group_counts = np.unique(grouped[np.repeat(real, 3)], return_inverse=True, return_counts=True)
    bad_corner = np.zeros(3 * n, dtype=bool)
    bad_corner[np.repeat(real, 3)] = group_counts[group] != 2
    part_closed = np.bincount(corner_part, weights=bad_corner, minlength=parts) == 0
    part_closed &= np.bincount(part, weights=real, minlength=parts) >= 4  # a closed surface has 4 faces at least
    part_closed[part[~real]] = False
    # orientation: node f is "as is", node n + f "flipped"; an edge ties equal states of
    # consistent neighbours and opposite states of inconsistent ones
    a = np.concatenate([f1, n + f1])
    b = np.concatenate([np.where(same, n + f2, f2), np.where(same, f2, n + f2)])
    _, state = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(2 * n, 2 * n)), directed=False)
    orientable = state[:n] != state[n:]
    part_closed &= np.bincount(part, weights=~orientable, minlength=parts) == 0
    flip = state[n:] < state[:n]
    faces[flip] = faces[flip][:, ::-1]
    # outwards: a closed part with negative volume is turned inside out
    tri = vertices[faces]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    part_volume = np.bincount(part, weights=volume, minlength=parts)
    part_closed &= np.abs(part_volume) > 1e-9 * size**3
    inverted = part_closed[part] & (part_volume[part] < 0)
    faces[inverted] = faces[inverted][:, ::-1]
    return np.where(part_closed[part], part, -1)


_SLIVER_AREA = 1e-12
"""Faces smaller than this times the mesh's extent squared have no area to speak of (a sliver
along an edge): they play no part in telling closed parts from open ones."""


def outward_flips(faces: np.ndarray, vote: np.ndarray) -> np.ndarray:
    """(f,) bool: which faces to reverse so that each patch (faces joined across edges that two
    faces share) is wound consistently and faces the way its faces' votes say, area-weighted
    (``vote`` > 0: the face's front sees more of the outside than its back).

    A face alone can be fooled (in a crease beside a hole its back, through the hole, may see more
    sky than its front; measured on a make-shapes chair, a bulge 20 cells deep in front of one
    such face); its patch cannot. A patch that cannot be wound consistently (a Moebius strip)
    keeps each face's own vote.
    """

    n = len(faces)
    if n == 0:
        return np.zeros(0, dtype=bool)
    # directed edges a -> b of every face; an undirected edge joins two faces when exactly two
    # faces have it, consistently wound when they run along it in opposite directions
    a, b = faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1)
    owner = np.repeat(np.arange(n), 3)
    key = _edge_keys(faces)
    order = np.argsort(key, kind="stable")
    key, owner, forward = key[order], owner[order], (a < b)[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, len(key)])
    pair = starts[counts == 2]
    f, g = owner[pair], owner[pair + 1]
    same_way = forward[pair] == forward[pair + 1]  # then one of the two must be reversed
    distinct = f != g
    f, g, same_way = f[distinct], g[distinct], same_way[distinct]
    # the double cover: state k (face k as it is) and n + k (reversed); a consistent pair links
    # the states that agree
    rows = np.concatenate([f, f + n])
    cols = np.concatenate([np.where(same_way, g + n, g), np.where(same_way, g, g + n)])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(2 * n, 2 * n))
    _, label = connected_components(graph, directed=False)
    total = np.bincount(label, weights=np.concatenate([vote, -vote]), minlength=label.max() + 1)
    patch_vote = total[label[:n]]  # the vote of the consistent winding that keeps face k as it is
    orientable = label[:n] != label[n:]
    return np.where(orientable, patch_vote < 0, vote < 0)


def random_rotations(count: int, rng: np.random.Generator) -> np.ndarray:
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


def merge_vertices(vertices: np.ndarray, faces: np.ndarray, decimals: int = 7):
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


def edge_ids(faces: np.ndarray):
    """Edge e of face f joins its corners e and e+1: (f, 3) ids of the unique edges, and how many
    faces share each edge."""
    _, edge_id, counts = np.unique(_edge_keys(faces), return_inverse=True, return_counts=True)
    return edge_id.reshape(-1, 3), counts


def _edge_keys(faces: np.ndarray) -> np.ndarray:
    """(3f,) int64: a key per edge of each face (edge e joins corners e and e+1, in face order),
    the same for every face that has the edge, whichever way it runs along it."""
    start = faces.reshape(-1).astype(np.int64)
    end = faces[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    return np.minimum(start, end) * (int(faces.max()) + 1) + np.maximum(start, end)


def pseudonormals(vertices: np.ndarray, faces: np.ndarray, edge_id: np.ndarray):
    """Face normals (f, 3), edge pseudonormals per face corner-edge (f, 3, 3) and angle-weighted
    vertex normals (v, 3) of a mesh; ``edge_id`` from :func:`edge_ids`."""
    tri = vertices[faces]
    face_n = face_normals(vertices, faces)
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


def boxes_meeting(tri: np.ndarray, part: np.ndarray, parts: int, pad: float = 0.0) -> np.ndarray:
    """(parts,) bool: parts whose bounding box (of their triangles ``tri`` (f, 3, 3), grown by
    ``pad``) meets another part's; all of them when there are too many for the pairwise test."""
    if parts > 4096:
        return np.ones(parts, dtype=bool)
    low = np.full((parts, 3), np.inf)
    high = np.full((parts, 3), -np.inf)
    np.minimum.at(low, part, tri.min(axis=1) - pad)
    np.maximum.at(high, part, tri.max(axis=1) + pad)
    meet = np.all((low[:, None] <= high[None]) & (low[None] <= high[:, None]), axis=2)
    np.fill_diagonal(meet, False)
    return meet.any(axis=1)


def sharp_edges(surface, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges of an outer surface (:class:`sdfkit.geometry.sign.OuterSurface`) where its two faces meet at more than ``angle`` degrees
    (the angle between their outward normals; 0 on a flat stretch, 90 at a cube's edge):
    endpoints ``a``, ``b`` (m, 3) and the unit mean normal of the two faces (m, 3).

    Coincident vertices are merged first (faces split where parts meet share no vertex ids).
    Edges on an open part's boundary (one face) or shared by more than two faces, and edges of
    zero-area faces, are none. Where a sheet meets a face (sheets face either way) the angle is
    taken between the lines of the normals, so a flat sheet has no sharp edge whichever way its
    faces were turned."""
    vertices, faces, index = merge_vertices(surface.vertices, surface.faces)
    if len(faces) == 0:
        empty = np.zeros((0, 3))
        return empty, empty, empty
    normals = face_normals(vertices, faces)
    sheet = surface.sheet[index]
    edge_id, counts = edge_ids(faces)
    owner = np.repeat(np.arange(len(faces)), 3)
    corner = np.tile(np.arange(3), len(faces))
    flat_id = edge_id.reshape(-1)
    shared = counts[flat_id] == 2
    order = np.argsort(flat_id[shared], kind="stable")
    pairs = owner[shared][order].reshape(-1, 2)
    corners = corner[shared][order].reshape(-1, 2)[:, 0]
    first, second = normals[pairs[:, 0]], normals[pairs[:, 1]]
    valid = (np.linalg.norm(first, axis=1) > 0.5) & (np.linalg.norm(second, axis=1) > 0.5)
    cos = np.einsum("ij,ij->i", first, second)
    either_sheet = sheet[pairs[:, 0]] | sheet[pairs[:, 1]]
    side = np.where(either_sheet & (cos < 0), -1.0, 1.0)
    cos = cos * side
    keep = valid & (cos < np.cos(np.radians(angle)))
    f = pairs[keep, 0]
    a = vertices[faces[f, corners[keep]]]
    b = vertices[faces[f, (corners[keep] + 1) % 3]]
    mean = first[keep] + side[keep, None] * second[keep]
    length = np.linalg.norm(mean, axis=1, keepdims=True)
    # faces folded back onto each other (a fin of zero thickness) have no mean: one face's normal
    mean = np.where(length > 1e-6, mean / np.maximum(length, 1e-300), first[keep])
    return a, b, mean
