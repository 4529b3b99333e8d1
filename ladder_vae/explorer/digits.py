"""The validation digits a run was checked on, to start the explorer from a real digit."""

import json
import logging
import os

from ladder_vae import data as data_lib
from ladder_vae.run_dir import RunDir

logger = logging.getLogger(__name__)


def _bundled(reason):
    digits = data_lib.load_idx_dir(data_lib.BUNDLED_MNIST_DIR)
    return digits.val_images, f"the bundled MNIST test digits ({reason})"


def validation_digits(run_dir, image_shape):
    """The run's validation images, uint8 [n, H, W, C], and a line saying where they come from.

    `config.json`'s `data` record says which: `bundled` digits, IDX files at `path`, or a TFDS
    dataset already prepared on this machine (never downloaded). Without a record (a bare
    SavedModel), or when the recorded data is not here, the bundled MNIST test digits, provided
    they have the model's image shape; otherwise none (an empty array).
    """
    record, tfds_dir, reason = {}, None, "the run directory records no data"
    path = RunDir(run_dir).config
    if os.path.isfile(path):
        try:
            with open(path) as file:
                config = json.load(file) or {}
            record = config.get("data") or {}
            tfds_dir = (config.get("config") or {}).get("tfds_data_dir")
        except (OSError, ValueError, AttributeError):
            reason = f"{path} is unreadable"
    images, source = None, None
    try:
        kind = record.get("kind")
        if kind == "bundled":
            images, source = _bundled("the run's data")
        elif kind == "idx" and record.get("path") and os.path.isdir(record["path"]):
            images = data_lib.load_idx_dir(record["path"]).val_images
            source = f"the validation digits of {record['path']}"
        elif kind == "tfds" and data_lib.tfds_prepared(record.get("name", "mnist"), tfds_dir):
            name = record.get("name", "mnist")
            images = data_lib.load_tfds(name, tfds_dir).val_images
            source = f"the test split of TFDS {name}"
        elif kind:
            reason = f"the run's {kind} data is not on this machine"
    except (data_lib.DataError, OSError) as error:
        reason = f"the run's data cannot be read: {error}"
    if images is None:
        images, source = _bundled(reason)
    if tuple(images.shape[1:]) != tuple(image_shape):
        logger.warning(
            "No validation digits: %s are %s, the model's images %s", source,
            tuple(images.shape[1:]), tuple(image_shape),
        )
        return images[:0], "none of the model's image shape"
    return images, source
