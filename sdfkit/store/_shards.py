"""Writing whole zarr v3 shards in one piece.

zarr-python's sharding codec handles every inner chunk through its async pipeline, about 0.2 ms
per chunk; with one shape per chunk that is several times the cost of computing a 2D SDF. A
worker that owns a whole shard can instead encode it directly, as the zarr v3 sharding
specification lays it out:

- the inner chunks, each encoded with the array's inner codecs (bytes little-endian, then Blosc),
  concatenated;
- then the shard index: for every inner chunk, (offset, nbytes) as little-endian uint64, with
  (2^64 - 1, 2^64 - 1) for a chunk that is absent (reads as the fill value), followed by the
  CRC32C of those index bytes as a little-endian uint32 (index codecs: bytes, crc32c; index
  location: end).

The bytes go to the store through zarr's own ``StorePath`` (local folders, fsspec URLs alike), and
every read goes through plain zarr, which checks all of the above (tests/test_store.py, which also
checks that the bytes equal those zarr's own codec writes). This is the only module that touches
zarr's internals (``metadata.codecs``, ``store_path``, ``zarr.core``); ``benchmarks/shard_writer.py``
measures what it gains.
"""

from __future__ import annotations

import os
from pathlib import Path

import numcodecs
import numpy as np
from google_crc32c import value as crc32c
from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

__all__ = ["can_encode", "write_shard_block", "WindowReader"]

_EMPTY = np.uint64(2**64 - 1)


def _layout(array):
    """(inner chunk shape, inner Blosc codec) of a shape-sharded array, or None (zarr's own writer
    then writes it: slower, never wrong)."""
    try:
        return _inspect(array)
    except AttributeError:  # zarr's internals moved: tests/test_store.py says so, users lose speed only
        return None


def _inspect(array):
    codecs = array.metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sharding = codecs[0]
    inner = sharding.codecs
    if (
        sharding.index_location.value != "end"
        or len(inner) != 2
        or not isinstance(inner[0], BytesCodec)
        or not isinstance(inner[1], BloscCodec)
        or (inner[0].endian is not None and inner[0].endian.value != "little")
    ):
        return None
    chunk = tuple(sharding.chunk_shape)
    if chunk[0] != 1 or chunk[1:] != tuple(array.shape[1:]):
        return None
    return chunk, inner[1]


def can_encode(array) -> bool:
    """Whether :func:`write_shard_block` can write this array's shards directly."""
    return _layout(array) is not None


def _blosc(codec: BloscCodec, itemsize: int) -> numcodecs.Blosc:
    shuffle = {
        "noshuffle": numcodecs.Blosc.NOSHUFFLE,
        "shuffle": numcodecs.Blosc.SHUFFLE,
        "bitshuffle": numcodecs.Blosc.BITSHUFFLE,
    }[codec.shuffle.value]
    return numcodecs.Blosc(
        cname=codec.cname.value, clevel=codec.clevel, shuffle=shuffle, blocksize=codec.blocksize or 0
    )


def write_shard_block(array, shard: int, block: np.ndarray, present: np.ndarray | None = None) -> None:
    """Write rows ``shard * shard_rows ...`` of a shape-sharded array as one shard object.

    block : (rows, *array.shape[1:]), rows = the shard's rows inside the array
    present : (rows,) bool; rows marked False are left absent and read as the fill value
    """
    chunk, codec = _layout(array)
    shard_rows = array.shards[0]
    rows = len(block)
    block = np.ascontiguousarray(block, dtype=array.dtype.newbyteorder("<"))
    compressor = _blosc(codec, block.dtype.itemsize)
    index = np.full((shard_rows, 2), _EMPTY, dtype="<u8")
    pieces, offset = [], 0
    for row in range(rows):
        if present is not None and not present[row]:
            continue
        data = compressor.encode(block[row])
        pieces.append(data)
        index[row] = (offset, len(data))
        offset += len(data)
    index_bytes = index.tobytes()
    pieces.append(index_bytes)
    pieces.append(np.uint32(crc32c(index_bytes)).astype("<u4").tobytes())
    key = array.metadata.encode_chunk_key((shard,) + (0,) * (array.ndim - 1))
    buffer = default_buffer_prototype().buffer.from_bytes(b"".join(pieces))
    sync((array.store_path / key).set(buffer))  # any zarr store: local, fsspec (s3://, gs://), memory


class WindowReader:
    """Windows of rows of a shape-sharded array whose rows are chunked along the sample axis
    (``format.WINDOW_SAMPLES``), read straight from the shard's bytes: the shard's index once
    per shard (kept), then one byte-range request spanning the window's chunks, Blosc-decoded
    here. zarr's own partial read goes through its async pipeline chunk by chunk (measured: about
    25 ms for a 16,384-sample window of a 250,000 x 3 row, against under 2 ms here). Any other
    layout, and chunks that are absent (failed rows), are read through plain zarr.
    """

    def __init__(self, array):
        self.array = array
        self.layout = None
        try:
            codecs = array.metadata.codecs
            sharding = codecs[0] if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec) else None
            inner = sharding.codecs if sharding is not None else ()
            if (
                sharding is not None
                and sharding.index_location.value == "end"
                and len(inner) == 2
                and isinstance(inner[0], BytesCodec)
                and isinstance(inner[1], BloscCodec)
                and (inner[0].endian is None or inner[0].endian.value == "little")
                and sharding.chunk_shape[0] == 1
                and len(sharding.chunk_shape) >= 2
                and tuple(sharding.chunk_shape[2:]) == tuple(array.shape[2:])
            ):
                self.layout = (tuple(sharding.chunk_shape), tuple(array.shards), numcodecs.Blosc())
        except AttributeError:  # zarr's internals moved: plain zarr reads, only slower
            self.layout = None
        self._index: dict[int, np.ndarray] = {}
        store = getattr(array.store_path, "store", None)
        self.folder = Path(store.root) if type(store).__name__ == "LocalStore" else None

    def _key(self, shard: int) -> str:
        """The store key of a shard (its first row's chunk key)."""
        return self.array.metadata.encode_chunk_key((shard,) + (0,) * (self.array.ndim - 1))

    def _shard_index(self, shard: int) -> np.ndarray | None:
        if shard not in self._index:
            from zarr.abc.store import SuffixByteRequest

            chunk, shards, _ = self.layout
            per_shard = shards[0] * (shards[1] // chunk[1])
            key = self._key(shard)
            raw = sync(
                (self.array.store_path / key).get(default_buffer_prototype(), SuffixByteRequest(16 * per_shard + 4))
            )
            if raw is None:
                return None
            index = np.frombuffer(raw.to_bytes(), dtype="<u8", count=2 * per_shard).reshape(shards[0], -1, 2)
            self._index[shard] = index
        return self._index[shard]

    def read(self, row: int, start: int, stop: int) -> np.ndarray:
        """``array[row, start:stop]``."""
        if self.layout is None:
            return self.array[row, start:stop]
        from zarr.abc.store import RangeByteRequest

        chunk, shards, codec = self.layout
        shard, local = divmod(row, shards[0])
        index = self._shard_index(shard)
        first, last = start // chunk[1], (stop - 1) // chunk[1]
        entries = None if index is None else index[local, first : last + 1]
        if entries is None or (entries == _EMPTY).any():
            return self.array[row, start:stop]
        key = self._key(shard)
        if self.folder is not None:  # a local store: plain reads, no event loop round trip
            fd = os.open(self.folder / self.array.store_path.path / key, os.O_RDONLY)
            try:
                chunks = [os.pread(fd, int(n), int(o)) for o, n in entries]
            finally:
                os.close(fd)
        else:
            path = self.array.store_path / key
            prototype = default_buffer_prototype()
            # the window's chunks, requested together (zarr's writer does not lay a row's chunks out in order)
            requests = [path.get(prototype, RangeByteRequest(int(o), int(o + n))) for o, n in entries]
            chunks = [c.to_bytes() for c in sync(_gather(requests))]
        dtype = self.array.dtype.newbyteorder("<")
        parts = [np.frombuffer(codec.decode(c), dtype=dtype) for c in chunks]
        values = np.concatenate(parts).reshape(-1, *self.array.shape[2:])
        offset = first * chunk[1]
        return values[start - offset : stop - offset]


async def _gather(requests):
    import asyncio

    return await asyncio.gather(*requests)
