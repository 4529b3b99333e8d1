"""Kill `train.py` after some epochs, run the same command again: it continues, not restarts."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT
from tests.idx_files import small_idx_dir

EPOCHS = 4


def history_epochs(path):
    if not path.exists():
        return []
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    # A row read while it is being written may be cut short: count only complete ones.
    return [int(row["epoch"]) for row in rows if row.get(list(row)[-1]) not in (None, "")]


@pytest.mark.slow
def test_killed_training_continues_from_its_last_finished_epoch(tmp_path, bundled_digits):
    run_dir = tmp_path / "run"
    command = [sys.executable, "train.py", "--data-dir"]
    command += [str(small_idx_dir(tmp_path / "digits", bundled_digits)), "--run-dir", str(run_dir)]
    command += ["--epochs", str(EPOCHS), "--batch-size", "32", "--latent-dims", "2"]
    command += ["--base-filters", "4", "--sample-every", "2", "--no-export"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    history = run_dir / "history.csv"

    first = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(history_epochs(history)) < 2 and first.poll() is None:
            assert time.monotonic() < deadline, "no 2 epochs within 120 s"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, "the first run ended before it was killed"
    assert not (run_dir / "model.keras").exists()
    resumed_from = json.loads((run_dir / "backup" / "state.json").read_text())["epoch"]
    assert resumed_from in (1, 2)  # epoch 2's backup is committed just after its CSV row

    second = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"Resuming from the backup of epoch {resumed_from}" in second.stderr
    # It trained the remaining epochs only, and the history counts on without a repeat.
    trained = [line for line in second.stdout.splitlines() if line.startswith("Epoch ")]
    assert [line.split()[1] for line in trained] == [
        f"{epoch}/{EPOCHS}" for epoch in range(resumed_from + 1, EPOCHS + 1)
    ]
    assert history_epochs(history) == list(range(EPOCHS))
    assert (run_dir / "model.keras").is_file() and not (run_dir / "backup").exists()
