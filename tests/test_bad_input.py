"""Bad input to `python train.py`: one line naming the culprit, exit code 2, nothing written.

Every case fails before TensorFlow starts (`ladder_vae.preflight`), so each run takes a fraction
of a second and stderr holds nothing but the error line.
"""

import json
import os
import sys

import numpy as np
import pytest

from ladder_vae.config import TrainConfig
from tests.idx_files import write_idx
from tests.processes import refusal_line


def write_digits(directory, count=64, side=28, labels=True, test_side=None):
    """Random 'digits' as IDX files in `directory`; the content does not matter here."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, size, square in (("train", count, side), ("t10k", 16, test_side or side)):
        write_idx(
            directory / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (size, square, square))
        )
        if labels:
            write_idx(directory / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, size))
    return directory


def write_run_record(run_dir, image_shape=(28, 28, 1), **config):
    """The config.json of an earlier run that finished an epoch, as `training.train` writes it,
    and the commit point of that epoch's backup: the default model unless `config` says
    otherwise."""
    run_dir.mkdir(parents=True)
    record = {
        "config": {
            "latent_dims": list(TrainConfig().latent_dims),
            "base_filters": 32,
            "level_input": TrainConfig().level_input,
            **config,
        }
    }
    record["image_shape"] = list(image_shape)
    (run_dir / "config.json").write_text(json.dumps(record))
    (run_dir / "backup").mkdir()
    state = {"epoch": 1, "weights": "epoch_0001.weights.h5", "callbacks": {}}
    (run_dir / "backup" / "state.json").write_text(json.dumps(state))
    return run_dir


def data_dir(tmp):
    return write_digits(tmp / "digits")


# Each case: (the flags, given tmp_path; the fragments the error line must hold). "{tmp}" in a
# fragment stands for tmp_path. Flags without a data flag get valid IDX digits; without --run-dir,
# a run directory that must still not exist afterwards.
CASES = {
    # Flag values.
    "epochs zero": (
        lambda tmp: ["--epochs", "0"],
        ["--epochs must be a positive integer", "Received: 0"],
    ),
    "epochs negative": (lambda tmp: ["--epochs", "-5"], ["--epochs", "Received: -5"]),
    "epochs not a number": (
        lambda tmp: ["--epochs", "ten"],
        ["--epochs", "invalid int value", "'ten'"],
    ),
    "epochs fractional": (lambda tmp: ["--epochs", "2.5"], ["--epochs", "'2.5'"]),
    "batch size zero": (lambda tmp: ["--batch-size", "0"], ["--batch-size", "Received: 0"]),
    "batch size negative": (lambda tmp: ["--batch-size", "-32"], ["--batch-size", "Received: -32"]),
    "batch size not a number": (lambda tmp: ["--batch-size", "big"], ["--batch-size", "'big'"]),
    # The unbiased MMD of one code against one prior draw is -2k(x, y): always negative.
    "batch size one": (
        lambda tmp: ["--batch-size", "1"],
        ["--batch-size must be at least 2", "MMD", "Received: 1"],
    ),
    "latent size zero": (lambda tmp: ["--latent-dims", "2,0,2"], ["--latent-dims", "(2, 0, 2)"]),
    "latent size negative": (lambda tmp: ["--latent-dims", "2,-1"], ["--latent-dims", "(2, -1)"]),
    "latent size not a number": (lambda tmp: ["--latent-dims", "2,x"], ["--latent-dims", "'2,x'"]),
    "latent sizes empty": (lambda tmp: ["--latent-dims", ","], ["--latent-dims", "e.g. 2,2,4"]),
    # A doubled comma would drop a level, not name two.
    "latent sizes with an empty one": (
        lambda tmp: ["--latent-dims", "2,,2"],
        ["--latent-dims", "one integer per level", "'2,,2'"],
    ),
    "KL weights for another number of levels": (
        lambda tmp: ["--level-kl-weights", "0.1,0"],
        ["--level-kl-weights", "one finite weight >= 0 per level (3 from", "Received: 0.1,0"],
    ),
    "base filters zero": (lambda tmp: ["--base-filters", "0"], ["--base-filters", "Received: 0"]),
    "mmd weight negative": (lambda tmp: ["--mmd-weight", "-1"], ["--mmd-weight", "Received: -1.0"]),
    "mmd weight not a number": (lambda tmp: ["--mmd-weight", "lots"], ["--mmd-weight", "'lots'"]),
    "ssim weight NaN": (
        lambda tmp: ["--ssim-weight", "nan"],
        ["--ssim-weight", "finite", "Received: nan"],
    ),
    "ssim weight infinite": (
        lambda tmp: ["--ssim-weight", "inf"],
        ["--ssim-weight", "Received: inf"],
    ),
    "sigma zero": (
        lambda tmp: ["--reconstruction-sigma", "0"],
        ["--reconstruction-sigma", "Received: 0.0"],
    ),
    "learning rate zero": (
        lambda tmp: ["--learning-rate", "0"],
        ["--learning-rate", "> 0", "Received: 0.0"],
    ),
    "learning rate negative": (
        lambda tmp: ["--learning-rate", "-1e-3"],
        ["--learning-rate", "> 0", "Received: -0.001"],
    ),
    "learning rate not a number": (lambda tmp: ["--learning-rate", "fast"], ["'fast'"]),
    "lr factor above 1": (lambda tmp: ["--lr-factor", "2"], ["--lr-factor", "below 1", "2.0"]),
    "cosine warm-up as long as the run": (
        lambda tmp: ["--lr-schedule", "cosine", "--warmup-epochs", "1"],
        ["--warmup-epochs 1 leaves no epoch for the cosine decay of --epochs 1"],
    ),
    "seed negative": (lambda tmp: ["--seed", "-1"], ["--seed", "[0, 2**32 - 1]", "-1"]),
    "seed too large": (lambda tmp: ["--seed", str(2**32)], ["--seed", str(2**32)]),
    "unknown dataset": (lambda tmp: ["--dataset", "cifar"], ["--dataset", "'cifar'", "mnist"]),
    "unknown flag": (lambda tmp: ["--epocs", "3"], ["unrecognized arguments: --epocs 3"]),
    # Model size: what no image size or machine can hold is refused with the estimate.
    "more levels than the images can halve": (
        lambda tmp: ["--latent-dims", "1,1,1,1,1,1,1,1,1,1"],
        ["--latent-dims", "10 levels", "28x28", "at most 5"],
    ),
    "model far beyond the memory": (
        lambda tmp: ["--base-filters", "100000"],
        ["--base-filters 100000", "estimated", "parameters", "GiB", "available"],
    ),
    # Data.
    "data dir missing": (
        lambda tmp: ["--data-dir", str(tmp / "nowhere")],
        ["--data-dir {tmp}/nowhere: no such directory"],
    ),
    "data dir is a file": (
        lambda tmp: ["--data-dir", str(write_digits(tmp / "d") / "train-images-idx3-ubyte")],
        ["--data-dir {tmp}/d/train-images-idx3-ubyte: is not a directory"],
    ),
    "data dir a symlink loop": (
        lambda tmp: ["--data-dir", str(_symlink_loop(tmp / "loop"))],
        ["--data-dir {tmp}/loop: symbolic link loop"],
    ),
    "data dir empty": (
        lambda tmp: ["--data-dir", str(tmp)],
        ["--data-dir {tmp}: no training images", "train-images-idx3-ubyte"],
    ),
    "images file empty": (
        lambda tmp: _damage(tmp, lambda path: path.write_bytes(b"")),
        ["{tmp}/digits/train-images-idx3-ubyte: empty file"],
    ),
    "images file truncated": (
        lambda tmp: _damage(tmp, lambda path: path.write_bytes(path.read_bytes()[:1000])),
        ["{tmp}/digits/train-images-idx3-ubyte: truncated", "64x28x28"],
    ),
    "images file not IDX": (
        lambda tmp: _damage(tmp, lambda path: path.write_bytes(b"<html>404</html>")),
        ["{tmp}/digits/train-images-idx3-ubyte: not an IDX file"],
    ),
    "images file corrupt gzip": (
        lambda tmp: _damage(tmp, lambda path: path.write_bytes(b"\x1f\x8b\x08\x00garbage")),
        ["{tmp}/digits/train-images-idx3-ubyte: cannot read"],
    ),
    "images file 4-D (colour)": (
        lambda tmp: _damage(tmp, lambda path: write_idx(path, np.zeros((4, 28, 28, 3)))),
        ["{tmp}/digits/train-images-idx3-ubyte: colour/4-D IDX images", "not supported (yet)"],
    ),
    "images file a broken symlink": (
        lambda tmp: _damage(tmp, lambda path: _relink(path, tmp / "gone")),
        ["{tmp}/digits/train-images-idx3-ubyte: broken symbolic link to {tmp}/gone"],
    ),
    "labels missing": (
        lambda tmp: ["--data-dir", str(write_digits(tmp / "d", labels=False))],
        ["{tmp}/d: labels missing for train-images-idx3-ubyte"],
    ),
    "images too small for the model": (
        lambda tmp: ["--data-dir", str(write_digits(tmp / "d", side=6))],
        ["{tmp}/d/train-images-idx3-ubyte: images are 6x6", "7x7"],
    ),
    "test images of another size": (
        lambda tmp: ["--data-dir", str(write_digits(tmp / "d", test_side=32))],
        ["{tmp}/d: test images are (32, 32, 1) but training images are (28, 28, 1)"],
    ),
    "batch larger than the data": (
        lambda tmp: ["--data-dir", str(data_dir(tmp)), "--batch-size", "65"],
        ["--batch-size 65: more than the 64 training images", "{tmp}/digits"],
    ),
    "TFDS data dir is a file": (
        lambda tmp: ["--tfds-data-dir", str(_file(tmp / "tfds"))],
        ["--tfds-data-dir {tmp}/tfds: exists and is not a directory"],
    ),
    # Run directory.
    "run dir empty": (
        lambda tmp: ["--run-dir", ""],
        ["--run-dir '': empty path"],
    ),
    "run dir is a file": (
        lambda tmp: ["--run-dir", str(_file(tmp / "run"))],
        ["--run-dir {tmp}/run: exists and is not a directory"],
    ),
    "run dir below a file": (
        lambda tmp: ["--run-dir", str(_file(tmp / "run") / "sub")],
        ["--run-dir {tmp}/run/sub: cannot create it ({tmp}/run is not a directory)"],
    ),
    # sysfs takes no new files, not even from root, for whom permission bits mean nothing.
    "run dir not writable": (
        lambda tmp: ["--run-dir", "/sys/kernel"],
        ["--run-dir /sys/kernel: not writable"],
    ),
    "run dir cannot be created": (
        lambda tmp: ["--run-dir", "/sys/ladder-vae-run"],
        ["--run-dir /sys/ladder-vae-run: cannot create it (/sys:"],
    ),
    "run dir holds a finished run": (
        lambda tmp: ["--run-dir", str(_finished_run(tmp / "run"))],
        ["--run-dir {tmp}/run: holds a finished run (model.keras)"],
    ),
    "resume with images of another size": (
        lambda tmp: ["--run-dir", str(write_run_record(tmp / "run", image_shape=(32, 32, 1)))],
        ["{tmp}/digits/train-images-idx3-ubyte: images are 28x28x1", "trained on 32x32x1"],
    ),
    "resume with another channel count": (
        lambda tmp: ["--run-dir", str(write_run_record(tmp / "run", image_shape=(28, 28, 3)))],
        ["images are 28x28x1", "--run-dir {tmp}/run trained on 28x28x3"],
    ),
    "resume with other latent sizes": (
        lambda tmp: [
            "--run-dir",
            str(write_run_record(tmp / "run", latent_dims=[2, 2, 4])),
            "--latent-dims",
            "4,4",
        ],
        ["--latent-dims 4,4: the run in --run-dir {tmp}/run was started with --latent-dims 2,2,4"],
    ),
    "resume under another default MMD weight": (
        lambda tmp: ["--run-dir", str(write_run_record(tmp / "run", mmd_weight=30.0))],
        ["--mmd-weight 10: the run in --run-dir {tmp}/run was started with --mmd-weight 30"],
    ),
    "resume a run of earlier defaults": (
        lambda tmp: [
            "--run-dir",
            str(
                write_run_record(
                    tmp / "run", latent_dims=[2, 2, 4], level_input="modulated", mmd_weight=30.0
                )
            ),
        ],
        [
            "--latent-dims 1,1,6, --level-input modulated-fj, --mmd-weight 10: the run in "
            "--run-dir {tmp}/run was started with --latent-dims 2,2,4, --level-input modulated, "
            "--mmd-weight 30 ({tmp}/run/config.json); pass the same values to resume it"
        ],
    ),
    "resume with another SSIM weight": (
        lambda tmp: [
            "--run-dir",
            str(write_run_record(tmp / "run", ssim_weight=10.0)),
            "--ssim-weight",
            "0",
        ],
        ["--ssim-weight 0: the run in --run-dir {tmp}/run was started with --ssim-weight 10"],
    ),
    "resume with another level input": (
        lambda tmp: [
            "--run-dir",
            str(write_run_record(tmp / "run")),
            "--level-input",
            "concatenated",
        ],
        [
            "--level-input concatenated: the run in --run-dir {tmp}/run was started with "
            "--level-input modulated-fj"
        ],
    ),
    "resume with other base filters": (
        lambda tmp: [
            "--run-dir",
            str(write_run_record(tmp / "run")),
            "--base-filters",
            "16",
        ],
        ["--base-filters 16: the run in --run-dir {tmp}/run was started with --base-filters 32"],
    ),
    "resume with a corrupt config.json": (
        lambda tmp: ["--run-dir", str(_corrupt_record(tmp / "run"))],
        ["{tmp}/run/config.json: unreadable record", "--run-dir {tmp}/run"],
    ),
}


def _damage(tmp, how):
    """Valid digits whose training images file `how` then spoils."""
    directory = data_dir(tmp)
    how(directory / "train-images-idx3-ubyte")
    return ["--data-dir", str(directory)]


def _symlink_loop(path):
    os.symlink(path.name, path)
    return path


def _relink(path, target):
    path.unlink()
    os.symlink(target, path)


def _file(path):
    path.write_text("not a directory")
    return path


def _finished_run(run_dir):
    """A run with its final model and export and without its backup: nothing left to do."""
    write_run_record(run_dir)
    (run_dir / "model.keras").write_bytes(b"a trained model")
    (run_dir / "backup" / "state.json").unlink()
    (run_dir / "backup").rmdir()
    (run_dir / "saved_model").mkdir()
    (run_dir / "saved_model" / "saved_model.pb").write_bytes(b"an export")
    return run_dir


def _corrupt_record(run_dir):
    write_run_record(run_dir)
    (run_dir / "config.json").write_text('{"config": {"latent_dims": [2, 2')
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_naming_the_culprit_with_exit_code_2(tmp_path, case):
    make_args, fragments = CASES[case]
    args = make_args(tmp_path)
    if "--data-dir" not in args and "--tfds-data-dir" not in args:
        args += ["--data-dir", str(data_dir(tmp_path))]
    if "--run-dir" not in args:
        args += ["--run-dir", str(tmp_path / "new-run")]
    # refusal_line also checks that nothing is half-written: no new run directory, nothing new or
    # changed in an existing one.
    line = refusal_line(
        [sys.executable, "train.py", "--epochs", "1", "--no-export", *args],
        "train.py: error: ",
        tmp_path,
    )
    for fragment in fragments:
        assert fragment.format(tmp=tmp_path) in line
