"""TFDS's MNIST and Fashion-MNIST: whether a dataset is prepared on disk, whether its download
host can be reached, and loading it.

TensorFlow and TFDS are imported in the functions that use them: they cost seconds to start, and
a run on IDX files never needs them.
"""

import os
import socket
import threading

import numpy as np

from ladder_vae.image_data import ImageData

# Where TFDS downloads MNIST and Fashion-MNIST from, and how long to wait to reach it.
TFDS_DOWNLOAD_HOST = ("storage.googleapis.com", 443)
NETWORK_TIMEOUT_SECONDS = 3.0


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
