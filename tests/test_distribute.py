"""`--strategy mirrored` on two logical CPU devices: the replicas compute what one device does.

Logical devices must be configured before TensorFlow runs its first op, which the other tests
in this process have done long before, so the checks run in a fresh Python process.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = textwrap.dedent("""
    import gzip, json, os, struct, sys

    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    import numpy as np

    import callbacks as lvae_callbacks
    from ladder_vae import data as data_lib, distribute, idx_files, training
    from ladder_vae.config import TrainConfig

    work_dir = sys.argv[1]
    bundled = data_lib.load_idx_dir(data_lib.BUNDLED_MNIST_DIR)
    batch = bundled.train_images[:64]
    # Small filters for speed; the default loss weights, so the MMD term weighs in the gradient.
    config = TrainConfig(seed=3, base_filters=8)


    def one_step(strategy):
        # Same seed before each build: same initial weights, same noise stream.
        keras.utils.set_random_seed(config.seed)
        model = training.build_model(config, batch.shape[1:], strategy)
        with strategy.scope():
            # Plain SGD at rate 1: the weight change is minus the (replica-summed) gradient.
            # Adam's first step, about -lr * sign(gradient), would hide a wrong scale.
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
        before = [np.array(w.numpy()) for w in model.weights]
        history = model.fit(
            data_lib.make_dataset(batch, len(batch)), epochs=1, verbose=0, shuffle=False
        )
        after = [np.array(w.numpy()) for w in model.weights]
        return {
            "replicas": strategy.num_replicas_in_sync,
            "names": [w.path for w in model.weights],
            "trainable": [w.trainable for w in model.weights],
            "before": before,
            "after": after,
            "history": {key: float(values[0]) for key, values in history.history.items()},
        }


    one = one_step(tf.distribute.get_strategy())
    two = one_step(distribute.make_strategy("mirrored"))
    np.savez(
        os.path.join(work_dir, "steps.npz"),
        **{f"{run}_{when}_{i}": value
           for run, result in (("one", one), ("two", two))
           for when in ("before", "after")
           for i, value in enumerate(result[when])},
    )


    def write_idx(path, array, magic):
        with gzip.open(path, "wb") as file:
            file.write(struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape))
            file.write(array.tobytes())


    # One epoch of the real entry point, on 256 + 64 digits.
    data_dir = os.path.join(work_dir, "data")
    os.makedirs(data_dir)
    for prefix, images, labels in (
        ("train", bundled.train_images[:256], bundled.train_labels[:256]),
        ("t10k", bundled.val_images[:64], bundled.val_labels[:64]),
    ):
        write_idx(
            os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"),
            images[..., 0],
            idx_files.IDX_IMAGES_MAGIC,
        )
        write_idx(
            os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"),
            labels.astype(np.uint8),
            idx_files.IDX_LABELS_MAGIC,
        )
    run_config = TrainConfig(
        data_dir=data_dir,
        run_dir=os.path.join(work_dir, "run"),
        epochs=1,
        batch_size=32,
        base_filters=8,
        strategy="mirrored",
        export=False,
    )
    model, history = training.train(run_config, lvae_callbacks.for_run, verbose=0)
    print(json.dumps({
        "one": {key: one[key] for key in ("replicas", "names", "trainable", "history")},
        "two": {key: two[key] for key in ("replicas", "names", "trainable", "history")},
        "epoch": {
            "replicas": model.distribute_strategy.num_replicas_in_sync,
            "history": {key: [float(v) for v in values]
                        for key, values in history.history.items()},
            "files": sorted(os.listdir(run_config.run_dir)),
        },
    }))
    """)


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    """Runs the worker once: one SGD step on one device and on two replicas, then one epoch."""
    work_dir = tmp_path_factory.mktemp("distribute")
    script = work_dir / "worker.py"
    script.write_text(WORKER)
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPOSITORY)
    completed = subprocess.run(
        [sys.executable, str(script), str(work_dir)],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    steps = np.load(work_dir / "steps.npz")
    for run in ("one", "two"):
        for when in ("before", "after"):
            report[run][when] = [
                steps[f"{run}_{when}_{i}"] for i in range(len(report[run]["names"]))
            ]
    return report


@pytest.mark.slow
def test_two_replicas_start_from_the_same_weights(mirrored_run):
    one, two = mirrored_run["one"], mirrored_run["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    # The second model's layers get auto-numbered names (conv2d_10 for conv2d).
    assert [re.sub(r"_\d+", "", name) for name in two["names"]] == [
        re.sub(r"_\d+", "", name) for name in one["names"]
    ]
    for name, a, b in zip(one["names"], one["before"], two["before"]):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.slow
def test_two_replicas_take_the_step_of_one_device(mirrored_run):
    """Same weights and batch: equal updates, hence equal summed gradients (the loss division
    by the number of replicas, the all-gathered MMD, synchronised batch statistics and the
    sliced noise all have to be right for this)."""
    one, two = mirrored_run["one"], mirrored_run["two"]
    checked = 0
    for name, trainable, a0, a1, b0, b1 in zip(
        one["names"], one["trainable"], one["before"], one["after"], two["before"], two["after"]
    ):
        if "seed_generator" in name:
            np.testing.assert_array_equal(a1, b1, err_msg=name)
            continue
        change_one, change_two = a1 - a0, b1 - b0
        scale = np.linalg.norm(change_one)
        assert scale > 0, f"{name} did not change"
        error = np.linalg.norm(change_two - change_one) / scale
        # Measured: at most 1e-3 (summation order, one-pass batch variance); dropping the
        # all-gather, the noise slicing, the loss division or the BN sync each gives >= 1.
        assert error < 1e-2, f"{name}: relative difference {error:.2e}"
        checked += trainable
    assert checked == len([t for t in one["trainable"] if t]) > 20
    for key, value in one["history"].items():
        assert two["history"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


@pytest.mark.slow
def test_one_epoch_of_train_runs_on_two_replicas(mirrored_run):
    epoch = mirrored_run["epoch"]
    assert epoch["replicas"] == 2
    history = epoch["history"]
    for key in ("loss", "reconstruction", "mmd", "ssim", "val_loss", "val_mmd", "val_ssim"):
        assert len(history[key]) == 1 and np.isfinite(history[key][0]), key
    assert 0.0 < history["val_ssim"][0] <= 1.0
    assert {"config.json", "model.keras", "history.csv"} <= set(epoch["files"])


def test_mixed_precision_computes_in_float16_and_keeps_the_loss_float32(digit_batch):
    """`--mixed-precision`, the other speed setting `build_model` applies: float16 layers, a
    float32 output layer and float32 loss terms, a loss-scaling optimizer, and the global dtype
    policy left as it was."""
    import keras

    from ladder_vae import training
    from ladder_vae.config import TrainConfig

    before = keras.mixed_precision.global_policy().name
    config = TrainConfig(base_filters=4, mixed_precision=True, seed=1)
    model = training.build_model(config, digit_batch.shape[1:])
    assert keras.mixed_precision.global_policy().name == before
    assert model.encoder_blocks[0].layers[0].compute_dtype == "float16"
    assert model.encoder_blocks[0].layers[0].variable_dtype == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model(digit_batch[:4]).dtype.name == "float32"
    terms = model.compute_loss_terms(digit_batch[:16], training=True)
    assert all(value.dtype.name == "float32" for value in terms.values())
    # Eager steps (tracing `fit` costs seconds). The loss scale starts at 2**15, where float16
    # gradients overflow: Keras skips such a step and halves the scale, so the weights must
    # start to move, finite, within a few steps.
    kernel = model.encoder_blocks[0].layers[0].kernel
    initial = np.array(kernel.numpy())
    for step in range(1, 21):
        logs = model.train_step(digit_batch[:16])
        assert np.isfinite(float(logs["loss"]))
        if np.abs(kernel.numpy() - initial).max() > 0:
            break
    assert np.all(np.isfinite(kernel.numpy()))
    assert np.abs(kernel.numpy() - initial).max() > 0, "no step was applied in 20"
    assert float(model.optimizer.dynamic_scale) < 2.0**15
