"""Inside a training step under `tf.distribute`: what one replica does so that N replicas
compute what one device would.

Each helper is the identity outside a multi-replica step, so the model's step reads the same
with and without a strategy.
"""

import tensorflow as tf

from ladder_vae.distribute.collectives import is_multi_worker


def draw_rows(sampler, batch_size, width, dtype, seed):
    """A [batch_size, width] draw of `sampler` (keras.random.normal or uniform).

    Under a multi-replica strategy every replica would draw the same values from the shared
    seed; each draws for the global batch instead and keeps its own rows, which are
    independent across replicas and equal to what one device draws.
    """
    rows = _replica_rows(batch_size)
    if rows is None:
        return sampler((batch_size, width), seed=seed, dtype=dtype)
    start, stop, global_size = rows
    return sampler((global_size, width), seed=seed, dtype=dtype)[start:stop]


def gather_replicas(tensor):
    """The tensor of every replica, concatenated along the batch axis in replica order.

    One tensor rather than one per level: the gradient of a gathered list of tensors of
    different sizes fails to build (levels of 2 and 4 dimensions, measured).
    """
    context = _multi_replica_context()
    if context is None:
        return tensor
    gathered = context.all_gather(tensor, axis=0)
    # The gather loses static shapes; the MMD bandwidth needs the code size.
    return tf.ensure_shape(gathered, [None, *tensor.shape[1:]])


def step_logs(logs):
    """The logs a step returns: scalars, or under a multi-worker strategy vectors of one value.

    Keras 3 averages a multi-worker step's logs over their axis 0, which a scalar lacks
    ("Invalid reduction dimension 0", tensorflow/tensorflow#72388); the average of the vectors
    is the scalar again.
    """
    if not is_multi_worker(tf.distribute.get_strategy()):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def _multi_replica_context():
    """The replica context of a multi-replica `tf.distribute` step, or None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def _replica_rows(batch_size):
    """(start, stop, global_size): this replica's rows of the global batch, or None outside a
    multi-replica step. Replicas may hold unequal shares (a last, smaller batch)."""
    context = _multi_replica_context()
    if context is None:
        return None
    sizes = context.all_gather(tf.reshape(tf.cast(batch_size, tf.int32), [1]), axis=0)
    start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    return start, start + tf.cast(batch_size, tf.int32), tf.reduce_sum(sizes)
