"""The sdfkit command line, run as a user runs it: a real process, a real store on disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import zarr
from conftest import ROOT, kill_midway, write_mnist_folder

from sdfkit.sources.mnist import MNIST_FILES


def sdfkit(*args, check=True, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"sdfkit {args} failed ({result.returncode}):\n{result.stderr}")
    return result


def assert_user_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr  # progress lines may precede it
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.slow
def test_prepare_info_show_end_to_end(tmp_path):
    out = tmp_path / "mnist.zarr"
    run = sdfkit("prepare-mnist", "-o", out, "--limit", "60", "--val-size", "10", "--workers", "2")
    assert "wrote" in run.stdout and "size on disk" in run.stdout
    assert "train" in run.stdout and "50" in run.stdout  # 60 - 10 held out
    info = json.loads(sdfkit("info", out, "--json").stdout)
    assert info["complete"] and info["splits"] == {
        "test": {"ok": 60, "failed": 0, "pending": 0},
        "train": {"ok": 50, "failed": 0, "pending": 0},
        "val": {"ok": 10, "failed": 0, "pending": 0},
    }
    assert info["source"]["origin"] == "bundled-sample"
    text = sdfkit("info", out).stdout
    assert "sdf/grid" in text and "complete" in text
    for args, name in ((["--index", "3"], "one.png"), (["--sheet", "12", "--split", "test"], "sheet.png")):
        sdfkit("show", out, *args, "-o", tmp_path / name)
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    again = sdfkit("prepare-mnist", "-o", out, "--limit", "60", "--val-size", "10")
    assert "already complete" in again.stdout


@pytest.mark.slow
def test_a_failing_digit_does_not_stop_the_run(tmp_path):
    source = write_mnist_folder(tmp_path / "src", empty_index=5)
    run = sdfkit("prepare-mnist", "--source", source, "-o", tmp_path / "m.zarr", "--val-size", "0")
    assert "1 failed shapes" in run.stdout and "train-00005" in run.stdout and "empty" in run.stdout
    info = json.loads(sdfkit("info", tmp_path / "m.zarr", "--json").stdout)
    assert info["complete"] and info["failed"] == 1 and info["failures"][0]["id"] == "train-00005"


KILL_ARGS = ("--surface-points", "512", "--limit", "1500")  # 2,500 digits in about 10 shards


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "reference.zarr"
    sdfkit("prepare-mnist", "-o", out, "--workers", 2, *KILL_ARGS)
    return out


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, workers, reference_store):
    out = tmp_path / "killed.zarr"
    args = ["prepare-mnist", "-o", out, "--workers", workers, *KILL_ARGS]
    kill_midway(args, out)
    info = json.loads(sdfkit("info", out, "--json").stdout)
    assert not info["complete"], "the run finished before it was killed: the test proved nothing"
    pending = sum(s["pending"] for s in info["splits"].values())
    assert 0 < pending < 5000
    unfinished = sdfkit("show", out, "--index", "0", "-o", tmp_path / "x.png")  # readable while unfinished
    assert unfinished.returncode == 0
    # rows finished in unfinished shards (a shard written just before the kill may still have its
    # kept rows beside the store: they are not pending)
    status = zarr.open_group(out, mode="r")["meta/status"][:]
    kept = sum(1 for f in (tmp_path / "killed.zarr.partial").rglob("*.npz") if status[int(f.stem)] == 0)
    resumed = sdfkit(*args)
    assert "resumed" in resumed.stdout
    computed = int(re.search(r"(\d+) shapes computed", resumed.stdout).group(1))
    # the pending shapes less those kept, give or take the few a kill tore or kept as they finished
    assert pending - kept - 2 * int(workers) <= computed <= pending - kept + 2 * int(workers), (computed, pending, kept)
    assert not (tmp_path / "killed.zarr.partial").exists()
    a, b = zarr.open_group(out, mode="r"), zarr.open_group(reference_store, mode="r")
    assert a.attrs["sdfkit"]["complete"]
    for name in ("image", "sdf/grid", "surface/points", "surface/normals", "meta/status", "meta/id"):
        assert np.array_equal(a[name][:], b[name][:]), name


def test_corrupt_idx_file(tmp_path):
    source = write_mnist_folder(tmp_path / "src")
    bad = source / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 7)
    assert_user_error(sdfkit("prepare-mnist", "--source", source, "-o", tmp_path / "m.zarr", check=False), str(bad))
    assert not (tmp_path / "m.zarr").exists()


def test_missing_source_folder(tmp_path):
    assert_user_error(
        sdfkit("prepare-mnist", "--source", tmp_path / "nope", "-o", tmp_path / "m.zarr", check=False), "no such folder"
    )


def test_download_checksum_mismatch(tmp_path, http_server):
    url, root, requests = http_server
    for f in write_mnist_folder(tmp_path / "src").iterdir():
        shutil.copy(f, root / f.name)
    result = sdfkit(
        "prepare-mnist",
        "--download",
        "--mirror",
        url,
        "--cache-dir",
        tmp_path / "cache",
        "-o",
        tmp_path / "m.zarr",
        check=False,
    )
    assert_user_error(result, "MD5", url)
    assert requests and not (tmp_path / "m.zarr").exists()


def test_download_does_not_trust_stale_cache_files(tmp_path, http_server):
    """Files in the cache with the wrong checksum are fetched again; here the local mirror lacks
    them, which must end in one clear error."""
    url, root, requests = http_server
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in MNIST_FILES:
        (cache / name).write_bytes(b"stale")
    result = sdfkit(
        "prepare-mnist", "--download", "--mirror", url, "--cache-dir", cache, "-o", tmp_path / "m.zarr", check=False
    )
    assert_user_error(result, "no mirror answered")
    assert len(requests) == 1  # tried the mirror for the first file, which it does not have
    assert (
        hashlib.md5((cache / "train-images-idx3-ubyte.gz").read_bytes()).hexdigest()
        != MNIST_FILES["train-images-idx3-ubyte.gz"]
    )


@pytest.mark.slow
def test_other_parameters_refused(tmp_path):
    out = tmp_path / "m.zarr"
    sdfkit("prepare-mnist", "-o", out, "--limit", "20")
    assert_user_error(
        sdfkit("prepare-mnist", "-o", out, "--limit", "20", "--resolution", "32", check=False),
        "other parameters",
        "--overwrite",
    )
    run = sdfkit("prepare-mnist", "-o", out, "--limit", "20", "--resolution", "32", "--overwrite")
    assert "wrote" in run.stdout


def test_unwritable_output(tmp_path):
    (tmp_path / "file").write_text("")
    assert_user_error(
        sdfkit("prepare-mnist", "-o", tmp_path / "file" / "m.zarr", "--limit", "5", check=False), "cannot"
    )


@pytest.mark.slow
def test_info_and_show_on_bad_input(tmp_path):
    assert_user_error(sdfkit("info", tmp_path / "none.zarr", check=False), "no such store")
    out = tmp_path / "m.zarr"
    sdfkit("prepare-mnist", "-o", out, "--limit", "8", "--val-size", "0")
    assert_user_error(
        sdfkit("show", out, "--index", "99", "-o", tmp_path / "x.png", check=False), "no shape at index 99"
    )


@pytest.mark.slow
def test_version_env_and_help():
    from sdfkit import __version__

    assert __version__ in sdfkit("--version").stdout
    env = json.loads(sdfkit("env", "--json").stdout)
    assert {"sdfkit", "python", "torch", "zarr", "open3d", "gpu"} <= set(env)
    for command in ("prepare-mnist", "info", "show", "env"):
        text = sdfkit(command, "--help").stdout
        assert "Example" in text, command
    assert "default: 64" in sdfkit("prepare-mnist", "--help").stdout
