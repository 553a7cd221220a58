"""What each recipe costs per mesh, on top of ``deepsdf`` alone (the default), in one run.

Meshes: ``make-shapes`` shapes (chairs, tables, airplanes with every defect, about 5-10k faces).
Each recipe set runs the whole per-mesh step (``process_mesh``: load, outer surface, sampling,
signs) on every mesh in this process, one thread; the sets take turns on each mesh, so a machine
that speeds up or slows down during the run shifts all of them alike.

Each recipe draws as many samples as its project does: ``deepsdf`` DeepSDF's 500,000
(``num_sample``, src/PreprocessMesh.cpp:292), ``deepsdf-test`` 250,000 (its ``-t`` setting, :318),
and the others their own (sdfkit/recipes/). ``--samples 250000`` measures at sdfkit's default K
instead, which halves what ``deepsdf`` alone costs to sample but none of what the others cost.

    OMP_NUM_THREADS=1 python benchmarks/recipes.py [--n 18] [--samples 500000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdfkit.geometry.shapes import make_shapes  # noqa: E402
from sdfkit.recipes.deepsdf import SignedMesh  # noqa: E402
from sdfkit.sources.shapenet import MeshJob, find_meshes, process_mesh  # noqa: E402

SIGNED = [0]
"""Points signed through SignedMesh.sdf (every recipe's signed distances) since the last reset."""
_sdf = SignedMesh.sdf


def _counted_sdf(self, points, **kwargs):
    SIGNED[0] += len(points)
    return _sdf(self, points, **kwargs)


SignedMesh.sdf = _counted_sdf

DEEPSDF_SAMPLES = 500_000
"""DeepSDF's own count of training samples per shape (``num_sample``, src/PreprocessMesh.cpp:292)."""

SETS = {
    "deepsdf": ("deepsdf",),
    "deepsdf + deepsdf-test": ("deepsdf", "deepsdf-test"),
    "deepsdf + occnet": ("deepsdf", "occnet"),
    "deepsdf + ifnet": ("deepsdf", "ifnet"),
    "deepsdf + ndf": ("deepsdf", "ndf"),
    "deepsdf + vecset": ("deepsdf", "vecset"),
    "deepsdf + occnet + ifnet + ndf": ("deepsdf", "occnet", "ifnet", "ndf"),
    "all five": ("deepsdf", "deepsdf-test", "occnet", "ifnet", "ndf"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=18)
    parser.add_argument("--samples", type=int, default=DEEPSDF_SAMPLES, help="K of the deepsdf recipe")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_shapes(Path(tmp), args.n, seed=3)
        _, meshes = find_meshes(tmp)
        jobs = [MeshJob(i, str(p)) for _, i, p in meshes]
        process_mesh(jobs[0], samples=1000, surface_samples=100, seed=0, rays=32)  # warm the imports
        times = {name: [] for name in SETS}
        signed = {}
        for job in jobs:
            for name, recipes in SETS.items():
                SIGNED[0] = 0
                start = time.perf_counter()
                process_mesh(job, samples=args.samples, surface_samples=30_000, seed=0, rays=32, recipes=recipes)
                times[name].append(time.perf_counter() - start)
                signed[name] = SIGNED[0]
    base = np.median(times["deepsdf"])
    print(f"{len(jobs)} make-shapes meshes, K = {args.samples:,}, S = 30,000, one thread")
    print("signed: points signed per mesh (SignedMesh.sdf); us/extra: extra seconds per extra signed point")
    print(f"{'recipes':<32}{'median s':>10}{'x deepsdf':>11}{'extra s':>9}{'signed':>11}{'us/extra':>10}")
    for name, values in times.items():
        median = np.median(values)
        extra = signed[name] - signed["deepsdf"]
        per = f"{(median - base) / extra * 1e6:>10.2f}" if extra else f"{'':>10}"
        print(f"{name:<32}{median:>10.3f}{median / base:>11.2f}{median - base:>9.3f}{signed[name]:>11,}{per}")
    print(f"deepsdf alone: {base / signed['deepsdf'] * 1e6:.2f} us per signed point, outer surface included")


if __name__ == "__main__":
    main()
