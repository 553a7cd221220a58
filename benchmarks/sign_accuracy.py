"""Sign accuracy and distance error of prepare-shapenet against exact SDFs, per defect type.

Runs the per-shape pipeline (K = 250,000, S = 30,000) on a make-shapes tree, whose manifest holds
every shape's primitives, and compares with their analytic SDF: correct signs for samples farther
than 0.005 from the true surface, median |error| within 0.1, outward normals and surface samples
on the outer surface.

    sdfkit make-shapes /tmp/shapes48 --n 48 --seed 7
    python benchmarks/sign_accuracy.py /tmp/shapes48
"""

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sdfkit.shapes import solid_from_json  # noqa: E402
from sdfkit.sources.shapenet import MeshJob, process_mesh  # noqa: E402

root = sys.argv[1]
man = json.load(open(f"{root}/shapes.json"))
acc = defaultdict(list)
err = defaultdict(list)
secs = []
for sid, info in man.items():
    path = f"{root}/{info['synset']}/{sid}/models/model_normalized.obj"
    t = time.perf_counter()
    r = process_mesh(MeshJob(sid, path), samples=250000, surface_samples=30000, seed=0, rays=32)
    secs.append(time.perf_counter() - t)
    solid = solid_from_json(info["parts"])
    p = r["sdf/points"].astype(float)
    off = r["norm/offset"].astype(float)
    sc = float(r["norm/scale"])
    truth = solid.sdf(p / sc - off) * sc
    far = np.abs(truth) > 0.005
    near = np.abs(truth) < 0.1
    a = np.mean((r["sdf/values"][far] < 0) == (truth[far] < 0)) * 100
    e = np.median(np.abs(r["sdf/values"][near] - truth[near]))
    # surface normals outward: truth sdf slightly along normal should be > at point
    sp = r["surface/points"].astype(float)
    sn = r["surface/normals"].astype(float)
    out = solid.sdf((sp + 0.01 * sn) / sc - off) > solid.sdf((sp - 0.01 * sn) / sc - off)
    onsurf = np.abs(solid.sdf(sp / sc - off) * sc) < 0.005
    acc[info["defect"]].append(a)
    err[info["defect"]].append(e)
    print(
        f"{sid:28s} {a:7.3f}%  med|err| {e:.5f}  normals out {out.mean() * 100:6.2f}%  on outer surface {onsurf.mean() * 100:6.2f}%  {secs[-1]:.2f}s",
        flush=True,
    )
print("defect: min accuracy / max median error")
for d in acc:
    print(f"  {d:13s} {min(acc[d]):7.3f}%  {max(err[d]):.5f}")
print("median s/mesh", np.median(secs))
