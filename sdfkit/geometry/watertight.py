"""Closed, manifold meshes from a signed field: its zero level set on a sparse grid.

Grid: nodes ``origin + cell * (i, j, k)`` for ``0 <= i <= shape[0]`` (and so on), cells between
them. Only cells the surface may cross are evaluated, never a dense grid: seed points (samples of
the surface) name the first cells; a cell joins when a face it shares with an evaluated cell shows
both signs at its four corners, until no face on the border of the evaluated cells does. The cells
with a sign change then form a closed band, also where the zero level set leaves the input's faces
(across a hole, the sign's closure). Marching cubes (Lewiner's, scikit-image) runs on dense blocks
of ``block`` cells and keeps the triangles of band cells only; a vertex on a block's border is
interpolated from the same two node values on both sides, so the blocks' vertices merge exactly.
The result is closed (every edge joins two triangles) whatever the input's holes, as long as the
grid's outermost nodes are outside (positive).

Sign convention: negative inside; the faces returned point outwards (towards positive values).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from skimage.measure import marching_cubes

from sdfkit.errors import ShapeError

__all__ = ["LevelSet", "level_set"]

# corners of a cell, index di * 4 + dj * 2 + dk; the four corners of each face and its neighbour
_CORNERS = np.array([(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.int64)
_FACES = (
    ((0, 1, 2, 3), (-1, 0, 0)),
    ((4, 5, 6, 7), (1, 0, 0)),
    ((0, 1, 4, 5), (0, -1, 0)),
    ((2, 3, 6, 7), (0, 1, 0)),
    ((0, 2, 4, 6), (0, 0, -1)),
    ((1, 3, 5, 7), (0, 0, 1)),
)


@dataclass
class LevelSet:
    vertices: np.ndarray
    """(v, 3) float64, the field's frame."""
    faces: np.ndarray
    """(f, 3) int64, outward."""
    evaluated: int
    """Nodes at which the field was evaluated."""
    cells: int
    """Cells with a sign change (the band that was meshed)."""


def _unique(keys: np.ndarray) -> np.ndarray:
    """Sorted unique int64 keys (a sort and a diff: quicker here than np.unique's hash table)."""
    keys = np.sort(keys, axis=None)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


class _Sorted:
    """A growing set of int64 keys kept sorted, with a value per key (inserted in one pass)."""

    def __init__(self):
        self.keys = np.zeros(0, dtype=np.int64)
        self.values = np.zeros(0, dtype=np.float64)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        if len(self.keys) == 0:
            return np.zeros(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[at] == keys

    def add(self, keys: np.ndarray, values: np.ndarray | None = None) -> None:
        """``keys`` unique, sorted and new."""
        at = np.searchsorted(self.keys, keys)
        self.keys = np.insert(self.keys, at, keys)
        if values is not None:
            self.values = np.insert(self.values, at, values)

    def get(self, keys: np.ndarray) -> np.ndarray:
        return self.values[np.searchsorted(self.keys, keys)]


def level_set(
    field: Callable[[np.ndarray], np.ndarray],
    *,
    origin: np.ndarray,
    cell: float,
    shape: tuple[int, int, int],
    seeds: np.ndarray,
    block: int = 64,
    clamp: float = 1e-3,
) -> LevelSet:
    """Mesh the zero level set of ``field`` ((n, 3) points -> (n,) values, negative inside).

    origin : (3,) the node (0, 0, 0); cell : the spacing; shape : cells per axis.
    seeds : (m, 3) points on the surface; every part of it must hold one (a few per cell make the
        growth short: it then only follows the level set away from the seeds, across holes).
    clamp : node values within ``clamp * cell`` of zero are moved to that distance (keeping their
        sign), so no mesh vertex falls on a node and none coincide.
    Raises :class:`ShapeError` when no seed cell touches a sign change.
    """
    origin = np.asarray(origin, dtype=np.float64)
    n = np.asarray(shape, dtype=np.int64)
    strides_node = np.array([(n[1] + 1) * (n[2] + 1), n[2] + 1, 1])
    strides_cell = np.array([n[1] * n[2], n[2], 1])
    nodes = _Sorted()
    done = _Sorted()
    band = []
    start = np.clip(np.floor((np.asarray(seeds, dtype=np.float64) - origin) / cell).astype(np.int64), 0, n - 1)
    frontier = _unique(start @ strides_cell)
    while len(frontier):
        ijk = np.stack(np.unravel_index(frontier, tuple(n)), axis=1)
        corners = (ijk[:, None, :] + _CORNERS[None]) @ strides_node  # (c, 8)
        wanted = _unique(corners)
        missing = wanted[~nodes.contains(wanted)]
        if len(missing):
            points = origin + cell * np.stack(np.unravel_index(missing, tuple(n + 1)), axis=1)
            values = np.asarray(field(points), dtype=np.float64)
            small = np.abs(values) < clamp * cell
            values[small] = np.where(values[small] < 0, -clamp * cell, clamp * cell)
            nodes.add(missing, values)
        negative = nodes.get(corners) < 0
        band.append(frontier[negative.any(axis=1) & ~negative.all(axis=1)])
        grown = []
        for corner, step in _FACES:
            face = negative[:, corner]
            mixed = face.any(axis=1) & ~face.all(axis=1)
            neighbour = ijk[mixed] + step
            inside = np.all((neighbour >= 0) & (neighbour < n), axis=1)
            grown.append(neighbour[inside] @ strides_cell)
        done.add(frontier)
        grown = _unique(np.concatenate(grown))
        frontier = grown[~done.contains(grown)]
    cells = _unique(np.concatenate(band)) if band else np.zeros(0, dtype=np.int64)
    if len(cells) == 0:
        raise ShapeError("the signed distance changes sign nowhere near the surface: nothing to mesh")
    vertices, faces = _march(cells, nodes, n, strides_node, block)
    vertices = origin + cell * vertices
    tri = vertices[faces]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])).sum()
    if volume < 0:
        faces = faces[:, ::-1]
    return LevelSet(vertices, np.ascontiguousarray(faces), len(nodes.keys), len(cells))


def _march(cells, nodes: _Sorted, n, strides_node, block: int):
    """Marching cubes block by block over the band ``cells``: vertices (v, 3) in node units and faces."""

    ijk = np.stack(np.unravel_index(cells, tuple(n)), axis=1)
    owner = ijk // block
    order = np.lexsort(owner.T[::-1])
    ijk, owner = ijk[order], owner[order]
    cut = np.nonzero(np.any(np.diff(owner, axis=0) != 0, axis=1))[0] + 1
    all_vertices, all_faces, count = [], [], 0
    for part in np.split(np.arange(len(ijk)), cut):
        local = ijk[part] - owner[part[0]] * block
        size = local.max(axis=0) + 2  # nodes: the last band cell's far corner included
        volume = np.full(tuple(size), 1.0)  # nodes of no band cell: any sign; their cells are not kept
        corner_ijk = (local[:, None, :] + _CORNERS[None]).reshape(-1, 3)
        global_ijk = corner_ijk + owner[part[0]] * block
        volume[tuple(corner_ijk.T)] = nodes.get(global_ijk @ strides_node)
        verts, faces, _, _ = marching_cubes(volume, level=0.0, method="lewiner", allow_degenerate=False)
        if len(faces) == 0:
            continue
        # a triangle lies inside the cell it came from: keep those of band cells. A triangle lying
        # in a cell's face (rare in Lewiner's tables) has its centroid on the face: at the block's
        # far side it came from the last cell, not the next block's
        centre = np.clip(np.floor(verts[faces].mean(axis=1)).astype(np.int64), 0, size - 2)
        keys = (centre * np.array([size[1] * size[2], size[2], 1])).sum(axis=1)
        band_keys = np.unique((local * np.array([size[1] * size[2], size[2], 1])).sum(axis=1))
        keep = np.isin(keys, band_keys)
        faces = faces[keep]
        used, faces = np.unique(faces, return_inverse=True)
        # whole-number block offsets added in float64: a border vertex gets the same bits from both blocks
        all_vertices.append(verts[used].astype(np.float64) + owner[part[0]] * block)
        all_faces.append(faces.reshape(-1, 3) + count)
        count += len(used)
    if not all_faces:
        raise ShapeError("marching cubes found no triangle in the band")
    vertices = np.concatenate(all_vertices)
    faces = np.concatenate(all_faces)
    # only vertices on a block's border (a whole-number coordinate that is a multiple of block)
    # appear twice: merge those
    border = np.nonzero(np.any(vertices % block == 0, axis=1))[0]
    order = border[np.lexsort(vertices[border].T[::-1])]
    target = np.arange(len(vertices))
    if len(order) > 1:
        starts = np.concatenate([[True], np.any(vertices[order[1:]] != vertices[order[:-1]], axis=1)])
        target[order] = order[starts][np.cumsum(starts) - 1]
    keep = target == np.arange(len(vertices))
    renumber = np.cumsum(keep) - 1
    faces = renumber[target[faces]]
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return vertices[keep], faces[ok].astype(np.int64)
