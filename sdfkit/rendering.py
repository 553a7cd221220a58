"""Headless rendering with pyrender: one offscreen renderer per process, depth and world-frame
normals per view (a small shader writes the normal as colour, flipped towards the camera, so
flipped faces and open sheets render like the outside of the shape), and the condition views of
TRELLIS' and Hunyuan3D-2.1's ``render.py``.

Used by ``sdfkit render`` (:mod:`sdfkit.builders.render`), the watertight report's pictures and
the ``hunyuan3d`` export. Poses are camera-to-world 4x4 matrices in OpenGL's convention (x right,
y up, looking down -z). OpenGL platform: ``PYOPENGL_PLATFORM`` as set by the user (``egl`` on a
GPU machine), else ``osmesa`` (CPU, no display needed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from sdfkit.errors import InputError
from sdfkit.geometry.basics import shape_rng
from sdfkit.geometry.mesh import compact, load_mesh

__all__ = [
    "INSTALL",
    "check_renderer",
    "look_at",
    "render_normals",
    "blender_frame",
    "condition_cameras",
    "trellis_cameras",
    "render_blender_views",
    "render_condition_views",
]


class _NormalShaders:
    """pyrender program cache that draws every primitive with the normal shader above."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.programs: dict = {}

    def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
        # the render extra (optional), 0.5 s to import
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

    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    try:
        import OpenGL  # noqa: F401
        import pyrender  # noqa: F401
    except ImportError as exc:
        raise InputError(f"sdfkit render needs pyrender ({exc}); install with: {INSTALL}") from None
    probe = "from sdfkit.rendering import _renderer; _renderer(8)"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
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
        # the render extra (optional), 0.5 s to import
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
            # the render extra (optional), 0.5 s to import
            import pyrender
        except ImportError as exc:
            raise InputError(f"rendering needs pyrender ({exc}); install with: {INSTALL}") from None
        folder = Path(__file__).parent / "data" / "shaders"
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


def render_normals(vertices, faces, poses, yfov, size: int, near, far) -> dict:
    """:func:`render_views` with a field of view (radians) and clipping planes per view."""
    renderer = _renderer(size)  # first: it picks the OpenGL platform before pyrender loads
    # the render extra (optional), 0.5 s to import
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


def look_at(eye: np.ndarray, *, up: int = 1, pole: float = 0.99) -> np.ndarray:
    """Camera-to-world pose (4, 4) of a camera at ``eye`` looking at the origin (down its -z),
    its y axis as near world axis ``up`` as it goes (looking within ``pole`` of that axis: as near z,
    or y for ``up=2``).
    ``up=2`` is Blender's TRACK_TO constraint (-z tracking, y up) in its z-up world."""
    back = eye / np.linalg.norm(eye)  # the camera looks down -z: z points back, away from the shape
    axis = np.eye(3)[up] if abs(back[up]) < pole else np.eye(3)[2 if up == 1 else 1]
    right = np.cross(axis, back)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(back, right), back, eye
    return pose


def blender_frame(vertices: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """A y-up mesh's vertices in the world of TRELLIS' and Hunyuan3D-2.1's Blender scripts: turned
    z-up as Blender's importers turn a y-up file ((x, y, z) -> (x, -z, y)), scaled so its bounding
    box's longest side is 1 and centred (``normalize_scene``): (vertices, scale, offset), with
    world = turned * scale + offset."""
    turned = np.asarray(vertices, dtype=np.float64)[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])
    low, high = turned.min(axis=0), turned.max(axis=0)
    scale = 1.0 / max(float((high - low).max()), 1e-300)
    offset = -(low + high) / 2 * scale
    return turned * scale + offset, scale, offset


def trellis_cameras(count: int, rng: np.random.Generator) -> list[dict]:
    """The views of TRELLIS' ``dataset_toolkits/render.py``: yaw and pitch from a Hammersley
    sequence on the sphere with a random offset, at distance 2 with a 40 degree field of view."""
    offset = rng.random(2)
    views = []
    for i in range(count):
        u = i / count + offset[0] / count
        v = _radical_inverse(_PRIMES[0], i) + offset[1]
        u = 2 * u if u < 0.25 else 2 / 3 * u + 1 / 3
        views.append(
            {"yaw": float(v * 2 * np.pi), "pitch": float(np.arccos(1 - 2 * u) - np.pi / 2), "distance": 2.0,
             "fov": float(np.deg2rad(40.0))}
        )  # fmt: skip
    return views


def render_blender_views(
    mesh_path: str, folder: Path, views: list[dict], *, size: int = CONDITION_SIZE, extra: bool = False
) -> None:
    """``folder/000.png`` ... (``size`` square RGBA: grey Lambertian shading, alpha the
    silhouette), ``transforms.json`` and ``mesh.ply`` as the Blender scripts of TRELLIS and
    Hunyuan3D-2.1 write them (geometry mode): the mesh in :func:`blender_frame` (``scale``,
    ``offset`` in transforms.json), a camera per view at its yaw, pitch and distance looking at
    the origin, poses camera-to-world in Blender's camera convention (looking down -z, y up, the
    TRACK_TO constraint); ``mesh.ply`` the normalized mesh in Blender's z-up world, as
    ``bpy.ops.export_mesh.ply`` writes it by default (forward y, up z: no turn). ``extra`` adds
    ``proj_type``, ``azimuth``, ``elevation`` and ``cam_dis`` to each frame (Hunyuan3D-2.1's
    condition views)."""
    # trimesh takes 0.35 s to import: loaded where used
    import trimesh
    from PIL import Image

    mesh = compact(load_mesh(mesh_path))
    vertices, scale, offset = blender_frame(mesh.vertices)
    eyes = np.array(
        [
            [v["distance"] * np.cos(v["yaw"]) * np.cos(v["pitch"]), v["distance"] * np.sin(v["yaw"]) * np.cos(v["pitch"]),
             v["distance"] * np.sin(v["pitch"])]
            for v in views
        ]
    )  # fmt: skip
    poses = np.stack([look_at(eye, up=2, pole=0.999) for eye in eyes])
    distance = np.array([v["distance"] for v in views])
    images = render_normals(
        vertices, mesh.faces, poses, np.array([v["fov"] for v in views]), size,
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
        frame = {"file_path": f"{i:03d}.png", "camera_angle_x": view["fov"]}
        if extra:
            frame |= {"proj_type": 0, "azimuth": view["yaw"], "elevation": view["pitch"], "cam_dis": view["distance"]}
        frames.append(frame | {"transform_matrix": poses[i].tolist()})
    info = {"aabb": [[-0.5] * 3, [0.5] * 3], "scale": scale, "offset": offset.tolist(), "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(info, indent=4))
    trimesh.Trimesh(vertices, mesh.faces, process=False).export(folder / "mesh.ply")


def render_condition_views(mesh_path: str, folder: Path, *, seed: int, key: str) -> None:
    """The 24 condition views of TRELLIS' and Hunyuan3D-2.1's ``render_cond`` (512 x 512,
    :func:`condition_cameras`, seeded by ``seed`` and ``key``) by :func:`render_blender_views`."""
    views = condition_cameras(CONDITION_VIEWS, shape_rng(seed, key, 200))
    render_blender_views(mesh_path, folder, views, extra=True)
