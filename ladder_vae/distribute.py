"""Training over several processes: the cluster in `TF_CONFIG`, the strategy, and lost peers.

`--strategy multiworker` trains one model with `tf.distribute.MultiWorkerMirroredStrategy` over
the processes that `TF_CONFIG` lists, e.g. on the chief

    TF_CONFIG='{"cluster": {"chief": ["host-a:12345"], "worker": ["host-b:12345"]},
                "task": {"type": "chief", "index": 0}}'

and the same with `"task": {"type": "worker", "index": 0}` on the worker. The chief (the `chief`
task, or `worker` 0 when there is none) writes the run directory; every other worker runs the
same steps and callbacks (saving may take part in collectives) into a private temporary
directory that is removed when it stops. A resumed run restores the chief's backup, and the
chief sends it to the others (`ChiefStateBroadcast`), so workers keep nothing between runs.

Every wait on a peer is bounded by `--peer-timeout`: joining the cluster at the start, and the
coordination service's heartbeats that notice a process that died; a collective waits at most
`COLLECTIVE_TIMEOUT_FACTOR` times as long for a peer alive but stuck. The checks of `TF_CONFIG`
import nothing heavy, so `train.py` reports a malformed one before TensorFlow starts.
"""

import dataclasses
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time

from ladder_vae.errors import ConfigError
from ladder_vae.config import _flag as config_flag
from ladder_vae.run_lock import process_is_running

logger = logging.getLogger(__name__)

ENV_VAR = "TF_CONFIG"
# The jobs that train; `ps` and `evaluator` belong to other strategies.
TRAINING_JOBS = ("chief", "worker")
# Room for the settings and the callback state that workers exchange, in bytes.
MESSAGE_BYTES = 8192
WORKER_DIR_PREFIX = "ladder-vae-worker-"
# How long a task that has seen all the others still listens for them to see it.
LINGER_SECONDS = 1.0
# A collective waits this many times --peer-timeout for the other workers.
COLLECTIVE_TIMEOUT_FACTOR = 5
# Settings that may differ between workers: where each finds its data and writes its run, and
# the export, which only the chief makes.
LOCAL_SETTINGS = ("run_dir", "data_dir", "tfds_data_dir", "export")


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


class PeerLostError(RuntimeError):
    """A worker of the cluster stopped answering during training; the message names it."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The training cluster of `TF_CONFIG` and this process's place in it.

    `tasks` lists (job, index, address) in the order of the replicas: the chief first, then the
    workers by index.
    """

    tasks: tuple
    task_type: str
    task_index: int

    @property
    def num_workers(self):
        return len(self.tasks)

    @property
    def is_chief(self):
        """Whether this process writes the run directory: the `chief` task, or `worker` 0 of a
        cluster without one (TensorFlow's rule)."""
        chief = self.tasks[0]
        return (self.task_type, self.task_index) == chief[:2]

    @property
    def task_name(self):
        address = self.address_of(self.task_type, self.task_index)
        return describe_task(self.task_type, self.task_index, address)

    def address_of(self, job, index):
        for task_job, task_index, address in self.tasks:
            if (task_job, task_index) == (job, index):
                return address
        return None


def describe_task(job, index, address=None):
    """`worker 1 (host:port)`: how messages name a task."""
    return f"{job} {index}" + (f" ({address})" if address else "")


def read_cluster(environ=None):
    """The `Cluster` that `TF_CONFIG` describes, or None when it is unset or empty.

    Raises:
        ConfigError: one line naming `TF_CONFIG` and what in it is wrong.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(ENV_VAR, "").strip()
    if not text:
        return None
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{ENV_VAR}: not JSON ({error})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{ENV_VAR}: expected a JSON object with 'cluster' and 'task'")
    cluster, task = spec.get("cluster"), spec.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError(
            f"{ENV_VAR}: 'cluster' must map job names to address lists, e.g. "
            '{"chief": ["host-a:2222"], "worker": ["host-b:2222"]}'
        )
    other_jobs = sorted(set(cluster) - set(TRAINING_JOBS))
    if other_jobs:
        raise ConfigError(
            f"{ENV_VAR}: job {other_jobs[0]!r} is not supported by --strategy multiworker "
            "(only 'chief' and 'worker')"
        )
    seen = {}
    tasks = []
    for job in TRAINING_JOBS:
        addresses = cluster.get(job, [])
        if not isinstance(addresses, list) or (job in cluster and not addresses):
            raise ConfigError(f"{ENV_VAR}: cluster {job!r} must be a non-empty list of addresses")
        if job == "chief" and len(addresses) > 1:
            raise ConfigError(f"{ENV_VAR}: cluster 'chief' lists {len(addresses)} tasks; at most 1")
        for index, address in enumerate(addresses):
            _check_address(address, job, index)
            if address in seen:
                raise ConfigError(
                    f"{ENV_VAR}: {describe_task(job, index)} and {seen[address]} share the "
                    f"address {address}"
                )
            seen[address] = describe_task(job, index)
            tasks.append((job, index, address))
    if not isinstance(task, dict):
        raise ConfigError(
            f"{ENV_VAR}: 'task' must say which task this process is, e.g. "
            '{"type": "worker", "index": 0}'
        )
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise ConfigError(
            f"{ENV_VAR}: task type {task_type!r} is not a job of the cluster "
            f"({', '.join(sorted(cluster))})"
        )
    if isinstance(task_index, bool) or not isinstance(task_index, int):
        raise ConfigError(f"{ENV_VAR}: task index must be an integer. Received: {task_index!r}")
    if not 0 <= task_index < len(cluster[task_type]):
        raise ConfigError(
            f"{ENV_VAR}: task index {task_index} is out of range: the cluster has "
            f"{len(cluster[task_type])} {task_type!r} task(s)"
        )
    return Cluster(tuple(tasks), task_type, task_index)


def _check_address(address, job, index):
    where = f"{ENV_VAR}: {describe_task(job, index)}"
    if not isinstance(address, str):
        raise ConfigError(f"{where}: address must be a 'host:port' string. Received: {address!r}")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: address {address!r} is not 'host:port' with a port 1-65535")


def check_cluster(config):
    """The `Cluster` that `config` trains on, or None for a single process.

    `--strategy multiworker` reads `TF_CONFIG` (None when it is unset: this process alone);
    other strategies ignore it.
    """
    if config.strategy != "multiworker":
        return None
    return read_cluster()


def writes_run_dir(config):
    """Whether this process writes `config.run_dir`: False only for a worker that is not the
    chief of a `--strategy multiworker` cluster."""
    cluster = check_cluster(config)
    return cluster is None or cluster.is_chief


def make_worker_dir(cluster):
    """A new private directory for a non-chief worker's files, removed by `remove_worker_dir`.

    `$TMPDIR/ladder-vae-worker-<task>-<pid>-*`; the directories that workers killed earlier
    left there (their pid no longer runs) are removed first.
    """
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        match = re.fullmatch(re.escape(WORKER_DIR_PREFIX) + r"[a-z]+\d+-(\d+)-.*", name)
        if match and not process_is_running(int(match.group(1))):
            remove_worker_dir(os.path.join(root, name))
    label = f"{cluster.task_type}{cluster.task_index}-{os.getpid()}-"
    return tempfile.mkdtemp(prefix=WORKER_DIR_PREFIX + label)


def remove_worker_dir(path):
    shutil.rmtree(path, ignore_errors=True)


# TensorFlow ------------------------------------------------------------------------------------


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
    import tensorflow as tf

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
    from tensorflow.python.distribute import collective_all_reduce_strategy as collective
    from tensorflow.python.eager import context

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
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def exchange(strategy, message):
    """Every worker's `message` (JSON-able), in worker order (the chief first).

    One all-gather over the cluster: every worker must call it, with a message of at most
    `MESSAGE_BYTES` bytes of JSON.
    """
    import numpy as np
    import tensorflow as tf

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
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode()
    )


def shared_settings(config, data):
    """What every worker must agree on: the settings (paths aside) and the training data."""
    import zlib

    settings = {
        key: value for key, value in config.to_dict().items() if key not in LOCAL_SETTINGS
    }
    settings["training images"] = {
        "shape": list(data.train_images.shape),
        "crc32": zlib.crc32(data.train_images.tobytes()),
    }
    settings["validation images"] = {
        "shape": list(data.val_images.shape),
        "crc32": zlib.crc32(data.val_images.tobytes()),
    }
    return settings


def check_same_settings(strategy, cluster, settings):
    """Raises `ConfigError`, the same on every worker, unless all workers pass `settings`.

    Every worker of `cluster` must call it (one all-gather); see `settings_difference`.
    """
    if cluster is None or not is_multi_worker(strategy):
        return
    problem = settings_difference(cluster, exchange(strategy, settings))
    if problem:
        raise ConfigError(problem)


def settings_difference(cluster, everyone):
    """None if every worker's settings (dicts in `cluster.tasks` order) equal the chief's; else
    one line naming the first setting that differs, with the worker's value and the chief's."""
    chief = everyone[0]
    for (job, index, address), theirs in zip(cluster.tasks[1:], everyone[1:]):
        for key in sorted(set(chief) | set(theirs)):
            if chief.get(key) != theirs.get(key):
                return (
                    f"{_flag(key)}: {_shown(theirs.get(key))} on "
                    f"{describe_task(job, index, address)} but {_shown(chief.get(key))} on the "
                    f"chief; start every worker with the same settings and data"
                )
    return None


def _flag(key):
    return key if " " in key else config_flag(key)


def _shown(value):
    if isinstance(value, list) and all(isinstance(item, int) for item in value):
        return ",".join(map(str, value))
    return json.dumps(value)


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
