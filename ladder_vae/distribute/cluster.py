"""The training cluster that `TF_CONFIG` describes, and this process's place in it.

`--strategy multiworker` trains over the processes that `TF_CONFIG` lists, e.g. on the chief

    TF_CONFIG='{"cluster": {"chief": ["host-a:12345"], "worker": ["host-b:12345"]},
                "task": {"type": "chief", "index": 0}}'

and the same with `"task": {"type": "worker", "index": 0}` on the worker. The chief (the `chief`
task, or `worker` 0 when there is none) writes the run directory.

Nothing here imports TensorFlow: `train.py` and `preflight` report a malformed `TF_CONFIG` in
one line before TensorFlow starts.
"""

import dataclasses
import json
import os

from ladder_vae.errors import ConfigError

ENV_VAR = "TF_CONFIG"
# The jobs that train; `ps` and `evaluator` belong to other strategies.
TRAINING_JOBS = ("chief", "worker")


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
