"""Evaluating a trained 2D run on held-out digits.

For every shape of the split: draw its context (seeded), let the model reconstruct the SDF on the
full grid, and score it there, every cell, two ways:

- sdfkit's: the mean absolute error against the store's grid, in sdfkit units (the image spans 2);
- the reference code's (vsitzmann/metasdf): the mean squared error, in its frame (the image spans
  1), against its ground truth (the plain difference of two distance transforms, without
  sdfkit's half-cell correction: :func:`metasdf.data.frame_values`), and, beside it, against
  sdfkit's ground truth in the same units. The gap between the two ground truths is half a cell at
  every cell; its squared mean is reported too, so the columns say what they measure.

The reference "mean shape" predicts the average training SDF for every digit; a model must beat
it to have learned. The context is the run's (``context_points`` drawn at random), or with
``context="reference"`` the reference's evaluation context: every grid cell (dense) or every stored
zero-level-set point (level set).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from metasdf.data import frame_values, load_shapes, to_frame
from metasdf.evaluate3d import evaluate_3d
from metasdf.models import batched_mlp
from metasdf.results import DEFAULT_SEED, result_path, write_result
from metasdf.train import load_run, run_store, shown_steps, steps_at_test_time
from sdfkit.errors import InputError
from sdfkit.geometry.basics import cell_centres

__all__ = ["evaluate", "EVAL_CONTEXTS"]

EVAL_CONTEXTS = ("sdfkit", "reference")


def _full_grid_batch(shapes, index, config, generator, device, context="sdfkit"):
    b = len(index)
    if context == "reference":  # every cell with its value, or every stored level-set point
        if config.context == "dense":
            batch = {
                "context_x": shapes.coords.unsqueeze(0).expand(b, -1, -1),
                "context_y": shapes.grids[index].unsqueeze(2),
            }
        else:
            surface = shapes.surface[index]
            batch = {"context_x": surface, "context_y": torch.zeros(*surface.shape[:2], 1)}
        batch["index"] = torch.as_tensor(index)
        batch = {k: v.to(device) for k, v in batch.items()}
    elif context == "sdfkit":
        batch = shapes.batch(index, config, generator, device)
    else:
        raise InputError(f"unknown evaluation context {context!r}; choose {' or '.join(EVAL_CONTEXTS)}")
    batch["target_x"] = shapes.coords.unsqueeze(0).expand(b, -1, -1).to(device)
    batch["target_y"] = shapes.grids[index].unsqueeze(2).to(device)
    return batch


def evaluate(
    run_dir,
    store=None,
    *,
    split: str = "test",
    limit: int | None = None,
    device="cpu",
    batch_size: int = 16,
    seed: int = DEFAULT_SEED,
    figures: bool = True,
    resolution: int | None = None,
    test_steps: int | None = None,
    context: str = "sdfkit",
    samples: str = "train",
    extra_step_lr: float | None = None,
    output=None,
    progress=None,
) -> dict:
    """Evaluate a run; writes its JSON (:func:`result_path`: RUN_DIR/eval-<split>.json, with
    ``-limit<N>``, ``-reference-context`` or ``-test-samples`` in the name when those are asked, so
    that a partial evaluation never replaces a full one; or ``output``) and PNG figures beside it
    (its name, less ``.json``, then ``-reconstructions.png``), and returns its content.

    3D runs (trained on a shapenet store) are evaluated by :func:`metasdf.evaluate3d.evaluate_3d`
    with meshes extracted at ``resolution`` (None: the run's ``mesh_resolution``). ``test_steps`` overrides the run's test-time steps
    (MetaSDF's inner loop, the auto-decoders' latent iterations); ``extra_step_lr`` the rate of
    MetaSDF's steps past the trained ones. ``context``: see the module's text; ``samples`` (3D):
    ``test`` takes dense context from the store's DeepSDF test recipe.
    """
    run_dir = Path(run_dir)
    config, model, state = load_run(run_dir, device=device, test_steps=test_steps, extra_step_lr=extra_step_lr)
    store = store if store is not None else run_store(run_dir)
    if config.data_kind == "shapenet":
        return evaluate_3d(
            run_dir,
            config,
            model,
            state,
            store,
            split=split,
            limit=limit,
            device=device,
            resolution=resolution if resolution is not None else config.evaluation.mesh_resolution,
            seed=seed,
            figures=figures,
            context=context,
            samples=samples,
            output=result_path(run_dir, split, context=context, samples=samples, limit=limit, output=output, seed=seed),
            progress=progress,
        )
    if samples != "train":
        raise InputError(f"--samples {samples}: 2D stores have one grid per digit; drop --samples")
    if context not in EVAL_CONTEXTS:
        raise InputError(f"unknown evaluation context {context!r}; choose {' or '.join(EVAL_CONTEXTS)}")
    truth = load_shapes(store, split, limit=limit)  # sdfkit's frame: the ground truth of both metrics
    shapes = to_frame(truth, config.tasks.frame)  # what the model sees
    r = truth.resolution
    reference_truth = frame_values(truth.grids, r, "reference")
    train = load_shapes(store, config.split, limit=config.limit)
    mean_shape = train.grids.mean(dim=0)
    generator = torch.Generator().manual_seed(seed)

    l1, mse_reference, mse_sdfkit, seconds, first_batch = _score_all(
        model, config, shapes, truth, reference_truth, generator, device, context, batch_size
    )
    result = _result_2d(
        config, state, truth, reference_truth, mean_shape, (l1, mse_reference, mse_sdfkit), seconds,
        first_batch, context=context, split=split, seed=seed, device=device, store=store,
    )  # fmt: skip
    path = result_path(run_dir, split, context=context, limit=limit, output=output, seed=seed)
    draw = (lambda stem: _figures(stem, model, config, first_batch, shapes)) if figures else None
    return write_result(path, result, draw)


def _result_2d(config, state, truth, reference_truth, mean_shape, scores, seconds, first_batch, *, context, split,
               seed, device, store) -> dict:  # fmt: skip
    """A 2D evaluation's JSON: the run, its l1 and the reference's MSE against both ground truths
    (per shape means and spreads), the mean training shape's, the ground truths' gap, the time."""
    l1, mse_reference, mse_sdfkit = scores
    shapes_count, r = len(truth.ids), truth.resolution
    mean_errors = (truth.grids - mean_shape).abs().mean(dim=1).numpy()
    mean_mse = (mean_shape / 2 - reference_truth).pow(2).mean(dim=1).numpy()
    gap = truth.grids / 2 - reference_truth
    return {
        "model": config.model,
        "context": config.context,
        "context_points": int(first_batch[0]["context_x"].shape[1]),
        "evaluation_context": context,
        "frame": config.tasks.frame,
        "split": split,
        "shapes": shapes_count,
        "trained_steps": int(state["step"]),
        "test_steps": steps_at_test_time(config),
        "seed": seed,
        "l1_mean": float(l1.mean()),
        "l1_std": float(l1.std()),
        "l1_mean_paper_units": float(l1.mean() / 2),
        "l1_std_paper_units": float(l1.std() / 2),
        "mean_shape_l1": float(mean_errors.mean()),
        "reference_metric": "mean squared error over the full grid, image spanning 1 (vsitzmann/metasdf sdf_loss)",
        "mse_reference": float(mse_reference.mean()),
        "mse_reference_std": float(mse_reference.std()),
        "mse_reference_sdfkit_truth": float(mse_sdfkit.mean()),
        "mean_shape_mse_reference": float(mean_mse.mean()),
        "ground_truth_gap_mse": float(gap.pow(2).mean()),
        "ground_truth_gap_cells": float(gap.abs().mean() * r),
        "seconds_per_shape": seconds / shapes_count,
        "device": str(device),
        "store": str(store),
    }


def _score_all(model, config, shapes, truth, reference_truth, generator, device, context, batch_size):
    """Every shape's reconstruction from its context, ``batch_size`` at a time, scored against
    both ground truths: per shape l1 (sdfkit's units), MSE against the reference's truth and
    against sdfkit's (the reference's units); the seconds the model took; the first batch and
    its predictions (for the figures)."""
    l1, mse_reference, mse_sdfkit, seconds = [], [], [], 0.0
    first_batch = None
    for start in range(0, len(shapes), batch_size):
        index = torch.arange(start, min(start + batch_size, len(shapes)))
        batch = _full_grid_batch(shapes, index, config, generator, device, context)
        tic = time.perf_counter()
        with torch.no_grad():
            prediction = model.reconstruct(batch)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        seconds += time.perf_counter() - tic
        prediction = prediction[..., 0].cpu()
        # the prediction in units of an image spanning 2 (sdfkit's) and spanning 1 (the reference's)
        span2 = prediction if config.tasks.frame == "sdfkit" else 2 * prediction
        l1.append((span2 - truth.grids[index]).abs().mean(dim=1))
        mse_reference.append((span2 / 2 - reference_truth[index]).pow(2).mean(dim=1))
        mse_sdfkit.append((span2 / 2 - truth.grids[index] / 2).pow(2).mean(dim=1))
        if first_batch is None:
            first_batch = ({k: v.cpu() for k, v in batch.items()}, prediction.unsqueeze(2))
    l1, mse_reference, mse_sdfkit = (torch.cat(v).numpy() for v in (l1, mse_reference, mse_sdfkit))
    return l1, mse_reference, mse_sdfkit, seconds, first_batch


def _figures(stem: Path, model, config, first_batch, shapes) -> list[str]:
    # matplotlib takes 0.3 s to import: loaded where a figure is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batch, prediction = first_batch
    r = int(round(shapes.coords.shape[0] ** 0.5))
    c = cell_centres(r)
    scale = 1.0 if config.tasks.frame == "sdfkit" else 2.0  # drawn in sdfkit's units and frame
    raw = batch  # what the model sees
    batch = dict(raw, target_y=raw["target_y"] * scale)
    if config.tasks.frame == "reference":
        batch["context_x"] = ((raw["context_x"] + 0.5 / r) * 2).flip(-1)
    prediction = prediction * scale
    count = min(8, len(prediction))
    paths = []
    fig, axes = plt.subplots(2, count, figsize=(2 * count, 4.2), squeeze=False)
    for k in range(count):
        truth = batch["target_y"][k, :, 0].cpu().numpy().reshape(r, r)
        guess = prediction[k, :, 0].numpy().reshape(r, r)
        for row, (grid, name) in enumerate(((truth, "truth"), (guess, config.model))):
            ax = axes[row, k]
            ax.imshow(grid, cmap="RdBu", vmin=-0.5, vmax=0.5, extent=(-1, 1, 1, -1))
            ax.contour(c, c, grid, levels=[0.0], colors="k", linewidths=1.5)
            if row == 0:
                ax.contour(c, c, guess, levels=[0.0], colors="tab:orange", linewidths=1.0)
            ctx = batch["context_x"][k].cpu().numpy()
            if row == 1 and config.context == "levelset":
                ax.scatter(ctx[:, 0], ctx[:, 1], s=0.5, c="tab:green")
            ax.set_title(
                f"{name} {shapes.ids[k]}" if row == 0 else f"{name}, l1 {np.abs(guess - truth).mean():.4f}", fontsize=7
            )
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        f"{config.model}, {config.context} context ({config.tasks.context_points} points): truth (top, prediction's zero level in orange), reconstruction (bottom)",
        fontsize=8,
    )
    fig.tight_layout()
    path = Path(f"{stem}-reconstructions.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(str(path))

    if config.model == "metasdf":  # the paper's Fig. 9: level sets over the inner-loop steps
        paths.append(_inner_loop_figure(stem, model, raw, min(4, len(prediction)), scale, r))
    return paths


def _inner_loop_figure(stem: Path, model, raw: dict, count: int, scale: float, r: int) -> str:
    """The zero level (and the +-0.1 levels) of MetaSDF's field after each inner step, for the
    first ``count`` tasks of ``raw`` (the batch as the model sees it), truth in grey."""
    import matplotlib.pyplot as plt  # loaded, with the Agg backend, by _figures

    c = cell_centres(r)
    sub = {k: v[:count] for k, v in raw.items()}
    with torch.no_grad():
        _, history = model.specialize(sub["context_x"], sub["context_y"], trace=True)
    shown = shown_steps(len(history) - 1, model.steps)
    fig, axes = plt.subplots(count, len(shown), figsize=(1.9 * len(shown), 1.9 * count), squeeze=False)
    for column, s in enumerate(shown):
        fast = history[s]
        with torch.no_grad():
            values = scale * batched_mlp(sub["target_x"], fast)[:, :, 0].cpu().numpy()
        for k in range(count):
            ax = axes[k, column]
            truth = sub["target_y"][k, :, 0].cpu().numpy().reshape(r, r)
            ax.contour(c, c, truth, levels=[0.0], colors="0.7", linewidths=2.5)
            ax.contour(
                c,
                c,
                values[k].reshape(r, r),
                levels=[-0.1, 0.0, 0.1],
                colors=["tab:blue", "k", "tab:red"],
                linewidths=[0.7, 1.5, 0.7],
            )
            ax.set_xlim(-1, 1)
            ax.set_ylim(1, -1)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_title("initialization" if s == 0 else f"after step {s}", fontsize=8)
    fig.suptitle("MetaSDF inner loop: zero level (black) and +-0.1 levels; truth in grey", fontsize=8)
    fig.tight_layout()
    path = Path(f"{stem}-inner-loop.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
