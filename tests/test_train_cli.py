"""`python train.py` as a user runs it, in a subprocess."""

import csv
import glob
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from ladder_vae import data as data_lib
from tests.conftest import REPO_ROOT


def run_train(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )


@pytest.mark.slow
def test_train_writes_a_complete_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(
        "--data-dir",
        data_lib.BUNDLED_MNIST_DIR,
        "--epochs",
        "2",
        "--batch-size",
        "128",
        "--base-filters",
        "8",
        "--run-dir",
        str(run_dir),
        "--no-export",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["epochs"] == 2 and config["config"]["latent_dims"] == [1, 1, 6]
    assert config["data"]["kind"] == "idx" and config["data"]["train_examples"] == 3000
    assert config["image_shape"] == [28, 28, 1]
    assert config["versions"]["keras"].startswith("3.")
    assert glob.glob(str(run_dir / "logs" / "**" / "events.out.tfevents.*"), recursive=True)
    pngs = sorted(glob.glob(str(run_dir / "samples" / "*.png")))
    assert pngs, "no sample images"
    width, height = Image.open(pngs[-1]).size
    assert width > 28 and height > 28
    with open(run_dir / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    assert {"loss", "val_loss", "mmd", "val_ssim", "reconstruction"} <= set(rows[0])
    assert float(rows[-1]["val_loss"]) < float(rows[0]["loss"])
    assert (run_dir / "model.keras").is_file()


@pytest.mark.slow
def test_bad_flag_gives_one_line_and_exit_code_2():
    result = run_train("--epochs", "0")
    assert result.returncode == 2
    assert "--epochs" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_says_whether_the_same_command_resumes(tmp_path, monkeypatch, capsys):
    import train as train_cli
    from ladder_vae import training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_checked", interrupted)
    run_dir = tmp_path / "run"
    assert train_cli.main(["--run-dir", str(run_dir)]) == 130
    assert capsys.readouterr().err == (
        "train.py: interrupted; no epoch had finished; the same command starts the run over\n"
    )
    (run_dir / "backup").mkdir(parents=True)
    (run_dir / "backup" / "state.json").write_text('{"epoch": 1}')
    assert train_cli.main(["--run-dir", str(run_dir)]) == 130
    assert capsys.readouterr().err == (
        "train.py: interrupted; run the same command again to resume from the last finished "
        "epoch\n"
    )
