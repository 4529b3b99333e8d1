"""EpochImages: the shared machinery of the callbacks that draw a figure every few epochs."""

import os

import keras

from ladder_vae.image_grid import save_png, to_uint8, upscale


class EpochImages(keras.callbacks.Callback):
    """Base class: every `every` epochs, writes the figures of `figures(epoch)` as PNGs and images.

    A figure named `name` after epoch index `epoch` (0-based, as Keras counts) goes to
    `directory/<name>_epoch_<epoch + 1:04d>.png` (1-based, as the progress bar counts), and, when
    `log_dir` is given, to TensorBoard as `tf.summary.image(tag, ...)` at step `epoch`, the step
    of Keras's epoch scalars. Both get the same pixels, upscaled `scale` times.

    Subclasses implement `figures(epoch)`, returning (name, tag, grid) triples where grid is a
    float array [H, W, C] in [0, 1]; they call the model with `training=False`.

    Args:
        directory: where the PNGs go (created if needed).
        log_dir: TensorBoard directory of these images, or None for PNGs only.
        every: write after every `every`-th epoch.
        scale: integer upscaling (nearest neighbour), so that 28x28 digits are readable.
    """

    def __init__(self, directory, log_dir=None, every=1, scale=2):
        super().__init__()
        if every < 1:
            raise ValueError(f"`every` must be a positive integer. Received: every={every}")
        self.directory = directory
        self.log_dir = log_dir
        self.every = every
        self.scale = scale
        self.writer = None

    def figures(self, epoch):
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        for name, tag, grid in self.figures(epoch):
            self.write_image(name, tag, grid, epoch)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def image_path(self, name, epoch):
        return os.path.join(self.directory, f"{name}_epoch_{epoch + 1:04d}.png")

    def write_image(self, name, tag, grid, epoch):
        save_png(self.image_path(name, epoch), grid, scale=self.scale)
        if self.log_dir is None:
            return
        import tensorflow as tf  # tf.summary: Keras has no image summary of its own.

        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.log_dir)
        # Converted as `save_png` converts: TensorBoard shows the PNG's very pixels.
        pixels = upscale(to_uint8(grid), self.scale)
        with self.writer.as_default():
            tf.summary.image(tag, pixels[None], step=epoch)
        # Flushed now, so that TensorBoard shows the images during training, not at the end.
        self.writer.flush()
