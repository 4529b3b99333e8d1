"""LevelTraversal: what each ladder level controls, as one traversal grid per level."""

import keras
import numpy as np

from callbacks.epoch_images import EpochImages, fixed_prior_noise
from ladder_vae.image_grid import make_grid


class LevelTraversal(EpochImages):
    """Writes `traversal_level<i>_epoch_XXXX.png`: level i's code swept, the other levels fixed.

    For each level i (1 = lowest), z_i is swept over `num_steps` values evenly spaced in
    [-span, span] while every other level keeps one fixed prior draw (row `sample_index` of the
    same fixed noise batch that `SampleGrid` decodes), so that the changes within a grid are what
    level i alone controls:

    - a level of 2 dimensions gives the 2-D manifold over [-span, span]^2: z_i[0] grows left to
      right, z_i[1] grows bottom to top;
    - any other size gives one row per dimension, that dimension swept left to right, the
      level's other dimensions at their fixed draw.

    Args:
        directory: where the PNGs go (created if needed).
        log_dir: TensorBoard directory of the images (tags `traversal/level_<i>`), or None.
        every: write after every `every`-th epoch.
        num_steps: values per swept dimension.
        span: the sweep covers [-span, span] (prior standard deviations).
        num_samples: size of the fixed noise batch (as `SampleGrid`'s, to share its noise).
        seed: seed of the fixed noise (as `SampleGrid`'s).
        sample_index: which draw of the batch holds the other levels fixed.
    """

    def __init__(
        self,
        directory,
        log_dir=None,
        every=1,
        num_steps=9,
        span=2.0,
        num_samples=64,
        seed=0,
        sample_index=0,
    ):
        super().__init__(directory, log_dir=log_dir, every=every)
        if not 0 <= sample_index < num_samples:
            raise ValueError(
                "`sample_index` must index the noise batch of `num_samples` draws. "
                f"Received: sample_index={sample_index}, num_samples={num_samples}"
            )
        self.num_steps = num_steps
        self.span = span
        self.num_samples = num_samples
        self.seed = seed
        self.sample_index = sample_index

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        noise = fixed_prior_noise(self.model.latent_dims, self.num_samples, self.seed)
        self.fixed_codes = [code[self.sample_index] for code in noise]

    def traversal_codes(self, level):
        """The codes of level `level`'s (0-based) traversal grid, and its number of columns.

        Returns:
            (codes, num_columns): one array [num_images, dim] per level, images in row-major
            order of the grid.
        """
        values = np.linspace(-self.span, self.span, self.num_steps, dtype=np.float32)
        dim = len(self.fixed_codes[level])
        if dim == 2:
            # Rows from +span down to -span, so that z_i[1] grows upwards as on a plot.
            rows, columns = np.meshgrid(values[::-1], values, indexing="ij")
            swept = np.stack([columns.ravel(), rows.ravel()], axis=-1)
        else:
            swept = np.tile(self.fixed_codes[level], (dim * self.num_steps, 1))
            for dimension in range(dim):
                swept[dimension * self.num_steps : (dimension + 1) * self.num_steps, dimension] = (
                    values
                )
        codes = [
            np.tile(fixed, (len(swept), 1)) if other != level else swept
            for other, fixed in enumerate(self.fixed_codes)
        ]
        return codes, self.num_steps

    def figures(self, epoch):
        figures = []
        for level in range(len(self.fixed_codes)):
            codes, num_columns = self.traversal_codes(level)
            images = keras.ops.convert_to_numpy(self.model.decode(codes, training=False))
            figures.append(
                (
                    f"traversal_level{level + 1}",
                    f"traversal/level_{level + 1}",
                    make_grid(images, num_columns=num_columns),
                )
            )
        return figures
