"""The run directory: the one place that names what a run writes and judges whether a directory
can take a run or an export.

    RUN_DIR/
        config.json     the resolved settings, the data source, library versions, the command
        run.lock        held while a process trains here (`ladder_vae.run_lock`)
        logs/           TensorBoard
        samples/        the figures of every epoch
        history.csv     one row per finished epoch
        best.keras      the model of the lowest validation loss so far
        backup/         the last finished epoch while the run is unfinished; state.json commits it
        model.keras     the final model; the run has finished training
        saved_model/    the TensorFlow SavedModel (`ladder_vae.export`)
        eval/           what `evaluate.py` writes: metrics.json, report.md, figures

Every path is derived here once, as Keras's `BackupAndRestore` derives its files from its
directory. Nothing here imports TensorFlow: `train.py`, `evaluate.py` and the export check their
paths before TensorFlow starts.
"""

import datetime
import os
import tempfile

from ladder_vae import run_lock
from ladder_vae.errors import ConfigError

CONFIG_FILE = "config.json"
LOGS_DIR = "logs"
SAMPLES_DIR = "samples"
HISTORY_FILE = "history.csv"
BEST_MODEL_FILE = "best.keras"
BACKUP_DIR = "backup"
# Written last in a backup of an epoch (`callbacks.AtomicBackupAndRestore`): the backup exists
# once this file does.
BACKUP_STATE_FILE = "state.json"
FINAL_MODEL_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
# The file by which TensorFlow recognises a SavedModel directory.
SAVED_MODEL_FILE = "saved_model.pb"
EVAL_DIR = "eval"
METRICS_FILE = "metrics.json"


class RunDir:
    """The paths of the run directory `path`, and what its files say about the run."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.config = os.path.join(self.path, CONFIG_FILE)
        self.logs = os.path.join(self.path, LOGS_DIR)
        self.samples = os.path.join(self.path, SAMPLES_DIR)
        self.history = os.path.join(self.path, HISTORY_FILE)
        self.best_model = os.path.join(self.path, BEST_MODEL_FILE)
        self.backup = os.path.join(self.path, BACKUP_DIR)
        self.backup_state = os.path.join(self.backup, BACKUP_STATE_FILE)
        self.final_model = os.path.join(self.path, FINAL_MODEL_FILE)
        self.saved_model = os.path.join(self.path, SAVED_MODEL_DIR)
        self.eval = os.path.join(self.path, EVAL_DIR)
        self.metrics = os.path.join(self.eval, METRICS_FILE)

    def finished_training(self):
        """Whether the final model is saved."""
        return os.path.exists(self.final_model)

    def finished_an_epoch(self):
        """Whether the run has something to resume or keep: a committed backup of an epoch, or
        a final model."""
        return os.path.exists(self.backup_state) or self.finished_training()

    def left_to_finish(self, export=True):
        """What a run whose final model is saved still lacks, in words (a list, empty when
        complete): the removal of its backup, and with `export` its SavedModel. A process killed
        after saving `model.keras` leaves these; the same command then finishes them."""
        left = []
        if os.path.exists(self.backup):
            left.append(f"remove {BACKUP_DIR}/")
        if export and not is_saved_model(self.saved_model):
            left.append(f"export {SAVED_MODEL_DIR}/")
        return left


def default_run_dir(now=None):
    """`runs/<timestamp>`, relative to the working directory."""
    now = now or datetime.datetime.now()
    return os.path.join("runs", now.strftime("%Y%m%d-%H%M%S"))


def is_saved_model(path):
    """Whether `path` is a SavedModel directory."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, SAVED_MODEL_FILE))


def check_run_dir(path, export=True):
    """Raises `ConfigError` unless `path` is, or can be created as, a directory that this
    process can write, that no other training holds and that holds no finished run: one with a
    final model and nothing left to finish (`RunDir.left_to_finish`; `export` says whether the
    run asks for an export)."""
    label = f"--run-dir {path}"
    check_writable_directory(path, label)
    if not os.path.isdir(path):
        return
    run_lock.check_unlocked(path)
    run = RunDir(path)
    if run.finished_training() and not run.left_to_finish(export):
        raise ConfigError(
            f"{label}: holds a finished run ({FINAL_MODEL_FILE}); choose another --run-dir"
        )


def create_run_dir(path):
    """Creates `path`, which `check_run_dir` has passed."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--run-dir {path}: cannot create it ({error.strerror})") from None


def check_saved_model_destination(path):
    """Raises `ConfigError` unless a SavedModel can be written to `path`: it is new, empty or
    an earlier export, and its parent is, or can be created as, a writable directory."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ConfigError(f"{path}: exists and is not a directory")
        if os.listdir(path) and not is_saved_model(path):
            raise ConfigError(
                f"{path}: exists and is not a SavedModel; choose an empty or new directory"
            )
    parent = os.path.dirname(path)
    check_writable_directory(parent, parent)


def check_writable_directory(path, label):
    """Raises `ConfigError` (its message starts with `label`) unless `path` is a directory that
    this process can write, or can be created as one.

    Writes a probe file and removes it: permission bits do not tell (root passes `os.access`
    on a read-only file system)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{label}: exists and is not a directory")
    if os.path.isdir(path):
        problem = _write_probe(path)
        if problem:
            raise ConfigError(f"{label}: not writable ({problem})")
        return
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ConfigError(f"{label}: cannot create it ({ancestor} is not a directory)")
    problem = _write_probe(ancestor)
    if problem:
        raise ConfigError(f"{label}: cannot create it ({ancestor}: {problem})")


def _write_probe(directory):
    """None if a file can be created in `directory` (then removed), else the reason."""
    try:
        fd, path = tempfile.mkstemp(prefix=".write-probe-", dir=directory)
    except OSError as error:
        return error.strerror or str(error)
    os.close(fd)
    os.remove(path)
    return None
