"""The direct shard writer (sdfkit/store/_shards.py) against zarr's own sharding codec, same data.

Writes the shards of a mnist-like array (N rows of 64 x 64 float32, one row per inner chunk, 256
rows per shard) and of a shapenet-like one (250,000 x 3 float32 per row, 8 rows per shard), each
both ways into a fresh local store, and prints seconds and the ratio. The bytes are the same
(tests/test_store.py).

    python benchmarks/shard_writer.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sdfkit.store._shards import write_shard_block  # noqa: E402


def make(group, name, rows, row_shape, shard):
    return group.create_array(
        name,
        shape=(rows, *row_shape),
        chunks=(1, *row_shape),
        shards=(shard, *row_shape),
        dtype="float32",
        fill_value=np.nan,
        compressors=BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=4),
    )


def run(label, rows, row_shape, shard):
    data = np.random.default_rng(0).standard_normal((rows, *row_shape)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        group = zarr.open_group(Path(tmp) / "s.zarr", mode="w")
        theirs, ours = make(group, "zarr", rows, row_shape, shard), make(group, "direct", rows, row_shape, shard)
        start = time.perf_counter()
        for s in range(0, rows, shard):
            theirs[s : s + shard] = data[s : s + shard]
        zarr_s = time.perf_counter() - start
        start = time.perf_counter()
        for k, s in enumerate(range(0, rows, shard)):
            write_shard_block(ours, k, data[s : s + shard], np.ones(min(shard, rows - s), dtype=bool))
        direct_s = time.perf_counter() - start
        assert np.array_equal(group["direct"][:], data)
    print(f"{label:<34}{rows:>7}{zarr_s:>11.3f}{direct_s:>11.3f}{zarr_s / direct_s:>8.1f}x")


if __name__ == "__main__":
    print(f"{'array':<34}{'rows':>7}{'zarr s':>11}{'direct s':>11}{'ratio':>9}")
    run("mnist sdf/grid (64 x 64, 256/shard)", 10240, (64, 64), 256)
    run("shapenet sdf/points (250k x 3, 8/shard)", 32, (250_000, 3), 8)
