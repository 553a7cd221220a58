"""Whether two stores hold the same arrays, bit for bit: the check for a refactoring that must not
change what a command writes. Build the same store with the code before and after (two git
worktrees, the same command and seed), then:

    python scripts/same_arrays.py before.zarr after.zarr

Prints each array that differs (NaNs compare equal) and exits 1 if any does. The ledger's
``seconds`` and ``peak_memory`` measure the run, not the data, and are left out.
"""

from __future__ import annotations

import sys

import numpy as np
import zarr

RUN_MEASURES = {"ledger/seconds", "ledger/peak_memory"}


def arrays(group: zarr.Group, prefix: str = ""):
    for name, member in group.members():
        if isinstance(member, zarr.Array):
            yield prefix + name, member
        else:
            yield from arrays(member, prefix + name + "/")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    before, after = (zarr.open_group(path, mode="r") for path in sys.argv[1:])
    names_before = dict(arrays(before))
    names_after = dict(arrays(after))
    differ = sorted(set(names_before) ^ set(names_after))
    for name in sorted(set(names_before) & set(names_after) - RUN_MEASURES):
        a, b = names_before[name][...], names_after[name][...]
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
            differ.append(name)
    for name in differ:
        print(f"differs: {name}")
    print(f"{len(names_before)} arrays; {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
