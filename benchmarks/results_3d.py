"""The paper's 3D comparison (its Tables 2 and 3), rebuilt on make-shapes categories (ShapeNet v2
units) with the cpu preset: dense context, MetaSDF against DeepSDF; level-set context, MetaSDF
against the PointNet encoder; beside them the variants that measure where the cpu preset and the
reference differ (the composite loss's signed distance term, DeepSDF trained and fitted as
DeepSDF does). Two runs train at a time, one thread each, for the same wall-clock time, then
every run is evaluated twice: the run's context from DeepSDF's training recipe, and the reference's
protocol (its context size, from DeepSDF's test recipe). Prints the markdown tables of
docs/results-3d.md.

    sdfkit make-shapes runs/shapes --n 60 --seed 11
    sdfkit prepare-shapenet runs/shapes --split runs/shapes/splits/train.json \\
        --split runs/shapes/splits/test.json -o runs/shapes.zarr --recipe deepsdf --recipe deepsdf-test
    python benchmarks/results_3d.py runs/shapes.zarr --minutes 10 --runs runs/results-3d

Run folders that already hold a checkpoint are evaluated, not retrained; each evaluation writes
RUN/results3d-<protocol>.json (so the variants of one run do not overwrite each other).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NAMES = {"synsets": {"02691156": "airplane", "03001627": "chair", "04379243": "table"}}
RUNS = {
    # name: (model, context, fields changed from the cpu preset)
    "metasdf-dense": ("metasdf", "dense", {}),  # the preset: the reference's signed distance term
    "deepsdf-dense": ("deepsdf", "dense", {}),
    "metasdf-dense-unsigned": ("metasdf", "dense", {"distance_term": "unsigned"}),  # sdfkit 0.1's term
    "deepsdf-dense-reference": (
        "deepsdf",
        "dense",
        {  # DeepSDF's code init, bound, regularizer and its warm-up, code lr, schedule, test-time fit
            "code_init_std": None,
            "code_bound": 1.0,
            "code_reg": "deepsdf",
            "code_reg_warmup": 100,
            "code_lr": 2e-3,  # twice the decoder's, as DeepSDF's 1e-3 to 5e-4
            "lr_schedule": "step",
            "lr_step_epochs": 500,
            "test_lr_drop": True,
            "test_samples": 8000,
        },
    ),
    "metasdf-levelset": ("metasdf", "levelset", {}),  # the preset: the signed distance term
    "pointnet-levelset": ("pointnet", "levelset", {}),
}
PROTOCOLS = {
    "sdfkit": [],  # the run's context size, from the training recipe
    "reference": ["--context", "reference", "--samples", "test"],  # 50,000 / 10,000, test recipe
}


PAPER = {  # Chamfer x 10^3, mean / median (../shared/reference/metasdf-paper.md: main Tables 2 and 3)
    ("deepsdf", "dense"): {"airplane": (0.073, 0.031), "table": (0.553, 0.068)},
    ("metasdf", "dense"): {"airplane": (0.053, 0.021), "table": (0.134, 0.059)},
    ("pointnet", "levelset"): {"airplane": (0.558, 0.222), "table": (0.693, 0.216)},
    ("metasdf", "levelset"): {"airplane": (0.139, 0.067), "table": (0.327, 0.095)},
}
"""The paper's ShapeNet planes and tables, beside make-shapes' airplanes and tables."""

DEEPSDF_FIT = ", 800 iterations"
"""The evaluation of a DeepSDF run with DeepSDF's own test-time fit length (reconstruct.py: 800
iterations), whatever the run's preset fits; the reconstruction-time ratio is taken against it."""


def command(*args) -> list[str]:
    return [sys.executable, "-m", "cli.main", *map(str, args)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time of each run")
    parser.add_argument("--runs", default="runs/results-3d")
    parser.add_argument("--only", default=",".join(RUNS), help="runs to train and evaluate")
    parser.add_argument("--resolution", type=int, default=128)
    args = parser.parse_args()
    from metasdf.config import resolve_config

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two trainings share the two cores fairly
    names = args.only.split(",")
    pending = [n for n in names if not (Path(args.runs) / n / "checkpoint.pt").exists()]
    while pending:
        procs = []
        for name in pending[:2]:
            model, context, fields = RUNS[name]
            run = Path(args.runs) / name
            run.mkdir(parents=True, exist_ok=True)
            config = resolve_config(args.data, preset_name="cpu", model=model, context=context)
            config = config.replace(steps=10**7, **fields)
            (run / "wanted.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
            train = command(
                "train", args.data, "--config", run / "wanted.json", "-o", run,
                "--time-limit", args.minutes, "--device", "cpu",
            )  # fmt: skip
            log = (run / "train.log").open("w")  # a file, not a pipe: the progress bar would fill a pipe and block
            procs.append((subprocess.Popen(train, cwd=ROOT, env=env, stdout=log, stderr=log), run))
        for proc, run in procs:
            if proc.wait() != 0:
                raise SystemExit(f"training failed: {proc.args}; see {run / 'train.log'}")
        pending = pending[2:]
    results = {}
    for name in names:
        run = Path(args.runs) / name
        for protocol, extra in PROTOCOLS.items():
            variants = [("", [])]
            if RUNS[name][0] == "metasdf" and protocol == "reference":  # steps past the trained: both rules
                variants.append((", extra steps at 0.01", ["--extra-step-lr", "0.01"]))
            if RUNS[name][0] == "deepsdf" and protocol == "reference":  # DeepSDF's own fit length
                variants.append((DEEPSDF_FIT, ["--test-steps", "800"]))
            for suffix, more in variants:
                figures = [] if protocol == "sdfkit" and not suffix else ["--no-figures"]
                out = subprocess.run(
                    command(
                        "eval",
                        run,
                        args.data,
                        "--resolution",
                        args.resolution,
                        "--device",
                        "cpu",
                        "--json",
                        "--split",
                        "test",
                        "-o",
                        run / ("results3d-" + "".join(c if c.isalnum() else "-" for c in protocol + suffix) + ".json"),
                        *figures,
                        *extra,
                        *more,
                    ),  # fmt: skip
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[(name, protocol + suffix)] = json.loads(out.stdout)
                print(f"evaluated {run} ({protocol}{suffix})", file=sys.stderr, flush=True)

    print_table(results)
    print_time_ratios(results)
    print_beside_paper(results)


def print_table(results: dict) -> None:
    """The markdown table of every run and protocol: Chamfer per category and in all, F-score,
    normal consistency, failures, seconds to specialize per shape."""
    categories = sorted({c for r in results.values() for c in r["per_category"]})
    header = "| run | protocol | steps | context | " + " | ".join(
        f"{NAMES['synsets'].get(c, c)} CD mean / median" for c in categories
    )
    print(header + " | all CD mean / median | F@1% | NC | failed | specialize s/shape |")
    print("|---" * (len(categories) + 9) + "|")
    for (name, protocol), r in results.items():
        cells = [
            f"{r['per_category'][c]['chamfer_x1000']['mean']:.3f} / {r['per_category'][c]['chamfer_x1000']['median']:.3f}"
            if c in r["per_category"]
            else "-"
            for c in categories
        ]
        cd = r["chamfer_x1000"]
        print(
            f"| {name} | {protocol} | {r['trained_steps']} | {r['context_points']:,} | "
            + " | ".join(cells)
            + f" | {cd['mean']:.3f} / {cd['median']:.3f} | "
            f"{r['f_score_1pct']['mean']:.3f} | {r['normal_consistency']['mean']:.3f} | {len(r['failed'])} of {r['shapes']} | "
            f"{r['specialize_seconds_per_shape']:.3f} |"
        )


def print_beside_paper(results: dict) -> None:
    """The reference protocol's rows beside the paper's (its ShapeNet planes and tables; here
    make-shapes' airplanes and tables in ShapeNet's frame: procedural shapes, not ShapeNet's)."""
    print("\n| run | steps | airplane CD mean / median | paper, planes | table CD mean / median | paper, tables |")
    print("|---|---|---|---|---|---|")
    for (name, protocol), r in results.items():
        model, context, fields = RUNS[name]
        paper = PAPER.get((model, context))
        if protocol != "reference" or paper is None or fields:
            continue
        cells = []
        for category in ("airplane", "table"):
            synset = next((k for k, v in NAMES["synsets"].items() if v == category), category)
            ours = r["per_category"].get(synset) or r["per_category"].get(category)
            cd = ours["chamfer_x1000"] if ours else None
            cells.append(f"{cd['mean']:.3f} / {cd['median']:.3f}" if cd else "-")
            cells.append("{:.3f} / {:.3f}".format(*paper[category]))
        print(f"| {name} | {r['trained_steps']} | " + " | ".join(cells) + " |")


def print_time_ratios(results: dict) -> None:
    """Seconds to specialize one shape, MetaSDF's against DeepSDF's own 800-iteration fit (the
    paper: about 0.4 s against 8 s on a GPU, 20x), under the reference protocol."""
    deepsdf = {n: r for (n, p), r in results.items() if p == "reference" + DEEPSDF_FIT}
    metasdf = {n: r for (n, p), r in results.items() if p == "reference" and RUNS[n][0] == "metasdf"}
    for dn, d in deepsdf.items():
        for mn, m in metasdf.items():
            if RUNS[mn][1] != RUNS[dn][1]:
                continue
            ratio = d["specialize_seconds_per_shape"] / m["specialize_seconds_per_shape"]
            print(
                f"reconstruction, reference protocol: {dn} (800 iterations) {d['specialize_seconds_per_shape']:.2f} s "
                f"/ {mn} ({m['test_steps']} steps) {m['specialize_seconds_per_shape']:.2f} s = {ratio:.1f}x "
                "(paper: 8 s / 0.4 s = 20x, GPU)"
            )


if __name__ == "__main__":
    main()
