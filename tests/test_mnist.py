"""sdfkit.sources.mnist: IDX files, locating, downloading (local HTTP only), variants and splits."""

from __future__ import annotations

import gzip
import hashlib
import shutil

import numpy as np
import pytest
from conftest import idx_bytes, write_mnist_folder
from scipy import ndimage

from sdfkit.errors import ChecksumError, DownloadError, InputError
from sdfkit.sources import mnist
from sdfkit.sources.mnist import MnistConfig, compose_image, plan_mnist


def test_read_idx_images_and_labels(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "img").write_bytes(idx_bytes(images))
    (tmp_path / "lab.gz").write_bytes(gzip.compress(idx_bytes([7, 1, 9])))
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "img"), images)
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "lab.gz"), [7, 1, 9])


def test_read_idx_header_written_by_hand(tmp_path):
    raw = (
        b"\x00\x00\x08\x03"
        + (1).to_bytes(4, "big")
        + (2).to_bytes(4, "big")
        + (2).to_bytes(4, "big")
        + bytes([1, 2, 3, 4])
    )
    (tmp_path / "f").write_bytes(raw)
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "f"), [[[1, 2], [3, 4]]])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x12\x34\x56\x78" + b"\x00" * 20, "bad magic number"),
        (idx_bytes(np.zeros((3, 28, 28)))[:-100], "truncated"),
        (idx_bytes(np.zeros((3, 28, 28))) + b"xx", "longer than its header"),
        (b"\x00\x00", "not an IDX file"),
        (b"\x1f\x8b" + b"garbage" * 10, "corrupt gzip"),
    ],
)
def test_read_idx_rejects_broken_files(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_find_files_in_torchvision_layout(tmp_path):
    write_mnist_folder(tmp_path / "MNIST" / "raw", gz=False)
    found = mnist.find_idx_files(tmp_path)
    assert set(found) == set(mnist.MNIST_FILES)
    assert all(p.parent == tmp_path / "MNIST" / "raw" for p in found.values())


def test_missing_file_is_named(mnist_folder):
    (mnist_folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match="missing t10k-labels-idx1-ubyte"):
        mnist.find_idx_files(mnist_folder)
    with pytest.raises(InputError, match="no MNIST IDX files"):
        mnist.find_idx_files(mnist_folder / "..")


def test_images_and_labels_must_agree(mnist_folder):
    (mnist_folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(5))))
    with pytest.raises(InputError, match="5 labels for 24 images"):
        mnist.load_digits(mnist_folder)


def test_bundled_sample_is_real_mnist():
    digits = mnist.load_digits(mnist.bundled_sample_dir())
    assert digits.train_images.shape == (4000, 28, 28)
    assert digits.test_images.shape == (1000, 28, 28)
    assert np.bincount(digits.train_labels).tolist() == [400] * 10
    assert np.bincount(digits.test_labels).tolist() == [100] * 10
    # MNIST's digits sit in the centre 20 x 20 box: the border rows are (almost) blank
    assert digits.train_images[:, :2].mean() < 1.0 and digits.train_images[:, 8:20].mean() > 40


# --- download ----------------------------------------------------------------------------------


def _serve_mnist(root, tmp_path):
    folder = write_mnist_folder(tmp_path / "src")
    for f in folder.iterdir():
        shutil.copy(f, root / f.name)
    return {name: hashlib.md5((root / name).read_bytes()).hexdigest() for name in mnist.MNIST_FILES}


def test_download_verifies_and_caches(http_server, tmp_path):
    url, root, requests = http_server
    checksums = _serve_mnist(root, tmp_path)
    cache = tmp_path / "cache"
    folder = mnist.download_mnist(cache, mirrors=(url,), checksums=checksums)
    assert sorted(p.name for p in folder.iterdir()) == sorted(mnist.MNIST_FILES)
    assert len(requests) == 4
    digits = mnist.load_digits(folder)
    assert digits.train_images.shape == (24, 28, 28)
    mnist.download_mnist(cache, mirrors=(url,), checksums=checksums)
    assert len(requests) == 4  # all four verified in the cache: nothing fetched again


def test_download_falls_back_to_the_next_mirror(http_server, tmp_path):
    url, root, requests = http_server
    checksums = _serve_mnist(root, tmp_path)
    folder = mnist.download_mnist(tmp_path / "c", mirrors=(url + "missing/", url), checksums=checksums)
    assert len(list(folder.iterdir())) == 4


def test_download_checksum_mismatch_leaves_nothing(http_server, tmp_path):
    url, root, _ = http_server
    _serve_mnist(root, tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="does not match the expected f68b3c2d"):
        mnist.download_mnist(cache, mirrors=(url,))  # the official checksums, fake files
    assert list(cache.iterdir()) == []


def test_download_without_server(tmp_path):
    with pytest.raises(DownloadError, match="no mirror answered"):
        mnist.download_mnist(tmp_path / "c", mirrors=("http://127.0.0.1:9/",), timeout=2)


# --- planning ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample():
    return mnist.load_digits(mnist.bundled_sample_dir())


def _by_split(metas):
    out = {}
    for m in metas:
        out.setdefault(m.split, []).append(m)
    return out


def test_standard_splits(sample):
    metas, jobs = plan_mnist(sample, MnistConfig())
    splits = _by_split(metas)
    assert {k: len(v) for k, v in splits.items()} == {"train": 3000, "val": 1000, "test": 1000}
    assert len({m.id for m in metas}) == len(metas)
    train_ids = {m.id for m in splits["train"]} | {m.id for m in splits["val"]}
    assert all(i.startswith("train-") for i in train_ids)
    assert all(m.id.startswith("test-") for m in splits["test"])
    # the label is the digit, the category its string
    m, job = metas[0], jobs[0]
    index = int(m.id.split("-")[1])
    assert m.label == sample.train_labels[index] and m.category == str(m.label)
    np.testing.assert_array_equal(compose_image(job), sample.train_images[index])


def test_val_holdout_is_seeded(sample):
    val = lambda seed: {m.id for m in plan_mnist(sample, MnistConfig(seed=seed))[0] if m.split == "val"}  # noqa: E731
    assert val(0) == val(0)
    assert val(0) != val(1)


def test_limit_and_small_sources(sample):
    metas, _ = plan_mnist(sample, MnistConfig(limit=100))
    counts = {k: len(v) for k, v in _by_split(metas).items()}
    assert counts == {"train": 75, "val": 25, "test": 100}  # val: at most a quarter


def test_unseen_digits(sample):
    metas, _ = plan_mnist(sample, MnistConfig(variant="unseen-digits"))
    splits = _by_split(metas)
    assert {m.label for m in splits["train"] + splits["val"]} == set(range(6))
    assert {m.label for m in splits["test"]} == set(range(6, 10))


def test_rotated_digits_are_rotated_copies(sample):
    metas, jobs = plan_mnist(sample, MnistConfig(variant="rotated"))
    angles = np.array([j.angle for j in jobs])
    assert 0 <= angles.min() and angles.max() < 360 and angles.std() > 90
    job = jobs[0]
    index = int(job.id.split("-")[1])
    expected = ndimage.rotate(sample.train_images[index].astype(np.float32), job.angle, reshape=False, order=1)
    np.testing.assert_allclose(compose_image(job), np.clip(np.rint(expected), 0, 255), atol=0)
    again = plan_mnist(sample, MnistConfig(variant="rotated"))[1]
    assert [j.angle for j in again[:20]] == [j.angle for j in jobs[:20]]


def test_composite_follows_the_papers_protocol(sample):
    """Train and val are MNIST plus double-MNIST, test is 1,000 triple-MNIST images (the paper's
    composition protocol), every digit pasted whole at its own scale in one 84 x 84 frame."""
    metas, jobs = plan_mnist(sample, MnistConfig(variant="composite"))
    splits = _by_split(metas)
    for split in ("train", "val"):
        sizes = [len(m.category) for m in splits[split]]
        assert sorted(set(sizes)) == [1, 2] and sizes.count(2) == sizes.count(1) // 2
    assert {len(m.category) for m in splits["test"]} == {3} and len(splits["test"]) == 1000
    assert sum(len(m.category) == 1 for m in splits["train"]) == 3000
    by_id = dict(zip((m.id for m in metas), jobs, strict=True))
    test_jobs = [by_id[m.id] for m in splits["test"]]
    # three different digits per triple; the 1,000-digit pool is used evenly (3,000 draws: 2-4 each)
    uses = np.zeros(len(sample.test_images), dtype=int)
    for job in test_jobs:
        members = [int(np.nonzero((sample.test_images == part).all(axis=(1, 2)))[0][0]) for part in job.parts]
        assert len(set(members)) == 3
        uses[members] += 1
    assert 2 <= uses.min() and uses.max() <= 4 and uses.sum() == 3000
    single = next(m for m in splits["train"] if len(m.category) == 1)
    assert single.label == int(single.category)
    for meta in (single, splits["train"][-1], splits["test"][0]):
        job = by_id[meta.id]
        image = compose_image(job)
        assert image.shape == (84, 84)
        for part, (r, c) in zip(job.parts, job.offsets, strict=True):
            window = image[r : r + 28, c : c + 28]
            assert np.all(window >= part)  # every digit is pasted whole
        if len(job.parts) < 3:  # singles and doubles stay in the 64 x 64 square, centred
            assert meta.label == (-1 if len(job.parts) == 2 else int(meta.category))
            assert all(10 <= r <= 10 + 64 - 28 and 10 <= c <= 10 + 64 - 28 for r, c in job.offsets)
            assert image[:10].max() == 0 and image[-10:].max() == 0
    smaller = _by_split(plan_mnist(sample, MnistConfig(variant="composite", composite_test=40))[0])
    assert len(smaller["test"]) == 40


def test_unknown_variant_is_an_input_error():
    with pytest.raises(InputError, match="unknown variant"):
        MnistConfig(variant="shuffled")
