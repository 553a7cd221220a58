"""The pieces of a mesh's outer surface (:func:`sdfkit.geometry.sign.outer_surface` puts them
together): the exact union of the closed parts, the open faces' visibility from both sides, the
open parts that enclose nothing (sheets, flat panels over a floor, containers), faces buried in
other parts or touching them, and the splitting of faces partly inside a region.

Ray casting through :mod:`sdfkit.geometry.raycast`; mesh structure from
:mod:`sdfkit.geometry.topology`.
"""

from __future__ import annotations

import manifold3d
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sdfkit.geometry import raycast
from sdfkit.geometry.basics import face_areas, face_normals
from sdfkit.geometry.topology import (
    boxes_meeting,
    edge_ids,
    fibonacci_directions,
    outward_flips,
    random_rotations,
    vertex_parts,
)

__all__ = [
    "find_containers",
    "sheet_parts",
    "union_of_parts",
    "crossed_by",
    "split_mixed",
    "visible_faces",
    "sky_share",
    "crossings",
    "drop_contacts",
    "drop_buried",
]


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


def find_containers(vertices, faces, open_mask, rng, extent: float, solid_scene=None) -> tuple[np.ndarray, int]:
    """(f,) bool: faces of open parts that are containers, whose inside is air; and their count.

    A container is an open part (faces joined across edges that two of them share) each of whose
    openings has a lip (:data:`_LIP`, :data:`_LIP_SHARE`) and leads outside (:data:`_OPEN_SKY`):
    a cup, a bowl, a lidless box, a drawer, a vase (one opening), a pipe or a lamp shade (two).
    An opening inside the closed parts' union (``solid_scene``) is shut: a tube whose one end is
    in a solid ball is a cup. Its walls are sheets: they enclose nothing on either side. A body
    with a hole cut into it (its rim runs along the wall that is missing), an opening covered by
    another part (a jar's lid) or inside an open body (a teapot's spout) are not.
    """

    out = np.zeros(len(faces), dtype=bool)
    ids = np.nonzero(open_mask)[0]
    if len(ids) < 2:
        return out, 0
    part_faces = faces[ids]
    edge_id, counts = edge_ids(part_faces)
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
    corners, who, weight, centre, axis = _opening_planes(vertices, a, b, opening, openings)
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
    fill, normals_fill, owners = _across_openings(tried, who, corners, centre, axis)
    escape = _escape(raycast.scene(vertices, faces), fill, normals_fill, 1e-5 * extent,
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


def _opening_planes(vertices, a, b, opening, openings: int):
    """Each opening's rim corners (both ends of its rim edges ``a`` -> ``b``) and the opening of
    each, the corners' count, their centre and the opening's plane normal: the least-spread
    direction of its corners."""
    corners = np.concatenate([vertices[a], vertices[b]])
    who = np.concatenate([opening, opening])
    weight = np.bincount(who, minlength=openings).astype(np.float64)
    centre = np.stack([np.bincount(who, corners[:, k], minlength=openings) for k in range(3)], axis=1)
    centre /= np.maximum(weight, 1)[:, None]
    offset = corners - centre[who]
    scatter = np.zeros((openings, 3, 3))
    np.add.at(scatter, who, offset[:, :, None] * offset[:, None, :])
    axis = np.linalg.eigh(scatter)[1][:, :, 0]  # the smallest eigenvalue's vector
    return corners, who, weight, centre, axis


def _across_openings(tried, who, corners, centre, axis):
    """Points across each opening of ``tried`` (its centre, and rings at 0.3, 0.6 and 0.85 of the
    way to up to 48 of its rim corners), the opening's normal at each, and each point's opening."""
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
    return np.concatenate(fills), np.concatenate(normals_fill), np.concatenate(owners)


def sheet_parts(vertices, faces, two_sided, escape) -> np.ndarray:
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
    part, parts = vertex_parts(vertices, faces)
    area = face_areas(vertices, faces)
    total = np.maximum(np.bincount(part, weights=area, minlength=parts), 1e-300)
    share = np.bincount(part, weights=area * two_sided, minlength=parts) / total
    back = np.bincount(part, weights=area * worst, minlength=parts) / total
    front = np.bincount(part, weights=area * best, minlength=parts) / total
    panel = _flat_parts(vertices, faces, part, parts) & (back >= _PANEL_ESCAPE) & (front >= _PANEL_FRONT)
    return ((share > 0.5) | panel)[part]


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


def union_of_parts(vertices, faces, parts, extent):
    """The exact union of the closed parts (manifold3d): vertices (u, 3), faces (t, 3) and the
    index into ``faces`` each output face comes from. Parts manifold3d refuses are marked open
    (-1) in ``parts``."""

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


def crossed_by(vertices: np.ndarray, faces: np.ndarray):
    """A ``crossed`` test for :func:`split_mixed`: which of the faces given the edges of the
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


def split_mixed(vertices, faces, inside, levels, crossed=None):
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


def visible_faces(vertices, faces, solid_vertices, solid_faces, rays, min_escape, sheet_escape, rng, batch, extent):
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
        # flat parts too: whether a panel's back sees a little of the sky decides it (sheet_parts)
        part, parts = vertex_parts(vertices, faces)
        flat = _flat_parts(vertices, faces, part, parts)[part]
        unsure = np.nonzero(valid & ((best < 0.5) | (worst > 0) | flat))[0]
        if len(unsure):
            escape[unsure] = _escape(scene, centroid, normal, eps, unsure, rays, rng, batch)
    best, worst = escape.max(axis=1), escape.min(axis=1)
    keep = valid & (best >= min_escape)
    oriented = faces.copy()
    vote = np.where(valid, length, 0.0) * (escape[:, 0] - escape[:, 1])  # twice the area x the front's lead
    flip = outward_flips(faces, vote)
    oriented[flip] = oriented[flip][:, ::-1]
    lead = np.where(flip, -1.0, 1.0) * (escape[:, 0] - escape[:, 1])  # the outward side's lead
    return oriented[keep], (worst >= sheet_escape)[keep], keep, escape[keep], lead[keep]


def sky_share(scene, points, rays, rng) -> np.ndarray:
    """(n,): fraction of ``rays`` directions (evenly spread, rotated per point) in which a point
    sees infinity past the scene's faces."""
    if len(points) == 0:
        return np.zeros(0)
    directions = np.einsum("pij,kj->pki", random_rotations(len(points), rng), fibonacci_directions(rays))
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
        dirs = np.einsum("fij,kj->fki", random_rotations(len(index), rng), directions)  # (f, 2k, 3)
        for side, sign in enumerate((1.0, -1.0)):
            facing = np.einsum("fki,fi->fk", dirs, sign * n) > 0
            # of each antipodal pair of directions, the one in this side's hemisphere
            chosen = np.where(facing[..., None], dirs, -dirs)[:, :rays]
            origins = np.broadcast_to((centroid[index] + sign * eps * n)[:, None, :], chosen.shape)
            r = np.concatenate([origins, chosen], axis=2).reshape(-1, 6).astype(np.float32)
            hit = scene.test_occlusions(raycast.tensor(r)).numpy().reshape(len(index), rays)
            out[start : start + len(index), side] = 1.0 - hit.mean(axis=1)
    return out


def crossings(scene, face_n, points, rays, rng, *, point_group=None, face_group=None) -> np.ndarray:
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
        directions = np.einsum("pij,kj->pki", random_rotations(len(chunk), rng), base)
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


_CONTACT = 1e-3
"""A face of the closed parts' union whose outside, this far off it (times the mesh's extent),
is inside the union again lies between two parts that touch: buried, not outer surface. A gap
that narrow (a quarter of a cell at 256^3) is rounding or clearance no grid resolves: on
cycloidal.ply, 1e-4 left 4.7% of the surface samples buried, 5e-4 1.1%, 1e-3 0.9% (the exact
winding number 0.0005 off both sides of a sample inside)."""


def drop_contacts(vertices, faces, source_part, scene, extent):
    """The union of the closed parts less its faces buried between parts that touch: manifold3d
    keeps both faces where two closed parts meet face to face with a gap of rounding error
    (measured on cycloidal.ply: 13% of its union's area, where surface samples landed and
    ``sdfkit watertight`` could mesh nothing). A face is buried where the point just outside its
    centroid (:data:`_CONTACT`) is inside the union; a face partly in contact goes or stays by its
    centroid (splitting such faces in four twice, probed at their corners too, took cycloidal.ply
    from 2.2 s to 6.5 s and its buried samples from 0.9% to 0.4%). Only faces of parts whose boxes
    meet another part's are looked at.

    source_part : (f,) the closed part each face comes from.
    Returns vertices, faces and the contact distance: the widest gap between parts whose points
    are inside (0 when nothing was dropped; :func:`sdfkit.geometry.sign.in_gap`)."""
    parts, part = np.unique(source_part, return_inverse=True)
    if len(parts) < 2:
        return vertices, faces, 0.0
    eps = _CONTACT * extent
    which = np.nonzero(boxes_meeting(vertices[faces], part, len(parts), pad=eps)[part])[0]
    if len(which) == 0:
        return vertices, faces, 0.0
    tri = vertices[faces[which]]
    buried = raycast.occupancy(scene, tri.mean(axis=1) + eps * face_normals(vertices, faces[which]))
    if not buried.any():
        return vertices, faces, 0.0
    keep = np.ones(len(faces), dtype=bool)
    keep[which[buried]] = False
    return vertices, faces[keep], eps


def drop_buried(vertices, faces, sheet, rng, levels: int = 4):
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
    part, parts = vertex_parts(vertices, faces[enclosing])
    if parts < 2:
        return nothing
    # only parts whose boxes meet another part's box can be buried in one
    which = enclosing[boxes_meeting(vertices[faces[enclosing]], part, parts)[part]]
    if len(which) == 0:
        return nothing
    group = np.full(len(faces), -1)
    group[enclosing] = part
    face_n = face_normals(vertices, faces[enclosing], unit=False)
    scene = raycast.scene(vertices, faces[enclosing])

    def enclosure(points, mine):
        w = crossings(scene, face_n, points, _BURIED_FIRST, rng, point_group=mine, face_group=part)
        again = np.nonzero(w >= _BURIED_MAYBE)[0]
        if len(again):
            w[again] = crossings(scene, face_n, points[again], 32, rng, point_group=mine[again], face_group=part)
        return w

    vertices, split, parent = split_mixed(
        vertices, faces[which], lambda p, f: enclosure(p, group[which[f]]) > 0.5, levels
    )
    rest = np.setdiff1d(keep, which)
    # what is left of them but still half enclosed by other parts (the body's wall across a
    # spout's mouth, a spout's stretch just outside the body) is a junction: the winding number
    # decides behind it, as the pseudonormal of one part cannot
    junction = np.zeros(len(rest) + len(split), dtype=bool)
    junction[len(rest) :] = enclosure(vertices[split].mean(axis=1), group[which[parent]]) >= _BURIED_MAYBE
    return vertices, np.concatenate([faces[rest], split]), np.concatenate([rest, which[parent]]), junction
