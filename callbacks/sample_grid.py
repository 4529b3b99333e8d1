"""SampleGrid: one grid of prior samples per epoch, always from the same noise."""

import os

import keras
import numpy as np

from ladder_vae.image_grid import make_grid, save_png


class SampleGrid(keras.callbacks.Callback):
    """Writes `samples/epoch_XXXX.png`: images decoded from one fixed batch of prior noise.

    The noise is drawn once, with `seed`, when training begins, so that the grid of epoch 5 and
    the grid of epoch 150 show the same codes and can be compared frame by frame.

    Args:
        directory: where the PNGs go (created if needed).
        num_samples: images per grid (a square number makes a square grid).
        every: write after every `every`-th epoch (and always after the last).
        seed: seed of the fixed noise.
    """

    def __init__(self, directory, num_samples=64, every=1, seed=0):
        super().__init__()
        self.directory = directory
        self.num_samples = num_samples
        self.every = every
        self.seed = seed

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        self.prior_codes = [
            keras.ops.convert_to_numpy(code)
            for code in self.model.prior_sample(self.num_samples, seed=self.seed)
        ]

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        images = keras.ops.convert_to_numpy(self.model.decode(self.prior_codes))
        grid = make_grid(images, num_columns=int(np.ceil(np.sqrt(self.num_samples))))
        save_png(os.path.join(self.directory, f"epoch_{epoch + 1:04d}.png"), grid, scale=2)
