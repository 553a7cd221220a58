"""Nothing lost when runs collide, and every failure says what happened (prepare, render,
validate, info, show, export): real processes, real stores on disk and on moto's S3 server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
import zarr
from conftest import ROOT
from test_cli import assert_user_error, sdfkit

from sdfkit.errors import InputError, ShapeError
from sdfkit.geometry.mesh import load_mesh
from sdfkit.geometry.shapes import make_shapes
from sdfkit.sources.shapenet import ShapenetConfig, find_meshes, prepare_shapenet

MESHES = Path(__file__).parent / "data" / "meshes"
SMALL = ["--samples", "20000", "--surface-samples", "2000"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "shapes"
    make_shapes(root, 6, defects=("clean", "holes"))
    return root


def _start(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("remote", [False, True], ids=["local", "s3"])
@pytest.mark.slow
def test_two_runs_on_one_store_one_is_refused_nothing_lost(tree, tmp_path, remote, request):
    env = request.getfixturevalue("s3_server") if remote else {}
    out = "s3://sdfkit-test/race.zarr" if remote else str(tmp_path / "race.zarr")
    runs = [_start("prepare-shapenet", tree, "-o", out, *SMALL, "--workers", "1", env=env) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 1], results
    loser = next(r for r in results if r[0] == 1)
    assert "Traceback" not in loser[2]
    assert "another sdfkit run" in loser[2] and "pid" in loser[2] and len(loser[2].strip().splitlines()) == 1
    check = sdfkit("validate", out) if not remote else _validate_remote(out, env)
    assert "follows format v2" in check.stdout
    again = subprocess.run(
        [sys.executable, "-m", "cli.main", "prepare-shapenet", str(tree), "-o", out, *SMALL],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and "already complete" in again.stdout, again.stderr


def _validate_remote(out, env):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "validate", out],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
    )


@pytest.mark.slow
def test_a_lock_left_by_a_killed_run_is_taken_over(tree, tmp_path):
    out = tmp_path / "killed.zarr"
    holder = _start("prepare-shapenet", tree, "-o", out, *SMALL, "--workers", "1")
    deadline = time.monotonic() + 60
    while not Path(f"{out}.lock").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    holder.kill()
    holder.wait()
    assert Path(f"{out}.lock").exists()  # SIGKILL: nothing cleaned up
    run = sdfkit("prepare-shapenet", tree, "-o", out, *SMALL)
    assert "shapes computed" in run.stdout and not Path(f"{out}.lock").exists()
    # a lock whose holder is alive on another machine: refused until its heartbeat is stale
    Path(f"{out}.lock").write_text(
        json.dumps(
            {
                "token": "x",
                "host": "elsewhere",
                "pid": 1,
                "command": "sdfkit prepare-shapenet",
                "started": time.time(),
                "beat": time.time(),
            }
        )
    )
    assert_user_error(sdfkit("prepare-shapenet", tree, "-o", out, *SMALL, check=False), "pid 1 on elsewhere")
    stale = subprocess.run(
        [sys.executable, "-m", "cli.main", "prepare-shapenet", str(tree), "-o", str(out), *SMALL],
        env={**os.environ, "PYTHONPATH": str(ROOT), "SDFKIT_LOCK_TIMEOUT": "0"},
        capture_output=True,
        text=True,
    )
    assert stale.returncode == 0 and "already complete" in stale.stdout


@pytest.mark.slow
def test_a_store_killed_at_creation_is_made_again(tree, tmp_path):
    out = tmp_path / "born.zarr"
    zarr.open_group(str(out), mode="w", zarr_format=3)  # what a kill right after the first write leaves
    assert_user_error(sdfkit("info", out, check=False), "sdfkit store")
    run = sdfkit("prepare-shapenet", tree, "-o", out, *SMALL)
    assert "wrote" in run.stdout
    # a finished store that lost an array is damaged, not half made: refused, kept, and remade
    # only when asked
    shutil.rmtree(out / "meta" / "status")
    assert_user_error(sdfkit("info", out, check=False), "damaged", "meta/status")
    kept = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert_user_error(sdfkit("prepare-shapenet", tree, "-o", out, *SMALL, check=False), "meta/status", "--overwrite")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == kept
    run = sdfkit("prepare-shapenet", tree, "-o", out, *SMALL, "--overwrite")
    assert "wrote" in run.stdout
    assert "follows format v2" in sdfkit("validate", out).stdout
    # arrays half made by a killed creation (no row finished yet) are made again without asking
    group = zarr.open_group(str(out), mode="r+")
    group.attrs["sdfkit"] = {**group.attrs["sdfkit"], "complete": False}
    zarr.open_array(str(out / "meta" / "status"), mode="r+")[:] = 0
    shutil.rmtree(out / "sdf")
    run = sdfkit("prepare-shapenet", tree, "-o", out, *SMALL)
    assert "wrote" in run.stdout
    assert "follows format v2" in sdfkit("validate", out).stdout


@pytest.mark.slow
def test_new_meshes_are_appended_old_rows_untouched(tree, tmp_path):
    root = tmp_path / "grow"
    shutil.copytree(tree, root)
    out = tmp_path / "grow.zarr"
    sdfkit("prepare-shapenet", root, "-o", out, *SMALL, "--shard-size", "4")
    before = zarr.open_group(str(out), mode="r")
    old = {name: before[name][:] for name in ("sdf/values", "surface/points", "norm/offset", "meta/id")}
    extra = tmp_path / "extra"
    make_shapes(extra, 9, seed=5, defects=("clean",))
    added = []
    for synset in ("03001627", "04379243"):
        for model in sorted((extra / synset).iterdir())[:1]:
            shutil.copytree(model, root / synset / f"new-{model.name}")
            added.append(f"new-{model.name}")
    run = sdfkit("prepare-shapenet", root, "-o", out, *SMALL, "--shard-size", "4")
    assert "appended to" in run.stdout and "2 new shapes" in run.stdout and "2 shapes computed" in run.stdout
    after = zarr.open_group(str(out), mode="r")
    ids = [str(i) for i in after["meta/id"][:]]
    assert ids[:6] == [str(i) for i in old["meta/id"]] and sorted(ids[6:]) == sorted(added)
    for name in ("sdf/values", "surface/points", "norm/offset"):
        assert np.array_equal(after[name][:6], old[name])  # bit-identical, NaN-free rows
    # the new rows are what a fresh store computes for those meshes
    fresh = tmp_path / "fresh"
    for shape_id in added:
        synset = next(s for s in ("03001627", "04379243") if (root / s / shape_id).exists())
        shutil.copytree(root / synset / shape_id, fresh / synset / shape_id)
    prepare_shapenet(fresh, str(tmp_path / "fresh.zarr"), ShapenetConfig(samples=20000, surface_samples=2000))
    reference = zarr.open_group(str(tmp_path / "fresh.zarr"), mode="r")
    for k, shape_id in enumerate(str(i) for i in reference["meta/id"][:]):
        assert np.array_equal(after["sdf/values"][ids.index(shape_id)], reference["sdf/values"][k])
    assert "follows format v2" in sdfkit("validate", out).stdout
    # a changed mesh is not appended over: refused with the way out
    obj = next(root.rglob("model_normalized.obj"))
    obj.write_text(obj.read_text() + "\n")
    assert_user_error(
        sdfkit("prepare-shapenet", root, "-o", out, *SMALL, "--shard-size", "4", check=False), "--overwrite"
    )


def test_render_without_pyrender_fails_up_front(tmp_path, tree):
    hide = "import sys; sys.modules['pyrender'] = None; from cli.main import main; main()"
    run = subprocess.run(
        [sys.executable, "-c", hide, "render", str(tree), "-o", str(tmp_path / "r.zarr")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert_user_error(run, "needs pyrender", "pip install --no-deps pyrender==0.1.45")
    assert not (tmp_path / "r.zarr").exists()


@pytest.mark.slow
def test_validate_says_unfinished_and_fails_unless_allowed(tree, tmp_path):
    out = tmp_path / "half.zarr"
    sdfkit("prepare-shapenet", tree, "-o", out, *SMALL, "--shard-size", "2")
    g = zarr.open_group(str(out), mode="r+")
    g["meta/status"][4:6] = 0
    info = dict(g.attrs["sdfkit"])
    info["complete"] = False
    g.attrs["sdfkit"] = info
    assert_user_error(
        sdfkit("validate", out, check=False), "unfinished", "2 of 6 shapes are still pending", "--allow-pending"
    )
    ok = sdfkit("validate", out, "--allow-pending")
    assert "unfinished: 2 of 6 shapes pending" in ok.stdout


def _ply(vertices, faces) -> str:
    head = (
        f"ply\nformat ascii 1.0\nelement vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
    )
    if faces is not None:
        head += f"element face {len(faces)}\nproperty list uchar int vertex_indices\n"
    body = "".join(f"{x} {y} {z}\n" for x, y, z in vertices)
    body += "".join(f"3 {a} {b} {c}\n" for a, b, c in faces or [])
    return head + "end_header\n" + body


TETRA = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
TETRA_FACES = [(0, 2, 1), (0, 1, 3), (0, 3, 2), (1, 2, 3)]


@pytest.mark.parametrize(
    "name, content, fragments",
    [
        ("empty.ply", "", ["empty.ply: the file is empty (0 bytes)", "re-export"]),
        ("cut.ply", _ply(TETRA, TETRA_FACES)[:-12], ["cut.ply: the PLY file is cut short", "4 faces", "re-export"]),
        ("cloud.ply", _ply(TETRA, None), ["cloud.ply: has no faces: a point cloud of 4 points"]),
        (
            "garbage.ply",
            "ply\nformat binary_little_endian 1.0\nelement vertex 99\n",
            ["garbage.ply: not a readable PLY file"],
        ),
        ("bad.stl", "solid x\nfacet normal 0 0 1\n", ["bad.stl: the STL file is cut short"]),
        ("nothing.obj", "# no geometry\n", ["nothing.obj: has no faces (an empty mesh)"]),
        (
            "wire.obj",
            "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nl 1 2\nl 2 3\nl 3 4\n",
            ["wire.obj: has no faces: a wireframe of 3 lines between 4 points", "not its edges"],
        ),
        ("dot.obj", "v 0 0 0\n", ["dot.obj: has no faces: a point cloud of 1 point;"]),
    ],
)
def test_broken_files_get_one_line_saying_what_to_do(tmp_path, name, content, fragments):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ShapeError) as caught:
        load_mesh(path)
    message = str(caught.value)
    assert "\n" not in message and "index 0 is out of bounds" not in message and "unpack" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_gltf_without_its_binary_file_names_it(tmp_path):
    import trimesh

    trimesh.Scene(trimesh.creation.box()).export(tmp_path / "box.gltf")
    sidecars = sorted(tmp_path.glob("*.bin"))
    assert sidecars and len(load_mesh(tmp_path / "box.gltf").faces) == 12
    sidecars[-1].unlink()
    with pytest.raises(ShapeError) as caught:
        load_mesh(tmp_path / "box.gltf")
    assert f"box.gltf: its binary file {sidecars[-1].name} is missing" in str(caught.value)


@pytest.mark.slow
def test_folder_inputs_missing_ids_twins_links_and_single_files(tmp_path, tree):
    # split files listing shapes that are not there: said in the summary, all kept in the store
    split = tmp_path / "planes_train.json"
    manifest = json.loads((tree / "shapes.json").read_text())
    present = [k for k, v in manifest.items() if v["synset"] == "02691156"]
    split.write_text(json.dumps({"ShapeNetV2": {"02691156": present + [f"gone-{i}" for i in range(7)]}}))
    out = tmp_path / "planes.zarr"
    run = sdfkit("prepare-shapenet", tree, "--split", split, "-o", out, *SMALL)
    assert "7 shapes listed in the split files are not in the source" in run.stdout and "gone-0" in run.stdout
    info = json.loads(sdfkit("info", out, "--json").stdout)
    assert sorted(info["source"]["missing_ids"]) == sorted(f"02691156/gone-{i}" for i in range(7))
    # two files, one id: both named
    twins = tmp_path / "twins"
    twins.mkdir()
    shutil.copy(MESHES / "suzanne.ply", twins / "reference.ply")
    (twins / "reference.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert_user_error(
        sdfkit("prepare-shapenet", twins, "-o", tmp_path / "t.zarr", check=False), "reference.obj and reference.ply"
    )
    # a link to a folder of the tree or back up it adds nothing; a link out of the tree is followed
    linked = tmp_path / "linked"
    (linked / "real").mkdir(parents=True)
    shutil.copy(MESHES / "suzanne.ply", linked / "real" / "monkey.ply")
    os.symlink(linked / "real", linked / "alias")
    os.symlink(linked, linked / "real" / "loop")
    layout, found = find_meshes(linked)
    assert layout == "folder" and [i for _, i, _ in found] == ["real/monkey"]
    only_link = tmp_path / "only-link"
    only_link.mkdir()
    os.symlink(linked / "real", only_link / "meshes")
    assert find_meshes(only_link)[1][0][1] == "meshes/monkey"
    # one mesh file as ROOT
    single = sdfkit("prepare-shapenet", MESHES / "suzanne.ply", "-o", tmp_path / "one.zarr", *SMALL)
    assert "1 shapes computed" in single.stdout or "1 shape" in single.stdout
    with pytest.raises(InputError, match="not a mesh file"):
        find_meshes(split)


@pytest.mark.slow
def test_show_by_id_and_occnet_export_of_a_plain_folder(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(MESHES / "suzanne.ply", plain / "suzanne.ply")
    shutil.copy(MESHES / "teapot.stl", plain / "teapot.stl")
    out = tmp_path / "plain.zarr"
    sdfkit("prepare-shapenet", plain, "-o", out, *SMALL, "--recipe", "occnet")
    sdfkit("show", out, "--id", "teapot", "-o", tmp_path / "teapot.png")
    assert (tmp_path / "teapot.png").read_bytes()[:4] == b"\x89PNG"
    assert_user_error(
        sdfkit("show", out, "--id", "tea", "-o", tmp_path / "x.png", check=False), "no shape with id", "teapot"
    )
    export = tmp_path / "occnet"
    sdfkit("export", out, "--to", "occnet", "-o", export)
    # OccNet's loader: every folder beside metadata.yaml is a category holding <split>.lst
    categories = sorted(p.name for p in export.iterdir() if p.is_dir())
    assert categories == ["shapes"]
    assert (export / "shapes" / "train.lst").read_text().split() == ["suzanne", "teapot"]
    assert (export / "shapes" / "teapot" / "points.npz").is_file()
    assert "'shapes'" in (export / "metadata.yaml").read_text()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.slow
def test_progress_moves_per_shape_not_per_shard(tree, tmp_path, workers):
    seen = []
    summary = prepare_shapenet(
        tree,
        str(tmp_path / f"p{workers}.zarr"),
        ShapenetConfig(samples=100_000, surface_samples=500),  # > 0.2 s a shape: reports come within the shard
        workers=workers,
        shard_size=6,
        progress=lambda done, total: seen.append(done),
    )
    assert summary.computed == 6 and seen[-1] == 6
    assert any(0 < d < 6 for d in seen), seen  # one shard of six shapes: it moved inside it


def test_slow_runs_report_their_rate(capsys):
    from cli.options import print_summary
    from sdfkit.pipeline import RunSummary

    print_summary("prepare-shapenet", RunSummary("s.zarr", "created", seconds=2.86, computed=1))
    assert "(0.35 shapes/s)" in capsys.readouterr().out


@pytest.mark.slow
def test_appending_reopens_added_layers(tree, tmp_path):
    """Voxel grids made before an append cover the old rows only: the layer is pending again,
    and voxelize completes the new rows, leaving the old grids as they were."""
    root = tmp_path / "grow"
    shutil.copytree(tree, root)
    out = tmp_path / "v.zarr"
    sdfkit("prepare-shapenet", root, "-o", out, *SMALL, "--shard-size", "4")
    sdfkit("voxelize", out, "--resolution", "32", "--workers", "1")
    old = zarr.open_group(str(out), mode="r")["voxels/occupancy"][:]
    model = next((root / "03001627").iterdir())
    shutil.copytree(model, root / "03001627" / "copy-of-a-chair")
    sdfkit("prepare-shapenet", root, "-o", out, *SMALL, "--shard-size", "4")
    g = zarr.open_group(str(out), mode="r")
    assert g.attrs["sdfkit"]["voxels"]["complete"] is False and g["voxels/status"][6] == 0
    run = sdfkit("voxelize", out, "--resolution", "32", "--workers", "1")
    assert "1 shapes computed" in run.stdout
    g = zarr.open_group(str(out), mode="r")
    assert np.array_equal(g["voxels/occupancy"][:6], old) and g["voxels/status"][6] == 1
    # the copy is the same mesh: the same grid
    assert np.array_equal(
        g["voxels/occupancy"][6], g["voxels/occupancy"][[str(i) for i in g["meta/id"][:]].index(model.name)]
    )


@pytest.mark.slow
def test_modelnet_layout_is_detected_with_its_splits(tmp_path):
    root = tmp_path / "ModelNet10"
    for cls, split, name in (
        ("chair", "train", "chair_0001"),
        ("chair", "test", "chair_0890"),
        ("desk", "train", "desk_0001"),
    ):
        (root / cls / split).mkdir(parents=True, exist_ok=True)
        trimesh.creation.box(extents=[1, 0.5, 0.3]).export(root / cls / split / f"{name}.off")
    layout, meshes = find_meshes(root)
    assert layout == "modelnet" and [(c, i) for c, i, _ in meshes] == [
        ("chair", "chair_0001"),
        ("chair", "chair_0890"),
        ("desk", "desk_0001"),
    ]
    run = sdfkit("prepare-shapenet", root, "-o", tmp_path / "m.zarr", *SMALL)
    assert "test" in run.stdout and "train" in run.stdout
    g = zarr.open_group(tmp_path / "m.zarr", mode="r")
    assert dict(zip([str(i) for i in g["meta/id"][:]], [str(s) for s in g["meta/split"][:]], strict=True)) == {
        "chair_0001": "train",
        "chair_0890": "test",
        "desk_0001": "train",
    }
