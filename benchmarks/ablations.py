"""The ablations quoted in docs/training.md (2D inner loss pilot) and docs/results-3d.md ("How the
cpu preset got there"): each variant's config, written out from the preset and the fields that
differ, and, with --run, trained and evaluated as the docs did.

    python benchmarks/ablations.py --write configs/           # the config.json of every variant
    python benchmarks/ablations.py --table 3d --run --store runs/shapes.zarr --minutes 25 --out runs/abl3d
    python benchmarks/ablations.py --table 2d --run --store runs/mnist.zarr --minutes 3 --out runs/abl2d

The 3D table's store: `sdfkit make-shapes shapes --n 60 --seed 11 --defects
clean,holes,interior,flipped,duplicated,double-walls,soup,combo` then `sdfkit prepare-shapenet
shapes --split shapes/splits/train.json --split shapes/splits/test.json -o runs/shapes.zarr`
(the tables were made before the `overlap` defect existed). The 2D pilot's store:
`sdfkit prepare-mnist -o runs/mnist.zarr`. The docs ran two variants side by side, one thread
each (OMP_NUM_THREADS=1); --run runs them one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metasdf.config import preset  # noqa: E402

CPU_3D = preset("cpu", model="metasdf", context="dense", kind="shapenet")
OLD_3D = CPU_3D.replace(inner_loss="l1", inner_lr=1e-3, lr=5e-4, test_steps=None)
CPU_2D = preset("cpu", model="metasdf", context="dense", kind="mnist")

TABLES = {
    "3d": {
        "old-preset": OLD_3D,
        "l2-inner": OLD_3D.replace(inner_loss="l2", inner_lr=1e-2),
        "l2-inner-5-steps": OLD_3D.replace(inner_loss="l2", inner_lr=1e-2, inner_steps=5),
        "l2-inner-first-order": OLD_3D.replace(inner_loss="l2", inner_lr=1e-2, first_order=True),
        "l2-inner-lr-3e-2": OLD_3D.replace(inner_loss="l2", inner_lr=3e-2),
        "cpu-preset": CPU_3D.replace(test_steps=None),
        "cpu-preset-cosine": CPU_3D.replace(test_steps=None, lr_schedule="cosine", steps=3400),
        "cpu-preset-batch-4": CPU_3D.replace(test_steps=None, batch_size=4),
        "cpu-preset-batch-4-lr-2e-3-cosine": CPU_3D.replace(
            test_steps=None, batch_size=4, lr=2e-3, lr_schedule="cosine", steps=6400
        ),
    },
    "2d": {
        "l1-inner": CPU_2D.replace(inner_loss="l1"),
        "l2-inner": CPU_2D.replace(inner_loss="l2"),
        "l1-inner-first-order": CPU_2D.replace(inner_loss="l1", first_order=True),
        "l1-inner-outer-lr-1e-3": CPU_2D.replace(inner_loss="l1", lr=1e-3),
        "l1-inner-5-steps": CPU_2D.replace(inner_loss="l1", inner_steps=5),
        "cnp": preset("cpu", model="cnp", context="dense", kind="mnist"),
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=list(TABLES), action="append")
    parser.add_argument("--write", type=Path, help="write <table>/<variant>.json here")
    parser.add_argument("--run", action="store_true", help="train and evaluate every variant")
    parser.add_argument("--store", type=Path)
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--out", type=Path, default=Path("runs/ablations"))
    args = parser.parse_args()
    tables = args.table or list(TABLES)
    for table in tables:
        for name, config in TABLES[table].items():
            if args.write:
                path = args.write / table / f"{name}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(asdict(config), indent=2))
                print(path)
            if args.run:
                if args.store is None:
                    sys.exit("--run needs --store")
                config_path = args.out / f"{table}-{name}.json"
                config_path.parent.mkdir(parents=True, exist_ok=True)
                config_path.write_text(json.dumps(asdict(config), indent=2))
                run = args.out / f"{table}-{name}"
                env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
                sdfkit = [sys.executable, "-m", "cli.main"]
                subprocess.run(
                    [*sdfkit, "train", str(args.store), "--config", str(config_path), "-o", str(run)]
                    + ["--time-limit", str(args.minutes)],
                    check=True,
                    env=env,
                )
                evaluate = [*sdfkit, "eval", str(run), "--json", "--no-figures"]
                if table == "2d":
                    evaluate += ["--limit", "200"]
                else:
                    evaluate += ["--resolution", "128"]
                result = json.loads(
                    subprocess.run(evaluate, check=True, env=env, capture_output=True, text=True).stdout
                )
                keys = ("l1_mean", "mean_shape_l1") if table == "2d" else ("chamfer_x1000", "f_score_1pct")
                print(name, {k: result.get(k) for k in keys}, flush=True)


if __name__ == "__main__":
    main()
