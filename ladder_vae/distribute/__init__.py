"""Training with `tf.distribute`: on several devices, or over several processes.

`--strategy mirrored` trains over this machine's devices, `--strategy multiworker` over the
processes that `TF_CONFIG` lists; `--batch-size` stays the global batch. The modules, one job
each:

- `cluster`: the cluster that `TF_CONFIG` describes and this process's place in it.
- `peers`: a worker that stopped answering, and the one line that names it.
- `strategy`: the strategy that `--strategy` names, joining the cluster with bounded waits,
  and how each worker takes its share of the data.
- `collectives`: messages between the workers, over one all-gather.
- `workers`: a non-chief worker's private directory, and the check that every worker runs the
  chief's settings.
- `replicas`: inside a step, what one replica does so that N compute what one device would.

The names callers use are exported here. `cluster` and `peers` import no TensorFlow and come
with the package: `train.py` and `preflight` check `TF_CONFIG` before TensorFlow starts. The
other modules import TensorFlow, and are imported when one of their names is first asked for.
"""

import importlib

from ladder_vae.distribute.cluster import (
    ENV_VAR,
    TRAINING_JOBS,
    Cluster,
    check_cluster,
    describe_task,
    read_cluster,
    writes_run_dir,
)
from ladder_vae.distribute.peers import PeerLostError, lost_peer_message, peer_errors

# The module of each exported name whose module imports TensorFlow.
_MODULE_OF = {
    "make_strategy": "strategy",
    "multi_worker_strategy": "strategy",
    "wait_for_cluster": "strategy",
    "shard_by_data": "strategy",
    "COLLECTIVE_TIMEOUT_FACTOR": "strategy",
    "exchange": "collectives",
    "is_multi_worker": "collectives",
    "MESSAGE_BYTES": "collectives",
    "make_worker_dir": "workers",
    "remove_worker_dir": "workers",
    "shared_settings": "workers",
    "check_same_settings": "workers",
    "settings_difference": "workers",
    "WORKER_DIR_PREFIX": "workers",
    "LOCAL_SETTINGS": "workers",
}

__all__ = [
    "ENV_VAR",
    "TRAINING_JOBS",
    "Cluster",
    "check_cluster",
    "describe_task",
    "read_cluster",
    "writes_run_dir",
    "PeerLostError",
    "lost_peer_message",
    "peer_errors",
    *_MODULE_OF,
]


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value
