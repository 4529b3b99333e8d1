"""The `tf.distribute` strategy that `--strategy` names, and joining a multi-worker cluster.

`--strategy multiworker` is a `MultiWorkerMirroredStrategy` over the processes of `TF_CONFIG`
(see `cluster`). Every wait on a peer is bounded by `--peer-timeout`: joining the cluster at
the start, and the coordination service's heartbeats that notice a process that died; a
collective waits at most `COLLECTIVE_TIMEOUT_FACTOR` times as long for a peer alive but stuck.
"""

import logging
import socket
import time

import tensorflow as tf
from tensorflow.python.distribute import collective_all_reduce_strategy as collective
from tensorflow.python.eager import context

from ladder_vae.config import TrainConfig
from ladder_vae.errors import ConfigError
from ladder_vae.distribute.cluster import ENV_VAR, TRAINING_JOBS, describe_task

# How long a task that has seen all the others still listens for them to see it.
LINGER_SECONDS = 1.0
# A collective waits this many times --peer-timeout for the other workers.
COLLECTIVE_TIMEOUT_FACTOR = 5

# The strategies `make_strategy` has created in this process, by name.
_STRATEGIES = {}


def make_strategy(name, cluster=None, peer_timeout=None):
    """The `tf.distribute` strategy that `--strategy` names.

    `default`: the current strategy (one device, unless the caller entered a scope).
    `mirrored`: synchronous data parallelism over this machine's GPUs; without GPUs, over its
    logical CPU devices (one, unless `tf.config.set_logical_device_configuration` split it).
    `multiworker`: the same over the workers of `cluster` (a `Cluster` from `TF_CONFIG`; this
    machine alone when None), each wait on a peer bounded by `peer_timeout` seconds (see
    `multi_worker_strategy`). `--batch-size` stays the global batch; each step splits it across
    the replicas. Create the strategy before other TensorFlow work: `multiworker` must be
    created first.

    A process gets one strategy of each kind, reused by later calls: a second
    `MirroredStrategy` in the same process reuses the first one's collective instance keys, and
    its first all-reduce aborts with "Shape mismatch in the collective instance"
    (tensorflow/tensorflow#62790; measured here with TF 2.21 on two logical CPUs).
    """
    if name not in ("mirrored", "multiworker"):
        return tf.distribute.get_strategy()
    if name not in _STRATEGIES:
        if name == "mirrored":
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            _STRATEGIES[name] = tf.distribute.MirroredStrategy([device.name for device in devices])
        else:
            _STRATEGIES[name] = multi_worker_strategy(
                cluster, peer_timeout or TrainConfig.peer_timeout
            )
    return _STRATEGIES[name]


def multi_worker_strategy(cluster, peer_timeout):
    """A `MultiWorkerMirroredStrategy` over `cluster` (this process alone when None).

    First waits, at most `peer_timeout` seconds, until every task of the cluster answers at
    its address (`wait_for_cluster`); then starts this task's server. The coordination service
    counts a task lost once it has missed its heartbeats for `peer_timeout` seconds (a process
    that died), and every collective times out after `COLLECTIVE_TIMEOUT_FACTOR * peer_timeout`
    seconds (a process alive but stuck; longer, since one worker may legitimately reach a step
    later than another, e.g. while it traces the first one).

    Raises:
        ConfigError: a task did not answer in time, or TensorFlow refused the cluster.
    """
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=COLLECTIVE_TIMEOUT_FACTOR * peer_timeout
    )
    if cluster is None:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    _configure_coordination(cluster, peer_timeout)
    # TensorFlow's own logs of a multi-worker run say one line per collective per trace.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    # TensorFlow waits without a bound for every task to register (measured: over 10 minutes
    # with a 5 s register timeout, SIGTERM taken by its preemption handler), so the tasks meet
    # here first, where the wait has one.
    wait_for_cluster(cluster, peer_timeout)
    _configure_coordination(cluster, peer_timeout)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except (tf.errors.OpError, RuntimeError, ValueError) as error:
        raise ConfigError(
            f"--strategy multiworker: TensorFlow refused the cluster of {ENV_VAR} "
            f"({_first_line(error)})"
        ) from None


def wait_for_cluster(cluster, timeout, poll_seconds=0.2):
    """Returns once every other task of `cluster` accepts TCP connections at its address.

    Meanwhile this task listens at its own address, so that the others see it too; it stops
    listening before returning, for TensorFlow's server to take the port. The connections are
    never accepted, only queued: closing the socket leaves the port free at once.

    Raises:
        ConfigError: this task cannot listen at its address, or some task did not answer
            within `timeout` seconds; names the tasks and addresses.
    """
    host, port = cluster.address_of(cluster.task_type, cluster.task_index).rsplit(":", 1)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        # As TensorFlow's server does: a restarted task can take its port back while the
        # connections of its previous run linger in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("", int(port)))
            listener.listen(16)
        except OSError as error:
            raise ConfigError(
                f"{ENV_VAR}: {cluster.task_name} cannot listen on port {port} "
                f"({error.strerror}); pick a free port for this task"
            ) from None
        waiting = [
            task for task in cluster.tasks if task[:2] != (cluster.task_type, cluster.task_index)
        ]
        deadline = time.monotonic() + timeout
        while waiting:
            waiting = [task for task in waiting if not _answers(task[2], poll_seconds)]
            if waiting and time.monotonic() >= deadline:
                missing = ", ".join(describe_task(*task) for task in waiting)
                raise ConfigError(
                    f"--strategy multiworker: no answer from {missing} within --peer-timeout "
                    f"{timeout:g} s; start every task of {ENV_VAR} (this is "
                    f"{cluster.task_name}), or check the addresses"
                )
            if waiting:
                time.sleep(poll_seconds)
        # Listening a little longer lets a task still polling see this one before TensorFlow's
        # server takes the port over.
        time.sleep(LINGER_SECONDS)
    finally:
        listener.close()


def _answers(address, timeout):
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _configure_coordination(cluster, peer_timeout):
    """The coordination service that MultiWorkerMirroredStrategy starts, with bounded waits.

    TensorFlow configures it with its defaults unless it is configured first; those wait an
    hour for the cluster to register. This sets the same service with `peer_timeout`.
    """
    # The protobuf module the strategy itself uses; its path moves between TF versions.
    coordination_config_pb2 = collective.coordination_config_pb2

    jobs = [
        coordination_config_pb2.CoordinatedJob(
            name=job, num_tasks=sum(1 for task in cluster.tasks if task[0] == job)
        )
        for job in TRAINING_JOBS
        if any(task[0] == job for task in cluster.tasks)
    ]
    leader_job, leader_index, _ = cluster.tasks[0]
    milliseconds = int(peer_timeout * 1000)
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=f"/job:{leader_job}/replica:0/task:{leader_index}",
        cluster_register_timeout_in_ms=milliseconds,
        heartbeat_timeout_in_ms=milliseconds,
        shutdown_barrier_timeout_in_ms=milliseconds,
        coordinated_jobs=jobs,
    )


def _first_line(error):
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def shard_by_data(dataset):
    """`dataset` with each worker taking its own share of every batch.

    A multi-worker strategy splits each global batch into per-replica batches and each worker
    keeps its own (`tf.data`'s DATA auto-sharding: every worker reads the whole pipeline, in the
    same seeded order). Set explicitly: the default first looks for files to shard and warns.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
