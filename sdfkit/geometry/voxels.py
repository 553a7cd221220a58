"""Voxel grids of a surface: the cells a triangle touches (exact triangle-box overlap), and solid
grids (touched, or centre inside).

Grid: ``R`` cells per side over ``[low, high]^3``; cell ``[i, j, k]`` spans
``low + (i, j, k) * h`` to ``low + (i + 1, j + 1, k + 1) * h`` with ``h = (high - low) / R``.
This is the grid of Occupancy Networks' ``model.binvox`` and IF-Net's ``voxelization_<R>.npy``
(``[-0.5, 0.5]^3``, a cell filled where the surface passes through it or its centre is inside)
and of TRELLIS' surface voxels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import label

from sdfkit.geometry.basics import cell_centres

__all__ = ["surface_voxels", "solid_voxels", "write_binvox"]

_PAIRS = 1 << 22
"""(triangle, cell) candidate pairs tested at once: bounds the memory of a large triangle."""


def surface_voxels(
    vertices: np.ndarray, faces: np.ndarray, resolution: int, low: float = -0.5, high: float = 0.5
) -> np.ndarray:
    """(R, R, R) bool: the cells that a triangle of the surface touches (closed cells: a triangle
    on a cell's face touches both cells), by the separating-axis test of a triangle against a box
    (Akenine-Möller: the box's three axes, the triangle's normal, the nine edge-axis crosses).
    Parts of the surface outside the grid are ignored."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    size = (high - low) / resolution
    grid = np.zeros((resolution,) * 3, dtype=bool)
    tri = (vertices[faces] - low) / size  # in cell units: cell i spans [i, i + 1]
    first = np.clip(np.floor(tri.min(axis=1)).astype(np.int64), 0, resolution - 1)
    last = np.clip(np.floor(tri.max(axis=1)).astype(np.int64), 0, resolution - 1)
    outside = (tri.max(axis=1) < 0).any(axis=1) | (tri.min(axis=1) > resolution).any(axis=1)
    span = np.where(outside[:, None], 0, last - first + 1)
    count = span.prod(axis=1)
    order = np.nonzero(count)[0]
    start = 0
    while start < len(order):
        # a batch of triangles whose candidate cells add up to about _PAIRS
        total = np.cumsum(count[order[start:]])
        stop = start + max(1, int(np.searchsorted(total, _PAIRS, side="right")))
        ids = order[start:stop]
        start = stop
        n = count[ids]
        owner = np.repeat(np.arange(len(ids)), n)
        local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        s = span[ids][owner]
        cell = first[ids][owner] + np.stack(
            [local // (s[:, 1] * s[:, 2]), (local // s[:, 2]) % s[:, 1], local % s[:, 2]], 1
        )
        touched = _overlaps(tri[ids][owner] - (cell + 0.5)[:, None, :], 0.5)
        hit = cell[touched]
        grid[hit[:, 0], hit[:, 1], hit[:, 2]] = True
    return grid


def _overlaps(v: np.ndarray, half: float) -> np.ndarray:
    """(n,) bool: whether triangles ``v`` (n, 3, 3), relative to a box's centre, touch the cube
    of half side ``half`` (the box's own axes are assumed to overlap: the candidates come from
    the triangles' bounding boxes)."""
    keep = np.ones(len(v), dtype=bool)
    edges = (v[:, 1] - v[:, 0], v[:, 2] - v[:, 1], v[:, 0] - v[:, 2])
    eps = 1e-12
    for edge in edges:
        for axis in range(3):
            # the cross of the box's axis with the edge: (e_axis x edge)
            a = np.zeros_like(edge)
            b, c = (axis + 1) % 3, (axis + 2) % 3
            a[:, b], a[:, c] = -edge[:, c], edge[:, b]
            p = np.einsum("nkj,nj->nk", v, a)
            r = half * np.abs(a).sum(axis=1) + eps
            keep &= ~((p.min(axis=1) > r) | (p.max(axis=1) < -r))
    normal = np.cross(edges[0], edges[1])
    d = np.einsum("nj,nj->n", normal, v[:, 0])
    keep &= np.abs(d) <= half * np.abs(normal).sum(axis=1) + eps
    return keep


def solid_voxels(
    vertices: np.ndarray,
    faces: np.ndarray,
    inside: Callable[[np.ndarray], np.ndarray],
    resolution: int,
    low: float = -0.5,
    high: float = 0.5,
    *,
    closed: bool = False,
) -> np.ndarray:
    """(R, R, R) bool: cells the surface touches or whose centre is inside (``inside(points (n,
    3)) -> (n,) bool``, asked only about the untouched cells), as binvox and IF-Net's
    ``VoxelGrid.from_mesh`` fill a mesh.

    closed : the surface bounds what ``inside`` says is inside (it is made of closed parts): two
        untouched cells that share a face are then on the same side (the box they make holds no
        surface), so each region of untouched cells is asked about once, at one of its cells."""

    grid = surface_voxels(vertices, faces, resolution, low, high)
    axis = cell_centres(resolution, low, high)
    flat = grid.reshape(-1)
    if closed:
        regions, count = label(~grid)  # 6-connected regions of untouched cells
        flat_regions = regions.reshape(-1)
        order = np.argsort(flat_regions, kind="stable")
        first = order[np.searchsorted(flat_regions[order], np.arange(1, count + 1))]
        i, j, k = np.unravel_index(first, grid.shape)
        filled = np.concatenate([[False], inside(np.stack([axis[i], axis[j], axis[k]], axis=1))])
        return grid | filled[regions]
    rest = np.nonzero(~flat)[0]
    i, j, k = np.unravel_index(rest, grid.shape)
    flat[rest] = inside(np.stack([axis[i], axis[j], axis[k]], axis=1))
    return grid


def write_binvox(path, grid: np.ndarray, low: float = -0.5, high: float = 0.5) -> None:
    """A binvox file (version 1) of an (R, R, R) grid indexed [x, y, z], as ``binvox_rw``'s
    ``read_as_3d_array`` reads it back (binvox runs its data with y fastest, then z, then x):
    translate ``low``, scale ``high - low``, run-length data in (value, count <= 255) bytes."""
    grid = np.asarray(grid, dtype=bool)
    resolution = grid.shape[0]
    flat = np.transpose(grid, (0, 2, 1)).ravel().astype(np.uint8)  # [x][z][y]
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(flat)]]))
    values = flat[starts]
    pieces = np.repeat(values, -(-lengths // 255))
    counts = np.concatenate([np.minimum(255, length - 255 * np.arange(-(-length // 255))) for length in lengths])
    data = np.stack([pieces, counts], axis=1).astype(np.uint8).tobytes()
    header = (
        f"#binvox 1\ndim {resolution} {resolution} {resolution}\n"
        f"translate {low} {low} {low}\nscale {high - low}\ndata\n"
    ).encode()
    with open(path, "wb") as f:
        f.write(header + data)
