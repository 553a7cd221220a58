"""sdfkit.pipeline on its own: a plan with a per-shape function whose every value is known by hand,
built into a real store on disk in one process and in worker processes, resumed after a shape
fails, grown by new shapes, and given a layer."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from sdfkit import open_dataset
from sdfkit.errors import ShapeError
from sdfkit.pipeline import Layer, Plan, build_layer, build_store
from sdfkit.store.format import COPIED_COLUMNS, STATUS_FAILED, STATUS_OK, ArraySpec, ShapeMeta, read_status

SPECS = [ArraySpec("value/square", (3,), "float32", float("nan"))]


def square(job: int) -> dict:
    """The job's number, squared, at three offsets; job 7 is a bad shape."""
    if job == 7:
        raise ShapeError("shape 7 is broken on purpose")
    return {"value/square": (np.arange(3, dtype=np.float32) + job) ** 2}


def cube(job: int) -> dict:
    return {"layer/cube": np.float32(job) ** 3}


def _plan(n: int, *, shard_size: int = 4, source_id: str = "a") -> Plan:
    metas = [ShapeMeta(f"s{k:02d}", "c", -1, "train" if k % 3 else "test", f"print{k}") for k in range(n)]
    return Plan(
        kind="shapenet",
        metas=metas,
        jobs=list(range(n)),
        process=square,
        specs=SPECS,
        parameters={"power": 2},
        source={"name": "test", "id": source_id},
        shard_size=shard_size,
    )


def _expected(rows) -> np.ndarray:
    return np.stack([(np.arange(3) + k) ** 2 for k in rows]).astype(np.float32)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_plan_becomes_a_store_whose_values_are_the_function_s(tmp_path, workers):
    url = tmp_path / "p.zarr"
    summary = build_store(_plan(10), url, workers=workers)
    group = zarr.open_group(url, mode="r")
    status = read_status(group)
    assert summary.state == "created" and summary.computed == 10 and group.attrs["sdfkit"]["complete"]
    assert status[7] == STATUS_FAILED and (status[np.arange(10) != 7] == STATUS_OK).all()
    assert "broken on purpose" in str(group["meta/error"][7])
    ok = [k for k in range(10) if k != 7]
    np.testing.assert_array_equal(group["value/square"][ok], _expected(ok))
    assert np.isnan(group["value/square"][7]).all()  # a failed row holds the fill value
    assert summary.per_split == {"test": {"ok": 4, "failed": 0}, "train": {"ok": 5, "failed": 1}}  # k % 3 == 0: test
    again = build_store(_plan(10), url, workers=workers)  # finished: nothing to do
    assert again.state == "complete" and again.computed == 0


def test_new_shapes_are_appended_and_a_layer_is_added(tmp_path):
    url = tmp_path / "p.zarr"
    build_store(_plan(6), url)
    grown = build_store(_plan(9, source_id="b"), url)  # three more shapes, the six unchanged
    group = zarr.open_group(url, mode="r")
    assert grown.state == "appended" and grown.appended == 3 and grown.computed == 3
    ok = [k for k in range(9) if k != 7]
    np.testing.assert_array_equal(group["value/square"][ok], _expected(ok))  # the first six kept, three new
    for name in COPIED_COLUMNS:  # the copies opening reads were written again with the new rows
        np.testing.assert_array_equal(group[f"columns/{name}"][:], group[f"meta/{name}"][:])
    assert group["columns/id"].chunks == (9,) and len(open_dataset(url, include_failed=True)) == 9
    layer = Layer(
        prefix="layer", jobs=list(range(9)), process=cube, specs=[ArraySpec("layer/cube", (), "float32", 0.0)],
        parameters={"power": 3},
    )  # fmt: skip
    built = build_layer(layer, url)
    group = zarr.open_group(url, mode="r")
    np.testing.assert_array_equal(group["layer/cube"][:], np.arange(9, dtype=np.float32) ** 3)
    info = group.attrs["sdfkit"]
    assert built.computed == 9 and info["layer"]["complete"] and info["layers"] == ["layer"]
    assert "layer/cube" in info["arrays"] and (read_status(group, "layer") == STATUS_OK).all()
    assert build_layer(layer, url).state == "complete"
