"""Teach s3rver 3.7 suffix byte ranges (``Range: bytes=-N``, the last N bytes, RFC 9110 14.1.1).

S3 answers them, and zarr reads a shard's index with one; s3rver 3.7.1 reads ``bytes=-N`` as
``bytes=0-N`` and so serves the first N + 1 bytes. This edits the two places of s3rver's code
that parse and serve a range (idempotent; scripts/setup.sh runs it after installing s3rver):

    python scripts/s3rver_suffix_ranges.py .tools/node_modules/s3rver
"""

from __future__ import annotations

import sys
from pathlib import Path

MARK = "// sdfkit: suffix ranges"

EDITS = {
    "lib/controllers/object.js": [
        (
            "    options.start = Number(start);\n    if (end) options.end = Number(end);\n",
            f"    {MARK}\n    if (start === '' && end) options.suffix = Number(end);\n"
            "    else {\n      options.start = Number(start);\n      if (end) options.end = Number(end);\n    }\n",
        )
    ],
    "lib/stores/filesystem.js": [
        (
            "      const range = {\n        start: (options && options.start) || 0,\n",
            f"      {MARK}\n      const suffix = options && options.suffix !== undefined;\n"
            "      const range = {\n        start: suffix ? Math.max(0, lastByte + 1 - options.suffix) : (options && options.start) || 0,\n",
        ),
        (
            "        if (options && (options.start !== undefined || options.end)) {\n          object.range = range;\n        }\n        return object;",
            "        if (options && (options.start !== undefined || options.end || suffix)) {\n          object.range = range;\n        }\n        return object;",
        ),
        (
            "      if (options && (options.start !== undefined || options.end)) {\n        object.range = range;\n      }\n      return object;",
            "      if (options && (options.start !== undefined || options.end || suffix)) {\n        object.range = range;\n      }\n      return object;",
        ),
    ],
}


def patched(package: Path) -> bool:
    return all(MARK in (package / name).read_text() for name in EDITS)


def main() -> None:
    package = Path(sys.argv[1] if len(sys.argv) > 1 else ".tools/node_modules/s3rver")
    if patched(package):
        return
    for name, edits in EDITS.items():
        path = package / name
        text = path.read_text()
        for old, new in edits:
            if old not in text:
                sys.exit(f"{path}: not the s3rver 3.7 code this edits; install s3rver@3.7.1")
            text = text.replace(old, new, 1)
        path.write_text(text)


if __name__ == "__main__":
    main()
