"""Short trainings that compare loss settings: how the README's default weights were chosen.

    python benchmarks/loss_weight_sweep.py --data-dir ../shared/data/mnist --epochs 4 \
        "base=dict()" "joint=dict(mmd_per_level=False)" "ssim0=dict(ssim_weight=0.0)"

Each NAME=KWARGS trains a `LadderVAE(**KWARGS)` from the same seed and prints one JSON line:
reconstruction MSE and mean SSIM on 2,000 test digits, and how far the aggregate posterior is from
the prior (the unbiased MMD^2, one RBF kernel with 2 h^2 = dim, of one posterior sample per test
digit against as many prior draws, over the concatenated code: the distance that decides
whether prior samples look like data).
"""

import argparse
import ast
import json
import time

import keras
import numpy as np
import tensorflow as tf

from ladder_vae import data as data_lib
from ladder_vae import losses
from ladder_vae.model import LadderVAE

NUM_TEST = 2000


def parse_setting(text):
    name, _, kwargs = text.partition("=")
    call = ast.parse(kwargs or "dict()", mode="eval").body
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "dict"):
        raise argparse.ArgumentTypeError(f"expected NAME=dict(...), got {text!r}")
    return name, {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}


def evaluate(model, images):
    posteriors = model.encode(images)
    codes = tf.concat(model.reparameterize(posteriors, seed=5), axis=-1)
    prior = tf.random.stateless_normal(codes.shape, seed=[1, 2])
    reconstructions = model(images)
    return {
        "test_mse": float(tf.reduce_mean(tf.square(reconstructions - images))),
        "test_ssim": float(tf.reduce_mean(losses.ssim(images, reconstructions))),
        # One RBF kernel of the base bandwidth: the yardstick of the README's table.
        "code_prior_mmd": float(
            losses.mmd(codes, prior, bandwidth=losses.rbf_kernel_bandwidth(codes.shape[-1]))
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="+", type=parse_setting, help="NAME=dict(...)")
    parser.add_argument("--data-dir", default=data_lib.BUNDLED_MNIST_DIR, help="IDX directory")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per setting")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size")
    args = parser.parse_args()
    data = data_lib.load_idx_dir(args.data_dir)
    test_images = data.val_images[:NUM_TEST].astype(np.float32) / 255.0
    for name, kwargs in args.settings:
        keras.utils.set_random_seed(0)
        train = data_lib.make_dataset(
            data.train_images, args.batch_size, shuffle=True, seed=0, drop_remainder=True
        )
        model = LadderVAE(seed=0, **kwargs)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        start = time.time()
        model.fit(train, epochs=args.epochs, verbose=0)
        result = {"name": name, "kwargs": kwargs, "epochs": args.epochs}
        result.update(evaluate(model, test_images), seconds=round(time.time() - start))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
