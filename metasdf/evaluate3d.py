"""Evaluating a trained 3D run on held-out shapes, by DeepSDF's protocol.

For every shape of the split: draw its context from the store (seeded), specialize the model
(MetaSDF's inner loop, DeepSDF's latent optimization, PointNet's encoding), extract a mesh with
marching cubes, sample 30,000 points on it and compare them, in the mesh's original coordinates,
with the store's surface samples:

- Chamfer distance: mean squared nearest-neighbour distance in both directions, summed (DeepSDF),
  reported x 10^3, mean and median per category;
- F-score at 1%: threshold 1% of the diagonal of the true surface's bounding box;
- normal consistency: mean |cos| between nearest neighbours' normals, both directions.

A reconstruction without a surface counts as a failure (listed, left out of the means).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from metasdf.data3d import load_shapes_3d, make_batch_3d
from metasdf.models import batched_mlp
from metasdf.reconstruct import chamfer_distance, extract_mesh, f_score, normal_consistency, sample_mesh_points
from metasdf.results import result_path, write_result
from metasdf.train import shown_steps, steps_at_test_time
from sdfkit.builders.figures import slice_points
from sdfkit.builders.render import RenderConfig, look_at, render_mesh_views_shaded
from sdfkit.errors import InputError, SdfkitError, ShapeError
from sdfkit.geometry.basics import cell_centres
from sdfkit.geometry.mesh import load_mesh
from sdfkit.sources.shapenet import mesh_paths
from sdfkit.store.dataset import open_dataset

__all__ = ["evaluate_3d", "REFERENCE_CONTEXT_POINTS"]

REFERENCE_CONTEXT_POINTS = {"dense": 50_000, "levelset": 10_000}
"""The reference code's reconstruction context (3D/reconstruction.py: 100,000 balanced SDF
samples split in half, or 10,000 level-set points)."""
DEEPSDF_TEST_SAMPLES = 8000
"""DeepSDF's reconstruct.py: every iteration fits the code to 8,000 fresh samples (half of each
sign) of all the shape's test samples (its ``num_samples``)."""


def _field(model, batch):
    """The specialized SDF of one task (every model turns on the gradients it needs itself)."""
    with torch.no_grad():
        return model.field(batch["context_x"], batch["context_y"])


def _summary(values: list[float]) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"mean": None, "median": None}
    return {"mean": float(values.mean()), "median": float(np.median(values))}


def _scores(mesh, shapes, k: int, points: int, seed: int) -> dict:
    """Chamfer distance and F-score at 1% of the true surface's diagonal, in the mesh's original
    coordinates, and normal consistency, of shape ``k``'s reconstruction (``points`` samples)."""
    scale, offset = float(shapes.scale[k]), shapes.offset[k].astype(np.float64)
    predicted, predicted_normals = sample_mesh_points(mesh.vertices, mesh.faces, points, seed=seed)
    truth = shapes.surface[k].numpy().astype(np.float64)
    truth_normals = shapes.normals[k].numpy().astype(np.float64)
    raw_predicted, raw_truth = predicted / scale - offset, truth / scale - offset
    diagonal = float(np.linalg.norm(np.ptp(raw_truth, axis=0)))
    return {
        "chamfer": chamfer_distance(raw_predicted, raw_truth),
        "f_score": f_score(raw_predicted, raw_truth, 0.01 * diagonal),
        "normal_consistency": normal_consistency(predicted, predicted_normals, truth, truth_normals),
    }


def _reconstruct(model, batch, shapes, k: int, resolution: int, points: int, seed: int, device):
    """Shape ``k`` specialized from its context ``batch``, meshed and scored: its row (the seconds
    it took, its scores or its error) and its mesh (None when the field has no surface)."""
    tic = time.perf_counter()
    field = _field(model, batch)
    specialize = time.perf_counter() - tic
    row = {"id": shapes.ids[k], "category": shapes.categories[k], "specialize_seconds": specialize}
    try:
        mesh = extract_mesh(field, resolution, device=device)
    except ShapeError as exc:
        row.update(error=str(exc), seconds=time.perf_counter() - tic)
        return row, None
    row["seconds"] = time.perf_counter() - tic
    row.update(_scores(mesh, shapes, k, points, seed + k))
    return row, mesh


def _per_category(rows: list[dict]) -> dict:
    """Per category of the reconstructed shapes: their count, Chamfer (x 10^3, mean and median),
    mean F-score and mean normal consistency."""
    categories = defaultdict(list)
    for r in rows:
        categories[r["category"]].append(r)
    return {
        c: {
            "shapes": len(rs),
            "chamfer_x1000": {k: v * 1000 for k, v in _summary([r["chamfer"] for r in rs]).items()},
            "f_score_1pct": _summary([r["f_score"] for r in rs])["mean"],
            "normal_consistency": _summary([r["normal_consistency"] for r in rs])["mean"],
        }
        for c, rs in sorted(categories.items())
    }


def _result_3d(config, model, state, rows, context_points, *, context, samples, split, seed, resolution, device,
               store) -> dict:  # fmt: skip
    """A 3D evaluation's JSON: the run and protocol, the failures, Chamfer (x 10^3), F-score and
    normal consistency over the shapes and per category, the seconds, every shape's row."""
    ok = [r for r in rows if "error" not in r]
    return {
        "model": config.model,
        "context": config.context,
        "context_points": context_points,
        "samples_per_iteration": getattr(model, "test_samples", None),
        "evaluation_context": context,
        "samples": samples,
        "split": split,
        "shapes": len(rows),
        "failed": [{"id": r["id"], "error": r["error"]} for r in rows if "error" in r],
        "trained_steps": int(state["step"]),
        "seed": seed,
        "test_steps": steps_at_test_time(config),
        "resolution": resolution,
        "chamfer_x1000": {
            k: v * 1000 if v is not None else None for k, v in _summary([r["chamfer"] for r in ok]).items()
        },
        "f_score_1pct": _summary([r["f_score"] for r in ok]),
        "normal_consistency": _summary([r["normal_consistency"] for r in ok]),
        "per_category": _per_category(ok),
        "seconds_per_shape": float(np.mean([r["seconds"] for r in rows])),
        "specialize_seconds_per_shape": float(np.mean([r["specialize_seconds"] for r in rows])),
        "device": str(device),
        "store": str(store),
        "per_shape": rows,
    }


def evaluate_3d(
    run_dir: Path,
    config,
    model,
    state: dict,
    store,
    *,
    split: str = "test",
    limit: int | None = None,
    device="cpu",
    resolution: int = 128,
    points: int = 30_000,
    seed: int = 1234,
    figures: bool = True,
    context: str = "sdfkit",
    samples: str = "train",
    output=None,
    progress=None,
) -> dict:
    """Evaluate a 3D run; writes its JSON to ``output`` (default: see
    :func:`metasdf.evaluate.result_path`) and PNGs beside it, and returns its content.

    context : ``sdfkit`` (the run's ``context_points``) or ``reference`` (the reference code's
        reconstruction context: 50,000 SDF samples, half of each sign, or 10,000 surface points;
        for DeepSDF, DeepSDF's reconstruct.py: all the shape's samples, 8,000 fresh ones, half of
        each sign, every iteration, unless the run sets its own ``test_samples``)
    samples : where dense context comes from: ``train`` (the store's ``sdf/*``, DeepSDF's training
        recipe) or ``test`` (``sdf_test/*``, its test recipe, as the reference evaluated test shapes)
    """
    if context not in ("sdfkit", "reference"):
        raise InputError(f"unknown evaluation context {context!r}; choose sdfkit or reference")
    run_dir = Path(run_dir)
    shapes = load_shapes_3d(store, split, limit=limit, samples=samples)
    count = config.tasks.context_points if context == "sdfkit" else REFERENCE_CONTEXT_POINTS[config.context]
    # DeepSDF's own protocol for its auto-decoder: all of a shape's samples, drawn from afresh
    deepsdf_reference = context == "reference" and config.model == "deepsdf" and config.context == "dense"
    if deepsdf_reference and model.test_samples is None:
        model.test_samples = DEEPSDF_TEST_SAMPLES
    generator = torch.Generator().manual_seed(seed)
    rows = []
    meshes = {}
    for k in range(len(shapes)):
        batch = make_batch_3d(
            shapes,
            torch.tensor([k]),
            context=config.context,
            context_points=count,
            target_points=1,
            generator=generator,
            device=device,
        )
        if deepsdf_reference:
            batch["context_x"] = shapes.points[k : k + 1].to(device)
            batch["context_y"] = shapes.values[k : k + 1, :, None].to(device)
        row, mesh = _reconstruct(model, batch, shapes, k, resolution, points, seed, device)
        rows.append(row)
        if mesh is not None and len(meshes) < 4:
            meshes[k] = mesh
        if mesh is not None and progress:
            progress(k + 1, len(shapes))
    result = _result_3d(
        config, model, state, rows, int(batch["context_x"].shape[1]), context=context, samples=samples,
        split=split, seed=seed, resolution=resolution, device=device, store=store,
    )  # fmt: skip
    path = (
        Path(output) if output is not None else result_path(run_dir, split, context=context, samples=samples, seed=seed)
    )
    draw = (lambda stem: _figures(stem, model, config, shapes, meshes, store, device)) if figures else None
    return write_result(path, result, draw)


def _truth_meshes(store, shapes, rows) -> dict:
    """Row -> the shape's mesh (vertices, faces) in the normalized frame, or None when the meshes
    are not reachable. The source tree is scanned once."""

    try:
        ds = open_dataset(store)
        paths = mesh_paths(ds.attrs, [shapes.ids[k] for k in rows], str(store))
    except SdfkitError:
        return dict.fromkeys(rows)
    out = {}
    for k, path in zip(rows, paths, strict=True):
        try:
            mesh = load_mesh(path)
        except SdfkitError:
            out[k] = None
            continue
        out[k] = ((mesh.vertices + shapes.offset[k]) * shapes.scale[k], mesh.faces)
    return out


def _figures(stem: Path, model, config, shapes, meshes, store, device) -> list[str]:
    # matplotlib takes 0.3 s to import: loaded where a figure is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    view = RenderConfig(views=1, size=192, distance=2.5)
    pose = look_at(np.array([1.4, 1.0, 1.8]))[None]
    fig, axes = plt.subplots(2, max(1, len(meshes)), figsize=(3 * max(1, len(meshes)), 6.2), squeeze=False)
    truths = _truth_meshes(store, shapes, list(meshes))
    for col, (k, mesh) in enumerate(meshes.items()):
        truth = truths[k]
        images = [render_mesh_views_shaded(*truth, pose, view)[0] if truth else None]
        images.append(render_mesh_views_shaded(mesh.vertices, mesh.faces, pose, view)[0])
        for row, (image, name) in enumerate(zip(images, ("truth", config.model), strict=True)):
            ax = axes[row, col]
            if image is None:
                p = shapes.surface[k].numpy()[::10]
                ax.scatter(p[:, 0], p[:, 1], s=0.3)
            else:
                ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{name}: {shapes.ids[k]}", fontsize=8)
            ax.axis("off")
    fig.suptitle(f"{config.model}, {config.context} context: truth (top) and reconstruction (bottom)", fontsize=9)
    fig.tight_layout()
    path = Path(f"{stem}-reconstructions.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(str(path))

    if config.model == "metasdf":  # SDF slices over the inner-loop steps
        count = min(3, len(shapes))
        generator = torch.Generator().manual_seed(0)
        batch = make_batch_3d(
            shapes,
            torch.arange(count),
            context=config.context,
            context_points=config.tasks.context_points,
            target_points=1,
            generator=generator,
            device=device,
        )
        with torch.no_grad():
            _, history = model.specialize(batch["context_x"], batch["context_y"], trace=True)
        grid = torch.tensor(slice_points(96)[0].reshape(-1, 3), dtype=torch.float32, device=device)  # the x = 0 plane
        shown = shown_steps(len(history) - 1, model.steps)
        fig, axes = plt.subplots(count, len(shown), figsize=(2.2 * len(shown), 2.3 * count), squeeze=False)
        c = cell_centres(96)
        for column, s in enumerate(shown):
            fast = history[s]
            with torch.no_grad():
                values = model.sdf(batched_mlp(grid.unsqueeze(0).expand(count, -1, -1), fast))[..., 0].cpu().numpy()
            for k in range(count):
                ax = axes[k, column]
                v = values[k].reshape(96, 96)
                ax.imshow(v, origin="lower", extent=(-1, 1, -1, 1), cmap="RdBu", vmin=-0.3, vmax=0.3)
                ax.contour(c, c, v, levels=[0.0], colors="k", linewidths=1.2)
                ax.set_xticks([])
                ax.set_yticks([])
                if k == 0:
                    ax.set_title("initialization" if s == 0 else f"after step {s}", fontsize=8)
                if column == 0:
                    ax.set_ylabel(shapes.ids[k], fontsize=7)
        fig.suptitle("MetaSDF inner loop: SDF on the plane x = 0 (z right, y up), zero level black", fontsize=9)
        fig.tight_layout()
        path = Path(f"{stem}-inner-loop.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(str(path))
    return paths
