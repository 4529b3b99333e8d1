"""Checks that a training run passes before it writes anything: the run directory, the data
against the model, and an earlier run in the directory against the one now asked for.

Each check raises `ConfigError` or `DataError` with one line that names the flag, file or value
at fault, and leaves nothing behind. Nothing here imports TensorFlow, so that `train.py` reports
bad input at once, before TensorFlow's start-up cost and log lines; `training.train` runs the
same checks for callers that do not come through `train.py`.
"""

import json
import os
import tempfile

from ladder_vae import data as data_lib
from ladder_vae import distribute, run_lock
from ladder_vae.config import ConfigError

# The smallest image side the model takes: tf.image.ssim needs images at least as large as its
# window, `losses.SSIM_FILTER_SIZE` (a test checks that the two agree; losses imports TensorFlow).
MIN_IMAGE_SIDE = 7
# `training.CONFIG_FILE`, the record of a run in its directory.
CONFIG_FILE = "config.json"
# `training.FINAL_MODEL_FILE`, written when a run has finished.
FINAL_MODEL_FILE = "model.keras"
# Settings that shape the model's weights: a run can only be resumed with the same values.
ARCHITECTURE_FIELDS = ("latent_dims", "base_filters")


def check_run(config):
    """Every check that `config` allows before TensorFlow starts; the first failure raises.

    Validates the settings and, for `--strategy multiworker`, `TF_CONFIG`; checks the run
    directory (when one is given and this process writes it) is, or can be made, a writable
    directory that no other training holds; and, for IDX data (`--data-dir`), loads the
    data and checks it against the model and against a run to resume there. TFDS data is left
    to `training.train`, which loads it after TensorFlow has started.

    Returns:
        The loaded `ImageData`, or None when the data comes from TFDS.
    """
    config.validate()
    # A malformed TF_CONFIG fails here; a worker other than the chief writes no run directory.
    writes_run_dir = distribute.writes_run_dir(config)
    if config.run_dir and writes_run_dir:
        check_run_dir(config.run_dir)
    if config.data_dir is None:
        tfds_data_dir = config.tfds_data_dir
        if tfds_data_dir and os.path.exists(tfds_data_dir) and not os.path.isdir(tfds_data_dir):
            raise ConfigError(f"--tfds-data-dir {tfds_data_dir}: exists and is not a directory")
        return None
    data = data_lib.load_data(config.dataset, config.data_dir, config.tfds_data_dir)
    check_data(config, data)
    if config.run_dir and writes_run_dir:
        check_resume(config, data)
    return data


def check_run_dir(run_dir):
    """Raises `ConfigError` unless `run_dir` is, or can be created as, a directory that this
    process can write, that no other training holds and that holds no finished run. Writes a
    probe file and removes it: permission bits do not tell (root passes `os.access` on a
    read-only file system)."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"--run-dir {run_dir}: exists and is not a directory")
    if os.path.isdir(run_dir):
        problem = _write_probe(run_dir)
        if problem:
            raise ConfigError(f"--run-dir {run_dir}: not writable ({problem})")
        run_lock.check_unlocked(run_dir)
        if os.path.exists(os.path.join(run_dir, FINAL_MODEL_FILE)):
            raise ConfigError(
                f"--run-dir {run_dir}: holds a finished run ({FINAL_MODEL_FILE}); "
                "choose another --run-dir"
            )
        return
    ancestor = os.path.dirname(os.path.abspath(run_dir))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ConfigError(f"--run-dir {run_dir}: cannot create it ({ancestor} is not a directory)")
    problem = _write_probe(ancestor)
    if problem:
        raise ConfigError(f"--run-dir {run_dir}: cannot create it ({ancestor}: {problem})")


def check_data(config, data):
    """Raises `DataError` for images the model cannot train on as `config` asks."""
    height, width, channels = data.image_shape
    if min(height, width) < MIN_IMAGE_SIDE:
        raise data_lib.DataError(
            f"{_images_file(data, config)}: images are {height}x{width}, smaller than the "
            f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} that the model's SSIM window needs"
        )
    if channels < 1:
        raise data_lib.DataError(f"{_images_file(data, config)}: images have no channels")
    num_train = len(data.train_images)
    if config.batch_size > num_train:
        # Training drops the last, smaller batch: an epoch of these images would take no step.
        raise ConfigError(
            f"--batch-size {config.batch_size}: more than the {num_train} training images in "
            f"{_images_file(data, config)}; pass a smaller --batch-size"
        )


def check_resume(config, data):
    """Raises unless the run recorded in `config.run_dir` (if any) can continue with `data` and
    `config`: same image shape, same architecture. Another run there would not load its
    checkpoints, or would mix two models in one directory."""
    path = os.path.join(config.run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    try:
        with open(path) as file:
            recorded = json.load(file)
        if not (
            isinstance(recorded, dict)
            and isinstance(recorded.get("config", {}), dict)
            and isinstance(recorded.get("image_shape", []), list)
            and isinstance(recorded.get("config", {}).get("latent_dims", []), list)
        ):
            raise ValueError("not a run record")
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(
            f"{path}: unreadable record of the run in --run-dir {config.run_dir} ({reason}); "
            "pass another --run-dir"
        ) from None
    saved_shape = recorded.get("image_shape")
    saved_config = recorded.get("config", {})
    if saved_shape is not None and tuple(saved_shape) != tuple(data.image_shape):
        raise data_lib.DataError(
            f"{_images_file(data, config)}: images are {_shape(data.image_shape)}, but the run in "
            f"--run-dir {config.run_dir} trained on {_shape(saved_shape)} ({path}); pass the "
            "same data to resume it, or another --run-dir"
        )
    for field in ARCHITECTURE_FIELDS:
        if field not in saved_config:
            continue
        saved, given = saved_config[field], getattr(config, field)
        if field == "latent_dims":
            saved, given = ",".join(map(str, saved)), ",".join(map(str, given))
        if saved != given:
            flag = "--" + field.replace("_", "-")
            raise ConfigError(
                f"{flag} {given}: the run in --run-dir {config.run_dir} was started with "
                f"{flag} {saved} ({path}); pass the same value to resume it, or another --run-dir"
            )


def _write_probe(directory):
    """None if a file can be created in `directory` (then removed), else the reason."""
    try:
        fd, path = tempfile.mkstemp(prefix=".write-probe-", dir=directory)
    except OSError as error:
        return error.strerror or str(error)
    os.close(fd)
    os.remove(path)
    return None


def _images_file(data, config):
    """What to name in an error about `data`'s images: the training images file (under
    `--data-dir` as the user wrote it, when given), or the dataset."""
    source = data.source
    if source.get("kind") == "tfds":
        return f"TFDS {source.get('name')} ({source.get('path')})"
    path = config.data_dir or source.get("path")
    if path:
        for name in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        return path
    return "the training images"


def _shape(shape):
    return "x".join(str(size) for size in shape)
