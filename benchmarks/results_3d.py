"""The paper's 3D comparison (its Tables 2 and 3), rebuilt on make-shapes categories with the cpu
preset: dense context, MetaSDF against DeepSDF; level-set context, MetaSDF against the PointNet
encoder. The two models of a table train at the same time, one thread each, for the same wall-
clock time, then both are evaluated on the test split. Prints the markdown tables of
docs/results-3d.md.

    sdfkit make-shapes runs/shapes --n 60 --seed 11
    sdfkit prepare-shapenet runs/shapes --split runs/shapes/splits/train.json \\
        --split runs/shapes/splits/test.json -o runs/shapes.zarr
    python benchmarks/results_3d.py runs/shapes.zarr --minutes 25 --runs runs/results-3d

Run folders that already hold a checkpoint are evaluated, not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = (("dense", ("metasdf", "deepsdf")), ("levelset", ("metasdf", "pointnet")))
NAMES = {"synsets": {"02691156": "airplane", "03001627": "chair", "04379243": "table"}}


def command(*args) -> list[str]:
    return [sys.executable, "-m", "cli.main", *map(str, args)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--minutes", type=float, default=25.0, help="training time of each model")
    parser.add_argument("--runs", default="runs/results-3d")
    parser.add_argument("--resolution", type=int, default=128)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two trainings share the two cores fairly
    results = {}
    for context, models in TABLES:
        procs = []
        for model in models:
            run = Path(args.runs) / f"{model}-{context}"
            if (run / "checkpoint.pt").exists():
                continue
            train = command(
                "train", args.data, "--model", model, "--context", context, "-o", run,
                "--steps", 10**7, "--time-limit", args.minutes, "--device", "cpu",
            )  # fmt: skip
            procs.append(
                subprocess.Popen(train, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit(f"training failed: {proc.args}")
        for model in models:
            run = Path(args.runs) / f"{model}-{context}"
            out = subprocess.run(
                command("eval", run, args.data, "--resolution", args.resolution, "--device", "cpu", "--json"),
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            results[(context, model)] = json.loads(out.stdout)
            print(f"evaluated {run}", file=sys.stderr, flush=True)

    for context, models in TABLES:
        categories = sorted({c for m in models for c in results[(context, m)]["per_category"]})
        print(f"\n### {context} context\n")
        header = "| model | steps | " + " | ".join(f"{NAMES['synsets'].get(c, c)} CD mean / median" for c in categories)
        print(header + " | all CD mean / median | F@1% | NC | failed | specialize s/shape | with 128³ mesh s/shape |")
        print("|---" * (len(categories) + 8) + "|")
        for model in models:
            r = results[(context, model)]
            cells = [
                f"{r['per_category'][c]['chamfer_x1000']['mean']:.3f} / {r['per_category'][c]['chamfer_x1000']['median']:.3f}"
                if c in r["per_category"]
                else "-"
                for c in categories
            ]
            cd = r["chamfer_x1000"]
            print(
                f"| {model} | {r['trained_steps']} | "
                + " | ".join(cells)
                + f" | {cd['mean']:.3f} / {cd['median']:.3f} | "
                f"{r['f_score_1pct']['mean']:.3f} | {r['normal_consistency']['mean']:.3f} | {len(r['failed'])} of {r['shapes']} | "
                f"{r['specialize_seconds_per_shape']:.3f} | {r['seconds_per_shape']:.3f} |"
            )


if __name__ == "__main__":
    main()
