"""Writing files so that a kill at any moment leaves the old file or the new one, never half of one.

Every file a run writes (checkpoints, backups, config, history, images, exports) goes through
`atomic_path`: it is written under a temporary name in the same directory and renamed into place,
and `os.replace` is atomic within one file system. A process killed mid-write leaves at most a
temporary file, which `remove_stale_temporaries` clears when the next run takes the directory.
"""

import contextlib
import glob
import os
import shutil

TEMPORARY_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds.

    Args:
        path: the file (or directory) to write.
        suffix: ending of the temporary name, for writers that choose a format from it
            (`.keras`, `.weights.h5`, `.png`, `.gif`, `.npz`).
    """
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}{TEMPORARY_MARK}{os.getpid()}{suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        _remove(temporary)


def remove_stale_temporaries(directory):
    """Deletes the temporary files that killed writers left anywhere under `directory`.

    Call it only while holding the directory's run lock: then no live writer owns them.
    """
    pattern = os.path.join(glob.escape(directory), "**", f".*{TEMPORARY_MARK}*")
    for leftover in glob.glob(pattern, recursive=True):
        _remove(leftover)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)
