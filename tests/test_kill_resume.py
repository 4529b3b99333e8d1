"""`kill -9` in the middle of a checkpoint write, then the same command again: the run resumes
and finishes, having lost at most the epoch in flight."""

import csv
import glob
import os
import sys
import zipfile

import pytest

from tests.idx_files import small_idx_dir
from tests.processes import killed_when_stopped, refusal_line, run_successfully

EPOCHS = 3
# train.py, except that the $STOP_NTH-th call of os.$STOP_IN (`replace` or `rename`) whose
# destination is named $STOP_AT, the call that would complete that file from its finished
# temporary, first signals $STOPPED and then waits: the test kills the process there, from
# outside, with SIGKILL.
STOPPING_TRAIN = """
import os, runpy, sys, time

rename = getattr(os, os.environ["STOP_IN"])
seen = 0

def stopping_rename(source, destination, *args, **kwargs):
    global seen
    if os.path.basename(str(destination)) == os.environ["STOP_AT"]:
        seen += 1
        if seen == int(os.environ["STOP_NTH"]):
            open(os.environ["STOPPED"], "w").close()
            time.sleep(600)
    return rename(source, destination, *args, **kwargs)

setattr(os, os.environ["STOP_IN"], stopping_rename)
sys.argv[0] = "train.py"
runpy.run_path("train.py", run_name="__main__")
"""


def history_epochs(run_dir):
    with open(run_dir / "history.csv", newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


@pytest.mark.slow
# Inside the write of epoch 2's backup: its weights, or the commit point (the second state.json)
# that would make it the backup to resume from.
@pytest.mark.parametrize("checkpoint, nth", [("epoch_0002.weights.h5", 1), ("state.json", 2)])
def test_kill_during_a_checkpoint_write_then_rerun_resumes(
    tmp_path, bundled_digits, checkpoint, nth
):
    run_dir = tmp_path / "run"
    args = ["--data-dir", str(small_idx_dir(tmp_path / "digits", bundled_digits, num_train=128))]
    args += ["--run-dir", str(run_dir), "--epochs", str(EPOCHS), "--batch-size", "32"]
    args += ["--base-filters", "8", "--sample-every", "100", "--no-export"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    stopped = tmp_path / "stopped"

    with killed_when_stopped(
        [sys.executable, "-c", STOPPING_TRAIN, *args],
        {**env, "STOP_IN": "replace", "STOP_AT": checkpoint, "STOP_NTH": str(nth),
         "STOPPED": str(stopped)},
        stopped,
        timeout=240,
    ) as first:
        # Mid-write: the lock names the writer, a temporary holds the new checkpoint.
        assert (run_dir / "run.lock").read_text().startswith(f"pid {first.pid} on ")
        temporaries = glob.glob(str(run_dir / "backup" / ".*.tmp-*"))
        assert temporaries
    # A kill a moment earlier leaves the temporary half written: make it so.
    with open(temporaries[0], "r+b") as file:
        file.truncate(os.path.getsize(temporaries[0]) // 2)
    # Epoch 2 ended and was logged, but its backup never completed: it is the epoch lost.
    assert history_epochs(run_dir) == [0, 1]

    second = run_successfully([sys.executable, "train.py", *args], timeout=240, env=env)

    assert "Resuming from the backup of epoch 1" in second.stderr
    assert f"Epoch 2/{EPOCHS}" in second.stdout and "Epoch 1/" not in second.stdout
    assert history_epochs(run_dir) == list(range(EPOCHS))
    for model_file in ("best.keras", "model.keras"):
        assert zipfile.is_zipfile(run_dir / model_file)
    # Finished: no backup to resume from, no temporary left, the lock free.
    assert not (run_dir / "backup").exists()
    assert not glob.glob(str(run_dir / "**" / ".*.tmp-*"), recursive=True)
    assert (run_dir / "run.lock").read_text() == ""


@pytest.mark.slow
def test_kill_during_the_final_export_then_rerun_finishes_the_run(tmp_path, bundled_digits):
    run_dir = tmp_path / "run"
    args = ["--data-dir", str(small_idx_dir(tmp_path / "digits", bundled_digits, 64, 32))]
    args += ["--run-dir", str(run_dir), "--epochs", "1", "--batch-size", "32"]
    args += ["--latent-dims", "2", "--base-filters", "4", "--sample-every", "100"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    stopped = tmp_path / "stopped"

    with killed_when_stopped(
        [sys.executable, "-c", STOPPING_TRAIN, *args],
        # The rename that completes the export to saved_model/, its temporary
        # .saved_model.tmp-<pid> complete.
        {**env, "STOP_IN": "rename", "STOP_AT": "saved_model", "STOP_NTH": "1",
         "STOPPED": str(stopped)},
        stopped,
        timeout=300,
    ):
        pass  # What the kill leaves is checked below, after it.
    # Killed inside the export: the final model saved, the SavedModel only a temporary.
    assert zipfile.is_zipfile(run_dir / "model.keras")
    assert not (run_dir / "saved_model").exists()
    assert glob.glob(str(run_dir / ".saved_model.tmp-*"))

    second = run_successfully([sys.executable, "train.py", *args], timeout=240, env=env)

    assert (
        f"The run in {run_dir} had finished training (model.keras); finishing it: export "
        "saved_model/" in second.stderr
    )
    assert "Epoch 1/" not in second.stdout
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()
    assert not glob.glob(str(run_dir / ".saved_model.tmp-*"))
    # Now finished: the same command is refused.
    third = refusal_line(
        [sys.executable, "train.py", *args], "train.py: error: ", tmp_path, env=env
    )
    assert "holds a finished run" in third
