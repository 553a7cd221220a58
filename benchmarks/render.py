"""Views per second of ``sdfkit render`` at 128x128 on this CPU (OSMesa), against baselines
measured in the same run, like with like in passes:

- sdfkit: one pass per view with a normal shader -> depth, normals, silhouette and shading;
- pyrender, one pass: its default lit, multisampled render -> colour and depth (no normals);
- pyrender, two passes: that render plus mesh_to_sdf's normal-shader pass -> colour, depth and
  normals, which is how a pyrender user gets all of sdfkit's outputs.

The main ratio is against the one-pass baseline (same number of passes, fewer outputs).

    taskset -c 0 python benchmarks/render.py [--views 48] [--size 128]   # one core

Meshes: icospheres of about 5k, 10k (the issue's target: >= 100 views/s) and 20k faces, and a
procedural chair. Timings exclude the first view of each mesh (context and shader compilation).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import trimesh  # noqa: E402

from sdfkit.builders.render import RenderConfig, camera_poses, render_mesh, render_views  # noqa: E402


def ico(faces: int) -> trimesh.Trimesh:
    """An icosphere of radius 0.9 with about ``faces`` faces (a subdivided icosahedron)."""
    level = 0
    mesh = trimesh.creation.icosphere(subdivisions=0, radius=0.9)
    while len(mesh.faces) * 4 <= faces * 1.3:
        level += 1
        mesh = trimesh.creation.icosphere(subdivisions=level, radius=0.9)
    if len(mesh.faces) < faces * 0.75:  # between levels: split a share of the faces
        extra = int((faces - len(mesh.faces)) / 3)
        vertices, faces_ = trimesh.remesh.subdivide(mesh.vertices, mesh.faces, face_index=np.arange(extra))
        mesh = trimesh.Trimesh(vertices, faces_)
    return mesh


def baseline(mesh: trimesh.Trimesh, poses: np.ndarray, config: RenderConfig, normals: bool) -> float:
    """Seconds per view: pyrender's default lit render (colour + depth), with ``normals`` a
    second pass with a normal shader."""
    import pyrender

    from sdfkit.builders.render import _NormalShaders

    renderer = pyrender.OffscreenRenderer(config.size, config.size)
    default_programs = renderer._renderer._program_cache
    normal_programs = _NormalShaders(Path(__file__).resolve().parents[1] / "sdfkit/data/shaders")
    scene = pyrender.Scene(ambient_light=[0.2, 0.2, 0.2])
    scene.add(pyrender.Mesh.from_trimesh(mesh, smooth=False))
    camera = pyrender.PerspectiveCamera(yfov=config.yfov, znear=config.distance - 1.05, zfar=config.distance + 1.05)
    camera_node = scene.add(camera, pose=poses[0])
    light_node = scene.add(pyrender.DirectionalLight(intensity=3.0), pose=poses[0])
    for k, pose in enumerate(poses):
        if k == 1:
            start = time.perf_counter()
        scene.set_pose(camera_node, pose)
        scene.set_pose(light_node, pose)
        renderer._renderer._program_cache = default_programs
        renderer.render(scene)
        if normals:
            renderer._renderer._program_cache = normal_programs  # mesh_to_sdf's normal pass
            renderer.render(scene, flags=pyrender.RenderFlags.SKIP_CULL_FACES)
    seconds = (time.perf_counter() - start) / (len(poses) - 1)
    renderer.delete()
    return seconds


def sdfkit_seconds(mesh: trimesh.Trimesh, poses: np.ndarray, config: RenderConfig) -> float:
    render_views(mesh.vertices, mesh.faces, poses[:1], config)  # warm: context and shaders
    start = time.perf_counter()
    render_views(mesh.vertices, mesh.faces, poses[1:], config)
    return (time.perf_counter() - start) / (len(poses) - 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    config = RenderConfig(views=args.views, size=args.size)
    poses = camera_poses(config, "benchmark")

    from sdfkit.geometry.shapes import CATEGORIES

    rng = np.random.default_rng(0)
    chair = CATEGORIES["03001627"][1](rng).mesh(48)
    meshes = {"icosphere 5k": ico(5_000), "icosphere 10k": ico(10_000), "icosphere 20k": ico(20_000)}
    meshes["procedural chair"] = trimesh.Trimesh(chair.vertices, chair.faces)

    cores = len(os.sched_getaffinity(0))
    print(f"views of {args.size}x{args.size}, {args.views} per mesh, {cores} cores, {os.environ['PYOPENGL_PLATFORM']}")
    print(
        f"{'mesh':<18}{'faces':>8}{'sdfkit 1 pass':>15}{'pyrender 1 pass':>17}{'ratio':>7}{'pyrender 2 passes':>19}{'ratio':>7}   (views/s)"
    )
    for name, mesh in meshes.items():
        ours = sdfkit_seconds(mesh, poses, config)
        one = baseline(mesh, poses, config, normals=False)
        two = baseline(mesh, poses, config, normals=True)
        print(
            f"{name:<18}{len(mesh.faces):>8}{1 / ours:>15.0f}{1 / one:>17.0f}{one / ours:>6.1f}x"
            f"{1 / two:>19.0f}{two / ours:>6.1f}x"
        )
    print("sdfkit: depth + normal + silhouette + shaded; pyrender 1 pass: colour + depth; 2 passes: + normals")

    # the whole per-shape job of `sdfkit render` (load, normalize, render, shade), 24 views
    import tempfile

    from sdfkit.builders.render import RenderJob

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ico10k.obj"
        meshes["icosphere 10k"].export(path)
        job_config = RenderConfig(views=24, size=args.size)
        render_mesh(RenderJob("warm", str(path)), job_config)
        start = time.perf_counter()
        render_mesh(RenderJob("ico", str(path)), job_config)
        seconds = time.perf_counter() - start
    print(f"\nwhole per-shape job (load .obj, 24 views, all four modes), 10k faces: {24 / seconds:.0f} views/s")
    print("target: >= 100 views/s at 128x128 for a 10k-face mesh")


if __name__ == "__main__":
    main()
