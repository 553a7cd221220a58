"""sdfkit.store.format, sdfkit.store.shards, sdfkit.pipeline: format v1 on a real zarr store on disk."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import write_mnist_folder
from zarr.codecs import BloscCodec

from sdfkit import open_dataset
from sdfkit.errors import FormatError, InputError, ParameterMismatchError, StoreError
from sdfkit.geometry.sdf2d import image_to_sdf
from sdfkit.pipeline.runners import ShardTask, run_shard
from sdfkit.sources import mnist
from sdfkit.sources.mnist import MnistConfig
from sdfkit.store.format import COPIED_COLUMNS, STATUS_FAILED, STATUS_OK, StoreLayout, prepare_store
from sdfkit.store.shards import can_encode, write_shard_block
from sdfkit.store.windows import WindowReader


@pytest.mark.parametrize(
    "dtype, typesize, shuffle", [("float32", 4, "shuffle"), ("uint8", 1, "noshuffle"), ("int64", 8, "bitshuffle")]
)
def test_direct_shard_writes_read_back_with_plain_zarr(tmp_path, dtype, typesize, shuffle):
    group = zarr.open_group(tmp_path / "s.zarr", mode="w")

    def sharded(name):
        return group.create_array(
            name,
            shape=(21, 5, 3),
            chunks=(1, 5, 3),
            shards=(8, 5, 3),
            dtype=dtype,
            fill_value=7,
            compressors=BloscCodec(cname="zstd", clevel=3, shuffle=shuffle, typesize=typesize),
        )

    array = sharded("x")
    assert can_encode(array)
    data = (np.random.default_rng(0).random((21, 5, 3)) * 100).astype(dtype)
    present = np.ones(21, dtype=bool)
    present[[3, 17, 20]] = False
    for shard, start in enumerate(range(0, 21, 8)):
        stop = min(start + 8, 21)
        write_shard_block(array, shard, data[start:stop], present[start:stop])
    expected = data.copy()
    expected[~present] = 7  # absent chunks read as the fill value
    reread = zarr.open_group(tmp_path / "s.zarr", mode="r")["x"]
    np.testing.assert_array_equal(reread[:], expected)
    np.testing.assert_array_equal(reread[18], expected[18])  # single-chunk reads go through the index
    # the same rows written by zarr's own sharding codec give the same bytes: the direct writer
    # reaches into zarr's internals (sdfkit/store/shards.py), and a zarr that changes them
    # fails here, loudly, not in a user's store
    same = sharded("y")
    full = np.ones(8, dtype=bool)
    write_shard_block(array, 0, data[:8], full)
    same[:8] = data[:8]
    assert (tmp_path / "s.zarr" / "x" / "c" / "0" / "0" / "0").read_bytes() == (
        tmp_path / "s.zarr" / "y" / "c" / "0" / "0" / "0"
    ).read_bytes()


@pytest.mark.parametrize("compressor", ["lz4", None], ids=["lz4", "raw"])
def test_rows_chunked_along_their_samples_are_written_column_by_column_with_zarrs_chunk_bytes(
    tmp_path, compressor, monkeypatch
):
    """A windowed array (rows chunked along the samples; Blosc lz4 in stores before 0.3, raw
    bytes since): the direct writer lays the chunks out column by column (chunk 0 of every row,
    then chunk 1, ...: format v2), each chunk the bytes zarr's own codec writes for it, the last
    one padded; plain zarr reads every row back, a failed row as the fill value."""
    group = zarr.open_group(tmp_path / "s.zarr", mode="w")

    def windowed(name):
        return group.create_array(
            name,
            shape=(6, 50, 3),
            chunks=(1, 16, 3),
            shards=(4, 64, 3),  # 4 chunks per row, the last reaching past the row's end
            dtype="float32",
            fill_value=np.nan,
            compressors=compressor and BloscCodec(cname=compressor, clevel=5, shuffle="shuffle", typesize=4),
        )

    ours, theirs = windowed("x"), windowed("y")
    assert can_encode(ours)
    data = np.random.default_rng(1).standard_normal((6, 50, 3)).astype(np.float32)
    present = np.array([True, True, False, True, True, True])
    write_shard_block(ours, 0, data[:4], present[:4])
    write_shard_block(ours, 1, data[4:], present[4:])
    theirs[:] = data
    expected = data.copy()
    expected[2] = np.nan
    reread = zarr.open_group(tmp_path / "s.zarr", mode="r")
    np.testing.assert_array_equal(reread["x"][:], expected)
    np.testing.assert_array_equal(reread["x"][5, 40:50], data[5, 40:50])  # a partial read of the last chunk

    # the two shards' indexes, read by hand: (offset, nbytes) per (row, chunk), then a CRC32C
    def index(name):
        raw = (tmp_path / "s.zarr" / name / "c" / "0" / "0" / "0").read_bytes()
        table = np.frombuffer(raw[-(16 * 16 + 4) : -4], dtype="<u8").reshape(4, 4, 2)
        return raw, table

    mine, mine_table = index("x")
    zarrs, zarr_table = index("y")
    assert (mine_table[2] == np.uint64(2**64 - 1)).all()  # the failed row: absent
    order = [(row, column) for column in range(4) for row in (0, 1, 3)]
    ends = [int(mine_table[r, c, 0]) + int(mine_table[r, c, 1]) for r, c in order]
    starts = [int(mine_table[r, c, 0]) for r, c in order]
    assert starts == [0] + ends[:-1]  # column after column, the rows in order, nothing between
    for row in (0, 1, 3):
        for column in range(4):
            (a, n), (b, m) = mine_table[row, column], zarr_table[row, column]
            assert mine[int(a) : int(a) + int(n)] == zarrs[int(b) : int(b) + int(m)], (row, column)
    # windows read straight from either layout equal plain zarr's: raw chunks for exactly the
    # window's bytes (one read per chunk it spans), compressed ones whole
    reads = []  # the file reads (pread for compressed chunks, preadv for raw ones): their sizes

    def counted(real):
        return lambda fd, what, offset: (
            reads.append(len(what[0]) if isinstance(what, list) else what) or real(fd, what, offset)
        )

    monkeypatch.setattr(os, "pread", counted(os.pread))
    monkeypatch.setattr(os, "preadv", counted(os.preadv))
    for name, truth in (("x", expected), ("y", data)):
        reader = WindowReader(reread[name])
        reader.load_indexes([0, 1])
        del reads[:]
        np.testing.assert_array_equal(reader.read(0, 0, 50), truth[0])
        assert len(reads) == 4, name  # the whole of row 0: its 4 chunks
        for row, start, stop in [(1, 10, 40), (3, 16, 32), (5, 47, 50)]:
            del reads[:]
            np.testing.assert_array_equal(reader.read(row, start, stop), truth[row, start:stop])
            if compressor is None and name == "x":
                assert sum(reads) == (stop - start) * 12, (row, start, stop)  # the window's bytes only


def test_ranges_are_coalesced_by_key_and_gap():
    """The requests of a batch's byte ranges: one per run of ranges of one key that overlap,
    touch or lie within the gap; every range then found inside its request."""
    from sdfkit.store.windows import _coalesce

    ranges = [("b", 0, 10), ("a", 30, 10), ("a", 0, 10), ("a", 10, 10), ("a", 45, 5), ("a", 5, 20), ("b", 100, 1)]
    merged, members = _coalesce(ranges, gap=0)
    assert merged == [("a", 0, 25), ("a", 30, 10), ("a", 45, 5), ("b", 0, 10), ("b", 100, 1)]
    assert [sorted(m[1]) for m in members] == [[2, 3, 5], [1], [4], [0], [6]]
    merged, members = _coalesce(ranges, gap=5)
    assert merged == [("a", 0, 50), ("b", 0, 10), ("b", 100, 1)]
    for (key, offset, size), (start, held) in zip(merged, members, strict=True):
        for k in held:
            assert ranges[k][0] == key and start == offset and offset <= ranges[k][1]
            assert ranges[k][1] + ranges[k][2] <= offset + size


def test_columns_are_not_encoded_directly(tmp_path):
    group = zarr.open_group(tmp_path / "s.zarr", mode="w")
    column = group.create_array("c", shape=(10,), chunks=(5,), dtype="uint8")
    assert not can_encode(column)


def _build(tmp_path, name="m.zarr", *, folder=None, config=None, shard_size=8, **kwargs):
    folder = folder or write_mnist_folder(tmp_path / "src", empty_index=2)
    digits = mnist.load_digits(folder)
    return mnist.prepare_mnist(
        tmp_path / name, config or MnistConfig(), digits=digits, shard_size=shard_size, **kwargs
    ), digits


def test_format_v1_contract_with_plain_zarr(tmp_path):
    summary, digits = _build(tmp_path, config=MnistConfig(resolution=32, surface_points=100, val_size=4))
    group = zarr.open_group(tmp_path / "m.zarr", mode="r")
    info = group.attrs["sdfkit"]
    assert info["format_version"] == 2 and info["kind"] == "mnist" and info["complete"] is True
    assert info["parameters"]["resolution"] == 32 and info["source"]["name"] == "mnist"
    n = 24 + 12
    expected = {
        "image": ((n, 28, 28), "uint8"),
        "sdf/grid": ((n, 32, 32), "float32"),
        "surface/points": ((n, 100, 2), "float32"),
        "surface/normals": ((n, 100, 2), "float32"),
        "meta/label": ((n,), "int64"),
        "meta/status": ((n,), "uint8"),
    }
    for name, (shape, dtype) in expected.items():
        assert group[name].shape == shape and str(group[name].dtype) == dtype
    assert group["sdf/grid"].chunks == (1, 32, 32) and group["sdf/grid"].shards == (8, 32, 32)
    assert group["meta/split"].chunks == (8,)
    status = group["meta/status"][:]
    errors = [str(e) for e in group["meta/error"][:]]
    # the blank digit failed with a one-line reason; everything else is ok
    failed = np.nonzero(status == STATUS_FAILED)[0]
    ids = [str(i) for i in group["meta/id"][:]]
    assert [ids[i] for i in failed] == ["train-00002"]
    assert "empty" in errors[failed[0]] and all(e == "" for i, e in enumerate(errors) if i != failed[0])
    assert np.isnan(group["sdf/grid"][failed[0]]).all()
    assert set(str(s) for s in group["meta/split"][:]) == {"train", "val", "test"}
    # values: the store holds exactly what the per-shape function computes on the stored image
    k = int(np.nonzero(status == STATUS_OK)[0][5])
    image = group["image"][k]
    direct = image_to_sdf(image, resolution=32, surface_points=100, rng=mnist._job_rng(0, ids[k]))
    np.testing.assert_array_equal(group["sdf/grid"][k], direct.grid)
    np.testing.assert_array_equal(group["surface/points"][k], direct.points)
    assert summary.per_split["train"]["failed"] == 1


def test_resume_gives_the_same_store_as_an_uninterrupted_run(tmp_path):
    folder = write_mnist_folder(tmp_path / "src")
    full, digits = _build(tmp_path, "full.zarr", folder=folder)
    # an interrupted run: the store is created and one shard of five is written
    config = MnistConfig()
    metas, jobs = mnist.plan_mnist(digits, config)
    layout = StoreLayout(
        kind="mnist",
        metas=metas,
        specs=mnist.array_specs(config),
        parameters=mnist.parameters(config),
        source={"name": "mnist", **digits.origin},
        shard_size=8,
    )
    group, state = prepare_store(tmp_path / "part.zarr", layout)
    assert state == "created"
    run_shard(
        ShardTask(str(tmp_path / "part.zarr"), 3, jobs[24:32], mnist.processor(config), mnist.array_specs(config))
    )
    with pytest.raises(FormatError, match="unfinished"):
        open_dataset(tmp_path / "part.zarr")
    resumed, _ = _build(tmp_path, "part.zarr", folder=folder)
    assert resumed.state == "resumed" and resumed.computed == 36 - 8
    a, b = zarr.open_group(tmp_path / "full.zarr"), zarr.open_group(tmp_path / "part.zarr")
    for name in ("image", "sdf/grid", "surface/points", "surface/normals", "meta/status"):
        np.testing.assert_array_equal(a[name][:], b[name][:])
    again, _ = _build(tmp_path, "part.zarr", folder=folder)
    assert again.state == "complete" and again.computed == 0


def test_a_store_killed_while_being_created_is_made_again(tmp_path):
    folder = write_mnist_folder(tmp_path / "src")
    _build(tmp_path, folder=folder)
    group = zarr.open_group(tmp_path / "m.zarr", mode="r+")
    group.attrs["sdfkit"] = {**group.attrs["sdfkit"], "initialized": False, "complete": False}
    del group["meta/split"]  # as if killed before this column was made
    with pytest.raises(FormatError, match="never fully created"):
        open_dataset(tmp_path / "m.zarr")
    summary, _ = _build(tmp_path, folder=folder)
    assert summary.state == "created" and summary.computed == 36
    assert len(open_dataset(tmp_path / "m.zarr", include_failed=True)) == 36


def test_other_parameters_are_refused_unless_overwrite(tmp_path):
    folder = write_mnist_folder(tmp_path / "src")
    _build(tmp_path, folder=folder)
    with pytest.raises(ParameterMismatchError, match="resolution 64 \\(store\\) vs 32 \\(asked\\).*--overwrite"):
        _build(tmp_path, folder=folder, config=MnistConfig(resolution=32))
    summary, _ = _build(tmp_path, folder=folder, config=MnistConfig(resolution=32), overwrite=True)
    assert summary.state == "created"
    assert zarr.open_group(tmp_path / "m.zarr")["sdf/grid"].shape[1] == 32


def test_other_source_data_are_refused(tmp_path):
    _build(tmp_path, folder=write_mnist_folder(tmp_path / "a", seed=1))
    with pytest.raises(ParameterMismatchError, match="source data differ"):
        _build(tmp_path, folder=write_mnist_folder(tmp_path / "b", seed=2))


def test_a_foreign_folder_is_never_deleted(tmp_path):
    out = tmp_path / "m.zarr"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(StoreError, match="not a sdfkit store"):
        _build(tmp_path, overwrite=True)
    assert (out / "thesis.tex").read_text() == "precious"


def test_unwritable_output(tmp_path):
    (tmp_path / "file").write_text("x")
    digits = mnist.load_digits(write_mnist_folder(tmp_path / "src"))
    with pytest.raises(StoreError, match="cannot"):
        mnist.prepare_mnist(tmp_path / "file" / "m.zarr", MnistConfig(), digits=digits)


def test_open_dataset_selects_splits_and_skips_failed(tmp_path):
    _build(tmp_path, config=MnistConfig(val_size=4))
    ds = open_dataset(tmp_path / "m.zarr")
    assert len(ds) == 35 and ds.kind == "mnist"
    assert len(open_dataset(tmp_path / "m.zarr", include_failed=True)) == 36
    train = open_dataset(tmp_path / "m.zarr", split="train")
    assert len(train) == 24 - 4 - 1 and set(train.meta("split")) == {"train"}
    item = train[0]
    assert item["sdf/grid"].shape == (64, 64) and item["status"] == 1 and item["split"] == "train"
    assert len(ds.select(["val", "test"])) == 16
    with pytest.raises(InputError, match="no split 'tset'.*choose one of them"):
        ds.select("tset")


def test_a_finished_store_is_opened_by_its_whole_column_copies(tmp_path, s3_server, monkeypatch):
    """A finished store also holds the meta/ columns that opening reads whole, one chunk each, in
    columns/; on S3 opening reads those (a few requests, however many shards) and lists the same
    shapes as meta/ does; a store without them (made before they were written) opens as before,
    reading meta/ shard by shard."""
    import s3fs

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from s3_servers import LatencyProxy

    config = MnistConfig(resolution=16, surface_points=10, val_size=4)
    _build(tmp_path, config=config, shard_size=2)  # 36 digits: 18 shards
    made = tmp_path / "m.zarr"
    group = zarr.open_group(made, mode="r")
    assert group.attrs["sdfkit"]["column_copies"] is True
    for name in COPIED_COLUMNS:
        copy = group[f"columns/{name}"]
        assert copy.shape == copy.chunks == (36,), name
        np.testing.assert_array_equal(copy[:], group[f"meta/{name}"][:])
    older = tmp_path / "older.zarr"  # as sdfkit wrote stores before: no copies, no flag
    shutil.copytree(made, older)
    shutil.rmtree(older / "columns")
    old = zarr.open_group(older, mode="r+")
    old.attrs["sdfkit"] = {k: v for k, v in old.attrs["sdfkit"].items() if k != "column_copies"}
    arrays = len(group.attrs["sdfkit"]["arrays"])

    fs = s3fs.S3FileSystem()
    for folder in (made, older):
        fs.put(str(folder), f"sdfkit-test/{folder.name}", recursive=True)
    port = int(s3_server["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    with LatencyProxy(port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        s3fs.S3FileSystem.clear_instance_cache()
        requests = {}
        for folder in (made, older):
            before = proxy.requests
            remote = open_dataset(f"s3://sdfkit-test/{folder.name}", include_failed=True)
            requests[folder.name] = proxy.requests - before
            for name in COPIED_COLUMNS:
                np.testing.assert_array_equal(remote.meta(name), open_dataset(older, include_failed=True).meta(name))
            failed = remote.meta("status") == STATUS_FAILED
            assert remote.meta("id")[failed].tolist() == ["train-00002"]  # the blank digit (conftest)
    # the group and its state, whether each array exists, then each copy's metadata and chunk
    assert requests["m.zarr"] <= 2 + arrays + 2 * len(COPIED_COLUMNS), requests
    assert requests["older.zarr"] >= 18 * 4, requests  # id, category, split, status: a chunk per shard


def test_unknown_format_version_is_refused(tmp_path):
    _build(tmp_path)
    group = zarr.open_group(tmp_path / "m.zarr", mode="r+")
    info = dict(group.attrs["sdfkit"])
    info["format_version"] = 3
    group.attrs["sdfkit"] = info
    with pytest.raises(FormatError, match="format version 3.*reads versions 1, 2"):
        open_dataset(tmp_path / "m.zarr")


def test_not_a_store(tmp_path):
    with pytest.raises(FormatError, match="no such store"):
        open_dataset(tmp_path / "nothing.zarr")
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(FormatError, match="not a sdfkit store"):
        open_dataset(tmp_path / "plain.zarr")


def test_attributes_are_json(tmp_path):
    _build(tmp_path)
    meta = json.loads((tmp_path / "m.zarr" / "zarr.json").read_text())
    assert meta["attributes"]["sdfkit"]["format_version"] == 2


@pytest.mark.parametrize(
    "row", [(4, 3), (100_000, 3), (30_000, 10)], ids=["direct writer", "windowed, direct writer", "zarr writer"]
)
def test_write_shard_small_and_large_rows_with_a_failed_row(tmp_path, row):
    """Small rows and rows chunked along their samples go through the direct shard writer, whole
    rows above DIRECT_ROW_BYTES through zarr's codec: either way ok rows read back exactly and a
    failed row reads as the fill value."""
    from sdfkit.store.format import (
        DIRECT_ROW_BYTES,
        WINDOW_SAMPLES,
        ArraySpec,
        ShapeMeta,
        StoreLayout,
        create_store,
        write_shard,
    )

    spec = ArraySpec("x", row, "float32", float("nan"))
    assert (np.prod(row) * 4 > DIRECT_ROW_BYTES) == (row[0] > 4)
    assert (row[0] > 2 * WINDOW_SAMPLES) == (row[0] == 100_000)
    metas = [ShapeMeta(f"s{k}", "", -1, "train") for k in range(3)]
    group = create_store(tmp_path / "s.zarr", StoreLayout("shapenet", metas, [spec], {}, {}, shard_size=3))
    data = np.random.default_rng(0).random((3, *row)).astype(np.float32)
    write_shard(group, 0, {"x": data}, np.array([STATUS_OK, STATUS_FAILED, STATUS_OK], np.uint8), ["", "bad", ""])
    back = zarr.open_group(tmp_path / "s.zarr", mode="r")["x"][:]
    np.testing.assert_array_equal(back[[0, 2]], data[[0, 2]])
    assert np.isnan(back[1]).all()
    if row[0] > 2 * WINDOW_SAMPLES:  # the direct writer's layout: chunk 0 of rows 0 and 2 first
        raw = (tmp_path / "s.zarr" / "x" / "c" / "0" / "0" / "0").read_bytes()
        columns = -(-row[0] // WINDOW_SAMPLES)
        table = np.frombuffer(raw[-(16 * 3 * columns + 4) : -4], dtype="<u8").reshape(3, columns, 2).astype(np.int64)
        assert table[0, 0, 0] == 0 and table[2, 0, 0] == table[0, 0].sum() and table[0, 1, 0] == table[2, 0].sum()


def test_whole_columns_read_from_their_chunk_files_equal_zarrs_read(tmp_path):
    """read_whole (the per-shape columns, decoded chunk file by chunk file) gives what zarr gives,
    dtype included, for every array it takes: numbers, strings, small sharded vectors, a failed
    row, a shard never written (absent files: the fill value) and a torn chunk (it declines, and
    zarr's read decides)."""
    from sdfkit.store.format import ArraySpec, ShapeMeta, StoreLayout, create_store, read_column, write_shard
    from sdfkit.store.shards import read_whole

    specs = [ArraySpec("v/scalar", (), "float32", float("nan")), ArraySpec("v/three", (3,), "float32", float("nan"))]
    metas = [ShapeMeta(f"s{k}", "cat", -1, "train") for k in range(7)]
    group = create_store(tmp_path / "s.zarr", StoreLayout("shapenet", metas, specs, {}, {}, shard_size=3))
    rng = np.random.default_rng(0)
    for shard, rows in ((0, 3), (1, 3)):  # shard 2 (row 6) is never written
        values = {"v/scalar": rng.random(rows).astype(np.float32), "v/three": rng.random((rows, 3)).astype(np.float32)}
        status = np.array([STATUS_OK, STATUS_FAILED, STATUS_OK][:rows], np.uint8)
        write_shard(group, shard, values, status, ["", "bad mesh", ""][:rows])
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    taken = 0
    for name in ("meta/id", "meta/category", "meta/split", "meta/status", "meta/error", "v/scalar", "v/three"):
        whole, plain = read_whole(group[name]), group[name][:]
        if whole is None:
            continue
        taken += 1
        assert whole.dtype == plain.dtype, name
        if plain.dtype.kind in "OTU":
            assert list(whole) == list(plain), name
        else:
            np.testing.assert_array_equal(whole, plain, err_msg=name)
    assert taken == 7
    assert list(read_column(group, "meta/status")) == [1, 2, 1, 1, 2, 1, 0]
    # a torn chunk: read_whole declines, read_column still answers as zarr does
    chunk = tmp_path / "s.zarr" / "v" / "scalar" / "c" / "1"
    chunk.write_bytes(chunk.read_bytes()[:5])
    torn = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert read_whole(torn["v/scalar"]) is None


def test_a_second_run_in_one_process_rebuilds_with_another_shard_size(tmp_path):
    """A notebook that prepares a store, then prepares it again with ``overwrite`` and another
    shard size (then a third time), in one process: each run completes, and the arrays equal
    those of the first run, row for row (nothing of an earlier run's store is reused)."""
    config = MnistConfig(resolution=16, surface_points=20, val_size=4)
    folder = write_mnist_folder(tmp_path / "src", empty_index=2)
    first, _ = _build(tmp_path, folder=folder, config=config, shard_size=16)
    grids = zarr.open_group(tmp_path / "m.zarr", mode="r")["sdf/grid"][:]
    for size in (8, 5):
        summary, _ = _build(tmp_path, folder=folder, config=config, shard_size=size, overwrite=True)
        group = zarr.open_group(tmp_path / "m.zarr", mode="r")
        assert summary.state == "created" and summary.computed == first.computed == 36 and len(summary.failures) == 1
        assert group.attrs["sdfkit"]["shard_size"] == size and group.attrs["sdfkit"]["complete"]
        np.testing.assert_array_equal(group["sdf/grid"][:], grids)


def test_store_state_reads_todays_stores_and_makes_each_change_explicit():
    """StoreState on an attribute written by hand as stores of today's format have it: a layer
    named by its object alone is found; each transition changes what the format says it does."""
    from sdfkit.store.state import StoreState

    old = {
        "format_version": 1, "kind": "shapenet", "shard_size": 8, "parameters": {"seed": 0}, "source": {"id": "a"},
        "arrays": ["meta/id", "sdf/points", "voxels/occupancy", "voxels/status"],
        "specs": {"sdf/points": {}, "voxels/occupancy": {}, "voxels/status": {}},
        "initialized": True, "complete": True, "summary": {"failed": 0},
        "voxels": {"resolution": 32, "initialized": True, "complete": True, "ok": 3, "failed": 0},
    }  # fmt: skip
    state = StoreState(old)
    assert state.layer_names() == ["voxels"] and state.complete and state.initialized and state.shard_size == 8
    assert StoreState({k: v for k, v in old.items() if k != "initialized"}).initialized  # older stores
    state.record_append({"id": "b"}, 5)
    info = state.as_dict()
    assert not info["complete"] and "summary" not in info and info["appended"][0]["shapes"] == 5
    assert info["voxels"]["complete"] is False and info["source"] == {"id": "b"}
    assert old["complete"] is True and old["voxels"]["complete"] is True  # the input is not changed
    removed = state.start_layer("voxels", {"resolution": 64})
    info = state.as_dict()
    assert removed == ["voxels/occupancy", "voxels/status"] and info["arrays"] == ["meta/id", "sdf/points"]
    assert info["voxels"] == {"resolution": 64, "initialized": False, "complete": False}
    assert info["layers"] == ["voxels"] and list(info["specs"]) == ["sdf/points"]
    state.mark_layer_initialized("voxels").finish_layer("voxels", {"voxels/occupancy": {"x": 1}}, ok=4, failed=1)
    info = state.as_dict()
    assert info["voxels"]["complete"] and (info["voxels"]["ok"], info["voxels"]["failed"]) == (4, 1)
    assert info["arrays"][-1] == "voxels/occupancy" and info["specs"]["voxels/occupancy"] == {"x": 1}
    state.mark_complete({"failed": 1})
    assert state.complete and state.get("summary") == {"failed": 1} and "finished" in state.as_dict()
