"""A lock on a run directory, so that two trainings never write the same run at once.

The lock is `fcntl.flock` on an open descriptor of `RUN_DIR/run.lock`. The kernel drops it when
the holder's descriptor closes, which happens when the process exits for any reason, `kill -9`
included: a dead run never leaves its directory locked. The file itself holds the holder's pid
and host name, only to say who holds the lock; its presence means nothing.

    with RunLock(run_dir):
        ...  # this process alone writes run_dir

Imports nothing heavy, so that `train.py` can test a lock before TensorFlow starts.
"""

import errno
import fcntl
import os
import socket

from ladder_vae.errors import ConfigError

LOCK_FILE = "run.lock"


def process_is_running(pid):
    """Whether a process with this pid exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDirLocked(ConfigError):
    """Another live process holds the lock of the run directory; the message names both."""


class RunLock:
    """An exclusive, non-blocking lock on `run_dir` (which must exist).

    `acquire()` fails at once with `RunDirLocked` instead of waiting: a second training pointed
    at a busy run directory is a mistake to report, not a queue to join. Locks are per open
    file, so a second `RunLock` on the same directory fails in the same process too.
    """

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_FILE)
        self._fd = None

    @property
    def locked(self):
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self):
        """Takes the lock and records this process in the lock file; returns self.

        Raises:
            RunDirLocked: another process (or another `RunLock`) holds it.
            ConfigError: the lock file cannot be opened (say, the directory is not writable).
        """
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise ConfigError(
                f"--run-dir {self.run_dir}: cannot open {LOCK_FILE} ({error.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_holder(fd)
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise ConfigError(
                    f"--run-dir {self.run_dir}: cannot lock {LOCK_FILE} ({error.strerror})"
                ) from None
            raise RunDirLocked(
                f"--run-dir {self.run_dir}: another training is using it ({holder}); wait for "
                "it to finish, stop it, or pass another --run-dir"
            ) from None
        # Rewritten in place, under the lock: a reader sees the old holder, nothing or this one.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self):
        """Gives the lock up (a no-op when not held). The file stays: removing it would let a
        process that opened it just before lock a file no longer in the directory."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # The lock goes with the descriptor all the same.
        finally:
            os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def check_unlocked(run_dir):
    """Raises `RunDirLocked` when another process holds `run_dir`'s lock; a quick test that
    takes the lock and gives it back at once. Does nothing when `run_dir` does not exist."""
    if os.path.isdir(run_dir) and os.path.exists(os.path.join(run_dir, LOCK_FILE)):
        RunLock(run_dir).acquire().release()


def _read_holder(fd):
    """`pid N on HOST` from an open lock file, or a placeholder while it is being rewritten."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"
