"""The ``sdfkit`` command line: parses arguments, calls the library, prints.

User errors (:class:`sdfkit.errors.SdfkitError`) print one line on stderr and exit 1, with no
traceback; Ctrl-C exits 130 and leaves the store resumable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from sdfkit import __version__
from sdfkit.errors import SdfkitError
from sdfkit.shapes import CATEGORIES, DEFAULT_CATEGORIES, DEFECTS

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


_open_bars: list = []  # progress bars still drawing: an error must not land on their line


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SdfkitError as exc:
            for bar in _open_bars:
                bar.close()
            click.secho(f"error: {exc}", err=True, fg="red")
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: run the same command again to continue where it stopped", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="sdfkit")
def main():
    """sdfkit: signed distance function datasets for neural implicit shape models.

    \b
    Quick start:
      sdfkit prepare-mnist -o mnist.zarr        # the bundled digits -> 2D SDFs
      sdfkit show mnist.zarr --sheet 16 -o preview.png
      sdfkit info mnist.zarr
    """


@main.command("env", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def env_command(as_json):
    """Print versions of sdfkit, Python and its libraries, and the GPU: paste it into bug reports.

    \b
    Example:
      sdfkit env
    """
    from sdfkit.env import environment

    info = environment()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    width = max(map(len, info))
    for key, value in info.items():
        click.echo(f"{key:<{width}}  {value}")


def _progress_bar(description: str):
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, desc=description, unit="shape", dynamic_ncols=True)
            _open_bars.append(bar)
        elif bar in _open_bars and done > bar.n:
            bar.update(done - bar.n)
        if done >= total and bar in _open_bars:
            bar.close()
            _open_bars.remove(bar)

    return update


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1000
    return f"{n:.1f} GB"


def _print_summary(command: str, summary) -> None:
    if summary.state == "complete":
        click.echo(f"{summary.url} is already complete: nothing to do (see: sdfkit info {summary.url})")
        return
    rate = summary.computed / summary.seconds if summary.seconds > 0 else 0.0
    verb = {"resumed": "resumed", "appended": "appended to"}.get(summary.state, "wrote")
    click.echo(
        f"{command}: {verb} {summary.url} in {summary.seconds:.1f} s; "
        f"{summary.computed} shapes computed ({rate:.3g} shapes/s)"
    )
    if summary.state == "appended":
        click.echo(
            f"  the source has {summary.appended} new shapes: added after the store's existing rows, which were "
            "left as they were"
        )
    click.echo(f"  {'split':<8}{'ok':>8}{'failed':>8}")
    for split, counts in summary.per_split.items():
        click.echo(f"  {split:<8}{counts['ok']:>8}{counts['failed']:>8}")
    click.echo(f"  size on disk: {_human_bytes(summary.bytes)}")
    if summary.failures:
        click.echo(f"  {len(summary.failures)} failed shapes, first reasons:")
        for shape_id, error in summary.failures[:5]:
            click.echo(f"    {shape_id}: {error}")
    if summary.missing:
        first = ", ".join(summary.missing[:5])
        click.echo(
            f"  {len(summary.missing)} shapes listed in the split files are not in the source and were skipped "
            f"(first: {first}); all of them: sdfkit info {summary.url} --json (source.missing_ids)"
        )


def _default_workers() -> int:
    from sdfkit.parallel import default_workers

    return default_workers()


@main.command("prepare-mnist", context_settings=CONTEXT)
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
    type=click.Choice(["standard", "rotated", "unseen-digits", "composite"]),
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
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes  [default: all cores]")
@click.option("--seed", type=int, default=0, help="Seed of the val split, rotations, compositions and sampling.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store made with other parameters.")
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
        variant=variant, resolution=resolution, surface_points=surface_points, seed=seed, val_size=val_size, limit=limit
    )
    digits = mnist.load_source(
        source,
        download=download,
        cache_dir=cache_dir,
        mirrors=tuple(mirrors) or mnist.MNIST_MIRRORS,
        progress=lambda msg: click.echo(msg, err=True),
    )
    summary = mnist.prepare_mnist(
        output,
        config,
        digits=digits,
        workers=workers or _default_workers(),
        overwrite=overwrite,
        progress=_progress_bar("prepare-mnist"),
    )
    _print_summary("prepare-mnist", summary)


@main.command("prepare-shapenet", context_settings=CONTEXT)
@click.argument("root", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    help="The zarr store to write: a folder, or an fsspec URL such as s3://bucket/shapes.zarr.",
)
@click.option(
    "--split",
    "split_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="DeepSDF split file (JSON); repeatable; only listed shapes are processed.",
)
@click.option("--synsets", default=None, help="Comma-separated categories (synsets) to keep.")
@click.option("--samples", type=click.IntRange(min=1), default=250_000, help="K: SDF samples per shape.")
@click.option(
    "--surface-samples",
    type=click.IntRange(min=1),
    default=30_000,
    help="S: outer-surface samples per shape, with normals.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes  [default: all cores]")
@click.option(
    "--scheduler",
    envvar="DASK_SCHEDULER_ADDRESS",
    default=None,
    metavar="ADDR",
    help="Run on a Dask cluster (tcp://host:port; env DASK_SCHEDULER_ADDRESS).",
)
@click.option("--seed", type=int, default=0, help="Seed of all sampling.")
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=8,
    help="Shapes per shard (one task, one storage object per array).",
)
@click.option("--strict", is_flag=True, help="Exit non-zero if any mesh failed.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store made with other parameters.")
def prepare_shapenet_command(
    root,
    output,
    split_files,
    synsets,
    samples,
    surface_samples,
    workers,
    scheduler,
    seed,
    shard_size,
    strict,
    overwrite,
):
    """Turn meshes into near-surface SDF samples and outer-surface samples with normals.

    ROOT is a ShapeNetCore v1 or v2 tree (detected) or any folder of mesh files (obj, off, ply,
    stl, glb). Signs are right on holes, interior sheets, double walls, flipped winding and
    triangle soups. A mesh that cannot be used is recorded as failed and the run goes on; running
    the same command again continues an unfinished store.

    \b
    Examples:
      sdfkit make-shapes shapes/ --n 24
      sdfkit prepare-shapenet shapes/ --split shapes/splits/train.json --split shapes/splits/test.json -o shapes.zarr
      sdfkit prepare-shapenet ~/ShapeNetCore.v2 --synsets 03001627 --split sv2_chairs_train.json -o chairs.zarr
      sdfkit prepare-shapenet meshes/ -o s3://bucket/meshes.zarr --scheduler tcp://10.0.0.5:8786
    """
    from sdfkit.sources import shapenet

    config = shapenet.ShapenetConfig(
        samples=samples,
        surface_samples=surface_samples,
        seed=seed,
        synsets=tuple(s.strip() for s in synsets.split(",") if s.strip()) if synsets else None,
    )
    summary = shapenet.prepare_shapenet(
        root,
        output,
        config,
        split_files=split_files,
        workers=workers or _default_workers(),
        scheduler=scheduler,
        overwrite=overwrite,
        shard_size=shard_size,
        progress=_progress_bar("prepare-shapenet"),
    )
    _print_summary("prepare-shapenet", summary)
    if strict and summary.failures:
        raise SdfkitError(f"{len(summary.failures)} meshes failed (--strict); see: sdfkit info {output}")


@main.command("make-shapes", context_settings=CONTEXT)
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
    "bracket: CAD blocks with narrow bores).",
)
def make_shapes_command(out_dir, count, seed, defects, categories):
    """Generate a ShapeNetCore-v2-style tree of procedural shapes with ShapeNet's usual defects.

    Writes OUT_DIR/<synset>/<id>/models/model_normalized.obj, split files OUT_DIR/splits/train.json
    and test.json, and OUT_DIR/shapes.json with each shape's primitives (its exact SDF).

    \b
    Example:
      sdfkit make-shapes shapes/ --n 48
      sdfkit make-shapes parts/ --n 8 --categories bracket --defects clean,flipped
    """
    from sdfkit.errors import InputError
    from sdfkit.shapes import make_shapes

    chosen = tuple(d.strip() for d in defects.split(",") if d.strip())
    kinds = tuple(c.strip() for c in categories.split(",") if c.strip())
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: exists and is not empty; choose an empty or new folder")
    make_shapes(out_dir, count, seed=seed, defects=chosen, categories=kinds, progress=_progress_bar("make-shapes"))
    click.echo(
        f"wrote {count} shapes to {out_dir} (splits in {out_dir / 'splits'}, exact shapes in {out_dir / 'shapes.json'})"
    )


@main.command("train", context_settings=CONTEXT)
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--model",
    type=click.Choice(["metasdf", "autodecoder", "hypernet", "cnp", "deepsdf", "pointnet"]),
    default="metasdf",
    help="MetaSDF or a baseline: 2D autodecoder, hypernet, cnp; 3D deepsdf (dense), pointnet (levelset).",
)
@click.option(
    "--context",
    type=click.Choice(["dense", "levelset"]),
    default="dense",
    help="What a model sees of a shape: SDF samples, or zero-level-set points.",
)
@click.option(
    "-o",
    "--output",
    "run_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder: config, checkpoints, metrics.",
)
@click.option(
    "--preset",
    type=click.Choice(["paper", "cpu"]),
    default="cpu",
    help="paper: the paper's hyper-parameters (GPU); cpu: small enough for a 2-core CPU.",
)
@click.option(
    "--loss",
    type=click.Choice(["composite", "l1"]),
    default=None,
    help="3D MetaSDF: sign BCE + distance l1 with learned weights, or clamped l1  [default: composite]",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A config.json of an earlier run to replay (overrides --preset, --model, --context).",
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Outer steps in all  [default: the preset's]")
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0),
    default=None,
    metavar="MINUTES",
    help="Stop (and save) after this long.",
)
@click.option("--resume", is_flag=True, help="Continue the run in the output folder from its checkpoint.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto: CUDA when present).")
@click.option("--first-order", is_flag=True, default=None, help="MetaSDF: first-order inner-loop gradients.")
@click.option(
    "--inner-loss",
    type=click.Choice(["l2", "l1"]),
    default=None,
    help="MetaSDF: error of the inner loop on the context (3D: the composite loss's distance term); "
    "the outer loss is l1  [default: l2; l1 in the 3D paper preset]",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["constant", "cosine"]),
    default=None,
    help="Outer learning rate: constant, or a half cosine down to 0 at --steps  [default: the preset's]",
)
@click.option("--seed", type=int, default=None, help="Seed of initialization and batches  [default: 0]")
def train_command(
    data,
    model,
    context,
    run_dir,
    preset,
    loss,
    config_file,
    steps,
    time_limit,
    resume,
    device,
    first_order,
    inner_loss,
    lr_schedule,
    seed,
):
    """Train MetaSDF (or a baseline) on a prepare-mnist (2D) or prepare-shapenet (3D) store.

    The store's kind picks the networks: 2D, a 2 -> 256 x 3 -> 1 MLP; 3D, 8 x 512 (dense) or
    7 x 512 (level set) with a sign head and a distance head (--preset paper), or a small network
    that learns make-shapes categories on a CPU in about 30 minutes (--preset cpu).

    Ctrl-C or --time-limit saves a checkpoint; --resume continues it, and with the same seed gives
    the same losses as an uninterrupted run. Under torchrun every process trains on its own tasks
    with DistributedDataParallel (NCCL on GPUs, gloo on CPUs); rank 0 logs and saves.

    \b
    Examples:
      sdfkit train mnist.zarr --model metasdf --context dense -o runs/metasdf-dense
      sdfkit train mnist.zarr --model cnp --context levelset -o runs/cnp-ls --time-limit 10
      sdfkit train mnist.zarr -o runs/metasdf-dense --resume --steps 6000
      sdfkit train full.zarr --preset paper --device cuda -o runs/paper
      torchrun --nproc_per_node 4 -m cli.main train full.zarr --preset paper -o runs/paper4
      sdfkit train shapes.zarr --model metasdf --context dense -o runs/meta3d --time-limit 30
      sdfkit train shapes.zarr --model deepsdf --context dense -o runs/deepsdf --time-limit 30
    """
    import dataclasses
    import json as _json

    from metasdf import train as training

    if config_file is not None:
        config = training.config_from_json(config_file)
    elif resume and (run_dir / "config.json").exists():
        config = training.config_from_json(run_dir / "config.json")
    else:
        from sdfkit.store import open_store

        kind = open_store(data).attrs["sdfkit"].get("kind")
        config = training.preset(preset, model=model, context=context, kind=kind)
    overrides = {
        "steps": steps,
        "seed": seed,
        "first_order": first_order,
        "loss": loss,
        "inner_loss": inner_loss,
        "lr_schedule": lr_schedule,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = dataclasses.replace(config, **overrides)
    target = training.resolve_device(device)
    import os

    from tqdm import tqdm

    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun, only rank 0 talks
    bar = tqdm(
        total=config.steps,
        desc=f"train {config.model}/{config.context}",
        unit="step",
        dynamic_ncols=True,
        disable=not main_process,
    )
    _open_bars.append(bar)

    def progress(step, total, loss, rate):
        bar.n = step
        bar.set_postfix(loss=f"{loss:.4f}", steps_s=f"{rate:.2f}", refresh=False)
        bar.update(0)

    run_dir.mkdir(parents=True, exist_ok=True)
    result = training.train(
        data, run_dir, config, device=target, resume=resume, time_limit=time_limit, progress=progress
    )
    bar.close()
    _open_bars.remove(bar)
    if not main_process:
        return
    (run_dir / "data.json").write_text(_json.dumps({"store": str(Path(data).resolve())}))
    click.echo(
        f"train: {config.model}/{config.context} on {target}: step {result['step']} of {config.steps}, loss {result['loss']:.5f} ({result['stopped']})"
    )
    click.echo(
        f"  run folder: {run_dir} (config.json, checkpoint.pt, metrics.csv); evaluate with: sdfkit eval {run_dir}"
    )
    if result["stopped"] == "interrupted":
        click.echo(f"interrupted: checkpoint saved; continue with: sdfkit train {data} -o {run_dir} --resume", err=True)
        raise SystemExit(130)


_test_steps_option = click.option(
    "--test-steps",
    type=click.IntRange(min=1),
    default=None,
    help="MetaSDF: inner-loop steps; DeepSDF/auto-decoders: latent iterations  [default: the run's]",
)


@main.command("eval", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option("--split", default="test", help="Split to evaluate on.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N shapes.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--resolution", type=click.IntRange(min=16), default=128, help="3D: marching-cubes grid cells per side.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as a JSON object.")
@_test_steps_option
def eval_command(run_dir, data, split, limit, device, resolution, as_json, test_steps):
    """Measure a trained run on held-out shapes, with figures.

    2D: l1 over the full grid against the mean training shape. 3D: meshes by marching cubes,
    Chamfer distance by DeepSDF's protocol (30,000 points each way, mesh coordinates, x 10^3,
    mean and median per category), F-score at 1% and normal consistency. Both: seconds per shape,
    RUN_DIR/eval-<split>.json, PNGs (reconstructions beside the truth; for MetaSDF the inner-loop
    steps). DATA defaults to the store the run was trained on.

    \b
    Examples:
      sdfkit eval runs/metasdf-dense
      sdfkit eval runs/metasdf-dense mnist.zarr --split val --json
      sdfkit eval runs/meta3d --resolution 128
      sdfkit eval runs/meta3d --test-steps 20
    """
    from metasdf.evaluate import evaluate
    from metasdf.train import resolve_device

    result = evaluate(
        run_dir,
        data,
        split=split,
        limit=limit,
        device=resolve_device(device),
        resolution=resolution,
        test_steps=test_steps,
        progress=None if as_json else _progress_bar("eval"),
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if "chamfer_x1000" in result:
        _print_eval_3d(result, split)
        return
    click.echo(
        f"{result['model']} ({result['context']} context, {result['context_points']} points), step {result['trained_steps']}, {result['shapes']} {split} shapes"
    )
    click.echo(
        f"  l1 over the full grid: {result['l1_mean']:.5f} +- {result['l1_std']:.5f} (paper units, image width 1: {result['l1_mean_paper_units']:.5f} +- {result['l1_std_paper_units']:.5f})"
    )
    click.echo(f"  predicting the mean training shape: {result['mean_shape_l1']:.5f}")
    click.echo(
        f"  test-time: {_steps_text(result)}{1000 * result['seconds_per_shape']:.1f} ms per shape on {result['device']}"
    )
    for path in result.get("figures", []):
        click.echo(f"  figure: {path}")


def _steps_text(result: dict, after: str = ", ") -> str:
    """'10 inner steps' (MetaSDF), '300 latent iterations' (auto-decoders), then ``after``; or ''."""
    steps = result.get("test_steps")
    if steps is None:
        return ""
    return f"{steps} {'inner steps' if result['model'] == 'metasdf' else 'latent iterations'}{after}"


def _print_eval_3d(result: dict, split: str) -> None:
    click.echo(
        f"{result['model']} ({result['context']} context, {result['context_points']} points), step "
        f"{result['trained_steps']}, {result['shapes']} {split} shapes, meshes at {result['resolution']}^3"
    )
    click.echo(f"  {'category':<12}{'shapes':>7}{'CD x1e3 mean':>14}{'median':>9}{'F@1%':>7}{'NC':>7}")
    rows = list(result["per_category"].items()) + [("all", None)]
    for name, c in rows:
        if c is None:
            c = {
                "shapes": result["shapes"] - len(result["failed"]),
                "chamfer_x1000": result["chamfer_x1000"],
                "f_score_1pct": result["f_score_1pct"]["mean"],
                "normal_consistency": result["normal_consistency"]["mean"],
            }
        cd = c["chamfer_x1000"]
        if cd["mean"] is None:
            click.echo(f"  {name:<12}{c['shapes']:>7}  no surface reconstructed")
            continue
        click.echo(
            f"  {name:<12}{c['shapes']:>7}{cd['mean']:>14.3f}{cd['median']:>9.3f}"
            f"{c['f_score_1pct']:>7.3f}{c['normal_consistency']:>7.3f}"
        )
    if result["failed"]:
        click.echo(f"  {len(result['failed'])} shapes without a surface (first: {result['failed'][0]['id']})")
    click.echo(
        f"  test-time: {_steps_text(result)}{result['specialize_seconds_per_shape']:.3f} s specialization, "
        f"{result['seconds_per_shape']:.3f} s with meshing, per shape on {result['device']}"
    )
    for path in result.get("figures", []):
        click.echo(f"  figure: {path}")


@main.command("reconstruct", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--points",
    type=click.Path(path_type=Path),
    default=None,
    help="A point cloud (.ply .obj .npy .xyz): level-set runs.",
)
@click.option(
    "--samples",
    type=click.Path(path_type=Path),
    default=None,
    help="SDF samples (.npz: points, sdf [, offset, scale]; or DeepSDF's pos/neg): dense runs.",
)
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path), help="Mesh to write (.ply .obj .off .stl)."
)
@click.option("--resolution", type=click.IntRange(min=16), default=256, help="Marching-cubes grid cells per side.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, help="Seed of the context subsample.")
@_test_steps_option
def reconstruct_command(run_dir, points, samples, output, resolution, device, seed, test_steps):
    """Reconstruct a mesh from a point cloud or a few SDF samples with a trained 3D run.

    The input is normalized as prepare-shapenet normalizes meshes (for a cloud: from its own
    bounding box; for samples: from the npz's offset and scale, else from the samples nearest the
    surface), the model is specialized to it (MetaSDF's inner loop, DeepSDF's latent fit,
    PointNet's encoding), the SDF is evaluated on the grid coarse to fine, and marching cubes
    gives the mesh, written in the input's own coordinates. Prints the seconds of each stage.

    \b
    Examples:
      sdfkit reconstruct runs/meta3d-levelset --points scan.ply -o chair.ply
      sdfkit reconstruct runs/meta3d-dense --samples samples.npz -o chair.obj --resolution 128
      sdfkit reconstruct runs/meta3d-dense --samples samples.npz -o chair.obj --test-steps 20
    """
    from metasdf.reconstruct import reconstruct_file
    from metasdf.train import resolve_device

    result = reconstruct_file(
        run_dir,
        output,
        points=points,
        samples=samples,
        resolution=resolution,
        device=resolve_device(device),
        seed=seed,
        test_steps=test_steps,
    )
    s = result["seconds"]
    click.echo(
        f"reconstruct: wrote {result['output']} ({result['vertices']} vertices, {result['faces']} faces) "
        f"with {result['model']}/{result['context']} at {resolution}^3 ({_steps_text(result, after='') or 'one pass'})"
    )
    click.echo(
        f"  seconds: load {s['load']:.3f}, read {s['read']:.3f}, specialize {s['specialize']:.3f}, "
        f"grid {s['grid']:.3f} ({result['evaluated']:,} SDF evaluations), marching cubes {s['marching_cubes']:.3f}, "
        f"write {s['write']:.3f}; reconstruction {s['specialize'] + s['grid'] + s['marching_cubes']:.3f}"
    )


@main.command("export", context_settings=CONTEXT)
@click.argument("store")
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Choice(["deepsdf", "occnet", "npz"]),
    help="deepsdf: DeepSDF's data folder; occnet: Occupancy Networks' dataset; npz: a file per shape.",
)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Folder to write (new or empty).")
@click.option("--split", default=None, help="Only this split (train, val, test, ...)  [default: all]")
@click.option("--ids", multiple=True, help="Only these shape ids (comma-separated or repeated).")
@click.option("--dataset", default="ShapeNetV2", help="deepsdf: the dataset name in its paths and split files.")
@click.option("--overwrite", is_flag=True, help="Replace the output folder if it is not empty.")
def export_command(store, to, output, split, ids, dataset, overwrite):
    """Write a store in the layout another project reads; values unchanged in meaning.

    \b
    deepsdf: SdfSamples/<dataset>/<synset>/<id>.npz (float32 pos: sdf > 0, neg: sdf <= 0; rows
      x, y, z, sdf, normalized frame), SurfaceSamples/.../<id>.ply (mesh coordinates),
      NormalizationParameters/.../<id>.npz (offset (3,), scale (1,)), splits/<split>.json.
    occnet: <synset>/<id>/points.npz (points, bit-packed occupancies, loc, scale),
      <synset>/<id>/pointcloud.npz (points, normals), <synset>/<split>.lst, metadata.yaml.
      OccNet's frame is sdfkit's normalized frame halved (shapes in the ball of radius 0.5).
    npz: <id>.npz with every array of the shape's row (any kind of store).
    Shapes that failed in the store are skipped. The folder appears only once complete.

    \b
    Examples:
      sdfkit export shapes.zarr --to deepsdf -o data/ --split train
      sdfkit export shapes.zarr --to occnet -o occnet-data/
      sdfkit export mnist.zarr --to npz -o digits/ --ids train-00000,train-00001
    """
    from sdfkit.export import export_store

    wanted = [i.strip() for item in ids for i in item.split(",") if i.strip()] or None
    summary = export_store(
        store,
        to,
        output,
        split=split,
        ids=wanted,
        dataset=dataset,
        overwrite=overwrite,
        progress=_progress_bar("export"),
    )
    click.echo(
        f"export: wrote {summary.shapes} shapes as {to} to {summary.out} in {summary.seconds:.1f} s ({summary.files} files)"
    )
    if summary.skipped:
        click.echo(f"  skipped {len(summary.skipped)} shapes that failed in the store (first: {summary.skipped[0]})")


@main.command("voxelize", context_settings=CONTEXT)
@click.argument("store")
@click.option(
    "--resolution", type=click.Choice(["32", "64", "128"]), default="64", help="Cells per side over [-1, 1]^3."
)
@click.option("--sdf", is_flag=True, help="Also store the signed distance at each cell centre (voxels/sdf, float32).")
@click.option("--meshes", default=None, help="The folder the store's meshes are in now, if they moved.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes  [default: all cores]")
@click.option("--overwrite", is_flag=True, help="Replace voxel grids of another resolution.")
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
    from sdfkit.voxels import voxelize_store

    summary = voxelize_store(
        store,
        resolution=int(resolution),
        sdf=sdf,
        workers=workers or _default_workers(),
        meshes=meshes,
        overwrite=overwrite,
        progress=_progress_bar("voxelize"),
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


@main.command("render", context_settings=CONTEXT)
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
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes  [default: all cores]")
@click.option("--overwrite", is_flag=True, help="Replace an existing store made with other parameters.")
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
    from sdfkit.render import RenderConfig, parse_modes, prepare_renders

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
        workers=workers or _default_workers(),
        overwrite=overwrite,
        progress=_progress_bar("render"),
    )
    _print_summary("render", summary)
    if summary.computed and summary.seconds > 0:
        click.echo(f"  {summary.computed * views / summary.seconds:.0f} views/s over the whole run")


@main.command("validate", context_settings=CONTEXT)
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
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

    from sdfkit.validate import validate_store

    report = validate_store(store, progress=_progress_bar("validate"))
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


@main.command("info", context_settings=CONTEXT)
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a report.")
def info_command(store, as_json):
    """Describe a store: kind, counts per split and status, arrays, sizes, parameters, failures.

    \b
    Example:
      sdfkit info mnist.zarr
    """
    from sdfkit.report import store_report

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
    source.pop("legacy_id", None)
    click.echo(f"source     {json.dumps(source)}")
    if missing:
        click.echo(
            f"missing    {len(missing)} ids of the split files are not in the source (first: {', '.join(missing[:5])})"
        )
    click.echo("parameters " + ", ".join(f"{k}={v}" for k, v in report["parameters"].items()))
    click.echo(f"\n  {'split':<8}{'ok':>8}{'failed':>8}{'pending':>9}")
    for split, counts in report["splits"].items():
        click.echo(f"  {split:<8}{counts['ok']:>8}{counts['failed']:>8}{counts['pending']:>9}")
    click.echo(f"\n  {'array':<18}{'shape':<22}{'dtype':<9}{'chunk':<18}{'shard':<20}{'stored':>10}")
    for a in report["arrays"]:
        click.echo(
            f"  {a['name']:<18}{str(tuple(a['shape'])):<22}{a['dtype']:<9}{str(tuple(a['chunks'])):<18}"
            f"{str(tuple(a['shards'])):<20}{_human_bytes(a['stored_bytes']):>10}"
        )
    click.echo(f"\n  total stored: {_human_bytes(report['stored_bytes'])}")
    if report["failures"]:
        click.echo(f"\n  {report['failed']} failed shapes (first {len(report['failures'])}):")
        for f in report["failures"]:
            click.echo(f"    [{f['index']}] {f['id']}: {f['error']}")


@main.command("show", context_settings=CONTEXT)
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
    from sdfkit import figures
    from sdfkit.dataset import open_dataset
    from sdfkit.errors import InputError

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
    elif ds.kind == "renders":
        if shape["status"] != 1:
            raise InputError(f"{store}: shape {shape['id']} failed ({shape['error']}); nothing to draw")
        path = figures.plot_renders(shape, output, views=views)
    else:
        slices, where = _slices(ds, shape, meshes)
        path = figures.plot_shape_3d(shape, output, slices=slices)
        click.echo(f"slices: {where}")
    click.echo(f"wrote {path}")


def _slices(ds, shape, meshes):
    """SDF slices of a 3D shape, and where they came from."""
    from sdfkit import figures
    from sdfkit.errors import SdfkitError
    from sdfkit.voxels import shape_sdf, store_jobs

    if shape["status"] != 1:
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


if __name__ == "__main__":
    sys.exit(main())
