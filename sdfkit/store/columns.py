"""Reading a store's per-shape columns (``meta/status``, ``meta/id``, ``ledger/*``) whole, and
the shards' row ranges: straight from the chunk files on a local disk, all at once on object
storage. The format's own module (:mod:`sdfkit.store.format`) re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import zarr

from sdfkit.store.shards import missing_members, on_local_disk, read_together, read_whole
from sdfkit.store.state import StoreState

__all__ = [
    "COPIED_COLUMNS",
    "STATUS_PENDING",
    "STATUS_OK",
    "STATUS_FAILED",
    "STATUS_SKIPPED",
    "shard_ranges",
    "read_column",
    "read_columns",
    "read_meta_columns",
    "contains_all",
    "read_status",
    "pending_shards",
    "as_str",
]

COPIED_COLUMNS = ("id", "category", "label", "split", "status", "error")
"""The ``meta/*`` columns a finished store also holds whole, one chunk each, as ``columns/*``:
what opening a store reads (:func:`read_meta_columns`)."""

STATUS_PENDING, STATUS_OK, STATUS_FAILED, STATUS_SKIPPED = 0, 1, 2, 3
"""``meta/status``: pending, ok, failed (``meta/error`` says why), skipped on purpose (a licence
filter, a duplicate: ``meta/error`` says why, ``skipped: ...``)."""


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` of the shards of an n-shape store."""
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def read_column(group: zarr.Group, name: str) -> np.ndarray:
    """The whole of a per-shape array (``meta/id``, ``ledger/faces``, ...), as zarr reads it, read
    straight from its chunk files where the store is on a local disk (a store of n shapes keeps
    such an array in n / 8 files; zarr's pipeline costs about 0.2 ms a file)."""
    array = group[name]
    whole = read_whole(array)
    return array[:] if whole is None else whole


def read_columns(group: zarr.Group, names: Sequence[str]) -> dict[str, np.ndarray | None]:
    """Whole per-shape arrays, as zarr reads them: on a local disk by :func:`read_column`; on
    object storage all opened at once, then all read at once (two round trips, not two per
    array and one per chunk). An array that cannot be read (absent, a torn chunk) gives None."""
    if on_local_disk(group):
        out = {}
        for name in names:
            try:
                out[name] = read_column(group, name)
            except Exception:  # absent or torn: the caller decides
                out[name] = None
        return out
    return read_together(group, names)


def read_meta_columns(group: zarr.Group, names: Sequence[str]) -> dict[str, np.ndarray | None]:
    """``meta/<name>`` whole for each of ``names``, from the copies in ``columns/`` where the
    store's state says they match (one chunk each), else from ``meta/`` (one chunk per shard);
    None for one that cannot be read."""
    if StoreState.read(group).column_copies and set(names) <= set(COPIED_COLUMNS):
        copies = read_columns(group, [f"columns/{name}" for name in names])
        if all(value is not None for value in copies.values()):
            return {name: copies[f"columns/{name}"] for name in names}
    columns = read_columns(group, [f"meta/{name}" for name in names])
    return {name: columns[f"meta/{name}"] for name in names}


def contains_all(group: zarr.Group, names: Sequence[str]) -> list[str]:
    """The ``names`` the group does not hold, asked all at once (one round trip on object storage)."""
    return missing_members(group, names)


def read_status(group: zarr.Group, prefix: str = "meta") -> np.ndarray:
    """``<prefix>/status`` (n,) uint8; a shard that cannot be decoded reads as pending (0).

    prefix : ``"meta"`` for the store's own rows; ``"voxels"`` for the arrays ``sdfkit voxelize``
        adds later, which have their own status column.
    """
    status = group[f"{prefix}/status"]
    whole = read_whole(status)
    if whole is None and not on_local_disk(status):
        whole = read_columns(group, [f"{prefix}/status"])[f"{prefix}/status"]  # all chunks at once
    if whole is not None:
        return whole.astype(np.uint8)
    n = status.shape[0]
    out = np.zeros(n, dtype=np.uint8)
    for start, stop in shard_ranges(n, status.chunks[0]):
        try:
            out[start:stop] = status[start:stop]
        except Exception:  # a torn write on a store without atomic writes: redo that shard
            out[start:stop] = STATUS_PENDING
    return out


def pending_shards(group: zarr.Group, prefix: str = "meta") -> list[int]:
    """Indices of the shards that hold at least one pending shape."""
    status = read_status(group, prefix)
    size = StoreState.read(group).shard_size
    return [k for k, (a, b) in enumerate(shard_ranges(len(status), size)) if (status[a:b] == 0).any()]


def as_str(values) -> np.ndarray:
    """A string column as a numpy ``<U`` array (zarr returns numpy's StringDType or objects)."""
    return np.array([str(v) for v in np.asarray(values).tolist()], dtype=str)
