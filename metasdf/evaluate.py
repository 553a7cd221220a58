"""Evaluating a trained 2D run on held-out digits.

For every shape of the split: draw its context (seeded), let the model reconstruct the SDF on the
full grid, and measure the mean absolute error over all cells. Reported in sdfkit units (the
image spans 2) and in the paper's units (the image spans 1: half the value). The reference "mean
shape" predicts the average training SDF for every digit; a model must beat it to have learned.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from metasdf.data import load_shapes, make_batch
from metasdf.train import load_run, run_store, shown_steps, steps_at_test_time
from sdfkit.geometry.basics import cell_centres

__all__ = ["evaluate"]


def _full_grid_batch(shapes, index, config, generator, device):
    batch = make_batch(
        shapes, index, context=config.context, context_points=config.context_points, generator=generator, device=device
    )
    b = len(index)
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
    seed: int = 1234,
    figures: bool = True,
    resolution: int = 128,
    test_steps: int | None = None,
    progress=None,
) -> dict:
    """Evaluate a run; writes RUN_DIR/eval-<split>.json (and PNG figures) and returns its content.

    3D runs (trained on a shapenet store) are evaluated by :func:`metasdf.evaluate3d.evaluate_3d`
    with meshes extracted at ``resolution``. ``test_steps`` overrides the run's test-time steps
    (MetaSDF's inner loop, the auto-decoders' latent iterations).
    """
    run_dir = Path(run_dir)
    config, model, state = load_run(run_dir, device=device, test_steps=test_steps)
    store = store if store is not None else run_store(run_dir)
    if config.data_kind == "shapenet":
        from metasdf.evaluate3d import evaluate_3d

        return evaluate_3d(
            run_dir,
            config,
            model,
            state,
            store,
            split=split,
            limit=limit,
            device=device,
            resolution=resolution,
            seed=seed,
            figures=figures,
            progress=progress,
        )
    shapes = load_shapes(store, split, limit=limit)
    train = load_shapes(store, config.split, limit=config.limit)
    mean_shape = train.grids.mean(dim=0)
    generator = torch.Generator().manual_seed(seed)

    errors, seconds = [], 0.0
    first_batch = None
    for start in range(0, len(shapes), batch_size):
        index = torch.arange(start, min(start + batch_size, len(shapes)))
        batch = _full_grid_batch(shapes, index, config, generator, device)
        tic = time.perf_counter()
        with torch.no_grad():
            prediction = model.reconstruct(batch)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        seconds += time.perf_counter() - tic
        errors.append((prediction - batch["target_y"]).abs().mean(dim=(1, 2)).cpu())
        if first_batch is None:
            first_batch = (batch, prediction.cpu())
    errors = torch.cat(errors).numpy()
    mean_errors = (shapes.grids - mean_shape).abs().mean(dim=1).numpy()
    result = {
        "model": config.model,
        "context": config.context,
        "context_points": config.context_points,
        "split": split,
        "shapes": len(shapes),
        "trained_steps": int(state["step"]),
        "test_steps": steps_at_test_time(config),
        "l1_mean": float(errors.mean()),
        "l1_std": float(errors.std()),
        "l1_mean_paper_units": float(errors.mean() / 2),
        "l1_std_paper_units": float(errors.std() / 2),
        "mean_shape_l1": float(mean_errors.mean()),
        "seconds_per_shape": seconds / len(shapes),
        "device": str(device),
        "store": str(store),
    }
    path = run_dir / f"eval-{split}.json"
    path.write_text(json.dumps(result, indent=2))  # the metrics first, whatever the figures do
    if figures:
        result["figures"] = _figures(run_dir, split, model, config, first_batch, shapes)
        path.write_text(json.dumps(result, indent=2))
    return result


def _figures(run_dir, split, model, config, first_batch, shapes) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batch, prediction = first_batch
    r = int(round(shapes.coords.shape[0] ** 0.5))
    c = cell_centres(r)
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
        f"{config.model}, {config.context} context ({config.context_points} points): truth (top, prediction's zero level in orange), reconstruction (bottom)",
        fontsize=8,
    )
    fig.tight_layout()
    path = run_dir / f"eval-{split}-reconstructions.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(str(path))

    if config.model == "metasdf":  # the paper's Fig. 9: level sets over the inner-loop steps
        from metasdf.models import batched_mlp

        count = min(4, len(prediction))
        sub = {k: v[:count] for k, v in batch.items()}
        with torch.no_grad():
            _, history = model.specialize(sub["context_x"], sub["context_y"], trace=True)
        shown = shown_steps(len(history) - 1, model.steps)
        fig, axes = plt.subplots(count, len(shown), figsize=(1.9 * len(shown), 1.9 * count), squeeze=False)
        for column, s in enumerate(shown):
            fast = history[s]
            with torch.no_grad():
                values = batched_mlp(sub["target_x"], fast)[:, :, 0].cpu().numpy()
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
        path = run_dir / f"eval-{split}-inner-loop.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(str(path))
    return paths
