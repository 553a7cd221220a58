"""Which split each shape is in: DeepSDF-style split files (:func:`read_split_files`), fractions
dealt at random (:func:`split_by_fractions`), a validation hold-out (:func:`hold_out`), and the
split files of DeepSDF and MetaSDF for ShapeNet v2 planes and tables, shipped with sdfkit.

``--split deepsdf/planes_train`` (or any name of :data:`SPLITS`) reads a shipped file instead of a
path. The files are the projects' own bytes, gzipped; each is checked against the SHA-256 of the
upstream file (at the commit named in :data:`SPLITS`) every time it is read, so a name always
means the same list of shapes. What they hold:

- ``deepsdf/{planes,tables}_{train,test}``: DeepSDF's ``examples/splits/sv2_*.json``
  (planes 1,780 train / 456 test, tables 4,859 / 1,216).
- ``metasdf/{planes,tables}_{train,test}``: MetaSDF's ``3D/splits/*.json``. Its test files are
  DeepSDF's, byte for byte; its train files are DeepSDF's without their last 18 (planes) and 40
  (tables) ids (1,762 and 4,819).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sdfkit.errors import InputError
from sdfkit.store.format import ShapeMeta

__all__ = [
    "SPLITS",
    "SplitSource",
    "is_named_split",
    "read_named_split",
    "read_split_files",
    "split_by_fractions",
    "hold_out",
    "SPLIT_NAMES",
]

_FOLDER = Path(__file__).resolve().parents[1] / "data" / "splits"
_DEEPSDF = "https://raw.githubusercontent.com/facebookresearch/DeepSDF/48c19b8d49ed5293da4edd7da8c3941444bc5cd7/"
_METASDF = "https://raw.githubusercontent.com/vsitzmann/metasdf/56d0c6e411d23523bd638aa0ad37c0c2c9dbdb9d/"


@dataclass(frozen=True)
class SplitSource:
    """One shipped split file: where it lies in the package, where it came from, its checksum."""

    file: str
    """Path under ``sdfkit/data/splits`` (gzipped)."""
    url: str
    """The upstream file at a fixed commit."""
    sha256: str
    """SHA-256 of the upstream (uncompressed) bytes."""


SPLITS: dict[str, SplitSource] = {
    "deepsdf/planes_train": SplitSource(
        "deepsdf/sv2_planes_train.json.gz", _DEEPSDF + "examples/splits/sv2_planes_train.json",
        "5aae73b8aceccc0615d2de14be7d98fa1a6fc63688fb82040715bbe5ad501899",
    ),
    "deepsdf/planes_test": SplitSource(
        "deepsdf/sv2_planes_test.json.gz", _DEEPSDF + "examples/splits/sv2_planes_test.json",
        "eafbe19408d836c6b10f22e567f8b4174fbd642f739589fea8a45828f747ba7c",
    ),
    "deepsdf/tables_train": SplitSource(
        "deepsdf/sv2_tables_train.json.gz", _DEEPSDF + "examples/splits/sv2_tables_train.json",
        "06d7bdc2c6a6e40ba4a9acb965cfbcb44be1483af5e9411804239afbd36591cf",
    ),
    "deepsdf/tables_test": SplitSource(
        "deepsdf/sv2_tables_test.json.gz", _DEEPSDF + "examples/splits/sv2_tables_test.json",
        "991992df9ee8e9ca97c433c13595f0c8f16a69842f14446df52e342991d19e56",
    ),
    "metasdf/planes_train": SplitSource(
        "metasdf/planes_train.json.gz", _METASDF + "3D/splits/planes_train.json",
        "1f57b03adbf5426096be401f3e5e7adff866524baa5c23add7b57a839141db34",
    ),
    "metasdf/planes_test": SplitSource(
        "metasdf/planes_test.json.gz", _METASDF + "3D/splits/planes_test.json",
        "eafbe19408d836c6b10f22e567f8b4174fbd642f739589fea8a45828f747ba7c",
    ),
    "metasdf/tables_train": SplitSource(
        "metasdf/tables_train.json.gz", _METASDF + "3D/splits/tables_train.json",
        "9fef22083ffe24643010e2bfda9e3ccb0dfe9170ac290e8bc699491fb51c044d",
    ),
    "metasdf/tables_test": SplitSource(
        "metasdf/tables_test.json.gz", _METASDF + "3D/splits/tables_test.json",
        "991992df9ee8e9ca97c433c13595f0c8f16a69842f14446df52e342991d19e56",
    ),
}  # fmt: skip
"""The shipped split files by name."""


def is_named_split(name: str | Path) -> bool:
    """Whether ``name`` names a shipped split (and is not a file that exists)."""
    return str(name) in SPLITS and not Path(name).exists()


def read_named_split(name: str) -> bytes:
    """The upstream bytes of a shipped split file, checked against their SHA-256."""
    if name not in SPLITS:
        raise InputError(f"{name}: no such shipped split; choose one of {', '.join(SPLITS)}, or give a file")
    source = SPLITS[name]
    data = gzip.decompress((_FOLDER / source.file).read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        raise InputError(
            f"{_FOLDER / source.file}: checksum {digest[:16]}... is not {source.sha256[:16]}... of {source.url}; "
            "reinstall sdfkit"
        )
    return data


def _split_name(path: Path) -> str:
    stem = path.stem.lower()
    for name in ("train", "val", "test"):
        if name in stem:
            return name
    return path.stem


def read_split_files(files: Sequence[str | Path]) -> dict[tuple[str, str], str]:
    """(category, id) -> split name, from DeepSDF-style split files or shipped ones by name
    (:mod:`sdfkit.sources.splits`: ``deepsdf/planes_train`` and the like)."""
    splits: dict[tuple[str, str], str] = {}
    for file in map(Path, files):
        try:
            data = json.loads(read_named_split(str(file)) if is_named_split(file) else file.read_text())
        except FileNotFoundError:
            raise InputError(f"{file}: no such split file") from None
        except (OSError, ValueError) as exc:
            raise InputError(
                f'{file}: not a JSON split file ({exc}); expected {{"<dataset>": {{"<synset>": [ids]}}}}'
            ) from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise InputError(f'{file}: expected DeepSDF\'s split format {{"<dataset>": {{"<synset>": [ids]}}}}')
        name = _split_name(file)
        for categories in data.values():
            for category, ids in categories.items():
                for shape_id in ids:
                    previous = splits.setdefault((str(category), str(shape_id)), name)
                    if previous != name:
                        raise InputError(f"{file}: shape {category}/{shape_id} is also in split {previous!r}")
    return splits


SPLIT_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}
"""The splits that two or three ``--split-fractions`` make, in order."""


def split_by_fractions(ids: Sequence[str], fractions: Sequence[float], *, seed: int = 0) -> dict[str, str]:
    """Deal shapes out to train/test (two fractions) or train/val/test (three), seeded.

    Each id gets a place in a seeded order by the hash of ``seed`` and the id (the same shape keeps
    its place whatever else the folder holds); the first ``round(f * n)`` of that order go to the
    first split and so on, the counts rounded so that they add up to n (largest remainders).
    Returns id -> split.
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) not in SPLIT_NAMES or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise InputError(
            f"--split-fractions {','.join(map(str, fractions))}: give two (train, test) or three (train, val, test) "
            "fractions that add up to 1, e.g. 0.8,0.1,0.1"
        )
    n = len(ids)
    exact = [f * n for f in fractions]
    counts = [int(e) for e in exact]
    for k in sorted(range(len(exact)), key=lambda k: (counts[k] - exact[k], k))[: n - sum(counts)]:
        counts[k] += 1
    order = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    out, start = {}, 0
    for name, count in zip(SPLIT_NAMES[len(fractions)], counts, strict=True):
        out.update({i: name for i in order[start : start + count]})
        start += count
    return out


def hold_out(metas: Sequence[ShapeMeta], count: int, *, seed: int = 0) -> list[ShapeMeta]:
    """The shapes with ``count`` of the ``train`` ones moved to ``val``: the first ``count`` in the
    seeded order of :func:`split_by_fractions` (the same shape is held out whatever else is there)."""
    train = [m.id for m in metas if m.split == "train"]
    if count > len(train):
        raise InputError(f"--val-shapes {count}: the train split has only {len(train)} shapes; give fewer")
    held = set(sorted(train, key=lambda i: hashlib.sha256(f"{seed}:val:{i}".encode()).hexdigest())[:count])
    return [dataclasses.replace(m, split="val") if m.id in held else m for m in metas]
