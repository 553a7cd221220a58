"""Samples per second delivered to a training loop: sdfkit.torch against DeepSDF's own loader.

The store: ``make-shapes`` shapes prepared at K = 250,000 (``--n``, default 200), or ``--store``.
The baseline: DeepSDF's ``SDFSamples`` (``deep_sdf/data.py`` of a DeepSDF checkout given with
``--deepsdf``; nothing of it is committed here; its package needs ``plyfile``) reading the same
shapes exported with ``sdfkit export --to deepsdf``, with ``load_ram=False`` as DeepSDF trains by
default. Both: ``DataLoader(batch_size=64, shuffle=True, num_workers=4)``, 16,384 samples per shape
(DeepSDF's ``SamplesPerScene``), half positive and half negative; two epochs each, the order of
the loaders alternating over ``--rounds`` rounds. A dataset whose items read nothing measures
what the DataLoader itself delivers on this machine (the ceiling of any loader here). Reported: samples per second over the whole
run (collation and transfer to the loop included), seconds to the first batch, and the largest
resident memory of a worker (VmRSS from /proc).

    python benchmarks/loader.py --deepsdf ~/src/DeepSDF [--n 200] [--store shapes.zarr] [--s3]

``--s3`` also reads the store from a moto S3 server on 127.0.0.1 (moto[server], s3fs), twice:
as the loader delivers it, and reading the same windows' bytes only (no item made from them: what
the range requests alone deliver through the same DataLoader). For each, the share of one core
that moto's server process used (its CPU time from /proc over the run's wall time): moto answers
on one Python thread at a time, so a share near 1 means the server, not the loader, sets the rate.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdfkit.torch import DeepSDFSamples  # noqa: E402

BATCH, SAMPLES, WORKERS = 64, 16_384, 4


def sdfkit(*args) -> None:
    subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], check=True, cwd=ROOT, capture_output=True)


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time (s) of a process so far, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ReadsOnly(DeepSDFSamples):
    """DeepSDFSamples reading the same windows and making no item of them: what the range
    requests alone deliver."""

    def _item(self, index: int, arrays: dict):
        return torch.zeros(1), index


class Nothing(torch.utils.data.Dataset):
    """Items of the same shape that read nothing: what the DataLoader alone delivers here."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        return torch.from_numpy(np.empty((SAMPLES, 4), dtype=np.float32)), index


def measure(dataset, epochs: int = 2) -> dict:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, num_workers=WORKERS, persistent_workers=False
    )
    start = time.perf_counter()
    first, samples, rss = None, 0, 0.0
    for epoch in range(epochs):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        iterator = iter(loader)
        for batch in iterator:
            samples += len(batch[1]) * SAMPLES
            if first is None:
                first = time.perf_counter() - start
            rss = max(rss, worker_rss(iterator))
    return {"rate": samples / (time.perf_counter() - start), "first": first, "rss": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deepsdf", required=True, help="a DeepSDF checkout (for deep_sdf/data.py)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--store", default=None, help="an existing prepare-shapenet store at K = 250,000")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--s3", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.deepsdf).resolve()))
    import deep_sdf.data

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = args.store
        if store is None:
            store = tmp / "shapes.zarr"
            sdfkit("make-shapes", tmp / "shapes", "--n", args.n, "--seed", 5)
            sdfkit("prepare-shapenet", tmp / "shapes", "-o", store)
        sdfkit("export", store, "--to", "deepsdf", "-o", tmp / "deepsdf", "--dataset", "shapes")
        import json

        split = {}
        for path in sorted((tmp / "deepsdf" / "SdfSamples" / "shapes").glob("*/*.npz")):
            split.setdefault("shapes", {}).setdefault(path.parent.name, []).append(path.stem)
        theirs = deep_sdf.data.SDFSamples(str(tmp / "deepsdf"), split, SAMPLES, load_ram=False)
        ours = DeepSDFSamples(str(store), subsample=SAMPLES)
        print(f"{len(ours)} shapes at K = 250,000; batch {BATCH} x {SAMPLES:,}, {WORKERS} workers, 2 epochs per run")
        print(json.dumps({"deepsdf_files": len(theirs)}))
        datasets = {
            "DeepSDF SDFSamples (load_ram=False)": theirs,
            "sdfkit DeepSDFSamples, local": ours,
            "reading nothing (the DataLoader alone)": Nothing(len(ours)),
        }
        results = {name: [] for name in datasets}
        for r in range(args.rounds):
            order = list(results) if r % 2 == 0 else list(results)[::-1]
            for name in order:
                results[name].append(measure(datasets[name]))
        moto, busy = None, {}
        if args.s3:
            url, server = _upload_to_moto(store, tmp)
            remote = DeepSDFSamples(url, subsample=SAMPLES)
            for name, dataset in (
                ("sdfkit DeepSDFSamples, moto S3", remote),
                ("moto S3, the windows' bytes only", ReadsOnly(url, subsample=SAMPLES)),
            ):
                cpu, start = cpu_seconds(server.pid), time.perf_counter()
                results[name] = [measure(dataset, epochs=1)]
                busy[name] = (cpu_seconds(server.pid) - cpu) / (time.perf_counter() - start)
            # what the server itself answers: one batch's range requests, in this process (a
            # window of consecutive chunks laid out in order is one request)
            requests = []
            for name in remote.names:
                reader = remote.reader(name)
                reader._request = lambda ranges, fetch=reader._request: requests.append(len(ranges)) or fetch(ranges)
            start = time.perf_counter()
            remote.__getitems__(list(range(min(BATCH, len(remote)))))
            moto = (sum(requests), time.perf_counter() - start)
        # one item in one process, for the record
        items = {}
        for name, dataset in (("DeepSDF", theirs), ("sdfkit", ours)):
            start = time.perf_counter()
            for k in range(64):
                dataset[k % len(dataset)]
            items[name] = (time.perf_counter() - start) / 64 * 1000
    base = np.median([m["rate"] for m in results["DeepSDF SDFSamples (load_ram=False)"]])
    local = np.median([m["rate"] for m in results["sdfkit DeepSDFSamples, local"]])
    print(
        f"{'loader':<40}{'samples/s':>14}{'x DeepSDF':>11}{'x local':>9}{'first batch s':>15}{'worker MB':>11}"
        f"{'moto cores':>12}"
    )
    for name, runs in results.items():
        rate = np.median([m["rate"] for m in runs])
        first = np.median([m["first"] for m in runs])
        rss = max(m["rss"] for m in runs)
        server = f"{busy[name]:>12.2f}" if name in busy else ""
        print(f"{name:<40}{rate:>14,.0f}{rate / base:>11.2f}{rate / local:>9.2f}{first:>15.2f}{rss:>11.0f}{server}")
    print(f"one item in one process: DeepSDF {items['DeepSDF']:.2f} ms, sdfkit {items['sdfkit']:.2f} ms")
    if moto:
        print(
            f"moto: one batch's {moto[0]} range requests in one process took {moto[1]:.2f} s ({moto[0] / moto[1]:.0f}/s)"
        )


def _upload_to_moto(store, tmp: Path):
    """Start moto's S3 server on loopback, copy the store into a bucket: its URL and the server."""
    import s3fs
    from moto_requests import start_moto_server

    endpoint, server = start_moto_server()
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    fs.mkdir("bench")
    fs.put(str(store), "bench/shapes.zarr", recursive=True)
    import atexit

    atexit.register(server.terminate)
    return "s3://bench/shapes.zarr", server


if __name__ == "__main__":
    main()
