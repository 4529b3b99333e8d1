"""What `evaluate.py` is pointed at: a run directory, a `.keras` file or a SavedModel, and its data.

Every source becomes one interface, `VAE`, with numpy in and numpy out: `encode` gives the
posterior means (and scales where the source has them) of all levels concatenated, `decode` takes
such codes. The `.keras` model gives scales; the SavedModel's `encode` gives only means.
"""

import json
import os
import zipfile

import numpy as np

from ladder_vae import data as data_lib
from ladder_vae import run_dir as run_dir_lib
from ladder_vae import saving

# TensorFlow is imported in the functions that use it: `check_source` and what it calls run
# before TensorFlow starts, so that evaluate.py reports bad input at once, in one line.

# Which file a run directory is evaluated from, in order of preference.
CHECKPOINTS = {
    "final": run_dir_lib.FINAL_MODEL_FILE,
    "best": run_dir_lib.BEST_MODEL_FILE,
    "saved_model": run_dir_lib.SAVED_MODEL_DIR,
}


class EvaluationError(ValueError):
    """A path, model or data that cannot be evaluated; its message is one line naming it."""


class VAE:
    """A trained ladder VAE seen through numpy: encode and decode in batches.

    Attributes:
        latent_dims: tuple, the code size of each level, lowest first.
        image_shape: tuple (H, W, C).
        has_scales: whether `encode` returns posterior scales.
        mmd_per_level: how the model's MMD term was computed (None where unknown).
        description: where the model came from, for the report.
    """

    latent_dims = ()
    image_shape = ()
    has_scales = False
    mmd_per_level = None
    description = ""

    def encode(self, images, batch_size=500):
        """Posterior means [n, D] and scales [n, D] (None without them) of images [n, H, W, C]."""
        raise NotImplementedError

    def decode(self, codes, batch_size=500):
        """Images [n, H, W, C] in [0, 1] from codes [n, D], levels concatenated lowest first."""
        raise NotImplementedError

    def split_levels(self, codes):
        """Codes [n, D] to a list of one array [n, latent_dims[i]] per level."""
        return np.split(codes, np.cumsum(self.latent_dims)[:-1], axis=-1)


def batched(function, inputs, batch_size):
    """Applies a TensorFlow function to numpy `inputs` in batches.

    Returns:
        A tuple with one numpy array per output of `function`, the batches concatenated.
    """
    import tensorflow as tf

    inputs = np.asarray(inputs, np.float32)
    outputs = []
    for start in range(0, len(inputs), batch_size):
        result = function(tf.constant(inputs[start : start + batch_size]))
        result = result if isinstance(result, (tuple, list)) else (result,)
        outputs.append([np.asarray(part) for part in result])
    return tuple(np.concatenate(parts, axis=0) for parts in zip(*outputs))


class KerasVAE(VAE):
    """A `LadderVAE` from a `.keras` file (or in memory)."""

    has_scales = True

    def __init__(self, model, description="LadderVAE in memory"):
        import tensorflow as tf

        self.model = model
        self.mmd_per_level = bool(model.mmd_per_level)
        self.latent_dims = tuple(int(dim) for dim in model.latent_dims)
        self.image_shape = tuple(int(size) for size in model.image_shape)
        self.description = description
        image_spec = tf.TensorSpec((None, *self.image_shape), tf.float32)
        code_spec = tf.TensorSpec((None, sum(self.latent_dims)), tf.float32)
        # One graph per function for any batch size; eager Keras calls cost ~2x more here.
        self._encode = tf.function(self._encode_graph, input_signature=[image_spec])
        self._decode = tf.function(self._decode_graph, input_signature=[code_spec])

    def _encode_graph(self, images):
        import tensorflow as tf

        posteriors = self.model.encode(images, training=False)
        means = tf.concat([tf.cast(mean, tf.float32) for mean, _ in posteriors], axis=-1)
        scales = tf.concat([tf.cast(scale, tf.float32) for _, scale in posteriors], axis=-1)
        return means, scales

    def _decode_graph(self, codes):
        import tensorflow as tf

        levels = tf.split(codes, self.latent_dims, axis=-1)
        return tf.cast(self.model.decode(levels, training=False), tf.float32)

    def encode(self, images, batch_size=500):
        return batched(self._encode, np.asarray(images, np.float32), batch_size)

    def decode(self, codes, batch_size=500):
        return batched(self._decode, np.asarray(codes, np.float32), batch_size)[0]


class SavedModelVAE(VAE):
    """The SavedModel that `ladder_vae.export` writes (endpoints encode, decode, latent_dims)."""

    def __init__(self, path):
        import tensorflow as tf

        try:
            # Kept on the instance: the endpoints of a garbage-collected SavedModel lose
            # their variables.
            self.loaded = tf.saved_model.load(path)
        except Exception as error:  # TensorFlow raises many types for a foreign directory.
            raise EvaluationError(
                f"{path}: cannot load the SavedModel ({_first_line(error)})"
            ) from None
        missing = [
            name for name in ("encode", "decode", "latent_dims") if not hasattr(self.loaded, name)
        ]
        if missing:
            raise EvaluationError(
                f"{path}: a SavedModel without the endpoint(s) {', '.join(missing)}; "
                "expected one written by `python -m ladder_vae.export`"
            )
        latent_dims = self.loaded.latent_dims
        latent_dims = latent_dims() if callable(latent_dims) else latent_dims
        self.latent_dims = tuple(int(dim) for dim in np.asarray(latent_dims).reshape(-1))
        probe = self.loaded.decode(tf.zeros((1, sum(self.latent_dims)), tf.float32))
        self.image_shape = tuple(int(size) for size in probe.shape[1:])
        self.description = f"SavedModel {path}"

    def encode(self, images, batch_size=500):
        (means,) = batched(self.loaded.encode, np.asarray(images, np.float32), batch_size)
        return means, None

    def decode(self, codes, batch_size=500):
        return batched(self.loaded.decode, np.asarray(codes, np.float32), batch_size)[0]


def _first_line(error):
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


def load_vae(model_path):
    """A `VAE` for a `.keras` file or a SavedModel directory (as `resolve` returns them)."""
    if run_dir_lib.is_saved_model(model_path):
        return SavedModelVAE(model_path)
    try:
        model = saving.load_model(model_path)
    except saving.ModelFileError as error:
        raise EvaluationError(str(error)) from None
    return KerasVAE(model, description=model_path)


def read_run_config(run_dir):
    """The run's `config.json` as a dict, or {} when there is none."""
    path = run_dir_lib.RunDir(run_dir).config
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as file:
            config = json.load(file)
    except (OSError, ValueError) as error:
        raise EvaluationError(f"{path}: cannot read it ({_first_line(error)})") from None
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
    import csv

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
