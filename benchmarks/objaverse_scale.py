"""An Objaverse-like collection end to end, on a Dask LocalCluster writing to S3 (moto's server
on 127.0.0.1): every input accounted for, duplicates found, huge scenes capped, a run killed
midway and resumed to the same store, and the throughput of two workers against one.

The collection, a folder of files uploaded to S3 (the workers read the meshes from there and write
the store there):

- make-shapes meshes (every category and defect) written as GLB scenes: each part its own node,
  moved into place by its node's transform and scaled from centimetres (x 0.01), a third of them
  with one part instanced by a second node;
- the real meshes of benchmarks/data/meshes;
- exact duplicates (the same bytes under another name) and near-duplicates (a scene flattened and
  re-exported as OBJ: vertices reordered, triangles split in four, or moved and scaled), about 5%
  each;
- broken files (empty, cut short, not a mesh), about 1%;
- a few huge scenes (spheres of 5.2 and 1.3 million faces), over ``--max-faces``.

    OMP_NUM_THREADS=1 python benchmarks/objaverse_scale.py [--objects 2000] [--samples 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _glb_scene(source: Path, out: Path, rng: np.random.Generator, instance: bool) -> None:
    """A mesh file as a GLB scene: each part a node whose transform puts it in place, in
    centimetres scaled to metres; with ``instance``, the first part placed twice."""
    import trimesh

    mesh = trimesh.load(source, process=False, force="mesh")
    scene = trimesh.Scene()
    parts = mesh.split(only_watertight=False, repair=False) or [mesh]  # repair would fill holes
    for k, part in enumerate(parts):
        shift = rng.normal(size=3)
        local = trimesh.Trimesh(part.vertices * 100.0 - shift, part.faces, process=False)  # centimetres
        transform = np.eye(4)
        transform[:3, :3] *= 0.01
        transform[:3, 3] = shift * 0.01
        scene.add_geometry(local, geom_name=f"part{k}", node_name=f"node{k}", transform=transform)
        if instance and k == 0:
            again = transform.copy()
            again[:3, 3] += [0.0, 0.0, 3.0]
            scene.add_geometry(local, geom_name="part0", node_name="node0-again", transform=again)
    scene.export(out)


def _near_copy(source: Path, out: Path, rng: np.random.Generator, kind: int) -> None:
    import trimesh

    mesh = trimesh.load(source, process=False, force="mesh")
    if kind == 0:
        order = rng.permutation(len(mesh.vertices))
        copy = trimesh.Trimesh(mesh.vertices[order], np.argsort(order)[mesh.faces], process=False)
    elif kind == 1:
        copy = trimesh.Trimesh(*trimesh.remesh.subdivide(mesh.vertices, mesh.faces), process=False)
    else:
        copy = trimesh.Trimesh(mesh.vertices * 2.5 + [10.0, 0.0, -4.0], mesh.faces, process=False)
    copy.export(out)


def build(folder: Path, objects: int, huge: int, seed: int = 0) -> dict:
    """Write the collection (a plain folder: an object's id is its file's name); returns what was
    planted: role -> [(id, the id it copies or "")]."""
    import trimesh

    from sdfkit.geometry.shapes import make_shapes

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    n_dup, n_near, n_broken = objects // 20, objects // 20, max(3, objects // 100)
    real = sorted(p for p in (ROOT / "benchmarks" / "data" / "meshes").iterdir() if p.suffix != ".md")
    n_base = objects - n_dup - n_near - n_broken - huge - len(real)
    made = folder.parent / "made"
    make_shapes(made, n_base, seed=seed)
    sources = sorted(made.rglob("*.obj"))
    planted = {"base": [], "real": [], "duplicate": [], "near": [], "broken": [], "huge": []}
    for k, source in enumerate(sources):
        _glb_scene(source, folder / f"scene{k:05d}.glb", rng, instance=k % 3 == 0)
        planted["base"].append((f"scene{k:05d}", ""))
    for path in real:
        shutil.copy(path, folder / path.name)
        planted["real"].append((path.stem, ""))
    for k in range(n_dup):  # the same bytes under another name
        pick = int(rng.integers(len(sources)))
        shutil.copy(folder / f"scene{pick:05d}.glb", folder / f"copy{k:05d}.glb")
        planted["duplicate"].append((f"copy{k:05d}", f"scene{pick:05d}"))
    for k in range(n_near):  # the same scene re-exported as one mesh: other bytes, other format
        pick = int(rng.integers(len(sources)))
        _near_copy(folder / f"scene{pick:05d}.glb", folder / f"near{k:05d}.obj", rng, k % 3)
        planted["near"].append((f"near{k:05d}", f"scene{pick:05d}"))
    for k in range(n_broken):
        out = folder / f"broken{k:05d}.glb"
        kind = k % 3
        if kind == 0:
            out.write_bytes(b"")
        elif kind == 1:
            data = (folder / "scene00000.glb").read_bytes()
            out.write_bytes(data[: len(data) // 3])
        else:
            out.write_bytes(rng.bytes(4096))
        planted["broken"].append((f"broken{k:05d}", ""))
    for k in range(huge):  # the first 5.2 million faces, the others 1.3 million
        sphere = trimesh.creation.icosphere(subdivisions=9 if k == 0 else 8)
        trimesh.Trimesh(sphere.vertices * (1.0 + k), sphere.faces, process=False).export(folder / f"huge{k}.glb")
        planted["huge"].append((f"huge{k}", ""))
    return planted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(args: list, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True)  # fmt: skip


def _store_arrays(url: str) -> dict:
    import zarr

    group = zarr.open_group(url, mode="r")
    return {name: group[name][:] for name in group.attrs["sdfkit"]["arrays"] if name in group}


def _equal(a, b) -> bool:
    if a.dtype.kind in "OTU":
        return a.shape == b.shape and all(str(x) == str(y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def throughput(folder: Path, planted: dict, tmp: Path, args, env: dict) -> None:
    """The same scenes prepared on one and on two local workers (``prepare-shapenet --workers``),
    and on one worker held to one core (its process and its children: manifold3d's and open3d's
    TBB pools otherwise spread a lone worker over both cores, so "one worker" is not one core)."""
    subset = tmp / "subset"
    subset.mkdir()
    rows = [i for i, _ in planted["base"]][: args.throughput_objects]
    for i in rows:
        (subset / f"{i}.glb").symlink_to(folder / f"{i}.glb")
    rates = {}
    for name, workers, cores in (("1", 1, None), ("1 on one core", 1, {0}), ("2", 2, None)):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", "prepare-shapenet", subset, "-o", tmp / f"w{len(rates)}.zarr",
             "--workers", str(workers), "--samples", str(args.samples), "--surface-samples", "2000"],
            cwd=ROOT, env=env, capture_output=True, text=True,
            preexec_fn=(lambda cores=cores: os.sched_setaffinity(0, cores)) if cores else None,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        rates[name] = len(rows) / (time.perf_counter() - start)
    print(f"throughput on {len(rows)} scenes: 1 worker {rates['1']:.2f} objects/s ({rates['1 on one core']:.2f} "
          f"held to one core), 2 workers {rates['2']:.2f} objects/s: {rates['2'] / rates['1']:.2f}x one worker, "
          f"{rates['2'] / rates['1 on one core']:.2f}x one worker on one core")  # fmt: skip


def _s3_server():
    """moto's server on a free loopback port with the bucket ``scale``: (server, environment)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS")})
    import boto3

    boto3.client("s3").create_bucket(Bucket="scale")
    return server, env


def _full_killed_resumed(source: str, listed: int, common: list, env: dict) -> None:
    """The uninterrupted run (full.zarr) and one killed once a third of its shards are written,
    then resumed on a new cluster (killed.zarr), each on a Dask LocalCluster of two workers."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="6GB") as cluster:  # fmt: skip
        address = cluster.scheduler_address
        start = time.perf_counter()
        full = _cli(["prepare-shapenet", source, "-o", "s3://scale/full.zarr", "--scheduler", address, *common], env)
        seconds = time.perf_counter() - start
        assert full.returncode == 0, full.stderr[-2000:]
        print(f"uninterrupted run, 2 Dask workers, store on S3: {seconds:.0f} s")
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "prepare-shapenet", source, "-o",
                                 "s3://scale/killed.zarr", "--scheduler", address, *map(str, common)], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        import s3fs

        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]})
        shards = (listed + 7) // 8
        while proc.poll() is None:
            try:
                written = len(fs.ls("scale/killed.zarr/meta/status/c", refresh=True))
            except FileNotFoundError:
                written = 0
            if written >= shards // 3:
                break
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"killed after {written} of {shards} shards")
    # a crash takes the cluster too: its workers would finish the shards they had begun
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="6GB") as cluster:  # fmt: skip
        start = time.perf_counter()
        resumed = _cli(["prepare-shapenet", source, "-o", "s3://scale/killed.zarr", "--scheduler",
                        cluster.scheduler_address, *common], env)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        print(f"resumed on a new cluster: {time.perf_counter() - start:.0f} s")


def _accounting(a: dict, planted: dict, folder: Path, listed: int) -> None:
    """Rows by status, duplicates found against those planted, the huge and broken files, memory."""
    status, errors, ids = a["meta/status"], a["meta/error"], [str(i) for i in a["meta/id"]]
    print(f"rows: {len(ids)} ({listed} files): {int((status == 1).sum())} ok, {int((status == 2).sum())} failed, "
          f"{int((status == 3).sum())} skipped, {int((status == 0).sum())} pending")  # fmt: skip
    row = {i: k for k, i in enumerate(ids)}

    family = {i: (of or i) for role in planted.values() for i, of in role}  # a copy's family: its original
    kept_as = {}  # skipped id -> the id kept in its place
    for k, i in enumerate(ids):
        reason = str(errors[k])
        if status[k] == 3 and "duplicate of " in reason:
            kept_as[i] = reason.split("duplicate of ", 1)[1].split(" (", 1)[0]

    def same_bytes(a: str, b: str) -> bool:
        files = [next(folder.glob(f"{name}.*")) for name in (a, b)]
        return files[0].read_bytes() == files[1].read_bytes()

    right = {i for i, kept in kept_as.items() if family[i] == family[kept] or same_bytes(i, kept)}
    wrong = sorted(set(kept_as) - right)

    def found(role: str) -> int:  # a copy and its original in one group: one of them kept, the other not
        return sum(1 for i, of in planted[role] if i in right or (of in right and kept_as[of] in (i, *right)))

    exact, near = found("duplicate"), found("near")
    print(f"exact duplicates found {exact} of {len(planted['duplicate'])}; near-duplicates found {near} of "
          f"{len(planted['near'])} ({near / max(len(planted['near']), 1):.1%}); objects put in another's group "
          f"{len(wrong)} of {len(ids)} ({len(wrong) / len(ids):.2%})" + (f": {', '.join(wrong[:5])}" if wrong else ""))  # fmt: skip
    huge_rows = [row[i] for i, _ in planted["huge"]]
    print("huge scenes: " + "; ".join(str(errors[k])[:90] for k in huge_rows))
    broken = [row[i] for i, _ in planted["broken"]]
    hard = int((status == 2).sum()) - len(huge_rows)
    print(f"failed: {hard} besides the huge scenes, {len(broken)} planted broken "
          f"({hard / len(ids):.2%} of the rows)")  # fmt: skip
    peak = a["ledger/peak_memory"][status == 1]
    print(f"peak memory per object: median {np.median(peak) / 2**20:.0f} MB, max {peak.max() / 2**20:.0f} MB "
          "(rise of the worker's resident memory)")  # fmt: skip


def _reports(tmp: Path, env: dict) -> None:
    """``sdfkit report`` of the store on S3 (24 thumbnails) and of a local copy (none)."""
    import s3fs

    report_start = time.perf_counter()
    report = _cli(["report", "s3://scale/full.zarr", "-o", tmp / "report", "--thumbnails", 24], env)
    assert report.returncode == 0, report.stderr[-2000:]
    print(f"sdfkit report, 24 thumbnails, store and meshes on S3: {time.perf_counter() - report_start:.1f} s in all "
          f"(a new process); it says: {report.stdout.splitlines()[0]}")  # fmt: skip
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]})
    fs.get("scale/full.zarr", str(tmp / "full.zarr"), recursive=True)
    report = _cli(["report", tmp / "full.zarr", "-o", tmp / "report-local", "--thumbnails", 0], env)
    assert report.returncode == 0, report.stderr[-2000:]
    print(f"sdfkit report of a local copy of the store, no thumbnails: {report.stdout.splitlines()[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--huge", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--throughput-objects", type=int, default=400, help="objects timed on one and two workers")
    parser.add_argument("--throughput-only", action="store_true", help="build the collection, time the workers only")
    args = parser.parse_args()
    server, env = _s3_server()
    import boto3

    common = ["--samples", args.samples, "--surface-samples", 2000, "--dedup", "--max-faces", 1_000_000,
              "--memory-limit", "4G", "--time-limit", 300, "--shard-size", 8]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "collection"
        start = time.perf_counter()
        planted = build(folder, args.objects, args.huge)
        listed = sum(len(v) for v in planted.values())
        s3 = boto3.client("s3")
        for path in sorted(folder.iterdir()):
            s3.upload_file(str(path), "scale", f"collection/{path.name}")
        print(f"collection: {listed} files, built and uploaded to S3 in {time.perf_counter() - start:.0f} s")
        if args.throughput_only:
            throughput(folder, planted, Path(tmp), args, env)
            server.stop()
            return
        _full_killed_resumed("s3://scale/collection", listed, common, env)
        a, b = _store_arrays("s3://scale/full.zarr"), _store_arrays("s3://scale/killed.zarr")
        timing = {"ledger/seconds", "ledger/peak_memory"}  # measured, not computed: they differ run to run
        same = [name for name in a if name not in timing and _equal(a[name], b[name])]
        differ = [name for name in a if name not in timing and name not in same]
        print(f"resumed store equals the uninterrupted one: {len(same)} of {len(same) + len(differ)} arrays"
              + (f" (differ: {', '.join(differ)})" if differ else ""))  # fmt: skip
        _accounting(a, planted, folder, listed)
        _reports(Path(tmp), env)
        throughput(folder, planted, Path(tmp), args, env)
    server.stop()


if __name__ == "__main__":
    main()
