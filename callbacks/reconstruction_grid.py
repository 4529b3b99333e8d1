"""ReconstructionGrid: fixed validation images beside their reconstructions, every few epochs."""

import keras
import numpy as np

from callbacks.epoch_images import EpochImages
from ladder_vae.image_grid import make_grid

RECONSTRUCTIONS_NAME = "reconstructions"


class ReconstructionGrid(EpochImages):
    """Writes `reconstructions_epoch_XXXX.png`: each of `images` with its reconstruction beside it.

    Columns alternate: an original image, then its reconstruction (the decoded posterior means,
    `model(images, training=False)`), `num_pairs_per_row` pairs per row. The same images every
    epoch, so that the figures compare frame by frame.

    Args:
        directory: where the PNGs go (created if needed).
        images: float array [n, H, W, C] in [0, 1], e.g. the first validation images.
        log_dir: TensorBoard directory of the images (tag `reconstructions`), or None.
        every: write after every `every`-th epoch.
        num_pairs_per_row: (original, reconstruction) pairs per row of the grid.
    """

    def __init__(self, directory, images, log_dir=None, every=1, num_pairs_per_row=4):
        super().__init__(directory, log_dir=log_dir, every=every)
        images = np.asarray(images)
        if images.ndim != 4 or not np.issubdtype(images.dtype, np.floating):
            raise ValueError(
                "`images` must be a float array [n, H, W, C] in [0, 1]. "
                f"Received: shape={images.shape}, dtype={images.dtype}"
            )
        self.images = images.astype(np.float32)
        self.num_pairs_per_row = num_pairs_per_row

    def figures(self, epoch):
        reconstructions = keras.ops.convert_to_numpy(self.model(self.images, training=False))
        pairs = np.stack([self.images, reconstructions], axis=1).reshape(
            (-1, *self.images.shape[1:])
        )
        grid = make_grid(pairs, num_columns=2 * self.num_pairs_per_row)
        return [(RECONSTRUCTIONS_NAME, RECONSTRUCTIONS_NAME, grid)]
