"""The callbacks of a training run, assembled in the one order that works."""

import os

import keras

from callbacks.atomic_backup_and_restore import AtomicBackupAndRestore
from callbacks.best_model_checkpoint import BestModelCheckpoint
from callbacks.chief_state_broadcast import ChiefStateBroadcast
from callbacks.config_text import ConfigText
from callbacks.learning_rate_logger import LearningRateLogger
from callbacks.level_traversal import LevelTraversal
from callbacks.reconstruction_grid import ReconstructionGrid
from callbacks.resumable_csv_logger import ResumableCSVLogger
from callbacks.sample_grid import SampleGrid
from callbacks.terminate_on_non_finite import TerminateOnNonFinite
from ladder_vae.run_dir import RunDir


def for_run(config, run_dir, validation_images=None):
    """The callbacks of a training run of `config` writing `run_dir`, in the order they must
    run (see each one's docstring); `ladder_vae.training.train`'s `make_callbacks`.

    Stopping on `val_loss` with the best weights restored, the learning-rate schedule
    (`ReduceLROnPlateau` unless `config.lr_schedule` is `cosine`, which lives in the optimizer),
    the learning rate in the logs, `history.csv`, TensorBoard scalars, images and config, the
    figures under `samples/`, `best.keras`, the per-epoch backup that a rerun resumes from, and
    under `--strategy multiworker` the copy of the chief's restored state to the other workers.

    Args:
        validation_images: float array [n, H, W, C] in [0, 1] to show beside their
            reconstructions every epoch; None leaves that figure out.
    """
    run = RunDir(run_dir)
    logs_dir, samples_dir = run.logs, run.samples
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        mode="min",
        patience=config.early_stopping_patience,
        min_delta=config.early_stopping_min_delta,
        restore_best_weights=True,
        verbose=1,
    )
    best_checkpoint = BestModelCheckpoint(
        run.best_model, monitor="val_loss", mode="min"
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
        SampleGrid(
            samples_dir,
            log_dir=os.path.join(logs_dir, "samples"),
            every=config.sample_every,
            seed=config.seed,
        ),
        LevelTraversal(
            samples_dir,
            log_dir=os.path.join(logs_dir, "traversals"),
            every=config.sample_every,
            seed=config.seed,
        ),
    ]
    if validation_images is not None:
        figures.append(
            ReconstructionGrid(
                samples_dir,
                validation_images,
                log_dir=os.path.join(logs_dir, "reconstructions"),
                every=config.sample_every,
            )
        )
    # After the restore: the other workers of a multi-worker run take the chief's state.
    broadcast = []
    if config.strategy == "multiworker":
        broadcast.append(ChiefStateBroadcast(stateful))
    return [
        # First: nothing may save the weights of a step that made the loss NaN.
        TerminateOnNonFinite(),
        # Before the loggers, which fix their columns at the first epoch.
        LearningRateLogger(),
        *stateful,
        ResumableCSVLogger(run.history),
        keras.callbacks.TensorBoard(logs_dir, write_graph=False),
        ConfigText(os.path.join(logs_dir, "config"), config.to_dict()),
        *figures,
        # Last: it saves the state the others reached in this epoch, and restores it after
        # their on_train_begin has reset it. `ladder_vae.training` deletes the backup once the
        # final model is saved, not when fit returns.
        AtomicBackupAndRestore(
            run.backup, stateful_callbacks=stateful, delete_checkpoint=False
        ),
        *broadcast,
    ]
