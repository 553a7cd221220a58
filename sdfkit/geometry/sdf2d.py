"""Signed distance fields of 2D images.

Sign convention (as DeepSDF and MetaSDF): negative inside the shape, positive outside.

Frame: the image covers [-1, 1]^2; x grows to the right along columns, y grows downward along
rows. The centre of pixel (row r, column c) of an H x W image lies at
``x = -1 + (2c + 1) / W``, ``y = -1 + (2r + 1) / H``. Distances are in the same units.

The shape of a grayscale image ``I`` with values in [0, 1] is the set where the bilinear
interpolation of ``I`` (zero outside the image) is at least 0.5. The SDF grid binarizes that
interpolation at the grid's cell centres and takes two Euclidean distance transforms; the
surface samples lie on the sub-pixel contour found by marching squares on the same
interpolation, so both describe one shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from skimage import measure

from sdfkit.errors import ShapeError
from sdfkit.geometry.basics import cell_centres

__all__ = [
    "THRESHOLD",
    "Sdf2D",
    "cell_centres",
    "image_to_sdf",
    "resample_bilinear",
    "sample_contour",
    "grid_sdf",
    "interpolate_grid",
]

THRESHOLD = 0.5
"""Intensity at which images are binarized (images scaled to [0, 1])."""


@dataclass(frozen=True)
class Sdf2D:
    """The SDF of one 2D shape.

    grid : (R, R) float32
        SDF at the cell centres, ``grid[i, j]`` at ``(x_j, y_i)``, see :func:`cell_centres`.
    points : (S, 2) float32
        Points on the zero level set, as (x, y).
    normals : (S, 2) float32
        Outward unit normals at ``points``.
    """

    grid: np.ndarray
    points: np.ndarray
    normals: np.ndarray


@lru_cache(maxsize=32)
def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resampling between cell-centred axes over [-1, 1].

    Samples outside the input's pixel centres interpolate towards zero, as if the image were
    padded with zeros.
    """
    u = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5  # output centres in input pixel units
    i0 = np.floor(u).astype(int)
    w = u - i0
    m = np.zeros((n_out, n_in))
    for i, weight in ((i0, 1.0 - w), (i0 + 1, w)):
        valid = (i >= 0) & (i < n_in)
        m[np.nonzero(valid)[0], i[valid]] += weight[valid]
    m.setflags(write=False)
    return m


def resample_bilinear(image: np.ndarray, resolution: int) -> np.ndarray:
    """Bilinear interpolation of ``image`` (H, W) at the centres of an R x R grid: (R, R)."""
    h, w = image.shape
    rows = _bilinear_matrix(h, resolution)
    cols = _bilinear_matrix(w, resolution)
    return rows @ np.asarray(image, dtype=np.float64) @ cols.T


def grid_sdf(inside: np.ndarray) -> np.ndarray:
    """Signed distance, in cells, of a boolean grid whose boundary runs between cell centres.

    Two distance transforms give each cell the distance to the nearest cell centre of the other
    class; the boundary lies half a cell from both, hence the 0.5 offsets. The result is exact
    where the nearest boundary is a straight run of cell edges.

    inside : (R, C) bool
    returns : (R, C) float64, negative inside
    """
    outside_dist = ndimage.distance_transform_edt(~inside)
    inside_dist = ndimage.distance_transform_edt(inside)
    return np.where(inside, 0.5 - inside_dist, outside_dist - 0.5)


def _contour_segments(image: np.ndarray, level: float) -> np.ndarray:
    """Segments of the marching-squares contour of ``image`` at ``level``: (m, 2, 2) as (x, y)."""
    h, w = image.shape
    padded = np.pad(image, 1)  # zero border: every contour closes inside the frame
    segments = []
    for contour in measure.find_contours(padded, level):
        rows = contour[:, 0] - 1.0
        cols = contour[:, 1] - 1.0
        xy = np.stack([-1.0 + (2.0 * cols + 1.0) / w, -1.0 + (2.0 * rows + 1.0) / h], axis=1)
        segments.append(np.stack([xy[:-1], xy[1:]], axis=1))
    if not segments:
        return np.zeros((0, 2, 2))
    return np.concatenate(segments)


def _bilinear_at(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear interpolation (zero outside) of ``image`` at frame points ``xy`` (n, 2)."""
    h, w = image.shape
    cols = (xy[:, 0] + 1.0) * w / 2.0 - 0.5
    rows = (xy[:, 1] + 1.0) * h / 2.0 - 0.5
    return ndimage.map_coordinates(image, [rows, cols], order=1, mode="constant", cval=0.0)


def sample_contour(
    image: np.ndarray, count: int, *, rng: np.random.Generator, level: float = THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Sample points uniformly by arc length on the sub-pixel contour of ``image``.

    image : (H, W) float in [0, 1]
    returns : points (count, 2) and outward unit normals (count, 2), float32, frame units.
    Raises :class:`ShapeError` when the image has no contour at ``level``.
    """
    image = np.asarray(image, dtype=np.float64)
    segments = _contour_segments(image, level)
    delta = segments[:, 1] - segments[:, 0]
    lengths = np.hypot(delta[:, 0], delta[:, 1])
    keep = lengths > 1e-12
    segments, delta, lengths = segments[keep], delta[keep], lengths[keep]
    if len(segments) == 0:
        raise ShapeError(f"the image has no contour at level {level}: it is empty or full")

    # Outward normal: perpendicular to the segment, towards lower intensity.
    normals = np.stack([delta[:, 1], -delta[:, 0]], axis=1) / lengths[:, None]
    mids = segments.mean(axis=1)
    eps = 1e-3 / max(image.shape)
    ahead = _bilinear_at(image, mids + eps * normals)
    behind = _bilinear_at(image, mids - eps * normals)
    normals[ahead > behind] *= -1.0

    cumulative = np.cumsum(lengths)
    picks = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
    picks = np.minimum(picks, len(segments) - 1)
    t = rng.random(count)[:, None]
    points = segments[picks, 0] + t * delta[picks]
    return points.astype(np.float32), normals[picks].astype(np.float32)


def image_to_sdf(
    image: np.ndarray,
    *,
    resolution: int = 64,
    surface_points: int = 2048,
    threshold: float = THRESHOLD,
    rng: np.random.Generator,
) -> Sdf2D:
    """Signed distance field and zero-level-set samples of a grayscale image.

    image : (H, W) uint8 in [0, 255] or float in [0, 1]
    resolution : R, cells per side of the SDF grid over [-1, 1]^2
    surface_points : S, points sampled on the contour
    threshold : the intensity (in [0, 1]) at which the shape's boundary lies
    Raises :class:`ShapeError` for an image that is empty or full after binarization.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ShapeError(f"expected a 2D image, got shape {image.shape}")
    if image.dtype == np.uint8:
        image = image / 255.0
    else:
        image = image.astype(np.float64)
    if not np.all(np.isfinite(image)):
        raise ShapeError("the image has non-finite values")

    inside = resample_bilinear(image, resolution) >= threshold
    if not inside.any():
        raise ShapeError(f"the image is empty after binarization at {threshold:g}")
    if inside.all():
        raise ShapeError(f"the image is full after binarization at {threshold:g}: no outside")
    grid = grid_sdf(inside) * (2.0 / resolution)
    points, normals = sample_contour(image, surface_points, rng=rng, level=threshold)
    return Sdf2D(grid.astype(np.float32), points, normals)


def interpolate_grid(grid: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of an SDF grid (R, R) at frame points ``xy`` (n, 2), clamped at the
    border cells."""
    r = grid.shape[0]
    cols = (xy[:, 0] + 1.0) * r / 2.0 - 0.5
    rows = (xy[:, 1] + 1.0) * r / 2.0 - 0.5
    return ndimage.map_coordinates(grid, [rows, cols], order=1, mode="nearest")
