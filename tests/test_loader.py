"""sdfkit.torch: windows of a real store on disk (and on moto's S3 server) against plain zarr."""

from __future__ import annotations

import multiprocessing
import pickle
import time
import warnings

import numpy as np
import pytest
import torch
import zarr

from metasdf.tasks import MetaSDFTasks
from sdfkit.errors import FormatError, InputError
from sdfkit.geometry.shapes import make_shapes
from sdfkit.sources import mnist
from sdfkit.sources.shapenet import ShapenetConfig, prepare_shapenet
from sdfkit.store.windows import WindowReader
from sdfkit.torch import DeepSDFSamples, MNISTGrids, OccupancyPoints, SampleWindows, ShardOrderSampler

K = 70_000  # above twice WINDOW_SAMPLES: rows chunked along the samples


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    make_shapes(root / "shapes", 6, seed=4)
    url = str(root / "shapes.zarr")
    config = ShapenetConfig(samples=K, surface_samples=3000, recipes=("occnet",))
    prepare_shapenet(root / "shapes", url, config, workers=2, shard_size=4)
    return url


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_workers_that_outlive_an_epoch(store, context):
    """With ``persistent_workers=True`` the workers keep their copy of the dataset from one epoch
    to the next: each epoch's items must still be that epoch's (what one process reads after
    ``set_epoch``), not the first epoch's again; a shard-order sampler's epoch reaches them too
    (its copy there is what read-ahead iterates). Forked and spawned workers."""
    data = DeepSDFSamples(store, subsample=1024, shard_order=True)
    sampler = ShardOrderSampler(data)
    reference = DeepSDFSamples(store, subsample=1024, shard_order=True)
    loader = torch.utils.data.DataLoader(
        data, batch_size=3, num_workers=2, persistent_workers=True, multiprocessing_context=context
    )
    seen = {}
    for epoch in (0, 1, 5):
        data.set_epoch(epoch)
        sampler.set_epoch(epoch)
        reference.set_epoch(epoch)
        for samples, indices in loader:
            for s, i in zip(samples, indices.tolist(), strict=True):
                torch.testing.assert_close(s, reference[i][0], msg=f"epoch {epoch}, item {i}")
                seen.setdefault(i, []).append(s)
    assert all(not torch.equal(s[0], s[1]) for s in seen.values())  # the windows moved
    process = multiprocessing.get_context(context)
    go, answer = process.Event(), process.Queue()
    child = process.Process(target=_epoch_after, args=(sampler, go, answer))
    child.start()  # a copy made now (a worker's), then the epoch set in this process
    sampler.set_epoch(7)
    go.set()
    assert answer.get(timeout=60) == 7
    child.join(10)
    copied = pickle.loads(pickle.dumps(sampler))  # pickled outside a process's start: the number alone
    sampler.set_epoch(8)
    assert copied.epoch == 7 and list(copied) == list(_at_epoch(ShardOrderSampler(data), 7))


def _epoch_after(sampler, go, answer) -> None:
    go.wait(60)
    answer.put(sampler.epoch)


def _at_epoch(sampler, epoch: int):
    sampler.set_epoch(epoch)
    return sampler


def test_draws_with_replacement_are_the_same_in_every_worker(store):
    """A window with fewer samples of one sign than half the subsample draws the rest with
    replacement: after set_epoch those draws come from the item's own generator, so two workers
    give what the main process gives (they used torch's global generator, which a DataLoader
    seeds per worker)."""
    length = zarr.open_group(store, mode="r")["sdf/values"].shape[1]
    data = DeepSDFSamples(store, subsample=length)  # the whole row: one sign is short of half
    data.set_epoch(4)
    expected = {k: data[k][0] for k in range(len(data))}
    assert any(len(torch.unique(s, dim=0)) < len(s) for s in expected.values())  # drawn with replacement
    loader = torch.utils.data.DataLoader(data, batch_size=1, num_workers=2)
    for samples, indices in loader:
        torch.testing.assert_close(samples[0], expected[int(indices[0])])


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


@pytest.mark.slow
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


def test_deepsdf_long_windows_are_whole_chunks_and_picks_move_within_them(store):
    data = DeepSDFSamples(store, subsample=4096)
    assert data.chunk == 32768 and data.long == 32768  # K = 70,000: the window is one whole chunk
    group = zarr.open_group(store, mode="r")
    row = int(data.rows[0])
    picks, starts = set(), set()
    for epoch in range(8):
        data.set_epoch(epoch)
        start = data.start(0, data.long)
        assert start % 32768 == 0 and start + data.long <= K
        starts.add(start)
        samples, _ = data[0]
        assert (samples[:2048, 3] > 0).all() and (samples[2048:, 3] <= 0).all()
        window = np.concatenate(
            [
                group["sdf/points"][row, start : start + data.long],
                group["sdf/values"][row, start : start + data.long][:, None],
            ],
            axis=1,
        )
        keys = set(map(bytes, np.ascontiguousarray(window, dtype=np.float32)))
        assert all(bytes(r) in keys for r in samples.numpy())  # every row from this item's window
        picks.add(bytes(samples.numpy()))
    assert len(picks) > len(starts)  # a window's picks start at a random place: more items than windows


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "mnist.zarr"
    mnist.prepare_mnist(out, mnist.MnistConfig(resolution=32, surface_points=128, limit=40, val_size=8), workers=1)
    return str(out)


def test_mnist_items_are_the_stored_rows(digits, store):
    data = MNISTGrids(digits, split="train")
    group = zarr.open_group(digits, mode="r")
    labels = np.asarray(group["meta/label"][:])
    assert len(data) == len(set(data.ids)) and len(data) > 0
    for k in (0, len(data) - 1):
        item = data[k]
        row = int(data.rows[k])
        np.testing.assert_array_equal(item["grid"].numpy(), group["sdf/grid"][row])
        np.testing.assert_array_equal(item["surface"].numpy(), group["surface/points"][row])
        assert item["label"] == labels[row] and item["id"] == data.ids[k] and item["grid"].dtype == torch.float32
    assert len(MNISTGrids(digits, split="train", limit=5)) == 5
    with pytest.raises(InputError, match="a 'shapenet' store; MNISTGrids reads a 'mnist' store"):
        MNISTGrids(store)


def test_metasdf_2d_tasks_are_cells_and_level_set_points_of_the_digit(digits):
    data = MetaSDFTasks(digits, context="dense", context_points=100, split="train")
    grids = MNISTGrids(digits, split="train")
    r = grids.resolution
    centres = (np.arange(r) + 0.5) / r * 2 - 1  # sdfkit's frame: cell centres of [-1, 1]
    for k in (0, 3):
        task, grid = data[k], grids[k]["grid"].numpy()
        assert task["context_x"].shape == (100, 2) and task["target_x"].shape == (r * r - 100, 2)
        cells = np.concatenate([task["context_x"].numpy(), task["target_x"].numpy()])
        values = np.concatenate([task["context_y"].numpy(), task["target_y"].numpy()])[:, 0]
        j = np.rint((cells[:, 0] + 1) / 2 * r - 0.5).astype(int)  # column from x
        i = np.rint((cells[:, 1] + 1) / 2 * r - 0.5).astype(int)  # row from y
        np.testing.assert_allclose(cells[:, 0], centres[j], atol=1e-6)
        np.testing.assert_array_equal(values, grid[i, j])  # each value is its cell's
        assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == r * r  # every cell once
    level = MetaSDFTasks(digits, context="levelset", context_points=50, split="train")
    task = level[2]
    stored = set(map(bytes, grids[2]["surface"].numpy()))
    assert all(bytes(p) in stored for p in task["context_x"].numpy()) and (task["context_y"] == 0).all()
    torch.testing.assert_close(task["target_y"][:, 0], grids[2]["grid"].reshape(-1))
    # a DataLoader batch is the trainer's batch: (B, N, 2), reproducible per epoch with any workers
    data.set_epoch(3)
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=2)
    batch = next(iter(loader))
    assert batch["context_x"].shape == (4, 100, 2) and batch["context_y"].shape == (4, 100, 1)
    torch.testing.assert_close(batch["context_x"][1], data[1]["context_x"])


def test_metasdf_3d_tasks_from_the_store_equal_the_trainers_from_memory(store):
    from metasdf.data3d import load_shapes_3d, make_batch_3d

    shapes = load_shapes_3d(store, "train")
    for context, balanced, scored in (("dense", True, False), ("levelset", False, False), ("dense", True, True)):
        data = MetaSDFTasks(
            store,
            context=context,
            context_points=256,
            target_points=1024,
            balanced_targets=balanced,
            targets_include_context=scored,
            split="train",
        )
        assert data.ids == shapes.ids
        data.set_epoch(1)
        for k in (0, len(data) - 1):
            task = data[k]
            batch = make_batch_3d(
                shapes,
                torch.tensor([k]),
                context=context,
                context_points=256,
                target_points=1024,
                balanced_targets=balanced,
                targets_include_context=scored,
                generator=data.generator(k),
            )
            for key in ("context_x", "context_y", "target_x", "target_y"):
                torch.testing.assert_close(task[key], batch[key][0], msg=key)
            assert len(task["target_x"]) == 1024 + 256 * scored
            if scored:  # the reference scores every sample of the scene: the context, then the others
                torch.testing.assert_close(task["target_x"][:256], task["context_x"])
                torch.testing.assert_close(task["target_y"][:256], task["context_y"])
            if context == "dense":
                assert (task["context_y"][:128] <= 0).all() and (task["context_y"][128:] > 0).all()
    with pytest.raises(InputError, match="--recipe deepsdf-test"):
        MetaSDFTasks(store, sample_set="sdf_test")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["obstore", "fsspec"])
def test_s3rver_gives_the_local_items_and_a_shards_windows_in_one_request(store, s3rver, monkeypatch, backend):
    """Through a proxy that counts requests (benchmarks/s3_servers.py): every item DataLoader
    workers read from s3rver equals the local item; in shard order a batch holding whole shards
    costs one request per array per shard, and in the default order no more than one per array
    per item."""
    import s3fs
    from s3_servers import LatencyProxy

    from sdfkit.torch import ShardOrderSampler

    endpoint, port = s3rver
    s3fs.S3FileSystem().put(store, "sdfkit-test/loader.zarr", recursive=True)
    with LatencyProxy(port, delay=0.005) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        s3fs.S3FileSystem.clear_instance_cache()
        for shard_order in (True, False):
            before = proxy.requests
            remote = DeepSDFSamples(
                "s3://sdfkit-test/loader.zarr", subsample=1024, shard_order=shard_order, backend=backend
            )
            # opening: the group, whether each array exists, the six column copies (metadata and
            # chunk), the two sample arrays' metadata and their two shards' indexes
            arrays = len(zarr.open_group(store, mode="r").attrs["sdfkit"]["arrays"])
            assert proxy.requests - before == 1 + arrays + 2 * 6 + 2 + 2 * 2, proxy.requests - before
            local = DeepSDFSamples(store, subsample=1024, shard_order=shard_order)
            sampler = ShardOrderSampler(remote, seed=1) if shard_order else None
            for epoch in range(2):
                remote.set_epoch(epoch)
                local.set_epoch(epoch)
                if sampler is not None:
                    sampler.set_epoch(epoch)
                loader = torch.utils.data.DataLoader(remote, batch_size=8, sampler=sampler, num_workers=2)
                before = proxy.requests
                batches = list(loader)
                requests = proxy.requests - before
                for samples, indices in batches:
                    torch.testing.assert_close(samples, torch.stack([local[int(k)][0] for k in indices]))
                assert sum(len(i) for _, i in batches) == len(local) == 6
                if shard_order:  # one batch: the 4 shapes of shard 0 and the 2 of shard 1
                    assert len(batches) == 1 and requests == 2 * 2, requests
                else:
                    assert 2 <= requests <= 2 * 6, requests
    store = remote.reader("sdf/points")._range_store()  # in this process, which has not used obstore before
    assert type(store).__name__ == ("FsspecStore" if backend == "fsspec" else "ObjectStore")


@pytest.mark.slow
def test_read_ahead_requests_the_next_batches_once_and_gives_the_local_items(store, s3rver, monkeypatch):
    """With ``read_ahead``, being handed the first batch requests it and the next two (counted by
    the proxy); the next two then cost no request. Through DataLoader workers, every item equals
    the local one and an epoch costs the requests it costs without read-ahead (the order was
    predicted); with a sampler whose order the workers cannot repeat, items stay right."""
    import s3fs
    from s3_servers import LatencyProxy

    from sdfkit.torch import ShardOrderSampler

    endpoint, port = s3rver
    s3fs.S3FileSystem().put(store, "sdfkit-test/ahead.zarr", recursive=True)
    with LatencyProxy(port, delay=0.005) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        s3fs.S3FileSystem.clear_instance_cache()
        remote = DeepSDFSamples("s3://sdfkit-test/ahead.zarr", subsample=1024, shard_order=True)
        local = DeepSDFSamples(store, subsample=1024, shard_order=True)
        sampler = ShardOrderSampler(remote, seed=3)
        remote.read_ahead(sampler, batch_size=2, depth=2)
        remote.set_epoch(0)
        sampler.set_epoch(0)
        order = [int(i) for i in sampler]
        batches = [order[k : k + 2] for k in range(0, 6, 2)]
        assert all(len({remote.shard(i) for i in b}) == 1 for b in batches)  # one request per array each
        before = proxy.requests
        remote.__getitems__(batches[0])
        deadline = time.monotonic() + 5  # the next batches' requests go out once this one's answers are in
        while proxy.requests - before < 3 * 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.requests - before == 3 * 2  # this batch and the next two, two arrays each
        for batch in batches[1:]:
            samples = remote.__getitems__(batch)
            local.set_epoch(0)
            for (got, _), k in zip(samples, batch, strict=True):
                torch.testing.assert_close(got, local[k][0])
        assert proxy.requests - before == 3 * 2

        fresh = DeepSDFSamples("s3://sdfkit-test/ahead.zarr", subsample=1024, shard_order=True)
        fresh.read_ahead(ShardOrderSampler(fresh, seed=3), batch_size=2)  # no set_epoch: windows unknown ahead
        before = proxy.requests
        fresh.__getitems__(batches[0])
        time.sleep(0.2)
        assert proxy.requests - before == 2

        for epoch, loader_sampler in ((1, sampler), (2, None)):
            remote.read_ahead(loader_sampler or torch.utils.data.RandomSampler(remote), batch_size=2)
            for dataset in (remote, local):
                dataset.set_epoch(epoch)
            sampler.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(remote, batch_size=2, sampler=loader_sampler, num_workers=2)
            before = proxy.requests
            got = list(loader)
            for samples, indices in got:
                torch.testing.assert_close(samples, torch.stack([local[int(k)][0] for k in indices]))
            assert sorted(int(i) for _, b in got for i in b) == list(range(6))
            if loader_sampler is not None:
                assert proxy.requests - before == 3 * 2


def test_shard_order_keeps_a_shards_shapes_together_at_one_window(store):
    """ShardOrderSampler: every shape once an epoch, a shard's shapes one after another, the
    order a function of (seed, epoch); with shard_order the shapes of a shard read one window
    position, and each item is still a window of its own row (against plain zarr)."""
    from sdfkit.torch import ShardOrderSampler

    data = SampleWindows(store, "sdf", window=2048, seed=2, shard_order=True)
    sampler = ShardOrderSampler(data, seed=5)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(len(data)))
        shards = [data.shard(k) for k in order]
        assert [s for k, s in enumerate(shards) if k == 0 or s != shards[k - 1]] == list(dict.fromkeys(shards))
        orders.append(order)
    assert orders[0] == orders[2] and orders[0] != orders[1]
    group = zarr.open_group(store, mode="r")
    for epoch in range(3):
        data.set_epoch(epoch)
        starts = {}
        for k in range(len(data)):
            starts.setdefault(data.shard(k), set()).add(data.start(k))
            item = data[k]
            row = item["row"]
            np.testing.assert_array_equal(
                item["sdf/points"].numpy(), group["sdf/points"][row, data.start(k) : data.start(k) + 2048]
            )
        assert all(len(s) == 1 for s in starts.values()), starts


def test_the_latency_proxy_counts_requests_and_skips_bodies():
    """The proxy's request count (benchmarks/s3_servers.py), on a byte stream written by hand:
    header blocks counted, a body skipped by its Content-Length even where it holds a blank line,
    a request split across reads counted once."""
    import multiprocessing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from s3_servers import _RequestCounter

    count = multiprocessing.Value("q", 0)
    counter = _RequestCounter(count)
    body = b"x\r\n\r\ny"
    stream = (
        b"GET /a HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n"
        + b"PUT /b HTTP/1.1\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
        + b"GET /c HTTP/1.1\r\n\r\n"
    )
    for k in range(0, len(stream), 7):  # in pieces, as reads deliver it
        counter.feed(stream[k : k + 7])
    assert count.value == 3


def test_a_format_v1_store_reads_as_before(store, tmp_path):
    """A store of format v1 (16,384-sample chunks; here written by zarr's own codec, whose chunk
    order is neither v1's nor v2's) opens, and its windows are zarr's slices."""
    import shutil

    copy = tmp_path / "v1.zarr"
    shutil.copytree(store, copy)
    group = zarr.open_group(copy, mode="r+")
    for name in ("sdf/points", "sdf/values"):
        old = group[name]
        data = old[:]
        tail = tuple(old.shape[2:])
        group.create_array(
            name,
            shape=old.shape,
            chunks=(1, 16384, *tail),
            shards=(old.shards[0], 81920, *tail),
            dtype=old.dtype,
            fill_value=old.fill_value,
            compressors=None,
            overwrite=True,
        )[:] = data
    info = dict(group.attrs["sdfkit"])
    info["format_version"] = 1
    group.attrs["sdfkit"] = info
    windows = SampleWindows(str(copy), "sdf", window=20000, seed=1)
    assert windows.reader("sdf/points").layout[0][1] == 16384
    reread = zarr.open_group(copy, mode="r")
    for epoch in range(2):
        windows.set_epoch(epoch)
        for k in range(len(windows)):
            item, start = windows[k], windows.start(k)
            np.testing.assert_array_equal(
                item["sdf/points"].numpy(), reread["sdf/points"][item["row"], start : start + 20000]
            )
    deepsdf = DeepSDFSamples(str(copy), subsample=4096)
    assert deepsdf.chunk == 16384 and len(deepsdf[0][0]) == 4096
