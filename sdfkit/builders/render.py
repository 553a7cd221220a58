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

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from sdfkit.errors import InputError, ShapeError
from sdfkit.geometry.basics import shape_rng
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
    "render_normals",
    "condition_cameras",
    "render_condition_views",
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


def look_at(eye: np.ndarray) -> np.ndarray:
    """Camera-to-world pose (4, 4) of a camera at ``eye`` looking at the origin, +y up."""
    back = eye / np.linalg.norm(eye)  # the camera looks down -z: z points back, away from the shape
    up = np.array([0.0, 1.0, 0.0]) if abs(back[1]) < 0.99 else np.array([0.0, 0.0, 1.0])
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(back, right), back, eye
    return pose


def camera_poses(config: RenderConfig, shape_id: str) -> np.ndarray:
    """(views, 4, 4) camera-to-world poses."""
    if config.cameras == "sphere":
        from sdfkit.geometry.sign import fibonacci_directions

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


class _NormalShaders:
    """pyrender program cache that draws every primitive with the normal shader above."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.programs: dict = {}

    def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
        from pyrender.shader_program import ShaderProgram

        key = tuple(sorted((defines or {}).items()))
        if key not in self.programs:
            self.programs[key] = ShaderProgram(
                str(self.folder / "normal.vert"), str(self.folder / "normal.frag"), defines=defines
            )
        return self.programs[key]

    def clear(self):
        for program in self.programs.values():
            program.delete()
        self.programs.clear()


_renderers: dict = {}


INSTALL = "pip install 'sdfkit[render]' && pip install --no-deps pyrender==0.1.45"
"""pyrender pins PyOpenGL 3.1.0, which cannot render headless: the extra brings a newer PyOpenGL
and pyrender's other needs, and pyrender itself goes in without its pins."""


def check_renderer() -> None:
    """Fail up front, in one line, when no headless renderer works here: pyrender missing, or no
    OpenGL context (checked in a child process, as the workers will open theirs)."""
    import subprocess
    import sys

    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    try:
        import OpenGL  # noqa: F401
        import pyrender  # noqa: F401
    except ImportError as exc:
        raise InputError(f"sdfkit render needs pyrender ({exc}); install with: {INSTALL}") from None
    probe = "from sdfkit.builders.render import _renderer; _renderer(8)"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["the renderer crashed"])[-1]
        raise InputError(f"sdfkit render cannot render here: {last.removeprefix('sdfkit.errors.InputError: ')}")


def _install_shaders(renderer, folder: Path) -> None:
    """Make pyrender draw every primitive with sdfkit's normal shader: the one place that reaches
    into pyrender's internals (its renderer's program cache, pyrender 0.1.45 as scripts/setup.sh
    installs it); another pyrender fails here in one line, not with wrong images."""
    inner = getattr(renderer, "_renderer", None)
    if inner is None or not hasattr(inner, "_program_cache"):
        import pyrender

        raise InputError(
            f"pyrender {getattr(pyrender, '__version__', '?')} has no program cache where sdfkit expects it; "
            f"install the version sdfkit supports: {INSTALL}"
        )
    inner._program_cache = _NormalShaders(folder)


def _renderer(size: int):
    """One offscreen renderer per process and image size (GL contexts do not survive a fork)."""
    key = (os.getpid(), size)
    if key not in _renderers:
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
        try:
            import pyrender
        except ImportError as exc:
            raise InputError(f"rendering needs pyrender ({exc}); install with: {INSTALL}") from None
        folder = Path(__file__).parents[1] / "data" / "shaders"
        try:
            renderer = pyrender.OffscreenRenderer(size, size)
        except Exception as exc:
            raise InputError(
                f"cannot open an OpenGL context ({type(exc).__name__}: {exc}); install libosmesa6 "
                "(CPU) or set PYOPENGL_PLATFORM=egl on a GPU machine"
            ) from None
        _install_shaders(renderer, folder)
        _renderers[key] = renderer
    return _renderers[key]


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


def render_normals(vertices, faces, poses, yfov, size: int, near, far) -> dict:
    """:func:`render_views` with a field of view (radians) and clipping planes per view."""
    renderer = _renderer(size)  # first: it picks the OpenGL platform before pyrender loads
    import pyrender
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[0.0, 0.0, 0.0])
    node = scene.add(pyrender.Mesh.from_trimesh(mesh, smooth=False))
    flags = pyrender.RenderFlags.SEG | pyrender.RenderFlags.SKIP_CULL_FACES  # SEG: no multisampling
    depth = np.zeros((len(poses), size, size), np.float32)
    normal = np.zeros((len(poses), size, size, 3), np.float32)
    camera_node = None
    for v, pose in enumerate(poses):
        camera = pyrender.PerspectiveCamera(
            yfov=float(yfov[v]), znear=float(near[v]), zfar=float(far[v]), aspectRatio=1.0
        )
        if camera_node is not None:
            scene.remove_node(camera_node)
        camera_node = scene.add(camera, pose=pose)
        color, z = renderer.render(scene, flags=flags, seg_node_map={node: (255, 255, 255)})
        hit = z > 0
        depth[v] = z
        n = color[..., :3].astype(np.float32) / 127.5 - 1.0
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
        normal[v][hit] = n[hit]
    return {"depth": depth, "normal": normal}


CONDITION_VIEWS = 24
CONDITION_SIZE = 512
_PRIMES = (2, 3)


def _radical_inverse(base: int, n: int) -> float:
    value, scale = 0.0, 1.0 / base
    while n > 0:
        value += (n % base) * scale
        n //= base
        scale /= base
    return value


def condition_cameras(count: int, rng: np.random.Generator) -> list[dict]:
    """The condition views of TRELLIS' and Hunyuan3D-2.1's ``render.py`` (geometry mode): yaw and
    pitch from a Hammersley sequence on the sphere with a random offset, and a field of view
    between 10 and 70 degrees at the distance where the unit cube's circumscribed sphere fills
    it (1 / distance^2 uniform). Each: ``yaw``, ``pitch``, ``distance``, ``fov`` (radians)."""
    offset = rng.random(2)
    radius_min = np.sqrt(3) / 2 / np.sin(70 / 360 * np.pi)
    radius_max = np.sqrt(3) / 2 / np.sin(10 / 360 * np.pi)
    k = rng.uniform(1 / radius_max**2, 1 / radius_min**2, count)
    views = []
    for i in range(count):
        u = i / count + offset[0] / count
        v = _radical_inverse(_PRIMES[0], i) + offset[1]
        u = 2 * u if u < 0.25 else 2 / 3 * u + 1 / 3
        distance = 1 / np.sqrt(k[i])
        views.append(
            {
                "yaw": float(v * 2 * np.pi),
                "pitch": float(np.arccos(1 - 2 * u) - np.pi / 2),
                "distance": float(distance),
                "fov": float(2 * np.arcsin(np.sqrt(3) / 2 / distance)),
            }
        )
    return views


def _track_to(eye: np.ndarray) -> np.ndarray:
    """Camera-to-world pose of a camera at ``eye`` looking at the origin with its up axis as near
    world +z as it goes (Blender's TRACK_TO constraint, -z tracking, y up)."""
    back = eye / np.linalg.norm(eye)
    up = np.array([0.0, 0.0, 1.0]) if abs(back[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(back, right), back, eye
    return pose


def render_condition_views(mesh_path: str, folder: Path, *, seed: int, key: str) -> None:
    """``folder/000.png`` ... ``023.png`` (512 x 512 RGBA: grey Lambertian shading, alpha the
    silhouette), ``transforms.json`` and ``mesh.ply``, in the layout and camera convention of
    TRELLIS' and Hunyuan3D-2.1's ``render.py`` (geometry mode): the mesh turned into Blender's
    z-up world as its importer turns a y-up file ((x, y, z) -> (x, -z, y)), scaled so its
    bounding box's longest side is 1 and centred (``scale``, ``offset`` in transforms.json);
    cameras from :func:`condition_cameras` (seeded by ``seed`` and ``key``), poses camera-to-world
    in Blender's camera convention (looking down -z, y up); ``mesh.ply`` the normalized mesh back
    in y-up axes, as Blender's PLY export with up y and forward -z writes it."""
    import trimesh
    from PIL import Image

    from sdfkit.geometry.mesh import compact, load_mesh

    mesh = compact(load_mesh(mesh_path))
    vertices = mesh.vertices[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # y-up file -> Blender z-up
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    scale = 1.0 / float((high - low).max())
    offset = -(low + high) / 2 * scale
    vertices = vertices * scale + offset
    views = condition_cameras(CONDITION_VIEWS, shape_rng(seed, key, 200))
    eyes = np.array(
        [
            [v["distance"] * np.cos(v["yaw"]) * np.cos(v["pitch"]), v["distance"] * np.sin(v["yaw"]) * np.cos(v["pitch"]),
             v["distance"] * np.sin(v["pitch"])]
            for v in views
        ]
    )  # fmt: skip
    poses = np.stack([_track_to(eye) for eye in eyes])
    distance = np.array([v["distance"] for v in views])
    images = render_normals(
        vertices, mesh.faces, poses, np.array([v["fov"] for v in views]), CONDITION_SIZE,
        np.maximum(distance - 0.9, 1e-3), distance + 0.9,
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    light = poses[:, :3, :3] @ np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])
    lambert = np.clip(np.abs(np.einsum("vhwc,vc->vhw", images["normal"], light)), 0.0, 1.0)
    hit = images["depth"] > 0
    frames = []
    for i, view in enumerate(views):
        grey = np.round((0.25 + 0.75 * lambert[i]) * 255).astype(np.uint8)
        rgba = np.stack([grey, grey, grey, np.where(hit[i], 255, 0).astype(np.uint8)], axis=-1)
        Image.fromarray(rgba, "RGBA").save(folder / f"{i:03d}.png")
        frames.append(
            {
                "file_path": f"{i:03d}.png",
                "camera_angle_x": view["fov"],
                "proj_type": 0,
                "azimuth": view["yaw"],
                "elevation": view["pitch"],
                "cam_dis": view["distance"],
                "transform_matrix": poses[i].tolist(),
            }
        )
    info = {"aabb": [[-0.5] * 3, [0.5] * 3], "scale": scale, "offset": offset.tolist(), "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(info, indent=4))
    back = vertices[:, [0, 2, 1]] * np.array([1.0, 1.0, -1.0])  # z-up -> y-up: (x, y, z) -> (x, z, -y)
    trimesh.Trimesh(back, mesh.faces, process=False).export(folder / "mesh.ply")


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
    from sdfkit.geometry.mesh import load_mesh, normalization

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
        from sdfkit.sources.shapenet import mesh_paths
        from sdfkit.store.dataset import open_dataset

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
    from sdfkit.sources.shapenet import ShapenetConfig, plan_shapenet

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
    from sdfkit.pipeline import Plan, build_store

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
