"""One training run, from a `TrainConfig` to a run directory."""

import dataclasses
import datetime
import logging
import os
import platform
import shutil
import sys

import keras
import numpy as np
import tensorflow as tf

from ladder_vae import data as data_lib
from ladder_vae import distribute, preflight, resources
from ladder_vae.atomic import remove_stale_temporaries
from ladder_vae.config import ConfigError, write_json
from ladder_vae.distribute.strategy import make_strategy
from ladder_vae.export import SAVED_MODEL_DIR, export_model, export_run, load_keras_model
from ladder_vae.model import LadderVAE
from ladder_vae.run_lock import RunLock

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
BEST_MODEL_FILE = "best.keras"
FINAL_MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
BACKUP_DIR = "backup"
LOGS_DIR = "logs"
SAMPLES_DIR = "samples"
# Validation images shown beside their reconstructions every epoch.
NUM_RECONSTRUCTION_IMAGES = 32


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


def learning_rate_schedule(config, steps_per_epoch=None):
    """The learning rate of `config`: a float, or for `--lr-schedule cosine` a schedule.

    cosine: linear warm-up from 0 to `learning_rate` over `warmup_epochs`, then cosine decay to
    0 at the last of `epochs` (Keras's `CosineDecay` with `warmup_target`), counted in steps,
    `steps_per_epoch` per epoch. The optimizer's iteration count drives it, so a resumed run
    (whose optimizer state is restored) continues the schedule where it stopped.
    """
    if config.lr_schedule != "cosine":
        return config.learning_rate
    if config.warmup_epochs >= config.epochs:
        raise ConfigError(
            f"--warmup-epochs {config.warmup_epochs} leaves no epoch for the cosine decay of "
            f"--epochs {config.epochs}; use fewer warm-up epochs"
        )
    if not steps_per_epoch:
        raise ValueError(
            "`steps_per_epoch` is needed by the cosine schedule. "
            f"Received: steps_per_epoch={steps_per_epoch}"
        )
    warmup_steps = config.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else config.learning_rate,
        decay_steps=(config.epochs - config.warmup_epochs) * steps_per_epoch,
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def build_model(config, image_shape, strategy=None, steps_per_epoch=None):
    """A compiled, built `LadderVAE` for `config`, its variables placed by `strategy`.

    `steps_per_epoch` (training batches per epoch) is needed by `--lr-schedule cosine`.

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
                optimizer=keras.optimizers.Adam(
                    learning_rate=learning_rate_schedule(config, steps_per_epoch)
                ),
                jit_compile=config.jit_compile,
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return model


def build_callbacks(config, run_dir, validation_images=None):
    """The callbacks of a run, in the order they must run (see each one's docstring).

    Stopping on `val_loss` with the best weights restored, the learning-rate schedule
    (`ReduceLROnPlateau` unless `config.lr_schedule` is `cosine`, which lives in the optimizer),
    the learning rate in the logs, `history.csv`, TensorBoard scalars, images and config, the
    figures under `samples/`, `best.keras`, the per-epoch backup that a rerun resumes from, and
    under `--strategy multiworker` the copy of the chief's restored state to the other workers.

    Args:
        validation_images: float array [n, H, W, C] in [0, 1] to show beside their
            reconstructions every epoch; None leaves that figure out.
    """
    import callbacks as lvae_callbacks

    logs_dir = os.path.join(run_dir, LOGS_DIR)
    samples_dir = os.path.join(run_dir, SAMPLES_DIR)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        mode="min",
        patience=config.early_stopping_patience,
        min_delta=config.early_stopping_min_delta,
        restore_best_weights=True,
        verbose=1,
    )
    best_checkpoint = lvae_callbacks.BestModelCheckpoint(
        os.path.join(run_dir, BEST_MODEL_FILE), monitor="val_loss", mode="min"
    )
    stateful = [early_stopping, best_checkpoint]
    if config.lr_schedule == "plateau":
        stateful.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                mode="min",
                factor=config.lr_factor,
                patience=config.lr_patience,
                # What counts as an improvement is the same as for early stopping.
                min_delta=config.early_stopping_min_delta,
                min_lr=config.min_learning_rate,
                verbose=1,
            )
        )
    figures = [
        lvae_callbacks.SampleGrid(
            samples_dir,
            log_dir=os.path.join(logs_dir, "samples"),
            every=config.sample_every,
            seed=config.seed,
        ),
        lvae_callbacks.LevelTraversal(
            samples_dir,
            log_dir=os.path.join(logs_dir, "traversals"),
            every=config.sample_every,
            seed=config.seed,
        ),
    ]
    if validation_images is not None:
        figures.append(
            lvae_callbacks.ReconstructionGrid(
                samples_dir,
                validation_images,
                log_dir=os.path.join(logs_dir, "reconstructions"),
                every=config.sample_every,
            )
        )
    # After the restore: the other workers of a multi-worker run take the chief's state.
    broadcast = []
    if config.strategy == "multiworker":
        broadcast.append(lvae_callbacks.ChiefStateBroadcast(stateful))
    return [
        # First: nothing may save the weights of a step that made the loss NaN.
        lvae_callbacks.TerminateOnNonFinite(),
        # Before the loggers, which fix their columns at the first epoch.
        lvae_callbacks.LearningRateLogger(),
        *stateful,
        lvae_callbacks.ResumableCSVLogger(os.path.join(run_dir, HISTORY_FILE)),
        keras.callbacks.TensorBoard(logs_dir, write_graph=False),
        lvae_callbacks.ConfigText(os.path.join(logs_dir, "config"), config.to_dict()),
        *figures,
        # Last: it saves the state the others reached in this epoch, and restores it after
        # their on_train_begin has reset it. The backup is deleted by `train` once the final
        # model is saved, not when fit returns.
        lvae_callbacks.AtomicBackupAndRestore(
            os.path.join(run_dir, BACKUP_DIR), stateful_callbacks=stateful, delete_checkpoint=False
        ),
        *broadcast,
    ]


def train(config, verbose="auto", data=None):
    """Trains a model as `config` says and fills its run directory.

    The run directory holds `config.json` (the resolved config, the data source and library
    versions), `logs/` for TensorBoard, `samples/`, `best.keras` (lowest validation loss),
    `model.keras` (the final model: the best epoch's weights, which early stopping restores),
    `history.csv`, and `backup/` while a run is unfinished. Calling `train` again with the same
    run directory resumes an unfinished run from its last finished epoch; one stopped after
    saving `model.keras` is finished (backup removed, missing export written) without training;
    a finished run is refused.
    `run.lock` is locked while a process trains there: a second training on the same directory
    fails at once with `RunDirLocked` (a `ConfigError`) instead of corrupting the run.

    Args:
        config: the `TrainConfig`.
        verbose: `fit`'s verbosity.
        data: the `ImageData` to train on, as `preflight.check_run` returns it (`train.py` loads
            IDX data there, before TensorFlow starts); None loads the data that `config` names.

    Returns:
        (model, history): the trained model and Keras's `History` (None when the run only
        needed finishing).

    Raises:
        ConfigError, DataError: bad settings or data, found before anything is written.
        NonFiniteLossError: a loss became NaN or Inf; `best.keras` and `backup/` hold the last
            good state.
        resources.ResourceExhausted: memory or disk space ran out; the message says what to
            change, and the same command resumes once the cause is gone.
        PeerLostError: under `--strategy multiworker`, another worker stopped answering for
            `config.peer_timeout` seconds; the chief's `backup/` holds the last finished epoch.

    Under `--strategy multiworker` with `TF_CONFIG`, only the chief writes `config.run_dir` (and
    takes its lock); the other workers write into a temporary directory, removed when they stop,
    and start from the chief's state (see `ladder_vae.distribute`).
    """
    config.validate()
    cluster = distribute.check_cluster(config)
    strategy = make_strategy(config.strategy, cluster, config.peer_timeout)
    config.run_dir = config.run_dir or default_run_dir()
    worker_dir = None
    if cluster is not None and not cluster.is_chief:
        # Runs every step and callback of the chief (saving may take part in collectives), into
        # a directory of its own that goes when it stops; the chief's run directory is the run.
        worker_dir = distribute.make_worker_dir(cluster)
        logger.info(
            "%s is not the chief: the chief writes the run; this worker writes into %s, "
            "removed when it stops",
            cluster.task_name,
            worker_dir,
        )
        config = dataclasses.replace(config, run_dir=worker_dir, export=False)
    try:
        keras.utils.set_random_seed(config.seed)
        if data is None:
            data = data_lib.load_data(config.dataset, config.data_dir, config.tfds_data_dir)
        # All checks pass before the run directory is touched, so bad input leaves nothing
        # behind; under multiworker every worker checks that the others run the same settings.
        preflight.check_data(config, data)
        preflight.check_run_dir(config.run_dir, export=config.export)
        preflight.check_resume(config, data)
        distribute.check_same_settings(
            strategy, cluster, distribute.shared_settings(config, data)
        )
        prepare_run_dir(config.run_dir)
        # Held through training, saving and export; the kernel drops it if the process dies.
        with RunLock(config.run_dir):
            # What writers killed in an earlier attempt left; no live process owns it now.
            remove_stale_temporaries(config.run_dir)
            try:
                if os.path.exists(os.path.join(config.run_dir, FINAL_MODEL_FILE)):
                    return _finish_locked(config)
                return _train_locked(config, data, strategy, verbose)
            except Exception as error:  # MemoryError included.
                shortage = resources.describe(
                    error, config, os.path.join(config.run_dir, BACKUP_DIR)
                )
                if shortage is None:
                    raise
                raise shortage from None
    except tf.errors.OpError as error:
        if cluster is None or not isinstance(error, distribute.peer_errors()):
            raise
        raise distribute.PeerLostError(
            distribute.lost_peer_message(error, cluster)
        ) from None
    finally:
        if worker_dir is not None:
            distribute.remove_worker_dir(worker_dir)


def _finish_locked(config):
    """Finishes a run that was stopped after saving `model.keras`: removes its backup and
    writes its missing export. Returns (the final model, None): no epoch is trained."""
    left = preflight.left_to_finish(config.run_dir, export=config.export)
    logger.info(
        "The run in %s had finished training (%s); finishing it: %s",
        config.run_dir,
        FINAL_MODEL_FILE,
        ", ".join(left),
    )
    shutil.rmtree(os.path.join(config.run_dir, BACKUP_DIR), ignore_errors=True)
    model = load_keras_model(os.path.join(config.run_dir, FINAL_MODEL_FILE))
    if config.export:
        export_model(model, os.path.join(config.run_dir, SAVED_MODEL_DIR))
    return model, None


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

    train_dataset = distribute.shard_by_data(
        data_lib.make_dataset(
            data.train_images, config.batch_size, shuffle=True, seed=config.seed,
            drop_remainder=True,
        )
    )
    steps_per_epoch = int(train_dataset.cardinality())
    model = build_model(config, data.image_shape, strategy, steps_per_epoch=steps_per_epoch)
    # Validation batches in a fixed random order: test files group digits by writer, so batches
    # taken in file order are not samples of q(z) and their MMD read ~3x too high (measured).
    val_order = np.random.default_rng(config.seed).permutation(len(data.val_images))
    val_dataset = distribute.shard_by_data(
        data_lib.make_dataset(data.val_images[val_order], config.batch_size)
    )
    validation_images = data.val_images[:NUM_RECONSTRUCTION_IMAGES].astype(np.float32) / 255.0
    history = model.fit(
        train_dataset,
        validation_data=val_dataset,
        epochs=config.epochs,
        callbacks=build_callbacks(config, config.run_dir, validation_images=validation_images),
        shuffle=False,
        verbose=verbose,
    )
    from callbacks import save_model_atomically

    save_model_atomically(model, os.path.join(config.run_dir, FINAL_MODEL_FILE))
    # Only now: a kill before this point resumes from the backup, one after it finds model.keras.
    shutil.rmtree(os.path.join(config.run_dir, BACKUP_DIR), ignore_errors=True)
    if config.export:
        # From the saved file, not the model in memory: the export then matches model.keras
        # exactly and holds no tf.distribute variables. Writes RUN_DIR/saved_model.
        export_run(config.run_dir)
    return model, history
