"""sdfkit.geometry.sdf2d against analytic SDFs and a brute-force distance to the contour."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import measure

from sdfkit.errors import ShapeError
from sdfkit.geometry.sdf2d import cell_centres, image_to_sdf, interpolate_grid, resample_bilinear
from sdfkit.sources.mnist import bundled_sample_dir, load_digits

R = 64
CELL = 2.0 / R


def _grid_xy(r=R):
    c = cell_centres(r)
    return np.meshgrid(c, c)  # x varies along columns, y along rows


def box_sdf(x, y, half):
    """Analytic SDF of the axis-aligned square |x|, |y| <= half (negative inside)."""
    qx, qy = np.abs(x) - half, np.abs(y) - half
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    inside = np.minimum(np.maximum(qx, qy), 0)
    return outside + inside


def test_cell_centres_match_the_format():
    # format v1: x_j = -1 + (2j + 1) / R
    assert cell_centres(4).tolist() == [-0.75, -0.25, 0.25, 0.75]


def test_square_is_exact_where_the_nearest_boundary_is_an_edge():
    image = np.zeros((R, R), dtype=np.uint8)
    image[16:48, 16:48] = 255  # edges on cell boundaries: |x|, |y| <= 0.5
    sdf = image_to_sdf(image, resolution=R, surface_points=64, rng=np.random.default_rng(0))
    x, y = _grid_xy()
    truth = box_sdf(x, y, 0.5)
    edge_region = (np.abs(x) <= 0.5) | (np.abs(y) <= 0.5)
    np.testing.assert_allclose(sdf.grid[edge_region], truth[edge_region], atol=1e-6)
    # corner regions: nearest point is a corner, the transform's staircase is off by < 0.3 cell
    assert np.max(np.abs(sdf.grid - truth)) < 0.3 * CELL
    # the sign convention: negative inside
    assert sdf.grid[R // 2, R // 2] < 0 < sdf.grid[0, 0]


def test_disc_matches_its_analytic_sdf():
    x, y = _grid_xy()
    radius = 0.55
    image = (np.hypot(x, y) <= radius).astype(np.uint8) * 255
    sdf = image_to_sdf(image, resolution=R, surface_points=64, rng=np.random.default_rng(0))
    error = np.abs(sdf.grid - (np.hypot(x, y) - radius))
    assert error.max() < 0.75 * CELL
    assert error.mean() < 0.25 * CELL


def test_disc_surface_points_and_normals():
    # a smooth ramp image whose 0.5 level is the circle |p| = 0.5; pixels of a 28 x 28 image
    c = cell_centres(28)
    x, y = np.meshgrid(c, c)
    radius = 0.5
    image = np.clip(0.5 + (radius - np.hypot(x, y)) * 4.0, 0.0, 1.0)
    sdf = image_to_sdf(image, resolution=R, surface_points=2000, rng=np.random.default_rng(1))
    r = np.hypot(sdf.points[:, 0], sdf.points[:, 1])
    assert np.abs(r - radius).max() < 0.01
    outward = sdf.points / r[:, None]
    assert np.all(np.sum(outward * sdf.normals, axis=1) > 0.99)
    np.testing.assert_allclose(np.linalg.norm(sdf.normals, axis=1), 1.0, atol=1e-5)
    # uniform by arc length: each quadrant gets about a quarter
    quadrant = (sdf.points[:, 0] > 0) * 2 + (sdf.points[:, 1] > 0)
    assert np.all(np.abs(np.bincount(quadrant, minlength=4) / 2000 - 0.25) < 0.05)


def test_resampling_follows_the_cell_centre_convention():
    image = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(resample_bilinear(image, 4), image)  # same grid: identity
    up = resample_bilinear(image, 8)
    # output centre 1 of 8 sits at input coordinate (1 + 0.5) * 4 / 8 - 0.5 = 0.25
    np.testing.assert_allclose(up[2, 1], image[0, 0] + 0.75 * 4 + 0.25 * 1)


@pytest.fixture(scope="module")
def digits():
    sample = load_digits(bundled_sample_dir())
    return sample.train_images[:150]


def test_surface_points_lie_on_the_zero_level_of_the_grid(digits):
    # the acceptance: >= 98% of surface points within one grid cell of the stored
    # field's zero level, read by bilinear interpolation
    rng = np.random.default_rng(0)
    within = []
    for image in digits:
        sdf = image_to_sdf(image, resolution=R, surface_points=2048, rng=rng)
        within.append(np.abs(interpolate_grid(sdf.grid, sdf.points.astype(np.float64))) <= CELL)
    within = np.concatenate(within)
    assert within.mean() >= 0.98


@pytest.mark.slow
def test_grid_against_brute_force_distance_to_the_contour(digits):
    """Reference: exact distance from every cell centre to a fine marching-squares contour of
    the same (bilinear, thresholded) shape, sign from that fine field."""
    fine = 8 * R
    for image in digits[:12]:
        sdf = image_to_sdf(image, resolution=R, surface_points=16, rng=np.random.default_rng(0))
        field = resample_bilinear(image / 255.0, fine)
        segments = []
        for contour in measure.find_contours(np.pad(field, 1), 0.5):
            xy = -1.0 + (2.0 * (contour[:, ::-1] - 1.0) + 1.0) / fine
            segments.append(np.stack([xy[:-1], xy[1:]], axis=1))
        seg = np.concatenate(segments)
        x, y = _grid_xy()
        p = np.stack([x.ravel(), y.ravel()], axis=1)
        a, b = seg[:, 0], seg[:, 1]
        ab = b - a
        t = np.clip(np.einsum("pk,sk->ps", p, ab) - np.sum(a * ab, axis=1), 0, None) / np.maximum(
            np.sum(ab * ab, axis=1), 1e-18
        )
        t = np.clip(t, 0, 1)
        closest = a[None] + t[..., None] * ab[None]
        dist = np.min(np.linalg.norm(p[:, None, :] - closest, axis=2), axis=1).reshape(R, R)
        inside = resample_bilinear(image / 255.0, R) >= 0.5
        truth = np.where(inside, -dist, dist)
        error = np.abs(sdf.grid - truth)
        assert np.median(error) < 0.25 * CELL
        assert np.quantile(error, 0.99) < 1.0 * CELL


def test_gradient_norm_is_one_away_from_the_medial_axis(digits):
    for image in digits[:20]:
        sdf = image_to_sdf(image, resolution=R, surface_points=16, rng=np.random.default_rng(0))
        gy, gx = np.gradient(sdf.grid, CELL)
        norm = np.hypot(gx, gy)
        # medial axis, found independently: neighbouring cells whose nearest boundary cells (the
        # transform's feature indices) are more than two cells apart
        inside = sdf.grid < 0
        _, out_idx = ndimage.distance_transform_edt(~inside, return_indices=True)
        _, in_idx = ndimage.distance_transform_edt(inside, return_indices=True)
        nearest = np.where(inside[None], in_idx, out_idx).astype(float)
        jump = np.zeros(inside.shape, dtype=bool)
        for axis in (1, 2):
            d = np.linalg.norm(np.diff(nearest, axis=axis), axis=0)
            pad = [(0, 0), (0, 0)]
            pad[axis - 1] = (0, 1)
            big = np.pad(d > 2.0, pad)
            jump |= big | np.roll(big, 1, axis=axis - 1)
        medial = ndimage.binary_dilation(jump, iterations=2)
        interior = np.zeros_like(medial)
        interior[2:-2, 2:-2] = True
        keep = interior & ~medial & (np.abs(sdf.grid) > 1.5 * CELL)
        assert keep.sum() > 100
        assert np.mean(np.abs(norm[keep] - 1.0) < 0.15) > 0.95


@pytest.mark.parametrize("value", [0, 255])
def test_empty_or_full_images_are_shape_errors(value):
    with pytest.raises(ShapeError, match="empty|full"):
        image_to_sdf(np.full((28, 28), value, np.uint8), resolution=R, surface_points=8, rng=np.random.default_rng(0))


def test_same_seed_same_samples(digits):
    a = image_to_sdf(digits[0], resolution=R, surface_points=64, rng=np.random.default_rng(5))
    b = image_to_sdf(digits[0], resolution=R, surface_points=64, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.points, b.points)


def test_the_threshold_moves_the_boundary():
    """A soft-edged disc: a higher threshold puts the boundary further in, a smaller shape."""
    from sdfkit.geometry.sdf2d import image_to_sdf

    rows, cols = np.mgrid[0:28, 0:28]
    image = np.clip(1.0 - np.hypot(rows - 13.5, cols - 13.5) / 10.0, 0.0, 1.0)  # intensity 1 - r / 10
    low = image_to_sdf(image, threshold=0.3, rng=np.random.default_rng(0))
    high = image_to_sdf(image, threshold=0.7, rng=np.random.default_rng(0))
    # radius where 1 - r / 10 = t, in the frame where 28 pixels span 2
    for result, t in ((low, 0.3), (high, 0.7)):
        radius = np.linalg.norm(result.points, axis=1)
        np.testing.assert_allclose(radius, 10 * (1 - t) * 2 / 28, atol=0.02)
    assert (high.grid < 0).sum() < (low.grid < 0).sum()
