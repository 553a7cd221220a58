"""Re-checking a store against format v1 (``sdfkit validate``).

Structure (attributes, arrays, shapes, dtypes, layout), metadata (unique ids, status and error
columns that agree, no pending shape in a complete store), values (finite where ok, fill values
where failed) and geometry:

- ``shapenet``: what each array holds comes from the store's own ``specs`` attribute (role, points,
  frame: see :class:`~sdfkit.store.format.ArraySpec`), so every recipe's arrays are checked with
  nothing from the code that wrote them. Signed distances (role ``sdf``) are 1-Lipschitz and zero
  on the surface, so no sample's |SDF| may exceed its distance to the nearest surface sample, and
  it may not fall far short of it either (a store with scaled, shifted or shuffled values does);
  occupancies (``occupancy``) agree with nearby signed samples; unsigned distances (``udf``) are
  non-negative and 1-Lipschitz; normals are unit vectors; voxel grids hold 0 and 1.
- ``mnist``: the surface points lie within one grid cell of the zero level of the bilinear SDF.
- ``renders``: silhouettes agree with depth, poses are rigid, intrinsics are pixel matrices.
- voxel grids (``sdfkit voxelize``): occupancy is 0/1 and agrees with the voxel SDF's sign.

Shapes are read one shard at a time, so any size of store can be checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.spatial import cKDTree

from sdfkit.errors import FormatError
from sdfkit.store.format import (
    COPIED_COLUMNS,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    ArraySpec,
    as_str,
    open_store,
    read_status,
    shard_ranges,
)
from sdfkit.store.state import StoreState

__all__ = ["Check", "ValidationReport", "validate_store"]

_REQUIRED_KEYS = ("format_version", "kind", "created", "sdfkit_version", "source", "parameters", "shard_size", "arrays")
_NORMALIZATION = {"norm/offset": ("float64", "float32"), "norm/scale": ("float64", "float32")}
"""Stores made before the normalization was written in float64 hold it in float32."""
_ARRAYS = {
    "mnist": {"image": "uint8", **dict.fromkeys(("sdf/grid", "surface/points", "surface/normals"), "float32")},
    "shapenet": {
        **_NORMALIZATION,
        **dict.fromkeys(("sdf/points", "sdf/values", "surface/points", "surface/normals"), "float32"),
    },
    "renders": {**_NORMALIZATION, "camera/intrinsics": "float32"},
    "watertight": {
        **dict.fromkeys(("norm/offset", "norm/scale", "report/hausdorff"), "float64"),
        **dict.fromkeys(("report/input", "report/output"), "str"),
        "report/faces": "int64",
    },
}
_META = {
    "meta/id": "str",
    "meta/category": "str",
    "meta/label": "int64",
    "meta/split": "str",
    "meta/status": "uint8",
    "meta/error": "str",
}


@dataclass
class Check:
    name: str
    violations: int = 0
    checked: int = 0
    example: str = ""
    """The first violation, in words."""

    def fail(self, message: str, count: int = 1) -> None:
        if not self.violations:
            self.example = message
        self.violations += count


@dataclass
class ValidationReport:
    url: str
    kind: str = ""
    format_version: int | None = None
    shapes: int = 0
    pending: int = 0
    """Rows not computed yet (an unfinished store)."""
    complete: bool = False
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.violations == 0 for c in self.checks)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        self.checks.append(Check(name))
        return self.checks[-1]


def _dtype_name(array) -> str:
    dtype = array.dtype
    return "str" if dtype.kind in "OTU" or "string" in str(dtype).lower() else str(np.dtype(dtype))


def _structure(group, info, report: ValidationReport) -> list[str]:
    c = report.check("attributes")
    for key in _REQUIRED_KEYS:
        c.checked += 1
        if key not in info:
            c.fail(f"the 'sdfkit' attribute has no {key!r}")
    kind = info.get("kind")
    if kind not in _ARRAYS:
        c.fail(f"unknown kind {kind!r}")
        return []
    c = report.check("arrays")
    expected = {**_META, **_ARRAYS[kind]}
    expected |= {name: spec.dtype for name, spec in specs_of(info).items() if name not in expected}
    listed = list(info.get("arrays", []))
    n = group["meta/id"].shape[0] if "meta/id" in group else None
    size = info.get("shard_size")
    present = []
    for name in dict.fromkeys([*expected, *listed]):
        c.checked += 1
        if name not in group:
            c.fail(f"array {name} is missing")
            continue
        array = group[name]
        present.append(name)
        allowed = expected.get(name)
        allowed = (allowed,) if isinstance(allowed, str) else allowed
        if allowed and _dtype_name(array) not in allowed:
            c.fail(f"{name} has dtype {_dtype_name(array)}, expected {' or '.join(allowed)}")
        if n is not None and array.shape[0] != n:
            c.fail(f"{name} has {array.shape[0]} rows, meta/id has {n}")
        step = array.shards[0] if array.shards is not None else array.chunks[0]
        if size and step != size:
            c.fail(f"{name} is stored in blocks of {step} shapes, but shard_size is {size}")
        if name not in listed and name in expected:
            c.fail(f"{name} is not listed in the 'arrays' attribute")
    _shapes(group, info, kind, report)
    return present


def _shapes(group, info, kind, report: ValidationReport) -> None:
    c = report.check("array shapes")
    p = info.get("parameters", {})
    wanted = {}
    if kind == "shapenet":
        k, s = p.get("samples"), p.get("surface_samples")
        wanted = {"sdf/points": (k, 3), "sdf/values": (k,), "surface/points": (s, 3), "surface/normals": (s, 3)}
        wanted |= {"norm/offset": (3,), "norm/scale": ()}
    elif kind == "mnist":
        r, s = p.get("resolution"), p.get("surface_points")
        wanted = {"sdf/grid": (r, r), "surface/points": (s, 2), "surface/normals": (s, 2)}
    elif kind == "renders":
        v, size = p.get("views"), p.get("size")
        wanted = {"camera/intrinsics": (v, 3, 3), "camera/pose": (v, 4, 4), "render/depth": (v, size, size)}
        wanted |= {"render/silhouette": (v, size, size), "render/normal": (v, size, size, 3)}
        wanted |= {"render/shaded": (v, size, size, 3)}
    voxels = info.get("voxels")
    if voxels:
        r = voxels.get("resolution")
        wanted |= {"voxels/occupancy": (r, r, r), "voxels/sdf": (r, r, r)}
    recorded = {name: spec for name, spec in specs_of(info).items() if name in info.get("specs", {})}
    for name, spec in recorded.items():
        if tuple(spec.shape) != tuple(wanted.setdefault(name, spec.shape)):
            c.fail(f"the specs attribute gives {name} the shape {tuple(spec.shape)}, the parameters {wanted[name]}")
    for name, shape in wanted.items():
        if name in group:
            c.checked += 1
            if tuple(group[name].shape[1:]) != tuple(shape):
                c.fail(f"{name} holds {tuple(group[name].shape[1:])} per shape, the parameters say {tuple(shape)}")


def _metadata(group, info, report: ValidationReport) -> np.ndarray:
    c = report.check("metadata")
    ids = as_str(group["meta/id"][:])
    status = read_status(group)
    errors = as_str(group["meta/error"][:])
    splits = as_str(group["meta/split"][:])
    c.checked += len(ids)
    if len(set(ids)) != len(ids):
        c.fail(f"{len(ids) - len(set(ids))} duplicate ids")
    if (ids == "").any():
        c.fail(f"{int((ids == '').sum())} empty ids")
    if (splits == "").any():
        c.fail(f"{int((splits == '').sum())} shapes without a split")
    bad = ~np.isin(status, (0, STATUS_OK, STATUS_FAILED, STATUS_SKIPPED))
    if bad.any():
        c.fail(f"status {int(status[bad][0])} of {ids[bad][0]} is not 0, 1, 2 or 3", int(bad.sum()))
    pending = status == 0
    report.pending, report.complete = int(pending.sum()), bool(info.get("complete"))
    if info.get("complete") and pending.any():
        c.fail(f"the store says it is complete but {ids[pending][0]} is pending", int(pending.sum()))
    silent = np.isin(status, (STATUS_FAILED, STATUS_SKIPPED)) & (errors == "")
    if silent.any():
        c.fail(f"{ids[silent][0]} failed or was skipped without a reason", int(silent.sum()))
    noisy = (status == STATUS_OK) & (errors != "")
    if noisy.any():
        c.fail(f"{ids[noisy][0]} is ok but has an error message", int(noisy.sum()))
    summary = info.get("summary", {}).get("per_split")
    if info.get("complete") and summary:
        for split, counts in summary.items():
            here = splits == split
            found = {"ok": int((status[here] == STATUS_OK).sum()), "failed": int((status[here] == STATUS_FAILED).sum())}
            found |= {"skipped": int((status[here] == STATUS_SKIPPED).sum())}
            said = {"ok": counts.get("ok"), "failed": counts.get("failed"), "skipped": counts.get("skipped", 0)}
            if found != said:
                c.fail(f"the summary of split {split} says {counts}, the status column {found}")
    if StoreState(info).column_copies:
        _column_copies(group, c)
    return status


def _column_copies(group, c) -> None:
    """``columns/*``, which readers open the store by, equal ``meta/*`` (the state says they do)."""
    for name in COPIED_COLUMNS:
        if f"columns/{name}" not in group:
            c.fail(f"columns/{name} is missing though the state says the column copies were written")
            continue
        copy, meta = np.asarray(group[f"columns/{name}"][:]), np.asarray(group[f"meta/{name}"][:])
        if copy.shape != meta.shape or not (copy == meta).all():
            c.fail(f"columns/{name} differs from meta/{name}; readers would list other shapes: rebuild the store")


def _values(name: str, block: np.ndarray, ok: np.ndarray, failed: np.ndarray, start: int, ids, report) -> None:
    c = report.check("values")
    c.checked += len(block)
    if block.dtype.kind != "f":
        return
    finite = np.isfinite(block.reshape(len(block), -1))
    if name == "voxels/sdf":  # rows of shapes that failed in voxelize hold NaN too
        return
    for row in np.nonzero(ok & ~finite.all(axis=1))[0]:
        c.fail(f"{name} of {ids[start + row]} (ok) holds NaN or inf")
    for row in np.nonzero(failed & finite.any(axis=1))[0]:
        c.fail(f"{name} of {ids[start + row]} (failed) holds values instead of the fill value NaN")


_BASE_SPECS = {
    "sdf/points": ArraySpec("sdf/points", (), "float32", role="points"),
    "sdf/values": ArraySpec("sdf/values", (), "float32", role="sdf", points="sdf/points"),
    "surface/points": ArraySpec("surface/points", (), "float32", role="surface"),
    "surface/normals": ArraySpec("surface/normals", (), "float32", role="normals", points="surface/points"),
}
"""What the arrays of a ``shapenet`` store made before stores recorded their specs hold (sdfkit
0.3 and older; their recipes' arrays are checked for presence and values only)."""


def specs_of(info: dict) -> dict[str, ArraySpec]:
    """name -> spec of the store's arrays, from its ``specs`` attribute."""
    recorded = info.get("specs")
    if recorded is None:
        if info.get("kind") != "shapenet":
            return {}
        return {name: spec for name, spec in _BASE_SPECS.items() if name in info.get("arrays", [])}
    return {name: ArraySpec.from_description(name, d) for name, d in recorded.items()}


def _to_normalized(rows: dict, row: int, frame: str) -> tuple[float, np.ndarray]:
    """(scale, shift) with normalized = points * scale + shift for points of ``frame`` (an
    :class:`ArraySpec`'s): raw = p * frame/scale + frame/loc; normalized = (raw + norm/offset) *
    norm/scale. A distance times ``scale`` is normalized."""
    if not frame:
        return 1.0, np.zeros(3)
    norm_scale = float(rows["norm/scale"][row])
    scale = float(rows[f"{frame}/scale"][row])
    shift = (np.asarray(rows[f"{frame}/loc"][row], dtype=np.float64) + rows["norm/offset"][row]) * norm_scale
    return scale * norm_scale, shift


def _points(rows: dict, row: int, spec: ArraySpec) -> np.ndarray:
    """The points the values of ``spec`` are at, in the normalized frame."""
    scale, shift = _to_normalized(rows, row, spec.frame)
    return rows[spec.points][row].astype(np.float64) * scale + shift


_EXTRA_SURFACE = 10_000
"""Points taken from each recipe's own surface samples for the checks (every k-th)."""


def _points_of(rows: dict, row: int, spec: ArraySpec) -> np.ndarray:
    """The points of a points-like array itself (role ``surface``), in the normalized frame."""
    scale, shift = _to_normalized(rows, row, spec.frame)
    return rows[spec.name][row].astype(np.float64) * scale + shift


def _geometry_shapenet(rows: dict, ok: np.ndarray, start: int, ids, report, specs: dict) -> None:

    c = report.check("surface vs SDF samples")
    n = report.check("unit normals")
    here = {
        name: spec
        for name, spec in specs.items()
        if spec.role and name in rows and (not spec.points or spec.points in rows)
    }
    on_surface = [name for name, spec in here.items() if spec.role == "surface"]
    for row in np.nonzero(ok)[0]:
        base = rows["surface/points"][row].astype(np.float64)
        # every recipe's samples of the outer surface (normalized frame): a recipe that samples
        # its sharp edges densely has its own near points checked against those, not only
        # against area-weighted samples that may miss a thin edge
        extra = [_points_of(rows, row, here[name]) for name in on_surface]
        extra = [p[:: max(1, len(p) // _EXTRA_SURFACE)] for p in extra]  # enough to check against
        surface = np.concatenate([base, *extra])
        if not np.isfinite(surface).all():
            continue  # reported by the values check
        tree = cKDTree(surface)
        spacing = np.median(cKDTree(base).query(base, k=2)[0][:, 1])
        shape_id = ids[start + row]
        for name, spec in here.items():
            values = rows[name][row]
            if not (np.isfinite(values).all() and (not spec.points or np.isfinite(rows[spec.points][row]).all())):
                continue  # reported by the values check
            if spec.role == "sdf":
                c.checked += 1
                _sdf_vs_surface(name, _points(rows, row, spec), values, spec, rows, row, shape_id, tree, spacing, c)
            elif spec.role == "normals":
                n.checked += 1
                length = np.linalg.norm(values.astype(np.float64), axis=1)
                if np.abs(length - 1).max() > 1e-3:
                    n.fail(f"{shape_id}: {name} are not unit vectors (length {length.min():.3f})")
            elif spec.role == "occupancy":
                _occupancy_vs_samples(rows, row, shape_id, report, name, _points(rows, row, spec))
            elif spec.role == "udf":
                _unsigned_vs_surface(rows, row, shape_id, report, tree, name, spec)
            elif spec.role == "voxels":
                v = report.check("voxels")
                v.checked += 1
                if not np.isin(values, (0, 1)).all():
                    v.fail(f"{shape_id}: {name} holds values other than 0 and 1")


def _sdf_vs_surface(name, points, values, spec, rows, row, shape_id, tree, spacing, c) -> None:
    scale, _ = _to_normalized(rows, row, spec.frame)
    values = np.abs(values.astype(np.float64)) * scale
    nearest, _ = tree.query(points)
    over = values > nearest + 1e-4
    if over.mean() > 1e-3:
        c.fail(
            f"{shape_id}: {over.mean():.1%} of its {name} have |SDF| above their distance to the surface samples "
            "(an SDF is zero on the surface and 1-Lipschitz)"
        )
    short = np.percentile(nearest - values, 95)
    if short > 3 * spacing + 1e-3:
        c.fail(
            f"{shape_id}: {name} falls {short:.4f} short of the distance to the surface samples (95th percentile; "
            f"the samples are {spacing:.4f} apart)"
        )


def _unsigned_vs_surface(rows: dict, row: int, shape_id: str, report, tree, name: str, spec: ArraySpec) -> None:
    """Unsigned distances are >= 0 and never above the distance to a surface sample (the outer
    surface is part of the mesh the distance is to, and a distance is 1-Lipschitz)."""
    c = report.check("unsigned distances")
    scale, _ = _to_normalized(rows, row, spec.frame)
    df = rows[name][row].astype(np.float64)
    c.checked += 1
    nearest, _ = tree.query(_points(rows, row, spec))
    if (df < 0).any():
        c.fail(f"{shape_id}: {name} has negative distances")
    elif (df * scale > nearest + 1e-4).mean() > 1e-3:
        c.fail(f"{shape_id}: {name} exceeds the distance to the surface samples (a distance is 1-Lipschitz)")


def _occupancy_vs_samples(rows: dict, row: int, shape_id: str, report, occupancy_name: str, points) -> None:
    """Occupancy is 0/1, and where a DeepSDF sample's |SDF| exceeds its distance to an occupancy
    point (the SDF is 1-Lipschitz, so its sign holds there) they agree, as often as the SDF
    samples agree with each other by the same test.

    Where a shape's outer surface is open, the side of a point beside a hole is an estimate (a
    winding number) and the sign can change away from the surface: the samples then disagree with
    their own neighbours too (soup.stl: 4.4% of them), and occupancy is held to that rate (twice
    it, plus 1%), not to a fixed one."""

    c = report.check("occupancy vs SDF samples")
    occupancy = rows[occupancy_name][row]
    samples, values = rows["sdf/points"][row].astype(np.float64), rows["sdf/values"][row].astype(np.float64)
    if not (np.isfinite(points).all() and np.isfinite(samples).all()):
        return
    c.checked += 1
    if not np.isin(occupancy, (0, 1)).all():
        c.fail(f"{shape_id}: {occupancy_name} holds values other than 0 and 1")
        return
    tree = cKDTree(samples)
    distance, nearest = tree.query(points)
    certain = np.abs(values[nearest]) > distance + 1e-4
    disagree = certain & ((values[nearest] < 0) != (occupancy == 1))
    # the samples against their nearest other sample (20,000 of them: the rate, not every pair)
    some = np.random.default_rng(0).permutation(len(samples))[:20_000]
    distance, nearest = tree.query(samples[some], k=2)
    vouched = np.abs(values[nearest[:, 1]]) > distance[:, 1] + 1e-4
    own = (vouched & ((values[nearest[:, 1]] < 0) != (values[some] < 0))).sum() / max(vouched.sum(), 1)
    rate = disagree.sum() / max(certain.sum(), 1)
    if rate > 0.01 + 2 * own:
        c.fail(
            f"{shape_id}: {int(disagree.sum())} {occupancy_name} points disagree with the sign of a nearby SDF sample"
            f" ({rate:.1%}; the SDF samples disagree with each other at {own:.1%})"
        )


def _geometry_mnist(rows: dict, ok: np.ndarray, start: int, ids, report) -> None:

    c = report.check("surface vs SDF grid")
    for row in np.nonzero(ok)[0]:
        grid = rows["sdf/grid"][row].astype(np.float64)
        points = rows["surface/points"][row].astype(np.float64)
        if not (np.isfinite(grid).all() and np.isfinite(points).all()):
            continue  # reported by the values check
        r = grid.shape[0]
        # (x, y) -> fractional (row, column) indices of cell centres
        index = np.stack([(points[:, 1] + 1) * r / 2 - 0.5, (points[:, 0] + 1) * r / 2 - 0.5])
        values = map_coordinates(grid, index, order=1, mode="nearest")
        c.checked += 1
        near = np.abs(values) <= 2.0 / r
        if near.mean() < 0.95:
            c.fail(
                f"{ids[start + row]}: only {near.mean():.1%} of its surface points lie within a cell of the zero level"
            )


def _geometry_renders(rows: dict, ok: np.ndarray, start: int, ids, report) -> None:
    c = report.check("renders")
    for row in np.nonzero(ok)[0]:
        c.checked += 1
        name = ids[start + row]
        if "render/depth" in rows:
            depth = rows["render/depth"][row]
            if (depth < 0).any():
                c.fail(f"{name}: negative depth")
            if "render/silhouette" in rows and ((rows["render/silhouette"][row] > 0) != (depth > 0)).any():
                c.fail(f"{name}: silhouette and depth disagree")
        if "camera/pose" in rows:
            rotation = rows["camera/pose"][row][:, :3, :3].astype(np.float64)
            gram = np.einsum("vji,vjk->vik", rotation, rotation)
            if np.abs(gram - np.eye(3)).max() > 1e-4:
                c.fail(f"{name}: a camera pose is not a rigid transform")
        k = rows["camera/intrinsics"][row]
        if (k[:, 0, 0] <= 0).any() or (k[:, 2, 2] != 1).any():
            c.fail(f"{name}: intrinsics are not pixel matrices")


def _geometry_voxels(rows: dict, ok: np.ndarray, start: int, ids, report) -> None:
    c = report.check("voxels")
    for row in np.nonzero(ok)[0]:
        c.checked += 1
        occupancy = rows["voxels/occupancy"][row]
        if not np.isin(occupancy, (0, 1)).all():
            c.fail(f"{ids[start + row]}: occupancy values other than 0 and 1")
        if "voxels/sdf" in rows and ((rows["voxels/sdf"][row] < 0) != (occupancy == 1)).any():
            c.fail(f"{ids[start + row]}: occupancy disagrees with the sign of voxels/sdf")


def _geometry_watertight(rows: dict, ok: np.ndarray, start: int, ids, report) -> None:
    """Every mesh the report calls written is there (local files)."""
    c = report.check("watertight meshes")
    for row in np.nonzero(ok)[0]:
        c.checked += 1
        output = str(rows["report/output"][row]) if "report/output" in rows else ""
        if "://" not in output and not Path(output).is_file():
            c.fail(f"{ids[start + row]}: its mesh {output} is missing")


_GEOMETRY: dict[str, Callable] = {
    "mnist": _geometry_mnist,
    "renders": _geometry_renders,
    "watertight": _geometry_watertight,
}


def validate_store(url: str, *, progress: Callable[[int, int], None] | None = None) -> ValidationReport:
    """Check a store against format v1; returns a report whose ``ok`` says whether it passed."""
    report = ValidationReport(str(url))
    try:
        group = open_store(url, mode="r")
    except FormatError as exc:
        report.check("format").fail(str(exc))
        return report
    info = StoreState.read(group).as_dict()
    report.kind = str(info.get("kind"))
    report.format_version = info.get("format_version")
    report.check("format").checked = 1
    if info.get("initialized") is False:
        report.check("format").fail("the store was never fully created")
        return report
    present = _structure(group, info, report)
    if "meta/id" not in present or "meta/status" not in present or "meta/error" not in present:
        return report
    status = _metadata(group, info, report)
    ids = as_str(group["meta/id"][:])
    report.shapes = len(ids)
    voxels = info.get("voxels") or {}
    voxel_status = read_status(group, "voxels") if voxels.get("complete") and "voxels/status" in group else None
    data = [name for name in present if not name.startswith("meta/") and name not in ("voxels/status", "voxels/error")]
    ranges = shard_ranges(len(ids), info.get("shard_size") or len(ids))
    for start, stop in ranges:
        rows = {name: group[name][start:stop] for name in data}
        ok, failed = status[start:stop] == STATUS_OK, status[start:stop] == STATUS_FAILED
        for name, block in rows.items():
            if not name.startswith("voxels/"):
                _values(name, block, ok, failed, start, ids, report)
        if report.kind == "shapenet":
            _geometry_shapenet(rows, ok, start, ids, report, specs_of(info))
        elif report.kind in _GEOMETRY:
            _GEOMETRY[report.kind](rows, ok, start, ids, report)
        if voxel_status is not None and "voxels/occupancy" in rows:
            _geometry_voxels(rows, ok & (voxel_status[start:stop] == STATUS_OK), start, ids, report)
        if progress:
            progress(stop, len(ids))
    return report
