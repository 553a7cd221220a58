"""Data preparation: ``prepare-mnist``, ``prepare-shapenet``, ``make-shapes``. Library modules are
imported in each command (see the package's docstring).
"""

from __future__ import annotations

from pathlib import Path

import click

from sdfkit.errors import SdfkitError
from sdfkit.geometry.shapes import CATEGORIES, DEFAULT_CATEGORIES, DEFECTS
from sdfkit.sources.mnist import VARIANTS
from sdfkit.sources.shapenet import SHARD_SIZE as SHAPENET_SHARD_SIZE

from .options import (
    CONTEXT,
    LazyChoice,
    overwrite_option,
    parse_synsets,
    progress_bar,
    recipe_names,
    run_build,
    scheduler_option,
    split_option,
    synsets_option,
    workers_option,
)


@click.command("prepare-mnist", context_settings=CONTEXT)
@click.option(
    "--source",
    type=click.Path(path_type=Path),
    help="Folder with the MNIST IDX files (or torchvision's MNIST/raw beneath it).",
)
@click.option("--download", is_flag=True, help="Download the official MNIST files (MD5-checked) into the cache folder.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Where --download keeps the files  [default: ~/.cache/sdfkit/mnist]",
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="URL",
    help="Base URL to download from instead of the official mirrors (repeatable).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="The zarr store to write (created, or resumed if unfinished).",
)
@click.option(
    "--variant",
    type=click.Choice(VARIANTS),
    default="standard",
    help="Which of MetaSDF's 2D experiments.",
)
@click.option("--resolution", type=click.IntRange(min=4), default=64, help="SDF grid cells per side over [-1, 1]^2.")
@click.option(
    "--surface-points", type=click.IntRange(min=1), default=2048, help="Points sampled on each zero level set."
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Use only the first N digits of each official split."
)
@click.option("--val-size", type=click.IntRange(min=0), default=1000, help="Training digits held out as the val split.")
@click.option(
    "--composite-test",
    type=click.IntRange(min=1),
    default=1000,
    help="Triple-MNIST test images of --variant composite (the paper's 1,000).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.5,
    help="Intensity (0-1) at which a digit's boundary lies.",
)
@workers_option
@click.option("--seed", type=int, default=0, help="Seed of the val split, rotations, compositions and sampling.")
@overwrite_option()
def prepare_mnist_command(
    source,
    download,
    cache_dir,
    mirrors,
    output,
    variant,
    resolution,
    surface_points,
    limit,
    val_size,
    composite_test,
    threshold,
    workers,
    seed,
    overwrite,
):
    """Turn MNIST digits into 2D signed distance fields and zero-level-set samples.

    Without --source or --download it uses the 5,000 real digits bundled with sdfkit. Running the
    same command again on an unfinished store continues where it stopped; on a finished one it
    does nothing.

    \b
    Examples:
      sdfkit prepare-mnist -o mnist.zarr
      sdfkit prepare-mnist --download -o mnist-full.zarr --variant rotated
      sdfkit prepare-mnist --source ~/data/MNIST/raw -o unseen.zarr --variant unseen-digits
    """
    from sdfkit.sources import mnist

    config = mnist.MnistConfig(
        variant=variant,
        resolution=resolution,
        surface_points=surface_points,
        seed=seed,
        val_size=val_size,
        limit=limit,
        composite_test=composite_test,
        threshold=threshold,
    )
    digits = mnist.load_source(
        source,
        download=download,
        cache_dir=cache_dir,
        mirrors=tuple(mirrors) or mnist.MNIST_MIRRORS,
        progress=lambda msg: click.echo(msg, err=True),
    )
    run_build("prepare-mnist", mnist.prepare_mnist, output, config, digits=digits, workers=workers, overwrite=overwrite)


@click.command("prepare-shapenet", context_settings=CONTEXT)
@click.argument("root")  # a folder, a mesh file, or an fsspec URL (s3://bucket/objects): not a Path
@click.option(
    "-o",
    "--output",
    required=True,
    help="The zarr store to write: a folder, or an fsspec URL such as s3://bucket/shapes.zarr.",
)
@split_option
@synsets_option
@click.option(
    "--recipe",
    "recipes",
    multiple=True,
    type=LazyChoice(recipe_names, "recipe"),
    default=("deepsdf",),
    help="What to sample per shape; repeatable (deepsdf is always included; see docs/shapenet.md).",
)
@click.option("--samples", type=click.IntRange(min=1), default=250_000, help="K: SDF samples per shape.")
@click.option(
    "--surface-samples",
    type=click.IntRange(min=1),
    default=30_000,
    help="S: outer-surface samples per shape, with normals.",
)
@click.option(
    "--sharp-angle",
    type=click.FloatRange(0, 180, min_open=True, max_open=True),
    default=15.0,
    show_default=True,
    help="vecset: an edge of the outer surface is sharp where its faces meet at more than this many degrees "
    "(Dora: 15; Hunyuan3D-2.1's vertex test: about 20).",
)
@workers_option
@scheduler_option
@click.option("--seed", type=int, default=0, help="Seed of all sampling.")
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=SHAPENET_SHARD_SIZE,
    help="Shapes per shard (one task, one storage object per array).",
)
@click.option(
    "--split-fractions",
    default=None,
    metavar="TRAIN,[VAL,]TEST",
    help="Without split files: deal the shapes out to train/val/test at random (seeded by --seed), e.g. 0.8,0.1,0.1.",
)
@click.option(
    "--val-shapes",
    type=click.IntRange(min=0),
    default=0,
    help="Then move this many train shapes to val (seeded by --seed; the MetaSDF paper holds out 20).",
)
@click.option(
    "--licence",
    "licences",
    default=None,
    metavar="LICENCES",
    help="Only objects under these licences, comma-separated (Objaverse's annotations, a metadata.csv's "
    "license column), e.g. cc-by,cc0; the others are recorded as skipped with their licence.  [default: all]",
)
@click.option(
    "--dedup",
    is_flag=True,
    help="Keep one object of each group of duplicates: the same bytes (sha256), or the same shape (its print, "
    "docs/objaverse.md); the others are recorded as skipped, naming the one kept.",
)
@click.option(
    "--max-faces",
    type=click.IntRange(min=1),
    default=None,
    help="Objects with more faces are recorded as failed, not computed.  [default: no limit]",
)
@click.option(
    "--confidence",
    is_flag=True,
    help="Also store, per SDF sample, the rule that signed it and how sure it is (sdf/rule, sdf/confidence: "
    "uint8), so that unsure samples can be dropped (docs/objaverse.md).",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help='A mesh taking longer fails ("over the time limit"); its worker is stopped and replaced.  [default: none]',
)
@click.option(
    "--memory-limit",
    default=None,
    metavar="SIZE",
    help="A worker whose resident memory grows past this while computing a mesh is stopped and replaced, the mesh "
    'failed ("over the memory limit"), e.g. 4G or 512M.  [default: none]',
)
@click.option("--strict", is_flag=True, help="Exit non-zero if any mesh failed.")
@overwrite_option()
def prepare_shapenet_command(
    root,
    output,
    split_files,
    synsets,
    recipes,
    samples,
    surface_samples,
    sharp_angle,
    workers,
    scheduler,
    seed,
    shard_size,
    split_fractions,
    val_shapes,
    licences,
    dedup,
    max_faces,
    confidence,
    time_limit,
    memory_limit,
    strict,
    overwrite,
):
    """Turn meshes into near-surface SDF samples and outer-surface samples with normals.

    ROOT is a ShapeNetCore v1 or v2 tree, ModelNet, Objaverse 1.0's cache (glbs/<000-xxx>/<uid>.glb),
    a folder with a metadata.csv of Objaverse-XL or TRELLIS (sha256, local_path), all detected,
    or any folder of mesh files (obj, off, ply, stl, glb, gltf); on disk, or in object storage
    (s3://bucket/objects: each worker reads the meshes from there). Signs are right on holes, interior sheets, double walls, flipped winding and
    triangle soups. A mesh that cannot be used is recorded as failed and the run goes on; running
    the same command again continues an unfinished store.

    \b
    Examples:
      sdfkit make-shapes shapes/ --n 24
      sdfkit prepare-shapenet shapes/ --split shapes/splits/train.json --split shapes/splits/test.json -o shapes.zarr
      sdfkit prepare-shapenet ~/ShapeNetCore.v2 --synsets 03001627 --split sv2_chairs_train.json -o chairs.zarr
      sdfkit prepare-shapenet ~/ShapeNetCore.v2 --split metasdf/planes_train --val-shapes 20 -o planes.zarr
      sdfkit prepare-shapenet meshes/ -o s3://bucket/meshes.zarr --scheduler tcp://10.0.0.5:8786
      sdfkit prepare-shapenet shapes/ --split shapes/splits/test.json --recipe deepsdf-test -o test.zarr
      sdfkit prepare-shapenet my-meshes/ --split-fractions 0.8,0.1,0.1 -o mine.zarr
      sdfkit prepare-shapenet objects/ --recipe vecset -o vecset.zarr   # Hunyuan3D-2.1 / Dora data
      sdfkit prepare-shapenet ~/.objaverse/hf-objaverse-v1 --licence cc-by,cc0 --dedup --max-faces 2000000 -o obj.zarr
      sdfkit prepare-shapenet s3://bucket/objects -o s3://bucket/objects.zarr --scheduler tcp://10.0.0.5:8786
    """
    from sdfkit.pipeline.runners import Limits
    from sdfkit.sources import shapenet

    config = shapenet.ShapenetConfig(
        samples=samples,
        surface_samples=surface_samples,
        seed=seed,
        synsets=parse_synsets(synsets),
        recipes=tuple(recipes),
        sharp_angle=sharp_angle,
        licences=tuple(licences.split(",")) if licences is not None else None,
        dedup=dedup,
        max_faces=max_faces,
        confidence=confidence,
    )
    summary = run_build(
        "prepare-shapenet",
        shapenet.prepare_shapenet,
        root,
        output,
        config,
        split_files=split_files,
        workers=workers,
        scheduler=scheduler,
        overwrite=overwrite,
        shard_size=shard_size,
        split_fractions=_fractions(split_fractions),
        val_shapes=val_shapes,
        limits=Limits(time_limit, _size(memory_limit)) if time_limit or memory_limit else None,
    )
    if strict and summary.failures:
        raise SdfkitError(f"{len(summary.failures)} meshes failed (--strict); see: sdfkit info {output}")


def _size(text: str | None) -> int | None:
    """``4G``, ``512M``, ``1.5GB``, ``800000000`` -> bytes."""
    if not text:
        return None
    import re

    match = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)i?b?\s*", text.lower())
    if match is None or match.group(1).count(".") > 1:
        raise SdfkitError(f"--memory-limit {text}: give a size such as 4G, 512M or 800000000 (bytes)")
    return int(float(match.group(1)) * 1024 ** "bkmgt".index(match.group(2) or "b"))


def _fractions(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise SdfkitError(f"--split-fractions {text}: give numbers separated by commas, e.g. 0.8,0.1,0.1") from None


@click.command("make-shapes", context_settings=CONTEXT)
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--n", "count", type=click.IntRange(min=1), default=24, help="Number of shapes (the categories in turn).")
@click.option("--seed", type=int, default=0, help="Seed of the shapes and their defects.")
@click.option(
    "--defects",
    default=",".join(DEFECTS),
    show_default=True,
    help="Comma-separated defects, given to the shapes in turn.",
)
@click.option(
    "--categories",
    default=",".join(DEFAULT_CATEGORIES),
    show_default=True,
    help=f"Comma-separated categories, in turn (of: {', '.join(name for name, _ in CATEGORIES.values())}; "
    "bracket: CAD blocks with narrow bores; container: cups, bowls, vases, drawers of single-sided sheets, air inside).",
)
def make_shapes_command(out_dir, count, seed, defects, categories):
    """Generate a ShapeNetCore-v2-style tree of procedural shapes with ShapeNet's usual defects.

    Writes OUT_DIR/<synset>/<id>/models/model_normalized.obj, split files OUT_DIR/splits/train.json
    and test.json, and OUT_DIR/shapes.json with each shape's primitives (its exact SDF).

    \b
    Example:
      sdfkit make-shapes shapes/ --n 48
      sdfkit make-shapes parts/ --n 8 --categories bracket --defects clean,flipped
      sdfkit make-shapes containers/ --n 8 --categories container --defects clean,soup
    """
    from sdfkit.errors import InputError
    from sdfkit.geometry.shapes import make_shapes

    chosen = tuple(d.strip() for d in defects.split(",") if d.strip())
    kinds = tuple(c.strip() for c in categories.split(",") if c.strip())
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: exists and is not empty; choose an empty or new folder")
    make_shapes(out_dir, count, seed=seed, defects=chosen, categories=kinds, progress=progress_bar("make-shapes"))
    click.echo(
        f"wrote {count} shapes to {out_dir} (splits in {out_dir / 'splits'}, exact shapes in {out_dir / 'shapes.json'})"
    )


COMMANDS = (prepare_mnist_command, prepare_shapenet_command, make_shapes_command)
"""The commands of this module, in the order `sdfkit --help` lists them."""
