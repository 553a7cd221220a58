"""Samples per second delivered to a training loop, from a local store and from S3 servers on
loopback with and without a remote region's latency, against DeepSDF's own loader.

Every row: ``DataLoader(batch_size=64, num_workers=4)``, 16,384 samples per shape (DeepSDF's
``SamplesPerScene``), half positive and half negative, ``--epochs`` epochs (workers started
afresh each epoch, as by default) of ``--passes`` passes over the shapes each (a fresh shuffle,
or shard order, per pass: with 200 shapes one pass is 4 batches, one per worker, so a pass
measures mostly the workers' start), measured in a fresh process. Reported per row: samples per
second over the whole run (collation and transfer to the loop included), seconds from opening the
store to the first batch, the largest resident memory of a worker (VmRSS from /proc), and on S3
the HTTP requests, counted by the proxy every request goes through (benchmarks/s3_servers.py):
those of opening the dataset (metadata, columns, shard indexes: once per run, measured by a run
that opens it and reads nothing), and the rest per million samples delivered (the windows); and
the share of a core the S3 server and the proxy used while the loader iterated (their CPU time
from /proc over the iteration's wall time, the time the samples/s are measured over): all of it
runs on this machine's cores beside the loader. s3rver is one Node.js process: a share near 1
means the server, not the loader, sets the rate. ``loader cores``: the same for the loader (the
training loop's process and its workers): near the number of cores it may use, the loader's own
work sets the rate; well below, it waits for bytes.

Rows:
- DeepSDF's ``SDFSamples`` (``deep_sdf/data.py`` of a checkout given with ``--deepsdf``; nothing of it
  is committed here; it needs ``plyfile``) on ``sdfkit export --to deepsdf`` of the store, with
  ``load_ram=False`` as DeepSDF trains by default;
- sdfkit ``DeepSDFSamples`` on the local store, shuffled (the default) and in shard order
  (``shard_order=True`` with ``ShardOrderSampler``);
- with ``--baseline DIR`` (a checkout of an earlier sdfkit, e.g. ``git worktree add /tmp/base
  a21191b``) and ``--baseline-store`` (a store it made): that code on its store, locally and from
  s3rver + delay, in the same run;
- a dataset whose items read nothing: what the DataLoader itself delivers here (the ceiling);
- s3rver (Node.js) behind the latency proxy with 0 ms and ``--delay`` ms added to every request:
  shuffled, in shard order, and in shard order with ``DeepSDFSamples.read_ahead`` (each worker
  requests its next ``--read-ahead`` batches, default 1, or each depth of a list, while it reads
  one); with ``--moto``,
  moto's server too.

    python benchmarks/loader.py --deepsdf ~/src/DeepSDF [--store shapes.zarr] [--baseline /tmp/base
        --baseline-store shapes-v1.zarr] [--n 200] [--delay 20] [--rounds 2]

``--loader-cores 1`` runs every row's loader (workers included) on one core and the servers and
the proxy on the others, as a remote object store's cores are not the training node's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

BATCH, SAMPLES, WORKERS = 64, 16_384, 4


def sdfkit(*args) -> None:
    subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], check=True, cwd=ROOT, capture_output=True)


# ---- one row, in its own process ---------------------------------------------------------------


def worker_rss(loader_iter) -> float:
    """Largest VmRSS (MB) among the loader's worker processes now."""
    best = 0.0
    for worker in getattr(loader_iter, "_workers", []):
        try:
            for line in open(f"/proc/{worker.pid}/status"):
                if line.startswith("VmRSS:"):
                    best = max(best, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return best


def run_row(spec: dict) -> dict:
    """Open the row's dataset (the sdfkit of ``spec["root"]``) and iterate its loader."""
    sys.path.insert(0, spec["root"])
    if spec.get("cores"):  # before any worker starts: they inherit it
        os.sched_setaffinity(0, set(spec["cores"]))
    import numpy as np
    import torch

    start = time.perf_counter()
    sampler = None
    if spec["kind"] == "deepsdf":
        sys.path.insert(0, spec["deepsdf"])
        import deep_sdf.data

        split = json.loads(Path(spec["split"]).read_text())
        dataset = deep_sdf.data.SDFSamples(spec["store"], split, SAMPLES, load_ram=False)
    elif spec["kind"] == "nothing":

        class Nothing(torch.utils.data.Dataset):
            def __len__(self):
                return spec["n"]

            def __getitem__(self, index):
                return torch.from_numpy(np.empty((SAMPLES, 4), dtype=np.float32)), index

        dataset = Nothing()
    else:
        from sdfkit.torch import DeepSDFSamples

        dataset = DeepSDFSamples(spec["store"], subsample=SAMPLES, **spec.get("options", {}))
        if spec.get("options", {}).get("shard_order"):
            from sdfkit.torch import ShardOrderSampler

            sampler = ShardOrderSampler(dataset)
    passes = spec.get("passes", 1)
    if sampler is None:
        sampler = torch.utils.data.RandomSampler(dataset, num_samples=passes * len(dataset))
    else:
        sampler = Passes(sampler, passes)
    if spec.get("read_ahead"):
        dataset.read_ahead(sampler, BATCH, depth=spec["read_ahead"])
    opened = time.perf_counter() - start  # the dataset made: metadata, columns, shard indexes
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, sampler=sampler, num_workers=spec.get("workers", WORKERS)
    )
    first, samples, rss = None, 0, 0.0
    watched = spec.get("watch", {})  # the server's and the proxy's CPU time over the iteration alone
    cpu = {name: cpu_seconds(pid) for name, pid in watched.items()}
    loader_cpu = _own_cpu()
    begin = time.perf_counter()
    for epoch in range(spec["epochs"]):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        iterator = iter(loader)
        for batch in iterator:
            samples += len(batch[1]) * SAMPLES
            if first is None:
                first = time.perf_counter() - start
            rss = max(rss, worker_rss(iterator))
        del iterator  # its workers shut down and are waited for: their CPU time is counted
    wall = time.perf_counter() - begin
    return {
        "rate": samples / wall,
        "loader cores": (_own_cpu() - loader_cpu) / wall,
        **{f"{name} cores": (cpu_seconds(pid) - cpu[name]) / wall for name, pid in watched.items()},
        "first": first,
        "open": opened,
        "rss": rss,
        "samples": samples,
        "workers": loader.num_workers,
    }


def _own_cpu() -> float:
    """CPU time (s) of this process and of its children that have ended (the loader's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Passes:
    """``passes`` of a sampler's orders one after another: one epoch of the loader."""

    def __init__(self, sampler, passes: int):
        self.sampler, self.passes = sampler, passes

    def __len__(self) -> int:
        return self.passes * len(self.sampler)

    def __iter__(self):
        for _ in range(self.passes):
            yield from self.sampler


# ---- the run -------------------------------------------------------------------------------------


def pin(pid: int, cores: set[int]) -> None:
    """Run every thread of a process (and the threads it starts later) on ``cores`` only."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), cores)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time (s) of a process so far, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(spec: dict, env: dict | None = None, proxy=None, server=None) -> dict:
    """Run one row in a fresh process; with a proxy, the requests it counted and the share of a
    core that the proxy and the server process used while the row iterated (measured by the row)."""
    if proxy is not None and server is not None:
        spec = {**spec, "watch": {"proxy": proxy.pid, "server": server.pid}}
    before = proxy.requests if proxy is not None else 0
    done = subprocess.run(
        [sys.executable, __file__, "--row", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if proxy is not None:
        result["requests"] = proxy.requests - before
    return result


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deepsdf", help="a DeepSDF checkout (for deep_sdf/data.py); required")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--store", default=None, help="an existing prepare-shapenet store at K = 250,000")
    parser.add_argument("--baseline", default=None, help="a checkout of an earlier sdfkit, measured in the same run")
    parser.add_argument("--baseline-store", default=None, help="a store that earlier sdfkit made of the same shapes")
    parser.add_argument("--delay", type=float, default=20.0, help="ms added to every S3 request (default 20)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--passes", type=int, default=1, help="passes over the shapes per epoch (each a fresh order; default 1)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--moto", action="store_true", help="moto's server too")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"DataLoader workers (default {WORKERS})")
    parser.add_argument(
        "--read-ahead",
        type=lambda text: [int(d) for d in text.split(",") if int(d) > 0],
        default=[1],
        help="also the shard-order S3 rows with DeepSDFSamples.read_ahead(depth=N), for each N of a "
        "comma-separated list (default 1; 0: none)",
    )
    parser.add_argument("--only", default=None, help="measure only the S3 rows whose name holds this text")
    parser.add_argument(
        "--loader-cores",
        type=int,
        default=None,
        help="run every row's loader (its workers included) on this many cores and the S3 servers and the "
        "proxy on the others, as a remote server has its own machine (default: all share every core)",
    )
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.row and not args.deepsdf:
        parser.error("--deepsdf is required: a DeepSDF checkout, the baseline loader")
    available = sorted(os.sched_getaffinity(0))
    if args.loader_cores and not 0 < args.loader_cores < len(available):
        parser.error(f"--loader-cores: between 1 and {len(available) - 1} on this machine")
    return args


def local_rows(args, common: dict, tmp: Path, store) -> tuple[dict, int]:
    """The rows read from this machine's disk, by name: (rows, shapes). Exports the store for
    DeepSDF's loader first."""
    sdfkit("export", store, "--to", "deepsdf", "-o", tmp / "deepsdf", "--dataset", "shapes")
    split = {}
    for path in sorted((tmp / "deepsdf" / "SdfSamples" / "shapes").glob("*/*.npz")):
        split.setdefault("shapes", {}).setdefault(path.parent.name, []).append(path.stem)
    (tmp / "split.json").write_text(json.dumps(split))
    n = sum(len(v) for v in split["shapes"].values())
    local = {
        "DeepSDF SDFSamples (load_ram=False)": {
            **common,
            "kind": "deepsdf",
            "deepsdf": str(Path(args.deepsdf).resolve()),
            "store": str(tmp / "deepsdf"),
            "split": str(tmp / "split.json"),
        },
        "sdfkit, local, shuffled": {**common, "kind": "sdfkit", "store": str(store)},
        "sdfkit, local, shard order": {
            **common,
            "kind": "sdfkit",
            "store": str(store),
            "options": {"shard_order": True},
        },
        "reading nothing (the DataLoader alone)": {**common, "kind": "nothing", "n": n},
    }
    if args.baseline:
        local["baseline sdfkit, local, shuffled"] = {**baseline(args, common), "store": str(args.baseline_store)}
    return local, n


def baseline(args, common: dict) -> dict:
    return {**common, "root": str(Path(args.baseline).resolve()), "kind": "sdfkit"}


def remote_rows(args, common: dict, tmp: Path, store, server_cores, servers: list) -> dict:
    """The rows read from S3 servers on loopback (started here, added to ``servers``), by name:
    (spec, environment, proxy, server)."""
    import s3fs
    from s3_servers import S3RVER_KEY, LatencyProxy, s3rver_command, start_moto_server, start_s3rver

    def started(server):
        servers.append(server)
        if server_cores:
            pin(server.pid, server_cores)
        return server

    remote = {}
    sdf = {**common, "kind": "sdfkit", "store": "s3://bench/shapes.zarr"}
    shard = {**sdf, "options": {"shard_order": True}}
    command, why = s3rver_command()
    if command is None:
        print(f"s3rver rows skipped: {why}")
    else:
        endpoint, server = start_s3rver(tmp / "s3rver", "bench")
        started(server)
        env = {"AWS_ACCESS_KEY_ID": S3RVER_KEY, "AWS_SECRET_ACCESS_KEY": S3RVER_KEY, "AWS_DEFAULT_REGION": "us-east-1"}
        fs = s3fs.S3FileSystem(key=S3RVER_KEY, secret=S3RVER_KEY, client_kwargs={"endpoint_url": endpoint})
        fs.put(str(store), "bench/shapes.zarr", recursive=True)
        if args.baseline:
            fs.put(str(args.baseline_store), "bench/baseline.zarr", recursive=True)
        for delay in (0.0, args.delay):
            proxy = started(LatencyProxy(int(endpoint.rsplit(":", 1)[1]), delay / 1000).start())
            env_d = {**env, "AWS_ENDPOINT_URL": proxy.endpoint}
            label = f"s3rver + {delay:g} ms"
            remote[f"sdfkit, {label}, shuffled"] = (sdf, env_d, proxy, server)
            remote[f"sdfkit, {label}, shard order"] = (shard, env_d, proxy, server)
            for depth in args.read_ahead:
                ahead = {**shard, "read_ahead": depth}
                remote[f"sdfkit, {label}, shard order, read-ahead {depth}"] = (ahead, env_d, proxy, server)
            if args.baseline and delay:
                spec = {**baseline(args, common), "store": "s3://bench/baseline.zarr"}
                remote[f"baseline sdfkit, {label}, shuffled"] = (spec, env_d, proxy, server)
    if args.moto:
        endpoint, server = start_moto_server()
        started(server)
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": endpoint})
        fs.mkdir("bench")
        fs.put(str(store), "bench/shapes.zarr", recursive=True)
        proxy = started(LatencyProxy(int(endpoint.rsplit(":", 1)[1]), 0.0).start())
        remote["sdfkit, moto, shard order"] = (shard, {**env, "AWS_ENDPOINT_URL": proxy.endpoint}, proxy, server)
    if args.only:
        remote = {name: row for name, row in remote.items() if args.only in name}
    return remote


def main() -> None:
    args = parse_args()
    if args.row:
        print(json.dumps(run_row(json.loads(args.row))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = args.store
        if store is None:
            store = tmp / "shapes.zarr"
            sdfkit("make-shapes", tmp / "shapes", "--n", args.n, "--seed", 5)
            sdfkit("prepare-shapenet", tmp / "shapes", "-o", store)
        common = {"epochs": args.epochs, "passes": args.passes, "workers": args.workers, "root": str(ROOT)}
        available = sorted(os.sched_getaffinity(0))
        server_cores = None
        if args.loader_cores:
            common["cores"] = available[: args.loader_cores]
            server_cores = set(available[args.loader_cores :])
        local, n = local_rows(args, common, tmp, store)
        results: dict[str, list] = {name: [] for name in local}
        for r in range(args.rounds):
            for name in list(local) if r % 2 == 0 else list(local)[::-1]:
                results[name].append(measure(local[name]))
        servers = []
        try:
            for name, (spec, env, proxy, server) in remote_rows(
                args, common, tmp, store, server_cores, servers
            ).items():
                opening = measure({**spec, "epochs": 0}, env, proxy)["requests"]  # the dataset made, nothing read
                runs = [measure(spec, env, proxy, server) for _ in range(args.rounds)]
                results[name] = [{**run, "opening": opening} for run in runs]
        finally:
            for server in servers:
                (server.stop if hasattr(server, "stop") else server.terminate)()
    report(results, n, common.get("cores"))


def report(results: dict, n: int, cores=None) -> None:
    import numpy as np

    def median(name, key):
        return float(np.median([m[key] for m in results[name]]))

    base = median("DeepSDF SDFSamples (load_ram=False)", "rate")
    local = median("sdfkit, local, shuffled", "rate")
    workers = next(iter(results.values()))[0].get("workers", WORKERS)
    print(f"{n} shapes at K = 250,000; batch {BATCH} x {SAMPLES:,}, {workers} workers; medians of the rounds")
    if cores:
        print(f"every loader on cores {cores}, the S3 servers and the proxy on the others")
    print(
        f"{'loader':<44}{'samples/s':>13}{'x DeepSDF':>10}{'x local':>9}{'first batch s':>14}{'worker MB':>10}{'loader cores':>13}"
        f"{'requests / 1M samples':>23}{'opening requests':>18}{'server cores':>14}{'proxy cores':>13}"
    )
    for name, runs in results.items():
        rate = median(name, "rate")
        requests = ""
        if "requests" in runs[0]:  # the windows' requests; opening the dataset apart
            per = np.median([(m["requests"] - m["opening"]) / m["samples"] * 1e6 for m in runs])
            requests = f"{per:>23.1f}{runs[0]['opening']:>18}"
            requests += f"{median(name, 'server cores'):>14.2f}{median(name, 'proxy cores'):>13.2f}"
        rss = max(m["rss"] for m in runs)
        print(
            f"{name:<44}{rate:>13,.0f}{rate / base:>10.2f}{rate / local:>9.2f}{median(name, 'first'):>14.2f}"
            f"{rss:>10.0f}{median(name, 'loader cores'):>13.2f}{requests}"
        )


if __name__ == "__main__":
    main()
