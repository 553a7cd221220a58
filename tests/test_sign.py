"""sdfkit.geometry.sign and sdfkit.geometry.shapes: signs on damaged meshes against exact (analytic) SDFs."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from sdfkit.geometry import raycast, shapes
from sdfkit.geometry.mesh import Mesh, normalization
from sdfkit.geometry.sign import outer_surface, signed_distance
from sdfkit.recipes.deepsdf import near_surface_points


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
@pytest.mark.slow
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
    from sdfkit.geometry import raycast

    solid, clean, offset, scale, queries, truth = reference
    broken = shapes.damage(clean, "double-walls", solid=solid, rng=np.random.default_rng(3))
    scene = raycast.scene((broken.vertices + offset) * scale, broken.faces)
    parity = scene.compute_signed_distance(raycast.tensor(queries)).numpy()
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


# ---------------------------------------------------------------------------------------------
# Meshes built from parts: closed parts through each other, bores, open sheets


def _parts_mesh(solid, detail=48):
    """The solid's closed parts concatenated, not unioned, as modellers leave them."""
    return trimesh.util.concatenate([p.mesh(detail) for p in solid.parts])


def _signs_and_surface(solid, mesh, count=60000):
    offset, scale = normalization(Mesh(mesh.vertices, mesh.faces))
    rng = np.random.default_rng(0)
    base = (solid.mesh(48).sample(20000) + offset) * scale
    queries = near_surface_points(base, count, rng=rng)
    truth = solid.sdf(queries / scale - offset) * scale
    outer = outer_surface((mesh.vertices + offset) * scale, mesh.faces, rng=np.random.default_rng(4))
    values = signed_distance(outer, queries, rng=np.random.default_rng(5))
    from sdfkit.geometry.mesh import sample_surface

    surface, face = sample_surface(outer.vertices, outer.faces, 20000, rng=rng)
    tri = outer.vertices[outer.faces[face]]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    surface += 1e-4 * normal / np.linalg.norm(normal, axis=1, keepdims=True)  # just outside
    return queries, truth, values, surface / scale - offset, scale


SEAT_AND_LEGS = shapes.Solid(
    (
        shapes.box((0.5, 0.45, 0.06), at=(0, 0, 0.5)),
        *[shapes.box((0.04, 0.04, 0.3), at=(sx * 0.4, sy * 0.35, 0.3)) for sx in (-1, 1) for sy in (-1, 1)],
        shapes.box((0.5, 0.04, 0.3), at=(0, 0.42, 0.8)),  # the back, pushed into the seat
    )
)
CUBE_AND_ROD = shapes.Solid(
    (shapes.box((0.3, 0.3, 0.3)), shapes.box((0.05, 0.05, 0.7), rotation=shapes.rotation([1, 0, 0], 0.4)))
)
TWO_SPHERES = shapes.Solid((shapes.capsule(0.4, 0.0), shapes.capsule(0.3, 0.0, at=(0.45, 0.1, 0))))


@pytest.mark.parametrize("name", ["seat-and-legs", "cube-and-rod", "two-spheres"])
@pytest.mark.slow
def test_closed_parts_through_each_other_give_their_union(name):
    """Exact answer: the boolean union of the parts. Signs beyond 0.005 >= 99.9%, and the outer
    surface is the union's: no point of it lies inside another part."""
    solid = {"seat-and-legs": SEAT_AND_LEGS, "cube-and-rod": CUBE_AND_ROD, "two-spheres": TWO_SPHERES}[name]
    queries, truth, values, surface, scale = _signs_and_surface(solid, _parts_mesh(solid))
    far = np.abs(truth) > 0.005
    assert np.mean((values[far] < 0) == (truth[far] < 0)) >= 0.999
    # no point of the outer surface is buried in a part: just off it, outwards, the brute-force
    # winding number of every part's mesh is 0
    for part in solid.parts:
        assert np.all(winding_number(part.mesh(48), surface[:2000]) < 0.5)
    if all(p.kind == "box" for p in solid.parts):  # flat faces: the union's surface is exact
        gap = solid.sdf(surface) * scale  # 1e-4 off the surface, less beside a concave edge
        assert np.all((gap > 0) & (gap < 1.1e-4))
        outside = truth > 0  # where min() of the parts' SDFs is the exact distance
        assert np.max(np.abs(values[outside] - truth[outside])) < 1e-5


@pytest.mark.parametrize("defect", ["clean", "flipped", "soup", "duplicated"])
@pytest.mark.slow
def test_watertight_meshes_with_narrow_bores_are_exact(defect):
    """A CAD block with bores 4-12 times longer than wide, watertight (or made so by merging a
    soup, orienting flipped faces, dropping reversed duplicates): every sign equals the brute-force
    winding number of the clean mesh, bores open."""
    solid = shapes.bracket(np.random.default_rng(1))
    clean = solid.mesh(32)
    assert clean.is_watertight and clean.is_winding_consistent
    mesh = shapes.damage(clean, defect, solid=solid, rng=np.random.default_rng(3))
    offset, scale = normalization(Mesh(clean.vertices, clean.faces))
    rng = np.random.default_rng(2)
    queries = near_surface_points((clean.sample(4000) + offset) * scale, 3000, rng=rng)
    outer = outer_surface((mesh.vertices + offset) * scale, mesh.faces, rng=np.random.default_rng(4))
    values = signed_distance(outer, queries)
    winding = winding_number(clean, queries / scale - offset)
    clear = np.abs(winding - 0.5) > 0.01  # not on the surface itself
    assert np.array_equal((values < 0)[clear], (winding > 0.5)[clear])
    in_bores = np.min([h.sdf(queries / scale - offset) for h in solid.holes], axis=0) < -0.005
    assert in_bores.sum() > 20 and np.all(values[in_bores] > 0)


def test_an_open_square_sheet_is_positive_on_both_sides_through_the_pipeline():
    from sdfkit.recipes.deepsdf import sample_mesh

    square = Mesh(np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float), np.array([[0, 1, 2], [0, 2, 3]]))
    result = sample_mesh(square, samples=50000, surface_samples=2000, rng=np.random.default_rng(0))
    assert np.count_nonzero(result.sdf_values < 0) == 0
    p = result.sdf_points.astype(np.float64)
    half = 1.0 * result.scale  # the square's half side in the normalized frame
    exact = np.linalg.norm(p - np.clip(p, [-half, -half, 0], [half, half, 0]), axis=1)
    np.testing.assert_allclose(result.sdf_values, exact, atol=1e-6)


def test_a_sheet_through_a_closed_part_keeps_only_its_outside():
    """A wing modelled as one sheet pushed through a closed fuselage: the fuselage's inside is
    inside, the sheet outside it is a sheet (positive on both sides), its buried part is gone."""
    body = trimesh.creation.box(extents=[0.4, 0.4, 0.4])
    wing = np.array([[-1, -0.1, 0], [1, -0.1, 0], [1, 0.1, 0], [-1, 0.1, 0]], float)
    vertices = np.concatenate([body.vertices, wing])
    faces = np.concatenate([body.faces, np.array([[0, 1, 2], [0, 2, 3]]) + len(body.vertices)])
    outer = outer_surface(vertices, faces, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    points = rng.uniform(-1.1, 1.1, size=(20000, 3))
    values = signed_distance(outer, points, rng=rng)
    in_body = np.all(np.abs(points) < 0.2, axis=1)
    clear = np.abs(np.abs(points).max(axis=1) - 0.2) > 1e-3
    assert np.all((values < 0)[clear] == in_body[clear])
    centres = outer.vertices[outer.faces].mean(axis=1)
    assert not np.any(np.all(np.abs(centres) < 0.2 - 1e-6, axis=1))  # nothing of the wing inside the body


@pytest.mark.parametrize("defect", ["clean", "holes", "overlap"])
def test_inside_is_the_sign_of_the_signed_distance(reference, defect):
    """The occupancy recipes ask only for inside/outside: the same answer as the SDF's sign,
    whether the mesh is made of closed parts only (no distances computed) or not."""
    from sdfkit.geometry.sign import inside

    solid, clean, offset, scale, queries, _ = reference
    broken = shapes.damage(clean, defect, solid=solid, rng=np.random.default_rng(3))
    outer = outer_surface((broken.vertices + offset) * scale, broken.faces, rng=np.random.default_rng(4))
    assert outer.closed.all() == (defect != "holes")
    np.testing.assert_array_equal(inside(outer, queries[:20000]), signed_distance(outer, queries[:20000]) < 0)


def test_nothing_outside_the_bounding_box_is_inside():
    """An open cup (a box without its top): points above its open top, outside the box of the
    surface, are outside by both queries; so are points deep in its hollow: it is a container of
    single-sided sheets, air inside (before parts-3 they followed the winding number and were
    called inside)."""
    from sdfkit.geometry.sign import inside

    cup = trimesh.creation.box((1.0, 1.0, 1.0))
    top = cup.face_normals[:, 2] > 0.5
    outer = outer_surface(np.asarray(cup.vertices), np.asarray(cup.faces)[~top], rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    above = np.column_stack([rng.uniform(-0.45, 0.45, (2000, 2)), rng.uniform(0.5 + 1e-6, 0.52, 2000)])
    assert not inside(outer, above).any()
    assert (signed_distance(outer, above) > 0).all()
    deep = np.column_stack([rng.uniform(-0.3, 0.3, (500, 2)), rng.uniform(-0.45, -0.3, 500)])
    assert not inside(outer, deep).any() and (signed_distance(outer, deep) > 0).all()


def test_a_queried_surface_still_pickles():
    """Queries cache open3d scenes on the surface; a surface sent to another process leaves them behind."""
    import pickle

    box = trimesh.creation.box((1.0, 1.0, 1.0))
    outer = outer_surface(np.asarray(box.vertices), np.asarray(box.faces)[1:], rng=np.random.default_rng(0))
    points = np.random.default_rng(2).uniform(-1, 1, (500, 3))
    values = signed_distance(outer, points)
    copy = pickle.loads(pickle.dumps(outer))
    np.testing.assert_array_equal(signed_distance(copy, points), values)


@pytest.mark.slow
def test_ray_parity_never_puts_a_point_outside_the_union_box_inside():
    """cycloidal.ply (43k faces, 119 pieces): ray parity on its closed union called points just
    below the union's lowest vertex inside; nothing outside the union's box is inside, nor points
    beside its gears where rays in open3d's fixed directions miscount."""
    from pathlib import Path

    from sdfkit.geometry.mesh import load_mesh
    from sdfkit.recipes.deepsdf import signed_mesh

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "meshes" / "cycloidal.ply"
    signed = signed_mesh(load_mesh(path), rng=np.random.default_rng(0))
    low, high = signed.outer.solid_vertices.min(axis=0), signed.outer.solid_vertices.max(axis=0)
    u = np.linspace(0, 1, 60)
    x, y = np.meshgrid(low[0] + u * (high[0] - low[0]), low[1] + u * (high[1] - low[1]), indexing="ij")
    below = np.stack([x.ravel(), y.ravel(), np.full(x.size, low[2] - 0.01)], axis=1)
    # and the points the parity got wrong (found by sdfkit watertight: a hole in the mesh's bottom)
    below = np.concatenate([below, [[0.32294213, -0.74086724, -0.48124709], [0.32294213, -0.74086724, -0.4749]]])
    assert below[:, 2].max() < low[2]
    assert (signed.sdf(below) > 0).all()
    # points 2-4 cells (of a 256 grid) beside its gears that open3d's three fixed rays called inside
    # the union (found by sdfkit watertight: surface 2.4-3.2 cells from every face); the reference:
    # 64 random rays, each crossing the union an even number of times
    pockets = np.array(
        [[-0.1939, -0.7972, -0.462], [-0.1876, -0.7972, -0.4557], [-0.1876, -0.7972, -0.4493],
         [-0.1749, -0.7782, -0.4557], [-0.188, -0.7749, -0.4649], [-0.1816, -0.7813, -0.4522],
         [-0.1816, -0.7686, -0.4586], [-0.1816, -0.7623, -0.4649]]
    )  # fmt: skip
    scene = raycast.scene(signed.outer.solid_vertices, signed.outer.solid_faces)
    directions = np.random.default_rng(5).normal(size=(64, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rays = np.concatenate([np.repeat(pockets, 64, axis=0), np.tile(directions, (len(pockets), 1))], axis=1)
    crossings = scene.count_intersections(raycast.tensor(rays)).numpy().reshape(len(pockets), 64)
    assert (crossings % 2 == 0).mean() > 0.9  # the reference: outside the union
    assert not raycast.occupancy(scene, pockets).any()
    assert not signed.inside(pockets).any()


def test_open_faces_take_their_patchs_orientation_not_their_own_vote():
    """A holed shell with its faces wound at random, every face's own vote outwards but a few
    (a crease beside a hole can make a face's back see more sky): each face ends up outwards, the
    truth being the sphere's radial direction. A Moebius strip, which no winding makes
    consistent, keeps each face's own vote."""
    from sdfkit.geometry.basics import face_normals
    from sdfkit.geometry.topology import outward_flips

    rng = np.random.default_rng(3)
    sphere = trimesh.creation.icosphere(3)
    faces = sphere.faces[rng.random(len(sphere.faces)) > 0.05]  # holes
    reversed_ = rng.random(len(faces)) < 0.5
    faces[reversed_] = faces[reversed_][:, ::-1]
    vertices = sphere.vertices
    outward = np.einsum("ij,ij->i", face_normals(vertices, faces), vertices[faces].mean(axis=1)) > 0
    vote = np.where(outward, 1.0, -1.0) * rng.uniform(0.2, 1.0, len(faces))
    fooled = rng.choice(len(faces), 12, replace=False)
    vote[fooled] *= -1.0
    flips = outward_flips(faces, vote)
    assert (flips == ~outward).all()  # every face outwards, the fooled ones too
    assert ((vote < 0) != ~outward).sum() == 12  # (which a face's own vote gets wrong)

    # a Moebius strip: a band of 2 x 20 triangles between vertices 0-19 (one side) and 20-39 (the
    # other), closing with the sides swapped (the half twist); only its connectivity matters here
    k = np.arange(20)
    last = k == 19
    bottom_next = np.where(last, 20, k + 1)
    top_next = np.where(last, 0, 20 + k + 1)
    band = np.concatenate([np.stack([k, bottom_next, 20 + k], 1), np.stack([20 + k, bottom_next, top_next], 1)])
    own = rng.uniform(-1, 1, len(band))
    np.testing.assert_array_equal(outward_flips(band, own), own < 0)
