"""From a trained 3D run to meshes: grid evaluation, marching cubes, and the metrics of the
paper's 3D tables (Chamfer distance by DeepSDF's protocol, F-score, normal consistency).

Grid evaluation is coarse to fine: the SDF is evaluated on a coarse grid first, then level by
level (halving the spacing) only in a narrow band around the surface: the finer grid starts as the
trilinear interpolation of the coarser values (which keeps their sign), the nodes of cells whose
interpolated corners change sign or lie within a cell diagonal of zero are evaluated, and the band
then grows cell by cell until every cell with a sign change has exact values at all its corners.
Marching cubes finds the same surface as on the full grid for a fraction of the evaluations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes
from torch.nn import functional as F

from metasdf.data3d import balanced_context
from metasdf.train import load_run, steps_at_test_time
from sdfkit.errors import InputError, ShapeError
from sdfkit.geometry.basics import deepsdf_normalization, face_normals
from sdfkit.geometry.mesh import sample_surface

__all__ = [
    "ExtractedMesh",
    "extract_mesh",
    "chamfer_distance",
    "f_score",
    "normal_consistency",
    "sample_mesh_points",
    "read_points",
    "read_samples",
    "cloud_normalization",
]


@dataclass
class ExtractedMesh:
    vertices: np.ndarray
    """(v, 3) float64, normalized frame."""
    faces: np.ndarray
    """(f, 3) int64, outward (counter-clockwise seen from outside)."""
    evaluated: int
    """SDF evaluations spent."""
    seconds: dict = field(default_factory=dict)
    """grid and marching-cubes seconds."""


def _evaluate(sdf: Callable, points: torch.Tensor, batch: int) -> torch.Tensor:
    """(N, 2): the SDF and the field whose zero marching cubes interpolates (the SDF itself
    unless ``sdf`` returns both as (N, 2))."""
    if len(points) == 0:  # no cell near the surface at this level
        return torch.zeros(0, 2)
    with torch.no_grad():
        out = torch.cat([sdf(points[s : s + batch]).float().cpu() for s in range(0, len(points), batch)])
    return out[:, None].expand(-1, 2) if out.ndim == 1 else out


def _nodes(resolution: int, step: int, device) -> torch.Tensor:
    axis = torch.linspace(-1.0, 1.0, resolution + 1, device=device)[::step]
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1), z.reshape(-1)], dim=1)


def _crossing(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells (one fewer per axis than nodes) with a sign change among their 8 corners, and the
    smallest |value| of their corners (min and max over the corners taken axis by axis)."""
    low, high = values, values
    for axis in range(3):
        n = values.shape[axis] - 1
        a, b = low.narrow(axis, 0, n), low.narrow(axis, 1, n)
        c, d = high.narrow(axis, 0, n), high.narrow(axis, 1, n)
        low, high = torch.minimum(a, b), torch.maximum(c, d)
    return (low <= 0) & (high >= 0), torch.minimum(low.abs(), high.abs())


def _cell_nodes(cells: torch.Tensor) -> torch.Tensor:
    """Nodes that are a corner of at least one of the given cells."""
    nodes = F.pad(cells, (1, 1, 1, 1, 1, 1))
    for axis in range(3):
        n = nodes.shape[axis] - 1
        nodes = nodes.narrow(axis, 0, n) | nodes.narrow(axis, 1, n)
    return nodes


def extract_mesh(
    sdf: Callable[[torch.Tensor], torch.Tensor],
    resolution: int = 128,
    *,
    batch: int = 1 << 16,
    device="cpu",
    coarse_to_fine: bool = True,
    band: float = 1.0,
) -> ExtractedMesh:
    """Mesh of the zero level set of ``sdf`` (x (N, 3) -> (N,)) over [-1, 1]^3.

    ``sdf`` may also return (N, 2): the SDF, which decides the band, and a field with the same
    sign, whose values marching cubes interpolates to place the surface on each cell edge (for
    MetaSDF's two heads, the sign logit: smooth where ``sign(logit) * |distance|`` jumps).

    resolution : cells per side (nodes: resolution + 1). Coarse to fine (from 64 up): the grid
        with every ``step``-th node (step = resolution / 16 rounded down to a power of two) is
        evaluated whole; then, halving the step each time, only a narrow band of nodes around
        the surface (``band`` cell diagonals of the interpolated field, grown until every cell
        with a sign change is evaluated at all its corners); the rest keeps the interpolation.
    band : width of the initial band in cell diagonals. 1.0 gave the full grid's crossing cells
        exactly on make-shapes' analytic SDFs and on trained networks (tests, benchmarks).
    Raises :class:`ShapeError` when the field has no zero crossing in the box.
    """

    start = time.perf_counter()
    r = resolution
    step = 1
    while coarse_to_fine and r >= 64 and step * 2 <= r // 16 and r % (step * 2) == 0:
        step *= 2
    both = _evaluate(sdf, _nodes(r, step, device), batch).reshape((r // step + 1,) * 3 + (2,))
    values, surface = both[..., 0].contiguous(), both[..., 1].contiguous()
    evaluated = values.numel()
    exact = torch.ones(values.shape, dtype=torch.bool)  # nodes holding an evaluated value
    while step > 1:
        step //= 2
        n = r // step + 1
        cell = 2.0 * step / r
        values = F.interpolate(values[None, None], size=(n,) * 3, mode="trilinear", align_corners=True)[0, 0]
        coarse, surface = surface, torch.zeros((n,) * 3)
        surface[::2, ::2, ::2] = coarse
        crossing, smallest = _crossing(values)
        known = torch.zeros((n,) * 3, dtype=torch.bool)
        known[::2, ::2, ::2] = exact
        need = _cell_nodes(crossing | (smallest < band * np.sqrt(3.0) * cell)) & ~known
        while True:  # evaluate, then grow the band into cells that now show a sign change
            index = torch.nonzero(need)
            if len(index) == 0:
                break
            values[need], surface[need] = _evaluate(sdf, (index.float() * cell - 1.0).to(device), batch).unbind(1)
            evaluated += len(index)
            known |= need
            # only cells with a corner just evaluated can have started to show a sign change
            low = (index.min(dim=0).values - 1).clamp(min=0).tolist()
            high = (index.max(dim=0).values + 2).clamp(max=n).tolist()
            box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
            need = torch.zeros_like(known)
            need[box] = _cell_nodes(_crossing(values[box])[0]) & ~known[box]
        exact = known
    grid_seconds = time.perf_counter() - start
    # every corner of a cell with a sign change is exact, and the two fields share their signs
    volume = torch.where(exact, surface, values).numpy()
    if not (volume.min() < 0 < volume.max()):
        raise ShapeError("the reconstructed SDF has no zero crossing in [-1, 1]^3: no surface to mesh")
    start = time.perf_counter()
    vertices, faces, _, _ = marching_cubes(volume, level=0.0, spacing=(2.0 / r,) * 3, gradient_direction="descent")
    return ExtractedMesh(
        vertices.astype(np.float64) - 1.0,
        faces.astype(np.int64),
        evaluated,
        {"grid": grid_seconds, "marching_cubes": time.perf_counter() - start},
    )


def sample_mesh_points(vertices: np.ndarray, faces: np.ndarray, count: int, *, seed: int = 0):
    """Area-weighted samples (count, 3) on a mesh and the unit normals (count, 3) of their faces."""

    points, face = sample_surface(vertices, faces, count, rng=np.random.default_rng(seed))
    return points, face_normals(vertices, faces[face])


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """DeepSDF's Chamfer distance: mean squared distance from each point of ``a`` to its nearest
    neighbour in ``b``, plus the same from ``b`` to ``a``."""

    ab, _ = cKDTree(b).query(a)
    ba, _ = cKDTree(a).query(b)
    return float(np.mean(ab**2) + np.mean(ba**2))


def f_score(prediction: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    """Harmonic mean of precision (predicted points within ``threshold`` of the truth) and recall."""

    precision = float(np.mean(cKDTree(truth).query(prediction)[0] < threshold))
    recall = float(np.mean(cKDTree(prediction).query(truth)[0] < threshold))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def normal_consistency(points_a, normals_a, points_b, normals_b) -> float:
    """Mean |cos| between each point's normal and its nearest neighbour's in the other set, both
    directions averaged (Occupancy Networks' definition)."""

    _, ab = cKDTree(points_b).query(points_a)
    _, ba = cKDTree(points_a).query(points_b)
    forward = np.abs(np.einsum("ij,ij->i", normals_a, normals_b[ab])).mean()
    backward = np.abs(np.einsum("ij,ij->i", normals_b, normals_a[ba])).mean()
    return float((forward + backward) / 2)


# inputs of `sdfkit reconstruct`


def cloud_normalization(points: np.ndarray) -> tuple[np.ndarray, float]:
    """DeepSDF's normalization computed from surface points: offset = -(bounding-box centre),
    scale = 1 / (1.03 * largest distance from it). ``normalized = (raw + offset) * scale``."""
    if len(points) == 0 or not np.all(np.isfinite(points)) or not np.ptp(points, axis=0).any():
        raise InputError("the points have no extent: cannot normalize them")
    return deepsdf_normalization(points)


def read_points(path: str | Path) -> np.ndarray:
    """A point cloud (n, 3) from .ply/.obj/.off/.stl (vertices), .npy, .xyz or .txt."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give a point cloud (.ply, .obj, .npy, .xyz)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            points = np.load(path)
        elif suffix in (".xyz", ".txt", ".pts"):
            points = np.loadtxt(path, ndmin=2)[:, :3]
        else:
            # trimesh takes 0.35 s to import: loaded where used
            import trimesh

            points = np.asarray(trimesh.load(path, process=False).vertices)
    except Exception as exc:
        raise InputError(f"{path}: cannot read points ({type(exc).__name__}: {exc}); give (n, 3) points") from None
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 3 or len(points) < 16:
        raise InputError(f"{path}: expected at least 16 points with x, y, z; found an array of shape {points.shape}")
    points = points[:, :3]
    if not np.isfinite(points).all():
        raise InputError(f"{path}: holds NaN or infinite coordinates")
    return points


def read_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """SDF samples from an .npz: ``points`` (n, 3) and ``sdf`` (n,) in the mesh's coordinates,
    with its normalization ``offset`` (3,) and ``scale`` when known; or DeepSDF's ``pos``/``neg``
    arrays of (x, y, z, sdf) rows, in its normalized frame.

    returns : points, sdf, and (offset, scale) or None (DeepSDF's files: already normalized)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give an .npz with points and sdf (or DeepSDF's pos/neg)")
    try:
        npz = np.load(path)
        keys = set(npz.files)
    except Exception as exc:
        raise InputError(f"{path}: not an .npz file ({type(exc).__name__})") from None
    if {"pos", "neg"} <= keys:
        rows = np.concatenate([npz["pos"], npz["neg"]]).astype(np.float64)
        return rows[:, :3], rows[:, 3], None
    if not {"points", "sdf"} <= keys:
        raise InputError(f"{path}: has {sorted(keys)}; expected 'points' and 'sdf' (or DeepSDF's 'pos' and 'neg')")
    points, sdf = np.asarray(npz["points"], np.float64), np.asarray(npz["sdf"], np.float64).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) != len(sdf):
        raise InputError(f"{path}: 'points' must be (n, 3) and 'sdf' (n,); found {points.shape} and {sdf.shape}")
    if "offset" in keys and "scale" in keys:
        return (
            points,
            sdf,
            (np.asarray(npz["offset"], np.float64).reshape(3), float(np.asarray(npz["scale"]).ravel()[0])),
        )
    # no normalization given: the samples closest to the surface outline the shape
    near = np.abs(sdf) <= np.quantile(np.abs(sdf), 0.25)
    return points, sdf, cloud_normalization(points[near])


def _context(run_dir, config, points, samples, seed: int):
    """The context a file gives a run, in the normalized frame: a point cloud's points with value 0
    (level-set runs) or SDF samples half inside, half outside (dense runs), ``context_points`` of
    them drawn with ``seed``; and the normalization (offset, scale) back to the file's frame."""
    generator = torch.Generator().manual_seed(seed)
    if points is not None:
        if config.context != "levelset":
            raise InputError(
                f"{run_dir}: trained with {config.context} context (SDF samples); give --samples, or use a levelset run"
            )
        cloud = read_points(points)
        offset, scale = cloud_normalization(cloud)
        normalized = torch.tensor((cloud + offset) * scale, dtype=torch.float32)
        pick = torch.randperm(len(normalized), generator=generator)
        if len(pick) < config.tasks.context_points:
            pick = pick[torch.randint(0, len(pick), (config.tasks.context_points,), generator=generator)]
        context_x = normalized[pick[: config.tasks.context_points]]
        return context_x, torch.zeros(len(context_x)), offset, scale
    if config.context != "dense":
        raise InputError(f"{run_dir}: trained with level-set context; give --points, or use a dense run")
    xyz, sdf, normalization = read_samples(samples)
    offset, scale = normalization if normalization is not None else (np.zeros(3), 1.0)
    order = torch.randperm(len(xyz), generator=generator)
    x = torch.tensor((xyz + offset) * scale, dtype=torch.float32)[order]
    y = torch.tensor(sdf * scale, dtype=torch.float32)[order]
    context_x, context_y = balanced_context(x, y, config.tasks.context_points, generator)
    return context_x, context_y, offset, scale


def reconstruct_file(
    run_dir,
    output,
    *,
    points: str | Path | None = None,
    samples: str | Path | None = None,
    resolution: int = 256,
    device="cpu",
    seed: int = 0,
    test_steps: int | None = None,
) -> dict:
    """Mesh a shape from a point cloud (level-set runs) or SDF samples (dense runs) with a trained
    3D run; the mesh is written in the input's coordinates. Returns the seconds of each stage.
    ``test_steps`` overrides the run's test-time steps (MetaSDF's inner loop, DeepSDF's latent
    iterations)."""
    # trimesh takes 0.35 s to import: loaded where used
    import trimesh

    if (points is None) == (samples is None):
        raise InputError("give either --points (a point cloud) or --samples (an .npz of SDF samples)")
    output = Path(output)
    if output.suffix.lower() not in (".ply", ".obj", ".off", ".stl", ".glb"):
        raise InputError(f"{output}: unknown mesh format; use .ply, .obj, .off, .stl or .glb")
    seconds = {}
    tic = time.perf_counter()
    config, model, _ = load_run(Path(run_dir), device=device, test_steps=test_steps)
    if config.data_kind != "shapenet":
        raise InputError(f"{run_dir}: a 2D run; reconstruct needs a run trained on a prepare-shapenet store")
    seconds["load"] = time.perf_counter() - tic
    tic = time.perf_counter()
    context_x, context_y, offset, scale = _context(run_dir, config, points, samples, seed)
    seconds["read"] = time.perf_counter() - tic
    tic = time.perf_counter()
    with torch.no_grad():
        field = model.field(context_x[None].to(device), context_y[None, :, None].to(device))
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    seconds["specialize"] = time.perf_counter() - tic
    mesh = extract_mesh(field, resolution, device=device)
    seconds.update(mesh.seconds)
    tic = time.perf_counter()
    vertices = mesh.vertices / scale - offset  # back to the input's coordinates
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial{output.suffix}")
    trimesh.Trimesh(vertices, mesh.faces, process=False).export(partial)
    partial.replace(output)
    seconds["write"] = time.perf_counter() - tic
    return {
        "output": str(output),
        "vertices": len(vertices),
        "faces": len(mesh.faces),
        "evaluated": mesh.evaluated,
        "resolution": resolution,
        "offset": [float(v) for v in offset],
        "scale": float(scale),
        "seconds": seconds,
        "model": config.model,
        "context": config.context,
        "test_steps": steps_at_test_time(config),
    }
