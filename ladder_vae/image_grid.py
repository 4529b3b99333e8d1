"""Image batches as pictures: tiled into one grid, turned into 8-bit pixels, written as a PNG."""

import numpy as np
from PIL import Image

from ladder_vae.atomic import atomic_path


def make_grid(images, num_columns=None, padding=2, pad_value=0.5):
    """Tiles images into one grid, row by row.

    Args:
        images: array [n, H, W, C] with values in [0, 1] (C is 1 or 3).
        num_columns: images per row; by default the grid is as square as possible.
        padding: pixels between images and around the grid.
        pad_value: grey level of that padding, so that black digit backgrounds stay apart.

    Returns:
        float array [rows * (H + padding) + padding, columns * (W + padding) + padding, C].
    """
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    if images.ndim != 4:
        raise ValueError(f"`images` must be [n, H, W, C]. Received shape: {images.shape}")
    count, height, width, channels = images.shape
    num_columns = num_columns or int(np.ceil(np.sqrt(count)))
    num_rows = int(np.ceil(count / num_columns))
    grid = np.full(
        (
            num_rows * (height + padding) + padding,
            num_columns * (width + padding) + padding,
            channels,
        ),
        pad_value,
        dtype=np.float32,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, num_columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def to_uint8(images):
    """Float images in [0, 1], of any shape, as uint8 pixels 0..255.

    The project's one conversion, so that a PNG, its TensorBoard copy and the explorer's
    picture of the same image hold the same pixels. Values are clipped first: a decoder's output
    a little outside [0, 1] saturates instead of wrapping around in uint8. Then rounded to the
    nearest level, so that k / 255 comes back as k.
    """
    return np.round(np.clip(np.asarray(images), 0.0, 1.0) * 255).astype(np.uint8)


def upscale(pixels, scale):
    """`pixels` [H, W, ...] with each pixel repeated as a `scale` x `scale` block (nearest
    neighbour), so that 28x28 digits are readable on a screen."""
    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    return pixels


def save_png(path, image, scale=1):
    """Writes a [H, W, C] float image in [0, 1] as a PNG, through a temporary file and a rename.

    Args:
        scale: integer upscaling (`upscale`).
    """
    pixels = upscale(to_uint8(image), scale)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    with atomic_path(path, suffix=".png") as temporary:
        Image.fromarray(pixels).save(temporary)
