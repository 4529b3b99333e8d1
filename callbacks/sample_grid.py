"""SampleGrid: a grid of prior samples every few epochs, always from the same noise, and an
animation of those grids at the end of training."""

import glob
import os
import re

import keras
import numpy as np
from PIL import Image, ImageDraw

from callbacks.epoch_images import EpochImages
from ladder_vae.atomic import atomic_path
from ladder_vae.traversal import fixed_prior_noise
from ladder_vae.image_grid import make_grid

SAMPLES_NAME = "samples"
ANIMATION_FILE = "samples.gif"


class SampleGrid(EpochImages):
    """Writes `samples_epoch_XXXX.png`: images decoded from one fixed batch of prior noise.

    The noise (`fixed_prior_noise(latent_dims, num_samples, seed)`) is the same in every epoch,
    every callback and every resumed process, so that the grid of epoch 5 and the grid of epoch
    150 show the same codes and can be compared frame by frame. At the end of training, every
    grid in `directory` up to the last epoch becomes one animation, `samples.gif`, each frame
    labelled with its epoch.

    Args:
        directory: where the PNGs and the GIF go (created if needed).
        log_dir: TensorBoard directory of the images (tag `samples`), or None.
        num_samples: images per grid (a square number makes a square grid).
        every: write after every `every`-th epoch.
        seed: seed of the fixed noise.
        frame_duration: milliseconds per frame of the animation.
    """

    def __init__(
        self, directory, log_dir=None, num_samples=64, every=1, seed=0, frame_duration=300
    ):
        super().__init__(directory, log_dir=log_dir, every=every)
        self.num_samples = num_samples
        self.seed = seed
        self.frame_duration = frame_duration

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.prior_codes = fixed_prior_noise(self.model.latent_dims, self.num_samples, self.seed)
        self.last_epoch = None

    def figures(self, epoch):
        self.last_epoch = epoch
        images = keras.ops.convert_to_numpy(self.model.decode(self.prior_codes, training=False))
        grid = make_grid(images, num_columns=int(np.ceil(np.sqrt(self.num_samples))))
        return [(SAMPLES_NAME, SAMPLES_NAME, grid)]

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        # No epoch in this fit: a resumed run whose epochs were all done before it was killed.
        last_epoch = self.last_epoch + 1 if self.last_epoch is not None else self.params["epochs"]
        write_animation(
            self.directory,
            os.path.join(self.directory, ANIMATION_FILE),
            last_epoch=last_epoch,
            frame_duration=self.frame_duration,
        )


def write_animation(directory, path, last_epoch=None, frame_duration=300):
    """Writes the `samples_epoch_XXXX.png` of `directory`, in epoch order, as one GIF.

    Frames of epochs after `last_epoch` (1-based) are left out: they would be stale images of an
    earlier run in the same directory. Each frame gets a band on top with its epoch number.

    Returns:
        The epochs (1-based) of the frames written; no file is written when there are none.
    """
    frames, epochs = [], []
    for file in sorted(glob.glob(os.path.join(directory, f"{SAMPLES_NAME}_epoch_*.png"))):
        match = re.fullmatch(rf"{SAMPLES_NAME}_epoch_(\d+)\.png", os.path.basename(file))
        if not match or (last_epoch is not None and int(match.group(1)) > last_epoch):
            continue
        epochs.append(int(match.group(1)))
        with Image.open(file) as image:
            mode = "L" if image.mode in ("1", "L", "P") else "RGB"
            frames.append(_paletted(_labelled(image.convert(mode), f"epoch {epochs[-1]}")))
    if frames:
        with atomic_path(path, suffix=".gif") as temporary:
            frames[0].save(
                temporary,
                save_all=True,
                append_images=frames[1:],
                duration=frame_duration,
                loop=0,
                optimize=False,
            )
    return epochs


def _labelled(image, text, band=14):
    framed = Image.new(image.mode, (image.width, image.height + band))
    framed.paste(image, (0, band))
    ImageDraw.Draw(framed).text((3, 1), text, fill="white")
    return framed


def _paletted(image):
    """A GIF frame without dithering: greys map one to one onto a grey palette, so the frames
    hold the PNGs' exact pixels; colour images get an adaptive 256-colour palette."""
    if image.mode == "L":
        frame = Image.frombytes("P", image.size, image.tobytes())
        frame.putpalette([level for grey in range(256) for level in (grey, grey, grey)])
        return frame
    return image.quantize(colors=256, dither=Image.Dither.NONE)
