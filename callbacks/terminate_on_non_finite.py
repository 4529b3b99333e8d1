"""TerminateOnNonFinite: stop training at the first NaN or Inf loss, with an exception that says
where."""

import math

import keras
import numpy as np


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; `epoch` and `step` count from 1 (`step` is None at epoch end).

    Raised from inside `fit`, so no other callback's `on_epoch_end` or `on_train_end` runs after
    it: no checkpoint or backup is written from the broken weights.
    """

    def __init__(self, name, value, epoch, step=None, num_steps=None):
        self.name = name
        self.value = value
        self.epoch = epoch
        self.step = step
        self.num_steps = num_steps
        where = f"epoch {epoch}"
        if step is not None:
            where += f", step {step}" + (f" of {num_steps}" if num_steps else "")
        else:
            where += ", after validation"
        super().__init__(f"{name} is {value} at {where}")


class TerminateOnNonFinite(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` as soon as a training loss, or an epoch's metric, is not finite.

    Keras's `TerminateOnNaN` only sets `stop_training` (the epoch then ends normally, so
    checkpoints and backups would save NaN weights) or, with `raise_error=True`, raises a
    `RuntimeError` that names the batch but not the epoch. This one checks `monitor` after every
    training batch and every value of the epoch's logs (validation included) at the end of each
    epoch. Put it first in the callback list, so that nothing saves the weights before it checks.

    Args:
        monitor: the batch-level log checked after every step.
    """

    def __init__(self, monitor="loss"):
        super().__init__()
        self.monitor = monitor

    def on_train_begin(self, logs=None):
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is not None and not _finite(value):
            raise NonFiniteLossError(
                self.monitor,
                float(np.asarray(value)),
                epoch=self.epoch + 1,
                step=batch + 1,
                num_steps=self.params.get("steps") if self.params else None,
            )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for name, value in logs.items():
            if not _finite(value):
                raise NonFiniteLossError(name, float(np.asarray(value)), epoch=epoch + 1)


def _finite(value):
    """False for a NaN or Inf scalar; True for finite ones and for values that are not scalars."""
    try:
        return math.isfinite(float(np.asarray(value)))
    except (TypeError, ValueError):
        return True
