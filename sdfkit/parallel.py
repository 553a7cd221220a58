"""Runners: execute shard tasks in this process or in local worker processes.

A shard task computes every shape of one shard and writes that shard itself (one writer per
shard), so results never travel back through the parent process; only a small report does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from sdfkit.store import STATUS_FAILED, STATUS_OK, ArraySpec, write_shard

__all__ = ["ShardReport", "ShardTask", "run_shard", "run_tasks", "default_workers"]


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to compute and write one shard."""

    url: str
    shard: int
    jobs: Sequence[Any]
    process: Callable[[Any], dict]
    specs: Sequence[ArraySpec]


@dataclass
class ShardReport:
    shard: int
    done: int
    failed: int
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(shape id, message) of the failures."""


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


_groups: dict[str, zarr.Group] = {}


def _open(url: str) -> zarr.Group:
    group = _groups.get(url)
    if group is None:
        group = _groups[url] = zarr.open_group(url, mode="r+")
    return group


def run_shard(task: ShardTask) -> ShardReport:
    """Compute one shard's shapes and write them. A shape that raises is recorded as failed with
    its one-line error; it never stops the shard."""
    rows = len(task.jobs)
    blocks = {
        s.name: np.full((rows, *s.shape), s.fill_value, dtype=object if s.dtype == "str" else s.dtype)
        for s in task.specs
    }
    status = np.full(rows, STATUS_OK, dtype=np.uint8)
    errors = [""] * rows
    report = ShardReport(task.shard, 0, 0)
    for row, job in enumerate(task.jobs):
        try:
            result = task.process(job)
            for name, value in result.items():
                blocks[name][row] = value
            report.done += 1
        except Exception as exc:  # one bad shape never stops a run
            status[row] = STATUS_FAILED
            errors[row] = _one_line(exc)
            for spec in task.specs:  # no half-filled rows
                blocks[spec.name][row] = spec.fill_value
            report.failed += 1
            report.errors.append((getattr(job, "id", str(row)), errors[row]))
    write_shard(_open(task.url), task.shard, blocks, status, errors)
    return report


def run_tasks(tasks: Sequence[ShardTask], *, workers: int) -> Iterator[ShardReport]:
    """Run shard tasks, yielding each report as its shard is written.

    ``workers <= 1`` runs them in this process. Otherwise a process pool runs them, with a bounded
    number in flight so that a huge job list is not pickled all at once.
    """
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield run_shard(task)
        return
    pending = list(reversed(tasks))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        in_flight = set()
        try:
            while pending or in_flight:
                while pending and len(in_flight) < 2 * workers:
                    in_flight.add(pool.submit(run_shard, pending.pop()))
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise
