"""sdfkit.geometry.watertight and sdfkit watertight: closed, manifold meshes checked against exact
shapes (analytic SDFs, brute-force distances) and by two libraries."""

from __future__ import annotations

import json
import shutil

import numpy as np
import open3d as o3d
import pytest
import trimesh
import zarr
from conftest import DATA, kill_midway
from test_cli import assert_user_error, sdfkit
from test_sign import _solid

from sdfkit.builders.watertight import CHECKS, WatertightConfig, mesh_checks, watertight_mesh
from sdfkit.geometry import shapes
from sdfkit.geometry.mesh import Mesh, sample_surface
from sdfkit.geometry.watertight import level_set
from sdfkit.recipes.deepsdf import signed_mesh


def _closed_and_manifold(vertices, faces) -> bool:
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    o3d_mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces))
    return bool(
        mesh.is_watertight
        and mesh.is_winding_consistent
        and mesh.volume > 0
        and o3d_mesh.is_edge_manifold(allow_boundary_edges=False)
        and o3d_mesh.is_vertex_manifold()
        and o3d_mesh.is_orientable()
    )


def _sphere_seeds(radius, count, rng):
    seeds = rng.normal(size=(count, 3))
    return radius * seeds / np.linalg.norm(seeds, axis=1, keepdims=True)


def _sphere(resolution=64, block=64, seeds=4000, radius=0.7):
    return level_set(
        lambda p: np.linalg.norm(p, axis=1) - radius,
        origin=np.full(3, -1.0),
        cell=2.0 / resolution,
        shape=(resolution,) * 3,
        seeds=_sphere_seeds(radius, seeds, np.random.default_rng(0)),
        block=block,
    )


def test_a_sphere_is_closed_exact_and_sparse():
    result = _sphere()
    assert _closed_and_manifold(result.vertices, result.faces)
    cell = 2.0 / 64
    radius = np.linalg.norm(result.vertices, axis=1)
    assert np.abs(radius - 0.7).max() < 0.01 * cell  # vertices interpolate an exact linear-ish field
    volume = trimesh.Trimesh(result.vertices, result.faces, process=False).volume
    assert abs(volume / (4 / 3 * np.pi * 0.7**3) - 1) < 0.005
    assert result.evaluated < 0.1 * 65**3  # a band, not the grid


def test_blocks_and_seeds_do_not_change_the_mesh():
    """Blocks of 16 cells merge into the same mesh as one block of 64; a single seed grows into
    the same band as thousands."""

    from scipy.spatial import cKDTree

    def assert_same(a, b):  # the same triangles, up to float32 rounding of block-local coordinates
        assert len(a.faces) == len(b.faces) and len(a.vertices) == len(b.vertices)
        distance, _ = cKDTree(b.vertices[b.faces].mean(axis=1)).query(a.vertices[a.faces].mean(axis=1))
        assert distance.max() < 1e-6

    reference = _sphere()
    small_blocks = _sphere(block=16)
    assert _closed_and_manifold(small_blocks.vertices, small_blocks.faces)
    assert_same(small_blocks, reference)
    assert_same(_sphere(seeds=1), reference)


def test_a_torus_keeps_its_hole():
    major, minor = 0.5, 0.2

    def torus(p):
        q = np.stack([np.hypot(p[:, 0], p[:, 1]) - major, p[:, 2]], axis=1)
        return np.linalg.norm(q, axis=1) - minor

    angle = np.random.default_rng(1).uniform(0, 2 * np.pi, (2, 5000))
    seeds = np.stack(
        [
            (major + minor * np.cos(angle[1])) * np.cos(angle[0]),
            (major + minor * np.cos(angle[1])) * np.sin(angle[0]),
            minor * np.sin(angle[1]),
        ],
        axis=1,
    )
    result = level_set(torus, origin=np.full(3, -1.0), cell=2 / 64, shape=(64,) * 3, seeds=seeds)
    mesh = trimesh.Trimesh(result.vertices, result.faces, process=False)
    assert _closed_and_manifold(result.vertices, result.faces)
    assert mesh.euler_number == 0  # genus 1
    assert abs(mesh.volume / (2 * np.pi**2 * major * minor**2) - 1) < 0.01
    assert np.abs(torus(result.vertices)).max() < 0.02 * (2 / 64)


@pytest.fixture(scope="module")
def clean():
    solid = _solid()  # the torus-capsule-box union of the sign tests
    return solid, solid.mesh(40)


def _distances_to_truth(vertices, faces, clean, offset, scale, rng):
    """Point to surface, both ways, normalized frame, against the undamaged mesh (the surface the
    damaged copy was cut from; the analytic shape differs from it by its tessellation): exact
    closest points on every face of the other mesh (open3d), from 20,000 area-weighted points."""
    from sdfkit.geometry.sign import unsigned_distance

    clean_vertices = (np.asarray(clean.vertices) + offset) * scale
    clean_faces = np.asarray(clean.faces)
    points, _ = sample_surface(vertices, faces, 20000, rng=rng)
    truth_points, _ = sample_surface(clean_vertices, clean_faces, 20000, rng=rng)
    return unsigned_distance(clean_vertices, clean_faces, points), unsigned_distance(vertices, faces, truth_points)


@pytest.mark.parametrize(
    "defect", ["clean", "holes", "interior", "flipped", "duplicated", "double-walls", "soup", "overlap", "combo"]
)
def test_every_defect_gives_a_closed_mesh_near_the_clean_shape(clean, defect):
    solid, mesh = clean
    broken = shapes.damage(mesh, defect, solid=solid, rng=np.random.default_rng(3))
    signed = signed_mesh(Mesh(np.asarray(broken.vertices), np.asarray(broken.faces)), rng=np.random.default_rng(4))
    resolution = 64
    vertices, faces, cell, _ = watertight_mesh(
        signed, WatertightConfig(resolution=resolution), rng=np.random.default_rng(5)
    )
    assert _closed_and_manifold(vertices, faces)
    to_truth, to_output = _distances_to_truth(
        vertices, faces, mesh, signed.offset, signed.scale, np.random.default_rng(6)
    )
    both = np.concatenate([to_truth, to_output]) / cell
    assert both.mean() <= 0.1, defect
    assert both.max() <= 2, defect


def test_a_sheet_becomes_a_plate_one_cell_thick():
    """A lone square (it encloses nothing): closed, both faces half a cell from it, covering it."""
    square = Mesh(np.array([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]), np.array([[0, 1, 2], [0, 2, 3]]))
    signed = signed_mesh(square, rng=np.random.default_rng(0))
    assert signed.outer.sheet.all()
    vertices, faces, cell, _ = watertight_mesh(signed, WatertightConfig(resolution=64), rng=np.random.default_rng(1))
    assert _closed_and_manifold(vertices, faces)
    extent = np.abs(signed.outer.vertices[:, 0]).max()
    interior = np.abs(vertices[:, :2]).max(axis=1) < extent - cell
    np.testing.assert_allclose(np.abs(vertices[interior, 2]), cell / 2, atol=0.01 * cell)
    on_square, _ = signed.sampler.sample(5000, rng=np.random.default_rng(2))
    from sdfkit.geometry.sign import unsigned_distance

    assert unsigned_distance(vertices, faces, on_square).max() <= 0.51 * cell * np.sqrt(2)


def test_a_closed_part_thinner_than_a_cell_becomes_a_plate():
    """A tilted closed slab a third of a cell thick would fall between the grid's nodes: measured
    from its faces straight inwards it is thin, so it is meshed as a plate one cell thick that
    covers it."""
    from sdfkit.geometry.sign import thickness, unsigned_distance

    slab = trimesh.creation.box(extents=(2.0, 2.0, 0.01))
    slab.apply_transform(trimesh.transformations.euler_matrix(0.35, 0.2, 0.0))  # across nodes and between
    signed = signed_mesh(Mesh(np.asarray(slab.vertices), np.asarray(slab.faces)), rng=np.random.default_rng(0))
    vertices, faces, cell, _ = watertight_mesh(signed, WatertightConfig(resolution=64), rng=np.random.default_rng(1))
    assert (thickness(signed.outer) < cell / 2).sum() == 4  # the top and bottom triangles
    assert _closed_and_manifold(vertices, faces)
    on_slab, _ = signed.sampler.sample(5000, rng=np.random.default_rng(2))
    assert unsigned_distance(vertices, faces, on_slab).max() <= cell


def test_without_sheets_a_lone_sheet_has_nothing_to_mesh():
    from sdfkit.errors import ShapeError

    square = Mesh(np.array([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]), np.array([[0, 1, 2], [0, 2, 3]]))
    signed = signed_mesh(square, rng=np.random.default_rng(0))
    with pytest.raises(ShapeError, match="changes sign nowhere"):
        watertight_mesh(signed, WatertightConfig(resolution=32, sheets=False), rng=np.random.default_rng(1))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Four make-shapes shapes in ShapeNet v2's layout, one far from the origin, and a broken file."""
    root = tmp_path_factory.mktemp("wt") / "shapes"
    shapes.make_shapes(root, 4, seed=1, defects=("holes", "combo", "soup", "interior"))
    far = next(root.rglob("*.obj"))
    mesh = trimesh.load(far, process=False)
    mesh.vertices = mesh.vertices * 40.0 + 1e5
    mesh.export(far)
    broken = far.parent.parent.parent / "broken" / "models" / far.name  # ShapeNet v2: <synset>/<id>/models/
    broken.parent.mkdir(parents=True)
    shutil.copy(DATA / "meshes" / "empty.obj", broken)
    return root


@pytest.mark.slow
def test_cli_writes_the_tree_a_report_and_resumes(tree, tmp_path):
    out = tmp_path / "wt"
    result = sdfkit("watertight", tree, "-o", out, "--resolution", 48, "--workers", 2)
    # the report checks the files as each library reads them: open3d reads OBJ coordinates in
    # single precision, which merges the far mesh's close vertices (1e5 away, a float32 step of
    # 0.008 against cells of 0.8); the summary says so and what to do
    assert "watertight and manifold by trimesh and open3d: 3 of 4 meshes" in result.stdout
    assert "open3d reads OBJ coordinates in single precision: 1 closed by trimesh" in result.stdout
    inputs = sorted(p.relative_to(tree) for p in tree.rglob("*.obj") if "broken" not in p.parts)
    outputs = sorted(p.relative_to(out) for p in out.rglob("*.obj"))
    assert outputs == inputs  # the source's layout, file for file
    assert not list(out.rglob(".*partial*"))
    rows = [json.loads(line) for line in open(f"{out}.report.jsonl")]
    assert len(rows) == 5
    failed = [r for r in rows if not r["ok"]]
    assert len(failed) == 1 and "has no faces" in failed[0]["error"]
    for row in rows:
        if row["ok"]:
            assert row["trimesh_watertight"] and row["trimesh_winding"]
            far = trimesh.load(row["output"], force="mesh").vertices.max() > 1e4
            assert all(row[c] for c in CHECKS) != far, row["id"]
            source = trimesh.load(row["input"], force="mesh", process=False)
            written = trimesh.load(row["output"], force="mesh", process=False)
            # the input's own coordinates: the same box, within a few cells (a cell is 2% of the size)
            size = np.ptp(source.vertices, axis=0).max()
            assert np.abs(written.bounds - source.bounds).max() < 0.06 * size, row["id"]
            assert mesh_checks(row["output"])["faces"] == row["faces"]
    again = sdfkit("watertight", tree, "-o", out, "--resolution", 48)
    assert "already complete" in again.stdout
    assert sdfkit("validate", f"{out}.report.zarr").returncode == 0
    other = sdfkit("watertight", tree, "-o", out, "--resolution", 32, check=False)
    assert_user_error(other, "--overwrite")


@pytest.mark.slow
def test_cli_frames_formats_and_refusals(tree, tmp_path):
    out = tmp_path / "n"
    sdfkit(
        "watertight",
        tree,
        "-o",
        out,
        "--resolution",
        32,
        "--normalized",
        "occnet",
        "--format",
        "off",
        "--name",
        "isosurf.off",
        "--largest-component",
    )
    meshes = sorted(out.rglob("isosurf.off"))
    assert len(meshes) == 4
    assert all(len(m.relative_to(out).parts) == 3 for m in meshes)  # <synset>/<id>/isosurf.off
    for path in meshes:
        mesh = trimesh.load(path, process=False)
        assert mesh.is_watertight
        assert np.abs(mesh.vertices).max() < 0.5 + 0.05  # OccNet's frame: longest side 1, centred
        assert len(mesh.split(only_watertight=False)) == 1
    deep = tmp_path / "d"
    sdfkit("watertight", tree, "-o", deep, "--resolution", 32, "--normalized", "deepsdf")
    for path in deep.rglob("*.obj"):
        assert np.linalg.norm(trimesh.load(path, process=False).vertices, axis=1).max() < 1.0 + 0.05
    inside = sdfkit("watertight", tree, "-o", tree / "out", check=False)
    assert_user_error(inside, "inside the source folder")
    bad = sdfkit("watertight", tree, "-o", tmp_path / "x", "--name", "a.xyz", check=False)
    assert_user_error(bad, "--name")
    missing = sdfkit("watertight", tmp_path / "nothing", "-o", tmp_path / "y", check=False)
    assert_user_error(missing, "nothing")


@pytest.mark.slow
def test_a_killed_run_resumes_with_nothing_half_written(tmp_path):
    root = tmp_path / "many"
    shapes.make_shapes(root, 8, seed=2)
    out = tmp_path / "wt"
    args = ["watertight", root, "-o", out, "--resolution", 32, "--workers", 1, "--shard-size", 2]
    kill_midway(args, tmp_path / "wt.report.zarr")
    status = zarr.open_group(tmp_path / "wt.report.zarr", mode="r")["meta/status"][:]
    assert 0 < (status == 0).sum(), "the kill did not land mid-run"
    resumed = sdfkit(*args)
    assert "resumed" in resumed.stdout
    assert len(list(out.rglob("*.obj"))) == 8
    assert not list(out.rglob(".*partial*"))
    rows = [json.loads(line) for line in open(f"{out}.report.jsonl")]
    assert all(r["ok"] and all(r[c] for c in CHECKS) for r in rows)


@pytest.mark.slow
def test_show_draws_input_above_output(tree, tmp_path):
    pytest.importorskip("pyrender")
    out = tmp_path / "s"
    sdfkit("watertight", tree, "-o", out, "--resolution", 32)
    picture = tmp_path / "before-after.png"
    sdfkit("show", f"{out}.report.zarr", "--index", 0, "-o", picture)
    image = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(picture))
    assert image.shape[0] > 300 and image.std() > 10  # a picture, not a blank page


@pytest.mark.slow
def test_a_dask_cluster_writes_the_same_meshes(tree, tmp_path):
    from distributed import LocalCluster

    from sdfkit.builders.watertight import prepare_watertight

    config = WatertightConfig(resolution=32)
    local = prepare_watertight(tree, tmp_path / "local", config, workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = prepare_watertight(tree, tmp_path / "dask", config, scheduler=cluster.scheduler_address, shard_size=2)
    assert local.computed == remote.computed == 5 and len(remote.failures) == 1
    written = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.obj"))
    assert written == sorted(p.relative_to(tmp_path / "dask") for p in (tmp_path / "dask").rglob("*.obj"))
    for path in written:
        assert (tmp_path / "local" / path).read_bytes() == (tmp_path / "dask" / path).read_bytes()


@pytest.mark.parametrize("gap_cells", [0.25, 3.0])
def test_the_report_tells_clearances_the_grid_closes(tmp_path, gap_cells):
    """Two boxes side by side: a gap of a quarter cell is closed by the grid, and exactly the
    samples on the two facing walls (by construction) farther than a cell from the output are
    counted in ``narrow_closed`` and left out of ``hausdorff_resolvable``; a gap of three cells is
    held, and nothing is counted."""
    from sdfkit.builders.watertight import WatertightJob, narrow_walls, process_watertight
    from sdfkit.geometry.basics import shape_rng
    from sdfkit.geometry.mesh import load_mesh
    from sdfkit.geometry.sign import unsigned_distance

    resolution = 32
    gap = gap_cells * 2.3 / resolution  # cells of the raw longest side, about 2.3
    left = trimesh.creation.box(bounds=[[0, 0, 0], [1, 1, 1]])
    # not 1 long: the grid is centred on the box, and a row of nodes would run down the gap
    right = trimesh.creation.box(bounds=[[1 + gap, 0, 0], [2.3 + gap, 1, 1]])
    pair = trimesh.util.concatenate([left, right])
    path = tmp_path / "pair.ply"
    pair.export(path)
    config = WatertightConfig(resolution=resolution, report_points=20_000)
    row = process_watertight(WatertightJob("pair", str(path), str(tmp_path / "out.ply")), config)
    cell = row["report/cell"]

    # the same samples as the report draws, and the truth: which lie on the facing walls
    signed = signed_mesh(load_mesh(str(path)), rays=config.rays, rng=shape_rng(0, "pair"))
    vertices, faces, _, _ = watertight_mesh(signed, config, rng=shape_rng(0, "pair", 6))
    rng = shape_rng(0, "pair", 7)
    sample_surface(vertices, faces, config.report_points, rng=rng)
    on_input, on_face = signed.sampler.sample(config.report_points, rng=rng)
    raw_x = on_input[:, 0] / signed.scale - signed.offset[0]
    facing = (np.abs(raw_x - 1) < 1e-6) | (np.abs(raw_x - 1 - gap) < 1e-6)  # float32 vertices
    far = unsigned_distance(vertices, faces, on_input) > cell
    truth = facing & far
    np.testing.assert_array_equal(
        narrow_walls(signed.outer.vertices, signed.outer.faces, on_input, on_face, cell)[far], truth[far]
    )
    assert row["report/narrow_closed"] == pytest.approx(truth.mean())
    if gap_cells < 1:
        assert truth.mean() > 0.05  # most of the two facing walls (0.15 of the area)
        assert row["report/hausdorff"] > 4 * cell  # the middle of the walls, 6 cells from the output
        assert row["report/hausdorff_resolvable"] <= 2 * cell
    else:
        assert truth.sum() == 0
        assert row["report/hausdorff_resolvable"] == row["report/hausdorff"] <= cell
