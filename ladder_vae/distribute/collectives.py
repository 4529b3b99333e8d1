"""Messages between the workers of a multi-worker run, over one all-gather.

The chief sends its restored state to the others (`callbacks.ChiefStateBroadcast`), and every
worker checks that the others run its settings (`workers.check_same_settings`).
"""

import json

import numpy as np
import tensorflow as tf

# Room for the settings and the callback state that workers exchange, in bytes.
MESSAGE_BYTES = 8192


def exchange(strategy, message):
    """Every worker's `message` (JSON-able), in worker order (the chief first).

    One all-gather over the cluster: every worker must call it, with a message of at most
    `MESSAGE_BYTES` bytes of JSON.
    """
    payload = json.dumps(message, sort_keys=True).encode()
    if len(payload) > MESSAGE_BYTES:
        raise ValueError(
            f"`message` must hold at most {MESSAGE_BYTES} bytes of JSON. "
            f"Received: {len(payload)} bytes"
        )
    row = np.zeros((1, MESSAGE_BYTES + 1), np.int32)
    row[0, 0] = len(payload)
    row[0, 1 : len(payload) + 1] = np.frombuffer(payload, np.uint8)

    @tf.function(autograph=False)
    def gather():
        context = tf.distribute.get_replica_context()
        return context.all_gather(tf.constant(row), axis=0)

    rows = strategy.experimental_local_results(strategy.run(gather))[0].numpy()
    # Several replicas on one worker (its GPUs) send the same row.
    per_worker = len(rows) // strategy.extended._num_workers if is_multi_worker(strategy) else 1
    messages = []
    for values in rows[::per_worker]:
        size = int(values[0])
        messages.append(json.loads(values[1 : size + 1].astype(np.uint8).tobytes()))
    return messages


def is_multi_worker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` over more than this process."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode()
    )
