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

import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from sdfkit.errors import InputError
from sdfkit.store.format import STATUS_OK, STATUS_PENDING

__all__ = ["SAMPLE_SETS", "SampleWindows", "DeepSDFSamples", "OccupancyPoints"]

SAMPLE_SETS: dict[str, tuple[str, ...]] = {
    "sdf": ("sdf/points", "sdf/values"),
    "sdf_test": ("sdf_test/points", "sdf_test/values"),
    "surface": ("surface/points", "surface/normals"),
    "occnet": ("occnet/points", "occnet/occupancies"),
    "occnet_surface": ("occnet/surface_points", "occnet/surface_normals"),
    "ifnet_0.1": ("ifnet/boundary_0.1/points", "ifnet/boundary_0.1/occupancies"),
    "ifnet_0.01": ("ifnet/boundary_0.01/points", "ifnet/boundary_0.01/occupancies"),
    "ndf_0.08": ("ndf/boundary_0.08/points", "ndf/boundary_0.08/df"),
    "ndf_0.02": ("ndf/boundary_0.02/points", "ndf/boundary_0.02/df"),
    "ndf_0.003": ("ndf/boundary_0.003/points", "ndf/boundary_0.003/df"),
}
"""Sample set -> the arrays read together, window by window (same rows, same window)."""


class SampleWindows(torch.utils.data.Dataset):
    """One item per shape: a random window of ``window`` samples of a sample set, as tensors.

    store : path or URL of a sdfkit store
    sample_set : a key of :data:`SAMPLE_SETS` (its arrays must be in the store: the recipe made them)
    split, ids : keep one split (or several) and/or these shape ids
    extra : arrays read whole per item (e.g. ``"norm/offset"``)
    seed : with :meth:`set_epoch`, windows are a function of (seed, epoch, row)
    transform : called on each item (a dict) before it is returned
    allow_incomplete : read a store whose run has not finished (its pending shapes are skipped)

    An item: ``{"index", "row", "id", <array name>: tensor, ...}``; ``index`` is the item's
    position in this dataset (DeepSDF's latent-code index), ``row`` its row in the store.
    """

    def __init__(
        self,
        store: str,
        sample_set: str = "sdf",
        *,
        window: int = 16384,
        split: str | Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        extra: Sequence[str] = (),
        seed: int = 0,
        transform: Callable[[dict], dict] | None = None,
        allow_incomplete: bool = False,
    ):
        from sdfkit.store.dataset import open_dataset

        if sample_set not in SAMPLE_SETS:
            raise InputError(f"unknown sample set {sample_set!r}; choose from {', '.join(SAMPLE_SETS)}")
        self.url = str(store)
        dataset = open_dataset(self.url, split=split, include_failed=True, allow_incomplete=allow_incomplete)
        self.names = SAMPLE_SETS[sample_set]
        missing = [n for n in (*self.names, *extra) if n not in dataset.group]
        if missing:
            recipe = {"sdf_test": "deepsdf-test"}.get(sample_set, sample_set.split("_")[0])
            raise InputError(
                f"{self.url}: has no {missing[0]}; make the store with --recipe {recipe}"
                if missing[0] in self.names
                else f"{self.url}: has no array {missing[0]}"
            )
        status = dataset.meta("status")
        pending = int((status == STATUS_PENDING).sum())
        if pending:
            warnings.warn(
                f"{self.url}: {pending} shapes are still pending (the store is being written): skipped", stacklevel=2
            )
        keep = status == STATUS_OK
        if ids is not None:
            wanted = set(ids)
            keep &= np.isin(np.asarray(dataset.ids), list(wanted))
            absent = wanted - set(np.asarray(dataset.ids)[keep])
            if absent:
                raise InputError(f"{self.url}: no ok shape with id {sorted(absent)[0]!r} ({len(absent)} ids not found)")
        self.rows = np.asarray(dataset.rows)[keep]
        self.ids = [i for i, k in zip(dataset.ids, keep, strict=True) if k]
        self.length = int(dataset.group[self.names[0]].shape[1])
        if not 0 < window <= self.length:
            raise InputError(f"window must be between 1 and the {self.length} samples per shape, not {window}")
        self.window = window
        self.extra = tuple(extra)
        self.seed = seed
        self.transform = transform
        self.epoch: int | None = None
        self._handle: tuple | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Windows from (seed, epoch, row) from now on: reproducible whatever the workers."""
        self.epoch = int(epoch)

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
        from sdfkit.store._shards import WindowReader

        _, _, readers = self._open()
        if name not in readers:
            readers[name] = WindowReader(self.array(name))
        return readers[name].read(row, start, stop)

    def _open(self):
        import zarr

        pid = os.getpid()
        if self._handle is None or self._handle[0] != pid:
            self._handle = (pid, zarr.open_group(self.url, mode="r"), {}, {})
        return self._handle[1:]

    def start(self, index: int, length: int | None = None, *, total: int | None = None, stream: int = 0) -> int:
        """Where item ``index``'s window of ``length`` samples (default ``window``) of rows of
        ``total`` samples (default the sample set's) begins; ``stream`` separates the windows of
        other arrays of the same item."""
        span = (total or self.length) - (length or self.window) + 1
        if self.epoch is None:
            return int(torch.randint(span, ()).item())
        rng = np.random.default_rng([self.seed, self.epoch, int(self.rows[index]), stream])
        return int(rng.integers(span))

    def read(self, index: int, length: int | None = None) -> dict[str, np.ndarray]:
        """The arrays of the sample set over item ``index``'s window: name -> numpy array."""
        length = length or self.window
        row, begin = int(self.rows[index]), self.start(index, length)
        return {name: self.read_window(name, row, begin, begin + length) for name in self.names}

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} shapes")
        item = {"index": index, "row": int(self.rows[index]), "id": self.ids[index]}
        item |= {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in self.read(index).items()}
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

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} shapes")
        arrays = self.read(index, self.long)
        points, values = arrays[self.names[0]], arrays[self.names[1]]
        if self.balanced:
            half = self.window // 2
            positive, negative = np.flatnonzero(values > 0), np.flatnonzero(values <= 0)
            pick = np.concatenate([self._take(positive, half, index), self._take(negative, self.window - half, index)])
        else:
            pick = slice(None)
        rows = np.empty((self.window, 4), dtype=np.float32)
        rows[:, :3] = points[pick]
        rows[:, 3] = values[pick]
        samples = torch.from_numpy(rows)
        if self.transform:
            samples = self.transform(samples)
        return samples, index

    def _take(self, rows: np.ndarray, count: int, index: int) -> np.ndarray:
        """``count`` of the window positions ``rows``: the first ones (the window is shuffled), or
        drawn with replacement when it holds fewer."""
        if len(rows) >= count:
            return rows[:count]
        if len(rows) == 0:
            raise InputError(f"{self.url}: shape {self.ids[index]} has no sample of one sign in its window")
        return rows[torch.randint(len(rows), (count,)).numpy()]


class OccupancyPoints(SampleWindows):
    """Occupancy Networks' (and ConvONet's) training items from the ``occnet`` recipe: a dict with
    ``points`` (points, 3) and ``points.occ`` (points,) float32 (1 inside), ``inputs`` (a window of
    ``inputs`` surface points, 3) and ``idx``, in OccNet's frame, as its ``Shapes3dDataset`` gives
    them. ``sample_set="ifnet_0.1"`` or ``"ifnet_0.01"`` gives IF-Net's boundary samples instead."""

    def __init__(self, store: str, *, points: int = 2048, inputs: int = 300, sample_set: str = "occnet", **kwargs):
        if not (sample_set == "occnet" or sample_set.startswith("ifnet")):
            raise InputError(f"OccupancyPoints reads 'occnet', 'ifnet_0.1' or 'ifnet_0.01', not {sample_set!r}")
        super().__init__(store, sample_set, window=points, **kwargs)
        self.surface = SAMPLE_SETS["occnet_surface"][0] if sample_set == "occnet" else "ifnet/pointcloud_3000"
        if self.surface not in self.group:
            raise InputError(f"{self.url}: has no {self.surface} for the inputs")
        self.surface_length = int(self.array(self.surface).shape[1])
        self.inputs = min(inputs, self.surface_length)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} shapes")
        arrays = self.read(index)
        row = int(self.rows[index])
        begin = self.start(index, self.inputs, total=self.surface_length, stream=1)
        item = {
            "points": torch.from_numpy(np.ascontiguousarray(arrays[self.names[0]], dtype=np.float32)),
            "points.occ": torch.from_numpy(arrays[self.names[1]].astype(np.float32)),
            "inputs": torch.from_numpy(
                np.asarray(self.array(self.surface)[row, begin : begin + self.inputs], np.float32)
            ),
            "idx": index,
        }
        return self.transform(item) if self.transform else item
