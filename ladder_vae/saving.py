"""Saving and loading a `LadderVAE`: one `.keras` writer that a kill cannot leave half-written,
one `.keras` loader that names the file when it is not a LadderVAE, and one loader of the
SavedModel that `ladder_vae.export` writes.

Keras and TensorFlow are imported in the functions that use them: `check_model_file` runs before
TensorFlow starts, so that a wrong path is reported in one line at once, and the explorer loads
an export without importing anything of training.
"""

import json
import os
import zipfile

from ladder_vae.atomic import atomic_path
from ladder_vae.errors import ConfigError

MODEL_CLASS = "LadderVAE"
# The member of a `.keras` archive that holds the weights (HDF5; optimizer state under
# "optimizer").
WEIGHTS_FILE = "model.weights.h5"
# What evaluation and the explorer call on an exported model (see `ladder_vae.export`).
SAVED_MODEL_ENDPOINTS = ("encode", "decode", "latent_dims")


class ModelFileError(ConfigError):
    """A `.keras` file that cannot be loaded as a `LadderVAE`; the message names it."""


def save_model_atomically(model, path):
    """`model.save(path)` through a temporary file in the same directory and a rename.

    A process killed while saving leaves at most a stray temporary file, never a truncated
    `path`: `os.replace` is atomic within one file system.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path, suffix=".keras") as temporary:
        model.save(temporary, overwrite=True)


def check_model_file(path):
    """Raises `ModelFileError` unless `path` is a `.keras` archive that holds a `LadderVAE`;
    reads only the archive's config, without TensorFlow."""
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a .keras file (a .keras file is a zip archive)")
    class_name = _saved_class_name(path)
    if class_name != MODEL_CLASS:
        raise ModelFileError(f"{path}: holds a {class_name}, not a {MODEL_CLASS}")


def load_model(path):
    """The `LadderVAE` saved at `path` (a `.keras` file), uncompiled; or a `ModelFileError`
    naming the file."""
    check_model_file(path)
    import keras

    # Importing the model module registers LadderVAE with Keras's deserialiser.
    from ladder_vae.model import LadderVAE

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a truncated or foreign file.
        raise ModelFileError(f"{path}: cannot load the model ({_first_line(error)})") from None
    if not isinstance(model, LadderVAE):
        raise ModelFileError(f"{path}: holds a {type(model).__name__}, not a {MODEL_CLASS}")
    _check_every_weight_used(path, model)
    return model


def _check_every_weight_used(path, model):
    """Raises `ModelFileError` unless the archive at `path` holds as many model weights as
    `model`, which Keras rebuilt from the archive's config, has.

    Keras fills each layer of the rebuilt model from the archive and passes over whatever else
    the archive holds. A file saved by other code whose decoder has one more layer (an earlier or
    later version of this one, a prototype) therefore loads without a word, and decodes noise
    because the layer it was trained with is not run.
    """
    import h5py  # A Keras dependency; Keras writes the weights in HDF5.

    try:
        with zipfile.ZipFile(path) as archive, archive.open(WEIGHTS_FILE) as file:
            with h5py.File(file, "r") as weights:
                saved = _count_datasets(weights, skip=("optimizer",))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ModelFileError(
            f"{path}: cannot read its weights ({_first_line(error)})"
        ) from None
    if saved != len(model.weights):
        raise ModelFileError(
            f"{path}: holds {saved} model weights, but the {MODEL_CLASS} its config describes "
            f"has {len(model.weights)}: it was saved by other code than this version of "
            "ladder_vae (another decoder, say); load it with the code that trained it"
        )


def _count_datasets(group, skip=()):
    """The HDF5 datasets (one per variable) under `group`, leaving out its members `skip`."""
    import h5py

    count = 0
    for name, member in group.items():
        if name in skip:
            continue
        if isinstance(member, h5py.Dataset):
            count += 1
        else:
            count += _count_datasets(member)
    return count


def load_saved_model(path):
    """The SavedModel at `path` as `tf.saved_model.load` gives it, checked for the endpoints
    that `ladder_vae.export` writes; or a `ModelFileError` naming the directory.

    Keep the returned object while its endpoints are in use: the endpoints of a
    garbage-collected SavedModel lose their variables."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:  # TensorFlow raises many types for a foreign or damaged one.
        raise ModelFileError(
            f"{path}: cannot load the SavedModel ({_first_line(error)})"
        ) from None
    missing = [name for name in SAVED_MODEL_ENDPOINTS if not hasattr(loaded, name)]
    if missing:
        raise ModelFileError(
            f"{path}: a SavedModel without the endpoint(s) {', '.join(missing)}; expected one "
            "written by `python -m ladder_vae.export`"
        )
    return loaded


def _saved_class_name(path):
    """The class of the model in the `.keras` archive at `path`, from the archive's config."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("config.json") as file:
            config = json.load(file)
        return str(config["class_name"])
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as error:
        raise ModelFileError(
            f"{path}: cannot load the model (its config.json is unreadable: "
            f"{_first_line(error)})"
        ) from None


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__
