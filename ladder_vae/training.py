"""One training run, from a `TrainConfig` to a run directory."""

import dataclasses
import logging
import platform
import shutil

import keras
import numpy as np
import tensorflow as tf

from ladder_vae import data as data_lib
from ladder_vae import distribute, preflight, resources, saving
from ladder_vae import run_dir as run_dir_lib
from ladder_vae.atomic import remove_stale_temporaries
from ladder_vae.config import write_json
from ladder_vae.distribute.strategy import make_strategy
from ladder_vae.export import export_model, export_run
from ladder_vae.model import LadderVAE
from ladder_vae.run_lock import RunLock

logger = logging.getLogger(__name__)

# Validation images shown beside their reconstructions every epoch.
NUM_RECONSTRUCTION_IMAGES = 32


def library_versions():
    import tensorflow_datasets as tfds

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_datasets": tfds.__version__,
        "numpy": np.__version__,
    }


def learning_rate_schedule(config, steps_per_epoch=None):
    """The learning rate of `config`: a float, or for `--lr-schedule cosine` a schedule.

    cosine: linear warm-up from 0 to `learning_rate` over `warmup_epochs`, then cosine decay to
    0 at the last of `epochs` (Keras's `CosineDecay` with `warmup_target`), counted in steps,
    `steps_per_epoch` per epoch. The optimizer's iteration count drives it, so a resumed run
    (whose optimizer state is restored) continues the schedule where it stopped.
    """
    if config.lr_schedule != "cosine":
        return config.learning_rate
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


def train(config, make_callbacks, data=None, verbose="auto", command=None):
    """Checks `config` and `data` (`preflight.check_run`), then trains: `train_checked`.

    `data`: an `ImageData` in memory to train on instead of the data `config` names."""
    data = preflight.check_run(config, data)
    return train_checked(config, data, make_callbacks, verbose=verbose, command=command)


def train_checked(config, data, make_callbacks, verbose="auto", command=None):
    """Trains a model as `config` says and fills its run directory (`ladder_vae.run_dir`).

    `config` has passed `preflight.check_run`, which returned `data` (None for TFDS data, which
    is loaded and checked here, after TensorFlow has started). Calling it again with the same
    run directory resumes an unfinished run from its last finished epoch; one stopped after
    saving `model.keras` is finished (backup removed, missing export written) without training.
    `run.lock` is held while a process trains there: a second training on the same directory
    fails at once with `RunDirLocked` (a `ConfigError`) instead of corrupting the run.

    Args:
        config: the checked `TrainConfig`; `config.run_dir` is set.
        data: the `ImageData` that `preflight.check_run` loaded, or None.
        make_callbacks: `make_callbacks(config, run_dir, validation_images)` gives the Keras
            callbacks of the run; `callbacks.for_run` gives this project's (early stopping,
            schedule, logs, figures, checkpoints and the backup a rerun resumes from).
        verbose: `fit`'s verbosity.
        command: the command line to record in `config.json`.

    Returns:
        (model, history): the trained model and Keras's `History` (None when the run only
        needed finishing).

    Raises:
        ConfigError, DataError: bad TFDS data, or settings that differ between workers.
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
    cluster = distribute.check_cluster(config)
    strategy = make_strategy(config.strategy, cluster, config.peer_timeout)
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
            preflight.check_loaded_data(config, data)
        # Under multiworker every worker checks that the others run the same settings before
        # the run directory is touched.
        distribute.check_same_settings(
            strategy, cluster, distribute.shared_settings(config, data)
        )
        run_dir_lib.create_run_dir(config.run_dir)
        run = run_dir_lib.RunDir(config.run_dir)
        # Held through training, saving and export; the kernel drops it if the process dies.
        with RunLock(run.path):
            # What writers killed in an earlier attempt left; no live process owns it now.
            remove_stale_temporaries(run.path)
            try:
                if run.finished_training():
                    return _finish_locked(config, run)
                return _train_locked(
                    config, run, data, strategy, make_callbacks, verbose, command
                )
            except Exception as error:  # MemoryError included.
                shortage = resources.describe(error, config, run)
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


def _finish_locked(config, run):
    """Finishes a run that was stopped after saving `model.keras`: removes its backup and
    writes its missing export. Returns (the final model, None): no epoch is trained."""
    logger.info(
        "The run in %s had finished training (%s); finishing it: %s",
        run.path,
        run_dir_lib.FINAL_MODEL_FILE,
        ", ".join(run.left_to_finish(export=config.export)),
    )
    shutil.rmtree(run.backup, ignore_errors=True)
    model = saving.load_model(run.final_model)
    if config.export:
        export_model(model, run.saved_model)
    return model, None


def _train_locked(config, run, data, strategy, make_callbacks, verbose, command):
    """The part of `train_checked` that writes the run directory, run while holding its lock."""
    write_json(
        run.config,
        {
            "config": config.to_dict(),
            "data": data.source,
            "image_shape": list(data.image_shape),
            "versions": library_versions(),
            "command": list(command) if command is not None else None,
        },
    )
    logger.info("Run directory: %s", run.path)

    train_dataset = distribute.shard_by_data(
        data_lib.make_dataset(
            data.train_images, config.batch_size, shuffle=True, seed=config.seed,
            drop_remainder=True,
        )
    )
    steps_per_epoch = int(train_dataset.cardinality())
    model = build_model(config, data.image_shape, strategy, steps_per_epoch=steps_per_epoch)
    # Validation batches in a fixed random order: test files group digits by writer, so batches
    # taken in file order are not samples of q(z) and their MMD read too high.
    val_order = np.random.default_rng(config.seed).permutation(len(data.val_images))
    val_dataset = distribute.shard_by_data(
        data_lib.make_dataset(data.val_images[val_order], config.batch_size)
    )
    validation_images = data.val_images[:NUM_RECONSTRUCTION_IMAGES].astype(np.float32) / 255.0
    history = model.fit(
        train_dataset,
        validation_data=val_dataset,
        epochs=config.epochs,
        callbacks=make_callbacks(config, run.path, validation_images),
        shuffle=False,
        verbose=verbose,
    )
    saving.save_model_atomically(model, run.final_model)
    # Only now: a kill before this point resumes from the backup, one after it finds model.keras.
    shutil.rmtree(run.backup, ignore_errors=True)
    if config.export:
        # From the saved file, not the model in memory: the export then matches model.keras
        # exactly and holds no tf.distribute variables. Writes RUN_DIR/saved_model.
        export_run(run.path)
    return model, history
