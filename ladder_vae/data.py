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
out the last `idx_files.VALIDATION_FRACTION` of its training images instead.
"""

import logging
import os

from ladder_vae.idx_files import load_idx_dir
# ImageData is not used here: callers ask this module for it, with the loaders.
from ladder_vae.image_data import DataError, ImageData  # noqa: F401
from ladder_vae.tfds_data import load_tfds, network_reachable, tfds_prepared

# TensorFlow is imported in the functions that use it: reading and checking IDX files does not
# start it, so that train.py reports bad data at once, without TensorFlow's start-up log lines.

DATASETS = ("mnist", "fashion_mnist")
BUNDLED_MNIST_DIR = os.path.join(os.path.dirname(__file__), "bundled", "mnist")
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

logger = logging.getLogger(__name__)


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
