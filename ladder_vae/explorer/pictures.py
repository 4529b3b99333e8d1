"""Pictures of the explorer: PNGs of decoded images, traversal strips, and digits made from a
drawing or an uploaded image in the form the model was trained on."""

import base64
import binascii
import io
import math
import warnings

import numpy as np
from PIL import Image

from ladder_vae import traversal
from ladder_vae.explorer.codes import LIMIT
from ladder_vae.explorer.exported import ExplorerError
from ladder_vae.image_grid import to_uint8, upscale

# The main image is shown at least this many pixels high, each model pixel as a square block.
MIN_DISPLAY_SIZE = 256
STRIP_STEPS = 9
# A strip tile whose value is nearest to the current point gets a frame in this colour.
MARK_COLOUR = (230, 80, 40)
# Uploads: refused above these sizes, before and after decoding (decompression bombs).
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
# MNIST's digits fill a 20x20 box centred by their centre of mass in 28x28: the same share of
# the image side is used for any image size.
DIGIT_BOX_FRACTION = 20 / 28


def display_scale(height):
    """The integer upscaling factor that shows an image of `height` rows >= MIN_DISPLAY_SIZE."""
    return max(1, math.ceil(MIN_DISPLAY_SIZE / height))


def png_bytes(pixels, scale=1):
    """PNG bytes of uint8 pixels [H, W], [H, W, 1] or [H, W, 3] (`image_grid.to_uint8` makes
    them from a float image), each pixel repeated `scale` x `scale`."""
    pixels = upscale(pixels, scale)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def data_url(png):
    """A `data:image/png;base64,...` URL of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def strip_values(steps=STRIP_STEPS):
    """The values a traversal strip sweeps a dimension over: `steps` points in [-LIMIT, LIMIT],
    the whole range of the page's controls (wider than the figures' `traversal.SPAN`)."""
    return traversal.sweep_values(steps, LIMIT)


def strip_picture(images, current):
    """One level's strip: a row per dimension, `steps` tiles each, the tile nearest the current
    value framed. `images` [dim * steps, H, W, C]; `current` the level's values [dim]."""
    dim = len(current)
    steps = len(images) // dim
    pixels = to_uint8(images)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    values = strip_values(steps)
    gap = 1
    count, height, width, _ = pixels.shape
    picture = np.full(
        (dim * (height + gap) - gap, steps * (width + gap) - gap, 3), 255, np.uint8
    )
    for row in range(dim):
        marked = int(np.argmin(np.abs(values - current[row])))
        for column in range(steps):
            tile = pixels[row * steps + column].copy()
            if column == marked:
                tile[0, :] = tile[-1, :] = tile[:, 0] = tile[:, -1] = MARK_COLOUR
            top, left = row * (height + gap), column * (width + gap)
            picture[top:top + height, left:left + width] = tile
    return picture


def image_png(model, code):
    """PNG bytes of the image of `code` [D], at one pixel per model pixel: the page upscales it
    by nearest neighbour, which costs the server nothing."""
    return png_bytes(to_uint8(model.decode(np.asarray(code, np.float32)[None])[0]))


def strip_pngs(model, code, steps=STRIP_STEPS):
    """PNG bytes of every level's traversal strip from `code` [D], from one `decode` call."""
    code = np.asarray(code, np.float32)
    # Around the current point, every dimension of every level in the order of the code.
    images = model.decode(traversal.dimension_sweeps(code, 0, len(code), strip_values(steps)))
    strips, start = [], 0
    for dim in model.latent_dims:
        tiles = images[start * steps:(start + dim) * steps]
        strips.append(png_bytes(strip_picture(tiles, code[start:start + dim])))
        start += dim
    return strips


def decode_data_url(contents, what):
    """The bytes of a `data:<type>;base64,<data>` URL (what a browser upload or canvas gives), or
    ExplorerError naming `what` when it is not one or is over MAX_UPLOAD_BYTES."""
    if not isinstance(contents, str) or "," not in contents:
        raise ExplorerError(f"{what}: not a file the browser sent as a data URL")
    header, payload = contents.split(",", 1)
    if len(payload) * 3 // 4 > MAX_UPLOAD_BYTES:
        raise ExplorerError(
            f"{what}: {len(payload) * 3 / 4 / 2**20:.1f} MB, over the "
            f"{MAX_UPLOAD_BYTES // 2**20} MB limit"
        )
    if ";base64" not in header:
        raise ExplorerError(f"{what}: not base64-encoded")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ExplorerError(f"{what}: damaged upload (invalid base64)") from None


def read_picture(data, what):
    """Grey levels float32 [h, w] in [0, 1] of an image file's bytes, or ExplorerError naming
    `what` when it is not an image PIL can read or is over MAX_UPLOAD_PIXELS."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as picture:
                width, height = picture.size
                if width * height > MAX_UPLOAD_PIXELS:
                    raise ExplorerError(
                        f"{what}: {width}x{height} pixels, over the limit of "
                        f"{MAX_UPLOAD_PIXELS:,} pixels"
                    )
                picture = picture.convert("RGBA")
                # Transparent pixels count as background: white, so a dark drawing on a
                # transparent sheet reads as a drawing on paper.
                sheet = Image.new("RGBA", picture.size, (255, 255, 255, 255))
                sheet.alpha_composite(picture)
                grey = np.asarray(sheet.convert("L"), np.float32) / 255.0
    except ExplorerError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ExplorerError(f"{what}: too many pixels to decode safely") from None
    except Exception:  # PIL raises many types for files that are not images.
        raise ExplorerError(f"{what}: not an image PIL can read (PNG, JPEG, ...)") from None
    return grey


def as_digit(grey, image_shape):
    """A picture of grey levels [h, w] in [0, 1] as the model's input [H, W, C] in [0, 1].

    As MNIST was made: light strokes on a dark ground (a picture with a light ground is
    inverted), cropped to its strokes, scaled to fit DIGIT_BOX_FRACTION of the side keeping its
    aspect, and placed with its centre of mass at the image centre.
    """
    grey = np.asarray(grey, np.float32)
    # The border is the background: a mostly light border means dark strokes on paper.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey = 1.0 - grey
    height, width, channels = image_shape
    ink = grey > 0.1
    if not ink.any():
        raise ExplorerError("the picture is empty: draw or upload a digit first")
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = grey[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    box = DIGIT_BOX_FRACTION * min(height, width)
    factor = box / max(crop.shape)
    new_height = max(1, int(round(crop.shape[0] * factor)))
    new_width = max(1, int(round(crop.shape[1] * factor)))
    resized = Image.fromarray(to_uint8(crop)).resize(
        (new_width, new_height), Image.Resampling.LANCZOS
    )
    small = np.asarray(resized, np.float32) / 255.0
    total = small.sum()
    if total > 0:
        centre_row = (small.sum(axis=1) * np.arange(new_height)).sum() / total
        centre_column = (small.sum(axis=0) * np.arange(new_width)).sum() / total
    else:
        centre_row, centre_column = new_height / 2, new_width / 2
    top = int(round(height / 2 - centre_row))
    left = int(round(width / 2 - centre_column))
    top = min(max(top, 0), height - new_height)
    left = min(max(left, 0), width - new_width)
    digit = np.zeros((height, width), np.float32)
    digit[top:top + new_height, left:left + new_width] = small
    return np.repeat(np.clip(digit, 0.0, 1.0)[..., None], channels, axis=-1)
