"""Checks that a training run passes before it writes anything: the run directory, the data
against the model, and an earlier run in the directory against the one now asked for.

Each check raises `ConfigError` or `DataError` with one line that names the flag, file or value
at fault, and leaves nothing behind. This is the one gate of a run's settings: `train.py` parses
types only, and `training.train` runs these checks once for callers that do not come through
`train.py`. Nothing here imports TensorFlow, so that bad input is reported at once, before
TensorFlow's start-up cost and log lines.
"""

import json
import os

from ladder_vae import data as data_lib
from ladder_vae import distribute, model_size
from ladder_vae import run_dir as run_dir_lib
from ladder_vae.config import MIN_BATCH_SIZE
from ladder_vae.errors import ConfigError

# The smallest image side the model takes: tf.image.ssim needs images at least as large as its
# window, `losses.SSIM_FILTER_SIZE` (a test checks that the two agree; losses imports TensorFlow).
MIN_IMAGE_SIDE = 7
# What a resumed run must keep, as its record has it: its architecture, which its checkpoints
# are of; whether it pays a KL term, which decides the columns of its history.csv; and the
# weights of its loss, whose values early stopping and the learning-rate schedule compare
# across epochs (so that a change of the defaults cannot change a run's objective unnoticed).
RESUME_FIELDS = (
    "latent_dims", "base_filters", "level_input", "level_kl_weights",
    "mmd_weight", "ssim_weight", "reconstruction_sigma",
)
# What a run recorded before a flag existed was built with: every model before `--level-input`
# was concatenated (as `LadderVAE.from_config` reads such a model), none paid a KL term.
VALUE_BEFORE_THE_FLAG = {"level_input": "concatenated", "level_kl_weights": None}


def check_run(config, data=None):
    """Every check that `config` allows before TensorFlow starts; the first failure raises.

    Validates the settings and, for `--strategy multiworker`, `TF_CONFIG`; gives `config` its
    default run directory when it has none; checks the run directory (when this process writes
    it) is, or can be made, a writable directory that no other training holds; and, for IDX
    data (`--data-dir`), loads the data and runs `check_loaded_data`. TFDS data is loaded and
    checked by `training.train_checked`, after TensorFlow has started.

    Args:
        config: the `TrainConfig`.
        data: an `ImageData` already in memory to check instead of the data `config` names.

    Returns:
        The loaded `ImageData`, or None when the data comes from TFDS.
    """
    config.validate()
    config.run_dir = config.run_dir or run_dir_lib.default_run_dir()
    # A malformed TF_CONFIG fails here; a worker other than the chief writes no run directory.
    if distribute.writes_run_dir(config):
        run_dir_lib.check_run_dir(config.run_dir, export=config.export)
    if data is None and config.data_dir is None:
        tfds_data_dir = config.tfds_data_dir
        if tfds_data_dir and os.path.exists(tfds_data_dir) and not os.path.isdir(tfds_data_dir):
            raise ConfigError(f"--tfds-data-dir {tfds_data_dir}: exists and is not a directory")
        return None
    if data is None:
        data = data_lib.load_data(config.dataset, config.data_dir, config.tfds_data_dir)
    check_loaded_data(config, data)
    return data


def check_loaded_data(config, data):
    """Raises unless the model of `config` can train on `data`, and a run to resume in the run
    directory (when this process writes it) trained on the same kind of images and model."""
    check_data(config, data)
    if distribute.writes_run_dir(config):
        check_resume(config, data)


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
    run = run_dir_lib.RunDir(config.run_dir)
    path = run.config
    if not os.path.exists(path) or not run.finished_an_epoch():
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
    _check_same_images(config, data, recorded.get("data"), path)
    # Every differing setting in the one line, so that a run started under other defaults
    # takes one corrected command, not one per flag.
    given_values, saved_values = [], []
    for field in RESUME_FIELDS:
        if field not in saved_config and field not in VALUE_BEFORE_THE_FLAG:
            continue
        flag = "--" + field.replace("_", "-")
        saved = _flag_value(flag, saved_config.get(field, VALUE_BEFORE_THE_FLAG.get(field)))
        given = _flag_value(flag, getattr(config, field))
        if saved != given:
            given_values.append(given)
            saved_values.append(saved)
    if given_values:
        plural = "s" if len(given_values) > 1 else ""
        raise ConfigError(
            f"{', '.join(given_values)}: the run in --run-dir {config.run_dir} was started with "
            f"{', '.join(saved_values)} ({path}); pass the same value{plural} to resume it, or "
            "another --run-dir"
        )


def _flag_value(flag, value):
    """`--latent-dims 2,2,4`, `--level-kl-weights 0.1,0,0`, `no --level-kl-weights`: a recorded
    or given setting, as the flag that gives it."""
    if value is None:
        return f"no {flag}"
    if isinstance(value, (list, tuple)):
        value = ",".join(f"{part:g}" if isinstance(part, float) else str(part) for part in value)
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"{flag} {value}"


def _check_same_images(config, data, saved_source, path):
    """Raises `DataError` unless `data` is the data set the recorded run trained on, as far as
    its record (`config.json`'s `data`) tells: the same dataset and the same numbers of training
    and validation images. Resumed on other images, early stopping would compare validation
    losses of two validation sets, and the record would name only the second data."""
    if not isinstance(saved_source, dict):
        return
    source = data.source
    saved_dataset, dataset = saved_source.get("dataset"), source.get("dataset")
    if saved_dataset and dataset and saved_dataset != dataset:
        raise data_lib.DataError(
            f"{_images_file(data, config)}: {dataset} images, but the run in --run-dir "
            f"{config.run_dir} trained on {saved_dataset} ({path}); pass the same data to "
            "resume it, or another --run-dir"
        )
    counts = (len(data.train_images), len(data.val_images))
    saved_counts = (saved_source.get("train_examples"), saved_source.get("validation_examples"))
    if None not in saved_counts and tuple(saved_counts) != counts:
        raise data_lib.DataError(
            f"{_images_file(data, config)}: {counts[0]:,} training and {counts[1]:,} validation "
            f"images, but the run in --run-dir {config.run_dir} trained on {saved_counts[0]:,} "
            f"and {saved_counts[1]:,} ({path}); pass the same data to resume it, or another "
            "--run-dir"
        )


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
