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
from sdfkit.geometry.basics import face_areas, face_normals

METHOD = "parts-5"
"""The outer-surface method's version, recorded in a store's parameters: a store signed by another
version is not resumed (its rows would differ from the new ones). ``parts-1``: closed parts by
exact union, open parts by visibility (the first method with parts); ``parts-2``: the same, and no point outside
the outer surface's bounding box is inside (the winding-number estimate beside a hole's rim
could say so), nor outside the closed union's box by its ray parity (which could, measured on
cycloidal.ply); ``parts-3``: closed parts found part by part (a part touching another along an
edge stays closed; zero-area faces decide nothing), and a soup of loose triangles encloses
nothing; ``parts-4``: sheets (a container's walls) do not make the closed parts they surround
interior (a mug's handle reaching into the cup stays outer surface); ``parts-5``: faces of the
closed union buried between parts that touch are dropped (points in the gap are inside), open
faces enclosed by the other open parts are interior and where they join the winding number
decides (a teapot's spout), containers may have several openings (a pipe, a lamp shade) and an
opening inside the closed union is shut (a spout into a solid ball); stores before parts-1
record none."""

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
    "thickness",
    "winding_numbers",
    "fibonacci_directions",
]


def fibonacci_directions(count: int) -> np.ndarray:
    """``count`` unit vectors spread evenly over the sphere: (count, 3) float64."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = np.pi * (1.0 + 5**0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


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
    """Points outside the closed parts' union but within this distance of it, behind the closed
    face closest to them, are inside: the gaps of rounding error between closed parts that touch,
    whose faces are dropped (0: none dropped)."""
    lead: np.ndarray | None = None
    """(f,) float: how much more of the sky a face's outward side sees than its inward side (the
    visibility rays' shares, -1 to 1; 1 for the closed union's faces): low or negative where the
    face's orientation came from its patch's vote against its own (a crease beside a hole)."""

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
    merged_vertices, merged, index = _merge(vertices, faces_in)
    extent = float(np.ptp(vertices, axis=0).max()) if len(vertices) else 1.0

    closed_faces = _closed_parts(merged_vertices, merged)
    solid_vertices, solid_faces, source = _union(merged_vertices, merged, closed_faces, extent)
    if len(solid_faces):
        kept[index[np.unique(source)]] = True
    open_ids = np.nonzero(closed_faces < 0)[0]

    # open faces: drop what lies inside the closed union, then visibility
    open_vertices, open_faces, open_source = merged_vertices, merged[open_ids], open_ids
    solid_scene = raycast.scene(solid_vertices, solid_faces) if len(solid_faces) else None
    if len(open_faces) and solid_scene is not None:
        inside = lambda p, _: raycast.occupancy(solid_scene, p)  # noqa: E731
        crossed = _crossed_by(solid_vertices, solid_faces)  # a handle through the middle of a wall face
        open_vertices, open_faces, parent = _split_mixed(merged_vertices, open_faces, inside, split_levels, crossed)
        open_source = open_ids[parent]
    sheet = two_sided = np.zeros(0, dtype=bool)
    lead = np.zeros(0)
    soup = not len(solid_faces) and _is_soup(merged_vertices, merged[open_ids])
    container, containers = np.zeros(len(merged), dtype=bool), 0
    if not soup:  # loose triangles bound nothing, containers included
        container, containers = _containers(merged_vertices, merged, closed_faces < 0, rng, extent, solid_scene)
    if len(open_faces):
        open_faces, two_sided, visible, escape, lead = _visible(
            open_vertices, open_faces, solid_vertices, solid_faces, rays, min_escape, sheet_escape, rng, batch, extent
        )
        open_source = open_source[visible]
        sheet = _sheet_parts(open_vertices, open_faces, two_sided, escape) | soup | container[open_source]
        two_sided &= ~sheet
        if not soup:
            open_vertices, open_faces, parent, junction = _drop_buried(open_vertices, open_faces, sheet, rng)
            open_source, sheet, two_sided, lead = (a[parent] for a in (open_source, sheet, two_sided, lead))
            two_sided |= junction
        kept[index[open_source]] = True
    # closed-part faces enclosed by the open parts' outer surface are interior; sheets (a lone
    # wing, a container's walls) enclose nothing, so only the other open faces count
    enclosing = ~sheet if len(open_faces) else np.zeros(0, dtype=bool)
    outer_vertices, outer_faces, contact = solid_vertices, solid_faces, 0.0
    if len(solid_faces):
        outer_vertices, outer_faces, contact = _drop_contacts(
            solid_vertices, solid_faces, closed_faces[source], solid_scene, extent
        )
    if enclosing.any() and len(outer_faces):
        no = np.zeros(int(enclosing.sum()), bool)
        open_part = OuterSurface(open_vertices, open_faces[enclosing], no, two_sided[enclosing], no, kept, *_NONE)
        open_scene = raycast.scene(open_vertices, open_faces[enclosing])

        def inside(points, _):  # enclosed by the open parts: a point that sees the sky is not
            enclosed = np.zeros(len(points), dtype=bool)
            hidden = _sky(open_scene, points, 8, rng) < 0.5
            enclosed[hidden] = winding_numbers(open_part, points[hidden], rays=32, rng=rng, scene=open_scene) > 0.5
            return enclosed

        outer_vertices, outer_faces, _ = _split_mixed(outer_vertices, outer_faces, inside, 2)
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
        solid_vertices=solid_vertices,
        solid_faces=solid_faces,
        soup=bool(soup),
        containers=containers,
        contact=contact,
        lead=np.concatenate([np.ones(n_closed), lead]),
    )


_NONE = (np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
_SOUP_SHARE = 0.9
"""A mesh without closed parts is a soup when this share of its face area lies in faces that
share no edge with another face (after coincident vertices are merged)."""


_LIP = 0.5
"""A face along an opening is steep to it when the |cos| between its normal and the opening's is
below this: the wall at a cup's rim, a drawer's front, a vase's neck (0), a flared bowl's (0.45);
not the wall a hole is cut into (a ball's 5% cap: 0.9; the other half of a box's side that lost
one triangle: 1)."""
_LIP_SHARE = 0.9
"""An opening's rim is a lip when this share of its length runs along steep faces (a box's side
that lost one triangle: 0.59; a lidless box, a cup: 1)."""
_OPEN_SKY = 0.3
"""An opening leads outside when rays from it, on its outer side, reach infinity this often (a
drawer half out of a cabinet: 0.49; an open cup: 1)."""


def _containers(vertices, faces, open_mask, rng, extent: float, solid_scene=None) -> tuple[np.ndarray, int]:
    """(f,) bool: faces of open parts that are containers, whose inside is air; and their count.

    A container is an open part (faces joined across edges that two of them share) each of whose
    openings has a lip (:data:`_LIP`, :data:`_LIP_SHARE`) and leads outside (:data:`_OPEN_SKY`):
    a cup, a bowl, a lidless box, a drawer, a vase (one opening), a pipe or a lamp shade (two).
    An opening inside the closed parts' union (``solid_scene``) is shut: a tube whose one end is
    in a solid ball is a cup. Its walls are sheets: they enclose nothing on either side. A body
    with a hole cut into it (its rim runs along the wall that is missing), an opening covered by
    another part (a jar's lid) or inside an open body (a teapot's spout) are not.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    out = np.zeros(len(faces), dtype=bool)
    ids = np.nonzero(open_mask)[0]
    if len(ids) < 2:
        return out, 0
    part_faces = faces[ids]
    edge_id, counts = _edges(part_faces)
    n = len(part_faces)
    owner = np.repeat(np.arange(n), 3)
    shared = counts[edge_id.reshape(-1)] == 2
    order = np.argsort(edge_id.reshape(-1)[shared], kind="stable")
    pairs = owner[shared][order].reshape(-1, 2)
    _, part = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)))
    # boundary edges (corner a to corner b of face f) that one face alone has, and their part;
    # every test below is vectorized over parts: a soup of many loose patches must not loop
    face_of, corner = np.nonzero(counts[edge_id] == 1)
    if len(face_of) == 0:
        return out, 0
    a, b = part_faces[face_of, corner], part_faces[face_of, (corner + 1) % 3]
    owner = part[face_of]
    parts = part.max() + 1
    # openings: the rim edges' connected loops, each with its part
    _, loop = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(len(vertices),) * 2))
    pairs, opening = np.unique(np.stack([owner, loop[a]], axis=1), axis=0, return_inverse=True)
    opening = opening.reshape(-1)
    openings, opening_part = len(pairs), pairs[:, 0]
    # each opening's plane: the least-spread direction of its rim's corners
    corners = np.concatenate([vertices[a], vertices[b]])
    who = np.concatenate([opening, opening])
    weight = np.bincount(who, minlength=openings).astype(np.float64)
    centre = np.stack([np.bincount(who, corners[:, k], minlength=openings) for k in range(3)], axis=1)
    centre /= np.maximum(weight, 1)[:, None]
    offset = corners - centre[who]
    scatter = np.zeros((openings, 3, 3))
    np.add.at(scatter, who, offset[:, :, None] * offset[:, None, :])
    axis = np.linalg.eigh(scatter)[1][:, :, 0]  # the smallest eigenvalue's vector
    # the lip: the share of the rim's length along faces steep to the opening
    length = np.linalg.norm(vertices[a] - vertices[b], axis=1)
    normals = face_normals(vertices, part_faces)
    steep_edge = np.abs(np.einsum("ij,ij->i", normals[face_of], axis[opening])) < _LIP
    steep = np.bincount(opening, length * steep_edge, minlength=openings) / np.maximum(
        np.bincount(opening, length, minlength=openings), 1e-300
    )
    lip = (steep >= _LIP_SHARE) & (weight >= 6)
    # a candidate part: every opening a lip (a cup: one; a pipe, a lamp shade: two)
    has_opening = np.bincount(opening_part, minlength=parts) > 0  # a part with no rim is no container
    candidates = np.nonzero((np.bincount(opening_part, ~lip, minlength=parts) == 0) & has_opening)[0]
    if len(candidates) == 0:
        return out, 0
    tried = np.nonzero(np.isin(opening_part, candidates))[0]
    # points across each candidate opening, on both sides: does one side see the sky?
    fills, normals_fill, owners = [], [], []
    order = np.argsort(who, kind="stable")
    first = np.searchsorted(who[order], tried)
    last = np.searchsorted(who[order], tried, side="right")
    for o, i, j in zip(tried, first, last, strict=True):
        ring = np.unique(corners[order[i:j]], axis=0)
        pick = ring[np.linspace(0, len(ring) - 1, min(len(ring), 48)).astype(int)]
        fill = np.concatenate([centre[o][None], *(centre[o] + t * (pick - centre[o]) for t in (0.3, 0.6, 0.85))])
        fills.append(fill)
        normals_fill.append(np.broadcast_to(axis[o], fill.shape))
        owners.append(np.full(len(fill), o))
    fill, owners = np.concatenate(fills), np.concatenate(owners)
    escape = _escape(raycast.scene(vertices, faces), fill, np.concatenate(normals_fill), 1e-5 * extent,
                     np.arange(len(fill)), 32, rng, 1 << 20)  # fmt: skip
    sky = np.stack([np.bincount(owners, escape[:, k], minlength=openings) for k in range(2)], axis=1)
    sky /= np.maximum(np.bincount(owners, minlength=openings), 1)[:, None]
    # an opening inside the closed parts' union is shut by it (a spout's end in a solid ball)
    shut = np.zeros(openings, dtype=bool)
    if solid_scene is not None:
        count = np.bincount(owners, minlength=openings)
        shut[tried] = (np.bincount(owners, raycast.occupancy(solid_scene, fill), minlength=openings) > count / 2)[tried]
    # every opening leads outside or is shut, and one leads outside (a spout whose inner end lies
    # in an open body, a jar under its lid: no container)
    leads = np.zeros(openings, dtype=bool)
    leads[tried] = sky[tried].max(axis=1) >= _OPEN_SKY
    container = np.zeros(parts, dtype=bool)
    container[candidates] = (np.bincount(opening_part, ~(leads | shut), minlength=parts)[candidates] == 0) & (
        np.bincount(opening_part, leads, minlength=parts)[candidates] > 0
    )
    out[ids] = container[part]
    return out, int(container.sum())


def _is_soup(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """Whether open faces are a soup of loose triangles (see :data:`_SOUP_SHARE`): they bound
    nothing, whatever their orientation or the way they cross each other. A mesh exported as
    separate triangles is not: its merged vertices join its faces again."""
    if len(faces) < 2:
        return False
    edge_id, counts = _edges(faces)
    loose = (counts[edge_id] == 1).all(axis=1)
    area = face_areas(vertices, faces)
    return bool(area[loose].sum() >= _SOUP_SHARE * max(area.sum(), 1e-300))


def _sheet_parts(vertices, faces, two_sided, escape) -> np.ndarray:
    """(f,) bool: faces of the connected parts (sharing vertices) that enclose nothing: more than
    half of whose area sees the outside from both sides, or flat parts (panels) whose front faces
    the outside (:data:`_PANEL_FRONT`) and whose back sees it at all (:data:`_PANEL_ESCAPE`): a
    panel over a floor sees the sky only sideways from below, a side of a box of separate sheets
    only through the gaps between them, and a sheet inside a body seen through a hole in it sees
    little sky from either side.

    escape : (f, 2) the share of rays that escape from each side of each face
    """
    worst, best = escape.min(axis=1), escape.max(axis=1)
    if len(faces) == 0:
        return np.zeros(len(faces), dtype=bool)
    part, parts = _vertex_parts(vertices, faces)
    area = face_areas(vertices, faces)
    total = np.maximum(np.bincount(part, weights=area, minlength=parts), 1e-300)
    share = np.bincount(part, weights=area * two_sided, minlength=parts) / total
    back = np.bincount(part, weights=area * worst, minlength=parts) / total
    front = np.bincount(part, weights=area * best, minlength=parts) / total
    panel = _flat_parts(vertices, faces, part, parts) & (back >= _PANEL_ESCAPE) & (front >= _PANEL_FRONT)
    return ((share > 0.5) | panel)[part]


def _vertex_parts(vertices, faces) -> tuple[np.ndarray, int]:
    """(f,) the connected part (faces sharing vertices) of each face, and how many there are."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(faces)
    graph = coo_matrix((np.ones(3 * n), (np.repeat(np.arange(n), 3), faces.reshape(-1))), shape=(n, len(vertices)))
    incidence = graph.tocsr()
    parts, part = connected_components(incidence @ incidence.T, directed=False)
    return part, parts


_PANEL_ESCAPE = 0.05
"""A flat part is a panel, enclosing nothing, when its worse side sees the outside this often
(area-weighted): a panel 0.5 over a floor eight times its size, about 0.2; a side of a closed box
of separate sheets with 1% gaps, under 0.01."""


_PANEL_FRONT = 0.5
"""...and whose better side sees the outside at least this often (area-weighted): a panel's top
sees the sky above it (about 0.9 over a floor), a sheet inside a body only what its holes show."""


def _flat_parts(vertices, faces, part, parts: int) -> np.ndarray:
    """(parts,) bool: parts whose faces all lie in one plane (normals within about a degree)."""
    normal = face_normals(vertices, faces, unit=False)
    area2 = np.linalg.norm(normal, axis=1)
    unit = normal / np.maximum(area2, 1e-300)[:, None]
    # the part's normal up to sign: the dominant direction of its faces' normals, area-weighted
    mean = np.zeros((parts, 3))
    reference = unit[np.unique(part, return_index=True)[1]]
    sign = np.sign(np.einsum("ij,ij->i", unit, reference[part]))
    np.add.at(mean, part, unit * (sign * area2)[:, None])
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-300)
    aligned = np.abs(np.einsum("ij,ij->i", unit, mean[part])) > _FLAT_COS
    return np.bincount(part, weights=~aligned, minlength=parts) == 0


_FLAT_COS = 0.9998
"""Faces whose normals are within about a degree of their part's are in its plane."""


def _closed_parts(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per face (f,): the id of its closed, orientable part, or -1 when its part is open. The
    faces of closed parts are oriented in place (consistently, outwards).

    A part is a set of faces joined across edges that exactly two faces share; it is closed when
    each edge of its faces has exactly two faces of the part, whatever other parts' faces meet
    there (two boxes stacked edge to edge, a leg's end on a seat's edge). Faces of zero area
    (slivers along an edge, collapsed corners) decide nothing: they belong to no part.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(faces)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    size = np.ptp(vertices, axis=0).max() if len(vertices) else 1.0
    real = face_areas(vertices, faces) > _SLIVER_AREA * size**2
    start = faces.reshape(-1)
    end = np.roll(faces, -1, axis=1).reshape(-1)
    keys = np.minimum(start, end) * (int(faces.max()) + 1) + np.maximum(start, end)
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


def _union(vertices, faces, parts, extent):
    """The exact union of the closed parts (manifold3d): vertices (u, 3), faces (t, 3) and the
    index into ``faces`` each output face comes from. Parts manifold3d refuses are marked open
    (-1) in ``parts``."""
    import manifold3d

    ids = np.unique(parts[parts >= 0])
    if len(ids) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
    # manifold3d works in float32: a frame around the origin with unit extent keeps precision
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    unit = extent or 1.0
    solids = []
    for part in ids:
        which = np.nonzero(parts == part)[0]
        used, local = np.unique(faces[which], return_inverse=True)
        mesh = manifold3d.Mesh(
            vert_properties=np.ascontiguousarray((vertices[used] - centre) / unit, dtype=np.float32),
            tri_verts=np.ascontiguousarray(local.reshape(-1, 3), dtype=np.uint32),
            face_id=which.astype(np.uint32),
        )
        solid = manifold3d.Manifold(mesh)
        if solid.status() != manifold3d.Error.NoError or solid.is_empty():
            parts[which] = -1
            continue
        solids.append(solid)
    if not solids:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
    union = solids[0] if len(solids) == 1 else manifold3d.Manifold.batch_boolean(solids, manifold3d.OpType.Add)
    out = union.to_mesh()
    union_vertices = np.asarray(out.vert_properties, dtype=np.float64)[:, :3] * unit + centre
    return union_vertices, np.asarray(out.tri_verts, dtype=np.int64), np.asarray(out.face_id, dtype=np.int64)


def _crossed_by(vertices: np.ndarray, faces: np.ndarray):
    """A ``crossed`` test for :func:`_split_mixed`: which of the faces given the edges of the
    closed surface (``vertices``, ``faces``) pass through (ray casting along each edge)."""
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0)
    start, end = vertices[edges[:, 0]], vertices[edges[:, 1]]

    def crossed(tri_vertices, tri_faces):
        out = np.zeros(len(tri_faces), dtype=bool)
        corners = tri_vertices[tri_faces]
        low, high = corners.min(axis=(0, 1)), corners.max(axis=(0, 1))
        near = np.all((np.maximum(start, end) >= low) & (np.minimum(start, end) <= high), axis=1)
        if not near.any():
            return out
        a, b = start[near], end[near]
        length = np.linalg.norm(b - a, axis=1)
        rays = np.concatenate([a, (b - a) / np.maximum(length, 1e-300)[:, None]], axis=1).astype(np.float32)
        hits = raycast.scene(tri_vertices, tri_faces).list_intersections(raycast.tensor(rays))
        ray = hits["ray_ids"].numpy().astype(np.int64)
        t = hits["t_hit"].numpy().astype(np.float64)
        inner = (t > 1e-6 * length[ray]) & (t < (1 - 1e-6) * length[ray])
        out[hits["primitive_ids"].numpy().astype(np.int64)[inner]] = True
        return out

    return crossed


def _split_mixed(vertices, faces, inside, levels, crossed=None):
    """Drop the faces inside a region, keep those outside, split in four those partly inside.

    inside : callable ((m, 3) points, (m,) input face of each) -> (m,) bool, asked at each face's
    corners and centroid. After ``levels`` splits a face still undecided is kept when its centroid is outside.
    crossed : optional callable (vertices, faces) -> (m,) bool: faces the region's boundary passes
    through although their corners and centroid are outside (a handle through the middle of a
    long wall face); they are split too.
    Returns vertices, faces and the index of each output face's input face.
    """
    parent = np.arange(len(faces))
    done_faces, done_parent = [], []
    for level in range(levels + 1):
        if len(faces) == 0:
            break
        tri = vertices[faces]
        probe = np.concatenate([tri.reshape(-1, 3), tri.mean(axis=1)])
        hit = inside(probe, np.concatenate([np.repeat(parent, 3), parent]))
        corner, centre = hit[: 3 * len(faces)].reshape(-1, 3), hit[3 * len(faces) :]
        outside = ~corner.any(axis=1) & ~centre
        if crossed is not None and outside.any() and level < levels:
            through = np.zeros(len(faces), dtype=bool)
            through[outside] = crossed(vertices, faces[outside])
            outside &= ~through
        mixed = ~outside & ~(corner.all(axis=1) & centre)
        if level == levels:
            outside |= mixed & ~centre
            mixed[:] = False
        done_faces.append(faces[outside])
        done_parent.append(parent[outside])
        if not mixed.any():
            break
        # four children per mixed face, new midpoints appended (not shared: a T-junction where a
        # neighbour stays whole is harmless for distances)
        t = faces[mixed]
        mid = (vertices[t] + vertices[np.roll(t, -1, axis=1)]) / 2  # (m, 3 edges, 3)
        m = len(t)
        base = len(vertices)
        vertices = np.concatenate([vertices, mid.reshape(-1, 3)])
        e = base + np.arange(3 * m).reshape(m, 3)  # midpoint of edge k (corner k -> k+1)
        faces = np.concatenate(
            [
                np.stack([t[:, 0], e[:, 0], e[:, 2]], axis=1),
                np.stack([t[:, 1], e[:, 1], e[:, 0]], axis=1),
                np.stack([t[:, 2], e[:, 2], e[:, 1]], axis=1),
                np.stack([e[:, 0], e[:, 1], e[:, 2]], axis=1),
            ]
        )
        parent = np.tile(parent[mixed], 4)
    out = np.concatenate(done_faces) if done_faces else np.zeros((0, 3), dtype=np.int64)
    out_parent = np.concatenate(done_parent) if done_parent else np.zeros(0, dtype=np.int64)
    return vertices, out, out_parent


def _visible(vertices, faces, solid_vertices, solid_faces, rays, min_escape, sheet_escape, rng, batch, extent):
    """Visibility of open faces with the closed union in the scene: the kept faces oriented
    outwards, their sheet flags, and which input faces were kept."""
    tri = vertices[faces]
    normal = face_normals(vertices, faces, unit=False)
    length = np.linalg.norm(normal, axis=1)
    valid = length > 1e-14 * extent**2
    normal = normal / np.maximum(length, 1e-300)[:, None]
    centroid = tri.mean(axis=1)
    eps = 1e-5 * extent
    scene = raycast.scene(
        np.concatenate([vertices, solid_vertices]), np.concatenate([faces, solid_faces + len(vertices)])
    )
    # a first look with few rays decides most faces (one side sees much of the outside, the
    # other none of it); only the uncertain ones get the full count
    first = min(rays, 4)
    escape = _escape(scene, centroid, normal, eps, np.arange(len(faces)), first, rng, batch)
    if first < rays:
        best, worst = escape.max(axis=1), escape.min(axis=1)
        # flat parts too: whether a panel's back sees a little of the sky decides it (_sheet_parts)
        part, parts = _vertex_parts(vertices, faces)
        flat = _flat_parts(vertices, faces, part, parts)[part]
        unsure = np.nonzero(valid & ((best < 0.5) | (worst > 0) | flat))[0]
        if len(unsure):
            escape[unsure] = _escape(scene, centroid, normal, eps, unsure, rays, rng, batch)
    best, worst = escape.max(axis=1), escape.min(axis=1)
    keep = valid & (best >= min_escape)
    oriented = faces.copy()
    vote = np.where(valid, length, 0.0) * (escape[:, 0] - escape[:, 1])  # twice the area x the front's lead
    flip = _outward_flips(faces, vote)
    oriented[flip] = oriented[flip][:, ::-1]
    lead = np.where(flip, -1.0, 1.0) * (escape[:, 0] - escape[:, 1])  # the outward side's lead
    return oriented[keep], (worst >= sheet_escape)[keep], keep, escape[keep], lead[keep]


def _outward_flips(faces: np.ndarray, vote: np.ndarray) -> np.ndarray:
    """(f,) bool: which faces to reverse so that each patch (faces joined across edges that two
    faces share) is wound consistently and faces the way its faces' votes say, area-weighted
    (``vote`` > 0: the face's front sees more of the outside than its back).

    A face alone can be fooled (in a crease beside a hole its back, through the hole, may see more
    sky than its front; measured on a make-shapes chair, a bulge 20 cells deep in front of one
    such face); its patch cannot. A patch that cannot be wound consistently (a Moebius strip)
    keeps each face's own vote.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(faces)
    if n == 0:
        return np.zeros(0, dtype=bool)
    # directed edges a -> b of every face; an undirected edge joins two faces when exactly two
    # faces have it, consistently wound when they run along it in opposite directions
    a, b = faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1)
    owner = np.repeat(np.arange(n), 3)
    key = np.minimum(a, b).astype(np.int64) * (int(faces.max()) + 1) + np.maximum(a, b)
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


def _sky(scene, points, rays, rng) -> np.ndarray:
    """(n,): fraction of ``rays`` directions (evenly spread, rotated per point) in which a point
    sees infinity past the scene's faces."""
    if len(points) == 0:
        return np.zeros(0)
    directions = np.einsum("pij,kj->pki", _random_rotations(len(points), rng), fibonacci_directions(rays))
    origins = np.broadcast_to(points[:, None, :], directions.shape)
    r = np.concatenate([origins, directions], axis=2).reshape(-1, 6).astype(np.float32)
    hit = scene.test_occlusions(raycast.tensor(r)).numpy().reshape(len(points), rays)
    return 1.0 - hit.mean(axis=1)


def _escape(scene, centroid, normal, eps, which, rays, rng, batch) -> np.ndarray:
    """(len(which), 2): fraction of ``rays`` hemisphere rays that reach infinity from the front
    (+normal) and back side of each face in ``which``."""
    directions = fibonacci_directions(2 * rays)
    out = np.zeros((len(which), 2))
    per_batch = max(1, batch // (2 * rays))
    for start in range(0, len(which), per_batch):
        index = which[start : start + per_batch]
        n = normal[index]
        # a random rotation per face: no direction pattern shared by neighbouring faces
        dirs = np.einsum("fij,kj->fki", _random_rotations(len(index), rng), directions)  # (f, 2k, 3)
        for side, sign in enumerate((1.0, -1.0)):
            facing = np.einsum("fki,fi->fk", dirs, sign * n) > 0
            # of each antipodal pair of directions, the one in this side's hemisphere
            chosen = np.where(facing[..., None], dirs, -dirs)[:, :rays]
            origins = np.broadcast_to((centroid[index] + sign * eps * n)[:, None, :], chosen.shape)
            r = np.concatenate([origins, chosen], axis=2).reshape(-1, 6).astype(np.float32)
            hit = scene.test_occlusions(raycast.tensor(r)).numpy().reshape(len(index), rays)
            out[start : start + len(index), side] = 1.0 - hit.mean(axis=1)
    return out


def _random_rotations(count: int, rng: np.random.Generator) -> np.ndarray:
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


def _merge(vertices: np.ndarray, faces: np.ndarray, decimals: int = 7):
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


def _edges(faces: np.ndarray):
    """Edge e of face f joins its corners e and e+1: (f, 3) ids of the unique edges, and how many
    faces share each edge."""
    pairs = np.sort(np.stack([faces, np.roll(faces, -1, axis=1)], axis=2), axis=2).reshape(-1, 2)
    keys = pairs[:, 0].astype(np.int64) * (int(faces.max()) + 1) + pairs[:, 1]
    _, edge_id, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return edge_id.reshape(-1, 3), counts


def _pseudonormals(vertices: np.ndarray, faces: np.ndarray, edge_id: np.ndarray):
    """Face normals (f, 3), edge pseudonormals per face corner-edge (f, 3, 3) and angle-weighted
    vertex normals (v, 3) of a mesh; ``edge_id`` from :func:`_edges`."""
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


def winding_numbers(
    surface: OuterSurface, points: np.ndarray, *, rays: int = 64, rng: np.random.Generator | None = None, scene=None
) -> np.ndarray:
    """Generalized winding number (n,) of an oriented surface at ``points``, estimated from the
    signed crossings of ``rays`` rays per point (evenly spread directions, randomly rotated per
    point)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    if scene is None:
        scene = surface.cached("scene", lambda: raycast.scene(surface.vertices, surface.faces))
    return _crossings(scene, face_normals(surface.vertices, surface.faces, unit=False), points, rays, rng)


def _crossings(scene, face_n, points, rays, rng, *, point_group=None, face_group=None) -> np.ndarray:
    """The mean signed number of crossings (n,) of ``rays`` rays from each point through the
    scene's faces (normals ``face_n``): the winding number's estimate. With groups, a point's
    rays ignore the faces of its own group (the winding number of the other parts)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return np.zeros(0)
    total = np.zeros(len(points) * rays)
    base = fibonacci_directions(rays)
    step = max(1, (1 << 21) // rays)  # bounded memory for many points
    for s in range(0, len(points), step):
        chunk = points[s : s + step]
        directions = np.einsum("pij,kj->pki", _random_rotations(len(chunk), rng), base)
        origins = np.broadcast_to(chunk[:, None, :], directions.shape)
        r = np.concatenate([origins, directions], axis=2).reshape(-1, 6).astype(np.float32)
        hits = scene.list_intersections(raycast.tensor(r))
        ray = hits["ray_ids"].numpy().astype(np.int64)
        face = hits["primitive_ids"].numpy().astype(np.int64)
        crossing = np.sign(np.einsum("ij,ij->i", r[ray, 3:].astype(np.float64), face_n[face]))
        if point_group is not None:
            crossing[face_group[face] == point_group[s + ray // rays]] = 0.0
        np.add.at(total, s * rays + ray, crossing)
    return total.reshape(len(points), rays).mean(axis=1)


_BURIED_FIRST = 8
"""Rays per probe in the first look for open faces buried in other open parts; probes whose
estimate reaches :data:`_BURIED_MAYBE` are counted again with 32."""
_BURIED_MAYBE = 0.25


def _meeting(tri: np.ndarray, part: np.ndarray, parts: int, pad: float = 0.0) -> np.ndarray:
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


_CONTACT = 1e-3
"""A face of the closed parts' union whose outside, this far off it (times the mesh's extent),
is inside the union again lies between two parts that touch: buried, not outer surface. A gap
that narrow (a quarter of a cell at 256^3) is rounding or clearance no grid resolves: on
cycloidal.ply, 1e-4 left 4.7% of the surface samples buried, 5e-4 1.1%, 1e-3 0.9% (the exact
winding number 0.0005 off both sides of a sample inside)."""


def _drop_contacts(vertices, faces, source_part, scene, extent):
    """The union of the closed parts less its faces buried between parts that touch: manifold3d
    keeps both faces where two closed parts meet face to face with a gap of rounding error
    (measured on cycloidal.ply: 13% of its union's area, where surface samples landed and
    ``sdfkit watertight`` could mesh nothing). A face is buried where the point just outside its
    centroid (:data:`_CONTACT`) is inside the union; a face partly in contact goes or stays by its
    centroid (splitting such faces in four twice, probed at their corners too, took cycloidal.ply
    from 2.2 s to 6.5 s and its buried samples from 0.9% to 0.4%). Only faces of parts whose boxes
    meet another part's are looked at.

    source_part : (f,) the closed part each face comes from.
    Returns vertices, faces and the gap within which points are inside (0 when nothing was
    dropped; :func:`_in_contact`)."""
    parts, part = np.unique(source_part, return_inverse=True)
    if len(parts) < 2:
        return vertices, faces, 0.0
    eps = _CONTACT * extent
    which = np.nonzero(_meeting(vertices[faces], part, len(parts), pad=eps)[part])[0]
    if len(which) == 0:
        return vertices, faces, 0.0
    tri = vertices[faces[which]]
    buried = raycast.occupancy(scene, tri.mean(axis=1) + eps * face_normals(vertices, faces[which]))
    if not buried.any():
        return vertices, faces, 0.0
    keep = np.ones(len(faces), dtype=bool)
    keep[which[buried]] = False
    return vertices, faces[keep], 2 * eps


def _drop_buried(vertices, faces, sheet, rng, levels: int = 4):
    """Open faces enclosed by the other open parts (the winding number of the parts other than
    their own, faces joined by shared vertices, above 1/2) are interior: dropped, and faces partly
    enclosed split in four up to ``levels`` times. A teapot's spout pushed into its open body:
    the stretch of the spout inside the body would otherwise sign the body's inside as outside
    (its outward side faces it). Sheets enclose nothing and are kept whole.

    Returns vertices, faces, the index of each output face's input face, and (f,) bool: faces
    still half enclosed by other parts (junctions), where the winding number decides.
    """
    keep = np.arange(len(faces))
    nothing = (vertices, faces, keep, np.zeros(len(faces), dtype=bool))
    enclosing = np.nonzero(~sheet)[0]
    if len(enclosing) < 8:
        return nothing
    part, parts = _vertex_parts(vertices, faces[enclosing])
    if parts < 2:
        return nothing
    # only parts whose boxes meet another part's box can be buried in one
    which = enclosing[_meeting(vertices[faces[enclosing]], part, parts)[part]]
    if len(which) == 0:
        return nothing
    group = np.full(len(faces), -1)
    group[enclosing] = part
    face_n = face_normals(vertices, faces[enclosing], unit=False)
    scene = raycast.scene(vertices, faces[enclosing])

    def enclosure(points, mine):
        w = _crossings(scene, face_n, points, _BURIED_FIRST, rng, point_group=mine, face_group=part)
        again = np.nonzero(w >= _BURIED_MAYBE)[0]
        if len(again):
            w[again] = _crossings(scene, face_n, points[again], 32, rng, point_group=mine[again], face_group=part)
        return w

    vertices, split, parent = _split_mixed(
        vertices, faces[which], lambda p, f: enclosure(p, group[which[f]]) > 0.5, levels
    )
    rest = np.setdiff1d(keep, which)
    # what is left of them but still half enclosed by other parts (the body's wall across a
    # spout's mouth, a spout's stretch just outside the body) is a junction: the winding number
    # decides behind it, as the pseudonormal of one part cannot
    junction = np.zeros(len(rest) + len(split), dtype=bool)
    junction[len(rest) :] = enclosure(vertices[split].mean(axis=1), group[which[parent]]) >= _BURIED_MAYBE
    return vertices, np.concatenate([faces[rest], split]), np.concatenate([rest, which[parent]]), junction


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


def signed_distance(
    surface: OuterSurface,
    points: np.ndarray,
    *,
    tolerance: float = 1e-4,
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
    inside |= _in_contact(surface, points, closest, face, uv, inside)
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
    result[rest] |= _in_contact(surface, points[rest], closest, face, uv, result[rest])
    near_open = ~surface.closed[face] & ~result[rest]
    if near_open.any():
        result[rest[near_open]] = _open_side(surface, points[rest], closest, face, uv, near_open, 1e-4, rng)[0]
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


def _in_contact(surface: OuterSurface, points, closest, face, uv, inside) -> np.ndarray:
    """(n,) bool: points in a gap between touching closed parts whose faces were dropped
    (:func:`_drop_contacts`): outside the union by its parity, behind the closed face closest to
    them, and within :attr:`OuterSurface.contact` of the union's surface. Inside: the gap is
    rounding error, and signing it outside would put the distance to the nearest kept face, far
    away, inside the solid."""
    out = np.zeros(len(points), dtype=bool)
    if surface.contact <= 0:
        return out
    which = np.nonzero(~inside & surface.closed[face])[0]
    if len(which) == 0:
        return out
    along = _pseudonormal_side(surface, points[which], closest[which], face[which], uv[which], 1e-4)[0]
    behind = which[along < 0]
    if len(behind):
        scene = surface.cached("solid_scene", lambda: raycast.scene(surface.solid_vertices, surface.solid_faces))
        gap = scene.compute_distance(raycast.tensor(points[behind])).numpy() < surface.contact
        out[behind[gap]] = True
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
            "open_part", lambda: OuterSurface(surface.vertices, surface.faces[~surface.closed], *_OPEN_REST)
        )
        which = idx[doubtful]
        winding = winding_numbers(part, points[which], rng=rng)
        # near 1/2 the estimate's noise (a standard deviation of about 0.06 at 64 rays) moves the
        # level set across a hole by up to two cells at 256^3 (measured on a holed make-shapes
        # table): four times more rays there, pooled with the first
        close = np.nonzero(np.abs(winding - 0.5) < _RECOUNT)[0]
        if len(close):
            again = winding_numbers(part, points[which[close]], rays=256, rng=rng)
            winding[close] = (winding[close] + 4.0 * again) / 5.0
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


def _rim_structure(surface: OuterSurface):
    """Edge ids and face counts (:func:`_edges`) and pseudonormals (:func:`_pseudonormals`) of a surface."""
    edge_id, edge_faces = _edges(surface.faces)
    return (edge_id, edge_faces, *_pseudonormals(surface.vertices, surface.faces, edge_id))


_OPEN_REST = (np.zeros(0, dtype=bool),) * 4 + _NONE


def sharp_edges(surface: OuterSurface, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges of the outer surface where its two faces meet at more than ``angle`` degrees
    (the angle between their outward normals; 0 on a flat stretch, 90 at a cube's edge):
    endpoints ``a``, ``b`` (m, 3) and the unit mean normal of the two faces (m, 3).

    Coincident vertices are merged first (faces split where parts meet share no vertex ids).
    Edges on an open part's boundary (one face) or shared by more than two faces, and edges of
    zero-area faces, are none. Where a sheet meets a face (sheets face either way) the angle is
    taken between the lines of the normals, so a flat sheet has no sharp edge whichever way its
    faces were turned."""
    vertices, faces, index = _merge(surface.vertices, surface.faces)
    if len(faces) == 0:
        empty = np.zeros((0, 3))
        return empty, empty, empty
    normals = face_normals(vertices, faces)
    sheet = surface.sheet[index]
    edge_id, counts = _edges(faces)
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
