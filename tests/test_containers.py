"""Signs on what real files break: containers of single-sided sheets are air inside, near-closed
bodies stay solid, closed parts that touch stay closed, loose-triangle soups enclose nothing.
Truth by construction (sdfkit.geometry.constructions) or by an analytic inside test."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from sdfkit.geometry.constructions import CONTAINERS, NEAR_CLOSED, OTHERS, construction
from sdfkit.geometry.sign import outer_surface, signed_distance, unsigned_distance


def _score(vertices, faces, inside, *, n=20_000, seed=0) -> float:
    """Share of uniform points farther than 0.005 from every face whose sign is right."""
    rng = np.random.default_rng(seed)
    surface = outer_surface(vertices, faces, rng=rng)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    pad = 0.1 * float((high - low).max())
    points = rng.uniform(low - pad, high + pad, size=(n, 3))
    values = signed_distance(surface, points, rng=rng)
    far = unsigned_distance(vertices, faces, points) > 0.005
    return float(((values < 0) == inside(points))[far].mean())


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_containers_are_air_inside(name):
    vertices, faces, inside = construction(name)
    assert _score(vertices, faces, inside) >= 0.995


@pytest.mark.parametrize("name", list(NEAR_CLOSED))
def test_near_closed_bodies_stay_solid(name):
    vertices, faces, inside = construction(name)
    assert _score(vertices, faces, inside) >= 0.995


@pytest.mark.parametrize("name", list(OTHERS))
def test_panels_inner_sheets_touching_parts_and_soups(name):
    vertices, faces, inside = construction(name)
    assert _score(vertices, faces, inside) >= 0.995


def _in_box(points, low, high):
    return np.all((points > low) & (points < high), axis=1)


def test_closed_parts_that_touch_stay_closed():
    a = trimesh.creation.box(bounds=[[0, 0, 0], [1, 1, 1]])
    b = trimesh.creation.box(bounds=[[1, 0, 1], [2, 1, 2]])  # meets a along one edge
    vertices, faces = np.concatenate([a.vertices, b.vertices]), np.concatenate([a.faces, b.faces + 8])
    surface = outer_surface(vertices, faces, rng=np.random.default_rng(0))
    assert surface.closed.all() and len(surface.solid_faces) > 0

    def inside(p):
        return _in_box(p, [0, 0, 0], [1, 1, 1]) | _in_box(p, [1, 0, 1], [2, 1, 2])

    assert _score(vertices, faces, inside) >= 0.999
    # a sliver face of zero area along an edge does not open the box
    edge = a.edges_unique[0]
    middle = a.vertices[edge].mean(axis=0)
    sliver_vertices = np.concatenate([a.vertices, [middle]])
    sliver_faces = np.concatenate([a.faces, [[edge[0], 8, edge[1]]]])
    surface = outer_surface(sliver_vertices, sliver_faces, rng=np.random.default_rng(0))
    assert surface.closed.all() and len(surface.solid_faces) == 12


def test_a_soup_of_loose_triangles_has_no_inside():
    rng = np.random.default_rng(3)
    corners = rng.uniform(-1, 1, size=(100, 3, 3))
    vertices, faces = corners.reshape(-1, 3), np.arange(300).reshape(-1, 3)
    surface = outer_surface(vertices, faces, rng=rng)
    assert surface.soup and surface.sheet.all()
    points = rng.uniform(-1, 1, size=(5000, 3))
    assert (signed_distance(surface, points, rng=rng) > 0).all()
    # a closed mesh written as loose triangles (an STL) is no soup: its vertices merge
    ball = trimesh.creation.icosphere(subdivisions=2)
    loose = ball.vertices[ball.faces].reshape(-1, 3)
    surface = outer_surface(loose, np.arange(len(loose)).reshape(-1, 3), rng=rng)
    assert not surface.soup and (signed_distance(surface, np.zeros((1, 3)), rng=rng) < 0).all()


def test_watertight_makes_walls_of_a_container_and_files_open3d_reads_closed(tmp_path):
    """The lidless box comes out as an open box with walls (plates a cell thick), not a block; an
    STL input is written as OBJ, which shares vertices, and open3d reads it back closed."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    folder = tmp_path / "in"
    folder.mkdir()
    vertices, faces, _ = construction("lidless box")
    trimesh.Trimesh(vertices, faces, process=False).export(folder / "box.stl")
    out = tmp_path / "wt"
    run = subprocess.run(
        [sys.executable, "-m", "cli.main", "watertight", folder, "-o", out, "--resolution", "48", "--workers", "1"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    assert "1 mesh written as .obj from .stl" in run.stdout
    mesh = trimesh.load(out / "box.obj")
    assert mesh.is_watertight and mesh.volume < 0.2 * 0.8  # walls, not the 0.8 block
    row = json.loads((tmp_path / "wt.report.jsonl").read_text().splitlines()[0])
    assert all(row[k] for k in ("trimesh_watertight", "o3d_edge_manifold", "o3d_vertex_manifold", "o3d_orientable"))


def test_make_shapes_makes_containers_with_their_truth(tmp_path):
    """make-shapes' container category: each shape's manifest rebuilds its truth (air inside, the
    mug's handle solid), and the signs follow it on the mesh as written, with the defects a
    container takes."""
    from sdfkit.geometry.mesh import load_mesh
    from sdfkit.geometry.shapes import Container, make_shapes, solid_from_json

    manifest = make_shapes(
        tmp_path, 8, seed=2, categories=("container",), defects=("clean", "flipped", "soup", "holes")
    )
    kinds = set()
    for shape_id, info in manifest.items():
        assert info["synset"] == "99000002" and info["defect"] in ("clean", "flipped", "soup"), shape_id
        truth = solid_from_json(info["parts"], info.get("holes"), info.get("sheets"))
        assert isinstance(truth, Container)
        kinds.add(truth.construction)
        mesh = load_mesh(tmp_path / info["synset"] / shape_id / "models" / "model_normalized.obj")

        def inside(points, truth=truth):
            return truth.sdf(points) < 0

        assert _score(mesh.vertices, mesh.faces, inside, n=8000) >= 0.995, shape_id
    assert len(kinds) >= 4


def test_the_store_and_info_say_which_meshes_are_soups_and_containers(tmp_path):
    """prepare-shapenet records what each outer surface is made of (outer/*), and `sdfkit info`
    lists the soups and the shapes with containers; a soup gets no negative sample."""
    import json
    import shutil
    from pathlib import Path

    import zarr
    from test_cli import sdfkit

    from sdfkit.geometry.constructions import cup

    folder = tmp_path / "meshes"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "meshes" / "soup.stl", folder / "soup.stl")
    vertices, faces, _ = cup()
    trimesh.Trimesh(vertices, faces, process=False).export(folder / "cup.obj")
    trimesh.creation.box().export(folder / "box.obj")
    store = tmp_path / "s.zarr"
    sdfkit("prepare-shapenet", folder, "-o", store, "--samples", "4000", "--surface-samples", "500", "--workers", "1")
    group = zarr.open_group(str(store), mode="r")
    row = {str(i): k for k, i in enumerate(group["meta/id"][:])}
    assert list(group["outer/soup"][:][[row["soup"], row["cup"], row["box"]]]) == [1, 0, 0]
    assert list(group["outer/containers"][:][[row["soup"], row["cup"], row["box"]]]) == [0, 1, 0]
    assert group["outer/closed_share"][row["box"]] == 1 and group["outer/sheet_share"][row["cup"]] == 1
    assert (group["sdf/values"][row["soup"]] > 0).all()
    report = json.loads(sdfkit("info", store, "--json").stdout)["outer"]
    assert report["soups"] == {"count": 1, "ids": ["soup"]}
    assert report["with containers"] == {"count": 1, "ids": ["cup"]}
    text = sdfkit("info", store).stdout
    assert "soups                       1 (first: soup)" in text
