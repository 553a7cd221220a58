"""How window readers reach a store on object storage: obstore where it can, fsspec otherwise.

A store's metadata, columns and shard indexes are read through zarr and fsspec (s3fs, gcsfs),
like every other zarr reader (on S3 with :func:`s3_reading_options`). The windows a loader reads, the bulk of the requests, go through
obstore (Rust; its requests in flight limited only by what is asked) when it is installed, the
URL is ``s3://``, ``gs://`` or ``az://``, and no fsspec ``storage_options`` are given: on s3rver
it answered 1,488 concurrent 384 KB range requests a second where s3fs answered 683
(``python benchmarks/s3_servers.py --backends``; docs/loading.md, Object storage). Credentials and endpoints then come from the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ...), as for the
AWS CLI.

obstore's runtime does not survive ``fork``: a process forked from one that used it (a
``DataLoader`` worker whose parent read items through obstore) reads through fsspec instead. A
parent that only makes the dataset reads nothing through obstore, so its workers all use it.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["BACKENDS", "range_store", "s3_reading_options"]

BACKENDS = ("auto", "obstore", "fsspec")
"""How windows on object storage are read: ``auto`` (obstore where it can, else fsspec), or one."""

_SCHEMES = ("s3", "gs", "az")
_USED_IN: int | None = None
"""The process that started obstore's runtime (inherited by forked children, which must not use it)."""


def range_store(url: str, *, storage_options: Mapping[str, Any] | None = None, backend: str = "auto"):
    """A zarr store rooted at ``url`` for this process's range reads, opened without reading any
    metadata: obstore-backed (``zarr.storage.ObjectStore``), or fsspec-backed where obstore is not
    to be used (``backend="fsspec"``, obstore not installed, a URL or ``storage_options`` it does
    not take, or a process forked from one that used obstore)."""
    global _USED_IN
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    scheme = str(url).split("://", 1)[0] if "://" in str(url) else ""
    fsspec = (
        backend == "fsspec"
        or scheme not in _SCHEMES
        or _USED_IN not in (None, os.getpid())
        or (backend == "auto" and (storage_options is not None or importlib.util.find_spec("obstore") is None))
    )
    if fsspec:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(str(url), storage_options=dict(storage_options or {}), read_only=True)
    from obstore.store import from_url
    from zarr.storage import ObjectStore

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    client = {"allow_http": True} if scheme == "s3" and endpoint.startswith("http://") else None
    store = ObjectStore(from_url(str(url).rstrip("/"), client_options=client), read_only=True)
    _USED_IN = os.getpid()
    return store


def s3_reading_options(options: Mapping | None) -> dict:
    """s3fs's options for reading a store: the caller's, with two defaults where not given.
    ``max_pool_connections`` 64: aiobotocore keeps 10 connections, and a column of n / 8 chunks
    would wait in turns. ``max_concurrency`` 1: s3fs (from 2025) asks an object's size (a HEAD,
    and on a missing chunk a listing too) before every whole-object read, to split large ones;
    a store's metadata and column chunks are a few kB, so that doubled the requests of opening."""
    options = dict(options or {})
    if "config_kwargs" not in options:
        options["config_kwargs"] = {"max_pool_connections": 64}
    if "max_concurrency" not in options and _s3fs_takes("max_concurrency"):
        options["max_concurrency"] = 1
    return options


@functools.cache
def _s3fs_takes(name: str) -> bool:
    try:
        import s3fs
    except ImportError:
        return False
    return name in inspect.signature(s3fs.S3FileSystem.__init__).parameters
