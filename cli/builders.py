"""Commands that build from a store or meshes: ``export``, ``voxelize``, ``render``,
``watertight``. Library modules are imported in each command (see the package's docstring).
"""

from __future__ import annotations

from pathlib import Path

import click

from sdfkit.builders.voxels import RESOLUTIONS
from sdfkit.builders.watertight import FORMATS as MESH_FORMATS
from sdfkit.builders.watertight import FRAMES
from sdfkit.errors import SdfkitError

from .options import (
    CONTEXT,
    LazyChoice,
    default_workers,
    export_formats,
    overwrite_option,
    parse_synsets,
    progress_bar,
    run_build,
    scheduler_option,
    split_option,
    synsets_option,
    workers_option,
)


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
    summary = run_build(
        "render", prepare_renders, source, output, config, meshes=meshes, workers=workers, overwrite=overwrite
    )
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
        WatertightConfig,
        prepare_watertight,
        report_paths,
        report_rows,
        summarize,
        summary_lines,
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
    summary = run_build(
        "watertight",
        prepare_watertight,
        root,
        output,
        config,
        split_files=split_files,
        synsets=parse_synsets(synsets),
        workers=workers,
        scheduler=scheduler,
        overwrite=overwrite,
        shard_size=shard_size,
    )
    store, jsonl = report_paths(output)
    rows = report_rows(store)
    numbers = summarize(rows)
    for line in summary_lines(rows, numbers):
        click.echo(f"  {line}")
    click.echo(f"  meshes in {output}; report in {store} and {jsonl} (size on disk counts both)")
    if strict and (summary.failures or numbers["watertight_both"] < numbers["ok"]):
        raise SdfkitError(
            f"{numbers['failed']} meshes failed, {numbers['ok'] - numbers['watertight_both']} not watertight (--strict); see {jsonl}"
        )


COMMANDS = (export_command, voxelize_command, render_command, watertight_command)
"""The commands of this module, in the order `sdfkit --help` lists them."""
