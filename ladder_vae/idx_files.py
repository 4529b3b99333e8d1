"""IDX files, the format MNIST is published in: reading and checking them, and a directory of them.

A directory holds `train-images-idx3-ubyte[.gz]` and `train-labels-idx1-ubyte[.gz]`, and
`t10k-*` for validation. Every problem is a `DataError` that names the file at fault.
"""

import errno
import gzip
import os
import stat
import struct
import zlib

import numpy as np

from ladder_vae.image_data import DataError, ImageData

VALIDATION_FRACTION = 0.1

# IDX: big-endian magic 0x0000 <type> <ndim>, then ndim uint32 sizes, then the data.
IDX_UBYTE = 0x08
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"


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
    """An `ImageData` from a directory of IDX files: `train-*` for training, `t10k-*` for
    validation, or the last `VALIDATION_FRACTION` of `train-*` when there are no `t10k-*` files."""
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
