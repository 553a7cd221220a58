"""Training and evaluation: ``train``, ``eval``, ``reconstruct``. Library modules are imported in
each command (see the package's docstring).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from metasdf.config import (
    CONTEXTS,
    DISTANCE_TERMS,
    FRAMES,
    INNER_LOSSES,
    LOSSES,
    LR_SCHEDULES,
    MODELS_BY_KIND,
    PRESETS,
)

from .options import (
    CONTEXT,
    device_option,
    json_option,
    open_bars,
    progress_bar,
    step_bar,
    test_steps_option,
)

TRAIN_HELP = """Train MetaSDF (or a baseline) on a prepare-mnist (2D) or prepare-shapenet (3D) store.

The store's kind picks the networks. --preset cpu (the default): 2D, a 2 -> 128 x 3 -> 1 MLP;
3D, 4 x 128 with a sign head and a distance head, which learns make-shapes categories on a CPU
in about 30 minutes. --preset paper (the reference code's settings field by field:
docs/fidelity.md): 2D, 2 -> 256 x 3 -> 1; 3D, 9 x 512 (dense) or 8 x 512 (level set).

Ctrl-C or --time-limit saves a checkpoint; --resume continues it, and with the same seed gives
the same losses as an uninterrupted run. Under torchrun every process trains on its own tasks
with DistributedDataParallel (NCCL on GPUs, gloo on CPUs); rank 0 logs and saves.

\b
Examples:
  sdfkit train mnist.zarr --model metasdf --context dense -o runs/metasdf-dense
  sdfkit train mnist.zarr --model cnp --context levelset -o runs/cnp-ls --time-limit 10
  sdfkit train mnist.zarr -o runs/metasdf-dense --resume --steps 6000
  sdfkit train full.zarr --preset paper --device cuda -o runs/paper
  torchrun --nproc_per_node 4 -m sdfkit_cli.main train full.zarr --preset paper -o runs/paper4
  sdfkit train shapes.zarr --model metasdf --context dense -o runs/meta3d --time-limit 30
  sdfkit train shapes.zarr --model deepsdf --context dense -o runs/deepsdf --time-limit 30
  sdfkit train mnist.zarr --preset paper --model hypernet -o runs/h --show-config
"""


SETTINGS = (
    (
        "--loss",
        click.Choice(LOSSES),
        "3D: sign BCE + distance l1 with learned weights (composite), or clamped l1 (l1); MetaSDF and "
        "DeepSDF alike  [default: composite for MetaSDF; DeepSDF: its clamped l1, composite in the paper preset "
        "as the paper's Table 2]",
    ),
    ("--steps", click.IntRange(min=1), "Outer steps in all  [default: the preset's]"),
    (
        "--epochs",
        click.IntRange(min=1),
        "The length in epochs of the training split (replaces --steps; --time-limit still caps it)  "
        "[default: the paper preset's 50 (2D encoders, MetaSDF), 150 (auto-decoders), 3,000 (3D); cpu: none]",
    ),
    (
        "--inner-loss",
        click.Choice(INNER_LOSSES),
        "MetaSDF: error of the inner loop on the context (3D: the composite loss's distance term); "
        "the outer loss is l1  [default: l2; l1 in the 3D paper preset]",
    ),
    (
        "--lr-schedule",
        click.Choice(LR_SCHEDULES),
        "Outer learning rate: constant, a half cosine down to 0 at --steps, or halved every 350 "
        "epochs (step, the references')  [default: the preset's]",
    ),
    (
        "--outer-loss",
        click.Choice(INNER_LOSSES),
        "2D: the training loss on the targets (l2: the reference code's mean squared error)  "
        "[default: l1; l2 in the paper preset]",
    ),
    (
        "--frame",
        click.Choice(FRAMES),
        "2D: coordinates and ground truth as sdfkit's store has them, or as the reference code "
        "computes them (image spanning 1, no half-cell correction)  [default: sdfkit; reference in the paper preset]",
    ),
    (
        "--distance-term",
        click.Choice(DISTANCE_TERMS),
        "3D composite loss: error of the distance head, | |d| - |sdf| | or the reference's |d - sdf|  "
        "[default: unsigned; signed in the paper preset]",
    ),
    (
        "--encoder-layers",
        click.IntRange(min=1),
        "2D CNP: linear layers of the set encoder (the paper: 4, and a 9-layer variant)  "
        "[default: 3; 4 in the paper preset]",
    ),
    ("--seed", int, "Seed of initialization and batches  [default: 0]"),
)
"""The options that each set one setting of the run's config over the preset's (or the replayed
config's): (flag, type, help). Not given (None), the setting stays."""


def setting_options(command):
    """``command`` with an option per :data:`SETTINGS`, in that order in --help."""
    for flag, kind, text in reversed(SETTINGS):
        command = click.option(flag, type=kind, default=None, help=text)(command)
    return command


@click.command("train", context_settings=CONTEXT, help=TRAIN_HELP)
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--model",
    type=click.Choice(list(dict.fromkeys(m for models in MODELS_BY_KIND.values() for m in models))),
    default=None,
    help="MetaSDF or a baseline: 2D autodecoder, hypernet, cnp; 3D deepsdf (dense), pointnet (levelset)  "
    "[default: metasdf, or the --config's]",
)
@click.option(
    "--context",
    type=click.Choice(CONTEXTS),
    default=None,
    help="What a model sees of a shape: SDF samples, or zero-level-set points  [default: dense, or the --config's]",
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
    type=click.Choice(list(PRESETS)),
    default=None,
    help="paper: the paper's appendix and reference code, field by field (GPU; docs/fidelity.md); "
    "cpu: small enough for a 2-core CPU; not with --config or --resume (the run's config holds every setting)  "
    "[default: cpu]",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A config.json of an earlier run to replay (overrides --preset, --model, --context).",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0),
    default=None,
    metavar="MINUTES",
    help="Stop (and save) after this long.",
)
@click.option("--resume", is_flag=True, help="Continue the run in the output folder from its checkpoint.")
@device_option()
@setting_options
@click.option("--first-order", is_flag=True, default=None, help="MetaSDF: first-order inner-loop gradients.")
@click.option(
    "--show-config",
    is_flag=True,
    help="Print every setting the run would train with (the preset for this store's kind, model and context, "
    "with the options given), then exit without training.",
)
def train_command(
    data, model, context, run_dir, preset, config_file, time_limit, resume, device, show_config, **settings
):
    """``settings``: :data:`SETTINGS` and --first-order, by name (None where not given)."""
    from metasdf import train as training

    config = training.resolve_config(
        data,
        preset_name=preset,
        model=model,
        context=context,
        config_file=config_file,
        run_dir=run_dir,
        resume=resume,
        **settings,
    )
    if show_config:
        print_config(config)
        return
    target = training.resolve_device(device)
    main_process = training.main_process()  # under torchrun, only rank 0 talks
    bar, progress = step_bar(f"train {config.model}/{config.context}", config.optimizer.steps, time_limit, main_process)
    result = training.train(
        data, run_dir, config, device=target, resume=resume, time_limit=time_limit, progress=progress
    )
    bar.close()
    open_bars.remove(bar)
    if not main_process:
        return
    click.echo(
        f"train: {config.model}/{config.context} on {target}: step {result['step']} of {result['steps']}, loss {result['loss']:.5f} ({result['stopped']})"
    )
    click.echo(
        f"  run folder: {run_dir} (config.json, checkpoint.pt, metrics.csv); evaluate with: sdfkit eval {run_dir}"
    )
    if result["stopped"] == "interrupted":
        click.echo(f"interrupted: checkpoint saved; continue with: sdfkit train {data} -o {run_dir} --resume", err=True)
        raise SystemExit(130)


EVAL_HELP = """Measure a trained run on held-out shapes, with figures.

2D: l1 over the full grid against the mean training shape, and the reference code's metric
(mean squared error over the full grid, image spanning 1) against its ground truth and against
sdfkit's (they differ by half a cell everywhere). 3D: meshes by marching cubes,
Chamfer distance by DeepSDF's protocol (30,000 points each way, mesh coordinates, x 10^3,
mean and median per category), F-score at 1% and normal consistency. Both: seconds per shape,
RUN_DIR/eval-<split>.json (written before any figure; -limit<N>, -reference-context and
-test-samples join the name when asked, so a partial evaluation never replaces a full one; -o
names another file), PNGs beside it (reconstructions beside the truth; for MetaSDF the
inner-loop steps; --no-figures skips them). DATA defaults to the store the run was trained on.

\b
Examples:
  sdfkit eval runs/metasdf-dense
  sdfkit eval runs/metasdf-dense mnist.zarr --split val --json
  sdfkit eval runs/metasdf-dense --limit 5          # writes eval-test-limit5.json
  sdfkit eval runs/metasdf-dense -o results/dense.json
  sdfkit eval runs/metasdf-dense --seed 7             # writes eval-test-seed7.json
  sdfkit eval runs/meta3d --resolution 128
  sdfkit eval runs/meta3d --test-steps 20
  sdfkit eval runs/metasdf-dense --context reference --json
  sdfkit eval runs/meta3d --samples test --context reference --test-steps 10 --extra-step-lr 0.01
"""


@click.command("eval", context_settings=CONTEXT, help=EVAL_HELP)
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option("--split", default="test", help="Split to evaluate on.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N shapes.")
@device_option("auto, cpu, cuda or cuda:N.")
@click.option(
    "--resolution",
    type=click.IntRange(min=16),
    default=None,
    help="3D: marching-cubes grid cells per side  [default: the run's mesh_resolution: 128; 256 in the paper preset]",
)
@json_option("Print the result as a JSON object.")
@click.option("--no-figures", is_flag=True, help="Metrics only: no PNGs (and no renderer needed).")
@test_steps_option
@click.option(
    "--context",
    "eval_context",
    type=click.Choice(("sdfkit", "reference")),
    default="sdfkit",
    show_default=True,
    help="sdfkit: the run's context size, drawn at random; reference: the reference code's "
    "(2D every grid cell or every level-set point; 3D 50,000 SDF samples or 10,000 surface points; "
    "DeepSDF as its reconstruct.py: all the shape's samples, 8,000 fresh ones an iteration).",
)
@click.option(
    "--samples",
    type=click.Choice(("train", "test")),
    default="train",
    show_default=True,
    help="3D: dense context from DeepSDF's training recipe (sdf/*) or its test recipe (sdf_test/*, "
    "prepare-shapenet --recipe deepsdf-test), as the reference evaluated test shapes.",
)
@click.option(
    "--extra-step-lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="MetaSDF: learning rate of --test-steps past the trained ones (the reference's: 0.01)  "
    "[default: repeat the last step's learned rates]",
)
@click.option(
    "--seed",
    type=int,
    default=1234,
    show_default=True,
    help="Seed of the contexts drawn (another seed writes eval-<split>-seed<N>.json: runs over several seeds side by side).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="The JSON to write; figures go beside it  [default: RUN_DIR/eval-<split>[-limit<N>][-reference-context]"
    "[-test-samples][-seed<N>].json]",
)
def eval_command(
    run_dir,
    data,
    split,
    limit,
    device,
    resolution,
    as_json,
    no_figures,
    test_steps,
    eval_context,
    samples,
    extra_step_lr,
    seed,
    output,
):
    from metasdf.evaluate import evaluate
    from metasdf.results import result_path
    from metasdf.train import resolve_device

    result = evaluate(
        run_dir,
        data,
        split=split,
        limit=limit,
        device=resolve_device(device),
        resolution=resolution,
        test_steps=test_steps,
        context=eval_context,
        samples=samples,
        extra_step_lr=extra_step_lr,
        seed=seed,
        output=output,
        figures=not no_figures,
        progress=None if as_json else progress_bar("eval"),
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    written = result_path(run_dir, split, context=eval_context, samples=samples, limit=limit, output=output, seed=seed)
    if "chamfer_x1000" in result:
        _print_eval_3d(result, split)
        click.echo(f"  metrics: {written}")
        return
    click.echo(
        f"{result['model']} ({result['context']} context, {result['context_points']} points), step {result['trained_steps']}, {result['shapes']} {split} shapes"
    )
    click.echo(
        f"  l1 over the full grid: {result['l1_mean']:.5f} +- {result['l1_std']:.5f} (paper units, image width 1: {result['l1_mean_paper_units']:.5f} +- {result['l1_std_paper_units']:.5f})"
    )
    click.echo(
        f"  reference metric (MSE over the full grid, image width 1) x 10^-6: {1e6 * result['mse_reference']:.1f} "
        f"against its ground truth, {1e6 * result['mse_reference_sdfkit_truth']:.1f} against sdfkit's "
        f"(the two ground truths differ by {1e6 * result['ground_truth_gap_mse']:.1f})"
    )
    click.echo(
        f"  predicting the mean training shape: {result['mean_shape_l1']:.5f} "
        f"(reference metric x 10^-6: {1e6 * result['mean_shape_mse_reference']:.1f})"
    )
    click.echo(
        f"  test-time: {_steps_text(result)}{1000 * result['seconds_per_shape']:.1f} ms per shape on {result['device']}"
    )
    for path in result.get("figures", []):
        click.echo(f"  figure: {path}")
    click.echo(f"  metrics: {written}")


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


@click.command("reconstruct", context_settings=CONTEXT)
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
@device_option("auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, help="Seed of the context subsample.")
@test_steps_option
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


def print_config(config) -> None:
    """Every field of a config, section by section (:data:`metasdf.config.SECTIONS`): name and
    value (strings quoted)."""
    from metasdf.config import SECTIONS

    width = max(len(name) for names in SECTIONS.values() for name in names)
    settings = config.settings()
    for section, names in SECTIONS.items():
        click.echo(f"[{section}]")
        for name in names:
            value = settings[name]
            click.echo(f"  {name:<{width}}  {value!r}" if isinstance(value, str) else f"  {name:<{width}}  {value}")


COMMANDS = (train_command, eval_command, reconstruct_command)
"""The commands of this module, in the order `sdfkit --help` lists them."""
