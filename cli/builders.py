"""Reading stores and meshes: ``export``, ``voxelize``, ``render``, ``watertight``, ``validate``, ``info``, ``show``."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from cli.options import (
    CONTEXT,
    LazyChoice,
    default_workers,
    human_bytes,
    json_option,
    overwrite_option,
    parse_synsets,
    print_summary,
    progress_bar,
    scheduler_option,
    split_option,
    synsets_option,
    workers_option,
)
from sdfkit.builders.voxels import RESOLUTIONS
from sdfkit.builders.watertight import FORMATS as MESH_FORMATS
from sdfkit.builders.watertight import FRAMES
from sdfkit.errors import SdfkitError
from sdfkit.store.format import STATUS_OK


def export_formats():
    from sdfkit.builders.export import formats

    return list(formats())


@click.command("export", context_settings=CONTEXT)
@click.argument("store")
@click.option(
    "--to",
    "to",
    required=True,
    type=LazyChoice(export_formats, "export format"),
    help="deepsdf: DeepSDF's data folder; occnet, ifnet, ndf: those projects' data folders (a store made with "
    "that --recipe; a recipe plug-in brings its own); npz: a file per shape.",
)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Folder to write (new or empty).")
@click.option("--split", default=None, help="Only this split (train, val, test, ...)  [default: all]")
@click.option("--ids", multiple=True, help="Only these shape ids (comma-separated or repeated).")
@click.option("--dataset", default="ShapeNetV2", help="deepsdf: the dataset name in its paths and split files.")
@click.option(
    "--relative-to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="ndf: split.npz's entries are paths relative to this folder (run NDF from it).  [default: the current folder]",
)
@click.option(
    "--meshes",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="hunyuan3d, trellis (read the meshes): the folder the store's meshes are in now, if they moved.",
)
@click.option(
    "--views",
    type=click.IntRange(min=0),
    default=150,
    show_default=True,
    help="trellis: views rendered per object (TRELLIS' render.py: 150); 0 writes voxels and metadata alone.",
)
@click.option(
    "--aesthetic-score",
    type=float,
    default=None,
    help="trellis: the aesthetic_score written for every object (TRELLIS' configs drop objects under 4.5; sdfkit "
    "scores nothing).  [default: empty]",
)
@overwrite_option("Replace the output folder if it is not empty.")
def export_command(store, to, output, split, ids, dataset, relative_to, meshes, views, aesthetic_score, overwrite):
    """Write a store in the layout another project reads; values unchanged in meaning.

    \b
    deepsdf: SdfSamples/<dataset>/<synset>/<id>.npz (float32 pos: sdf > 0, neg: sdf <= 0; rows
      x, y, z, sdf, normalized frame), SurfaceSamples/.../<id>.ply (mesh coordinates),
      NormalizationParameters/.../<id>.npz (offset (3,), scale (1,)), splits/<split>.json.
    occnet: <synset>/<id>/points.npz (points, bit-packed occupancies, loc, scale float64),
      <synset>/<id>/pointcloud.npz (points, normals), model.binvox (32^3), <synset>/<split>.lst,
      metadata.yaml. From the store's occnet recipe (prepare-shapenet --recipe occnet): 100,000
      uniform points in OccNet's frame (bounding box centred, longest side 1, cube of side 1.1).
    ifnet: <synset>/<id>/boundary_{0.1,0.01}_samples.npz (points, occupancies, grid_coords),
      voxelized_point_cloud_128res_{300,3000}points.npz, voxelization_{32,128}.npy, split.npz
      (--recipe ifnet).
    ndf: <synset>/<id>/boundary_{0.08,0.02,0.003}_samples.npz (points, df, grid_coords),
      voxelized_point_cloud_256res_10000points.npz, split.npz with paths relative to
      --relative-to (--recipe ndf).
    hunyuan3d: preprocessed/<uid>/geo_data/<uid>_{surface,sdf}.npz (float16, labels positive
      inside), render_cond/ (24 views), <split>/ links and <split>.json (--recipe vecset).
    dora: <uid>.npz (fps_coarse_surface, fps_sharp_surface, sharp_near_surface, rand_points;
      its (-1, 1) frame, sdf positive inside), <split>.json (--recipe vecset).
    trellis: metadata.csv, voxels/<sha256>.ply (64^3 surface voxels in [-0.5, 0.5]^3, z up),
      renders/<sha256>/ (--views views, transforms.json, mesh.ply); objects keyed by the sha256
      of their files, the same bytes under two ids written once (duplicates.csv).
    npz: <id>.npz with every array of the shape's row (any kind of store).
    Shapes that failed or were skipped in the store are left out. The folder appears only once
    complete.

    \b
    Examples:
      sdfkit export shapes.zarr --to deepsdf -o data/ --split train
      sdfkit export occ.zarr --to occnet -o occnet-data/   # occ.zarr made with --recipe occnet
      sdfkit export vecset.zarr --to hunyuan3d -o hy3d-data/   # vecset.zarr made with --recipe vecset
      sdfkit export vecset.zarr --to dora -o data/mine --relative-to .
      sdfkit export shapes.zarr --to trellis -o trellis-data/ --aesthetic-score 5
      sdfkit export mnist.zarr --to npz -o digits/ --ids train-00000,train-00001
    """
    from sdfkit.builders.export import export_store

    wanted = [i.strip() for item in ids for i in item.split(",") if i.strip()] or None
    summary = export_store(
        store,
        to,
        output,
        split=split,
        ids=wanted,
        dataset=dataset,
        relative_to=relative_to,
        meshes_root=meshes,
        options={"views": views, "aesthetic_score": aesthetic_score},
        overwrite=overwrite,
        progress=progress_bar("export"),
    )
    click.echo(
        f"export: wrote {summary.shapes} shapes as {to} to {summary.out} in {summary.seconds:.1f} s ({summary.files} files)"
    )
    if summary.skipped:
        click.echo(
            f"  left out {len(summary.skipped)} shapes that failed or were skipped in the store (first: "
            f"{summary.skipped[0]})"
        )


@click.command("voxelize", context_settings=CONTEXT)
@click.argument("store")
@click.option(
    "--resolution",
    type=click.Choice([str(r) for r in RESOLUTIONS]),
    default=str(RESOLUTIONS[1]),
    help="Cells per side over [-1, 1]^3.",
)
@click.option("--sdf", is_flag=True, help="Also store the signed distance at each cell centre (voxels/sdf, float32).")
@click.option("--meshes", default=None, help="The folder the store's meshes are in now, if they moved.")
@workers_option
@overwrite_option("Replace voxel grids of another resolution.")
def voxelize_command(store, resolution, sdf, meshes, workers, overwrite):
    """Add occupancy grids (and SDF grids) of every shape to a prepare-shapenet store.

    The grids come from the meshes, signed exactly as the store's samples were (same outer
    surface), not from thresholding the samples. They are new arrays of the store:
    voxels/occupancy (n, R, R, R) uint8, 1 inside; voxels/sdf (n, R, R, R) float32 with --sdf;
    cell [i, j, k] is centred at (x_i, y_j, z_k), x_i = -1 + (2i + 1) / R. Running the same
    command again resumes an interrupted run.

    \b
    Examples:
      sdfkit voxelize shapes.zarr --resolution 64
      sdfkit voxelize shapes.zarr --resolution 128 --sdf --overwrite
    """
    from sdfkit.builders.voxels import voxelize_store

    summary = voxelize_store(
        store,
        resolution=int(resolution),
        sdf=sdf,
        workers=workers or default_workers(),
        meshes=meshes,
        overwrite=overwrite,
        progress=progress_bar("voxelize"),
    )
    if summary.state == "complete":
        click.echo(f"{store} already has these grids: nothing to do")
        return
    verb = "resumed" if summary.state == "resumed" else "wrote"
    click.echo(
        f"voxelize: {verb} {resolution}^3 grids in {store} in {summary.seconds:.1f} s; "
        f"{summary.computed} shapes computed, {summary.ok} ok, {len(summary.failures)} failed"
    )
    for shape_id, error in summary.failures[:5]:
        click.echo(f"    {shape_id}: {error}")


@click.command("render", context_settings=CONTEXT)
@click.argument("source")
@click.option("-o", "--output", required=True, help="The zarr store to write (kind 'renders').")
@click.option("--views", type=click.IntRange(min=1), default=24, help="Views per shape.")
@click.option("--size", type=click.IntRange(min=8), default=128, help="Image width and height in pixels.")
@click.option("--modes", default="depth,silhouette,normal,shaded", help="Comma-separated images to store.")
@click.option("--sphere-views/--random-views", default=True, help="Fixed, evenly spread cameras, or random per shape.")
@click.option("--unstructured", is_flag=True, help="Store no camera poses (IG-GAN's unknown-viewpoint setting).")
@click.option(
    "--distance", type=float, default=2.5, help="Camera distance from the centre (the shape fills the unit ball)."
)
@click.option("--seed", type=int, default=0, help="Seed of random cameras and lights.")
@click.option("--meshes", default=None, help="With a store: the folder its meshes are in now, if they moved.")
@workers_option
@overwrite_option()
def render_command(
    source, output, views, size, modes, sphere_views, unstructured, distance, seed, meshes, workers, overwrite
):
    """Render every mesh from several cameras, headless: depth, silhouette, normals, shading.

    SOURCE is a prepare-shapenet store (its shapes, in its normalized frame) or a folder of meshes
    (ShapeNet layouts detected). Depth is metric z-depth in the normalized frame (0: no hit);
    normals are world-frame, stored as uint8 (n + 1) * 127.5; shaded is Lambertian under a random
    directional light (stored in light/direction). Camera intrinsics and camera-to-world poses
    (OpenGL convention) are stored with every image; see docs/format.md. OpenGL: OSMesa on CPU;
    set PYOPENGL_PLATFORM=egl on a GPU machine. Running the same command again resumes.

    \b
    Examples:
      sdfkit render shapes.zarr -o renders.zarr --views 24 --size 128
      sdfkit render meshes/ -o views.zarr --views 8 --random-views --modes silhouette,shaded --unstructured
    """
    from sdfkit.builders.render import RenderConfig, parse_modes, prepare_renders

    config = RenderConfig(
        views=views,
        size=size,
        modes=parse_modes(modes),
        cameras="sphere" if sphere_views else "random",
        unstructured=unstructured,
        distance=distance,
        seed=seed,
    )
    summary = prepare_renders(
        source,
        output,
        config,
        meshes=meshes,
        workers=workers or default_workers(),
        overwrite=overwrite,
        progress=progress_bar("render"),
    )
    print_summary("render", summary)
    if summary.computed and summary.seconds > 0:
        click.echo(f"  {summary.computed * views / summary.seconds:.0f} views/s over the whole run")


@click.command("watertight", context_settings=CONTEXT)
@click.argument("root", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path), help="Folder for the meshes (ROOT's tree layout)."
)
@click.option(
    "--resolution", type=click.IntRange(16, 2048), default=256, help="Grid cells along the longest side of each shape."
)
@split_option
@synsets_option
@click.option(
    "--normalized",
    "frame",
    type=click.Choice(FRAMES),
    default="input",
    help="Coordinates of the meshes written: the input's, DeepSDF's (unit ball) or OccNet's (box centred, side 1).",
)
@click.option(
    "--format",
    "mesh_format",
    type=click.Choice(MESH_FORMATS),
    default="same",
    help="File format of the meshes (same: the input's; .stl, .glb and .gltf become .obj, which shares vertices).",
)
@click.option(
    "--name", default=None, help="File name of every output in its folder (e.g. isosurf.off), not the input's."
)
@click.option("--no-sheets", is_flag=True, help="Drop open sheets instead of closing them into plates one cell thick.")
@click.option("--largest-component", is_flag=True, help="Keep only the component of largest volume.")
@click.option("--seed", type=int, default=0, help="As prepare-shapenet's --seed: the same outer surface and signs.")
@workers_option
@scheduler_option
@click.option(
    "--shard-size", type=click.IntRange(min=1), default=16, help="Meshes per shard of the report (one task each)."
)
@click.option("--strict", is_flag=True, help="Exit non-zero if any mesh failed or is not watertight by both checks.")
@overwrite_option("Replace a report made with other parameters (its meshes are written again).")
def watertight_command(
    root,
    output,
    resolution,
    split_files,
    synsets,
    frame,
    mesh_format,
    name,
    no_sheets,
    largest_component,
    seed,
    workers,
    scheduler,
    shard_size,
    strict,
    overwrite,
):
    """Make every mesh watertight and manifold: the zero level set of sdfkit's signed distance.

    ROOT is what prepare-shapenet reads (ShapeNet v1/v2, ModelNet, a folder of meshes, one mesh).
    Holes close as the signs close them; interior parts, inner sheets and double walls go; open
    sheets become plates one cell thick. Meshes keep ROOT's layout under OUTPUT. Each one is checked
    as read back (trimesh: watertight, winding; open3d: edge and vertex manifold, orientable) and
    measured against the input's outer surface (Chamfer-L2, mean and Hausdorff distance, in the
    normalized frame; thin parts lost: outer-surface area farther than a cell from the result).
    The report is OUTPUT.report.zarr (sdfkit info/show) and OUTPUT.report.jsonl beside OUTPUT.
    Running the same command again resumes; a mesh that fails is recorded with its reason.

    \b
    Examples:
      sdfkit watertight shapes/ -o shapes-watertight/
      sdfkit watertight ~/ShapeNetCore.v2 --synsets 03001627 -o chairs-wt/ --resolution 256 --workers 8
      sdfkit watertight meshes/ -o wt/ --normalized occnet --format off --largest-component
      sdfkit show shapes-watertight.report.zarr --index 0 -o before-after.png
    """
    from sdfkit.builders.watertight import (
        CHECKS,
        WatertightConfig,
        prepare_watertight,
        report_paths,
        report_rows,
        summarize,
    )

    config = WatertightConfig(
        resolution=resolution,
        frame=frame,
        format=mesh_format,
        name=name,
        sheets=not no_sheets,
        largest_component=largest_component,
        seed=seed,
    )
    summary = prepare_watertight(
        root,
        output,
        config,
        split_files=split_files,
        synsets=parse_synsets(synsets),
        workers=workers or default_workers(),
        scheduler=scheduler,
        overwrite=overwrite,
        shard_size=shard_size,
        progress=progress_bar("watertight"),
    )
    print_summary("watertight", summary)
    store, jsonl = report_paths(output)
    rows = report_rows(store)
    numbers = summarize(rows)
    click.echo(
        f"  watertight and manifold by trimesh and open3d: {numbers['watertight_both']} of {numbers['ok']} meshes"
    )
    if numbers["ok"]:
        click.echo(f"  {'':<24}{'median':>12}{'worst':>12}")
        for key, label in (
            ("seconds", "seconds"),
            ("faces", "faces"),
            ("components", "components"),
            ("mean_distance_cells", "mean distance, cells"),
            ("hausdorff_cells", "Hausdorff, cells"),
            ("chamfer_l2", "Chamfer-L2"),
            ("thin_lost", "thin parts lost"),
        ):
            v = numbers[key]
            click.echo(f"  {label:<24}{v['median']:>12.4g}{v['max']:>12.4g}")
        bad = [r["id"] for r in rows if r["ok"] and not all(r[c] for c in CHECKS)]
        if bad:
            click.echo(f"  not watertight by both checks: {', '.join(bad[:5])}")
        single = [
            r["id"]
            for r in rows
            if r["ok"] and r["trimesh_watertight"] and not r["o3d_edge_manifold"] and r["output"].endswith(".obj")
        ]
        if single:
            click.echo(
                f"  open3d reads OBJ coordinates in single precision: {len(single)} closed by trimesh "
                f"are not as open3d reads them (far from the origin?: {', '.join(single[:3])}); "
                "--format ply or --normalized deepsdf keeps them closed for open3d too"
            )
    renamed = [r for r in rows if r["ok"] and Path(r["input"]).suffix.lower() != Path(r["output"]).suffix.lower()]
    if renamed:
        kinds = sorted({Path(r["input"]).suffix.lower() for r in renamed})
        click.echo(
            f"  {len(renamed)} mesh{'es' if len(renamed) != 1 else ''} written as {Path(renamed[0]['output']).suffix} "
            f"from {', '.join(kinds)} "
            "(STL cannot share vertices and a scene holds no single mesh; --format picks another)"
        )
    click.echo(f"  meshes in {output}; report in {store} and {jsonl} (size on disk counts both)")
    if strict and (summary.failures or numbers["watertight_both"] < numbers["ok"]):
        raise SdfkitError(
            f"{numbers['failed']} meshes failed, {numbers['ok'] - numbers['watertight_both']} not watertight (--strict); see {jsonl}"
        )


@click.command("validate", context_settings=CONTEXT)
@click.argument("store")
@json_option()
@click.option(
    "--allow-pending", is_flag=True, help="Accept an unfinished store (rows still pending) if the rest is valid."
)
def validate_command(store, as_json, allow_pending):
    """Re-check a store against format v1; exit 1 if anything is wrong.

    Checks the attributes, arrays, shapes, dtypes and layout; the metadata (unique ids, status
    and error columns that agree); values (finite where ok, fill values where failed); and
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
        raise SdfkitError(f"{store}: {bad} checks failed; the store does not follow format v1 (see above)")
    unfinished = report.pending or not report.complete
    if unfinished and not allow_pending:
        raise SdfkitError(
            f"{store}: unfinished: {report.pending} of {report.shapes} shapes are still pending; run the command "
            "that made it again to finish it, or pass --allow-pending to accept it as it is"
        )
    if not as_json:
        what = f" (unfinished: {report.pending} of {report.shapes} shapes pending)" if unfinished else ""
        click.echo(f"  the store follows format v1{what}")


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


COMMANDS = (
    export_command,
    voxelize_command,
    render_command,
    watertight_command,
    validate_command,
    info_command,
    report_command,
    show_command,
)
"""The commands of this module, in the order `sdfkit --help` lists them."""
