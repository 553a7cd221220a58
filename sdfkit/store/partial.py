"""Finished rows of unfinished shards: what a killed run keeps.

A shard is written to the store in one piece, after its last shape (one writer per shard; the
status column is written last). A run killed inside a shard would lose every shape of that shard
it had finished, minutes of work for watertight meshes or vecset samples. So each finished row is
also saved on its own, at once, beside the store: ``<store>.partial/<prefix>/<shard>/<row>.npz``
(``row`` counted from the store's first row), holding the row's arrays, its shape id and its
error (empty when it succeeded). The next run of the same command folds those rows into the
shard instead of computing them again, and deletes them once the shard is in the store.

A file torn by a kill, or one whose shape id is not the row's any more, is ignored: that row is
computed again. Local stores and fsspec URLs (``s3://``) alike; the folder sits beside the store,
as its lock does (:mod:`sdfkit.store.lock`), so the store itself holds only zarr's files.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import fsspec
import numpy as np

__all__ = ["partial_url", "save_row", "load_rows", "count_rows", "clear"]

_ID, _ERROR = "__id__", "__error__"


def partial_url(url: str) -> str:
    """Where the finished rows of the store at ``url`` wait: ``<url>.partial``."""
    return str(url).rstrip("/") + ".partial"


def _fs(url: str):

    return fsspec.core.url_to_fs(partial_url(url))


def _folder(url: str, prefix: str, shard: int | None = None) -> tuple:
    fs, root = _fs(url)
    path = f"{root}/{prefix}" if shard is None else f"{root}/{prefix}/{shard}"
    return fs, path


def save_row(
    url: str, prefix: str, shard: int, row: int, shape_id: str, result: Mapping | None, error: str | None
) -> None:
    """Keep one finished row: ``result`` (array name -> value) or ``error`` (a failed shape)."""
    buffer = io.BytesIO()
    arrays = {name.replace("/", "|"): np.asarray(value) for name, value in (result or {}).items()}
    np.savez(buffer, **arrays, **{_ID: np.asarray(shape_id), _ERROR: np.asarray(error or "")})
    fs, folder = _folder(url, prefix, shard)
    fs.makedirs(folder, exist_ok=True)
    fs.pipe_file(f"{folder}/{row}.npz", buffer.getvalue())


def load_rows(url: str, prefix: str, shard: int, ids: Mapping[int, str]) -> dict[int, tuple[dict | None, str | None]]:
    """The rows of one shard kept by an earlier run: row -> (result, None) or (None, error).

    ids : row -> the shape id the store gives that row; a file for another shape is ignored.
    """
    fs, folder = _folder(url, prefix, shard)
    try:
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return {}
    rows = {}
    for name in names:
        stem = str(name).rsplit("/", 1)[-1]
        if not stem.endswith(".npz") or not stem[:-4].isdigit():
            continue
        row = int(stem[:-4])
        if row not in ids:
            continue
        try:
            with np.load(io.BytesIO(fs.cat_file(name)), allow_pickle=False) as data:
                if str(data[_ID]) != ids[row]:
                    continue
                error = str(data[_ERROR])
                result = {key.replace("|", "/"): data[key] for key in data.files if key not in (_ID, _ERROR)}
        except Exception:  # torn by a kill: compute the row again
            continue
        rows[row] = (None, error) if error else (result, None)
    return rows


def count_rows(url: str, prefix: str) -> int:
    """How many rows wait under ``prefix`` (for a progress bar's start)."""
    fs, folder = _folder(url, prefix)
    try:
        return sum(1 for name in fs.find(folder) if str(name).endswith(".npz"))
    except FileNotFoundError:
        return 0


def clear(url: str, prefix: str | None = None, shard: int | None = None) -> None:
    """Delete the kept rows of one shard, of one prefix, or all of them."""
    if prefix is None:
        fs, folder = _fs(url)
    else:
        fs, folder = _folder(url, prefix, shard)
    try:
        if fs.exists(folder):
            fs.rm(folder, recursive=True)
    except FileNotFoundError:
        pass
