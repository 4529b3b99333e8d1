"""`--strategy mirrored` on two logical CPU devices: the replicas compute what one device does.

Logical devices must be configured before TensorFlow runs its first op, which the other tests
in this process have done long before, so the checks run in a fresh Python process.
"""

import json
import os
import re
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.idx_files import small_idx_dir
from tests.processes import run_successfully
from tests.strategy_steps import step_differences

WORKER = textwrap.dedent("""
    import json, os, sys

    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import numpy as np

    import callbacks as lvae_callbacks
    from ladder_vae import data as data_lib, distribute, training
    from ladder_vae.config import TrainConfig
    from tests.strategy_steps import sgd_epoch

    work_dir = sys.argv[1]
    batch = data_lib.load_idx_dir(data_lib.BUNDLED_MNIST_DIR).train_images[:64]
    # Small filters for speed; the default loss weights, so the MMD term weighs in the gradient.
    config = TrainConfig(seed=3, base_filters=8)


    def one_step(strategy):
        # One batch, so one step; at rate 1 the weight change is minus the summed gradient.
        dataset = data_lib.make_dataset(batch, len(batch))
        model, before, after, logs = sgd_epoch(
            config, batch.shape[1:], strategy, dataset, learning_rate=1.0
        )
        return {
            "replicas": strategy.num_replicas_in_sync,
            "names": [w.path for w in model.weights],
            "trainable": [w.trainable for w in model.weights],
            "before": before,
            "after": after,
            "history": logs,
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

    # One epoch of the real entry point, on the 256 + 64 digits the test wrote to data/.
    run_config = TrainConfig(
        data_dir=os.path.join(work_dir, "data"),
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
def mirrored_run(tmp_path_factory, bundled_digits):
    """Runs the worker once: one SGD step on one device and on two replicas, then one epoch."""
    work_dir = tmp_path_factory.mktemp("distribute")
    small_idx_dir(work_dir / "data", bundled_digits, num_train=256, num_test=64)
    script = work_dir / "worker.py"
    script.write_text(WORKER)
    completed = run_successfully(
        [sys.executable, str(script), str(work_dir)],
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT),
    )
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
    differences = step_differences(
        one["names"], one["trainable"], one["before"], one["after"], two["before"], two["after"]
    )
    for name, error in differences.items():
        # Measured: at most 1e-3 (summation order, one-pass batch variance); dropping the
        # all-gather, the noise slicing, the loss division or the BN sync each gives >= 1.
        assert error < 1e-2, f"{name}: relative difference {error:.2e}"
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
