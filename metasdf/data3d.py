"""Tasks for the 3D experiments, drawn from a format-v1 ``shapenet`` store.

One task = one shape. Context and targets come from contiguous windows of the stored samples:
``prepare-shapenet`` stores them shuffled, so any window is a fair sample, and a window is one
slice of memory, so the data loader keeps up with the model.

- ``dense``: ``context_points`` SDF samples, half inside and half outside (the first ones of each
  sign in a random window); targets: ``target_points`` SDF samples of another window (balanced
  the same way with ``balanced_targets``, as the reference code draws them).
- ``levelset``: ``context_points`` surface samples with value 0; targets: SDF samples.

Coordinates: sdfkit's normalized frame (the unit ball); SDF values in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metasdf.tasks import balanced_pick as balanced_context
from metasdf.tasks import draw_task_3d
from sdfkit.errors import FormatError, InputError
from sdfkit.store.dataset import open_dataset
from sdfkit.torch import StoreShapes

__all__ = ["Shapes3D", "load_shapes_3d", "make_batch_3d", "balanced_context"]

REQUIRED = ("sdf/points", "sdf/values", "surface/points", "surface/normals", "norm/offset", "norm/scale")
SAMPLE_SETS = {"train": "sdf", "test": "sdf_test"}
"""Which stored SDF samples tasks come from: DeepSDF's training recipe, or its test recipe."""


@dataclass
class Shapes3D:
    """The shapes of one split, in memory (K = 250,000 samples take 4 MB per shape)."""

    points: torch.Tensor
    """(n, K, 3) float32 SDF sample positions."""
    values: torch.Tensor
    """(n, K) float32 SDF values."""
    surface: torch.Tensor
    """(n, S, 3) float32 surface samples."""
    normals: torch.Tensor
    """(n, S, 3) float32 outward normals."""
    offset: np.ndarray
    """(n, 3) normalization: normalized = (raw + offset) * scale."""
    scale: np.ndarray
    """(n,)"""
    ids: list[str]
    categories: list[str]
    rows: np.ndarray
    url: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, index, config, generator: torch.Generator, device="cpu") -> dict:
        return make_batch_3d(
            self,
            index,
            context=config.context,
            context_points=config.tasks.context_points,
            target_points=config.tasks.target_points,
            balanced_targets=config.tasks.balanced_targets,
            targets_include_context=config.tasks.targets_include_context,
            generator=generator,
            device=device,
        )


def load_shapes_3d(store, split: str, *, limit: int | None = None, samples: str = "train") -> Shapes3D:
    """Read the ok shapes of ``split`` from a ``shapenet`` store into memory; ``samples="test"``
    takes the SDF samples of DeepSDF's test recipe (``sdf_test/*``) instead of its training one."""
    if samples not in SAMPLE_SETS:
        raise InputError(f"unknown samples {samples!r}; choose {' or '.join(SAMPLE_SETS)}")
    ds = open_dataset(store)
    if ds.kind != "shapenet":
        raise FormatError(
            f"{store}: a {ds.kind!r} store; the 3D models need a 'shapenet' store (sdfkit prepare-shapenet)"
        )
    missing = [a for a in REQUIRED if a not in ds.arrays]
    if missing:
        raise FormatError(f"{store}: missing arrays {', '.join(missing)}; rebuild it with sdfkit prepare-shapenet")
    prefix = SAMPLE_SETS[samples]
    if f"{prefix}/points" not in ds.arrays:
        raise FormatError(
            f"{store}: has no {prefix}/* arrays (DeepSDF's test recipe); add them with "
            "sdfkit prepare-shapenet ... --recipe deepsdf-test, or evaluate with --samples train"
        )
    shapes = StoreShapes(
        store,
        (f"{prefix}/points", f"{prefix}/values", "surface/points", "surface/normals", "norm/offset"),
        split=split,
        limit=limit,
    )
    if len(shapes) == 0:
        raise FormatError(f"{store}: no usable shapes in split {split!r}")

    def read(name):
        return torch.from_numpy(np.ascontiguousarray(np.stack(shapes.read_rows(name)), dtype=np.float32))

    return Shapes3D(
        points=read(f"{prefix}/points"),
        values=read(f"{prefix}/values"),
        surface=read("surface/points"),
        normals=read("surface/normals"),
        offset=np.stack(shapes.read_rows("norm/offset")).astype(np.float64),
        scale=np.asarray(shapes.array("norm/scale")[:], dtype=np.float64)[shapes.rows],
        ids=list(shapes.ids),
        categories=list(shapes.categories),
        rows=np.asarray(shapes.rows),
        url=str(store),
    )


def make_batch_3d(
    shapes: Shapes3D,
    index: torch.Tensor,
    *,
    context: str,
    context_points: int,
    target_points: int,
    generator: torch.Generator,
    balanced_targets: bool = False,
    targets_include_context: bool = False,
    device="cpu",
) -> dict:
    """Context and targets of the tasks ``index`` (B,), drawn with ``generator``; with
    ``balanced_targets`` the targets are half inside, half outside (as the context), and with
    ``targets_include_context`` (dense) they begin with the context. Each task as
    `metasdf.tasks.draw_task_3d` draws it (and :class:`metasdf.tasks.MetaSDFTasks`, from a store)."""
    k, surface_total = shapes.points.shape[1], shapes.surface.shape[1]
    cx, cy, tx, ty = [], [], [], []
    for i in index.tolist():
        task = draw_task_3d(
            lambda start, stop, i=i: (shapes.points[i, start:stop], shapes.values[i, start:stop]),
            lambda start, stop, i=i: shapes.surface[i, start:stop],
            total=k,
            surface_total=surface_total,
            context=context,
            context_points=context_points,
            target_points=target_points,
            balanced_targets=balanced_targets,
            targets_include_context=targets_include_context,
            generator=generator,
        )
        for out, value in zip((cx, cy, tx, ty), task, strict=True):
            out.append(value)
    batch = {
        "context_x": torch.stack(cx),
        "context_y": torch.stack(cy).unsqueeze(2),
        "target_x": torch.stack(tx),
        "target_y": torch.stack(ty).unsqueeze(2),
        "index": torch.as_tensor(index),
    }
    return {key: value.to(device) for key, value in batch.items()}
