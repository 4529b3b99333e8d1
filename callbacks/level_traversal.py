"""LevelTraversal: what each ladder level controls, as one traversal grid per level."""

import keras
import numpy as np

from callbacks.epoch_images import EpochImages
from ladder_vae import traversal
from ladder_vae.image_grid import make_grid


class LevelTraversal(EpochImages):
    """Writes `traversal_level<i>_epoch_XXXX.png`: level i's code swept, the other levels held.

    The grids follow `ladder_vae.traversal`, the convention that the evaluation's traversal
    figures follow too: z_i swept over `num_steps` values evenly spaced in [-span, span], every
    other level held at the code of the first image of `SampleGrid`'s grid (drawn from `seed`);
    a level of 2 dimensions as its 2-D manifold (z_i[0] grows left to right, z_i[1] bottom to
    top), a level of 1 dimension as one row per image of the sample grid's first row, any other
    size as one row per dimension. The codes depend on the model's
    `latent_dims` and `seed` alone, so the grids of every epoch compare frame by frame.

    Args:
        directory: where the PNGs go (created if needed).
        log_dir: TensorBoard directory of the images (tags `traversal/level_<i>`), or None.
        every: write after every `every`-th epoch.
        num_steps: values per swept dimension.
        span: the sweep covers [-span, span] (prior standard deviations).
        seed: the run's seed, as `SampleGrid`'s.
    """

    def __init__(
        self,
        directory,
        log_dir=None,
        every=1,
        num_steps=traversal.NUM_STEPS,
        span=traversal.SPAN,
        seed=0,
    ):
        super().__init__(directory, log_dir=log_dir, every=every)
        self.num_steps = num_steps
        self.span = span
        self.seed = seed

    def figures(self, epoch):
        latent_dims = [int(dim) for dim in self.model.latent_dims]
        figures = []
        for level in range(len(latent_dims)):
            codes, num_columns = traversal.level_traversal_codes(
                latent_dims, level, self.seed, self.num_steps, self.span
            )
            levels = np.split(codes, np.cumsum(latent_dims)[:-1], axis=1)
            images = keras.ops.convert_to_numpy(self.model.decode(levels, training=False))
            figures.append(
                (
                    f"traversal_level{level + 1}",
                    f"traversal/level_{level + 1}",
                    make_grid(images, num_columns=num_columns),
                )
            )
        return figures
