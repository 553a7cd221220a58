"""One run at a time per store: a lock object beside the store that a killed run does not leave
stuck.

The lock is ``<store>.lock`` (a file next to a local store, an object next to a remote one),
holding who took it (host, process id, command, start time) and a heartbeat that the holder
rewrites every few seconds. A second run finds it and stops with one line naming the holder. A
lock whose holder is gone is taken over: at once when the holder was a process on this machine
that no longer exists, otherwise once its heartbeat is older than ``SDFKIT_LOCK_TIMEOUT`` seconds
(default 60).

Local files are created exclusively (``O_EXCL``). Object stores have no such primitive in
fsspec: the lock is written with a random token and read back after a pause; of two runs that
write it at about the same time, the one whose token is not there steps back.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import fsspec

from sdfkit.errors import StoreLockedError, describe_os_error
from sdfkit.store.format import local_path as _local

__all__ = ["StoreLock", "store_lock", "lock_url"]

HEARTBEAT_SECONDS = 5.0
SETTLE_SECONDS = 1.0
"""Object stores: how long a written lock must survive before its writer trusts it."""


def _timeout() -> float:
    return float(os.environ.get("SDFKIT_LOCK_TIMEOUT", "60"))


def lock_url(url: str) -> str:
    """Where the lock of the store at ``url`` lives: ``<url>.lock``."""
    return str(url).rstrip("/") + ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@dataclass
class StoreLock:
    """A held lock; :meth:`release` (or leaving ``with store_lock(...)``) gives it back."""

    url: str
    token: str
    record: dict
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _write(self, exclusive: bool = False) -> None:
        data = json.dumps(self.record).encode()
        local = _local(self.url)
        if local is None:
            with fsspec.open(self.url, "wb") as f:
                f.write(data)
            return
        if exclusive:
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return
        tmp = local.with_name(f"{local.name}.{self.token}")
        tmp.write_bytes(data)
        os.replace(tmp, local)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            holder = _read(self.url)
            if holder is not None and holder.get("token") != self.token:
                return  # taken over (we were thought dead): never write over another run's lock
            self.record["beat"] = time.time()
            try:
                self._write()
            except OSError:  # a missed beat is harmless; the next one tries again
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_SECONDS + 1)
        holder = _read(self.url)
        if holder is not None and holder.get("token") == self.token:
            _delete(self.url)

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read(url: str) -> dict | None:
    local = _local(url)
    try:
        if local is not None:
            data = local.read_bytes()
        else:
            import fsspec

            with fsspec.open(url, "rb") as f:
                data = f.read()
    except (FileNotFoundError, OSError):
        return None
    try:
        record = json.loads(data)
    except ValueError:
        return {}  # being written: treat as held, with no details
    return record if isinstance(record, dict) else {}


def _delete(url: str) -> None:
    local = _local(url)
    try:
        if local is not None:
            local.unlink()
        else:
            import fsspec

            fs, path = fsspec.core.url_to_fs(url)
            fs.rm(path)
    except (FileNotFoundError, OSError):
        pass


def _stale(record: dict) -> bool:
    if record.get("host") == socket.gethostname() and isinstance(record.get("pid"), int):
        if not _alive(record["pid"]):
            return True
    beat = record.get("beat")
    return isinstance(beat, int | float) and time.time() - beat > _timeout()


def _describe(record: dict) -> str:
    if not record:
        return "another sdfkit run"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started", 0)))
    return f"another sdfkit run ({record.get('command', '?')}, pid {record.get('pid')} on {record.get('host')}, started {started})"


def store_lock(store_url: str, *, command: str | None = None) -> StoreLock:
    """Take the lock of the store at ``store_url``, or raise :class:`StoreLockedError`."""
    url = lock_url(store_url)
    token = uuid.uuid4().hex
    now = time.time()
    record = {
        "token": token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": command or " ".join(["sdfkit", *sys.argv[1:2]]),
        "started": now,
        "beat": now,
    }
    lock = StoreLock(url, token, record)
    local = _local(url)
    if local is not None:
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from sdfkit.errors import StoreError

            raise StoreError(f"{store_url}: cannot write here: {describe_os_error(exc)}") from None
    for _ in range(3):
        holder = _read(url)
        if holder is not None:
            if not _stale(holder):
                raise StoreLockedError(
                    f"{store_url}: {_describe(holder)} is writing this store; wait for it to finish or stop it "
                    f"(a lock left by a run that died is taken over after {_timeout():.0f} s, at once on the same machine)"
                )
            _delete(url)
        try:
            if local is not None:
                lock._write(exclusive=True)
            else:
                lock._write()
                time.sleep(SETTLE_SECONDS)
                mine = _read(url)
                if mine is None or mine.get("token") != token:
                    continue  # another run wrote at the same moment: look again
        except FileExistsError:
            continue  # another run created it between our look and our write
        except OSError as exc:
            from sdfkit.errors import StoreError

            raise StoreError(f"{store_url}: cannot write its lock: {describe_os_error(exc)}") from None
        lock._thread = threading.Thread(target=lock._beat, name="sdfkit-lock", daemon=True)
        lock._thread.start()
        return lock
    holder = _read(url) or {}
    raise StoreLockedError(
        f"{store_url}: {_describe(holder)} took this store at the same moment; wait for it to finish"
    )
