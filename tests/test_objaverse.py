"""Objaverse-scale sources: GLB scenes flattened right (a scene written byte by byte, its
geometry computed by hand), Objaverse 1.0's cache and a metadata.csv as sources, licences,
content ids, exact and near duplicates, the ledger, and --max-faces; through the CLI."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
import struct

import numpy as np
import pytest
import trimesh
import zarr
from test_cli import sdfkit

from sdfkit.geometry.mesh import read_mesh
from sdfkit.geometry.shapes import make_shapes
from sdfkit.sources.objects import normalize_licence
from sdfkit.sources.shapenet import mark_near_duplicates

TETRA = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
TETRA_FACES = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.uint32)


def _glb(path, nodes, roots, meshes, buffers):
    """A GLB file from glTF JSON parts and binary blobs (one buffer view and accessor each)."""
    binary, views, accessors = b"", [], []
    for data, kind in buffers:
        views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(data.tobytes())})
        component = 5126 if data.dtype == np.float32 else 5125
        accessor = {
            "bufferView": len(views) - 1,
            "componentType": component,
            "count": int(len(data.reshape(-1, 3 if kind == "VEC3" else 1))),
        }
        accessor["type"] = kind
        if kind == "VEC3":
            accessor["min"], accessor["max"] = data.min(axis=0).tolist(), data.max(axis=0).tolist()
        accessors.append(accessor)
        binary += data.tobytes()
    document = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": roots}],
        "nodes": nodes,
        "meshes": meshes,
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)


def _instanced_scene(path):
    """One tetrahedron placed by three nodes (a translation; a rotation and a scale; a child
    scaled under a translated parent), five points and two line segments. Returns the expected
    flattened vertices, one (4, 3) block per placement."""
    points = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    lines = np.array([[0, 0, 5], [1, 0, 5], [0, 1, 5], [1, 1, 5]], dtype=np.float32)
    half = np.sqrt(0.5)
    nodes = [
        {"mesh": 0, "translation": [2.0, 0.0, 0.0]},
        {"mesh": 0, "rotation": [0.0, 0.0, half, half], "scale": [2.0, 2.0, 2.0]},  # 90 degrees about z
        {"children": [3], "translation": [0.0, 5.0, 0.0]},
        {"mesh": 0, "scale": [1.0, 1.0, 3.0]},
        {"mesh": 1},
        {"mesh": 2},
    ]
    meshes = [
        {"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]},
        {"primitives": [{"attributes": {"POSITION": 2}, "mode": 0}]},
        {"primitives": [{"attributes": {"POSITION": 3}, "mode": 1}]},
    ]
    buffers = [(TETRA, "VEC3"), (TETRA_FACES.ravel(), "SCALAR"), (points, "VEC3"), (lines, "VEC3")]
    _glb(path, nodes, [0, 1, 2, 4, 5], meshes, buffers)
    v = TETRA.astype(np.float64)
    rotated = np.stack([-v[:, 1], v[:, 0], v[:, 2]], axis=1) * 2.0  # R_z(90) then scale 2
    return [v + [2.0, 0.0, 0.0], rotated, v * [1.0, 1.0, 3.0] + [0.0, 5.0, 0.0]]


def test_a_scene_is_flattened_with_its_transforms_and_instances_and_counts_what_it_skips(tmp_path):
    expected = _instanced_scene(tmp_path / "scene.glb")
    mesh, found = read_mesh(tmp_path / "scene.glb")
    assert len(mesh.faces) == 12 and found.meshes == 3 and found.points == 5 and found.line_points == 4
    assert found.units == "meters"
    triangles = {tuple(np.round(mesh.vertices[f], 6).ravel()) for f in mesh.faces}
    wanted = {tuple(np.round(block[f], 6).ravel()) for block in expected for f in TETRA_FACES}
    assert triangles == wanted  # every placed triangle, with its winding


def test_licences_have_one_spelling():
    table = {
        "by": "cc-by", "by-nc-sa": "cc-by-nc-sa", "CC-BY 4.0": "cc-by", "cc_by_sa": "cc-by-sa", "CC0": "cc0",
        "cc0-1.0": "cc0", "Public Domain": "cc0", "Creative Commons Attribution-NonCommercial 4.0": "cc-by-nc",
        "MIT License": "mit", "Apache License 2.0": "apache-2.0", "GPL-3.0": "gpl-3.0", "": "", None: "",
        float("nan"): "",
    }  # fmt: skip
    assert {key if key == key else "nan": normalize_licence(key) for key in table} == {
        key if key == key else "nan": value for key, value in table.items()
    }


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Four make-shapes meshes (two chairs, two airplanes), closed."""
    base = tmp_path_factory.mktemp("objaverse")
    make_shapes(base / "made", 4, seed=3, categories=("chair", "airplane"), defects=("clean",))
    return base, sorted((base / "made").rglob("*.obj"))


def _objaverse_cache(root, meshes):
    """Objaverse 1.0's cache: glbs/<000-xxx>/<uid>.glb and metadata/<000-xxx>.json.gz."""
    notes = {}
    for k, mesh in enumerate(meshes):
        shard = f"000-{k % 2:03d}"
        (root / "glbs" / shard).mkdir(parents=True, exist_ok=True)
        trimesh.load(mesh, process=False, force="mesh").export(root / "glbs" / shard / f"uid{k}.glb")
        notes.setdefault(shard, {})[f"uid{k}"] = {"license": ["by", "by-nc", "cc0", None][k], "name": f"object {k}"}
    for shard, content in notes.items():
        (root / "metadata").mkdir(exist_ok=True)
        with gzip.open(root / "metadata" / f"{shard}.json.gz", "wt") as f:
            json.dump(content, f)


def _rows(store):
    group = zarr.open_group(str(store), mode="r")
    keys = ["meta/id", "meta/status", "meta/error", "ledger/licence", "ledger/name", "ledger/sha256"]
    names = [k.split("/")[1] for k in keys[1:]]
    return {str(r[0]): dict(zip(names, [x.item() if hasattr(x, "item") else str(x) for x in r[1:]], strict=True))
            for r in zip(*[group[k][:] for k in keys], strict=True)}  # fmt: skip


@pytest.mark.slow
def test_objaverse_cache_with_licences(shapes, tmp_path):
    base, meshes = shapes
    root = tmp_path / "hf-objaverse-v1"
    _objaverse_cache(root, meshes)
    store = tmp_path / "o.zarr"
    result = sdfkit("prepare-shapenet", root, "-o", store, "--samples", "2000", "--surface-samples", "300",
                    "--workers", "1", "--licence", "CC-BY,cc0")  # fmt: skip
    assert "2 shapes skipped on purpose" in result.stdout
    rows = _rows(store)
    assert sorted(rows) == ["uid0", "uid1", "uid2", "uid3"]
    assert [rows[i]["status"] for i in sorted(rows)] == [1, 3, 1, 3]
    assert rows["uid1"]["error"] == "skipped: licence cc-by-nc (--licence cc-by,cc0)"
    assert rows["uid3"]["error"] == "skipped: no licence recorded (--licence cc-by,cc0)"
    assert (rows["uid0"]["licence"], rows["uid0"]["name"]) == ("cc-by", "object 0")
    glb = next(root.rglob("uid2.glb"))
    assert rows["uid2"]["sha256"] == hashlib.sha256(glb.read_bytes()).hexdigest()
    info = sdfkit("info", store).stdout
    assert "uid1: licence cc-by-nc" in info
    sdfkit("validate", store)
    export = sdfkit("export", store, "--to", "npz", "-o", tmp_path / "npz")
    assert "wrote 2 shapes" in export.stdout and sorted(p.stem for p in (tmp_path / "npz").rglob("*.npz")) == [
        "uid0",
        "uid2",
    ]


@pytest.mark.slow
def test_metadata_csv_keys_objects_by_sha256_and_keeps_every_row(shapes, tmp_path):
    base, meshes = shapes
    root = tmp_path / "xl"
    (root / "raw").mkdir(parents=True)
    rows = []
    for k, mesh in enumerate(meshes[:3]):
        shutil.copy(mesh, root / "raw" / f"{k}.obj")
        sha = hashlib.sha256(mesh.read_bytes()).hexdigest()
        rows.append({"sha256": sha, "file_identifier": f"https://example.org/{k}", "local_path": f"raw/{k}.obj",
                     "license": "CC-BY 4.0"})  # fmt: skip
    rows[2]["sha256"] = "f" * 64  # the file is not the object listed
    rows.append({"sha256": "e" * 64, "file_identifier": "https://example.org/gone", "local_path": "", "license": ""})
    rows.append(dict(rows[0]))  # listed twice: one object
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    store = tmp_path / "xl.zarr"
    sdfkit("prepare-shapenet", root, "-o", store, "--samples", "2000", "--surface-samples", "300", "--workers", "1")
    got = _rows(store)
    assert sorted(got) == sorted({r["sha256"] for r in rows})
    assert got[rows[0]["sha256"]]["status"] == 1 and got[rows[0]["sha256"]]["licence"] == "cc-by"
    assert got[rows[1]["sha256"]]["status"] == 1
    assert got["f" * 64]["status"] == 2 and "not the ffffffffffff... metadata.csv lists" in got["f" * 64]["error"]
    assert got["e" * 64]["status"] == 2 and "not downloaded" in got["e" * 64]["error"]
    # the ledger as a table and a page: every object, its class of failure
    report = sdfkit("report", store, "-o", tmp_path / "report", "--thumbnails", "2")
    assert "4 objects (2 ok, 2 failed, 0 skipped, 0 pending)" in report.stdout and "2 thumbnails" in report.stdout
    assert "failed, not downloaded: 1" in report.stdout and "failed, not the listed file: 1" in report.stdout
    with open(tmp_path / "report" / "ledger.csv", newline="") as f:
        table = {row["id"]: row for row in csv.DictReader(f)}
    assert sorted(table) == sorted(got)
    assert {table[i]["status"] for i in got} == {"ok", "failed"} and table["e" * 64][
        "failure_class"
    ] == "not downloaded"
    assert table[rows[0]["sha256"]]["ledger_sha256"] == rows[0]["sha256"]
    assert int(table[rows[0]["sha256"]]["ledger_faces"]) == len(trimesh.load(meshes[0], process=False).faces)
    import pyarrow.parquet as pq

    parquet = pq.read_table(tmp_path / "report" / "ledger.parquet").to_pydict()
    assert parquet["id"] == list(table) and parquet["status"] == [table[i]["status"] for i in table]
    page = (tmp_path / "report" / "report.html").read_text()
    assert "4 objects: 2 ok, 2 failed" in page and page.count("data:image/png;base64,") == 2


def _near_copies(source, folder):
    """The object and near-duplicates of it: reordered, re-triangulated, a GLB scene that moves
    and scales it; and the same bytes under another name."""
    mesh = trimesh.load(source, process=False, force="mesh")
    rng = np.random.default_rng(1)
    order = rng.permutation(len(mesh.vertices))
    shutil.copy(source, folder / "a-original.obj")
    trimesh.Trimesh(mesh.vertices[order], np.argsort(order)[mesh.faces], process=False).export(
        folder / "b-reordered.obj"
    )
    vertices, faces = trimesh.remesh.subdivide(mesh.vertices, mesh.faces)
    trimesh.Trimesh(vertices, faces, process=False).export(folder / "c-retriangulated.obj")
    scene = trimesh.Scene()
    transform = np.diag([100.0, 100.0, 100.0, 1.0])
    transform[:3, 3] = [30.0, 0.0, -7.0]
    scene.add_geometry(mesh, transform=transform)
    scene.export(folder / "d-moved.glb")
    shutil.copy(source, folder / "e-same-bytes.obj")


@pytest.mark.slow
def test_dedup_skips_exact_and_near_duplicates_naming_the_one_kept(shapes, tmp_path):
    base, meshes = shapes
    root = tmp_path / "objects"
    root.mkdir()
    _near_copies(meshes[0], root)
    shutil.copy(meshes[1], root / "f-other.obj")
    shutil.copy(meshes[2], root / "g-other.obj")
    store = tmp_path / "d.zarr"
    result = sdfkit("prepare-shapenet", root, "-o", store, "--samples", "2000", "--surface-samples", "300",
                    "--workers", "2", "--dedup")  # fmt: skip
    assert "4 shapes skipped on purpose" in result.stdout
    got = _rows(store)
    assert {i: r["status"] for i, r in got.items()} == {
        "a-original": 1, "b-reordered": 3, "c-retriangulated": 3, "d-moved": 3, "e-same-bytes": 3, "f-other": 1,
        "g-other": 1,
    }  # fmt: skip
    assert got["e-same-bytes"]["error"].startswith("skipped: duplicate of a-original (the same bytes")
    for near in ("b-reordered", "c-retriangulated", "d-moved"):
        assert got[near]["error"].startswith("skipped: near-duplicate of a-original (shape prints ")
    group = zarr.open_group(str(store), mode="r+")
    before = group["meta/status"][:]
    assert mark_near_duplicates(group) == 3  # a second pass finds the same and changes nothing
    assert np.array_equal(group["meta/status"][:], before)
    sdfkit("validate", store)
    from sdfkit.torch import DeepSDFSamples

    assert sorted(DeepSDFSamples(str(store), subsample=1000).ids) == ["a-original", "f-other", "g-other"]


@pytest.mark.slow
def test_ledger_records_the_file(shapes, tmp_path):
    base, meshes = shapes
    root = tmp_path / "ledger"
    root.mkdir()
    _instanced_scene(root / "scene.glb")
    open_box = trimesh.creation.box()
    open_box.faces = open_box.faces[2:]  # one side gone
    open_box.export(root / "open.obj")
    trimesh.creation.box().export(root / "closed.obj")
    shutil.copy(meshes[0], root / "large.obj")
    faces = len(trimesh.load(meshes[0], process=False, force="mesh").faces)
    store = tmp_path / "l.zarr"
    sdfkit("prepare-shapenet", root, "-o", store, "--samples", "2000", "--surface-samples", "300", "--workers", "1",
           "--max-faces", str(faces - 1))  # fmt: skip
    group = zarr.open_group(str(store), mode="r")
    ids = [str(i) for i in group["meta/id"][:]]
    row = {i: k for k, i in enumerate(ids)}
    ledger = {
        name.split("/")[1]: group[name][:] for name in group.attrs["sdfkit"]["arrays"] if name.startswith("ledger/")
    }
    s = row["scene"]
    assert (ledger["faces"][s], ledger["meshes"][s], ledger["points"][s], ledger["line_points"][s]) == (12, 3, 5, 4)
    assert ledger["units"][s] == "meters" and ledger["extent"][s] == pytest.approx(6.0)  # y from 0 to 6
    o = row["open"]
    assert ledger["watertight"][o] == 0 and ledger["faces"][o] == 10 and ledger["vertices"][o] == 8
    assert ledger["sha256"][o] == hashlib.sha256((root / "open.obj").read_bytes()).hexdigest()
    assert ledger["seconds"][o] > 0 and ledger["peak_memory"][o] >= 0 and np.isfinite(ledger["print"][o]).all()
    assert ledger["watertight"][row["closed"]] == 1 and ledger["units"][row["closed"]] == ""
    large = row["large"]
    assert group["meta/status"][large] == 2 and ledger["faces"][large] == -1
    assert f"{faces:,} faces, over --max-faces {faces - 1:,}" in str(group["meta/error"][large])


def _hungry(job: str) -> dict:
    """A per-shape function: ``hog`` takes 1.5 GB, ``slow`` two minutes, the others their length."""
    import time

    if job == "hog":
        block = np.ones(1536 * 2**20 // 8)  # written, so resident
        return {"value": np.array([block[-1]], dtype=np.float32)}
    if job == "slow":
        time.sleep(120)
    return {"value": np.array([len(job)], dtype=np.float32)}


@pytest.mark.slow
def test_time_and_memory_limits_fail_one_shape_and_replace_its_worker(tmp_path):
    """A shape over a limit is recorded as failed saying which; the worker it ran in is replaced,
    the other shapes of its shard are computed once, and the run does not wait the two minutes."""
    import time

    from sdfkit.pipeline.runners import Limits, ShardTask, run_tasks
    from sdfkit.store.format import ArraySpec, StoreLayout, create_store
    from sdfkit.store.format import ShapeMeta as Meta

    jobs = ["a", "hog", "ccc", "slow", "eeeee", "ffffff"]
    url = str(tmp_path / "limits.zarr")
    specs = [ArraySpec("value", (1,), "float32", float("nan"))]
    create_store(url, StoreLayout("test", [Meta(j, "", -1, "train") for j in jobs], specs, {}, {}, shard_size=3))
    limits = Limits(seconds=3.0, memory=1024 * 2**20)
    tasks = [ShardTask(url, k, jobs[3 * k : 3 * k + 3], _hungry, specs, limits=limits) for k in range(2)]
    start = time.monotonic()
    reports = list(run_tasks(tasks, workers=2, isolate=True))
    assert time.monotonic() - start < 60
    assert sorted(r.shard for r in reports) == [0, 1]
    group = zarr.open_group(url, mode="r")
    assert group["meta/status"][:].tolist() == [1, 2, 1, 2, 1, 1]
    assert str(group["meta/error"][1]).startswith("over the memory limit (1 GB per worker)")
    assert str(group["meta/error"][3]).startswith("over the time limit (3 s per shape)")
    np.testing.assert_array_equal(group["value"][:, 0], [1, np.nan, 3, np.nan, 5, 6])


def _status_chunks(fs, url: str) -> int:
    try:
        return len(fs.ls(url.removeprefix("s3://") + "/meta/status/c", refresh=True))
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_a_mixed_collection_on_a_dask_cluster_on_s3_killed_and_resumed(shapes, tmp_path, s3_server):
    """GLB scenes with their parts as moved nodes, byte copies, near copies, broken files and one
    over --max-faces, on a Dask LocalCluster writing to S3 (moto): every file a row with a status,
    the copies skipped naming their originals, and a run killed midway then resumed on a new
    cluster equal to one run straight through."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import s3fs
    from conftest import ROOT
    from distributed import LocalCluster

    base, meshes = shapes
    root = tmp_path / "collection"
    root.mkdir()
    for k, mesh in enumerate(meshes):
        scene = trimesh.Scene()
        loaded = trimesh.load(mesh, process=False, force="mesh")
        for j, part in enumerate(loaded.split(only_watertight=False)):
            transform = np.diag([0.01, 0.01, 0.01, 1.0])
            transform[:3, 3] = [0.1 * j, 0.0, 0.0]
            scene.add_geometry(
                trimesh.Trimesh((part.vertices - [0.1 * j, 0, 0]) * 100, part.faces), transform=transform
            )
        scene.export(root / f"scene{k}.glb")
    shutil.copy(root / "scene0.glb", root / "z-copy.glb")
    loaded = trimesh.load(meshes[1], process=False, force="mesh")
    trimesh.Trimesh(*trimesh.remesh.subdivide(loaded.vertices, loaded.faces), process=False).export(root / "z-near.obj")
    (root / "z-empty.glb").write_bytes(b"")
    (root / "z-cut.glb").write_bytes((root / "scene2.glb").read_bytes()[:500])
    trimesh.creation.icosphere(subdivisions=7).export(root / "z-huge.glb")  # 327,680 faces
    args = ["prepare-shapenet", root, "--samples", "3000", "--surface-samples", "300", "--dedup", "--max-faces",
            "100000", "--shard-size", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fs = s3fs.S3FileSystem()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sdfkit(*args, "-o", "s3://sdfkit-test/full.zarr", "--scheduler", cluster.scheduler_address)
        run = subprocess.Popen([sys.executable, "-m", "cli.main", *map(str, args), "-o", "s3://sdfkit-test/cut.zarr",
                                "--scheduler", cluster.scheduler_address], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while _status_chunks(fs, "s3://sdfkit-test/cut.zarr") < 3:
            assert time.monotonic() < deadline and run.poll() is None, "the run wrote no third shard in time"
            time.sleep(0.05)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        assert _status_chunks(fs, "s3://sdfkit-test/cut.zarr") < 9  # stopped midway
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sdfkit(*args, "-o", "s3://sdfkit-test/cut.zarr", "--scheduler", cluster.scheduler_address)
    full, cut = (zarr.open_group(f"s3://sdfkit-test/{n}.zarr", mode="r") for n in ("full", "cut"))
    ids = [str(i) for i in full["meta/id"][:]]
    assert sorted(ids) == sorted(p.stem for p in root.iterdir())
    status = dict(zip(ids, full["meta/status"][:].tolist(), strict=True))
    errors = dict(zip(ids, [str(e) for e in full["meta/error"][:]], strict=True))
    assert status == {"scene0": 1, "scene1": 1, "scene2": 1, "scene3": 1, "z-copy": 3, "z-near": 3, "z-empty": 2,
                      "z-cut": 2, "z-huge": 2}  # fmt: skip
    assert (
        errors["z-copy"].startswith("skipped: duplicate of scene0") and "near-duplicate of scene1" in errors["z-near"]
    )
    assert "over --max-faces 100,000" in errors["z-huge"]
    measured = {"ledger/seconds", "ledger/peak_memory"}  # clocks, not results
    for name in full.attrs["sdfkit"]["arrays"]:
        if name in measured:
            continue
        a, b = full[name][:], cut[name][:]
        if a.dtype.kind in "OTU":
            assert [str(x) for x in a.ravel()] == [str(x) for x in b.ravel()], name
        else:
            assert np.array_equal(a, b, equal_nan=True), name


@pytest.mark.slow
def test_meshes_read_from_object_storage_give_the_store_a_local_folder_gives(shapes, tmp_path, s3_server):
    """A plain folder (OBJ, GLB, and a glTF whose buffer is a file beside it) and a
    metadata.csv folder, each on S3 (moto) and on disk: the same stores, and the S3 one exports
    TRELLIS' voxels from the meshes where they are."""
    import boto3

    base, meshes = shapes
    local = tmp_path / "objects"
    (local / "sub").mkdir(parents=True)
    shutil.copy(meshes[0], local / "a.obj")
    trimesh.load(meshes[1], process=False, force="mesh").export(local / "sub" / "b.glb")
    trimesh.creation.box().export(local / "c.gltf")  # writes c.gltf and its buffer beside it
    assert len(list(local.iterdir())) >= 3
    s3 = boto3.client("s3")
    for path in local.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "sdfkit-test", f"objects/{path.relative_to(local)}")
    args = ["--samples", "2000", "--surface-samples", "300", "--workers", "1"]
    sdfkit("prepare-shapenet", local, "-o", tmp_path / "local.zarr", *args)
    sdfkit("prepare-shapenet", "s3://sdfkit-test/objects", "-o", tmp_path / "remote.zarr", *args)
    a, b = (zarr.open_group(str(tmp_path / n), mode="r") for n in ("local.zarr", "remote.zarr"))
    assert [str(i) for i in b["meta/id"][:]] == ["a", "c", "sub/b"] and (b["meta/status"][:] == 1).all()
    for name in a.attrs["sdfkit"]["arrays"]:
        if name in ("ledger/seconds", "ledger/peak_memory", "meta/fingerprint"):  # clocks, and the files' dates
            continue
        x, y = a[name][:], b[name][:]
        same = (
            [str(v) for v in x.ravel()] == [str(v) for v in y.ravel()]
            if x.dtype.kind in "OTU"
            else np.array_equal(x, y, equal_nan=True)
        )
        assert same, name
    assert b.attrs["sdfkit"]["source"]["path"] == "s3://sdfkit-test/objects"
    sdfkit("export", tmp_path / "remote.zarr", "--to", "trellis", "-o", tmp_path / "trellis", "--views", "0")
    with open(tmp_path / "trellis" / "metadata.csv", newline="") as f:
        listed = {row["file_identifier"]: row["sha256"] for row in csv.DictReader(f)}
    assert listed["sub/b"] == hashlib.sha256((local / "sub" / "b.glb").read_bytes()).hexdigest()


def test_near_duplicates_need_close_prints_and_areas_and_never_chain():
    """Prints by hand: b is 0.003 from a, c 0.003 from b and 0.006 from a (no chain through b),
    d has a's print but 1% more area (a small object far from the rest of its scene looks like
    any other such by its print alone), e is a's copy."""
    from sdfkit.sources.ledger import near_duplicates

    base = np.random.default_rng(0).random(512)
    step = 0.003 * np.ones(512)  # root mean square 0.003
    prints = np.stack([base, base + step, base + 2 * step, base, base + 1e-5])
    areas = np.array([2.0, 2.0, 2.0, 2.02, 2.0])
    found = near_duplicates(prints, np.arange(5), measures=areas[:, None])
    assert {row: kept for row, (kept, _) in found.items()} == {1: 0, 4: 0}
    assert found[1][1] == pytest.approx(0.003)
    assert {row: kept for row, (kept, _) in near_duplicates(prints, np.arange(5)).items()} == {1: 0, 3: 0, 4: 0}


def test_surface_moments_against_dense_samples():
    from sdfkit.sources.ledger import surface_moments

    box = trimesh.creation.box(extents=[2.0, 1.0, 0.5])
    box.apply_transform(trimesh.transformations.rotation_matrix(0.7, [1, 2, 3]))
    samples = box.sample(400_000, seed=0)  # area-weighted
    brute = np.sort(np.linalg.eigvalsh(np.cov(samples.T)))[::-1]
    np.testing.assert_allclose(surface_moments(box.vertices, box.faces), brute, rtol=0.01)
