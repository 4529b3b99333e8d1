"""SSIM written out in numpy from its definition, to check the TensorFlow one the losses use.

Wang, Bovik, Sheikh & Simoncelli (2004), eq. 13: for a Gaussian-weighted window w around each
pixel, with local means mu, variances sigma^2 and covariance sigma_xy,

    SSIM = (2 mu_x mu_y + C1) (2 sigma_xy + C2)
           / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = 1 for images in [0, 1]; the map covers the pixels whose
whole window lies inside the image ("valid"), and an image's SSIM is the mean of its map over
pixels and channels.
"""

import numpy as np


def gaussian_window(size, sigma):
    """The size x size window, weights exp(-r^2 / (2 sigma^2)) centred on its middle, sum 1."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    line = np.exp(-(offsets**2) / (2.0 * sigma**2))
    window = np.outer(line, line)
    return window / window.sum()


def _local_mean(images, window):
    """Window-weighted means over each valid position: [n, H - s + 1, W - s + 1, C]."""
    size = window.shape[0]
    height, width = images.shape[1] - size + 1, images.shape[2] - size + 1
    out = np.zeros((images.shape[0], height, width, images.shape[3]))
    for row in range(size):
        for column in range(size):
            out += window[row, column] * images[:, row : row + height, column : column + width, :]
    return out


def ssim(images, others, size, sigma):
    """Per-image SSIM of two batches [n, H, W, C] in [0, 1]: float64 array [n]."""
    x = np.asarray(images, np.float64)
    y = np.asarray(others, np.float64)
    window = gaussian_window(size, sigma)
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = _local_mean(x, window), _local_mean(y, window)
    var_x = _local_mean(x * x, window) - mu_x**2
    var_y = _local_mean(y * y, window) - mu_y**2
    covariance = _local_mean(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * covariance + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.reshape(len(ssim_map), -1).mean(axis=1)
