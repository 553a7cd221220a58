"""prepare-shapenet end to end: layouts, splits, failures, crashes, kill and resume, Dask and S3.

Real components throughout: meshes written to disk, zarr stores on disk, worker processes that
really crash, a Dask LocalCluster, and moto's S3 server on 127.0.0.1.
"""

from __future__ import annotations

import ctypes
import faulthandler
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import ROOT, kill_midway
from test_cli import assert_user_error, sdfkit

from sdfkit import open_dataset
from sdfkit.errors import InputError
from sdfkit.geometry.shapes import make_shapes, solid_from_json
from sdfkit.pipeline.runners import ShardTask, run_tasks
from sdfkit.sources.shapenet import ShapenetConfig, find_meshes, plan_shapenet, prepare_shapenet
from sdfkit.sources.splits import read_split_files
from sdfkit.store.format import ArraySpec, StoreLayout, create_store
from sdfkit.store.format import ShapeMeta as Meta

MESHES = Path(__file__).parent / "data" / "meshes"
SMALL = ShapenetConfig(samples=20_000, surface_samples=2_000)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Nine procedural shapes (three per category, with defects) in ShapeNet v2's layout."""
    root = tmp_path_factory.mktemp("shapes") / "ShapeNetCore.v2"
    make_shapes(root, 9, defects=("clean", "holes", "combo"))
    return root


def test_layouts_are_detected(tmp_path, tree):
    layout, meshes = find_meshes(tree)
    assert layout == "shapenet-v2" and len(meshes) == 9
    assert {m[0] for m in meshes} == {"03001627", "04379243", "02691156"}
    v1 = tmp_path / "v1" / "02691156" / "abc"
    v1.mkdir(parents=True)
    shutil.copy(MESHES / "teapot.stl", v1 / "model.obj.tmp")
    (v1 / "model.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert find_meshes(tmp_path / "v1") == ("shapenet-v1", [("02691156", "abc", v1 / "model.obj")])
    plain = tmp_path / "plain"
    (plain / "pots").mkdir(parents=True)
    shutil.copy(MESHES / "teapot.stl", plain / "pots" / "teapot.stl")
    shutil.copy(MESHES / "suzanne.ply", plain / "suzanne.ply")
    layout, meshes = find_meshes(plain)
    assert layout == "folder" and [(c, i) for c, i, _ in meshes] == [("pots", "pots/teapot"), ("", "suzanne")]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="no meshes found"):
        find_meshes(tmp_path / "nothing")


def test_split_files_select_and_name_splits(tmp_path, tree):
    splits = read_split_files([tree / "splits" / "train.json", tree / "splits" / "test.json"])
    manifest = json.loads((tree / "shapes.json").read_text())
    assert splits == {(v["synset"], k): v["split"] for k, v in manifest.items()}
    custom = tmp_path / "sv2_planes_extra.json"
    plane = next(k for k, v in manifest.items() if v["category"] == "airplane")
    custom.write_text(json.dumps({"ShapeNetV2": {"02691156": [plane]}}))
    metas, jobs, _ = plan_shapenet(tree, SMALL, [custom])
    assert [(m.id, m.split) for m in metas] == [(plane, "sv2_planes_extra")]
    metas, _, _ = plan_shapenet(tree, ShapenetConfig(synsets=("04379243",)))
    assert {m.category for m in metas} == {"04379243"} and all(m.split == "train" for m in metas)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="DeepSDF's split format"):
        read_split_files([bad])


@pytest.mark.slow
def test_store_values_against_exact_sdfs(tmp_path, tree):
    """The whole pipeline, read back with plain zarr and checked against each shape's exact SDF."""
    summary = prepare_shapenet(tree, str(tmp_path / "s.zarr"), SMALL, workers=2, shard_size=4)
    assert summary.state == "created" and not summary.failures
    g = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert g.attrs["sdfkit"]["kind"] == "shapenet" and g.attrs["sdfkit"]["complete"]
    assert g["sdf/points"].shape == (9, 20_000, 3) and g["sdf/points"].chunks == (1, 20_000, 3)
    assert g["surface/normals"].shape == (9, 2_000, 3) and g["norm/scale"].shape == (9,)
    manifest = json.loads((tree / "shapes.json").read_text())
    for row, shape_id in enumerate(str(i) for i in g["meta/id"][:]):
        solid = solid_from_json(manifest[shape_id]["parts"], manifest[shape_id].get("holes"))
        offset, scale = g["norm/offset"][row].astype(float), float(g["norm/scale"][row])
        points, values = g["sdf/points"][row].astype(float), g["sdf/values"][row]
        truth = solid.sdf(points / scale - offset) * scale
        far = np.abs(truth) > 0.005
        assert np.mean((values[far] < 0) == (truth[far] < 0)) >= 0.995, shape_id
        near = np.abs(truth) < 0.1
        assert np.median(np.abs(values[near] - truth[near])) <= 0.002, shape_id
        surface = g["surface/points"][row].astype(float)
        assert np.quantile(np.abs(solid.sdf(surface / scale - offset) * scale), 0.99) < 0.002, shape_id


@pytest.mark.slow
def test_a_bad_mesh_fails_alone_and_strict_exits_nonzero(tmp_path):
    root = tmp_path / "meshes"
    root.mkdir()
    for name in ("empty.obj", "teapot.stl", "suzanne.ply", "notenoughindices.obj"):
        shutil.copy(MESHES / name, root / name)
    (root / "garbage.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\n")
    out = tmp_path / "m.zarr"
    run = sdfkit("prepare-shapenet", root, "-o", out, "--samples", 5000, "--surface-samples", 500, "--workers", 2)
    assert "2 failed shapes" in run.stdout and "empty: empty.obj: has no faces" in run.stdout
    info = json.loads(sdfkit("info", out, "--json").stdout)
    assert info["complete"] and info["splits"]["train"] == {"ok": 3, "failed": 2, "pending": 0}
    assert {f["id"] for f in info["failures"]} == {"empty", "garbage"}
    strict = sdfkit(
        "prepare-shapenet",
        root,
        "-o",
        tmp_path / "strict.zarr",
        "--samples",
        5000,
        "--surface-samples",
        500,
        "--strict",
        check=False,
    )
    assert_user_error(strict, "2 meshes failed (--strict)")


def test_a_native_crash_takes_down_one_shape_not_the_run(tmp_path):
    jobs = ["a", "bb", "crash", "dddd", "eeeee", "ffffff", "g", "hh"]
    url = str(tmp_path / "c.zarr")
    specs = [ArraySpec("value", (1,), "float32", float("nan"))]
    create_store(url, StoreLayout("test", [Meta(j, "", -1, "train") for j in jobs], specs, {}, {}, shard_size=3))

    tasks = [ShardTask(url, k, jobs[3 * k : 3 * k + 3], _crash_fn, specs) for k in range(3)]
    reports = list(run_tasks(tasks, workers=2, isolate=True))
    assert sorted(r.shard for r in reports) == [0, 1, 2]
    g = zarr.open_group(url, mode="r")
    status = g["meta/status"][:]
    assert status.tolist() == [1, 1, 2, 1, 1, 1, 1, 1]
    assert "crashed" in str(g["meta/error"][2])
    np.testing.assert_array_equal(g["value"][:, 0], [1, 2, np.nan, 4, 5, 6, 1, 2])


def _parent(job):
    """A per-shape function that records which process started the worker computing it."""
    return {"value": np.array([os.getppid()], dtype=np.float64)}


def test_workers_are_not_forks_of_a_process_that_ran_native_thread_pools(tmp_path):
    """A process forked from one whose manifold3d and open3d TBB thread pools have run can wait
    forever on a pool thread fork did not copy (a CI run hung in manifold::Manifold so, its parent a
    pytest worker that had signed meshes): workers start from a fork server instead, twice over
    (pools, and the fresh processes of an isolated run), and the run completes."""
    from sdfkit.geometry.mesh import load_mesh
    from sdfkit.recipes.deepsdf import signed_mesh

    signed = signed_mesh(load_mesh(MESHES / "multibody.stl"), rng=np.random.default_rng(0))
    signed.sdf(np.zeros((1000, 3)))  # manifold3d's union and open3d's queries have run in this process
    jobs = list("abcdef")
    specs = [ArraySpec("value", (1,), "float64", float("nan"))]
    for isolate in (False, True):
        url = str(tmp_path / f"p{isolate}.zarr")
        metas = [Meta(j, "", -1, "train") for j in jobs]
        create_store(url, StoreLayout("test", metas, specs, {}, {}, shard_size=2))
        tasks = [ShardTask(url, k, jobs[2 * k : 2 * k + 2], _parent, specs) for k in range(3)]
        assert sorted(r.done for r in run_tasks(tasks, workers=2, isolate=isolate)) == [2, 2, 2]
        parents = zarr.open_group(url, mode="r")["value"][:, 0]
        assert os.getpid() not in parents and len(set(parents.tolist())) == 1  # one fork server


def _crash_fn(job):
    """A per-shape function that segfaults on one job, as a broken native library would."""
    if job == "crash":
        faulthandler.disable()  # pytest's handler would print a page of modules to the log
        ctypes.string_at(0)  # reads address 0: SIGSEGV in this worker process
    return {"value": np.array([len(job)], dtype=np.float32)}


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path, tree):
    out = tmp_path / "k.zarr"
    # one shape per shard, so that the kill lands between shards
    args = [
        "prepare-shapenet",
        tree,
        "-o",
        out,
        "--samples",
        250_000,
        "--surface-samples",
        3000,
        "--workers",
        1,
        "--shard-size",
        1,
    ]
    kill_midway(args, out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    status = zarr.open_group(out, mode="r")["meta/status"][:]
    assert 0 < (status == 0).sum() < len(status), "the kill did not land mid-run"
    resumed = subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)], env=env, capture_output=True, text=True, check=True
    )
    assert "resumed" in resumed.stdout
    reference = tmp_path / "r.zarr"
    subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args[:3]), reference, *map(str, args[4:])],
        env=env,
        capture_output=True,
        check=True,
    )
    a, b = zarr.open_group(out, mode="r"), zarr.open_group(reference, mode="r")
    for name in ("sdf/points", "sdf/values", "surface/points", "surface/normals", "norm/offset", "meta/status"):
        assert np.array_equal(a[name][:], b[name][:]), name


@pytest.mark.slow
def test_dask_cluster_writes_to_s3(tree, tmp_path, s3_server):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        summary = prepare_shapenet(
            tree, "s3://sdfkit-test/shapes.zarr", SMALL, scheduler=cluster.scheduler_address, shard_size=4
        )
    assert summary.state == "created" and summary.computed == 9 and not summary.failures
    remote = open_dataset("s3://sdfkit-test/shapes.zarr")
    local_summary = prepare_shapenet(tree, str(tmp_path / "local.zarr"), SMALL, workers=2, shard_size=4)
    assert local_summary.computed == 9
    local = open_dataset(tmp_path / "local.zarr")
    assert remote.ids == local.ids
    for k in (0, 8):
        np.testing.assert_array_equal(remote[k]["sdf/values"], local[k]["sdf/values"])


@pytest.mark.slow
def test_cli_scheduler_from_the_environment(tree, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        env_run = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "prepare-shapenet",
                str(tree),
                "-o",
                str(tmp_path / "d.zarr"),
                "--samples",
                "5000",
                "--surface-samples",
                "500",
                "--synsets",
                "04379243",
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT), "DASK_SCHEDULER_ADDRESS": cluster.scheduler_address},
            capture_output=True,
            text=True,
        )
    assert env_run.returncode == 0, env_run.stderr
    assert "3 shapes computed" in env_run.stdout
    assert_user_error(
        sdfkit("prepare-shapenet", tree, "-o", tmp_path / "x.zarr", "--scheduler", "tcp://127.0.0.1:9", check=False),
        "Dask scheduler",
    )


@pytest.mark.slow
def test_cli_bad_input(tmp_path, tree):
    assert_user_error(
        sdfkit("prepare-shapenet", tmp_path / "nowhere", "-o", tmp_path / "x.zarr", check=False),
        "no such file or folder",
    )
    assert_user_error(
        sdfkit("prepare-shapenet", tree, "--split", tmp_path / "none.json", "-o", tmp_path / "x.zarr", check=False),
        "no such split file",
    )
    assert_user_error(
        sdfkit("prepare-shapenet", tree, "--synsets", "99999999", "-o", tmp_path / "x.zarr", check=False), "--synsets"
    )
    out = tmp_path / "p.zarr"
    sdfkit("prepare-shapenet", tree, "-o", out, "--samples", 3000, "--surface-samples", 300, "--synsets", "04379243")
    assert_user_error(
        sdfkit(
            "prepare-shapenet",
            tree,
            "-o",
            out,
            "--samples",
            4000,
            "--surface-samples",
            300,
            "--synsets",
            "04379243",
            check=False,
        ),
        "other parameters",
    )
    assert (
        "already complete"
        in sdfkit(
            "prepare-shapenet", tree, "-o", out, "--samples", 3000, "--surface-samples", 300, "--synsets", "04379243"
        ).stdout
    )
    assert_user_error(sdfkit("make-shapes", tree, check=False), "not empty")


@pytest.mark.slow
def test_deepsdf_test_recipe_through_the_cli(tmp_path, tree):
    """--recipe deepsdf-test adds DeepSDF's test samples: signs right against the exact SDF, a
    wider spread than the training samples, and validate checks them."""
    out = tmp_path / "t.zarr"
    sdfkit(
        "prepare-shapenet",
        tree,
        "--synsets",
        "04379243",
        "--recipe",
        "deepsdf-test",
        "-o",
        out,
        "--samples",
        "20000",
        "--surface-samples",
        "2000",
    )
    g = zarr.open_group(out, mode="r")
    assert g["sdf_test/points"].shape[1:] == (250_000, 3) and g.attrs["sdfkit"]["parameters"]["recipes"] == [
        "deepsdf",
        "deepsdf-test",
    ]
    manifest = json.loads((tree / "shapes.json").read_text())
    for row, shape_id in enumerate(str(i) for i in g["meta/id"][:]):
        solid = solid_from_json(manifest[shape_id]["parts"], manifest[shape_id].get("holes"))
        offset, scale = g["norm/offset"][row], float(g["norm/scale"][row])
        points, values = g["sdf_test/points"][row].astype(float), g["sdf_test/values"][row]
        truth = solid.sdf(points / scale - offset) * scale
        far = np.abs(truth) > 0.005
        assert np.mean((values[far] < 0) == (truth[far] < 0)) >= 0.995, shape_id
        train = solid.sdf(g["sdf/points"][row].astype(float) / scale - offset) * scale
        assert np.percentile(np.abs(truth), 75) > 2 * np.percentile(np.abs(train), 75)  # variance 0.05, not 0.005
    assert "follows format v2" in sdfkit("validate", out).stdout


def test_shipped_split_files_are_the_projects_own(tmp_path, monkeypatch):
    """DeepSDF's and MetaSDF's split files for planes and tables ship by name, with the projects'
    sizes, MetaSDF's train lists a prefix of DeepSDF's, the tests the same; a changed byte is an
    input error naming the file."""
    from sdfkit.sources import splits as shipped

    counts = {
        "deepsdf/planes_train": 1780, "deepsdf/planes_test": 456, "deepsdf/tables_train": 4859,
        "deepsdf/tables_test": 1216, "metasdf/planes_train": 1762, "metasdf/planes_test": 456,
        "metasdf/tables_train": 4819, "metasdf/tables_test": 1216,
    }  # fmt: skip
    lists = {}
    for name, count in counts.items():
        ((synset, ids),) = json.loads(shipped.read_named_split(name))["ShapeNetV2"].items()
        assert len(ids) == count and synset == ("02691156" if "planes" in name else "04379243")
        lists[name] = ids
    for kind in ("planes", "tables"):
        metasdf, deepsdf = lists[f"metasdf/{kind}_train"], lists[f"deepsdf/{kind}_train"]
        assert deepsdf[: len(metasdf)] == metasdf
        assert lists[f"metasdf/{kind}_test"] == lists[f"deepsdf/{kind}_test"]
    splits = read_split_files(["metasdf/planes_train", "deepsdf/planes_test"])
    assert sum(v == "train" for v in splits.values()) == 1762 and sum(v == "test" for v in splits.values()) == 456
    copy = tmp_path / "splits"
    shutil.copytree(Path(shipped.__file__).resolve().parents[1] / "data" / "splits", copy)
    source = copy / shipped.SPLITS["metasdf/planes_test"].file
    data = bytearray(gzip.decompress(source.read_bytes()))
    data[-10] ^= 1
    source.write_bytes(gzip.compress(bytes(data)))
    monkeypatch.setattr(shipped, "_FOLDER", copy)
    with pytest.raises(InputError, match="planes_test.json.gz: checksum .* reinstall"):
        shipped.read_named_split("metasdf/planes_test")


@pytest.mark.slow
def test_named_splits_and_a_validation_hold_out_through_the_cli(tmp_path, tree):
    """Shapes under ids of MetaSDF's split files, prepared with --split by name and --val-shapes:
    the listed shapes keep their split, the seeded hold-out moves train shapes to val."""
    from sdfkit.sources.splits import read_named_split

    train = json.loads(read_named_split("metasdf/planes_train"))["ShapeNetV2"]["02691156"][:5]
    test = json.loads(read_named_split("metasdf/planes_test"))["ShapeNetV2"]["02691156"][:2]
    meshes = sorted((tree / "02691156").glob("*/models/model_normalized.obj"))
    root = tmp_path / "ShapeNetCore.v2"
    for k, shape_id in enumerate(train + test):
        target = root / "02691156" / shape_id / "models" / "model_normalized.obj"
        target.parent.mkdir(parents=True)
        shutil.copy(meshes[k % len(meshes)], target)
    out = tmp_path / "planes.zarr"
    sdfkit(
        "prepare-shapenet", root, "--split", "metasdf/planes_train", "--split", "metasdf/planes_test",
        "--val-shapes", "2", "-o", out, "--samples", "4000", "--surface-samples", "500", "--workers", "1",
    )  # fmt: skip
    g = zarr.open_group(out, mode="r")
    got = dict(zip((str(i) for i in g["meta/id"][:]), (str(s) for s in g["meta/split"][:]), strict=True))
    assert {i for i, s in got.items() if s == "test"} == set(test)
    held = {i for i, s in got.items() if s == "val"}
    assert len(held) == 2 and held < set(train) and {i for i, s in got.items() if s == "train"} == set(train) - held
    source = g.attrs["sdfkit"]["source"]
    assert source["split_files"] == ["metasdf/planes_train", "metasdf/planes_test"] and source["val_shapes"] == 2
    assert source["missing_from_root"] == 1762 + 456 - 7
    assert_user_error(
        sdfkit("prepare-shapenet", root, "--split", "metasdf/planes_train", "--val-shapes", "9", "-o",
               tmp_path / "x.zarr", check=False),
        "--val-shapes 9: the train split has only 5 shapes",
    )  # fmt: skip
