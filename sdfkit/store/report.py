"""What ``sdfkit info`` reports about a store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from sdfkit.errors import FormatError
from sdfkit.store.format import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, as_str, local_path, open_store, read_status
from sdfkit.store.state import StoreState

__all__ = ["store_report"]


def _stored_bytes(root: Path | None, name: str) -> int | None:
    if root is None:
        return None
    folder = root / name
    if not folder.exists():
        return None
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def store_report(url, *, max_failures: int = 10) -> dict:
    """A JSON-able description of a store (complete or not)."""
    group = open_store(url, mode="r")
    info = StoreState.read(group).as_dict()
    if info.get("initialized") is False:
        raise FormatError(
            f"{url}: the store was never fully created (its run stopped while creating it); run the "
            "command that made it again"
        )
    local = local_path(url)
    absent = [name for name in ("meta/id", "meta/split", "meta/status", "meta/error") if name not in group]
    if absent:
        raise FormatError(
            f"{url}: the store is damaged: {', '.join(absent)} missing (a run stopped while creating it?); run the "
            "command that made it again, or with --overwrite"
        )
    status = read_status(group)
    splits = as_str(group["meta/split"][:])
    per_split = {}
    for split in sorted(set(splits)):
        codes = Counter(status[splits == split].tolist())
        per_split[split] = {"ok": codes[STATUS_OK], "failed": codes[STATUS_FAILED], "pending": codes[0]}
        if codes[STATUS_SKIPPED]:
            per_split[split]["skipped"] = codes[STATUS_SKIPPED]
    arrays = []
    for name in info.get("arrays", []):
        if name not in group:
            arrays.append(
                {"name": name, "shape": [], "dtype": "MISSING", "chunks": [], "shards": [], "stored_bytes": None}
            )
            continue
        a = group[name]
        arrays.append(
            {
                "name": name,
                "shape": list(a.shape),
                "dtype": "str" if a.dtype.kind in "OTU" else str(a.dtype),
                "chunks": list(a.chunks),
                "shards": list(a.shards or a.chunks),
                "stored_bytes": _stored_bytes(local, name),
            }
        )
    failed = np.nonzero(status == STATUS_FAILED)[0]
    failures = []
    if len(failed):
        ids, errors = group["meta/id"][:], group["meta/error"][:]
        failures = [{"index": int(i), "id": str(ids[i]), "error": str(errors[i])} for i in failed[:max_failures]]
    skipped = np.nonzero(status == STATUS_SKIPPED)[0]
    skips = []
    if len(skipped):
        ids, errors = group["meta/id"][:], group["meta/error"][:]
        skips = [{"index": int(i), "id": str(ids[i]), "reason": str(errors[i])} for i in skipped[:max_failures]]
    total = None if local is None else sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
    outer = _outer(group, status)
    return {
        "kind": info.get("kind"),
        "format_version": info.get("format_version"),
        "sdfkit_version": info.get("sdfkit_version"),
        "created": info.get("created"),
        "complete": bool(info.get("complete")),
        "source": info.get("source"),
        "parameters": info.get("parameters", {}),
        "shapes": int(len(status)),
        "splits": per_split,
        "failed": int(len(failed)),
        "failures": failures,
        "skipped": int(len(skipped)),
        "skips": skips,
        "arrays": arrays,
        "stored_bytes": total,
        **({"outer": outer} if outer else {}),
    }


def _outer(group, status: np.ndarray, listed: int = 10) -> dict:
    """What the ok shapes' outer surfaces are made of (the ``outer/*`` arrays of a shapenet
    store): soups (loose triangles that enclose nothing: no negative sample), shapes with
    containers, and shapes with sheets (open parts that enclose nothing), with the first ids."""
    if "outer/soup" not in group:
        return {}
    ok = status == STATUS_OK
    ids = as_str(group["meta/id"][:])
    flags = {
        "soups": (group["outer/soup"][:] == 1) & ok,
        "with containers": (group["outer/containers"][:] > 0) & ok,
        "with sheets": (group["outer/sheet_share"][:] > 0) & ok,
        "without closed parts": (group["outer/closed_share"][:] == 0) & ok,
    }
    return {name: {"count": int(mask.sum()), "ids": ids[mask][:listed].tolist()} for name, mask in flags.items()}
