"""One pipeline for every command that computes shapes.

A source makes a :class:`Plan` (what shapes there are, the jobs that compute them, the arrays
they fill and the parameters that define them); :func:`build_store` creates or resumes the store,
hands the pending shards to a runner (``runners``: this process, worker processes or a Dask
cluster) and flags the store complete at the end. A builder that adds arrays to a finished store
(``sdfkit voxelize``) makes a :class:`Layer`; :func:`build_layer` runs it the same way.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdfkit.errors import ParameterMismatchError
from sdfkit.pipeline.runners import Limits, ShardTask, connect, run_tasks
from sdfkit.store import partial
from sdfkit.store.format import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    ArraySpec,
    StoreLayout,
    create_array,
    local_path,
    mark_complete,
    open_store,
    pending_shards,
    prepare_store,
    read_status,
    shard_ranges,
    store_order,
)
from sdfkit.store.lock import store_lock
from sdfkit.store.state import StoreState

__all__ = ["Plan", "RunSummary", "build_store", "Layer", "build_layer"]


@dataclass(frozen=True)
class Plan(StoreLayout):
    """What a source asks the pipeline to build: the store's layout, and the jobs that fill it."""

    jobs: Sequence[Any]
    """One picklable job per shape, in store order."""
    process: Callable[[Any], dict]
    """Pure per-shape function: job -> {array name: value}; raises for a bad shape."""
    limits: Limits | None = None
    """Caps per shape (seconds, worker memory) where shapes run in worker processes."""
    finish: Callable[[Any], None] | None = None
    """Called with the store's group once every shard is written, before the store is flagged
    complete (a run that stops in it does it again): a pass over the whole store, such as marking
    near-duplicates skipped. It must give the same result when run twice."""


@dataclass
class RunSummary:
    url: str
    state: str
    """``created``, ``resumed``, ``appended`` (new shapes added to a finished or unfinished
    store) or ``complete`` (nothing to do)."""
    seconds: float
    computed: int
    """Shapes computed by this run."""
    per_split: dict = field(default_factory=dict)
    """split -> {"ok": n, "failed": n} over the whole store, and "skipped": n where shapes were
    skipped on purpose."""
    failures: list = field(default_factory=list)
    """(id, error) of failed shapes, over the whole store."""
    bytes: int | None = None
    missing: list = field(default_factory=list)
    """Shapes the split files list that are not in the source (ids)."""
    appended: int = 0
    """Shapes this run added to an existing store."""
    skipped: list = field(default_factory=list)
    """(id, reason) of shapes skipped on purpose (a licence, a duplicate), over the whole store."""


def _size_on_disk(url: str) -> int | None:
    path = local_path(url)
    if path is None or not path.exists():
        return None
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_store(
    plan: Plan,
    url: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    isolate: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Create (or resume) the store at ``url`` and compute every pending shape.

    workers, scheduler, isolate : how to run the shards (see :func:`sdfkit.pipeline.runners.run_tasks`)
    progress : called as ``progress(done, total)`` in shapes, at the start and as shapes finish
        (per shard on a Dask cluster).
    """
    url = str(url)
    start = time.perf_counter()
    client = connect(scheduler) if scheduler else None  # before anything is written
    try:
        with store_lock(url):  # one run per store: two would lose each other's shards
            return _build(plan, url, start, workers, client, isolate, overwrite, progress)
    finally:
        if client is not None:
            client.close()


def _build(plan, url, start, workers, client, isolate, overwrite, progress) -> RunSummary:
    group, state = prepare_store(url, plan, overwrite=overwrite)
    jobs = plan.jobs
    if state == "appended":  # the new shapes follow the old ones
        jobs = [plan.jobs[k] for k in store_order(group, plan.metas)]
    ranges = shard_ranges(len(plan.metas), plan.shard_size)
    todo = pending_shards(group) if state != "complete" else []
    total = len(plan.metas)
    done = total - sum(ranges[k][1] - ranges[k][0] for k in todo) + (partial.count_rows(url, "meta") if todo else 0)
    if progress and todo:
        progress(done, total)
    tasks = [
        ShardTask(
            url, k, jobs[ranges[k][0] : ranges[k][1]], plan.process, plan.specs, limits=plan.limits, start=ranges[k][0]
        )
        for k in todo
    ]
    computed = 0
    ticks = 0
    base = done

    def on_shape(count: int) -> None:  # shapes finished inside shards still being computed
        nonlocal ticks
        ticks += count
        if progress:
            progress(min(total, base + max(ticks, computed)), total)

    for report in run_tasks(tasks, workers=workers, isolate=isolate, client=client, on_shape=on_shape):
        computed += report.done + report.failed + report.skipped
        if progress:
            progress(min(total, base + max(ticks, computed)), total)

    if plan.finish is not None and state != "complete":
        plan.finish(group)
    status = read_status(group)
    splits = group["meta/split"][:]
    per_split: dict[str, Counter] = {}
    names = {STATUS_OK: "ok", STATUS_SKIPPED: "skipped"}
    for split, code in zip(splits, status, strict=True):
        per_split.setdefault(str(split), Counter())[names.get(int(code), "failed")] += 1
    failed = status == STATUS_FAILED
    failures, skips = [], []
    if failed.any() or (status == STATUS_SKIPPED).any():
        ids, errors = group["meta/id"][:], group["meta/error"][:]
        failures = [(str(ids[i]), str(errors[i])) for i in failed.nonzero()[0]]
        skips = [(str(ids[i]), str(errors[i])) for i in (status == STATUS_SKIPPED).nonzero()[0]]
    summary = {
        split: {"ok": c["ok"], "failed": c["failed"], **({"skipped": c["skipped"]} if c["skipped"] else {})}
        for split, c in sorted(per_split.items())
    }
    if state != "complete":
        skipped = int((status == STATUS_SKIPPED).sum())
        mark_complete(
            group, {"per_split": summary, "failed": int(failed.sum()), **({"skipped": skipped} if skipped else {})}
        )
        partial.clear(url)  # leftovers of shards written just before a kill
    appended = 0
    if state == "appended":
        appended = StoreState.read(group).appended_last()
    return RunSummary(
        missing=list(plan.source.get("missing_ids", [])),
        appended=appended,
        url=url,
        state=state,
        seconds=time.perf_counter() - start,
        computed=computed,
        per_split=summary,
        failures=failures,
        skipped=skips,
        bytes=_size_on_disk(url),
    )


@dataclass(frozen=True)
class Layer:
    """Arrays a builder adds to a finished store, under a prefix (``voxels/...``), computed shape
    by shape with the store's shards: same runners, same resuming, same lock as a prepare run."""

    prefix: str
    """The arrays' folder, and the root attribute holding the layer's state (``sdfkit[prefix]``)."""
    jobs: Sequence[Any]
    """One per row of the store, in store order."""
    process: Callable[[Any], dict]
    specs: Sequence[ArraySpec]
    """The data arrays, named ``<prefix>/...``; ``<prefix>/status`` and ``<prefix>/error`` come with them."""
    parameters: dict
    """What defines the values: a layer made with others is refused unless ``overwrite``."""


def build_layer(
    layer: Layer,
    url: str | Path,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Add (or finish adding) a layer of arrays to the complete store at ``url``.

    The layer's state lives in the root attribute ``sdfkit[prefix]``: its parameters,
    ``initialized`` (written once its arrays exist), ``complete`` (written last), ``ok``, ``failed``.
    """
    url = str(url)
    start = time.perf_counter()
    with store_lock(url):
        return _build_layer(layer, url, start, workers, overwrite, progress)


def _build_layer(layer: Layer, url, start, workers, overwrite, progress) -> RunSummary:

    prefix = layer.prefix
    group = open_store(url, mode="r+")
    store_state = StoreState.read(group)
    previous = store_state.layer(prefix)
    state = "created"
    if previous:
        same = {k: previous.get(k) for k in layer.parameters} == layer.parameters and previous.get("initialized")
        if same and previous.get("complete"):
            return _layer_summary(group, layer, url, "complete", start, 0)
        if same:
            state = "resumed"
        elif not overwrite and previous.get("initialized"):
            shown = ", ".join(f"{k} {previous.get(k)!r}" for k in layer.parameters)
            raise ParameterMismatchError(
                f"{url}: already has {prefix} arrays made with {shown}; pass --overwrite to replace them"
            )
    columns = (ArraySpec(f"{prefix}/status", (), "uint8", 0), ArraySpec(f"{prefix}/error", (), "str", ""))
    n, size = len(layer.jobs), store_state.shard_size
    if state == "created":
        old = store_state.start_layer(prefix, layer.parameters)
        store_state.write(group)  # first: a kill from here on leaves a layer to make again
        for name in old:
            if name in group:
                del group[name]
        partial.clear(url, prefix)  # rows kept for the layer being replaced
        for spec in (*columns, *layer.specs):
            create_array(group, spec, n, size, overwrite=True)
        store_state.mark_layer_initialized(prefix).write(group)
    ranges = shard_ranges(n, size)
    todo = pending_shards(group, prefix)
    tasks = [
        ShardTask(url, k, layer.jobs[a:b], layer.process, layer.specs, prefix, start=a)
        for k, (a, b) in enumerate(ranges)
        if k in todo
    ]
    done = n - sum(ranges[k][1] - ranges[k][0] for k in todo) + (partial.count_rows(url, prefix) if todo else 0)
    computed = ticks = 0
    base = done
    if progress:
        progress(done, n)

    def on_shape(count: int) -> None:
        nonlocal ticks
        ticks += count
        if progress:
            progress(min(n, base + max(ticks, computed)), n)

    for report in run_tasks(tasks, workers=workers, isolate=True, on_shape=on_shape):
        computed += report.done + report.failed + report.skipped
        if progress:
            progress(min(n, base + max(ticks, computed)), n)
    status = read_status(group, prefix)
    StoreState.read(group).finish_layer(
        prefix,
        {s.name: s.describe() for s in (*columns, *layer.specs)},
        ok=int((status == STATUS_OK).sum()),
        failed=int((status == STATUS_FAILED).sum()),
    ).write(group)
    partial.clear(url, prefix)
    return _layer_summary(group, layer, url, state, start, computed)


def _layer_summary(group, layer: Layer, url, state, start, computed) -> RunSummary:
    status = read_status(group, layer.prefix)
    failed = np.nonzero(status == STATUS_FAILED)[0]
    errors = group[f"{layer.prefix}/error"][:]
    return RunSummary(
        url=url,
        state=state,
        seconds=time.perf_counter() - start,
        computed=computed,
        per_split={"all": {"ok": int((status == STATUS_OK).sum()), "failed": len(failed)}},
        failures=[(str(getattr(layer.jobs[k], "id", k)), str(errors[k])) for k in failed],
        bytes=_size_on_disk(url),
    )
