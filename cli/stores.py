"""The commands that look at a store: ``validate``, ``info``, ``report`` and ``show``. Library
modules are imported in each command (see the package's docstring).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from sdfkit.errors import SdfkitError
from sdfkit.store.format import STATUS_OK

from .options import (
    CONTEXT,
    human_bytes,
    json_option,
    progress_bar,
)


@click.command("validate", context_settings=CONTEXT)
@click.argument("store")
@json_option()
@click.option(
    "--allow-pending", is_flag=True, help="Accept an unfinished store (rows still pending) if the rest is valid."
)
def validate_command(store, as_json, allow_pending):
    """Re-check a store against its format version (docs/format.md); exit 1 if anything is wrong.

    Checks the attributes, arrays, shapes, dtypes and layout; the metadata (unique ids, status
    and error columns that agree; the whole-column copies equal to meta/*); values (finite where ok, fill values where failed); and
    geometry (3D: no SDF sample's |SDF| exceeds, or falls far short of, its distance to the
    surface samples; 2D: surface points on the zero level; renders: silhouettes match depth,
    poses are rigid; voxels agree with their SDF). Useful after copying a dataset. An
    unfinished store (rows still pending) fails unless --allow-pending.

    \b
    Examples:
      sdfkit validate shapes.zarr
      sdfkit validate s3://bucket/shapes.zarr --allow-pending
    """
    from dataclasses import asdict

    from sdfkit.store.format import local_path
    from sdfkit.store.validate import validate_store

    local = local_path(store)
    if local is not None and not local.exists():  # nothing to check: say so before any table
        raise SdfkitError(f"{store}: no such store; check the path")
    report = validate_store(store, progress=progress_bar("validate"))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "url": report.url,
                    "ok": report.ok,
                    "kind": report.kind,
                    "shapes": report.shapes,
                    "pending": report.pending,
                    "complete": report.complete,
                    "checks": [asdict(c) for c in report.checks],
                },
                indent=2,
            )
        )
    else:
        click.echo(f"validate {store}: {report.kind} store, {report.shapes} shapes")
        for c in report.checks:
            mark = "ok  " if c.violations == 0 else "FAIL"
            click.echo(f"  {mark} {c.name:<26} {c.checked:>7} checked  {c.violations:>5} violations  {c.example}")
    if not report.ok:
        bad = sum(c.violations > 0 for c in report.checks)
        raise SdfkitError(
            f"{store}: {bad} checks failed; the store does not follow format v{report.format_version} (see above)"
        )
    unfinished = report.pending or not report.complete
    if unfinished and not allow_pending:
        raise SdfkitError(
            f"{store}: unfinished: {report.pending} of {report.shapes} shapes are still pending; run the command "
            "that made it again to finish it, or pass --allow-pending to accept it as it is"
        )
    if not as_json:
        what = f" (unfinished: {report.pending} of {report.shapes} shapes pending)" if unfinished else ""
        click.echo(f"  the store follows format v{report.format_version}{what}")


@click.command("info", context_settings=CONTEXT)
@click.argument("store", type=click.Path(path_type=Path))
@json_option("Print a JSON object instead of a report.")
def info_command(store, as_json):
    """Describe a store: kind, counts per split and status, arrays, sizes, parameters, failures.

    \b
    Example:
      sdfkit info mnist.zarr
    """
    from sdfkit.store.report import store_report

    report = store_report(store)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"store      {store}")
    click.echo(f"kind       {report['kind']}  (format v{report['format_version']}, sdfkit {report['sdfkit_version']})")
    click.echo(f"state      {'complete' if report['complete'] else 'UNFINISHED: run the same command again to resume'}")
    click.echo(f"created    {report['created']}")
    source = dict(report["source"] or {})
    missing = source.pop("missing_ids", [])
    for k, (key, value) in enumerate(source.items()):
        shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
        click.echo(f"{'source' if k == 0 else '':<11}{key}: {shown if shown not in ('', None) else '-'}")
    if missing:
        click.echo(
            f"missing    {len(missing)} ids of the split files are not in the source (first: {', '.join(missing[:5])})"
        )
    click.echo("parameters " + ", ".join(f"{k}={v}" for k, v in report["parameters"].items()))
    click.echo(f"\n  {'split':<8}{'ok':>8}{'failed':>8}{'pending':>9}{'skipped':>9}")
    for split, counts in report["splits"].items():
        click.echo(
            f"  {split:<8}{counts['ok']:>8}{counts['failed']:>8}{counts['pending']:>9}{counts.get('skipped', 0):>9}"
        )
    rows = [
        (a["name"], str(tuple(a["shape"])), a["dtype"], str(tuple(a["chunks"])), str(tuple(a["shards"])))
        for a in report["arrays"]
    ]
    header = ("array", "shape", "dtype", "chunk", "shard")
    widths = [max(len(r[k]) for r in (header, *rows)) + 2 for k in range(len(header))]
    click.echo("\n  " + "".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True)) + f"{'stored':>10}")
    for row, a in zip(rows, report["arrays"], strict=True):
        cells = "".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True))
        click.echo(f"  {cells}{human_bytes(a['stored_bytes']):>10}")
    click.echo(f"\n  total stored: {human_bytes(report['stored_bytes'])}")
    if report.get("outer"):
        click.echo(f"\n  outer surfaces of the {sum(c['ok'] for c in report['splits'].values())} ok shapes:")
        for name, found in report["outer"].items():
            first = f" (first: {', '.join(found['ids'][:5])})" if found["count"] else ""
            click.echo(f"    {name:<22}{found['count']:>7}{first}")
    if report["failures"]:
        click.echo(f"\n  {report['failed']} failed shapes (first {len(report['failures'])}):")
        for f in report["failures"]:
            click.echo(f"    [{f['index']}] {f['id']}: {f['error']}")
    if report.get("skips"):
        click.echo(f"\n  {report['skipped']} shapes skipped on purpose (first {len(report['skips'])}):")
        for f in report["skips"]:
            click.echo(f"    [{f['index']}] {f['id']}: {f['reason'].removeprefix('skipped: ')}")


@click.command("report", context_settings=CONTEXT)
@click.argument("store")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Folder for the report.")
@click.option(
    "--thumbnails",
    type=click.IntRange(min=0),
    default=24,
    show_default=True,
    help="Objects drawn on the page: those whose signs are most in doubt.",
)
@click.option("--meshes", default=None, help="The folder the store's meshes are in now, if they moved.")
def report_command(store, output, thumbnails, meshes):
    """Write a prepare-shapenet store's quality ledger: ledger.csv, ledger.parquet and report.html.

    One row per object, whatever its status: what its file held (faces, meshes placed, points and
    lines left out, units, watertight), its content id and licence, what its outer surface is made
    of, which sign rules decided its samples and the share unsure, seconds and peak memory, and
    for a failure its class and message. The page shows counts,
    failure classes, skip reasons, distributions and thumbnails rendered by sdfkit.

    \b
    Example:
      sdfkit report objaverse.zarr -o objaverse-report/
    """
    from sdfkit.builders.quality import write_quality_report

    summary = write_quality_report(store, output, thumbnails=thumbnails, meshes_root=meshes)
    counts = summary.counts
    click.echo(
        f"report: {summary.objects} objects ({counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} "
        f"skipped, {counts['pending']} pending) -> {summary.out}/report.html, ledger.csv, ledger.parquet in "
        f"{summary.seconds:.2f} s, {summary.thumbnails} thumbnails in {summary.thumbnail_seconds:.1f} s"
    )
    for name, count in sorted(summary.failure_classes.items(), key=lambda item: -item[1]):
        click.echo(f"  failed, {name}: {count}")
    for name, count in sorted(summary.skip_classes.items(), key=lambda item: -item[1]):
        click.echo(f"  skipped, {name}: {count}")
    if summary.note:
        click.echo(f"  no thumbnails: {summary.note}")


@click.command("show", context_settings=CONTEXT)
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--index", "-k", type=int, default=0, help="Row of the shape in the store.")
@click.option("--id", "shape_id", default=None, help="The shape's id instead of --index (rows differ between stores).")
@click.option(
    "--sheet",
    type=click.IntRange(min=1),
    default=None,
    help="mnist: instead of one shape, draw the first N shapes of --split in a grid.",
)
@click.option("--split", default=None, help="With --sheet: only this split.")
@click.option("--views", type=click.IntRange(min=1), default=8, help="renders: views to draw.")
@click.option("--meshes", default=None, help="shapenet: the folder the store's meshes are in now, if they moved.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
def show_command(store, index, shape_id, sheet, split, views, meshes, output):
    """Draw a shape as a PNG.

    \b
    mnist: the image, SDF level sets with the zero level bold, the surface points.
    shapenet: SDF slices through the three axis planes (zero level bold; from the store's voxel
      SDF if it has one, else computed from the mesh, else the samples near each plane), and
      the surface samples as points coloured by their normals.
    renders: a contact sheet of the views, a row per mode.

    \b
    Examples:
      sdfkit show mnist.zarr --index 3 -o digit.png
      sdfkit show mnist.zarr --sheet 24 --split test -o preview.png
      sdfkit show shapes.zarr --index 0 -o chair.png
      sdfkit show renders.zarr --id chair-0000-clean --views 12 -o views.png
    """
    from sdfkit.builders import figures
    from sdfkit.errors import InputError
    from sdfkit.store.dataset import open_dataset

    ds = open_dataset(store, include_failed=True, allow_incomplete=True)
    if sheet and ds.kind != "mnist":
        raise InputError(f"{store}: --sheet draws 2D (mnist) stores; for a {ds.kind!r} store drop --sheet")
    if sheet:
        chosen = ds.select(split) if split else ds.select(None)
        path = figures.save_contact_sheet([chosen[k] for k in range(min(sheet, len(chosen)))], output)
        click.echo(f"wrote {path}")
        return
    if shape_id is not None:
        ids = list(ds.ids)
        if shape_id not in ids:
            close = [i for i in ids if shape_id in i][:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else f"; see: sdfkit info {store}"
            raise InputError(f"{store}: no shape with id {shape_id!r}{hint}")
        index = ids.index(shape_id)
    if not 0 <= index < len(ds):
        raise InputError(f"{store}: no shape at index {index}; the store has {len(ds)} (0 to {len(ds) - 1})")
    shape = ds[index]
    if ds.kind == "mnist":
        path = figures.plot_shape_2d(shape, output)
    elif ds.kind == "watertight":
        from sdfkit.builders.watertight import plot_before_after

        path = plot_before_after({**shape, "parameters": ds.parameters}, output)
    elif ds.kind == "renders":
        if shape["status"] != STATUS_OK:
            raise InputError(f"{store}: shape {shape['id']} failed ({shape['error']}); nothing to draw")
        path = figures.plot_renders(shape, output, views=views)
    else:
        slices, where = _slices(ds, shape, meshes)
        path = figures.plot_shape_3d(shape, output, slices=slices)
        click.echo(f"slices: {where}")
    click.echo(f"wrote {path}")


def _slices(ds, shape, meshes):
    """SDF slices of a 3D shape, and where they came from."""
    from sdfkit.builders import figures
    from sdfkit.builders.voxels import shape_sdf, store_jobs
    from sdfkit.errors import SdfkitError

    if shape["status"] != STATUS_OK:
        return None, "none (the shape failed)"
    if "voxels/sdf" in shape and np.isfinite(shape["voxels/sdf"]).all():
        grid = shape["voxels/sdf"]
        r = grid.shape[0]
        # voxels are [x, y, z]; the slices are (rows = vertical axis, columns = horizontal axis)
        return np.stack([grid[r // 2], grid[:, r // 2].T, grid[:, :, r // 2].T]), f"voxels/sdf ({r}^3)"
    try:
        job = store_jobs(ds.group, ds.attrs, ds.url, meshes)[shape["index"]]
        points = figures.slice_points(160)
        p = ds.parameters
        values = shape_sdf(job, points.reshape(-1, 3), seed=p.get("seed", 0), rays=p.get("rays", 32))
        return values.reshape(3, 160, 160), f"computed from {job.path}"
    except SdfkitError as exc:
        return None, f"SDF samples near each plane ({exc})"


COMMANDS = (validate_command, info_command, report_command, show_command)
"""The commands of this module, in the order `sdfkit --help` lists them."""
