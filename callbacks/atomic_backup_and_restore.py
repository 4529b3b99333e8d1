"""AtomicBackupAndRestore: resume an interrupted run, even one killed in the middle of a backup."""

import json
import logging
import os
import shutil

import keras
import numpy as np

from ladder_vae.atomic import atomic_path
from ladder_vae.config import write_json

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
# The attributes in which Keras's monitoring callbacks (EarlyStopping, ReduceLROnPlateau) and
# BestModelCheckpoint carry state from one epoch to the next; on_train_begin resets them all.
CALLBACK_STATE_ATTRIBUTES = ("best", "wait", "best_epoch", "stopped_epoch", "cooldown_counter")


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """Backs up the training state after every epoch and restores it when `fit` starts again.

    What Keras's `BackupAndRestore` does (model weights with the optimizer's state: its
    iteration count, hence a `LearningRateSchedule`'s position, its moments and its learning
    rate, hence `ReduceLROnPlateau`'s reductions; and the epoch to continue from), plus:

    - the state of `stateful_callbacks` that their `on_train_begin` would reset: the
      attributes in `CALLBACK_STATE_ATTRIBUTES` they have (`EarlyStopping`'s `wait`, `best`,
      `best_epoch`; `ReduceLROnPlateau`'s `wait`, `best`, `cooldown_counter`; a checkpoint's
      `best`) and `EarlyStopping`'s `best_weights`;
    - atomicity: `BackupAndRestore` overwrites its weights file in place, so a kill during
      the write leaves a file that breaks the next start. Here every file is written under a
      new name and `state.json` (written to a temporary name, then renamed) is the single
      commit point: it names the files of the last finished epoch, and older files are deleted
      only after it has been replaced. A kill at any moment leaves either the previous
      epoch's complete backup or the new one.

    Put it last in the callback list: its `on_epoch_end` must see the other callbacks' state
    after their own `on_epoch_end`, and its `on_train_begin` must restore that state after
    their `on_train_begin` has reset it.

    Args:
        backup_dir: directory of the backup, used by nothing else.
        stateful_callbacks: callbacks whose state to keep, at most one per class (their class
            name keys the state).
        delete_checkpoint: delete `backup_dir` when training ends. False leaves it to the caller,
            e.g. to delete only once the final model is safely saved.
    """

    def __init__(self, backup_dir, stateful_callbacks=(), delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError(
                f"`backup_dir` must be a directory. Received: backup_dir={backup_dir!r}"
            )
        names = [type(callback).__name__ for callback in stateful_callbacks]
        if len(set(names)) != len(names):
            raise ValueError(
                "`stateful_callbacks` may hold one callback per class. "
                f"Received: {', '.join(names)}"
            )
        self.backup_dir = backup_dir
        self.stateful_callbacks = list(stateful_callbacks)
        self.delete_checkpoint = delete_checkpoint

    @property
    def state_path(self):
        return os.path.join(self.backup_dir, STATE_FILE)

    def read_state(self):
        """The last committed state (a dict), or None when there is no backup."""
        if not os.path.exists(self.state_path):
            return None
        try:
            with open(self.state_path) as file:
                return json.load(file)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{self.state_path}: unreadable backup ({error}); delete {self.backup_dir} to "
                "start the run over"
            ) from None

    def on_train_begin(self, logs=None):
        # Files written since the last commit (a temporary or a newer epoch) mean nothing yet.
        self.saved_best_weights = {}
        self.restored_epoch = 0
        state = self.read_state()
        self._remove_unreferenced(state)
        if state is None:
            return
        if not self.model.built:
            raise ValueError(
                "AtomicBackupAndRestore needs a built model to restore into. "
                f"Received: an unbuilt {type(self.model).__name__}"
            )
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        for callback in self.stateful_callbacks:
            saved = state["callbacks"].get(type(callback).__name__, {})
            for name, value in saved.get("attributes", {}).items():
                setattr(callback, name, value)
            if saved.get("best_weights"):
                with np.load(os.path.join(self.backup_dir, saved["best_weights"])) as arrays:
                    callback.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays))]
                self.saved_best_weights[type(callback).__name__] = (
                    callback.best_weights,
                    saved["best_weights"],
                )
        self.restored_epoch = state["epoch"]
        # The handshake of Keras's own BackupAndRestore: `fit` starts from `_initial_epoch`.
        self.model._initial_epoch = state["epoch"]
        logger.info("Resuming from the backup of epoch %d in %s", state["epoch"], self.backup_dir)

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        tag = f"epoch_{epoch + 1:04d}"
        weights = f"{tag}.weights.h5"
        with atomic_path(os.path.join(self.backup_dir, weights), ".weights.h5") as temporary:
            self.model.save_weights(temporary, overwrite=True)

        callbacks = {}
        for callback in self.stateful_callbacks:
            name = type(callback).__name__
            saved = {
                "attributes": {
                    attribute: _plain(getattr(callback, attribute))
                    for attribute in CALLBACK_STATE_ATTRIBUTES
                    if hasattr(callback, attribute)
                }
            }
            best_weights = getattr(callback, "best_weights", None)
            if best_weights is not None:
                previous = self.saved_best_weights.get(name)
                # A new list object means new best weights (EarlyStopping replaces the list).
                if previous is None or previous[0] is not best_weights:
                    file = f"{tag}.{name}.best_weights.npz"
                    _save_arrays(os.path.join(self.backup_dir, file), best_weights)
                    self.saved_best_weights[name] = (best_weights, file)
                saved["best_weights"] = self.saved_best_weights[name][1]
            callbacks[name] = saved

        state = {"epoch": epoch + 1, "weights": weights, "callbacks": callbacks}
        write_json(self.state_path, state)
        self._remove_unreferenced(state)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)

    def _remove_unreferenced(self, state):
        """Deletes the files of `backup_dir` that `state` does not name."""
        if not os.path.isdir(self.backup_dir):
            return
        keep = {STATE_FILE}
        if state is not None:
            keep.add(state["weights"])
            keep.update(
                saved["best_weights"]
                for saved in state["callbacks"].values()
                if saved.get("best_weights")
            )
        for file in os.listdir(self.backup_dir):
            path = os.path.join(self.backup_dir, file)
            if file not in keep and os.path.isfile(path):
                os.remove(path)


def _plain(value):
    """A JSON value for a callback attribute: NumPy and backend scalars become Python numbers."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    array = np.asarray(value)
    return array.item() if array.ndim == 0 else array.tolist()


def _save_arrays(path, arrays):
    """`np.savez` through a temporary name and a rename."""
    with atomic_path(path, suffix=".npz") as temporary:
        np.savez(temporary, *arrays)
