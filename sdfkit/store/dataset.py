"""Reading sdfkit stores: :func:`open_dataset`.

    >>> ds = sdfkit.open_dataset("mnist.zarr", split="train")
    >>> len(ds), ds.kind
    >>> shape = ds[0]            # dict: id, category, label, split, image, sdf/grid, ...
    >>> test = ds.select("test")

Only shapes with status "ok" are listed unless ``include_failed=True``. The store is plain zarr:
everything here can be done with ``zarr.open_group`` too (see docs/format.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import zarr

from sdfkit.errors import FormatError, InputError
from sdfkit.store.format import SPLITS, STATUS_OK, as_str, contains_all, open_store, read_meta_columns, read_status
from sdfkit.store.state import StoreState

__all__ = ["SdfDataset", "open_dataset"]

_META = ("id", "category", "label", "split", "status", "error")


class SdfDataset(Sequence):
    """Shapes of a sdfkit store, optionally restricted to a split.

    ``ds[k]`` returns a dict with the shape's metadata (``id``, ``category``, ``label``,
    ``split``, ``status``, ``error``, ``index`` = row in the store) and one numpy array per data
    array of the store, keyed by its path (``"sdf/grid"``, ``"surface/points"``, ...).
    """

    def __init__(self, group: zarr.Group, url: str, rows: np.ndarray, meta: dict[str, np.ndarray]):
        self.group = group
        self.url = url
        self.rows = rows
        self._meta = meta
        info = StoreState.read(group).as_dict()
        self.attrs: dict = dict(info)
        self.kind: str = info["kind"]
        self.parameters: dict = dict(info.get("parameters", {}))
        self.arrays: list[str] = [
            a for a in info["arrays"] if not a.startswith("meta/") or a.split("/")[1] not in _META
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return SdfDataset(self.group, self.url, self.rows[k], self._meta)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} shapes")
        row = int(self.rows[k])
        item = {name: _scalar(self._meta[name][row]) for name in _META}
        item["index"] = row
        for name in self.arrays:
            item[name] = self.group[name][row]
        return item

    def __iter__(self) -> Iterator[dict]:
        for k in range(len(self)):
            yield self[k]

    def __repr__(self) -> str:
        return f"SdfDataset({self.url!r}, kind={self.kind!r}, shapes={len(self)})"

    def meta(self, name: str) -> np.ndarray:
        """A metadata column (``id``, ``category``, ``label``, ``split``, ``status``, ``error``)
        for the selected shapes."""
        return self._meta[name][self.rows]

    @property
    def ids(self) -> list[str]:
        return [str(x) for x in self.meta("id")]

    def select(self, split: str | Sequence[str] | None = None, *, include_failed: bool = False) -> SdfDataset:
        """The shapes of one split (or several) of the whole store."""
        rows = np.arange(len(self._meta["id"]))
        if split is not None:
            wanted = [split] if isinstance(split, str) else list(split)
            unknown = [s for s in wanted if s not in SPLITS and s not in set(self._meta["split"])]
            if unknown:
                raise InputError(
                    f"{self.url}: no split {unknown[0]!r}; it has {', '.join(sorted(set(self._meta['split'])))}; "
                    "choose one of them"
                )
            rows = rows[np.isin(self._meta["split"], wanted)]
        if not include_failed:
            rows = rows[self._meta["status"][rows] == STATUS_OK]
        return SdfDataset(self.group, self.url, rows, self._meta)


def _scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_dataset(
    url: str | Path,
    *,
    split: str | Sequence[str] | None = None,
    include_failed: bool = False,
    allow_incomplete: bool = False,
    storage_options: Mapping | None = None,
    group: zarr.Group | None = None,
) -> SdfDataset:
    """Open a sdfkit store for reading (``storage_options``: fsspec's, for a remote store;
    ``group``: the store at ``url`` already opened by :func:`open_store`, not read again).

    Raises :class:`FormatError` for a path that is not a sdfkit store, an unknown format
    version, or (unless ``allow_incomplete``) a store whose run has not finished.
    """
    url = str(url)
    group = open_store(url, mode="r", storage_options=storage_options) if group is None else group
    state = StoreState.read(group)
    if not state.initialized:
        raise FormatError(f"{url}: the store was never fully created; run the command that made it again")
    if not state.complete and not allow_incomplete:
        raise FormatError(
            f"{url}: the store is unfinished (its run stopped early); run the command that made it "
            "again to resume, or pass allow_incomplete=True"
        )
    missing = contains_all(group, state.arrays)
    if missing:
        raise FormatError(f"{url}: arrays {', '.join(missing)} are missing; the store is damaged, rebuild it")
    columns = read_meta_columns(group, _META)  # on object storage: one round for all
    names = [name for name in _META if name != "status"]
    meta = {n: np.asarray(group[f"meta/{n}"][:]) if columns[n] is None else columns[n] for n in names}
    status = columns["status"]
    meta["status"] = read_status(group) if status is None else status.astype(np.uint8)
    for name in ("id", "category", "split", "error"):
        meta[name] = as_str(meta[name])
    dataset = SdfDataset(group, url, np.arange(len(meta["id"])), meta)
    return dataset.select(split, include_failed=include_failed)
