import gzip
import struct

import numpy as np
import pytest

from ladder_vae import data as data_lib
from ladder_vae import idx_files, tfds_data
from ladder_vae.data import DataError


def idx_bytes(array, magic=None):
    magic = magic if magic is not None else 0x0800 | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(directory, prefix, images, labels, gzipped=False):
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        path = directory / f"{prefix}-{kind}-ubyte{'.gz' if gzipped else ''}"
        payload = idx_bytes(array)
        path.write_bytes(gzip.compress(payload) if gzipped else payload)


@pytest.fixture
def digits():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), rng.integers(0, 10, 30)


@pytest.mark.parametrize("gzipped", [False, True])
def test_read_idx_plain_and_gzipped(tmp_path, digits, gzipped):
    write_split(tmp_path, "train", *digits, gzipped=gzipped)
    suffix = ".gz" if gzipped else ""
    images = idx_files.read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    np.testing.assert_array_equal(images, digits[0])
    labels = idx_files.read_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}")
    np.testing.assert_array_equal(labels, digits[1])


def test_real_mnist_test_labels_begin_as_documented(bundled_digits):
    assert bundled_digits.val_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert bundled_digits.train_images.shape == (3000, 28, 28, 1)
    assert bundled_digits.train_images.dtype == np.uint8


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "empty file"),
        (b"\x00\x00", "truncated IDX header"),
        (b"\x12\x34\x56\x78" + b"\x00" * 12, "not an IDX file"),
        (b"\x1f\x8b\x08\x00garbage", "cannot read"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, payload, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=message) as error:
        idx_files.read_idx(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_read_idx_rejects_truncated_data(tmp_path, digits):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(digits[0])[:-100]))
    with pytest.raises(DataError, match="truncated: header says 30x28x28 = 23520 bytes"):
        idx_files.read_idx(path)


def test_read_idx_rejects_labels_where_images_are_expected(tmp_path, digits):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(digits[1]))
    with pytest.raises(DataError, match="wrong magic number 0x00000801, expected 0x00000803"):
        idx_files.read_idx(path, idx_files.IDX_IMAGES_MAGIC)


def test_count_mismatch_and_missing_files_are_named(tmp_path, digits):
    images, labels = digits
    write_split(tmp_path, "train", images, labels[:-1])
    with pytest.raises(DataError, match="30 images but 29 labels"):
        data_lib.load_idx_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="labels missing"):
        data_lib.load_idx_dir(tmp_path)
    with pytest.raises(DataError, match="no such directory"):
        data_lib.load_idx_dir(tmp_path / "absent")


def test_idx_dir_without_test_files_holds_out_part_of_train(tmp_path, digits):
    write_split(tmp_path, "train", *digits)
    data = data_lib.load_idx_dir(tmp_path)
    assert (len(data.train_images), len(data.val_images)) == (27, 3)
    assert data.image_shape == (28, 28, 1)
    assert "last 3 of train" in data.source["validation"]


def test_offline_mnist_falls_back_to_the_bundled_digits(monkeypatch, caplog):
    monkeypatch.setattr(data_lib, "tfds_prepared", lambda *args: False)
    monkeypatch.setattr(data_lib, "network_reachable", lambda *args: False)
    data = data_lib.load_data("mnist")
    assert data.source["kind"] == "bundled" and data.source["dataset"] == "mnist"
    assert len(data.train_images) == 3000
    assert "bundled MNIST digits" in caplog.text and "--data-dir" in caplog.text


def test_offline_fashion_mnist_without_a_local_copy_fails_clearly(monkeypatch):
    monkeypatch.setattr(data_lib, "tfds_prepared", lambda *args: False)
    monkeypatch.setattr(data_lib, "network_reachable", lambda *args: False)
    monkeypatch.setattr(data_lib, "DEBIAN_FASHION_MNIST_DIR", "/nonexistent")
    with pytest.raises(DataError, match="--dataset fashion_mnist"):
        data_lib.load_data("fashion_mnist")


def test_a_hanging_connection_is_given_up_within_the_timeout(monkeypatch):
    import time

    def hang(*args, **kwargs):  # Stands in for a DNS lookup or SYN that gets no answer.
        time.sleep(3)
        raise OSError("timed out")

    monkeypatch.setattr(tfds_data.socket, "create_connection", hang)
    start = time.monotonic()
    assert not tfds_data.network_reachable(("example.invalid", 443), timeout=0.5)
    assert time.monotonic() - start < 1.5


def test_unknown_dataset_is_named():
    with pytest.raises(DataError, match="--dataset 'cifar'"):
        data_lib.load_data("cifar")


def test_pipeline_gives_float_batches_in_unit_range(bundled_digits):
    images = bundled_digits.train_images[:100]
    batches = list(data_lib.make_dataset(images, 32, shuffle=True, seed=0, drop_remainder=True))
    assert len(batches) == 3
    assert batches[0].dtype.name == "float32" and batches[0].shape == (32, 28, 28, 1)
    assert 0.0 <= float(min(b.numpy().min() for b in batches)) <= float(batches[0].numpy().max())
    assert float(max(b.numpy().max() for b in batches)) == 1.0
    again = list(data_lib.make_dataset(images, 32, shuffle=True, seed=0, drop_remainder=True))
    np.testing.assert_array_equal(batches[0].numpy(), again[0].numpy())


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_no_batch_of_one_image_reaches_the_mmd(drop_remainder):
    # 64k + 1 images: the last batch would hold one image, whose unbiased MMD is -2k(z, y).
    images = np.zeros((64 * 3 + 1, 7, 7, 1), np.uint8)
    dataset = data_lib.make_dataset(
        images, 64, shuffle=True, seed=0, drop_remainder=drop_remainder
    )
    assert [int(batch.shape[0]) for batch in dataset] == [64, 64, 64]
    assert int(dataset.cardinality()) == 3
    # A last batch of two or more is kept when the remainder is not dropped.
    sizes = [int(b.shape[0]) for b in data_lib.make_dataset(images[:-2], 64)]
    assert sizes == [64, 64, 63]
