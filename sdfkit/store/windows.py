"""Windows of sample arrays read straight from zarr v3 shards: a training loader's reads.

A window is ``array[row, start:stop]`` of a shape-sharded array whose rows are chunked along their
samples (:mod:`sdfkit.store.shards` lays them out). The reader plans the byte ranges holding it
from the shard's index and reads exactly those: ``preadv`` into place on a local disk, range
requests on object storage (neighbours coalesced, all of a batch's in one round).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numcodecs
import numpy as np
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import _get_loop, sync  # zarr's I/O thread: requests sent without waiting

from sdfkit.store.remote import s3_reading_options
from sdfkit.store.shards import ABSENT, on_local_disk, sharding

__all__ = [
    "COALESCE_GAP",
    "WindowReader",
    "read_windows_together",
    "load_indexes_together",
    "preload_together",
    "request_windows_together",
    "PendingWindows",
    "ReadAhead",
]

COALESCE_GAP = 1 << 20
"""Bytes of unwanted data a request on object storage may carry to join two wanted ranges: one
request fewer costs a round trip (20-50 ms to a remote region), a megabyte about 2-10 ms to
transfer."""


class WindowReader:
    """Windows of rows of a shape-sharded array whose rows are chunked along the sample axis
    (``format.WINDOW_SAMPLES``), read straight from the shard's bytes: the shard's index once
    per shard (kept), then byte ranges. Raw chunks (no compressor) are read for exactly the
    window's bytes; compressed chunks whole, Blosc-decoded here. :meth:`read_many` plans the
    ranges of many windows together: on object storage, ranges of one shard that follow each
    other, or lie less than ``gap`` bytes apart, are one request (the windows of a shard's rows
    at one chunk, format v2), and all requests go out at once. zarr's own partial read goes
    through its async pipeline chunk by chunk (measured: about 25 ms for a 16,384-sample window of
    a 250,000 x 3 row, against under 2 ms here). Any other layout, and chunks that are absent
    (failed rows, shards not written yet), are read through plain zarr.

    A reader pickles without its zarr handle but with its layout and the shard indexes it has
    read (:meth:`load_indexes`): a ``DataLoader`` worker given one reads a local store with
    plain file reads, opening nothing (it opens the array only for what plain zarr must read).
    """

    gap = COALESCE_GAP
    """Unwanted bytes a request on object storage may carry to join two wanted ranges."""

    def __init__(self, array, url: str | None = None, *, storage_options=None, backend: str = "auto"):
        """array : an open zarr array; url : where it is (how another process opens it again,
        with fsspec's ``storage_options``), default its local folder; backend : what reads the
        windows of a remote store (:func:`sdfkit.store.remote.range_store`)."""
        self.array, self._pid = array, os.getpid()
        self.storage_options, self.backend = storage_options, backend
        self._ranges_from = None  # (pid, obstore-backed store or None) of the process reading
        self.layout = None
        self.raw = False  # chunks stored as plain bytes (no compressor): copied, not decoded
        try:
            found = sharding(array)
            if found is not None:
                self.layout = (tuple(found[0].chunk_shape), tuple(array.shards))
                self.raw = found[1] is None
                shards = -(-array.shape[0] // array.shards[0])
                zeros = (0,) * (array.ndim - 1)
                self._keys = [array.metadata.encode_chunk_key((k, *zeros)) for k in range(shards)]
        except AttributeError:  # zarr's internals moved: plain zarr reads, only slower
            self.layout = None
        self.shape, self.dtype = tuple(array.shape), array.dtype.newbyteorder("<")
        if self.layout is not None:  # the bytes of one chunk, decoded
            self._chunk_bytes = int(np.prod(self.layout[0][1:], dtype=np.int64)) * self.dtype.itemsize
        self._index: dict[int, np.ndarray] = {}
        self._fds: dict[str, int] = {}  # shard key -> open file, of process _fds_pid
        self._fds_pid = os.getpid()
        local = on_local_disk(array)
        self.folder = Path(array.store_path.store.root) / array.store_path.path if local else None
        self.url = url if url is not None else (str(self.folder) if local else None)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["array"] = None  # zarr handles are not shared across processes: reopened on need
        state["_fds"], state["_fds_pid"] = {}, None  # nor open files
        state["_ranges_from"] = None  # nor obstore's handles
        return state

    def _array(self):
        """The zarr array, opened again in a process other than the one that opened it (forked
        DataLoader workers inherit handles bound to their parent's event loop)."""
        if self.array is None or self._pid != os.getpid():
            import zarr

            self._pid = os.getpid()
            if self.url is None:
                raise RuntimeError("this window reader was made without a url: it cannot reopen its array")
            options = self.storage_options if "://" in self.url else None
            if self.url.startswith("s3://"):
                options = s3_reading_options(options)
            self.array = zarr.open_array(self.url, mode="r", storage_options=options)
        return self.array

    def load_indexes(self, shards) -> None:
        """Read the index of each of ``shards`` not read yet (requested together); a shard not
        written yet is asked again next time."""
        load_indexes_together([(self, shards)])

    def _missing_indexes(self, shards) -> list[int]:
        if self.layout is None:
            return []
        return sorted({int(s) for s in shards} - set(self._index))

    def _index_size(self) -> tuple[int, int]:
        """(index entries per shard, bytes of a shard's index with its checksum)."""
        chunk, layout_shards = self.layout
        per_shard = layout_shards[0] * (layout_shards[1] // chunk[1])
        return per_shard, 16 * per_shard + 4

    def _read_local_indexes(self, wanted) -> list:
        size = self._index_size()[1]
        raw = []
        for shard in wanted:
            try:
                with open(self.folder / self._keys[shard], "rb") as f:
                    f.seek(-size, os.SEEK_END)
                    raw.append(f.read(size))
            except (FileNotFoundError, OSError):
                raw.append(None)
        return raw

    def _index_requests(self, wanted) -> list:
        from zarr.abc.store import SuffixByteRequest

        prototype = default_buffer_prototype()
        size = self._index_size()[1]
        return [(self._array().store_path / self._keys[s]).get(prototype, SuffixByteRequest(size)) for s in wanted]

    def _take_indexes(self, wanted, raw) -> None:
        per_shard, size = self._index_size()
        for shard, data in zip(wanted, raw, strict=True):
            if data is not None and len(data) == size:
                index = np.frombuffer(data, dtype="<u8", count=2 * per_shard)
                self._index[shard] = index.reshape(self.layout[1][0], -1, 2)

    def preload(self, rows) -> None:
        """Read the indexes of the shards holding ``rows`` (before the reader goes to workers)."""
        preload_together([self], rows)

    def read(self, row: int, start: int, stop: int) -> np.ndarray:
        """``array[row, start:stop]``."""
        return self.read_many([(row, start, stop)])[0]

    def read_many(self, windows, *, views: bool = False) -> list[np.ndarray]:
        """``array[row, start:stop]`` for each ``(row, start, stop)`` of ``windows``: the bytes of
        all of them requested at once (one round of concurrent range requests on a remote store,
        neighbouring ranges coalesced), then copied or decoded into place. ``views``: a window of
        a remote store's raw chunks that one answer holds whole comes back as a read-only view of
        the answer's memory, not copied (for a reader that takes its samples from it anyway)."""
        return read_windows_together([(self, windows)], views=views)[0]

    def _plan(self, windows):
        """(windows as ints, per window its (first range, count) or None for plain zarr, the byte
        ranges), the shard indexes the windows need read first."""
        windows = [(int(r), int(a), int(b)) for r, a, b in windows]
        plans, ranges = [], []
        if self.layout is None:
            return windows, [None] * len(windows), ranges
        self.load_indexes(row // self.layout[1][0] for row, _, _ in windows)
        for window in windows:
            found = self._ranges(*window)
            plans.append(None if found is None else (len(ranges), len(found)))
            ranges += found or []
        return windows, plans, ranges

    @property
    def _direct(self) -> bool:
        """Raw chunks on this machine: read straight into place, no bytes in between."""
        return self.raw and self.folder is not None

    def _assemble(self, windows, plans, ranges, data, *, views: bool) -> list[np.ndarray]:
        """The windows from their ranges' bytes (``data``; read here for :attr:`_direct`)."""
        out = []
        for (row, start, stop), plan in zip(windows, plans, strict=True):
            if plan is None:
                out.append(self._array()[row, start:stop])
                continue
            at, count = plan
            if self.raw and views and not self._direct and count == 1:  # the answer's bytes as they are
                out.append(np.frombuffer(data[at], dtype=self.dtype).reshape(stop - start, *self.shape[2:]))
            elif self.raw:  # exactly the window's samples, range after range
                values = np.empty((stop - start, *self.shape[2:]), dtype=self.dtype)
                flat = values.reshape(-1).view(np.uint8)
                if self._direct:
                    self._read_into(flat, ranges[at : at + count])
                else:
                    _copy_into(flat, data[at : at + count])
                out.append(values)
            else:  # whole chunks decoded into one buffer (even the one reaching past the row's end)
                width, step = self.layout[0][1], self._chunk_bytes
                values = np.empty((count * width, *self.shape[2:]), dtype=self.dtype)
                flat = values.reshape(-1).view(np.uint8)
                for k, piece in enumerate(data[at : at + count]):
                    _BLOSC.decode(piece, out=flat[k * step : (k + 1) * step])
                offset = start // width * width
                out.append(values[start - offset : stop - offset])
        return out

    def _ranges(self, row: int, start: int, stop: int) -> list[tuple[str, int, int]] | None:
        """The byte ranges ``(key, offset, nbytes)`` holding ``array[row, start:stop]``: exactly
        its bytes for raw chunks, whole chunks otherwise; None when a chunk is absent or its
        shard's index is not known (plain zarr reads it)."""
        chunk, shards = self.layout
        shard, local = divmod(row, shards[0])
        index = self._index.get(shard)
        if index is None:
            return None
        width = chunk[1]
        first, last = start // width, (stop - 1) // width
        entries = index[local, first : last + 1].tolist()
        if any(o == ABSENT for o, _ in entries):
            return None
        key = self._keys[shard]
        if not self.raw:
            return [(key, o, n) for o, n in entries]
        sample = self._chunk_bytes // width
        ranges = []
        for column, (offset, _) in enumerate(entries, start=first):
            begin = max(start, column * width) - column * width
            end = min(stop, (column + 1) * width) - column * width
            ranges.append((key, offset + begin * sample, (end - begin) * sample))
        return ranges

    def _coalesced(self, ranges):
        """Ranges of one key that follow each other or lie less than :attr:`gap` apart (a local
        store: only those that follow each other) as one request: (requests, members)."""
        return _coalesce(ranges, 0 if self.folder is not None else self.gap)

    def _fetch(self, ranges) -> list:
        """The bytes of each ``(key, offset, nbytes)`` of a local store (views of one read per
        run of ranges that follow each other)."""
        merged, members = self._coalesced(ranges)
        answers = [os.pread(self._fd(key), nbytes, offset) for key, offset, nbytes in merged]
        return _pieces(ranges, answers, members)

    def _requests(self, merged) -> list:
        """Awaitables of the bytes of each ``(key, offset, nbytes)`` of a remote store."""
        from zarr.abc.store import RangeByteRequest

        prototype = default_buffer_prototype()
        store = self._range_store()
        if store is None:
            root = self._array().store_path
            return [(root / key).get(prototype, RangeByteRequest(o, o + n)) for key, o, n in merged]
        return [store.get(key, prototype, RangeByteRequest(o, o + n)) for key, o, n in merged]

    def _range_store(self):
        """This process's store for a remote array's window reads (obstore- or fsspec-backed,
        opened without reading metadata), or None (through the zarr array's own store)."""
        if self.url is None or "://" not in self.url:
            return None
        if self._ranges_from is None or self._ranges_from[0] != os.getpid():
            from sdfkit.store.remote import range_store

            store = range_store(self.url, storage_options=self.storage_options, backend=self.backend)
            self._ranges_from = (os.getpid(), store)
        return self._ranges_from[1]

    def _read_into(self, flat: np.ndarray, ranges) -> None:
        """Raw chunks of a local store straight into ``flat`` (uint8), one after the other: one
        read per run of consecutive ranges, no bytes object in between."""
        at = 0
        for key, offset, nbytes in _runs(ranges)[0]:
            got = os.preadv(self._fd(key), [memoryview(flat[at : at + nbytes])], offset)
            if got != nbytes:
                raise OSError(f"{self.folder / key}: {got} of {nbytes} bytes at {offset}: the shard is truncated")
            at += nbytes

    def _fd(self, key: str) -> int:
        """An open file of a shard of a local store, kept (a few dozen at most) by this process."""
        if self._fds_pid != os.getpid():  # the parent's (a forked worker): each process opens its own
            self._fds, self._fds_pid = {}, os.getpid()
        fd = self._fds.get(key)
        if fd is None:
            if len(self._fds) >= _OPEN_SHARDS:
                self.close()
            fd = self._fds[key] = os.open(self.folder / key, os.O_RDONLY)
        return fd

    def close(self) -> None:
        """Close the shard files this process keeps open."""
        if self._fds_pid == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = {}

    def __del__(self):
        try:
            self.close()
        except (OSError, AttributeError, TypeError):  # interpreter shutting down
            pass


def _runs(ranges):
    """Byte ranges ``(key, offset, nbytes)`` merged where one follows the other in one key:
    (merged ranges, and per merged range the sizes of the ranges it holds)."""
    merged, parts = [], []
    for key, offset, nbytes in ranges:
        if merged and merged[-1][0] == key and merged[-1][1] + merged[-1][2] == offset:
            merged[-1][2] += nbytes
            parts[-1].append(nbytes)
        else:
            merged.append([key, offset, nbytes])
            parts.append([nbytes])
    return [tuple(m) for m in merged], parts


def _coalesce(ranges, gap: int):
    """Byte ranges ``(key, offset, nbytes)`` gathered into requests: those of one key that
    overlap, follow each other or lie at most ``gap`` bytes apart are one. Returns (requests as
    ``(key, offset, nbytes)``, per request ``(its offset, the positions in ranges it holds)``)."""
    order = sorted(range(len(ranges)), key=lambda k: (ranges[k][0], ranges[k][1]))
    merged, members = [], []
    for k in order:
        key, offset, nbytes = ranges[k]
        if merged and merged[-1][0] == key and offset <= merged[-1][1] + merged[-1][2] + gap:
            last = merged[-1]
            last[2] = max(last[2], offset + nbytes - last[1])
            members[-1][1].append(k)
        else:
            merged.append([key, offset, nbytes])
            members.append((offset, [k]))
    return [tuple(m) for m in merged], members


def load_indexes_together(requests) -> None:
    """:meth:`WindowReader.load_indexes` for each ``(reader, shards)`` of ``requests``: on object
    storage every index not read yet requested in one round, across the readers."""
    wanted = [(reader, reader._missing_indexes(shards)) for reader, shards in requests]
    remote = [(reader, shards) for reader, shards in wanted if shards and reader.folder is None]
    for reader, shards in wanted:
        if shards and reader.folder is not None:
            reader._take_indexes(shards, reader._read_local_indexes(shards))
    if not remote:
        return
    coroutines = [c for reader, shards in remote for c in reader._index_requests(shards)]
    answers = [None if a is None else a.to_bytes() for a in sync(_gather(coroutines))]
    for reader, shards in remote:
        reader._take_indexes(shards, answers[: len(shards)])
        answers = answers[len(shards) :]


def preload_together(readers, rows) -> None:
    """Read the indexes of the shards holding ``rows`` for each of ``readers`` (before they go to
    workers): one round on object storage."""
    rows = np.asarray(rows, dtype=np.int64)
    load_indexes_together([(r, np.unique(rows // r.layout[1][0])) for r in readers if r.layout is not None])


def read_windows_together(requests, *, views: bool = False) -> list[list[np.ndarray]]:
    """:meth:`WindowReader.read_many` of each ``(reader, windows)`` of ``requests`` (the arrays of
    one batch: points and values), every remote range of all of them requested in one round, so
    that a batch waits for one round trip, not one per array."""
    return request_windows_together(requests, views=views).result()


def request_windows_together(requests, *, views: bool = False) -> PendingWindows:
    """:func:`read_windows_together` without waiting: the remote ranges requested (on zarr's I/O
    thread), local ones read; :meth:`PendingWindows.result` waits for the answers and assembles."""
    planned = [reader._plan(windows) for reader, windows in requests]
    data = [[] for _ in requests]
    remote = []  # (position, merged requests, members) of the readers of remote stores
    for k, ((reader, _), (_, _, ranges)) in enumerate(zip(requests, planned, strict=True)):
        if not ranges or reader._direct:
            continue
        if reader.folder is not None:
            data[k] = reader._fetch(ranges)
        else:
            remote.append((k, *reader._coalesced(ranges)))
    answers = None
    if remote:
        awaitables = [a for k, merged, _ in remote for a in requests[k][0]._requests(merged)]
        answers = asyncio.run_coroutine_threadsafe(_gather(awaitables), _get_loop())
    return PendingWindows([reader for reader, _ in requests], planned, data, remote, answers, views)


class PendingWindows:
    """Windows requested by :func:`request_windows_together`, not yet assembled."""

    def __init__(self, readers, planned, data, remote, answers, views: bool):
        self._readers, self._planned, self._data = readers, planned, data
        self._remote, self._answers, self._views = remote, answers, views

    def wait(self) -> None:
        """Until the remote answers are here (not assembled)."""
        if self._answers is not None:
            self._answers.result()

    def result(self) -> list[list[np.ndarray]]:
        """Per request, its windows (waits for the remote answers)."""
        data = self._data
        if self._answers is not None:
            # the answers' memory as is (uint8 arrays), not copied again
            answers = [c.as_numpy_array() for c in self._answers.result()]
            at = 0
            for k, merged, members in self._remote:
                data[k] = _pieces(self._planned[k][2], answers[at : at + len(merged)], members)
                at += len(merged)
        return [
            reader._assemble(windows, plans, ranges, pieces, views=self._views)
            for reader, (windows, plans, ranges), pieces in zip(self._readers, self._planned, data, strict=True)
        ]


class ReadAhead:
    """The windows of a loader's next batches requested before it asks for them: a process that
    is handed batch ``k`` of an order it knows requests batches ``k + step``, ``k + 2 step``, ...
    (``depth`` of them; ``step``: the loader's workers, which take the batches in turn). A batch
    not found in the order (the order was not the one predicted) reads nothing ahead."""

    def __init__(self, order, size: int, *, step: int, depth: int):
        """order : the indices in the loader's order (its sampler's), in batches of ``size``."""
        order = [int(i) for i in order]
        self.batches = [tuple(order[k : k + size]) for k in range(0, len(order), size)]
        self._at = {batch: k for k, batch in enumerate(self.batches)}
        self.step, self.depth = step, depth
        self._pending: dict = {}  # key -> PendingWindows, oldest first

    def following(self, batch) -> list[tuple[int, ...]]:
        """The batches this process will be handed after ``batch`` (up to ``depth``), or none."""
        k = self._at.get(tuple(int(i) for i in batch))
        if k is None:
            return []
        later = (k + self.step * j for j in range(1, self.depth + 1))
        return [self.batches[n] for n in later if n < len(self.batches)]

    def request(self, key, start) -> None:
        """``start()`` (a :class:`PendingWindows`) kept under ``key``, unless requested already;
        the oldest dropped past twice ``depth`` (predictions that never came)."""
        if key not in self._pending:
            self._pending[key] = start()
            while len(self._pending) > 2 * self.depth + 1:
                self._pending.pop(next(iter(self._pending)))

    def take(self, key) -> PendingWindows | None:
        """The windows requested under ``key``, if they were."""
        return self._pending.pop(key, None)


def _pieces(ranges, answers, members) -> list:
    """Each ``(key, offset, nbytes)`` of ``ranges`` as a view of the answer holding it."""
    out = [None] * len(ranges)
    for answer, (offset, wanted) in zip(answers, members, strict=True):
        view = memoryview(answer)
        for k in wanted:
            _, at, size = ranges[k]
            out[k] = view[at - offset : at - offset + size]
    return out


def _copy_into(flat: np.ndarray, pieces) -> None:
    """The bytes of ``pieces`` one after the other into ``flat`` (uint8)."""
    at = 0
    for piece in pieces:
        flat[at : at + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        at += len(piece)


_OPEN_SHARDS = 64
"""Shard files a reader keeps open per process (all closed and reopened past this)."""

_BLOSC = numcodecs.Blosc()
"""Blosc decodes whatever compressor and shuffle a chunk's header names."""


async def _gather(requests):
    return await asyncio.gather(*requests)
