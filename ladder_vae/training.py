"""One training run, from a `TrainConfig` to a run directory."""

import datetime
import logging
import os
import platform
import sys

import keras
import numpy as np
import tensorflow as tf

from ladder_vae import data as data_lib
from ladder_vae import preflight
from ladder_vae.config import ConfigError, write_json
from ladder_vae.export import export_run
from ladder_vae.model import LadderVAE
from ladder_vae.run_lock import RunLock

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
BEST_MODEL_FILE = "best.keras"
FINAL_MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"

# The strategies `make_strategy` has created in this process, by name.
_STRATEGIES = {}


def default_run_dir(now=None):
    """`runs/<timestamp>`, relative to the working directory."""
    now = now or datetime.datetime.now()
    return os.path.join("runs", now.strftime("%Y%m%d-%H%M%S"))


def library_versions():
    import tensorflow_datasets as tfds

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_datasets": tfds.__version__,
        "numpy": np.__version__,
    }


def prepare_run_dir(run_dir):
    """Creates `run_dir`, or says clearly why it cannot be used."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"--run-dir {run_dir}: exists and is not a directory")
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--run-dir {run_dir}: cannot create it ({error.strerror})") from None
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"--run-dir {run_dir}: not writable")


def make_strategy(name):
    """The `tf.distribute` strategy that `--strategy` names.

    `default`: the current strategy (one device, unless the caller entered a scope).
    `mirrored`: synchronous data parallelism over this machine's GPUs; without GPUs, over its
    logical CPU devices (one, unless `tf.config.set_logical_device_configuration` split it).
    `multiworker`: the same over the workers that `TF_CONFIG` lists (this machine alone without
    it). `--batch-size` stays the global batch; each step splits it across the replicas.
    Create the strategy before other TensorFlow work: `multiworker` must be created first.

    A process gets one strategy of each kind, reused by later calls: a second
    `MirroredStrategy` in the same process reuses the first one's collective instance keys, and
    its first all-reduce aborts with "Shape mismatch in the collective instance"
    (tensorflow/tensorflow#62790; measured here with TF 2.21 on two logical CPUs).
    """
    if name not in ("mirrored", "multiworker"):
        return tf.distribute.get_strategy()
    if name not in _STRATEGIES:
        if name == "mirrored":
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            _STRATEGIES[name] = tf.distribute.MirroredStrategy([device.name for device in devices])
        else:
            _STRATEGIES[name] = tf.distribute.MultiWorkerMirroredStrategy()
    return _STRATEGIES[name]


def build_model(config, image_shape, strategy=None):
    """A compiled, built `LadderVAE` for `config`, its variables placed by `strategy`.

    With `config.mixed_precision` the layers compute in float16 (the output layer, the losses and
    SSIM stay float32) and `compile` wraps the optimizer in a loss-scaling one; the global dtype
    policy is restored afterwards, since each layer keeps the policy it was built with.
    """
    strategy = strategy or tf.distribute.get_strategy()
    previous_policy = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():
            model = LadderVAE(**config.model_kwargs(image_shape))
            model.build((None, *image_shape))
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                jit_compile=config.jit_compile,
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return model


def build_callbacks(config, run_dir):
    """The callbacks of a run: stopping, LR schedule, logging, samples, checkpoints, resume."""
    from callbacks import SampleGrid

    return [
        keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            mode="min",
            patience=config.early_stopping_patience,
            min_delta=config.early_stopping_min_delta,
            restore_best_weights=True,
            verbose=1,
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            mode="min",
            factor=config.lr_factor,
            patience=config.lr_patience,
            min_lr=config.min_learning_rate,
            verbose=1,
        ),
        keras.callbacks.ModelCheckpoint(
            os.path.join(run_dir, BEST_MODEL_FILE),
            monitor="val_loss",
            mode="min",
            save_best_only=True,
        ),
        keras.callbacks.CSVLogger(os.path.join(run_dir, HISTORY_FILE), append=True),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")),
        SampleGrid(os.path.join(run_dir, "samples"), every=config.sample_every, seed=config.seed),
    ]


def train(config, verbose="auto", data=None):
    """Trains a model as `config` says and fills its run directory.

    The run directory holds `config.json` (the resolved config, the data source and library
    versions), `logs/` for TensorBoard, `samples/`, `best.keras` (lowest validation loss),
    `model.keras` (the final weights), `history.csv`, and `backup/` while a run is unfinished.
    `run.lock` is locked while a process trains there: a second training on the same directory
    fails at once with `RunDirLocked` (a `ConfigError`) instead of corrupting the run.

    Args:
        config: the `TrainConfig`.
        verbose: `fit`'s verbosity.
        data: the `ImageData` to train on, as `preflight.check_run` returns it (`train.py` loads
            IDX data there, before TensorFlow starts); None loads the data that `config` names.

    Returns:
        (model, history): the trained model and Keras's `History`.

    Raises:
        ConfigError, DataError: bad settings or data, found before anything is written.
    """
    config.validate()
    strategy = make_strategy(config.strategy)
    config.run_dir = config.run_dir or default_run_dir()
    keras.utils.set_random_seed(config.seed)
    if data is None:
        data = data_lib.load_data(config.dataset, config.data_dir, config.tfds_data_dir)
    # All checks pass before the run directory is touched, so bad input leaves nothing behind.
    preflight.check_data(config, data)
    preflight.check_run_dir(config.run_dir)
    preflight.check_resume(config, data)
    prepare_run_dir(config.run_dir)
    # Held through training, saving and export; the kernel drops it if the process dies.
    with RunLock(config.run_dir):
        return _train_locked(config, data, strategy, verbose)


def _train_locked(config, data, strategy, verbose):
    """The part of `train` that writes the run directory, run while holding its lock."""
    write_json(
        os.path.join(config.run_dir, CONFIG_FILE),
        {
            "config": config.to_dict(),
            "data": data.source,
            "image_shape": list(data.image_shape),
            "versions": library_versions(),
            "command": sys.argv,
        },
    )
    logger.info("Run directory: %s", config.run_dir)

    model = build_model(config, data.image_shape, strategy)
    train_dataset = data_lib.make_dataset(
        data.train_images, config.batch_size, shuffle=True, seed=config.seed, drop_remainder=True
    )
    val_dataset = data_lib.make_dataset(data.val_images, config.batch_size)
    history = model.fit(
        train_dataset,
        validation_data=val_dataset,
        epochs=config.epochs,
        callbacks=build_callbacks(config, config.run_dir),
        shuffle=False,
        verbose=verbose,
    )
    model.save(os.path.join(config.run_dir, FINAL_MODEL_FILE))
    if config.export:
        # From the saved file, not the model in memory: the export then matches model.keras
        # exactly and holds no tf.distribute variables. Writes RUN_DIR/saved_model.
        export_run(config.run_dir)
    return model, history
