"""Training data: TFDS, IDX files or the bundled digits, as `tf.data` pipelines of [0, 1] floats.

Where the images come from is decided by `load_data`:

1. `data_dir` given: the standard IDX files in it (`train-images-idx3-ubyte[.gz]`,
   `train-labels-idx1-ubyte[.gz]`, and `t10k-*` for validation).
2. otherwise TFDS (`mnist` or `fashion_mnist`) under `tfds_data_dir` (default `$TFDS_DATA_DIR`,
   then `~/tensorflow_datasets`): read without network when already prepared there, downloaded
   otherwise.
3. when TFDS would have to download but the network cannot be reached within a few seconds:
   `mnist` falls back to the digits bundled with this package (3,000 training and 1,000 test
   digits of real MNIST) with a warning, and `fashion_mnist` to Debian's
   `/usr/share/datasets/fashion-mnist` when installed.

Validation data is the official test split (`t10k-*`). An IDX directory without test files holds
out the last `VALIDATION_FRACTION` of its training images instead.
"""

import dataclasses
import errno
import gzip
import logging
import os
import socket
import stat
import struct
import threading
import zlib

import numpy as np

# TensorFlow is imported in the functions that use it: reading and checking IDX files does not
# start it, so that train.py reports bad data at once, without TensorFlow's start-up log lines.

DATASETS = ("mnist", "fashion_mnist")
BUNDLED_MNIST_DIR = os.path.join(os.path.dirname(__file__), "bundled", "mnist")
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
VALIDATION_FRACTION = 0.1
# Where TFDS downloads MNIST and Fashion-MNIST from, and how long to wait to reach it.
TFDS_DOWNLOAD_HOST = ("storage.googleapis.com", 443)
NETWORK_TIMEOUT_SECONDS = 3.0

# IDX: big-endian magic 0x0000 <type> <ndim>, then ndim uint32 sizes, then the data.
IDX_UBYTE = 0x08
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad or missing data; its message is one line that names the file or value at fault."""


@dataclasses.dataclass
class ImageData:
    """Images as uint8 arrays [n, H, W, C] and labels [n], with a record of where they came from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    source: dict

    @property
    def image_shape(self):
        return tuple(self.train_images.shape[1:])


# IDX files ------------------------------------------------------------------------------------


def read_idx(path, expected_magic=None):
    """Reads an IDX file of unsigned bytes, plain or gzipped (told apart by content, not name).

    Args:
        path: the file.
        expected_magic: `IDX_IMAGES_MAGIC`, `IDX_LABELS_MAGIC` or None to accept any ubyte IDX.

    Returns:
        A uint8 array shaped as the header says.

    Raises:
        DataError: missing, empty, corrupt, truncated or unexpected files.
    """
    problem = _path_problem(path, "file")
    if problem:
        raise DataError(f"{path}: {problem}")
    try:
        with open(path, "rb") as file:
            raw = file.read()
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    if not raw:
        raise DataError(f"{path}: empty file, expected an IDX file")
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    data_type, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or data_type != IDX_UBYTE or ndim == 0:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic number 0x{magic:08x})")
    if expected_magic == IDX_IMAGES_MAGIC and ndim == 4:
        raise DataError(
            f"{path}: colour/4-D IDX images (magic number 0x{magic:08x}, n x H x W x C) are not "
            f"supported (yet); expected greyscale n x H x W images (0x{IDX_IMAGES_MAGIC:08x})"
        )
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"({'images' if expected_magic == IDX_IMAGES_MAGIC else 'labels'})"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header_size} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected_size = int(np.prod(shape, dtype=np.int64))
    found_size = len(raw) - header_size
    if found_size != expected_size:
        problem = "truncated" if found_size < expected_size else "has trailing bytes"
        raise DataError(
            f"{path}: {problem}: header says {'x'.join(map(str, shape))} = {expected_size} bytes "
            f"of data, found {found_size}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _find_idx(data_dir, stem):
    """The path of `stem` or `stem.gz` in `data_dir`, or None. A name that is there but
    unusable (a broken symbolic link, a directory) counts as found, for `read_idx` to report."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.lexists(path):
            return path
    return None


def _path_problem(path, kind):
    """None if `path` is an existing `kind` ("file" or "directory", links followed), else why
    not, in words: missing, a broken symbolic link, a symbolic link loop, the other kind."""
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop"
        if error.errno == errno.ENOENT and os.path.islink(path):
            return f"broken symbolic link to {os.readlink(path)}"
        if error.errno == errno.ENOENT:
            return f"no such {kind}"
        return f"cannot read it ({error.strerror})"
    if kind == "file" and is_dir:
        return "is a directory, not a file"
    if kind == "directory" and not is_dir:
        return "is not a directory"
    return None


def read_idx_split(data_dir, prefix):
    """Images [n, H, W, C] and labels [n] of one split (`train` or `t10k`) of an IDX directory.

    Returns None when the split's image file is absent; raises DataError for anything else.
    """
    images_path = _find_idx(data_dir, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(data_dir, f"{prefix}-labels-idx1-ubyte")
    if images_path is None:
        if labels_path is not None:
            raise DataError(
                f"{data_dir}: {os.path.basename(labels_path)} has no images beside it "
                f"(expected {prefix}-images-idx3-ubyte[.gz])"
            )
        return None
    if labels_path is None:
        raise DataError(
            f"{data_dir}: labels missing for {os.path.basename(images_path)} "
            f"(expected {prefix}-labels-idx1-ubyte[.gz])"
        )
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path}: {images.shape[0]} images but {labels.shape[0]} labels in "
            f"{os.path.basename(labels_path)}"
        )
    if images.shape[0] == 0:
        raise DataError(f"{images_path}: holds no images")
    return images[..., None], labels


def load_idx_dir(data_dir):
    """An `ImageData` from a directory of IDX files (see the module docstring)."""
    problem = _path_problem(data_dir, "directory")
    if problem:
        raise DataError(f"--data-dir {data_dir}: {problem}")
    train = read_idx_split(data_dir, "train")
    if train is None:
        raise DataError(
            f"--data-dir {data_dir}: no training images "
            "(expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])"
        )
    validation = read_idx_split(data_dir, "t10k")
    if validation is not None and validation[0].shape[1:] != train[0].shape[1:]:
        raise DataError(
            f"{data_dir}: test images are {validation[0].shape[1:]} but training images are "
            f"{train[0].shape[1:]}"
        )
    if validation is None:
        num_val = max(1, int(round(len(train[0]) * VALIDATION_FRACTION)))
        if num_val >= len(train[0]):
            raise DataError(f"{data_dir}: too few training images to hold out a validation set")
        validation = (train[0][-num_val:], train[1][-num_val:])
        train = (train[0][:-num_val], train[1][:-num_val])
        validation_name = f"last {num_val} of train (no t10k files)"
    else:
        validation_name = "t10k"
    return ImageData(
        *train,
        *validation,
        source={
            "kind": "idx",
            "path": os.path.abspath(data_dir),
            "train_examples": int(len(train[0])),
            "validation_examples": int(len(validation[0])),
            "validation": validation_name,
        },
    )


# TFDS -----------------------------------------------------------------------------------------


def network_reachable(address=TFDS_DOWNLOAD_HOST, timeout=NETWORK_TIMEOUT_SECONDS):
    """Whether a TCP connection to `address` opens within `timeout` seconds (DNS included).

    TFDS retries a failed download for minutes; this answers in at most `timeout` seconds. The
    check runs in a daemon thread because name resolution does not honour socket timeouts.
    """
    result = []

    def connect():
        try:
            with socket.create_connection(address, timeout=timeout):
                result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def _tfds_builder(name, tfds_data_dir):
    import tensorflow_datasets as tfds  # Imported lazily: it costs seconds and is often unused.

    return tfds.builder(name, data_dir=tfds_data_dir)


def tfds_prepared(name, tfds_data_dir=None):
    """Whether TFDS has `name` prepared on disk, so that loading it needs no network."""
    try:
        builder = _tfds_builder(name, tfds_data_dir)
    except Exception:  # A corrupt or foreign data dir: TFDS will say more when loading.
        return False
    import tensorflow as tf

    return tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json"))


def load_tfds(name, tfds_data_dir=None):
    """An `ImageData` from TFDS (`train` and `test` splits), downloading if needed."""
    builder = _tfds_builder(name, tfds_data_dir)
    builder.download_and_prepare()
    arrays = {}
    for split in ("train", "test"):
        dataset = builder.as_dataset(split=split, batch_size=-1)
        example = {key: value.numpy() for key, value in dataset.items()}
        arrays[split] = (example["image"].astype(np.uint8), example["label"].astype(np.int64))
    return ImageData(
        *arrays["train"],
        *arrays["test"],
        source={
            "kind": "tfds",
            "name": name,
            "path": builder.data_dir,
            "train_examples": int(len(arrays["train"][0])),
            "validation_examples": int(len(arrays["test"][0])),
            "validation": "test",
        },
    )


# Choosing a source ----------------------------------------------------------------------------


def load_data(dataset="mnist", data_dir=None, tfds_data_dir=None, allow_fallback=True):
    """Loads images from the first source that works (see the module docstring).

    Args:
        dataset: `mnist` or `fashion_mnist`; names the TFDS dataset and, with `data_dir`, what
            the IDX files hold.
        data_dir: a directory of IDX files, or None for TFDS.
        tfds_data_dir: TFDS's data directory; None for `$TFDS_DATA_DIR` or TFDS's default.
        allow_fallback: whether to use offline data when TFDS cannot download.

    Returns:
        An `ImageData`; its `source` dict says which source was used, for `config.json`.
    """
    if dataset not in DATASETS:
        raise DataError(f"--dataset {dataset!r}: unknown dataset, expected one of {DATASETS}")
    if data_dir is not None:
        data = load_idx_dir(data_dir)
        data.source["dataset"] = dataset
        return data
    tfds_data_dir = tfds_data_dir or os.environ.get("TFDS_DATA_DIR") or None
    if tfds_prepared(dataset, tfds_data_dir) or network_reachable():
        data = load_tfds(dataset, tfds_data_dir)
    elif not allow_fallback:
        raise DataError(
            f"--dataset {dataset}: not prepared under the TFDS data dir and the network is "
            "unreachable; pass --data-dir with IDX files"
        )
    elif dataset == "mnist":
        logger.warning(
            "TFDS cannot download mnist (no network): training on the %s bundled MNIST digits "
            "instead. For all 60,000, run once with network, set TFDS_DATA_DIR to a prepared "
            "copy, or pass --data-dir with the IDX files.",
            "3,000",
        )
        data = load_idx_dir(BUNDLED_MNIST_DIR)
        data.source["kind"] = "bundled"
    elif os.path.isdir(DEBIAN_FASHION_MNIST_DIR):
        logger.warning(
            "TFDS cannot download fashion_mnist (no network): using %s instead.",
            DEBIAN_FASHION_MNIST_DIR,
        )
        data = load_idx_dir(DEBIAN_FASHION_MNIST_DIR)
    else:
        raise DataError(
            "--dataset fashion_mnist: TFDS cannot download it (no network) and no offline copy "
            "was found; pass --data-dir with its IDX files (e.g. `apt-get install "
            "dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist)"
        )
    data.source["dataset"] = dataset
    return data


# Pipelines ------------------------------------------------------------------------------------


def to_float(images):
    """uint8 [..., H, W, C] to float32 in [0, 1]."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 255.0


def make_dataset(images, batch_size, shuffle=False, seed=None, drop_remainder=False):
    """A `tf.data` pipeline of float32 image batches in [0, 1].

    The images are converted once and cached in memory, then (for training) shuffled with a
    seed, anew each epoch, and batched; the next batch is prefetched while a step runs.

    Args:
        images: uint8 array [n, H, W, C].
        batch_size: images per batch.
        shuffle: reshuffle every epoch (training) or keep the order (evaluation).
        seed: shuffle seed, for reproducible runs.
        drop_remainder: drop a last, smaller batch (training: every step sees a full batch, so
            the MMD estimate has the same variance at every step). Without it, a last batch of
            one image is dropped all the same: the unbiased MMD of one code is -2k(z, y),
            always negative, and would bias the epoch's mean.
    """
    import tensorflow as tf

    if not drop_remainder and len(images) > 1 and len(images) % batch_size == 1:
        images = images[:-1]
    dataset = tf.data.Dataset.from_tensor_slices(images)
    dataset = dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
