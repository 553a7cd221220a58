"""The paper's 2D comparisons, rebuilt: every model and context trained for the same wall-clock
time with the cpu preset, then evaluated on held-out digits with sdfkit's metric and the
reference code's (MSE over the full grid, image spanning 1), with the run's context and with the
reference's evaluation context. Prints a markdown table (the ones in docs/results-2d.md).

    sdfkit prepare-mnist -o runs/mnist.zarr
    python benchmarks/results_2d.py runs/mnist.zarr --minutes 3 --eval-limit 200

Table 2 (out of distribution) runs the same on the variant stores, MetaSDF and the CNP:

    sdfkit prepare-mnist -o runs/mnist-unseen.zarr --variant unseen-digits
    python benchmarks/results_2d.py runs/mnist-unseen.zarr --models metasdf,cnp --label unseen-digits

``--parallel 2 --threads 1`` trains two runs at a time, one thread each (the same budget for every
row; what docs/results-2d.md used). ``--seeds 3`` trains every row with seeds 0, 1 and 2 and adds a
table in the paper's layout: mean / std over the runs of the reference code's MSE (x 10^-6), beside
the paper's own row (its supplement's mean / std over 3 runs, or its main Table 1 where the
supplement has no row). A model ``cnp9`` is the CNP with the paper's 9-layer set encoder.

    python benchmarks/results_2d.py runs/mnist.zarr --models metasdf,cnp --seeds 3 --parallel 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("metasdf", "cnp", "autodecoder", "hypernet")
CONTEXTS = ("dense", "levelset")
TRAIN_OPTIONS = {"cnp9": ("cnp", ["--encoder-layers", "9"])}
"""Model names of this script that are a model of ``sdfkit train`` with options."""

# The paper's numbers (x 10^-6; ../shared/reference/metasdf-paper.md): (mean, std over 3 runs) from
# its supplement's Tables 1 and 2, std None where only its main Table 1 (x 10^-3) has the number.
PAPER = {
    ("standard", "dense"): {"cnp": (101.7, 5.1), "cnp9": (92.5, 2.0), "metasdf": (15.4, 0.2)},
    ("standard", "levelset"): {"cnp": (154.9, 1.0), "cnp9": (145.8, 1.2), "metasdf": (56.6, 0.5)},
    ("unseen-digits", "dense"): {
        "hypernet": (144.0, None), "autodecoder": (62.0, None), "cnp": (252.4, 5.0), "cnp9": (223.4, 4.2),
        "metasdf": (22.8, 0.5),
    },
    ("rotated", "dense"): {
        "hypernet": (189.0, None), "autodecoder": (151.0, None), "cnp": (301.1, 10.3), "cnp9": (291.2, 8.6),
        "metasdf": (33.3, 1.1),
    },
    ("composite", "dense"): {
        "hypernet": (284.0, None), "autodecoder": (137.0, None), "cnp": (484.9, 13.6), "cnp9": (468.0, 22.8),
        "metasdf": (59.8, 1.2),
    },
}  # fmt: skip


def sdfkit(*args, threads: int | None = None, log: Path | None = None):
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "cli.main", *map(str, args)]
    if log is not None:  # a file, not a pipe: the progress bar would fill a pipe and block the run
        with open(log, "w") as out:
            return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)


def train_all(jobs, args) -> None:
    """Train every (run, model, context) not trained yet, ``args.parallel`` at a time."""
    pending = [j for j in jobs if not (j[0] / "checkpoint.pt").exists()]
    running = []
    while pending or running:
        while pending and len(running) < args.parallel:
            run, model, context, seed = pending.pop(0)
            run.mkdir(parents=True, exist_ok=True)
            model, extra = TRAIN_OPTIONS.get(model, (model, []))
            extra = extra + (["--frame", args.frame] if args.frame else [])
            proc = sdfkit(
                "train", args.data, "--model", model, "--context", context, "-o", run, "--steps", 10**7,
                "--time-limit", args.minutes, "--device", "cpu", "--preset", args.preset, "--seed", seed, *extra,
                threads=args.threads, log=run / "train.log",
            )  # fmt: skip
            running.append((proc, run))
        time.sleep(1)
        for proc, run in list(running):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise SystemExit(f"training {run} failed; see {run / 'train.log'}")
                running.remove((proc, run))


def evaluate(run, model, args, context: str) -> dict | None:
    """The run's evaluation on the first ``--eval-limit`` test digits, from the JSON ``sdfkit eval``
    wrote in the run folder when it matches (an interrupted table resumes), otherwise run now;
    None for a reference-context evaluation ``--no-reference`` skips."""
    if context == "reference" and model in args.no_reference.split(","):
        return None
    saved = Path(run) / f"eval-test-limit{args.eval_limit}{'' if context == 'sdfkit' else '-reference-context'}.json"
    if saved.exists() and saved.stat().st_mtime > (Path(run) / "checkpoint.pt").stat().st_mtime:
        result = json.loads(saved.read_text())
        if result.get("shapes") == args.eval_limit and result.get("evaluation_context", "sdfkit") == context:
            return result
    extra = [] if context == "sdfkit" else ["--no-figures"]
    out = sdfkit(
        "eval", run, args.data, "--split", "test", "--limit", args.eval_limit, "--device", "cpu", "--json",
        "--context", context, *extra,
    )  # fmt: skip
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time per model and context")
    parser.add_argument("--eval-limit", type=int, default=200, help="test digits evaluated")
    parser.add_argument("--runs", default="runs/results-2d", help="folder for the run folders")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--contexts", default=",".join(CONTEXTS))
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--frame", default=None, help="train in this frame (sdfkit or reference)")
    parser.add_argument("--label", default="", help="a first column naming the store (Table 2's variants)")
    parser.add_argument("--seeds", type=int, default=1, help="runs per row (seeds 0..N-1), summarized as mean / std")
    parser.add_argument("--parallel", type=int, default=1, help="runs trained at a time")
    parser.add_argument("--threads", type=int, default=None, help="threads per process (OMP_NUM_THREADS)")
    parser.add_argument(
        "--no-reference", default="", help="models whose reference-context evaluation is skipped (e.g. autodecoder)"
    )
    args = parser.parse_args()
    seeds = range(args.seeds)
    jobs = [
        (Path(args.runs) / (f"{model}-{context}" + (f"-seed{seed}" if args.seeds > 1 else "")), model, context, seed)
        for seed in seeds
        for context in args.contexts.split(",")
        for model in args.models.split(",")
    ]
    train_all(jobs, args)
    rows = []
    for run, model, context, _ in jobs:
        ours, reference = evaluate(run, model, args, "sdfkit"), evaluate(run, model, args, "reference")
        rows.append((context, model, ours, reference))
        print(
            f"{context:9s} {model:12s} steps {ours['trained_steps']:6d}  l1 {ours['l1_mean']:.5f}  "
            f"mse-ref {1e6 * ours['mse_reference']:.1f}e-6  {1000 * ours['seconds_per_shape']:.1f} ms/shape",
            flush=True,
        )
    first = rows[0][2]
    print(
        f"\nGround truths: sdfkit's and the reference's differ by {first['ground_truth_gap_cells']:.3f} cells on "
        f"average, MSE {1e6 * first['ground_truth_gap_mse']:.1f} x 10^-6 (reference units). Mean shape: l1 "
        f"{first['mean_shape_l1']:.4f}, MSE {1e6 * first['mean_shape_mse_reference']:.0f} x 10^-6.\n"
    )
    label = "| store " if args.label else ""
    print(
        f"{label}| context | model | steps in {args.minutes:g} min | l1 (sdfkit) | vs. mean shape | "
        "MSE x 10^-6, reference truth | MSE x 10^-6, sdfkit truth | same, reference context | test time |"
    )
    print("|---" * (9 + bool(args.label)) + "|")
    for context, model, r, ref in rows:
        print(
            (f"| {args.label} " if args.label else "")
            + f"| {context} | {model} | {r['trained_steps']} | {r['l1_mean']:.4f} ± {r['l1_std']:.4f} | "
            f"{r['l1_mean'] / r['mean_shape_l1']:.2f} | {1e6 * r['mse_reference']:.0f} | "
            f"{1e6 * r['mse_reference_sdfkit_truth']:.0f} | "
            + (
                f"{1e6 * ref['mse_reference']:.0f} / {1e6 * ref['mse_reference_sdfkit_truth']:.0f}"
                if ref
                else "not measured"
            )
            + f" | {1000 * r['seconds_per_shape']:.0f} ms |"
        )
    print_paper_layout(rows, args)


def print_paper_layout(rows, args) -> None:
    """Mean / std over the seeds of the reference code's MSE (x 10^-6, reference truth), one row per
    model and context, beside the paper's; then each model's ratio to MetaSDF, both ways."""
    variant = args.label or "standard"
    table = {}
    for context, model, r, _ in rows:
        table.setdefault((context, model), []).append(1e6 * r["mse_reference"])
    print(
        f"\n{args.seeds} runs per row, {args.minutes:g} min each; MSE x 10^-6 (reference truth), mean / std over runs"
    )
    print("| store | context | model | sdfkit | paper | sdfkit / MetaSDF | paper / MetaSDF |")
    print("|---|---|---|---|---|---|---|")
    for (context, model), values in table.items():
        paper = PAPER.get((variant, context), {})
        ours = f"{np.mean(values):.0f}" + (f" / {np.std(values, ddof=1):.0f}" if len(values) > 1 else "")
        ours_base = np.mean(table[(context, "metasdf")]) if (context, "metasdf") in table else None
        theirs = paper.get(model)
        theirs_text = (
            "—" if theirs is None else f"{theirs[0]:.1f}" + ("" if theirs[1] is None else f" / {theirs[1]:.1f}")
        )
        ratio = "—" if ours_base is None else f"{np.mean(values) / ours_base:.2f}"
        paper_ratio = "—" if theirs is None or "metasdf" not in paper else f"{theirs[0] / paper['metasdf'][0]:.2f}"
        print(f"| {variant} | {context} | {model} | {ours} | {theirs_text} | {ratio} | {paper_ratio} |")


if __name__ == "__main__":
    main()
