"""The one exception hierarchy of sdfkit.

User-facing errors carry a one-line message naming the file, what is wrong and what to do; the
CLI prints that line and exits non-zero without a traceback.
"""

from __future__ import annotations

import errno

__all__ = [
    "SdfkitError",
    "InputError",
    "ChecksumError",
    "DownloadError",
    "StoreError",
    "FormatError",
    "ParameterMismatchError",
    "StoreLockedError",
    "ShapeError",
    "Skipped",
    "describe_os_error",
]


class SdfkitError(Exception):
    """Base class of every error sdfkit raises on purpose."""


class InputError(SdfkitError):
    """An input file or folder is missing, unreadable or malformed."""


class ChecksumError(InputError):
    """A downloaded or supplied file does not have the expected checksum."""


class DownloadError(SdfkitError):
    """A file could not be fetched."""


class StoreError(SdfkitError):
    """An output store cannot be created, written or resumed."""


class FormatError(StoreError):
    """A store is not a sdfkit store of a known format version, or is missing arrays."""


class ParameterMismatchError(StoreError):
    """An existing store was made with other parameters than the ones asked for."""


class StoreLockedError(StoreError):
    """Another run is writing the store (see :mod:`sdfkit.store.lock`)."""


class ShapeError(SdfkitError):
    """One shape cannot be processed (empty, degenerate, non-finite). Recorded per shape in the
    store's ``meta/error``; it never stops a run."""


class Skipped(SdfkitError):
    """A shape left out on purpose (its licence, a duplicate): recorded with status skipped and
    the reason in ``meta/error``, not as a failure."""


_HINTS = {
    errno.EACCES: "the folder is not writable: write somewhere you may, or change its permissions",
    errno.EPERM: "the folder is not writable: write somewhere you may, or change its permissions",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.ENOSPC: "the disk is full: free some space or write to another disk, then run the same command again",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere, then run the same command again",
    errno.ENOTDIR: "a file stands where a folder is needed: remove it or choose another path",
    errno.EEXIST: "a file stands in the way: remove it or choose another path",
    errno.EISDIR: "a folder stands where a file is needed: remove it or choose another path",
    errno.ENOENT: "no such file or folder: check the path",
}


def describe_os_error(exc: OSError, path: object = None) -> str:
    """One line for a failed read or write: the file, what the system said, and what to do.

    path : the file to name when the error carries none (zarr and PIL raise some without one).
    """
    name = exc.filename if exc.filename is not None else path
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    hint = _HINTS.get(exc.errno or -1, "check the path and the disk")
    where = f"{name}: " if name is not None else ""
    return f"{where}{reason} ({hint})"
