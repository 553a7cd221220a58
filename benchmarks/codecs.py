"""Which codec the windowed sample arrays get (Blosc's, or none): size against decode time, on real rows.

The rows: ``make-shapes`` shapes prepared at K = 250,000 with every recipe (``--n``, default 4),
or ``--store``. Each windowed array's rows are cut into the store's 16,384-sample chunks and
encoded with each codec (byte shuffle, as the store writes them); reported per array: the encoded
size over the raw size, and the time to decode one 16,384-sample chunk (what a training loader
pays per chunk a window spans), one thread, the median of ``--repeats`` passes.

    OMP_NUM_THREADS=1 python benchmarks/codecs.py [--n 4] [--store shapes.zarr]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numcodecs
import numpy as np
import zarr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdfkit.store.format import WINDOW_SAMPLES  # noqa: E402

CODECS = {"zstd 3": ("zstd", 3), "lz4 5": ("lz4", 5), "blosclz 5": ("blosclz", 5), "raw": (None, 0)}
"""Blosc codecs by (cname, level); ``raw``: no compressor, a chunk read is a copy of its bytes."""


class Raw:
    def encode(self, chunk: np.ndarray) -> bytes:
        return chunk.tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8).copy()


def sdfkit(*args) -> None:
    subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], check=True, cwd=ROOT, capture_output=True)


def windowed(group) -> list[str]:
    return sorted(
        name
        for name, a in group.members(max_depth=None)
        if isinstance(a, zarr.Array) and a.ndim >= 2 and a.shape[1] > 2 * WINDOW_SAMPLES
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--store", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store
        if store is None:
            store = Path(tmp) / "shapes.zarr"
            sdfkit("make-shapes", Path(tmp) / "shapes", "--n", args.n, "--seed", 5)
            recipes = [x for r in ("deepsdf", "deepsdf-test", "occnet", "ifnet", "ndf") for x in ("--recipe", r)]
            sdfkit("prepare-shapenet", Path(tmp) / "shapes", "-o", store, *recipes)
        group = zarr.open_group(str(store), mode="r")
        print(f"windowed arrays of {store}, {WINDOW_SAMPLES:,}-sample chunks, byte shuffle, one thread")
        print(f"{'array':<32}" + "".join(f"{name + ' size':>16}{name + ' ms':>13}" for name in CODECS))
        for name in windowed(group):
            rows = np.asarray(group[name][:])
            chunks = [
                np.ascontiguousarray(r[s : s + WINDOW_SAMPLES]) for r in rows for s in range(0, len(r), WINDOW_SAMPLES)
            ]
            raw = sum(c.nbytes for c in chunks)
            line = f"{name:<32}"
            for cname, level in CODECS.values():
                codec = Raw() if cname is None else numcodecs.Blosc(cname, level, numcodecs.Blosc.SHUFFLE)
                encoded = [codec.encode(c) for c in chunks]
                passes = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    for e in encoded:
                        codec.decode(e)
                    passes.append((time.perf_counter() - start) / len(encoded) * 1000)
                line += f"{sum(map(len, encoded)) / raw:>16.3f}{np.median(passes):>13.3f}"
            print(line)


if __name__ == "__main__":
    main()
