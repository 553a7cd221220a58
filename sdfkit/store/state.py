"""A store's state: its root attribute ``sdfkit`` (docs/format.md), read and written here only.

The attribute is one JSON object. What it holds and how it changes:

- **made**: ``format_version``, ``kind``, ``created``, ``sdfkit_version``, ``source``,
  ``parameters``, ``shard_size``, ``arrays``, ``specs``;
- **state**: ``initialized`` (false until every array exists: a creation killed before that is
  made again), ``complete`` (true once every shape has a final status; written last),
  ``finished`` and ``summary`` with it, ``column_copies`` with it (``columns/*`` hold the
  ``meta/*`` columns whole: read only while ``complete``), ``appended`` (one entry per run that
  added shapes);
- **layers** (``voxels`` and the like: arrays added to a finished store by a later command): an
  object per layer under its prefix, with the layer's parameters, ``initialized``, ``complete``,
  ``finished``, ``ok`` and ``failed``; their prefixes listed in ``layers``. A store written before
  that list existed names its layers by the objects themselves (those with ``initialized``).

Every change is a method of :class:`StoreState` that :meth:`StoreState.write` then stores in one
attribute write, so a kill leaves the previous state or the next, never a mix.
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

import zarr

__all__ = ["StoreState"]


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class StoreState:
    """The root attribute ``sdfkit`` of a store, as an object with explicit transitions."""

    def __init__(self, info: Mapping[str, Any]):
        self._info = copy.deepcopy(dict(info))

    # reading -------------------------------------------------------------------------------

    @classmethod
    def read(cls, group: zarr.Group) -> StoreState:
        return cls(group.attrs["sdfkit"])

    def as_dict(self) -> dict:
        """A copy of the attribute, as written."""
        return copy.deepcopy(self._info)

    def get(self, key: str, default=None):
        return copy.deepcopy(self._info.get(key, default))

    @property
    def kind(self) -> str | None:
        return self._info.get("kind")

    @property
    def shard_size(self) -> int:
        return int(self._info["shard_size"])

    @property
    def parameters(self) -> dict:
        return dict(self._info.get("parameters") or {})

    @property
    def source(self) -> dict:
        return dict(self._info.get("source") or {})

    @property
    def arrays(self) -> list[str]:
        return list(self._info.get("arrays", []))

    @property
    def initialized(self) -> bool:
        """False while a creation is under way (its arrays may be missing); stores that predate the
        flag are initialized."""
        return self._info.get("initialized") is not False

    @property
    def complete(self) -> bool:
        return bool(self._info.get("complete"))

    def layer_names(self) -> list[str]:
        """The prefixes of the layers added to the store (``voxels`` ...)."""
        if "layers" in self._info:
            return list(self._info["layers"])
        return [k for k, v in self._info.items() if isinstance(v, Mapping) and "initialized" in v]

    def layer(self, prefix: str) -> dict | None:
        """A layer's parameters and state, or None when the store has no such layer."""
        value = self._info.get(prefix)
        return dict(value) if isinstance(value, Mapping) else None

    # transitions ---------------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        *,
        format_version: int,
        kind: str,
        sdfkit_version: str,
        source: Mapping[str, Any],
        parameters: Mapping[str, Any],
        shard_size: int,
        arrays: Sequence[str],
        specs: Mapping[str, Any],
    ) -> StoreState:
        """The state of a store being created: not initialized, not complete."""
        return cls(
            {
                "format_version": format_version,
                "kind": kind,
                "created": _now(),
                "sdfkit_version": sdfkit_version,
                "source": dict(source),
                "parameters": dict(parameters),
                "shard_size": shard_size,
                "arrays": list(arrays),
                "specs": dict(specs),
                "initialized": False,
                "complete": False,
            }
        )

    def mark_initialized(self) -> StoreState:
        """Every array exists (the ``meta/*`` columns written)."""
        self._info["initialized"] = True
        return self

    def mark_complete(self, summary: Mapping[str, Any], *, column_copies: bool = False) -> StoreState:
        """Every shape has a final status (``column_copies``: and ``columns/*`` were just written
        from ``meta/*``)."""
        self._info.update(complete=True, finished=_now(), summary=dict(summary), column_copies=column_copies)
        return self

    @property
    def column_copies(self) -> bool:
        """Whether ``columns/*`` hold the ``meta/*`` columns as they are: written when the run
        finished, and the store complete since."""
        return self.complete and bool(self._info.get("column_copies"))

    def record_append(self, source: Mapping[str, Any], shapes: int) -> StoreState:
        """``shapes`` new pending rows: the store and every layer it has are unfinished again."""
        history = list(self._info.get("appended", []))
        history.append({"at": _now(), "shapes": shapes})
        self._info.update(source=dict(source), complete=False, appended=history)
        self._info.pop("summary", None)
        for prefix in self.layer_names():
            if self._info[prefix].get("initialized"):
                self._info[prefix]["complete"] = False
        return self

    def appended_last(self) -> int:
        """Shapes added by the last run that added any (0: none ever)."""
        history = self._info.get("appended", [])
        return int(history[-1]["shapes"]) if history else 0

    def start_layer(self, prefix: str, parameters: Mapping[str, Any]) -> list[str]:
        """Begin (or begin again) a layer: its arrays of any earlier attempt leave the store's
        lists, and the layer is not initialized. Returns the arrays to delete."""
        old = [a for a in self.arrays if a.startswith(f"{prefix}/")]
        self._info["arrays"] = [a for a in self.arrays if a not in old]
        self._info["specs"] = {k: v for k, v in self._info.get("specs", {}).items() if k not in old}
        self._info[prefix] = {**dict(parameters), "initialized": False, "complete": False}
        self._info["layers"] = [*(n for n in self.layer_names() if n != prefix), prefix]
        return old

    def mark_layer_initialized(self, prefix: str) -> StoreState:
        """The layer's arrays exist."""
        self._info[prefix]["initialized"] = True
        return self

    def finish_layer(self, prefix: str, specs: Mapping[str, Any], ok: int, failed: int) -> StoreState:
        """Every row of the layer has a final status: its arrays join the store's lists."""
        self._info[prefix].update(initialized=True, complete=True, finished=_now(), ok=ok, failed=failed)
        self._info["arrays"] = [*self.arrays, *(name for name in specs if name not in self.arrays)]
        self._info["specs"] = {**self._info.get("specs", {}), **dict(specs)}
        if prefix not in self.layer_names():
            self._info["layers"] = [*self.layer_names(), prefix]
        return self

    def write(self, group: zarr.Group) -> None:
        """Store the state: one attribute write."""
        group.attrs["sdfkit"] = self.as_dict()
