"""What every data source gives, `ImageData`, and how it fails, `DataError`."""

import dataclasses

import numpy as np


class DataError(ValueError):
    """Bad or missing data; its message is one line that names the file or value at fault."""


@dataclasses.dataclass
class ImageData:
    """Images as uint8 arrays [n, H, W, C] and labels [n], with a record of where they came from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    source: dict

    @property
    def image_shape(self):
        return tuple(self.train_images.shape[1:])
