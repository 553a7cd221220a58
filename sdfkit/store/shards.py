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
checks that the bytes equal those zarr's own codec writes). This module and its reader of windows
(:mod:`sdfkit.store.windows`) are the only ones that touch zarr's internals (``metadata.codecs``,
``store_path``, ``zarr.core``); ``benchmarks/shard_writer.py`` measures what it gains.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from google_crc32c import value as crc32c
from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec, VLenUTF8Codec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

__all__ = [
    "can_encode",
    "write_shard_block",
    "ABSENT",
    "sharding",
    "read_whole",
    "read_together",
    "missing_members",
    "on_local_disk",
]

ABSENT = 2**64 - 1
"""The offset and size the shard index gives an absent chunk."""


def _layout(array):
    """(inner chunk shape, inner Blosc codec or None for raw bytes) of a shape-sharded array, or
    None (zarr's own writer then writes it: slower, never wrong)."""
    try:
        return _inspect(array)
    except AttributeError:  # zarr's internals moved: tests/test_store.py says so, users lose speed only
        return None


def sharding(array):
    """(sharding codec, inner Blosc codec or None for raw bytes) of an array sharded with the
    index at the end, one shape per chunk row and inner codecs little-endian bytes, then Blosc or
    nothing; None for any other array."""
    codecs = array.metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sharding = codecs[0]
    inner = sharding.codecs
    if (
        sharding.index_location.value != "end"
        or not 1 <= len(inner) <= 2
        or not isinstance(inner[0], BytesCodec)
        or (len(inner) == 2 and not isinstance(inner[1], BloscCodec))
        or (inner[0].endian is not None and inner[0].endian.value != "little")
    ):
        return None
    chunk = tuple(sharding.chunk_shape)
    if chunk[0] != 1 or len(chunk) < 2 or chunk[2:] != tuple(array.shape[2:]):
        return None
    return sharding, (inner[1] if len(inner) == 2 else None)


def _inspect(array):
    found = sharding(array)
    if found is None:
        return None
    chunk, shard = tuple(found[0].chunk_shape), tuple(array.shards)
    if shard[2:] != chunk[2:]:
        return None
    # whole rows, or rows chunked along their samples (a shard then spans the row: format v1's
    # windowed arrays)
    if chunk[1] != array.shape[1] and (shard[1] % chunk[1] or shard[1] < array.shape[1]):
        return None
    return chunk, found[1]


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

    Rows chunked along their samples are written column by column (format v2): chunk 0 of every
    row, then chunk 1 of every row, and so on, so that the same window of a shard's rows is one
    byte range (format v1 wrote each row's chunks one after the other; zarr's own codec
    interleaves them; readers go by the index, which allows any order). Each chunk's bytes are
    those zarr writes (tests/test_store.py); the last chunk of a row is padded with the fill
    value, as zarr pads it.
    """
    chunk, codec = _layout(array)
    shard_rows, width = array.shards[0], chunk[1]
    columns = array.shards[1] // width  # 1 for whole rows
    rows = len(block)
    block = np.ascontiguousarray(block, dtype=array.dtype.newbyteorder("<"))
    compressor = _blosc(codec, block.dtype.itemsize) if codec is not None else None
    index = np.full((shard_rows * columns, 2), ABSENT, dtype="<u8")
    pieces, offset = [], 0
    for column, row in ((c, r) for c in range(columns) for r in range(rows)):
        if present is None or present[row]:
            part = block[row, column * width : (column + 1) * width] if columns > 1 else block[row]
            if len(part) < width:  # the row's last chunk, reaching past its end
                padded = np.full((width, *part.shape[1:]), array.fill_value, dtype=block.dtype)
                padded[: len(part)] = part
                part = padded
            data = compressor.encode(part) if compressor is not None else part.tobytes()
            pieces.append(data)
            index[row * columns + column] = (offset, len(data))
            offset += len(data)
    index_bytes = index.tobytes()
    pieces.append(index_bytes)
    pieces.append(np.uint32(crc32c(index_bytes)).astype("<u4").tobytes())
    key = array.metadata.encode_chunk_key((shard,) + (0,) * (array.ndim - 1))
    buffer = default_buffer_prototype().buffer.from_bytes(b"".join(pieces))
    sync((array.store_path / key).set(buffer))  # any zarr store: local, fsspec (s3://, gs://), memory


def on_local_disk(node) -> bool:
    """Whether a zarr group or array lives in a folder of this machine."""
    return type(getattr(node.store_path, "store", None)).__name__ == "LocalStore"


def read_together(group, names) -> dict[str, np.ndarray | None]:
    """Whole arrays of a group, all opened at once, then all read at once (two round trips on
    object storage, not two per array and one per chunk); None for one that cannot be read."""
    source = group._async_group  # zarr's async handle of the same group

    async def read_all():
        async def one(name):
            array = await source.getitem(name)
            return await array.getitem(slice(None))

        return await asyncio.gather(*(one(n) for n in names), return_exceptions=True)

    values = sync(read_all())
    return {n: None if isinstance(v, BaseException) else np.asarray(v) for n, v in zip(names, values, strict=True)}


def open_together(group, names) -> dict:
    """Arrays of a group by name, their metadata all read at once (one round trip on object
    storage, not one per array)."""

    async def open_all():
        return await asyncio.gather(*(group._async_group.getitem(n) for n in names))

    return {n: zarr.Array(a) for n, a in zip(names, sync(open_all()), strict=True)}


def missing_members(group, names) -> list[str]:
    """The ``names`` a group does not hold, asked all at once."""

    async def ask():
        return await asyncio.gather(*(group._async_group.contains(n) for n in names))

    return [n for n, held in zip(names, sync(ask()), strict=True) if not held]


def read_whole(array) -> np.ndarray | None:
    """The whole of a per-object array (one row per shape: ``meta/*``, ``ledger/*``, ``outer/*``,
    small vectors such as ``sdf/rule_share``) on a local disk, read chunk file by chunk file and
    decoded here: a store of n shapes holds such an array in n / 8 files, and zarr's pipeline
    spends about 0.2 ms on each (1.5 s for the 26 ledger columns of 2,000 objects, measured),
    this a few microseconds. Layouts read: chunks along the first axis with whole rows, codecs
    little-endian bytes then Blosc, or vlen-utf8 then Zstd (strings), or sharded with one row per
    inner chunk (bytes, then Blosc or nothing). None for anything else, or off a local disk: the
    caller reads through zarr. Absent chunks read as the fill value. tests/test_store.py checks
    every array of a store against zarr's own read."""
    try:
        if not on_local_disk(array) or array.ndim not in (1, 2):
            return None
        folder = Path(array.store_path.store.root) / array.store_path.path
        chunk = tuple(array.chunks)
        if array.ndim == 2 and chunk[1] != array.shape[1]:
            return None
        sharded = sharding(array)
        codecs = array.metadata.codecs
        fill = array.metadata.fill_value
    except AttributeError:  # zarr's internals moved: plain zarr reads, only slower
        return None
    n = array.shape[0]
    rows = array.shards[0] if sharded is not None else chunk[0]
    if sharded is not None:
        decode = _sharded_decoder(array, sharded)
    elif len(codecs) == 2 and isinstance(codecs[0], BytesCodec) and isinstance(codecs[1], BloscCodec):
        if codecs[0].endian is not None and codecs[0].endian.value != "little":
            return None
        dtype = array.dtype.newbyteorder("<")

        def decode(raw):
            return np.frombuffer(numcodecs.Blosc().decode(raw), dtype=dtype).reshape((rows, *array.shape[1:]))

    elif len(codecs) == 2 and isinstance(codecs[0], VLenUTF8Codec) and isinstance(codecs[1], ZstdCodec):
        if array.ndim != 1:
            return None
        zstd, vlen = numcodecs.Zstd(), numcodecs.VLenUTF8()

        def decode(raw):
            return vlen.decode(zstd.decode(raw))

    else:
        return None
    strings = array.dtype.kind in "OTU"
    out = np.empty(array.shape, dtype=array.dtype)  # zarr's own dtype (strings: numpy's StringDType)
    out[...] = "" if strings and fill is None else fill
    zeros = (0,) * (array.ndim - 1)
    for k in range(-(-n // rows)):
        try:
            with open(folder / array.metadata.encode_chunk_key((k, *zeros)), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            continue
        try:
            block = decode(raw)
        except Exception:  # a torn chunk (a store without atomic writes): zarr's read says what it is
            return None
        stop = min(n, (k + 1) * rows)
        out[k * rows : stop] = block[: stop - k * rows]
    return out


def _sharded_decoder(array, sharded):
    """Decode a whole shard of one-row inner chunks (absent chunks: the fill value)."""
    codec, blosc = sharded
    inner = tuple(codec.chunk_shape)
    rows = array.shards[0]
    dtype = array.dtype.newbyteorder("<")
    fill = array.metadata.fill_value

    def decode(raw):
        count = rows * (array.shards[1] // inner[1])
        index = np.frombuffer(raw[-(16 * count + 4) : -4], dtype="<u8").reshape(count, 2)
        block = np.full((rows, *array.shape[1:]), fill, dtype=array.dtype)
        for r, (offset, size) in enumerate(index):
            if offset == ABSENT:
                continue
            data = raw[int(offset) : int(offset + size)]
            values = np.frombuffer(numcodecs.Blosc().decode(data) if blosc is not None else data, dtype=dtype)
            block[r] = values.reshape(inner[1:])
        return block

    return decode
