"""AtomicBackupAndRestore: resume an interrupted run, even one killed in the middle of a backup."""

import errno
import json
import logging
import os
import shutil

import keras
import numpy as np

from ladder_vae.atomic import atomic_path
from ladder_vae.config import write_json
from ladder_vae.run_dir import BACKUP_STATE_FILE as STATE_FILE

logger = logging.getLogger(__name__)

# The state of the epoch before, kept with its files: what a damaged last backup falls back to.
PREVIOUS_STATE_FILE = "state.previous.json"
# The attributes in which Keras's monitoring callbacks (EarlyStopping, ReduceLROnPlateau) and
# BestModelCheckpoint carry state from one epoch to the next; on_train_begin resets them all.
CALLBACK_STATE_ATTRIBUTES = ("best", "wait", "best_epoch", "stopped_epoch", "cooldown_counter")


class DamagedBackupError(ValueError):
    """No backup in the directory can be restored; the message names the file at fault and
    says how to start the run over."""


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
      epoch's complete backup or the new one;
    - a fallback: the backup of the epoch before stays, with its own commit point
      (`state.previous.json`). When the last backup cannot be restored (a truncated
      `state.json`, a missing or damaged weights file) a warning names the file and training
      resumes from the one before; when neither can, `DamagedBackupError` names the file and
      says how to start over.

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

    @property
    def previous_state_path(self):
        return os.path.join(self.backup_dir, PREVIOUS_STATE_FILE)

    def read_state(self, path=None):
        """The committed state at `path` (default: the last one) as a dict, or None when there
        is none. Raises `DamagedBackupError` for a file that is not a backup state."""
        path = path or self.state_path
        if not os.path.exists(path):
            return None
        try:
            with open(path) as file:
                state = json.load(file)
            if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
                raise ValueError("not a backup state")
            if not isinstance(state.get("weights"), str) or not isinstance(
                state.get("callbacks"), dict
            ):
                raise ValueError("not a backup state")
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
            raise DamagedBackupError(f"{path}: damaged ({reason})") from None
        return state

    def on_train_begin(self, logs=None):
        # Files written since the last commit (a temporary or a newer epoch) mean nothing yet.
        self.saved_best_weights = {}
        self.restored_epoch = 0
        self.committed_state = None
        problems = []
        for path in (self.state_path, self.previous_state_path):
            try:
                state = self.read_state(path)
                if state is not None:
                    self._restore(state)
            except DamagedBackupError as error:
                problems.append(str(error))
                continue
            if state is None:
                continue
            if problems:
                logger.warning(
                    "%s; resuming from the backup of the epoch before, %s",
                    problems[0],
                    os.path.basename(path),
                )
            self.committed_state = state
            self._remove_unreferenced(state)
            return
        if problems:
            raise DamagedBackupError(
                f"{problems[0]}; no earlier complete backup to fall back to. Delete "
                f"{self.backup_dir} to start the run over, or pass another --run-dir"
            )
        self._remove_unreferenced(None)

    def _restore(self, state):
        """Loads `state` into the model and the stateful callbacks, or raises
        `DamagedBackupError` naming the file that cannot be read."""
        if not self.model.built:
            raise ValueError(
                "AtomicBackupAndRestore needs a built model to restore into. "
                f"Received: an unbuilt {type(self.model).__name__}"
            )
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        path = os.path.join(self.backup_dir, state["weights"])
        best_weights = {}
        try:
            if not os.path.isfile(path):
                raise FileNotFoundError(errno.ENOENT, "missing")
            self.model.load_weights(path)
            for callback in self.stateful_callbacks:
                saved = state["callbacks"].get(type(callback).__name__, {})
                if saved.get("best_weights"):
                    path = os.path.join(self.backup_dir, saved["best_weights"])
                    with np.load(path) as arrays:
                        best_weights[type(callback).__name__] = (
                            [arrays[f"arr_{i}"] for i in range(len(arrays))],
                            saved["best_weights"],
                        )
        except Exception as error:  # h5py, Keras and NumPy raise many types for a bad file.
            reason = getattr(error, "strerror", None) or (
                str(error).strip().splitlines() or [type(error).__name__]
            )[0][:200]
            raise DamagedBackupError(f"{path}: damaged ({reason})") from None
        for callback in self.stateful_callbacks:
            name = type(callback).__name__
            saved = state["callbacks"].get(name, {})
            for attribute, value in saved.get("attributes", {}).items():
                setattr(callback, attribute, value)
            if name in best_weights:
                callback.best_weights = best_weights[name][0]
                self.saved_best_weights[name] = best_weights[name]
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
        # The last state becomes the fallback before the new one replaces it; a kill between
        # the two leaves both naming the same, complete epoch.
        if self.committed_state is not None:
            write_json(self.previous_state_path, self.committed_state)
        write_json(self.state_path, state)
        self.committed_state = state
        self._remove_unreferenced(state)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)

    def _remove_unreferenced(self, state):
        """Deletes the files of `backup_dir` that neither `state` nor the fallback state names.
        """
        if not os.path.isdir(self.backup_dir):
            return
        keep = {STATE_FILE, PREVIOUS_STATE_FILE}
        try:
            previous = self.read_state(self.previous_state_path)
        except DamagedBackupError:
            previous = None
        for kept in (state, previous):
            if kept is None:
                continue
            keep.add(kept["weights"])
            keep.update(
                saved["best_weights"]
                for saved in kept["callbacks"].values()
                if isinstance(saved, dict) and saved.get("best_weights")
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
