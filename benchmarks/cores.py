"""How many cores a prepare-shapenet run keeps busy, and whether this machine's cores are whole.

1. Pure Python and numpy work in one process and in two at once (4 s each): their total rate
   over one process's says whether two processes get two cores' worth (2.0) or share one core's
   execution units (hyperthreads: well under 2).
2. ``prepare-shapenet --workers 1`` of ``--n`` make-shapes shapes, free and held to one core
   (``sched_setaffinity``, inherited by its workers), and ``--workers 2``: wall time and the busy
   cores averaged over the run, from /proc/stat (all processes, so run it on an idle machine).

    OMP_NUM_THREADS=1 python benchmarks/cores.py [--n 80]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _spin(kind: str, out) -> None:
    start, count = time.perf_counter(), 0
    a, b = np.random.rand(2_000_000), np.random.rand(2_000_000)
    while time.perf_counter() - start < 4:
        if kind == "python":
            total = 0
            for i in range(100_000):
                total += i
        else:
            (a * b + a).sum()
            np.sort(a[:200_000])
        count += 1
    out.put(count / (time.perf_counter() - start))


def _busy() -> int:
    fields = open("/proc/stat").readline().split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return user + nice + system + irq + softirq + steal


def run(command: list, cores: set | None = None) -> tuple[float, float]:
    """(wall seconds, busy cores averaged over the run) of a command."""
    busy, start = _busy(), time.perf_counter()
    subprocess.run(
        command,
        check=True,
        cwd=ROOT,
        capture_output=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
    )
    wall = time.perf_counter() - start
    return wall, (_busy() - busy) / os.sysconf("SC_CLK_TCK") / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=80)
    args = parser.parse_args()
    print(f"{'work':<10}{'processes':>10}{'total rate':>12}{'x one':>7}")
    for kind in ("python", "numpy"):
        rates = {}
        for count in (1, 2):
            out = multiprocessing.Queue()
            procs = [multiprocessing.Process(target=_spin, args=(kind, out)) for _ in range(count)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            rates[count] = sum(out.get() for _ in procs)
            print(f"{kind:<10}{count:>10}{rates[count]:>12.1f}{rates[count] / rates[1]:>7.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        shapes = Path(tmp) / "shapes"
        cli = [sys.executable, "-m", "cli.main"]
        subprocess.run([*cli, "make-shapes", shapes, "--n", str(args.n), "--seed", "3"], check=True, cwd=ROOT,
                       capture_output=True)  # fmt: skip
        print(f"\nprepare-shapenet of {args.n} make-shapes shapes (--samples 10000 --surface-samples 2000)")
        print(f"{'run':<28}{'wall s':>8}{'busy cores':>12}")
        for k, (name, workers, cores) in enumerate(
            (("1 worker", 1, None), ("1 worker held to one core", 1, {0}), ("2 workers", 2, None))
        ):
            command = [*cli, "prepare-shapenet", shapes, "-o", Path(tmp) / f"{k}.zarr", "--workers", str(workers),
                       "--samples", "10000", "--surface-samples", "2000"]  # fmt: skip
            wall, busy = run(command, cores)
            print(f"{name:<28}{wall:>8.2f}{busy:>12.2f}")


if __name__ == "__main__":
    main()
