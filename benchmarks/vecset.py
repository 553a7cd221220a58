"""The vecset recipe beside Hunyuan3D-2.1's own ``watertight_and_sample.py``, same meshes.

Meshes: ``make-shapes`` shapes (chairs, tables, airplanes in turn; ``--n 27``, the default, gives
each of the nine defects to one shape of each category), their truth the exact SDF of the shapes'
primitives. Per mesh, on one core:

- **sdfkit**: load, outer surface, the vecset samples (:func:`sdfkit.recipes.vecset.sample_vecset`).
- **Hunyuan3D-2.1**: its functions from a fetched copy of its repository (nothing of it is
  committed here), called as its ``__main__`` calls them: ``igl.read_triangle_mesh``,
  ``normalize_to_unit_box``, ``Watertight`` (the 2/256 shell of igl's pseudonormal SDF on a 256^3
  grid), ``SampleMesh`` (igl's fast winding number signs). libigl 2.6 on PyPI returns four arrays
  from ``signed_distance`` and three from ``marching_cubes`` where the 2.5 API it was written for
  returned three and two, and takes no ``return_normals``: a thin adapter passes its calls
  through to 2.6 and returns what 2.5 returned. Install with ``pip install libigl``.

Sign accuracy: the share of the near, sharp-near and volume samples farther than 0.005 (the unit
box's units) from the surface whose sign agrees with the truth (theirs: label > 0 is inside;
sdfkit's: sdf < 0), each at the points it stores. Cost: median seconds per mesh of
``prepare-shapenet``'s per-mesh step with ``--recipe vecset`` against without, at DeepSDF's
K = 250,000.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/vecset.py [--n 27] [--hunyuan PATH/watertight_and_sample.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdfkit.geometry import shapes  # noqa: E402
from sdfkit.geometry.basics import shape_rng  # noqa: E402
from sdfkit.geometry.mesh import load_mesh  # noqa: E402
from sdfkit.recipes.deepsdf import signed_mesh  # noqa: E402
from sdfkit.recipes.vecset import sample_vecset  # noqa: E402
from sdfkit.sources.shapenet import MeshJob, process_mesh  # noqa: E402

SNAPSHOT = "hy3dshape/tools/watertight/watertight_and_sample.py"


def their_module(path: str | None):
    """Hunyuan3D-2.1's watertight_and_sample.py, with an adapter from its libigl 2.5 calls to 2.6."""
    import subprocess

    import igl

    if path is None:
        for root in ("/work/.mirror/Tencent-Hunyuan+Hunyuan3D-2.1/repo",):
            if Path(root).exists():
                text = subprocess.run(["git", f"--git-dir={root}", "show", f"HEAD:{SNAPSHOT}"], capture_output=True)
                path = Path(tempfile.mkdtemp()) / "watertight_and_sample.py"
                path.write_bytes(text.stdout)
        if path is None:
            raise SystemExit(f"give --hunyuan: the {SNAPSHOT} of a Hunyuan3D-2.1 checkout")
    adapter = types.SimpleNamespace(**{k: getattr(igl, k) for k in dir(igl) if not k.startswith("__")})

    def signed_distance(points, vertices, faces, return_normals=False, sign_type=igl.SIGNED_DISTANCE_TYPE_DEFAULT):
        result = igl.signed_distance(
            np.asarray(points, np.float64), np.asarray(vertices, np.float64), np.asarray(faces, np.int64), sign_type
        )
        return result[:3]

    def marching_cubes(values, grid, nx, ny, nz, isovalue=0.0):
        return igl.marching_cubes(np.asarray(values, np.float64), np.asarray(grid, np.float64), nx, ny, nz, isovalue)[
            :2
        ]

    adapter.signed_distance, adapter.marching_cubes = signed_distance, marching_cubes
    spec = importlib.util.spec_from_file_location("watertight_and_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.igl = adapter
    return module


def accuracy(points, inside, truth, scale, loc) -> tuple[int, int]:
    """(right, counted) over the points farther than 0.005 from the surface (unit-box units)."""
    exact = truth.sdf(np.asarray(points, np.float64) * scale + loc) / scale
    far = np.abs(exact) > 0.005
    return int(np.sum(inside[far] == (exact[far] < 0))), int(far.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=27)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--hunyuan", default=None, help=f"their {SNAPSHOT}")
    parser.add_argument("--skip-theirs", action="store_true")
    args = parser.parse_args()
    theirs = None if args.skip_theirs else their_module(args.hunyuan)
    folder = Path(tempfile.mkdtemp())
    manifest = shapes.make_shapes(folder, args.n, seed=args.seed, categories=("chair", "table", "airplane"))
    process_mesh(MeshJob("warm", str(next(folder.glob("*/*/models/*.obj")))), samples=1000, surface_samples=100,
                 seed=0, rays=32)  # fmt: skip
    rows = []
    for shape_id, info in manifest.items():
        path = folder / info["synset"] / shape_id / "models" / "model_normalized.obj"
        truth = shapes.solid_from_json(info["parts"], info.get("holes"), info.get("sheets"))
        start = time.perf_counter()
        signed = signed_mesh(load_mesh(path), rng=shape_rng(0, shape_id))
        arrays = sample_vecset(signed, rng=shape_rng(0, shape_id, 6))
        ours_s = time.perf_counter() - start
        loc, scale = arrays["vecset/loc"], float(arrays["vecset/scale"])
        ours = [0, 0]
        for name in ("near", "sharp_near", "volume"):
            right, counted = accuracy(arrays[f"vecset/{name}_points"], arrays[f"vecset/{name}_sdf"] < 0, truth, scale,
                                      loc)  # fmt: skip
            ours[0], ours[1] = ours[0] + right, ours[1] + counted
        row = {"id": shape_id, "defect": info["defect"], "ours": 100 * ours[0] / ours[1], "ours_s": ours_s}
        if theirs is not None:
            np.random.seed(0)
            start = time.perf_counter()
            vertices, faces = theirs.igl.read_triangle_mesh(str(path))
            low = vertices.min(axis=0)
            their_scale = float((vertices.max(axis=0) - low).max() * 1.01)
            shell_vertices, shell_faces = theirs.Watertight(theirs.normalize_to_unit_box(vertices), faces)
            _, sdf = theirs.SampleMesh(shell_vertices, shell_faces)
            row["theirs_s"] = time.perf_counter() - start
            counts = [0, 0]
            for points, label in (("vol_points", "vol_label"), ("random_near_points", "random_near_label"),
                                  ("sharp_near_points", "sharp_near_label")):  # fmt: skip
                right, counted = accuracy(sdf[points], sdf[label].astype(np.float64) > 0, truth, their_scale, low)
                counts[0], counts[1] = counts[0] + right, counts[1] + counted
            row["theirs"] = 100 * counts[0] / counts[1]
        for recipes, key in ((("deepsdf",), "deepsdf_s"), (("deepsdf", "vecset"), "with_vecset_s")):
            start = time.perf_counter()
            process_mesh(MeshJob(shape_id, str(path)), samples=250_000, surface_samples=30_000, seed=0, rays=32,
                         recipes=recipes)  # fmt: skip
            row[key] = time.perf_counter() - start
        rows.append(row)
        shown = f"{row.get('theirs', float('nan')):8.3f} {row.get('theirs_s', float('nan')):7.2f}"
        print(f"{shape_id:28s} {row['ours']:8.3f} {row['ours_s']:6.2f} | {shown} | "
              f"{row['deepsdf_s']:5.2f} {row['with_vecset_s']:5.2f}", flush=True)  # fmt: skip
    print("\n| defect | sdfkit % right (worst of 3) | Hunyuan3D-2.1 % right (worst of 3) |")
    print("|---|---|---|")
    for defect in dict.fromkeys(r["defect"] for r in rows):
        mine = [r for r in rows if r["defect"] == defect]
        theirs_text = f"{min(r['theirs'] for r in mine):.3f}" if "theirs" in mine[0] else "-"
        print(f"| {defect} | {min(r['ours'] for r in mine):.3f} | {theirs_text} |")
    print(f"\nmeshes: {len(rows)}")
    print(
        f"sdfkit: worst {min(r['ours'] for r in rows):.3f}%, median {statistics.median(r['ours_s'] for r in rows):.2f} s"
    )
    if "theirs" in rows[0]:
        print(f"Hunyuan3D-2.1: worst {min(r['theirs'] for r in rows):.3f}%, "
              f"median {statistics.median(r['theirs_s'] for r in rows):.2f} s")  # fmt: skip
        ratio = statistics.median(r["ours_s"] for r in rows) / statistics.median(r["theirs_s"] for r in rows)
        print(f"time, sdfkit / Hunyuan3D-2.1 (ratio of medians): {ratio:.2f}")
    cost = statistics.median(r["with_vecset_s"] for r in rows) / statistics.median(r["deepsdf_s"] for r in rows)
    print(f"deepsdf + vecset / deepsdf alone, median s per mesh at K = 250,000: "
          f"{statistics.median(r['with_vecset_s'] for r in rows):.2f} / {statistics.median(r['deepsdf_s'] for r in rows):.2f}"
          f" = {cost:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
