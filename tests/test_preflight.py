"""The checks made before a run writes anything, and their agreement with the code they guard."""

import json

import numpy as np
import pytest

import callbacks as lvae_callbacks
from ladder_vae import losses, preflight, training
from ladder_vae import run_dir as run_dir_lib
from ladder_vae.config import TrainConfig
from ladder_vae.errors import ConfigError
from ladder_vae.data import DataError, ImageData
from ladder_vae.model import LadderVAE


def random_images(count, side):
    return np.random.default_rng(0).integers(0, 256, (count, side, side, 1), dtype=np.uint8)


def image_data(side, count=8):
    labels = np.zeros(count, np.int64)
    return ImageData(
        random_images(count, side), labels, random_images(count, side), labels, {"kind": "test"}
    )


def test_the_smallest_image_side_is_the_ssim_window():
    # preflight cannot import losses (it starts TensorFlow), so it repeats the size.
    assert preflight.MIN_IMAGE_SIDE == losses.SSIM_FILTER_SIZE


def test_the_smallest_accepted_images_give_a_finite_loss():
    side = preflight.MIN_IMAGE_SIDE
    preflight.check_data(TrainConfig(batch_size=4), image_data(side))
    model = LadderVAE(image_shape=(side, side, 1), latent_dims=(2, 2), base_filters=4)
    terms = model.compute_loss_terms(random_images(4, side).astype("float32") / 255.0)
    assert np.isfinite(float(terms["loss"])) and 0 < float(terms["ssim"]) <= 1
    with pytest.raises(DataError, match=f"images are {side - 1}x{side - 1}, smaller than"):
        preflight.check_data(TrainConfig(batch_size=4), image_data(side - 1))


def test_train_refuses_bad_data_before_creating_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    config = TrainConfig(run_dir=str(run_dir), epochs=1, batch_size=4)
    with pytest.raises(DataError, match="images are 6x6"):
        training.train(config, lvae_callbacks.for_run, data=image_data(6))
    assert not run_dir.exists()


def write_record(run_dir, **config):
    run_dir.mkdir()
    defaults = TrainConfig()
    record = {
        "config": {
            "latent_dims": list(defaults.latent_dims),
            "base_filters": 32,
            "level_input": defaults.level_input,
            **config,
        }
    }
    (run_dir / "config.json").write_text(json.dumps({**record, "image_shape": [8, 8, 1]}))
    return run_dir


def test_a_run_that_never_finished_an_epoch_accepts_a_corrected_command(tmp_path):
    # Stopped (out of memory, say) before its first backup: config.json and run.lock only.
    run_dir = write_record(tmp_path / "run", base_filters=100000)
    (run_dir / "run.lock").write_text("")
    corrected = TrainConfig(run_dir=str(run_dir), base_filters=8, batch_size=4)
    run_dir_lib.check_run_dir(str(run_dir))
    preflight.check_resume(corrected, image_data(8))
    # Once an epoch's backup is committed the run is held to its architecture.
    (run_dir / "backup").mkdir()
    (run_dir / "backup" / "state.json").write_text('{"epoch": 1}')
    with pytest.raises(ConfigError, match="was started with --base-filters 100000"):
        preflight.check_resume(corrected, image_data(8))


def test_a_run_recorded_before_level_input_existed_resumes_only_as_concatenated(tmp_path):
    run_dir = tmp_path / "run"
    write_record(run_dir)
    record = json.loads((run_dir / "config.json").read_text())
    del record["config"]["level_input"]
    (run_dir / "config.json").write_text(json.dumps(record))
    (run_dir / "backup").mkdir()
    (run_dir / "backup" / "state.json").write_text('{"epoch": 1}')
    with pytest.raises(ConfigError, match="--level-input modulated-fj: the run in --run-dir .* "
                       "was started with --level-input concatenated"):
        preflight.check_resume(TrainConfig(run_dir=str(run_dir), batch_size=4), image_data(8))
    preflight.check_resume(
        TrainConfig(run_dir=str(run_dir), batch_size=4, level_input="concatenated"), image_data(8)
    )


def test_a_run_resumes_only_with_the_kl_weights_it_started_with(tmp_path):
    """Its history.csv has a kl column exactly when it pays the term."""
    run_dir = write_record(tmp_path / "run", level_kl_weights=[0.1, 0.0, 0.0])
    (run_dir / "backup").mkdir()
    (run_dir / "backup" / "state.json").write_text('{"epoch": 1}')

    def resume(weights):
        config = TrainConfig(run_dir=str(run_dir), batch_size=4, level_kl_weights=weights)
        preflight.check_resume(config, image_data(8))

    resume((0.1, 0.0, 0.0))
    with pytest.raises(ConfigError, match="no --level-kl-weights: the run in --run-dir .* was "
                       r"started with --level-kl-weights 0.1,0,0 \("):
        resume(None)
    with pytest.raises(ConfigError, match="--level-kl-weights 0.2,0,0: the run"):
        resume((0.2, 0.0, 0.0))
    record = json.loads((run_dir / "config.json").read_text())
    del record["config"]["level_kl_weights"]  # Recorded before the option existed.
    (run_dir / "config.json").write_text(json.dumps(record))
    resume(None)
    with pytest.raises(ConfigError, match="started with no --level-kl-weights"):
        resume((0.1, 0.0, 0.0))


def test_a_run_resumes_only_on_the_data_it_started_with(tmp_path):
    """Resumed on other images, early stopping would compare two validation sets' losses."""
    run_dir = tmp_path / "run"
    write_record(run_dir)
    (run_dir / "backup").mkdir()
    (run_dir / "backup" / "state.json").write_text('{"epoch": 1}')
    record = json.loads((run_dir / "config.json").read_text())
    data = image_data(8)
    data.source.update(dataset="mnist", train_examples=len(data.train_images))
    data.source["validation_examples"] = len(data.val_images)
    config = TrainConfig(run_dir=str(run_dir), batch_size=4)

    def saved(**source):
        record["data"] = {**data.source, **source}
        (run_dir / "config.json").write_text(json.dumps(record))

    saved()
    preflight.check_resume(config, data)
    saved(train_examples=10000)
    with pytest.raises(DataError, match="8 training and 8 validation images, but the run in "
                       "--run-dir .* trained on 10,000 and 8"):
        preflight.check_resume(config, data)
    saved(dataset="fashion_mnist")
    with pytest.raises(DataError, match="mnist images, but the run .* trained on fashion_mnist"):
        preflight.check_resume(config, data)


def test_a_run_with_its_final_model_is_refused_only_once_nothing_is_left_to_finish(tmp_path):
    run_dir = write_record(tmp_path / "run")
    (run_dir / "model.keras").write_bytes(b"a model")
    (run_dir / "backup").mkdir()
    assert run_dir_lib.RunDir(run_dir).left_to_finish() == ["remove backup/", "export saved_model/"]
    run_dir_lib.check_run_dir(str(run_dir))
    (run_dir / "backup").rmdir()
    assert run_dir_lib.RunDir(run_dir).left_to_finish(export=False) == []
    with pytest.raises(ConfigError, match="holds a finished run"):
        run_dir_lib.check_run_dir(str(run_dir), export=False)
    (run_dir / "saved_model").mkdir()
    (run_dir / "saved_model" / "saved_model.pb").write_bytes(b"an export")
    with pytest.raises(ConfigError, match="holds a finished run"):
        run_dir_lib.check_run_dir(str(run_dir))
