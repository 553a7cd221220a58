"""Where a watertight mesh leaves its input's outer surface: for one mesh, ``sdfkit watertight``'s
mesh at a resolution (the library call the command makes, seed 0), 30,000 area-weighted points each
way; for the output's points more than ``--cells`` cells from the input, how far they are from the
closed parts' union; for the input's points more than ``--cells`` cells from the output, how wide
the gap of the union is along their normal (a ray from the point outwards to the union's next
face): a gap narrower than a cell is a clearance the grid cannot hold, which it closes.

    OMP_NUM_THREADS=1 python benchmarks/watertight_gaps.py benchmarks/data/meshes/cycloidal.ply
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdfkit.builders.watertight import WatertightConfig, watertight_mesh  # noqa: E402
from sdfkit.geometry import raycast  # noqa: E402
from sdfkit.geometry.basics import face_normals, shape_rng  # noqa: E402
from sdfkit.geometry.mesh import load_mesh, sample_surface  # noqa: E402
from sdfkit.geometry.sign import unsigned_distance  # noqa: E402
from sdfkit.recipes.deepsdf import signed_mesh  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mesh", type=Path)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--cells", type=float, default=2.0, help="report points farther than this (cells)")
    parser.add_argument("--points", type=int, default=30_000)
    args = parser.parse_args()
    config = WatertightConfig(resolution=args.resolution)
    start = time.perf_counter()
    signed = signed_mesh(load_mesh(str(args.mesh)), rays=config.rays, rng=shape_rng(0, args.mesh.stem))
    vertices, faces, cell, _ = watertight_mesh(signed, config, rng=shape_rng(0, args.mesh.stem, 6))
    outer = signed.outer
    rng = np.random.default_rng(7)
    on_output, _ = sample_surface(vertices, faces, args.points, rng=rng)
    on_input, face = signed.sampler.sample(args.points, rng=rng)
    to_input = unsigned_distance(outer.vertices, outer.faces, on_output) / cell
    to_output = unsigned_distance(vertices, faces, on_input) / cell
    print(f"{args.mesh.name} at {args.resolution}: {time.perf_counter() - start:.1f} s; distances in cells")
    print(
        f"output -> input: max {to_input.max():.2f}, {np.sum(to_input > args.cells)} of {args.points} beyond {args.cells:g}"
    )
    print(
        f"input -> output: max {to_output.max():.2f}, {np.sum(to_output > args.cells)} of {args.points} beyond {args.cells:g}"
    )
    stray = np.nonzero(to_input > args.cells)[0]
    if len(stray) and len(outer.solid_faces):
        union = unsigned_distance(outer.solid_vertices, outer.solid_faces, on_output[stray]) / cell
        print(f"  output points beyond: {np.round(np.sort(union), 2).tolist()} cells from the closed parts' union")
    far = np.nonzero(to_output > args.cells)[0]
    if len(far) and len(outer.solid_faces):
        normal = face_normals(outer.vertices, outer.faces[face[far]])
        rays = np.concatenate([on_input[far] + 1e-6 * normal, normal], axis=1)
        scene = raycast.scene(outer.solid_vertices, outer.solid_faces)
        gap = scene.cast_rays(raycast.tensor(rays))["t_hit"].numpy() / cell
        for k, g in sorted(zip(far, gap, strict=True), key=lambda item: -to_output[item[0]]):
            where = "no union face beyond" if not np.isfinite(g) else f"gap along the normal {g:.3f} cells"
            print(f"  input point {k}: {to_output[k]:.2f} cells from the output; {where}")


if __name__ == "__main__":
    main()
