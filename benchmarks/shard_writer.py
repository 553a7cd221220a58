"""The direct shard writer (sdfkit/store/shards.py) against zarr's own sharding codec, same data.

Writes the shards of a mnist-like array (N rows of 64 x 64 float32, one row per inner chunk, 256
rows per shard) and of a shapenet-like one (250,000 x 3 float32 per row, 8 rows per shard; whole
rows, then in chunks of 16,384 samples as format v1 stores long sample arrays: lz4 as earlier
stores, raw as stores now), each both ways
into a fresh local store, and prints seconds and the ratio. The chunks' bytes are the same
(tests/test_store.py); in chunked rows the direct writer puts each row's chunks in order.

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
from sdfkit.store.shards import write_shard_block  # noqa: E402


def make(group, name, rows, row_shape, shard, window=None, cname="zstd"):
    chunk, span = (1, *row_shape), row_shape
    if window:  # rows chunked along their samples, as format v1 lays out long sample arrays
        chunk = (1, window, *row_shape[1:])
        span = (-(-row_shape[0] // window) * window, *row_shape[1:])
    return group.create_array(
        name,
        shape=(rows, *row_shape),
        chunks=chunk,
        shards=(shard, *span),
        dtype="float32",
        fill_value=np.nan,
        compressors=cname
        and BloscCodec(cname=cname, clevel=3 if cname == "zstd" else 5, shuffle="shuffle", typesize=4),
    )


def run(label, rows, row_shape, shard, **layout):
    data = np.random.default_rng(0).standard_normal((rows, *row_shape)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        group = zarr.open_group(Path(tmp) / "s.zarr", mode="w")
        theirs = make(group, "zarr", rows, row_shape, shard, **layout)
        ours = make(group, "direct", rows, row_shape, shard, **layout)
        start = time.perf_counter()
        for s in range(0, rows, shard):
            theirs[s : s + shard] = data[s : s + shard]
        zarr_s = time.perf_counter() - start
        start = time.perf_counter()
        for k, s in enumerate(range(0, rows, shard)):
            write_shard_block(ours, k, data[s : s + shard], np.ones(min(shard, rows - s), dtype=bool))
        direct_s = time.perf_counter() - start
        assert np.array_equal(group["direct"][:], data)
    print(f"{label:<42}{rows:>7}{zarr_s:>11.3f}{direct_s:>11.3f}{zarr_s / direct_s:>8.1f}x")


if __name__ == "__main__":
    print(f"{'array':<42}{'rows':>7}{'zarr s':>11}{'direct s':>11}{'ratio':>9}")
    run("mnist sdf/grid (64 x 64, 256/shard)", 10240, (64, 64), 256)
    run("shapenet sdf/points (250k x 3, 8/shard)", 32, (250_000, 3), 8)
    run("the same in 16,384-sample lz4 chunks", 32, (250_000, 3), 8, window=16_384, cname="lz4")
    run("the same in raw chunks (stores now)", 32, (250_000, 3), 8, window=16_384, cname=None)
