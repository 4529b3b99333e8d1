"""Out of memory and out of disk space: one line that says what ran out, exit status 2, and a
run directory that the same (or the corrected) command finishes."""

import csv
import errno
import glob
import os
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

import train as train_cli
from ladder_vae import atomic, preflight, resources
from ladder_vae.model import LadderVAE
from ladder_vae.run_lock import RunLock
from tests.conftest import REPO_ROOT
from tests.idx_files import small_idx_dir


def test_shortages_are_told_apart_from_each_other_and_from_other_errors():
    oom = [
        tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape"),
        # oneDNN under a memory limit (measured with `ulimit -v`): an AbortedError.
        tf.errors.AbortedError(None, None, "could not create a memory object, in file mkl.cc"),
        MemoryError(),
    ]
    full = [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        # h5py gives the errno only in its text; TensorFlow maps ENOSPC to RESOURCE_EXHAUSTED.
        RuntimeError("file write failed: ..., errno = 28, error message = 'No space left'"),
        tf.errors.ResourceExhaustedError(None, None, "saved_model.pb; No space left on device"),
    ]
    other = [ValueError("bad value"), OSError(errno.EACCES, "Permission denied")]
    assert [resources.is_out_of_memory(error) for error in oom + full + other] == [True] * 3 + [
        False
    ] * 6
    assert [resources.is_disk_full(error) for error in oom + full + other] == [False] * 3 + [
        True
    ] * 4 + [False] * 2


def test_atomic_writes_name_the_file_the_full_disk_stopped_and_leave_no_half(tmp_path):
    path = tmp_path / "best.keras"
    path.write_bytes(b"the previous model")
    with pytest.raises(resources.DiskFull, match=f"while writing {path}"):
        with atomic.atomic_path(str(path)) as temporary:
            open(temporary, "wb").write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert path.read_bytes() == b"the previous model" and os.listdir(tmp_path) == ["best.keras"]


def test_out_of_memory_is_one_line_and_the_run_dir_takes_a_corrected_command(
    tmp_path, bundled_digits, monkeypatch, capsys
):
    run_dir = tmp_path / "run"
    args = ["--data-dir", str(small_idx_dir(tmp_path / "digits", bundled_digits, 64, 16))]
    args += ["--run-dir", str(run_dir), "--epochs", "1", "--batch-size", "32", "--no-export"]

    def out_of_memory(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape[32,16384,1,1]\nand more lines"
        )

    monkeypatch.setattr(LadderVAE, "fit", out_of_memory)
    assert train_cli.main(args + ["--base-filters", "48", "--latent-dims", "2,2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert lines[0].startswith(
        "train.py: error: out of memory (ResourceExhaustedError: OOM when allocating tensor"
    )
    assert "--base-filters 48 and --latent-dims 2,2, each step's by --batch-size 32" in lines[0]
    assert lines[0].endswith("same --run-dir takes the corrected command")
    # Nothing holds the directory, and the corrected command passes every check.
    RunLock(str(run_dir)).acquire().release()
    preflight.check_run(train_cli.parse_args(args + ["--base-filters", "4"]))


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 1 MiB tmpfs (root only); `remount(size)` grows it."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(
            "mounting a small tmpfs is not permitted here (needs root or CAP_SYS_ADMIN): "
            + (result.stderr.strip() or f"mount exited {result.returncode}")
        )

    def remount(size):
        subprocess.run(
            ["mount", "-o", f"remount,size={size}", str(mount_point)], check=True, timeout=30
        )

    try:
        yield mount_point, remount
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


@pytest.mark.slow
def test_disk_full_is_one_line_then_the_same_command_resumes(
    tmp_path, bundled_digits, tiny_filesystem
):
    mount_point, remount = tiny_filesystem
    run_dir = mount_point / "run"
    # 4 epochs of a small model do not fit in 1 MiB: backups, best.keras, figures and logs.
    command = [sys.executable, "train.py", "--data-dir"]
    command += [str(small_idx_dir(tmp_path / "digits", bundled_digits, 128, 32))]
    command += ["--run-dir", str(run_dir), "--epochs", "4", "--batch-size", "32"]
    command += ["--latent-dims", "2", "--base-filters", "4", "--no-export"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}

    first = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240
    )

    assert first.returncode == 2, first.stderr[-3000:]
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    # Besides TensorFlow's start-up log lines, one line says what went wrong.
    errors = [
        line
        for line in first.stderr.splitlines()
        if line.startswith("train.py:") or "Error" in line or "Exception" in line
    ]
    assert len(errors) == 1 and errors[0].startswith(
        "train.py: error: no space left on device "
    ), first.stderr[-3000:]
    epoch = resources.last_backup_epoch(str(run_dir / "backup" / "state.json"))
    kept = f"the last complete backup is epoch {epoch}" if epoch else "no epoch had been backed"
    assert kept in errors[0] and errors[0].endswith("run the same command again to continue")
    # Nothing half-written: no temporary, and every file there is whole.
    assert not glob.glob(str(run_dir / "**" / ".*.tmp-*"), recursive=True)
    assert not (run_dir / "model.keras").exists()

    remount("32m")
    second = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240
    )

    assert second.returncode == 0, second.stderr[-3000:]
    if epoch:
        assert f"Resuming from the backup of epoch {epoch}" in second.stderr
    with open(run_dir / "history.csv", newline="") as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == [0, 1, 2, 3]
    keras.models.load_model(run_dir / "model.keras")
    assert not (run_dir / "backup").exists()
