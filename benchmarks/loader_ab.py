"""One loader row of ``benchmarks/loader.py`` (s3rver behind the latency proxy, shard order, the
loader on core 0 and the servers on core 1) for several sdfkit checkouts, alternating, on one
s3rver: how a change to the object-storage path compares with the code before it, in one run.

    python benchmarks/loader_ab.py --store v2.zarr <checkout before> <checkout after> --rounds 2
    python benchmarks/loader_ab.py --store v2.zarr <before> <after> --rounds 3 --open-only  # opening the store

Each row prints samples/s and the cores the loader, the server and the proxy used while it
iterated (``benchmarks/loader.py --row`` measures them). Needs two cores or more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from loader import pin  # noqa: E402
from s3_servers import S3RVER_KEY, LatencyProxy, start_s3rver  # noqa: E402


def row(checkout: Path, endpoint: str, watch: dict, args) -> dict:
    spec = {
        "epochs": args.epochs,
        "passes": args.passes,
        "workers": args.workers,
        "root": str(checkout),
        "cores": [0],
        "kind": "sdfkit",
        "store": "s3://bench/shapes.zarr",
        "options": {"shard_order": True},
        "watch": watch,
    }
    if args.read_ahead:
        spec["read_ahead"] = args.read_ahead
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": S3RVER_KEY,
        "AWS_SECRET_ACCESS_KEY": S3RVER_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "loader.py"), "--row", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkouts", type=Path, nargs="+", help="sdfkit checkouts, measured in turn")
    parser.add_argument("--store", type=Path, required=True, help="a prepare-shapenet store")
    parser.add_argument("--delay", type=float, default=20.0, help="ms added to every request (default 20)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--read-ahead", type=int, default=0, help="DeepSDFSamples.read_ahead depth (default 0: off)")
    parser.add_argument(
        "--open-only", action="store_true", help="only make the dataset (no epoch): the seconds opening the store takes"
    )
    args = parser.parse_args()
    if args.open_only:
        args.epochs = 0
    import tempfile

    import s3fs

    with tempfile.TemporaryDirectory() as tmp:
        endpoint, server = start_s3rver(Path(tmp) / "s3rver", "bench")
        pin(server.pid, {1})
        try:
            fs = s3fs.S3FileSystem(key=S3RVER_KEY, secret=S3RVER_KEY, client_kwargs={"endpoint_url": endpoint})
            fs.put(str(args.store), "bench/shapes.zarr", recursive=True)
            with LatencyProxy(int(endpoint.rsplit(":", 1)[1]), args.delay / 1000) as proxy:
                pin(proxy.pid, {1})
                if args.open_only:
                    print(f"{'checkout':<40}{'open s':>10}")
                else:
                    print(
                        f"{'checkout':<40}{'samples/s':>13}{'first batch s':>15}{'loader cores':>14}"
                        f"{'server cores':>14}{'proxy cores':>13}"
                    )
                for _ in range(args.rounds):
                    for checkout in args.checkouts:
                        m = row(checkout.resolve(), proxy.endpoint, {"server": server.pid, "proxy": proxy.pid}, args)
                        if args.open_only:
                            print(f"{str(checkout):<40}{m['open']:>10.2f}", flush=True)
                            continue
                        print(
                            f"{str(checkout):<40}{m['rate']:>13,.0f}{m['first']:>15.2f}{m['loader cores']:>14.2f}"
                            f"{m['server cores']:>14.2f}{m['proxy cores']:>13.2f}",
                            flush=True,
                        )
        finally:
            server.terminate()


if __name__ == "__main__":
    main()
