"""PyTorch datasets that stream samples from a sdfkit store, local or remote (``s3://``).

``import sdfkit.torch`` needs torch; the rest of sdfkit does not. A store holds each shape's
samples shuffled (docs/format.md), so any contiguous window of a row is a fair random subset: an
item reads one window per sample array, never the whole row. Each window's start is drawn per
item: from ``(seed, epoch, row)`` after :meth:`SampleWindows.set_epoch` (the same windows
whichever worker reads them), otherwise from torch's generator, which a ``DataLoader`` reseeds in
every worker every epoch (new windows each epoch, the same ones under ``torch.manual_seed``).

Every process opens its own store handle on first use (zarr handles are not shared across
``fork``/``spawn``), so ``DataLoader(num_workers=N)`` and torchrun need nothing more. Shapes that
failed are never listed; a store still being written can be read with ``allow_incomplete=True``:
its pending shapes are skipped, with a warning.

    >>> from sdfkit.torch import DeepSDFSamples
    >>> data = DeepSDFSamples("chairs.zarr", split="train", subsample=16384)
    >>> loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=4)
    >>> for samples, indices in loader:  # samples (64, 16384, 4): x, y, z, sdf; half sdf <= 0
    ...     ...
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from sdfkit._epochs import SharedEpoch
from sdfkit.errors import InputError
from sdfkit.recipes.base import sample_set_arrays
from sdfkit.store.dataset import open_dataset
from sdfkit.store.format import STATUS_OK, STATUS_PENDING, contains_all, open_store
from sdfkit.store.shards import open_together
from sdfkit.store.state import StoreState
from sdfkit.store.windows import ReadAhead, WindowReader, preload_together, request_windows_together

__all__ = [
    "sample_set_arrays",
    "StoreShapes",
    "SampleWindows",
    "ShardOrderSampler",
    "DeepSDFSamples",
    "OccupancyPoints",
    "MNISTGrids",
    "sample_set_names",
]


def sample_set_names(
    store: str, sample_set: str, storage_options: dict | None = None, *, group=None
) -> tuple[tuple[str, ...], str]:
    """(arrays, recipe) of a sample set of ``store`` (``group``: the store already opened); a
    one-line error when it has none."""
    group = open_store(str(store), storage_options=storage_options) if group is None else group
    names, recipe = sample_set_arrays(StoreState.read(group).as_dict(), sample_set)
    if not names:
        raise InputError(f"{store}: has no {sample_set} samples; make the store with --recipe {recipe}")
    return names, recipe


class StoreShapes(torch.utils.data.Dataset):
    """The ok shapes of a store, one item per shape (the base of this module's datasets).

    store : path or URL of a sdfkit store
    arrays : the arrays items read (their absence is a one-line error naming ``recipe``)
    split, ids : keep one split (or several) and/or these shape ids
    limit : keep the first ``limit`` shapes after the filters
    seed : with :meth:`set_epoch`, every random draw is a function of (seed, epoch, row)
    transform : called on each item before it is returned
    allow_incomplete : read a store whose run has not finished (its pending shapes are skipped)
    storage_options : fsspec's options for a remote store (credentials, an endpoint)
    backend : what reads the windows of a remote store: ``"auto"`` (obstore for s3://, gs://,
        az:// where installed and no storage_options are given; fsspec otherwise), ``"obstore"``
        or ``"fsspec"`` (:mod:`sdfkit.store.remote`)
    shard_order : the items of one shard read their windows at one position (drawn per shard, not
        per shape), so that on object storage a batch's items of one shard are one request per
        array; use with :class:`ShardOrderSampler`, which puts them in one batch
    recipe : the recipe that makes ``arrays``, named in the error when they are missing
    group : the store already opened by :func:`sdfkit.store.format.open_store` (not read again)
    """

    kind: str | None = None
    """The store kind items need (``mnist``, ``shapenet``), or None for any."""

    def __init__(
        self,
        store: str,
        arrays: Sequence[str],
        *,
        split: str | Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
        seed: int = 0,
        transform: Callable | None = None,
        allow_incomplete: bool = False,
        storage_options: dict | None = None,
        backend: str = "auto",
        shard_order: bool = False,
        recipe: str | None = None,
        group=None,
    ):
        self.url = str(store)
        self.shard_order = shard_order
        self.storage_options, self.backend = storage_options, backend
        dataset = open_dataset(
            self.url,
            split=split,
            include_failed=True,
            allow_incomplete=allow_incomplete,
            storage_options=storage_options,
            group=group,
        )
        if self.kind is not None and dataset.kind != self.kind:
            raise InputError(f"{self.url}: a {dataset.kind!r} store; {type(self).__name__} reads a {self.kind!r} store")
        self._handle: tuple | None = (os.getpid(), dataset.group, {}, {})  # this process's, reused
        state = StoreState.read(dataset.group)
        held = set(state.arrays)  # open_dataset checked they exist
        missing = [n for n in arrays if n not in held] if held else contains_all(dataset.group, arrays)
        if missing:
            raise InputError(
                f"{self.url}: has no {missing[0]}; make the store with --recipe {recipe}"
                if recipe
                else f"{self.url}: has no array {missing[0]}"
            )
        status = dataset.meta("status")
        pending = int((status == STATUS_PENDING).sum())
        if pending:
            warnings.warn(
                f"{self.url}: {pending} shapes are still pending (the store is being written): skipped", stacklevel=3
            )
        keep = status == STATUS_OK
        if ids is not None:
            wanted = set(ids)
            keep &= np.isin(np.asarray(dataset.ids), list(wanted))
            absent = wanted - set(np.asarray(dataset.ids)[keep])
            if absent:
                raise InputError(f"{self.url}: no ok shape with id {sorted(absent)[0]!r} ({len(absent)} ids not found)")
        if limit is not None:
            keep &= np.cumsum(keep) <= limit
        self.rows = np.asarray(dataset.rows)[keep]
        self.ids = [i for i, k in zip(dataset.ids, keep, strict=True) if k]
        self.categories = [str(c) for c, k in zip(dataset.meta("category"), keep, strict=True) if k]
        self.labels = [int(v) for v in np.asarray(dataset.meta("label"))[keep]]
        self._handle[2].update(open_together(dataset.group, arrays))  # on object storage: one round
        self.shape_of = {name: tuple(self.array(name).shape[1:]) for name in arrays}
        self.shard_rows = state.shard_size
        self.seed = seed
        self.transform = transform
        self._epoch = SharedEpoch()  # set_epoch reaches workers that outlive an epoch too
        self._readers: dict = {}
        preload_together([self.reader(name) for name in arrays], self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def epoch(self) -> int | None:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Windows from (seed, epoch, row) from now on, in every worker (persistent ones too)."""
        self._epoch.set(int(epoch))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"] = None  # each process opens its own
        return state

    @property
    def group(self):
        """This process's handle on the store (opened on first use in each process)."""
        return self._open()[0]

    def array(self, name: str):
        """This process's handle on one array (its metadata read once, not per item)."""
        group, arrays, _ = self._open()
        if name not in arrays:
            arrays[name] = group[name]
        return arrays[name]

    def read_window(self, name: str, row: int, start: int, stop: int) -> np.ndarray:
        """``array[row, start:stop]``, through this process's window reader of the array."""
        return self.read_windows(name, [(row, start, stop)])[0]

    def read_windows(self, name: str, windows) -> list[np.ndarray]:
        """``array[row, start:stop]`` for each ``(row, start, stop)``: their bytes requested
        together (the read-ahead of a batch), through this process's window reader of the array."""
        return self.reader(name).read_many(windows)

    def reader(self, name: str):
        """The window reader of one array (made once, sent to workers with the dataset, its shard
        indexes included: a worker reading a local store opens nothing)."""
        if name not in self._readers:
            url = f"{self.url.rstrip('/')}/{name}"
            self._readers[name] = WindowReader(
                self.array(name), url=url, storage_options=self.storage_options, backend=self.backend
            )
        return self._readers[name]

    def _open(self):
        pid = os.getpid()
        if self._handle is None or self._handle[0] != pid:
            self._handle = (pid, open_store(self.url, storage_options=self.storage_options), {}, {})
        return self._handle[1:]

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} shapes")

    def __getitem__(self, index: int):
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list:
        """The items of a batch: a ``DataLoader`` with automatic batching hands each worker a
        batch's indices here, so the worker requests all of the batch's windows at once."""
        raise NotImplementedError

    def generator(self, index: int, stream: int = 0) -> torch.Generator | None:
        """The torch generator of item ``index``'s draws: from (seed, epoch, row, stream) after
        :meth:`set_epoch`; otherwise None (torch's, which a DataLoader reseeds per worker)."""
        if self.epoch is None:
            return None
        return torch.Generator().manual_seed(_mix(self.draw(index, stream)) >> 2)  # not the window's draw

    def draw(self, index: int, stream: int = 0) -> int:
        """A 64-bit integer that is a function of (seed, epoch, row of item ``index``, stream):
        splitmix64 over the four (a numpy generator per item costs 50 us; this, 2). With
        ``shard_order``, stream 0 (the window) is drawn per shard: the row's shard stands for it."""
        key = -1 - self.shard(index) if self.shard_order and stream == 0 else int(self.rows[index])
        return _mix(self.seed, self.epoch, key, stream)

    def shard(self, index: int) -> int:
        """The shard holding item ``index``'s row."""
        return int(self.rows[index]) // self.shard_rows

    def read_rows(self, name: str, indices: Sequence[int] | None = None) -> list[np.ndarray]:
        """Whole rows of one array for items ``indices`` (default all), read together."""
        indices = range(len(self)) if indices is None else indices
        length = self.shape_of[name][0]
        return self.read_windows(name, [(int(self.rows[i]), 0, length) for i in indices])


class SampleWindows(StoreShapes):
    """One item per shape: a random window of ``window`` samples of a sample set, as tensors.

    sample_set : a sample set of the store (``sdf``, ``surface``, ``sdf_test``, ``occnet``,
        ``ifnet_0.01``, ...: the ``sample_set`` of its arrays' specs; the recipe made them)
    extra : arrays read whole per item (e.g. ``"norm/offset"``)
    seed : with :meth:`set_epoch`, windows are a function of (seed, epoch, row)
    The other arguments: :class:`StoreShapes`.

    An item: ``{"index", "row", "id", <array name>: tensor, ...}``; ``index`` is the item's
    position in this dataset (DeepSDF's latent-code index), ``row`` its row in the store.
    """

    def __init__(
        self, store: str, sample_set: str = "sdf", *, window: int = 16384, extra: Sequence[str] = (), **kwargs
    ):
        group = open_store(str(store), storage_options=kwargs.get("storage_options"))  # once: names, then shapes
        self.names, recipe = sample_set_names(store, sample_set, group=group)
        super().__init__(store, self.names, recipe=recipe, group=group, **kwargs)
        missing = [n for n in extra if n not in self.group]
        if missing:
            raise InputError(f"{self.url}: has no array {missing[0]}")
        self.length = int(self.shape_of[self.names[0]][0])
        if not 0 < window <= self.length:
            raise InputError(f"window must be between 1 and the {self.length} samples per shape, not {window}")
        self.window = window
        self.extra = tuple(extra)
        self._order = None  # (sampler, batch size, depth) of read_ahead
        self._ahead = None  # (pid, epoch, ReadAhead) of the process reading

    def read_ahead(self, sampler, batch_size: int, *, depth: int = 1) -> None:
        """On object storage, request the windows of the next ``depth`` batches a worker will be
        handed while it reads one (``sampler``, ``batch_size``: the ``DataLoader``'s, without
        ``drop_last``). Each worker iterates a copy of the sampler to know the order: it must give
        the same order in every process (:class:`ShardOrderSampler` does; with a ``RandomSampler``
        nothing is read ahead), and windows come from :meth:`set_epoch`. A local store reads nothing ahead."""
        if depth < 0:
            raise InputError(f"read-ahead depth must be 0 or more, not {depth}")
        self._order = (sampler, int(batch_size), int(depth)) if depth else None
        self._ahead = None

    def __getstate__(self):
        state = super().__getstate__()
        state["_ahead"] = None  # requests in flight stay with their process
        return state

    def _read_ahead(self, indices: Sequence[int], length: int, views: bool) -> None:
        """Request the windows of the batches this process is handed after ``indices``."""
        if self._order is None or self.epoch is None or self.reader(self.names[0]).folder is not None:
            return  # off, windows not a function of (seed, epoch, row) (they could not be predicted), or local
        sampler, size, depth = self._order
        if self._ahead is None or self._ahead[:2] != (os.getpid(), self.epoch):
            workers = getattr(torch.utils.data.get_worker_info(), "num_workers", 1)
            order = copy.deepcopy(sampler)  # iterated here: the loader's own sampler is not advanced
            self._ahead = (os.getpid(), self.epoch, ReadAhead(order, size, step=workers, depth=depth))
        ahead = self._ahead[2]
        for batch in ahead.following(indices):
            windows = self._windows(batch, length, self.starts(batch, length))
            ahead.request((windows, views), lambda w=windows: self._request(w, views))

    def _windows(self, indices, length: int, starts) -> tuple:
        return tuple((int(self.rows[i]), a, a + length) for i, a in zip(indices, starts, strict=True))

    def _request(self, windows, views: bool):
        return request_windows_together([(self.reader(name), windows) for name in self.names], views=views)

    def start(self, index: int, length: int | None = None, *, total: int | None = None, stream: int = 0) -> int:
        """Where item ``index``'s window of ``length`` samples (default ``window``) of rows of
        ``total`` samples (default the sample set's) begins; ``stream`` separates the windows of
        other arrays of the same item."""
        span = (total or self.length) - (length or self.window) + 1
        if self.epoch is None:
            return int(torch.randint(span, ()).item())
        return self.draw(index, stream) % span  # the modulo's bias: below span / 2^64

    def read(self, index: int, length: int | None = None) -> dict[str, np.ndarray]:
        """The arrays of the sample set over item ``index``'s window: name -> numpy array."""
        return self.read_many([index], length)[0]

    def starts(self, indices: Sequence[int], length: int | None = None) -> list[int]:
        """:meth:`start` of each item; with ``shard_order``, one per shard among them (the
        first item's draw: the same for all of a shard's items after :meth:`set_epoch` anyway)."""
        if not self.shard_order:
            return [self.start(index, length) for index in indices]
        drawn: dict[int, int] = {}
        return [drawn.setdefault(self.shard(i), self.start(i, length)) for i in indices]

    def read_many(
        self,
        indices: Sequence[int],
        length: int | None = None,
        starts: Sequence[int] | None = None,
        *,
        views: bool = False,
        batch: bool = False,
    ) -> list[dict[str, np.ndarray]]:
        """:meth:`read` for many items (windows from ``starts``, default :meth:`starts`), every
        window's bytes of every array requested at once (``views``: :meth:`WindowReader.read_many`'s).
        ``batch``: the items are a batch the loader handed over: those of :meth:`read_ahead`'s
        next batches are requested too, once this batch's bytes are here."""
        length = length or self.window
        for index in indices:
            self._check(index)
        starts = self.starts(indices, length) if starts is None else starts
        windows = self._windows(indices, length, starts)
        pending = self._ahead[2].take((windows, views)) if self._ahead else None  # read ahead?
        pending = pending or self._request(windows, views)
        if batch:  # the next batches' bytes requested once these are here: they do not compete
            pending.wait()
            self._read_ahead(indices, length, views)
        columns = dict(zip(self.names, pending.result(), strict=True))
        return [{name: columns[name][k] for name in self.names} for k in range(len(windows))]

    def __getitems__(self, indices: Sequence[int]) -> list:
        batch = self.read_many(indices, batch=True)
        return [self._item(index, arrays) for index, arrays in zip(indices, batch, strict=True)]

    def _item(self, index: int, arrays: dict[str, np.ndarray]) -> dict:
        item = {"index": index, "row": int(self.rows[index]), "id": self.ids[index]}
        item |= {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
        for name in self.extra:
            item[name] = torch.from_numpy(np.asarray(self.array(name)[int(self.rows[index])]))
        return self.transform(item) if self.transform else item


class DeepSDFSamples(SampleWindows):
    """DeepSDF's ``SDFSamples``: items ``(samples, index)``, samples (subsample, 4) float32 rows of
    x, y, z, sdf in the normalized frame, ``index`` the shape's latent-code index.

    balanced (DeepSDF's ``unpack_sdf_samples``): half the rows with sdf > 0, then half with sdf <= 0
    (DeepSDF's pos/neg files), taken from a window ``window_factor`` times longer; where the
    window holds fewer of one sign than half, those it holds are drawn with replacement, as
    DeepSDF does from its files. Without ``balanced``: one window of ``subsample`` samples.

    The long window of a store chunked along its samples is whole chunks (two at the defaults,
    where a window starting anywhere spans three), and each sign's samples are taken in the
    window's order from a random position on, wrapping around: the stored samples are shuffled, so
    any positions are a fair pick, and a window this way decodes a third less.
    sample_set : ``sdf`` (training samples) or ``sdf_test`` (the deepsdf-test recipe).
    """

    def __init__(
        self,
        store: str,
        *,
        subsample: int = 16384,
        balanced: bool = True,
        window_factor: int = 2,
        sample_set: str = "sdf",
        **kwargs,
    ):
        if sample_set not in ("sdf", "sdf_test"):
            raise InputError(f"DeepSDFSamples reads 'sdf' or 'sdf_test', not {sample_set!r}")
        super().__init__(store, sample_set, window=subsample, **kwargs)
        self.balanced = balanced
        self.long = min(self.length, subsample * window_factor) if balanced else subsample
        layout = self.reader(self.names[0]).layout
        chunk = layout[0][1] if layout is not None else self.length
        blocks = -(-self.long // chunk) * chunk
        # whole chunks when the row holds them; otherwise windows start anywhere
        self.chunk = chunk if balanced and chunk < self.length and blocks <= self.length else None
        if self.chunk:
            self.long = blocks

    def start(self, index: int, length: int | None = None, *, total: int | None = None, stream: int = 0) -> int:
        if self.chunk and stream == 0 and (length or self.window) == self.long and total is None:
            return self.chunk * super().start(index, 1, total=(self.length - self.long) // self.chunk + 1)
        return super().start(index, length, total=total, stream=stream)

    def __getitems__(self, indices: Sequence[int]) -> list:
        starts = self.starts(indices, self.long)
        if self.reader(self.names[0]).folder is not None:
            # a local store: one window at a time, the next reusing the memory of the last (a
            # batch's long windows read at once are 25 MB of fresh pages: 20% slower, measured)
            return [
                self._item(index, self.read_many([index], self.long, [start])[0])
                for index, start in zip(indices, starts, strict=True)
            ]
        # object storage: the answers' memory as it came, samples taken from it into the items
        batch = self.read_many(indices, self.long, starts, views=True, batch=True)
        return [self._item(index, arrays) for index, arrays in zip(indices, batch, strict=True)]

    def _item(self, index: int, arrays: dict[str, np.ndarray]):
        points, values = arrays[self.names[0]], arrays[self.names[1]]
        rows = np.empty((self.window, 4), dtype=np.float32)
        if self.balanced:
            half = self.window // 2
            positive = values > 0
            # the window is shuffled: its first ``half`` of each sign (from ``at`` on) are a fair pick
            at = self.start(index, 1, total=len(values), stream=1) if self.chunk else 0
            pick = np.concatenate(
                [
                    self._take(_from(np.flatnonzero(positive), at), half, index, stream=2),
                    self._take(_from(np.flatnonzero(~positive), at), self.window - half, index, stream=3),
                ]
            )
            points, values = np.take(points, pick, axis=0), np.take(values, pick)  # faster than [pick]
        # column by column: numpy copies (n, 3) into rows of 4 element by element, a column at once
        for k in range(3):
            rows[:, k] = points[:, k]
        rows[:, 3] = values
        samples = torch.from_numpy(rows)
        if self.transform:
            samples = self.transform(samples)
        return samples, index

    def _take(self, rows: np.ndarray, count: int, index: int, *, stream: int) -> np.ndarray:
        """``count`` of the window positions ``rows``: the first ones (the window is shuffled), or
        drawn with replacement when it holds fewer, with the item's generator of ``stream`` (the
        same draws in every worker after :meth:`set_epoch`)."""
        if len(rows) >= count:
            return rows[:count]
        if len(rows) == 0:
            raise InputError(f"{self.url}: shape {self.ids[index]} has no sample of one sign in its window")
        return rows[torch.randint(len(rows), (count,), generator=self.generator(index, stream)).numpy()]


class ShardOrderSampler(torch.utils.data.Sampler[int]):
    """A dataset's items shard by shard: the shards in a random order, each shard's items in a
    random order after one another, so that a batch holds whole shards (``batch_size`` a multiple
    of the store's ``shard_size``, 8 for shapenet stores) and, with the dataset's
    ``shard_order=True``, reads each shard's windows in one request per array on object storage.

    The cost: the shapes of one shard (rows ``k * shard_size`` to ``(k + 1) * shard_size`` of
    the store, neighbours in the source's order, often one category) always share a batch; which
    shard joins which still changes every epoch. A shuffle of every item (``shuffle=True``) mixes
    all shapes.

    seed : the order is a function of (seed, epoch); :meth:`set_epoch` sets the epoch, otherwise
        each pass over the sampler takes the next one.

        >>> data = DeepSDFSamples("s3://bucket/chairs.zarr", shard_order=True)
        >>> loader = DataLoader(data, batch_size=64, sampler=ShardOrderSampler(data), num_workers=4)
    """

    def __init__(self, dataset: StoreShapes, *, seed: int = 0):
        groups: dict[int, list[int]] = {}
        for index in range(len(dataset)):
            groups.setdefault(dataset.shard(index), []).append(index)
        self.groups = list(groups.values())
        self.count = len(dataset)
        self.seed = seed
        self._epoch = SharedEpoch()  # read by the workers' copies (read-ahead), persistent ones too
        self._passes = 0

    @property
    def epoch(self) -> int | None:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.set(int(epoch))

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        epoch = self.epoch if self.epoch is not None else self._passes
        self._passes += 1
        generator = torch.Generator().manual_seed(_mix(self.seed, epoch) >> 2)
        for g in torch.randperm(len(self.groups), generator=generator).tolist():
            group = self.groups[g]
            for k in torch.randperm(len(group), generator=generator).tolist():
                yield group[k]


_MASK = (1 << 64) - 1


def _mix(*values: int) -> int:
    """splitmix64's finalizer folded over ``values`` (ints): a well-mixed 64-bit integer."""
    state = 0
    for value in values:
        state = (state + 0x9E3779B97F4A7C15 + (int(value) & _MASK)) & _MASK
        state = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        state = ((state ^ (state >> 27)) * 0x94D049BB133111EB) & _MASK
        state ^= state >> 31
    return state


def _from(positions: np.ndarray, at: int) -> np.ndarray:
    """Sorted ``positions`` rotated to begin at the first one >= ``at`` (wrapping around)."""
    if at == 0:
        return positions
    k = int(np.searchsorted(positions, at))
    return np.concatenate([positions[k:], positions[:k]])


class OccupancyPoints(SampleWindows):
    """Occupancy Networks' (and ConvONet's) training items from the ``occnet`` recipe: a dict with
    ``points`` (points, 3) and ``points.occ`` (points,) float32 (1 inside), ``inputs`` (a window of
    ``inputs`` surface points, 3) and ``idx``, in OccNet's frame, as its ``Shapes3dDataset`` gives
    them. ``sample_set="ifnet_0.1"`` or ``"ifnet_0.01"`` gives IF-Net's boundary samples instead."""

    def __init__(self, store: str, *, points: int = 2048, inputs: int = 300, sample_set: str = "occnet", **kwargs):
        if not (sample_set == "occnet" or sample_set.startswith("ifnet")):
            raise InputError(f"OccupancyPoints reads 'occnet', 'ifnet_0.1' or 'ifnet_0.01', not {sample_set!r}")
        super().__init__(store, sample_set, window=points, **kwargs)
        self.surface = "occnet/surface_points" if sample_set == "occnet" else "ifnet/pointcloud_3000"
        if self.surface not in self.group:
            raise InputError(f"{self.url}: has no {self.surface} for the inputs")
        self.surface_length = int(self.array(self.surface).shape[1])
        self.inputs = min(inputs, self.surface_length)
        self.reader(self.surface).preload(self.rows)

    def __getitems__(self, indices: Sequence[int]) -> list:
        windows = []
        for index in indices:
            self._check(index)
            begin = self.start(index, self.inputs, total=self.surface_length, stream=1)
            windows.append((int(self.rows[index]), begin, begin + self.inputs))
        inputs = self.read_windows(self.surface, windows)
        return [
            self._item(index, arrays, surface)
            for index, arrays, surface in zip(indices, self.read_many(indices), inputs, strict=True)
        ]

    def _item(self, index: int, arrays: dict[str, np.ndarray], inputs: np.ndarray) -> dict:
        item = {
            "points": torch.from_numpy(np.ascontiguousarray(arrays[self.names[0]], dtype=np.float32)),
            "points.occ": torch.from_numpy(arrays[self.names[1]].astype(np.float32)),
            "inputs": torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)),
            "idx": index,
        }
        return self.transform(item) if self.transform else item


class MNISTGrids(StoreShapes):
    """The digits of a ``prepare-mnist`` store: items ``{"grid": (R, R), "surface": (S, 2),
    "label", "index", "row", "id"}``, float32, sdfkit's frame (docs/format.md: the image spans
    [-1, 1]^2, y down; negative inside). The other arguments: :class:`StoreShapes`."""

    kind = "mnist"
    names = ("sdf/grid", "surface/points")

    def __init__(self, store: str, **kwargs):
        super().__init__(store, self.names, **kwargs)
        self.resolution = int(self.shape_of["sdf/grid"][0])

    def __getitems__(self, indices: Sequence[int]) -> list:
        for index in indices:
            self._check(index)
        grids, surfaces = (self.read_rows(name, indices) for name in self.names)
        items = []
        for index, grid, surface in zip(indices, grids, surfaces, strict=True):
            item = {
                "grid": torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32)),
                "surface": torch.from_numpy(np.ascontiguousarray(surface, dtype=np.float32)),
                "label": self.labels[index],
                "index": index,
                "row": int(self.rows[index]),
                "id": self.ids[index],
            }
            items.append(self.transform(item) if self.transform else item)
        return items
