"""The callbacks of a run (`callbacks/`, wired by `callbacks.for_run`), on tiny real data.

One module-scoped `fit` of 2 epochs with every callback feeds most tests (a `fit` costs seconds
of tracing); resume and NaN need their own.
"""

import csv
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
from PIL import Image

import callbacks as lvae_callbacks
from ladder_vae import data as data_lib
from ladder_vae import run_dir as run_dir_lib
from ladder_vae import saving, training, traversal
from ladder_vae.config import TrainConfig
from ladder_vae.errors import ConfigError
from ladder_vae.image_grid import save_png

NUM_TRAIN = 128
BATCH_SIZE = 32
STEPS_PER_EPOCH = NUM_TRAIN // BATCH_SIZE
# Level 1 is a 2-D manifold, level 2 a single sweep, level 3 three sweeps.
LATENT_DIMS = (2, 1, 3)
SIDE = 28
PAD = 2
SCALE = 2
# For tests about state rather than figures: a model that traces in a third of the time.
ONE_SMALL_LEVEL = dict(latent_dims=(2,), base_filters=4)


def tiny_config(run_dir, **overrides):
    settings = dict(
        latent_dims=LATENT_DIMS,
        base_filters=8,
        batch_size=BATCH_SIZE,
        epochs=2,
        run_dir=str(run_dir),
        sample_every=1,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def datasets(digits):
    train = data_lib.make_dataset(
        digits.train_images[:NUM_TRAIN], BATCH_SIZE, shuffle=True, seed=0, drop_remainder=True
    )
    return train, data_lib.make_dataset(digits.val_images[:64], BATCH_SIZE)


class WeightSnapshots(keras.callbacks.Callback):
    """Keeps the weights of every epoch end, to check what the figures and checkpoints hold."""

    def on_train_begin(self, logs=None):
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = self.model.get_weights()


@pytest.fixture(scope="module")
def run(tmp_path_factory, bundled_digits):
    """A 2-epoch run with every callback, cosine schedule with 1 warm-up epoch."""
    run_dir = tmp_path_factory.mktemp("callbacks") / "run"
    os.makedirs(run_dir)
    config = tiny_config(run_dir, lr_schedule="cosine", warmup_epochs=1)
    train, val = datasets(bundled_digits)
    model = training.build_model(config, (SIDE, SIDE, 1), steps_per_epoch=STEPS_PER_EPOCH)
    val_images = bundled_digits.val_images[:8].astype(np.float32) / 255.0
    callbacks = lvae_callbacks.for_run(config, str(run_dir), validation_images=val_images)
    snapshots = WeightSnapshots()
    history = model.fit(
        train,
        validation_data=val,
        epochs=config.epochs,
        callbacks=callbacks + [snapshots],
        shuffle=False,
        verbose=0,
    )
    return types.SimpleNamespace(
        run_dir=run_dir,
        config=config,
        model=model,
        history=history.history,
        callbacks={type(callback).__name__: callback for callback in callbacks},
        snapshots=snapshots.weights,
        val_images=val_images,
    )


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def read_png(path):
    with Image.open(path) as image:
        return np.asarray(image)


def tile(png, row, column, side=SIDE):
    """The image at (row, column) of a `make_grid` PNG, at its original resolution."""
    top = SCALE * (PAD + row * (side + PAD))
    left = SCALE * (PAD + column * (side + PAD))
    return png[top : top + SCALE * side : SCALE, left : left + SCALE * side : SCALE]


def as_pixels(images):
    return np.round(np.clip(keras.ops.convert_to_numpy(images), 0, 1) * 255)[..., 0]


def grid_size(rows, columns):
    return (SCALE * (columns * (SIDE + PAD) + PAD), SCALE * (rows * (SIDE + PAD) + PAD))


def assert_close_pixels(actual, expected):
    # One grey level of slack: the same float may round differently after float32 arithmetic.
    assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 1


# History, learning rate -----------------------------------------------------------------------


def test_history_csv_has_each_epoch_its_losses_and_learning_rate(run):
    rows = read_csv(run.run_dir / run_dir_lib.HISTORY_FILE)
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    for key in ("loss", "reconstruction", "mmd", "ssim", "ssim_loss"):
        assert f"val_{key}" in rows[0]
    for key in ("loss", "reconstruction", "mmd", "ssim", "ssim_loss", "learning_rate"):
        assert [float(row[key]) for row in rows] == pytest.approx(run.history[key], rel=1e-6)
    # Cosine with 1 warm-up epoch of 4 steps: the peak after epoch 1, 0 after the last epoch.
    schedule = run.model.optimizer._learning_rate
    assert float(schedule(STEPS_PER_EPOCH)) == pytest.approx(run.config.learning_rate)
    assert float(rows[0]["learning_rate"]) == pytest.approx(run.config.learning_rate, rel=1e-5)
    assert float(rows[1]["learning_rate"]) == pytest.approx(0.0, abs=1e-9)


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    config = TrainConfig(epochs=10, warmup_epochs=2, learning_rate=1e-3, lr_schedule="cosine")
    schedule = training.learning_rate_schedule(config, steps_per_epoch=5)
    rates = [float(schedule(step)) for step in range(51)]
    assert rates[0] == 0.0
    assert rates[5] == pytest.approx(0.5e-3) and rates[10] == pytest.approx(1e-3)
    assert rates[30] == pytest.approx(0.5e-3, rel=1e-4)  # halfway through the decay
    assert rates[50] == pytest.approx(0.0, abs=1e-9)
    assert all(later < earlier for earlier, later in zip(rates[10:50], rates[11:51]))


def test_plateau_schedule_is_a_constant_and_cosine_needs_decay_epochs():
    assert training.learning_rate_schedule(TrainConfig(learning_rate=3e-4)) == 3e-4
    config = TrainConfig(epochs=3, warmup_epochs=3, lr_schedule="cosine")
    with pytest.raises(ConfigError, match="--warmup-epochs 3 .* --epochs 3"):
        config.validate()


def test_callbacks_follow_the_schedule_flag(tmp_path):
    plateau = lvae_callbacks.for_run(tiny_config(tmp_path), str(tmp_path))
    cosine = lvae_callbacks.for_run(tiny_config(tmp_path, lr_schedule="cosine"), str(tmp_path))
    names = [type(callback).__name__ for callback in plateau]
    assert "ReduceLROnPlateau" in names
    assert "ReduceLROnPlateau" not in [type(callback).__name__ for callback in cosine]
    # The order the callbacks rely on: the NaN check first, the backup last.
    assert names[0] == "TerminateOnNonFinite" and names[-1] == "AtomicBackupAndRestore"
    assert names.index("LearningRateLogger") < names.index("ResumableCSVLogger")


# Figures --------------------------------------------------------------------------------------


def test_sample_grid_png_per_epoch_shows_the_fixed_noise_decoded(run):
    samples = run.run_dir / "samples"
    for epoch in (0, 1):
        png = read_png(samples / f"samples_epoch_{epoch + 1:04d}.png")
        assert png.shape == grid_size(8, 8)[::-1] and png.dtype == np.uint8
        assert png[0, 0] == 128  # the grey padding
        run.model.set_weights(run.snapshots[epoch])
        noise = traversal.fixed_prior_noise(LATENT_DIMS, 64, seed=run.config.seed)
        expected = as_pixels(run.model.decode(noise, training=False))
        for index in (0, 9, 63):
            assert_close_pixels(tile(png, *divmod(index, 8)), expected[index])


def test_samples_animation_has_one_labelled_frame_per_epoch(run):
    samples = run.run_dir / "samples"
    with Image.open(samples / "samples.gif") as gif:
        assert gif.n_frames == 2
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("L")))
    for epoch, frame in enumerate(frames):
        png = read_png(samples / f"samples_epoch_{epoch + 1:04d}.png")
        band = frame.shape[0] - png.shape[0]
        assert band > 0 and frame[:band].max() > 200  # the white "epoch N" label
        np.testing.assert_array_equal(frame[band:], png)


def test_animation_leaves_out_frames_after_the_last_epoch(tmp_path):
    for epoch in (1, 2, 3):
        grid = np.full((30, 30, 1), epoch / 10, dtype=np.float32)
        save_png(str(tmp_path / f"samples_epoch_{epoch:04d}.png"), grid)
    (tmp_path / "samples_epoch_x.png").write_bytes(b"not a frame")
    path = tmp_path / "samples.gif"
    assert lvae_callbacks.write_animation(str(tmp_path), str(path), last_epoch=2) == [1, 2]
    with Image.open(path) as gif:
        assert gif.n_frames == 2
        gif.seek(1)
        assert np.asarray(gif.convert("L"))[-1, -1] == round(0.2 * 255)
    assert lvae_callbacks.write_animation(str(tmp_path), str(tmp_path / "none.gif"), 0) == []
    assert not (tmp_path / "none.gif").exists()


def test_reconstruction_grid_pairs_validation_images_with_reconstructions(run):
    png = read_png(run.run_dir / "samples" / "reconstructions_epoch_0002.png")
    # 8 images, 4 pairs per row: 2 rows of 8 tiles.
    assert png.shape == grid_size(2, 8)[::-1]
    run.model.set_weights(run.snapshots[1])
    originals = as_pixels(run.val_images)
    reconstructions = as_pixels(run.model(run.val_images, training=False))
    for index in range(8):
        row, pair = divmod(index, 4)
        np.testing.assert_array_equal(tile(png, row, 2 * pair), originals[index])
        assert_close_pixels(tile(png, row, 2 * pair + 1), reconstructions[index])


def test_level_traversals_sweep_one_level_and_hold_the_others_at_the_first_sample(run):
    samples = run.run_dir / "samples"
    run.model.set_weights(run.snapshots[1])
    # The other levels hold the code of the sample grid's first image (of image `image` for a
    # one-dimensional level's row `image`), drawn here as it is.
    rng = np.random.default_rng(run.config.seed)
    noise = [rng.standard_normal((64, dim)).astype(np.float32) for dim in LATENT_DIMS]
    first = [level[0] for level in noise]

    def decoded(level, code, image=0):
        codes = [value[image][None].copy() for value in noise]
        codes[level][0] = code
        return as_pixels(run.model.decode(codes, training=False))[0]

    # Level 1 has 2 dims: a 9x9 manifold, z[0] from -2 (left) to 2, z[1] from 2 (top) to -2.
    png = read_png(samples / "traversal_level1_epoch_0002.png")
    assert png.shape == grid_size(9, 9)[::-1]
    assert_close_pixels(tile(png, 0, 0), decoded(0, [-2.0, 2.0]))
    assert_close_pixels(tile(png, 4, 4), decoded(0, [0.0, 0.0]))
    assert_close_pixels(tile(png, 8, 6), decoded(0, [1.0, -2.0]))
    # Level 2 has 1 dim: one row per image of the sample grid's first row.
    png = read_png(samples / "traversal_level2_epoch_0002.png")
    assert png.shape == grid_size(8, 9)[::-1]
    assert_close_pixels(tile(png, 0, 8), decoded(1, [2.0]))
    assert_close_pixels(tile(png, 5, 1), decoded(1, [-1.5], image=5))
    # Level 3 has 3 dims: one row per dim, the level's others at their draw.
    png = read_png(samples / "traversal_level3_epoch_0002.png")
    assert png.shape == grid_size(3, 9)[::-1]
    z3 = first[2]
    assert_close_pixels(tile(png, 1, 0), decoded(2, [z3[0], -2.0, z3[2]]))
    assert_close_pixels(tile(png, 2, 2), decoded(2, [z3[0], z3[1], -1.0]))


# TensorBoard ----------------------------------------------------------------------------------


def load_tensors(log_dir):
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        str(log_dir), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    return accumulator


def test_tensorboard_has_scalars_images_and_config(run):
    import tensorflow as tf

    logs = run.run_dir / run_dir_lib.LOGS_DIR
    expected = {"epoch_loss", "epoch_reconstruction", "epoch_mmd", "epoch_ssim", "epoch_ssim_loss"}
    train = load_tensors(logs / "train")
    assert expected | {"epoch_learning_rate"} <= set(train.Tags()["tensors"])
    losses = [float(tf.make_ndarray(event.tensor_proto)) for event in train.Tensors("epoch_loss")]
    assert losses == pytest.approx(run.history["loss"], rel=1e-6)
    assert expected <= set(load_tensors(logs / "validation").Tags()["tensors"])

    for run_name, tags in (
        ("samples", ["samples"]),
        ("reconstructions", ["reconstructions"]),
        ("traversals", ["traversal/level_1", "traversal/level_2", "traversal/level_3"]),
    ):
        images = load_tensors(logs / run_name)
        assert sorted(images.Tags()["tensors"]) == tags
        events = images.Tensors(tags[0])
        assert [event.step for event in events] == [0, 1]
        # An image summary holds width, height, then the PNG: the very file under samples/.
        width, height, encoded = tf.make_ndarray(events[-1].tensor_proto)
        name = "traversal_level1" if run_name == "traversals" else run_name
        png = read_png(run.run_dir / "samples" / f"{name}_epoch_0002.png")
        assert (int(height), int(width)) == png.shape
        np.testing.assert_array_equal(tf.io.decode_png(encoded).numpy()[..., 0], png)

    config = load_tensors(logs / "config")
    (event,) = config.Tensors("config")
    text = tf.make_ndarray(event.tensor_proto).item().decode()
    assert "| latent_dims | `[2, 1, 3]` |" in text and '| lr_schedule | `"cosine"` |' in text


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_server_serves_the_scalars_and_images(run, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_file = open(tmp_path / "tensorboard.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(run.run_dir / run_dir_lib.LOGS_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        scalars = {}
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "tensorboard.log").read_text()[-2000:]
            try:
                scalars = get_json(f"{base}/data/plugin/scalars/tags")
                if {"train", "validation"} <= set(scalars):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        assert {"train", "validation"} <= set(scalars), scalars
        assert {"epoch_loss", "epoch_mmd", "epoch_ssim_loss", "epoch_learning_rate"} <= set(
            scalars["train"]
        )
        assert {"epoch_loss", "epoch_reconstruction", "epoch_ssim"} <= set(scalars["validation"])
        points = get_json(f"{base}/data/plugin/scalars/scalars?run=train&tag=epoch_loss")
        assert [point[2] for point in points] == pytest.approx(run.history["loss"], rel=1e-6)

        images = get_json(f"{base}/data/plugin/images/tags")
        assert "samples" in images["samples"]
        assert {"traversal/level_1", "traversal/level_3"} <= set(images["traversals"])
        assert "reconstructions" in images["reconstructions"]
        entries = get_json(f"{base}/data/plugin/images/images?run=samples&tag=samples&sample=0")
        assert [entry["step"] for entry in entries] == [0, 1]
        with urllib.request.urlopen(
            f"{base}/data/plugin/images/individualImage?{entries[-1]['query']}", timeout=5
        ) as response:
            served = response.read()
        np.testing.assert_array_equal(
            np.asarray(Image.open(io.BytesIO(served))),
            read_png(run.run_dir / "samples" / "samples_epoch_0002.png"),
        )
        assert "config" in get_json(f"{base}/data/plugin/text/tags").get("config", [])
    finally:
        server.kill()
        server.wait(timeout=10)
        log_file.close()


# Checkpoints, early stopping, backup ----------------------------------------------------------


def best_epoch(run):
    return int(np.argmin(run.history["val_loss"]))


def assert_same_weights(actual, expected):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)


def test_best_model_is_the_epoch_with_the_lowest_val_loss(run):
    best = keras.models.load_model(run.run_dir / run_dir_lib.BEST_MODEL_FILE)
    assert_same_weights(best.get_weights(), run.snapshots[best_epoch(run)])
    # Written through a temporary name: none is left over.
    assert not [name for name in os.listdir(run.run_dir) if ".tmp" in name]


def test_early_stopping_restores_the_best_weights(run):
    early_stopping = run.callbacks["EarlyStopping"]
    assert early_stopping.restore_best_weights and early_stopping.best_epoch == best_epoch(run)
    assert early_stopping.best == pytest.approx(min(run.history["val_loss"]))


def test_backup_holds_the_last_epoch_and_the_callback_state(run):
    backup = run.run_dir / run_dir_lib.BACKUP_DIR
    state = json.loads((backup / "state.json").read_text())
    assert state["epoch"] == 2 and state["weights"] == "epoch_0002.weights.h5"
    saved = state["callbacks"]["EarlyStopping"]
    assert saved["attributes"]["best_epoch"] == best_epoch(run)
    assert saved["attributes"]["best"] == pytest.approx(min(run.history["val_loss"]))
    assert saved["attributes"]["wait"] == run.callbacks["EarlyStopping"].wait
    assert state["callbacks"]["BestModelCheckpoint"]["attributes"]["best"] == pytest.approx(
        min(run.history["val_loss"])
    )
    with np.load(backup / saved["best_weights"]) as arrays:
        assert_same_weights(
            [arrays[f"arr_{i}"] for i in range(len(arrays))], run.snapshots[best_epoch(run)]
        )
    # The epoch before stays as the fallback, with its own commit point; older epochs are gone.
    previous = json.loads((backup / "state.previous.json").read_text())
    assert previous["epoch"] == 1 and previous["weights"] == "epoch_0001.weights.h5"
    named = {
        saved["best_weights"]
        for kept in (state, previous)
        for saved in kept["callbacks"].values()
        if saved.get("best_weights")
    }
    assert sorted(os.listdir(backup)) == sorted(
        {"state.json", "state.previous.json", state["weights"], previous["weights"], *named}
    )


def test_bad_callback_arguments_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="filepath=.*best.h5"):
        lvae_callbacks.BestModelCheckpoint(str(tmp_path / "best.h5"))
    with pytest.raises(ValueError, match="one callback per class"):
        lvae_callbacks.AtomicBackupAndRestore(
            str(tmp_path), [keras.callbacks.EarlyStopping(), keras.callbacks.EarlyStopping()]
        )
    with pytest.raises(ValueError, match="every=0"):
        lvae_callbacks.SampleGrid(str(tmp_path), every=0)
    with pytest.raises(ValueError, match="dtype=uint8"):
        lvae_callbacks.ReconstructionGrid(str(tmp_path), np.zeros((2, 28, 28, 1), np.uint8))


class Interrupt(Exception):
    pass


def interrupt_at(epoch):
    def on_epoch_begin(index, logs=None):
        if index == epoch:
            raise Interrupt

    return keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin)


def test_resume_continues_epochs_optimizer_schedule_and_callback_state(tmp_path, bundled_digits):
    """Interrupted after epoch 2 of 3, then run again: it trains epoch 3 only, with the
    optimizer, the learning rate (halved once by then) and the callbacks' state of the end of
    epoch 2."""
    run_dir = tmp_path / "run"
    # No decrease counts as an improvement, and lr_patience is 0: ReduceLROnPlateau halves the
    # rate after every epoch but the first, so the rate to restore differs from the initial one.
    config = tiny_config(
        run_dir,
        epochs=3,
        lr_patience=0,
        early_stopping_min_delta=1e9,
        early_stopping_patience=5,
        **ONE_SMALL_LEVEL,
    )
    train, val = datasets(bundled_digits)

    def start():
        model = training.build_model(config, (SIDE, SIDE, 1))
        callbacks = lvae_callbacks.for_run(config, str(run_dir))
        return model, callbacks, {type(callback).__name__: callback for callback in callbacks}

    model, callbacks, by_name = start()
    with pytest.raises(Interrupt):
        model.fit(
            train,
            validation_data=val,
            epochs=3,
            callbacks=callbacks + [interrupt_at(2)],
            shuffle=False,
            verbose=0,
        )
    before = {
        "iterations": int(model.optimizer.iterations),
        "learning_rate": float(model.optimizer.learning_rate),
        "weights": model.get_weights(),
        "early_stopping": (by_name["EarlyStopping"].wait, by_name["EarlyStopping"].best),
        "plateau": (by_name["ReduceLROnPlateau"].wait, by_name["ReduceLROnPlateau"].best),
    }
    assert before["learning_rate"] == pytest.approx(config.learning_rate / 2)
    backup = run_dir / run_dir_lib.BACKUP_DIR
    # As if killed after the CSV row of epoch 3 but before its backup, and while writing one.
    with open(run_dir / run_dir_lib.HISTORY_FILE, "a") as file:
        file.write("2" + ",0" * 11 + "\n")
    (backup / "epoch_0003.tmp-999.weights.h5").write_bytes(b"half a file")

    model, callbacks, by_name = start()
    restored = {}

    def on_train_begin(logs=None):
        restored["iterations"] = int(model.optimizer.iterations)
        restored["learning_rate"] = float(model.optimizer.learning_rate)
        restored["weights"] = model.get_weights()
        restored["early_stopping"] = (
            by_name["EarlyStopping"].wait,
            by_name["EarlyStopping"].best,
        )
        restored["plateau"] = (by_name["ReduceLROnPlateau"].wait, by_name["ReduceLROnPlateau"].best)
        restored["files"] = sorted(os.listdir(backup))

    history = model.fit(
        train,
        validation_data=val,
        epochs=3,
        callbacks=callbacks + [keras.callbacks.LambdaCallback(on_train_begin=on_train_begin)],
        shuffle=False,
        verbose=0,
    )
    assert restored["iterations"] == before["iterations"] == 2 * STEPS_PER_EPOCH
    assert restored["learning_rate"] == before["learning_rate"]
    assert restored["early_stopping"] == before["early_stopping"]
    assert restored["plateau"] == before["plateau"]
    assert_same_weights(restored["weights"], before["weights"])
    assert "epoch_0003.tmp-999.weights.h5" not in restored["files"]
    # One more epoch, not three; every epoch once in the CSV.
    assert len(history.history["loss"]) == 1
    assert int(model.optimizer.iterations) == 3 * STEPS_PER_EPOCH
    assert float(model.optimizer.learning_rate) == pytest.approx(config.learning_rate / 4)
    rows = read_csv(run_dir / run_dir_lib.HISTORY_FILE)
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert float(rows[2]["loss"]) == pytest.approx(history.history["loss"][0], rel=1e-6)
    assert json.loads((backup / "state.json").read_text())["epoch"] == 3


# NaN ------------------------------------------------------------------------------------------


def poison_at(epoch):
    """Sets the output layer's weights to NaN when `epoch` (0-based) begins."""

    def on_epoch_begin(index, logs=None):
        if index == epoch:
            kernel = next(
                weight for weight in model_holder["model"].weights if "decoder_0" in weight.path
            )
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))

    model_holder = {}
    return model_holder, keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_state(tmp_path, bundled_digits):
    run_dir = tmp_path / "run"
    config = tiny_config(run_dir, epochs=3, **ONE_SMALL_LEVEL)
    train, val = datasets(bundled_digits)
    model = training.build_model(config, (SIDE, SIDE, 1))
    callbacks = lvae_callbacks.for_run(config, str(run_dir))
    holder, poison = poison_at(1)
    holder["model"] = model
    snapshots = WeightSnapshots()
    with pytest.raises(lvae_callbacks.NonFiniteLossError) as raised:
        model.fit(
            train,
            validation_data=val,
            epochs=3,
            callbacks=callbacks + [poison, snapshots],
            shuffle=False,
            verbose=0,
        )
    error = raised.value
    assert (error.epoch, error.step, error.name) == (2, 1, "loss")
    assert str(error) == "loss is nan at epoch 2, step 1 of 4"
    # Nothing was written from the NaN weights: the backup and best model are of epoch 1.
    state = json.loads((run_dir / run_dir_lib.BACKUP_DIR / "state.json").read_text())
    assert state["epoch"] == 1
    best = keras.models.load_model(run_dir / run_dir_lib.BEST_MODEL_FILE)
    assert_same_weights(best.get_weights(), snapshots.weights[0])
    assert [int(row["epoch"]) for row in read_csv(run_dir / run_dir_lib.HISTORY_FILE)] == [0]


def test_non_finite_epoch_metric_is_reported_after_validation():
    guard = lvae_callbacks.TerminateOnNonFinite()
    guard.on_train_begin()
    guard.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0, "note": "text"})
    with pytest.raises(lvae_callbacks.NonFiniteLossError, match="val_ssim is inf at epoch 4"):
        guard.on_epoch_end(3, {"loss": 1.0, "val_ssim": np.float32("inf")})


def test_train_cli_exits_3_with_a_message_on_a_nan_loss(tmp_path, monkeypatch, capsys):
    import train as train_cli

    def fail(config, *args, **kwargs):
        raise lvae_callbacks.NonFiniteLossError("loss", float("nan"), epoch=3, step=7, num_steps=9)

    monkeypatch.setattr(training, "train_checked", fail)
    run_dir = tmp_path / "run"
    (run_dir / "backup").mkdir(parents=True)
    (run_dir / "best.keras").write_bytes(b"")
    assert train_cli.main(["--run-dir", str(run_dir)]) == train_cli.EXIT_NON_FINITE_LOSS == 3
    message = capsys.readouterr().err.strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert message.startswith(
        "train.py: error: training stopped: loss is nan at epoch 3, step 7 of 9"
    )
    assert (
        f"{run_dir / 'best.keras'} (best epoch) and {run_dir / 'backup'} (last finished" in message
    )
    # Before the first epoch ends, there is nothing to keep, and the message says so.
    error = lvae_callbacks.NonFiniteLossError("loss", float("inf"), epoch=1, step=2)
    assert "; no epoch had finished." in train_cli.non_finite_message(error, str(tmp_path / "new"))


def test_atomic_save_leaves_the_old_file_when_saving_fails(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"the previous model")

    class Broken:
        def save(self, filepath, overwrite=True):
            with open(filepath, "wb") as file:
                file.write(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        saving.save_model_atomically(Broken(), str(path))
    assert path.read_bytes() == b"the previous model"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_killed_between_the_last_backup_and_the_final_save_reruns_to_the_end(
    tmp_path, bundled_digits, monkeypatch
):
    """The last epoch's backup is committed, then the process dies before `model.keras`: the
    rerun trains no epoch, restores the best weights and saves the final model."""
    small = data_lib.ImageData(
        bundled_digits.train_images[:NUM_TRAIN],
        bundled_digits.train_labels[:NUM_TRAIN],
        bundled_digits.val_images[:BATCH_SIZE],
        bundled_digits.val_labels[:BATCH_SIZE],
        source={"kind": "test"},
    )
    config = tiny_config(tmp_path / "run", export=False, **ONE_SMALL_LEVEL)

    def killed(model, filepath):
        raise Interrupt

    monkeypatch.setattr(saving, "save_model_atomically", killed)
    with pytest.raises(Interrupt):
        training.train(config, lvae_callbacks.for_run, data=small, verbose=0)
    monkeypatch.undo()
    run_dir = tmp_path / "run"
    state = json.loads((run_dir / run_dir_lib.BACKUP_DIR / "state.json").read_text())
    assert state["epoch"] == 2 and not (run_dir / run_dir_lib.FINAL_MODEL_FILE).exists()

    model, history = training.train(config, lvae_callbacks.for_run, data=small, verbose=0)
    assert history.history == {}
    assert [int(row["epoch"]) for row in read_csv(run_dir / run_dir_lib.HISTORY_FILE)] == [0, 1]
    final = keras.models.load_model(run_dir / run_dir_lib.FINAL_MODEL_FILE)
    best = keras.models.load_model(run_dir / run_dir_lib.BEST_MODEL_FILE)
    assert_same_weights(final.get_weights(), best.get_weights())
    assert not (run_dir / run_dir_lib.BACKUP_DIR).exists()
    with Image.open(run_dir / "samples" / "samples.gif") as gif:
        assert gif.n_frames == 2


# Damaged backups ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory, bundled_digits):
    """The command-line arguments of a 2-epoch run whose backups of epochs 1 and 2 are
    committed and whose final model was never saved, and its run directory."""
    from tests.idx_files import small_idx_dir

    tmp = tmp_path_factory.mktemp("damaged")
    args = ["--data-dir", str(small_idx_dir(tmp / "digits", bundled_digits, NUM_TRAIN, 32))]
    args += ["--epochs", "2", "--batch-size", str(BATCH_SIZE), "--latent-dims", "2"]
    args += ["--base-filters", "4", "--sample-every", "100", "--no-export"]
    run_dir = tmp / "run"

    def killed(model, filepath):
        raise Interrupt

    import train as train_cli

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(saving, "save_model_atomically", killed)
        with pytest.raises(Interrupt):
            train_cli.main(args + ["--run-dir", str(run_dir)])
    return args, run_dir


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda backup: (backup / "state.json").write_text('{"epoch": 2, "wei'), "state.json"),
        (lambda backup: (backup / "epoch_0002.weights.h5").unlink(), "epoch_0002.weights.h5"),
        (
            lambda backup: (backup / "epoch_0002.weights.h5").write_bytes(b"\x89HDF\r\n"),
            "epoch_0002.weights.h5",
        ),
    ],
    ids=["truncated state.json", "missing weights", "truncated weights"],
)
def test_a_damaged_backup_falls_back_to_the_epoch_before(
    interrupted_run, tmp_path, damage, named, caplog, capsys
):
    import train as train_cli

    args, original = interrupted_run
    run_dir = tmp_path / "run"
    shutil.copytree(original, run_dir)
    backup = run_dir / run_dir_lib.BACKUP_DIR
    assert json.loads((backup / "state.previous.json").read_text())["epoch"] == 1
    damage(backup)

    with caplog.at_level(logging.INFO):
        assert train_cli.main(args + ["--run-dir", str(run_dir)]) == 0

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        message.startswith(f"{backup / named}: damaged (")
        and message.endswith("resuming from the backup of the epoch before, state.previous.json")
        for message in warnings
    ), warnings
    assert "Resuming from the backup of epoch 1 in" in caplog.text
    assert [int(row["epoch"]) for row in read_csv(run_dir / run_dir_lib.HISTORY_FILE)] == [0, 1]
    assert (run_dir / "model.keras").exists() and not backup.exists()
    assert "Traceback" not in capsys.readouterr().err


def test_a_damaged_backup_without_one_before_is_one_line_that_says_how_to_start_over(
    interrupted_run, tmp_path, capsys
):
    import train as train_cli

    args, original = interrupted_run
    run_dir = tmp_path / "run"
    shutil.copytree(original, run_dir)
    backup = run_dir / run_dir_lib.BACKUP_DIR
    (backup / "state.previous.json").unlink()
    (backup / "state.json").write_text('{"epoch": 2, "wei')

    assert train_cli.main(args + ["--run-dir", str(run_dir)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"train.py: error: {backup / 'state.json'}: damaged (Unterminated string starting at: "
        f"line 1 column 14 (char 13)); no earlier complete backup to fall back to. Delete "
        f"{backup} to start the run over, or pass another --run-dir"
    ]
    # As the message says: without the backup, the same command starts over and finishes.
    shutil.rmtree(backup)
    assert train_cli.main(args + ["--run-dir", str(run_dir)]) == 0
    assert (run_dir / "model.keras").exists()
