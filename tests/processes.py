"""The project's commands in real processes, and what a test must check of each outcome: a run
that succeeds, a run refused on bad input, a run killed with SIGKILL at a chosen moment."""

import contextlib
import os
import signal
import subprocess
import time

from tests.conftest import REPO_ROOT


def run_successfully(command, timeout, env=None, cwd=REPO_ROOT):
    """Runs `command` to its end and returns its `CompletedProcess` (stdout and stderr as text).

    Fails the test with the tail of stderr (a traceback, a training's last lines) unless the
    command exited with status 0 within `timeout` seconds. `env=None` inherits this process's.
    """
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def refusal_line(command, prefix, watched, env=None, cwd=REPO_ROOT, timeout=60):
    """Runs `command` on bad input and returns its one line of stderr, having checked that the
    command refused it as a user must see it.

    The contract of every entry point (train.py, evaluate.py, the export's command): exit status
    2, nothing on stdout, exactly one line on stderr, starting with `prefix` (no traceback, and
    none of the lines TensorFlow prints when it starts, so the input was judged before), and
    nothing created, removed or resized below `watched`: a refused command writes nothing. The
    caller checks what the line names. `env=None`: this process's environment with the GPUs
    hidden.
    """
    if env is None:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    before = _sizes_below(watched)
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(prefix), lines[0]
    assert _sizes_below(watched) == before
    return lines[0]


def _sizes_below(path):
    """Every path below `path` (inclusive) with its size, to tell that nothing was written."""
    if not os.path.isdir(path):
        return {str(path): os.lstat(path).st_size} if os.path.lexists(path) else {}
    return {
        os.path.join(root, name): os.lstat(os.path.join(root, name)).st_size
        for root, dirs, files in os.walk(path)
        for name in dirs + files
    }


@contextlib.contextmanager
def killed_when_stopped(command, env, stopped, timeout):
    """Starts `command` in the repository root, waits until it creates the file `stopped`,
    yields the process to the `with` block, then kills it with SIGKILL.

    For tests of what `kill -9` at a chosen moment leaves behind: the command is train.py
    wrapped so that it creates `stopped` at that moment and then sleeps, and the block checks
    the half-done state while the process still holds it. If the process exits first, or
    `timeout` seconds pass, the test fails, with the tail of the stderr of a process that died.
    A block that ends normally checks that SIGKILL is what ended the process; however the block
    ends, the process is killed and its pipe closed.
    """
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not stopped.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stopped.exists(), (
            process.stderr.read()[-3000:]
            if process.poll() is not None
            else f"no {stopped} within {timeout} s"
        )
        yield process
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
