"""Meshes built the way real files are, each with its inside known by construction.

Containers are made of single-sided sheets (zero-thickness walls), as ShapeNet models bowls,
mugs, drawers, vases, lamp shades and pipes: their inside is air, so every point off the walls is outside (a closed
handle is the one solid part of a mug). Near-closed bodies are closed shapes with gaps or holes:
their inside is solid. Each builder returns ``(vertices (v, 3) float64, faces (f, 3) int64,
inside)`` where ``inside(points (n, 3)) -> (n,) bool`` is the truth.

Used by tests/test_containers.py and benchmarks/sign_accuracy.py.
"""

from __future__ import annotations

from collections.abc import Callable

import manifold3d
import numpy as np

from sdfkit.geometry.primitives import rotation, torus

__all__ = ["CONTAINERS", "NEAR_CLOSED", "OTHERS", "revolve", "construction"]

Truth = Callable[[np.ndarray], np.ndarray]


def revolve(profile, *, segments: int = 48, cap_bottom: bool = True):
    """A surface of revolution about z: ``profile`` is (r, z) from the bottom up; with
    ``cap_bottom`` the first ring is closed by a fan to the axis. The top stays open.
    Returns vertices, faces (one connected sheet)."""
    profile = np.asarray(profile, dtype=np.float64)
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    rings = [np.stack([r * np.cos(angle), r * np.sin(angle), np.full(segments, z)], axis=1) for r, z in profile]
    vertices = np.concatenate(rings)
    faces = []
    for k in range(len(profile) - 1):
        a, b = k * segments, (k + 1) * segments
        for j in range(segments):
            j1 = (j + 1) % segments
            faces += [[a + j, a + j1, b + j1], [a + j, b + j1, b + j]]
    if cap_bottom:
        centre = len(vertices)
        vertices = np.concatenate([vertices, [[0.0, 0.0, profile[0, 1]]]])
        faces += [[centre, (j + 1) % segments, j] for j in range(segments)]
    return vertices, np.asarray(faces, dtype=np.int64)


def _box_faces(low, high, *, drop=()):
    """An axis-aligned box as one connected surface of 12 triangles, less the sides in ``drop``
    (``"+x"``, ``"-z"``, ...)."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    corners = np.array([[(high if (k >> a) & 1 else low)[a] for a in range(3)] for k in range(8)])
    sides = {
        "-x": [0, 4, 6, 2],
        "+x": [1, 3, 7, 5],
        "-y": [0, 1, 5, 4],
        "+y": [2, 6, 7, 3],
        "-z": [0, 2, 3, 1],
        "+z": [4, 5, 7, 6],
    }
    faces = []
    for name, (a, b, c, d) in sides.items():
        if name not in drop:
            faces += [[a, b, c], [a, c, d]]
    return corners, np.asarray(faces, dtype=np.int64)


def _join(*meshes):
    vertices, faces, base = [], [], 0
    for v, f in meshes:
        vertices.append(v)
        faces.append(f + base)
        base += len(v)
    return np.concatenate(vertices), np.concatenate(faces)


def _nothing(points):
    return np.zeros(len(points), dtype=bool)


def cup():
    return (*revolve([(0.5, 0.0), (0.5, 0.5), (0.5, 1.0)]), _nothing)


def bowl():
    """A bowl with a flat bottom: a disc, then a wall flaring out."""
    profile = [(0.3, 0.0), (0.45, 0.1), (0.58, 0.25), (0.68, 0.45)]
    return (*revolve(profile), _nothing)


def vase():
    """A vase whose neck is a third of its width."""
    profile = [(0.4, 0.0), (0.6, 0.3), (0.6, 0.8), (0.45, 1.05), (0.2, 1.2), (0.2, 1.5)]
    return (*revolve(profile), _nothing)


def lidless_box():
    return (*_box_faces((0, 0, 0), (1, 1, 0.8), drop=("+z",)), _nothing)


def drawer(length: float):
    """A drawer open at one end, ``length`` times as long as it is wide."""
    return (*_box_faces((0, 0, 0), (length, 1, 1), drop=("+x",)), _nothing)


def cabinet_with_drawer():
    """A cabinet open at the front and a drawer (open at the top) half out of it."""
    cabinet = _box_faces((0, 0, 0), (1.2, 1.2, 1.2), drop=("+x",))
    drawer_ = _box_faces((0.6, 0.1, 0.5), (1.7, 1.1, 1.0), drop=("+z",))
    return (*_join(cabinet, drawer_), _nothing)


def mug_parts(detail: int = 32):
    """A cup's sheets and a closed torus handle pushed into its wall: (vertices, faces) and the
    handle (a :class:`sdfkit.geometry.shapes.Primitive`, whose exact SDF is known)."""

    body = revolve([(0.5, 0.0), (0.5, 0.5), (0.5, 1.0)])
    return body, torus(0.25, 0.06, at=(0.7, 0.0, 0.5), rotation=rotation([1, 0, 0], np.pi / 2))


def mug():
    """A cup with a closed torus handle pushed into its wall: the handle alone is solid."""
    body, handle = mug_parts()
    tube = handle.mesh(32)
    # inside the faceted tube: the torus's inside less a margin for the facets
    return (*_join(body, (tube.vertices, tube.faces)), lambda points: handle.sdf(points) < -0.003)


def gapped_sheet_box(gap: float = 0.01):
    """A closed box of six separate sheets, each shrunk about its centre so that gaps of ``gap``
    of the side run along every edge: solid."""
    vertices, faces = [], []
    v, f = _box_faces((0, 0, 0), (1, 1, 1))
    for side in range(6):
        tri = f[2 * side : 2 * side + 2]
        corners = v[np.unique(tri)]
        centre = corners.mean(axis=0)
        local = {k: i for i, k in enumerate(np.unique(tri))}
        vertices.append(centre + (1 - gap) * (corners - centre))
        faces.append(np.vectorize(local.get)(tri) + 4 * side)

    def inside(points):  # the sheets stay in the box's faces: inside is the unit cube
        return np.all((points > 0) & (points < 1), axis=1)

    return np.concatenate(vertices), np.concatenate(faces), inside


def holed_ball(missing: float, holes: int = 1):
    """An icosphere with ``missing`` of its area cut away in ``holes`` caps: solid."""
    # trimesh takes 0.35 s to import: loaded where used
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    centres = trimesh.creation.icosphere(subdivisions=1).vertices[:: max(1, 42 // holes)][:holes]
    normals = sphere.triangles_center / np.linalg.norm(sphere.triangles_center, axis=1, keepdims=True)
    # a cap of area fraction m / holes has 1 - cos(angle) = 2 m / holes
    cos = 1 - 2 * missing / holes
    cut = np.zeros(len(sphere.faces), dtype=bool)
    for c in centres:
        cut |= normals @ (c / np.linalg.norm(c)) > cos
    return sphere.vertices, sphere.faces[~cut], lambda points: np.linalg.norm(points, axis=1) < np.cos(np.pi / 40)


def _square(cx, cy, z, half):
    vertices = np.array([[cx - half, cy - half, z], [cx + half, cy - half, z], [cx + half, cy + half, z],
                         [cx - half, cy + half, z]])  # fmt: skip
    return vertices, np.array([[0, 1, 2], [0, 2, 3]])


def floor_and_panels():
    """A floor and three panels floating over it, all single sheets: nothing is inside."""
    return (*_join(_square(0, 0, 0, 2), _square(-1, 0, 0.3, 0.4), _square(1, 0, 0.6, 0.4), _square(0, 1, 0.2, 0.3)),
            _nothing)  # fmt: skip


def holed_ball_with_inner_sheet():
    """A ball with 3% of its area missing in one hole, and a flat sheet inside it that the hole
    shows: the sheet is inside the body, no panel."""
    vertices, faces, inside = holed_ball(0.03)
    return (*_join((vertices, faces), _square(0.0, 0.0, 0.2, 0.5)), inside)


def boxes_edge_to_edge():
    """Two closed boxes that share one edge: both stay closed."""
    a = _box_faces((0, 0, 0), (1, 1, 1))
    b = _box_faces((1, 0, 1), (2, 1, 2))

    def inside(points):
        return np.all((points > 0) & (points < 1), axis=1) | np.all((points > [1, 0, 1]) & (points < [2, 1, 2]), axis=1)

    return (*_join(a, b), inside)


def loose_soup(count: int = 100, seed: int = 3):
    """``count`` random triangles sharing nothing: they enclose nothing."""
    corners = np.random.default_rng(seed).uniform(-1, 1, size=(count, 3, 3))
    return corners.reshape(-1, 3), np.arange(3 * count).reshape(-1, 3), _nothing


def lidless_box_of_sheets():
    """A lidless box whose five sides are separate sheets (no shared vertex), as many exported
    models are: air inside."""
    vertices, faces = _box_faces((0, 0, 0), (1, 1, 1), drop=("+z",))
    sides = []
    for k in range(5):
        used, local = np.unique(faces[2 * k : 2 * k + 2], return_inverse=True)
        sides.append((vertices[used], local.reshape(-1, 3)))
    return (*_join(*sides), _nothing)


def lamp_shade():
    """A lamp shade: a cone's side open at both ends, air inside."""
    return (*revolve([(0.6, 0.0), (0.35, 0.5)], cap_bottom=False), _nothing)


def pipe(length: float = 5.0):
    """A pipe ``length`` times as long as it is wide, open at both ends: air inside."""
    return (*revolve([(0.2, 0.0), (0.2, 0.4 * length)], segments=32, cap_bottom=False), _nothing)


def _in_box(points, low, high):
    return np.all((points > np.asarray(low)) & (points < np.asarray(high)), axis=1)


def boxes_face_to_face():
    """Two closed boxes stacked face to face: the file has the square they share twice (once
    in each), which merging drops to once. Inside is their union, a 1 x 1 x 2 block."""
    return (*_join(_box_faces((0, 0, 0), (1, 1, 1)), _box_faces((0, 0, 1), (1, 1, 2))),
            lambda points: _in_box(points, (0, 0, 0), (1, 1, 2)))  # fmt: skip


def box_on_a_box():
    """A small closed box standing on a larger one, in contact over part of its top: their union."""
    return (*_join(_box_faces((0, 0, 0), (1, 1, 1)), _box_faces((0.25, 0.25, 1), (0.75, 0.75, 1.5))),
            lambda p: _in_box(p, (0, 0, 0), (1, 1, 1)) | _in_box(p, (0.25, 0.25, 1), (0.75, 0.75, 1.5)))  # fmt: skip


def bored_block_with_sliver():
    """A closed block with a narrow bore through it and one sliver face (a thin triangle of
    non-zero area on its longest edge), as CAD exports leave them: the bore stays open."""

    block = manifold3d.Manifold.cube([2.0, 2.0, 0.6], center=True)
    bore = manifold3d.Manifold.cylinder(1.0, 0.2, 0.2, 32, center=True)
    mesh = (block - bore).to_mesh()
    vertices = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3]
    faces = np.asarray(mesh.tri_verts, dtype=np.int64)
    edges = faces[:, :2]
    a, b = edges[np.argmax(np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1))]
    apex = (vertices[a] + vertices[b]) / 2 + 1e-4 * np.array([0.3, 0.7, 0.2])
    vertices = np.concatenate([vertices, apex[None]])
    faces = np.concatenate([faces, [[a, len(vertices) - 1, b]]])

    def inside(points):
        return _in_box(points, (-1, -1, -0.3), (1, 1, 0.3)) & (np.hypot(points[:, 0], points[:, 1]) > 0.2)

    return vertices, faces, inside


def pin_in_a_bore():
    """A closed plate with a square bore and a closed square pin in it, its top flush with the
    plate's: the pin's walls lie on the bore's and its rim on the bore's rim, so each rim edge has
    four faces (the pin's wall and top, the plate's top and bore). The pin reaches below the
    plate. Inside is their union (cycloidal.ply's pins sit so)."""
    plate = manifold3d.Manifold.cube([2.0, 2.0, 0.5], center=True)
    bore = manifold3d.Manifold.cube([0.5, 0.5, 1.0], center=True)
    mesh = (plate - bore).to_mesh()
    pin = _box_faces((-0.25, -0.25, -0.75), (0.25, 0.25, 0.25))
    vertices, faces = _join((np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3], mesh.tri_verts), pin)

    def inside(points):
        return _in_box(points, (-1, -1, -0.25), (1, 1, 0.25)) | _in_box(
            points, (-0.25, -0.25, -0.75), (0.25, 0.25, 0.25)
        )

    return vertices, faces.astype(np.int64), inside


def spout_into_ball():
    """An open tube (a spout, narrowing) pushed from inside a closed ball out through its side:
    the ball is solid, the spout's inside is air."""
    # trimesh takes 0.35 s to import: loaded where used
    import trimesh

    ball = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    tube_vertices, tube_faces = revolve(
        [(0.15, 0.0), (0.15, 0.5), (0.12, 1.0), (0.1, 1.5)], segments=32, cap_bottom=False
    )
    turn = trimesh.transformations.rotation_matrix(np.pi / 3, [0, 1, 0])[:3, :3]
    return (*_join((ball.vertices, ball.faces), (tube_vertices @ turn.T, tube_faces)),
            lambda points: np.linalg.norm(points, axis=1) < np.cos(np.pi / 40))  # fmt: skip


CONTAINERS = {
    "cup": cup,
    "bowl": bowl,
    "vase": vase,
    "lidless box": lidless_box,
    "drawer 3:1": lambda: drawer(3.0),
    "drawer 5:1": lambda: drawer(5.0),
    "cabinet, drawer half out": cabinet_with_drawer,
    "mug": mug,
    "lidless box of five sheets": lidless_box_of_sheets,
    "lamp shade": lamp_shade,
    "pipe 5:1": pipe,
}
NEAR_CLOSED = {
    "sheet box, 1% gaps": gapped_sheet_box,
    "ball, 3% missing (4 holes)": lambda: holed_ball(0.03, holes=4),
    "ball, 5% missing": lambda: holed_ball(0.05),
}


OTHERS = {
    "floor and panels": floor_and_panels,
    "holed ball, sheet inside": holed_ball_with_inner_sheet,
    "boxes edge to edge": boxes_edge_to_edge,
    "boxes face to face": boxes_face_to_face,
    "box on a box": box_on_a_box,
    "bored block, one sliver": bored_block_with_sliver,
    "spout into a ball": spout_into_ball,
    "pin flush in its bore": pin_in_a_bore,
    "loose soup": loose_soup,
}
"""Panels, a sheet that is no panel, touching closed parts, a sliver, a tube's junction with a
body, a soup."""


def construction(name: str):
    """(vertices, faces, inside) of a named construction."""
    table = {**CONTAINERS, **NEAR_CLOSED, **OTHERS}
    return table[name]()
