"""ChiefStateBroadcast: every worker of a multi-worker run starts from the chief's state."""

import logging

import keras
import tensorflow as tf

from callbacks.atomic_backup_and_restore import CALLBACK_STATE_ATTRIBUTES, _plain
from ladder_vae import distribute

logger = logging.getLogger(__name__)


class ChiefStateBroadcast(keras.callbacks.Callback):
    """At the start of `fit`, copies the chief's training state to every other worker.

    Under a multi-worker `tf.distribute` strategy only the chief keeps a backup (the others
    write theirs to a temporary directory that is removed when they stop), so a resumed run
    restores on the chief alone. This sends the chief's model and optimizer variables, the
    epoch to continue from and the state of `stateful_callbacks` (the attributes in
    `CALLBACK_STATE_ATTRIBUTES`) to every worker, which then take the same steps and make the
    same early-stopping and learning-rate decisions. Does nothing on a single worker.

    Put it after the callback that restores the backup (`AtomicBackupAndRestore`).

    Args:
        stateful_callbacks: the callbacks whose state to copy, at most one per class.
    """

    def __init__(self, stateful_callbacks=()):
        super().__init__()
        self.stateful_callbacks = list(stateful_callbacks)

    def on_train_begin(self, logs=None):
        strategy = self.model.distribute_strategy
        if not distribute.is_multi_worker(strategy):
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        state = {
            "epoch": int(self.model._initial_epoch or 0),
            "callbacks": {
                type(callback).__name__: {
                    name: _plain(getattr(callback, name))
                    for name in CALLBACK_STATE_ATTRIBUTES
                    if hasattr(callback, name)
                }
                for callback in self.stateful_callbacks
            },
        }
        chief_state = distribute.exchange(strategy, state)[0]
        variables = list(self.model.weights)
        if optimizer is not None:
            seen = {id(variable) for variable in variables}
            variables += [v for v in optimizer.variables if id(v) not in seen]
        _copy_from_chief(strategy, variables)
        if strategy.extended.should_checkpoint:
            return
        for callback in self.stateful_callbacks:
            for name, value in chief_state["callbacks"].get(type(callback).__name__, {}).items():
                setattr(callback, name, value)
        self.model._initial_epoch = chief_state["epoch"]
        if chief_state["epoch"]:
            logger.info("Resuming from the chief's backup of epoch %d", chief_state["epoch"])


def _copy_from_chief(strategy, variables):
    """Sets `variables` on every worker to their values on the chief: one all-reduce in which
    the other workers contribute zeros (float64 holds float32 and 32-bit integers exactly)."""
    chief = 1.0 if strategy.extended.should_checkpoint else 0.0

    @tf.function(autograph=False)
    def chief_values():
        context = tf.distribute.get_replica_context()
        # One replica's contribution per worker, whatever its number of local devices.
        first = tf.cast(tf.equal(context.replica_id_in_sync_group % _local_replicas(strategy), 0),
                        tf.float64)
        values = [tf.cast(v.value, tf.float64) * chief * first for v in variables]
        return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

    values = [strategy.experimental_local_results(v)[0] for v in strategy.run(chief_values)]
    for variable, value in zip(variables, values):
        variable.assign(tf.cast(value, variable.dtype))


def _local_replicas(strategy):
    return len(strategy.extended.worker_devices)
