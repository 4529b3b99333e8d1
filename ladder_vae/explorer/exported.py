"""The exported SavedModel seen through numpy, found from a run directory or given directly."""

import os

import numpy as np

from ladder_vae import saving
from ladder_vae.run_dir import SAVED_MODEL_DIR, SAVED_MODEL_FILE, is_saved_model


class ExplorerError(ValueError):
    """A model, file or value the explorer cannot use; the message is one line naming it."""


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def find_saved_model(path):
    """The SavedModel directory for `path` (a run directory or a SavedModel), and the run directory
    around it (where `config.json` and `eval/` live; for a bare SavedModel, its parent).

    Checks only the file system, so a wrong path fails before TensorFlow starts.
    """
    if not os.path.exists(path):
        raise ExplorerError(f"{path}: no such directory")
    if not os.path.isdir(path):
        raise ExplorerError(f"{path}: not a directory (expected a run directory or a SavedModel)")
    path = os.path.abspath(path)
    if is_saved_model(path):
        return path, os.path.dirname(path)
    candidate = os.path.join(path, SAVED_MODEL_DIR)
    if is_saved_model(candidate):
        return candidate, path
    if os.path.isdir(candidate):
        raise ExplorerError(
            f"{candidate}: not a SavedModel (no {SAVED_MODEL_FILE}); export the run again with "
            f"`python -m ladder_vae.export {path}`"
        )
    raise ExplorerError(
        f"{path}: no exported model (no {SAVED_MODEL_DIR}/ in it); export the run with "
        f"`python -m ladder_vae.export {path}`"
    )


class ExportedModel:
    """The endpoints `encode`, `decode` and `latent_dims` of a SavedModel written by
    `ladder_vae.export`, with numpy in and out.

    Attributes:
        path: the SavedModel directory.
        latent_dims: tuple, the code size of each level, lowest level first.
        image_shape: tuple (H, W, C) of the images it decodes.
    """

    def __init__(self, path):
        self.path = path
        try:
            # Kept on the instance: see `saving.load_saved_model`.
            self.loaded = saving.load_saved_model(path)
        except saving.ModelFileError as error:
            raise ExplorerError(str(error)) from None
        try:
            dims = np.asarray(self.loaded.latent_dims()).reshape(-1)
            self.latent_dims = tuple(int(dim) for dim in dims)
            if not self.latent_dims or min(self.latent_dims) < 1:
                raise ValueError(f"latent_dims() gave {dims.tolist()}")
            probe = self.decode(np.zeros((1, self.code_size), np.float32))
        except Exception as error:
            raise ExplorerError(
                f"{path}: the SavedModel does not run ({_first_line(error)})"
            ) from None
        self.image_shape = tuple(int(size) for size in probe.shape[1:])

    @property
    def code_size(self):
        """D, the length of a code: the sum of the levels' sizes."""
        return sum(self.latent_dims)

    def decode(self, codes):
        """Images float32 [n, H, W, C] in [0, 1] from codes [n, D]."""
        return self.loaded.decode(np.asarray(codes, np.float32)).numpy()

    def encode(self, images):
        """Posterior means [n, D] of images float32 [n, H, W, C] in [0, 1]."""
        return self.loaded.encode(np.asarray(images, np.float32)).numpy()
