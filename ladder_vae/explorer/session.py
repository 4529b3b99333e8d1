"""What the explorer page does, without the page: codes in, pictures and codes out.

Every method takes and returns plain Python values (lists of floats per level, ints, strings,
bytes), so the web callbacks stay thin and everything here is testable without a browser.
"""

import json

import numpy as np

from ladder_vae.explorer import codes as codes_lib
from ladder_vae.explorer import pictures
from ladder_vae.explorer.exported import ExplorerError
from ladder_vae.image_grid import to_uint8


class Explorer:
    """A loaded model with the run's validation digits and level labels.

    Args:
        model: an `ExportedModel` (or anything with `latent_dims`, `image_shape`, `encode`,
            `decode` of the same meaning).
        digits: validation images uint8 [n, H, W, C] to start from (may be empty).
        labels: one label string per level, or None when the levels are not measured.
        name: what the page calls the model (its run directory or SavedModel path).
        digits_source: where `digits` come from, one line.
    """

    def __init__(self, model, digits, labels=None, name="", digits_source=""):
        self.model = model
        self.digits = digits
        self.labels = labels
        self.name = name
        self.digits_source = digits_source
        self.latent_dims = tuple(model.latent_dims)
        self.image_shape = tuple(model.image_shape)

    @property
    def num_levels(self):
        return len(self.latent_dims)

    def check_levels(self, levels):
        """The code of all levels as a flat float32 array [D], from one list per level as the
        page sends them; ExplorerError names the first level at fault."""
        if not isinstance(levels, (list, tuple)) or len(levels) != self.num_levels:
            raise ExplorerError(
                f"expected the values of {self.num_levels} levels, got {codes_lib._short(levels)}"
            )
        flat = []
        for index, (values, dim) in enumerate(zip(levels, self.latent_dims), start=1):
            flat.extend(codes_lib.check_level_values(values, index, dim))
        return np.asarray(flat, np.float32)

    def draw(self, seed):
        """The code of all levels drawn from the prior with `seed`, one list per level."""
        seed = codes_lib.check_seed(seed)
        return codes_lib.split_levels(
            codes_lib.prior_code(seed, sum(self.latent_dims)).clip(
                -codes_lib.LIMIT, codes_lib.LIMIT
            ),
            self.latent_dims,
        )

    def redraw_level(self, levels, level, seed):
        """`levels` with level `level` (1 = lowest) replaced by its part of `draw(seed)`."""
        code = self.check_levels(levels)
        new = self.draw(seed)
        result = codes_lib.split_levels(code, self.latent_dims)
        result[level - 1] = new[level - 1]
        return result

    def image(self, levels):
        """PNG bytes of the image of the code `levels`, one pixel per model pixel."""
        return pictures.image_png(self.model, self.check_levels(levels))

    def strips(self, levels):
        """PNG bytes of each level's traversal strip from the code `levels`."""
        return pictures.strip_pngs(self.model, self.check_levels(levels))

    def _encode(self, images):
        """Levels of the posterior means of one image [H, W, C] in [0, 1], clipped to the
        controls' range, and a note naming the clipped levels ("" when none was)."""
        code = self.model.encode(np.asarray(images, np.float32)[None])[0]
        clipped, levels = codes_lib.clip_code(code, self.latent_dims)
        note = ""
        if levels:
            names = ", ".join(str(level) for level in levels)
            note = (
                f" (level {names} clipped to the controls' range "
                f"[{-codes_lib.LIMIT:g}, {codes_lib.LIMIT:g}])"
            )
        return codes_lib.split_levels(clipped, self.latent_dims), note

    def digit(self, index):
        """The levels of validation digit `index` (its posterior means) and a message."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise ExplorerError(f"digit {codes_lib._short(index)}: not a digit number")
        if not 0 <= index < len(self.digits):
            raise ExplorerError(
                f"digit {index}: no such validation digit (there are {len(self.digits)})"
            )
        levels, note = self._encode(self.digits[index] / 255.0)
        return levels, f"Encoded validation digit {index}{note}."

    def digit_thumbnail(self, index):
        """PNG bytes of validation digit `index`."""
        return pictures.png_bytes(self.digits[index])

    def picture(self, contents, what):
        """The levels of an uploaded or drawn picture (a data URL), the digit it became (PNG
        bytes, as the model sees it) and a message; ExplorerError names `what` when it is no
        usable image."""
        grey = pictures.read_picture(pictures.decode_data_url(contents, what), what)
        digit = pictures.as_digit(grey, self.image_shape)
        levels, note = self._encode(digit)
        return levels, pictures.png_bytes(to_uint8(digit)), f"Encoded {what}{note}."

    def download(self, levels):
        """PNG bytes of the image of `levels`, upscaled by nearest neighbour as on the page."""
        image = self.model.decode(self.check_levels(levels)[None])[0]
        return pictures.png_bytes(
            to_uint8(image), pictures.display_scale(self.image_shape[0])
        )

    def code_json(self, levels):
        """The code as JSON text: the levels (lowest first), the flat code `z` for `decode`, and
        the sizes."""
        code = self.check_levels(levels)
        rounded = [round(float(value), 4) for value in code]
        return json.dumps(
            {
                "latent_dims": list(self.latent_dims),
                "levels": codes_lib.split_levels(np.asarray(rounded), self.latent_dims),
                "z": rounded,
            }
        )
