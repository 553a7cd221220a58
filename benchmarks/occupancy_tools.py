"""Occupancy of Occupancy Networks' uniform points and IF-Net's boundary samples: sdfkit against the
tools those projects ship, on the same meshes and the same points, in one run.

- OccNet's path: ``check_mesh_contains`` (occupancy_networks ``im2mesh/utils/libmesh``; IF-Net ships
  the same code as ``data_processing/libmesh``) on the mesh as it is. OccNet runs it on
  mesh-fusion's watertight output; without that C++/OpenGL build this is what a user gets.
- IF-Net's ``implicit_waterproofing``: ``check_mesh_contains`` plus three rotated retries where it
  reports holes, as published.
- sdfkit: ``signed_mesh`` and ``inside`` (the ``occnet`` and ``ifnet`` recipes' path), the per-mesh
  setup (outer surface) included in the time.

Meshes: ``make-shapes`` shapes with every defect (exact SDF known). Points per mesh, in OccNet's
frame (bounding box centred, longest side 1): 100,000 uniform in the cube of side 1.1 (scored
farther than 0.01 from the true surface) and 100,000 IF-Net boundary samples at sigma 0.01 around
the clean surface (scored farther than 0.002). One thread.

No code of those projects is in this repository: give a checkout of if-net whose
``data_processing/libmesh`` is built (its README: ``python setup.py build_ext --inplace`` there).

    OMP_NUM_THREADS=1 python benchmarks/occupancy_tools.py --ifnet ~/src/if-net [--n 27]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdfkit.geometry.mesh import load_mesh  # noqa: E402
from sdfkit.geometry.shapes import make_shapes, solid_from_json  # noqa: E402
from sdfkit.recipes.deepsdf import signed_mesh  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ifnet", type=Path, required=True, help="an if-net checkout with libmesh built")
    parser.add_argument("--n", type=int, default=27, help="shapes (27: every defect on each category)")
    args = parser.parse_args()
    sys.path[:0] = [str(args.ifnet), str(args.ifnet / "data_processing")]
    try:
        import implicit_waterproofing as iw
        import trimesh
        from data_processing.libmesh.inside_mesh import check_mesh_contains
    except ImportError as exc:
        sys.exit(f"{args.ifnet}: cannot import IF-Net's implicit_waterproofing ({exc}); build its libmesh first")

    rows = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_shapes(Path(tmp), args.n, seed=3)
        for shape_id, info in manifest.items():
            path = Path(tmp) / info["synset"] / shape_id / "models" / "model_normalized.obj"
            solid = solid_from_json(info["parts"], info.get("holes"))
            raw = load_mesh(path)
            rng = np.random.default_rng(0)
            used = raw.vertices[np.unique(raw.faces)]
            loc, scale = (used.min(axis=0) + used.max(axis=0)) / 2, float(np.ptp(used, axis=0).max())
            uniform = 1.1 * (rng.random((100_000, 3)) - 0.5)
            clean = solid.mesh(48)
            boundary = (clean.sample(100_000) - loc) / scale + 0.01 * rng.normal(size=(100_000, 3))
            sets = {"uniform": (uniform, 0.01), "boundary 0.01": (boundary, 0.002)}
            mesh = trimesh.Trimesh((raw.vertices - loc) / scale, raw.faces, process=False)
            start = time.perf_counter()
            signed = signed_mesh(raw, rng=np.random.default_rng(0))
            setup = time.perf_counter() - start
            to_normalized = scale * signed.scale
            for name, (points, floor) in sets.items():
                truth = solid.sdf(points * scale + loc) / scale
                far = np.abs(truth) > floor
                methods = {
                    "sdfkit": lambda p: signed.inside(p * to_normalized),  # noqa: B023
                    "OccNet check_mesh_contains": lambda p: check_mesh_contains(mesh, p)[0],  # noqa: B023
                    "IF-Net implicit_waterproofing": lambda p: iw.implicit_waterproofing(mesh, p)[0],  # noqa: B023
                }
                for method, occupancy in methods.items():
                    start = time.perf_counter()
                    with contextlib.redirect_stdout(io.StringIO()):  # the tools print per call
                        inside = np.asarray(occupancy(points), dtype=bool)
                    seconds = time.perf_counter() - start + (setup if method == "sdfkit" else 0.0)
                    accuracy = 100 * float(np.mean(inside[far] == (truth[far] < 0)))
                    rows[(name, method)]["accuracy"].append(accuracy)
                    rows[(name, method)]["seconds"].append(seconds)
                    rows[(name, method)]["defect"].append(info["defect"])
            print(f"{shape_id} done", file=sys.stderr, flush=True)
    print(f"{args.n} make-shapes meshes (every defect), 100,000 points per set, one thread")
    print(f"{'points':<15}{'method':<32}{'median s':>9}{'median %':>10}{'worst %':>9}  worst defect")
    for (name, method), r in rows.items():
        worst = int(np.argmin(r["accuracy"]))
        print(
            f"{name:<15}{method:<32}{np.median(r['seconds']):>9.3f}{np.median(r['accuracy']):>10.2f}"
            f"{r['accuracy'][worst]:>9.2f}  {r['defect'][worst]}"
        )
    per_defect = {
        method: {
            d: min(a for a, dd in zip(r["accuracy"], r["defect"], strict=True) if dd == d) for d in set(r["defect"])
        }
        for (name, method), r in rows.items()
        if name == "uniform"
    }
    print("worst uniform-point accuracy per defect:", json.dumps(per_defect, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
