"""The same SGD steps taken under two `tf.distribute` strategies, and their comparison: the
worker processes of tests/test_distribute.py and tests/test_multiworker.py take them, the tests
compare them.

Same seed, same initial weights, same global batches and plain SGD: the change of every weight
is minus the learning rate times the replica-summed gradient, so a wrong loss division, MMD
gather, batch-norm synchronisation or noise slice shows as a different step. (Adam's first step,
about -lr * sign(gradient), would hide a wrong scale.)

Imports Keras: a worker that configures logical devices imports this module after doing so.
"""

import keras
import numpy as np

from ladder_vae import training


def sgd_epoch(config, image_shape, strategy, dataset, learning_rate):
    """Builds the model of `config` under `strategy` from `config.seed` and fits one epoch of
    `dataset` (in its order) with plain SGD at `learning_rate`.

    Returns the model, its weights before and after (numpy arrays in `model.weights` order) and
    the epoch's logs as floats.
    """
    # Same seed before each build: same initial weights, same noise stream.
    keras.utils.set_random_seed(config.seed)
    model = training.build_model(config, image_shape, strategy)
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate))
    before = [np.array(w.numpy()) for w in model.weights]
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    after = [np.array(w.numpy()) for w in model.weights]
    logs = {key: float(values[0]) for key, values in history.history.items()}
    return model, before, after, logs


def step_differences(names, trainable, one_before, one_after, two_before, two_after):
    """The relative difference between run two's and run one's step of every variable,
    |change_two - change_one| / |change_one|, by variable name; seed generators aside.

    A seed generator's state is no step: it must only end the same in both runs (the same noise
    drawn). Every other variable must have moved in run one (one that did not checks nothing),
    and every trainable variable, more than 20 of them, must be among those compared. How close
    the steps must be is the caller's measured bound.
    """
    differences = {}
    checked = 0
    for name, is_trainable, a0, a1, b0, b1 in zip(
        names, trainable, one_before, one_after, two_before, two_after
    ):
        if "seed_generator" in name:
            np.testing.assert_array_equal(a1, b1, err_msg=name)
            continue
        change_one, change_two = a1 - a0, b1 - b0
        scale = np.linalg.norm(change_one)
        assert scale > 0, f"{name} did not change"
        differences[name] = np.linalg.norm(change_two - change_one) / scale
        checked += is_trainable
    assert checked == sum(trainable) > 20
    return differences
