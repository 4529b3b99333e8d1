"""LearningRateLogger: the optimizer's learning rate in every epoch's logs."""

import keras


class LearningRateLogger(keras.callbacks.Callback):
    """Adds `learning_rate` to the logs of every epoch, whatever sets the rate.

    Keras's `ReduceLROnPlateau` logs it, a `LearningRateSchedule` does not; with this callback
    first in the list, `CSVLogger`, `History` and `TensorBoard` show the rate under either. The
    value is the rate of the optimizer's next step: for a schedule, at the current iteration.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
