"""What `evaluate.py` is pointed at: a run directory, a `.keras` file or a SavedModel; the run's
record, data and history.

Nothing here imports TensorFlow (TFDS data aside, which TFDS loads with it): `check_source`
runs before TensorFlow starts, so that evaluate.py reports bad input at once, in one line. The
model itself is loaded by `numpy_vae.load_vae`.
"""

import csv
import json
import os
import zipfile

import numpy as np

from ladder_vae import data as data_lib
from ladder_vae import run_dir as run_dir_lib

# Which file a run directory is evaluated from, in order of preference.
CHECKPOINTS = {
    "final": run_dir_lib.FINAL_MODEL_FILE,
    "best": run_dir_lib.BEST_MODEL_FILE,
    "saved_model": run_dir_lib.SAVED_MODEL_DIR,
}


class EvaluationError(ValueError):
    """A path, model or data that cannot be evaluated; its message is one line naming it."""


def first_line(error):
    """The first line of an exception's message (its type's name when it has none), for
    errors that must fit on one line."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def resolve(path, checkpoint="auto"):
    """Which model file to evaluate, and the run directory it belongs to.

    Args:
        path: a run directory, a `.keras` file or a SavedModel directory.
        checkpoint: for a run directory, `final` (model.keras), `best` (best.keras),
            `saved_model`, or `auto`: the first of those that exists.

    Returns:
        (model_path, run_dir): run_dir is the directory whose `config.json` and `history.csv`
        describe the model (it may lack them), and under which `eval/` is written.
    """
    if not os.path.exists(path):
        raise EvaluationError(f"{path}: no such file or directory")
    path = os.path.abspath(path)
    if run_dir_lib.is_saved_model(path):
        return path, os.path.dirname(path)
    if os.path.isfile(path):
        if not path.endswith(".keras"):
            raise EvaluationError(
                f"{path}: not a run directory, .keras file or SavedModel directory"
            )
        return _checked_keras_file(path), os.path.dirname(path)
    names = list(CHECKPOINTS) if checkpoint == "auto" else [checkpoint]
    for name in names:
        candidate = os.path.join(path, CHECKPOINTS[name])
        if name == "saved_model" and run_dir_lib.is_saved_model(candidate):
            return candidate, path
        if name != "saved_model" and os.path.isfile(candidate):
            return _checked_keras_file(candidate), path
    wanted = [CHECKPOINTS[name] + ("/" if name == "saved_model" else "") for name in names]
    wanted = " or ".join([", ".join(wanted[:-1]), wanted[-1]] if len(wanted) > 1 else wanted)
    hint = (
        " (an unfinished run? its backup/ holds no model yet)"
        if os.path.isdir(run_dir_lib.RunDir(path).backup)
        else ""
    )
    raise EvaluationError(f"{path}: not a run directory: no {wanted} in it{hint}")


def _checked_keras_file(path):
    """`path`, unless it cannot be a `.keras` file (those are zip archives)."""
    if not zipfile.is_zipfile(path):
        raise EvaluationError(f"{path}: not a .keras file (a .keras file is a zip archive)")
    return path


def check_source(path, checkpoint="auto", data_dir=None, tfds_data_dir=None, dataset=None):
    """What `evaluate_run` would reject in `path` and its data, found without TensorFlow.

    The model path (`resolve`), the run's config.json, and IDX data (`data_dir` or the run's
    record, read here in full; TFDS data is checked where it is loaded). Raises what
    `evaluate_run` would raise for them: `EvaluationError` or `ladder_vae.data.DataError`.
    """
    _, run_dir = resolve(path, checkpoint)
    run_config = read_run_config(run_dir)
    kind = (run_config.get("data") or {}).get("kind")
    if data_dir is not None or kind in ("bundled", "idx"):
        load_eval_data(run_config, data_dir, tfds_data_dir, dataset)


def read_run_config(run_dir):
    """The run's `config.json` as a dict, or {} when there is none."""
    path = run_dir_lib.RunDir(run_dir).config
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as file:
            config = json.load(file)
    except (OSError, ValueError) as error:
        raise EvaluationError(f"{path}: cannot read it ({first_line(error)})") from None
    if not isinstance(config, dict):
        raise EvaluationError(f"{path}: not a JSON object")
    return config


def load_eval_data(run_config, data_dir=None, tfds_data_dir=None, dataset=None):
    """The images a run was trained and validated on, as a `ladder_vae.data.ImageData`.

    `data_dir` (IDX files) overrides the run's record. Otherwise `config.json`'s `data` says:
    `bundled` -> the digits in the package, `idx` -> its `path`, `tfds` -> TFDS's `dataset`
    (prepared copy only: evaluation never downloads). Without a record (a bare SavedModel):
    `load_data(dataset or "mnist")`, which falls back to the bundled digits offline.
    """
    record = run_config.get("data") or {}
    dataset = dataset or record.get("dataset") or "mnist"
    tfds_data_dir = tfds_data_dir or (run_config.get("config") or {}).get("tfds_data_dir")
    if data_dir is not None:
        return data_lib.load_data(dataset, data_dir=data_dir)
    kind = record.get("kind")
    if kind == "bundled":
        data = data_lib.load_idx_dir(data_lib.BUNDLED_MNIST_DIR)
        data.source.update(kind="bundled", dataset=dataset)
        return data
    if kind == "idx":
        path = record.get("path")
        if not path or not os.path.isdir(path):
            raise EvaluationError(
                f"the run was trained on IDX files in {path}, which is gone; pass --data-dir"
            )
        return data_lib.load_data(dataset, data_dir=path)
    if kind == "tfds":
        name = record.get("name", dataset)
        if not data_lib.tfds_prepared(name, tfds_data_dir):
            raise EvaluationError(
                f"the run was trained on TFDS {name}, which is not prepared under "
                f"{tfds_data_dir or '$TFDS_DATA_DIR or ~/tensorflow_datasets'}; pass "
                "--tfds-data-dir or --data-dir"
            )
        data = data_lib.load_tfds(name, tfds_data_dir)
        data.source["dataset"] = dataset
        return data
    return data_lib.load_data(dataset, tfds_data_dir=tfds_data_dir)


def read_history(run_dir):
    """The run's `history.csv` as {column: float array}, or None without one."""
    path = run_dir_lib.RunDir(run_dir).history
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        return None
    columns = {}
    for key in rows[0]:
        try:
            columns[key] = np.array([float(row[key]) for row in rows])
        except (TypeError, ValueError):
            continue  # A column that is not numeric (none today) is not plotted.
    return columns
