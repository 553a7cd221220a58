"""Nothing lost: a store of another kind is refused byte for byte, every write failure is one line,
and a killed run keeps every shape it finished. Real processes, real stores, real file systems
(a read-only and a full tmpfs where this machine lets a test mount one)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import ROOT
from test_cli import assert_user_error, sdfkit

from sdfkit.geometry.shapes import make_shapes

SMALL = ["--samples", "2000", "--surface-samples", "500", "--workers", "1"]


def _command(kind: str, out: Path, made: dict) -> list:
    """The command that writes a store of ``kind`` at ``out`` (watertight: its report store)."""
    if kind == "mnist":
        return ["prepare-mnist", "-o", out, "--limit", "8", "--val-size", "2", "--resolution", "32"]
    if kind == "shapenet":
        return ["prepare-shapenet", made["tree"], "-o", out, *SMALL]
    if kind == "renders":
        return ["render", made["shapenet"], "-o", out, "--views", "2", "--size", "16", "--workers", "1"]
    assert str(out).endswith(".report.zarr")
    return ["watertight", made["tree"], "-o", str(out).removesuffix(".report.zarr"), "--resolution", "32"]


KINDS = ("mnist", "shapenet", "renders", "watertight")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """One finished store of each kind, made by its own command."""
    root = tmp_path_factory.mktemp("kinds")
    out = {"tree": root / "shapes"}
    make_shapes(out["tree"], 2, defects=("clean",))
    for kind in KINDS:  # shapenet before renders: render reads it
        path = root / (f"{kind}.report.zarr" if kind == "watertight" else f"{kind}.zarr")
        sdfkit(*_command(kind, path, out))
        out[kind] = path
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("existing", KINDS)
@pytest.mark.parametrize("command", KINDS)
@pytest.mark.slow
def test_a_store_of_another_kind_is_refused_and_kept_byte_for_byte(made, tmp_path, command, existing):
    if command == existing:
        pytest.skip("the same kind resumes or appends (test_reliability)")
    victim = tmp_path / ("victim.report.zarr" if command == "watertight" else "victim.zarr")
    shutil.copytree(made[existing], victim)
    before = _digest(victim)
    result = sdfkit(*_command(command, victim, made), check=False)
    asked = "watertight" if command == "watertight" else command
    assert_user_error(result, f"a finished {existing} store", f"not a {asked} store", "--overwrite")
    assert _digest(victim) == before
    assert not Path(str(victim) + ".partial").exists()


@pytest.mark.parametrize("existing", ["mnist", "renders", "watertight"])
def test_voxelize_refuses_a_store_of_another_kind_and_keeps_it(made, tmp_path, existing):
    victim = tmp_path / "victim.zarr"
    shutil.copytree(made[existing], victim)
    before = _digest(victim)
    assert_user_error(sdfkit("voxelize", victim, "--resolution", "32", check=False), "voxelize needs")
    assert _digest(victim) == before


@pytest.mark.slow
def test_other_variants_recipes_and_a_store_as_mesh_folder_are_refused(made, tmp_path):
    digits = tmp_path / "digits.zarr"
    shutil.copytree(made["mnist"], digits)
    before = _digest(digits)
    rotated = [*_command("mnist", digits, made), "--variant", "rotated"]
    assert_user_error(sdfkit(*rotated, check=False), "variant 'standard' (store) vs 'rotated'", "--overwrite")
    assert _digest(digits) == before
    shapes = tmp_path / "shapes.zarr"
    shutil.copytree(made["shapenet"], shapes)
    before = _digest(shapes)
    occnet = [*_command("shapenet", shapes, made), "--recipe", "occnet"]
    assert_user_error(sdfkit(*occnet, check=False), "recipes", "--overwrite")
    # watertight -o a store's folder would write meshes into the store
    run = sdfkit("watertight", made["tree"], "-o", shapes, "--resolution", "32", check=False)
    assert_user_error(run, "is a zarr store, not a folder for meshes")
    assert _digest(shapes) == before
    # and --overwrite does replace it, with what was asked
    sdfkit(*rotated, "--overwrite")
    assert json.loads(sdfkit("info", digits, "--json").stdout)["parameters"]["variant"] == "rotated"


# --- write failures: one line, the file named, what to do -------------------------------------


def _mount(folder: Path, *options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def read_only(tmp_path, made, run_folder):
    """A read-only folder holding a copy of a store and of a run folder: a read-only tmpfs when
    run as root (root writes through permission bits), a folder without write bits otherwise."""
    folder = tmp_path / "ro"
    if os.geteuid() == 0:
        if not _mount(folder, "size=32m"):
            pytest.skip("root, and this machine does not let a test mount a tmpfs")
        try:
            _fill(folder, made)
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)])
    else:
        folder.mkdir()
        _fill(folder, made)
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o555 if path.is_dir() else 0o444)
        yield folder
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o755)


def _fill(folder: Path, made: dict) -> None:
    shutil.copytree(made["shapenet"], folder / "shapes.zarr")
    shutil.copytree(made["run"], folder / "run")


@pytest.fixture
def full(tmp_path):
    """A tmpfs of 1 MB, filled before each command to 16 KB of room (:func:`_fill_up`)."""
    if os.geteuid() != 0 or not _mount(tmp_path / "full", "size=1m"):
        pytest.skip("a full disk needs a tmpfs, which only root may mount here")
    try:
        yield tmp_path / "full"
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "full")])


@pytest.fixture(scope="module")
def run_folder(made):
    run = made["tree"].parent / "run"
    sdfkit("train", made["mnist"], "-o", run, "--steps", "2")
    made["run"] = run
    return run


def _writers(made: dict, where: Path) -> dict[str, list]:
    """Every command that writes, each writing under ``where``."""
    return {
        "prepare-mnist": _command("mnist", where / "m.zarr", made),
        "prepare-shapenet": ["prepare-shapenet", made["tree"], "-o", where / "s.zarr", "--samples", "20000"],
        "render": _command("renders", where / "r.zarr", made),
        "watertight": _command("watertight", where / "wt.report.zarr", made),
        "export": ["export", made["shapenet"], "--to", "deepsdf", "-o", where / "export"],
        "show": ["show", made["shapenet"], "--index", "0", "-o", where / "shape.png"],
        "make-shapes": ["make-shapes", where / "tree", "--n", "2"],
        "train": ["train", made["mnist"], "-o", where / "new-run", "--steps", "2"],
        "eval": ["eval", made["run"], "-o", where / "eval.json"],
    }


def _one_line(result, where) -> str:
    assert_user_error(result)
    line = result.stderr.strip().splitlines()[-1]
    assert str(where.name) in line, line  # the file or folder is named
    return line


@pytest.mark.slow
def test_read_only_folders_get_one_line_in_every_command(made, read_only):
    for name, args in _writers(made, read_only).items():
        line = _one_line(sdfkit(*args, check=False), read_only)
        assert "read-only" in line.lower() or "permission" in line.lower(), (name, line)
    # commands that write into what they read: a store, a run folder
    for args in (
        ["voxelize", read_only / "shapes.zarr", "--resolution", "32"],
        ["eval", read_only / "run"],
        ["train", made["mnist"], "-o", read_only / "run", "--resume", "--steps", "3"],
    ):
        _one_line(sdfkit(*args, check=False), read_only)


def _fill_up(folder: Path, room: int = 16_384) -> None:
    stat = os.statvfs(folder)
    (folder / "filler").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - room))


@pytest.mark.slow
def test_a_full_disk_gets_one_line_and_nothing_that_looks_finished(made, run_folder, full):
    for name, args in _writers(made, full).items():
        _fill_up(full)
        line = _one_line(sdfkit(*args, check=False), full)
        assert "disk is full" in line, (name, line)
        for leftover in full.iterdir():  # nothing that looks finished
            if leftover.suffix == ".zarr" and (leftover / "zarr.json").exists():
                # a bare group (the disk filled before its attributes) or a store flagged unfinished
                info = json.loads((leftover / "zarr.json").read_text()).get("attributes", {}).get("sdfkit", {})
                assert not info.get("complete"), name
            assert not leftover.name.startswith(".export.partial"), name
        for leftover in full.iterdir():
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()


@pytest.mark.slow
def test_a_file_in_the_way_gets_one_line(made, run_folder, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    for name, args in _writers(made, blocker).items():
        result = sdfkit(*args, check=False)
        assert_user_error(result, "blocker")
        assert blocker.read_text() == "not a folder", name


@pytest.mark.slow
def test_injected_enospc_in_a_worker_is_one_line(made, tmp_path):
    """A full disk as the shard writer meets it, in a worker process: injected at the one place
    every shard's bytes go through."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import errno, sdfkit.store.shards as s\n"
        "def full(*a, **k):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "s.write_shard_block = full\n"
        "import sdfkit.store.format as f\n"
        "f.write_shard_block = full\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{hook}:{ROOT}"}
    out = tmp_path / "s.zarr"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "prepare-shapenet", made["tree"], "-o", out, "--samples", "2000"],
        capture_output=True,
        text=True,
        env=env,
    )
    line = _one_line(result, out)
    assert "disk is full" in line and "run the same command again" in line
    run = sdfkit("prepare-shapenet", made["tree"], "-o", out, "--samples", "2000")
    assert "resumed" in run.stdout and "0 shapes computed" in run.stdout  # the killed shard's rows were kept


# --- resuming inside a shard ------------------------------------------------------------------


def _readable(folder: Path) -> int:
    """How many of a folder's saved rows can be read whole (not torn by a kill or still written)."""
    count = 0
    for file in folder.glob("*.npz") if folder.is_dir() else ():
        try:
            with np.load(file) as data:
                data["__id__"]
            count += 1
        except Exception:  # torn or half-written
            pass
    return count


@pytest.mark.slow
def test_a_killed_run_recomputes_none_of_the_shapes_it_finished(tmp_path):
    root = tmp_path / "shapes"
    make_shapes(root, 6, defects=("clean", "holes"))
    args = ["prepare-shapenet", root, "--samples", "20000", "--surface-samples", "2000", "--shard-size", "6"]
    reference = tmp_path / "reference.zarr"
    sdfkit(*args, "-o", reference, "--workers", "1")
    out = tmp_path / "killed.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *map(str, args), "-o", str(out), "--workers", "1"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    kept = Path(str(out) + ".partial") / "meta" / "0"
    deadline = time.monotonic() + 120
    try:
        # three whole files: a file being written when the kill lands is torn, and its shape is
        # computed again (a loaded machine writes slowly enough for that to happen)
        while _readable(kept) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "no third shape finished in time"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finished = _readable(kept)
    assert 3 <= finished < 6
    run = sdfkit(*args, "-o", out, "--workers", "1")
    assert f"{6 - finished} shapes computed" in run.stdout, run.stdout
    assert not Path(str(out) + ".partial").exists()
    a, b = zarr.open_group(str(reference), mode="r"), zarr.open_group(str(out), mode="r")
    measured = ("ledger/seconds", "ledger/peak_memory")  # clocks, not results
    names = [k for k, v in a.members(max_depth=None) if isinstance(v, zarr.Array) and k not in measured]
    assert names
    for name in names:
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


# --- plain folders: split files by id, and splits by fractions -------------------------------


@pytest.mark.slow
def test_plain_folder_splits_by_fractions_and_by_the_files_export_writes(tmp_path):
    shapes = tmp_path / "shapes"
    make_shapes(shapes, 5, defects=("clean",))
    plain = tmp_path / "plain"
    for k, mesh in enumerate(sorted(shapes.rglob("model_normalized.obj"))):
        (plain / ("top" if k % 2 else "deep")).mkdir(parents=True, exist_ok=True)
        shutil.copy(mesh, plain / ("top" if k % 2 else "deep") / f"m{k}.obj")
    shutil.copy(mesh, plain / "loose.obj")  # a mesh at the top: category ""
    small = ["--samples", "2000", "--surface-samples", "200", "--workers", "1"]
    out = tmp_path / "dealt.zarr"
    sdfkit("prepare-shapenet", plain, "-o", out, "--split-fractions", "0.5,0.2,0.3", *small)
    info = json.loads(sdfkit("info", out, "--json").stdout)
    assert {k: v["ok"] for k, v in info["splits"].items()} == {"train": 3, "val": 1, "test": 2}
    assert info["source"]["split_fractions"] == [0.5, 0.2, 0.3]
    group = zarr.open_group(str(out), mode="r")
    dealt = dict(zip(map(str, group["meta/id"][:]), map(str, group["meta/split"][:]), strict=True))
    # the same seed deals the same way; the order follows the hash of seed and id, not the listing
    from sdfkit.sources.splits import split_by_fractions

    assert split_by_fractions(sorted(dealt), (0.5, 0.2, 0.3)) == dealt
    assert split_by_fractions(sorted(dealt), (0.5, 0.2, 0.3), seed=1) != dealt
    # the split files export writes select the same shapes again, whatever their category key
    sdfkit("export", out, "--to", "deepsdf", "-o", tmp_path / "export")
    keys = set()
    for name in ("train", "val", "test"):
        keys |= set(json.loads((tmp_path / "export" / "splits" / f"{name}.json").read_text())["ShapeNetV2"])
    assert keys == {"", "deep", "top"}  # "": the loose mesh's category
    again = tmp_path / "again.zarr"
    sdfkit("prepare-shapenet", plain, "-o", again, "--split", tmp_path / "export" / "splits" / "test.json", *small)
    ids = sorted(map(str, zarr.open_group(str(again), mode="r")["meta/id"][:]))
    assert ids == sorted(i for i, s in dealt.items() if s == "test")
    # a hand-written file under any key (the user's first guess) selects by id in a plain folder
    (tmp_path / "mine_train.json").write_text(json.dumps({"ShapeNetV2": {"shapes": ["loose", "deep/m0"]}}))
    mine = tmp_path / "mine.zarr"
    sdfkit("prepare-shapenet", plain, "-o", mine, "--split", tmp_path / "mine_train.json", *small)
    assert sorted(map(str, zarr.open_group(str(mine), mode="r")["meta/id"][:])) == ["deep/m0", "loose"]
    bad = sdfkit("prepare-shapenet", plain, "-o", tmp_path / "x.zarr", "--split-fractions", "0.5,0.4", check=False)
    assert_user_error(bad, "add up to 1")
    both = ["--split-fractions", "0.8,0.2", "--split", tmp_path / "mine_train.json"]
    assert_user_error(sdfkit("prepare-shapenet", plain, "-o", tmp_path / "y.zarr", *both, check=False), "give one")


# --- what a newcomer trips over ----------------------------------------------------------------


@pytest.mark.slow
def test_info_and_validate_read_as_a_person_reads_them(made, tmp_path):
    text = sdfkit("info", made["shapenet"]).stdout
    assert '{"' not in text  # the source is listed key by key, not as raw JSON
    assert any(line.split()[:2] == ["source", "name:"] for line in text.splitlines())
    header = next(line for line in text.splitlines() if line.strip().startswith("array"))
    rows = [line for line in text.splitlines() if line.strip().startswith(("meta/", "surface/", "sdf/"))]
    # every column starts where its header does, and names never run into the next column
    for column in ("shape", "dtype", "chunk", "shard"):
        at = header.index(column)
        assert all(row[at - 1] == " " for row in rows), column
    missing = sdfkit("validate", tmp_path / "nothere.zarr", check=False)
    assert_user_error(missing, "no such store")
    assert missing.stdout == ""  # no table before the error


@pytest.mark.slow
def test_train_bar_metrics_and_help_tell_the_truth(made, tmp_path):
    run = tmp_path / "run"
    first = sdfkit("train", made["mnist"], "-o", run, "--steps", "20")
    assert "step 20 of 20" in first.stdout
    sdfkit("train", made["mnist"], "-o", run, "--steps", "40", "--resume")
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    steps, seconds = [int(r[0]) for r in rows], [float(r[2]) for r in rows]
    assert steps == [10, 20, 30, 40]
    assert all(b > a for a, b in zip(seconds, seconds[1:], strict=False)), seconds  # no restart at 0
    # a time limit sets the bar's length: the steps it leaves, not the preset's 3,000
    limited = sdfkit("train", made["mnist"], "-o", tmp_path / "limited", "--time-limit", "0.05")
    totals = [int(t) for t in re.findall(r"\d+/(\d+) \[", limited.stderr)]
    assert totals and totals[-1] < 3000, totals[-3:]
    assert "(time-limit)" in limited.stdout
    help_text = sdfkit("train", "--help").stdout
    assert "2 -> 128 x 3 -> 1" in " ".join(help_text.split())  # the default preset's network


@pytest.mark.slow
def test_watertight_says_what_it_did_to_scenes_and_counts_its_meshes(tmp_path):
    from conftest import DATA

    folder = tmp_path / "scenes"
    folder.mkdir()
    shutil.copy(DATA / "meshes" / "Duck.glb", folder / "duck.glb")
    run = sdfkit("watertight", folder, "-o", tmp_path / "wt", "--resolution", "32", "--workers", "1")
    assert "1 mesh written as .obj from .glb" in run.stdout
    written = (tmp_path / "wt" / "duck.obj").stat().st_size
    size = re.search(r"size on disk: ([\d.]+) (B|KB|MB)", run.stdout)
    value = float(size.group(1)) * {"B": 1, "KB": 1e3, "MB": 1e6}[size.group(2)]
    assert value >= written  # the meshes and the report, not the report alone
