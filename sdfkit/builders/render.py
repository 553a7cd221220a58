"""Multi-view renders of normalized meshes with pyrender, headless (``sdfkit render``).

One rasterization pass per view gives depth and surface normals (a small shader writes the
normal as colour, flipped towards the camera, so flipped faces and open sheets render like the
outside of the shape); the silhouette is where depth is set, and the shaded image is Lambertian
shading of those normals under a random directional light (IG-GAN's shading cue), so all four
images of a view agree pixel for pixel.

Frames (see docs/format.md, kind ``renders``): meshes are in sdfkit's normalized frame (the unit
ball). Cameras look at the origin from ``distance``; poses are camera-to-world 4x4 matrices in
OpenGL's convention (x right, y up, looking down -z); intrinsics are pixel matrices
``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` with pixel (row v, column u) centred at
``(u + 0.5, v + 0.5)``. Depth is metric z-depth along the viewing axis, 0 where nothing is hit.

OpenGL platform: ``PYOPENGL_PLATFORM`` as set by the user (``egl`` on a GPU machine), else
``osmesa`` (CPU, no display needed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from sdfkit.errors import InputError, ShapeError
from sdfkit.geometry.basics import shape_rng
from sdfkit.geometry.mesh import load_mesh, normalization
from sdfkit.geometry.topology import fibonacci_directions
from sdfkit.pipeline import Plan, build_store
from sdfkit.rendering import _NormalShaders, _renderer, check_renderer, look_at, render_normals  # noqa: F401 - re-exported
from sdfkit.sources.shapenet import ShapenetConfig, mesh_paths, plan_shapenet
from sdfkit.store.dataset import open_dataset
from sdfkit.store.format import ArraySpec, ShapeMeta, local_path

__all__ = [
    "MODES",
    "RenderConfig",
    "RenderJob",
    "camera_poses",
    "intrinsics",
    "render_views",
    "render_mesh",
    "prepare_renders",
    "backproject",
    "render_mesh_views_shaded",
    "check_renderer",
]

MODES = ("depth", "silhouette", "normal", "shaded")
SHARD_SIZE = 8


@dataclass(frozen=True)
class RenderConfig:
    """Parameters of ``sdfkit render``; all of them go into the store's attributes."""

    views: int = 24
    size: int = 128
    """Image width and height in pixels."""
    modes: tuple[str, ...] = MODES
    cameras: str = "sphere"
    """``sphere``: the same ``views`` directions, spread evenly (Fibonacci) for every shape;
    ``random``: directions drawn uniformly per shape (seeded by ``seed`` and the shape id)."""
    unstructured: bool = False
    """Store no camera poses (IG-GAN's setting: images of unknown viewpoint)."""
    distance: float = 2.5
    """Camera distance from the origin, normalized units."""
    ambient: float = 0.2
    """Shaded images: ambient share of the light."""
    seed: int = 0

    def __post_init__(self):
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise InputError(f"unknown render mode {unknown[0] if unknown else ''!r}; choose from {', '.join(MODES)}")
        if self.cameras not in ("sphere", "random"):
            raise InputError(f"cameras must be 'sphere' or 'random', not {self.cameras!r}")
        if self.views < 1 or self.size < 8:
            raise InputError("--views must be positive and --size at least 8")
        if self.distance <= 1.05:
            raise InputError("the camera distance must exceed 1.05: the shapes fill the unit ball")

    @property
    def yfov(self) -> float:
        """Vertical field of view (radians): the unit ball fits with a 5% margin."""
        return float(2.0 * np.arcsin(1.0 / self.distance) * 1.05)


@dataclass(frozen=True)
class RenderJob:
    id: str
    path: str
    offset: np.ndarray | None = None
    """DeepSDF normalization of the source store; computed from the mesh when None."""
    scale: float | None = None


def intrinsics(size: int, yfov: float) -> np.ndarray:
    """Pixel intrinsics (3, 3) float64 of a square image (see the module doc for conventions)."""
    f = (size / 2.0) / np.tan(yfov / 2.0)
    return np.array([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]])


def camera_poses(config: RenderConfig, shape_id: str) -> np.ndarray:
    """(views, 4, 4) camera-to-world poses."""
    if config.cameras == "sphere":
        directions = fibonacci_directions(config.views)[:, [0, 2, 1]]  # poles on the up (y) axis
    else:
        rng = shape_rng(config.seed, shape_id, 1)
        directions = rng.normal(size=(config.views, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.stack([look_at(config.distance * d) for d in directions])


def light_directions(config: RenderConfig, shape_id: str, poses: np.ndarray) -> np.ndarray:
    """(views, 3) unit vectors towards the light, random on the hemisphere facing each camera."""
    rng = shape_rng(config.seed, shape_id, 2)
    light = rng.normal(size=(len(poses), 3))
    light /= np.linalg.norm(light, axis=1, keepdims=True)
    towards_camera = poses[:, :3, 2]
    flip = np.einsum("ij,ij->i", light, towards_camera) < 0
    light[flip] *= -1
    return light


def render_views(vertices: np.ndarray, faces: np.ndarray, poses: np.ndarray, config: RenderConfig) -> dict:
    """Render a mesh (already in the normalized frame) from each pose.

    returns : ``depth`` (V, H, W) float32 and ``normal`` (V, H, W, 3) float32 unit normals in
        the world frame (zero where nothing is hit)
    """
    views = len(poses)
    near = np.full(views, max(config.distance - 1.05, 1e-3))
    return render_normals(
        vertices, faces, poses, np.full(views, config.yfov), config.size, near, np.full(views, config.distance + 1.05)
    )


def render_mesh_views_shaded(vertices, faces, poses: np.ndarray, config: RenderConfig) -> np.ndarray:
    """Grey Lambertian images (V, H, W) uint8 of a mesh in the normalized frame, lit from above
    the camera's left shoulder: for figures."""
    images = render_views(vertices, faces, poses, config)
    light = poses[:, :3, :3] @ np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])
    lambert = np.clip(np.einsum("vhwc,vc->vhw", images["normal"], light), 0.0, 1.0)
    hit = images["depth"] > 0
    grey = np.where(hit, config.ambient + (1.0 - config.ambient) * lambert, 1.0)  # white background
    return np.round(grey * 255).astype(np.uint8)


def backproject(depth: np.ndarray, intrinsic: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World points (m, 3) of the pixels of one depth image with depth > 0."""
    v, u = np.nonzero(depth > 0)
    z = depth[v, u].astype(np.float64)
    x = (u + 0.5 - intrinsic[0, 2]) / intrinsic[0, 0] * z
    y = -(v + 0.5 - intrinsic[1, 2]) / intrinsic[1, 1] * z
    camera = np.stack([x, y, -z, np.ones_like(z)], axis=1)
    return (camera @ pose.T)[:, :3]


def render_mesh(job: RenderJob, config: RenderConfig) -> dict:
    """Every array of one shape's row of a ``renders`` store."""

    mesh = load_mesh(job.path)
    if job.offset is None:
        offset, scale = normalization(mesh)
    else:
        offset, scale = np.asarray(job.offset, np.float64), float(job.scale)
    vertices = (mesh.vertices + offset) * scale
    if np.linalg.norm(vertices[np.unique(mesh.faces)], axis=1).max() > 1.01:
        raise ShapeError(f"{job.path} does not fit the store's normalization; is it the mesh the store was made from?")
    poses = camera_poses(config, job.id)
    images = render_views(vertices, mesh.faces, poses, config)
    hit = images["depth"] > 0
    out = {
        "norm/offset": np.asarray(offset, np.float64),
        "norm/scale": np.float32(scale),
        "camera/intrinsics": np.broadcast_to(intrinsics(config.size, config.yfov), (config.views, 3, 3)),
    }
    if not config.unstructured:
        out["camera/pose"] = poses.astype(np.float32)
    if "depth" in config.modes:
        out["render/depth"] = images["depth"]
    if "silhouette" in config.modes:
        out["render/silhouette"] = hit.astype(np.uint8) * 255
    if "normal" in config.modes:
        out["render/normal"] = np.where(hit[..., None], np.round((images["normal"] + 1.0) * 127.5), 0).astype(np.uint8)
    if "shaded" in config.modes:
        light = light_directions(config, job.id, poses)
        lambert = np.clip(np.einsum("vhwc,vc->vhw", images["normal"], light), 0.0, 1.0)
        grey = np.where(hit, config.ambient + (1.0 - config.ambient) * lambert, 0.0)
        out["render/shaded"] = np.repeat(np.round(grey * 255)[..., None], 3, axis=-1).astype(np.uint8)
        if not config.unstructured:
            out["light/direction"] = light.astype(np.float32)
    return out


def array_specs(config: RenderConfig) -> list[ArraySpec]:
    v, s = config.views, config.size
    nan = float("nan")
    specs = [
        ArraySpec("norm/offset", (3,), "float64", nan),
        ArraySpec("norm/scale", (), "float64", nan),
        ArraySpec("camera/intrinsics", (v, 3, 3), "float32", nan),
    ]
    if not config.unstructured:
        specs.append(ArraySpec("camera/pose", (v, 4, 4), "float32", nan))
    shapes = {"depth": ((v, s, s), "float32", nan), "silhouette": ((v, s, s), "uint8", 0)}
    shapes |= {"normal": ((v, s, s, 3), "uint8", 0), "shaded": ((v, s, s, 3), "uint8", 0)}
    for mode in MODES:
        if mode in config.modes:
            specs.append(ArraySpec(f"render/{mode}", *shapes[mode]))
    if "shaded" in config.modes and not config.unstructured:
        specs.append(ArraySpec("light/direction", (v, 3), "float32", nan))
    return specs


def _is_store(path: str) -> bool:
    local = local_path(path)
    return local is None or (local / "zarr.json").is_file()


def plan_renders(source: str, meshes: str | None = None) -> tuple[list[ShapeMeta], list[RenderJob], dict]:
    """Shapes to render from a mesh tree, or from a ``shapenet`` store (its ok shapes, with its
    normalization, so renders and samples share one frame)."""
    if _is_store(source):
        dataset = open_dataset(source)
        paths = mesh_paths(dataset.attrs, dataset.ids, source, meshes)
        offsets = dataset.group["norm/offset"][:][dataset.rows]
        scales = dataset.group["norm/scale"][:][dataset.rows]
        metas = [
            ShapeMeta(i, str(c), -1, str(s))
            for i, c, s in zip(dataset.ids, dataset.meta("category"), dataset.meta("split"), strict=True)
        ]
        jobs = [RenderJob(i, p, o, float(sc)) for i, p, o, sc in zip(dataset.ids, paths, offsets, scales, strict=True)]
        info = {"name": "renders", "from": "store", "path": source, "id": dataset.attrs["source"].get("id")}
        return metas, jobs, info

    if not Path(source).exists():
        raise InputError(f"{source}: neither a sdfkit store nor a folder of meshes; check the path")
    metas, mesh_jobs, info = plan_shapenet(source, ShapenetConfig())
    jobs = [RenderJob(j.id, j.path) for j in mesh_jobs]
    return metas, jobs, {**info, "name": "renders", "from": "meshes"}


def prepare_renders(
    source: str,
    out: str,
    config: RenderConfig = RenderConfig(),  # noqa: B008 - frozen, never mutated
    *,
    meshes: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    shard_size: int = SHARD_SIZE,
    progress: Callable[[int, int], None] | None = None,
):
    """Build (or resume) a ``renders`` store; returns a :class:`~sdfkit.pipeline.RunSummary`."""

    check_renderer()
    metas, jobs, info = plan_renders(source, meshes)
    parameters = asdict(config) | {"modes": list(config.modes), "yfov": config.yfov}
    plan = Plan(
        kind="renders",
        metas=metas,
        jobs=jobs,
        process=partial(render_mesh, config=config),
        specs=array_specs(config),
        parameters=parameters,
        source=info,
        shard_size=shard_size,
    )
    return build_store(plan, out, workers=workers, isolate=True, overwrite=overwrite, progress=progress)


def parse_modes(text: str | Sequence[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(dict.fromkeys(m.strip() for m in items if m.strip()))
