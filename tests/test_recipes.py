"""Recipes as plug-ins: one registry that the pipeline, the loader, validate and export loop over;
stores that record every array's spec; a recipe from another package, found by its entry point,
that runs end to end; voxel grids against brute force and binvox bytes written by hand."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import trimesh
import zarr
from conftest import ROOT
from test_cli import assert_user_error

from sdfkit.geometry.basics import cell_centres, shape_rng
from sdfkit.geometry.mesh import load_mesh, sample_surface
from sdfkit.geometry.sign import unsigned_distance
from sdfkit.geometry.voxels import solid_voxels, surface_voxels, write_binvox
from sdfkit.sources.shapenet import MeshJob, process_mesh

MESHES = Path(__file__).parent / "data" / "meshes"


def test_the_registry_gives_the_arrays_the_recipes_give_when_called_directly():
    """process_mesh loops over the registry; called one by one with their documented streams
    (outer surface 0, deepsdf 1, deepsdf-test 2, occnet 3, ifnet 4, ndf 5), the recipes' own
    functions give the same bytes, so moving them onto the registry changed no value."""
    from sdfkit.recipes.deepsdf import sample_mesh, signed_mesh
    from sdfkit.recipes.deepsdf_test import sample_test
    from sdfkit.recipes.ifnet import sample_ifnet
    from sdfkit.recipes.ndf import sample_ndf
    from sdfkit.recipes.occnet import sample_occnet

    path = MESHES / "multibody.stl"
    names = ("deepsdf", "deepsdf-test", "occnet", "ifnet", "ndf")
    row = process_mesh(MeshJob("m", str(path)), samples=5000, surface_samples=800, seed=7, rays=32, recipes=names)
    mesh = load_mesh(path)
    signed = signed_mesh(mesh, rng=shape_rng(7, "m"))
    base = sample_mesh(signed, samples=5000, surface_samples=800, rng=shape_rng(7, "m", 1))
    direct = {
        "norm/offset": base.offset,
        "norm/scale": base.scale,
        "sdf/points": base.sdf_points,
        "sdf/values": base.sdf_values,
        "surface/points": base.surface_points,
        "surface/normals": base.surface_normals,
    }
    direct["sdf_test/points"], direct["sdf_test/values"] = sample_test(signed, rng=shape_rng(7, "m", 2))
    direct |= sample_occnet(signed, rng=shape_rng(7, "m", 3))
    direct |= sample_ifnet(signed, rng=shape_rng(7, "m", 4))
    direct |= sample_ndf(mesh, signed, rng=shape_rng(7, "m", 5))
    assert set(direct) <= set(row)
    for name, value in direct.items():
        assert np.asarray(row[name]).tobytes() == np.asarray(value).tobytes(), name
    from sdfkit.sources.ledger import LEDGER_SPECS

    summaries = ["outer/closed_share", "outer/containers", "outer/sheet_share", "outer/soup", "sdf/rule_share"]
    summaries += ["sdf/unsure_share", *(spec.name for spec in LEDGER_SPECS)]
    assert sorted(set(row) - set(direct)) == sorted(summaries)


@pytest.mark.slow
def test_every_store_array_has_its_spec_recorded(tmp_path):
    """The store explains itself: every data array's shape, dtype, recipe, role, points, frame and
    sample set are in its `specs` attribute."""
    from test_cli import sdfkit

    store = tmp_path / "s.zarr"
    sdfkit("prepare-shapenet", MESHES / "multibody.stl", "-o", store, "--samples", "3000", "--surface-samples", "300",
           "--recipe", "occnet", "--recipe", "ndf", "--workers", "1")  # fmt: skip
    info = zarr.open_group(str(store), mode="r").attrs["sdfkit"]
    specs = info["specs"]
    data = [a for a in info["arrays"] if not a.startswith("meta/")]
    assert sorted(specs) == sorted(data)
    assert specs["sdf/values"] == {
        "shape": [3000], "dtype": "float32", "fill_value": None, "recipe": "deepsdf", "role": "sdf",
        "points": "sdf/points", "frame": "", "parameters": {}, "sample_set": "sdf",
    }  # fmt: skip
    assert specs["occnet/occupancies"]["frame"] == "occnet" and specs["occnet/occupancies"]["role"] == "occupancy"
    assert specs["ndf/boundary_0.02/points"]["parameters"] == {"sigma": 0.02}
    assert specs["occnet/voxels"]["shape"] == [32, 32, 32]


PLUGIN = '''
"""A recipe from another package: uniform samples in [-1, 1]^3 with their signed distances."""
import numpy as np

from sdfkit.recipes.base import Exporter, Recipe, nan_spec, shape_folder

COUNT = 2000


def _specs(parameters):
    return [
        nan_spec("far/points", (COUNT, 3), role="points"),
        nan_spec("far/values", (COUNT,), role="sdf", points="far/points"),
    ]


def _sample(mesh, signed, *, rng, parameters):
    points = rng.uniform(-1, 1, size=(COUNT, 3))
    return {"far/points": points.astype(np.float32), "far/values": signed.sdf(points).astype(np.float32)}


def _write(shape, tmp, context):
    rows = np.concatenate([shape["far/points"], shape["far/values"][:, None]], axis=1)
    np.save(shape_folder(tmp, shape) / "far.npy", rows)
    return 1


RECIPE = Recipe(
    name="far",
    stream=40,
    description="uniform samples with signed distances",
    specs=_specs,
    sample=_sample,
    sample_sets={"far": ("far/points", "far/values")},
    exporters=(Exporter("far", "far.npy per shape", _write),),
)
'''


def _box_sdf(points, half):
    q = np.abs(points) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


@pytest.mark.slow
def test_a_recipe_from_another_package_runs_end_to_end(tmp_path):
    """A package registers a recipe through the `sdfkit.recipes` entry point: prepare-shapenet
    (in worker processes) samples it, export writes its layout. Without the package, validate
    checks its arrays and the loader reads them from the store's specs alone."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "far_recipe.py").write_text(textwrap.dedent(PLUGIN))
    info = plugin / "far_recipe-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: far-recipe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sdfkit.recipes]\nfar = far_recipe:RECIPE\n")
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    trimesh.creation.box(extents=(1.0, 0.6, 0.4)).export(meshes / "box.obj")
    store, out = tmp_path / "s.zarr", tmp_path / "far-export"

    def run(*args, with_plugin=True, check=True):
        path = [str(ROOT), *([str(plugin)] if with_plugin else [])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        command = [sys.executable, "-m", "cli.main", *map(str, args)]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert not check or result.returncode == 0, result.stderr
        return result

    assert "far" in run("prepare-shapenet", "--help").stdout
    run("prepare-shapenet", meshes, "-o", store, "--recipe", "far", "--samples", "3000", "--surface-samples", "500",
        "--workers", "2")  # fmt: skip
    run("export", store, "--to", "far", "-o", out)
    rows = np.load(out / "shapes" / "box" / "far.npy")
    group = zarr.open_group(str(store), mode="r")
    offset, scale = group["norm/offset"][0], float(group["norm/scale"][0])
    raw = rows[:, :3].astype(np.float64) / scale - offset  # the box's own frame
    truth = _box_sdf(raw, np.array([0.5, 0.3, 0.2])) * scale
    assert np.abs(rows[:, 3] - truth).max() < 1e-5
    # without the plug-in: the store explains itself
    assert "the store follows format v2" in run("validate", store, with_plugin=False).stdout
    code = (
        f"from sdfkit.torch import SampleWindows; d = SampleWindows({str(store)!r}, 'far', window=500); "
        "print(sorted(k for k in d[0] if '/' in k))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert shown.stdout.strip() == "['far/points', 'far/values']", shown.stderr
    values = zarr.open_group(str(store), mode="r+")["far/values"]
    values[0] = values[0] * 3  # a bug in the plug-in: distances three times too long
    failed = run("validate", store, with_plugin=False, check=False)
    assert failed.returncode == 1 and "far/values" in failed.stdout
    # a plug-in that clashes with a recipe is refused in one line
    (plugin / "far_recipe.py").write_text(textwrap.dedent(PLUGIN).replace("stream=40", "stream=3"))
    assert_user_error(run("prepare-shapenet", meshes, "-o", tmp_path / "t.zarr", check=False), "stream 3", "occnet")


def test_surface_voxels_hold_every_surface_point_and_nothing_far():
    """Exact triangle-box overlap against brute force: every cell holding a point sampled on a
    triangle is marked, and no marked cell's centre is farther from the surface than half a
    cell's diagonal; an axis-aligned plane marks exactly its layer of cells."""
    rng = np.random.default_rng(0)
    vertices = rng.uniform(-0.6, 0.6, size=(90, 3))
    faces = rng.permutation(90).reshape(-1, 3)
    grid = surface_voxels(vertices, faces, 24)
    points, _ = sample_surface(vertices, faces, 200_000, rng=rng)
    cell = np.floor((points + 0.5) * 24).astype(int)
    cell = cell[((cell >= 0) & (cell < 24)).all(axis=1)]
    assert grid[cell[:, 0], cell[:, 1], cell[:, 2]].all()
    axis = cell_centres(24, -0.5, 0.5)
    i, j, k = np.nonzero(grid)
    distance = unsigned_distance(vertices, faces, np.stack([axis[i], axis[j], axis[k]], axis=1))
    assert distance.max() <= np.sqrt(3) / 2 / 24 + 1e-9
    plane = np.array([[-1, -1, 0.13], [1, -1, 0.13], [1, 1, 0.13], [-1, 1, 0.13]])
    layer = surface_voxels(plane, np.array([[0, 1, 2], [0, 2, 3]]), 10)
    expected = np.zeros((10, 10, 10), dtype=bool)
    expected[:, :, 6] = True  # 0.13 lies in cell 6 of [-0.5, 0.5] in tenths
    np.testing.assert_array_equal(layer, expected)


def test_solid_voxels_of_a_ball_and_binvox_bytes_written_by_hand(tmp_path):
    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.3)
    grid = solid_voxels(ball.vertices, ball.faces, lambda p: np.linalg.norm(p, axis=1) < 0.3, 16)
    axis = cell_centres(16, -0.5, 0.5)
    centre = np.linalg.norm(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1), axis=-1)
    assert grid[centre < 0.3 - 0.06].all() and not grid[centre > 0.3 + 0.06].any()
    # a 2^3 grid with [x, y, z] = [1, 0, 1] set: binvox runs y fastest, then z, then x
    tiny = np.zeros((2, 2, 2), dtype=bool)
    tiny[1, 0, 1] = True
    write_binvox(tmp_path / "t.binvox", tiny)
    header = b"#binvox 1\ndim 2 2 2\ntranslate -0.5 -0.5 -0.5\nscale 1.0\ndata\n"
    # order x0z0y0 x0z0y1 x0z1y0 x0z1y1 x1z0y0 x1z0y1 x1z1y0 x1z1y1: the 7th is set
    assert (tmp_path / "t.binvox").read_bytes() == header + bytes([0, 6, 1, 1, 0, 1])
    long = np.ones((8, 8, 8), dtype=bool)
    write_binvox(tmp_path / "l.binvox", long)
    assert (tmp_path / "l.binvox").read_bytes().split(b"data\n")[1] == bytes([1, 255, 1, 255, 1, 2])


@pytest.mark.parametrize("recipe", ["occnet", "ifnet"])
def test_recipe_voxels_agree_with_the_shapes_truth(tmp_path, recipe):
    """OccNet's model.binvox and IF-Net's voxel inputs: cells away from the surface are filled
    exactly where the shape's exact SDF says inside."""
    from sdfkit.geometry.shapes import make_shapes, solid_from_json
    from sdfkit.recipes.deepsdf import signed_mesh
    from sdfkit.recipes.ifnet import sample_ifnet
    from sdfkit.recipes.occnet import sample_occnet

    manifest = make_shapes(tmp_path, 2, seed=4, categories=("chair", "bracket"), defects=("interior", "flipped"))
    for shape_id, info in manifest.items():
        mesh = load_mesh(tmp_path / info["synset"] / shape_id / "models" / "model_normalized.obj")
        signed = signed_mesh(mesh, rng=shape_rng(0, shape_id))
        arrays = (sample_occnet if recipe == "occnet" else sample_ifnet)(signed, rng=shape_rng(0, shape_id, 3))
        grid = arrays["occnet/voxels" if recipe == "occnet" else "ifnet/voxels_32"].astype(bool)
        loc, scale = arrays[f"{recipe}/loc"], float(arrays[f"{recipe}/scale"])
        axis = cell_centres(32, -0.5, 0.5)
        centres = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
        truth = solid_from_json(info["parts"], info.get("holes")).sdf(centres * scale + loc) / scale
        far = np.abs(truth) > np.sqrt(3) / 2 / 32
        assert (grid.reshape(-1)[far] == (truth[far] < 0)).mean() >= 0.999, shape_id


@pytest.mark.slow
def test_a_store_made_before_stores_recorded_their_specs_still_validates_and_loads(tmp_path):
    """Without the `specs` attribute (sdfkit 0.3 and older): validate checks the base arrays'
    geometry from what the format says they hold, and the loader finds the sample sets by the
    registry's names."""
    from test_cli import sdfkit

    from sdfkit.store.validate import validate_store

    store = tmp_path / "s.zarr"
    sdfkit("prepare-shapenet", MESHES / "multibody.stl", "-o", store, "--samples", "3000", "--surface-samples", "300",
           "--recipe", "occnet", "--workers", "1")  # fmt: skip
    group = zarr.open_group(str(store), mode="r+")
    info = dict(group.attrs["sdfkit"])
    del info["specs"]
    group.attrs["sdfkit"] = info
    report = validate_store(str(store))
    assert report.ok and report.check("surface vs SDF samples").checked == 1
    from sdfkit.torch import SampleWindows

    assert SampleWindows(str(store), "occnet", window=100)[0]["occnet/points"].shape == (100, 3)
    group["sdf/values"][0] = group["sdf/values"][0] * 3
    report = validate_store(str(store))
    assert not report.ok and report.check("surface vs SDF samples").violations == 1
