"""Pictures of stored shapes (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_shape_2d", "save_contact_sheet"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_levels(ax, grid: np.ndarray, title: str) -> None:
    r = grid.shape[0]
    extent = (-1, 1, 1, -1)  # rows top to bottom: y grows downward, as in the store
    from matplotlib.colors import TwoSlopeNorm

    low, high = float(np.nanmin(grid)), float(np.nanmax(grid))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=min(low, -1e-6), vmax=max(high, 1e-6))
    ax.imshow(grid, cmap="RdBu", norm=norm, extent=extent)  # red inside, blue outside
    centres = -1.0 + (2.0 * np.arange(r) + 1.0) / r
    levels = np.arange(-1.0, 3.0, 0.1)
    ax.contour(centres, centres, grid, levels=levels, colors="k", linewidths=0.4, alpha=0.6)
    ax.contour(centres, centres, grid, levels=[0.0], colors="k", linewidths=2.2)
    ax.set_title(title)
    ax.set_xlim(-1, 1)
    ax.set_ylim(1, -1)
    ax.set_aspect("equal")


def plot_shape_2d(shape: dict, path: str | Path, *, normals: int = 96) -> Path:
    """Save a 3-panel figure of one 2D shape: the image, the SDF's level sets (zero level bold),
    the surface points with some of their normals."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.3), dpi=100)
    axes[0].imshow(shape["image"], cmap="gray", extent=(-1, 1, 1, -1))
    axes[0].set_title(f"image: {shape['id']} (category {shape['category']}, {shape['split']})")
    if shape.get("status", 1) != 1:
        for ax in axes[1:]:
            ax.text(0, 0, f"failed:\n{shape['error']}", ha="center", va="center", wrap=True)
            ax.set_xlim(-1, 1)
            ax.set_ylim(1, -1)
    else:
        grid = shape["sdf/grid"]
        _draw_levels(axes[1], grid, f"SDF {grid.shape[0]}x{grid.shape[1]}, zero level bold")
        pts, nrm = shape["surface/points"], shape["surface/normals"]
        axes[2].scatter(pts[:, 0], pts[:, 1], s=1.5, c="tab:red")
        step = max(1, len(pts) // normals)
        axes[2].quiver(
            pts[::step, 0],
            pts[::step, 1],
            nrm[::step, 0],
            nrm[::step, 1],
            angles="xy",
            scale_units="xy",
            scale=12,
            width=0.004,
            color="tab:blue",
        )
        axes[2].set_title(f"{len(pts)} surface points, outward normals")
        axes[2].set_xlim(-1, 1)
        axes[2].set_ylim(1, -1)
        axes[2].set_aspect("equal")
    for ax in axes:
        ax.set_xlabel("x")
        ax.set_ylabel("y (down)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_contact_sheet(shapes: list[dict], path: str | Path, *, columns: int = 8) -> Path:
    """Save a grid of SDFs (zero level bold) of several 2D shapes: a preview of a store."""
    plt = _pyplot()
    rows = max(1, int(np.ceil(len(shapes) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 1.9 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, shape in zip(axes.ravel(), shapes, strict=False):
        if shape.get("status", 1) == 1:
            _draw_levels(ax, shape["sdf/grid"], f"{shape['category']} ({shape['split']})")
            ax.title.set_fontsize(8)
        else:
            ax.set_title(f"{shape['id']}: failed", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
