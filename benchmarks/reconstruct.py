"""Seconds per shape to reconstruct a mesh: MetaSDF (specialization + meshing at 128^3 and
256^3) against the DeepSDF auto-decoder's latent optimization, on the same test shapes, with
runs trained on the same store, in the same process.

    python benchmarks/reconstruct.py --metasdf runs/metasdf-dense --deepsdf runs/deepsdf-dense [--shapes 5] [--test-steps 10]

Targets on the 2-core CPU: MetaSDF at least 10x faster than the auto-decoder; under 1 s per
shape at 128^3. The auto-decoder is timed at its run's iteration count and at DeepSDF's 800.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metasdf.data3d import load_shapes_3d, make_batch_3d  # noqa: E402
from metasdf.reconstruct import extract_mesh  # noqa: E402
from metasdf.train import load_run, run_store, steps_at_test_time  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--metasdf", required=True, type=Path)
    parser.add_argument("--deepsdf", required=True, type=Path)
    parser.add_argument("--store", default=None, help="default: the store the MetaSDF run was trained on")
    parser.add_argument("--split", default="test")
    parser.add_argument("--shapes", type=int, default=5)
    parser.add_argument("--test-steps", type=int, default=None, help="MetaSDF's inner steps (default: the run's)")
    args = parser.parse_args()
    store = args.store or run_store(args.metasdf)
    meta_config, meta, _ = load_run(args.metasdf, test_steps=args.test_steps)
    ad_config, ad, _ = load_run(args.deepsdf)
    shapes = load_shapes_3d(store, args.split, limit=args.shapes)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for k in range(len(shapes)):
        batch = make_batch_3d(
            shapes,
            torch.tensor([k]),
            context="dense",
            context_points=meta_config.tasks.context_points,
            target_points=1,
            generator=generator,
        )
        with torch.no_grad():
            field, specialize = timed(lambda b=batch: meta.field(b["context_x"], b["context_y"]))
            _, mesh128 = timed(lambda f=field: extract_mesh(f, 128))
            _, mesh256 = timed(lambda f=field: extract_mesh(f, 256))
            ad_field, fit = timed(lambda b=batch: ad.field(b["context_x"], b["context_y"]))
            _, fit800 = timed(lambda b=batch: ad.field(b["context_x"], b["context_y"], iters=800))
            _, ad_mesh128 = timed(lambda f=ad_field: extract_mesh(f, 128))
        rows.append((shapes.ids[k], specialize, mesh128, mesh256, fit, fit800, ad_mesh128))
        print(f"  {shapes.ids[k]}: done", file=sys.stderr)
    a = np.array([r[1:] for r in rows])
    meta128, meta256 = a[:, 0] + a[:, 1], a[:, 0] + a[:, 2]
    ad128, ad800 = a[:, 3] + a[:, 5], a[:, 4] + a[:, 5]
    print(f"{len(rows)} {args.split} shapes of {store}; {torch.get_num_threads()} threads; medians in seconds")
    print(f"{'method':<44}{'specialize':>12}{'mesh':>10}{'total':>10}")
    print(
        f"{'MetaSDF, ' + str(steps_at_test_time(meta_config)) + ' inner steps, 128^3':<44}{np.median(a[:, 0]):>12.3f}{np.median(a[:, 1]):>10.3f}{np.median(meta128):>10.3f}"
    )
    print(f"{'MetaSDF, 256^3':<44}{np.median(a[:, 0]):>12.3f}{np.median(a[:, 2]):>10.3f}{np.median(meta256):>10.3f}")
    print(
        f"{'DeepSDF, ' + str(ad_config.codes.test_iters) + ' latent iterations, 128^3':<44}{np.median(a[:, 3]):>12.3f}{np.median(a[:, 5]):>10.3f}{np.median(ad128):>10.3f}"
    )
    print(
        f"{'DeepSDF, 800 latent iterations, 128^3':<44}{np.median(a[:, 4]):>12.3f}{np.median(a[:, 5]):>10.3f}{np.median(ad800):>10.3f}"
    )
    print(
        f"speed-up at 128^3: {np.median(ad128 / meta128):.1f}x against {ad_config.codes.test_iters} iterations, "
        f"{np.median(ad800 / meta128):.1f}x against 800 (target >= 10x); MetaSDF at 128^3: "
        f"{np.median(meta128):.3f} s per shape (target < 1 s)"
    )


if __name__ == "__main__":
    main()
