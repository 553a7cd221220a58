"""sdfkit.geometry.mesh and sdfkit.recipes.deepsdf: loading, normalization, DeepSDF's sampling recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from sdfkit.errors import ShapeError
from sdfkit.geometry.mesh import Mesh, SurfaceSampler, load_mesh, normalization, sample_surface
from sdfkit.geometry.sign import outer_surface
from sdfkit.recipes.deepsdf import (
    VARIANCES,
    SignedMesh,
    near_surface_points,
    sample_mesh,
    signed_queries,
)
from sdfkit.recipes.deepsdf_test import TEST_VARIANCES

MESHES = Path(__file__).parent / "data" / "meshes"


def test_normalization_by_hand():
    # a box from (0, 0, 0) to (2, 4, 6) plus a vertex no face uses, which must be ignored
    box = trimesh.creation.box(extents=[2, 4, 6])
    vertices = np.vstack([box.vertices + [1, 2, 3], [[100, 100, 100]]])
    offset, scale = normalization(Mesh(vertices, box.faces))
    np.testing.assert_allclose(offset, [-1, -2, -3])
    assert scale == pytest.approx(1 / (1.03 * np.sqrt(1 + 4 + 9)))


def test_surface_samples_lie_on_a_box_and_follow_area():
    box = trimesh.creation.box(extents=[2, 1, 1])
    points, face = sample_surface(box.vertices, box.faces, 20000, rng=np.random.default_rng(0))
    half = np.array([1, 0.5, 0.5])
    on_face = np.isclose(np.abs(points), half, atol=1e-9).any(axis=1)
    assert on_face.all() and np.all(np.abs(points) <= half + 1e-9)
    # the two 1 x 1 ends hold 2 of the box's 10 square units of area
    ends = np.isclose(np.abs(points[:, 0]), 1.0)
    assert abs(ends.mean() - 0.2) < 0.015


def test_grouped_surface_samples_are_the_same_law_in_face_order():
    # faces of very different areas: a 2 x 1 x 1 box, its 12 triangles of 0.5 and 1 square units
    box = trimesh.creation.box(extents=[2, 1, 1])
    sampler = SurfaceSampler(box.vertices, box.faces)
    share = trimesh.Trimesh(box.vertices, box.faces).area_faces / 10.0
    for grouped in (False, True):
        points, face = sampler.sample(60_000, rng=np.random.default_rng(3), grouped=grouped)
        assert np.all(np.diff(face) >= 0) == grouped  # face order only when asked for
        counts = np.bincount(face, minlength=12) / 60_000
        np.testing.assert_allclose(counts, share, atol=0.006)  # 4 binomial standard deviations
        # each point lies on its own face: inside that triangle's plane and within its corners
        triangle = box.vertices[box.faces[face]]
        normal = np.cross(triangle[:, 1] - triangle[:, 0], triangle[:, 2] - triangle[:, 0])
        np.testing.assert_allclose(np.einsum("ij,ij->i", points - triangle[:, 0], normal), 0, atol=1e-12)


def test_signed_queries_are_deepsdfs_recipe_shuffled_with_exact_signed_distances():
    """sample_mesh's and sample_test's queries: computed in face order, stored shuffled, with
    near_surface_points' law. On a sphere of radius 1e-3 at the origin every near point is noise
    around the origin, and its signed distance is |p| - r (up to the tessellation)."""
    radius = 1e-3
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    outer = outer_surface(sphere.vertices, sphere.faces, rays=32, rng=np.random.default_rng(0))
    signed = SignedMesh(np.zeros(3), 1.0, outer, np.ptp(sphere.vertices, axis=0))
    for variances, count in ((VARIANCES, 50_000), (TEST_VARIANCES, 100_000)):
        points, values = signed_queries(signed, count, rng=np.random.default_rng(1), variances=variances)
        assert points.shape == (count, 3) and values.shape == (count,)
        np.testing.assert_allclose(np.mean(points**2), 0.47 * sum(variances) + 0.06 / 3, rtol=0.03)
        np.testing.assert_allclose(values, np.linalg.norm(points, axis=1) - radius, atol=radius * 0.01)
        # the uniform 3/50 spread over the whole array (shuffled), not at its end
        uniform_like = np.nonzero(np.abs(points).max(axis=1) > 0.95)[0]
        assert abs(len(uniform_like) / count - 0.06 * (1 - 0.95**3)) < 0.003
        assert uniform_like.min() < count // 50 and uniform_like.max() > count - count // 50
    # which near point gets which variance is random, not a matter of where its face lies: on a
    # sphere of radius 0.5 the offsets from the sphere spread alike in every octant
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    outer = outer_surface(sphere.vertices, sphere.faces, rays=32, rng=np.random.default_rng(0))
    signed = SignedMesh(np.zeros(3), 1.0, outer, np.ptp(sphere.vertices, axis=0))
    points, values = signed_queries(signed, 200_000, rng=np.random.default_rng(2))
    near = np.abs(values) < 0.3
    octant = (points[near] > 0) @ [1, 2, 4]
    spread = [np.mean(values[near][octant == k] ** 2) for k in range(8)]
    np.testing.assert_allclose(spread, np.mean(spread), rtol=0.06)  # by face: 0.005 here, 0.0005 there


def test_deepsdf_recipe_counts_and_spread():
    surface = np.zeros((10, 3))  # every near sample is pure noise around the origin
    points = near_surface_points(surface, 50_000, rng=np.random.default_rng(0))
    assert points.shape == (50_000, 3)
    r = np.linalg.norm(points, axis=1)
    # the uniform part: 3/50 of the points, uniform in the cube; almost none of the noise reaches 0.6
    uniform_like = np.abs(points).max(axis=1) > 0.6
    assert abs(uniform_like.mean() - 3 / 50 * (1 - 0.6**3)) < 0.005
    # noise variances 0.005 and 0.0005 per axis (half each): pooled per-axis variance 0.00275
    near = points[r < 0.3]  # 4 standard deviations of the wider noise; few uniform points get in
    assert np.var(near) == pytest.approx(0.00275, rel=0.06)
    # shuffled: the uniform points are spread over the whole array, not at its end
    positions = np.nonzero(uniform_like)[0]
    assert positions.min() < 2000 and positions.max() > 48000


def test_sample_mesh_on_a_sphere():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=2.0)
    result = sample_mesh(
        Mesh(sphere.vertices + 5.0, sphere.faces), samples=20_000, surface_samples=3_000, rng=np.random.default_rng(0)
    )
    np.testing.assert_allclose(result.offset, [-5, -5, -5], atol=1e-6)
    expected_radius = 1 / 1.03  # normalized: the sphere touches radius 1/1.03
    r = np.linalg.norm(result.sdf_points, axis=1)
    np.testing.assert_allclose(result.sdf_values, r - expected_radius, atol=3e-3)
    np.testing.assert_allclose(np.linalg.norm(result.surface_points, axis=1), expected_radius, atol=3e-3)
    outward = np.sum(result.surface_points * result.surface_normals, axis=1) / np.linalg.norm(
        result.surface_points, axis=1
    )
    assert np.all(outward > 0.99)
    assert result.sdf_points.dtype == np.float32 and result.sdf_points.shape == (20_000, 3)


def test_same_seed_same_samples():
    box = trimesh.creation.box()
    a = sample_mesh(Mesh(box.vertices, box.faces), samples=1000, surface_samples=100, rng=np.random.default_rng(7))
    b = sample_mesh(Mesh(box.vertices, box.faces), samples=1000, surface_samples=100, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.sdf_points, b.sdf_points)
    np.testing.assert_array_equal(a.sdf_values, b.sdf_values)


@pytest.mark.parametrize(
    "name, message",
    [("empty.obj", "no faces"), ("does-not-exist.obj", "cannot read")],
)
def test_broken_files_are_shape_errors(name, message):
    with pytest.raises(ShapeError, match=message):
        load_mesh(MESHES / name)


@pytest.mark.parametrize(
    "name",
    [
        "notenoughindices.obj",
        "negative_indices.obj",
        "nancolor.obj",
        "soup.stl",
        "multibody.stl",
        "teapot.stl",
        "suzanne.ply",
    ],
)
def test_real_meshes_load_and_sample(name):
    mesh = load_mesh(MESHES / name)
    result = sample_mesh(mesh, samples=5000, surface_samples=500, rng=np.random.default_rng(0))
    assert np.isfinite(result.sdf_values).all() and np.isfinite(result.surface_normals).all()
    np.testing.assert_allclose(np.linalg.norm(result.surface_normals, axis=1), 1.0, atol=1e-5)


def test_non_finite_and_degenerate_meshes(tmp_path):
    (tmp_path / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    with pytest.raises(ShapeError, match="non-finite"):
        load_mesh(tmp_path / "nan.obj")
    (tmp_path / "line.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    with pytest.raises(ShapeError, match="degenerate"):
        load_mesh(tmp_path / "line.obj")


def _write_ply(path, vertices, faces):
    """An ASCII PLY written by hand, in double precision."""
    head = f"ply\nformat ascii 1.0\nelement vertex {len(vertices)}\n"
    head += "property double x\nproperty double y\nproperty double z\n"
    head += f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    rows = [" ".join(repr(float(c)) for c in v) for v in vertices] + [f"3 {a} {b} {c}" for a, b, c in faces]
    path.write_text(head + "\n".join(rows) + "\n")


def test_unused_vertices_change_nothing(tmp_path):
    """A stray vertex far away, or a NaN no face uses, gives bit-identical arrays."""
    import trimesh

    from sdfkit.sources.shapenet import MeshJob, process_mesh

    box = trimesh.creation.box(extents=[1.0, 0.6, 0.3])
    vertices, faces = np.asarray(box.vertices), np.asarray(box.faces)
    _write_ply(tmp_path / "plain.ply", vertices, faces)
    far = np.insert(vertices, 3, [[1e6, 1e6, 1e6]], axis=0)
    _write_ply(tmp_path / "far.ply", far, np.where(faces >= 3, faces + 1, faces))
    nan = np.concatenate([[[np.nan, 0.0, 0.0]], vertices])
    _write_ply(tmp_path / "nan.ply", nan, faces + 1)

    def run(name):
        return process_mesh(
            MeshJob("box", str(tmp_path / name)), samples=20_000, surface_samples=2_000, seed=0, rays=32
        )

    plain = run("plain.ply")
    # what the ledger says of the file itself: its bytes, its vertices, the clock
    about_the_file = ("ledger/sha256", "ledger/vertices", "ledger/seconds", "ledger/peak_memory")
    for name in ("far.ply", "nan.ply"):
        other = run(name)
        for key, value in plain.items():
            if key not in about_the_file:
                assert np.array_equal(np.asarray(other[key]), np.asarray(value)), (name, key)


def test_a_mesh_far_from_the_origin_maps_back_exactly(tmp_path):
    """norm/offset and norm/scale are float64: raw = p / scale - offset lands on the mesh placed at
    1e9 (in float32 it would be off by 52% of its size)."""
    import trimesh

    from sdfkit.sources.shapenet import MeshJob, process_mesh

    box = trimesh.creation.box(extents=[1.0, 0.6, 0.3])
    placed = np.asarray(box.vertices) + 1e9
    _write_ply(tmp_path / "far.ply", placed, box.faces)
    result = process_mesh(
        MeshJob("far", str(tmp_path / "far.ply")), samples=5_000, surface_samples=2_000, seed=0, rays=32
    )
    assert result["norm/offset"].dtype == np.float64 and np.asarray(result["norm/scale"]).dtype == np.float64
    raw = result["surface/points"].astype(np.float64) / result["norm/scale"] - result["norm/offset"]
    local = raw - 1e9  # the box's own frame: every point on its surface
    outside = np.abs(local) - np.array([0.5, 0.3, 0.15])
    assert np.all(np.abs(outside.max(axis=1)) < 1e-6)


def test_deepsdf_test_recipe_has_deepsdf_test_variances_and_count():
    """PreprocessMesh -t: 250,000 samples, 47/50 near the surface with variances 0.05 and
    0.0005 (half each), 3/50 uniform in [-1, 1]^3. From one surface point at the origin the
    per-axis second moment is 0.47 * 0.05 + 0.47 * 0.0005 + 0.06 / 3, and the share within 0.1 of
    the origin follows the chi distribution of each half."""
    from scipy.stats import chi2

    from sdfkit.recipes.deepsdf_test import TEST_SAMPLES, TEST_VARIANCES

    assert TEST_SAMPLES == 250_000 and TEST_VARIANCES == (0.05, 0.0005)
    points = near_surface_points(np.zeros((1, 3)), TEST_SAMPLES, rng=np.random.default_rng(0), variances=TEST_VARIANCES)
    assert points.shape == (250_000, 3)
    np.testing.assert_allclose(np.mean(points**2), 0.47 * 0.05 + 0.47 * 0.0005 + 0.06 / 3, rtol=0.02)
    near = np.mean(np.linalg.norm(points, axis=1) < 0.1)
    expected = (
        0.47 * chi2.cdf(0.1**2 / 0.05, 3) + 0.47 * chi2.cdf(0.1**2 / 0.0005, 3) + 0.06 * (4 / 3 * np.pi * 0.1**3 / 8)
    )
    assert abs(near - expected) < 0.005
    # the training recipe's moment differs: the test is sensitive to the variance
    train = near_surface_points(np.zeros((1, 3)), TEST_SAMPLES, rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.mean(train**2), 0.47 * 0.005 + 0.47 * 0.0005 + 0.06 / 3, rtol=0.02)
