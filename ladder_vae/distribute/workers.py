"""A worker's own part of a multi-worker run: where it writes, and the check of its settings.

A worker other than the chief runs the same steps and callbacks as the chief (saving may take
part in collectives) into a private temporary directory that is removed when it stops. A
resumed run restores the chief's backup, and the chief sends it to the others
(`ChiefStateBroadcast`), so workers keep nothing between runs. Before training, every worker
checks that all run the chief's settings on the chief's data.
"""

import json
import os
import re
import shutil
import tempfile
import zlib

from ladder_vae.errors import ConfigError
from ladder_vae.config import _flag as config_flag
from ladder_vae.distribute.cluster import describe_task
from ladder_vae.distribute.collectives import exchange, is_multi_worker
from ladder_vae.run_lock import process_is_running

WORKER_DIR_PREFIX = "ladder-vae-worker-"
# Settings that may differ between workers: where each finds its data and writes its run, and
# the export, which only the chief makes.
LOCAL_SETTINGS = ("run_dir", "data_dir", "tfds_data_dir", "export")


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


def shared_settings(config, data):
    """What every worker must agree on: the settings (paths aside) and the training data."""
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
