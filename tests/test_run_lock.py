"""The run-directory lock: one training per run directory, and no lock outlives its process."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from ladder_vae import data as data_lib
from ladder_vae.errors import ConfigError
from ladder_vae.run_lock import LOCK_FILE, RunDirLocked, RunLock, check_unlocked
from tests.conftest import REPO_ROOT
from tests.idx_files import small_idx_dir

# Takes the lock of argv[1], says so, and waits to be killed.
HOLDER = """
import sys, time
from ladder_vae.run_lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """A process that holds tmp_path's lock until the test kills it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "locked\n"
    yield process
    process.kill()
    process.wait()


def test_lock_is_exclusive_and_released(tmp_path):
    with RunLock(str(tmp_path)) as lock:
        assert lock.locked
        assert (tmp_path / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} on ")
        # flock locks belong to an open file: a second lock fails in the same process too.
        with pytest.raises(RunDirLocked, match=f"pid {os.getpid()} on "):
            RunLock(str(tmp_path)).acquire()
    assert not lock.locked
    check_unlocked(str(tmp_path))
    RunLock(str(tmp_path)).acquire().release()


def test_lock_in_a_missing_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=f"--run-dir {tmp_path}/gone: cannot open run.lock"):
        RunLock(str(tmp_path / "gone")).acquire()


@pytest.mark.slow
def test_second_training_is_refused_while_the_first_holds_the_run_dir(tmp_path, holder):
    message = f"--run-dir {tmp_path}: another training is using it (pid {holder.pid} on "
    with pytest.raises(RunDirLocked) as error:
        RunLock(str(tmp_path)).acquire()
    assert message in str(error.value)

    result = subprocess.run(
        [sys.executable, "train.py", "--data-dir", data_lib.BUNDLED_MNIST_DIR]
        + ["--epochs", "1", "--run-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"train.py: error: {message}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    # Refused before writing: the directory holds the lock file alone, still naming the holder.
    assert os.listdir(tmp_path) == [LOCK_FILE]
    assert (tmp_path / LOCK_FILE).read_text().startswith(f"pid {holder.pid} on ")


@pytest.mark.slow
def test_a_killed_holder_leaves_no_stuck_lock(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # The lock file remains, naming the dead process; the lock itself went with it.
    assert (tmp_path / LOCK_FILE).read_text().startswith(f"pid {holder.pid} on ")
    with RunLock(str(tmp_path)):
        assert (tmp_path / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} on ")


@pytest.mark.slow
def test_a_second_train_py_on_the_run_dir_of_a_running_one_is_refused(tmp_path, bundled_digits):
    """Two real trainings, one command: the second stops at once with one line naming the first,
    and the first trains on untouched."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "train.py", "--run-dir", str(run_dir)]
    command += ["--data-dir", str(small_idx_dir(tmp_path / "digits", bundled_digits))]
    command += ["--epochs", "100", "--batch-size", "32", "--latent-dims", "2"]
    command += ["--base-filters", "4", "--sample-every", "100", "--no-export"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # config.json is written once the first training has prepared the run directory.
        deadline = time.monotonic() + 120
        while not (run_dir / "config.json").exists() and first.poll() is None:
            assert time.monotonic() < deadline, "the first training did not start within 120 s"
            time.sleep(0.05)
        assert first.poll() is None, "the first training ended early"
        record = (run_dir / "config.json").read_bytes()

        second = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
        )

        assert second.returncode == 2, second.stderr[-2000:]
        assert second.stderr.splitlines() == [
            f"train.py: error: --run-dir {run_dir}: another training is using it (pid "
            f"{first.pid} on {socket.gethostname()}); wait for it to finish, stop it, or pass "
            "another --run-dir"
        ]
        assert first.poll() is None, "the first training stopped"
        assert (run_dir / "config.json").read_bytes() == record
    finally:
        first.kill()
        first.wait(timeout=30)
