"""Signed distances to real, broken meshes.

Sign convention: negative inside, positive outside (DeepSDF). Inside means: enclosed by the
mesh's outer surface, the surface seen from outside.

Real meshes are built from parts: closed pieces pushed into each other (legs into a seat, wings
through a fuselage), open or broken pieces (holes, single sheets, soups, flipped faces), stray
faces hidden inside. The outer surface is decided per kind of part (see docs/shapenet.md for the
measured accuracy of each):

1. **Parts.** Coincident vertices are merged and duplicate faces dropped; the faces are split
   into parts, joined across edges that exactly two faces share. A part whose own faces pair up
   along each of its edges (whatever other parts meet there; faces of zero area count for
   nothing) and can be oriented consistently is **closed**: it is oriented (by propagation over
   its edges, then outwards by the sign of its volume), so flipped faces, soups and duplicated
   reversed faces of a closed part cost nothing. Everything else is **open**.
2. **Closed parts: exact.** Their union is computed by an exact boolean (manifold3d): the
   surface of a chair whose closed legs pass into its closed seat is the union's surface, buried
   faces gone, narrow bores kept open. Inside the union is decided by ray parity on that
   manifold (exact up to rays grazing an edge; three rays vote). Where two parts touch face to
   face across a gap of rounding error the union keeps both faces: they are buried, dropped from
   the outer surface, and the gap is inside.
3. **Open parts: visibility.** From both sides of every open face, rays are cast over the
   hemisphere (open3d ray casting, with the closed union in the scene). A side from which rays
   escape to infinity faces the outside; faces seen from neither side (inner sheets, the inner
   copy of a double wall) are dropped, the others are oriented towards the side that sees more,
   patch by patch (faces joined across shared edges are wound alike; the patch's area-weighted
   vote decides, so one face fooled in a crease beside a hole follows its neighbours).
   Open faces inside the closed union are dropped exactly (its parity), faces partly inside are
   split until each piece is decided. Open faces enclosed by the other open parts (a teapot's
   spout inside its open body) and closed-part faces enclosed by the open parts' outer surface
   (their winding number) are dropped the same way; where what is left still half lies in
   another part (a junction) the winding number signs. Open parts that enclose nothing are
   **sheets**: those seen from outside on both sides, flat panels whose front faces the outside
   and whose back sees it too (over a floor), **containers** (every opening with a lip, leading
   outside or shut by the closed union: a cup, a drawer, a vase, a pipe; their inside is air)
   and **soups** of loose triangles.
4. **Distance** is the exact distance to the resulting outer surface (open3d closest points).
5. **Sign.** Inside the closed union is inside. Elsewhere, when the closest point lies on an open
   face: the angle-weighted pseudonormal at the closest point (Baerentzen and Aanaes); outside when
   that face is a **sheet** (seen from outside on both sides: a single-sheet wing, a lone square,
   it encloses nothing on either side); the winding number of the open outer surface, estimated
   by rays, where the closest point is on a hole's rim (the pseudonormal cannot tell there),
   counted again with more rays where it is near 1/2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdfkit.geometry import raycast
from sdfkit.geometry.basics import face_normals
from sdfkit.geometry.parts import (
    crossed_by,
    crossings,
    drop_buried,
    drop_contacts,
    find_containers,
    sheet_parts,
    sky_share,
    split_mixed,
    union_of_parts,
    visible_faces,
)
from sdfkit.geometry.topology import (
    closed_parts,
    edge_ids,
    is_soup,
    merge_vertices,
    pseudonormals,
)

METHOD = "parts-8"
"""The outer-surface method's version, recorded in a store's parameters: a store signed by another
version is not resumed (its rows would differ from the new ones). What each version changed:
docs/format.md (``parameters.method``); stores before parts-1 record none."""


__all__ = [
    "METHOD",
    "OuterSurface",
    "outer_surface",
    "signed_distance",
    "sign_confidence",
    "RULES",
    "SURE_DISTANCE",
    "inside",
    "unsigned_distance",
    "inside_closed",
    "in_gap",
    "thickness",
    "winding_numbers",
    "SIDE_TOLERANCE",
]


@dataclass(frozen=True)
class OuterSurface:
    """The outer surface of a mesh, consistently oriented outwards.

    vertices : (v, 3) float64
    faces : (f, 3) int64, normals (right-hand rule) pointing outwards
    sheet : (f,) bool, faces of open sheets: open parts most of whose area sees the outside from
        both sides (a single-sheet wing, a lone square) enclose nothing; points closest to them
        are outside
    two_sided : (f,) bool, other open faces that see the outside from both sides (the inner wall
        of a thin part seen through a hole): the winding number decides behind them
    closed : (f,) bool, faces from the union of the closed parts
    kept : (f_in,) bool, which input faces (some of them split) are part of it
    solid_vertices, solid_faces : the whole union of the closed parts, a closed manifold
        ((0, 3) when the mesh has no closed part): inside it is inside
    """

    vertices: np.ndarray
    faces: np.ndarray
    sheet: np.ndarray
    two_sided: np.ndarray
    closed: np.ndarray
    kept: np.ndarray
    solid_vertices: np.ndarray
    solid_faces: np.ndarray
    soup: bool = False
    """A triangle soup that encloses nothing: no closed part, and most of its open area in faces
    that share no edge with any other (random triangles); every face of it is a sheet."""
    containers: int = 0
    """How many open parts are containers (a cup, a drawer): their walls are sheets."""
    contact: float = 0.0
    """The contact distance: points outside the closed parts' union in a gap of it narrower than
    this are inside, the gaps of rounding error between closed parts that touch, whose faces were
    dropped where the point this far outside their centroid is inside the union (0: none dropped)."""
    lead: np.ndarray | None = None
    """(f,) float: how much more of the sky a face's outward side sees than its inward side (the
    visibility rays' shares, -1 to 1; 1 for the closed union's faces): low or negative where the
    face's orientation came from its patch's vote against its own (a crease beside a hole)."""

    @classmethod
    def open_only(cls, vertices: np.ndarray, faces: np.ndarray, *, two_sided=None, kept=None) -> OuterSurface:
        """A surface of open faces alone, no closed part and no sheet: what a winding number is
        taken over (the open parts that may enclose a point)."""
        none = np.zeros(len(faces), dtype=bool)
        return cls(
            vertices=vertices,
            faces=faces,
            sheet=none,
            two_sided=none if two_sided is None else two_sided,
            closed=none,
            kept=np.zeros(0, dtype=bool) if kept is None else kept,
            solid_vertices=np.zeros((0, 3)),
            solid_faces=np.zeros((0, 3), dtype=np.int64),
        )

    def cached(self, key: str, make):
        """What ``make()`` returns, computed once per surface: the ray-casting scenes and the
        pseudonormals that every query on this surface needs (several recipes query one surface).
        Not pickled: open3d's scenes cannot be."""
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}

    def __setstate__(self, state):
        self.__dict__.update(state)


def outer_surface(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    rays: int = 32,
    min_escape: float = 0.1,
    sheet_escape: float = 0.25,
    split_levels: int = 4,
    rng: np.random.Generator,
    batch: int = 1 << 20,
) -> OuterSurface:
    """Find the outer surface of a mesh and orient it outwards (the module's steps 1-3).

    A side of an open face "escapes" when its rays (``rays`` directions over its hemisphere, from
    the face's centroid nudged off the face) reach infinity without hitting the mesh. An open
    face is kept when its better side escapes in at least ``min_escape`` of its rays, and
    oriented towards that side; when the other side escapes in at least ``sheet_escape`` of its
    rays too, it is a sheet. Faces partly inside the other kind of part are split in four up to
    ``split_levels`` times. Vertices no face uses play no part.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    used, faces_in = np.unique(faces, return_inverse=True)
    vertices = vertices[used]
    faces_in = faces_in.reshape(-1, 3)
    kept = np.zeros(len(faces), dtype=bool)
    merged_vertices, merged, index = merge_vertices(vertices, faces_in)
    extent = float(np.ptp(vertices, axis=0).max()) if len(vertices) else 1.0

    closed_faces = closed_parts(merged_vertices, merged)
    solid_vertices, solid_faces, source = union_of_parts(merged_vertices, merged, closed_faces, extent)
    if len(solid_faces):
        kept[index[np.unique(source)]] = True
    open_ids = np.nonzero(closed_faces < 0)[0]

    # open faces: drop what lies inside the closed union, then visibility
    open_vertices, open_faces, open_source = merged_vertices, merged[open_ids], open_ids
    solid_scene = raycast.scene(solid_vertices, solid_faces) if len(solid_faces) else None
    if len(open_faces) and solid_scene is not None:
        inside = lambda p, _: raycast.occupancy(solid_scene, p)  # noqa: E731
        crossed = crossed_by(solid_vertices, solid_faces)  # a handle through the middle of a wall face
        open_vertices, open_faces, parent = split_mixed(merged_vertices, open_faces, inside, split_levels, crossed)
        open_source = open_ids[parent]
    sheet = two_sided = np.zeros(0, dtype=bool)
    lead = np.zeros(0)
    soup = not len(solid_faces) and is_soup(merged_vertices, merged[open_ids])
    container, containers = np.zeros(len(merged), dtype=bool), 0
    if not soup:  # loose triangles bound nothing, containers included
        container, containers = find_containers(merged_vertices, merged, closed_faces < 0, rng, extent, solid_scene)
    if len(open_faces):
        open_faces, two_sided, visible, escape, lead = visible_faces(
            open_vertices, open_faces, solid_vertices, solid_faces, rays, min_escape, sheet_escape, rng, batch, extent
        )
        open_source = open_source[visible]
        sheet = sheet_parts(open_vertices, open_faces, two_sided, escape) | soup | container[open_source]
        two_sided &= ~sheet
        if not soup:
            open_vertices, open_faces, parent, junction = drop_buried(open_vertices, open_faces, sheet, rng)
            open_source, sheet, two_sided, lead = (a[parent] for a in (open_source, sheet, two_sided, lead))
            two_sided |= junction
        kept[index[open_source]] = True
    # closed-part faces enclosed by the open parts' outer surface are interior; sheets (a lone
    # wing, a container's walls) enclose nothing, so only the other open faces count
    enclosing = ~sheet if len(open_faces) else np.zeros(0, dtype=bool)
    outer_vertices, outer_faces, contact = solid_vertices, solid_faces, 0.0
    if len(solid_faces):
        outer_vertices, outer_faces, contact = drop_contacts(
            solid_vertices, solid_faces, closed_faces[source], solid_scene, extent
        )
    if enclosing.any() and len(outer_faces):
        open_part = OuterSurface.open_only(
            open_vertices, open_faces[enclosing], two_sided=two_sided[enclosing], kept=kept
        )
        outer_vertices, outer_faces = _outside_open_parts(outer_vertices, outer_faces, open_part, rng)
    return _assembled(
        (outer_vertices, outer_faces), (open_vertices, open_faces), sheet, two_sided, lead, kept,
        (solid_vertices, solid_faces), soup=bool(soup), containers=containers, contact=contact,
    )  # fmt: skip


def _assembled(closed, open_, sheet, two_sided, lead, kept, solid, *, soup, containers, contact) -> OuterSurface:
    """The outer surface from its closed faces (first) and its open ones with their flags; the
    vertices no face uses dropped."""
    (outer_vertices, outer_faces), (open_vertices, open_faces) = closed, open_
    n_closed = len(outer_faces)
    all_vertices = np.concatenate([outer_vertices, open_vertices])
    all_faces = np.concatenate([outer_faces, open_faces + len(outer_vertices)])
    used, all_faces = np.unique(all_faces, return_inverse=True)  # drop vertices no face uses
    return OuterSurface(
        vertices=all_vertices[used],
        faces=all_faces.reshape(-1, 3),
        sheet=np.concatenate([np.zeros(n_closed, dtype=bool), sheet]),
        two_sided=np.concatenate([np.zeros(n_closed, dtype=bool), two_sided]),
        closed=np.arange(len(all_faces.reshape(-1, 3))) < n_closed,
        kept=kept,
        solid_vertices=solid[0],
        solid_faces=solid[1],
        soup=soup,
        containers=containers,
        contact=contact,
        lead=np.concatenate([np.ones(n_closed), lead]),
    )


def _outside_open_parts(vertices, faces, open_part: OuterSurface, rng):
    """The closed union's faces that the open parts do not enclose (their winding number at the
    face below 1/2; a point that sees the sky is not enclosed), faces partly enclosed split."""
    open_scene = raycast.scene(open_part.vertices, open_part.faces)

    def inside(points, _):
        enclosed = np.zeros(len(points), dtype=bool)
        hidden = sky_share(open_scene, points, _ENCLOSED_SKY_RAYS, rng) < _ENCLOSED_SKY
        winding = winding_numbers(open_part, points[hidden], rays=_ENCLOSED_RAYS, rng=rng, scene=open_scene)
        enclosed[hidden] = winding > 0.5
        return enclosed

    vertices, faces, _ = split_mixed(vertices, faces, inside, _ENCLOSED_SPLITS)
    return vertices, faces


_ENCLOSED_SKY_RAYS = 8
"""Rays from a point of the closed union that first ask whether the open parts hide it at all:
a point that sees the sky in at least ``_ENCLOSED_SKY`` of them is not enclosed, and costs no
winding number."""


_ENCLOSED_SKY = 0.5
"""The share of ``_ENCLOSED_SKY_RAYS`` that sees the sky above which a point is not enclosed."""


_ENCLOSED_RAYS = 32
"""Rays of the winding-number estimate for the points the open parts hide (its standard deviation
about 0.09: enough where a closed part sits well inside an open body or well outside it)."""


_ENCLOSED_SPLITS = 2
"""Times a closed-union face partly enclosed by the open parts is split in four (the faces left
undecided keep their centroid's answer)."""


def winding_numbers(
    surface: OuterSurface, points: np.ndarray, *, rays: int = 64, rng: np.random.Generator | None = None, scene=None
) -> np.ndarray:
    """Generalized winding number (n,) of an oriented surface at ``points``, estimated from the
    signed crossings of ``rays`` rays per point (evenly spread directions, randomly rotated per
    point)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    if scene is None:
        scene = surface.cached("scene", lambda: raycast.scene(surface.vertices, surface.faces))
    return crossings(scene, face_normals(surface.vertices, surface.faces, unit=False), points, rays, rng)


RULE_CLOSED, RULE_OUTSIDE_BOX, RULE_SIDE, RULE_SHEET, RULE_WINDING = 0, 1, 2, 3, 4


RULES = ("closed", "outside_box", "side", "sheet", "winding")
"""Which rule signed a point (:func:`signed_distance` with ``return_rule``): the union of the
closed parts (inside it, or closest to one of its faces), outside the outer surface's bounding box
with an open face closest, the side of the closest open face (its pseudonormal), a sheet (open,
encloses nothing: outside), the winding number of the open part."""


SURE_DISTANCE = 0.0005
"""Distance (normalized frame: the unit ball) from the outer surface within which a sample's
confidence falls with its distance (:func:`sign_confidence`): that near, a tessellated surface
and the one it stands for may put it on either side."""


def sign_confidence(values: np.ndarray, rule: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """How sure a sample's sign is, (n,) uint8 from 0 (least) to 255: 255 times the smaller of
    the rule's score (the side of an open face: its margin, the cosine to the pseudonormal; the
    winding number: half its margin ``2 |w - 1/2|``, so below every other rule; the others 1)
    and ``|distance| / SURE_DISTANCE`` (a sample that near the surface may be on either side of
    the surface the mesh stands for). Measured in benchmarks/sign_confidence.py: the lowest 5%
    hold most of the wrong signs."""
    score = np.where(rule == RULE_WINDING, 0.5 * margin, np.where(rule == RULE_SIDE, margin, 1.0))
    score = np.minimum(score, np.abs(values) / SURE_DISTANCE)
    return np.round(255 * np.clip(score, 0.0, 1.0)).astype(np.uint8)


SIDE_TOLERANCE = 1e-4
"""A closest point whose barycentric weight of a corner is below this lies on that corner's
opposite edge (or at a corner when two are): its side is then asked of the edge's or the vertex's
pseudonormal, not the face's."""


def signed_distance(
    surface: OuterSurface,
    points: np.ndarray,
    *,
    tolerance: float = SIDE_TOLERANCE,
    rng: np.random.Generator | None = None,
    return_face: bool = False,
    return_rule: bool = False,
):
    """Signed distance (n,) float64 of ``points`` (n, 3) to an outer surface, negative inside;
    with ``return_face``, also the index (n,) of the surface face each point is closest to; with
    ``return_rule``, also the rule (n,) uint8 that signed each point (:data:`RULE_CLOSED` ...) and
    its margin (n,) float64 in [0, 1] (1 sure): the cosine between the point's offset from the
    closest point and the pseudonormal there, or less where that face's orientation is in doubt
    (the side rule: :data:`_SURE_LEAD`), ``2 |w - 1/2|`` (the winding number ``w``), 1 for the
    others."""
    points = np.asarray(points, dtype=np.float64)
    closest, face, uv = _closest(surface, points)
    distance = np.linalg.norm(points - closest, axis=1)
    inside = _inside_solid(surface, points)
    inside |= in_gap(surface, points, face=face, inside=inside)
    rule = np.full(len(points), RULE_CLOSED, dtype=np.uint8)
    margin = np.ones(len(points))
    # closest to an open face, outside the closed union and inside the surface's bounding box
    # (nothing outside it is enclosed): the open part decides
    open_face = ~surface.closed[face] & ~inside
    near_open = open_face & _in_box(surface, points)
    rule[open_face & ~near_open] = RULE_OUTSIDE_BOX
    if near_open.any():
        inside[near_open], rule[near_open], margin[near_open] = _open_side(
            surface, points, closest, face, uv, near_open, tolerance, rng
        )
    values = np.where(inside, -distance, distance)
    out = (values,) + ((face,) if return_face else ()) + ((rule, margin) if return_rule else ())
    return out if len(out) > 1 else values


def _closest(surface: OuterSurface, points: np.ndarray):
    """Closest points (n, 3) float64 on the outer surface, their faces (n,) and barycentric uv (n, 2)."""
    scene = surface.cached("scene", lambda: raycast.scene(surface.vertices, surface.faces))
    result = scene.compute_closest_points(raycast.tensor(points))
    return (
        result["points"].numpy().astype(np.float64),
        result["primitive_ids"].numpy().astype(np.int64),
        result["primitive_uvs"].numpy().astype(np.float64),
    )


def _in_box(surface: OuterSurface, points: np.ndarray) -> np.ndarray:
    """(n,) bool: within the bounding box of the outer surface (a point outside it sees the whole
    surface from one side, so neither a closed part nor the winding number encloses it)."""
    low, high = surface.vertices.min(axis=0), surface.vertices.max(axis=0)
    margin = 1e-9 * float(np.max(high - low))
    return np.all((points >= low - margin) & (points <= high + margin), axis=1)


def _inside_solid(surface: OuterSurface, points: np.ndarray) -> np.ndarray:
    """(n,) bool: inside the union of the closed parts (ray parity); all False without one."""
    result = np.zeros(len(points), dtype=bool)
    if len(surface.solid_faces) == 0:
        return result
    # outside the union's box nothing is inside (ray parity can be fooled there: measured on
    # cycloidal.ply, points below the union's lowest vertex called inside)
    low, high = surface.solid_vertices.min(axis=0), surface.solid_vertices.max(axis=0)
    boxed = np.nonzero(np.all((points >= low) & (points <= high), axis=1))[0]
    scene = surface.cached("solid_scene", lambda: raycast.scene(surface.solid_vertices, surface.solid_faces))
    result[boxed] = raycast.occupancy(scene, points[boxed])
    return result


def inside_closed(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Inside (n,) bool a closed, consistently wound mesh as given: ray parity, three rays voting
    (open3d). No outer surface: for meshes known to be closed (a level set's output)."""
    return raycast.occupancy(raycast.scene(vertices, faces), np.asarray(points, dtype=np.float64))


def thickness(surface: OuterSurface) -> np.ndarray:
    """How thick the solid is behind each face of an outer surface (f,) float64: the distance
    from the face's centroid, straight inwards (against its outward normal), to the next face;
    ``inf`` for sheets (they enclose nothing) and where the ray leaves without a hit."""
    out = np.full(len(surface.faces), np.inf)
    which = np.nonzero(~surface.sheet)[0]
    if len(which) == 0:
        return out
    scene = surface.cached("scene", lambda: raycast.scene(surface.vertices, surface.faces))
    tri = surface.vertices[surface.faces[which]]
    normal = face_normals(surface.vertices, surface.faces[which])
    extent = float(np.ptp(surface.vertices, axis=0).max()) or 1.0
    origin = tri.mean(axis=1) - 1e-6 * extent * normal  # just behind the face: its own hit is not counted
    rays = np.concatenate([origin, -normal], axis=1).astype(np.float32)
    hit = scene.cast_rays(raycast.tensor(rays))["t_hit"].numpy().astype(np.float64)
    out[which] = hit + 1e-6 * extent
    return out


def unsigned_distance(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance (n,) float64 of ``points`` (n, 3) to every face of a mesh as given (open3d's exact
    closest points, in float32): no outer surface, no sign."""
    return raycast.scene(vertices, faces).compute_distance(raycast.tensor(points)).numpy().astype(np.float64)


def inside(surface: OuterSurface, points: np.ndarray, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """Whether ``points`` (n, 3) are inside (n,) bool: the sign of :func:`signed_distance`, with
    no distance computed where none is needed: points inside the closed union are inside (ray
    parity), and only the others look for their closest face (none do when every part is closed)."""
    points = np.asarray(points, dtype=np.float64)
    result = _inside_solid(surface, points)
    if len(surface.solid_faces) and surface.closed.all() and surface.contact <= 0:
        return result
    rest = np.nonzero(~result & _in_box(surface, points))[0]  # nothing outside the box is enclosed
    if len(rest) == 0:
        return result
    closest, face, uv = _closest(surface, points[rest])
    result[rest] |= in_gap(surface, points[rest], face=face, inside=result[rest])
    near_open = ~surface.closed[face] & ~result[rest]
    if near_open.any():
        result[rest[near_open]] = _open_side(surface, points[rest], closest, face, uv, near_open, SIDE_TOLERANCE, rng)[
            0
        ]
    return result


def _pseudonormal_side(surface, points, closest, face, uv, tolerance):
    """The offset of ``points`` from their closest points along the angle-weighted pseudonormal
    there (face, edge or vertex; negative: behind), its scale (|offset| |normal|), and which
    corners' barycentric weights are below ``tolerance`` (m, 3)."""
    weights = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)  # of the 3 corners
    _, _, face_n, edge_n, vertex_n = surface.cached("pseudonormals", lambda: _rim_structure(surface))
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
    offset = points - closest
    along = np.einsum("ij,ij->i", offset, normal)
    return along, np.linalg.norm(offset, axis=1) * np.linalg.norm(normal, axis=1), small


def in_gap(surface: OuterSurface, points, *, face=None, inside=None) -> np.ndarray:
    """(n,) bool: points in a gap between touching closed parts whose faces were dropped
    (:func:`drop_contacts`): outside the union by its parity (``inside``: known already), their
    closest outer face a closed one (``face``: given), and between two walls of the union less
    than :attr:`OuterSurface.contact` apart (the union's closest point, then a ray straight away
    from it that meets the union again). Inside: the gap is rounding error, and signing it outside
    would put the distance to the nearest kept face, far away, inside the solid. (Whether the
    point lies behind the outer face closest to it does not tell: that face may be cells away and
    face anywhere, or be the kept face over the gap: bubbles in cycloidal.ply's watertight mesh.)"""
    out = np.zeros(len(points), dtype=bool)
    if surface.contact <= 0:
        return out
    inside = _inside_solid(surface, points) if inside is None else inside
    which = np.nonzero(~inside & (True if face is None else surface.closed[face]))[0]
    if len(which) == 0:
        return out
    scene = surface.cached("solid_scene", lambda: raycast.scene(surface.solid_vertices, surface.solid_faces))
    hit = scene.compute_closest_points(raycast.tensor(points[which]))
    away = points[which] - hit["points"].numpy()
    gap = np.linalg.norm(away, axis=1)
    near = np.nonzero(gap < surface.contact)[0]
    if len(near) == 0:
        return out
    # straight away from the closest point; on the surface itself, along that face's normal
    normal = face_normals(surface.solid_vertices, surface.solid_faces[hit["primitive_ids"].numpy()[near]])
    on = gap[near, None] <= 1e-9 * surface.contact
    direction = np.where(on, normal, away[near] / np.maximum(gap[near, None], 1e-300))
    rays = np.concatenate([points[which[near]], direction], axis=1)
    across = scene.cast_rays(raycast.tensor(rays))["t_hit"].numpy()
    out[which[near[gap[near] + across < surface.contact]]] = True
    return out


def _open_side(surface, points, closest, face, uv, which, tolerance, rng):
    """Inside (m,) bool for the points ``which`` whose closest point lies on an open face, the
    rule that decided (m,) uint8 and its margin (m,) (see :func:`signed_distance`)."""
    idx = np.nonzero(which)[0]
    face = face[idx]
    along, length, small = _pseudonormal_side(surface, points[idx], closest[idx], face, uv[idx], tolerance)
    on_edge = small.sum(axis=1) == 1
    edge_id, edge_faces = surface.cached("pseudonormals", lambda: _rim_structure(surface))[:2]
    inside = along < 0
    rule = np.full(len(idx), RULE_SIDE, dtype=np.uint8)
    margin = np.clip(np.abs(along) / np.maximum(length, 1e-300), 0.0, 1.0)
    if surface.lead is not None:  # a face oriented against its own look (its patch outvoted it)
        margin = np.minimum(margin, np.clip(surface.lead[face] / _SURE_LEAD, 0.0, 1.0))
    # a sheet encloses nothing on either side
    sheet = surface.sheet[face]
    inside[sheet] = False
    rule[sheet], margin[sheet] = RULE_SHEET, 1.0
    # closest to a hole's rim the pseudonormal cannot tell, even straight behind the rim: where
    # the hole takes a corner (a face beside an edge gone) the outside wraps round behind the
    # rim's face (measured on a holed make-shapes table: points 2 cells below its top called
    # inside, 25 degrees off the rim face's normal)
    boundary = edge_faces[edge_id] == 1  # (f, 3): the edge belongs to one face alone, a hole's rim
    rim = on_edge & boundary[face, (np.argmax(small, axis=1) + 1) % 3]
    doubtful = (surface.two_sided[face] | rim) & ~sheet
    if doubtful.any():
        part = surface.cached(
            "open_part", lambda: OuterSurface.open_only(surface.vertices, surface.faces[~surface.closed])
        )
        which = idx[doubtful]
        winding = winding_numbers(part, points[which], rng=rng)
        # near 1/2 the estimate's noise (a standard deviation of about 0.06 at 64 rays) moves the
        # level set across a hole by up to two cells at 256^3 (measured on a holed make-shapes
        # table): four times more rays there, pooled with the first
        close = np.nonzero(np.abs(winding - 0.5) < _RECOUNT)[0]
        if len(close):
            again = winding_numbers(part, points[which[close]], rays=_RECOUNT_RAYS, rng=rng)
            winding[close] = (winding[close] + _RECOUNT_WEIGHT * again) / (1.0 + _RECOUNT_WEIGHT)
        inside[doubtful] = winding > 0.5
        rule[doubtful], margin[doubtful] = RULE_WINDING, np.clip(2.0 * np.abs(winding - 0.5), 0.0, 1.0)
    return inside, rule, margin


_SURE_LEAD = 0.25
"""A face whose outward side sees this much more of the sky than its inward side is sure of its
orientation (the side rule's margin, :func:`signed_distance`). Measured on the sign benchmark's
meshes: sides signed wrong on make-shapes meshes with several defects lie at faces leading by
0.06 to 0.16, right ones mostly by 0.5 or more; 0.25 (chosen there among 0.25, 0.35 and 0.5) puts
the most wrong signs among the least sure (benchmarks/sign_confidence.py, which also runs meshes
of another seed)."""


_RECOUNT = 0.15
"""Winding estimates this close to 1/2 are counted again with more rays (:func:`_open_side`)."""


_RECOUNT_RAYS = 256
"""Rays of that second count: four times the first's 64, so its noise is half the first's."""


_RECOUNT_WEIGHT = 4.0
"""Weight of the second count against the first's 1 when the two are pooled (their ray counts'
ratio: the pooled estimate is the mean over all 320 rays)."""


def _rim_structure(surface: OuterSurface):
    """Edge ids and face counts (:func:`edge_ids`) and pseudonormals (:func:`pseudonormals`) of a surface."""
    edge_id, edge_faces = edge_ids(surface.faces)
    return (edge_id, edge_faces, *pseudonormals(surface.vertices, surface.faces, edge_id))
