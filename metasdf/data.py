"""Tasks for the 2D experiments, drawn from a format-v1 ``mnist`` store.

One task = one digit. Its context is what a model sees; its target is where it is judged:

- ``dense``: ``context_points`` random cells of the SDF grid (MetaSDF: 1024) with their values;
  the target is the other cells.
- ``levelset``: ``context_points`` points of the zero level set (MetaSDF: 512) with value 0; the
  target is every cell of the grid.

Coordinates are sdfkit's frame ([-1, 1]^2, y down), SDF values in the same units; or, with
``frame="reference"``, the MetaSDF reference code's (:func:`to_frame`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from metasdf.tasks import draw_tasks_2d, grid_centres
from sdfkit.errors import FormatError, InputError
from sdfkit.store.dataset import open_dataset
from sdfkit.torch import MNISTGrids

__all__ = ["Shapes2D", "load_shapes", "grid_coordinates", "make_batch", "to_frame", "frame_points", "frame_values"]

REQUIRED = ("sdf/grid", "surface/points")


@dataclass
class Shapes2D:
    """The digits of one split, in memory."""

    grids: torch.Tensor
    """(n, R * R) float32, row-major over the grid (see :func:`grid_coordinates`)."""
    surface: torch.Tensor
    """(n, S, 2) float32 zero-level-set points."""
    coords: torch.Tensor
    """(R * R, 2) cell centres as (x, y)."""
    ids: list[str]
    rows: np.ndarray
    """Row of each shape in the store."""
    frame: str = "sdfkit"
    """The frame of ``grids``, ``surface`` and ``coords`` (:func:`to_frame`)."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def resolution(self) -> int:
        return int(round(self.coords.shape[0] ** 0.5))

    def batch(self, index, config, generator: torch.Generator, device="cpu") -> dict:
        """A training batch of the tasks ``index`` as ``config`` (a TrainConfig) asks."""
        return make_batch(
            self,
            index,
            context=config.context,
            context_points=config.tasks.context_points,
            generator=generator,
            device=device,
        )


def frame_points(xy: torch.Tensor, resolution: int, frame: str) -> torch.Tensor:
    """Points (..., 2) given as sdfkit's (x, y) in ``frame``: ``reference`` is the MetaSDF code's
    ``get_mgrid`` (row / R - 0.5, column / R - 0.5) at the cell centres, so (y / 2 - 0.5 / R,
    x / 2 - 0.5 / R) between them."""
    if frame == "sdfkit":
        return xy
    if frame == "reference":
        return xy.flip(-1) / 2 - 0.5 / resolution
    raise InputError(f"unknown frame {frame!r}; choose sdfkit or reference")


def frame_values(values: torch.Tensor, resolution: int, frame: str) -> torch.Tensor:
    """sdfkit's SDF values of grid cells in ``frame``. ``reference``: the MetaSDF code's
    SignedDistanceTransform, the plain difference of two distance transforms in pixels divided by
    R. sdfkit's grid is half a cell closer to the boundary at every cell (docs/mnist.md), and its
    image spans 2: the reference value is v / 2 + sign(v) * 0.5 / R, exactly (zero stays zero)."""
    if frame == "sdfkit":
        return values
    if frame == "reference":
        return values / 2 + torch.sign(values) * (0.5 / resolution)
    raise InputError(f"unknown frame {frame!r}; choose sdfkit or reference")


def to_frame(shapes: Shapes2D, frame: str) -> Shapes2D:
    """The same digits in ``frame`` (from sdfkit's)."""
    if shapes.frame == frame:
        return shapes
    if shapes.frame != "sdfkit":
        raise InputError(f"shapes are in the {shapes.frame!r} frame; convert from sdfkit's")
    r = shapes.resolution
    return replace(
        shapes,
        grids=frame_values(shapes.grids, r, frame),
        surface=frame_points(shapes.surface, r, frame),
        coords=frame_points(shapes.coords, r, frame),
        frame=frame,
    )


def grid_coordinates(resolution: int) -> torch.Tensor:
    """(R * R, 2) cell centres (x, y), in the order of a row-major (R, R) grid: y_i, x_j."""

    return grid_centres(resolution)


def load_shapes(store, split: str, *, limit: int | None = None, frame: str = "sdfkit") -> Shapes2D:
    """Read the ok shapes of ``split`` from a ``mnist`` store into memory, in ``frame``, through
    :class:`sdfkit.torch.MNISTGrids` (the project's one reading path).

    Raises :class:`FormatError` for a store of another kind or without the 2D arrays.
    """

    ds = open_dataset(store)
    if ds.kind != "mnist":
        raise FormatError(f"{store}: a {ds.kind!r} store; the 2D trainer needs a 'mnist' store (sdfkit prepare-mnist)")
    missing = [a for a in REQUIRED if a not in ds.arrays]
    if missing:
        raise FormatError(f"{store}: missing arrays {', '.join(missing)}; rebuild it with sdfkit prepare-mnist")
    digits = MNISTGrids(store, split=split, limit=limit)
    if len(digits) == 0:
        raise FormatError(f"{store}: no usable shapes in split {split!r}")
    grids, surface = (np.stack(digits.read_rows(name)) for name in MNISTGrids.names)
    shapes = Shapes2D(
        grids=torch.from_numpy(np.ascontiguousarray(grids, dtype=np.float32)).reshape(len(digits), -1),
        surface=torch.from_numpy(np.ascontiguousarray(surface, dtype=np.float32)),
        coords=grid_coordinates(digits.resolution),
        ids=list(digits.ids),
        rows=np.asarray(digits.rows),
    )
    return to_frame(shapes, frame)


def make_batch(
    shapes: Shapes2D,
    index: torch.Tensor,
    *,
    context: str,
    context_points: int,
    generator: torch.Generator,
    device="cpu",
) -> dict:
    """Context and target of the tasks ``index`` (B,), drawn with ``generator``
    (:func:`metasdf.tasks.draw_tasks_2d`, as :class:`metasdf.tasks.MetaSDFTasks` draws them)."""

    batch = draw_tasks_2d(
        shapes.grids[index],
        shapes.surface[index],
        shapes.coords,
        context=context,
        context_points=context_points,
        generator=generator,
    )
    batch["index"] = torch.as_tensor(index)
    return {k: v.to(device) for k, v in batch.items()}
