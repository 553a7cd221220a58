"""Shared fixtures: hand-written IDX files, a local HTTP server, the bundled digits."""

from __future__ import annotations

import functools
import gzip
import http.server
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # one thread per library per test process: with a process per core, torch's and open3d's own
    # thread pools (a thread per core each) would only contend with the other process's
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


def kill_midway(args, out: Path, *, timeout: float = 120.0, status: str = "meta/status") -> None:
    """Run ``sdfkit ARGS`` writing the store ``out`` and SIGKILL it (its workers too) as soon as
    a second shard is finished (two chunks of the ``status`` column exist, whichever shards they
    belong to: workers finish shards out of order), as a crash or an impatient user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        chunks = out / status / "c"
        while not (chunks.is_dir() and sum(1 for _ in chunks.iterdir()) >= 2):
            assert time.monotonic() < deadline, "the run wrote no second shard in time"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: workers die too
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written out by hand: two zero bytes, type 0x08 (ubyte), ndim, big-endian
    uint32 dimensions, then the data."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    for dim in array.shape:
        header += struct.pack(">I", dim)
    return header + array.tobytes()


def disc_digit(radius_px: float, centre=(14.0, 14.0), size=28) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size]
    d = np.hypot(rows - centre[0], cols - centre[1])
    return np.where(d <= radius_px, 255, 0).astype(np.uint8)


def write_mnist_folder(folder: Path, *, n_train=24, n_test=12, gz=True, seed=0, empty_index=None) -> Path:
    """A tiny MNIST folder of blobs of various sizes; ``empty_index`` makes one training image
    blank (a shape that must fail without stopping the run)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def images(n):
        out = np.stack([disc_digit(rng.uniform(4, 9), centre=rng.uniform(11, 17, size=2)) for _ in range(n)])
        return out

    train, test = images(n_train), images(n_test)
    if empty_index is not None:
        train[empty_index] = 0
    files = {
        "train-images-idx3-ubyte": train,
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": test,
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for name, array in files.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def mnist_folder(tmp_path) -> Path:
    return write_mnist_folder(tmp_path / "mnist")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def http_server(tmp_path):
    """Serve a folder on 127.0.0.1 (never the internet); yields (base_url, folder, requests)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root, server.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 API on 127.0.0.1 (a real HTTP server, no mocks of zarr or s3fs)."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import boto3
    import s3fs

    # fsspec keeps file systems by their arguments: one made for an earlier server would be reused
    s3fs.S3FileSystem.clear_instance_cache()

    boto3.client("s3").create_bucket(Bucket="sdfkit-test")
    yield env
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


@pytest.fixture
def s3rver(tmp_path, monkeypatch):
    """s3rver (a real S3 API server on Node.js, benchmarks/s3_servers.py) on 127.0.0.1 with the
    bucket ``sdfkit-test``, and the environment pointing at it; skipped where Node.js or s3rver is
    missing. Yields (endpoint, port)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from s3_servers import S3RVER_KEY, s3rver_command, start_s3rver

    command, why = s3rver_command()
    if command is None:
        pytest.skip(why)
    endpoint, server = start_s3rver(tmp_path / "s3rver", "sdfkit-test")
    env = {
        "AWS_ACCESS_KEY_ID": S3RVER_KEY,
        "AWS_SECRET_ACCESS_KEY": S3RVER_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield endpoint, int(endpoint.rsplit(":", 1)[1])
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.terminate()
        server.wait(10)
