"""One pipeline for every ``prepare-*`` command.

A source makes a :class:`Plan` (what shapes there are, the jobs that compute them, the arrays
they fill and the parameters that define them); :func:`build_store` creates or resumes the store,
hands the pending shards to a runner and flags the store complete at the end.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdfkit.lock import store_lock
from sdfkit.parallel import ShardTask, connect, run_tasks
from sdfkit.store import (
    STATUS_FAILED,
    STATUS_OK,
    ArraySpec,
    ShapeMeta,
    mark_complete,
    pending_shards,
    prepare_store,
    read_status,
    shard_ranges,
    store_order,
)

__all__ = ["Plan", "RunSummary", "build_store"]


@dataclass(frozen=True)
class Plan:
    """What a source asks the pipeline to build."""

    kind: str
    """Store kind: ``"mnist"`` or ``"shapenet"``."""
    metas: Sequence[ShapeMeta]
    jobs: Sequence[Any]
    """One picklable job per shape, in store order."""
    process: Callable[[Any], dict]
    """Pure per-shape function: job -> {array name: value}; raises for a bad shape."""
    specs: Sequence[ArraySpec]
    parameters: dict
    source: dict
    shard_size: int


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
    """split -> {"ok": n, "failed": n} over the whole store."""
    failures: list = field(default_factory=list)
    """(id, error) of failed shapes, over the whole store."""
    bytes: int | None = None
    missing: list = field(default_factory=list)
    """Shapes the split files list that are not in the source (ids)."""
    appended: int = 0
    """Shapes this run added to an existing store."""


def _size_on_disk(url: str) -> int | None:
    if "://" in url:
        return None
    path = Path(url)
    if not path.exists():
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

    workers, scheduler, isolate : how to run the shards (see :func:`sdfkit.parallel.run_tasks`)
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
    group, state = prepare_store(
        url,
        kind=plan.kind,
        metas=plan.metas,
        specs=plan.specs,
        parameters=plan.parameters,
        source=plan.source,
        shard_size=plan.shard_size,
        overwrite=overwrite,
    )
    jobs = plan.jobs
    if state == "appended":  # the new shapes follow the old ones
        jobs = [plan.jobs[k] for k in store_order(group, plan.metas)]
    ranges = shard_ranges(len(plan.metas), plan.shard_size)
    todo = pending_shards(group) if state != "complete" else []
    total = len(plan.metas)
    done = total - sum(ranges[k][1] - ranges[k][0] for k in todo)
    if progress and todo:
        progress(done, total)
    tasks = [ShardTask(url, k, jobs[ranges[k][0] : ranges[k][1]], plan.process, plan.specs) for k in todo]
    computed = 0
    ticks = 0
    base = done

    def on_shape(count: int) -> None:  # shapes finished inside shards still being computed
        nonlocal ticks
        ticks += count
        if progress:
            progress(min(total, base + max(ticks, computed)), total)

    for report in run_tasks(tasks, workers=workers, isolate=isolate, client=client, on_shape=on_shape):
        computed += report.done + report.failed
        if progress:
            progress(min(total, base + max(ticks, computed)), total)

    status = read_status(group)
    splits = group["meta/split"][:]
    per_split: dict[str, Counter] = {}
    for split, code in zip(splits, status, strict=True):
        per_split.setdefault(str(split), Counter())["ok" if code == STATUS_OK else "failed"] += 1
    failed = status == STATUS_FAILED
    failures = []
    if failed.any():
        ids, errors = group["meta/id"][:], group["meta/error"][:]
        failures = [(str(ids[i]), str(errors[i])) for i in failed.nonzero()[0]]
    summary = {split: {"ok": c["ok"], "failed": c["failed"]} for split, c in sorted(per_split.items())}
    if state != "complete":
        mark_complete(group, {"per_split": summary, "failed": int(failed.sum())})
    appended = 0
    if state == "appended":
        appended = int(group.attrs["sdfkit"]["appended"][-1]["shapes"])
    return RunSummary(
        missing=list(plan.source.get("missing_ids", [])),
        appended=appended,
        url=url,
        state=state,
        seconds=time.perf_counter() - start,
        computed=computed,
        per_split=summary,
        failures=failures,
        bytes=_size_on_disk(url),
    )
