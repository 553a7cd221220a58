"""Dataset builders: export to DeepSDF / OccNet / npz, voxel grids, renders, show, validate.

References are independent of the code under test: the loaders of DeepSDF and Occupancy
Networks re-implemented from their documented formats, exact analytic SDFs of the procedural
shapes, ray-sphere intersections, and distances to the mesh computed by trimesh.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
import zarr
from conftest import ROOT, kill_midway
from test_cli import assert_user_error, sdfkit

from sdfkit import open_dataset
from sdfkit.builders.export import export_store
from sdfkit.builders.render import RenderConfig, backproject, camera_poses, intrinsics, render_views
from sdfkit.builders.voxels import grid_points
from sdfkit.errors import InputError
from sdfkit.geometry.shapes import make_shapes, solid_from_json
from sdfkit.store.format import as_str

SMALL = ["--samples", "20000", "--surface-samples", "2000"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Nine procedural shapes with defects, and their prepare-shapenet store (shards of 2)."""
    base = tmp_path_factory.mktemp("builders")
    tree = base / "tree"
    make_shapes(tree, 9, defects=("clean", "holes", "combo"))
    store = base / "shapes.zarr"
    sdfkit("prepare-shapenet", tree, "-o", store, *SMALL, "--recipe", "occnet", "--shard-size", "2", "--workers", "2")
    return tree, store


def _copy(store: Path, tmp_path: Path) -> Path:
    target = tmp_path / store.name
    shutil.copytree(store, target)
    return target


def _closest(mesh: trimesh.Trimesh, points: np.ndarray):
    """Distance from each point to the mesh and the closest face (open3d's exact query)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32))
    )
    result = scene.compute_closest_points(o3d.core.Tensor(np.asarray(points, np.float32)))
    closest = result["points"].numpy().astype(np.float64)
    return np.linalg.norm(closest - points, axis=1), result["primitive_ids"].numpy().astype(np.int64)


def _analytic(tree: Path, shape_id: str, offset, scale, points: np.ndarray) -> np.ndarray:
    """Exact SDF of a procedural shape at normalized points, in normalized units."""
    manifest = json.loads((tree / "shapes.json").read_text())
    solid = solid_from_json(manifest[shape_id]["parts"], manifest[shape_id].get("holes"))
    return solid.sdf(points / scale - offset) * scale


# export


@pytest.mark.slow
def test_deepsdf_export_reads_back_as_deepsdf_reads_it(built, tmp_path):
    tree, store = built
    out = tmp_path / "deepsdf"
    run = sdfkit("export", store, "--to", "deepsdf", "-o", out, "--dataset", "ShapeNetV2")
    assert "wrote 9 shapes" in run.stdout
    ds = open_dataset(store)
    for shape in ds:
        synset, shape_id = shape["category"], shape["id"]
        # deep_sdf/data.py: read_sdf_samples_into_ram -> npz["pos"], npz["neg"]; rows x, y, z, sdf
        npz = np.load(out / "SdfSamples" / "ShapeNetV2" / synset / f"{shape_id}.npz")
        assert set(npz.files) == {"pos", "neg"}
        pos, neg = npz["pos"], npz["neg"]
        assert pos.dtype == neg.dtype == np.float32 and pos.shape[1] == neg.shape[1] == 4
        assert (pos[:, 3] > 0).all() and (neg[:, 3] <= 0).all()
        rows = np.concatenate([shape["sdf/points"], shape["sdf/values"][:, None]], axis=1)
        expected = rows[np.lexsort(rows.T[::-1])]
        got = np.concatenate([pos, neg])
        np.testing.assert_array_equal(got[np.lexsort(got.T[::-1])], expected)
        # evaluate.py: SurfaceSamples in mesh coordinates, NormalizationParameters offset/scale
        params = np.load(out / "NormalizationParameters" / "ShapeNetV2" / synset / f"{shape_id}.npz")
        assert params["offset"].shape == (3,) and params["scale"].shape == (1,)
        cloud = trimesh.load(out / "SurfaceSamples" / "ShapeNetV2" / synset / f"{shape_id}.ply")
        back = (np.asarray(cloud.vertices) + params["offset"]) * params["scale"]
        np.testing.assert_allclose(back, shape["surface/points"], atol=2e-6)
        # the mesh coordinates are the raw file's: the samples lie on the original mesh
        mesh = trimesh.load(tree / synset / shape_id / "models" / "model_normalized.obj", force="mesh")
        distance, _ = _closest(mesh, np.asarray(cloud.vertices)[:200])
        assert distance.max() < 2e-4 / params["scale"][0]  # float32 round trips; merged duplicates
    splits = {p.stem: json.loads(p.read_text()) for p in (out / "splits").glob("*.json")}
    for split, content in splits.items():
        chosen = ds.select(split)
        assert content == {
            "ShapeNetV2": {
                c: [i for i, cc in zip(chosen.ids, chosen.meta("category"), strict=True) if cc == c]
                for c in set(chosen.meta("category"))
            }
        }


@pytest.mark.slow
def test_occnet_export_reads_back_as_occnet_reads_it(built, tmp_path):
    tree, store = built
    out = tmp_path / "occnet"
    sdfkit("export", store, "--to", "occnet", "-o", out, "--split", "train")
    ds = open_dataset(store, split="train")
    assert len(ds) > 0
    manifest = json.loads((tree / "shapes.json").read_text())
    for shape in ds:
        folder = out / shape["category"] / shape["id"]
        # im2mesh/data/fields.py PointsField: unpackbits(occupancies)[:len(points)], float32 points
        points = np.load(folder / "points.npz")
        assert points["points"].dtype == np.float32 and points["points"].shape == (100_000, 3)
        occupancy = np.unpackbits(points["occupancies"])[: points["points"].shape[0]].astype(bool)
        np.testing.assert_array_equal(occupancy, shape["occnet/occupancies"] == 1)
        # sample_mesh.py's frame: uniform in the cube of side 1.1; raw = points * scale + loc
        assert np.abs(points["points"]).max() <= 0.55 and np.abs(points["points"]).max() > 0.54
        raw = points["points"].astype(np.float64) * points["scale"] + points["loc"]
        solid = solid_from_json(manifest[shape["id"]]["parts"], manifest[shape["id"]].get("holes"))
        truth = solid.sdf(raw) / float(points["scale"])  # in OccNet's units (longest side 1)
        far = np.abs(truth) > 0.01
        assert np.mean(occupancy[far] == (truth[far] < 0)) >= 0.999, shape["id"]  # the target
        surface = np.load(folder / "pointcloud.npz")
        assert surface["points"].shape == (100_000, 3) and np.abs(surface["points"]).max() <= 0.5 + 1e-6
        on = solid.sdf(surface["points"].astype(np.float64) * surface["scale"] + surface["loc"]) / float(
            surface["scale"]
        )
        assert np.quantile(np.abs(on), 0.99) < 2e-3
        np.testing.assert_allclose(np.linalg.norm(surface["normals"], axis=1), 1.0, atol=1e-5)
    for synset in set(ds.meta("category")):
        listed = (out / synset / "train.lst").read_text().split()
        assert sorted(listed) == sorted(i for i, c in zip(ds.ids, ds.meta("category"), strict=True) if c == synset)
        assert (out / synset / "test.lst").read_text() == ""  # --split train: nothing else


@pytest.mark.slow
def test_npz_export_holds_every_array(built, tmp_path):
    _, store = built
    ds = open_dataset(store)
    sdfkit("export", store, "--to", "npz", "-o", tmp_path / "npz", "--ids", f"{ds.ids[0]},{ds.ids[3]}")
    files = sorted((tmp_path / "npz").glob("*.npz"))
    assert [f.stem for f in files] == sorted([ds.ids[0], ds.ids[3]])
    for k in (0, 3):
        npz = np.load(tmp_path / "npz" / f"{ds.ids[k]}.npz")  # no pickle needed
        for name in ds.arrays:
            np.testing.assert_array_equal(npz[name], ds[k][name])
        assert str(npz["meta/id"]) == ds.ids[k]


@pytest.mark.slow
def test_export_bad_input_and_nothing_half_written(built, tmp_path, monkeypatch):
    _, store = built
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    assert_user_error(
        sdfkit("export", store, "--to", "deepsdf", "-o", occupied, check=False), "not empty", "--overwrite"
    )
    assert (occupied / "keep.txt").read_text() == "mine"
    unknown = sdfkit("export", store, "--to", "pointflow", "-o", tmp_path / "x", check=False)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr and "pointflow" in unknown.stderr
    mnist = tmp_path / "mnist.zarr"
    sdfkit("prepare-mnist", "-o", mnist, "--limit", "20", "--val-size", "0", "--workers", "1")
    assert_user_error(sdfkit("export", mnist, "--to", "occnet", "-o", tmp_path / "y", check=False), "'mnist'", "npz")
    assert_user_error(
        sdfkit("export", store, "--to", "npz", "--ids", "nope", "-o", tmp_path / "z", check=False), "nope"
    )
    # a failure mid-way leaves neither the output folder nor its partial sibling
    import sdfkit.builders.export as export

    calls = []

    def failing(shape, tmp, context):
        calls.append(shape["id"])
        if len(calls) == 3:
            raise OSError("disk full")
        return 0

    table = export.formats()
    recipe, exporter = table["deepsdf"]
    failing_deepsdf = dataclasses.replace(exporter, write_shape=failing)
    monkeypatch.setattr(export, "formats", lambda: {**table, "deepsdf": (recipe, failing_deepsdf)})
    with pytest.raises(OSError):
        export_store(str(store), "deepsdf", tmp_path / "half")
    assert not (tmp_path / "half").exists()
    assert [p.name for p in tmp_path.iterdir() if "half" in p.name] == []
    with pytest.raises(InputError, match="unknown export format"):
        export_store(str(store), "obj", tmp_path / "w")


# voxels


@pytest.mark.slow
def test_voxelize_matches_the_exact_sdf_and_resumes(built, tmp_path):
    tree, original = built
    store = _copy(original, tmp_path)
    args = ["voxelize", store, "--resolution", "32", "--sdf", "--workers", "2"]
    kill_midway(args, store, status="voxels/status")
    status = zarr.open_group(store, mode="r")["voxels/status"][:]
    assert 0 < (status == 0).sum() < len(status), "the kill did not land mid-run"
    run = sdfkit(*args)
    assert "resumed" in run.stdout
    reference = _copy(original, tmp_path / "ref")
    sdfkit("voxelize", reference, "--resolution", "32", "--sdf", "--workers", "2")
    a, b = zarr.open_group(store, mode="r"), zarr.open_group(reference, mode="r")
    np.testing.assert_array_equal(a["voxels/sdf"][:], b["voxels/sdf"][:])
    np.testing.assert_array_equal(a["voxels/occupancy"][:], b["voxels/occupancy"][:])

    ds = open_dataset(store)
    points = grid_points(32)
    for shape in ds:
        truth = _analytic(tree, shape["id"], shape["norm/offset"], shape["norm/scale"], points)
        occupancy = shape["voxels/occupancy"].ravel()
        np.testing.assert_array_equal(occupancy, (shape["voxels/sdf"].ravel() < 0).astype(np.uint8))
        clear = np.abs(truth) > 2.0 / 32  # a cell away from the surface
        agree = (occupancy[clear] == 1) == (truth[clear] < 0)
        assert agree.mean() >= 0.995, (shape["id"], agree.mean())
        assert np.median(np.abs(shape["voxels/sdf"].ravel() - truth)) < 1e-4
        # the grid and the stored samples share their signs: samples at least a cell deep agree
        deep = np.abs(shape["sdf/values"]) > 2.0 / 32
        index = np.clip(((shape["sdf/points"][deep] + 1) * 16).astype(int), 0, 31)
        inside = occupancy.reshape(32, 32, 32)[index[:, 0], index[:, 1], index[:, 2]] == 1
        assert ((shape["sdf/values"][deep] < 0) == inside).mean() > 0.99
    assert "already has these grids" in sdfkit(*args).stdout
    assert_user_error(sdfkit("voxelize", store, "--resolution", "64", check=False), "--overwrite", "32")
    moved = tmp_path / "moved.zarr"
    shutil.copytree(original, moved)
    assert_user_error(sdfkit("voxelize", moved, "--meshes", tmp_path / "nowhere", check=False), "--meshes")
    report = sdfkit("validate", store)
    assert "follows format v2" in report.stdout and "voxels" in report.stdout


# renders


def test_depth_of_a_sphere_matches_ray_sphere_intersection():
    radius = 0.8
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=radius)
    config = RenderConfig(views=3, size=96, cameras="random", seed=3)
    poses = camera_poses(config, "sphere")
    images = render_views(sphere.vertices, sphere.faces, poses, config)
    k = intrinsics(config.size, config.yfov)
    v, u = np.mgrid[0 : config.size, 0 : config.size]
    for depth, normals, pose in zip(images["depth"], images["normal"], poses, strict=True):
        # the pixel's ray through its centre, in the camera frame (looking down -z)
        d = np.stack([(u + 0.5 - k[0, 2]) / k[0, 0], -(v + 0.5 - k[1, 2]) / k[1, 1], -np.ones_like(u, float)], -1)
        d_world = d.reshape(-1, 3) @ pose[:3, :3].T
        origin = pose[:3, 3]
        a = (d_world**2).sum(1)
        b = 2 * d_world @ origin
        c = origin @ origin - radius**2
        disc = b * b - 4 * a * c
        t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)  # along d, whose z-component is -1
        hit = (disc > 0).reshape(depth.shape)
        analytic = np.where(hit, t.reshape(depth.shape), 0.0)
        both = hit & (depth > 0)
        assert np.abs(depth[both] - analytic[both]).max() < 2e-3  # icosphere facets: ~1e-4 deep
        # silhouettes differ only on the boundary: within a pixel of the analytic outline
        from scipy.ndimage import binary_dilation, binary_erosion

        differ = hit != (depth > 0)
        outline = binary_dilation(hit) & ~binary_erosion(hit)
        assert (differ & ~outline).sum() == 0
        assert differ.sum() < 0.1 * outline.sum()
        normal = normals[depth > 0]
        points = backproject(depth, k, pose)
        assert np.abs(np.linalg.norm(points, axis=1) - radius).max() < 3e-3
        radial = points / np.linalg.norm(points, axis=1, keepdims=True)
        assert np.median(np.einsum("ij,ij->i", normal, radial)) > 0.999


@pytest.mark.slow
def test_render_store_backprojects_onto_the_mesh(built, tmp_path):
    tree, store = built
    out = tmp_path / "renders.zarr"
    run = sdfkit("render", store, "-o", out, "--views", "6", "--size", "64", "--workers", "2")
    assert "wrote" in run.stdout and "views/s" in run.stdout
    renders = open_dataset(out)
    shapes = open_dataset(store)
    assert renders.ids == shapes.ids and renders.kind == "renders"
    for k in (0, 4):
        shape, view = renders[k], shapes[k]
        mesh = trimesh.load(tree / view["category"] / view["id"] / "models" / "model_normalized.obj", force="mesh")
        mesh.vertices = (mesh.vertices + view["norm/offset"]) * view["norm/scale"]
        np.testing.assert_array_equal(shape["norm/offset"], view["norm/offset"])
        for v in range(6):
            depth = shape["render/depth"][v]
            points = backproject(depth, shape["camera/intrinsics"][v], shape["camera/pose"][v])
            assert len(points) > 50
            distance, face = _closest(mesh, points)
            assert np.percentile(distance, 99) < 2e-3 and distance.max() < 0.02
            np.testing.assert_array_equal(shape["render/silhouette"][v] > 0, depth > 0)
            # normals point at the camera, along the hit face's normal (either winding)
            hit = depth > 0
            normal = shape["render/normal"][v][hit].astype(np.float64) / 127.5 - 1.0
            normal /= np.linalg.norm(normal, axis=1, keepdims=True)
            along = np.abs(np.einsum("ij,ij->i", normal, mesh.face_normals[face]))
            assert np.median(along) > 0.99
            towards = shape["camera/pose"][v][:3, 3] - points
            assert (np.einsum("ij,ij->i", normal, towards) > 0).mean() > 0.99
            # Lambertian shading of those normals under the stored light
            light = shape["light/direction"][v]
            expected = 0.2 + 0.8 * np.clip(normal @ light, 0, 1)
            assert np.abs(shape["render/shaded"][v][hit][:, 0] / 255.0 - expected).max() < 0.03
    sheet = tmp_path / "views.png"
    sdfkit("show", out, "--index", "1", "--views", "4", "-o", sheet)
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = sdfkit("validate", out)
    assert "follows format v2" in report.stdout


@pytest.mark.slow
def test_render_from_meshes_unstructured_and_bad_input(built, tmp_path):
    tree, store = built
    out = tmp_path / "u.zarr"
    args = ["--views", "3", "--size", "32", "--random-views", "--modes", "silhouette,shaded", "--unstructured"]
    sdfkit("render", tree, "-o", out, *args, "--workers", "1")
    group = zarr.open_group(out, mode="r")
    assert "camera/pose" not in group and "render/depth" not in group and "light/direction" not in group
    assert group["render/shaded"].shape == (9, 3, 32, 32, 3)
    info = group.attrs["sdfkit"]
    assert info["kind"] == "renders" and info["parameters"]["unstructured"] is True
    moved = tmp_path / "moved.zarr"
    shutil.copytree(store, moved)
    info = dict(zarr.open_group(moved).attrs["sdfkit"])
    info["source"] = {**info["source"], "path": str(tmp_path / "gone")}
    zarr.open_group(moved).attrs["sdfkit"] = info
    assert_user_error(sdfkit("render", moved, "-o", tmp_path / "r.zarr", check=False), "--meshes", "gone")
    assert not (tmp_path / "r.zarr").exists()
    assert_user_error(sdfkit("render", store, "-o", tmp_path / "m.zarr", "--modes", "depth,xray", check=False), "xray")


# show and validate


@pytest.mark.slow
def test_show_draws_3d_shapes(built, tmp_path):
    _, store = built
    out = tmp_path / "shape.png"
    run = sdfkit("show", store, "--index", "2", "-o", out)
    assert "computed from" in run.stdout and out.read_bytes()[:4] == b"\x89PNG"
    moved = _copy(store, tmp_path / "m")
    info = dict(zarr.open_group(moved).attrs["sdfkit"])
    info["source"] = {**info["source"], "path": str(tmp_path / "gone")}
    zarr.open_group(moved).attrs["sdfkit"] = info
    run = sdfkit("show", moved, "--index", "2", "-o", out)
    assert "SDF samples near each plane" in run.stdout
    assert_user_error(sdfkit("show", store, "--sheet", "4", "-o", out, check=False), "--sheet")


def _validate(store) -> subprocess.CompletedProcess:
    return sdfkit("validate", store, check=False)


@pytest.mark.slow
def test_validate_passes_good_stores_and_catches_damage(built, tmp_path):
    _, original = built
    assert _validate(original).returncode == 0
    cases = {
        "scaled": lambda g: g["sdf/values"].__setitem__(1, g["sdf/values"][1] * 0.5),
        "shuffled": lambda g: g["sdf/values"].__setitem__(2, np.random.default_rng(0).permutation(g["sdf/values"][2])),
        "nan": lambda g: g["surface/points"].__setitem__((3, 5, 0), np.nan),
        "error": lambda g: g["meta/error"].__setitem__(0, "boom"),
        "pending": lambda g: g["meta/status"].__setitem__(4, 0),
        "normals": lambda g: g["surface/normals"].__setitem__(0, g["surface/normals"][0] * 2),
        "occupancy": lambda g: g["occnet/occupancies"].__setitem__(5, 1 - g["occnet/occupancies"][5]),
    }
    expected = {
        "scaled": "falls",
        "shuffled": "Lipschitz",
        "nan": "NaN",
        "error": "error message",
        "pending": "pending",
        "normals": "unit vectors",
        "occupancy": "disagree with the sign",
    }
    for name, damage in cases.items():
        store = _copy(original, tmp_path / name)
        damage(zarr.open_group(store))
        result = _validate(store)
        assert_user_error(result, "checks failed")
        assert expected[name] in result.stdout, (name, result.stdout)
    version = _copy(original, tmp_path / "version")
    info = dict(zarr.open_group(version).attrs["sdfkit"])
    zarr.open_group(version).attrs["sdfkit"] = {**info, "format_version": 9}
    result = _validate(version)
    assert_user_error(result, "checks failed")
    assert "format version 9" in result.stdout


@pytest.mark.slow
def test_validate_holds_occupancy_to_the_samples_own_agreement(tmp_path):
    """soup.stl's outer surface is open (crossing triangles, no closed part): beside its holes the
    side of a point is an estimate, so its SDF samples disagree with their own nearest neighbours
    at a few percent and its occupancies about as often; the store is valid. A fifth of one
    shape's occupancies flipped is caught."""
    folder = tmp_path / "soup"
    folder.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "meshes" / "soup.stl", folder / "soup.stl")
    store = tmp_path / "soup.zarr"
    sdfkit("prepare-shapenet", folder, "-o", store, "--samples", "40000", "--recipe", "occnet", "--workers", "1")
    assert _validate(store).returncode == 0
    group = zarr.open_group(store)
    occupancy = group["occnet/occupancies"][0]
    flip = np.random.default_rng(0).random(len(occupancy)) < 0.2
    occupancy[flip] = 1 - occupancy[flip]
    group["occnet/occupancies"][0] = occupancy
    result = _validate(store)
    assert_user_error(result, "checks failed")
    assert "disagree with the sign" in result.stdout and "with each other at" in result.stdout


@pytest.mark.slow
def test_validate_mnist_store(tmp_path):
    store = tmp_path / "m.zarr"
    sdfkit("prepare-mnist", "-o", store, "--limit", "30", "--val-size", "5", "--workers", "1")
    assert "follows format v2" in _validate(store).stdout
    g = zarr.open_group(store)
    g["surface/points"][3] = g["surface/points"][3][::-1] * 0.3  # points off the zero level
    result = _validate(store)
    assert_user_error(result, "checks failed")
    assert "zero level" in result.stdout and as_str(g["meta/id"][3:4])[0] in result.stdout


@pytest.mark.slow
def test_cli_help_has_examples():
    for command in ("export", "voxelize", "render", "validate", "show", "reconstruct", "train", "eval"):
        out = sdfkit(command, "--help").stdout
        assert "Example" in out, command
        if command != "validate":  # its only option is a flag
            assert "[default" in out, command


@pytest.mark.skipif(sys.platform != "linux", reason="OSMesa")
def test_render_environment_is_headless():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "PYOPENGL_PLATFORM")}
    code = (
        "from sdfkit.builders.render import *; import numpy as np, trimesh; m = trimesh.creation.box(); "
        "c = RenderConfig(views=1, size=16); print(render_views(m.vertices * 0.5, m.faces, camera_poses(c, 'a'), c)['depth'].max())"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) > 0


@pytest.mark.slow
def test_occnet_export_needs_the_occnet_recipe(tmp_path):
    """A store made without --recipe occnet holds DeepSDF's near-surface samples only: exporting
    those under OccNet's names would train and score on another distribution, so it is refused."""
    tree = tmp_path / "tree"
    make_shapes(tree, 1, defects=("clean",))
    store = tmp_path / "plain.zarr"
    sdfkit("prepare-shapenet", tree, "-o", store, *SMALL)
    result = sdfkit("export", store, "--to", "occnet", "-o", tmp_path / "x", check=False)
    assert_user_error(result, "has no occnet samples", "--recipe occnet")
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def chibane(tmp_path_factory):
    """Three shapes with defects, a store with IF-Net's and NDF's recipes, and both exports."""
    base = tmp_path_factory.mktemp("chibane")
    tree = base / "tree"
    make_shapes(tree, 3, defects=("holes",), seed=4)
    store = base / "s.zarr"
    sdfkit("prepare-shapenet", tree, "-o", store, *SMALL, "--recipe", "ifnet", "--recipe", "ndf")
    for to in ("ifnet", "ndf"):
        sdfkit("export", store, "--to", to, "-o", base / to)
    return tree, store, base


@pytest.mark.slow
def test_ifnet_export_reads_back_as_ifnet_reads_it(chibane):
    """models/data/voxelized_data_shapenet.py: data_path + split entry; boundary_<sigma>_samples.npz
    (points, grid_coords, occupancies); unpackbits(compressed_occupancies) reshaped to res^3."""
    tree, store, base = chibane
    split = np.load(base / "ifnet" / "split.npz")
    entries = list(split["train"]) + list(split["test"])
    assert len(entries) == 3 and set(split.files) >= {"train", "val", "test"}
    ds = open_dataset(store)
    manifest = json.loads((tree / "shapes.json").read_text())
    for entry in entries:
        path = str(base / "ifnet") + entry  # IF-Net: self.path + self.data[idx]
        shape = ds[ds.ids.index(entry.split("/")[-1])]
        solid = solid_from_json(manifest[shape["id"]]["parts"], manifest[shape["id"]].get("holes"))
        for sigma, floor in ((0.1, 0.995), (0.01, 0.995)):
            npz = np.load(f"{path}/boundary_{sigma}_samples.npz")
            points, coords, occupancies = npz["points"], npz["grid_coords"], npz["occupancies"]
            assert points.shape == (100_000, 3) and occupancies.dtype == bool
            np.testing.assert_allclose(coords[:, [2, 1, 0]], 2 * points)  # x and z swapped, times 2
            # sigma is a standard deviation in IF-Net's frame (longest side 1)
            raw = points * shape["ifnet/scale"] + shape["ifnet/loc"]
            truth = solid.sdf(raw) / shape["ifnet/scale"]
            far = np.abs(truth) > 0.002
            assert np.mean(occupancies[far] == (truth[far] < 0)) >= floor, (entry, sigma)
        for n in (300, 3000):
            npz = np.load(f"{path}/voxelized_point_cloud_128res_{n}points.npz")
            grid = np.reshape(np.unpackbits(npz["compressed_occupancies"]), (128,) * 3)
            assert npz["point_cloud"].shape == (n, 3) and 0 < grid.sum() <= n
            index = np.rint((npz["point_cloud"] + 0.5) * 127).astype(int)
            assert grid[index[:, 0], index[:, 1], index[:, 2]].all()


@pytest.mark.slow
def test_ndf_export_holds_exact_unsigned_distances(chibane):
    """NDF's boundary samples: df is the distance to every face of the mesh as given (brute force
    over all faces: median error <= 1e-4, max <= 1e-3), never clamped."""
    tree, store, base = chibane
    split = np.load(base / "ndf" / "split.npz")
    ds = open_dataset(store)
    manifest = json.loads((tree / "shapes.json").read_text())
    for entry in list(split["train"]) + list(split["test"]):
        path = Path(entry)  # NDF: the entry is the folder
        shape_id = path.name
        shape = ds[ds.ids.index(shape_id)]
        mesh = trimesh.load(
            tree / manifest[shape_id]["synset"] / shape_id / "models" / "model_normalized.obj", process=False
        )
        errors = []
        for sigma in (0.08, 0.02, 0.003):
            npz = np.load(path / f"boundary_{sigma}_samples.npz")
            points, df = npz["points"][:150], npz["df"][:150]
            raw = points * shape["ndf/scale"] + shape["ndf/loc"]
            tri = np.asarray(mesh.triangles)
            query = np.repeat(raw, len(tri), axis=0)
            closest = trimesh.triangles.closest_point(np.tile(tri, (len(raw), 1, 1)), query)
            brute = np.linalg.norm(closest - query, axis=1).reshape(len(raw), -1).min(axis=1) / shape["ndf/scale"]
            errors.append(np.abs(df - brute))
            assert (npz["df"] >= 0).all() and npz["grid_coords"].shape == (100_000, 3)
        errors = np.concatenate(errors)
        assert np.median(errors) <= 1e-4 and errors.max() <= 1e-3, (shape_id, np.median(errors), errors.max())
        npz = np.load(path / "voxelized_point_cloud_256res_10000points.npz")
        assert npz["point_cloud"].shape == (10_000, 3) and int(npz["res"]) == 256
    assert "follows format v2" in sdfkit("validate", store).stdout
