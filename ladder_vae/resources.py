"""Failures of the machine rather than of the input: out of memory and out of disk space.

TensorFlow, Keras, h5py, zipfile and NumPy each report these their own way (a
`ResourceExhaustedError`, oneDNN's "could not create a memory object", an `OSError` with errno
28, h5py's "file write failed ... errno = 28"); `is_out_of_memory` and `is_disk_full` tell them
apart, and `describe` turns one into a line that says what ran out, which flags or files it
concerns and what of the run is kept. Nothing here imports TensorFlow.
"""

import errno
import json
import os

# What the writers put in their messages when the disk is full (h5py and TensorFlow give no
# errno attribute, only text; TensorFlow maps ENOSPC to RESOURCE_EXHAUSTED).
DISK_FULL_TEXTS = ("no space left on device", "errno = 28", "disk quota exceeded")
# What TensorFlow and oneDNN put in their messages when an allocation fails.
OUT_OF_MEMORY_TEXTS = ("oom when allocating", "out of memory", "could not create a memory object")
OUT_OF_MEMORY_ERROR_NAMES = ("ResourceExhaustedError", "MemoryError")


class ResourceExhausted(Exception):
    """Training stopped because memory or disk space ran out; the message, one line, says which,
    names the flags or file concerned and what of the run is kept."""


class DiskFull(OSError):
    """No space was left to write `path`; raised by `atomic.atomic_path`, which knows the file."""

    def __init__(self, path, cause):
        super().__init__(errno.ENOSPC, f"no space left on device while writing {path}", path)
        self.path = path
        self.cause = cause


def is_disk_full(error):
    """Whether `error` (any exception) says that the disk or the user's quota is full."""
    if isinstance(error, DiskFull):
        return True
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error).lower()
    return any(fragment in text for fragment in DISK_FULL_TEXTS)


def is_out_of_memory(error):
    """Whether `error` says that an allocation failed (and not that the disk is full)."""
    if is_disk_full(error):
        return False
    if isinstance(error, MemoryError) or type(error).__name__ in OUT_OF_MEMORY_ERROR_NAMES:
        return True
    text = str(error).lower()
    return any(fragment in text for fragment in OUT_OF_MEMORY_TEXTS)


def last_backup_epoch(state_path):
    """The epoch of the last committed backup, whose state file is `state_path`, or None."""
    try:
        with open(state_path) as file:
            epoch = json.load(file).get("epoch")
    except (OSError, ValueError, AttributeError):
        return None
    return epoch if isinstance(epoch, int) else None


def describe(error, config, run):
    """A `ResourceExhausted` describing `error` for the run of `config`, or None when `error` is
    not a shortage of memory or disk space.

    Args:
        error: the exception training, saving or exporting raised.
        config: the run's `TrainConfig`.
        run: the run's `RunDir`, to say which epoch a rerun resumes from.
    """
    epoch = last_backup_epoch(run.backup_state)
    if is_disk_full(error):
        path = getattr(error, "path", None) or getattr(error, "filename", None)
        where = f"while writing {_relative(path, config.run_dir)}" if path else (
            f"in --run-dir {config.run_dir}"
        )
        kept = (
            f"the last complete backup is epoch {epoch}"
            if epoch
            else "no epoch had been backed up yet"
        )
        return ResourceExhausted(
            f"no space left on device {where}; {kept}. Free some space and run the same "
            "command again to continue"
        )
    if is_out_of_memory(error):
        dims = ",".join(map(str, config.latent_dims))
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        if epoch:
            then = (
                f"the last complete backup is epoch {epoch}: rerun with a smaller --batch-size "
                "to resume it, or use another --run-dir for a smaller model"
            )
        else:
            then = "no epoch had finished, so the same --run-dir takes the corrected command"
        return ResourceExhausted(
            f"out of memory ({type(error).__name__}: {first_line}); the model's size is set by "
            f"--base-filters {config.base_filters} and --latent-dims {dims}, each step's by "
            f"--batch-size {config.batch_size}: make them smaller. {then[0].upper()}{then[1:]}"
        )
    return None


def _relative(path, run_dir):
    """`path` named relative to `run_dir` when it lies inside it, else as it is."""
    path, run_dir = os.path.abspath(path), os.path.abspath(run_dir)
    if os.path.commonpath([path, run_dir]) == run_dir:
        return f"{os.path.relpath(path, run_dir)} in --run-dir {run_dir}"
    return path
