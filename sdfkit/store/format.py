"""sdfkit's dataset format v1: a sharded zarr v3 group (see docs/format.md).

Every per-shape array has the shape index as its leading axis. Arrays with data per shape have
one shape per chunk and ``shard_size`` shapes per shard; one-value-per-shape columns (``meta/*``)
have one chunk per ``shard_size`` shapes, since single-value chunks cost more to read than they
hold. All arrays share these boundaries along the shape axis, so a task that owns shard k owns
rows ``k * shard_size`` to ``(k + 1) * shard_size`` of every array: one writer per shard, because
zarr loses writes when two processes update one shard.

A store is complete when its root attribute ``sdfkit["complete"]`` is true; that flag is written
last, so a run killed at any point leaves a store that says it is unfinished.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from sdfkit._version import __version__
from sdfkit.errors import FormatError, ParameterMismatchError, StoreError, describe_os_error
from sdfkit.store import partial
from sdfkit.store.columns import (
    COPIED_COLUMNS,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_PENDING,
    STATUS_SKIPPED,
    as_str,
    contains_all,
    pending_shards,
    read_column,
    read_columns,
    read_meta_columns,
    read_status,
    shard_ranges,
)
from sdfkit.store.remote import s3_reading_options
from sdfkit.store.shards import can_encode, write_shard_block
from sdfkit.store.state import StoreState

__all__ = [
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "STATUS_PENDING",
    "STATUS_OK",
    "STATUS_FAILED",
    "STATUS_SKIPPED",
    "ArraySpec",
    "ShapeMeta",
    "StoreLayout",
    "create_store",
    "create_array",
    "open_store",
    "prepare_store",
    "shard_ranges",
    "pending_shards",
    "write_shard",
    "mark_complete",
    "write_column_copies",
    "COPIED_COLUMNS",
    "read_meta_columns",
    "read_status",
    "read_column",
    "read_columns",
    "contains_all",
    "as_str",
    "store_order",
    "local_path",
]

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Format versions this sdfkit reads. v1 differs from v2 only in the layout of rows chunked along
their samples (16,384-sample chunks, each row's chunks one after the other in its shard), which
zarr's metadata and the shard index record: plain zarr and sdfkit read both (docs/format.md)."""
DIRECT_ROW_BYTES = 1 << 20
"""Whole rows up to this size are written by the direct shard writer, larger ones by zarr's codec
(rows chunked along their samples always by the direct writer)."""
WINDOW_SAMPLES = 32_768
"""Sample arrays longer than twice this are chunked by this many samples inside each row's shard,
so reading a window of a row (sdfkit.torch) decodes the chunks it spans, not the whole row."""
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ArraySpec:
    """One per-shape array of a store."""

    name: str
    """Path inside the group, e.g. ``"sdf/grid"``."""
    shape: tuple[int, ...]
    """Shape of one shape's entry (without the leading shape axis)."""
    dtype: str
    """numpy dtype string, or ``"str"`` for variable-length UTF-8."""
    fill_value: Any = 0
    """Value of rows that were not written (failed shapes keep it)."""
    recipe: str = ""
    """The recipe that writes it (``sdfkit.recipes``); "" for a store's own arrays."""
    role: str = ""
    """What its values are, so that checks and loaders need nothing from the code that wrote
    them: ``points``, ``sdf`` (signed distance, negative inside), ``occupancy`` (1 inside),
    ``udf`` (unsigned distance), ``normals`` (unit, outward), ``surface`` (points on the outer
    surface), ``loc``/``scale`` (a frame's), or "" (anything else)."""
    points: str = ""
    """For values at points (``sdf``, ``occupancy``, ``udf``, ``normals``): the points' array."""
    frame: str = ""
    """The frame of points and distances: "" for the store's normalized frame, else the prefix
    ``P`` of the arrays ``P/loc`` and ``P/scale`` with raw = point * scale + loc (a distance
    times scale is raw), and normalized = (raw + norm/offset) * norm/scale."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """What the recipe drew them with (a sigma, a count), as recorded in the store."""
    sample_set: str = ""
    """The name ``sdfkit.torch`` reads it by, with the other arrays of that sample set (the
    same rows and windows): ``sdf``, ``ifnet_0.01``, ..."""

    def describe(self) -> dict:
        """This spec as the store records it in its ``specs`` attribute (JSON)."""
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "fill_value": None
            if isinstance(self.fill_value, float) and self.fill_value != self.fill_value
            else self.fill_value,
            "recipe": self.recipe,
            "role": self.role,
            "points": self.points,
            "frame": self.frame,
            "parameters": dict(self.parameters),
            "sample_set": self.sample_set,
        }

    @classmethod
    def from_description(cls, name: str, described: Mapping[str, Any]) -> ArraySpec:
        fill = described.get("fill_value")
        return cls(
            name,
            tuple(described.get("shape", ())),
            described.get("dtype", ""),
            float("nan") if fill is None else fill,
            described.get("recipe", ""),
            described.get("role", ""),
            described.get("points", ""),
            described.get("frame", ""),
            dict(described.get("parameters", {})),
            described.get("sample_set", ""),
        )


@dataclass(frozen=True)
class ShapeMeta:
    """What a source knows about one shape before it is processed."""

    id: str
    category: str
    label: int
    split: str
    fingerprint: str = ""
    """What identifies the shape's input as it was (a mesh file's size and modification time):
    a store can take new shapes when the old ones are unchanged."""


@dataclass(frozen=True)
class StoreLayout:
    """What a store is made of: its kind, its shapes in store order, its arrays, the parameters
    and source that define them, and its shard size. Two runs with the same kind, parameters,
    source id and shard size fill the same store (:func:`prepare_store` resumes it)."""

    kind: str
    """``"mnist"``, ``"shapenet"``, or a builder's kind (``"renders"``, ``"watertight"``)."""
    metas: Sequence[ShapeMeta]
    specs: Sequence[ArraySpec]
    parameters: Mapping[str, Any]
    source: Mapping[str, Any]
    shard_size: int


META_SPECS = (
    ArraySpec("meta/id", (), "str", ""),
    ArraySpec("meta/category", (), "str", ""),
    ArraySpec("meta/label", (), "int64", -1),
    ArraySpec("meta/split", (), "str", ""),
    ArraySpec("meta/status", (), "uint8", STATUS_PENDING),
    ArraySpec("meta/error", (), "str", ""),
    ArraySpec("meta/fingerprint", (), "str", ""),
)
"""``meta/fingerprint`` is absent from stores made before fingerprints were recorded (they cannot
be appended to)."""


def _compressor(dtype: str, *, windowed: bool = False):
    if dtype == "str":
        return ZstdCodec(level=3)
    itemsize = np.dtype(dtype).itemsize
    # byte shuffle groups the exponents of float arrays together: SDF grids shrink by half
    shuffle = "shuffle" if itemsize > 1 else "noshuffle"
    if windowed and np.dtype(dtype).kind == "f":
        # shuffled float samples barely compress (sdf/points: zstd 0.90 of raw, lz4 0.93), and
        # training loaders read them every epoch: stored raw, a window is a copy, not a decode
        # (benchmarks/codecs.py); occupancies (uint8) keep zstd, a fifth of raw
        return None
    return BloscCodec(cname="zstd", clevel=3, shuffle=shuffle, typesize=itemsize)


def local_path(url: str | Path) -> Path | None:
    """The folder of a store on this machine (plain paths and ``file://`` URLs), or None for a
    remote one (``s3://``, ``gs://``, any other fsspec URL)."""
    text = str(url)
    if "://" in text and not text.startswith("file://"):
        return None
    return Path(text.removeprefix("file://"))


def open_store(url: str | Path, *, mode: str = "r", storage_options: Mapping | None = None) -> zarr.Group:
    """Open a sdfkit store and check that its format version is one this sdfkit reads.

    storage_options : fsspec's, for a remote store (credentials, an endpoint)

    Raises :class:`FormatError` if ``url`` is not a zarr group, not made by sdfkit, or of
    another format version.
    """
    local = local_path(url)
    if local is not None and not local.exists():
        raise FormatError(f"{url}: no such store; check the path")
    if local is None and mode == "r" and str(url).startswith("s3://"):
        storage_options = s3_reading_options(storage_options)
    try:
        group = zarr.open_group(
            str(url), mode=mode, zarr_format=3, storage_options=storage_options if local is None else None
        )
    except Exception as exc:  # zarr raises several types for "not a group"
        raise FormatError(
            f"{url}: not a zarr v3 group ({type(exc).__name__}); expected a store written by sdfkit"
        ) from None
    info = group.attrs.get("sdfkit")
    if not isinstance(info, Mapping):
        raise FormatError(f"{url}: a zarr group without the 'sdfkit' attribute; not a sdfkit store")
    version = info.get("format_version")
    if version not in READABLE_VERSIONS:
        raise FormatError(
            f"{url}: format version {version!r}, but this sdfkit ({__version__}) reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}; install the sdfkit that wrote it, or rebuild the store"
        )
    return group


def create_store(url: str | Path, layout: StoreLayout) -> zarr.Group:
    """Create an empty store for the shapes of ``layout`` and write its ``meta/*`` columns.

    Rows stay at their fill values, and ``meta/status`` at 0 (pending), until their shard is
    written with :func:`write_shard`.
    """
    kind, metas, specs, shard_size = layout.kind, layout.metas, layout.specs, layout.shard_size
    n = len(metas)
    if n == 0:
        raise StoreError(f"{url}: nothing to write: the source lists no shapes")
    ids = [m.id for m in metas]
    if len(set(ids)) != n:
        raise StoreError(f"{url}: the source lists duplicate shape ids")
    state = StoreState.new(
        format_version=FORMAT_VERSION,
        kind=kind,
        sdfkit_version=__version__,
        source=layout.source,
        parameters=layout.parameters,
        shard_size=shard_size,
        arrays=[s.name for s in (*META_SPECS, *specs)],
        specs={s.name: s.describe() for s in specs},
    )
    try:
        group = zarr.open_group(str(url), mode="w", zarr_format=3)
        # first: a crash from here on leaves a store that says it was never initialized, which
        # the next run recreates
        state.write(group)
        for spec in (*META_SPECS, *specs):
            create_array(group, spec, n, shard_size)
        group["meta/id"][:] = np.array(ids, dtype=object)
        group["meta/category"][:] = np.array([m.category for m in metas], dtype=object)
        group["meta/label"][:] = np.array([m.label for m in metas], dtype=np.int64)
        group["meta/split"][:] = np.array([m.split for m in metas], dtype=object)
        group["meta/fingerprint"][:] = np.array([m.fingerprint for m in metas], dtype=object)
    except OSError as exc:
        raise StoreError(f"{url}: cannot create the store: {describe_os_error(exc)}") from None
    state.mark_initialized().write(group)
    return group


def create_array(group: zarr.Group, spec: ArraySpec, n: int, shard_size: int, *, overwrite: bool = False):
    """One per-shape array with the layout of format v1 (see docs/format.md, Layout)."""
    column = spec.shape == ()
    chunks, shards = (1, *spec.shape), (shard_size, *spec.shape)
    windowed = not column and spec.shape[0] > 2 * WINDOW_SAMPLES
    if windowed:
        # a shard's side must be a multiple of its chunks': it may reach past the row's end
        per_row = -(-spec.shape[0] // WINDOW_SAMPLES) * WINDOW_SAMPLES
        chunks, shards = (1, WINDOW_SAMPLES, *spec.shape[1:]), (shard_size, per_row, *spec.shape[1:])
    return group.create_array(
        spec.name,
        shape=(n, *spec.shape),
        chunks=(shard_size,) if column else chunks,
        shards=None if column else shards,
        dtype=str if spec.dtype == "str" else spec.dtype,
        fill_value=spec.fill_value,
        compressors=_compressor(spec.dtype, windowed=windowed),
        overwrite=overwrite,
    )


def _differences(old: Mapping, new: Mapping) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k} {old.get(k)!r} (store) vs {new.get(k)!r} (asked)" for k in keys if old.get(k) != new.get(k)]


def prepare_store(url: str | Path, layout: StoreLayout, *, overwrite: bool = False) -> tuple[zarr.Group, str]:
    """Create a store, or reopen an unfinished one made with the same parameters.

    Returns the group and what happened: ``"created"``, ``"resumed"`` or ``"complete"``.
    Raises :class:`ParameterMismatchError` for a store made with other parameters, unless
    ``overwrite``; refuses to replace a folder that is not a sdfkit store even then.
    """
    kind, parameters, source, shard_size = layout.kind, layout.parameters, layout.source, layout.shard_size
    local = local_path(url)
    exists = local.exists() if local is not None else _remote_exists(url)
    if exists:
        if local is not None and local.is_file():
            raise StoreError(f"{url}: is a file, not a store; choose another -o path")
        try:
            group = open_store(url, mode="r+")
        except FormatError:
            if _abandoned_creation(url):
                _delete(url)  # killed before its first attribute was written: make it again
            elif local is not None and local.is_dir() and any(local.iterdir()):
                if (local / "zarr.json").exists() and overwrite:
                    _delete(url)  # an unfinished creation of ours, or a foreign zarr
                else:
                    raise StoreError(
                        f"{url}: exists and is not a sdfkit store; sdfkit will not delete it: "
                        "choose another -o path or remove it yourself"
                    ) from None
            group = None
        if group is not None:
            info = StoreState.read(group).as_dict()
            wanted = {"kind": kind, "parameters": dict(parameters), "source_id": source.get("id")}
            found = {
                "kind": info.get("kind"),
                "parameters": info.get("parameters"),
                "source_id": info.get("source", {}).get("id"),
            }
            same = wanted == found and info.get("shard_size") == shard_size
            overwrite = _may_replace(group, url, info, wanted, found, same, layout.specs, overwrite)
            if same and not overwrite:
                return group, ("complete" if info.get("complete") else "resumed")
            appendable = (
                not overwrite
                and found["kind"] == kind
                and found["parameters"] == wanted["parameters"]
                and info.get("shard_size") == shard_size
            )
            if appendable and _append(group, url, layout.metas, source):
                return group, "appended"
            if not overwrite:
                diffs = _differences(found["parameters"] or {}, wanted["parameters"])
                if found["source_id"] != wanted["source_id"]:
                    diffs.append("the source data differ")
                if info.get("shard_size") != shard_size:
                    diffs.append(f"shard_size {info.get('shard_size')!r} (store) vs {shard_size!r} (asked)")
                raise ParameterMismatchError(
                    f"{url}: exists and was made with other parameters ({'; '.join(diffs[:3])}); "
                    "pass --overwrite to replace it, or choose another -o path"
                )
            _delete(url)
    return create_store(url, layout), "created"


def _may_replace(group, url, info: Mapping, wanted: dict, found: dict, same: bool, specs, overwrite: bool) -> bool:
    """Whether an existing store may be replaced: asked to (``overwrite``), or a creation of this
    very command killed before any row was finished. Raises for a store of another kind, an
    unfinished creation with other parameters, or a store without arrays this sdfkit writes."""
    kind = wanted["kind"]
    missing = _missing_arrays(group, specs) if same else []
    if info.get("initialized") is False and same:
        return True  # this very command's creation, killed half way: no row was finished
    if not overwrite and found["kind"] != kind:
        raise ParameterMismatchError(_other_kind(url, found["kind"], kind, info))
    if not overwrite and info.get("initialized") is False:
        raise ParameterMismatchError(
            f"{url}: holds an unfinished creation of a {found['kind']} store made with other parameters "
            f"({'; '.join(_differences(found['parameters'] or {}, wanted['parameters'])[:3])}); pass "
            "--overwrite to replace it, or choose another -o path"
        )
    if missing and not _finished_rows(group):
        return True  # arrays half made by this very command, and no row finished: make it again
    if missing and not overwrite and not set(missing) & set(info.get("arrays", [])):
        raise ParameterMismatchError(
            f"{url}: a {kind} store made by another sdfkit version, without the arrays "
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} that this one writes; pass --overwrite "
            "to make it again, or choose another -o path"
        )
    if missing and not overwrite:
        raise FormatError(
            f"{url}: a {kind} store without the arrays {', '.join(missing[:3])} (damaged, or made by "
            "another sdfkit); check it with: sdfkit validate, or pass --overwrite to make it again"
        )
    return overwrite


def _abandoned_creation(url) -> bool:
    """A zarr group with no attributes and nothing in it: a creation killed at its first step."""
    try:
        group = zarr.open_group(str(url), mode="r")
        return not dict(group.attrs) and not list(group.keys())
    except Exception:
        return False


def _missing_arrays(group: zarr.Group, specs: Sequence[ArraySpec]) -> list[str]:
    names = [s.name for s in (*META_SPECS, *specs) if s.name != "meta/fingerprint"]
    return [name for name in names if name not in group]


def _finished_rows(group: zarr.Group) -> bool:
    """Whether a store may hold a finished row: flagged complete, or a status column with one."""
    if StoreState.read(group).complete:
        return True
    if "meta/status" not in group:
        return False
    return bool((read_status(group) != STATUS_PENDING).any())


KIND_COMMANDS = {
    "mnist": "sdfkit prepare-mnist",
    "shapenet": "sdfkit prepare-shapenet",
    "renders": "sdfkit render",
    "watertight": "sdfkit watertight (its report store)",
}
"""The command that makes each kind of store, named when a store of one kind is asked to become
another."""


def _other_kind(url, found: str | None, asked: str, info: Mapping) -> str:
    """The refusal of a store of another kind: both kinds, the store's own state, the way out."""
    state = "finished" if info.get("complete") else "unfinished"
    maker = KIND_COMMANDS.get(str(found), "another command")
    return (
        f"{url}: is a {state} {found} store (made by {maker}), not a {asked} store; sdfkit will not replace "
        "it: choose another -o path, or pass --overwrite to delete it and write a new one"
    )


def _append(group: zarr.Group, url, metas: Sequence[ShapeMeta], source: Mapping[str, Any]) -> bool:
    """Add the shapes of ``metas`` a store does not have yet, when its own are unchanged.

    Existing rows are not touched: the arrays grow, the new rows are pending. Returns False when
    the store cannot take them (a shape of it was removed, changed or moved to another split, or
    the store predates fingerprints); raises nothing.
    """
    if "meta/fingerprint" not in group:
        return False
    ids = as_str(group["meta/id"][:])
    prints = as_str(group["meta/fingerprint"][:])
    splits = as_str(group["meta/split"][:])
    new = {m.id: m for m in metas}
    for shape_id, fingerprint, split in zip(ids, prints, splits, strict=True):
        meta = new.get(shape_id)
        if meta is None or meta.fingerprint != fingerprint or meta.split != split:
            return False
    known = set(ids.tolist())
    added = [m for m in metas if m.id not in known]
    if not added:
        return False
    n, total = len(ids), len(ids) + len(added)
    for name in _array_names(group):
        array = group[name]
        array.resize((total, *array.shape[1:]))
    rows = slice(n, total)
    group["meta/id"][rows] = np.array([m.id for m in added], dtype=object)
    group["meta/category"][rows] = np.array([m.category for m in added], dtype=object)
    group["meta/label"][rows] = np.array([m.label for m in added], dtype=np.int64)
    group["meta/split"][rows] = np.array([m.split for m in added], dtype=object)
    group["meta/fingerprint"][rows] = np.array([m.fingerprint for m in added], dtype=object)
    group["meta/status"][rows] = np.zeros(len(added), dtype=np.uint8)
    group["meta/error"][rows] = np.array([""] * len(added), dtype=object)
    StoreState.read(group).record_append(source, len(added)).write(group)  # its layers have pending rows too
    return True


def _array_names(group: zarr.Group) -> list[str]:
    names = []
    for key, member in group.members(max_depth=None):
        if isinstance(member, zarr.Array):
            names.append(key)
    return names


def store_order(group: zarr.Group, metas: Sequence[ShapeMeta]) -> list[int]:
    """Index into ``metas`` of each row of the store (after an append the new shapes follow the
    old ones, whatever their order in the source)."""
    where = {m.id: k for k, m in enumerate(metas)}
    return [where[i] for i in as_str(group["meta/id"][:])]


def _remote_exists(url) -> bool:
    try:
        zarr.open_group(str(url), mode="r")
    except Exception:
        return False
    return True


def _delete(url) -> None:
    partial.clear(str(url))  # rows kept for resuming belong to the store being replaced
    local = local_path(url)
    if local is not None:
        shutil.rmtree(local)
    else:
        zarr.open_group(str(url), mode="w")  # mode "w" clears the group's keys


def write_shard(
    group: zarr.Group,
    shard: int,
    arrays: Mapping[str, np.ndarray],
    status: np.ndarray,
    errors: Sequence[str],
    prefix: str = "meta",
) -> None:
    """Write every array's rows of one shard, then its status (the completion marker).

    arrays : name -> (rows, ...) for each data array of the store
    status : (rows,) uint8, 1 ok or 2 failed
    """
    size = StoreState.read(group).shard_size
    start = shard * size
    stop = start + len(status)
    ok = np.asarray(status) == STATUS_OK
    for name, block in arrays.items():
        array = group[name]
        # the direct writer wins on small rows (3.6x on 64 x 64 grids), zarr's own on large whole
        # rows (250,000 x 3 points in one chunk: 0.6x), where compressing dominates; rows chunked
        # along their samples go through the direct writer, which lays each row's chunks out in
        # order (a window is then one read) (benchmarks/shard_writer.py)
        windowed = array.shards is not None and array.ndim > 1 and array.chunks[1] < array.shape[1]
        if can_encode(array) and (windowed or block[0].nbytes <= DIRECT_ROW_BYTES):
            write_shard_block(array, shard, block, present=ok)  # failed rows stay absent: fill value
        else:
            block = np.array(block, copy=True)
            block[~ok] = array.fill_value  # failed rows hold the fill value, as the format says
            array[start:stop] = block
    group[f"{prefix}/error"][start:stop] = np.array(list(errors), dtype=object)
    group[f"{prefix}/status"][start:stop] = np.asarray(status, dtype=np.uint8)


def mark_complete(group: zarr.Group, summary: Mapping[str, Any]) -> None:
    """Flag the store complete once every shape has a final status, after writing the copies of
    its ``meta/*`` columns that readers open it by (:func:`write_column_copies`)."""
    status = read_status(group)
    if (status == STATUS_PENDING).any():
        raise StoreError(f"{group.store}: {int((status == 0).sum())} shapes are still pending")
    write_column_copies(group, status)
    StoreState.read(group).mark_complete(summary, column_copies=True).write(group)


def write_column_copies(group: zarr.Group, status: np.ndarray) -> None:
    """``columns/<name>``: each of :data:`COPIED_COLUMNS` of ``meta/`` whole in one chunk, for
    readers on object storage, where ``meta/<name>`` is n / 8 chunks (one per shard: one writer
    each) and so n / 8 requests; 6 instead of 150 for 200 shapes, 6 instead of 375,000 for
    500,000. Written by the one process that finishes a run, before the state says complete; the
    state's ``column_copies`` says they match ``meta/`` (docs/format.md)."""
    specs = {spec.name.split("/")[1]: spec for spec in META_SPECS}
    for name in COPIED_COLUMNS:
        values = status if name == "status" else group[f"meta/{name}"][:]
        spec = specs[name]
        copy = group.create_array(
            f"columns/{name}",
            shape=(len(values),),
            chunks=(max(1, len(values)),),
            dtype=str if spec.dtype == "str" else spec.dtype,
            fill_value=spec.fill_value,
            compressors=_compressor(spec.dtype),
            overwrite=True,
        )
        copy[:] = values
