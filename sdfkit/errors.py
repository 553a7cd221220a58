"""The one exception hierarchy of sdfkit.

User-facing errors carry a one-line message naming the file, what is wrong and what to do; the
CLI prints that line and exits non-zero without a traceback.
"""

from __future__ import annotations

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
