"""Does the per-sample confidence (``prepare-shapenet --confidence``: ``sdf/rule``,
``sdf/confidence``) catch the wrong signs? The meshes and truths of benchmarks/sign_accuracy.py
(make-shapes with every defect, bored brackets, built overlaps, containers, near-closed bodies,
panels, touching parts, a soup, and the real meshes where libigl and ray parity agree).

Each mesh runs through ``process_mesh`` with the confidence on (K = 250,000); the samples scored
are those farther than 0.005 from the true surface, as in sign_accuracy.py. Printed per kind and
over everything: the wrong signs, the share of them among the lowest-confidence 5% of the scored
samples (ties broken in the samples' stored, shuffled order), the same share when the lowest 5%
is taken over every sample (scored or not), and the accuracy of what is left after dropping the
lowest 5%. And which rule signed the wrong ones.

    OMP_NUM_THREADS=1 python benchmarks/sign_confidence.py [--quick] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sign_accuracy import write_cases  # noqa: E402

from sdfkit.geometry.sign import unsigned_distance  # noqa: E402
from sdfkit.sources.shapenet import MeshJob, process_mesh  # noqa: E402

RULES = ("closed union", "outside the box", "side of an open face", "sheet", "winding number")


def lowest(confidence: np.ndarray, share: float) -> np.ndarray:
    """(n,) bool: the ``share`` of the samples with the lowest confidence (stable order)."""
    order = np.argsort(confidence, kind="stable")
    out = np.zeros(len(confidence), dtype=bool)
    out[order[: int(round(share * len(confidence)))]] = True
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer make-shapes meshes")
    parser.add_argument("--samples", type=int, default=250_000)
    parser.add_argument(
        "--seed",
        type=int,
        default=7,
        help="of the make-shapes meshes (7: sign_accuracy.py's, where the margins were chosen)",
    )
    args = parser.parse_args()
    per_kind = defaultdict(lambda: {"scored": 0, "wrong": 0, "caught": 0, "caught_all": 0, "kept_wrong": 0,
                                    "kept": 0, "rules": np.zeros(len(RULES), dtype=np.int64)})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cases = write_cases(Path(tmp), args.quick, args.seed)
        for name, (path, solid, kind, *rest) in cases.items():
            if solid is None and not rest:
                continue  # no truth
            try:
                row = process_mesh(MeshJob(name, str(path)), samples=args.samples, surface_samples=1000, seed=0,
                                   rays=32, parameters={"confidence": True})  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a failure is a row of the table too
                print(f"{name}: failed ({exc})", file=sys.stderr)
                continue
            points = row["sdf/points"].astype(np.float64)
            values, rule, confidence = row["sdf/values"], row["sdf/rule"], row["sdf/confidence"]
            offset, scale = row["norm/offset"], float(row["norm/scale"])
            raw = points / scale - offset
            if solid is not None:
                truth = solid.sdf(raw) * scale
                scored, inside = np.abs(truth) > 0.005, truth < 0
            else:
                known = np.asarray(rest[0].inside(raw)).astype(np.int64)
                far = unsigned_distance(rest[0].vertices, rest[0].faces, raw) * scale > 0.005
                scored, inside = far & (known >= 0), known == 1
            wrong = scored & ((values < 0) != inside)
            low_scored = np.zeros(len(values), dtype=bool)
            low_scored[np.nonzero(scored)[0][lowest(confidence[scored], 0.05)]] = True
            low_all = lowest(confidence, 0.05)
            for key in (kind, "all"):
                k = per_kind[key]
                k["scored"] += int(scored.sum())
                k["wrong"] += int(wrong.sum())
                k["caught"] += int((wrong & low_scored).sum())
                k["caught_all"] += int((wrong & low_all).sum())
                k["kept"] += int((scored & ~low_scored).sum())
                k["kept_wrong"] += int((wrong & ~low_scored).sum())
                k["rules"] += np.bincount(rule[wrong], minlength=len(RULES))
    print(
        f"K = {args.samples:,} per mesh, make-shapes seed {args.seed}; scored: samples beyond 0.005 of the true surface"
    )
    head = f"{'kind':<16}{'scored':>11}{'wrong':>8}{'in low 5%':>11}{'(of all)':>10}{'acc %':>10}{'acc kept %':>12}"
    print(head)
    for kind, k in sorted(per_kind.items(), key=lambda item: item[0] == "all"):
        caught = f"{k['caught'] / k['wrong']:.1%}" if k["wrong"] else "-"
        caught_all = f"{k['caught_all'] / k['wrong']:.1%}" if k["wrong"] else "-"
        accuracy = 100 * (1 - k["wrong"] / max(k["scored"], 1))
        kept = 100 * (1 - k["kept_wrong"] / max(k["kept"], 1))
        print(f"{kind:<16}{k['scored']:>11,}{k['wrong']:>8,}{caught:>11}{caught_all:>10}{accuracy:>10.4f}{kept:>12.4f}")
    rules = per_kind["all"]["rules"]
    print("wrong signs by rule: " + ", ".join(f"{name} {int(n)}" for name, n in zip(RULES, rules, strict=True)))


if __name__ == "__main__":
    main()
