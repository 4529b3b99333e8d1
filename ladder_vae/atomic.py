"""Writing files so that a kill at any moment leaves the old file or the new one, never half of one.

Every file a run writes (checkpoints, backups, config, history, images, exports) goes through
`atomic_path`: it is written under a temporary name in the same directory and renamed into place,
and `os.replace` is atomic within one file system. A process killed mid-write leaves at most a
temporary file, which `remove_stale_temporaries` clears when the next run takes the directory.
"""

import contextlib
import gc
import glob
import os
import shutil
import sys
import traceback

from ladder_vae.resources import DiskFull, is_disk_full

TEMPORARY_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds.

    Args:
        path: the file (or directory) to write.
        suffix: ending of the temporary name, for writers that choose a format from it
            (`.keras`, `.weights.h5`, `.png`, `.gif`, `.npz`).

    A full disk raises `resources.DiskFull` naming `path`, whatever the writer raised.
    """
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}{TEMPORARY_MARK}{os.getpid()}{suffix}")
    # A writer out of space fails again in each of its objects' finalizers, and h5py's print a
    # traceback each (through both hooks); the one failure is reported by the DiskFull below.
    previous_hooks = sys.unraisablehook, sys.excepthook

    def unraisable_hook(unraisable):
        if not is_disk_full(unraisable.exc_value):
            previous_hooks[0](unraisable)

    def except_hook(kind, value, trace):
        if not is_disk_full(value):
            previous_hooks[1](kind, value, trace)

    sys.unraisablehook, sys.excepthook = unraisable_hook, except_hook
    try:
        yield temporary
        os.replace(temporary, path)
    except Exception as error:
        if not is_disk_full(error) or isinstance(error, DiskFull):
            raise
        _remove(temporary)
        _release_failed_writer(error)
        raise DiskFull(path, str(error).splitlines()[0] if str(error) else "") from None
    finally:
        sys.unraisablehook, sys.excepthook = previous_hooks
        _remove(temporary)


def remove_stale_temporaries(directory):
    """Deletes the temporary files that killed writers left anywhere under `directory`.

    Call it only while holding the directory's run lock: then no live writer owns them.
    """
    pattern = os.path.join(glob.escape(directory), "**", f".*{TEMPORARY_MARK}*")
    for leftover in glob.glob(pattern, recursive=True):
        _remove(leftover)


def _release_failed_writer(error):
    """Frees what a writer that failed for want of space still holds (h5py keeps its objects
    after a failed flush) while `atomic_path` keeps their finalizers' errors quiet.

    The writer's objects live in the frames of `error`'s traceback; once those are cleared they
    are collected here, and each tries one last flush that fails in turn.
    """
    traceback.clear_frames(error.__traceback__)
    error.__traceback__ = None
    gc.collect()


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)
