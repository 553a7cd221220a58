"""MetaSDF's tasks drawn from a store: one task per shape, a context and targets, as the bundled
trainer draws them (:mod:`metasdf.data` and :mod:`metasdf.data3d` in memory, :class:`MetaSDFTasks`
straight from a store with a ``DataLoader``), so both give the same batch.

The generic streaming datasets these build on are in :mod:`sdfkit.torch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from sdfkit.errors import InputError
from sdfkit.geometry.basics import cell_centres
from sdfkit.store.dataset import open_dataset
from sdfkit.torch import MNISTGrids, StoreShapes, sample_set_names

__all__ = ["MetaSDFTasks", "grid_centres", "draw_tasks_2d", "draw_task_3d", "balanced_pick"]


class MetaSDFTasks(StoreShapes):
    """MetaSDF's tasks, one per shape: ``{"context_x", "context_y", "target_x", "target_y",
    "index"}`` as the bundled trainer (metasdf/) draws them, so a ``DataLoader`` batch is its batch.

    From an ``mnist`` store (:func:`draw_tasks_2d`): ``dense`` context = ``context_points`` random
    grid cells with their values, target = the other cells; ``levelset`` context =
    ``context_points`` zero-level-set points, target = every cell. From a ``shapenet`` store
    (:func:`draw_task_3d`, read straight from windows of the store): ``dense`` context =
    ``context_points`` SDF samples half inside, half outside; ``levelset`` = surface samples with
    value 0; targets ``target_points`` SDF samples (balanced with ``balanced_targets``, after the
    context with ``targets_include_context``);
    ``sample_set="sdf_test"`` draws from DeepSDF's test recipe. The other arguments:
    :class:`StoreShapes`.
    """

    def __init__(
        self,
        store: str,
        *,
        context: str = "dense",
        context_points: int = 512,
        target_points: int = 4096,
        balanced_targets: bool = False,
        targets_include_context: bool = False,
        sample_set: str = "sdf",
        **kwargs,
    ):
        if context not in ("dense", "levelset"):
            raise InputError(f"unknown context {context!r}; choose dense or levelset")
        kind = open_dataset(store, allow_incomplete=True).kind
        if kind == "mnist":
            names = MNISTGrids.names
        elif kind == "shapenet":
            if sample_set not in ("sdf", "sdf_test"):
                raise InputError(f"MetaSDFTasks reads 'sdf' or 'sdf_test', not {sample_set!r}")
            names = (*sample_set_names(store, sample_set)[0], "surface/points")
        else:
            raise InputError(f"{store}: a {kind!r} store; MetaSDFTasks reads an 'mnist' or a 'shapenet' store")
        recipe = "deepsdf-test" if sample_set == "sdf_test" else None
        super().__init__(store, names, recipe=recipe, **kwargs)
        self.store_kind, self.names = kind, names
        self.context, self.context_points = context, context_points
        self.target_points, self.balanced_targets = target_points, balanced_targets
        self.targets_include_context = targets_include_context
        if kind == "mnist":
            self.coords = grid_centres(self.shape_of["sdf/grid"][0])

    def __getitems__(self, indices: Sequence[int]) -> list:
        for index in indices:
            self._check(index)
        if self.store_kind == "mnist":
            grids, surfaces = (self.read_rows(name, indices) for name in self.names)
            items = []
            for index, grid, surface in zip(indices, grids, surfaces, strict=True):
                task = draw_tasks_2d(
                    torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32)).reshape(1, -1),
                    torch.from_numpy(np.ascontiguousarray(surface, dtype=np.float32))[None],
                    self.coords,
                    context=self.context,
                    context_points=self.context_points,
                    generator=self.generator(index),
                )
                items.append(self._finish(index, {k: v[0] for k, v in task.items()}))
            return items
        points, values, surface = self.names
        total, surface_total = self.shape_of[points][0], self.shape_of[surface][0]
        items = []
        for index in indices:  # a task's windows depend on its draws: read as they are drawn
            row = int(self.rows[index])

            def read(name, start, stop, row=row):
                return torch.from_numpy(np.ascontiguousarray(self.read_window(name, row, start, stop), np.float32))

            cx, cy, tx, ty = draw_task_3d(
                lambda start, stop, read=read: (read(points, start, stop), read(values, start, stop)),
                lambda start, stop, read=read: read(surface, start, stop),
                total=total,
                surface_total=surface_total,
                context=self.context,
                context_points=self.context_points,
                target_points=self.target_points,
                balanced_targets=self.balanced_targets,
                targets_include_context=self.targets_include_context,
                generator=self.generator(index),
            )
            task = {"context_x": cx, "context_y": cy[:, None], "target_x": tx, "target_y": ty[:, None]}
            items.append(self._finish(index, task))
        return items

    def _finish(self, index: int, task: dict) -> dict:
        task["index"] = index
        return self.transform(task) if self.transform else task


def grid_centres(resolution: int) -> torch.Tensor:
    """(R * R, 2) float32 cell centres (x, y) of an R x R grid in sdfkit's 2D frame, in the order
    of the row-major grid (row i = y_i, column j = x_j)."""
    c = torch.tensor(cell_centres(resolution), dtype=torch.float32)
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)


def draw_tasks_2d(
    grids: torch.Tensor,
    surface: torch.Tensor,
    coords: torch.Tensor,
    *,
    context: str,
    context_points: int,
    generator: torch.Generator | None = None,
) -> dict:
    """MetaSDF's 2D tasks of B digits: grids (B, R * R), surface (B, S, 2), coords (R * R, 2) ->
    ``context_x`` (B, N, 2), ``context_y`` (B, N, 1), ``target_x``, ``target_y``.

    dense: ``context_points`` cells without replacement, the target the other cells; levelset:
    ``context_points`` surface points with replacement (value 0), the target every cell."""
    b, cells = grids.shape
    if context == "dense":
        order = torch.argsort(torch.rand(b, cells, generator=generator), dim=1)
        ctx, tgt = order[:, :context_points], order[:, context_points:]
        return {
            "context_x": coords[ctx],
            "context_y": torch.gather(grids, 1, ctx).unsqueeze(2),
            "target_x": coords[tgt],
            "target_y": torch.gather(grids, 1, tgt).unsqueeze(2),
        }
    if context == "levelset":
        pick = torch.randint(0, surface.shape[1], (b, context_points), generator=generator)
        return {
            "context_x": torch.gather(surface, 1, pick.unsqueeze(2).expand(-1, -1, 2)),
            "context_y": torch.zeros(b, context_points, 1),
            "target_x": coords.unsqueeze(0).expand(b, -1, -1),
            "target_y": grids.unsqueeze(2),
        }
    raise InputError(f"unknown context {context!r}; choose dense or levelset")


def _window(total: int, length: int, generator) -> tuple[int, int]:
    length = min(length, total)
    start = int(torch.randint(0, total - length + 1, (1,), generator=generator))
    return start, start + length


def draw_task_3d(
    samples: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]],
    surface: Callable[[int, int], torch.Tensor],
    *,
    total: int,
    surface_total: int,
    context: str,
    context_points: int,
    target_points: int,
    balanced_targets: bool = False,
    targets_include_context: bool = False,
    generator: torch.Generator | None = None,
):
    """MetaSDF's 3D task of one shape, drawn from windows of its stored (shuffled) samples:
    ``samples(start, stop)`` gives SDF sample points (n, 3) and values (n,) of a window,
    ``surface(start, stop)`` surface points (n, 3); ``total`` and ``surface_total`` are the row
    lengths. Returns context x (N, 3), y (N,), target x (M, 3), y (M,).

    Targets: a window of ``target_points`` (with ``balanced_targets``: half inside, half outside,
    from a window 4 times longer). Context ``dense``: ``context_points`` half inside, half outside
    from a window 4 times longer; ``levelset``: a window of surface points, value 0. With
    ``targets_include_context`` a dense context is scored too: the targets are the context followed
    by the ``target_points`` others (N + M of them), as MetaSDF's reference code scores a scene."""
    if balanced_targets:
        tx, ty = balanced_pick(*samples(*_window(total, 4 * target_points, generator)), target_points, generator)
    else:
        tx, ty = samples(*_window(total, target_points, generator))
    if context == "dense":
        cx, cy = balanced_pick(*samples(*_window(total, 4 * context_points, generator)), context_points, generator)
    elif context == "levelset":
        cx = surface(*_window(surface_total, context_points, generator))
        cy = torch.zeros(len(cx))
    else:
        raise InputError(f"unknown context {context!r}; choose dense or levelset")
    if targets_include_context and context == "dense":
        tx, ty = torch.cat([cx, tx]), torch.cat([cy, ty])
    return cx, cy, tx, ty


def balanced_pick(points: torch.Tensor, values: torch.Tensor, count: int, generator: torch.Generator | None = None):
    """``count`` samples of a window, half inside (value <= 0) and half outside where it has them:
    the first ones of each sign (the stored samples are shuffled), drawn with replacement where
    the window holds fewer; a window of one sign gives that sign only."""
    inside = torch.nonzero(values <= 0).squeeze(1)
    outside = torch.nonzero(values > 0).squeeze(1)
    half = count // 2
    picks = []
    for group, want in ((inside, half), (outside, count - half)):
        if len(group) >= want:
            picks.append(group[:want])
        elif len(group) > 0:
            picks.append(group[torch.randint(0, len(group), (want,), generator=generator)])
    chosen = torch.cat(picks)
    if len(chosen) < count:  # a window with one sign only
        chosen = torch.cat([chosen, chosen[torch.randint(0, len(chosen), (count - len(chosen),), generator=generator)]])
    return points[chosen], values[chosen]
