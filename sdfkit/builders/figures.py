"""Pictures of stored shapes (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdfkit.geometry.basics import cell_centres
from sdfkit.store.format import STATUS_OK

__all__ = ["plot_shape_2d", "save_contact_sheet", "plot_shape_3d", "plot_renders", "slice_points"]


def _pyplot():
    # matplotlib takes 0.3 s to import: loaded where a figure is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_levels(ax, grid: np.ndarray, title: str, *, upward: bool = False) -> None:
    """Level sets of a square grid over [-1, 1]^2; row 0 at the top (2D stores: y grows
    downward), or at the bottom with ``upward`` (slices of 3D shapes)."""
    r = grid.shape[0]
    extent = (-1, 1, -1, 1) if upward else (-1, 1, 1, -1)
    # matplotlib takes 0.3 s to import: loaded where a figure is drawn
    from matplotlib.colors import TwoSlopeNorm

    low, high = float(np.nanmin(grid)), float(np.nanmax(grid))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=min(low, -1e-6), vmax=max(high, 1e-6))
    ax.imshow(grid, cmap="RdBu", norm=norm, extent=extent, origin="lower" if upward else "upper")  # red inside
    centres = cell_centres(r)
    levels = np.arange(-1.0, 3.0, 0.1)
    ax.contour(centres, centres, grid, levels=levels, colors="k", linewidths=0.4, alpha=0.6)
    ax.contour(centres, centres, grid, levels=[0.0], colors="k", linewidths=2.2)
    ax.set_title(title)
    ax.set_xlim(-1, 1)
    ax.set_ylim((-1, 1) if upward else (1, -1))
    ax.set_aspect("equal")


def plot_shape_2d(shape: dict, path: str | Path, *, normals: int = 96) -> Path:
    """Save a 3-panel figure of one 2D shape: the image, the SDF's level sets (zero level bold),
    the surface points with some of their normals."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.3), dpi=100)
    axes[0].imshow(shape["image"], cmap="gray", extent=(-1, 1, 1, -1))
    axes[0].set_title(f"image: {shape['id']} (category {shape['category']}, {shape['split']})")
    if shape.get("status", STATUS_OK) != STATUS_OK:
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
    return _save(fig, path, plt)


def save_contact_sheet(shapes: list[dict], path: str | Path, *, columns: int = 8) -> Path:
    """Save a grid of SDFs (zero level bold) of several 2D shapes: a preview of a store."""
    plt = _pyplot()
    rows = max(1, int(np.ceil(len(shapes) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 1.9 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, shape in zip(axes.ravel(), shapes, strict=False):
        if shape.get("status", STATUS_OK) == STATUS_OK:
            _draw_levels(ax, shape["sdf/grid"], f"{shape['category']} ({shape['split']})")
            ax.title.set_fontsize(8)
        else:
            ax.set_title(f"{shape['id']}: failed", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path, plt)


SLICES = (("x = 0", 2, 1), ("y = 0", 0, 2), ("z = 0", 0, 1))
"""Axis-plane slices: (title, axis drawn horizontally, axis drawn vertically)."""


def slice_points(resolution: int) -> np.ndarray:
    """(3, R, R, 3) points of the three axis-plane slices of [-1, 1]^3 (see :data:`SLICES`):
    ``points[s, row, column]``, rows from the bottom up."""
    axis = -1.0 + (2.0 * np.arange(resolution) + 1.0) / resolution
    cols, rows = np.meshgrid(axis, axis)  # rows vary along the first index
    points = np.zeros((3, resolution, resolution, 3))
    for s, (_, horizontal, vertical) in enumerate(SLICES):
        points[s, ..., horizontal] = cols
        points[s, ..., vertical] = rows
    return points


def plot_shape_3d(shape: dict, path: str | Path, *, slices: np.ndarray | None = None, max_points: int = 6000) -> Path:
    """Save a figure of one 3D shape: SDF slices through the three axis planes (zero level bold)
    and its surface samples as points coloured by their normals.

    slices : (3, R, R) SDF values at :func:`slice_points`; without them, the SDF samples within
        0.02 of each plane are scattered, coloured by value.
    """
    plt = _pyplot()
    fig = plt.figure(figsize=(16, 4.4), dpi=100)
    names = "xyz"
    for s, (title, horizontal, vertical) in enumerate(SLICES):
        ax = fig.add_subplot(1, 4, s + 1)
        if shape.get("status", STATUS_OK) != STATUS_OK:
            ax.text(0, 0, f"failed:\n{shape['error']}", ha="center", va="center", wrap=True)
        elif slices is not None:
            _draw_levels(ax, slices[s], f"SDF on {title}, zero level bold", upward=True)
        else:
            # matplotlib takes 0.3 s to import: loaded where a figure is drawn
            from matplotlib.colors import TwoSlopeNorm

            points, values = shape["sdf/points"], shape["sdf/values"]
            near = np.abs(points[:, 3 - horizontal - vertical]) < 0.02
            norm = TwoSlopeNorm(vcenter=0.0, vmin=min(values.min(), -1e-6), vmax=max(values.max(), 1e-6))
            ax.scatter(points[near, horizontal], points[near, vertical], c=values[near], cmap="RdBu", norm=norm, s=2)
            ax.set_title(f"SDF samples within 0.02 of {title}")
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_aspect("equal")
        ax.set_xlabel(names[horizontal])
        ax.set_ylabel(names[vertical])
    ax = fig.add_subplot(1, 4, 4, projection="3d")
    if shape.get("status", STATUS_OK) == STATUS_OK:
        points, normals = shape["surface/points"], shape["surface/normals"]
        step = max(1, len(points) // max_points)
        p, n = points[::step], normals[::step]
        # y is up in ShapeNet: draw (x, z, y)
        ax.scatter(p[:, 0], p[:, 2], p[:, 1], c=np.clip((n + 1) / 2, 0, 1), s=1.5, depthshade=False)
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_zlim(-1, 1)
        ax.set_xlabel("x")
        ax.set_ylabel("z")
        ax.set_zlabel("y (up)")
        ax.set_title(f"surface samples ({len(p)} of {len(points)}),\ncolour = normal", fontsize=10)
    fig.suptitle(f"{shape['id']} ({shape['category'] or 'no category'}, {shape['split']})")
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_renders(shape: dict, path: str | Path, *, views: int = 8) -> Path:
    """Save a contact sheet of one shape's renders: a row per stored mode, a column per view."""
    plt = _pyplot()
    modes = [m for m in ("shaded", "normal", "depth", "silhouette") if f"render/{m}" in shape]
    count = min(views, len(shape[f"render/{modes[0]}"]))
    fig, axes = plt.subplots(len(modes), count, figsize=(1.6 * count, 1.7 * len(modes)), dpi=100, squeeze=False)
    for row, mode in enumerate(modes):
        images = shape[f"render/{mode}"]
        for v in range(count):
            ax = axes[row, v]
            if mode == "depth":
                depth = np.where(images[v] > 0, images[v], np.nan)
                ax.imshow(depth, cmap="viridis_r")
            else:
                ax.imshow(images[v], cmap="gray" if images[v].ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if v == 0:
                ax.set_ylabel(mode)
            if row == 0:
                ax.set_title(f"view {v}", fontsize=8)
    fig.suptitle(f"{shape['id']} ({shape['category'] or 'no category'})")
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_mesh_rows(rows: list[np.ndarray], labels: list[str], path: str | Path, *, title: str = "") -> Path:
    """Save rows of grey renders (each (V, H, W) uint8), one labelled row per mesh."""
    plt = _pyplot()
    count = len(rows[0])
    fig, axes = plt.subplots(len(rows), count, figsize=(2.6 * count, 2.7 * len(rows)), dpi=100, squeeze=False)
    for r, (images, label) in enumerate(zip(rows, labels, strict=True)):
        for v in range(count):
            ax = axes[r, v]
            ax.imshow(images[v], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if v == 0:
                ax.set_ylabel(label)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path, plt)


def _save(fig, path, plt) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
