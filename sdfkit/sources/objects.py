"""Collections of 3D objects as their users hold them: Objaverse 1.0's local cache, a
``metadata.csv`` of Objaverse-XL or TRELLIS, with the licences, names and content ids they carry.

Layouts (found by :func:`sdfkit.sources.shapenet.find_meshes`):

- **objaverse**: the cache of the ``objaverse`` package (``~/.objaverse/hf-objaverse-v1``):
  ``glbs/<000-xxx>/<uid>.glb``, and ``metadata/<000-xxx>.json.gz`` (uid -> annotations, with
  ``license`` and ``name``) where downloaded. An object's id is its uid.
- **metadata**: a folder with a ``metadata.csv`` holding ``sha256`` and ``local_path`` columns
  (TRELLIS' ``dataset_toolkits`` after ``download.py``; Objaverse-XL annotations with the paths of
  the downloaded files): ``local_path`` is relative to the folder. An object's id is its sha256;
  ``file_identifier``, ``license`` (or ``licence``) and ``name`` are read where present. A row
  without a file is kept as a shape that fails ("not downloaded"), never dropped.

Licences are compared in one spelling (:func:`normalize_licence`): ``cc-by``, ``cc-by-sa``,
``cc-by-nc``, ``cc-by-nc-sa``, ``cc-by-nd``, ``cc-by-nc-nd``, ``cc0``, and the lower-case,
hyphenated name of anything else (``mit``, ``apache-2.0``...).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import fsspec

from sdfkit.errors import InputError

__all__ = [
    "ObjectNote",
    "RemotePath",
    "as_root",
    "file_sha256",
    "normalize_licence",
    "find_objaverse",
    "find_listing",
    "NOT_DOWNLOADED",
]

NOT_DOWNLOADED = ".not-downloaded"
"""The suffix of the path given to a listed object whose file is not on disk."""


@dataclass(frozen=True)
class ObjectNote:
    """What a collection says about one object besides its file."""

    licence: str = ""
    """Normalized (:func:`normalize_licence`); ``""`` where the collection says nothing."""
    name: str = ""
    sha256: str = ""
    """The sha256 the collection lists for the file (checked against the bytes when read)."""
    identifier: str = ""
    """Where the object came from (Objaverse-XL's ``file_identifier``, Objaverse's uid)."""


def file_sha256(path) -> str:
    """The sha256 of a file's bytes, hex: Objaverse-XL's and TRELLIS' object id. ``path`` may
    be an fsspec URL. Remembered per file as long as its size and modification time stay."""
    text = str(path)
    if "://" in text:
        return _sha256(text, 0, 0)
    stat = Path(text).stat()
    return _sha256(text, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime: int) -> str:

    digest = hashlib.sha256()
    with fsspec.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Stat:
    st_size: int
    st_mtime_ns: int


class RemotePath:
    """A file or folder in object storage (``s3://bucket/objects``), with the few
    :class:`pathlib.Path` methods the sources use (``/``, ``name``, ``stem``, ``suffix``,
    ``is_file``, ``is_dir``, ``iterdir``, ``glob``, ``open``, ``stat``, ``relative_to``,
    ``resolve``), through fsspec."""

    def __init__(self, url: str, fs=None):

        self.url = str(url).rstrip("/")
        self.fs = fs if fs is not None else fsspec.core.url_to_fs(self.url)[0]
        self.protocol = self.url.split("://", 1)[0]

    def _key(self) -> str:
        return self.url.split("://", 1)[1]

    def __truediv__(self, other) -> RemotePath:
        return RemotePath(f"{self.url}/{str(other).strip('/')}", self.fs)

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __lt__(self, other) -> bool:
        return self.url < str(other)

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def is_file(self) -> bool:
        return self.fs.isfile(self._key())

    def is_dir(self) -> bool:
        return self.fs.isdir(self._key())

    def iterdir(self):
        return [RemotePath(f"{self.protocol}://{p}", self.fs) for p in sorted(self.fs.ls(self._key(), detail=False))]

    def glob(self, pattern: str):
        return [RemotePath(f"{self.protocol}://{p}", self.fs) for p in sorted(self.fs.glob(f"{self._key()}/{pattern}"))]

    def files(self) -> list[RemotePath]:
        """Every file beneath this folder, sorted."""
        return [RemotePath(f"{self.protocol}://{p}", self.fs) for p in sorted(self.fs.find(self._key()))]

    def open(self, mode: str = "r", newline=None, encoding=None):
        if "b" in mode:
            return self.fs.open(self._key(), mode)

        return io.TextIOWrapper(self.fs.open(self._key(), "rb"), encoding=encoding or "utf-8", newline=newline)

    def stat(self) -> _Stat:
        info = self.fs.info(self._key())
        stamp = info.get("LastModified") or info.get("mtime") or info.get("ETag") or 0
        if hasattr(stamp, "timestamp"):
            stamp = int(stamp.timestamp() * 1e9)
        elif not isinstance(stamp, int | float):
            stamp = int(hashlib.sha256(str(stamp).encode()).hexdigest()[:15], 16)
        return _Stat(int(info.get("size") or 0), int(stamp))

    def relative_to(self, other) -> Path:
        return Path(self.url.removeprefix(str(other).rstrip("/") + "/"))

    def resolve(self) -> RemotePath:
        return self


def as_root(path) -> Path | RemotePath:
    """A source's root as the sources walk it: a :class:`RemotePath` for an fsspec URL."""
    text = str(path)
    return RemotePath(text) if "://" in text and not text.startswith("file://") else Path(text.removeprefix("file://"))


_CC = {"by", "by-sa", "by-nc", "by-nc-sa", "by-nd", "by-nc-nd"}


def normalize_licence(text) -> str:
    """One spelling per licence: ``"by"``, ``"CC-BY 4.0"``, ``"cc_by"`` and ``"Attribution"`` are
    ``cc-by``; ``"CC0"``, ``"cc0-1.0"`` and ``"Public Domain"`` are ``cc0`` (Creative Commons
    versions dropped); anything else lower case with hyphens, the word licence dropped and its
    version kept (``"MIT License"`` is ``mit``, ``"Apache License 2.0"`` ``apache-2.0``)."""
    if text is None or (isinstance(text, float) and text != text):  # None, NaN (an empty csv cell)
        return ""
    value = re.sub(r"[\s_]+", "-", str(text).strip().lower()).strip("-")
    plain = re.sub(r"-?\b(license|licence)\b-?", "-", value).strip("-")
    short = re.sub(r"^creative-commons-", "cc-", plain)
    short = re.sub(r"-v?\d+(\.\d+)*$", "", short)  # the version: cc-by-4.0, cc0-1.0
    if short in ("cc0", "cc-0", "cc-zero", "public-domain", "publicdomain", "pd"):
        return "cc0"
    words = {"attribution": "by", "sharealike": "sa", "share-alike": "sa", "noncommercial": "nc",
             "non-commercial": "nc", "noderivatives": "nd", "noderivs": "nd", "no-derivatives": "nd"}  # fmt: skip
    for word, abbreviation in words.items():
        short = short.replace(word, abbreviation)
    short = short.removeprefix("cc-").strip("-")
    return f"cc-{short}" if short in _CC else plain


def _is_shard(name: str) -> bool:
    return re.fullmatch(r"\d{3}-\d{3}", name) is not None


def find_objaverse(root: Path) -> tuple[list[tuple[str, str, Path]], dict[str, ObjectNote]] | None:
    """Objaverse 1.0's cache under ``root`` as (category ``""``, uid, path), sorted by uid, and
    the notes of its annotations; None when ``root`` is not one."""
    glbs = root / "glbs"
    if not glbs.is_dir():
        return None
    shards = sorted(p for p in glbs.iterdir() if p.is_dir() and _is_shard(p.name))
    if not shards:
        return None
    found = sorted((("", p.stem, p) for s in shards for p in s.glob("*.glb")), key=lambda m: m[1])
    notes: dict[str, ObjectNote] = {}
    for shard in shards:
        annotations = root / "metadata" / f"{shard.name}.json.gz"
        if not annotations.is_file():
            continue
        try:
            with annotations.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{annotations}: not a readable annotations file ({' '.join(str(exc).split())[:100]}); download it "
                "again (objaverse.load_annotations) or remove it"
            ) from None
        for uid, note in data.items():
            licence = note.get("license") or note.get("licence")
            notes[uid] = ObjectNote(normalize_licence(licence), str(note.get("name") or ""), "", uid)
    return found, notes


def find_listing(root: Path) -> tuple[list[tuple[str, str, Path]], dict[str, ObjectNote]] | None:
    """The objects a ``metadata.csv`` in ``root`` lists, as (category ``""``, sha256, path), in
    its order, and their notes; None without one. A row whose file is not there gets the path
    ``<root>/<sha256>.not-downloaded`` (the shape fails, saying so)."""
    listing = root / "metadata.csv"
    if not listing.is_file():
        return None
    with listing.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if not {"sha256", "local_path"} <= columns:
            if "sha256" in columns:
                raise InputError(
                    f"{listing}: has no local_path column (where each object's file is, relative to {root}); run "
                    "TRELLIS' download step first, or add the column"
                )
            return None
        rows = list(reader)
    found, notes, seen = [], {}, set()
    for k, row in enumerate(rows, 2):
        sha = (row.get("sha256") or "").strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise InputError(f"{listing}: line {k}: sha256 {sha!r} is not 64 hex digits; fix or remove the row")
        if sha in seen:
            continue  # the same object listed twice (TRELLIS merges several sources): one shape
        seen.add(sha)
        local = (row.get("local_path") or "").strip()
        path = root / local if local else root / f"{sha}{NOT_DOWNLOADED}"
        found.append(("", sha, path))
        licence = row.get("license", row.get("licence"))
        notes[sha] = ObjectNote(normalize_licence(licence), (row.get("name") or "").strip(), sha,
                                (row.get("file_identifier") or "").strip())  # fmt: skip
    if not found:
        raise InputError(f"{listing}: lists no objects; check the file")
    return found, notes
