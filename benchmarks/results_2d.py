"""The paper's 2D comparison, rebuilt: every model and context trained for the same wall-clock
time with the cpu preset, then evaluated on held-out digits. Prints a markdown table (the one in
docs/results-2d.md).

    sdfkit prepare-mnist -o runs/mnist.zarr
    python benchmarks/results_2d.py runs/mnist.zarr --minutes 3 --eval-limit 200
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("metasdf", "cnp", "autodecoder", "hypernet")
CONTEXTS = ("dense", "levelset")


def sdfkit(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)], cwd=ROOT, capture_output=True, text=True, check=True
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time per model and context")
    parser.add_argument("--eval-limit", type=int, default=200, help="test digits evaluated")
    parser.add_argument("--runs", default="runs/results-2d", help="folder for the run folders")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--contexts", default=",".join(CONTEXTS))
    args = parser.parse_args()
    rows = []
    for context in args.contexts.split(","):
        for model in args.models.split(","):
            run = Path(args.runs) / f"{model}-{context}"
            start = time.perf_counter()
            if not (run / "checkpoint.pt").exists():
                sdfkit(
                    "train",
                    args.data,
                    "--model",
                    model,
                    "--context",
                    context,
                    "-o",
                    run,
                    "--steps",
                    10**7,
                    "--time-limit",
                    args.minutes,
                    "--device",
                    "cpu",
                )
            trained = time.perf_counter() - start
            report = json.loads(
                sdfkit(
                    "eval", run, args.data, "--split", "test", "--limit", args.eval_limit, "--device", "cpu", "--json"
                ).stdout
            )
            rows.append((context, model, report, trained))
            print(
                f"{context:9s} {model:12s} steps {report['trained_steps']:6d}  l1 {report['l1_mean']:.5f}  mean-shape {report['mean_shape_l1']:.5f}  "
                f"{1000 * report['seconds_per_shape']:.1f} ms/shape",
                flush=True,
            )
    print(
        f"\n| context | model | outer steps in {args.minutes:g} min | l1 (sdfkit units) | l1 (paper units) | vs. mean shape | test time per shape |"
    )
    print("|---|---|---|---|---|---|---|")
    for context, model, r, _ in rows:
        print(
            f"| {context} | {model} | {r['trained_steps']} | {r['l1_mean']:.4f} ± {r['l1_std']:.4f} | {r['l1_mean_paper_units']:.4f} | "
            f"{r['l1_mean'] / r['mean_shape_l1']:.2f} | {1000 * r['seconds_per_shape']:.0f} ms |"
        )
    print(
        f"\nmean training shape predicted for every digit: l1 {rows[0][2]['mean_shape_l1']:.4f} ({rows[0][2]['shapes']} test digits)"
    )


if __name__ == "__main__":
    main()
