"""A worker that stopped answering: the errors that say so, and the one line that names it.

Every wait on a peer is bounded by `--peer-timeout` (see `strategy`), so a lost worker ends the
run with `PeerLostError` rather than a hang. `train.py` imports `PeerLostError` before
TensorFlow starts, so this module imports TensorFlow only where it is used.
"""

import re

from ladder_vae.distribute.cluster import describe_task


class PeerLostError(RuntimeError):
    """A worker of the cluster stopped answering during training; the message names it."""


def peer_errors():
    """The TensorFlow errors of a collective whose peer stopped answering."""
    import tensorflow as tf

    return (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.CancelledError,
        tf.errors.AbortedError,
        tf.errors.InternalError,
        tf.errors.FailedPreconditionError,
    )


def lost_peer_message(error, cluster):
    """One line for a collective that failed because a worker stopped answering: the tasks
    that TensorFlow's error names, other than this one, or else all the others."""
    text = getattr(error, "message", None) or str(error)
    named = []
    for job, index in re.findall(r"/job:(chief|worker)(?:/replica:\d+)?/task:(\d+)", text):
        task = (job, int(index))
        if cluster is not None and task != (cluster.task_type, cluster.task_index):
            if task not in named:
                named.append(task)
    if not named and cluster is not None:
        # A timed-out collective names no task: any of the others may be the one missing.
        named = [task[:2] for task in cluster.tasks if task[:2] != (cluster.task_type,
                                                                    cluster.task_index)]
    if named:
        lost = " or ".join(describe_task(job, i, cluster.address_of(job, i)) for job, i in named)
    else:
        lost = "a peer"
    return (
        f"--strategy multiworker: lost {lost}, which stopped answering "
        f"({type(error).__name__}); start every task again with the same commands to resume "
        "from the last finished epoch"
    )
