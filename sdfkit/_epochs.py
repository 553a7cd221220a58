"""An epoch number that reaches the ``DataLoader`` workers a dataset or sampler was sent to.

``set_epoch`` runs in the training loop's process. A worker started after it (the default: the
workers start afresh each epoch) gets the number with its copy of the dataset; a worker that
outlives an epoch (``persistent_workers=True``) keeps the copy it started with, so a plain
attribute would leave it at its first epoch, reading that epoch's windows again every epoch.
:class:`SharedEpoch` keeps the number in shared memory instead: forked workers inherit it, and
spawned ones are sent it while they start. Copied or pickled at any other time, the copy holds
the number alone.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context

__all__ = ["SharedEpoch"]

_NONE = -(2**63)  # no epoch set


class SharedEpoch:
    """An ``int`` or None, read and set with :meth:`get` and :meth:`set`."""

    def __init__(self) -> None:
        self._shared = multiprocessing.RawValue("q", _NONE)
        self._own = _NONE

    def get(self) -> int | None:
        raw = self._shared.value if self._shared is not None else self._own
        return None if raw == _NONE else int(raw)

    def set(self, value: int | None) -> None:
        raw = _NONE if value is None else int(value)
        if self._shared is not None:
            self._shared.value = raw
        else:
            self._own = raw

    def __getstate__(self):
        if multiprocessing.context.get_spawning_popen() is not None:  # a worker being started
            return {"_shared": self._shared, "_own": _NONE}
        value = self.get()
        return {"_shared": None, "_own": _NONE if value is None else value}
