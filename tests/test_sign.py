"""sdfkit.sign and sdfkit.shapes: signs on damaged meshes against exact (analytic) SDFs."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from sdfkit import shapes
from sdfkit.mesh import Mesh, normalization
from sdfkit.sampling import near_surface_points
from sdfkit.sign import outer_surface, signed_distance


def _solid():
    return shapes.Solid(
        (
            shapes.torus(0.5, 0.15, at=(-0.3, 0, 0)),
            shapes.capsule(0.15, 0.5, at=(0.4, 0, 0)),
            shapes.box((0.3, 0.2, 0.25), at=(0.1, 0.3, 0.2)),
        )
    )


@pytest.fixture(scope="module")
def reference():
    """A watertight union with an exact SDF, normalized as DeepSDF does, and query points."""
    solid = _solid()
    clean = solid.mesh(40)
    offset, scale = normalization(Mesh(clean.vertices, clean.faces))
    rng = np.random.default_rng(0)
    base = (clean.sample(20000) + offset) * scale
    queries = near_surface_points(base, 60000, rng=rng)
    truth = solid.sdf(queries / scale - offset) * scale
    return solid, clean, offset, scale, queries, truth


@pytest.mark.parametrize(
    "primitive",
    [shapes.box((0.3, 0.2, 0.1)), shapes.capsule(0.2, 0.3), shapes.cylinder(0.25, 0.2), shapes.torus(0.4, 0.1)],
)
def test_primitive_sdf_matches_brute_force_distance_to_its_mesh(primitive):
    """The ground truth itself, checked: |analytic SDF| equals the brute-force distance to the
    primitive's fine mesh (up to tessellation), and its sign agrees with the mesh's containment."""
    mesh = primitive.mesh(96)
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.6, 0.6, size=(300, 3))
    tri = mesh.triangles
    closest = trimesh.triangles.closest_point(
        np.repeat(tri[None], len(points), 0).reshape(-1, 3, 3), np.repeat(points, len(tri), 0)
    )
    brute = np.linalg.norm(closest.reshape(len(points), len(tri), 3) - points[:, None], axis=2).min(axis=1)
    sdf = primitive.sdf(points)
    np.testing.assert_allclose(np.abs(sdf), brute, atol=2e-3)
    clear = np.abs(sdf) > 2e-3
    assert np.array_equal((sdf < 0)[clear], winding_number(mesh, points)[clear] > 0.5)


def winding_number(mesh, points):
    """Brute-force generalized winding number: the sum of the triangles' signed solid angles
    (Van Oosterom and Strackee) over 4 pi; 1 inside a closed outward mesh, 0 outside."""
    a, b, c = (mesh.triangles[None, :, k] - points[:, None] for k in range(3))
    la, lb, lc = (np.linalg.norm(v, axis=2) for v in (a, b, c))
    det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
    dots = (
        la * lb * lc
        + np.einsum("pfi,pfi->pf", a, b) * lc
        + np.einsum("pfi,pfi->pf", b, c) * la
        + np.einsum("pfi,pfi->pf", c, a) * lb
    )
    return 2 * np.arctan2(det, dots).sum(axis=1) / (4 * np.pi)


@pytest.mark.parametrize("defect", shapes.DEFECTS)
def test_signs_on_damaged_meshes(reference, defect):
    solid, clean, offset, scale, queries, truth = reference
    broken = shapes.damage(clean, defect, solid=solid, rng=np.random.default_rng(3))
    vertices = (broken.vertices + offset) * scale
    outer = outer_surface(vertices, broken.faces, rng=np.random.default_rng(4))
    values = signed_distance(outer, queries)
    far = np.abs(truth) > 0.005
    accuracy = np.mean((values[far] < 0) == (truth[far] < 0))
    assert accuracy >= 0.995, f"{defect}: {accuracy:.4%} correct signs"
    near = np.abs(truth) < 0.1
    assert np.median(np.abs(values[near] - truth[near])) <= 0.002


def test_plain_ray_parity_fails_where_the_method_must_not(reference):
    """The damage is real: open3d's own sign (ray parity) is wrong on many double-wall samples."""
    from sdfkit.sign import _scene

    solid, clean, offset, scale, queries, truth = reference
    broken = shapes.damage(clean, "double-walls", solid=solid, rng=np.random.default_rng(3))
    scene = _scene((broken.vertices + offset) * scale, broken.faces)
    import open3d as o3d

    parity = scene.compute_signed_distance(o3d.core.Tensor(queries.astype(np.float32))).numpy()
    far = np.abs(truth) > 0.005
    assert np.mean((parity[far] < 0) == (truth[far] < 0)) < 0.9


def test_interior_faces_are_dropped_and_flipped_ones_turned_outwards(reference):
    solid, clean, offset, scale, _, _ = reference
    vertices = (clean.vertices + offset) * scale
    hidden = shapes.damage(clean, "interior", solid=solid, rng=np.random.default_rng(5))
    outer = outer_surface((hidden.vertices + offset) * scale, hidden.faces, rng=np.random.default_rng(0))
    assert not outer.kept[len(clean.faces) :].any()  # the inner box and sheets come after the originals
    flipped = shapes.damage(clean, "flipped", rng=np.random.default_rng(5))
    outer = outer_surface(vertices, flipped.faces, rng=np.random.default_rng(0))
    tri = outer.vertices[outer.faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    centre = tri.mean(axis=1)
    exact = lambda p: solid.sdf(p / scale - offset)  # noqa: E731
    outward = exact(centre + 1e-3 * normal) > exact(centre - 1e-3 * normal)
    assert outward.mean() > 0.995


def test_sphere_distances_are_exact_up_to_tessellation():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    outer = outer_surface(sphere.vertices, sphere.faces, rng=np.random.default_rng(0))
    points = np.random.default_rng(1).uniform(-1, 1, size=(5000, 3))
    values = signed_distance(outer, points)
    np.testing.assert_allclose(values, np.linalg.norm(points, axis=1) - 0.5, atol=2e-3)


def test_an_open_sheet_encloses_nothing():
    triangle = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    outer = outer_surface(triangle, np.array([[0, 1, 2]]), rng=np.random.default_rng(0))
    points = np.random.default_rng(2).uniform(-1, 1, size=(1000, 3))
    assert np.all(signed_distance(outer, points) >= 0)
