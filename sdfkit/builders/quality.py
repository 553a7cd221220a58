"""``sdfkit report``: a shapenet store's quality ledger as a table (CSV, Parquet) and one HTML
page: counts by status, failure classes, skip reasons, distributions, and thumbnails of the
objects whose signs are most in doubt (:func:`risk`).

The table has one row per object (every input, whatever its status): ``meta/*`` (id, category,
split, status, error) with the failure class (:func:`failure_class`), the ``ledger/*`` columns
but the shape print (:mod:`sdfkit.sources.ledger`), the ``outer/*`` summary of the outer
surface, the share of the SDF samples each sign rule decided (``signed_by_<rule>``) and the share
unsure (``sdf_unsure_share``). Stores made before the ledger give the columns they have.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdfkit.builders.figures import _pyplot
from sdfkit.builders.render import RenderConfig, render_mesh_views_shaded
from sdfkit.errors import InputError
from sdfkit.geometry.mesh import load_mesh
from sdfkit.geometry.sign import RULES
from sdfkit.rendering import check_renderer, look_at
from sdfkit.sources.shapenet import mesh_paths
from sdfkit.store.format import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, as_str, open_store, read_column, read_status
from sdfkit.store.state import StoreState

__all__ = ["FAILURE_CLASSES", "failure_class", "ledger_table", "write_quality_report", "QualitySummary"]

STATUS_NAMES = {0: "pending", STATUS_OK: "ok", STATUS_FAILED: "failed", STATUS_SKIPPED: "skipped"}

FAILURE_CLASSES = (
    ("not downloaded", r"not downloaded|no such file|cannot read the file"),
    ("over a limit", r"over the time limit|over the memory limit|over --max-faces"),
    ("worker crashed", r"worker process crashed"),
    ("unreadable file", r"not a readable|the file is empty|cut short|truncated|needs its|not a mesh file"),
    ("no triangles", r"has no faces|point cloud|wireframe"),
    ("broken geometry", r"non-finite|nan|degenerate|no face of the mesh is visible|index"),
    ("not the listed file", r"sha256 is .*, not the"),
)
"""(class, pattern of ``meta/error``), first match wins; anything else is ``other``."""


def failure_class(error: str) -> str:
    """The class of a failed object's one-line error (:data:`FAILURE_CLASSES`)."""
    for name, pattern in FAILURE_CLASSES:
        if re.search(pattern, error, re.IGNORECASE):
            return name
    return "other"


def _skip_class(reason: str) -> str:
    reason = reason.removeprefix("skipped: ")
    if reason.startswith("near-duplicate"):
        return "near-duplicate"
    if reason.startswith("duplicate"):
        return "duplicate (same bytes)"
    if "--licence" in reason:
        return "licence"
    return "other"


def ledger_table(url: str) -> tuple[dict[str, np.ndarray], dict]:
    """The ledger of a shapenet store as columns (name -> (n,) array) and the store's attribute."""
    group = open_store(url, mode="r")
    info = StoreState.read(group).as_dict()
    if info.get("kind") != "shapenet":
        raise InputError(f"{url}: a {info.get('kind')!r} store has no quality ledger; give a prepare-shapenet store")
    status = read_status(group)
    errors = as_str(read_column(group, "meta/error")).astype(str)
    columns: dict[str, np.ndarray] = {
        "index": np.arange(len(status)),
        "id": as_str(read_column(group, "meta/id")).astype(str),
        "category": as_str(read_column(group, "meta/category")).astype(str),
        "split": as_str(read_column(group, "meta/split")).astype(str),
        "status": np.array([STATUS_NAMES.get(int(s), str(s)) for s in status]),
        "failure_class": np.array(
            [failure_class(e) if s == STATUS_FAILED else "" for s, e in zip(status, errors, strict=True)]
        ),
        "skip_class": np.array(
            [_skip_class(e) if s == STATUS_SKIPPED else "" for s, e in zip(status, errors, strict=True)]
        ),
        "error": errors,
    }
    for name in info.get("arrays", []):
        wanted = name.startswith(("ledger/", "outer/")) or name in ("sdf/unsure_share", "sdf/rule_share")
        if not wanted or name == "ledger/print" or name not in group:
            continue
        values = read_column(group, name)
        if name == "sdf/rule_share":  # one column per rule
            for k, rule in enumerate(RULES):
                columns[f"signed_by_{rule}"] = values[:, k]
            continue
        if values.dtype.kind in "OTU":
            columns[name.replace("/", "_")] = as_str(values).astype(str)
        elif values.ndim == 1:
            columns[name.replace("/", "_")] = values
        else:  # a few values per object (ledger/moments): a column each
            for k in range(values.reshape(len(values), -1).shape[1]):
                columns[f"{name.replace('/', '_')}_{k}"] = values.reshape(len(values), -1)[:, k]
    return columns, info


def _histograms(columns: dict, ok: np.ndarray) -> bytes:
    """One PNG of the distributions over the ok objects."""

    plt = _pyplot()
    panels = [
        ("ledger_faces", "faces", True),
        ("ledger_seconds", "seconds per object", False),
        ("ledger_peak_memory", "peak memory (MB)", False),
        ("ledger_extent", "longest side (file units)", True),
        ("outer_closed_share", "outer surface on closed parts", False),
        ("sdf_unsure_share", "share of samples unsure", False),
        ("outer_sheet_share", "outer surface on sheets", False),
    ]
    panels = [p for p in panels if p[0] in columns]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.2 * max(1, len(panels)), 2.6), dpi=100, squeeze=False)
    for ax, (name, label, log) in zip(axes[0], panels, strict=False):
        values = np.asarray(columns[name], dtype=np.float64)[ok]
        values = values[np.isfinite(values)]
        if name == "ledger_peak_memory":
            values = values / 2**20
        if log:
            values = np.log10(np.maximum(values, 1e-12))
            label = f"log10 {label}"
        if len(values):
            ax.hist(values, bins=30, color="#4c72b0")
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def risk(columns: dict) -> np.ndarray:
    """How much an ok object's signs are in doubt, higher first: the share of its SDF samples
    whose sign is unsure (``sdf/unsure_share``: low confidence away from the surface), plus, to
    order objects alike in that, a hundredth of: a triangle soup (nothing enclosed) 3, containers
    1, the outer surface's share not on closed parts, 0.5 when trimesh does not call the mesh
    watertight. NaN where the store lacks the columns (made before the ledger)."""
    n = len(columns["id"])
    if "outer_soup" not in columns:
        return np.full(n, np.nan)
    score = 3.0 * (columns["outer_soup"] == 1) + 1.0 * (columns["outer_containers"] > 0)
    score = score + (1.0 - np.nan_to_num(columns["outer_closed_share"].astype(np.float64), nan=1.0))
    if "ledger_watertight" in columns:
        score = score + 0.5 * (columns["ledger_watertight"] == 0)
    if "sdf_unsure_share" in columns:
        score = np.nan_to_num(columns["sdf_unsure_share"].astype(np.float64), nan=0.0) + score / 100
    return score


def _why(columns: dict, k: int) -> str:
    parts = []
    if "sdf_unsure_share" in columns:
        parts.append(f"unsure {100 * float(columns['sdf_unsure_share'][k]):.2f}%")
    if columns.get("outer_soup") is not None and columns["outer_soup"][k] == 1:
        parts.append("soup")
    if columns.get("outer_containers") is not None and columns["outer_containers"][k] > 0:
        parts.append(f"{int(columns['outer_containers'][k])} container(s)")
    if "outer_closed_share" in columns:
        parts.append(f"closed {100 * float(columns['outer_closed_share'][k]):.0f}%")
    if "ledger_watertight" in columns and columns["ledger_watertight"][k] == 0:
        parts.append("not watertight")
    return ", ".join(parts)


def _thumbnails(url: str, info: dict, columns: dict, rows: list[int], meshes_root, size: int) -> tuple[bytes, str]:
    """A PNG grid of one shaded view per object of ``rows`` (normalized frame), or (b"", why not)."""

    if not rows:
        return b"", "no ok object"
    try:
        check_renderer()
        paths = mesh_paths(info, [str(columns["id"][k]) for k in rows], url, meshes_root)
    except InputError as exc:
        return b"", str(exc)
    group = open_store(url, mode="r")
    config = RenderConfig(views=1, size=size)
    plt = _pyplot()
    per_row = 6
    lines = (len(rows) + per_row - 1) // per_row
    fig, axes = plt.subplots(lines, per_row, figsize=(2.2 * per_row, 2.45 * lines), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    direction = np.array([1.0, 0.8, 1.4]) / np.linalg.norm([1.0, 0.8, 1.4])  # from the front, right and above
    poses = look_at(config.distance * direction)[None]
    for ax, k, path in zip(axes.ravel(), rows, paths, strict=False):
        mesh = load_mesh(path)
        offset, scale = np.asarray(group["norm/offset"][k], np.float64), float(group["norm/scale"][k])
        image = render_mesh_views_shaded((mesh.vertices + offset) * scale, mesh.faces, poses, config)[0]
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{columns['id'][k]}\n{_why(columns, k)}", fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue(), ""


@dataclass
class QualitySummary:
    out: str
    objects: int
    counts: dict
    failure_classes: dict
    skip_classes: dict
    thumbnails: int
    seconds: float
    """Everything but the thumbnails."""
    thumbnail_seconds: float
    note: str = ""
    """Why there are no thumbnails, where there are none."""


def _table_html(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _write_tables(columns: dict[str, np.ndarray], out: Path) -> None:
    """The ledger as ``ledger.csv`` and ``ledger.parquet`` in ``out``."""
    names = list(columns)
    with open(out / "ledger.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(zip(*[columns[n].tolist() for n in names], strict=True))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("sdfkit report writes Parquet with pyarrow: pip install pyarrow") from None
    pq.write_table(pa.table({n: columns[n] for n in names}), out / "ledger.parquet")


def _rows_by_class(columns: dict[str, np.ndarray], status: str, column: str) -> dict[str, list[int]]:
    """The rows of a status (``failed``, ``skipped``) grouped by their class in ``column``."""
    groups: dict[str, list[int]] = {}
    for k in np.nonzero(columns["status"] == status)[0]:
        groups.setdefault(str(columns[column][k]), []).append(int(k))
    return groups


def write_quality_report(
    url: str, out: str | Path, *, thumbnails: int = 24, meshes_root=None, size: int = 192
) -> QualitySummary:
    """Write ``ledger.csv``, ``ledger.parquet``, ``distributions.png``, ``worst.png`` and
    ``report.html`` into ``out`` (see the module's text)."""

    start = time.perf_counter()
    columns, info = ledger_table(url)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_tables(columns, out)
    status = columns["status"]
    ok = status == "ok"
    counts = {name: int((status == name).sum()) for name in ("ok", "failed", "skipped", "pending")}
    failures = _rows_by_class(columns, "failed", "failure_class")
    skips = _rows_by_class(columns, "skipped", "skip_class")
    distributions = _histograms(columns, ok)
    (out / "distributions.png").write_bytes(distributions)
    seconds = time.perf_counter() - start
    begin = time.perf_counter()
    score = risk(columns)
    order = [int(k) for k in np.argsort(-np.nan_to_num(score, nan=-1.0), kind="stable") if ok[k]]
    worst, note = b"", "--thumbnails 0"
    shown = order[:thumbnails] if thumbnails else []
    if shown:
        worst, note = _thumbnails(url, info, columns, shown, meshes_root, size)
        if worst:
            (out / "worst.png").write_bytes(worst)
    thumbnail_seconds = time.perf_counter() - begin

    def image(data: bytes) -> str:
        return f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}">'

    failure_rows = [
        [name, len(rows), columns["id"][rows[0]], columns["error"][rows[0]]]
        for name, rows in sorted(failures.items(), key=lambda item: -len(item[1]))
    ]
    skip_rows = [
        [name, len(rows), columns["id"][rows[0]], columns["error"][rows[0]].removeprefix("skipped: ")]
        for name, rows in sorted(skips.items(), key=lambda item: -len(item[1]))
    ]
    worst_rows = [[columns["id"][k], f"{score[k]:.2f}", _why(columns, k)] for k in shown]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>sdfkit report: {html.escape(str(url))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}} img{{max-width:100%}}</style></head><body>
<h1>Quality ledger of {html.escape(str(url))}</h1>
<p>{len(status)} objects: {counts["ok"]} ok, {counts["failed"]} failed, {counts["skipped"]} skipped, {counts["pending"]}
pending. The table: <a href="ledger.csv">ledger.csv</a>, <a href="ledger.parquet">ledger.parquet</a>
(one row per object; columns in docs/objaverse.md).</p>
<h2>Failures by class</h2>{_table_html(failure_rows, ["class", "objects", "first", "its message"]) if failure_rows else "<p>none</p>"}
<h2>Skipped on purpose</h2>{_table_html(skip_rows, ["reason", "objects", "first", "its reason"]) if skip_rows else "<p>none</p>"}
<h2>Distributions (ok objects)</h2>{image(distributions)}
<h2>The {len(shown)} objects whose signs are most in doubt</h2>
<p>Ranked by the share of their SDF samples whose sign is unsure (confidence below a quarter, away from the
surface), then by: a triangle soup 3, containers 1, the outer surface's share not on closed parts, 0.5 when not
watertight (trimesh).</p>
{image(worst) if worst else f"<p>no thumbnails: {html.escape(note)}</p>"}
{_table_html(worst_rows, ["id", "score", "why"]) if worst_rows else ""}
</body></html>"""
    (out / "report.html").write_text(page, encoding="utf-8")
    return QualitySummary(
        str(out),
        len(status),
        counts,
        {k: len(v) for k, v in failures.items()},
        {k: len(v) for k, v in skips.items()},
        len(shown) if worst else 0,
        seconds,
        thumbnail_seconds,
        "" if worst else note,
    )
