"""BestModelCheckpoint: the best model so far, as a `.keras` file that a kill cannot corrupt."""

import logging
import math
import warnings

import keras

from ladder_vae.saving import save_model_atomically

logger = logging.getLogger(__name__)


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
