"""sdfkit.torch: windows of a real store on disk (and on moto's S3 server) against plain zarr."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import zarr

from sdfkit.errors import FormatError, InputError
from sdfkit.geometry.shapes import make_shapes
from sdfkit.sources.shapenet import ShapenetConfig, prepare_shapenet
from sdfkit.store._shards import WindowReader
from sdfkit.torch import DeepSDFSamples, OccupancyPoints, SampleWindows

K = 40_000  # above twice WINDOW_SAMPLES: rows chunked along the samples


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    make_shapes(root / "shapes", 6, seed=4)
    url = str(root / "shapes.zarr")
    config = ShapenetConfig(samples=K, surface_samples=3000, recipes=("occnet",))
    prepare_shapenet(root / "shapes", url, config, workers=2, shard_size=4)
    return url


def test_the_window_reader_equals_zarr(store):
    group = zarr.open_group(store, mode="r")
    for name in ("sdf/points", "sdf/values", "occnet/occupancies"):
        array = group[name]
        reader = WindowReader(array)
        assert reader.layout is not None, name  # the direct path, not zarr's
        length = array.shape[1]
        for row, start, stop in [
            (0, 0, 16384),
            (1, 16383, 16385),
            (5, 100, length),
            (2, length - 7, length),
            (4, 0, 1),
        ]:
            np.testing.assert_array_equal(reader.read(row, start, stop), array[row, start:stop], err_msg=f"{name}")


def test_windows_are_store_slices_and_move_between_epochs(store):
    data = SampleWindows(store, "sdf", window=4096, seed=3)
    data.set_epoch(0)
    group = zarr.open_group(store, mode="r")
    starts = []
    for k in range(len(data)):
        item = data[k]
        start = data.start(k)
        row = item["row"]
        np.testing.assert_array_equal(item["sdf/points"].numpy(), group["sdf/points"][row, start : start + 4096])
        np.testing.assert_array_equal(item["sdf/values"].numpy(), group["sdf/values"][row, start : start + 4096])
        assert item["id"] == str(group["meta/id"][row])
        starts.append(start)
    data.set_epoch(1)
    assert sum(data.start(k) != s for k, s in enumerate(starts)) >= len(data) - 1


def test_deepsdf_items_are_balanced_rows_of_the_store(store):
    data = DeepSDFSamples(store, subsample=2048)
    group = zarr.open_group(store, mode="r")
    for k in (0, len(data) - 1):
        samples, index = data[k]
        assert index == k and samples.shape == (2048, 4) and samples.dtype == torch.float32
        assert (samples[:1024, 3] > 0).all() and (samples[1024:, 3] <= 0).all()
        row = int(data.rows[k])
        stored = np.concatenate([group["sdf/points"][row], group["sdf/values"][row][:, None]], axis=1)
        keys = set(map(bytes, np.ascontiguousarray(stored, dtype=np.float32)))
        assert all(bytes(r) in keys for r in samples.numpy())  # every row is a stored sample


def test_workers_give_the_main_process_items_each_shape_once(store):
    data = DeepSDFSamples(store, subsample=1024)
    data.set_epoch(2)
    expected = {k: data[k][0] for k in range(len(data))}
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, num_workers=2)
    seen = []
    for samples, indices in loader:
        for s, i in zip(samples, indices.tolist(), strict=True):
            torch.testing.assert_close(s, expected[i])
            seen.append(i)
    assert sorted(seen) == list(range(len(data)))


def test_without_set_epoch_windows_change_and_repeat_under_a_seed(store):
    data = SampleWindows(store, "sdf", window=1024)

    def epoch():
        return [data[k]["sdf/values"] for k in range(len(data))]

    torch.manual_seed(0)
    first, second = epoch(), epoch()
    assert any(not torch.equal(a, b) for a, b in zip(first, second, strict=True))
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(first, epoch(), strict=True))


def test_occupancy_items_as_occnet_reads_them(store):
    data = OccupancyPoints(store, points=2048, inputs=300, split="train")
    data.set_epoch(0)
    item = data[0]
    assert (
        item["points"].shape == (2048, 3) and item["points.occ"].shape == (2048,) and item["inputs"].shape == (300, 3)
    )
    assert item["points"].dtype == torch.float32 and set(item["points.occ"].unique().tolist()) <= {0.0, 1.0}
    group = zarr.open_group(store, mode="r")
    start, row = data.start(0), int(data.rows[0])
    np.testing.assert_array_equal(item["points.occ"].numpy(), group["occnet/occupancies"][row, start : start + 2048])
    assert np.abs(item["points"].numpy()).max() <= 0.55  # OccNet's frame: the cube of side 1.1


def test_filters_and_one_line_errors(store):
    ids = SampleWindows(store, "sdf", window=512).ids
    picked = SampleWindows(store, "sdf", window=512, ids=ids[:2])
    assert picked.ids == ids[:2]
    with pytest.raises(InputError, match="no ok shape with id 'nope'"):
        SampleWindows(store, "sdf", ids=["nope"])
    with pytest.raises(InputError, match="--recipe ifnet"):
        OccupancyPoints(store, sample_set="ifnet_0.1")
    with pytest.raises(InputError, match="unknown sample set"):
        SampleWindows(store, "voxels")
    with pytest.raises(InputError, match="window"):
        SampleWindows(store, "sdf", window=K + 1)


def test_a_store_being_written_is_read_without_its_pending_shapes(store, tmp_path):
    import shutil

    copy = tmp_path / "partial.zarr"
    shutil.copytree(store, copy)
    group = zarr.open_group(str(copy), mode="r+")
    info = dict(group.attrs["sdfkit"])
    info["complete"] = False
    group.attrs["sdfkit"] = info
    status = group["meta/status"][:]
    status[1] = 0  # pending: its run has not written it yet
    group["meta/status"][:] = status
    with pytest.raises(FormatError, match="unfinished"):
        SampleWindows(str(copy), "sdf")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = SampleWindows(str(copy), "sdf", window=512, allow_incomplete=True)
    assert any("pending" in str(w.message) for w in caught)
    assert 1 not in data.rows.tolist() and len(data) == len(status) - 1


def test_an_s3_store_gives_the_local_items(store, s3_server):
    import s3fs

    s3fs.S3FileSystem().put(store, "sdfkit-test/loader.zarr", recursive=True)
    remote = DeepSDFSamples("s3://sdfkit-test/loader.zarr", subsample=1024)
    local = DeepSDFSamples(store, subsample=1024)
    remote.set_epoch(0)
    local.set_epoch(0)
    loader = torch.utils.data.DataLoader(remote, batch_size=3, num_workers=2)
    got = torch.cat([samples for samples, _ in loader])
    torch.testing.assert_close(got, torch.stack([local[k][0] for k in range(len(local))]))
