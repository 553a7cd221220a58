"""What each command writes stays what it was: a small store per command, built on a fixed seed,
against the SHA-256 of every array recorded in tests/data/array_digests.json. A refactoring must
leave them bit for bit; a change meant to change what is written records them again:

    python tests/test_same_arrays.py --record

Bit-identical arrays are promised on one platform: the digests are compared exactly where the
recording's platform (processor, the numerical libraries' versions) is the one testing. Elsewhere,
where floating point may round otherwise, each array's shape and dtype are compared exactly and
its sums to a relative 1e-4. What measures the run rather than the data (seconds, memory, paths of
a temporary folder, the source files' modification times) is left out.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pytest
import zarr

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import sdfkit  # noqa: E402

DIGESTS = Path(__file__).parent / "data" / "array_digests.json"
LIBRARIES = ("numpy", "scipy", "open3d", "trimesh", "manifold3d", "scikit-image", "zarr", "numcodecs", "pyrender")
RUN_MEASURES = {
    "ledger/seconds",
    "ledger/peak_memory",
    "report/seconds",
    "report/input",
    "report/output",
    "meta/fingerprint",
}
"""Arrays that measure the run (time, memory), name the temporary folder it ran in, or tell the
source files' versions apart (their size and modification time)."""


def platform_id() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "")
    return {"machine": platform.machine(), "cpu": cpu, **{name: _version(name) for name in LIBRARIES}}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def build(tmp: Path) -> dict[str, Path]:
    """Every command that writes a store, on small inputs and fixed seeds: store name -> path."""
    stores = {
        "prepare-mnist": tmp / "mnist.zarr",
        "prepare-mnist --variant rotated": tmp / "rotated.zarr",
        "prepare-shapenet (every recipe), voxelize": tmp / "shapes.zarr",
        "render": tmp / "renders.zarr",
        "watertight": tmp / "watertight.report.zarr",
    }
    sdfkit("prepare-mnist", "-o", stores["prepare-mnist"], "--limit", "12", "--val-size", "2", "--workers", "1")
    sdfkit("prepare-mnist", "-o", stores["prepare-mnist --variant rotated"], "--variant", "rotated",
           "--limit", "12", "--val-size", "2", "--seed", "3", "--workers", "1")  # fmt: skip
    sdfkit("make-shapes", tmp / "meshes", "--n", "3", "--seed", "5", "--defects", "clean,holes,overlap")
    recipes = [arg for name in ("deepsdf-test", "occnet", "ifnet", "ndf", "vecset") for arg in ("--recipe", name)]
    sdfkit("prepare-shapenet", tmp / "meshes", "-o", stores["prepare-shapenet (every recipe), voxelize"],
           "--samples", "3000", "--surface-samples", "800", *recipes, "--seed", "2", "--workers", "1")  # fmt: skip
    sdfkit("voxelize", stores["prepare-shapenet (every recipe), voxelize"], "--resolution", "32", "--sdf",
           "--workers", "1")  # fmt: skip
    sdfkit("render", tmp / "meshes", "-o", stores["render"], "--views", "2", "--size", "48", "--random-views",
           "--seed", "4", "--workers", "1")  # fmt: skip
    sdfkit("watertight", tmp / "meshes", "-o", tmp / "watertight", "--resolution", "32", "--workers", "1")
    return stores


def arrays(group: zarr.Group, prefix: str = ""):
    for name, member in sorted(group.members()):
        if isinstance(member, zarr.Array):
            yield prefix + name, member
        else:
            yield from arrays(member, prefix + name + "/")


def describe(path: Path) -> dict:
    """name -> {sha256, shape, dtype, sum, abs_sum} of every array of a store but the run's measures."""
    out = {}
    for name, array in arrays(zarr.open_group(str(path), mode="r")):
        if name in RUN_MEASURES:
            continue
        data = array[...]
        if data.dtype.kind in "OUT":  # strings: their UTF-8 bytes, one after the other
            raw = "\0".join(map(str, data.reshape(-1).tolist())).encode()
            numbers = np.frombuffer(raw, dtype=np.uint8).astype(np.float64)
        else:
            raw = np.ascontiguousarray(data).tobytes()
            numbers = np.nan_to_num(data.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        out[name] = {
            "sha256": hashlib.sha256(raw).hexdigest(),
            "shape": list(data.shape),
            "dtype": str(data.dtype),
            "sum": float(numbers.sum()),
            "abs_sum": float(np.abs(numbers).sum()),
        }
    return out


def record(tmp: Path) -> dict:
    return {"platform": platform_id(), "stores": {name: describe(path) for name, path in build(tmp).items()}}


@pytest.mark.slow
def test_every_command_writes_the_recorded_arrays(tmp_path):
    recorded = json.loads(DIGESTS.read_text())
    exact = recorded["platform"] == platform_id()
    stores = build(tmp_path)
    assert set(stores) == set(recorded["stores"])
    changed = []
    for store, path in stores.items():
        now, then = describe(path), recorded["stores"][store]
        assert set(now) == set(then), f"{store}: arrays {sorted(set(now) ^ set(then))} added or gone"
        for name, was in then.items():
            new = now[name]
            assert (new["shape"], new["dtype"]) == (was["shape"], was["dtype"]), f"{store}: {name}"
            if exact:
                if new["sha256"] != was["sha256"]:
                    changed.append(f"{store}: {name} (sum {was['sum']!r} -> {new['sum']!r})")
            else:
                for key in ("sum", "abs_sum"):
                    if not np.isclose(new[key], was[key], rtol=1e-4, atol=1e-6 * max(1.0, abs(was["abs_sum"]))):
                        changed.append(f"{store}: {name} ({key} {was[key]!r} -> {new[key]!r})")
    assert not changed, f"arrays changed ({'bit for bit' if exact else 'beyond rounding'}):\n" + "\n".join(changed)


def test_a_changed_array_is_caught(tmp_path):
    """The comparison itself: one flipped byte in one array changes its digest."""
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    group.create_array("a/b", shape=(4,), dtype="float32", fill_value=0)[:] = [1, 2, 3, 4]
    group.create_array("ledger/seconds", shape=(4,), dtype="float64", fill_value=0)[:] = 1.0
    before = describe(tmp_path / "s.zarr")
    assert set(before) == {"a/b"} and before["a/b"]["sum"] == 10.0
    group["a/b"][2] = np.nextafter(np.float32(3), np.float32(4))
    after = describe(tmp_path / "s.zarr")
    assert after["a/b"]["sha256"] != before["a/b"]["sha256"] and after["a/b"]["shape"] == [4]


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--record"]:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        DIGESTS.write_text(json.dumps(record(Path(tmp)), indent=1, sort_keys=True) + "\n")
    print(f"recorded {DIGESTS}")
