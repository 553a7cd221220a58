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
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sdfkit.errors import InputError

__all__ = ["ObjectNote", "file_sha256", "normalize_licence", "find_objaverse", "find_listing", "NOT_DOWNLOADED"]

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


@lru_cache(maxsize=65536)
def file_sha256(path: str) -> str:
    """The sha256 of a file's bytes, hex: Objaverse-XL's and TRELLIS' object id."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            with gzip.open(annotations, "rt", encoding="utf-8") as f:
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
