"""IDX files written by tests: small real data for train.py without any download."""

import struct

import numpy as np


def write_idx(path, array):
    """An IDX file of unsigned bytes: magic 0x08 <ndim>, the sizes, the data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def small_idx_dir(directory, digits, num_train=256, num_test=64):
    """The first `num_train` training and `num_test` test digits of `digits` (an `ImageData`,
    e.g. the bundled MNIST) as an IDX directory for `--data-dir`."""
    directory.mkdir()
    for prefix, images, labels in (
        ("train", digits.train_images[:num_train], digits.train_labels[:num_train]),
        ("t10k", digits.val_images[:num_test], digits.val_labels[:num_test]),
    ):
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images[..., 0])
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels)
    return directory
