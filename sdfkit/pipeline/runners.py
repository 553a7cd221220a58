"""Runners: execute shard tasks in this process, in local worker processes, or on a Dask cluster.

A shard task computes every shape of one shard and writes that shard itself (one writer per
shard), so results never travel back through the parent; only a small report does.

With ``isolate=True`` a crash inside a native library (a segfault in a mesh library, say) takes
down one worker process, not the run: the shards that were in flight run again one at a time,
and the one that crashes again runs shape by shape, each in a fresh process, so that only the
shape that crashes is marked failed.

:class:`Limits` cap each shape's seconds and its worker's resident memory: a watchdog thread in
the worker records the shape as failed ("over the time limit", "over the memory limit") among the
rows a killed run keeps (:mod:`sdfkit.store.partial`) and ends the worker process; the pool is
replaced and the shard runs on without computing that shape again.

Worker processes start from a fork server (a process that has run nothing but imports), never
as forks of the process that runs the tasks: manifold3d and open3d run TBB thread pools, and a
process forked from one that has used them can wait forever on a pool thread that fork did not
copy (seen in CI: a pool worker stuck in ``manifold::Manifold`` after its parent, a pytest worker,
had signed meshes itself).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import zarr

from sdfkit.errors import SdfkitError, Skipped
from sdfkit.store import partial
from sdfkit.store.format import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, ArraySpec, as_str, write_shard
from sdfkit.store.state import StoreState

__all__ = ["Limits", "ShardReport", "ShardTask", "connect", "run_shard", "run_tasks", "default_workers"]

CRASH_MESSAGE = "the worker process crashed on this shape (a native library failed); it was skipped"
SKIPPED = "skipped: "
"""How the error of a shape skipped on purpose begins (:class:`~sdfkit.errors.Skipped`): its row
gets status skipped, not failed."""


@dataclass(frozen=True)
class Limits:
    """Caps per shape in worker processes (``prepare-shapenet --time-limit``, ``--memory-limit``)."""

    seconds: float | None = None
    """Wall-clock seconds one shape may take."""
    memory: int | None = None
    """Bytes of resident memory the worker process may hold while computing a shape."""


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to compute and write one shard."""

    url: str
    shard: int
    jobs: Sequence[Any]
    process: Callable[[Any], dict]
    specs: Sequence[ArraySpec]
    prefix: str = "meta"
    """Where the shard's status and error columns are: ``<prefix>/status``, ``<prefix>/error``."""
    progress: Any = None
    """A queue (``put(1)`` per shape computed) for progress finer than a shard, or None."""
    limits: Limits | None = None
    """Caps per shape, enforced where the shard runs in a worker process (not in the parent)."""
    start: int | None = None
    """The store row of the shard's first shape; None: ``shard`` times the store's shard size."""


@dataclass
class ShardReport:
    shard: int
    done: int
    failed: int
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(shape id, message) of the failures."""
    skipped: int = 0
    """Shapes skipped on purpose (their reasons are not in ``errors``)."""


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _open(url: str) -> zarr.Group:
    """The store, opened afresh: nothing of an earlier run in this process is reused."""
    return zarr.open_group(url, mode="r+")


def _start(task: ShardTask) -> int:
    """The store row of the task's first shape."""
    if task.start is not None:
        return task.start
    return task.shard * StoreState.read(zarr.open_group(task.url, mode="r")).shard_size


def _compute(task: ShardTask, row: int, shape_id: str | None = None):
    """(result dict, None) or (None, one-line error) for one shape."""
    guard = _Guard(task, row, shape_id) if _guarded(task) else None
    try:
        if guard is not None:
            guard.start()
        return task.process(task.jobs[row]), None
    except Skipped as exc:
        return None, SKIPPED + _one_line(exc)
    except Exception as exc:  # one bad shape never stops a run
        return None, _one_line(exc)
    finally:
        if guard is not None:
            guard.stop()


def _guarded(task: ShardTask) -> bool:
    """Whether ``task``'s limits apply here: it has some, and this is a worker process (a watchdog
    ends the process it runs in; the parent of a run is not one to end)."""

    limits = task.limits
    return limits is not None and (limits.seconds or limits.memory) and multiprocessing.parent_process() is not None


def resident_memory() -> int:
    """This process's resident memory in bytes (Linux: /proc/self/statm; elsewhere its peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _gigabytes(size: float) -> str:
    return f"{size / 2**30:.3g} GB"


class _Guard:
    """A watchdog for one shape in a worker process: past the time limit, or with the process's
    resident memory over the memory limit, it saves the shape as failed among the rows a killed
    run keeps and ends the process at once (native code cannot be interrupted otherwise)."""

    INTERVAL = 0.05

    def __init__(self, task: ShardTask, row: int, shape_id: str | None):

        self.task, self.row, self.id = task, row, shape_id
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self.began = time.monotonic()
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    def _reason(self) -> str | None:
        limits = self.task.limits
        if limits.seconds and time.monotonic() - self.began > limits.seconds:
            return f"over the time limit ({limits.seconds:g} s per shape): its worker was stopped and replaced"
        if limits.memory and resident_memory() > limits.memory:
            return (
                f"over the memory limit ({_gigabytes(limits.memory)} per worker): its worker was stopped and replaced"
            )
        return None

    def _watch(self) -> None:
        while not self.done.wait(self.INTERVAL):
            reason = self._reason()
            if reason is None:
                continue
            shape_id = self.id if self.id is not None else str(getattr(self.task.jobs[self.row], "id", self.row))
            try:
                _keep(self.task, self.row, shape_id, (None, reason))
            finally:
                os._exit(70)


def _write(task: ShardTask, outcomes: Sequence[tuple[dict | None, str | None]]) -> ShardReport:
    rows = len(task.jobs)
    blocks = {
        s.name: np.full((rows, *s.shape), s.fill_value, dtype=object if s.dtype == "str" else s.dtype)
        for s in task.specs
    }
    status = np.full(rows, STATUS_OK, dtype=np.uint8)
    errors = [""] * rows
    report = ShardReport(task.shard, 0, 0)
    for row, (result, error) in enumerate(outcomes):
        if error is None:
            try:
                for name, value in result.items():
                    blocks[name][row] = value
            except Exception as exc:  # a result of the wrong shape: this shape's fault alone
                error = f"bad result: {_one_line(exc)}"
        if error is None:
            report.done += 1
            continue
        errors[row] = error
        for spec in task.specs:  # no half-filled rows
            blocks[spec.name][row] = spec.fill_value
        if error.startswith(SKIPPED):
            status[row] = STATUS_SKIPPED
            report.skipped += 1
            continue
        status[row] = STATUS_FAILED
        report.failed += 1
        report.errors.append((str(getattr(task.jobs[row], "id", row)), error))
    write_shard(_open(task.url), task.shard, blocks, status, errors, task.prefix)
    return report


def _kept(task: ShardTask) -> tuple[list, list[str]]:
    """Rows of the shard that need no computing, and the shard's shape ids (as the store has
    them). Rows with a final status already (a shard that grew when shapes were appended) are
    read back from the store, so that they are written unchanged; rows an earlier, killed run
    finished come from :mod:`sdfkit.store.partial`. Each as (values, None) or (None, error);
    None for the rows to compute."""
    group = _open(task.url)
    start = _start(task)
    rows = slice(start, start + len(task.jobs))
    status = np.asarray(group[f"{task.prefix}/status"][rows])
    ids = as_str(group["meta/id"][rows]).tolist()
    pending = {start + row: ids[row] for row in np.nonzero(status == 0)[0]}
    saved = partial.load_rows(task.url, task.prefix, task.shard, pending)
    errors = group[f"{task.prefix}/error"][rows] if status.any() else None
    kept = []
    for row, code in enumerate(status):
        if code == STATUS_OK:
            kept.append(({s.name: group[s.name][start + row] for s in task.specs}, None))
        elif code in (STATUS_FAILED, STATUS_SKIPPED):
            kept.append((None, str(errors[row])))
        else:
            kept.append(saved.get(start + row))
    return kept, ids


def _keep(task: ShardTask, row: int, shape_id: str, outcome: tuple) -> tuple:
    """Save a row just computed beside the store, so that a kill does not lose it; returns it."""
    start = _start(task)
    partial.save_row(task.url, task.prefix, task.shard, start + row, shape_id, *outcome)
    return outcome


def run_shard(task: ShardTask) -> ShardReport:
    """Compute one shard's shapes and write them. A shape that raises is recorded as failed with
    its one-line error; it never stops the shard. Rows already final, or finished by a killed
    run, are written as they were, never computed again."""
    kept, ids = _kept(task)
    outcomes, unreported, last = [], 0, time.monotonic()
    for row, k in enumerate(kept):
        outcomes.append(k if k is not None else _keep(task, row, ids[row], _compute(task, row, ids[row])))
        unreported += k is None
        # a few reports a second: one per shape would cost an IPC round trip per 2D digit
        if task.progress is not None and unreported and time.monotonic() - last > 0.2:
            task.progress.put(unreported)
            unreported, last = 0, time.monotonic()
    if task.progress is not None and unreported:
        task.progress.put(unreported)
    report = _write(task, outcomes)
    partial.clear(task.url, task.prefix, task.shard)  # the shard holds them now
    return _without_kept(report, task, kept)


def _without_kept(report: ShardReport, task: ShardTask, kept: list) -> ShardReport:
    """The report counts only the rows this run computed."""
    old = {
        str(getattr(task.jobs[row], "id", row))
        for row, k in enumerate(kept)
        if k is not None and k[1] is not None and not k[1].startswith(SKIPPED)
    }
    report.done -= sum(1 for k in kept if k is not None and k[1] is None)
    report.failed -= len(old)
    report.skipped -= sum(1 for k in kept if k is not None and k[1] is not None and k[1].startswith(SKIPPED))
    report.errors = [e for e in report.errors if e[0] not in old]
    return report


def _context(task: ShardTask):
    """The multiprocessing context of every worker process here: a fork server (see the module's
    text). The server, started by the first pool or manager of this process, imports this module
    and ``task``'s per-shape function's module once, so that its workers start with them loaded."""

    context = multiprocessing.get_context("forkserver")
    function = getattr(task.process, "func", task.process)  # functools.partial or a plain function
    context.set_forkserver_preload([__name__, getattr(function, "__module__", None) or __name__])
    return context


def _pool(workers: int, task: ShardTask) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes for tasks like ``task``."""
    return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=_context(task))


def _compute_in_fresh_process(task: ShardTask, row: int, shape_id: str):
    with _pool(1, task) as pool:
        try:
            return pool.submit(_compute, task, row, shape_id).result()
        except BrokenProcessPool:
            # a watchdog that stopped the process kept the reason among the finished rows
            start = _start(task)
            saved = partial.load_rows(task.url, task.prefix, task.shard, {start + row: shape_id}).get(start + row)
            return saved if saved is not None else (None, CRASH_MESSAGE)


def _run_isolated(task: ShardTask) -> ShardReport:
    """A shard whose process crashed: run it alone, and if it crashes again, shape by shape."""
    with _pool(1, task) as pool:
        try:
            return pool.submit(run_shard, task).result()
        except BrokenProcessPool:
            pass
    kept, ids = _kept(task)
    outcomes = [
        k if k is not None else _keep(task, row, ids[row], _compute_in_fresh_process(task, row, ids[row]))
        for row, k in enumerate(kept)
    ]
    report = _write(task, outcomes)
    partial.clear(task.url, task.prefix, task.shard)
    return _without_kept(report, task, kept)


class _Calls:
    """A queue stand-in for shards computed in this process: calls back at once."""

    def __init__(self, callback):
        self.callback = callback

    def put(self, n):
        self.callback(n)


def _drain(queue, on_shape) -> None:
    import queue as queues

    count = 0
    while True:
        try:
            count += queue.get_nowait()
        except (queues.Empty, OSError, EOFError):
            break
    if count:
        on_shape(count)


def run_tasks(
    tasks: Sequence[ShardTask], *, workers: int, isolate: bool = False, client=None, on_shape=None
) -> Iterator[ShardReport]:
    """Run shard tasks, yielding each report as its shard is written.

    client : a Dask ``distributed.Client`` (see :func:`connect`); its workers must reach the
        store's URL. Without one, ``workers`` local processes run the tasks (``<= 1`` without
        ``isolate``: this process).
    on_shape : called with a count as shapes finish inside shards (local runs; a Dask run reports
        per shard only)
    """
    if client is not None:
        yield from _run_dask(tasks, client)
        return
    if not tasks:
        return
    if workers <= 1 and not isolate:
        for task in tasks:
            yield run_shard(replace(task, progress=_Calls(on_shape)) if on_shape else task)
        return
    if on_shape is not None:
        manager = _context(tasks[0]).Manager()
        try:
            queue = manager.Queue()
            yield from _run_pool([replace(t, progress=queue) for t in tasks], workers, isolate, queue, on_shape)
            _drain(queue, on_shape)
        finally:
            manager.shutdown()
        return
    yield from _run_pool(tasks, workers, isolate, None, None)


def _run_pool(tasks, workers, isolate, queue, on_shape) -> Iterator[ShardReport]:
    pending = list(reversed(tasks))
    while pending:
        crashed: list[ShardTask] = []
        with _pool(workers, pending[-1]) as pool:
            in_flight: dict = {}
            try:
                while pending or in_flight:
                    while pending and len(in_flight) < 2 * max(1, workers):
                        task = pending.pop()
                        in_flight[pool.submit(run_shard, task)] = task
                    finished, _ = wait(in_flight, timeout=0.25 if queue else None, return_when=FIRST_COMPLETED)
                    if queue is not None:
                        _drain(queue, on_shape)
                    for future in finished:
                        task = in_flight.pop(future)
                        try:
                            yield future.result()
                        except BrokenProcessPool:
                            if not isolate:
                                raise
                            crashed.append(task)
                    if crashed:  # the pool is dead: every task in flight has to run again
                        crashed.extend(in_flight.values())
                        in_flight.clear()
                        break
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        for task in crashed:
            yield _run_isolated(task)


def connect(scheduler: str, *, timeout: str = "10s"):
    """A Dask ``distributed.Client`` for a scheduler address (``tcp://host:port``)."""

    try:
        # the cluster extra (optional)
        from distributed import Client
    except ImportError:
        raise SdfkitError("--scheduler needs Dask's distributed scheduler: pip install 'sdfkit[cluster]'") from None
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SdfkitError(
            f"cannot reach the Dask scheduler at {scheduler} ({' '.join(str(exc).split())}); check the address"
        ) from None


def _run_dask(tasks: Sequence[ShardTask], client) -> Iterator[ShardReport]:
    # the cluster extra (optional)
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    if not tasks:
        return
    futures = client.map(run_shard, list(tasks), pure=False, retries=0)
    by_future = dict(zip(futures, tasks, strict=True))
    for future in as_completed(futures):
        try:
            yield future.result()
        except KilledWorker:  # the task crashed its workers: isolate it here
            yield _run_isolated(by_future[future])
