"""BestModelCheckpoint: the best model so far, as a `.keras` file that a kill cannot corrupt."""

import logging
import math
import os
import warnings

import keras

from ladder_vae.atomic import atomic_path

logger = logging.getLogger(__name__)


def save_model_atomically(model, filepath):
    """`model.save(filepath)` through a temporary file in the same directory and a rename.

    A process killed while saving leaves at most a stray temporary file, never a truncated
    `filepath`: `os.replace` is atomic within one file system.
    """
    os.makedirs(os.path.dirname(os.path.abspath(filepath)), exist_ok=True)
    with atomic_path(filepath, suffix=".keras") as temporary:
        model.save(temporary, overwrite=True)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (`.keras`) after every epoch that improves `monitor`.

    Keras's `ModelCheckpoint(save_best_only=True)` writes the file in place, so a kill during
    the write leaves a broken best model; this one writes a temporary file and renames it.
    Non-finite values never count as improvements. `best` is the state to keep across a resume
    (`AtomicBackupAndRestore` keeps it), so that a resumed run does not overwrite a better model
    with its first epoch.

    Args:
        filepath: the `.keras` file.
        monitor: the epoch log to compare, e.g. `val_loss`.
        mode: `min` or `max`: whether lower or higher values of `monitor` are better.
        verbose: 1 to log every save.
    """

    def __init__(self, filepath, monitor="val_loss", mode="min", verbose=0):
        super().__init__()
        if not str(filepath).endswith(".keras"):
            raise ValueError(f"`filepath` must end in `.keras`. Received: filepath={filepath}")
        if mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max'. Received: mode={mode}")
        self.filepath = str(filepath)
        self.monitor = monitor
        self.mode = mode
        self.verbose = verbose
        self.best = None

    def on_train_begin(self, logs=None):
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"BestModelCheckpoint monitors `{self.monitor}`, which is not in the logs. "
                f"Available: {', '.join(logs)}",
                stacklevel=2,
            )
            return
        value = float(value)
        if not math.isfinite(value) or not self._is_improvement(value):
            return
        self.best = value
        save_model_atomically(self.model, self.filepath)
        if self.verbose:
            logger.info(
                "Epoch %d: %s improved to %.5g, saved %s",
                epoch + 1,
                self.monitor,
                value,
                self.filepath,
            )

    def _is_improvement(self, value):
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best
