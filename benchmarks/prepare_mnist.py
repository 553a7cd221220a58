"""Digits per second of ``sdfkit prepare-mnist``, the whole command, against a baseline.

The bundled 5,000 digits are repeated into a full-size MNIST folder (60,000 train + 10,000 test
IDX files), and ``sdfkit prepare-mnist --source`` runs on it as a user would run it (a fresh
process, store written to disk). The baseline, measured in the same run on a slice of the same
digits, is what a competent user writes with the MetaSDF code's way: per digit, a
torchvision-style resize to R x R, binarize, two ``distance_transform_edt`` calls,
``find_contours`` for the level set; 256 digits at a time written in one zarr call into the same
sharded layout (zarr's own sharding codec); in one process, and in a pool of as many processes as
sdfkit uses (like with like).

    python benchmarks/prepare_mnist.py                 # the target case: 70,000 digits, R=64, S=2048
    python benchmarks/prepare_mnist.py --digits 10000  # quicker
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from sdfkit.sources.mnist import bundled_sample_dir, load_digits  # noqa: E402


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def full_size_folder(folder: Path, n_train: int, n_test: int) -> None:
    sample = load_digits(bundled_sample_dir())
    images = np.concatenate([sample.train_images, sample.test_images])
    labels = np.concatenate([sample.train_labels, sample.test_labels])
    take = lambda n: np.resize(np.arange(len(images)), n)  # noqa: E731 - repeat the 5,000 digits
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", images[take(n_train)])
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels[take(n_train)])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[take(n_test)])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[take(n_test)])


def _digit(image: np.ndarray, resolution: int, surface_points: int, seed: int):
    """MetaSDF's way for one digit: resize, binarize, two distance transforms, contour points."""
    from scipy import ndimage
    from skimage import measure

    rng = np.random.default_rng(seed)
    big = ndimage.zoom(image / 255.0, resolution / image.shape[0], order=1)
    binary = (big >= 0.5).astype(np.float32)
    sdf = ndimage.distance_transform_edt(1 - binary) - ndimage.distance_transform_edt(binary)
    contour = np.concatenate(measure.find_contours(big, 0.5))
    chosen = contour[rng.integers(0, len(contour), surface_points)]
    return (sdf * 2.0 / resolution).astype(np.float32), (chosen[:, ::-1] * 2.0 / resolution - 1.0).astype(np.float32)


def _shard(args):
    images, resolution, surface_points, first = args
    grids, points = zip(
        *[_digit(im, resolution, surface_points, first + k) for k, im in enumerate(images)], strict=True
    )
    return np.stack(grids), np.stack(points)


def baseline(images: np.ndarray, out: Path, resolution: int, surface_points: int, processes: int) -> float:
    """What a competent user writes with MetaSDF's per-digit processing: a shard of 256 digits
    computed (by ``processes`` processes), then written in one zarr call; returns digits/s."""
    import multiprocessing

    import zarr

    n = len(images)
    group = zarr.open_group(out, mode="w")
    grid = group.create_array(
        "sdf/grid",
        shape=(n, resolution, resolution),
        chunks=(1, resolution, resolution),
        shards=(256, resolution, resolution),
        dtype="float32",
    )
    pts = group.create_array(
        "surface/points",
        shape=(n, surface_points, 2),
        chunks=(1, surface_points, 2),
        shards=(256, surface_points, 2),
        dtype="float32",
    )
    jobs = [(images[s : s + 256], resolution, surface_points, s) for s in range(0, n, 256)]
    start = time.perf_counter()
    with multiprocessing.Pool(processes) as pool:
        for k, (grids, points) in enumerate(pool.imap(_shard, jobs)):
            grid[256 * k : 256 * k + len(grids)] = grids
            pts[256 * k : 256 * k + len(points)] = points
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=70_000, help="total digits (6/7 train, 1/7 test)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--surface-points", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--baseline-digits", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n_test = args.digits // 7
        full_size_folder(tmp / "mnist", args.digits - n_test, n_test)
        command = [
            sys.executable,
            "-m",
            "cli.main",
            "prepare-mnist",
            "--source",
            str(tmp / "mnist"),
            "-o",
            str(tmp / "out.zarr"),
            "--resolution",
            str(args.resolution),
            "--surface-points",
            str(args.surface_points),
        ]
        if args.workers:
            command += ["--workers", str(args.workers)]
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (tmp / "out.zarr").rglob("*") if p.is_file())
        sdfkit_rate = args.digits / seconds
        shutil.rmtree(tmp / "out.zarr")

        images = load_digits(tmp / "mnist").train_images[: args.baseline_digits]
        cores = args.workers or len(os.sched_getaffinity(0))
        rates = {
            "baseline: MetaSDF-style digits, shard writes, 1 process": baseline(
                images, tmp / "b1.zarr", args.resolution, args.surface_points, 1
            ),
            f"baseline: the same, {cores} processes": baseline(
                images, tmp / "b2.zarr", args.resolution, args.surface_points, cores
            ),
        }

    print(f"prepare-mnist, R={args.resolution}, S={args.surface_points}, {args.digits} digits, {cores} cores")
    print(f"{'method':<60}{'digits/s':>10}{'seconds':>10}{'sdfkit x':>10}")
    for name, rate in rates.items():
        print(f"{name:<60}{rate:>10.0f}{args.digits / rate:>10.1f}{sdfkit_rate / rate:>10.2f}")
    print(
        f"{'sdfkit prepare-mnist (whole command, a fresh process)':<60}{sdfkit_rate:>10.0f}{seconds:>10.1f}{1.0:>10.2f}"
    )
    print(f"store size: {size / 1e9:.2f} GB; baseline seconds extrapolated from {args.baseline_digits} digits")
    print(f"target: {args.digits} digits in <= 60 s -> {'met' if seconds <= 60 else 'NOT met'} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
