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
from ladder_vae import distribute, model_size, run_lock
from ladder_vae.config import MIN_BATCH_SIZE, ConfigError

# The smallest image side the model takes: tf.image.ssim needs images at least as large as its
# window, `losses.SSIM_FILTER_SIZE` (a test checks that the two agree; losses imports TensorFlow).
MIN_IMAGE_SIDE = 7
# `training.CONFIG_FILE`, the record of a run in its directory.
CONFIG_FILE = "config.json"
# `training.FINAL_MODEL_FILE`, written when a run has finished.
FINAL_MODEL_FILE = "model.keras"
# `training.BACKUP_DIR` and the commit point of its backup (`callbacks`' `STATE_FILE`): a run
# directory without them (and without a final model) never finished an epoch.
BACKUP_DIR = "backup"
BACKUP_STATE_FILE = "state.json"
# `export.SAVED_MODEL_DIR`, the SavedModel that ends a run (export imports TensorFlow).
SAVED_MODEL_DIR = "saved_model"
# Settings that shape the model's weights: a run can only be resumed with the same values.
ARCHITECTURE_FIELDS = ("latent_dims", "base_filters", "level_input")


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
        check_run_dir(config.run_dir, export=config.export)
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


def check_run_dir(run_dir, export=True):
    """Raises `ConfigError` unless `run_dir` is, or can be created as, a directory that this
    process can write, that no other training holds and that holds no finished run: one with a
    final model and nothing left to finish (see `left_to_finish`; `export` says whether the run
    asks for an export). Writes a probe file and removes it: permission bits do not tell (root
    passes `os.access` on a read-only file system)."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"--run-dir {run_dir}: exists and is not a directory")
    if os.path.isdir(run_dir):
        problem = _write_probe(run_dir)
        if problem:
            raise ConfigError(f"--run-dir {run_dir}: not writable ({problem})")
        run_lock.check_unlocked(run_dir)
        if os.path.exists(os.path.join(run_dir, FINAL_MODEL_FILE)) and not left_to_finish(
            run_dir, export
        ):
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
    check_model_size(config, data.image_shape)
    if len(data.val_images) < MIN_BATCH_SIZE:
        raise data_lib.DataError(
            f"{_images_file(data, config)}: {len(data.val_images)} validation image; the MMD "
            f"of a validation batch needs at least {MIN_BATCH_SIZE}"
        )
    num_train = len(data.train_images)
    if config.batch_size > num_train:
        # Training drops the last, smaller batch: an epoch of these images would take no step.
        raise ConfigError(
            f"--batch-size {config.batch_size}: more than the {num_train} training images in "
            f"{_images_file(data, config)}; pass a smaller --batch-size"
        )


def check_model_size(config, image_shape, available_bytes=None):
    """Raises `ConfigError` for a model that cannot work on images of `image_shape`: more levels
    than the images can be halved, or training memory (a lower bound: see
    `ladder_vae.model_size`) beyond `available_bytes` (default: what this machine has free)."""
    height, width = image_shape[:2]
    levels = len(config.latent_dims)
    most = model_size.max_levels(image_shape)
    dims = ",".join(map(str, config.latent_dims))
    if levels > most:
        chain = " -> ".join(
            f"{h}x{w}" for h, w in model_size.feature_sizes(image_shape, most)
        )
        raise ConfigError(
            f"--latent-dims {dims}: {levels} levels, but each level halves the images and "
            f"{height}x{width} images can be halved at most {most} times ({chain}); give at "
            f"most {most} levels"
        )
    if available_bytes is None:
        available_bytes = model_size.available_memory_bytes()
    need = model_size.training_memory(
        image_shape, config.latent_dims, config.base_filters, config.batch_size,
        config.level_input,
    )
    if available_bytes is not None and need["total_bytes"] > available_bytes:
        raise ConfigError(
            f"--base-filters {config.base_filters} with --latent-dims {dims} and --batch-size "
            f"{config.batch_size}: estimated {need['parameters']:,} parameters; training needs "
            f"at least {_gib(need['total_bytes'])} GiB ({_gib(need['parameter_bytes'])} GiB of "
            f"weights, gradients and Adam moments, {_gib(need['activation_bytes'])} GiB of "
            f"activations per batch), more than the {_gib(available_bytes)} GiB of memory "
            "available; use a smaller --base-filters, fewer levels or a smaller --batch-size"
        )


def check_resume(config, data):
    """Raises unless the run recorded in `config.run_dir` (if any) can continue with `data` and
    `config`: same image shape, same architecture. Another run there would not load its
    checkpoints, or would mix two models in one directory. A run that never finished an epoch
    (one stopped by a model too large for the memory, say) has nothing to resume: it is started
    over with the new settings."""
    path = os.path.join(config.run_dir, CONFIG_FILE)
    if not os.path.exists(path) or not finished_an_epoch(config.run_dir):
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


def left_to_finish(run_dir, export=True):
    """What a run whose final model is saved still lacks, in words (a list, empty when
    complete): the removal of its backup, and with `export` its SavedModel. A process killed
    after saving `model.keras` leaves these; the same command then finishes them."""
    left = []
    if os.path.exists(os.path.join(run_dir, BACKUP_DIR)):
        left.append(f"remove {BACKUP_DIR}/")
    if export and not os.path.exists(os.path.join(run_dir, SAVED_MODEL_DIR, "saved_model.pb")):
        left.append(f"export {SAVED_MODEL_DIR}/")
    return left


def finished_an_epoch(run_dir):
    """Whether the run in `run_dir` has something to resume or keep: a committed backup of an
    epoch, or a final model."""
    return os.path.exists(os.path.join(run_dir, BACKUP_DIR, BACKUP_STATE_FILE)) or os.path.exists(
        os.path.join(run_dir, FINAL_MODEL_FILE)
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


def _gib(num_bytes):
    return f"{num_bytes / model_size.GIB:,.1f}"


def _shape(shape):
    return "x".join(str(size) for size in shape)
