"""Kill `train.py` with SIGKILL after some epochs, run the same command again: it continues from
the state of its last finished epoch (weights, optimizer moments and step, a reduced learning
rate), not from a fresh model."""

import csv
import json
import os
import re
import sys

import numpy as np
import pytest

from tests.idx_files import small_idx_dir
from tests.processes import killed_when_stopped, run_successfully

EPOCHS = 4
# The first run is killed once epoch 2 is finished and backed up.
KILLED_AFTER = 2
LEARNING_RATE = 1e-3

# train.py, with one callback added after the run's own (so after the backup's): it writes the
# model's and optimizer's state to $STATE_DIR when training begins (after a restore) and at each
# epoch end (after that epoch's backup), and after epoch $STOP_AFTER it signals $STOPPED and
# waits to be killed. It only observes: the run trains and restores as train.py does.
RECORDING_TRAIN = """
import os, runpy, sys, time
import keras
import numpy as np
import callbacks

def record(model, name):
    optimizer = model.optimizer
    arrays = {f"weight_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    for i, variable in enumerate(optimizer.variables):
        arrays[f"optimizer_{i}"] = np.asarray(variable)
        arrays[f"optimizer_path_{i}"] = np.array(variable.path)
    arrays["iterations"] = np.asarray(optimizer.iterations)
    arrays["learning_rate"] = np.asarray(optimizer.learning_rate)
    np.savez(os.path.join(os.environ["STATE_DIR"], name + ".npz"), **arrays)

class Recorder(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        record(self.model, "begin")

    def on_epoch_end(self, epoch, logs=None):
        record(self.model, f"epoch_{epoch + 1}")
        if epoch + 1 == int(os.environ.get("STOP_AFTER", "0")):
            open(os.environ["STOPPED"], "w").close()
            time.sleep(600)

for_run = callbacks.for_run
callbacks.for_run = lambda *args, **kwargs: for_run(*args, **kwargs) + [Recorder()]
sys.argv[0] = "train.py"
runpy.run_path("train.py", run_name="__main__")
"""


def history_epochs(path):
    with open(path, newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def load_state(path):
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


@pytest.mark.slow
def test_killed_training_resumes_the_state_of_its_last_finished_epoch(tmp_path, bundled_digits):
    run_dir = tmp_path / "run"
    args = ["--data-dir", str(small_idx_dir(tmp_path / "digits", bundled_digits))]
    args += ["--run-dir", str(run_dir), "--epochs", str(EPOCHS), "--batch-size", "32"]
    args += ["--latent-dims", "2", "--base-filters", "4", "--sample-every", "100", "--no-export"]
    # No val_loss decrease counts as an improvement: the learning rate is halved after every
    # epoch but the first (lr-patience 0), and early stopping waits longer than the run.
    args += ["--learning-rate", str(LEARNING_RATE), "--lr-patience", "0", "--lr-factor", "0.5"]
    args += ["--min-delta", "1e9", "--patience", "10"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    first_states, second_states = tmp_path / "first", tmp_path / "second"
    first_states.mkdir()
    second_states.mkdir()
    stopped = tmp_path / "stopped"

    with killed_when_stopped(
        [sys.executable, "-c", RECORDING_TRAIN, *args],
        {
            **env,
            "STATE_DIR": str(first_states),
            "STOP_AFTER": str(KILLED_AFTER),
            "STOPPED": str(stopped),
        },
        stopped,
        timeout=240,
    ):
        pass  # What the kill leaves is checked below, after it.
    assert not (run_dir / "model.keras").exists()
    assert json.loads((run_dir / "backup" / "state.json").read_text())["epoch"] == KILLED_AFTER
    saved = load_state(first_states / f"epoch_{KILLED_AFTER}.npz")
    # A plateau reduction happened before the kill: a reset rate would differ.
    assert float(saved["learning_rate"]) == pytest.approx(LEARNING_RATE / 2)

    second = run_successfully(
        [sys.executable, "-c", RECORDING_TRAIN, *args],
        timeout=240,
        env={**env, "STATE_DIR": str(second_states)},
    )
    assert f"Resuming from the backup of epoch {KILLED_AFTER}" in second.stderr

    # The state the second run starts from is the one the first had at the end of epoch 2:
    # every weight (BatchNorm statistics included), the optimizer's step, moments and rate.
    restored = load_state(second_states / "begin.npz")
    assert sorted(restored) == sorted(saved)
    assert int(restored["iterations"]) == int(saved["iterations"]) == KILLED_AFTER * 8
    assert float(restored["learning_rate"]) == float(saved["learning_rate"])
    weights = [key for key in saved if key.startswith("weight_")]
    moments = [key for key in saved if key.startswith("optimizer_") and "path" not in key]
    assert len(weights) > 10 and len(moments) > 2 * 10
    for key in weights + moments:
        label = str(saved.get(key.replace("optimizer_", "optimizer_path_"), key))
        np.testing.assert_array_equal(restored[key], saved[key], err_msg=label)
    # Trained on from there: epochs 3 and 4 only, the rate halved again after each.
    assert re.findall(r"^Epoch (\d+/\d+)$", second.stdout, flags=re.MULTILINE) == ["3/4", "4/4"]
    assert float(load_state(second_states / "epoch_3.npz")["learning_rate"]) == pytest.approx(
        LEARNING_RATE / 4
    )
    assert int(load_state(second_states / "epoch_4.npz")["iterations"]) == EPOCHS * 8
    assert history_epochs(run_dir / "history.csv") == list(range(EPOCHS))
    assert (run_dir / "model.keras").is_file() and not (run_dir / "backup").exists()
